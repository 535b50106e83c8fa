"""AutoAttack cross-check: robustviz's AutoAttack against its authors' implementation.

Run from the repository root (the authors' package is ``pyautoattack``, a dev extra)::

    .venv/bin/python benchmarks/autoattack.py                       # the five zoo models, n 500
    .venv/bin/python benchmarks/autoattack.py --models pgd_at trades --n 500 -j 2
    .venv/bin/python benchmarks/autoattack.py --table              # print the table only
    .venv/bin/python benchmarks/autoattack.py --dataset digits --models nat pgd_at trades \
        --parts robustviz --n 359 --write-zoo                     # the digits zoo (its 359 test images)

For each zoo model, on the first ``n`` images of the zoo's stratified Fashion-MNIST test
subset (the images its ``eval.json`` AutoAttack number was measured on), at eps 0.1:

- ``before``: the zoo record's AutoAttack number (torchattacks' own ``AutoAttack``, 10
  iterations per attack and a rescaled Square schedule), read from ``eval.json``
  (``--parts ta10`` reruns it here, for its cost on this machine);
- ``now``: ``rv.attacks.AutoAttack(version="standard")`` (the authors' settings);
- ``reference``: the authors' ``AutoAttack(version="standard").run_standard_evaluation``;
- ``PGD-20``: step 0.01, uniform start (the zoo's record protocol);
- ``worst-of``: the per-example worst case over FGSM, PGD-20, PGD-20 on the CW margin and
  AutoAttack (``EvalResult.worst_case``), with which attack broke how many examples.

Models with a non-differentiable test-time path (reverse attention) are attacked on the
model and on their surrogate by both implementations (``Adaptive``), worst case per
example. Each (model, part) runs in its own process with one torch thread and writes
``runs/bench/autoattack/<model>_<part>.json`` (kept: a rerun skips what is there); ``-j``
runs that many at once. Times are wall seconds on this machine, printed with its CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import _crosscheck  # noqa: F401  torchattacks beside the environment

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "runs" / "bench" / "autoattack"
MODELS = ("pgd_at", "trades", "mart", "fgsm_rs", "trades_ancra")
EPS = 0.1
PARTS = ("reference", "robustviz", "ta10")


def machine() -> str:
    """The CPU (or GPU) with its ISA and threads, as evaluation cards name it, and the load."""
    from robustviz._utils import device_name

    return (f"{device_name('cpu')} per process, {os.cpu_count()} cores, load avg "
            f"{os.getloadavg()[0]:.2f} at the end")


#: the data set of the zoo models measured (``--dataset``); records of other data sets than
#: Fashion-MNIST are named ``<dataset>_<model>_<part>_n<n>.json``
DATASET = "fashion-mnist"


def images(n: int):
    """The first ``n`` images of the zoo's stratified test subset (digits: its whole test
    split, 359 images, when ``n`` is larger)."""
    from robustviz import zoo

    sub = zoo.eval_subset(DATASET, 500 if n <= 500 else n, seed=0)
    return sub.x[:n], sub.y[:n]


def _stem(name: str, part: str, n: int) -> str:
    prefix = "" if DATASET == "fashion-mnist" else f"{DATASET}_"
    return f"{prefix}{name}_{part}_n{n}"


def run_reference(model, x, y) -> tuple[list[bool], dict]:
    """The authors' AutoAttack standard; per-example robustness (worst case over the
    model and its surrogate when it has one) and the robust accuracy after each attack."""
    import logging

    import torch
    from pyautoattack import AutoAttack as Reference

    from robustviz import attacks

    logging.getLogger("auto-attack").setLevel(logging.WARNING)
    robust = None
    stages = {}
    for which, net in (("model", model), ("surrogate", attacks.surrogate_of(model))):
        if net is None:
            continue
        net.eval()
        aa = Reference(net, eps=EPS, norm="Linf", version="standard", device="cpu", seed=0)
        aa.verbose = False
        x_adv, _ = aa.run_standard_evaluation(x, y, batch_size=500)
        with torch.no_grad():
            ok = model(x_adv).argmax(1) == y        # judged on the model itself
        robust = ok if robust is None else robust & ok
        stages[which] = float(ok.float().mean())
    return robust.tolist(), stages


def run_ta10(model, x, y) -> tuple[list[bool], dict]:
    """What robustviz ran before: torchattacks' own ``AutoAttack`` (10 iterations per attack,
    Square's rescaled schedule), for its cost and accuracy on this machine."""
    import torch
    import torchattacks

    from robustviz import attacks

    robust = None
    for net in (model, attacks.surrogate_of(model)):
        if net is None:
            continue
        net.eval()
        x_adv = torchattacks.AutoAttack(net, norm="Linf", eps=EPS, version="standard",
                                        n_classes=10, seed=0)(x, y)
        with torch.no_grad():
            ok = model(x_adv).argmax(1) == y
        robust = ok if robust is None else robust & ok
    return robust.tolist(), {"backend": f"torchattacks {torchattacks.__version__} AutoAttack "
                                        f"(its defaults: 10 iterations)"}


