"""Checks of notebook 07 (feature inversion)."""
from __future__ import annotations

from robustviz.exercises import close, number, register


def _roughness(result) -> float:
    d = result.images - result.start[:, None]
    tv = (d[..., 1:, :] - d[..., :-1, :]).abs().mean() + (d[..., :, 1:] - d[..., :, :-1]).abs().mean()
    return float(tv / d.abs().mean())


@register("07.1")
def strongest_channel(answer, *, models, seeds, layer="conv2", channels=range(6), seed_index=0,
                      steps=30, step_size=0.02, robust="PGD-AT") -> list[str]:
    """The channel of ``layer`` whose activation the robust model raises the most from seed
    ``seed_index`` (the explorer's gain: last minus first activation)."""
    from robustviz.diagnostics import feature_inversion

    channels = list(channels)
    if isinstance(answer, bool) or not isinstance(answer, int):
        try:
            import numpy as np

            ok = isinstance(answer, np.integer)
        except ImportError:  # pragma: no cover
            ok = False
        if not ok:
            return [f"the answer should be a channel index (an int), got {type(answer).__name__}"]
    answer = int(answer)
    if answer not in channels:
        return [f"the answer should be one of the channels compared, {channels[0]} to {channels[-1]}"]
    gains = {}
    for name, m in models.items():
        r = feature_inversion(m, layer, channels, seeds=seeds[seed_index:seed_index + 1], steps=steps,
                              step_size=step_size, seed=0)
        g = (r.objective[-1] - r.objective[0])[0]
        gains[name] = {c: float(g[k]) for k, c in enumerate(channels)}
    best = {name: max(g, key=g.get) for name, g in gains.items()}
    if answer == best[robust]:
        return []
    others = [n for n in models if n != robust and best[n] == answer]
    if others:
        return [f"that is the channel the {others[0]} model raises the most; the exercise asks "
                f"for the robust model ({robust}): read explorer.gains[{robust!r}]"]
    return [f"another channel rises more for {robust}: compare explorer.gains[{robust!r}] over "
            f"every channel {channels[0]}..{channels[-1]} of {layer!r}, from seed {seed_index}"]


@register("07.2")
def final_relative_distance(answer, *, results) -> list[str]:
    """Per model, the mean over the targets of the relative representation distance at the
    last step of representation inversion."""
    names = list(results)
    if not isinstance(answer, dict) or set(answer) != set(names):
        got = sorted(answer) if isinstance(answer, dict) else type(answer).__name__
        return [f"the answer should be a dict with one number per model, keys {sorted(names)}, got {got}"]
    out = []
    for name, r in results.items():
        problems = number(answer[name], f"answer[{name!r}]", lo=0.0, hi=10.0)
        if problems:
            out += problems
            continue
        ref = float(r.objective[-1].mean())
        start = float(r.objective[0].mean())
        pixels = float((r.images - r.targets).flatten(1).norm(dim=1).mean())
        a = float(answer[name])
        if abs(a - start) < 1e-6 and abs(start - ref) > 1e-3:
            out.append(f"answer[{name!r}] is the distance at the start (step 0); take the last step")
        elif abs(a - pixels) < 1e-3 and abs(pixels - ref) > 1e-3:
            out.append(f"answer[{name!r}] is the distance between the images in pixels; the exercise "
                       f"asks for the relative distance of the representations (the objective)")
        else:
            out += close(a, ref, 1e-3, f"answer[{name!r}]: the mean over the targets of the "
                         f"objective's last row")
    return out


@register("07.3")
def tv_penalty_ratio(answer, *, model, seeds, neurons, steps=40, step_size=0.02,
                     penalty_weight=1.0, seed=0) -> list[str]:
    """Roughness of the natural model's maps with a total-variation penalty over without."""
    from robustviz.diagnostics import feature_inversion

    problems = number(answer, "the ratio", lo=0.0, hi=100.0)
    if problems:
        return problems
    kw = dict(neurons=list(neurons), seeds=seeds, steps=steps, step_size=step_size, seed=seed)
    plain = _roughness(feature_inversion(model, "penultimate", **kw))
    smooth = _roughness(feature_inversion(model, "penultimate", penalty="tv",
                                          penalty_weight=penalty_weight, **kw))
    ref = smooth / plain
    a = float(answer)
    if abs(a - 1 / ref) < 1e-3 and abs(ref - 1 / ref) > 1e-3:
        return ["the ratio is upside down: roughness with the penalty divided by roughness without"]
    return close(a, ref, 5e-3, "divide the roughness (as defined in section 1) of the penalised maps "
                 "by that of the plain maps, both of the natural model from the first seed")
