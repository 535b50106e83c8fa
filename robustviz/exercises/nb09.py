"""Checks of notebook 09 (honest evaluation)."""
from __future__ import annotations

import math

from robustviz.exercises import close, number, register


@register("09.1")
def adaptive_mim_gap(answer, *, model, x, y, eps, seed=0) -> list[str]:
    """Plain MIM-10's robust top-1 accuracy minus adaptive MIM-10's, on the masked model."""
    from robustviz import attacks, evaluate

    try:
        value = float(answer)
    except (TypeError, ValueError):
        return [f"the answer should be a number, got {type(answer).__name__}"]
    if value < 0:
        return ["the gap is negative: subtract the adaptive accuracy from the plain one (the "
                "adaptive attack keeps the worse of two attacks, so it never leaves more)"]
    problems = number(value, "the gap")
    if problems:
        return problems
    mim = attacks.MIM(eps=eps, steps=10)
    r = evaluate.evaluate(model, (x, y), {"plain": mim, "adaptive": attacks.Adaptive(attack=mim)},
                          topk=(1,), seed=seed, progress=False)
    plain, adaptive = r.robust("plain"), r.robust("adaptive")
    ref = plain - adaptive
    if abs(value - ref) <= 0.02:
        return []
    if abs(value - adaptive) < 1e-9 or abs(value - plain) < 1e-9:
        return ["that is one of the two robust accuracies; the answer is their difference "
                "(plain minus adaptive)"]
    return close(value, ref, 0.02, "MIM(eps=EPS, steps=10) plainly and through "
                 "Adaptive(attack=...), on the first 100 images of sub, scored with "
                 "rv.evaluate.evaluate(..., seed=SEED); plain minus adaptive")


@register("09.2")
def wilson_interval(answer, *, result, attack="PGD-20") -> list[str]:
    """The 95% Wilson interval of ``result``'s robust accuracy under ``attack`` alone."""
    from robustviz.figures import binomial_ci

    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        return [f"the answer should be a tuple (low, high), got {answer!r}"]
    problems = [p for v, name in zip(answer, ("low", "high")) for p in number(v, name)]
    if problems:
        return problems
    low, high = (float(v) for v in answer)
    if low > high:
        return ["low is above high: the tuple is (low, high)"]
    p, n = result.robust(attack), result.n
    ref = binomial_ci(p, n)
    if abs(low - ref[0]) <= 1e-3 and abs(high - ref[1]) <= 1e-3:
        return []
    half = 1.96 * math.sqrt(p * (1 - p) / n)
    if abs(low - max(0.0, p - half)) <= 1e-3 and abs(high - min(1.0, p + half)) <= 1e-3:
        return ["that is the normal-approximation interval (p +- 1.96 sd); the exercise asks "
                "for the Wilson interval (rv.figures.binomial_ci)"]
    worst = result.worst_case()
    if all(abs(a - b) <= 1e-3 for a, b in zip((low, high), binomial_ci(worst.accuracy, n))) \
            and abs(worst.accuracy - p) > 1e-9:
        return [f"that is the interval of the worst case over all attacks; the exercise asks "
                f"for {attack} alone"]
    if not low <= p <= high:
        return [f"the interval does not contain the measured accuracy under {attack}"]
    return [f"the interval is off: the Wilson interval (95%) of the robust accuracy under "
            f"{attack} on the result's images"]


@register("09.3")
def best_transfer(answer, *, transfer) -> list[str]:
    """Per target (column), the other source (row) that leaves it with the lowest accuracy."""
    names = list(transfer.names)
    if not isinstance(answer, dict) or set(answer) != set(names):
        got = sorted(answer) if isinstance(answer, dict) else type(answer).__name__
        return [f"the answer should be a dict with one source per target, keys {sorted(names)}, "
                f"got {got}"]
    bad = [k for k, v in answer.items() if v not in names]
    if bad:
        return [f"answer[{bad[0]!r}] should be one of the model names {names}"]
    acc = transfer.accuracy

    def best(target_axis: bool) -> dict:
        out = {}
        for j, t in enumerate(names):
            if target_axis:   # the column of target t: rows are the sources
                cand = [(acc[i][j], s) for i, s in enumerate(names) if s != t]
            else:             # the row of t read as if it were a column
                cand = [(acc[j][i], s) for i, s in enumerate(names) if s != t]
            low = min(a for a, _ in cand)
            out[t] = {s for a, s in cand if a <= low + 1e-12}   # every source at the minimum
        return out

    ref, transposed = best(True), best(False)
    if any(answer[t] == t for t in names):
        return ["a model is its own best source there: that is the white-box attack (the "
                "diagonal); the exercise asks for the best *other* model"]
    wrong = [t for t in names if answer[t] not in ref[t]]
    if not wrong:
        return []
    if all(answer[t] in transposed[t] for t in names):
        return ["you read the rows as targets: rows are the models the examples were crafted "
                "on (sources), columns the models tested (targets)"]
    return [f"answer[{t!r}] is not the source that leaves {t} with the lowest accuracy "
            f"(look down the column of {t})" for t in wrong]
