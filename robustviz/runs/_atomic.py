"""Atomic writes: every file of a run goes to a temporary file in the same folder, is
flushed to disk, then renamed over the target, so a killed process leaves either the old
file or the new one (and at most a temporary file, which :func:`clean_temp_files` removes).
Nothing is ever written into the teaching zoo."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from robustviz._zoo_folder import refuse_zoo


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temp file + fsync + rename (never into the zoo)."""
    path = Path(path)
    refuse_zoo(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.filename is None:   # name the file (ENOSPC, EFBIG)
            raise OSError(err.errno, err.strerror or str(err), str(path)) from None
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    # through the package: whoever replaces robustviz.runs.atomic_write_bytes (the fault
    # injection of tests/test_faults.py) sees this write too
    from robustviz import runs

    return runs.atomic_write_bytes(path, text.encode("utf-8"))


def clean_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files an atomic write left behind when its process was killed
    before the rename (``.NAME.XXXX.tmp``); call it only while holding the folder's
    :class:`~robustviz.runs.RunLock`. Returns the removed paths."""
    removed = []
    for p in Path(folder).glob(".*.tmp"):
        if p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed
