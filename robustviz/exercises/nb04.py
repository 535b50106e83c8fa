"""Checks of notebook 04 (contrastive defenses)."""
from __future__ import annotations

from robustviz.exercises import close, number, register


def _rdiv(f) -> float:
    from robustviz.diagnostics import divergence

    return divergence(f.z_nat, f.z_adv, f.y, n_boot=0).rdiv


@register("04.1")
def lower_rdiv_tap(answer, *, features) -> list[str]:
    """Which of the models (by label) has the lower R-DIV on its attacked features."""
    labels = list(features)
    if not isinstance(answer, str) or answer not in labels:
        return [f"the answer should be one of the strings {labels}, got {answer!r}"]
    rdiv = {label: _rdiv(f) for label, f in features.items()}
    if answer == min(rdiv, key=rdiv.get):
        return []
    return ["that model has the *higher* R-DIV: compare divs[label].rdiv of the two models "
            "(lower R-DIV: classes tighter relative to their separation)"]


@register("04.2")
def leaked_positive_fraction(answer, *, run_dir) -> list[str]:
    """Positives over positives plus negatives per anchor at the end of a run."""
    from robustviz.diagnostics import selection_stats

    problems = number(answer, "the fraction")
    if problems:
        return problems
    pos, neg = selection_stats(run_dir).final
    ref = pos / (pos + neg)
    a = float(answer)
    if abs(a - pos / neg) < 1e-6 and abs(pos / neg - ref) > 1e-3:
        return ["that is positives over negatives; the exercise asks for positives over all the "
                "samples compared (positives plus negatives)"]
    return close(a, ref, 1e-3, "read the final (positives, negatives) per anchor of the leaked run "
                 "(stats[\"leaked\"].final)")


@register("04.3")
def embedding_rdiv(answer, *, model, zoo_models, data, eps, seed=0) -> list[str]:
    """R-DIV of the student's own embedding-defense model on ``data`` (PGD-10)."""
    from robustviz.attacks import PGD
    from robustviz.diagnostics import attacked_features

    problems = number(answer, "the R-DIV", lo=0.0, hi=10.0)
    if problems:
        return problems
    if any(model is m for m in zoo_models.values()):
        return ["that is a zoo model: train a new TinyCNN with the embedding defense and pass it as model"]
    f = attacked_features(model, data, PGD(eps=eps, steps=10), seed=seed)
    ref = _rdiv(f)
    return close(answer, ref, 1e-3, "R-DIV of your model's penultimate features on the images given, "
                 "natural and PGD-10 adversarial (attacked_features(..., seed=SEED), then divergence)")
