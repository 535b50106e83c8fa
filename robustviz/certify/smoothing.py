"""Randomized smoothing: a certified L2 radius from Gaussian noise (Cohen, Rosenfeld and
Kolter, "Certified Adversarial Robustness via Randomized Smoothing", ICML 2019).

The smoothed classifier ``g(x) = argmax_c P(f(x + noise) = c)``, noise ~ N(0, sigma^2 I),
keeps its decision within the L2 radius ``sigma * Phi^-1(p_A)`` around ``x`` when ``p_A``
is a lower bound on the top class's probability (Theorem 1). ``certify`` estimates
``p_A`` by Monte Carlo with a one-sided Clopper-Pearson bound (scipy's exact binomial
interval) at confidence ``1 - alpha`` and abstains when it is not above 1/2; ``predict``
returns the top class only when a binomial test says it beats the runner-up.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from robustviz._utils import model_device, model_mode, tqdm
from robustviz._validate import check_int, check_positive

__all__ = ["Smooth", "SmoothResult", "ABSTAIN"]

#: The class returned when the smoothed classifier abstains.
ABSTAIN = -1


@dataclasses.dataclass(frozen=True)
class SmoothResult:
    """Per example: the smoothed prediction (``ABSTAIN`` = -1), the certified L2 radius (0
    when abstaining) and the lower confidence bound on the top class's probability.

    Shape
    -----
    Each attribute is (N,).
    """

    prediction: torch.Tensor
    radius: torch.Tensor
    p_lower: torch.Tensor

    def certified_accuracy(self, y: torch.Tensor, radius: float) -> float:
        """Fraction of examples predicted correctly with a certified radius >= ``radius``."""
        ok = (self.prediction == y.cpu()) & (self.radius >= radius)
        return float(ok.float().mean())


@dataclasses.dataclass(frozen=True, kw_only=True)
class Smooth:
    """Randomized smoothing of a base classifier (Cohen et al., ICML 2019).

    Parameters
    ----------
    sigma : float
        Standard deviation of the Gaussian noise in pixel scale (the base classifier should
        be trained with the same noise: ``sigma`` trades clean accuracy for radius).
    n0 : int
        Noisy samples that select the top class (the paper's 100).
    n : int
        Noisy samples that estimate its probability (the paper's 100,000 for CIFAR-10;
        1,000 here, enough for teaching: the largest certifiable radius is then
        ``sigma * Phi^-1(alpha ** (1 / n))``, about 2.4 sigma).
    alpha : float
        Failure probability of the certificate (the paper's 0.001).
    batch_size : int
        Noisy copies evaluated at once.
    seed : int
        Seed of the noise generator.

    Notes
    -----
    Noise is added to pixels in [0, 1] (the model normalises inside) and not clipped, as
    in the paper. Images leave [0, 1] under noise; the base classifier sees them as drawn.
    """

    sigma: float
    n0: int = 100
    n: int = 1_000
    alpha: float = 0.001
    batch_size: int = 500
    seed: int = 0

    def __post_init__(self):
        check_positive(self.sigma, "sigma")
        check_int(self.n0, "n0", minimum=1)
        check_int(self.n, "n", minimum=1)
        check_int(self.batch_size, "batch_size", minimum=1)
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {self.alpha!r}")

    def _counts(self, model, x1: torch.Tensor, num: int, gen: torch.Generator) -> torch.Tensor:
        counts = None
        left = num
        while left > 0:
            b = min(self.batch_size, left)
            batch = x1.expand(b, *x1.shape[1:])
            noise = torch.randn(batch.shape, generator=gen, device=gen.device).to(x1.device)
            with torch.no_grad():
                logits = model(batch + self.sigma * noise)
            c = torch.bincount(logits.argmax(1), minlength=logits.shape[1]).cpu()
            counts = c if counts is None else counts + c
            left -= b
        return counts

    def _gen(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed)

    def certify(self, model: nn.Module, x: torch.Tensor, *, progress: bool = False) -> SmoothResult:
        """CERTIFY of the paper, per image: the top class from ``n0`` samples, then its
        probability's lower confidence bound from ``n`` fresh samples; abstain unless it
        exceeds 1/2, else certify the radius ``sigma * Phi^-1(p_lower)``."""
        from scipy.stats import binomtest, norm

        if x.dim() != 4:
            raise ValueError(f"x must be (N, C, H, W), got shape {tuple(x.shape)}")
        gen = self._gen()
        dev = model_device(model)
        preds, radii, lows = [], [], []
        with model_mode(model, "eval"):
            for i in tqdm(range(len(x)), disable=not progress, desc="smoothing", unit="image"):
                x1 = x[i:i + 1].to(dev)
                top = int(self._counts(model, x1, self.n0, gen).argmax())
                k = int(self._counts(model, x1, self.n, gen)[top])
                # one-sided (1 - alpha) Clopper-Pearson = the two-sided (1 - 2 alpha) low end
                low = binomtest(k, self.n).proportion_ci(confidence_level=1 - 2 * self.alpha,
                                                          method="exact").low
                lows.append(low)
                if low > 0.5:
                    preds.append(top)
                    radii.append(self.sigma * float(norm.ppf(low)))
                else:
                    preds.append(ABSTAIN)
                    radii.append(0.0)
        return SmoothResult(prediction=torch.tensor(preds), radius=torch.tensor(radii),
                            p_lower=torch.tensor(lows))

    def predict(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """PREDICT of the paper: the top class of ``n`` noisy samples when a two-sided
        binomial test of its count against the runner-up's rejects a tie at level
        ``alpha``; ``ABSTAIN`` otherwise. Shape: (N,)."""
        from scipy.stats import binomtest

        gen = self._gen()
        dev = model_device(model)
        out = []
        with model_mode(model, "eval"):
            for i in range(len(x)):
                counts = self._counts(model, x[i:i + 1].to(dev), self.n, gen)
                top2 = counts.topk(2)
                na, nb = int(top2.values[0]), int(top2.values[1])
                ok = binomtest(na, na + nb, 0.5).pvalue <= self.alpha
                out.append(int(top2.indices[0]) if ok else ABSTAIN)
        return torch.tensor(out)
