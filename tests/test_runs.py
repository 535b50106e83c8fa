"""Run directories and checkpoints: atomic, never unpickling, clear errors on corruption."""
import json
import os
import random

import numpy as np
import pytest
import torch
from torch import nn

from robustviz import runs


class _Lin(nn.Module):
    def __init__(self, d=4, k=3):
        super().__init__()
        self.fc = nn.Linear(d, k)
        self.register_buffer("count", torch.tensor(7))


def test_weights_roundtrip(tmp_path):
    torch.manual_seed(0)
    a, b = _Lin(), _Lin()
    runs.save_weights(tmp_path / "w.safetensors", a)
    runs.load_weights(tmp_path / "w.safetensors", b)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])


def test_truncated_weights_raise_naming_file(tmp_path):
    path = tmp_path / "w.safetensors"
    runs.save_weights(path, _Lin())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(runs.CheckpointError, match="w.safetensors"):
        runs.load_weights(path, _Lin())


def test_tampered_header_raises(tmp_path):
    path = tmp_path / "w.safetensors"
    runs.save_weights(path, _Lin())
    data = bytearray(path.read_bytes())
    data[10:20] = b"#" * 10
    path.write_bytes(bytes(data))
    with pytest.raises(runs.CheckpointError):
        runs.load_weights(path, _Lin())


def test_other_architecture_raises_with_mismatch(tmp_path):
    path = tmp_path / "w.safetensors"
    runs.save_weights(path, _Lin(4, 3))
    with pytest.raises(runs.CheckpointError, match="shape mismatch"):
        runs.load_weights(path, _Lin(5, 3))

    class Other(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)

    with pytest.raises(runs.CheckpointError, match="missing"):
        runs.load_weights(path, Other())


def test_pickle_file_is_rejected(tmp_path):
    path = tmp_path / "w.safetensors"
    torch.save(_Lin().state_dict(), path)  # a pickle, as torch.save writes
    with pytest.raises(runs.CheckpointError):
        runs.load_weights(path, _Lin())


def test_state_roundtrip_optimizer_and_rng(tmp_path):
    torch.manual_seed(0)
    model = _Lin()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.fc(torch.randn(2, 4)).sum().backward()
    opt.step()
    random.seed(3)
    np.random.seed(3)
    state = {
        "optimizer": opt.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "python_rng": random.getstate(),
        "numpy_rng": np.random.get_state(),
        "epoch": 4,
        "history": [{"loss": 0.5}],
    }
    runs.save_state(tmp_path / "s.safetensors", state)
    back = runs.load_state(tmp_path / "s.safetensors")
    assert back["epoch"] == 4 and back["history"] == [{"loss": 0.5}]
    assert torch.equal(back["torch_rng"], state["torch_rng"])
    # optimizer state dict loads back (integer param keys preserved)
    opt2 = torch.optim.SGD(_Lin().parameters(), lr=0.1, momentum=0.9)
    opt2.load_state_dict(back["optimizer"])
    assert set(back["optimizer"]["state"]) == set(opt.state_dict()["state"])
    random.setstate(back["python_rng"])
    assert random.random() == (random.seed(3) or random.random())
    np.random.set_state(back["numpy_rng"])
    x = np.random.rand()
    np.random.seed(3)
    assert x == np.random.rand()


def test_state_refuses_code_objects(tmp_path):
    with pytest.raises(TypeError, match="pickling"):
        runs.save_state(tmp_path / "s.safetensors", {"f": lambda: 0})


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "f.txt"
    runs.atomic_write_text(path, "old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        runs.atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]  # no temp file left behind


def test_metrics_append_and_filter(tmp_path):
    runs.append_metrics(tmp_path, {"kind": "epoch", "epoch": 0, "acc": np.float32(0.5)})
    runs.append_metrics(tmp_path, {"kind": "evaluation", "acc": torch.tensor(0.25)})
    recs = runs.read_metrics(tmp_path)
    assert len(recs) == 2 and recs[1]["acc"] == 0.25
    assert runs.read_metrics(tmp_path, kind="epoch") == [{"kind": "epoch", "epoch": 0, "acc": 0.5}]


def test_save_run_requires_model_entry(tmp_path):
    with pytest.raises(ValueError, match="model"):
        runs.save_run(tmp_path, _Lin(), {"data": {}})


def test_load_run_missing_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="run directory"):
        runs.load_run(tmp_path / "nope")


def test_run_roundtrip_rebuilds_model(tmp_path):
    from robustviz import models

    model = models.build("tinycnn", num_classes=10, in_channels=1)
    cfg = {"model": {"name": "tinycnn", "num_classes": 10, "in_channels": 1}, "data": {"name": "digits"}}
    runs.save_run(tmp_path / "r", model, cfg, metrics=[{"kind": "epoch", "epoch": 0}])
    assert json.loads((tmp_path / "r" / "config.json").read_text())["data"]["name"] == "digits"
    run = runs.load_run(tmp_path / "r")
    x = torch.rand(2, 1, 28, 28)
    model.eval()
    assert torch.allclose(run.model(x), model(x))
    assert run.metrics == [{"kind": "epoch", "epoch": 0}]


def test_reverse_attention_run_roundtrip(tmp_path):
    from robustviz import models

    model = models.build("tinycnn", num_classes=10, in_channels=1, reverse_attention=True, seed=3)
    assert isinstance(model, models.ReverseAttention) and model.needs_labels
    runs.save_run(tmp_path / "ra", model, {"model": model.build_kwargs, "data": {"name": "digits"}})
    run = runs.load_run(tmp_path / "ra")
    assert isinstance(run.model, models.ReverseAttention)
    x = torch.rand(3, 1, 28, 28)
    model.eval()
    assert torch.allclose(run.model(x), model(x))


