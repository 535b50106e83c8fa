"""Models of other zoos (RobustBench, torchvision, timm) through robustviz: wrapping, taps,
offline checkpoint loading (cross-checked against RobustBench's own loader), hostile files,
and the report on a RobustBench-architecture CIFAR-10 model."""
import json
import pickle

import pytest
import torch
from torch import nn

import robustviz as rv
from robustviz import models, runs

import fixtures_data as fx


def _robustbench():
    pytest.importorskip("timm")
    try:
        models._external._import_robustbench()
    except ImportError as err:
        pytest.skip(str(err))


def _write_rb_checkpoint(model_dir, name, net, *, wrap_key=True):
    """A checkpoint as RobustBench's downloads hold them: DataParallel's ``module.`` prefix
    under ``state_dict``."""
    folder = model_dir / "cifar10" / "Linf"
    folder.mkdir(parents=True, exist_ok=True)
    state = {"module." + k: v for k, v in net.state_dict().items()}
    torch.save({"state_dict": state} if wrap_key else state, folder / f"{name}.pt")
    return folder / f"{name}.pt"


# ---------------------------------------------------------------------------- wrap
def test_wrap_torchvision_resnet_taps_head_and_normalisation():
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    m = models.wrap(net, num_classes=10, mean=mean, std=std, input_size=32).eval()
    # stages in forward order, then the classifier input and output
    assert m.layer_names == ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3",
                             "layer4", "avgpool", "penultimate", "logits")
    assert m.classifier is net.fc
    assert not any(getattr(mod, "inplace", False) for mod in net.modules())
    x = torch.rand(3, 3, 32, 32)
    norm = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = net(norm)
        with models.Features(m, ["layer4", "penultimate", "logits"]) as tap:
            out = tap(x)
    assert torch.allclose(out["logits"], ref, atol=1e-5)
    assert torch.allclose(out["penultimate"], torch.flatten(out["layer4"].mean((2, 3)), 1), atol=1e-5)
    # one state dict, no duplicate of the head
    assert [k for k in m.state_dict() if k.startswith("classifier.")] == []


def test_wrap_custom_taps_and_bad_heads():
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    m = models.wrap(net, num_classes=3, in_channels=1, input_size=(3, 4), taps={"hidden": "2"})
    assert m.layer_names == ("hidden", "penultimate", "logits") and m.classifier is net[3]
    with pytest.raises(ValueError, match="no nn.Linear with 5 outputs"):
        models.wrap(net, num_classes=5, in_channels=1)
    with pytest.raises(ValueError, match="not a submodule"):
        models.wrap(net, num_classes=3, in_channels=1, head="fc")
    with pytest.raises(ValueError, match="not an nn.Linear"):
        models.wrap(net, num_classes=3, in_channels=1, head="2")
    with pytest.raises(ValueError, match="reserved"):
        models.wrap(net, num_classes=3, in_channels=1, taps={"logits": "1"})
    with pytest.raises(TypeError, match="nn.Module"):
        models.wrap("resnet", num_classes=3)


def test_wrapped_model_is_attacked_in_pixel_space():
    import torchvision

    m = models.wrap(torchvision.models.resnet18(num_classes=10), num_classes=10,
                    mean=(0.5,) * 3, std=(0.25,) * 3, input_size=32).eval()
    x, y = torch.rand(4, 3, 32, 32), torch.arange(4)
    adv = rv.attacks.PGD(eps=8 / 255, steps=3, seed=0)(m, x, y)
    assert float((adv - x).abs().max()) <= 8 / 255 + 1e-6 and adv.min() >= 0 and adv.max() <= 1


