#!/usr/bin/env python
"""Train, evaluate and checksum the teaching model zoo (data/zoo/<dataset>/<name>/).

One process per model, so the work spreads over cores or machines::

    python scripts/train_zoo.py                                  # every model, one after another
    python scripts/train_zoo.py -j 4 --device cuda               # four processes at a time on a GPU
    python scripts/train_zoo.py --dataset digits --models nat    # one model
    python scripts/train_zoo.py --check                          # (re)write the CPU check records
    python scripts/train_zoo.py --manifest                       # rewrite data/zoo/MANIFEST.json

Each model is ``robustviz train --config configs/zoo/<dataset>/<name>.yaml`` (seeded; an
interrupted run is resumed, a finished one skipped), or, for a config with a ``pipeline``
(robust pretraining followed by finetuning), its CLI commands in order, each skipped when
its run already ended and the last one writing the zoo entry; then evaluated on a fixed, recorded,
class-stratified test subset: clean, FGSM, PGD-20 (eps 0.1, step 0.01, uniform random
start), the adaptive attack (model + differentiable surrogate) for models that need it, and
AutoAttack (standard) on a smaller subset. ``eval.json`` holds the record, the training time
and the machine. The ``check`` block of the record (clean and PGD-20 on 500 test images,
computed on a CPU with one thread, with which images each got right) is what the test suite
reproduces.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs" / "zoo"
EPS = 0.1
PGD_STEP = 0.01
EVAL_N, AA_N, CHECK_N = 2000, 500, 500


def machine(device: str) -> str:
    """The hardware a step ran on, in words."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name(torch.device(device))}"
    name, flags = platform.processor() or "CPU", []
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name") and name in ("", "CPU", platform.processor()):
                    name = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    break
    except OSError:
        pass
    isa = "AMX" if "amx_bf16" in flags else "AVX512-BF16" if "avx512_bf16" in flags else \
        "AVX2" if "avx2" in flags else "no AVX2"
    return f"CPU {name} ({os.cpu_count()} cores, {isa}, {torch.get_num_threads()} threads)"


def all_models(dataset: str | None = None) -> list[tuple[str, str]]:
    out = []
    for ds_dir in sorted(CONFIGS.iterdir()):
        if ds_dir.is_dir() and (dataset is None or ds_dir.name == dataset):
            out += [(ds_dir.name, p.stem) for p in sorted(ds_dir.glob("*.yaml"))]
    return out


def _finished(run: Path, epochs: int) -> bool:
    from robustviz import runs

    return (run / "weights.safetensors").is_file() and any(
        r.get("epoch") == epochs for r in runs.read_metrics(run, kind="epoch"))


def _ended(run: Path) -> bool:
    from robustviz import runs

    return (run / "weights.safetensors").is_file() and bool(runs.read_metrics(run, kind="final"))


def run_pipeline(cfg: dict, run: Path, *, device: str, progress: bool) -> float:
    """Run the CLI commands of a ``pipeline`` config (``{out}`` is the zoo entry's folder),
    skipping a stage whose ``--out`` run already ended. Returns the seconds of all stages,
    each by its own clock (``pretrain_seconds``, ``finetune_seconds`` of its final record),
    kept stages included."""
    import shlex
    import shutil

    from robustviz import runs
    from robustviz.cli import main as cli

    seconds = 0.0
    for line in cfg["pipeline"]:
        args = shlex.split(line.replace("{out}", str(run)))
        out = Path(args[args.index("--out") + 1])
        if _ended(out):
            print(f"[pipeline] kept {out}", flush=True)
        else:
            if out.exists():   # an interrupted stage starts again (pretraining runs are short)
                shutil.rmtree(out)
            args += ["--device", device] + ([] if progress else ["--no-progress"])
            t = time.time()
            print(f"[pipeline] robustviz {' '.join(args)}", flush=True)
            code = cli(args)
            if code:
                raise SystemExit(f"[pipeline] robustviz {args[0]} failed (exit {code})")
            print(f"[pipeline] {out}: {time.time() - t:.0f} s", flush=True)
        final = runs.read_metrics(out, kind="final")[-1]
        seconds += sum(v for k, v in final.items() if k.endswith("_seconds"))
    return seconds


