"""The issue-11 figures at teaching scale on the CPU: NAT vs PGD-AT on Fashion-MNIST.

Run from the repository root::

    .venv/bin/python scripts/visual_figures.py                 # writes report/visual/
    .venv/bin/python scripts/visual_figures.py --out /tmp/vis  # elsewhere

Models come from the teaching zoo (``rv.zoo.load("nat")``, ``rv.zoo.load("pgd_at")``);
without the zoo (or its weights) two TinyCNNs are trained here in about a minute (5k
Fashion-MNIST images, 2 epochs, Adam; PGD-AT with 4 steps at eps 0.1) and cached.

Writes, each timed (target: under a minute per figure on a CPU):

1. ``inversion.png``: feature inversion maps of each model's 8 most active conv2 channels
   (64 Linf steps of 0.02, jitter 1) from the same 6 test images.
2. ``landscape_clean.png`` / ``landscape_adv.png``: 2-D weight-space landscapes (one pair of
   filter-normalised directions per model, seed 0), clean loss (9 x 9 grid over [-1, 1]^2,
   200 images) and PGD-3 loss recomputed at every point (7 x 7, 80 images), one colour scale; which model is flatter by the mean loss rise on the
   circle of radius 0.5 of the grid.
3. ``corruptions.png`` and ``corruptions.md``: accuracy per corruption type (mean over the 5
   severities) on 100 test images and mCE of PGD-AT relative to NAT.
plus ``summary.json`` with every number and the raw arrays (``.npz``).
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import robustviz as rv
from robustviz import figures as rvf
from robustviz.attacks import PGD
from robustviz.diagnostics import feature_inversion, weight_landscape
from robustviz.evaluate import corruption_accuracy

EPS = 0.1


def _fallback(name: str, cache: Path):
    train = rv.data.load("fashion-mnist", "train", n=5000, seed=0)
    model = rv.models.build("tinycnn", num_classes=10, in_channels=1, mean=train.mean,
                            std=train.std, seed=0)
    path = cache / f"{name}.safetensors"
    if path.is_file():
        rv.runs.load_weights(path, model)
        return model.eval()
    spec = {"nat": {"name": "nat"},
            "pgd_at": {"name": "pgd_at", "eps": EPS, "step_size": EPS / 3, "steps": 4}}[name]
    rv.train.Trainer(defense=spec, epochs=2, optimizer="adam", lr=2e-3, weight_decay=0.0,
                     schedule="constant", batch_size=128, eps=EPS, progress=False,
                     seed=0).fit(model, train)
    cache.mkdir(parents=True, exist_ok=True)
    rv.runs.save_weights(path, model)
    return model.eval()


def load_models(cache: Path) -> tuple[dict, str]:
    try:
        from robustviz import zoo

        return {"NAT": zoo.load("nat"), "PGD-AT": zoo.load("pgd_at")}, "teaching zoo"
    except Exception as err:  # no zoo module or no weights yet
        print(f"zoo unavailable ({type(err).__name__}: {err}); training two TinyCNNs here",
              file=sys.stderr)
        t = time.perf_counter()
        models = {"NAT": _fallback("nat", cache), "PGD-AT": _fallback("pgd_at", cache)}
        return models, f"fallback: trained here ({time.perf_counter() - t:.0f} s, cached in {cache})"


def _npz(path: Path, arrays: dict) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    rv.runs.atomic_write_bytes(path, buf.getvalue())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="issue-11 figures, NAT vs PGD-AT")
    ap.add_argument("--out", default="report/visual", help="output folder (default report/visual, git-ignored)")
    ap.add_argument("--cache", default="/tmp/robustviz_visual_models")
    ap.add_argument("--grid", type=int, default=9, help="clean landscape points per axis (default 9)")
    ap.add_argument("--grid-adv", type=int, default=7, help="adversarial landscape points per axis (default 7)")
    ap.add_argument("--n-landscape", type=int, default=200, help="images for the clean landscape")
    ap.add_argument("--n-adv", type=int, default=80, help="images for the adversarial landscape")
    ap.add_argument("--n-corruptions", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models, source = load_models(Path(args.cache))
    test = rv.data.load("fashion-mnist", "test")
    summary = {"models": source, "timings_s": {}}
    print(f"models: {source}")

    # 1. feature inversion maps
    t = time.perf_counter()
    seeds = test.sample(6, seed=0).x
    probe = test.sample(200, seed=1).x
    inv = {}
    for k, m in models.items():
        # the 8 channels most active on test images (a dead ReLU channel has no gradient)
        act = rv.models.extract(m, probe, ["conv2"])["conv2"].mean(dim=(0, 2, 3))
        top = sorted(act.argsort(descending=True)[:8].tolist())
        inv[k] = feature_inversion(m, "conv2", top, seeds, steps=64, step_size=0.02,
                                   norm="linf", jitter=1, seed=0)
    rvf.save(rvf.plot_inversion(inv, title="conv2: the 8 most active channels maximised "
                                           "from test images"), out / "inversion.png")
    _npz(out / "inversion.npz", {f"{k}/images": r.images.numpy() for k, r in inv.items()})
    summary["timings_s"]["inversion"] = time.perf_counter() - t
    summary["inversion_gain"] = {k: float((r.objective[-1] - r.objective[0]).mean())
                                 for k, r in inv.items()}
    summary["inversion_channels"] = {k: list(r.neurons) for k, r in inv.items()}

    # 2. landscapes
    grid = np.linspace(-1, 1, args.grid)
    t = time.perf_counter()
    clean = {k: weight_landscape(m, test.sample(args.n_landscape, seed=0), alphas=grid,
                                 betas=grid, seed=0, progress=False) for k, m in models.items()}
    rvf.save(rvf.plot_landscape_contour(clean, radius=0.5), out / "landscape_clean.png")
    summary["timings_s"]["landscape_clean"] = time.perf_counter() - t
    t = time.perf_counter()
    atk = PGD(eps=EPS, steps=3, step_size=EPS / 2, seed=0)
    grid_adv = np.linspace(-1, 1, args.grid_adv)
    adv = {k: weight_landscape(m, test.sample(args.n_adv, seed=0), alphas=grid_adv, betas=grid_adv,
                               attack=atk, seed=0, progress=False) for k, m in models.items()}
    rvf.save(rvf.plot_landscape_contour(adv, metric="adv_loss", radius=0.5),
             out / "landscape_adv.png")
    summary["timings_s"]["landscape_adv"] = time.perf_counter() - t
    _npz(out / "landscape.npz", {f"{k}/{kind}/{a}": v
                                 for kind, d in (("clean", clean), ("adv", adv))
                                 for k, l in d.items() for a, v in l.arrays().items()})
    summary["landscape"] = {
        k: {"clean_center": clean[k].center(), "clean_rise_0.5": clean[k].rise(0.5),
            "adv_center": adv[k].center("adv_loss"), "adv_rise_0.5": adv[k].rise(0.5, "adv_loss")}
        for k in models}
    summary["flatter_clean"] = min(models, key=lambda k: clean[k].rise(0.5))
    summary["flatter_adv"] = min(models, key=lambda k: adv[k].rise(0.5, "adv_loss"))

    # 3. corruptions
    t = time.perf_counter()
    cor = corruption_accuracy(models, test.sample(args.n_corruptions, seed=0), seed=0,
                              progress=False)
    rvf.save(rvf.plot_corruptions(cor), out / "corruptions.png")
    summary["timings_s"]["corruptions"] = time.perf_counter() - t
    table = cor.table(baseline="NAT")
    rv.runs.atomic_write_text(out / "corruptions.md", "```\n" + table + "\n```\n")
    summary["corruptions"] = {"mean_accuracy": {k: cor.mean_accuracy(k) for k in models},
                              "clean": cor.clean, "mce_vs_NAT": {k: cor.mce(k, "NAT") for k in models},
                              "relative_mce_vs_NAT": {k: cor.mce(k, "NAT", relative=True) for k in models},
                              "skipped": cor.skipped, "n": cor.n}
    rv.runs.atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))

    print(table)
    for k, v in summary["landscape"].items():
        print(f"{k}: clean loss {v['clean_center']:.4f} rise@0.5 {v['clean_rise_0.5']:.4f}; "
              f"adv loss {v['adv_center']:.4f} rise@0.5 {v['adv_rise_0.5']:.4f}")
    print(f"flatter (clean): {summary['flatter_clean']}; flatter (adversarial): {summary['flatter_adv']}")
    print("seconds per figure: " + ", ".join(f"{k} {v:.1f}" for k, v in summary["timings_s"].items()))
    print(f"wrote {out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
