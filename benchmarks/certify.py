"""Certified against empirical robustness on the Fashion-MNIST teaching zoo.

Run from the repository root::

    .venv/bin/python benchmarks/certify.py                 # 25 minutes at load average 10 on 2 cores
    .venv/bin/python benchmarks/certify.py --quick         # fewer images, a smoke run
    .venv/bin/python benchmarks/certify.py --ibp           # also an IBP-trained model
    .venv/bin/python benchmarks/certify.py --figures out/  # also the certified-vs-empirical PNGs

For the zoo's ``nat`` and ``pgd_at`` (TinyCNN) and a model trained here at teaching scale
(Gaussian data augmentation, sigma 0.25, as Cohen et al., ICML 2019; 10,000 training
images, 3 epochs; with ``--ibp`` also IBP training, eps 0.05 after a ramp, as Gowal et al.
2018), one row per measurement, with the seconds it took and the load average beside it:

- Linf (radii 0.01, 0.02, 0.05): PGD-20 accuracy (an upper bound), IBP and CROWN
  certified accuracy (lower bounds). CROWN took 1.7 to 2 s per image and radius at load
  9 to 12 on 2 cores, so it runs on the first ``--n-crown`` images only.
- L2 (radii 0.25, 0.5): PGD-20 L2 accuracy of the base model; randomized smoothing
  (sigma 0.25, n0 = 50, n = 500, alpha = 0.001) certified accuracy; and the accuracy of the
  smoothed prediction (``Smooth.predict``, abstentions count as errors) on L2 PGD-10
  examples crafted against the noise-averaged softmax (16 draws per step, the attack of
  Salman et al., "Provably Robust Deep Learning via Adversarially Trained Smoothed
  Classifiers", NeurIPS 2019): the upper bound that matches the smoothed classifier.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import robustviz as rv

LINF = (0.01, 0.02, 0.05)
L2 = (0.25, 0.5)
SIGMA = 0.25


class NoiseAveraged(nn.Module):
    """``log E_noise softmax(model(x + sigma * noise))`` over ``draws`` fixed draws: the
    smoothed classifier's soft version, which an attack on it differentiates."""

    def __init__(self, model: nn.Module, sigma: float, draws: int, seed: int = 0):
        super().__init__()
        self.model, self.sigma, self.draws, self.seed = model, sigma, draws, seed

    def forward(self, x):
        g = torch.Generator(device=x.device).manual_seed(self.seed)
        noise = torch.randn((self.draws, *x.shape), generator=g, device=x.device, dtype=x.dtype)
        logits = self.model((x.unsqueeze(0) + self.sigma * noise).flatten(0, 1))
        probs = F.softmax(logits, 1).view(self.draws, x.shape[0], -1).mean(0)
        return probs.clamp_min(1e-12).log()


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def train_model(defense: dict, n: int, epochs: int, seed: int = 0):
    train = rv.data.load("fashion-mnist", "train", n=n, seed=seed)
    model = rv.models.build("tinycnn", num_classes=10, in_channels=1, input_size=(28, 28),
                            mean=train.mean, std=train.std, seed=seed)
    rv.train.Trainer(defense=defense, epochs=epochs, lr=0.05, momentum=0.9, weight_decay=5e-4,
                     schedule="cosine", warmup_epochs=0.2, batch_size=128, seed=seed, bf16=False,
                     val_size=200, progress=False).fit(model, train)
    return model.eval()


