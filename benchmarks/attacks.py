"""Attack benchmarks: robustviz PGD vs torchattacks, loop overhead, bf16 vs fp32.

Run from the repository root::

    .venv/bin/python benchmarks/attacks.py            # about 3-6 minutes on 2 cores
    .venv/bin/python benchmarks/attacks.py --quick    # untrained model, fewer repeats

Prints, for the teaching model (tinycnn on Fashion-MNIST, trained here for 2 epochs on a
10k stratified subset, as in tests/test_attacks.py):

1. PGD-k throughput (images/s) of robustviz and torchattacks.PGD on the same model, batch
   and settings, fp32, and their ratio (target >= 1.0): both return the last iterate
   (robustviz ``keep="last"``); the default ``keep="fooling"`` (which never returns an
   example unfooled once an iterate fooled it) is timed beside them.
2. robustviz PGD-k time / (k x one forward+backward w.r.t. the input) measured in the
   same run (target <= 1.10).
3. bf16-autocast PGD vs fp32 PGD throughput, and the robust-accuracy difference between
   them on 1,000 test images.
4. Peak memory (tracemalloc for Python objects, ru_maxrss for the process) and the
   machine description.

Timings are medians over interleaved repeats (robustviz and torchattacks alternate), so
a load change on a shared machine hits both sides alike.
"""
from __future__ import annotations

import argparse
import datetime
import platform
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
import types

import _crosscheck  # noqa: F401  torchattacks beside the environment

import torch
import torch.nn.functional as F

from robustviz import data, models
from robustviz.attacks import PGD


def machine() -> dict:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        info = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        cpu = info.get("Model name", "?").strip()
        flags = info.get("Flags", "")
    except OSError:
        cpu, flags = platform.processor() or "?", ""
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags.split()]
    try:
        import torchattacks
        ta = torchattacks.__version__
    except ImportError:
        ta = "not installed"
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[:3]
    import os
    return {"cpu": cpu, "cores": os.cpu_count(), "isa": ",".join(isa) or "-",
            "torch": torch.__version__, "torchattacks": ta, "threads": torch.get_num_threads(),
            "python": platform.python_version(), "load_avg_1_5_15": " ".join(load),
            "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M")}


def train_model(quick: bool, weights: str | None = None):
    from pathlib import Path

    from robustviz import runs

    train = data.load("fashion-mnist", "train", n=10_000, seed=0)
    model = models.build("tinycnn", num_classes=10, in_channels=1, mean=train.mean,
                         std=train.std, seed=0)
    if quick:
        return model.eval()
    if weights and Path(weights).is_file():
        return runs.load_weights(weights, model).eval()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = data.TensorLoader(train, batch_size=128, shuffle=True, seed=0)
    model.train()
    for epoch in range(2):
        loader.set_epoch(epoch)
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    if weights:
        runs.save_weights(weights, model)
    return model.eval()


def fwd_bwd(model, x, y):
    """One forward + backward w.r.t. the input (parameters frozen), the unit of PGD."""
    xa = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(xa), y), xa)
    return g


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(fn) -> float:
    """Wall seconds of ``fn()``, waiting for queued CUDA work on both sides of the clock."""
    _sync()
    t0 = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - t0


