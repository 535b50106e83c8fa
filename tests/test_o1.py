"""Paper 001's observation O1 at teaching scale, on real Fashion-MNIST: an adversarially
trained model has lower adversarial R-DIV than a naturally trained one, and R-DIV rises
with the attack radius."""
import copy

import numpy as np
import pytest
import torch

import robustviz as rv

pytestmark = pytest.mark.slow


def _channels_last(model):
    """A copy of ``model`` with its convolution weights in channels-last layout, so that its
    activations come out channels-last: the same weights and the same function (the sweep's
    R-DIVs agree with the NCHW run's to 5e-5, its accuracies exactly), but PyTorch's CPU
    max-pool is about 10x faster on channels-last activations than on NCHW ones, which made
    the sweep's 80 PGD steps on 500 images 1.5x slower (23.6 s -> 15.4 s of CPU under the
    AVX2 proxy). A copy: the session's zoo models stay as every other test gets them."""
    return copy.deepcopy(model).to(memory_format=torch.channels_last)


def test_o1_pgd_at_lower_rdiv_and_rdiv_rises_with_eps(nat_model, pgd_at_model, fmnist_test):
    """PGD-10 (step 0.025 at eps 0.1, scaled with eps) on 500 seeded test images at eps 0,
    0.025, 0.05, 0.1, 0.15. The closest margin is at eps 0.025 (NAT 0.3717, PGD-AT 0.3708:
    at eps 0 PGD-AT's R-DIV is the higher one, 0.368 against 0.326); at eps 0.1 PGD-AT keeps
    79% robust accuracy, NAT 0.2%."""
    eps = [0.0, 0.025, 0.05, 0.1, 0.15]
    atk = rv.attacks.PGD(eps=0.1, step_size=0.025, steps=10)
    sweep = rv.diagnostics.rdiv_vs_eps({"NAT": _channels_last(nat_model),
                                        "PGD-AT": _channels_last(pgd_at_model)}, fmnist_test,
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