def measure(name, model, x, y, args, rows, results):
    def row(measure, n, accs, seconds, radii):
        acc = " · ".join(f"{r:g}: {100 * a:.1f}" for r, a in zip(radii, accs))
        rows.append((name, measure, n, acc, seconds, load()))
        print(f"| {name} | {measure} | {n} | {acc} | {seconds:.1f} | {load()} |", flush=True)

    res = {"eps": list(LINF), "empirical": {}, "certified": {}}
    t = time.perf_counter()
    clean = rv.evaluate.evaluate(model, (x, y), None, topk=(1,), progress=False).clean[1]
    pgd = []
    for e in LINF:
        atk = rv.attacks.PGD(eps=e, steps=20, seed=0)
        pgd.append(rv.evaluate.evaluate(model, (x, y), {"pgd": atk}, topk=(1,), seed=0,
                                        progress=False).robust("pgd"))
    row("PGD-20 Linf (attack)", len(y), pgd, time.perf_counter() - t, LINF)
    res["empirical"]["PGD-20"] = pgd
    for method, n in (("ibp", len(y)), ("crown", args.n_crown)):
        r = rv.certify.certify(model, (x[:n], y[:n]), LINF, method=method, progress=False)
        accs = [r.accuracy(e) for e in LINF]
        row(f"{method.upper()} Linf (certified)", n, accs, sum(r.seconds.values()), LINF)
        res["certified"][method.upper()] = accs
    # the figure: every curve on CROWN's images (curves on different images can cross)
    res["figure"] = {"eps": list(LINF), "n": args.n_crown, "empirical": {}, "certified": {}}
    if args.n_crown < len(y):
        nc = args.n_crown
        res["figure"]["empirical"]["PGD-20"] = [
            rv.evaluate.evaluate(model, (x[:nc], y[:nc]), {"pgd": rv.attacks.PGD(eps=e, steps=20, seed=0)},
                                 topk=(1,), seed=0, progress=False).robust("pgd") for e in LINF]
        ibp = rv.certify.certify(model, (x[:nc], y[:nc]), LINF, method="ibp", progress=False)
        res["figure"]["certified"]["IBP"] = [ibp.accuracy(e) for e in LINF]
    else:
        res["figure"]["empirical"]["PGD-20"] = pgd
        res["figure"]["certified"]["IBP"] = res["certified"]["IBP"]
    res["figure"]["certified"]["CROWN"] = res["certified"]["CROWN"]

    t = time.perf_counter()
    pgd2 = [rv.evaluate.evaluate(model, (x, y), {"pgd": rv.attacks.PGD(eps=r, norm="l2", steps=20, seed=0)},
                                 topk=(1,), seed=0, progress=False).robust("pgd") for r in L2]
    row("PGD-20 L2, base model (attack)", len(y), pgd2, time.perf_counter() - t, L2)
    ns = args.n_smooth
    smooth = rv.certify.Smooth(sigma=SIGMA, n0=50, n=500, alpha=0.001, seed=0)
    t = time.perf_counter()
    cert = smooth.certify(model, x[:ns])
    acc_s = [cert.certified_accuracy(y[:ns], r) for r in L2]
    row(f"smoothing sigma {SIGMA:g} L2 (certified; clean {100 * cert.certified_accuracy(y[:ns], 0):.1f})",
        ns, acc_s, time.perf_counter() - t, L2)
    t = time.perf_counter()
    soft = NoiseAveraged(model, SIGMA, draws=16).eval()
    smoothed_adv = []
    for r in L2:
        x_adv = rv.attacks.PGD(eps=r, norm="l2", steps=10, seed=0)(soft, x[:ns], y[:ns])
        pred = smooth.predict(model, x_adv)
        smoothed_adv.append(float((pred == y[:ns]).float().mean()))
    row("smoothed prediction under L2 PGD-10 on the noise average (attack)", ns, smoothed_adv,
        time.perf_counter() - t, L2)
    results[name] = {"clean": clean, "linf": res, "l2": {"eps": list(L2), "pgd_base": pgd2,
                                                         "smooth_certified": acc_s,
                                                         "smooth_attack": smoothed_adv,
                                                         "n_smooth": ns}}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=200, help="test images for PGD and IBP")
    p.add_argument("--n-crown", type=int, default=24)
    p.add_argument("--n-smooth", type=int, default=30)
    p.add_argument("--n-train", type=int, default=10_000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--ibp", action="store_true", help="also train and measure an IBP-trained model")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--figures", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.n_crown, args.n_smooth, args.n_train, args.epochs = 50, 4, 6, 2000, 1
    args.n_crown, args.n_smooth = min(args.n_crown, args.n), min(args.n_smooth, args.n)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} cores, "
          f"load {load()}", flush=True)
    test = rv.zoo.data("fashion-mnist", "test", n=args.n)
    x, y = test.x, test.y
    models = {"nat": rv.zoo.load("nat"), "pgd_at": rv.zoo.load("pgd_at")}
    trained = {f"gauss {SIGMA:g}": {"name": "gaussian_aug", "sigma": SIGMA}}
    if args.ibp:
        steps = args.n_train // 128 + 1
        trained["ibp 0.05"] = {"name": "ibp", "eps": 0.05, "warmup_steps": steps // 3,
                               "ramp_steps": steps}
    for name, spec in trained.items():
        t = time.perf_counter()
        models[name] = train_model(spec, args.n_train, args.epochs)
        print(f"trained {name} ({spec}) on {args.n_train} images x {args.epochs} epochs in "
              f"{time.perf_counter() - t:.0f} s, load {load()}", flush=True)
    print("\n| model | measure | images | accuracy (%) at each radius | s | load |")
    print("|---|---|---|---|---|---|", flush=True)
    rows, results = [], {}
    for name, m in models.items():
        measure(name, m, x, y, args, rows, results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.figures:
        args.figures.mkdir(parents=True, exist_ok=True)
        for name, r in results.items():
            res = r["linf"]["figure"]
            fig = rv.figures.plot_certified_vs_empirical(res, title=f"{name}: Linf, the first "
                                                         f"{res['n']} test images")
            fig.savefig(args.figures / f"certified_vs_empirical_{name.replace(' ', '_')}.png", dpi=120)


if __name__ == "__main__":
    main()
