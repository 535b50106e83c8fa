"""Shared fixtures: the teaching zoo's models and real Fashion-MNIST test data."""
import sys
from pathlib import Path

import pytest
import torch

# torchattacks, the cross-check of the attacks, lives beside the environment (its pin of an
# old requests cannot be installed inside it; see scripts/setup.sh): appended, so that it
# never shadows an installed package
_CROSSCHECK = Path(sys.prefix) / "crosscheck"
if _CROSSCHECK.is_dir() and str(_CROSSCHECK) not in sys.path:
    sys.path.append(str(_CROSSCHECK))

EPS = 0.1


@pytest.fixture(scope="session")
def fmnist_test():
    import robustviz as rv

    return rv.data.load("fashion-mnist", "test", n=1000, seed=0)


@pytest.fixture(scope="session")
def nat_model():
    """The teaching zoo's NAT TinyCNN (trained once, shipped; training is not what the
    tests using it check)."""
    import robustviz as rv

    return rv.zoo.load("nat", dataset="fashion-mnist")


@pytest.fixture(scope="session")
def pgd_at_model():
    """The teaching zoo's PGD-AT TinyCNN."""
    import robustviz as rv

    return rv.zoo.load("pgd_at", dataset="fashion-mnist")


def pytest_configure(config):
    """Under pytest-xdist each worker gets one intra-op thread: two workers with two threads
    each on a 2-core machine oversubscribe it badly."""
    import os

    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


def pytest_terminal_summary(terminalreporter):
    """Per-notebook execution times (tests/test_notebooks.py records them), printed also
    under pytest-xdist, whose workers' own output is not shown."""
    rows = []
    for key in ("passed", "failed"):
        for rep in terminalreporter.stats.get(key, []):
            for name, value in getattr(rep, "user_properties", []):
                if name == "notebook_seconds" and getattr(rep, "when", "call") == "call":
                    rows.append((rep.nodeid.split("::")[1].removeprefix("TestExecute_"), float(value)))
    if rows:
        terminalreporter.section("notebook times")
        for name, value in sorted(rows):
            terminalreporter.write_line(f"{name}: {value:.1f} s")
        terminalreporter.write_line(f"all {len(rows)} notebooks: {sum(v for _, v in rows):.1f} s")
