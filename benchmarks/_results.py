"""The one writer of ``benchmarks/RESULTS.md``: each benchmark owns the section between its
two markers, and ``--write`` replaces that section (or appends it) and leaves the others."""
from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(text: str, start: str, end: str, path: Path | str = RESULTS) -> None:
    """Replace the section of ``path`` from ``start`` to ``end`` (both kept in ``text``) with
    ``text``, or append ``text`` when the file has no such section; the write is atomic."""
    from robustviz.runs import atomic_write_text

    if not (text.startswith(start) and text.rstrip("\n").endswith(end)):
        raise ValueError(f"the section must run from {start!r} to {end!r}")
    path = Path(path)
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    pat = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.S)
    new = pat.sub(lambda _: text, old) if pat.search(old) else old.rstrip("\n") + "\n\n" + text
    atomic_write_text(path, new)
