"""Diagnostics benchmarks: exact R-DIV at 10,000 x 512, t-SNE and UMAP on 3,000 points.

Run from the repository root::

    .venv/bin/python benchmarks/diagnostics.py             # about 5-10 minutes on 2 cores
    .venv/bin/python benchmarks/diagnostics.py --quick     # smaller sizes, a smoke run
    .venv/bin/python benchmarks/diagnostics.py --write     # also update benchmarks/RESULTS.md

Prints:

1. Exact R-DIV (``divergence(mode="exact")``) on N = 10,000 features of dimension 512 with
   10 classes, clean + adversarial sets (2N - 2 partners per anchor, 2e8 distances):
   wall time and peak memory for cosine (class-sum identity, the default), cosine through
   the blocked all-pairs path, and L2 (blocked all-pairs). Peak memory is measured in a
   fresh subprocess per case: ``ru_maxrss`` minus the resident size just before the call
   (torch's CPU allocations are not seen by tracemalloc), plus tracemalloc's peak for the
   Python/NumPy side.
2. The same d_a+ / d_a- from scikit-learn ``pairwise_distances`` on the full N x 2N matrix
   (the straightforward way), its time and memory, the agreement of the numbers and the
   speed ratio sklearn / robustviz.
3. t-SNE of 3,000 x 512 points: openTSNE (through ``embed``) vs scikit-learn's TSNE, the
   same 750 iterations (250 early exaggeration + 500), and openTSNE's ``transform`` of 300
   new points; UMAP fit (first call includes numba compilation; a second call shows the
   warm time) and transform.

Timings on a shared machine are noisy; the load average is printed with the results.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from _results import write_section  # noqa: E402  (this folder is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
START, END = "<!-- diagnostics:start -->", "<!-- diagnostics:end -->"


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def features(n: int, d: int, c: int, seed: int = 0):
    """Class-structured features: centres + noise; adversarial = features + noise."""
    import torch

    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % c
    centres = torch.randn(c, d, generator=g)
    zn = centres[y] + 1.5 * torch.randn(n, d, generator=g)
    za = zn + 0.8 * torch.randn(n, d, generator=g)
    return zn, za, y


# --------------------------------------------------------------------------- one case
def run_case(case: str, n: int, d: int, c: int) -> dict:
    """One measurement in this (fresh) process; returns a JSON-able dict."""
    import torch

    from robustviz.diagnostics import divergence
    from robustviz.diagnostics._class_distances import _class_sums

    zn, za, y = features(n, d, c)
    # warm-up on a small slice (thread pools, first-call costs)
    divergence(zn[:200], za[:200], y[:200], n_boot=0)
    base = _rss_mb()
    tracemalloc.start()
    t0 = time.perf_counter()
    if case == "cosine":
        r = divergence(zn, za, y, distance="cosine", n_boot=0)
        out = {"d_pos": r.d_pos, "d_neg": r.d_neg, "rdiv": r.rdiv}
    elif case == "l2":
        r = divergence(zn, za, y, distance="l2", n_boot=0)
        out = {"d_pos": r.d_pos, "d_neg": r.d_neg, "rdiv": r.rdiv}
    elif case == "cosine_blocked":
        S = _class_sums(zn, za, y, c, "cosine", None, blocked=True)
        out = {"S_sum": float(S.sum())}
    elif case == "cosine_boot":
        r = divergence(zn, za, y, distance="cosine", n_boot=1000)
        out = {"rdiv": r.rdiv, "ci": r.ci}
    elif case.startswith("sklearn_"):
        from sklearn.metrics import pairwise_distances

        metric = "cosine" if case == "sklearn_cosine" else "euclidean"
        Z = torch.cat([zn, za]).numpy()
        D = pairwise_distances(zn.numpy(), Z, metric=metric, n_jobs=1)   # (N, 2N)
        idx = np.arange(n)
        D[idx, idx] = 0.0                       # j != i: drop x_i ...
        D[idx, idx + n] = 0.0                   # ... and x'_i
        yy = np.concatenate([y.numpy()] * 2)
        onehot = np.eye(c)[yy]
        S = D.astype(np.float64) @ onehot        # (N, C) class sums
        yn = y.numpy()
        cnt = np.broadcast_to(2 * np.bincount(yn, minlength=c).astype(float), (n, c)).copy()
        cnt[idx, yn] -= 2
        pos = S[idx, yn] / cnt[idx, yn]
        neg = (S.sum(1) - S[idx, yn]) / (cnt.sum(1) - cnt[idx, yn])
        out = {"d_pos": float(pos.mean()), "d_neg": float(neg.mean()),
               "rdiv": float(pos.mean() / neg.mean()), "matrix_mb": D.nbytes / 2**20}
    else:
        raise ValueError(case)
    dt = time.perf_counter() - t0
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out.update(case=case, seconds=dt, rss_before_mb=base, maxrss_mb=_maxrss_mb(),
               extra_peak_mb=max(0.0, _maxrss_mb() - base), tracemalloc_peak_mb=py_peak / 2**20,
               threads=torch.get_num_threads())
    return out


def subprocess_case(case: str, n: int, d: int, c: int) -> dict:
    cmd = [sys.executable, __file__, "--case", case, "--n", str(n), "--d", str(d), "--c", str(c)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"case {case} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- embeddings
def bench_embeddings(n: int, d: int) -> dict:
    import warnings

    import torch

    from robustviz.diagnostics import embed

    zn, _, y = features(n, d, 10, seed=1)
    new = features(300, d, 10, seed=2)[0]
    out = {}
    t = time.perf_counter()
    embed(zn, None, y, method="tsne", backend="opentsne", n_iter=500, n_jobs=1, seed=0)
    out["opentsne_fit_1thread_s"] = time.perf_counter() - t
    t = time.perf_counter()
    r = embed(zn, None, y, method="tsne", backend="opentsne", n_iter=500, n_jobs=-1, seed=0)
    out["opentsne_fit_s"] = time.perf_counter() - t
    t = time.perf_counter()
    r.transform(new)
    out["opentsne_transform_300_s"] = time.perf_counter() - t
    t = time.perf_counter()
    embed(zn, None, y, method="tsne", backend="sklearn", n_iter=500, n_jobs=-1, seed=0)
    out["sklearn_tsne_fit_s"] = time.perf_counter() - t
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        u = embed(zn, None, y, method="umap", seed=0)
        out["umap_first_fit_s"] = time.perf_counter() - t
        t = time.perf_counter()
        u = embed(zn, None, y, method="umap", seed=0)
        out["umap_fit_s"] = time.perf_counter() - t
        t = time.perf_counter()
        u.transform(new)
        out["umap_transform_300_s"] = time.perf_counter() - t
        t = time.perf_counter()
        embed(zn, None, y, method="umap", preset="paper004", seed=0)
        out["umap_paper004_fit_s"] = time.perf_counter() - t
    out["threads"] = torch.get_num_threads()
    return out


# --------------------------------------------------------------------------- report
def _load() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


LOAD_AT_START = _load()


def machine() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        cpu = dict(l.split(":", 1) for l in lscpu.splitlines() if ":" in l).get("Model name", "?")
    except OSError:
        cpu = platform.processor() or "?"
    load = f"{LOAD_AT_START} at start, {_load()} at the end"
    import sklearn
    import torch

    return (f"{cpu.strip()}, {os.cpu_count()} cores, load avg {load}; torch {torch.__version__}, "
            f"scikit-learn {sklearn.__version__}, Python {platform.python_version()}")


def report(div: dict, emb: dict, n: int, d: int) -> str:
    cos, l2, blk, boot = div["cosine"], div["l2"], div["cosine_blocked"], div["cosine_boot"]
    skc, skl = div["sklearn_cosine"], div["sklearn_l2"]
    lines = [
        START,
        "## Diagnostics (`benchmarks/diagnostics.py`)",
        "",
        f"Run {datetime.date.today().isoformat()} on {machine()}.",
        "",
        f"Exact R-DIV, N = {n:,} anchors x {d} dims, 10 classes, clean + adversarial sets "
        f"({2 * n * n / 1e6:,.0f} M distances). Peak = extra resident memory over the "
        f"process before the call (`ru_maxrss`), fresh process per row.",
        "",
        "| computation | time (s) | peak extra RSS (MiB) | sklearn time / ours |",
        "|---|---:|---:|---:|",
        f"| robustviz cosine (class-sum identity, default) | {cos['seconds']:.2f} | "
        f"{cos['extra_peak_mb']:.0f} | {skc['seconds'] / cos['seconds']:.0f}x |",
        f"| robustviz cosine, blocked all pairs | {blk['seconds']:.2f} | "
        f"{blk['extra_peak_mb']:.0f} | {skc['seconds'] / blk['seconds']:.1f}x |",
        f"| robustviz L2, blocked all pairs | {l2['seconds']:.2f} | {l2['extra_peak_mb']:.0f} | "
        f"{skl['seconds'] / l2['seconds']:.1f}x |",
        f"| robustviz cosine + 1,000 bootstrap resamples | {boot['seconds']:.2f} | "
        f"{boot['extra_peak_mb']:.0f} | |",
        f"| scikit-learn `pairwise_distances` cosine, full N x 2N matrix | {skc['seconds']:.2f} | "
        f"{skc['extra_peak_mb']:.0f} | 1x |",
        f"| scikit-learn `pairwise_distances` euclidean, full N x 2N matrix | "
        f"{skl['seconds']:.2f} | {skl['extra_peak_mb']:.0f} | 1x |",
        "",
        f"Same numbers: cosine R-DIV {cos['rdiv']:.6f} (ours) vs {skc['rdiv']:.6f} (sklearn), "
        f"|diff| {abs(cos['rdiv'] - skc['rdiv']):.1e}; L2 R-DIV {l2['rdiv']:.6f} vs "
        f"{skl['rdiv']:.6f}, |diff| {abs(l2['rdiv'] - skl['rdiv']):.1e}. The blocked path "
        f"holds about 2M distances at a time (8 MiB in float32), never the "
        f"{skc['matrix_mb']:.0f} MiB matrix.",
        "",
        f"Embeddings of {emb['n']:,} x {emb['d']} features (t-SNE: 250 early-exaggeration + "
        f"500 iterations, both libraries, all cores):",
        "",
        "| step | time (s) |",
        "|---|---:|",
        f"| openTSNE fit (`embed(method=\"tsne\")`, all cores) | {emb['opentsne_fit_s']:.1f} |",
        f"| openTSNE fit, `n_jobs=1` | {emb['opentsne_fit_1thread_s']:.1f} |",
        f"| scikit-learn TSNE fit (`backend=\"sklearn\"`, all cores) | "
        f"{emb['sklearn_tsne_fit_s']:.1f} |",
        f"| openTSNE transform of 300 new points | {emb['opentsne_transform_300_s']:.1f} |",
        f"| UMAP fit, first call (numba compilation) | {emb['umap_first_fit_s']:.1f} |",
        f"| UMAP fit, warm | {emb['umap_fit_s']:.1f} |",
        f"| UMAP transform of 300 new points | {emb['umap_transform_300_s']:.1f} |",
        f"| UMAP paper-004 preset (densMAP, correlation) fit | {emb['umap_paper004_fit_s']:.1f} |",
        "",
        f"t-SNE speed ratio scikit-learn time / openTSNE time: "
        f"{emb['sklearn_tsne_fit_s'] / emb['opentsne_fit_s']:.1f}x (all cores), "
        f"{emb['sklearn_tsne_fit_s'] / emb['opentsne_fit_1thread_s']:.1f}x (openTSNE on one "
        f"thread). On a loaded 2-core machine openTSNE's threads contend: `n_jobs=1` can be "
        f"the faster setting there.",
        END,
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="N=2,000 and 1,000 embedded points")
    ap.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=10_000, help=argparse.SUPPRESS)
    ap.add_argument("--d", type=int, default=512, help=argparse.SUPPRESS)
    ap.add_argument("--c", type=int, default=10, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case, args.n, args.d, args.c)))
        return 0
    n, d = (2_000, 512) if args.quick else (args.n, args.d)
    n_emb = 1_000 if args.quick else 3_000
    div = {}
    for case in ("cosine", "cosine_blocked", "l2", "cosine_boot", "sklearn_cosine", "sklearn_l2"):
        div[case] = subprocess_case(case, n, d, 10)
        r = div[case]
        print(f"{case:>16}: {r['seconds']:7.2f} s  peak extra RSS {r['extra_peak_mb']:7.0f} MiB"
              f"  tracemalloc {r['tracemalloc_peak_mb']:6.0f} MiB  "
              + ", ".join(f"{k}={v:.6g}" for k, v in r.items()
                          if k in ("d_pos", "d_neg", "rdiv")), flush=True)
    emb = bench_embeddings(n_emb, 512)
    emb.update(n=n_emb, d=512)
    for k, v in emb.items():
        print(f"{k:>26}: {v:.2f}" if isinstance(v, float) else f"{k:>26}: {v}", flush=True)
    text = report(div, emb, n, d)
    print()
    print(text)
    if args.write:
        write_section(text, START, END)
        print(f"updated {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
