"""Checks of notebook 03 (latent divergence)."""
from __future__ import annotations

from robustviz.exercises import close, per_model, register


def _rdiv(f, **kw) -> float:
    from robustviz.diagnostics import divergence

    return float(divergence(f.z_nat, kw.pop("z_adv", f.z_adv), f.y, n_boot=0, **kw).rdiv)


@register("03.1")
def l2_rdiv(answer, *, feats) -> list[str]:
    """Per model, R-DIV with the Euclidean distance on the attacked features."""
    problems = per_model(answer, feats, lo=0.0, hi=10.0)
    if problems:
        return problems
    out = []
    for name, f in feats.items():
        ref, cos = _rdiv(f, distance="l2"), _rdiv(f)
        a = float(answer[name])
        if abs(a - cos) < 1e-6 and abs(ref - cos) > 1e-3:
            out.append(f"answer[{name!r}] is the cosine R-DIV: pass distance=\"l2\"")
        elif abs(a - _rdiv(f, z_adv=None, distance="l2")) < 1e-6:
            out.append(f"answer[{name!r}] leaves the adversarial features out: pass f.z_adv")
        else:
            out += close(a, ref, 1e-3, f"answer[{name!r}]: divergence(f.z_nat, f.z_adv, f.y, "
                         f"distance=\"l2\").rdiv on that model's features")
    return out


@register("03.2")
def where_the_attack_sends(answer, *, features, classes, true_class) -> list[str]:
    """The class most often predicted on the adversarial versions of ``true_class``."""
    import torch

    if not isinstance(answer, str):
        return [f"the answer should be a class name (a string from test.classes), got "
                f"{type(answer).__name__}"]
    if answer not in classes:
        return [f"{answer!r} is not a class name; choose one of {list(classes)}"]
    c = list(classes).index(true_class)
    mask = features.y == c
    counts = lambda logits: torch.bincount(logits[mask].argmax(1), minlength=len(classes))  # noqa: E731
    adv, nat = counts(features.logits_adv), counts(features.logits_nat)
    ref = classes[int(adv.argmax())]
    if answer == ref:
        return []
    if answer == true_class:
        return [f"that is the true class: look at where the model's predictions on the "
                f"adversarial versions of the {true_class} images go"]
    if answer == classes[int(nat.argmax())] and nat.argmax() != adv.argmax():
        return ["that is the most frequent prediction on the clean images: use the "
                "adversarial logits (logits_adv)"]
    return [f"that is not the most frequent prediction on the adversarial versions of the "
            f"{true_class} images: count the argmax of logits_adv over the images with "
            f"y == {c}"]


@register("03.3")
def clean_rdiv(answer, *, feats) -> list[str]:
    """Per model, the clean-only R-DIV (sets of natural examples only)."""
    problems = per_model(answer, feats, lo=0.0, hi=10.0)
    if problems:
        return problems
    out = []
    for name, f in feats.items():
        ref, adv = _rdiv(f, z_adv=None), _rdiv(f)
        a = float(answer[name])
        if abs(a - adv) < 1e-6 and abs(ref - adv) > 1e-3:
            out.append(f"answer[{name!r}] is the adversarial R-DIV: pass None instead of "
                       f"f.z_adv for the clean-only variant")
        else:
            out += close(a, ref, 1e-3, f"answer[{name!r}]: divergence(f.z_nat, None, f.y).rdiv "
                         f"(cosine distance) on that model's features")
    return out