def attacks_for(model):
    from robustviz import attacks

    pgd = attacks.PGD(eps=EPS, step_size=PGD_STEP, steps=20, random_start="uniform")
    out = {"fgsm": attacks.FGSM(eps=EPS), "pgd20": pgd}
    if attacks.surrogate_of(model) is not None:
        out["adaptive"] = attacks.Adaptive(attack=pgd)
    return out


def check_record(model, dataset: str, n: int = CHECK_N) -> dict:
    """Clean and PGD-20 accuracy on ``n`` fixed test images, on the CPU with one thread:
    the numbers tests/test_zoo.py reproduces."""
    import torch

    from robustviz import attacks, evaluate, zoo

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sub = zoo.eval_subset(dataset, n, seed=0)
        atk = {"pgd20": attacks.PGD(eps=EPS, step_size=PGD_STEP, steps=20, random_start="uniform")}
        res = evaluate.evaluate(model.cpu().eval(), sub, atk, topk=(1,), seed=0, progress=False)
        where = machine("cpu")                                  # with the one thread it ran on
    finally:
        torch.set_num_threads(threads)
    # which images are correct, clean and under PGD-20 (in subset order, as hex of the bits
    # packed big-endian): the test suite reproduces the first ones image by image, a fifth of
    # the cost of the whole subset, with the same noise (each batch draws its random start
    # in order from one seeded stream)
    bits = {k: zoo.pack_bits(res.correct[k][:, 0]) for k in ("clean", "pgd20")}
    return {"n": res.n, "seed": 0, "clean": res.clean[1], "pgd20": res.robust("pgd20"),
            "correct": bits, "machine": where}


def evaluate_model(model, dataset: str, device: str, *, n: int, aa_n: int) -> dict:
    import torch

    from robustviz import attacks, evaluate, zoo

    model = model.to(device).eval()
    sub = zoo.eval_subset(dataset, n, seed=0)
    t = time.time()
    res = evaluate.evaluate(model, sub, attacks_for(model), topk=(1,), seed=0, progress=False,
                            selection="class-stratified subset of the test split (seed 0)")
    rec = {"eps": EPS, "norm": "linf", "n": res.n, "subset": {"split": "test", "n": res.n, "seed": 0,
                                                               "stratified": True},
           "clean": res.clean[1], "fgsm": res.robust("fgsm"), "pgd20": res.robust("pgd20"),
           "adaptive": res.robust("adaptive") if "adaptive" in res.accuracy else None,
           "attacks": {k: v for k, v in res.attacks.items()},
           "pgd": {"steps": 20, "step_size": PGD_STEP, "random_start": "uniform", "seed": 0},
           "worst_case": res.worst_case().to_dict(), "card": res.card()}
    # AutoAttack (standard) on the first aa_n images of a stratified subset; for reverse
    # attention it attacks the model (a non-differentiable argmax path) AND its surrogate,
    # keeping the worst case per example, like the adaptive PGD
    aa_sub = zoo.eval_subset(dataset, aa_n, seed=0)
    aa = attacks.AutoAttack(eps=EPS, version="standard")
    aa_atk = attacks.Adaptive(attack=aa) if attacks.surrogate_of(model) is not None else aa
    try:
        r = evaluate.evaluate(model, aa_sub, {"autoattack": aa_atk}, topk=(1,), seed=0, progress=False,
                              selection=f"the first {aa_n} of the zoo's class-stratified test "
                                        f"subset (seed 0)")
        rec["autoattack"] = {"n": r.n, "acc": r.robust("autoattack"), "version": "standard",
                             "backend": aa.describe().get("backend", "torchattacks"),
                             "breakdown": r.breakdown.get("autoattack"),
                             "seconds": round(r.seconds["autoattack"], 1), "card": r.card()}
    except ImportError as err:
        rec["autoattack"] = {"n": 0, "acc": None, "error": str(err)}
    rec["strongest"] = min(v for v in (rec["fgsm"], rec["pgd20"], rec["adaptive"],
                                       rec["autoattack"].get("acc")) if v is not None)
    rec["eval_seconds"] = round(time.time() - t, 1)
    rec["eval_machine"] = machine(device)
    if device == "cpu":
        rec_check = check_record(model, dataset)
    else:
        rec_check = None
    model.to("cpu")
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return rec, rec_check


