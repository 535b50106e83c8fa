"""The optional visual sections: feature inversion maps, loss landscapes, common
corruptions and the transfer heatmap, asked for by name (``sections=[..., "landscape"]``).

Each is computed by ``section(models, data, out_dir, **options) -> dict`` with keys ``"title"``,
``"text"`` (a short plain-text paragraph with the numbers; model names come from run
folders and configs, so the text is never HTML: the report's template escapes it), ``"figures"`` (paths of the PNGs
written under ``out_dir``) and ``"tables"`` (each ``{"caption", "columns", "rows"}``). The
raw arrays are written next to the figures (``.npz``) so they can be restyled. The report
registers :func:`section` of each name in :data:`SECTIONS`, which turns that dict into a
:class:`~robustviz.report.Section`.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Mapping

import numpy as np
from torch import nn

from robustviz.report._context import Context
from robustviz.report._sections import ReportFigure, Section, tables_from_dicts

__all__ = ["inversion_section", "landscape_section", "corruption_section", "transfer_section",
           "SECTIONS", "TITLES", "section"]


def _check(models, out_dir) -> tuple[dict, Path]:
    if not isinstance(models, Mapping) or not models:
        raise TypeError("models must be a non-empty dict name -> nn.Module")
    for k, m in models.items():
        if not isinstance(m, nn.Module):
            raise TypeError(f"models[{k!r}] must be an nn.Module, got {type(m).__name__}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return dict(models), out


def _subset(data, n: int | None, seed: int):
    if n and 0 < n < len(data) and hasattr(data, "sample"):
        return data.sample(n, seed=seed)
    return data


def _save(fig, path: Path) -> str:
    """Write the figure as PDF and PNG next to each other; return the PNG's path."""
    from robustviz import figures as rvf

    rvf.save(fig, Path(path).with_suffix(""), formats=["pdf", "png"])
    return str(Path(path).with_suffix(".png"))


def _npz(path: Path, arrays: dict) -> None:
    from robustviz.runs import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def inversion_section(models: dict[str, nn.Module], data, out_dir: Path, *, layer: str = "conv2",
                      neurons=tuple(range(8)), seeds: int = 6, steps: int = 64,
                      step_size: float = 0.02, norm: str = "linf", seed: int = 0,
                      **_ignored) -> dict:
    """Feature inversion maps of every model from the same test images (Engstrom et al. 2019)."""
    from robustviz import figures as rvf
    from robustviz.diagnostics import feature_inversion

    models, out = _check(models, out_dir)
    x0 = _subset(data, seeds, seed).x if hasattr(data, "x") else data[0][:seeds]
    res = {k: feature_inversion(m, layer, list(neurons), x0, steps=steps, step_size=step_size,
                                norm=norm, seed=seed) for k, m in models.items()}
    fig = _save(rvf.plot_inversion(res), out / "inversion.png")
    _npz(out / "inversion.npz", {f"{k}/images": r.images.numpy() for k, r in res.items()})
    gain = {k: float((r.objective[-1] - r.objective[0]).mean()) for k, r in res.items()}
    text = (f"Each row starts from a test image; each column maximises one channel of "
            f"{layer} by {steps} {norm}-normalised gradient steps of {step_size:g}, "
            f"pixels kept in [0, 1]. Robust models give maps that look like image features "
            f"(Engstrom et al. 2019). Mean activation gain: "
            + ", ".join(f"{k} {v:.3g}" for k, v in gain.items()) + ".")
    return {"title": "Feature inversion maps", "text": text, "figures": [fig],
            "tables": [{"caption": "mean activation gain", "columns": ["model", "gain"],
                        "rows": [[k, round(v, 4)] for k, v in gain.items()]}]}


def landscape_section(models: dict[str, nn.Module], data, out_dir: Path, *, n: int = 500,
                      points: int = 21, extent: float = 1.0, adversarial: bool = True,
                      eps: float = 0.1, pgd_steps: int = 5, radius: float = 0.5, seed: int = 0,
                      progress: bool = False, **_ignored) -> dict:
    """Clean (and adversarial) 2-D weight-space landscapes on one colour scale, with the
    flatness measure (mean loss rise at ``radius``) per model (Li et al. 2018)."""
    from robustviz import figures as rvf
    from robustviz.attacks import PGD
    from robustviz.diagnostics import weight_landscape

    models, out = _check(models, out_dir)
    test = _subset(data, n, seed)
    grid = np.linspace(-extent, extent, points)
    atk = PGD(eps=eps, steps=pgd_steps, step_size=2.5 * eps / pgd_steps, seed=seed) if adversarial else None
    lands = {k: weight_landscape(m, test, alphas=grid, betas=grid, attack=atk, seed=seed,
                                 progress=progress) for k, m in models.items()}
    figs = [_save(rvf.plot_landscape_contour(lands, radius=radius), out / "landscape.png")]
    if adversarial:
        figs.append(_save(rvf.plot_landscape_contour(lands, metric="adv_loss", radius=radius),
                          out / "landscape_adv.png"))
    _npz(out / "landscape.npz", {f"{k}/{a}": v for k, l in lands.items() for a, v in l.arrays().items()})
    rows = []
    for k, l in lands.items():
        row = [k, round(l.center(), 4), round(l.rise(radius), 4)]
        if adversarial:
            row += [round(l.center("adv_loss"), 4), round(l.rise(radius, "adv_loss"), 4)]
        rows.append(row)
    cols = ["model", "loss", f"rise at r={radius:g}"] + (
        ["adv. loss", f"adv. rise at r={radius:g}"] if adversarial else [])
    flat = min(lands, key=lambda k: lands[k].rise(radius))
    text = (f"Loss at theta + a d1 + b d2 on {len(test)} test images, d1 and d2 random Gaussian "
            f"directions rescaled filter by filter to the weights' norms (biases and BatchNorm "
            f"left fixed; Li et al. 2018), a, b in [-{extent:g}, {extent:g}]"
            + (f"; the adversarial loss recomputes PGD-{pgd_steps} (eps {eps:g}) at every point" if adversarial else "")
            + f". Flattest by the mean clean-loss rise at radius {radius:g}: {flat}.")
    return {"title": "Loss landscapes", "text": text, "figures": figs,
            "tables": [{"caption": "loss at the centre and mean rise at the radius",
                        "columns": cols, "rows": rows}]}


