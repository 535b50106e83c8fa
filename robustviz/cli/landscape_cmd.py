"""``robustviz landscape RUN_DIR ...``: loss landscapes of trained runs (Li et al. 2018), as
a figure and the raw arrays (``.npz``) so the figure can be restyled."""
from __future__ import annotations

import argparse
import io
import json
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "landscape", help="loss landscapes (weight space, interpolation, input space) of runs",
        description="Load each RUN_DIR (or each --zoo model), evaluate the loss landscape on a "
                    "stratified test subset and write OUT/landscape.{png,pdf} plus OUT/landscape.npz "
                    "(one set of arrays per model, keys NAME/loss, NAME/alphas, ...) and "
                    "OUT/landscape.json (settings and flatness). Weights are never modified.")
    p.add_argument("run_dirs", nargs="*", metavar="RUN_DIR", help="run directories written by robustviz train")
    p.add_argument("--zoo", nargs="+", default=[], metavar="NAME",
                   help="models of the teaching zoo (rv.zoo.load), e.g. nat pgd_at")
    p.add_argument("--dataset", default="fashion-mnist", help="data set of --zoo models (default fashion-mnist)")
    p.add_argument("--kind", choices=["weights", "interpolation", "input"], default="weights",
                   help="random filter-normalised directions, the line between the first two "
                        "models, or pixel space along sign(grad_x) and a random sign (default weights)")
    p.add_argument("--dims", type=int, choices=[1, 2], default=2, help="weights: 1-D or 2-D (default 2)")
    p.add_argument("--points", type=int, default=21, help="grid points per axis (default 21)")
    p.add_argument("--extent", type=float, default=None,
                   help="half-width of the grid (default 1 for weights, 0.25 pixels for input); "
                        "interpolation always spans -0.5..1.5")
    p.add_argument("--adversarial", action="store_true",
                   help="also the adversarial loss: PGD recomputed at every grid point")
    p.add_argument("--eps", type=float, default=0.1, help="PGD radius (default 0.1)")
    p.add_argument("--steps", type=int, default=5, help="PGD steps (default 5)")
    p.add_argument("--n", type=int, default=1000, help="test examples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the directions, subset and attack")
    p.add_argument("--radius", type=float, default=0.5, help="radius of the flatness measure (default 0.5)")
    p.add_argument("--out", default="landscape", help="output folder (default ./landscape)")
    p.add_argument("--format", nargs="+", default=["png", "pdf"], help="figure formats (default png pdf)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def load_models(args) -> tuple[dict, object]:
    """``({name: model}, test data)`` from RUN_DIRs and/or zoo names (shared by the
    inversion command)."""
    import torch

    from robustviz import data, runs

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    models, test = {}, None
    for d in args.run_dirs:
        r = runs.load_run(d, device=device)
        spec = r.config.get("data")
        if not isinstance(spec, dict) or "name" not in spec:
            raise ValueError(f"{d}/config.json has no 'data' entry with a 'name'")
        if test is None:
            test = data.load(spec["name"], "test", root=spec.get("root"))
        models[Path(d).name] = r.model
    if args.zoo:
        try:
            from robustviz import zoo
        except ImportError:
            raise ValueError("--zoo needs robustviz.zoo, which this installation lacks; pass RUN_DIRs") from None
        for name in args.zoo:
            models[name] = zoo.load(name, dataset=args.dataset).to(device)
        if test is None:
            test = zoo.data(dataset=args.dataset, split="test")
    if not models:
        raise ValueError("give at least one RUN_DIR or --zoo NAME")
    n = getattr(args, "n", 0)
    if 0 < n < len(test):
        test = test.sample(n, seed=args.seed)
    return models, test


def save_npz(path: Path, arrays: dict) -> None:
    """Write ``arrays`` (name -> ndarray) as an ``.npz`` atomically."""
    import numpy as np

    from robustviz.runs import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from robustviz import diagnostics as D
    from robustviz import figures as rvf
    from robustviz.attacks import PGD
    from robustviz.runs import atomic_write_text

    if args.points < 2:
        raise ValueError(f"--points must be >= 2, got {args.points}")
    models, test = load_models(args)
    attack = (PGD(eps=args.eps, steps=args.steps, step_size=2.5 * args.eps / args.steps,
                  seed=args.seed) if args.adversarial else None)
    progress = not args.no_progress
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lands = {}
    if args.kind == "interpolation":
        if len(models) < 2:
            raise ValueError("--kind interpolation needs two models (first -> second)")
        (na, ma), (nb, mb) = list(models.items())[:2]
        lands[f"{na}->{nb}"] = D.interpolation_landscape(
            ma, mb, test, alphas=np.linspace(-0.5, 1.5, args.points), attack=attack,
            seed=args.seed, progress=progress)
    else:
        ext = args.extent if args.extent is not None else (1.0 if args.kind == "weights" else 0.25)
        grid = np.linspace(-ext, ext, args.points)
        for name, model in models.items():
            if args.kind == "weights":
                lands[name] = D.weight_landscape(model, test, dims=args.dims, alphas=grid,
                                                 betas=grid, attack=attack, seed=args.seed,
                                                 progress=progress)
            else:
                lands[name] = D.input_landscape(model, test, alphas=grid, betas=grid,
                                                seed=args.seed, progress=progress)
    one_d = next(iter(lands.values())).dims == 1
    figs = {}
    if one_d:
        figs["landscape"] = rvf.plot_landscape_1d(lands, metrics=("loss", "adv_loss", "accuracy"))
    else:
        figs["landscape"] = rvf.plot_landscape_contour(lands, radius=args.radius)
        figs["landscape_3d"] = rvf.plot_landscape_surface(lands)
        if attack is not None:
            figs["landscape_adv"] = rvf.plot_landscape_contour(lands, metric="adv_loss", radius=args.radius)
    for stem, fig in figs.items():
        for fmt in args.format:
            rvf.save(fig, out / f"{stem}.{fmt}")
    arrays = {f"{name}/{k}": v for name, land in lands.items() for k, v in land.arrays().items()}
    save_npz(out / "landscape.npz", arrays)
    summary = {"kind": args.kind, "n": len(test), "seed": args.seed,
               "attack": attack.describe() if attack is not None else None, "models": {}}
    for name, land in lands.items():
        row = {"center_loss": land.center()}
        if land.kind != "interpolation":
            row[f"rise_at_{args.radius:g}"] = land.rise(args.radius)
            if land.adv_loss is not None:
                row[f"adv_rise_at_{args.radius:g}"] = land.rise(args.radius, "adv_loss")
        summary["models"][name] = row
        print(f"{name}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items()))
    atomic_write_text(out / "landscape.json", json.dumps(summary, indent=2))
    print(f"wrote {', '.join(sorted(str(out / f'{s}.{f}') for s in figs for f in args.format))}, "
          f"{out / 'landscape.npz'}, {out / 'landscape.json'}")
    return 0
