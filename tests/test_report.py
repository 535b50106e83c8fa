"""The main job end to end: ``robustviz demo`` trains, evaluates and writes the report;
``robustviz report`` on existing runs; the report's numbers come from the public building
blocks (evaluate, attacked_features, divergence) and its page reads offline."""
from __future__ import annotations

import json
import re

import pytest
from robustviz import attacks, data, diagnostics, evaluate, models, runs
from robustviz.cli import main as cli_main

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


@pytest.mark.slow
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
    # long text cells (the evaluation card's) wrap inside the page; numbers stay on one line
    assert re.search(r'<td class="text">L-infinity ball of radius', page)
    assert not re.search(r'<td class="[^"]*text[^"]*">\s*[\d.]+( \[|</td>)', page)
    pdfs = sorted((root / "report" / "figures").glob("*.pdf"))
    assert len(pdfs) >= 4 + 3 * len(DEFENSES)
    assert all(p.read_bytes()[:5] == b"%PDF-" for p in pdfs)
    assert page.count("data:image/png;base64,") == len(pdfs)
    for p in pdfs:
        assert f"figures/{p.name}" in page
    # reverse attention (ancra) is attacked through its surrogate too, and the page says so
    assert "differentiable surrogate" in page
    for key in DEFENSES:                                        # each run's config, collapsed
        assert re.search(rf"<details><summary>{key}: .*config.json</summary>", page)
    assert len(list((root / "report" / "figures").glob("*.png"))) == len(pdfs)
    assert (root / "report" / "tables" / "summary.tex").read_text().count("\\toprule") == 1

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


@pytest.mark.slow
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


# --------------------------------------------------------------------------- sections, fast
def _tiny_runs(tmp_path, k=2):
    """Untrained tiny TinyCNNs on digits (8x8), each a run directory with epoch records."""
    d8 = data.load("digits", "train", n=50)
    dirs = []
    for i in range(k):
        net = models.build("tinycnn", num_classes=10, in_channels=1, input_size=8, width=4,
                           hidden=8, mean=d8.mean, std=d8.std, seed=i)
        cfg = {"model": {"name": "tinycnn", "num_classes": 10, "in_channels": 1, "input_size": 8,
                         "width": 4, "hidden": 8, "mean": d8.mean, "std": d8.std},
               "data": {"name": "digits"}, "defense": {"name": ["nat", "pgd_at"][i % 2]},
               "eval": {"eps": 0.1}}
        run_dir = runs.save_run(tmp_path / f"m{i}", net, cfg)
        for e in (1, 2):
            runs.append_metrics(run_dir, {"kind": "epoch", "epoch": e, "loss": 2.3 - 0.1 * e - i,
                                          "val_clean_acc": 0.1 * e, "val_robust_acc": 0.05 * e})
        dirs.append(run_dir)
    return dirs


@pytest.fixture
def ctx(tmp_path):
    from robustviz.report import Context

    return Context.build(_tiny_runs(tmp_path), tmp_path / "out", n=60, steps=3, n_sweep=20,
                         sweep_steps=2, n_embed=40, n_embed_adv=10)


