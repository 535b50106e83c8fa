"""Training throughput: PGD-AT through robustviz.train.Trainer vs (k+1) plain training steps.

A PGD-k adversarial training step costs k input-gradient passes plus one training step, so
its floor is about (k + 1) x a plain training step (forward, backward, optimizer step). This
script measures, in one run and on the same model, batches and precision:

- the plain step, in a bare loop (no trainer);
- NAT through the Trainer (the loop's own overhead);
- PGD-AT (PGD-k, Linf) through the Trainer,

and prints images/s and the ratio  t(PGD-AT step) / ((k + 1) * t(plain step))  (target
<= 1.15), in fp32 and with bf16 autocast. Timings on a shared CPU are noisy: the three
measurements are interleaved ``--repeats`` times; each repeat gives its own ratios, and the
table reports their median with the range over repeats (min-max), so a reader sees whether
the ratio is stable (a wide range means a loaded machine or too short a run: raise
``--batches``).

    python benchmarks/train.py                       # Fashion-MNIST (digits if missing), TinyCNN
    python benchmarks/train.py --threads 1 --results benchmarks/RESULTS.md   # update that section
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F

import robustviz as rv
from _results import write_section  # noqa: E402  (this folder is on sys.path when run as a script)

SECTION = "## Training throughput (`benchmarks/train.py`)"
START, END = "<!-- train:start -->", "<!-- train:end -->"


def plain_step_time(model, batches, bf16: bool, device) -> float:
    """Seconds per plain training step (forward, CE, backward, SGD step): one pass over
    ``batches``, mean per batch (the same clock as the Trainer's epoch time)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    t0 = time.perf_counter()
    for x, y in batches:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / len(batches)


def trainer_step_time(model_fn, train, defense, bf16: bool, batch_size: int, device) -> float:
    """Seconds per step of the second of two Trainer epochs (the epoch's own clock: setup and
    the first, warm-up epoch excluded)."""
    trainer = rv.train.Trainer(defense=defense, epochs=2, lr=0.01, batch_size=batch_size, bf16=bf16,
                               schedule="constant", val_attack=None, progress=False, device=device)
    trainer.fit(model_fn(), train)
    n_steps = -(-len(train) // batch_size)
    return trainer.history_[-1]["time_s"] / n_steps


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--model", default="tinycnn")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--batches", type=int, default=20, help="batches per timed epoch")
    p.add_argument("--steps", type=int, default=5, help="PGD steps k")
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--repeats", type=int, default=5, help="interleaved repeats; medians are reported")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (1 on a shared, busy CPU)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--results", help="markdown file whose training section is (re)written")
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"],
                   help="fp32 and/or bf16 autocast (bf16 is emulated, several times slower, on CPUs "
                        "without AVX512-BF16/AMX)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    name = args.dataset if rv.data.available(args.dataset) else "digits"
    n = args.batch_size * args.batches
    full = rv.data.load(name, "train")
    train = full.subset(torch.arange(min(n, len(full))))
    k = args.steps

    def model_fn():
        return rv.models.build(args.model, num_classes=train.num_classes, in_channels=train.shape[0],
                               input_size=tuple(train.shape[1:]), mean=train.mean, std=train.std).to(device)

    loader = rv.data.TensorLoader(train, batch_size=args.batch_size, shuffle=False, device=device)
    batches = list(loader)
    nat = rv.defenses.build({"name": "nat"})
    pgd_at = rv.defenses.build({"name": "pgd_at", "eps": args.eps, "step_size": args.eps / 4, "steps": k,
                                "random_start": "uniform"})
    rows = []
    for bf16 in (p == "bf16" for p in args.precisions):
        model = model_fn()
        plain_step_time(model, batches[:2], bf16, device)                       # warm-up
        t_plain, t_nat, t_at = [], [], []
        for _ in range(args.repeats):   # interleaved, so a change of load hits all three alike
            t_plain.append(plain_step_time(model, batches, bf16, device))
            t_nat.append(trainer_step_time(model_fn, train, nat, bf16, args.batch_size, device))
            t_at.append(trainer_step_time(model_fn, train, pgd_at, bf16, args.batch_size, device))
        tp, tn, ta = (statistics.median(t) for t in (t_plain, t_nat, t_at))
        nat_r = [n_ / p_ for n_, p_ in zip(t_nat, t_plain)]            # per repeat
        at_r = [a_ / ((k + 1) * p_) for a_, p_ in zip(t_at, t_plain)]
        rows.append({"precision": "bf16" if bf16 else "fp32", "plain_img_s": args.batch_size / tp,
                     "nat_img_s": args.batch_size / tn, "pgd_at_img_s": args.batch_size / ta,
                     "nat_ratio": statistics.median(nat_r), "nat_range": (min(nat_r), max(nat_r)),
                     "ratio": statistics.median(at_r), "ratio_range": (min(at_r), max(at_r))})

    from robustviz._utils import bf16_is_fast

    auto = bf16_is_fast(device)
    by = {r["precision"]: r for r in rows}
    speedup = (by["bf16"]["pgd_at_img_s"] / by["fp32"]["pgd_at_img_s"]
               if len(by) == 2 else float("nan"))
    cpu_name = platform.processor() or platform.machine()
    try:
        cpu_name = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    machine = (f"{cpu_name}, {os.cpu_count()} cores, "
               f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, device {device}, "
               f"load average {os.getloadavg()[0]:.1f} at the end")
    lines = [
        SECTION, "",
        f"Run {time.strftime('%Y-%m-%d %H:%M')}: {name}, {args.model}, batch {args.batch_size}, PGD-{k} "
        f"(Linf, eps {args.eps:g}, step eps/4, uniform start), {len(train)} images per timed epoch, median "
        f"of {args.repeats} interleaved repeats [min-max over repeats]. Machine: {machine}.", "",
        f"Command: `python benchmarks/train.py {' '.join(sys.argv[1:] if argv is None else argv)}`", "",
        "| precision | plain step img/s | NAT (Trainer) img/s | NAT / plain | PGD-AT (Trainer) img/s "
        f"| PGD-AT / (({k}+1) x plain), target <= 1.15 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        nr, ar = r["nat_range"], r["ratio_range"]
        lines.append(f"| {r['precision']} | {r['plain_img_s']:.0f} | {r['nat_img_s']:.0f} "
                     f"| {r['nat_ratio']:.3f} [{nr[0]:.3f}-{nr[1]:.3f}] "
                     f"| {r['pgd_at_img_s']:.0f} | **{r['ratio']:.3f}** [{ar[0]:.3f}-{ar[1]:.3f}] |")
    lines += [
        "",
        "- NAT / plain is the Trainer's own per-step cost (defense call and input checks, loss "
        "logging, schedule, progress) over a bare forward/backward/step loop.",
        f"- PGD-AT / (({k}+1) x plain) can fall below 1: the {k} attack passes take gradients with "
        "respect to the input only (parameters frozen), cheaper than a full training step.",
        (f"- bf16 / fp32 PGD-AT throughput on this machine: **{speedup:.2f}x**. "
         if speedup == speedup else "- bf16 / fp32: not measured (one precision run). ")
        + "`bf16=\"auto\"` "
        f"(the Trainer's and the demo's default) chooses **{'bf16' if auto else 'fp32'}** here: bf16 "
        "only where the hardware has native bf16 (CUDA, or a CPU with AVX512-BF16/AMX); elsewhere "
        "PyTorch emulates it and it is several times slower than fp32.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    print(f"bf16/fp32 step-throughput ratio {speedup:.2f}x (nan: one precision); bf16='auto' chose {'bf16' if auto else 'fp32'} "
          f"on {device} ({cpu_name if device.type == 'cpu' else torch.cuda.get_device_name(device)})")
    if args.results:
        write_section(f"{START}\n{text}{END}\n", START, END, args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
