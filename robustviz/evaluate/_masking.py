"""Gradient-masking sanity report (Athalye et al. 2018; Carlini et al. 2019)."""
from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from robustviz._validate import check_choice, check_int, check_positive, check_probability
from robustviz.attacks import FGSM, PGD
from robustviz.attacks.autoattack import SquareAttack as _SquareAttack
from robustviz.evaluate._common import as_tensors, check_model, fmt_pct
from robustviz.evaluate._core import evaluate
from robustviz.evaluate._curves import accuracy_vs_eps
from robustviz.evaluate._transfer import transfer

__all__ = ["MaskingCheck", "MaskingReport", "gradient_masking_report"]


@dataclasses.dataclass(frozen=True)
class MaskingCheck:
    """One sanity check: its name, whether it raised a flag, a sentence, and the numbers."""

    name: str
    flagged: bool
    message: str
    values: dict

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class MaskingReport:
    """Result of :func:`gradient_masking_report`.

    Attributes
    ----------
    checks : tuple of MaskingCheck
        ``eps_curve`` (accuracy must fall towards 0 as eps grows, never rise),
        ``more_steps`` (more PGD steps must not raise accuracy), ``fgsm_vs_pgd``
        (single-step must not beat multi-step), ``transfer`` (a transfer attack from a
        surrogate must not beat the white-box attack; only with a surrogate), and the
        flags of Croce & Hein's AutoAttack: ``randomized`` (two forward passes differ),
        ``probabilities`` (outputs are probabilities, not logits), ``zero_gradients``
        (input gradients exactly zero on many examples), ``square_vs_whitebox`` (the
        black-box Square attack beats white-box PGD), ``dynamic`` (the forward pass runs
        autograd: optimisation at inference).
    clean : float
        Clean top-1 accuracy.
    n : int
    """

    checks: tuple
    clean: float
    n: int

    @property
    def flagged(self) -> bool:
        """True when any check raised a flag."""
        return any(c.flagged for c in self.checks)

    @property
    def flags(self) -> tuple:
        """Names of the checks that raised a flag."""
        return tuple(c.name for c in self.checks if c.flagged)

    def __getitem__(self, name: str) -> MaskingCheck:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check named {name!r}; checks: {[c.name for c in self.checks]}")

    def to_dict(self) -> dict:
        return {"flagged": self.flagged, "flags": list(self.flags), "clean": self.clean,
                "n": self.n, "checks": [c.to_dict() for c in self.checks]}

    def table(self) -> str:
        lines = [f"gradient-masking sanity checks on {self.n} examples "
                 f"(clean accuracy {fmt_pct(self.clean).strip()}%)"]
        for c in self.checks:
            lines.append(f"[{'FLAG' if c.flagged else ' ok '}] {c.name:12s} {c.message}")
        lines.append("verdict: " + ("possible gradient masking: " + ", ".join(self.flags)
                                    if self.flagged else "no sign of gradient masking"))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def gradient_masking_report(model: nn.Module, data, *, eps: float, norm: str = "linf",
                            steps: int = 20, more_steps: int = 100,
                            step_size: float | None = None, large_eps: float | None = None,
                            surrogate: nn.Module | None = None, tol: float = 0.02,
                            zero_tol: float = 0.1, square_queries: int = 1000,
                            zero_grad_tol: float = 0.01, bf16: bool = False,
                            batch_size: int = 256, seed: int = 0,
                            progress: bool = True) -> MaskingReport:
    """Run the sanity checks of Athalye et al. (2018) that reveal gradient masking.

    Checks (accuracies are top-1 robust accuracies, fractions):

    1. ``eps_curve``: PGD accuracy at ``eps, 2 eps, 4 eps, large_eps`` must decrease
       (no rise above ``tol``) and reach at most ``zero_tol`` at ``large_eps``
       (default 0.5 for Linf, where every image can be turned into uniform grey;
       ``0.5 * sqrt(C*H*W)`` for L2). Unbounded attacks must succeed.
    2. ``more_steps``: PGD with ``more_steps`` must not be more than ``tol`` *less*
       successful than PGD with ``steps`` (same step size ``eps / 4``, same starts).
    3. ``fgsm_vs_pgd``: FGSM (L2: one normalised-gradient step of length eps) must not
       beat PGD by more than ``tol``.
    4. ``transfer`` (only with ``surrogate``): PGD examples crafted on the surrogate must
       not hurt ``model`` more than its own white-box PGD (by more than ``tol``).

    And the automatic checks of Croce & Hein's AutoAttack code (its ``flags_doc.md``),
    each a reason the standard evaluation may be unreliable:

    5. ``randomized``: two forward passes on the same images differ (a randomized
       defense, or a layer left in training mode): use ``AutoAttack(version="rand")``
       (expectation over transformation).
    6. ``probabilities``: every output row lies in [0, 1] and sums to 1: the model ends in
       a softmax, and cross-entropy on probabilities has vanishing gradients.
    7. ``zero_gradients``: the input gradient of the cross-entropy is exactly zero on more
       than ``zero_grad_tol`` of the examples (gradient attacks cannot move them).
    8. ``square_vs_whitebox``: the black-box Square attack (Andriushchenko et al., ECCV
       2020; ``square_queries`` queries, 0 skips it) leaves fewer examples correct than
       white-box PGD (by more than ``tol``): the gradients are not informative.
    9. ``dynamic``: the forward pass calls autograd (``torch.autograd.grad`` or
       ``backward``): the model optimises at inference, and attacks that differentiate
       the forward pass alone may not see what it computes.

    Parameters
    ----------
    model : nn.Module
    data : Dataset or (Tensor, Tensor)
        A few hundred examples suffice.
    eps : float
        The nominal threat radius (e.g. 0.1 Fashion-MNIST, 8/255 CIFAR-10).
    norm : {"linf", "l2"}
    steps, more_steps : int
    step_size : float, optional
        Default ``eps / 4`` (scaled with eps on the eps curve).
    large_eps : float, optional
    surrogate : nn.Module, optional
        A model trained without the suspected defence (e.g. the same network without
        its input transformation) for the transfer check.
    tol, zero_tol : float
    bf16 : bool
        Run the attacks under bf16 autocast (faster only with native bf16: GPUs,
        AVX512-BF16/AMX CPUs; the checks tolerate the noise).
    batch_size, seed, progress
        As in :func:`evaluate`.

    Returns
    -------
    MaskingReport

    References
    ----------
    Athalye, Carlini & Wagner, "Obfuscated Gradients Give a False Sense of Security",
    ICML 2018. Carlini et al., "On Evaluating Adversarial Robustness", 2019.
    """
    check_model(model)
    x, y = as_tensors(data, model)
    check_positive(eps, "eps")
    check_choice(norm, "norm", ("linf", "l2"))
    check_int(steps, "steps", minimum=1)
    check_int(more_steps, "more_steps", minimum=1)
    if more_steps <= steps:
        raise ValueError(f"more_steps ({more_steps}) must be larger than steps ({steps})")
    if step_size is not None:
        check_positive(step_size, "step_size")
    check_probability(tol, "tol")
    check_probability(zero_tol, "zero_tol")
    if surrogate is not None:
        check_model(surrogate, "surrogate")
    if large_eps is None:
        large_eps = 0.5 if norm == "linf" else 0.5 * math.sqrt(x[0].numel())
    check_positive(large_eps, "large_eps")
    rel = 0.25 if step_size is None else step_size / eps
    kw = dict(batch_size=batch_size, seed=seed, progress=progress)

    def pgd(e, k):
        return PGD(eps=e, steps=k, step_size=rel * e, norm=norm, early_stop=True, bf16=bf16)

    fast = (FGSM(eps=eps, bf16=bf16) if norm == "linf" else
            PGD(eps=eps, steps=1, step_size=eps, norm="l2", random_start="none", bf16=bf16))
    # one evaluate call per attack, so that both PGD runs draw the same random starts
    res = {name: evaluate(model, (x, y), {name: atk}, topk=(1,), **kw)
           for name, atk in (("pgd", pgd(eps, steps)), ("pgd_more", pgd(eps, more_steps)),
                             ("fgsm", fast))}
    clean = res["pgd"].clean[1]
    acc_pgd, acc_more, acc_fgsm = (res[k].robust(k) for k in ("pgd", "pgd_more", "fgsm"))

    grid = sorted({eps, 2 * eps, 4 * eps, large_eps})
    curve = accuracy_vs_eps(model, (x, y), eps=grid, attack=lambda e: pgd(e, steps), **kw)
    rises = [(a, b) for a, b in zip(curve.accuracy, curve.accuracy[1:]) if b > a + tol]
    last = curve.accuracy[-1]
    checks = [MaskingCheck(
        "eps_curve", bool(rises) or last > zero_tol,
        (f"accuracy at eps={large_eps:.3g} is {fmt_pct(last).strip()}% "
         f"({'>' if last > zero_tol else '<='} {100 * zero_tol:.0f}%)"
         + ("; accuracy rises with eps" if rises else "")),
        {"eps": list(curve.values), "accuracy": list(curve.accuracy)})]
    checks.append(MaskingCheck(
        "more_steps", acc_more > acc_pgd + tol,
        f"PGD-{steps} {fmt_pct(acc_pgd).strip()}% vs PGD-{more_steps} {fmt_pct(acc_more).strip()}%",
        {"steps": steps, "more_steps": more_steps, "accuracy": acc_pgd, "accuracy_more": acc_more}))
    checks.append(MaskingCheck(
        "fgsm_vs_pgd", acc_fgsm < acc_pgd - tol,
        f"FGSM {fmt_pct(acc_fgsm).strip()}% vs PGD-{steps} {fmt_pct(acc_pgd).strip()}%",
        {"fgsm": acc_fgsm, "pgd": acc_pgd}))
    if surrogate is not None:
        tr = transfer(surrogate, model, (x, y), pgd(eps, steps), **kw)
        checks.append(MaskingCheck(
            "transfer", tr.transfer < acc_pgd - tol,
            f"transfer from surrogate {fmt_pct(tr.transfer).strip()}% vs white-box "
            f"{fmt_pct(acc_pgd).strip()}%",
            {"transfer": tr.transfer, "white_box": acc_pgd, "surrogate_white_box": tr.white_box}))
    checks += _autoattack_flags(model, x, y, eps=eps, norm=norm, acc_pgd=acc_pgd, tol=tol,
                                square_queries=square_queries, zero_grad_tol=zero_grad_tol,
                                batch_size=batch_size, seed=seed, progress=progress)
    return MaskingReport(checks=tuple(checks), clean=clean, n=x.shape[0])