def test_summary_section_alone_matches_the_building_blocks(ctx):
    from robustviz.figures import binomial_ci
    from robustviz.report import SECTIONS

    sec = SECTIONS["summary"](ctx)
    card, tab = sec.tables                                    # the card comes first
    assert card.stem == "evaluation_card" and card.header == ["item", "value"]
    items = dict(card.rows)
    assert items["threat model"].startswith("L-infinity ball of radius eps 0.1")
    assert "PGD-3" in items["attack: PGD-3"] and "fp32" in items["attack: FGSM"]
    assert items["examples"].startswith("60 digits test images: class-stratified")
    assert items["attack seeds"].startswith("0") and "Wilson" in items["intervals"]
    assert "torch" in items["backend"] and items["device"].startswith("CPU")
    assert tab.header[:6] == ["run", "defense", "clean %", "FGSM %", "PGD-3 %", "worst case %"]
    assert [r[0] for r in tab.rows] == ["m0", "m1"] and [r[1] for r in tab.rows] == ["nat", "pgd_at"]
    assert set(tab.notes) == set(tab.header)                  # one sentence per column
    assert "step 2.5 eps/3" in tab.notes["PGD-3 %"] and "lower is better" in tab.notes["R-DIV"]
    assert "0.1 " not in ctx.eps_text() and ctx.eps_text() == "0.1"   # digits: not 8-bit
    test = data.load("digits", "test", n=60, seed=0)
    model = ctx.runs["m0"].model
    pgd = attacks.Adaptive(attack=attacks.PGD(eps=0.1, steps=3))
    ev = evaluate.evaluate(model, test, {"pgd3": pgd}, seed=0, progress=False)
    p = ev.robust("pgd3")
    lo, hi = binomial_ci(p, 60)
    assert tab.rows[0][4] == f"{100 * p:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"
    # the headline: per example, the worst of FGSM and PGD, never above either column
    both = evaluate.evaluate(model, test, {"pgd3": pgd, "fgsm": attacks.Adaptive(
        attack=attacks.FGSM(eps=0.1))}, seed=0, progress=False)
    w = both.worst_case().accuracy
    lo, hi = binomial_ci(w, 60)
    assert tab.rows[0][5] == f"{100 * w:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"
    assert w <= min(both.robust("pgd3"), both.robust("fgsm"))
    assert "FGSM, PGD-3" in tab.notes["worst case %"]
    div = ctx.divergence("m0")
    assert tab.rows[0][6] == f"{div.rdiv:.3f} [{div.ci[0]:.3f}, {div.ci[1]:.3f}]"
    # two untrained nets on 60 images: their intervals overlap, nothing is called best
    assert tab.bold == set()
    # shared computations are cached: the same objects come back
    assert ctx.evaluation("m0") is ctx.evaluation("m0") and ctx.features("m1") is ctx.features("m1")


def test_examples_and_training_sections_alone(ctx):
    from robustviz.report import SECTIONS

    ex = SECTIONS["examples"](ctx)
    assert [f.stem for f in ex.figures] == ["examples"]        # one grid, a row per model
    fig = ex.figures[0].figure
    images = [a for a in fig.axes if a.images]
    assert len(images) >= 18                                   # clean row + 2 models x 6
    x = ctx.test.x[:6]
    import numpy as np

    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), x[0, 0].numpy(), rtol=1e-6)
    for row, nm in ((1, "m0"), (2, "m1")):                     # each row: that model's x' - x
        x_adv = ctx.adversarial(nm)[:6]
        np.testing.assert_allclose(fig.axes[6 * row + 2].images[0].get_array(),
                                   (x_adv - x)[2, 0].numpy(), rtol=1e-5, atol=1e-7)
        assert fig.axes[6 * row].get_ylabel().startswith(nm)
        assert (x_adv - x).abs().max() <= 0.1 + 1e-6
    tr = SECTIONS["training"](ctx)
    (curves,) = tr.figures
    loss = curves.figure.axes[0]
    np.testing.assert_allclose(loss.get_lines()[1].get_ydata(), [1.2, 1.1])
    for f in ex.figures + tr.figures:
        assert f.caption.count(".") >= 2                       # what it shows + what to look for


