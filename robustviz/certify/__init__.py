"""Certified robustness: guarantees beside the attacks' upper bounds.

Every robust accuracy an attack gives is an upper bound (the attack found nothing
better); a certificate is a lower bound (nothing within the radius can change the
decision). Between the two lies what nobody knows.

::

    import robustviz as rv
    model = rv.zoo.load("pgd_at")
    test = rv.zoo.data("fashion-mnist", "test", n=100)
    res = rv.certify.certify(model, test, eps=[0.01, 0.02], method="crown")   # Linf
    res.accuracy(0.01)
    sm = rv.certify.Smooth(sigma=0.25).certify(model, test.x[:20])              # L2
    sm.certified_accuracy(test.y[:20], radius=0.25)

- :func:`interval_bounds` (IBP, Gowal et al. 2018) and :func:`crown_bounds` (CROWN, Zhang
  et al., NeurIPS 2018): bounds on the logits over a Linf box, for chains of linear,
  convolution, normalisation, ReLU and max-pooling layers (TinyCNN, SmallCNN).
- :class:`Smooth`: randomized smoothing (Cohen, Rosenfeld and Kolter, ICML 2019), a
  certified L2 radius for any classifier.
"""
from robustviz.certify._chain import chain
from robustviz.certify.bounds import (METHODS, CertifyResult, certify, compare, crown_bounds,
                                      interval_bounds, margin_spec)
from robustviz.certify.smoothing import ABSTAIN, Smooth, SmoothResult

__all__ = ["chain", "interval_bounds", "crown_bounds", "margin_spec", "certify", "compare",
           "CertifyResult",
           "METHODS", "Smooth", "SmoothResult", "ABSTAIN"]
