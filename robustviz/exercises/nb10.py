"""Checks of notebook 10 (paper figures)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from robustviz.exercises import number, register


@register("10.1")
def slides_font(answer) -> list[str]:
    """The font size (pt) the "slides" style sets."""
    from robustviz.figures import CONTEXTS

    problems = number(answer, "the font size", 1.0, 100.0)
    if problems:
        return problems
    value = float(answer)
    if abs(value - CONTEXTS["slides"]["font"]) < 1e-9:
        return []
    for other in ("paper", "notebook"):
        if abs(value - CONTEXTS[other]["font"]) < 1e-9:
            return [f"that is the font size of the {other!r} style: read "
                    f"matplotlib.rcParams['font.size'] right after set_style('slides')"]
    return ["that is not the font size set_style('slides') sets: read "
            "matplotlib.rcParams['font.size'] right after calling it"]


def _is_svg(path: Path) -> bool:
    head = path.read_bytes()[:4096].lower()
    return b"<svg" in head


@register("10.2")
def svg_saved(answer) -> list[str]:
    """The paths ``rv.figures.save(..., formats=["pdf", "svg"])`` returned: a PDF and an SVG
    that exist and are what their suffix says."""
    if isinstance(answer, (str, Path)):
        return ["the answer should be the list of paths save() returns, not one path"]
    try:
        paths = [Path(p) for p in answer]
    except TypeError:
        return [f"the answer should be the list of paths save() returns, got "
                f"{type(answer).__name__}"]
    out = []
    suffixes = {p.suffix.lower() for p in paths}
    if ".svg" not in suffixes:
        out.append("no .svg among the paths: pass formats=[\"pdf\", \"svg\"] to save()")
    if ".pdf" not in suffixes:
        out.append("no .pdf among the paths: keep the PDF as well (formats=[\"pdf\", \"svg\"])")
    for p in paths:
        if not p.is_file():
            out.append(f"{p} does not exist: call save(), do not just write the names")
        elif p.suffix.lower() == ".svg" and not _is_svg(p):
            out.append(f"{p} is not an SVG file")
        elif p.suffix.lower() == ".pdf" and not p.read_bytes()[:5] == b"%PDF-":
            out.append(f"{p} is not a PDF file")
    if not out and len({p.stem for p in paths}) != 1:
        out.append("the PDF and the SVG should be the same figure saved once: one save() call "
                   "with both formats")
    return out


@register("10.3")
def closest_classes(answer, *, divergence, class_names) -> list[str]:
    """The off-diagonal entry of the class x class matrix with the smallest distance, as a
    pair of class names (either order)."""
    names = list(class_names)
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        return [f"the answer should be a pair of class names like (\"{names[0]}\", "
                f"\"{names[1]}\"), got {answer!r}"]
    if not all(isinstance(a, str) for a in answer):
        if all(isinstance(a, (int, np.integer)) for a in answer):
            return ["those are class indices: give the names (test.classes[i])"]
        return ["the answer should hold two class names (strings)"]
    unknown = [a for a in answer if a not in names]
    if unknown:
        return [f"{unknown} are not class names of the data; names are {names}"]
    if answer[0] == answer[1]:
        return ["the two classes are the same: that is a diagonal entry (a class with "
                "itself); leave the diagonal out"]
    m = np.array(divergence.class_matrix, dtype=float)
    np.fill_diagonal(m, np.inf)
    i, j = np.unravel_index(np.argmin(m), m.shape)
    if {answer[0], answer[1]} == {names[i], names[j]}:
        return []
    a, b = names.index(answer[0]), names.index(answer[1])
    off = m[np.isfinite(m)]
    if max(m[a, b], m[b, a]) >= off.max() - 1e-12:
        return ["that is the largest off-diagonal distance: the exercise asks for the smallest"]
    return ["that pair is not the closest one: look for the smallest value off the diagonal "
            "of class_matrix (np.fill_diagonal with np.inf, then np.argmin)"]
