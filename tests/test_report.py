"""The main job end to end: ``robustviz demo`` trains, evaluates and writes the report;
``robustviz report`` on existing runs; the report's numbers come from the public building
blocks (evaluate, attacked_features, divergence) and its page reads offline."""
from __future__ import annotations

import json
import re

import pytest
from robustviz import attacks, data, diagnostics, evaluate, models, runs
from robustviz.cli import main as cli_main

pytestmark = pytest.mark.slow

DEFENSES = ("nat", "ancra")   # ancra: a reverse-attention model, attacked adaptively


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    """A tiny demo (600 images, 1 epoch, 60 test images) through the CLI: the plumbing, not
    the numbers of the real demo."""
    root = tmp_path_factory.mktemp("demo")
    argv = ["demo", "--retrain", "--out", str(root / "runs"), "--report", str(root / "report"),
            "--rdiv-every", "0", "--defenses", *DEFENSES, "--n-train", "600", "--epochs", "1", "--n-test", "60",
            "--val-size", "30", "--bf16", "off", "--no-progress"]
    return root, argv


def test_demo_trains_evaluates_and_writes_an_offline_report(demo_out, capsys):
    root, argv = demo_out
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    page_path = root / "report" / "index.html"
    assert f"report: {page_path.resolve()}" in out
    for key in DEFENSES:
        assert re.search(rf"^{key}\s", out, re.M), out          # one table row per defense
        assert runs.read_metrics(root / "runs" / key, kind="epoch")
    page = page_path.read_text()
    # self-contained: every figure inline, nothing fetched from elsewhere
    assert not re.search(r"(src|href)=['\"](https?:|//)", page)
    assert "<script" not in page and "<link" not in page
    pdfs = sorted((root / "report" / "figures").glob("*.pdf"))
    assert len(pdfs) >= 4 + 3 * len(DEFENSES)
    assert all(p.read_bytes()[:5] == b"%PDF-" for p in pdfs)
    assert page.count("data:image/png;base64,") == len(pdfs)
    for p in pdfs:
        assert f"figures/{p.name}" in page
    # reverse attention (ancra) is attacked through its surrogate too, and the page says so
    assert "differentiable surrogate" in page
    for key in DEFENSES:                                        # each run's config on the page
        assert f"<h3>{key}</h3>" in page

    summary = json.loads((root / "report" / "summary.json").read_text())
    rows = {r["name"]: r for r in summary["rows"]}
    assert set(rows) == set(DEFENSES) and summary["n"] == 60
    for r in rows.values():
        assert 0 <= r["pgd"] <= r["clean"] <= 1 and r["fgsm"] <= r["clean"]
        assert r["rdiv"] == pytest.approx(r["d_pos"] / r["d_neg"], rel=1e-6)

    # the same numbers from the building blocks: PGD-20 at the run's eps, same seed, and the
    # divergence of the very adversarial examples the table counted
    eps, steps = summary["eps"], summary["steps"]
    test = data.load("fashion-mnist" if data.available("fashion-mnist") else "digits", "test",
                     n=60, seed=0)
    for key in ("nat", "ancra"):
        model = runs.load_run(root / "runs" / key).model
        pgd = attacks.Adaptive(attack=attacks.PGD(eps=eps, step_size=2.5 * eps / steps, steps=steps))
        ev = evaluate.evaluate(model, test, {f"pgd{steps}": pgd}, seed=0, keep_adv=True,
                               progress=False)
        assert ev.robust(f"pgd{steps}") == pytest.approx(rows[key]["pgd"])
        f = diagnostics.attacked_features(model, test, x_adv=ev.adv[f"pgd{steps}"])
        div = diagnostics.divergence(f.z_nat, f.z_adv, f.y, n_boot=0)
        assert div.rdiv == pytest.approx(rows[key]["rdiv"], rel=1e-5)

    # a second call reuses the finished runs instead of training again
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert all(f"{key}: reusing" in out for key in DEFENSES), out


def test_report_cli_and_bad_input(demo_out, tmp_path, capsys):
    root, argv = demo_out
    if not (root / "runs" / "nat" / "config.json").is_file():
        assert cli_main(argv) == 0
    nat = root / "runs" / "nat"
    assert cli_main(["report", str(nat), "--out", str(tmp_path / "r"), "--n", "40",
                     "--steps", "3", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "nat" in out and (tmp_path / "r" / "index.html").is_file()
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["steps"] == 3
    assert "differentiable surrogate" not in (tmp_path / "r" / "index.html").read_text()

    from robustviz.demo import demo
    from robustviz.report import report

    with pytest.raises(ValueError, match="defenses must be among"):
        demo(tmp_path / "d", tmp_path / "x", defenses=["madry"])

    with pytest.raises(FileNotFoundError, match="run directory"):
        report([tmp_path], tmp_path / "x")
    with pytest.raises(ValueError, match="distinct"):
        report([nat, nat], tmp_path / "x")
    with pytest.raises(ValueError, match="at least one"):
        report([], tmp_path / "x")
    # two data sets cannot share one table
    d8 = data.load("digits", "train", n=50)
    tiny = models.build("tinycnn", num_classes=10, in_channels=1, input_size=8, width=4, hidden=8,
                        mean=d8.mean, std=d8.std)
    other = runs.save_run(tmp_path / "digits_run", tiny,
                          {"model": {"name": "tinycnn", "num_classes": 10, "in_channels": 1,
                                     "input_size": 8, "width": 4, "hidden": 8,
                                     "mean": d8.mean, "std": d8.std},
                           "data": {"name": "digits"}})
    if runs.load_config(nat)["data"]["name"] != "digits":
        with pytest.raises(ValueError, match="different data sets"):
            report([nat, other], tmp_path / "x")
