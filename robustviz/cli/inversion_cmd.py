"""``robustviz inversion RUN_DIR ...``: feature inversion maps of trained runs (seeds as rows,
neurons as columns, one panel per model), as a figure and the raw arrays (``.npz``)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "inversion", help="feature inversion maps of runs (robust models give perceptual features)",
        description="Maximise chosen neurons (channels) of a tapped layer by gradient ascent in "
                    "pixel space from seed images (test images, or noise with --noise), every "
                    "(seed, neuron) pair in one batch. Writes OUT/inversion.{png,pdf}, "
                    "OUT/inversion.npz (NAME/images (S, K, C, H, W), NAME/start, NAME/objective) "
                    "and OUT/inversion.json.")
    p.add_argument("run_dirs", nargs="*", metavar="RUN_DIR")
    p.add_argument("--zoo", nargs="+", default=[], metavar="NAME", help="teaching-zoo models, e.g. nat pgd_at")
    p.add_argument("--dataset", default="fashion-mnist", help="data set of --zoo models")
    p.add_argument("--layer", default="conv2", help="tap name (default conv2; penultimate, logits, ...)")
    p.add_argument("--neurons", type=int, nargs="+", default=list(range(8)),
                   help="channels / units to maximise (default 0..7)")
    p.add_argument("--seeds", type=int, default=6, help="number of seed images (default 6)")
    p.add_argument("--noise", action="store_true", help="start from noise instead of test images")
    p.add_argument("--steps", type=int, default=64, help="ascent steps (default 64)")
    p.add_argument("--step-size", type=float, default=0.02, help="step size (default 0.02)")
    p.add_argument("--norm", choices=["linf", "l2", "none"], default="linf", help="step normalisation")
    p.add_argument("--eps", type=float, default=None, help="stay within this Linf/L2 distance of the seed")
    p.add_argument("--jitter", type=int, default=0, help="random roll per step, pixels (default 0)")
    p.add_argument("--penalty", choices=["none", "tv", "l2"], default="none")
    p.add_argument("--penalty-weight", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="inversion", help="output folder (default ./inversion)")
    p.add_argument("--format", nargs="+", default=["png", "pdf"])
    p.add_argument("--device", default=None)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run, n=0)


def run(args: argparse.Namespace) -> int:
    from robustviz import figures as rvf
    from robustviz.cli.landscape_cmd import load_models, save_npz
    from robustviz.diagnostics import feature_inversion
    from robustviz.runs import atomic_write_text

    models, test = load_models(args)
    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    seeds = args.seeds if args.noise else test.sample(args.seeds, seed=args.seed).x
    results = {}
    for name, model in models.items():
        results[name] = feature_inversion(
            model, args.layer, args.neurons, seeds, steps=args.steps, step_size=args.step_size,
            norm=args.norm, eps=args.eps, jitter=args.jitter, penalty=args.penalty,
            penalty_weight=args.penalty_weight, seed=args.seed, progress=not args.no_progress)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig = rvf.plot_inversion(results)
    for fmt in args.format:
        rvf.save(fig, out / f"inversion.{fmt}")
    arrays = {}
    for name, r in results.items():
        arrays[f"{name}/images"] = r.images.numpy()
        arrays[f"{name}/start"] = r.start.numpy()
        arrays[f"{name}/objective"] = r.objective.numpy()
    save_npz(out / "inversion.npz", arrays)
    summary = {"layer": args.layer, "neurons": list(args.neurons),
               "options": next(iter(results.values())).options,
               "gain": {n: float((r.objective[-1] - r.objective[0]).mean()) for n, r in results.items()}}
    atomic_write_text(out / "inversion.json", json.dumps(summary, indent=2))
    for n, g in summary["gain"].items():
        print(f"{n}: mean activation gain {g:.4f}")
    print(f"wrote {', '.join(str(out / f'inversion.{f}') for f in args.format)}, "
          f"{out / 'inversion.npz'}, {out / 'inversion.json'}")
    return 0
