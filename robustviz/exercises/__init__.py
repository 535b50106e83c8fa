"""Automatic checks of the notebooks' exercises.

Each exercise of a notebook has an answer cell (``answer = ...`` in the student edition),
a solution cell tagged ``solution`` (the instructor edition) and a check cell::

    rv.notebooks.exercise("01.1", answer, model=models["PGD-AT"], x=x, y=y, eps=EPS)

The check is a function registered here under the exercise's key (``"NN.k"``: notebook
``NN``, exercise ``k``). It gets the answer and the notebook objects the cell passes, and
returns the list of what is still wrong, in sentences that point at the mistake without
giving the answer (an empty list: the answer passes). Checks recompute what they compare
with from the notebook's own objects; they hold no stored results.

Why not nbgrader or otter-grader: both work offline, but nbgrader needs its database,
a course directory layout and a Jupyter server extension, and otter-grader its own
assignment format, a generator step and a grading container; a course here is eleven
notebooks whose checks must run inside the notebook as the student works and in this
project's notebook tests. A registry of plain functions and the existing ``solution`` tag
(the student edition drops those cells) do that with no new dependency.

The checks of notebook ``NN`` live in ``robustviz/exercises/nbNN.py``.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable

__all__ = ["CHECKS", "register", "grade", "keys", "EMPTY", "number", "close", "per_model"]

#: ``"NN.k"`` -> check(answer, **context) -> list of problems
CHECKS: dict[str, Callable[..., list[str]]] = {}

#: What an empty answer cell holds.
EMPTY = ...

_loaded = False


def register(key: str):
    """Decorator: register ``fn(answer, **context) -> list[str]`` as the check of ``key``."""
    def wrap(fn):
        if key in CHECKS:
            raise ValueError(f"exercise {key!r} has two checks")
        CHECKS[key] = fn
        return fn
    return wrap


def _load() -> None:
    global _loaded
    if _loaded:
        return
    for mod in pkgutil.iter_modules(__path__):
        if mod.name.startswith("nb"):
            importlib.import_module(f"{__name__}.{mod.name}")
    _loaded = True


def keys() -> list[str]:
    """Every registered exercise key, sorted."""
    _load()
    return sorted(CHECKS)


def grade(key: str, answer=EMPTY, **context) -> list[str]:
    """What is still wrong with ``answer`` to exercise ``key`` (empty: it passes)."""
    _load()
    if key not in CHECKS:
        raise KeyError(f"no exercise {key!r}; exercises: {', '.join(sorted(CHECKS))}")
    if answer is EMPTY or answer is None:
        return ["no answer yet: replace `...` in the answer cell with your code"]
    return list(CHECKS[key](answer, **context))


# --------------------------------------------------------------------------- helpers for checks
def number(answer, name: str = "the answer", lo: float = 0.0, hi: float = 1.0) -> list[str]:
    """Problems of ``answer`` as a number in [lo, hi] (a one-element tensor counts)."""
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return [f"{name} should be a number, got {type(answer).__name__}"]
    if value != value or not lo <= value <= hi:
        return [f"{name} should lie in [{lo:g}, {hi:g}] (an accuracy is a fraction, not a "
                f"percentage), got {value:g}"]
    return []


def close(answer, reference: float, tol: float, hint: str) -> list[str]:
    """A problem when ``answer`` is farther than ``tol`` from ``reference``; ``hint`` says
    what to look at (never the reference itself)."""
    if abs(float(answer) - float(reference)) > tol:
        return [f"the number is off by more than {tol:g}: {hint}"]
    return []


def per_model(answer, names, *, lo: float = 0.0, hi: float = 1.0) -> list[str]:
    """Problems of ``answer`` as a dict holding one number in [lo, hi] per name of ``names``."""
    if not isinstance(answer, dict) or set(answer) != set(names):
        got = sorted(answer) if isinstance(answer, dict) else type(answer).__name__
        return [f"the answer should be a dict with one number per model, keys {sorted(names)}, "
                f"got {got}"]
    return [p for k in names for p in number(answer[k], f"answer[{k!r}]", lo=lo, hi=hi)]
