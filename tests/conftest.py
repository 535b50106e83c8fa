"""Shared fixtures: small models trained once per test session on real Fashion-MNIST."""
import functools

import pytest
import torch

EPS = 0.1


@functools.lru_cache(maxsize=None)
def _trained(defense_name: str, n_train: int = 5000, epochs: int = 2):
    """A TinyCNN trained with the one Trainer (fp32, Adam) on a stratified Fashion-MNIST
    subset; cached per process so every test module shares it."""
    import robustviz as rv

    train = rv.data.load("fashion-mnist", "train", n=n_train, seed=0)
    specs = {
        "nat": {"name": "nat"},
        "pgd_at": {"name": "pgd_at", "eps": EPS, "step_size": EPS / 3, "steps": 4},
    }
    model = rv.models.build("tinycnn", num_classes=10, in_channels=1, mean=train.mean,
                            std=train.std, seed=0)
    rv.train.Trainer(defense=specs[defense_name], epochs=epochs, optimizer="adam", lr=2e-3,
                     weight_decay=0.0, schedule="constant", batch_size=128, eps=EPS, bf16=False,
                     progress=False, seed=0).fit(model, train)
    return model.eval()


@pytest.fixture(scope="session")
def fmnist_test():
    import robustviz as rv

    return rv.data.load("fashion-mnist", "test", n=1000, seed=0)


@pytest.fixture(scope="session")
def nat_model():
    return _trained("nat")


@pytest.fixture(scope="session")
def pgd_at_model():
    return _trained("pgd_at")


def pytest_configure(config):
    """Under pytest-xdist each worker gets one intra-op thread: two workers with two threads
    each on a 2-core machine oversubscribe it badly."""
    import os

    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)
