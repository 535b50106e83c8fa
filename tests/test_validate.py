"""The shared validation layer: every bad input gives one clear error naming the argument."""
import pytest
import torch

from robustviz import _validate as v


@pytest.mark.parametrize("x, err, match", [
    ([[0.0]], TypeError, "torch.Tensor"),
    (torch.zeros(2, 1, 4, 4, dtype=torch.int64), TypeError, "floating"),
    (torch.zeros(1, 4, 4), ValueError, r"\(N, C, H, W\)"),
    (torch.zeros(0, 1, 4, 4), ValueError, "empty"),
    (torch.full((1, 1, 4, 4), float("nan")), ValueError, "NaN"),
    (torch.full((1, 1, 4, 4), 1.5), ValueError, r"\[0, 1\]"),
    (torch.full((1, 1, 4, 4), -0.1), ValueError, r"\[0, 1\]"),
])
def test_check_images_rejects(x, err, match):
    with pytest.raises(err, match=match):
        v.check_images(x, "images")


def test_check_images_channels_and_size():
    x = torch.rand(2, 3, 8, 8)
    assert v.check_images(x, channels=3, size=(8, 8)) is x
    with pytest.raises(ValueError, match="1 channel"):
        v.check_images(x, channels=1)
    with pytest.raises(ValueError, match="28x28"):
        v.check_images(x, size=(28, 28))


def test_check_labels():
    y = torch.tensor([0, 2, 1])
    assert v.check_labels(y, 3, num_classes=3) is y
    with pytest.raises(TypeError, match="integer"):
        v.check_labels(y.float(), 3)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        v.check_labels(y, 4)
    with pytest.raises(ValueError, match="only 2 classes"):
        v.check_labels(y, 3, num_classes=2)
    with pytest.raises(ValueError, match="negative"):
        v.check_labels(torch.tensor([-1, 0, 0]), 3)


def test_numbers():
    assert v.check_positive(0.1, "eps") == 0.1
    with pytest.raises(ValueError, match="eps must be > 0"):
        v.check_positive(0, "eps")
    with pytest.raises(TypeError, match="eps must be a number"):
        v.check_positive("0.1", "eps")
    with pytest.raises(ValueError, match="finite"):
        v.check_nonnegative(float("inf"), "step_size")
    with pytest.raises(ValueError, match="<= 1"):
        v.check_probability(1.5, "p")
    assert v.check_int(3, "steps", minimum=1) == 3
    with pytest.raises(TypeError, match="steps must be an integer"):
        v.check_int(2.5, "steps")
    with pytest.raises(TypeError):
        v.check_int(True, "steps")
    with pytest.raises(ValueError, match=r"in \[1, 5\]"):
        v.check_int(9, "steps", minimum=1, maximum=5)


def test_layers_and_choices():
    valid = ["layer1", "penultimate", "logits"]
    assert v.check_layers("logits", valid) == ["logits"]
    with pytest.raises(ValueError, match="valid names.*penultimate"):
        v.check_layers(["layer9"], valid)
    with pytest.raises(ValueError, match="at least one"):
        v.check_layers([], valid)
    with pytest.raises(ValueError, match="norm must be one of"):
        v.check_choice("l3", "norm", ["linf", "l2"])
    with pytest.raises(ValueError, match="dataset is empty"):
        v.check_nonempty([], "dataset")
    with pytest.raises(TypeError, match="sized"):
        v.check_nonempty(5, "dataset")