def test_register_section_and_report_files(tmp_path, ctx, capsys):
    import markupsafe

    from robustviz import report as R
    from robustviz.cli.compare_cmd import summarize

    calls = []

    def extra(c):
        calls.append(c)
        return R.Section(title="Extra <check>", text=["a < b", markupsafe.Markup("<em>ok</em>")])

    saved, saved_default = dict(R.SECTIONS), list(R.DEFAULT_SECTIONS)
    try:
        R.register_section("extra", after="summary")(extra)
        assert list(R.SECTIONS)[:2] == ["summary", "extra"]
        with pytest.raises(ValueError, match="exists"):
            R.register_section("extra")(extra)
        with pytest.raises(ValueError, match="no such section"):
            R.register_section("other", after="nope")(extra)
        out = tmp_path / "rep"
        out.mkdir()
        (out / "figures").mkdir()
        (out / "figures" / "mine.png").write_bytes(b"user file")
        run_dirs = [ctx.runs[k].path for k in ctx.runs]
        rep = R.report(run_dirs, out, n=40, steps=3, sections=["extra", "summary", "training",
                                                                  "runs"], progress=False)
        assert rep.sections == ("summary", "extra", "training", "runs")      # page order
        assert isinstance(calls[0], R.Context)
        page = rep.path.read_text()
        assert "Extra &lt;check&gt;" in page and "a &lt; b" in page and "<em>ok</em>" in page
        assert page.index('id="summary"') < page.index('id="extra"') < page.index('id="runs"')
        assert "<details><summary>m0:" in page and "&#34;name&#34;: &#34;digits&#34;" in page
        assert "[" in page and "Wilson" in page                   # intervals and their note
        assert "Bui" in page and "arXiv:2101.10027" not in page   # references not picked
        assert sorted(p.name for p in (out / "figures").iterdir()) == [
            "mine.png", "training_curves.pdf", "training_curves.png"]
        assert sorted(p.name for p in (out / "tables").iterdir()) == [
            "evaluation_card.csv", "evaluation_card.tex", "summary.csv", "summary.tex"]
        # the evaluation record: `robustviz compare` now reads the report's PGD number
        row = summarize(run_dirs[0])
        assert row["attack"] == "pgd3" and row["robust"] == pytest.approx(rep.rows[0]["pgd"])
        assert row["eps"] == 0.1 and row["n"] == 40
        # a second report with other sections removes the first one's files, not the user's
        rep2 = R.report(run_dirs, out, n=40, steps=3, sections=["runs", "references"],
                        record=False, progress=False)
        assert sorted(p.name for p in (out / "figures").iterdir()) == ["mine.png"]
        assert not (out / "tables" / "summary.csv").exists() and rep2.rows == ()
        assert "arXiv:2101.10027" in rep2.path.read_text()
        with pytest.raises(ValueError, match="sections must be among"):
            R.report(run_dirs, out, sections=["nope"])
        assert "other" not in R.DEFAULT_SECTIONS                  # a refused one leaves no trace
    finally:
        R.SECTIONS.clear()
        R.SECTIONS.update(saved)
        R.DEFAULT_SECTIONS[:] = saved_default
    # the CLI picks sections by name
    assert cli_main(["report", *map(str, run_dirs), "--out", str(tmp_path / "c"), "--n", "30",
                     "--steps", "2", "--sections", "runs", "--no-progress"]) == 0
    assert 'id="runs"' in (tmp_path / "c" / "index.html").read_text()
    assert 'id="summary"' not in (tmp_path / "c" / "index.html").read_text()


# --------------------------------------------------------------------------- CLI consistency
def _subparsers(parser, prefix=()):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + (name,), sub
                yield from _subparsers(sub, prefix + (name,))


def test_every_subcommand_has_a_description_and_help_with_defaults():
    from robustviz.cli import build_parser

    parser = build_parser()
    subs = dict(_subparsers(parser))
    assert ("attacks", "list") in subs and ("defenses", "list") in subs
    for path, sub in subs.items():
        assert sub.description, f"robustviz {' '.join(path)} has no description"
        text = sub.format_help()
        for action in sub._actions:
            # every option with a value shows its default (argparse's own -h aside)
            if action.option_strings and action.default not in (None, False) and \
                    action.dest != "help":
                shown = sub._get_formatter()._get_help_string(action)
                assert "default" in shown, (path, action.option_strings, shown)
        assert "RUN_DIR" in text if path[0] in ("evaluate", "compare", "report") else True
    train = subs[("train",)]
    assert train.parse_args(["--no-bf16"]).bf16 == "off" == train.parse_args(["--bf16", "off"]).bf16
    assert train.parse_args(["--bf16"]).bf16 == "on" and train.parse_args([]).bf16 is None
    assert train.parse_args(["--bf16", "auto"]).bf16 == "auto"
    from robustviz.cli.train_cmd import effective_config
    for flag, want in ((["--bf16", "auto"], "auto"), (["--bf16"], True), (["--no-bf16"], False)):
        args = build_parser().parse_args(["train", "--out", "x", *flag])
        assert effective_config(args).train["bf16"] == want


def test_attacks_and_defenses_list(capsys):
    import json as _json

    assert cli_main(["attacks", "list", "--json"]) == 0
    rows = {r["name"]: r for r in _json.loads(capsys.readouterr().out)}
    assert rows["pgd"]["kind"] == "eps-bounded" and rows["pgd"]["fields"]["steps"] == 10
    assert rows["cw"]["kind"] == rows["deepfool"]["kind"] == "minimal perturbation"
    from robustviz.cli.evaluate_cmd import ATTACKS

    assert set(ATTACKS) <= set(rows)                 # every name evaluate takes is listed
    assert cli_main(["defenses", "list"]) == 0
    out = capsys.readouterr().out
    from robustviz import defenses

    for name in defenses.list_defenses():
        assert any(line.startswith(name + " ") for line in out.splitlines()), name
