"""Widget update latency: the time from a control change to the redrawn front end.

Run from the repository root::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/widgets.py      # about a minute

A teaching-scale TinyCNN is taken from the zoo (``rv.zoo``, model ``nat``) when it exists,
else trained here for one epoch on 3,000 Fashion-MNIST images (the latency does not depend
on the weights). For each widget, with its ipywidgets/plotly front end built, it prints
the median and max latency of uncached control changes (new eps values: a new attack,
features, map transform and R-DIV; a new image; a new epoch) and of cached ones (a
revisited setting), against the 1 s target on a CPU. The load average is printed with
the results: on a shared machine the numbers are noisy.
"""
from __future__ import annotations

import os
import platform
import statistics
import time

import torch

import robustviz as rv


def _model(train):
    try:
        return rv.zoo.load("nat"), "zoo nat"
    except Exception:  # noqa: BLE001 - no zoo yet: a quick stand-in of the same size
        m = rv.models.build("tinycnn", num_classes=10, in_channels=1, mean=train.mean,
                            std=train.std, seed=0)
        rv.train.Trainer(defense={"name": "nat"}, epochs=1, optimizer="adam", lr=2e-3,
                         weight_decay=0.0, schedule="constant", batch_size=128, eps=0.1,
                         progress=False, seed=0).fit(m, train)
        return m.eval(), "TinyCNN, 1 epoch on 3,000 images"


def _report(name, times, target=1.0):
    med, worst = statistics.median(times), max(times)
    print(f"{name:48s} median {med:6.3f} s  max {worst:6.3f} s  "
          f"({'under' if worst < target else 'OVER'} {target:g} s; {len(times)} changes)")


def main() -> None:
    print(f"CPU: {platform.processor() or platform.machine()}, torch threads "
          f"{torch.get_num_threads()}, load average {os.getloadavg()}")
    train = rv.data.load("fashion-mnist", "train", n=3000, seed=0)
    test = rv.data.load("fashion-mnist", "test", n=1000, seed=0)
    model, what = _model(train)
    print(f"model: {what}")

    t = time.perf_counter()
    ex = rv.widgets.LatentExplorer(model, test, eps=0.1, steps=10, n_map=500, n_adv=100)
    ex.ui  # build the front end once (plotly import, first t-SNE map)
    print(f"latent explorer: first map + front end {time.perf_counter() - t:.1f} s (once)")
    new = []
    for eps in (0.02, 0.05, 0.08, 0.12, 0.15, 0.2):
        ex._ui["eps"].value = eps  # as the slider does
        new.append(ex.latency_s)
    _report("latent explorer, eps (PGD-10, 100 points)", new)
    fgsm = []
    ex.attack = "FGSM"
    for eps in (0.02, 0.05, 0.08, 0.12):
        ex._ui["eps"].value = eps
        fgsm.append(ex.latency_s)
    _report("latent explorer, eps (FGSM, 100 points)", fgsm)
    cached = []
    ex.attack = "PGD"
    for eps in (0.02, 0.05, 0.08):
        ex._ui["eps"].value = eps
        cached.append(ex.latency_s)
    _report("latent explorer, revisited eps (cached)", cached)
    sel = []
    for i in range(5):
        ex.selected = i
        sel.append(ex.latency_s)
    _report("latent explorer, select a point", sel)

    pg = rv.widgets.AttackPlayground(model, test, eps=0.1, steps=10)
    pg.ui
    times = []
    for i in range(1, 7):
        pg._ui["index"].value = i
        times.append(pg.latency_s)
    for eps in (0.05, 0.15, 0.2):
        pg._ui["eps"].value = eps
        times.append(pg.latency_s)
    _report("attack playground, image / eps (PGD-10)", times)

    feats = {}
    for epoch in range(1, 6):
        f = rv.diagnostics.attacked_features(model, (test.x[:300], test.y[:300]),
                                             rv.attacks.PGD(eps=0.1 * epoch / 5, steps=5))
        feats[epoch] = {"z_nat": f.z_nat, "z_adv": f.z_adv, "y": f.y,
                        "logits_nat": f.logits_nat, "logits_adv": f.logits_adv}
    t = time.perf_counter()
    rp = rv.widgets.TrainingReplay(feats)
    rp.ui
    print(f"training replay: 5 maps of 600 points {time.perf_counter() - t:.1f} s (once)")
    times = []
    for epoch in (1, 3, 2, 5, 4):
        rp._ui["epoch"].value = epoch
        times.append(rp.latency_s)
    _report("training replay, epoch slider", times)
    if hasattr(rv.diagnostics, "feature_inversion"):
        try:
            robust = rv.zoo.load("pgd_at")
        except Exception:  # noqa: BLE001 - no zoo: the same model twice
            robust = model
        iv = rv.widgets.InversionExplorer({"NAT": model, "PGD-AT": robust}, test.x[:8])
        iv.ui
        times = []
        for neuron in (1, 2, 3, 4, 5):
            iv._ui["neuron"].value = neuron
            times.append(iv.latency_s)
        for seed in (1, 2, 3):
            iv._ui["seed"].value = seed
            times.append(iv.latency_s)
        _report("inversion explorer, neuron / seed (2 models)", times)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
