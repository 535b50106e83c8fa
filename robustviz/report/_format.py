"""How the report writes numbers and names: percentages, intervals, the bold best cell,
a run's defense, an interval's method."""
from __future__ import annotations


def pct(p: float) -> str:
    """The one way percentages are printed: one decimal, no sign."""
    return f"{100 * p:.1f}"


def pct_ci(p: float, n: int) -> str:
    from robustviz.figures import binomial_ci

    lo, hi = binomial_ci(p, n)
    return f"{pct(p)} [{pct(lo)}, {pct(hi)}]"


def best_cells(values: list[float], n: int, col: int, *, lower: bool = False) -> set:
    """The best row of a column, only when its 95% interval clears the runner-up's."""
    from robustviz.figures import binomial_ci, intervals_overlap

    if len(values) < 2:
        return set()
    order = sorted(range(len(values)), key=lambda i: values[i], reverse=not lower)
    a, b = order[0], order[1]
    if intervals_overlap(binomial_ci(values[a], n), binomial_ci(values[b], n)):
        return set()
    return {(a, col)}


def defense_name(config: dict) -> str:
    d = config.get("defense") or {}
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    if not d and model.get("name") in ("robustbench", "timm", "torchvision"):
        # a model of another zoo: its training is not robustviz's to name
        return f"{model['name']}: {model.get('model', '?')}"
    if isinstance(d, dict):
        name = d.get("name", "nat")
        extra = [t.get("name") for t in d.get("terms", []) if isinstance(t, dict)]
        return "+".join([name] + extra)
    return str(d)


def interval_name(results) -> str:
    """How the R-DIV intervals of ``results`` were computed, in words for a caption."""
    methods = {getattr(r, "ci_method", None) for r in results} - {None}
    names = {"jackknife": "delete-a-group jackknife interval",
             "bootstrap": "bootstrap interval over batches"}
    if len(methods) == 1:
        return names.get(next(iter(methods)), "interval")
    if methods:
        return "interval (" + " or ".join(sorted(names.get(m, m) for m in methods)) + ")"
    return "interval"


