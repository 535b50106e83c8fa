"""The speedrun: its recipes parse and build, N-FGSM's perturbation, the catastrophic-
overfitting guard (on constructed histories and inside a Trainer run), and the
``robustviz speedrun`` alias's arguments."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from robustviz import data, defenses, models, runs
from robustviz.cli import main
from robustviz.cli.speedrun_cmd import recipe_path, train_argv
from robustviz.defenses import NFGSM
from robustviz.train import (CatastrophicOverfitting, OverfitGuard, TrainConfig, Trainer,
                             detect_collapse)
from robustviz.train._overfit import BEST_WEIGHTS

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- recipes
@pytest.mark.parametrize("name, channels, size", [("fashion_mnist", 1, 28), ("cifar10", 3, 32)])
def test_fast_recipe_parses_and_its_pieces_build_and_train_one_step(name, channels, size):
    cfg = TrainConfig.load(ROOT / "configs" / "fast" / f"{name}.yaml")
    trainer = cfg.trainer(progress=False)
    trainer.check()
    defense = defenses.build(dict(cfg.defense))
    assert defense.config()["eps"] == pytest.approx(cfg.eval["eps"])   # trained at the evaluated radius
    assert cfg.diagnostics["overfit_guard"]                            # the guard is on
    assert cfg.train["bf16"] in (False, "auto")                        # never bf16 forced on
    spec = dict(cfg.model)
    if spec["name"] == "preactresnet18":   # the recipe's network, narrowed to keep the test fast
        spec["width"] = 4
    model = models.build(**{"num_classes": 10, "in_channels": channels, "input_size": (size, size),
                            "mean": [0.5] * channels, "std": [0.25] * channels, "seed": 0, **spec})
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, channels, size, size, generator=g)
    y = torch.arange(4)
    loss, logs = defense(model.train(), x, y, generator=g)
    loss.backward()
    assert torch.isfinite(loss) and logs["acc_adv"] <= 1.0
    assert all(p.grad is not None for p in model.parameters())


def test_recipe_path_finds_the_repository_recipes_and_refuses_unknown_data():
    assert recipe_path("fashion-mnist") == (ROOT / "configs" / "fast" / "fashion_mnist.yaml").resolve()
    with pytest.raises(ValueError, match="no fast recipe for 'mnist'"):
        recipe_path("mnist")


# ----------------------------------------------------------------------------- TinyCNN pool="stride"
def test_tinycnn_stride_blocks_keep_the_taps_shapes_and_parameters_without_pooling():
    kw = dict(num_classes=10, in_channels=1, input_size=(28, 28), mean=[0.5], std=[0.25], width=8, hidden=32)
    pooled, strided = models.build("tinycnn", **kw), models.build("tinycnn", pool="stride", **kw)
    assert pooled.build_kwargs["pool"] == "max" and strided.build_kwargs["pool"] == "stride"
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in strided.modules())
    assert models.count_parameters(strided) == models.count_parameters(pooled)   # the same weights, strided
    x = torch.rand(2, 1, 28, 28)
    a, b = pooled.conv1(pooled.normalize(x)), strided.conv1(strided.normalize(x))
    assert a.shape == b.shape == (2, 8, 14, 14)              # the taps keep their shapes
    assert pooled.conv2(a).shape == strided.conv2(b).shape == (2, 16, 7, 7)
    assert strided(x).shape == (2, 10)
    # odd sides: a stride-2 padded conv rounds up where a 2x2 pool rounds down (7 -> 4 -> 2 vs 7 -> 3 -> 1)
    assert models.tinycnn_flat_features((7, 7), 8, "stride") == 16 * 2 * 2
    assert models.tinycnn_flat_features((7, 7), 8) == 16 * 1 * 1
    odd = models.build("tinycnn", pool="stride", **{**kw, "input_size": (7, 7)})
    assert odd(torch.rand(1, 1, 7, 7)).shape == (1, 10)
    with pytest.raises(ValueError, match="pool"):
        models.build("tinycnn", pool="avg", **kw)


# ----------------------------------------------------------------------------- N-FGSM
def test_nfgsm_steps_eps_from_noise_of_twice_eps_without_projection():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    x = 0.25 + 0.5 * torch.rand(16, 1, 8, 8)   # away from 0 and 1: no clipping
    y = torch.randint(0, 3, (16,))
    eps = 0.05
    atk = NFGSM(eps=eps)
    g = torch.Generator().manual_seed(3)
    x_adv = atk(model, x, y, generator=g)
    start = x + (2 * torch.rand(x.shape, generator=torch.Generator().manual_seed(3)) - 1) * 2 * eps
    # one signed step of exactly eps from the noisy start, along the sign of the CE gradient there
    s = start.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(model(s), y, reduction="sum"), s)
    assert torch.allclose(x_adv, start + eps * grad.sign(), atol=1e-6)
    delta = (x_adv - x).abs().amax()
    assert eps < delta <= 3 * eps + 1e-6     # leaves the eps-ball, stays in (noise + 1) eps
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    d = defenses.build({"name": "nfgsm", "eps": eps, "noise": 1.0, "step_size": 0.02})
    assert defenses.build(d.config()).config() == d.config() == {"name": "nfgsm", "eps": eps, "noise": 1.0,
                                                                 "step_size": 0.02}
    with pytest.raises(ValueError, match="eps"):
        NFGSM(eps=0.0)


# ----------------------------------------------------------------------------- guard
def test_detect_collapse_needs_pgd_to_fall_while_fgsm_rises():
    # Wong et al.'s signature: PGD accuracy drops to ~0 while FGSM accuracy climbs
    pgd = [0.30, 0.45, 0.52, 0.05, 0.02]
    fgsm = [0.40, 0.55, 0.60, 0.85, 0.90]
    c = detect_collapse(pgd, fgsm, epochs=[2, 4, 6, 8, 10])
    assert (c.epoch, c.best_epoch, c.pgd_acc, c.best_pgd_acc, c.fgsm_acc, c.best_fgsm_acc) == \
        (8, 6, 0.05, 0.52, 0.85, 0.60)
    # a model that gets worse under both attacks is not overfitting catastrophically
    assert detect_collapse([0.5, 0.6, 0.2], [0.6, 0.7, 0.3]) is None
    # a drop smaller than `drop` is noise
    assert detect_collapse([0.5, 0.6, 0.45], [0.6, 0.7, 0.8], drop=0.2) is None
    assert detect_collapse([0.5, 0.6, 0.45], [0.6, 0.7, 0.8], drop=0.1).epoch == 3
    # FGSM must rise by at least `rise`
    assert detect_collapse([0.6, 0.1], [0.7, 0.75], rise=0.1) is None
    assert detect_collapse([], []) is None
    with pytest.raises(ValueError, match="same length"):
        detect_collapse([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        detect_collapse([50.0], [60.0])


def test_guard_accuracies_are_consistent_on_a_robust_model(pgd_at_model, fmnist_test):
    guard = OverfitGuard(fmnist_test, eps=0.1, n=64, steps=5)
    acc = guard._accuracies(pgd_at_model)
    assert 0 < acc["guard_pgd_acc"] <= acc["guard_clean_acc"]
    assert acc["guard_fgsm_acc"] <= acc["guard_clean_acc"]
    assert acc["guard_pgd_acc"] < acc["guard_clean_acc"]   # PGD-5 at eps 0.1 finds some errors


def _digits_model():
    train = data.load("digits", "train", n=300)
    return train, models.build("tinycnn", num_classes=10, in_channels=1, input_size=(8, 8), mean=train.mean,
                               std=train.std, width=4, hidden=16, seed=0)


def test_guard_stops_a_trainer_run_at_a_collapse_and_keeps_the_best_epoch(tmp_path):
    train, model = _digits_model()
    guard = OverfitGuard(data.load("digits", "test"), eps=0.1, n=32, steps=2)
    script = iter([(0.9, 0.40, 0.50), (0.9, 0.55, 0.60), (0.9, 0.10, 0.80)])
    seen = {}

    def scripted(m):   # the measured accuracies of a run that collapses at epoch 3
        clean, pgd, fgsm = next(script)
        seen[len(seen) + 1] = {k: v.clone() for k, v in m.state_dict().items()}
        return {"guard_clean_acc": clean, "guard_fgsm_acc": fgsm, "guard_pgd_acc": pgd}

    guard._accuracies = scripted
    trainer = Trainer(defense=None, epochs=3, lr=0.05, batch_size=256, val_attack=None, progress=False)
    with pytest.raises(CatastrophicOverfitting, match="epoch 3.*55.0%.*epoch 2.*10.0%") as err:
        trainer.fit(model, train, run_dir=tmp_path / "run", callbacks=[guard])
    assert err.value.collapse.best_epoch == 2 and guard.best_epoch_ == 2
    # the model holds epoch 2's weights, not the collapsed epoch 3's
    assert all(torch.equal(v, seen[2][k]) for k, v in model.state_dict().items())
    assert not all(torch.equal(v, seen[3][k]) for k, v in model.state_dict().items())
    run = tmp_path / "run"
    event = [r for r in runs.read_metrics(run) if r.get("event") == "catastrophic_overfitting"]
    assert len(event) == 1 and event[0]["epoch"] == 3 and event[0]["best_epoch"] == 2
    assert [r["epoch"] for r in runs.read_metrics(run, kind="epoch")] == [1, 2]
    assert [r["guard_pgd_acc"] for r in runs.read_metrics(run, kind="epoch")] == [0.40, 0.55]
    best = models.build("tinycnn", num_classes=10, in_channels=1, input_size=(8, 8), mean=train.mean,
                        std=train.std, width=4, hidden=16, seed=1)
    runs.load_weights(run / BEST_WEIGHTS, best)
    assert all(torch.equal(v, seen[2][k]) for k, v in best.state_dict().items())


def test_guard_refuses_bad_options():
    x, y = torch.rand(10, 1, 8, 8), torch.zeros(10, dtype=torch.long)
    with pytest.raises(ValueError, match="fewer than n=256"):
        OverfitGuard((x, y), eps=0.1)
    with pytest.raises(ValueError, match="eps"):
        OverfitGuard((x, y), eps=0.0, n=5)
    with pytest.raises(TypeError, match="Dataset or a pair"):
        OverfitGuard([1, 2], eps=0.1, n=1)


# ----------------------------------------------------------------------------- CLI
def test_speedrun_alias_maps_to_train_and_rejects_bad_arguments(tmp_path, capsys):
    import argparse

    ns = argparse.Namespace(dataset="fashion-mnist", config=None, out=None, seed=2, data_root=None,
                            device="cpu", no_progress=True)
    argv = train_argv(ns)
    assert argv[:2] == ["--config", str(recipe_path("fashion-mnist"))]
    assert argv[2:] == ["--out", "runs/speedrun/fashion-mnist-seed2", "--seed", "2", "--device", "cpu",
                        "--no-progress"]
    for bad, message in ((["--seed", "-1"], "must be >= 0"), (["--seed", "x"], "whole number"),
                         (["--dataset", "mnist"], "invalid choice")):
        with pytest.raises(SystemExit) as exit_:
            main(["speedrun", *bad])
        assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert main(["speedrun", "--config", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "r")]) == 2
    assert "no config file" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "configs/fast/fashion_mnist.yaml").read_text().replace(
        "overfit_guard: {n: 256", "overfit_guard: {size: 3, n: 256"))
    assert main(["speedrun", "--config", str(bad), "--out", str(tmp_path / "r")]) == 2
    assert "unknown diagnostics.overfit_guard option(s) ['size']" in capsys.readouterr().err
    assert not (tmp_path / "r" / "state.safetensors").exists()