def test_atomic_write_uses_normal_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        path = runs.atomic_write_text(tmp_path / "page.html", "<html></html>")
    finally:
        os.umask(umask)
    assert (path.stat().st_mode & 0o777) == 0o644


# ----------------------------------------------------------------------------- issue 16
def _append_many(run_dir, worker, n):
    for i in range(n):
        runs.append_metrics(run_dir, {"kind": "event", "worker": worker, "i": i, "pad": "x" * 200})


def test_concurrent_append_metrics_keeps_every_line(tmp_path):
    """Four processes appending 150 lines each: all 600 lines are kept, each whole
    (the old read-rewrite-rename append kept 436 of 600)."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(tmp_path, w, 150)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    recs = runs.read_metrics(tmp_path)
    assert len(recs) == 600
    assert sorted((r["worker"], r["i"]) for r in recs) == [(w, i) for w in range(4) for i in range(150)]
    for w in range(4):   # each writer's lines stay in its own order
        assert [r["i"] for r in recs if r["worker"] == w] == list(range(150))


def test_append_metrics_after_a_torn_last_line(tmp_path):
    """A file whose last line was cut (power loss mid-write) is still read, the cut line
    is reported and skipped, and the next append starts on a line of its own."""
    (tmp_path / runs.METRICS).write_text('{"kind": "epoch", "epoch": 1}\n{"kind": "ep')
    with pytest.warns(UserWarning, match="incomplete last line"):
        assert runs.read_metrics(tmp_path) == [{"kind": "epoch", "epoch": 1}]
    runs.append_metrics(tmp_path, {"kind": "epoch", "epoch": 2})
    with pytest.warns(UserWarning, match="line 2"):
        assert [r["epoch"] for r in runs.read_metrics(tmp_path)] == [1, 2]


def test_run_lock_is_exclusive_and_names_the_owner(tmp_path):
    import socket

    run_dir = tmp_path / "run"
    with runs.RunLock(run_dir) as lock:
        info = json.loads((run_dir / runs.LOCK).read_text())
        assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
        assert lock.path == run_dir / runs.LOCK
        with runs.RunLock(run_dir):             # re-entrant within the owning process
            pass
        assert (run_dir / runs.LOCK).exists()   # still held by the outer block
        # another process is refused, with the owner's pid and host in the message
        code = ("import sys; from robustviz import runs\n"
                "try:\n    runs.RunLock(sys.argv[1]).acquire()\n"
                "except runs.RunLockedError as e:\n    print(e); sys.exit(3)\n")
        import subprocess
        import sys
        out = subprocess.run([sys.executable, "-c", code, str(run_dir)], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": os.getcwd()}, timeout=120)
        assert out.returncode == 3, out.stderr
        assert f"pid {os.getpid()}" in out.stdout and socket.gethostname() in out.stdout
    assert not (run_dir / runs.LOCK).exists()


def test_stale_lock_is_detected_reported_and_taken_over(tmp_path):
    import socket
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()                                  # a pid that no longer runs
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / runs.LOCK).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(),
                                                 "started": "2026-01-01T00:00:00Z"}))
    with pytest.warns(UserWarning, match=f"stale lock .*pid {dead.pid}"):
        with runs.RunLock(run_dir):
            assert json.loads((run_dir / runs.LOCK).read_text())["pid"] == os.getpid()
    # a lock held on another host cannot be checked: refused, saying how to clear it
    (run_dir / runs.LOCK).write_text(json.dumps({"pid": 1, "host": "elsewhere.example"}))
    with pytest.raises(runs.RunLockedError, match="elsewhere.example.*delete"):
        runs.RunLock(run_dir).acquire()


def test_eval_eps_default_order_and_reason():
    # stored evaluation radius first
    eps, why = runs.eval_eps({"eval": {"eps": 0.2}, "train": {"eps": 0.3}, "data": {"name": "digits"}})
    assert eps == 0.2 and "eval.eps" in why
    # a run of the current code (config.json without eval): its training eps, not 0.1
    eps, why = runs.eval_eps({"train": {"eps": None}, "defense": {"name": "pgd_at", "eps": 0.2},
                              "data": {"name": "fashion-mnist"}})
    assert eps == 0.2 and "defense.eps" in why
    eps, why = runs.eval_eps({"train": {"eps": 0.25}, "defense": {"name": "nat"}, "data": {"name": "digits"}})
    assert eps == 0.25 and "train.eps" in why
    # nothing recorded: the data set's default, from the one table
    eps, why = runs.eval_eps({"defense": {"name": "nat"}, "data": {"name": "fashion-mnist"}})
    assert eps == runs.DEFAULT_EPS["fashion-mnist"] == 0.1 and "default" in why and "fashion-mnist" in why
    assert runs.eval_eps({}, dataset="cifar10")[0] == pytest.approx(8 / 255)
    assert runs.default_eps("mnist") == 0.3


def test_load_run_without_model_entry_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"data": {"name": "digits"}}))
    with pytest.raises(ValueError, match="no 'model' entry"):
        runs.load_run(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model": None, "data": {"name": "digits"}}))
    with pytest.raises(ValueError, match="no 'model' entry"):
        runs.load_run(tmp_path)
