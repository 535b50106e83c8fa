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
