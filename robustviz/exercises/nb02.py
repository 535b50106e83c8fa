"""Checks of notebook 02 (adversarial training)."""
from __future__ import annotations

import copy

from robustviz.exercises import close, number, register


def _per_key(answer, keys, lo, hi, what="number") -> list[str]:
    keys = list(keys)
    if not isinstance(answer, dict) or set(answer) != set(keys):
        got = sorted(answer) if isinstance(answer, dict) else type(answer).__name__
        return [f"the answer should be a dict with one {what} per key {sorted(keys)}, got {got}"]
    return [p for k in keys for p in number(answer[k], f"answer[{k!r}]", lo=lo, hi=hi)]


@register("02.1")
def overfitting_gap(answer, *, histories) -> list[str]:
    """Per run, train_acc_adv minus val_robust_acc at the last epoch."""
    problems = _per_key(answer, histories, -1.0, 1.0, "gap")
    if problems:
        return problems
    out = []
    for label, hist in histories.items():
        last, first = hist[-1], hist[0]
        ref = last["train_acc_adv"] - last["val_robust_acc"]
        got = float(answer[label])
        if abs(got + ref) < 1e-9 and abs(ref) > 1e-9:
            out.append(f"answer[{label!r}] has the wrong sign: own-attack accuracy minus PGD-20 "
                       f"accuracy")
        elif len(hist) > 1 and abs(got - (first["train_acc_adv"] - first["val_robust_acc"])) < 1e-9 \
                and abs(got - ref) > 1e-9:
            out.append(f"answer[{label!r}] reads the first epoch: the exercise asks for the last")
        elif abs(got - (last["val_clean_acc"] - last["val_robust_acc"])) < 1e-9 and abs(got - ref) > 1e-9:
            out.append(f"answer[{label!r}] uses the clean validation accuracy: compare the "
                       f"accuracy against the run's own training attack (train_acc_adv)")
        else:
            out += close(got, ref, 1e-6, f"answer[{label!r}]: train_acc_adv minus val_robust_acc "
                         f"of the last record of histories[{label!r}]")
    return out


@register("02.2")
def trades_forwards(answer, *, model, eps) -> list[str]:
    """Forward passes of one TRADES training step with a 10-step PGD attack."""
    import torch

    from robustviz import attacks, defenses

    if isinstance(answer, bool) or not isinstance(answer, int):
        try:
            if float(answer) != int(float(answer)):
                raise ValueError
        except (TypeError, ValueError):
            return [f"the answer should be a whole number of forward passes, got {answer!r}"]
    got = int(answer)
    net = copy.deepcopy(model).train()
    calls = []
    hook = net.register_forward_hook(lambda *_: calls.append(1))
    try:
        n_in = getattr(net, "in_channels", 1)
        size = tuple(getattr(net, "input_size", (28, 28)))
        gen = torch.Generator().manual_seed(0)
        x = torch.rand(4, n_in, *size, generator=gen)
        y = torch.arange(4) % getattr(net, "num_classes", 10)
        trades = defenses.TRADES(beta=6.0, attack=attacks.PGD(eps=eps, step_size=eps / 4, steps=10))
        trades(net, x, y)[0].backward()
    finally:
        hook.remove()
    ref = len(calls)
    if got == ref:
        return []
    if got == 10:
        return ["10 counts only the attack's steps: the attack needs a target and the loss "
                "needs logits too; count every call of the model"]
    if got == 11:
        return ["11 counts the attack's steps and one more pass; TRADES' loss uses two sets of "
                "logits, and its attack ascends a KL to a prediction it must compute first"]
    return [f"not the number of model calls in one TRADES step with 10 attack steps; "
            f"{'too many' if got > ref else 'too few'}: count with a forward hook as in section 2"]


@register("02.3")
def price_of_robustness(answer, *, results, reference="NAT", attack="PGD-20") -> list[str]:
    """Per defended model, clean points lost per robust point gained relative to NAT."""
    others = [k for k in results if k != reference]
    problems = _per_key(answer, others, -1e3, 1e3, "ratio")
    if problems:
        return problems
    base = results[reference]
    out = []
    for label in others:
        r = results[label]
        lost = base.clean[1] - r.clean[1]
        gained = r.robust(attack) - base.robust(attack)
        ref = lost / gained
        got = float(answer[label])
        if lost and abs(got - gained / lost) < 1e-9 and abs(got - ref) > 1e-9:
            out.append(f"answer[{label!r}] is inverted: clean points lost divided by robust points "
                       f"gained")
        elif abs(got + ref) < 1e-9 and abs(ref) > 1e-9:
            out.append(f"answer[{label!r}] has the wrong sign: NAT's clean accuracy minus the "
                       f"model's, over the model's PGD-20 accuracy minus NAT's")
        else:
            out += close(got, ref, 1e-6, f"answer[{label!r}]: (clean accuracy of NAT - of the "
                         f"model) / ({attack} accuracy of the model - of NAT), from results")
    return out
