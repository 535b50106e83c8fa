"""Robustness evaluation: accuracy tables, robustness curves, transfer, masking checks.

::

    from robustviz.evaluate import evaluate, accuracy_vs_eps, transfer_matrix
    res = evaluate(model, test, {"fgsm": FGSM(eps=0.1), "pgd20": PGD(eps=0.1, steps=20)})
    print(res.table())
    curve = accuracy_vs_eps(model, test)                  # 0 .. 32/255
    for point in adversarial_sweep(model, test, lambda e: PGD(eps=e), [0.05, 0.1]):
        ...                                               # x_adv per eps, for diagnostics
"""
from robustviz.evaluate._core import EvalResult, evaluate
from robustviz.evaluate._curves import (DEFAULT_EPS, DEFAULT_STEPS, Curve, SweepPoint,
                                        accuracy_vs_eps, accuracy_vs_steps, adversarial_sweep)
from robustviz.evaluate._masking import MaskingCheck, MaskingReport, gradient_masking_report
from robustviz.evaluate._transfer import TransferMatrix, TransferResult, transfer, transfer_matrix

__all__ = [
    "evaluate", "EvalResult",
    "adversarial_sweep", "SweepPoint", "accuracy_vs_eps", "accuracy_vs_steps", "Curve",
    "DEFAULT_EPS", "DEFAULT_STEPS",
    "transfer", "transfer_matrix", "TransferResult", "TransferMatrix",
    "gradient_masking_report", "MaskingReport", "MaskingCheck",
    "corruption_accuracy", "corrupt", "corruption_plan", "CorruptionResult", "CORRUPTIONS",
    "COMMON_CORRUPTIONS", "EXTRA_CORRUPTIONS", "SEVERITIES",
]
from robustviz.evaluate._corruptions import (COMMON_CORRUPTIONS, CORRUPTIONS,  # noqa: E402
                                             EXTRA_CORRUPTIONS, SEVERITIES, CorruptionResult,
                                             corrupt, corruption_accuracy, corruption_plan)
