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


# ----------------------------------------------------------------------------- clear errors (issue 16)
def _tiny():
    from robustviz import models

    return models.build("tinycnn", num_classes=10, in_channels=1, input_size=8, width=4, hidden=16, seed=0)


def test_float64_images_are_refused_clearly_everywhere():
    """float64 images passed the checks and then failed inside torch (dtype mismatch)."""
    from robustviz import attacks
    from robustviz.evaluate import evaluate
    from robustviz.train import Trainer

    model = _tiny().eval()
    x, y = torch.rand(4, 1, 8, 8, dtype=torch.float64), torch.randint(0, 10, (4,))
    with pytest.raises(TypeError, match=r"x has dtype torch.float64 but the model's parameters are torch.float32"):
        attacks.PGD(eps=0.1, steps=1)(model, x, y)
    with pytest.raises(TypeError, match="float64 but the model's parameters are torch.float32"):
        evaluate(model, (x, y), {"fgsm": attacks.FGSM(eps=0.1)}, progress=False)
    with pytest.raises(TypeError, match="float64 but the model's parameters are torch.float32"):
        Trainer(epochs=1, val_attack=None, progress=False).evaluate(model, _Data(x, y), attack=None)
    with pytest.raises(TypeError, match="float64 but the model's parameters are torch.float32"):
        Trainer(epochs=1, val_attack=None, progress=False).fit(model, _Data(x, y))
    # the same images in float32 work, and a float64 model takes float64 images
    assert attacks.PGD(eps=0.1, steps=1)(model, x.float(), y).dtype == torch.float32
    assert attacks.PGD(eps=0.1, steps=1)(_tiny().double().eval(), x, y).dtype == torch.float64


class _Data:
    """A minimal Dataset stand-in (x, y, len, subset)."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)


def test_linf_eps_above_one_is_refused():
    from robustviz import attacks

    for make in (lambda: attacks.PGD(eps=2.0), lambda: attacks.FGSM(eps=8),
                 lambda: attacks.MIM(eps=1.5), lambda: attacks.AutoAttack(eps=4.0)):
        with pytest.raises(ValueError, match=r"larger than 1.*did you mean"):
            make()
    attacks.PGD(eps=1.0)                          # the whole box: allowed, if odd
    attacks.PGD(eps=3.0, norm="l2")               # an L2 radius above 1 is meaningful


def test_cli_evaluate_refuses_linf_eps_above_one(tmp_path, capsys):
    from robustviz import runs
    from robustviz.cli import main

    model = _tiny()
    runs.save_run(tmp_path / "r", model, {"model": model.build_kwargs, "data": {"name": "digits"}})
    assert main(["evaluate", str(tmp_path / "r"), "--eps", "8", "--n", "20", "--no-progress", "--no-save"]) == 2
    assert "did you mean eps=8/255" in capsys.readouterr().err


def test_callable_attack_with_the_wrong_number_of_rows():
    """A validation attack returning one image for a batch was broadcast against the labels
    and silently gave a wrong robust accuracy."""
    from robustviz.train import Trainer

    model = _tiny().eval()
    x, y = torch.rand(6, 1, 8, 8), torch.randint(0, 10, (6,))

    def first_only(model, x, y):
        return x[:1]

    with pytest.raises(ValueError, match=r"returned \(1, 1, 8, 8\) for a batch of shape \(6, 1, 8, 8\)"):
        Trainer(epochs=1, progress=False).evaluate(model, _Data(x, y), attack=first_only)


def test_empty_yaml_config_is_refused(tmp_path, capsys):
    from robustviz.cli import main
    from robustviz.train import TrainConfig

    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing here yet\n")
    with pytest.raises(ValueError, match="empty"):
        TrainConfig.load(empty)
    assert main(["train", "--config", str(empty), "--out", str(tmp_path / "run")]) == 2
    assert "empty" in capsys.readouterr().err and not (tmp_path / "run").exists()
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(TypeError, match="mapping"):
        TrainConfig.load(tmp_path / "list.yaml")


def test_config_with_a_null_model_section():
    from robustviz.train import TrainConfig

    with pytest.raises(ValueError, match="'model' needs a 'name'"):
        TrainConfig.from_dict({"model": None})


def test_rdiv_of_degenerate_features_warns():
    """All-zero features give R-DIV 1.0 under the cosine distance (every distance is 1):
    a number that says nothing, so it comes with a warning."""
    from robustviz.diagnostics import divergence

    y = torch.tensor([0, 0, 1, 1, 2, 2])
    with pytest.warns(UserWarning, match="degenerate"):
        res = divergence(torch.zeros(6, 5), torch.zeros(6, 5), y, n_boot=0)
    assert res.rdiv == pytest.approx(1.0)
    with pytest.warns(UserWarning, match="degenerate"):
        divergence(torch.ones(6, 5), None, y, distance="l2", n_boot=0)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        divergence(torch.randn(6, 5, generator=torch.Generator().manual_seed(0)), None, y, n_boot=0)