def corruption_section(models: dict[str, nn.Module], data, out_dir: Path, *, n: int = 500,
                       severities=(1, 2, 3, 4, 5), baseline: str | None = None, seed: int = 0,
                       progress: bool = False, **_ignored) -> dict:
    """Accuracy under the 19 common corruptions and the mean corruption error against a
    baseline model (default: the first), Hendrycks & Dietterich (2019)."""
    from robustviz import figures as rvf
    from robustviz.evaluate import corruption_accuracy

    models, out = _check(models, out_dir)
    test = _subset(data, n, seed)
    res = corruption_accuracy(models, test, severities=severities, seed=seed, progress=progress)
    base = baseline or res.names[0]
    fig = _save(rvf.plot_corruptions(res), out / "corruptions.png")
    rows = [[c] + [round(100 * float(np.mean(res.accuracy[m][c])), 2) for m in res.names]
            for c in res.corruptions]
    rows.append(["clean"] + [round(100 * res.clean[m], 2) for m in res.names])
    rows.append([f"mCE vs {base} (%)"] + [round(100 * res.mce(m, base), 2) for m in res.names])
    text = (f"Accuracy (%) on {res.n} test images under {len(res.corruptions)} corruption types "
            f"(mean over severities {list(res.severities)}), computed with the imagecorruptions "
            f"package; mCE is the corruption error relative to {base} averaged over the "
            f"standard types (Hendrycks & Dietterich 2019)."
            + ("" if not res.skipped else " Skipped: " + "; ".join(
                f"{c} ({why})" for c, why in res.skipped.items()) + "."))
    return {"title": "Common corruptions", "text": text, "figures": [fig],
            "tables": [{"caption": "accuracy (%) per corruption", "columns": ["corruption", *res.names],
                        "rows": rows}]}


def transfer_section(models: dict[str, nn.Module], data, out_dir: Path, *, n: int = 500,
                     eps: float = 0.1, pgd_steps: int = 10, seed: int = 0, progress: bool = False,
                     **_ignored) -> dict:
    """Transfer matrix (rows: source model attacked with PGD, columns: target) as an
    annotated heatmap; the diagonal is white-box accuracy."""
    from robustviz import figures as rvf
    from robustviz.attacks import PGD
    from robustviz.evaluate import transfer_matrix

    models, out = _check(models, out_dir)
    test = _subset(data, n, seed)
    atk = PGD(eps=eps, steps=pgd_steps, step_size=2.5 * eps / pgd_steps, seed=seed)
    tm = transfer_matrix(models, test, atk, seed=seed, progress=progress)
    fig = _save(rvf.plot_transfer_matrix(tm), out / "transfer.png")
    rows = [[s] + [round(100 * a, 2) for a in row] for s, row in zip(tm.names, tm.accuracy)]
    text = (f"Accuracy (%) of each target model (columns) on PGD-{pgd_steps} examples "
            f"(eps {eps:g}) crafted on each source model (rows), {tm.n} test images. A transfer "
            f"attack that beats the white-box diagonal signals gradient masking (Athalye et al. 2018).")
    return {"title": "Transfer matrix", "text": text, "figures": [fig],
            "tables": [{"caption": "transfer accuracy (%)", "columns": ["source \\ target", *tm.names],
                        "rows": rows}]}


#: Section name -> function, in page order.
SECTIONS = {"inversion": inversion_section, "landscape": landscape_section,
            "corruptions": corruption_section, "transfer": transfer_section}

#: Section name -> title on the report's page.
TITLES = {"inversion": "Feature inversion maps", "landscape": "Loss landscapes",
          "corruptions": "Common corruptions", "transfer": "Transfer attacks"}


def section(kind: str):
    """The report section ``func(ctx) -> Section`` of :data:`SECTIONS` ``[kind]``: it writes
    its figures (PDF and PNG) and raw arrays (``.npz``) under ``figures/``; the report
    inlines and owns them."""
    title = TITLES[kind]

    def run(ctx: Context) -> Section:
        models = {nm: run.model for nm, run in ctx.runs.items()}
        # report-sized settings: an 11 x 11 landscape on at most 200 images; inversion from
        # 6 test images; corruptions and transfer on the report's test images
        opts = {"landscape": {"points": 11, "n": min(ctx.n, 200), "pgd_steps": 3}}.get(kind, {})
        res = SECTIONS[kind](models, ctx.test, ctx.out / "figures", eps=ctx.eps,
                             seed=ctx.seed, **{"n": ctx.n, **opts})
        figs = [ReportFigure(Path(p).stem, Path(p), f"{title}: {Path(p).stem.replace('_', ' ')} "
                             f"(raw arrays: figures/*.npz).") for p in res["figures"]]
        ctx.extra_files.extend(Path(p) for p in (ctx.out / "figures").glob("*.npz"))
        # plain text (it names the models): the template escapes it
        return Section(title=title, text=[res["text"]], figures=figs,
                       tables=tables_from_dicts(kind, res["tables"]))
    run.__name__ = f"{kind}_section"
    run.__doc__ = f"{title} (optional: ``sections=[..., {kind!r}]``)."
    return run
