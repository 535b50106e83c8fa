"""robustviz.models: shapes, taps, extraction, normalisation, checkpoints, bad input."""
from __future__ import annotations

import dataclasses
import json
import urllib.error

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustviz import models
from robustviz.models import Features, Normalize, build, extract
from robustviz.runs import CheckpointError, load_run, load_weights, save_run, save_weights

CONTRACT_NAMES = ["tinycnn", "smallcnn", "resnet18", "resnet20", "preactresnet18", "wrn34_10",
                  "resnet18_imagenet"]


def _images(n, c, h, w=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, h, w or h, generator=g)


@dataclasses.dataclass
class _StandInDataset:
    """The part of robustviz.data.Dataset that extract() reads."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self):
        return self.x.shape[0]


# --------------------------------------------------------------------------- shapes
def _expected_shapes(name, kw, c, h, w, n):
    """Tap shapes derived on paper from each architecture's definition."""
    def half(s):  # 3x3 stride-2 conv with padding 1
        return (s + 1) // 2

    if name == "tinycnn":
        wd = kw.get("width", 32)
        return {"conv1": (n, wd, h // 2, w // 2), "conv2": (n, 2 * wd, h // 4, w // 4),
                "penultimate": (n, kw.get("hidden", 128))}
    if name == "smallcnn":
        s1 = ((h - 4) // 2, (w - 4) // 2)
        s2 = ((s1[0] - 4) // 2, (s1[1] - 4) // 2)
        return {"conv1": (n, 32, h - 2, w - 2), "conv2": (n, 32, *s1),
                "conv3": (n, 64, s1[0] - 2, s1[1] - 2), "conv4": (n, 64, *s2),
                "fc1": (n, 200), "penultimate": (n, 200)}
    if name in ("resnet18", "preactresnet18"):
        wd = kw.get("width", 64)
        sizes = [(h, w), (h, w), (half(h), half(w)), (half(half(h)), half(half(w))),
                 (half(half(half(h))), half(half(half(w))))]
        out = {"stem": (n, wd, *sizes[0]), "penultimate": (n, 8 * wd)}
        for i, mult in enumerate((1, 2, 4, 8), start=1):
            out[f"layer{i}"] = (n, wd * mult, *sizes[i])
        if name == "resnet18":
            out.update({"embedding1": out["stem"], "embedding2": out["layer1"],
                        "embedding3": out["layer2"], "embedding4": out["layer3"],
                        "embedding5": out["penultimate"]})
        return out
    if name in ("resnet20", "wrn34_10"):
        if name == "resnet20":
            widths = [kw.get("width", 16) * m for m in (1, 1, 2, 4)]
        else:
            k = kw.get("widen_factor", 10)
            widths = [16, 16 * k, 32 * k, 64 * k]
        return {"stem": (n, widths[0], h, w), "layer1": (n, widths[1], h, w),
                "layer2": (n, widths[2], half(h), half(w)),
                "layer3": (n, widths[3], half(half(h)), half(half(w))),
                "penultimate": (n, widths[3])}
    if name == "resnet18_imagenet":
        s = [(half(half(h)), half(half(w)))]  # 7x7/2 conv, 3x3/2 max-pool
        s.append(s[0])
        for _ in range(3):
            s.append((half(s[-1][0]), half(s[-1][1])))
        out = {"stem": (n, 64, *s[0]), "penultimate": (n, 512)}
        for i, ch in enumerate((64, 128, 256, 512), start=1):
            out[f"layer{i}"] = (n, ch, *s[i])
        out.update({"embedding1": out["stem"], "embedding2": out["layer1"],
                    "embedding3": out["layer2"], "embedding4": out["layer3"],
                    "embedding5": out["penultimate"]})
        return out
    raise AssertionError(name)


SHAPE_CASES = [
    ("tinycnn", {}, 1, 28), ("tinycnn", {}, 3, 32), ("tinycnn", {}, 1, 8),
    ("smallcnn", {}, 1, 28), ("smallcnn", {}, 3, 32),
    ("resnet18", {"width": 8}, 3, 32), ("resnet18", {"width": 8}, 1, 28), ("resnet18", {"width": 8}, 1, 8),
    ("resnet20", {}, 3, 32), ("resnet20", {}, 1, 28), ("resnet20", {}, 1, 8),
    ("preactresnet18", {"width": 8}, 3, 32), ("preactresnet18", {"width": 8}, 1, 28),
    ("wrn34_10", {"depth": 10, "widen_factor": 1}, 3, 32), ("wrn34_10", {"depth": 16, "widen_factor": 2}, 1, 28),
    ("resnet18_imagenet", {}, 3, 32), ("resnet18_imagenet", {}, 1, 28), ("resnet18_imagenet", {}, 3, 64),
]


def test_list_models_is_the_contract():
    assert models.list_models() == CONTRACT_NAMES


@pytest.mark.parametrize("name,kw,c,size", SHAPE_CASES, ids=lambda v: str(v))
def test_output_and_tap_shapes(name, kw, c, size):
    n = 3
    model = build(name, num_classes=7, in_channels=c, input_size=size, **kw).eval()
    x = _images(n, c, size)
    assert model.num_classes == 7 and model.in_channels == c
    assert model.layer_names[-2:] == ("penultimate", "logits")
    assert isinstance(model.normalize, Normalize) and next(iter(model.children())) is model.normalize
    assert isinstance(model.classifier, nn.Linear) and model.classifier.out_features == 7
    with torch.no_grad():
        logits = model(x)
        with Features(model, model.layer_names) as tap:
            out = tap(x)
    assert logits.shape == (n, 7)
    expected = _expected_shapes(name, kw, c, size, size, n)
    expected["logits"] = (n, 7)
    assert set(out) == set(model.layer_names) == set(expected)
    for key, shape in expected.items():
        assert tuple(out[key].shape) == shape, key
    assert out["penultimate"].shape[1] == model.classifier.in_features
    assert torch.equal(out["logits"], logits)
    model.check_input(x)  # the sizes it supports pass its own check


def test_imagenet_resnet_at_full_resolution():
    model = build("resnet18_imagenet", num_classes=5).eval()
    with torch.no_grad(), Features(model, ["embedding1", "layer4", "embedding5"]) as tap:
        out = tap(_images(1, 3, 224))
    assert out["embedding1"].shape == (1, 64, 56, 56)
    assert out["layer4"].shape == (1, 512, 7, 7)
    assert out["embedding5"].shape == (1, 512)


def test_fixed_size_models_record_their_input_size():
    assert build("tinycnn").input_size == (28, 28)
    assert build("tinycnn", in_channels=3).input_size == (32, 32)
    assert build("tinycnn", input_size=8).input_size == (8, 8)
    assert build("smallcnn", in_channels=3).input_size == (32, 32)
    assert build("resnet18", width=4).input_size is None
    assert build("resnet18", width=4, input_size=(32, 32)).input_size == (32, 32)


# --------------------------------------------------------------------------- flatten arithmetic
def test_smallcnn_flatten_sizes():
    assert models.smallcnn_flat_features((28, 28)) == 64 * 4 * 4 == 1024
    assert models.smallcnn_flat_features((32, 32)) == 64 * 5 * 5 == 1600
    mnist = build("smallcnn", in_channels=1)
    cifar = build("smallcnn", in_channels=3)
    assert mnist.fc1[1].in_features == 1024 and cifar.fc1[1].in_features == 1600
    # the same numbers measured by running the convolution stack
    for model, c, s in ((mnist, 1, 28), (cifar, 3, 32)):
        with torch.no_grad():
            z = model.conv4(model.conv3(model.conv2(model.conv1(torch.zeros(1, c, s, s)))))
        assert z[0].numel() == model.fc1[1].in_features
    # TRADES/C&W layer sizes: 32, 32, 64, 64 filters; 200, 200 hidden units; dropout 0.5
    convs = [m for m in mnist.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == [32, 32, 64, 64]
    assert all(m.kernel_size == (3, 3) and m.padding == (0, 0) for m in convs)
    assert mnist.dropout.p == 0.5
    assert models.tinycnn_flat_features((28, 28)) == 3136
    assert models.tinycnn_flat_features((32, 32)) == 4096
    assert models.tinycnn_flat_features((8, 8)) == 256


def test_smallcnn_rejects_inputs_too_small_for_its_convolutions():
    with pytest.raises(ValueError, match="input_size"):
        build("smallcnn", input_size=8)


# --------------------------------------------------------------------------- parameter counts
def test_parameter_counts_match_reference_architectures():
    from torchvision.models import resnet18 as tv_resnet18

    # CIFAR ResNet-18 = torchvision's with a 3x3 stem (no max-pool): only conv1 and fc differ.
    tv = tv_resnet18(num_classes=10)
    delta = 64 * 3 * 3 * 3 - 64 * 3 * 7 * 7
    assert models.count_parameters(build("resnet18")) == models.count_parameters(tv) + delta
    assert models.count_parameters(build("resnet18_imagenet")) == models.count_parameters(tv)
    # He et al. (2016) Table 6: ResNet-20 has 0.27 M parameters (option A shortcuts):
    # 3*16*9 + 16*16*9*6 + 16*32*9 + 32*32*9*5 + 32*64*9 + 64*64*9*5 convs, 19 BNs, FC.
    convs = 3 * 16 * 9 + 16 * 16 * 9 * 6 + 16 * 32 * 9 + 32 * 32 * 9 * 5 + 32 * 64 * 9 + 64 * 64 * 9 * 5
    bns = 2 * (16 + 6 * 16 + 6 * 32 + 6 * 64)
    assert models.count_parameters(build("resnet20")) == convs + bns + 64 * 10 + 10
    # WRN-34-10 (Zagoruyko & Komodakis; TRADES' CIFAR model): 46.16 M parameters.
    with torch.device("meta"):
        wrn = build("wrn34_10", seed=None)
    assert models.count_parameters(wrn) == 46_160_474


def test_cifar_resnet18_stages_compute_torchvision_basic_blocks():
    """Independent cross-check: with torchvision's stage weights copied in, our stages give
    the same function (same block structure, strides and projection shortcuts)."""
    from torchvision.models import resnet18 as tv_resnet18

    tv = tv_resnet18(num_classes=10).eval()
    ours = build("resnet18").eval()
    for i in range(1, 5):
        getattr(ours, f"layer{i}").load_state_dict(getattr(tv, f"layer{i}").state_dict())
    z = torch.randn(2, 64, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = ours.layer4(ours.layer3(ours.layer2(ours.layer1(z))))
        b = tv.layer4(tv.layer3(tv.layer2(tv.layer1(z))))
    torch.testing.assert_close(a, b)


# --------------------------------------------------------------------------- taps
@pytest.mark.parametrize("name,kw,c,size", [
    ("tinycnn", {}, 1, 28), ("smallcnn", {}, 3, 32), ("resnet18", {"width": 8}, 3, 32),
    ("resnet20", {}, 3, 32), ("preactresnet18", {"width": 8}, 3, 32),
    ("wrn34_10", {"depth": 10, "widen_factor": 1}, 3, 32), ("resnet18_imagenet", {}, 3, 32)])
def test_tap_logits_equal_forward_and_gradients_flow(name, kw, c, size):
    model = build(name, in_channels=c, **kw).eval()
    x = _images(4, c, size).requires_grad_(True)
    stage = model.layer_names[0]
    with Features(model, [stage, "penultimate", "logits"]) as tap:
        out = tap(x)
    torch.testing.assert_close(out["logits"], model(x), rtol=0, atol=0)
    for key in (stage, "penultimate", "logits"):
        assert out[key].requires_grad, key
    # the penultimate feature really is the classifier's input: logits = W z + b
    torch.testing.assert_close(out["logits"], model.classifier(out["penultimate"]))
    loss = out["penultimate"].square().sum() + out[stage].mean()
    (gx,) = torch.autograd.grad(loss, x)
    assert gx.shape == x.shape and torch.isfinite(gx).all() and gx.abs().sum() > 0
    # gradients reach the parameters too (taps are usable inside training losses)
    model.zero_grad()
    tap2 = Features(model, ["penultimate"])
    tap2(x.detach())["penultimate"].sum().backward()
    tap2.close()
    assert next(iter(model.parameters())).grad is not None


def test_tap_gradient_matches_a_manual_recomputation():
    model = build("tinycnn", seed=3).eval()
    x = _images(5, 1, 28)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    with Features(model, ["conv2", "penultimate"]) as tap:
        out = tap(xa)
    (out["conv2"].square().sum() + out["penultimate"].sum()).backward()
    h2 = model.conv2(model.conv1(model.normalize(xb)))
    z = model.fc(h2)
    (h2.square().sum() + z.sum()).backward()
    torch.testing.assert_close(xa.grad, xb.grad)


def test_imagenet_embeddings_are_the_paper_000_points():
    model = build("resnet18_imagenet")
    model.eval()
    x = _images(2, 3, 32)
    names = ["embedding1", "embedding2", "embedding3", "embedding4", "embedding5", "layer4"]
    with torch.no_grad(), Features(model, names) as tap:
        out = tap(x)
        e1 = model.maxpool(model.relu(model.bn1(model.conv1(model.normalize(x)))))
        e2 = model.layer1(e1)
        e3 = model.layer2(e2)
        e4 = model.layer3(e3)
        e5 = torch.flatten(F.adaptive_avg_pool2d(model.layer4(e4), 1), 1)
    for got, want in zip([out[k] for k in names[:5]], [e1, e2, e3, e4, e5]):
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(out["embedding5"], out["layer4"].mean(dim=(2, 3)))


def test_cifar_resnet18_embeddings_alias_its_stages():
    model = build("resnet18", width=8).eval()
    with torch.no_grad(), Features(model, model.layer_names) as tap:
        out = tap(_images(2, 3, 32))
    pairs = [("embedding1", "stem"), ("embedding2", "layer1"), ("embedding3", "layer2"),
             ("embedding4", "layer3"), ("embedding5", "penultimate")]
    for a, b in pairs:
        assert torch.equal(out[a], out[b])
    torch.testing.assert_close(out["embedding5"], out["layer4"].mean(dim=(2, 3)))


def test_hooks_record_only_inside_tap_and_close_removes_them():
    model = build("tinycnn").eval()
    x = _images(2, 1, 28)
    tap = Features(model, ["conv1", "penultimate"])
    with torch.no_grad():
        model(x)
    assert tap._store == {}  # a plain forward (e.g. an attack's) keeps nothing alive
    tap.close()
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    with pytest.raises(RuntimeError, match="closed"):
        tap(x)


def test_features_on_a_plain_module():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU())
            self.classifier = nn.Linear(3, 2)

        def forward(self, x):
            return self.classifier(self.body(x))

    net = Net()
    x = _images(3, 1, 2)
    with Features(net, ["body.1", "penultimate", "logits"]) as tap:
        out = tap(x)
    torch.testing.assert_close(out["body.1"], net.body[1](x.flatten(1)))
    torch.testing.assert_close(out["penultimate"], F.relu(out["body.1"]))
    torch.testing.assert_close(out["logits"], net(x))


def test_features_through_a_data_parallel_wrapper():
    model = build("tinycnn").eval()
    wrapped = nn.DataParallel(model)  # on CPU-only machines it calls the inner model
    x = _images(2, 1, 28)
    with torch.no_grad(), Features(wrapped, ["conv2", "penultimate", "logits"]) as tap:
        out = tap(x)
        ref = Features(model, ["conv2", "penultimate", "logits"])(x)
    for k in ref:
        torch.testing.assert_close(out[k], ref[k])


def test_tap_keeps_the_models_mode():
    model = build("smallcnn")  # train mode: dropout active
    tap = Features(model, ["fc1", "penultimate"])
    out = tap(_images(64, 1, 28))
    assert model.training
    # dropout zeroed about half the fc1 units before fc2, so penultimate != fc2(fc1)
    assert not torch.allclose(out["penultimate"], model.fc2(out["fc1"]))
    tap.close()


# --------------------------------------------------------------------------- extract
def test_extract_matches_tap_restores_modes_and_returns_cpu_float32():
    model = build("resnet20", width=4, in_channels=1)
    model.train()
    model.layer2.eval()  # mixed modes must come back exactly
    x = _images(10, 1, 28)
    feats = extract(model, x, ["layer3", "penultimate", "logits"], batch_size=3)
    assert model.training and not model.layer2.training and model.layer3.training
    model.eval()
    with torch.no_grad(), Features(model, ["layer3", "penultimate", "logits"]) as tap:
        ref = tap(x)
    assert list(feats) == ["layer3", "penultimate", "logits"]
    for k in ref:
        assert feats[k].dtype == torch.float32 and feats[k].device.type == "cpu"
        assert not feats[k].requires_grad
        torch.testing.assert_close(feats[k], ref[k], rtol=1e-4, atol=1e-4)  # batch-size-dependent conv kernels


def test_extract_accepts_a_dataset_and_bf16():
    model = build("tinycnn", input_size=8, num_classes=3).eval()
    x = _images(20, 1, 8)
    ds = _StandInDataset(x=x, y=torch.zeros(20, dtype=torch.long))
    a = extract(model, ds, "logits", batch_size=7, progress=False)
    b = extract(model, x, ["logits"], batch_size=256)
    torch.testing.assert_close(a["logits"], b["logits"])
    torch.testing.assert_close(a["logits"], model(x).detach())
    c = extract(model, x, ["logits"], bf16=True)
    assert c["logits"].dtype == torch.float32
    torch.testing.assert_close(c["logits"], b["logits"], rtol=0.1, atol=0.1)


def test_extract_on_real_digits_if_data_is_available():
    data = pytest.importorskip("robustviz.data")
    if not hasattr(data, "load"):
        pytest.skip("robustviz.data.load is not in this tree yet")
    ds = data.load("digits", "test", n=50)
    model = build("tinycnn", in_channels=ds.shape[0], input_size=ds.shape[1:],
                  num_classes=ds.num_classes, mean=ds.mean, std=ds.std)
    feats = extract(model, ds, ["penultimate"], batch_size=16)
    assert feats["penultimate"].shape == (len(ds), 128)


def test_extract_bad_input():
    model = build("tinycnn").eval()
    with pytest.raises(ValueError, match="data"):
        extract(model, torch.empty(0, 1, 28, 28), ["logits"])
    with pytest.raises(ValueError, match="channel"):
        extract(model, _images(2, 3, 28), ["logits"])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        extract(model, _images(2, 1, 28) * 255, ["logits"])
    with pytest.raises(ValueError, match="28x28"):
        extract(model, _images(2, 1, 32), ["logits"])
    with pytest.raises(ValueError, match="batch_size"):
        extract(model, _images(2, 1, 28), ["logits"], batch_size=0)
    with pytest.raises(ValueError, match="penultimate"):  # the error lists the valid names
        extract(model, _images(2, 1, 28), ["layer9"])
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


# --------------------------------------------------------------------------- Normalize
def test_normalize_math_buffers_and_dtype():
    norm = Normalize((0.5, 0.25, 0.0), (0.5, 0.25, 2.0))
    x = torch.tensor([1.0, 0.5, 1.0]).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    y = norm(x)
    # (1-0.5)/0.5 = 1, (0.5-0.25)/0.25 = 1, (1-0)/2 = 0.5
    torch.testing.assert_close(y[:, :, 0, 0], torch.tensor([[1.0, 1.0, 0.5]] * 2))
    assert set(norm.state_dict()) == {"mean", "std"}
    assert [b for b, _ in norm.named_buffers()] == ["mean", "std"]
    y64 = norm.double()(x.double())
    assert y64.dtype == torch.float64 and norm.mean.dtype == torch.float64
    assert Normalize(0.5, 0.5, channels=3).mean.shape == (1, 3, 1, 1)
    import numpy as np  # a Dataset's statistics may come as arrays or tensors
    arr = Normalize(np.array([0.5, 0.25, 0.0]), torch.tensor([0.5, 0.25, 2.0]))
    torch.testing.assert_close(arr(x), y)
    with pytest.raises(ValueError, match="std"):
        Normalize(0.0, 0.0, channels=1)
    with pytest.raises(ValueError, match="mean"):
        Normalize((0.1, 0.2), 1.0, channels=3)


def test_model_normalises_with_the_given_statistics():
    mean, std = (0.2860,), (0.3530,)
    a = build("tinycnn", mean=mean, std=std, seed=5).eval()
    b = build("tinycnn", seed=5).eval()  # identity normalisation, same initial weights
    x = _images(3, 1, 28)
    torch.testing.assert_close(a(x), b((x - 0.2860) / 0.3530))
    assert a.state_dict()["normalize.mean"].flatten().tolist() == pytest.approx([0.2860])


# --------------------------------------------------------------------------- seeds
def test_build_seed_is_reproducible_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b, c = build("resnet20", seed=1), build("resnet20", seed=1), build("resnet20", seed=2)
    assert torch.equal(torch.random.get_rng_state(), state)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["conv1.weight"], sc["conv1.weight"])


# --------------------------------------------------------------------------- checkpoints
def _perturb(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    model.train()
    with torch.no_grad():
        model(_images(8, model.in_channels, (model.input_size or (32, 32))[0], seed=seed))
    return model.eval()


@pytest.mark.parametrize("name,kw", [("tinycnn", {"mean": 0.3, "std": 0.4}),
                                     ("resnet20", {"width": 4, "mean": (0.4, 0.5, 0.6),
                                                   "std": (0.2, 0.25, 0.3)}),
                                     ("wrn34_10", {"depth": 10, "widen_factor": 1})])
def test_state_dict_roundtrip_through_a_run(tmp_path, name, kw):
    model = _perturb(build(name, **kw))
    config = {"model": model.build_kwargs, "note": "test"}
    json.dumps(config)  # build_kwargs are JSON-serialisable
    save_run(tmp_path / "run", model, config)
    run = load_run(tmp_path / "run")
    assert type(run.model) is type(model) and run.config["model"] == model.build_kwargs
    own, got = model.state_dict(), run.model.state_dict()
    assert set(own) == set(got) and "normalize.mean" in got
    assert all(torch.equal(own[k], got[k]) for k in own)
    x = _images(4, model.in_channels, (model.input_size or (32, 32))[0])
    torch.testing.assert_close(run.model(x), model(x), rtol=0, atol=0)


def test_load_weights_rejects_another_architecture(tmp_path):
    path = save_weights(tmp_path / "w.safetensors", build("tinycnn"))
    with pytest.raises(CheckpointError, match="w.safetensors"):
        load_weights(path, build("smallcnn"))
    with pytest.raises(CheckpointError, match="shape"):  # same layers, other input size
        load_weights(path, build("tinycnn", input_size=32))
    with pytest.raises(CheckpointError):
        load_weights(path, build("resnet20"))
    load_weights(path, build("tinycnn", seed=9))  # the right architecture loads


# --------------------------------------------------------------------------- pretrained weights
def test_imagenet_weights_are_copied_from_torch_hub(monkeypatch):
    from torchvision.models import resnet18 as tv_resnet18

    source = tv_resnet18(num_classes=1000).state_dict()
    calls = []

    def fake_hub(url, **kw):
        calls.append((url, kw))
        return {k: v.clone() for k, v in source.items()}

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_hub)
    m1000 = build("resnet18_imagenet", num_classes=1000, weights="imagenet")
    assert calls[0][1]["weights_only"] is True
    assert torch.equal(m1000.classifier.weight, source["fc.weight"])
    assert torch.equal(m1000.layer3[1].bn2.running_var, source["layer3.1.bn2.running_var"])
    assert m1000.normalize.mean.flatten().tolist() == pytest.approx(list(models.IMAGENET_MEAN))
    assert "weights" not in m1000.build_kwargs  # the checkpoint holds them, not the config

    m10 = build("resnet18_imagenet", num_classes=10, weights="imagenet")
    assert torch.equal(m10.conv1.weight, source["conv1.weight"])
    assert m10.classifier.weight.shape == (10, 512)
    gray = build("resnet18_imagenet", in_channels=1, num_classes=10, weights="imagenet")
    torch.testing.assert_close(gray.conv1.weight, source["conv1.weight"].sum(1, keepdim=True))


def test_imagenet_weights_offline_error_says_where_the_cache_is(monkeypatch, tmp_path):
    def offline(url, **kw):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(RuntimeError) as err:
        build("resnet18_imagenet", weights="imagenet")
    msg = str(err.value)
    assert str(tmp_path / "hub" / "checkpoints") in msg and "TORCH_HOME" in msg
    assert "resnet18" in msg and "weights=None" in msg


# --------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize("args,kw,exc,match", [
    (("resnet50",), {}, ValueError, "tinycnn"),  # lists the valid names
    ((3,), {}, TypeError, "name"),
    (("tinycnn",), {"num_classes": 1}, ValueError, "num_classes"),
    (("tinycnn",), {"num_classes": 2.5}, TypeError, "num_classes"),
    (("tinycnn",), {"in_channels": 2}, ValueError, "in_channels"),
    (("tinycnn",), {"in_channels": "3"}, TypeError, "in_channels"),
    (("tinycnn",), {"depth": 3}, TypeError, "depth"),
    (("tinycnn",), {"mean": (0.1, 0.2)}, ValueError, "mean"),
    (("tinycnn",), {"std": -1.0}, ValueError, "std"),
    (("tinycnn",), {"input_size": (28, 28, 1)}, TypeError, "input_size"),
    (("tinycnn",), {"input_size": 2}, ValueError, "input_size"),
    (("tinycnn",), {"width": 0}, ValueError, "width"),
    (("tinycnn",), {"seed": -1}, ValueError, "seed"),
    (("resnet20",), {"depth": 21}, ValueError, "depth"),
    (("wrn34_10",), {"depth": 33}, ValueError, "depth"),
    (("wrn34_10",), {"dropout": 1.5}, ValueError, "dropout"),
    (("resnet18_imagenet",), {"weights": "cifar"}, ValueError, "weights"),
])
def test_build_rejects_bad_arguments(args, kw, exc, match):
    with pytest.raises(exc, match=match):
        build(*args, **kw)


def test_features_and_check_input_reject_bad_input():
    model = build("tinycnn")
    with pytest.raises(ValueError, match="penultimate"):
        Features(model, ["layer3"])
    with pytest.raises(ValueError, match="layers"):
        Features(model, [])
    with pytest.raises(TypeError, match="model"):
        Features(lambda x: x, ["logits"])
    with pytest.raises(ValueError, match="channel"):
        model.check_input(_images(1, 3, 28))
    with pytest.raises(ValueError, match="28x28"):
        model.check_input(_images(1, 1, 32))
    with pytest.raises(ValueError, match="NaN"):
        model.check_input(torch.full((1, 1, 28, 28), float("nan")))
    with pytest.raises(TypeError, match="floating"):
        model.check_input(torch.zeros(1, 1, 28, 28, dtype=torch.uint8))
    assert model.check_input(_images(1, 1, 28)) is not None
    adaptive = build("resnet20", width=4)
    adaptive.check_input(_images(1, 3, 40))  # any size


# --------------------------------------------------------------------------- CLI
def test_cli_models_list(capsys):
    from robustviz.cli import main

    assert main(["models", "list", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in records] == CONTRACT_NAMES
    by_name = {r["name"]: r for r in records}
    assert by_name["tinycnn"]["params"] == models.count_parameters(build("tinycnn"))
    assert by_name["resnet20"]["params"] == models.count_parameters(build("resnet20"))
    assert by_name["resnet18"]["taps"] == list(build("resnet18", width=4).layer_names)
    assert main(["models", "list"]) == 0
    text = capsys.readouterr().out
    assert "wrn34_10" in text and "46,160,474" in text and "embedding5" in text
