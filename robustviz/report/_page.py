"""The driver: :func:`report` builds the :class:`~robustviz.report.Context`, runs the
chosen sections in page order, writes their figures (PDF, PNG) and tables (CSV, LaTeX),
renders the page from ``report.html.j2`` (beside this module), appends the evaluation
records, and keeps a manifest of the files it owns so the next report clears only those."""
from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import time
from pathlib import Path
from typing import Sequence

from robustviz.report._context import Context
from robustviz.report._format import defense_name, pct
from robustviz.report._sections import DEFAULT_SECTIONS, SECTIONS, Section


@dataclasses.dataclass(frozen=True)
class Report:
    """What :func:`report` wrote and the headline numbers per run.

    Attributes
    ----------
    path : Path
        The HTML page.
    figures : tuple of Path
        The figure files (PDF and PNG).
    rows : tuple of dict
        One dict per run: name, defense, clean, fgsm, pgd, worst (per-example worst case
        over the attacks), autoattack (when it ran), rdiv, d_pos, d_neg.
    seconds : float
    tables : tuple of Path
        The table files (CSV and LaTeX).
    sections : tuple of str
        The sections on the page.
    timings : dict of str to float
        Seconds per kind of computation (``eval``, ``feat``, ``div``, ``pairs``,
        ``embed``, ``sweep``; exclusive of nested ones) and ``figures`` (writing the figure
        files and the page's images).
    """

    path: Path
    figures: tuple
    rows: tuple
    seconds: float
    tables: tuple = ()
    sections: tuple = ()
    timings: dict = dataclasses.field(default_factory=dict)

    def table(self) -> str:
        """Plain-text summary table (accuracies in percent)."""
        head = ["run", "defense", "clean %", "FGSM %", "PGD %", "worst %", "R-DIV", "d_a+", "d_a-"]
        body = [[r["name"], r["defense"], pct(r["clean"]), pct(r["fgsm"]), pct(r["pgd"]),
                 pct(r["worst"]) if "worst" in r else "-",
                 f"{r['rdiv']:.3f}", f"{r['d_pos']:.3f}", f"{r['d_neg']:.3f}"]
                for r in self.rows]
        widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
        fmt = lambda row: "  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w)  # noqa: E731
                                    for i, (c, w) in enumerate(zip(row, widths)))
        lines = [fmt(head), "-" * len(fmt(head))] + [fmt(r) for r in body]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"path": str(self.path), "figures": [str(p) for p in self.figures],
                "tables": [str(p) for p in self.tables], "rows": list(self.rows),
                "sections": list(self.sections), "seconds": self.seconds}

    def __str__(self) -> str:
        return self.table()


_MANIFEST = ".robustviz-report.json"


def _clear_stale(out: Path) -> None:
    """Remove the files the previous report listed in its manifest (only those: other
    files in ``out`` are the user's)."""
    man = out / _MANIFEST
    if not man.is_file():
        return
    try:
        owned = json.loads(man.read_text()).get("files", [])
    except (OSError, ValueError):
        return
    root = out.resolve()
    for rel in owned:
        p = (out / rel).resolve()
        if root in p.parents and p.is_file():
            p.unlink()


def _safe_stem(stem: str) -> str:
    """A file stem made of ``[A-Za-z0-9_-]`` that cannot leave its folder: section stems
    hold run names (``examples_<name>``), which come from folder names or ``names=``. A stem
    that needed changing gets a short hash of the original, so two names never share files."""
    import hashlib
    import re

    stem = str(stem)
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", stem)[:80] or "figure"
    if safe != stem:
        safe += "-" + hashlib.sha256(stem.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return safe


def _inside(folder: Path, stem: str) -> Path:
    """``folder / stem``, checked to lie inside ``folder``."""
    path = folder / stem
    if folder.resolve() not in path.resolve().parents:   # pragma: no cover - _safe_stem
        raise ValueError(f"refusing to write {path}: outside {folder}")
    return path


def _png(fig, dpi: int = 110) -> bytes:
    from robustviz.figures._style import literal_text_where_math_fails

    literal_text_where_math_fails(fig)   # run names are text, not mathtext
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _template():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("robustviz.report", "."),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True, lstrip_blocks=True).get_template("report.html.j2")