def run_robustviz(model, x, y) -> dict:
    from robustviz import attacks, evaluate

    def wrap(a):
        return attacks.Adaptive(attack=a) if attacks.surrogate_of(model) is not None else a

    atks = {"fgsm": wrap(attacks.FGSM(eps=EPS)),
            "pgd20": wrap(attacks.PGD(eps=EPS, step_size=0.01, steps=20)),
            "pgd20_cw": wrap(attacks.PGD(eps=EPS, step_size=0.01, steps=20, loss="cw")),
            "autoattack": wrap(attacks.AutoAttack(eps=EPS, version="standard"))}
    res = evaluate.evaluate(model, (x, y), atks, topk=(1,), seed=0, batch_size=500,
                            progress=False)
    worst = res.worst_case()
    return {"clean": res.clean[1], "acc": {k: res.robust(k) for k in atks},
            "attack_seconds": res.seconds, "worst": worst.accuracy, "worst_breakdown": worst.breakdown,
            "breakdown": res.breakdown,
            "correct": {k: res.correct_top1(k).tolist() for k in ("clean", *atks)},
            "card": res.card()}


def one(name: str, part: str, n: int) -> None:
    import torch

    from robustviz import zoo

    torch.set_num_threads(1)
    path = OUT / f"{_stem(name, part, n)}.json"
    model = zoo.load(name, DATASET).eval()
    x, y = images(n)
    n = len(y)
    t = time.time()
    if part == "reference":
        robust, stages = run_reference(model, x, y)
        rec = {"acc": sum(robust) / n, "robust": robust, "stages": stages}
        import pyautoattack

        rec["backend"] = f"pyautoattack {pyautoattack.__version__} (Croce & Hein's code)"
    elif part == "ta10":
        robust, extra = run_ta10(model, x, y)
        rec = {"acc": sum(robust) / n, "robust": robust, **extra}
    else:
        rec = run_robustviz(model, x, y)
    rec.update(model=name, dataset=DATASET, part=part, n=n, seconds=round(time.time() - t, 1), machine=machine(),
               torch=torch.__version__)
    OUT.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec, indent=1) + "\n")
    acc = rec["acc"]["autoattack"] if isinstance(rec["acc"], dict) else rec["acc"]
    print(f"[{name} {part}] AutoAttack {100 * acc:.1f} in {rec['seconds']} s", flush=True)


def load(name: str, part: str, n: int) -> dict | None:
    p = OUT / f"{_stem(name, part, n)}.json"
    return json.loads(p.read_text()) if p.is_file() else None