def train_one(dataset: str, name: str, *, out: Path, device: str, n: int, aa_n: int,
              progress: bool) -> dict:
    """Train (or resume, or skip) one zoo model, evaluate it, write eval.json."""
    import yaml

    from robustviz import runs
    from robustviz.cli import main as cli

    cfg_path = CONFIGS / dataset / f"{name}.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    run = out / dataset / name
    rec_path = run / "eval.json"
    old = json.loads(rec_path.read_text()) if rec_path.is_file() else {}
    if "pipeline" in cfg:
        if not _ended(run):
            print(f"[{dataset}/{name}] pipeline on {machine(device)}", flush=True)
            seconds = run_pipeline(cfg, run, device=device, progress=progress)
            old = {"train_seconds": round(seconds, 1), "device": machine(device),
                   "device_note": "train_seconds: the sum of the pipeline stages' own clocks "
                                  "(pretraining runs, then finetuning with its evaluation)"}
        epochs = len(runs.read_metrics(run, kind="epoch"))
    else:
        epochs = int(cfg["train"]["epochs"])
    if "pipeline" not in cfg and not _finished(run, epochs):
        resume = (run / "config.json").is_file()
        args = ["train", "--config", str(cfg_path), "--out", str(run), "--device", device]
        if resume:
            args.append("--resume")
        if not progress:
            args.append("--no-progress")
        t = time.time()
        print(f"[{dataset}/{name}] {'resuming' if resume else 'training'} on {machine(device)}", flush=True)
        code = cli(args)
        if code:
            raise SystemExit(f"[{dataset}/{name}] robustviz train failed (exit {code})")
        seconds = time.time() - t + (old.get("train_seconds") or 0 if resume else 0)
        old = {"train_seconds": round(seconds, 1), "device": machine(device)}
    if not old.get("train_seconds"):
        # trained but never evaluated (interrupted after training): the epochs' own clocks
        epochs_rec = runs.read_metrics(run, kind="epoch")
        old = {"train_seconds": round(sum(r.get("time_s", 0.0) for r in epochs_rec), 1),
               "device": old.get("device") or _device_from_log(run, dataset, name)}
    if not rec_path.is_file():
        runs.atomic_write_text(rec_path, json.dumps({"name": name, "dataset": dataset, **old},
                                                    indent=1, sort_keys=True) + "\n")
    state = run / "state.safetensors"
    if state.exists():  # the optimiser state is only needed to resume; the zoo ships weights
        state.unlink()
    # an evaluation record of the same test subset (n caps at the split's size) is kept
    from robustviz import zoo

    if old.get("eval", {}).get("autoattack") and old["eval"].get("n") == len(zoo.eval_subset(dataset, n)):
        print(f"[{dataset}/{name}] already evaluated", flush=True)
        return old
    model = runs.load_run(run).model
    ev, chk = evaluate_model(model, dataset, device, n=n, aa_n=aa_n)
    record = {"name": name, "dataset": dataset, "config": f"configs/zoo/{dataset}/{name}.yaml",
              "train_seconds": old.get("train_seconds"), "device": old.get("device"),
              **({"device_note": old["device_note"]} if old.get("device_note") else {}),
              "epochs": epochs, "torch": __import__("torch").__version__, "eval": ev,
              "check": chk or old.get("check")}
    runs.atomic_write_text(rec_path, json.dumps(record, indent=1, sort_keys=True) + "\n")
    e = ev
    print(f"[{dataset}/{name}] clean {100 * e['clean']:.1f}  FGSM {100 * e['fgsm']:.1f}  PGD-20 "
          f"{100 * e['pgd20']:.1f}" + (f"  adaptive {100 * e['adaptive']:.1f}" if e["adaptive"] is not None else "")
          + (f"  AA {100 * e['autoattack']['acc']:.1f} (n {e['autoattack']['n']})" if e["autoattack"].get("acc") is not None else "")
          + f"  train {record['train_seconds']} s on {record['device']}", flush=True)
    return record


