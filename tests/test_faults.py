"""Fault injection: a training run stopped at any write of its run directory resumes to
exactly the run an uninterrupted process writes.

Every byte a run directory receives goes through two functions of :mod:`robustviz.runs`:
``atomic_write_bytes`` (config.json, state.safetensors, weights.safetensors, repaired
metrics) and ``append_metrics`` (metric lines). The tests replace them by versions that
stop the process at their k-th call, for every k of a two-epoch run:

    1 config.json | 2 state e1 | 3 weights e1 | 4 metrics e1 | 5 state e2 | 6 weights e2 | 7 metrics e2

so "state written, weights not" is k=3 (and k=6, the last epoch: nothing is left to train
on resume), "weights written, metrics not" is k=4 and k=7. A stop is an exception (the
process unwinds), a torn write (half a temporary file, or half a metrics line, then the
exception), or SIGKILL in a subprocess (nothing unwinds; the lock is left stale). After
each, the run is resumed (or restarted when no checkpoint was written) and must end with
weights, state, metrics and config bit-identical to the uninterrupted run's (the wall-clock
``time_s`` of each epoch line aside).
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from fixtures_data import save_datasets
from robustviz import data, models, runs
from robustviz.train import Trainer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
N_WRITES = 7
POINTS = {1: "nothing written", 2: "config written, state e1 not", 3: "state e1 written, weights not",
          4: "weights e1 written, metrics not", 5: "metrics e1 written, state e2 not",
          6: "state e2 (last) written, weights not", 7: "weights e2 written, metrics not"}


class Crash(Exception):
    """The injected stop."""


def small():
    return data.load("digits", "train", n=300, seed=0), data.load("digits", "test", n=60, seed=0)


def model_of(train):
    return models.build("tinycnn", num_classes=10, in_channels=1, input_size=8, mean=train.mean,
                        std=train.std, width=8, hidden=32, seed=0)


def trainer():
    """PGD-AT (random starts from the trainer's generator), augmentation, robust validation
    and a piecewise schedule: a resume must restore every piece of state to be exact."""
    return Trainer(defense={"name": "pgd_at", "eps": 0.1, "step_size": 0.05, "steps": 2}, epochs=2,
                   lr=0.05, batch_size=100, milestones=(0.5,), augment=("crop", "flip"), val_size=60,
                   progress=False)


def fit(run_dir, *, resume=False):
    train, val = small()
    if resume:
        return trainer().fit(model_of(train), train, val=val, resume=run_dir)
    return trainer().fit(model_of(train), train, val=val, run_dir=run_dir)


def restart(run_dir):
    """What a user does after a crash: resume when a checkpoint exists, else start again."""
    return fit(run_dir, resume=(Path(run_dir) / runs.STATE).is_file())


def inject(monkeypatch, at: int, how: str = "raise") -> list:
    """Stop at the ``at``-th write (1-based). ``how``: "raise" before the write; "torn": a
    half-written temporary file (atomic writes) or half a line (metrics), then raise."""
    calls: list = []
    real_atomic, real_append = runs.atomic_write_bytes, runs.append_metrics

    def atomic(path, payload):
        path = Path(path)
        calls.append(path.name)
        if len(calls) == at:
            if how == "torn":
                (path.parent / f".{path.name}.injected.tmp").write_bytes(payload[: len(payload) // 2])
            raise Crash(f"stopped before writing {path.name} (write {at})")
        return real_atomic(path, payload)

    def append(run_dir, record):
        calls.append(runs.METRICS)
        if len(calls) == at:
            if how == "torn":
                line = json.dumps(record).encode()
                with open(Path(run_dir) / runs.METRICS, "ab") as fh:
                    fh.write(line[: len(line) // 2])
            raise Crash(f"stopped before appending to {runs.METRICS} (write {at})")
        return real_append(run_dir, record)

    monkeypatch.setattr(runs, "atomic_write_bytes", atomic)
    monkeypatch.setattr(runs, "append_metrics", append)
    return calls


def snapshot(run_dir) -> dict:
    """Everything a run directory says, in comparable form."""
    run_dir = Path(run_dir)
    state = runs.load_state(run_dir / runs.STATE)
    for h in state["history"]:
        h.pop("time_s")
    epochs = runs.read_metrics(run_dir, kind="epoch")
    for e in epochs:
        e.pop("time_s")
    return {"files": sorted(p.name for p in run_dir.iterdir()),
            "config": (run_dir / runs.CONFIG).read_bytes(),
            "weights": (run_dir / runs.WEIGHTS).read_bytes(),   # byte for byte (tensors + epoch)
            "state": state, "epochs": epochs,
            "other": [r for r in runs.read_metrics(run_dir) if r.get("kind") != "epoch"]}


def assert_same_state(a, b, path="state"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_same_state(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (u, v) in enumerate(zip(a, b)):
            assert_same_state(u, v, f"{path}[{i}]")
    else:
        assert a == b, path


def assert_same_run(got: dict, ref: dict, *, repaired: bool):
    assert got["files"] == ref["files"]             # no lock, no temp file left behind
    assert got["config"] == ref["config"]
    assert got["weights"] == ref["weights"]
    assert_same_state(got["state"], ref["state"])
    assert got["epochs"] == ref["epochs"]
    events = [r["event"] for r in got["other"]]
    assert events == (["weights_repaired"] if repaired else []), got["other"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("faults") / "reference"
    fit(run_dir)
    ref = snapshot(run_dir)
    assert ref["files"] == sorted([runs.CONFIG, runs.METRICS, runs.STATE, runs.WEIGHTS])
    assert [e["epoch"] for e in ref["epochs"]] == [1, 2] and ref["state"]["epoch"] == 2
    return ref


def test_the_write_sequence_is_the_documented_one(tmp_path, monkeypatch):
    calls = inject(monkeypatch, at=10 ** 9)
    fit(tmp_path / "run")
    assert calls == [runs.CONFIG, runs.STATE, runs.WEIGHTS, runs.METRICS,
                     runs.STATE, runs.WEIGHTS, runs.METRICS]
    assert len(calls) == N_WRITES


@pytest.mark.slow
@pytest.mark.parametrize("how", ["raise", "torn"])
@pytest.mark.parametrize("at", sorted(POINTS))
def test_stop_at_every_write_then_resume_is_bit_identical(reference, tmp_path, monkeypatch, at, how):
    run_dir = tmp_path / "run"
    inject(monkeypatch, at, how)
    with pytest.raises(Crash):
        fit(run_dir)
    monkeypatch.undo()
    # what the stop left behind: the checkpoint of the last finished epoch
    assert runs.state_epoch(run_dir) == {1: None, 2: None, 3: 1, 4: 1, 5: 1, 6: 2, 7: 2}[at]
    if at == 6:   # the last epoch's state written, its weights not: load_run says so
        with pytest.warns(UserWarning, match="epoch 1 but the training state is at epoch 2"):
            runs.load_run(run_dir)
    assert not (run_dir / runs.LOCK).exists()        # an exception releases the lock
    torn_line = how == "torn" and at in (4, 7)
    with pytest.warns(UserWarning, match="incomplete last line") if torn_line else contextlib.nullcontext():
        restart(run_dir)
    assert_same_run(snapshot(run_dir), reference, repaired=at in (3, 6))


@pytest.mark.slow
@pytest.mark.parametrize("at", [3, 6])
def test_second_stop_during_the_repair_then_resume(reference, tmp_path, monkeypatch, at):
    """A crash, then another one at the first write of the resume (the repair), then a
    resume that completes."""
    run_dir = tmp_path / "run"
    inject(monkeypatch, at)
    with pytest.raises(Crash):
        fit(run_dir)
    monkeypatch.undo()
    inject(monkeypatch, 1)
    with pytest.raises(Crash):
        restart(run_dir)
    monkeypatch.undo()
    restart(run_dir)
    assert_same_run(snapshot(run_dir), reference, repaired=True)


@pytest.mark.slow
def test_resuming_a_finished_run_changes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    fit(run_dir)
    before = snapshot(run_dir)
    fit(run_dir, resume=True)
    assert_same_run(snapshot(run_dir), before, repaired=False)


# ----------------------------------------------------------------------------- SIGKILL
# Runs its stages (JSON [mode, run_dir, at] triples) in order in one fresh one-thread process.
# A process costs about 4 s of CPU before it trains (torch, its compiler stack that the
# optimizer imports, scikit-learn for digits), so the stages are chained: a kill ends its
# process, the next process first restarts that run, then makes the next kill. Each
# restart still runs first in its process, and every killed run's checkpoint is compared
# with the reference, so anything a kill stage inherited from its process's earlier stage
# would show as a difference, not hide one. The data come from the test's own file (the
# same tensors data.load gives), so no process imports scikit-learn.
KILL_SCRIPT = textwrap.dedent("""
    import json, os, signal, sys
    import torch
    torch.set_num_threads(1)
    sys.path.insert(0, sys.argv[1])
    from robustviz import runs
    import test_faults as tf

    from fixtures_data import load_datasets
    tf.small = lambda: load_datasets(sys.argv[2])                    # fresh copies each call
    real_atomic, real_append = runs.atomic_write_bytes, runs.append_metrics
    for mode, run_dir, at in json.loads(sys.argv[3]):
        if mode == "kill":
            calls = []

            def stop():
                calls.append(1)
                if len(calls) == at:
                    os.kill(os.getpid(), signal.SIGKILL)   # no finally, no atexit: the lock stays

            def atomic(path, payload):
                stop()
                return real_atomic(path, payload)

            def append(run_dir, record):
                stop()
                return real_append(run_dir, record)

            runs.atomic_write_bytes, runs.append_metrics = atomic, append
            tf.fit(run_dir)
            raise SystemExit(f"the kill at write {at} did not happen")
        elif mode == "restart":
            tf.restart(run_dir)
        else:
            tf.fit(run_dir)
        print(f"{mode} {run_dir}: done", file=sys.stderr, flush=True)
""")


def _job(script, data, stages):
    proc = subprocess.Popen([sys.executable, str(script), str(HERE), str(data),
                             json.dumps([[m, str(d), at] for m, d, at in stages])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    try:
        err = proc.communicate(timeout=600)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.pid, proc.returncode, err


@pytest.mark.slow
def test_sigkill_at_checkpoint_writes_then_resume_is_bit_identical(tmp_path):
    """kill -9 between the state and the weights of the last epoch, and between the weights
    and the metrics line: the lock is left stale, resume reports it, repairs the run and
    ends bit-identical to an uninterrupted run (every stage in a one-thread process of its
    own: the reference and each restart the first stage of a fresh process)."""
    script, data = tmp_path / "job.py", tmp_path / "data.pt"
    script.write_text(KILL_SCRIPT)
    save_datasets(data, small())
    ref_dir = tmp_path / "reference"
    stages = [("full", ref_dir, 0)]           # the uninterrupted reference, then the first kill
    killed = None                             # the last kill's (run_dir, at, lock owner)
    for at in (6, 7, 3, None):
        if at is not None:
            stages.append(("kill", tmp_path / f"killed{at}", at))
        pid, rc, err = _job(script, data, stages)
        assert rc == (0 if at is None else -9), err
        for mode, run_dir, _ in stages[:-1] if at is not None else stages:
            assert f"{mode} {run_dir}: done" in err, err         # finished before the kill
        if killed is None:
            ref = snapshot(ref_dir)
        else:      # the previous kill's run, restarted first: stale lock reported, repaired
            run_dir, k, owner = killed
            assert "stale lock" in err and f"pid {owner['pid']}" in err
            assert_same_run(snapshot(run_dir), ref, repaired=k in (3, 6))
        if at is not None:
            run_dir = tmp_path / f"killed{at}"
            owner = json.loads((run_dir / runs.LOCK).read_text())  # left behind by the kill
            assert owner["host"] and owner["pid"] == pid
            killed = (run_dir, at, owner)
            stages = [("restart", run_dir, at)]