class _CountAutograd:
    """Counts calls of ``torch.autograd.grad`` and ``torch.autograd.backward`` (which
    ``Tensor.backward`` goes through) inside the block."""

    def __enter__(self):
        self.calls = 0
        self._grad, self._backward = torch.autograd.grad, torch.autograd.backward

        def wrap(fn):
            def counted(*args, **kwargs):
                self.calls += 1
                return fn(*args, **kwargs)
            return counted
        torch.autograd.grad, torch.autograd.backward = wrap(self._grad), wrap(self._backward)
        return self

    def __exit__(self, *exc):
        torch.autograd.grad, torch.autograd.backward = self._grad, self._backward
        return False


def _autoattack_flags(model, x, y, *, eps, norm, acc_pgd, tol, square_queries, zero_grad_tol,
                      batch_size, seed, progress) -> list:
    """The checks of Croce & Hein's AutoAttack code, on the model in eval mode."""
    import torch.nn.functional as F

    from robustviz._utils import model_device, model_mode
    from robustviz.attacks.autoattack import check_deterministic, check_logits

    check_int(square_queries, "square_queries", minimum=0)
    check_probability(zero_grad_tol, "zero_grad_tol")
    dev = model_device(model)
    probe_x, probe_y = x[:batch_size].to(dev), y[:batch_size].to(dev)
    checks = []
    with model_mode(model, "eval"):
        diff = check_deterministic(model, probe_x)
        checks.append(MaskingCheck(
            "randomized", diff > 1e-4,
            f"two forward passes differ by {diff:.2g} (normalised outputs)"
            + ("; use AutoAttack(version='rand')" if diff > 1e-4 else ""),
            {"max_difference": diff}))
        with torch.no_grad():
            out = model(probe_x)
        probs = check_logits(out)
        checks.append(MaskingCheck(
            "probabilities", probs,
            "outputs are probabilities (rows in [0, 1] summing to 1): attack the logits"
            if probs else "outputs are logits",
            {"min": float(out.min()), "max": float(out.max()),
             "max_row_sum_error": float((out.float().sum(1) - 1).abs().max())}))
        with _CountAutograd() as counter, torch.no_grad():
            model(probe_x[:8])
        checks.append(MaskingCheck(
            "dynamic", counter.calls > 0,
            f"the forward pass called autograd {counter.calls} time(s)"
            + (": optimisation at inference" if counter.calls else ""),
            {"autograd_calls": counter.calls}))
        zero = 0
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size].to(dev).detach().requires_grad_(True)
            with torch.enable_grad():
                loss = F.cross_entropy(model(xb).float(), y[i:i + batch_size].to(dev), reduction="sum")
                (g,) = torch.autograd.grad(loss, xb)
            zero += int((g.reshape(g.shape[0], -1).abs().sum(1) == 0).sum())
        frac = zero / x.shape[0]
        checks.append(MaskingCheck(
            "zero_gradients", frac > zero_grad_tol,
            f"{zero} of {x.shape[0]} examples ({fmt_pct(frac).strip()}%) have an all-zero input "
            f"gradient", {"zero": zero, "fraction": frac}))
    if square_queries:
        sq = _SquareAttack(eps=eps, norm=norm, queries=square_queries)
        res = evaluate(model, (x, y), {"square": sq}, topk=(1,), batch_size=batch_size,
                       seed=seed, progress=progress)
        acc_sq = res.robust("square")
        checks.append(MaskingCheck(
            "square_vs_whitebox", acc_sq < acc_pgd - tol,
            f"Square ({square_queries} queries, black-box) {fmt_pct(acc_sq).strip()}% vs "
            f"white-box PGD {fmt_pct(acc_pgd).strip()}%",
            {"square": acc_sq, "pgd": acc_pgd, "queries": square_queries}))
    return checks
