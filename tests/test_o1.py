"""Paper 001's observation O1 at teaching scale, on real Fashion-MNIST: an adversarially
trained model has lower adversarial R-DIV than a naturally trained one, and R-DIV rises
with the attack radius."""
import numpy as np
import pytest

import robustviz as rv

pytestmark = pytest.mark.slow


def test_o1_pgd_at_lower_rdiv_and_rdiv_rises_with_eps(nat_model, pgd_at_model, fmnist_test):
    eps = [0.0, 0.025, 0.05, 0.1, 0.15]
    atk = rv.attacks.PGD(eps=0.1, step_size=0.025, steps=10)
    sweep = rv.diagnostics.rdiv_vs_eps({"NAT": nat_model, "PGD-AT": pgd_at_model}, fmnist_test,
                                       atk, eps, n=500, seed=0)
    nat, at = sweep.rdiv[0], sweep.rdiv[1]
    # adversarial R-DIV of PGD-AT below NAT's at every eps > 0
    assert np.all(at[1:] < nat[1:]), (nat, at)
    # R-DIV rises with eps for both models (rank correlation and end points)
    trend = sweep.trend()
    assert trend["NAT"] > 0.8 and trend["PGD-AT"] > 0.8, trend
    assert nat[-1] > nat[0] and at[-1] > at[0]
    # and the robust accuracies tell the same story
    assert sweep.robust_acc[1, 3] > sweep.robust_acc[0, 3] + 0.1
    assert np.all(np.diff(sweep.robust_acc[0]) <= 1e-9)
