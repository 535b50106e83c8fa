"""Notebook run times: every teaching notebook executed top to bottom in a fresh kernel.

Each notebook (the instructor edition in ``notebooks/``, solutions included) runs in its own
new Jupyter kernel, one after another, in a temporary copy of the notebooks folder, with the
notebook test's settings (claims strict: a contradicted sentence is an error). The time of a
notebook is the wall time from starting its kernel to the end of its last cell. It prints one
row per notebook, the total, the targets (each under 3 minutes, all within 14 minutes on a
2-core CPU) and the CPU with its load average; ``--write`` replaces its section of
``benchmarks/RESULTS.md``.

    python benchmarks/notebooks.py --write            # all notebooks, every core
    python benchmarks/notebooks.py --threads 1 03 09  # two notebooks, one thread each (as under pytest-xdist)
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "notebooks"
START, END = "<!-- notebooks:start -->", "<!-- notebooks:end -->"
EACH_S, TOTAL_S = 180.0, 14 * 60.0

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section  # noqa: E402
from speedrun import _load, device_name  # noqa: E402


def run(path: Path, work: Path, timeout: int) -> float:
    """Execute one notebook in a fresh kernel; its wall seconds (kernel start included)."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(work)}})
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("only", nargs="*", help="notebook numbers or names (default: all)")
    ap.add_argument("--threads", type=int, default=None,
                    help="OMP_NUM_THREADS of the kernels (default: torch's, every core)")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    ap.add_argument("--write", action="store_true", help="replace this section of benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    paths = sorted(FOLDER.glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        paths = [p for p in paths if any(p.stem == o or p.stem.startswith(f"{o}_") for o in args.only)]
        if not paths:
            ap.error(f"no notebook matches {args.only}")
    os.environ["ROBUSTVIZ_STRICT_CLAIMS"] = "1"
    os.environ.pop("MPLBACKEND", None)
    if args.threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    cpu, load0, started = device_name("cpu"), _load(), time.time()
    rows = []
    with tempfile.TemporaryDirectory(prefix="rv-notebooks-") as tmp:
        work = Path(tmp)
        for helper in FOLDER.glob("_*.py"):
            shutil.copy(helper, work)
        for path in paths:
            seconds = run(path, work, args.timeout)
            rows.append((path.stem, seconds))
            print(f"{path.stem:36s} {seconds:6.1f} s{'  OVER 3 min' if seconds > EACH_S else ''}", flush=True)
    total = sum(s for _, s in rows)
    threads = args.threads or "all"
    lines = [START, "## Notebooks: each executed in a fresh kernel", "",
             f"Run {time.strftime('%Y-%m-%d %H:%M', time.gmtime(started))} UTC: "
             f"`python benchmarks/notebooks.py{' --threads ' + str(args.threads) if args.threads else ''}`"
             f" on {cpu}, threads per kernel: {threads}, one notebook at a time; load average "
             f"before {load0}, after {_load()}. Time from the kernel's start to the end of the last "
             f"cell, claims strict. Targets: each under {EACH_S / 60:.0f} minutes, all within "
             f"{TOTAL_S / 60:.0f} minutes.", "",
             "| notebook | seconds |", "| --- | ---: |"]
    lines += [f"| `{name}` | {s:.1f} |" for name, s in rows]
    verdict = ("met" if total <= TOTAL_S and all(s <= EACH_S for _, s in rows) else "MISSED")
    lines += [f"| **total ({len(rows)} notebooks)** | **{total:.1f}** ({total / 60:.1f} min; target {verdict}) |",
              "", END, ""]
    text = "\n".join(lines)
    print(text)
    if args.write and not args.only:
        write_section(text, START, END)
    elif args.write:
        print("--write needs every notebook; nothing written", file=sys.stderr)
    return 0 if verdict == "met" else 1


if __name__ == "__main__":
    raise SystemExit(main())
