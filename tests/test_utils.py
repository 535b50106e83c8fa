"""Shared helpers: mode context restores every module's flag, even on error."""
import pytest
import torch
from torch import nn

from robustviz._utils import autocast, frozen_params, model_device, model_mode, seed_everything


def _net():
    return nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Dropout(0.5))


def test_model_mode_restores_mixed_flags_after_exception():
    net = _net().train()
    net[1].eval()  # mixed modes
    before = [m.training for m in net.modules()]
    with pytest.raises(RuntimeError):
        with model_mode(net, "eval"):
            assert not any(m.training for m in net.modules())
            raise RuntimeError("boom")
    assert [m.training for m in net.modules()] == before
    with model_mode(net, "train"):
        assert all(m.training for m in net.modules())
    assert [m.training for m in net.modules()] == before
    with pytest.raises(ValueError, match="mode"):
        with model_mode(net, "test"):
            pass


def test_frozen_params_restores_own_flags():
    net = _net()
    net[0].bias.requires_grad_(False)
    with frozen_params(net):
        assert not any(p.requires_grad for p in net.parameters())
    assert net[0].weight.requires_grad and not net[0].bias.requires_grad


def test_device_and_autocast_and_seed():
    assert model_device(_net()) == torch.device("cpu")
    assert model_device(nn.ReLU()) == torch.device("cpu")
    with autocast("cpu", enabled=True):
        out = nn.Linear(4, 4)(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16
    with autocast("cpu", enabled=False):
        assert nn.Linear(4, 4)(torch.randn(2, 4)).dtype == torch.float32
    g1, g2 = seed_everything(5), seed_everything(5)
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))


# --------------------------------------------------------------------------- progress output
def test_progress_mode_follows_the_terminal_and_the_environment(monkeypatch, capsys):
    from robustviz._utils import _Lines, progress_mode, tqdm

    monkeypatch.delenv("ROBUSTVIZ_PROGRESS", raising=False)
    assert progress_mode() == "lines"                 # capsys's stderr is not a terminal
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    assert progress_mode() == "bar"
    monkeypatch.setenv("ROBUSTVIZ_PROGRESS", "lines")
    assert isinstance(tqdm(range(3)), _Lines)
    monkeypatch.setenv("ROBUSTVIZ_PROGRESS", "bar")
    from tqdm import std

    bar = tqdm(range(3), disable=True)
    assert isinstance(bar, std.tqdm)
    monkeypatch.setenv("ROBUSTVIZ_PROGRESS", "sometimes")
    with pytest.raises(ValueError, match="ROBUSTVIZ_PROGRESS"):
        progress_mode()


def test_progress_lines_one_per_stage_and_none_for_transient_bars(monkeypatch, capsys):
    from robustviz._utils import tqdm

    monkeypatch.delenv("ROBUSTVIZ_PROGRESS", raising=False)
    assert list(tqdm(range(4), desc="inner", leave=False)) == [0, 1, 2, 3]
    assert capsys.readouterr().err == ""                       # transient: silent
    assert sum(tqdm(range(5), desc="extract", unit="batch")) == 10
    err = capsys.readouterr().err
    assert err.startswith("extract: 5/5 batch in ") and err.count("\n") == 1
    bar = tqdm(total=6, desc="report")
    for stage in ("nat: evaluate", "nat: evaluate", "nat: features"):
        bar.set_postfix_str(stage)
        bar.set_postfix(loss="0.1")                            # per-batch numbers: silent
        bar.update(2)
    bar.close()
    bar.close()                                                # closing twice: one line
    lines = capsys.readouterr().err.splitlines()
    assert lines[:2] == ["report [0/6] nat: evaluate", "report [4/6] nat: features"]
    assert lines[2].startswith("report: 6/6 it in ") and len(lines) == 3
    tqdm.write("epoch 1/1 loss 0.5")
    assert capsys.readouterr().out == "epoch 1/1 loss 0.5\n"
    monkeypatch.setenv("ROBUSTVIZ_PROGRESS", "off")
    list(tqdm(range(3), desc="quiet"))
    assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_training_and_evaluation_logs_hold_no_bar_frames(tmp_path, monkeypatch, capfd):
    """Redirected (not a terminal), a training run writes one line per epoch, no '\\r'."""
    from robustviz import attacks, data, evaluate, models, train

    monkeypatch.delenv("ROBUSTVIZ_PROGRESS", raising=False)
    tr = data.load("digits", "train", n=256, seed=0)
    model = models.build("tinycnn", num_classes=tr.num_classes, in_channels=tr.shape[0],
                         input_size=tr.shape[1:], mean=tr.mean, std=tr.std, seed=0)
    trainer = train.Trainer(defense={"name": "nat"}, epochs=2, batch_size=32, seed=0,
                            progress=True)
    trainer.fit(model, tr)
    evaluate.evaluate(model, (tr.x[:64], tr.y[:64]), {"fgsm": attacks.FGSM(eps=0.1)},
                      batch_size=16, progress=True)
    out, err = capfd.readouterr()
    assert "\r" not in out + err
    epochs = [ln for ln in out.splitlines() if ln.lstrip().startswith("epoch")]
    assert len(epochs) == 2, out
    assert len(out + err) < 2000
