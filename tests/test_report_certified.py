"""The optional "certified" report section: asked for by name, one figure per run, a table
whose numbers are the certificates' and the attack's on the same images, ordered as bounds
must be, and run names escaped on the page. CROWN is slow even on 8x8 images, hence 4
images and 3 radii."""
from __future__ import annotations

import csv
import re

import pytest
import torch
from robustviz import certify, data, models, runs


def _runs(tmp_path):
    """Two untrained tiny TinyCNNs on digits (8x8) as run directories."""
    d8 = data.load("digits", "train", n=50)
    dirs = []
    for i in range(2):
        net = models.build("tinycnn", num_classes=10, in_channels=1, input_size=8, width=4,
                           hidden=8, mean=d8.mean, std=d8.std, seed=i)
        cfg = {"model": {"name": "tinycnn", "num_classes": 10, "in_channels": 1, "input_size": 8,
                         "width": 4, "hidden": 8, "mean": d8.mean, "std": d8.std},
               "data": {"name": "digits"}, "defense": {"name": "nat"}, "eval": {"eps": 0.04}}
        dirs.append(runs.save_run(tmp_path / f"m{i}", net, cfg))
    return dirs


@pytest.fixture
def small(monkeypatch):
    from robustviz.report import certified as RC

    monkeypatch.setattr(RC, "N_IMAGES", 4)
    return RC


def test_certified_section_numbers_order_and_page(tmp_path, small):
    from robustviz import report as R

    assert "certified" in R.SECTIONS and "certified" not in R.DEFAULT_SECTIONS
    dirs = _runs(tmp_path)
    names = ["a<b>", "m&1"]
    out = tmp_path / "rep"
    rep = R.report(dirs, out, n=40, steps=5, names=names, sections=["certified", "runs"],
                   record=False, progress=False)
    page = rep.path.read_text()
    # on the page: in page order, names escaped, one figure file per run
    assert 'id="certified"' in page and "a&lt;b&gt;" in page and "<b>" not in page
    assert page.index('id="certified"') < page.index('id="runs"')
    figs = sorted((out / "figures").glob("certified_*.png"))
    assert len(figs) == 2 and all(f.stat().st_size > 1000 for f in figs)
    with open(out / "tables" / "certified.csv", newline="") as fh:
        header, *rows = list(csv.reader(fh))
    assert header == ["model", "radius", "attack", "IBP", "CROWN", "unknown"]
    k = len(small.FRACTIONS)
    assert len(rows) == 2 * k
    # the IBP column is certify's on the report's first images (recomputed radius by radius)
    test = data.load("digits", "test", n=40, seed=0)
    x, y = test.x[:small.N_IMAGES], test.y[:small.N_IMAGES]
    radii = [0.04 * f for f in small.FRACTIONS]
    for i, name in enumerate(names):
        model = runs.load_run(dirs[i]).model
        ibp = certify.certify(model, (x, y), radii, method="ibp", progress=False)
        with torch.no_grad():
            clean = float((model(x).argmax(1) == y).float().mean())
        mine = rows[i * k:(i + 1) * k]
        for row, e in zip(mine, radii):
            assert row[0] == name
            attack, ib, cr, unknown = map(float, row[2:])
            assert ib == pytest.approx(100 * ibp.accuracy(e), abs=0.06)
            assert ib <= cr <= attack <= 100 * clean + 1e-9      # lower <= lower <= upper
            assert unknown == pytest.approx(attack - cr, abs=0.11)
        crown = [float(r[4]) for r in mine]
        assert crown == sorted(crown, reverse=True)              # a larger box proves less
        # the sentence quotes the table's numbers
        assert any(f"{r[2]}% of the {small.N_IMAGES} images" in page for r in mine)
    rep2 = R.report(dirs, tmp_path / "rep2", n=40, steps=5, names=names, record=False,
                    progress=False, sections=["runs"])
    assert 'id="certified"' not in rep2.path.read_text()


def test_certified_section_skips_models_it_cannot_bound(tmp_path, small):
    from robustviz import report as R

    small.N_IMAGES = 3
    dirs = _runs(tmp_path)
    ctx = R.Context.build(dirs, tmp_path / "out", n=20, steps=2, names=["ok", "odd"])

    class Residual(torch.nn.Module):          # forward is not the chain of its layers
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x) + self.inner(x.flip(-1))

    ctx.runs["odd"].model = Residual(ctx.runs["odd"].model).eval()
    sec = R.SECTIONS["certified"](ctx)
    assert [f.stem for f in sec.figures] == ["certified_ok"]
    assert any(re.match(r"Not certified .*odd \(", t) for t in sec.text), sec.text


def test_unknown_band_where_a_certificate_meets_the_attack():
    """A certificate equal to the attack's accuracy up to float32 rounding (certify's
    accuracies) still bounds the shaded band: the band from there to the next radius is drawn."""
    from robustviz import figures

    res = {"eps": [0.01, 0.02, 0.05], "empirical": {"PGD-20": [22 / 24, 22 / 24, 22 / 24]},
           "certified": {"CROWN": [float(torch.tensor(22 / 24)), float(torch.tensor(22 / 24)), 1 / 24]}}
    assert res["certified"]["CROWN"][0] > res["empirical"]["PGD-20"][0]    # the rounding
    fig = figures.plot_certified_vs_empirical(res)
    (band,) = [c for c in fig.axes[0].collections if c.get_label().startswith("unknown")]
    xs = [v[0] for p in band.get_paths() for v in p.vertices]
    assert min(xs) <= 0.02 + 1e-9 and max(xs) >= 0.05 - 1e-9
