"""Common corruptions: shapes and ranges of all 19 types, the skip list for 1-channel and
tiny images, determinism, and the corruption error arithmetic."""
import math
import sys

import numpy as np
import pytest
import torch
from torch import nn

from robustviz.evaluate import (COMMON_CORRUPTIONS, CORRUPTIONS, EXTRA_CORRUPTIONS,
                                CorruptionResult, corrupt, corruption_accuracy, corruption_plan)


def test_nineteen_types_fifteen_plus_four():
    assert len(CORRUPTIONS) == 19 and len(COMMON_CORRUPTIONS) == 15
    assert EXTRA_CORRUPTIONS == ("speckle_noise", "gaussian_blur", "spatter", "saturate")


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 20, 24)])
def test_every_type_keeps_shape_and_range(shape):
    x = torch.rand(3, *shape, generator=torch.Generator().manual_seed(0))
    plan = corruption_plan(shape)
    for name in CORRUPTIONS:
        if plan[name][0] == "skipped":
            continue
        for sev in (1, 5):
            out = corrupt(x, name, sev, seed=1)
            assert out.shape == x.shape and out.dtype == torch.float32, name
            assert out.min() >= 0 and out.max() <= 1, name
            assert not torch.equal(out, x) or name == "brightness", name


def test_skip_list_for_gray_and_tiny_images():
    gray = corruption_plan((1, 28, 28))
    assert [c for c, (how, _) in gray.items() if how == "skipped"] == ["saturate"]
    assert gray["defocus_blur"][0] == "resized+gray" and gray["gaussian_noise"][0] == "gray"
    rgb = corruption_plan((3, 32, 32))
    assert all(how == "native" for how, _ in rgb.values())
    tiny = corruption_plan((1, 8, 8))
    skipped = {c for c, (how, _) in tiny.items() if how == "skipped"}
    assert skipped == {"defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "snow", "frost",
                       "fog", "elastic_transform", "pixelate", "gaussian_blur", "spatter",
                       "saturate"}
    assert all(why for c, (how, why) in tiny.items() if how == "skipped")
    with pytest.raises(ValueError, match="skipped"):
        corrupt(torch.rand(2, 1, 8, 8), "fog", 1)


def test_deterministic_per_image_and_independent_of_batching():
    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    for name in ("gaussian_noise", "impulse_noise", "glass_blur", "frost"):
        a = corrupt(x, name, 3, seed=7)
        b = torch.cat([corrupt(x[:2], name, 3, seed=7), corrupt(x[2:], name, 3, seed=7, offset=2)])
        assert torch.equal(a, b), name
        assert not torch.equal(a, corrupt(x, name, 3, seed=8)), name


def test_severity_increases_noise():
    x = torch.full((8, 1, 28, 28), 0.5)
    dev = [float((corrupt(x, "gaussian_noise", s) - x).abs().mean()) for s in range(1, 6)]
    assert all(b > a for a, b in zip(dev, dev[1:]))


def test_accuracy_and_skips_printed_on_tiny_images(capsys):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    x = torch.rand(12, 1, 8, 8)
    y = torch.randint(0, 3, (12,))
    res = corruption_accuracy({"a": model, "b": model}, (x, y), severities=(1, 5),
                              progress=False)
    err = capsys.readouterr().err
    assert "skipping fog" in err and "skipping saturate" in err
    assert set(res.skipped) == {c for c, (h, _) in corruption_plan((1, 8, 8)).items() if h == "skipped"}
    assert len(res.corruptions) == 7
    for c in res.corruptions:
        assert all(0 <= a <= 1 for a in res.accuracy["a"][c])
        assert res.accuracy["a"][c] == res.accuracy["b"][c]   # the same images for both models
    assert res.mce("b", "a") == pytest.approx(1.0)            # a model against itself: 100%
    assert "mCE" in res.table()


def test_corruption_error_arithmetic():
    res = CorruptionResult(names=("base", "m"), corruptions=("fog", "saturate"), severities=(1, 2),
                           clean={"base": 0.9, "m": 0.8},
                           accuracy={"base": {"fog": (0.8, 0.6), "saturate": (0.5, 0.5)},
                                     "m": {"fog": (0.7, 0.7), "saturate": (1.0, 1.0)}},
                           skipped={}, adapted={}, n=10, seed=0)
    ce = res.corruption_errors("m", "base")
    assert ce["fog"] == pytest.approx((0.3 + 0.3) / (0.2 + 0.4))
    assert ce["saturate"] == pytest.approx(0.0)
    rel = res.corruption_errors("m", "base", relative=True)
    assert rel["fog"] == pytest.approx((0.1 + 0.1) / (0.1 + 0.3))
    assert res.mce("m", "base") == pytest.approx(1.0)           # only fog is a standard type
    assert res.mce("m", "base", subset="all") == pytest.approx(0.5)
    assert math.isnan(res.mce("m", "base", subset="extra")) is False


def test_missing_extra_gives_clear_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "imagecorruptions", None)
    with pytest.raises(ImportError, match=r"robustviz\[corruptions\]"):
        corrupt(torch.rand(1, 3, 32, 32), "fog", 1)


def test_spatter_without_drops_leaves_image_finite():
    # small uniform images often get no drop at all in spatter's water mode (a 0/0 upstream)
    x = torch.full((40, 3, 32, 32), 0.4)
    for sev in (1, 2, 3):
        out = corrupt(x, "spatter", sev, seed=3)
        assert torch.isfinite(out).all()
        assert out.min() >= 0 and out.max() <= 1


def test_corruption_and_transfer_figures():
    from robustviz import figures as rvf
    from robustviz.evaluate import TransferMatrix

    res = CorruptionResult(names=("NAT", "AT"), corruptions=("fog", "contrast"), severities=(1, 2),
                           clean={"NAT": 0.9, "AT": 0.8},
                           accuracy={"NAT": {"fog": (0.8, 0.6), "contrast": (0.5, 0.4)},
                                     "AT": {"fog": (0.7, 0.7), "contrast": (0.6, 0.6)}},
                           skipped={"saturate": "gray"}, adapted={}, n=10, seed=0)
    fig = rvf.plot_corruptions(res)
    left = fig.axes[0]
    assert np.allclose(left.lines[0].get_ydata(), [90, 65, 50])   # clean, mean per severity
    tm = TransferMatrix(names=("NAT", "AT"), accuracy=((0.05, 0.6), (0.3, 0.7)),
                        clean=(0.9, 0.8), n=10, attack={})
    fig = rvf.plot_transfer_matrix(tm)
    texts = sorted(t.get_text() for t in fig.axes[0].texts)
    assert texts == ["30.0", "5.0", "60.0", "70.0"]
