"""The landscape and inversion commands write the figure, the raw arrays and a summary."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import robustviz as rv
from robustviz.cli import main


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    out = []
    for seed in (0, 1):
        model = rv.models.build("tinycnn", num_classes=10, in_channels=1, input_size=(8, 8),
                                mean=(0.3,), std=(0.3,), seed=seed)
        cfg = {"model": {"name": "tinycnn", **model.build_kwargs}, "data": {"name": "digits"}}
        out.append(rv.runs.save_run(root / f"m{seed}", model, cfg))
    return out


def test_landscape_command_writes_figure_and_arrays(two_runs, tmp_path, capsys):
    a, b = two_runs
    rc = main(["landscape", str(a), str(b), "--points", "3", "--n", "40", "--adversarial",
               "--steps", "1", "--out", str(tmp_path), "--format", "png", "--no-progress"])
    assert rc == 0
    for f in ("landscape.png", "landscape_3d.png", "landscape_adv.png", "landscape.npz",
              "landscape.json"):
        assert (tmp_path / f).stat().st_size > 0, f
    arr = np.load(tmp_path / "landscape.npz")
    assert arr["m0/loss"].shape == (3, 3) and arr["m1/adv_loss"].shape == (3, 3)
    run = rv.runs.load_run(a)
    test = rv.data.load("digits", "test").sample(40, seed=0)
    with torch.no_grad():
        want = F.cross_entropy(run.model(test.x), test.y).item()
    assert arr["m0/loss"][1, 1] == pytest.approx(want, abs=1e-5)
    summary = json.loads((tmp_path / "landscape.json").read_text())
    assert set(summary["models"]) == {"m0", "m1"}
    rc = main(["landscape", str(a), str(b), "--kind", "interpolation", "--points", "5", "--n",
               "20", "--out", str(tmp_path / "i"), "--format", "png", "--no-progress"])
    assert rc == 0 and np.load(tmp_path / "i" / "landscape.npz")["m0->m1/loss"].shape == (5,)


def test_inversion_command_writes_figure_and_arrays(two_runs, tmp_path):
    rc = main(["inversion", *map(str, two_runs), "--neurons", "0", "3", "--seeds", "2",
               "--steps", "3", "--out", str(tmp_path), "--format", "png", "--no-progress"])
    assert rc == 0
    arr = np.load(tmp_path / "inversion.npz")
    assert arr["m1/images"].shape == (2, 2, 1, 8, 8)
    assert arr["m1/images"].min() >= 0 and arr["m1/images"].max() <= 1
    assert (tmp_path / "inversion.png").stat().st_size > 0


def test_commands_need_a_model(capsys):
    assert main(["landscape", "--no-progress"]) == 2
    assert "RUN_DIR" in capsys.readouterr().err


def test_report_sections_return_title_text_figures_tables(tmp_path):
    from robustviz._report_visual import SECTIONS

    models = {f"m{s}": rv.models.build("tinycnn", num_classes=10, in_channels=1, input_size=(8, 8),
                                       mean=(0.3,), std=(0.3,), seed=s) for s in (0, 1)}
    test = rv.data.load("digits", "test")
    opts = {"inversion": dict(neurons=[0, 1], seeds=2, steps=2),
            "landscape": dict(n=30, points=3, pgd_steps=1),
            "corruptions": dict(n=20, severities=(1,)),
            "transfer": dict(n=20, pgd_steps=1)}
    for name, fn in SECTIONS.items():
        sec = fn(models, test, tmp_path / name, **opts[name])
        assert set(sec) == {"title", "text", "figures", "tables"}, name
        assert sec["figures"] and all((tmp_path / name / p.split("/")[-1]).stat().st_size > 0
                                      for p in sec["figures"]), name
        assert sec["tables"][0]["rows"], name
    sec = SECTIONS["corruptions"](models, test, tmp_path / "c2", n=20, severities=(1,))
    assert "Skipped" in sec["text"] and "fog" in sec["text"]   # 8x8 digits: spatial types skipped