def breakdown(model, x, y, atk) -> dict:
    """Time one attack call split into model forwards (in the steps / the final check),
    input-gradient backwards and everything else, by wrapping the two entry points."""
    import robustviz.attacks._base as base

    calls, bwd = [], []
    orig_call, orig_grad = base._Forward.__call__, torch.autograd.grad

    def call(self, xs, runner=None):
        t = time.perf_counter()
        out = orig_call(self, xs, runner)
        calls.append((xs.shape[0], torch.is_grad_enabled(), time.perf_counter() - t))
        return out

    def grad(*a, **kw):
        t = time.perf_counter()
        out = orig_grad(*a, **kw)
        bwd.append(time.perf_counter() - t)
        return out

    base._Forward.__call__, torch.autograd.grad = call, grad
    try:
        total = timed(lambda: atk(model, x, y, generator=torch.Generator().manual_seed(0)))
    finally:
        base._Forward.__call__, torch.autograd.grad = orig_call, orig_grad
    steps_fwd = sum(t for _, g, t in calls if g)
    final = [(n, t) for n, g, t in calls if not g]
    final_fwd = sum(t for _, t in final)
    return {"total": total, "steps_fwd": steps_fwd, "bwd": sum(bwd), "final_fwd": final_fwd,
            "final_n": sum(n for n, _ in final),
            "other": total - steps_fwd - sum(bwd) - final_fwd}


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--n-acc", type=int, default=1000)
    p.add_argument("--quick", action="store_true", help="untrained model, 2 repeats")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="cpu or cuda (default: cuda when present)")
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="safetensors cache of the trained model (loaded if it exists, else written)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.repeats = 2
    tracemalloc.start()
    m = machine()
    print("# robustviz attack benchmark")
    print("machine: " + "; ".join(f"{k} {v}" for k, v in m.items()))
    t0 = time.perf_counter()
    model = train_model(args.quick, args.weights)
    device = torch.device(args.device)
    model = model.to(device)
    if device.type == "cuda":
        print(f"device: {torch.cuda.get_device_name(device)}")
    for q in model.parameters():
        q.requires_grad_(False)
    test = data.load("fashion-mnist", "test", n=max(args.n_acc, args.batch), seed=0)
    test = types.SimpleNamespace(x=test.x.to(device), y=test.y.to(device))
    print(f"model: tinycnn, Fashion-MNIST 10k/2 epochs, ready in {time.perf_counter() - t0:.1f} s, "
          f"clean accuracy {100 * accuracy(model, test.x[:args.n_acc], test.y[:args.n_acc]):.1f}%")
    x, y = test.x[:args.batch].contiguous(), test.y[:args.batch].contiguous()
    k, eps = args.steps, args.eps
    alpha = 2.5 * eps / k
    ours = PGD(eps=eps, step_size=alpha, steps=k)
    last = PGD(eps=eps, step_size=alpha, steps=k, keep="last")
    ours16 = PGD(eps=eps, step_size=alpha, steps=k, bf16=True)
    try:
        import torchattacks
        theirs = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=k, random_start=True)
    except ImportError:
        theirs = None
    # warm-up
    fwd_bwd(model, x, y)
    ours(model, x, y)
    last(model, x, y)
    ours16(model, x[:32], y[:32])
    if theirs is not None:
        theirs(x, y)
    t_fb, t_ours, t_last, t_theirs, t_16 = [], [], [], [], []
    for r in range(args.repeats):
        t_fb.append(statistics.median(timed(lambda: fwd_bwd(model, x, y)) for _ in range(3)))
        t_ours.append(timed(lambda: ours(model, x, y, generator=torch.Generator().manual_seed(r))))
        t_last.append(timed(lambda: last(model, x, y, generator=torch.Generator().manual_seed(r))))
        if theirs is not None:
            t_theirs.append(timed(lambda: theirs(x, y)))
        t_16.append(timed(lambda: ours16(model, x, y, generator=torch.Generator().manual_seed(r))))
    fb, o, lt, s16 = (statistics.median(v) for v in (t_fb, t_ours, t_last, t_16))
    b = args.batch
    print(f"\nsettings: batch {b}, PGD-{k}, Linf eps {eps}, step {alpha:.4g}, uniform start, "
          f"{args.repeats} interleaved repeats (median)")
    print(f"{'':44s}{'seconds':>9s}{'images/s':>10s}")
    print(f"{'one forward+backward w.r.t. input (fp32)':44s}{fb:9.3f}{b / fb:10.0f}")
    print(f"{'robustviz PGD keep=last (fp32)':44s}{lt:9.3f}{b / lt:10.0f}")
    print(f"{'robustviz PGD keep=fooling, default (fp32)':44s}{o:9.3f}{b / o:10.0f}")
    if theirs is not None:
        th = statistics.median(t_theirs)
        print(f"{'torchattacks PGD (fp32)':44s}{th:9.3f}{b / th:10.0f}")
    print(f"{'robustviz PGD (bf16 autocast)':44s}{s16:9.3f}{b / s16:10.0f}")
    print()
    if theirs is not None:
        print(f"throughput robustviz / torchattacks (fp32, both last iterate): {th / lt:.2f}x   "
              f"(target >= 1.0)")
        print(f"throughput robustviz default keep=fooling / torchattacks:     {th / o:.2f}x")
    print(f"PGD-{k} time / ({k} x fwd+bwd), keep=last:    {lt / (k * fb):.3f}   (target <= 1.10)")
    print(f"PGD-{k} time / ({k} x fwd+bwd), keep=fooling: {o / (k * fb):.3f}")
    print(f"throughput bf16 / fp32:                      {o / s16:.2f}x")

    # where robustviz PGD spends its time (forward / backward / the rest), one run
    br = breakdown(model, x, y, ours)
    print(f"robustviz PGD-{k} breakdown: {br['steps_fwd']:.3f} s forward + {br['bwd']:.3f} s backward "
          f"in the {k} steps, {br['final_fwd']:.3f} s final check forward over {br['final_n']} fooled "
          f"images ({100 * br['final_fwd'] / br['total']:.1f}%), {br['other']:.3f} s other "
          f"({100 * br['other'] / br['total']:.1f}%)")

    # robust accuracy fp32 vs bf16 on n_acc test images
    xa, ya = test.x[:args.n_acc], test.y[:args.n_acc]
    accs = {}
    for name, atk in (("fp32", ours), ("bf16", ours16)):
        outs = [atk(model, xa[i:i + b], ya[i:i + b], generator=torch.Generator().manual_seed(0))
                for i in range(0, xa.shape[0], b)]
        accs[name] = accuracy(model, torch.cat(outs), ya)
    print(f"robust accuracy PGD-{k} on {xa.shape[0]} test images: fp32 {100 * accs['fp32']:.2f}%, "
          f"bf16 {100 * accs['bf16']:.2f}%, difference {100 * (accs['bf16'] - accs['fp32']):+.2f} points")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        print(f"peak CUDA memory: {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB")
    print(f"peak memory: tracemalloc (Python objects) {peak / 2**20:.1f} MiB; "
          f"ru_maxrss (process) {rss:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
