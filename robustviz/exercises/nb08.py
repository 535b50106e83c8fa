"""Checks of notebook 08 (loss landscapes)."""
from __future__ import annotations

import numpy as np

from robustviz.exercises import close, number, per_model, register


def _axis_rise(v: np.ndarray, c: int, axis: int) -> float:
    line = v[c, :] if axis == 1 else v[:, c]
    return float((line[0] + line[-1]) / 2 - v[c, c])


@register("08.1")
def second_direction_rise(answer, *, landscapes) -> list[str]:
    """Per model, the mean rise of the clean loss at beta = +-1 along alpha = 0 of a 2-D
    landscape."""
    problems = per_model(answer, landscapes, lo=-1e3, hi=1e3)
    if problems:
        return problems
    out = []
    for name, L in landscapes.items():
        alphas, betas = np.asarray(L.coords[0]), np.asarray(L.coords[1])
        c = int(np.argmin(np.abs(alphas)))
        if abs(alphas[c]) > 1e-9 or not np.allclose(alphas, betas):
            raise ValueError("exercise 08.1 expects a square grid holding 0")
        ref = _axis_rise(L.loss, c, axis=1)
        wrong_axis = _axis_rise(L.loss, c, axis=0)
        got = float(answer[name])
        if abs(got - ref) <= 1e-3:
            continue
        if abs(got - wrong_axis) < 1e-6:
            out.append(f"answer[{name!r}] follows the first direction d1 (loss[:, c]): the "
                       f"second direction varies the second index, beta")
        elif abs(got - (L.loss[c, 0] + L.loss[c, -1]) / 2) < 1e-6:
            out.append(f"answer[{name!r}] is the mean loss at the two ends: subtract the loss "
                       f"at the centre")
        else:
            out += close(got, ref, 1e-3, f"answer[{name!r}]: mean of the loss at beta = -1 and "
                         f"+1 with alpha = 0, minus the loss at (0, 0)")
    return out


@register("08.2")
def rise_with_biases(answer, *, models, data, alphas, seed=0) -> list[str]:
    """Per model, Landscape.rise(1.0) of the clean 1-D weight landscape with ignore="none"."""
    from robustviz import diagnostics

    problems = per_model(answer, models, lo=-1e3, hi=1e3)
    if problems:
        return problems
    out = []
    for name, m in models.items():
        ref = diagnostics.weight_landscape(m, data, dims=1, alphas=alphas, seed=seed,
                                           ignore="none", progress=False).rise(1.0)
        default = diagnostics.weight_landscape(m, data, dims=1, alphas=alphas, seed=seed,
                                               progress=False).rise(1.0)
        got = float(answer[name])
        if abs(got - default) < 1e-6 and abs(ref - default) > 1e-3:
            out.append(f"answer[{name!r}] leaves the biases unperturbed: pass ignore=\"none\"")
        else:
            out += close(got, ref, 1e-3, f"answer[{name!r}]: rise(1.0) of weight_landscape(model, "
                         f"sub, dims=1, alphas=grid, seed=SEED, ignore=\"none\")")
    return out


@register("08.3")
def accuracy_barrier(answer, *, line) -> list[str]:
    """Lowest accuracy over 0 <= a <= 1 of an interpolation landscape minus the lower end."""
    problems = number(answer, "the answer", lo=-1.0, hi=1.0)
    if problems:
        return problems
    a = np.asarray(line.coords[0])
    inside = (a >= -1e-9) & (a <= 1 + 1e-9)
    ends = [line.at([0.0], "accuracy"), line.at([1.0], "accuracy")]
    ref = float(line.accuracy[inside].min()) - min(ends)
    got = float(answer)
    whole = float(line.accuracy.min()) - min(ends)
    if abs(got - whole) < 1e-9 and abs(whole - ref) > 1e-9:
        return ["the lowest accuracy is taken over the whole line: keep only 0 <= a <= 1 "
                "(the points beyond the two models are extrapolations)"]
    if abs(got - (float(line.accuracy[inside].min()) - max(ends))) < 1e-9 and ends[0] != ends[1]:
        return ["compare with the lower of the two end points' accuracies, not the higher"]
    if abs(got - (float(line.loss[inside].min()) - min(line.at([0.0]), line.at([1.0])))) < 1e-9:
        return ["that is computed from the loss: the exercise asks about the accuracy"]
    return close(got, ref, 1e-6, "the minimum of line.accuracy over 0 <= a <= 1 minus the lower "
                 "of the accuracies at a = 0 and a = 1")
