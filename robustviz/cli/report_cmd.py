"""``robustviz report RUN_DIR [RUN_DIR ...] --out report/``."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("report", help="every diagnostic figure + one offline HTML page for runs")
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--out", default="report")
    p.add_argument("--n", type=int, default=1000, help="test examples")
    p.add_argument("--eps", type=float, default=None, help="Linf radius (default: the run's)")
    p.add_argument("--steps", type=int, default=20, help="PGD steps")
    p.add_argument("--embed", choices=["tsne", "umap"], default="tsne")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from robustviz.report import report

    rep = report(args.runs, args.out, n=args.n, eps=args.eps, steps=args.steps,
                 embed_method=args.embed, seed=args.seed, progress=not args.no_progress)
    print(rep.table())
    print(f"report: {rep.path}")
    return 0
