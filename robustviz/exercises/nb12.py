"""Checks of notebook 12 (the accuracy-robustness trade-off)."""
from __future__ import annotations

from robustviz.exercises import close, number, register


def _per_key(answer, names, lo=0.0, hi=1.0) -> list[str]:
    if not isinstance(answer, dict) or set(answer) != set(names):
        got = sorted(answer) if isinstance(answer, dict) else type(answer).__name__
        return [f"the answer should be a dict with one number per model, keys {sorted(names)}, "
                f"got {got}"]
    return [p for k in names for p in number(answer[k], f"answer[{k!r}]", lo, hi)]


@register("12.1")
def boundary_error(answer, *, models, x, y, attack, seed=0) -> list[str]:
    """Per model, Zhang et al.'s boundary error: right on the clean image, wrong after the
    attack (robust accuracy counts an image only when it is right on both)."""
    from robustviz import evaluate

    problems = _per_key(answer, models)
    if problems:
        return problems
    out = []
    for name, m in models.items():
        r = evaluate.evaluate(m, (x, y), {"a": attack}, topk=(1,), seed=seed, progress=False)
        clean, robust = r.clean[1], r.robust("a")
        ref, got = clean - robust, float(answer[name])
        if abs(ref - got) <= 0.01:
            continue
        if abs(got - (1 - robust)) < 0.005 and abs((1 - robust) - ref) > 0.01:
            out.append(f"answer[{name!r}] is the whole robust error; the boundary error leaves out "
                       f"the images that are already wrong without an attack")
        elif abs(got - (1 - clean)) < 0.005 and abs((1 - clean) - ref) > 0.01:
            out.append(f"answer[{name!r}] is the natural error (wrong on clean images); the "
                       f"boundary error counts the images the attack turns from right to wrong")
        else:
            out += close(got, ref, 0.01, f"answer[{name!r}]: the fraction of the images that are "
                         f"right clean and wrong under the attack given, scored with "
                         f"rv.evaluate.evaluate(..., seed=SEED)")
    return out


@register("12.2")
def price_of_robustness(answer, *, points, reference="NAT") -> list[str]:
    """Per defense, clean points lost per robust point gained against the reference."""
    names = [k for k in points if k != reference]
    problems = _per_key(answer, names, lo=-1e6, hi=1e6)
    if problems:
        return problems
    c0, r0 = points[reference]
    out = []
    for k in names:
        c, r = points[k]
        ref, got = (c0 - c) / (r - r0), float(answer[k])
        if abs(got - ref) <= 1e-3 * max(1.0, abs(ref)):
            continue
        if ref != 0 and abs(got - 1 / ref) <= 1e-3 * max(1.0, abs(1 / ref)):
            out.append(f"answer[{k!r}] is upside down: robust points gained per clean point lost")
        elif abs(got + ref) <= 1e-3 * max(1.0, abs(ref)):
            out.append(f"answer[{k!r}] has the wrong sign: a defense that loses clean accuracy "
                       f"and gains robustness has a positive price")
        else:
            out.append(f"answer[{k!r}] is off: (clean of {reference} - clean of the model) / "
                       f"(robust of the model - robust of {reference}), from `points`")
    return out
