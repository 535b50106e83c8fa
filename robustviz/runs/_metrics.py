"""``metrics.jsonl``: one JSON object per line (epochs, evaluations, events).

A line is appended with one ``write`` under a file lock, so concurrent writers (a training
process and an evaluation, two evaluations of one run) never lose or interleave a line; a
reader skips, with a warning, a line a killed writer left cut short.
"""
from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from robustviz._zoo_folder import refuse_zoo
from robustviz.runs._layout import METRICS

try:  # POSIX advisory locks; elsewhere appends go out unlocked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


def _jsonable(obj: Any) -> Any:
    """``obj`` as JSON data: dataclasses as dicts, tuples as lists, paths as strings,
    one-element tensors and NumPy scalars as numbers."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return obj.item()
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "shape", None) == ():
        return obj.item()  # numpy scalars
    return obj


def _flock(fd: int, exclusive: bool = True) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)


def append_metrics(run_dir: str | os.PathLike, record: dict) -> None:
    """Append one JSON line to ``metrics.jsonl``.

    The line goes out in a single ``write`` on a file opened with ``O_APPEND``, under an
    exclusive ``flock``, then is fsynced: concurrent writers (two evaluations of one run,
    a training process and an evaluation) never lose or interleave lines. A file whose last
    line was cut short (power loss) gets a newline first, so the new line stays whole.
    """
    run_dir = Path(run_dir)
    refuse_zoo(run_dir / METRICS)
    run_dir.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(_jsonable(record)) + "\n").encode("utf-8")
    fd = os.open(run_dir / METRICS, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        _flock(fd)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as err:   # name the file (ENOSPC, EFBIG)
            raise OSError(err.errno, err.strerror, str(run_dir / METRICS)) from None
    finally:
        os.close(fd)  # releases the flock


def read_metrics(run_dir: str | os.PathLike, *, kind: str | None = None) -> list[dict]:
    """All metric records of a run (optionally only those whose ``"kind"`` matches).

    A line that is not valid JSON (the cut-off last line of a process killed mid-write on a
    file system without atomic appends) is skipped with a warning naming it.
    """
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.split("\n")
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            last = i == len(lines) - 1   # no newline after it: a write that never finished
            what = "an incomplete last line" if last else f"line {i + 1}, which is not valid JSON"
            warnings.warn(f"{path}: skipping {what} ({line[:60]!r})", stacklevel=2)
    return [r for r in out if kind is None or r.get("kind") == kind]