def _device_from_log(run: Path, dataset: str, name: str) -> str | None:
    log = Path("runs") / "zoo_logs" / f"{dataset}_{name}.log"
    if log.is_file():
        for line in log.read_text().splitlines():
            if " on " in line and ("training on" in line or "resuming on" in line):
                return line.split(" on ", 1)[1].strip()
    return None


def write_checks(out: Path, models) -> None:
    """Recompute the CPU check block of each record (after training elsewhere, e.g. a GPU)."""
    from robustviz import runs

    for dataset, name in models:
        rec_path = out / dataset / name / "eval.json"
        if not rec_path.is_file():
            print(f"[{dataset}/{name}] no eval.json, skipped")
            continue
        rec = json.loads(rec_path.read_text())
        rec["check"] = check_record(runs.load_run(out / dataset / name).model, dataset)
        runs.atomic_write_text(rec_path, json.dumps(rec, indent=1, sort_keys=True) + "\n")
        c = rec["check"]
        print(f"[{dataset}/{name}] check on {c['n']}: clean {100 * c['clean']:.1f}  PGD-20 {100 * c['pgd20']:.1f}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", help="only this data set (default: all under configs/zoo/)")
    p.add_argument("--models", nargs="+", help="only these model names")
    p.add_argument("--out", default=str(ROOT / "data" / "zoo"), help="zoo folder (default data/zoo)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    p.add_argument("-j", "--jobs", type=int, default=1, help="models trained at once, one process each")
    p.add_argument("--n", type=int, default=EVAL_N, help="test images of the evaluation record")
    p.add_argument("--aa-n", type=int, default=AA_N, help="test images for AutoAttack")
    p.add_argument("--check", action="store_true", help="only (re)write the CPU check records")
    p.add_argument("--manifest", action="store_true", help="only rewrite MANIFEST.json")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import torch

    from robustviz import zoo

    out = Path(args.out)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    models = [(d, m) for d, m in all_models(args.dataset) if not args.models or m in args.models]
    if not models:
        p.error(f"no zoo configs match; available: {all_models()}")
    if args.manifest:
        print(zoo.write_manifest(out))
        return 0
    if args.check:
        write_checks(out, models)
        zoo.write_manifest(out)
        return 0
    if args.one or args.jobs <= 1 or len(models) == 1:
        for d, m in models:
            train_one(d, m, out=out, device=device, n=args.n, aa_n=args.aa_n, progress=sys.stdout.isatty())
    else:
        logs = Path("runs") / "zoo_logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        if device == "cpu":
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // args.jobs))
        pending, running, failed = list(models), [], []
        while pending or running:
            while pending and len(running) < args.jobs:
                d, m = pending.pop(0)
                log = open(logs / f"{d}_{m}.log", "w")
                cmd = [sys.executable, __file__, "--one", "--dataset", d, "--models", m, "--out", str(out),
                       "--device", device, "--n", str(args.n), "--aa-n", str(args.aa_n)]
                running.append((d, m, log, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)))
            time.sleep(2)
            for item in list(running):
                d, m, log, proc = item
                if proc.poll() is not None:
                    running.remove(item)
                    log.close()
                    tail = (logs / f"{d}_{m}.log").read_text().strip().splitlines()[-1:]
                    print(f"[{d}/{m}] exit {proc.returncode}: {tail[0] if tail else ''}", flush=True)
                    if proc.returncode:
                        failed.append(f"{d}/{m}")
        if failed:
            print(f"failed: {failed} (logs in {logs})")
            zoo.write_manifest(out)
            return 1
    if not args.one:
        zoo.write_manifest(out)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    from robustviz import zoo as _zoo

    with _zoo.maintenance():   # the one writer of the zoo (elsewhere it is read-only)
        raise SystemExit(main())
