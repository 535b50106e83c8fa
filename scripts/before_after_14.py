#!/usr/bin/env python
"""Before/after figures of issue 14 for the teaching models: robust accuracy and R-DIV
intervals of two model sets (e.g. ASCL and ANCRA trained before and after the fixes) on the
SAME test subset, with the SAME attack.

What changed in issue 14 and how to train each side (Fashion-MNIST teaching configs):

* ASCL (paper 001 eq. 3): L_SCL sums the natural and adversarial anchor's losses per
  sample (``reduction: pair_sum``, now the default); before, the mean over the 2N anchors::

      robustviz train --config configs/teach/paper001_ascl_adv.yaml --defense-arg reduction=anchor_mean --out runs/before/ascl
      robustviz train --config configs/teach/paper001_ascl_adv.yaml --out runs/after/ascl

* ANCRA (paper 004 Algorithm 1 / eq. 4): the auxiliary reverse-attention head also gets the
  ANC term (``aux_anc: true``, now the default); before, the base loss alone::

      robustviz train --config configs/teach/paper004_trades_ancra.yaml --defense-arg aux_anc=false --out runs/before/ancra
      robustviz train --config configs/teach/paper004_trades_ancra.yaml --out runs/after/ancra

* R-DIV intervals (exact mode): delete-a-group jackknife now, bootstrap over anchors
  before. Every model here gets both, so the width change is measured on the same features.

Then::

    python scripts/before_after_14.py \\
        --before ascl=runs/before/ascl ancra=runs/before/ancra \\
        --after ascl=runs/after/ascl ancra=runs/after/ancra --n 2000 --out before_after_14.json

A model is a run directory or ``zoo:NAME`` (``robustviz.zoo.load(NAME, dataset)``). Robust
accuracy is under PGD (``--steps``, step eps/4, uniform start) at ``--eps``, through the
differentiable surrogate as well for reverse-attention models (``Adaptive``: the worst case
per example), on a class-stratified subset of ``--n`` test images (``--seed``).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for it in items:
        if "=" not in it:
            raise SystemExit(f"{flag}: expected NAME=RUN_DIR or NAME=zoo:NAME, got {it!r}")
        k, v = it.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _load(spec: str, dataset: str, device):
    import robustviz as rv
    from robustviz import runs

    if spec.startswith("zoo:"):
        model = rv.zoo.load(spec[4:], dataset=dataset)
    else:
        model = runs.load_run(spec, device=device).model
    return model.to(device).eval()


def measure(model, data, *, eps: float, steps: int, seed: int, n_boot: int = 1000, layer: str = "penultimate"):
    """Clean/robust accuracy and R-DIV (exact with jackknife and anchor-bootstrap intervals,
    minibatch with the batch bootstrap) of one model on ``data``."""
    import numpy as np

    from robustviz.attacks import PGD, Adaptive
    from robustviz.diagnostics import attacked_features, divergence
    from robustviz.diagnostics._divergence_ci import _bootstrap

    atk = Adaptive(attack=PGD(eps=eps, steps=steps, step_size=eps / 4, random_start="uniform"))
    t0 = time.time()
    f = attacked_features(model, data, atk, layer=layer, seed=seed)
    y = f.y
    clean = float((f.logits_nat.argmax(1) == y).float().mean())
    robust = float((f.logits_adv.argmax(1) == y).float().mean())
    exact = divergence(f.z_nat, f.z_adv, f.y, n_boot=n_boot, seed=seed)            # jackknife
    old_lo, old_hi = _bootstrap(np.asarray(exact.anchor_pos), np.asarray(exact.anchor_neg),
                                n_boot, 0.95, seed)[0]                             # anchor bootstrap
    mb = divergence(f.z_nat, f.z_adv, f.y, mode="minibatch", batch_size=128, n_boot=n_boot, seed=seed)
    return {
        "clean_acc": clean, "robust_acc": robust,
        "rdiv": exact.rdiv, "d_pos": exact.d_pos, "d_neg": exact.d_neg,
        "rdiv_ci_jackknife": list(exact.ci), "rdiv_ci_jackknife_width": exact.ci[1] - exact.ci[0],
        "rdiv_ci_anchor_bootstrap": [old_lo, old_hi], "rdiv_ci_anchor_bootstrap_width": old_hi - old_lo,
        "rdiv_minibatch": mb.rdiv,
        "rdiv_minibatch_ci_width": None if mb.ci is None else mb.ci[1] - mb.ci[0],
        "seconds": time.time() - t0,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", nargs="+", required=True, metavar="NAME=RUN", help="models before the fixes")
    p.add_argument("--after", nargs="+", required=True, metavar="NAME=RUN", help="models after the fixes")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--n", type=int, default=2000, help="class-stratified test images (default 2000)")
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (anchor and batch bootstraps)")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: cuda when available)")
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args(argv)

    import torch

    from robustviz import data as rvdata

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    sets = {"before": _pairs(args.before, "--before"), "after": _pairs(args.after, "--after")}
    test = rvdata.load(args.dataset, "test")
    subset = test.sample(min(args.n, len(test)), seed=args.seed).to(device)
    results: dict = {"dataset": args.dataset, "n": len(subset), "eps": args.eps, "steps": args.steps,
                     "seed": args.seed, "device": str(device), "models": {}}
    for side, models in sets.items():
        for name, spec in models.items():
            model = _load(spec, args.dataset, device)
            r = measure(model, subset, eps=args.eps, steps=args.steps, seed=args.seed, n_boot=args.n_boot)
            results["models"].setdefault(name, {})[side] = {"source": spec, **r}
            print(f"{side:6s} {name:8s} clean {100 * r['clean_acc']:5.1f}%  robust {100 * r['robust_acc']:5.1f}%  "
                  f"R-DIV {r['rdiv']:.4f}  jackknife width {r['rdiv_ci_jackknife_width']:.4f}  "
                  f"anchor-bootstrap width {r['rdiv_ci_anchor_bootstrap_width']:.4f}  ({r['seconds']:.0f} s)",
                  flush=True)

    print(f"\nissue 14 before -> after ({args.dataset}, n {len(subset)}, PGD-{args.steps} eps {args.eps:g}, "
          f"adaptive; R-DIV exact, cosine, penultimate)")
    print(f"{'model':8s} {'robust acc':>20s} {'clean acc':>20s} {'R-DIV':>18s} {'CI width (jackknife)':>22s}")
    for name, sides in results["models"].items():
        if not {"before", "after"} <= set(sides):
            continue
        b, a = sides["before"], sides["after"]

        def pair(key, scale=100.0, fmt="5.1f"):
            return f"{scale * b[key]:{fmt}} -> {scale * a[key]:{fmt}}"

        print(f"{name:8s} {pair('robust_acc'):>20s} {pair('clean_acc'):>20s} "
              f"{pair('rdiv', 1.0, '.4f'):>18s} {pair('rdiv_ci_jackknife_width', 1.0, '.4f'):>22s}")
    widths = [(s["rdiv_ci_jackknife_width"], s["rdiv_ci_anchor_bootstrap_width"])
              for sides in results["models"].values() for s in sides.values()]
    ratio = [j / b for j, b in widths if b and math.isfinite(j / b)]
    if ratio:
        print(f"jackknife / anchor-bootstrap CI width, same features: {min(ratio):.2f}..{max(ratio):.2f}x")
    if args.out:
        from robustviz.runs import atomic_write_text
        atomic_write_text(args.out, json.dumps(results, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
