"""AutoAttack (standard) through torchattacks, behind the robustviz attack call."""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from robustviz._validate import check_choice, check_positive
from robustviz.attacks._base import Attack
from robustviz.attacks.threat import NORMS

__all__ = ["AutoAttack"]

_VERSIONS = {
    "standard": "APGD-CE, APGD-T, FAB-T, Square (5000 queries)",
    "plus": "APGD-CE, APGD-DLR, FAB, Square, APGD-T, FAB-T (5 restarts)",
    "rand": "APGD-CE, APGD-DLR with EOT (20 iterations)",
}


def _torchattacks():
    try:
        import torchattacks
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("AutoAttack runs through the torchattacks package, which is not "
                          "installed: pip install --no-deps torchattacks (without its pin of an old "
                          "requests; robustviz's scripts/setup.sh does this)") from err
    return torchattacks


class _Wrapped(nn.Module):
    """The model behind robustviz's forward (autocast when bf16, float logits)."""

    def __init__(self, model: nn.Module, forward):
        super().__init__()
        self.model = model
        self._forward = forward

    def forward(self, x):
        return self._forward(x)


@dataclasses.dataclass(frozen=True, kw_only=True)
class AutoAttack(Attack):
    """AutoAttack (Croce & Hein 2020) as implemented by torchattacks.

    ``version="standard"`` runs APGD-CE, APGD-T, FAB-T and Square in sequence, each on
    the examples the previous ones did not break. The torchattacks version that ran is
    given by :meth:`backend` (and in :meth:`describe`).

    Parameters
    ----------
    eps : float
    norm : {"linf", "l2"}
    version : {"standard", "plus", "rand"}
    bf16, seed
        See :class:`Attack`. The seed of torchattacks' random starts is drawn from the
        call's generator; the global torch RNG is restored after the call.

    Notes
    -----
    Evaluation only: ``bn_mode`` must be ``"eval"``. It is slow on a CPU (minutes per
    1,000 MNIST-size images once many examples resist APGD-CE). Raises ``ImportError``
    with an install hint when torchattacks is missing.

    Shape
    -----
    ``x``: (N, C, H, W); ``y``: (N,) true labels; returns (N, C, H, W).

    References
    ----------
    Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of
    diverse parameter-free attacks", ICML 2020. Kim, "Torchattacks: A PyTorch Repository
    for Adversarial Attacks", 2020.
    """

    eps: float
    norm: str = "linf"
    version: str = "standard"

    def _check(self):
        check_positive(self.eps, "eps")
        check_choice(self.norm, "norm", NORMS)
        check_choice(self.version, "version", tuple(_VERSIONS))
        if self.bn_mode != "eval":
            raise ValueError("AutoAttack is an evaluation attack: bn_mode must be 'eval'")

    def backend(self) -> str:
        """Which implementation runs, e.g. ``"torchattacks 3.5.1 AutoAttack standard
        (APGD-CE, APGD-T, FAB-T, Square (5000 queries))"``."""
        ta = _torchattacks()
        return f"torchattacks {ta.__version__} AutoAttack {self.version} ({_VERSIONS[self.version]})"

    def describe(self) -> dict:
        out = super().describe()
        try:
            out["backend"] = self.backend()
        except ImportError:
            out["backend"] = "torchattacks not installed"
        return out

    def _attack(self, forward, x, y, generator):
        ta = _torchattacks()
        if x.dtype != torch.float32:
            raise TypeError(f"AutoAttack (torchattacks) needs float32 images, got {x.dtype}")
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device))
        with torch.no_grad():
            k = forward(x[:1]).shape[1]
        wrapped = _Wrapped(forward.model, forward)
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            atk = ta.AutoAttack(wrapped, norm="Linf" if self.norm == "linf" else "L2",
                                eps=float(self.eps), version=self.version, n_classes=k,
                                seed=seed, verbose=False)
            x_adv = atk(x, y)
        return x_adv.to(x.device)