def test_from_timm_reads_its_normalisation():
    pytest.importorskip("timm")
    m = models.from_timm("resnet18", num_classes=10, input_size=32)
    assert torch.allclose(m.normalize.mean.flatten(), torch.tensor(models.IMAGENET_MEAN), atol=1e-6)
    assert m.layer_names[-2:] == ("penultimate", "logits") and "layer4" in m.layer_names
    assert m.build_kwargs["name"] == "timm" and m(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    again = models.build(**m.build_kwargs)
    assert set(again.state_dict()) == set(m.state_dict())


# ---------------------------------------------------------------------------- RobustBench
def test_robustbench_checkpoint_loads_as_robustbench_loads_it(tmp_path):
    """Cross-check: the same file through robustviz and through robustbench.utils.load_model
    gives the same logits (RobustBench finds it where its download would be, offline)."""
    _robustbench()
    from robustbench.utils import load_model

    torch.manual_seed(1)
    arch = models.from_robustbench("Wong2020Fast", weights=False)
    assert arch.layer_names == ("conv1", "layer1", "layer2", "layer3", "layer4", "penultimate", "logits")
    _write_rb_checkpoint(tmp_path, "Wong2020Fast", arch.net)
    ours = models.from_robustbench("Wong2020Fast", "cifar10", "Linf", model_dir=tmp_path).eval()
    theirs = load_model("Wong2020Fast", model_dir=str(tmp_path), dataset="cifar10",
                        threat_model="Linf").eval()
    x = torch.rand(5, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-5)
        assert torch.allclose(ours(x), arch.eval()(x), atol=1e-5)


def test_robustbench_bad_checkpoints_are_named(tmp_path):
    _robustbench()
    folder = tmp_path / "cifar10" / "Linf"
    folder.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"Standard\.pt.*does not download"):
        models.from_robustbench("Standard", model_dir=tmp_path)
    page = folder / "Standard.pt"
    page.write_text("<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title>")
    with pytest.raises(ValueError, match=r"Standard\.pt is an HTML page"):
        models.from_robustbench("Standard", model_dir=tmp_path)
    page.write_bytes(b"")
    with pytest.raises(ValueError, match="is empty"):
        models.from_robustbench("Standard", model_dir=tmp_path)
    page.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match="not a PyTorch checkpoint"):
        models.from_robustbench("Standard", model_dir=tmp_path)
    # a pickle that would run code when loaded: refused by weights_only, nothing executed
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(folder / "Wong2020Fast.pt", "wb") as fh:
        pickle.dump({"state_dict": Evil()}, fh, protocol=2)
    with pytest.raises(ValueError, match="weights_only"):
        models.from_robustbench("Wong2020Fast", model_dir=tmp_path)
    assert not marker.exists()
    # a checkpoint of another architecture
    small = models.build("resnet20", num_classes=10, width=4)
    torch.save(small.state_dict(), folder / "Wong2020Fast.pt")
    with pytest.raises(ValueError, match="does not fit the RobustBench architecture"):
        models.from_robustbench("Wong2020Fast", model_dir=tmp_path)
    with pytest.raises(ValueError, match="no cifar10/Linf model 'Wong2021'"):
        models.from_robustbench("Wong2021", model_dir=tmp_path)
    with pytest.raises(ValueError, match="threat_model"):
        models.from_robustbench("Standard", threat_model="L1", model_dir=tmp_path)


def test_report_on_a_robustbench_model_offline(tmp_path, monkeypatch):
    """A RobustBench-architecture CIFAR-10 model (random init, saved where RobustBench keeps
    its downloads) becomes a run and gets the whole default report on CIFAR-10-format images.

    What is checked is that every default section runs on this architecture, not attack
    strength: 20 images (2 per class; divergence needs a second image of a class), one PGD
    step in the table and at each attacked radius of the sweep on 10 images (each step is a
    PreActResNet-18 forward and backward, the largest part of the test's time)."""
    _robustbench()
    monkeypatch.setattr("robustviz.data._datasets.SYSTEM_ROOT", tmp_path / "no-system-datasets")
    fx.write_cifar10(tmp_path / "data", per_batch=10, n_test=20, seed=0)
    torch.manual_seed(2)
    _write_rb_checkpoint(tmp_path / "models", "Wong2020Fast",
                         models.from_robustbench("Wong2020Fast", weights=False).net, wrap_key=False)
    model = models.from_robustbench("Wong2020Fast", model_dir=tmp_path / "models")
    run_dir = runs.save_run(tmp_path / "runs" / "wong", model, {
        "model": model.build_kwargs, "data": {"name": "cifar10", "root": str(tmp_path / "data")},
        "eval": {"eps": 8 / 255}})
    loaded = runs.load_run(run_dir)           # rebuilt by name, weights from safetensors
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded.model(x), model.eval()(x), atol=1e-6)
    rep = rv.report.report([run_dir], out=tmp_path / "report", n=20, n_sweep=10, n_embed=20,
                           n_embed_adv=5, steps=1, sweep_steps=1, progress=False)
    html = (tmp_path / "report" / "index.html").read_text()
    assert "robustbench: Wong2020Fast" in html and "<img" in html
    row, = json.loads((tmp_path / "report" / "summary.json").read_text())["rows"]
    assert row["defense"] == "robustbench: Wong2020Fast"
    assert 0 <= row["worst"] <= row["pgd"] <= row["clean"] <= 1
    assert rep is not None
