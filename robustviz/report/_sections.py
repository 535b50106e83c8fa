"""What a section is and the registry of sections: :class:`Section` (what a section
function returns), :class:`ReportFigure`, :class:`ReportTable`, :data:`SECTIONS` (name ->
function, in page order), :data:`DEFAULT_SECTIONS` and :func:`register_section`."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable


@dataclasses.dataclass
class ReportFigure:
    """A figure of a section: ``stem`` names its files (``figures/<stem>.pdf``/``.png``);
    ``caption``: one sentence on what it shows, one on what to look for."""

    stem: str
    figure: Any
    caption: str


@dataclasses.dataclass
class ReportTable:
    """A table of a section: ``header`` and ``rows`` of strings; ``notes`` maps a column
    name to one sentence saying what it holds and what to look for; ``bold`` holds the
    (row, column) cells to emphasise; ``stem`` names ``tables/<stem>.csv``/``.tex``."""

    stem: str
    header: list
    rows: list
    notes: dict = dataclasses.field(default_factory=dict)
    caption: str = ""
    bold: set = dataclasses.field(default_factory=set)


@dataclasses.dataclass
class Section:
    """What a section function returns (see :mod:`robustviz.report`)."""

    title: str
    text: list = dataclasses.field(default_factory=list)
    figures: list = dataclasses.field(default_factory=list)
    tables: list = dataclasses.field(default_factory=list)
    details: list = dataclasses.field(default_factory=list)   # (summary, preformatted text)
    name: str = ""


#: name -> section function, in page order.
SECTIONS: dict[str, Callable[[Any], Section | None]] = {}
#: Sections a report holds when none are named (the costly optional ones, e.g. loss
#: landscapes and corruptions, are asked for by name).
DEFAULT_SECTIONS: list[str] = []


def register_section(name: str, *, after: str | None = None, replace: bool = False,
                     default: bool = True):
    """Decorator: add ``func(ctx) -> Section | None`` to :data:`SECTIONS` under ``name``
    (at the end, or right after the section ``after``); ``default=False`` leaves it out of
    reports that do not name it."""
    def deco(func):
        # every check before any change: a refused registration leaves both lists as they were
        if not replace and name in SECTIONS:
            raise ValueError(f"a report section named {name!r} exists (replace=True to swap it)")
        items = [(k, v) for k, v in SECTIONS.items() if k != name]
        if after is None:
            items.append((name, func))
        else:
            keys = [k for k, _ in items]
            if after not in keys:
                raise ValueError(f"after={after!r}: no such section (have {keys})")
            items.insert(keys.index(after) + 1, (name, func))
        if default and name not in DEFAULT_SECTIONS:
            DEFAULT_SECTIONS.append(name)
        elif not default and name in DEFAULT_SECTIONS:
            DEFAULT_SECTIONS.remove(name)
        SECTIONS.clear()
        SECTIONS.update(items)
        return func
    return deco



def tables_from_dicts(prefix: str, tables) -> list:
    """:class:`ReportTable` s from tables given as ``{"caption", "columns", "rows"}`` dicts
    (what the visual and pretraining sections compute), cells as strings, stems
    ``<prefix>_<i>``."""
    return [ReportTable(f"{prefix}_{i}", [str(c) for c in t["columns"]],
                        [[str(v) for v in r] for r in t["rows"]], caption=t["caption"])
            for i, t in enumerate(tables)]
