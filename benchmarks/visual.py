"""Visual-diagnostics benchmarks: batched feature inversion, weight-space landscapes vs the
``loss-landscapes`` package, and the cost of an adversarial landscape.

Run from the repository root::

    .venv/bin/python benchmarks/visual.py            # about 10-15 minutes on 2 loaded cores
    .venv/bin/python benchmarks/visual.py --quick    # 7x7 grid, 200 images: a smoke run

Prints, in one run, for the teaching model (tinycnn on Fashion-MNIST: the zoo's ``nat``
when robustviz.zoo is there, else trained here for one epoch on a 5k subset):

1. feature inversion, 8 neurons x 6 seeds (conv2, 32 Linf steps): all 48 pairs in one batch
   vs the same optimisation one pair at a time (``batch_size=1``); ratio (target >= 5x) and
   the largest image difference between the two.
   The bare forward+backward ratio (48 calls of batch 1 vs one call of batch 48) is printed
   as the ceiling any batching can reach on the machine.
2. 2-D weight landscape, 21 x 21 grid on 1,000 test images, clean cross-entropy:
   ``robustviz.diagnostics.weight_landscape`` vs ``loss_landscapes.planar_interpolation``
   on the same model, the same two filter-normalised directions and the same data; ratio
   (target >= 1.5x) and the largest loss difference on the grid points both evaluate
   (target <= 1e-4). ``loss_landscapes.random_plane`` draws its own directions and then
   runs exactly this planar loop, so it is timed through ``planar_interpolation``. The
   whole grids run one after the other; a second measurement runs the same grid row by row,
   the two alternating per row (loss_landscapes.linear_interpolation, its 1-D loop), which a
   load change on a shared machine hits alike (``--only landscape-rows`` runs only that).
3. adversarial 2-D landscape (PGD-5 recomputed at every point) on a 3 x 3 grid: seconds
   per grid point, as a ratio to one PGD-5 evaluation (attack + forward) of the same
   images with the model itself.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import os
import platform
import subprocess
import time

import numpy as np
import torch
import torch.nn.functional as F

import robustviz as rv
from robustviz.attacks import PGD
from robustviz.diagnostics import feature_inversion, random_directions, weight_landscape


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        info = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        cpu = info.get("Model name", "?").strip()
    except OSError:
        cpu = platform.processor() or "?"
    return (f"{cpu}, {os.cpu_count()} cores, load avg {os.getloadavg()[0]:.2f}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")


def teaching_model():
    try:
        from robustviz import zoo

        return zoo.load("nat"), "zoo nat"
    except Exception:  # zoo not there: a quick model (speed does not depend on its accuracy)
        train = rv.data.load("fashion-mnist", "train", n=5000, seed=0)
        model = rv.models.build("tinycnn", num_classes=10, in_channels=1, mean=train.mean,
                                std=train.std, seed=0)
        rv.train.Trainer(defense={"name": "nat"}, epochs=1, optimizer="adam", lr=2e-3,
                         weight_decay=0.0, schedule="constant", batch_size=128, eps=0.1,
                         progress=False, seed=0).fit(model, train)
        return model.eval(), "tinycnn NAT, 1 epoch on 5k (trained here)"


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(fn):
    """(wall seconds, result) of ``fn()``, waiting for queued CUDA work on both sides."""
    _sync()
    t = time.perf_counter()
    out = fn()
    _sync()
    return time.perf_counter() - t, out


def bench_inversion(model, test, device="cpu"):
    model = model.to(device)
    seeds = test.sample(6, seed=0).x.to(device)
    kw = dict(steps=32, step_size=0.01, norm="linf", seed=0)
    feature_inversion(model, "conv2", [0], seeds[:1], steps=2)          # warm-up
    t_b, batched = timed(lambda: feature_inversion(model, "conv2", list(range(8)), seeds, **kw))
    t_l, looped = timed(lambda: feature_inversion(model, "conv2", list(range(8)), seeds,
                                                  batch_size=1, **kw))
    diff = float((batched.images - looped.images).abs().max())
    # the hardware ceiling: the same number of bare forward+backward passes w.r.t. the
    # input, one batch of 48 vs 48 batches of 1 (no optimiser, no hooks)
    def raw(batch, calls):
        x = seeds[:1].repeat(batch, 1, 1, 1).requires_grad_(True)
        _sync()
        t = time.perf_counter()
        for _ in range(calls):
            torch.autograd.grad(model(x).sum(), x)
        _sync()
        return time.perf_counter() - t
    ceiling = raw(1, 32 * 48) / raw(48, 32)
    print(f"[inversion] 8 neurons x 6 seeds, 32 steps: batched {t_b:.2f} s, per-pair loop "
          f"{t_l:.2f} s -> {t_l / t_b:.1f}x faster (target >= 5x); max |image diff| {diff:.2e}; "
          f"ceiling on this machine (bare fwd+bwd, 48 x batch 1 vs one batch of 48): {ceiling:.1f}x")
    return {"batched_s": t_b, "loop_s": t_l, "ratio": t_l / t_b, "max_diff": diff,
            "ceiling": ceiling}


def _shifted(model, dirs, coef1, coef2):
    m = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.add_(coef1 * dirs[0][name] + coef2 * dirs[1][name])
    return m


def bench_landscape(model, test, points: int, n: int, rows: bool = True):
    import loss_landscapes as ll
    import loss_landscapes.metrics as llm

    sub = test.sample(n, seed=0)
    x, y = sub.x, sub.y
    dirs = random_directions(model, 2, seed=0)
    grid = np.linspace(-1, 1, points)
    step = float(grid[1] - grid[0])
    t_ours, ours = timed(lambda: weight_landscape(model, (x, y), alphas=grid, betas=grid,
                                                  directions=dirs, progress=False))
    # loss-landscapes: column i at start + i*d1/S; even columns evaluate b offsets 1..S,
    # odd ones 0..S-1 (its in-place zig-zag), so start half a step below our grid
    start = _shifted(model, dirs, -1.0, -1.0 - step).eval()
    end1 = _shifted(start, dirs, points * step, 0.0).eval()
    end2 = _shifted(start, dirs, 0.0, points * step).eval()
    metric = llm.Loss(F.cross_entropy, x, y)
    t_ll, theirs = timed(lambda: ll.planar_interpolation(start, end1, end2, metric,
                                                         steps=points, deepcopy_model=True))
    theirs = np.asarray(theirs)
    diffs = []
    for i in range(points):
        if i % 2 == 0:
            diffs.append(np.abs(theirs[i] - ours.loss[i]).max())
        else:
            diffs.append(np.abs(theirs[i][1:] - ours.loss[i][:-1]).max())
    diff = float(max(diffs))
    alt = bench_landscape_rows(model, x, y, dirs, grid, metric) if rows else float("nan")
    print(f"[landscape] {points}x{points} grid, {n} images: robustviz {t_ours:.1f} s "
          f"({t_ours / points ** 2:.3f} s/point), loss-landscapes {t_ll:.1f} s "
          f"({t_ll / points ** 2:.3f} s/point) -> {t_ll / t_ours:.2f}x faster (target >= 1.5x); "
          f"max |loss diff| on common points {diff:.2e} (target <= 1e-4)")
    return {"ours_s": t_ours, "ll_s": t_ll, "ratio": t_ll / t_ours, "max_diff": diff,
            "points": points, "n": n, "alternating_ratio": alt}


def bench_landscape_rows(model, x, y, dirs, grid, metric) -> float:
    """The same 2-D grid row by row, the two libraries alternating per row (a load change
    on a shared machine hits both alike): robustviz's 1-D landscape along d2 from
    theta + a d1 vs loss_landscapes.linear_interpolation (its 1-D loop: add a step, then
    evaluate) over the same points. Returns the whole-grid time ratio."""
    import loss_landscapes as ll

    step = float(grid[1] - grid[0])
    t_ours = t_ll = 0.0
    diff = 0.0
    for a in grid:
        row_model = _shifted(model, dirs, float(a), 0.0).eval()
        t, ours = timed(lambda: weight_landscape(row_model, (x, y), dims=1, alphas=grid,
                                                 directions=[dirs[1]], progress=False))
        t_ours += t
        start = _shifted(model, dirs, float(a), -1.0 - step).eval()
        end = _shifted(start, dirs, 0.0, len(grid) * step).eval()
        t, theirs = timed(lambda: ll.linear_interpolation(start, end, metric, steps=len(grid),
                                                          deepcopy_model=True))
        t_ll += t
        diff = max(diff, float(np.abs(np.asarray(theirs) - ours.loss).max()))
    print(f"[landscape] same grid row by row, the two alternating per row: robustviz "
          f"{t_ours:.1f} s, loss-landscapes {t_ll:.1f} s -> {t_ll / t_ours:.2f}x faster; "
          f"max |loss diff| {diff:.2e}")
    return t_ll / t_ours


def bench_adversarial(model, test, n: int):
    sub = test.sample(n, seed=0)
    x, y = sub.x, sub.y
    atk = PGD(eps=0.1, steps=5, step_size=0.025, seed=0)
    grid = np.linspace(-1, 1, 3)

    def one_pgd():
        x_adv = atk(model, x, y)
        with torch.no_grad():
            return F.cross_entropy(model(x_adv), y).item()

    one_pgd()
    t_pgd, _ = timed(one_pgd)
    t_land, land = timed(lambda: weight_landscape(model, (x, y), alphas=grid, betas=grid,
                                                  attack=atk, progress=False))
    per_point = t_land / grid.size ** 2
    print(f"[adversarial] 3x3 grid, PGD-5, {n} images: {per_point:.2f} s per grid point, "
          f"one PGD-5 evaluation {t_pgd:.2f} s -> {per_point / t_pgd:.2f} PGD evaluations per "
          f"grid point; centre adv. loss {land.adv_loss[1, 1]:.4f}")
    return {"per_point_s": per_point, "pgd_s": t_pgd, "ratio": per_point / t_pgd}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="7x7 grid on 200 images")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--device", default="cpu",
                    help="device of the inversion measurement (cpu or cuda; the landscapes run on the CPU)")
    ap.add_argument("--only", choices=["inversion", "landscape", "landscape-grid", "landscape-rows",
                                       "adversarial"],
                    default=None, help="run only one measurement (landscape: the whole grids "
                    "one after the other, then row by row; landscape-grid: only the whole "
                    "grids; landscape-rows: only row by row)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"benchmarks/visual.py, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(machine())
    model, what = teaching_model()
    test = rv.data.load("fashion-mnist", "test")
    print(f"model: {what}")
    if args.only == "landscape-rows":
        import loss_landscapes.metrics as llm

        n = 200 if args.quick else 1000
        sub = test.sample(n, seed=0)
        bench_landscape_rows(model, sub.x, sub.y, random_directions(model, 2, seed=0),
                             np.linspace(-1, 1, 7 if args.quick else 21),
                             llm.Loss(F.cross_entropy, sub.x, sub.y))
        return 0
    if args.only == "inversion":
        if args.device != "cpu":
            print(f"device: {torch.cuda.get_device_name(args.device) if 'cuda' in args.device else args.device}")
        bench_inversion(model, test, args.device)
        return 0
    if args.only in ("landscape", "landscape-grid"):
        bench_landscape(model, test, 7 if args.quick else 21, 200 if args.quick else 1000,
                        rows=args.only == "landscape")
        return 0
    if args.only == "adversarial":
        bench_adversarial(model, test, 200 if args.quick else 1000)
        return 0
    r1 = bench_inversion(model, test)
    r2 = bench_landscape(model, test, 7 if args.quick else 21, 200 if args.quick else 1000)
    r3 = bench_adversarial(model, test, 200 if args.quick else 1000)
    print(f"summary: inversion {r1['ratio']:.1f}x (ceiling {r1['ceiling']:.1f}x), landscape "
          f"{r2['ratio']:.2f}x whole grids one after the other / {r2['alternating_ratio']:.2f}x rows alternating "
          f"(max diff {r2['max_diff']:.1e}), adversarial point = {r3['ratio']:.2f} PGD evaluations; "
          f"load avg at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
