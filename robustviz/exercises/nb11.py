"""Checks of notebook 11 (robust overfitting and early stopping)."""
from __future__ import annotations

from robustviz.exercises import close, number, register


@register("11.1")
def final_gap(answer, *, records) -> list[str]:
    """The robust generalization gap of the last epoch record: training robust accuracy
    (``train_acc_adv``) minus test robust accuracy (``val_robust_acc``)."""
    problems = number(answer, "the gap", -1.0, 1.0)
    if problems:
        if not isinstance(answer, bool) and isinstance(answer, (int, float)) and abs(answer) > 1:
            return ["the gap should be a difference of fractions in [-1, 1], not of percentages"]
        return problems
    epochs = [r for r in records if r.get("kind", "epoch") == "epoch"]
    last = max(epochs, key=lambda r: r["epoch"])
    ref = last["train_acc_adv"] - last["val_robust_acc"]
    got = float(answer)
    if abs(got - ref) <= 1e-6:
        return []
    if abs(got + ref) <= 1e-6:
        return ["the sign is reversed: training robust accuracy minus test robust accuracy"]
    if abs(got - (last["train_acc_adv"] - last["val_clean_acc"])) <= 1e-6:
        return ["that subtracts the test *clean* accuracy; the gap compares robust accuracies"]
    if any(abs(got - (r["train_acc_adv"] - r["val_robust_acc"])) <= 1e-6 for r in epochs):
        return ["that is the gap of another epoch; take the last epoch record"]
    return close(got, ref, 1e-6, "read train_acc_adv and val_robust_acc of the last epoch record")


@register("11.2")
def kept_epoch(answer, *, history) -> list[str]:
    """The epoch that early stopping on the validation split keeps."""
    if isinstance(answer, bool) or not isinstance(answer, int):
        try:
            if float(answer) != int(float(answer)):
                raise ValueError
        except (TypeError, ValueError):
            return [f"the answer should be an epoch number (an int), got {type(answer).__name__}"]
    got = int(answer)
    ref = max(history, key=lambda h: h["val_robust"])["epoch"]
    if got == ref:
        return []
    by_test = max(history, key=lambda h: h["test_robust"])["epoch"]
    if got == by_test:
        return ["that is the epoch the *test* column would choose; early stopping may only read "
                "the validation split"]
    index = max(range(len(history)), key=lambda i: history[i]["val_robust"])
    if got == index and history[index]["epoch"] != index:
        return ["that is a position in the list (counted from 0); answer the record's epoch number"]
    by_clean = max(history, key=lambda h: h["val_clean"])["epoch"]
    if got == by_clean:
        return ["that epoch has the best *clean* validation accuracy; the rule keeps the best "
                "robust one"]
    return ["that is not the epoch with the highest validation robust accuracy"]
