"""``robustviz report RUN_DIR [RUN_DIR ...] --out report/``."""
from __future__ import annotations


def register(sub) -> None:
    from robustviz.report import SECTIONS

    p = sub.add_parser(
        "report", help="evaluate runs, draw every diagnostic figure, write one offline HTML page",
        description="Evaluate each RUN_DIR on its data set's test split (clean, FGSM, PGD; "
                    "adaptive for reverse attention), compute the latent diagnostics and write "
                    "OUT/index.html with every figure (PDF and PNG in OUT/figures), every table "
                    "(CSV and LaTeX in OUT/tables) and OUT/summary.json. An evaluation record "
                    "is appended to each run's metrics.jsonl so `robustviz compare` reads it. "
                    "Files a previous report wrote in OUT are removed first.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (one data set)")
    p.add_argument("--out", default="report", metavar="DIR", help="output folder (default: %(default)s)")
    p.add_argument("--n", type=int, default=1000,
                   help="test images for the tables and diagnostics (default: %(default)s)")
    p.add_argument("--eps", type=float, default=None,
                   help="Linf radius on the pixel scale, e.g. 0.1 or 0.0314 (=8/255) "
                        "(default: the first run's eval eps)")
    p.add_argument("--steps", type=int, default=20,
                   help="PGD steps; step size 2.5*eps/steps (default: %(default)s)")
    p.add_argument("--n-sweep", type=int, default=500,
                   help="test images per point of the R-DIV vs eps sweep (default: %(default)s)")
    p.add_argument("--embed", choices=["tsne", "umap"], default="tsne",
                   help="map of the embeddings section (default: %(default)s)")
    p.add_argument("--sections", nargs="+", default=None, choices=list(SECTIONS), metavar="NAME",
                   help=f"sections to include, of: {', '.join(SECTIONS)} (default: all)")
    p.add_argument("--no-record", action="store_true",
                   help="do not append the evaluation record to the runs' metrics.jsonl")
    p.add_argument("--seed", type=int, default=0, help="seed of the subset and attacks (default: %(default)s)")
    p.add_argument("--seeds", type=int, default=1,
                   help="attack seeds; with more than one the summary gives each attack's mean "
                        "and range (default: %(default)s)")
    p.add_argument("--autoattack", choices=["fast", "standard", "plus", "rand"], default=None,
                   help="also run AutoAttack of this version (its authors' settings; 'standard' "
                        "takes minutes per 100 robust images on a CPU); it joins the worst case")
    p.add_argument("--no-progress", action="store_true", help="no progress output")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from robustviz.report import report

    rep = report(args.run_dirs, args.out, n=args.n, eps=args.eps, steps=args.steps,
                 n_sweep=args.n_sweep, embed_method=args.embed, seed=args.seed,
                 seeds=args.seeds, autoattack=args.autoattack,
                 sections=args.sections, record=not args.no_record,
                 progress=not args.no_progress)
    if rep.rows:
        print(rep.table())
    print(f"report: {rep.path}")
    return 0