def report(runs: Sequence[str | os.PathLike] | str | os.PathLike, out: str | os.PathLike = "report",
           *, n: int = 1000, eps: float | None = None, steps: int = 20, n_sweep: int = 500,
           sweep_steps: int = 10, n_embed: int = 1000, n_embed_adv: int = 100,
           embed_method: str = "tsne", names: Sequence[str] | None = None, seed: int = 0,
           autoattack: str | None = None, seeds: int = 1,
           sections: Sequence[str] | None = None, record: bool = True,
           progress: bool = True) -> Report:
    """Evaluate and diagnose runs, write every figure and table and one offline HTML page.

    Parameters
    ----------
    runs : run directory or sequence of them
        Written by :class:`robustviz.train.Trainer` or :func:`robustviz.runs.save_run`;
        each config's ``"data"`` entry names its data set (one data set for all).
    out : path
        Output folder: ``index.html``, ``figures/*.pdf|png``, ``tables/*.csv|tex``,
        ``summary.json``. Files the previous report wrote there are removed first.
    n : int
        Test examples for the accuracy table, pair distances and divergences.
    eps : float, optional
        Linf radius on the pixel scale; default from the first run (:func:`default_eps`).
    steps : int
        PGD steps of the evaluation (step size 2.5 * eps / steps, the attack core's rule).
    n_sweep, sweep_steps : int
        Examples and PGD steps per point of the R-DIV / accuracy vs eps sweep.
    n_embed, n_embed_adv : int
        Clean and adversarial points of the t-SNE/UMAP map (1000 + 100 as in Bui et al.).
    embed_method : {"tsne", "umap"}
    names : sequence of str, optional
        Display names (default: the run folders' names).
    seed : int
    autoattack : {"fast", "standard", "plus", "rand"}, optional
        Also run :class:`~robustviz.attacks.AutoAttack` of this version (slow on a CPU:
        minutes per 100 robust images for "standard"); it joins the worst-case column.
    seeds : int
        Attack seeds; with more than one the summary prints each attack's mean and range.
    sections : sequence of str, optional
        Names of :data:`SECTIONS` to include, in page order (default:
        :data:`DEFAULT_SECTIONS`, all but the costly optional ones: ``inversion``,
        ``landscape``, ``corruptions``, ``transfer``).
    record : bool
        Append a ``kind="evaluation"`` record (the summary's numbers) to each run's
        ``metrics.jsonl``, which ``robustviz compare`` reads. Needs the "summary" section.
    progress : bool
        One progress step per section.

    Returns
    -------
    Report
    """
    from robustviz import figures, zoo
    from robustviz._utils import tqdm
    from robustviz.runs import append_metrics, atomic_write_bytes, atomic_write_text

    t0 = time.time()
    chosen = list(DEFAULT_SECTIONS) if sections is None else [str(s) for s in sections]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown or not chosen:
        raise ValueError(f"sections must be among {list(SECTIONS)}, got {list(sections or [])}")
    chosen = [s for s in SECTIONS if s in chosen]          # page order
    ctx = Context.build(runs, out, n=n, eps=eps, steps=steps, n_sweep=n_sweep,
                        sweep_steps=sweep_steps, n_embed=n_embed, n_embed_adv=n_embed_adv,
                        embed_method=embed_method, names=names, seed=seed,
                        autoattack=autoattack, seeds=seeds)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if record and "summary" in chosen:   # before minutes of attacks, not after
        from robustviz.runs import check_writable

        for run in ctx.runs.values():
            if not zoo.in_zoo(run.path):
                check_writable(run.path)
    _clear_stale(out)

    bar = tqdm(total=len(chosen), desc="report", disable=not progress)
    done: list[Section] = []
    with figures.style("paper"):
        for name in chosen:
            bar.set_postfix_str(name)
            sec = SECTIONS[name](ctx)
            if sec is not None:
                sec.name = name
                done.append(sec)
            bar.update()

    written_figs, written_tabs, page_sections = [], [], []
    t_fig = time.perf_counter()
    for sec in done:
        figs = []
        for f in sec.figures:
            if isinstance(f.figure, (str, os.PathLike)):     # files the section wrote itself
                png = Path(f.figure).with_suffix(".png").read_bytes()
                written_figs.extend(p for p in (Path(f.figure).with_suffix(".pdf"),
                                                Path(f.figure).with_suffix(".png")) if p.is_file())
            else:
                f.stem = _safe_stem(f.stem)      # stems hold run names: never a path
                png = _png(f.figure)
                base = _inside(out / "figures", f.stem)
                written_figs.extend(figures.save(f.figure, base.with_name(f"{f.stem}.pdf")))
                written_figs.append(atomic_write_bytes(base.with_name(f"{f.stem}.png"), png))
            figs.append({"stem": f.stem, "caption": f.caption,
                         "uri": "data:image/png;base64," + base64.b64encode(png).decode("ascii")})
        tabs = []
        for t in sec.tables:
            t.stem = _safe_stem(t.stem)
            written_tabs.extend(figures.save_table(t.header, t.rows, _inside(out / "tables", t.stem),
                                                   caption=t.caption or None))
            tabs.append({"stem": t.stem, "header": t.header, "rows": t.rows,
                         "caption": t.caption, "bold": t.bold,
                         "notes": [(c, t.notes[c]) for c in t.header if c in t.notes]})
        page_sections.append({"name": sec.name, "title": sec.title, "text": sec.text,
                              "figures": figs, "tables": tabs, "details": sec.details})

    rows = []
    if "summary" in chosen:
        for nm, run in ctx.runs.items():
            ev, div = ctx.evaluation(nm), ctx.divergence(nm)
            rows.append({"name": nm, "defense": defense_name(run.config),
                         "clean": ev.accuracy["clean"][1], "fgsm": ev.accuracy["fgsm"][1],
                         "pgd": ev.accuracy[ctx.pgd_name][1], "worst": ev.worst_case().accuracy,
                         **({"autoattack": ev.accuracy["autoattack"][1]}
                            if "autoattack" in ev.accuracy else {}),
                         "rdiv": div.rdiv,
                         "rdiv_ci": None if div.ci is None else list(div.ci),
                         "d_pos": div.d_pos, "d_neg": div.d_neg})
            if record and not zoo.in_zoo(run.path):   # the shipped zoo is checksummed: never written
                d = ev.to_dict()
                # the robust number first: `robustviz compare` reads the first attack
                order = ["clean", ctx.pgd_name, "fgsm"]
                d["accuracy"] = {k: d["accuracy"][k] for k in order if k in d["accuracy"]}
                append_metrics(run.path, {
                    "kind": "evaluation", "source": "report", "split": "test",
                    "eps": ctx.eps, "norm": "linf", "adaptive": ctx.adaptive[nm],
                    "step_size": ctx.pgd.effective_step_size, **d, "rdiv": div.rdiv})

    ctx.timings["figures"] = time.perf_counter() - t_fig
    html = _template().render(
        title="robustviz report", sections=page_sections, n_runs=len(ctx.runs), n=ctx.n,
        dname=ctx.dname, eps=ctx.eps_text(), pgd=ctx.pgd_label,
        seconds=f"{time.time() - t0:.0f}", toc=[(s["name"], s["title"]) for s in page_sections])
    path = atomic_write_text(out / "index.html", html)
    summary = {"rows": rows, "eps": ctx.eps, "steps": ctx.steps,
               "step_size": ctx.pgd.effective_step_size, "n": ctx.n,
               "sections": [s.name for s in done],
               "timings": {k: round(v, 2) for k, v in ctx.timings.items()},
               "evaluations": {nm: ctx.evaluation(nm).to_dict() for nm in ctx.runs
                               if ("eval", nm) in ctx._cache}}
    if "sweep" in ctx._cache:
        summary["sweep"] = ctx.sweep().to_dict()
    written = [path, atomic_write_text(out / "summary.json",
                                       json.dumps(summary, indent=2, default=float))]
    owned = sorted({str(p.relative_to(out)) for p in written + written_figs + written_tabs
                    + ctx.extra_files})
    atomic_write_text(out / _MANIFEST, json.dumps({"files": owned}, indent=1))
    bar.close()
    return Report(path=path, figures=tuple(written_figs), rows=tuple(rows),
                  seconds=time.time() - t0, tables=tuple(written_tabs), timings=dict(ctx.timings),
                  sections=tuple(s.name for s in done))
