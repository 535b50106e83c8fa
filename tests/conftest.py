"""Shared fixtures: the teaching zoo's models and real Fashion-MNIST test data; the test
run's thread settings and the order in which its workers take their units."""
import json
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


# --------------------------------------------------------------------------- scheduling
# `make test` runs `pytest -n 2 --dist loadscope`: each module (and each notebook's class) is a
# unit that one worker runs whole, and a worker asks for the next unit while it still holds
# two tests. By default xdist hands out the units with the most tests first, which leaves the
# 1-test notebook units (35-95 s each) for the end: one worker then runs the last notebooks
# while the other idles (596 s against 530 s, measured). Handing out the longest units first
# (their seconds in SCOPE_TIMES, from an earlier run; a unit not listed counts as short, so a
# stale file costs only balance) ends the two workers together.
SCOPE_TIMES = Path(__file__).with_name("scope_times.json")


def _scope(nodeid: str) -> str:
    """xdist's loadscope unit of a test: its module, or its class."""
    return nodeid.rsplit("::", 1)[0]


def pytest_addoption(parser):
    parser.addoption("--write-scope-times", action="store_true",
                     help=f"after the run, write each scheduling unit's seconds to {SCOPE_TIMES.name}")


def pytest_collection_modifyitems(session, config, items):
    try:
        seconds = json.loads(SCOPE_TIMES.read_text())
    except (OSError, ValueError):
        return
    order = {}
    for i, item in enumerate(items):
        order.setdefault(_scope(item.nodeid), i)
    # stable: ties (and units not listed) keep their collection order
    items.sort(key=lambda item: (-float(seconds.get(_scope(item.nodeid), 0.0)), order[_scope(item.nodeid)]))


_UNIT_SECONDS: dict[str, float] = {}     # seconds per unit in this run, for --write-scope-times


def pytest_runtest_logreport(report):
    unit = _scope(report.nodeid)
    _UNIT_SECONDS[unit] = _UNIT_SECONDS.get(unit, 0.0) + report.duration


def pytest_sessionfinish(session):
    import os

    if session.config.getoption("--write-scope-times") and not os.environ.get("PYTEST_XDIST_WORKER"):
        try:                        # a partial run updates the units it ran, keeps the others
            table = json.loads(SCOPE_TIMES.read_text())
        except (OSError, ValueError):
            table = {}
        table.update({k: round(v, 1) for k, v in _UNIT_SECONDS.items()})
        table = {k: v for k, v in sorted(table.items()) if v >= 0.5}
        SCOPE_TIMES.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")


def pytest_configure(config):
    """Under pytest-xdist each worker gets one intra-op thread: two workers with two threads
    each on a 2-core machine oversubscribe it badly. So does every process a test starts (a
    CLI run, a notebook kernel, a wheel's demo, a Voila server): the thread variables go into
    the environment they inherit. A subprocess left with a thread per core made a 12 s test
    on the other worker take 41-45 s (OpenMP threads spin while they wait for a core)."""
    import os

    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
            os.environ[var] = "1"
        try:                        # the worker's own BLAS and OpenMP pools (numpy, scikit-learn)
            from threadpoolctl import threadpool_limits
        except ImportError:
            return
        config._thread_limits = threadpool_limits(1)


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