def table(models, n: int) -> str:
    from robustviz import zoo

    head = ["model", "AA before (ta 10 it.)", "AA now (rv)", "reference (authors)",
            "now - ref", "agree/n", "PGD-20", "worst-of", "broken by (worst-of)",
            "rv s/1k", "ref s/1k"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in models:
        ev = zoo.info(name, DATASET)["eval"]
        before = ev.get("autoattack_ta10") or ev.get("autoattack", {})
        b = (f"{100 * before['acc']:.1f}" if before.get("acc") is not None
             and before.get("n") == n and not zoo.aa_reference(before) else "-")
        ta10 = load(name, "ta10", n)
        if ta10:
            b += f" (here: {100 * ta10['acc']:.1f}, {1000 * ta10['seconds'] / n:.0f} s/1k)"
        rv, ref = load(name, "robustviz", n), load(name, "reference", n)
        row = [f"`{name}`", b]
        if rv:
            row.append(f"{100 * rv['acc']['autoattack']:.1f}")
        else:
            row.append("-")
        row.append(f"{100 * ref['acc']:.1f}" if ref else "-")
        if rv and ref:
            mine = [c and a for c, a in zip(rv["correct"]["clean"], rv["correct"]["autoattack"])]
            agree = sum(m == r for m, r in zip(mine, ref["robust"]))
            row += [f"{100 * (rv['acc']['autoattack'] - ref['acc']):+.1f}", f"{agree}/{n}"]
        else:
            row += ["-", "-"]
        if rv:
            bd = ", ".join(f"{k} {v}" for k, v in rv["worst_breakdown"].items() if v)
            # AutoAttack's own seconds; older records kept only the wall time of all four
            # attacks (FGSM, PGD-20, PGD-20 CW, AutoAttack), an upper bound marked "<="
            aa_s = rv.get("attack_seconds", {}).get("autoattack")
            row += [f"{100 * rv['acc']['pgd20']:.1f}", f"{100 * rv['worst']:.1f}", bd or "-",
                    f"{1000 * aa_s / n:.0f}" if aa_s else f"<= {1000 * rv['seconds'] / n:.0f}"]
        else:
            row += ["-"] * 4
        row.append(f"{1000 * ref['seconds'] / n:.0f}" if ref else "-")
        lines.append("| " + " | ".join(row) + " |")
    any_rec = next((r for nm in models for p in PARTS if (r := load(nm, p, n))), None)
    if any_rec:
        lines.append(f"\n{any_rec['n']} {DATASET} test images (zoo stratified subset, first n), "
                     f"Linf eps {EPS}; machine: {any_rec['machine']}; torch {any_rec['torch']}.")
    return "\n".join(lines)


def write_zoo(models, n: int) -> None:
    """Put the robustviz part's AutoAttack (the authors' settings) into each model's zoo
    record (``eval.json``: ``autoattack`` and ``strongest``; the torchattacks 10-iteration
    number it replaces is kept as ``autoattack_ta10``) and rewrite the zoo's manifest."""
    from robustviz import runs, zoo

    with zoo.maintenance():    # elsewhere the zoo is read-only
        _write_zoo(models, n, runs, zoo)
    zoo.write_manifest()


def _write_zoo(models, n, runs, zoo) -> None:
    for name in models:
        rv = load(name, "robustviz", n)
        if rv is None:
            print(f"[{name}] no robustviz result at n {n}; record unchanged")
            continue
        path = zoo.run_dir(name, DATASET) / "eval.json"
        rec = json.loads(path.read_text())
        ev = rec["eval"]
        old = ev.get("autoattack", {})
        if not zoo.aa_reference(old):
            ev["autoattack_ta10"] = old
        aa = rv["card"]["attacks"]["autoattack"]
        ev["autoattack"] = {"n": n, "acc": rv["acc"]["autoattack"], "version": "standard",
                            "backend": (aa.get("wrapped") or aa).get("backend"),
                            "breakdown": rv["breakdown"].get("autoattack"),
                            "seconds": rv.get("attack_seconds", {}).get("autoattack", rv["seconds"]),
                            "machine": rv["machine"],
                            "worst_case": {"acc": rv["worst"], "attacks": list(rv["worst_breakdown"]),
                                           "breakdown": rv["worst_breakdown"]},
                            "card": rv["card"]}
        ref = load(name, "reference", n)
        if ref is not None:
            ev["autoattack"]["reference"] = {"acc": ref["acc"], "backend": ref["backend"]}
        ev["strongest"] = min(v for v in (ev["fgsm"], ev["pgd20"], ev.get("adaptive"),
                                          ev["autoattack"]["acc"]) if v is not None)
        runs.atomic_write_text(path, json.dumps(rec, indent=1, sort_keys=True) + "\n")
        print(f"[{name}] AutoAttack {100 * old.get('acc', float('nan')):.1f} -> "
              f"{100 * ev['autoattack']['acc']:.1f} (n {n})")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--dataset", default="fashion-mnist", help="the zoo data set (fashion-mnist, digits)")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--parts", nargs="+", default=["reference", "robustviz"], choices=PARTS,
                   help="reference, robustviz, and ta10 (torchattacks' own AutoAttack, what "
                        "robustviz ran before; for its cost on this machine)")
    p.add_argument("-j", "--jobs", type=int, default=1)
    p.add_argument("--table", action="store_true", help="only print the table")
    p.add_argument("--write-zoo", action="store_true",
                   help="put the measured AutoAttack numbers into the zoo's records")
    p.add_argument("--one", nargs=2, metavar=("MODEL", "PART"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    global DATASET
    DATASET = args.dataset
    if args.one:
        one(args.one[0], args.one[1], args.n)
        return 0
    if not args.table:
        todo = [(m, part) for m in args.models for part in args.parts if load(m, part, args.n) is None]
        running: list = []
        for m, part in todo:
            while len(running) >= args.jobs:
                running = [r for r in running if r.poll() is None]
                time.sleep(2)
            running.append(subprocess.Popen([sys.executable, __file__, "--one", m, part,
                                             "--n", str(args.n), "--dataset", DATASET]))
        for r in running:
            r.wait()
    print(table(args.models, args.n))
    if args.write_zoo:
        write_zoo(args.models, args.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
