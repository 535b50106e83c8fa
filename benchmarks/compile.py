"""``torch.compile`` against eager: PGD-10 on the teaching zoo model, and a training step.

Run from the repository root::

    .venv/bin/python benchmarks/compile.py              # about 2-4 minutes on 2 cores
    .venv/bin/python benchmarks/compile.py --device cuda

Prints, on the zoo's ``nat`` (TinyCNN, Fashion-MNIST) at batch 256:

1. the eager limit: 10 x one eager forward+backward with respect to the input;
2. robustviz PGD-10 on the eager model, and on ``torch.compile(model)`` (inductor; the
   attack loop itself stays eager, since each step's projection is a handful of element-wise
   operations), each as a ratio to that limit (target < 1.0 for the compiled one);
3. one plain training step (forward, CE, backward, SGD) eager and compiled;
4. the compilation time (the first calls, until the timings settle) separately, and after
   how many batches it is paid back.

Timings are medians over interleaved repeats, so a load change on a shared machine hits both
sides alike; the CPU, its load and the thread count are printed beside them.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F

import robustviz as rv
from robustviz.attacks import PGD


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device) -> float:
    _sync(device)
    t = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t


def fwd_bwd(model, x, y):
    xa = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(xa), y), xa)
    return g


def cpu_name() -> str:
    try:
        return next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--mode", default="default", help="torch.compile mode (default, reduce-overhead, max-autotune)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = rv.zoo.load("nat").eval().to(device)
    for q in model.parameters():
        q.requires_grad_(False)
    test = rv.zoo.data("fashion-mnist", "test")
    x, y = test.x[:args.batch].to(device), test.y[:args.batch].to(device)
    pgd = PGD(eps=0.1, step_size=0.025, steps=10, keep="last")

    t0 = time.perf_counter()
    compiled = torch.compile(model, mode=args.mode)
    first = [timed(lambda: fwd_bwd(compiled, x, y), device)]      # compiles forward and backward
    for _ in range(4):                                               # until the timings settle
        first.append(timed(lambda: pgd(compiled, x, y, generator=torch.Generator(device).manual_seed(0)), device))
    compile_s = time.perf_counter() - t0

    fwd_bwd(model, x, y)
    pgd(model, x, y)
    t_fb, t_eager, t_comp = [], [], []
    for r in range(args.repeats):
        gen = lambda: torch.Generator(device).manual_seed(r)  # noqa: E731
        t_fb.append(statistics.median(timed(lambda: fwd_bwd(model, x, y), device) for _ in range(3)))
        t_eager.append(timed(lambda: pgd(model, x, y, generator=gen()), device))
        t_comp.append(timed(lambda: pgd(compiled, x, y, generator=gen()), device))
    fb, te, tc = (statistics.median(v) for v in (t_fb, t_eager, t_comp))
    limit = 10 * fb

    # a training step, eager vs compiled (fresh copies, so the frozen parameters above do not matter)
    def train_model():
        m = rv.zoo.load("nat").to(device).train()
        return m, torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)

    m_e, o_e = train_model()
    m_c, o_c = train_model()
    m_cc = torch.compile(m_c, mode=args.mode)

    def step(m, o):
        loss = F.cross_entropy(m(x), y)
        o.zero_grad(set_to_none=True)
        loss.backward()
        o.step()

    t1 = time.perf_counter()
    for _ in range(3):
        timed(lambda: step(m_cc, o_c), device)
    compile_train_s = time.perf_counter() - t1
    step(m_e, o_e)
    s_e, s_c = [], []
    for _ in range(args.repeats):
        s_e.append(statistics.median(timed(lambda: step(m_e, o_e), device) for _ in range(3)))
        s_c.append(statistics.median(timed(lambda: step(m_cc, o_c), device) for _ in range(3)))
    se, sc = statistics.median(s_e), statistics.median(s_c)

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    print(f"# torch.compile vs eager: zoo nat (TinyCNN), batch {args.batch}, {where}, "
          f"{os.cpu_count()} cores, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"mode {args.mode}, median of {args.repeats} interleaved repeats")
    print(f"{'':46s}{'seconds':>9s}{'/ limit':>9s}")
    print(f"{'eager limit: 10 x one fwd+bwd w.r.t. input':46s}{limit:9.4f}{1:9.3f}")
    print(f"{'robustviz PGD-10, eager model':46s}{te:9.4f}{te / limit:9.3f}")
    print(f"{'robustviz PGD-10, torch.compile(model)':46s}{tc:9.4f}{tc / limit:9.3f}   (target < 1.0)")
    print(f"{'training step, eager':46s}{se:9.4f}")
    print(f"{'training step, torch.compile(model)':46s}{sc:9.4f}   ({se / sc:.2f}x eager)")
    gain_pgd, gain_train = te - tc, se - sc
    pay = lambda cost, gain: f"{cost / gain:.0f} batches" if gain > 0 else "never (no gain)"  # noqa: E731
    print(f"compilation: {compile_s:.1f} s for the attack model (first fwd+bwd, then 4 PGD calls), "
          f"paid back after {pay(compile_s, gain_pgd)} of PGD-10; {compile_train_s:.1f} s for the "
          f"training step, paid back after {pay(compile_train_s, gain_train)}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
