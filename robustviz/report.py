"""One self-contained HTML report for one or several runs.

``report(["runs/nat", "runs/pgd_at"], out="report")`` evaluates every run on its test
split, computes the latent-space diagnostics, draws every figure (PDF in
``report/figures/`` and inline PNG in ``report/index.html``) and writes the tables and each
run's config into the page, which reads offline (no external assets).

Thin by design: every number comes from :mod:`robustviz.evaluate` and
:mod:`robustviz.diagnostics`, every picture from :mod:`robustviz.figures`.
"""
from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

from robustviz._validate import check_int, check_positive

__all__ = ["report", "Report", "default_eps"]

# Per-dataset Linf radius used when a run names none (METHODS.md: MNIST 0.3; this
# project's Fashion-MNIST teaching default 0.1; CIFAR-style 8/255).
_DEFAULT_EPS = {"digits": 0.1, "fashion-mnist": 0.1, "mnist": 0.3, "cifar10": 8 / 255,
                "cifar100": 8 / 255, "svhn": 8 / 255, "stl10": 8 / 255}


def default_eps(config: dict) -> float:
    """The attack radius of a run: its defense's ``eps`` if it has one, else the data set's
    default (Fashion-MNIST 0.1, MNIST 0.3, colour data sets 8/255)."""
    ev = config.get("eval") or {}
    if ev.get("eps"):
        return float(ev["eps"])
    dname = (config.get("data") or {}).get("name", "")
    return float(_DEFAULT_EPS.get(dname, 8 / 255))


@dataclasses.dataclass(frozen=True)
class Report:
    """What :func:`report` wrote and the headline numbers per run.

    Attributes
    ----------
    path : Path
        The HTML page.
    figures : tuple of Path
        The PDF figures.
    rows : tuple of dict
        One dict per run: name, defense, clean, fgsm, pgd, rdiv, d_pos, d_neg.
    seconds : float
    """

    path: Path
    figures: tuple
    rows: tuple
    seconds: float

    def table(self) -> str:
        """Plain-text summary table (accuracies in percent)."""
        head = ["run", "defense", "clean", "FGSM", "PGD", "R-DIV", "d_a+", "d_a-"]
        body = [[r["name"], r["defense"], f"{100 * r['clean']:.1f}", f"{100 * r['fgsm']:.1f}",
                 f"{100 * r['pgd']:.1f}", f"{r['rdiv']:.3f}", f"{r['d_pos']:.3f}",
                 f"{r['d_neg']:.3f}"] for r in self.rows]
        widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
        fmt = lambda row: "  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w)  # noqa: E731
                                    for i, (c, w) in enumerate(zip(row, widths)))
        lines = [fmt(head), "-" * len(fmt(head))] + [fmt(r) for r in body]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"path": str(self.path), "figures": [str(p) for p in self.figures],
                "rows": list(self.rows), "seconds": self.seconds}

    def __str__(self) -> str:
        return self.table()


def _defense_name(config: dict) -> str:
    d = config.get("defense") or {}
    if isinstance(d, dict):
        name = d.get("name", "nat")
        extra = [t.get("name") for t in d.get("terms", []) if isinstance(t, dict)]
        return "+".join([name] + extra)
    return str(d)


def _png_data_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def report(runs: Sequence[str | os.PathLike] | str | os.PathLike, out: str | os.PathLike = "report",
           *, n: int = 1000, eps: float | None = None, steps: int = 20, n_sweep: int = 500,
           sweep_steps: int = 10, n_embed: int = 1000, n_embed_adv: int = 100,
           embed_method: str = "tsne", names: Sequence[str] | None = None, seed: int = 0,
           progress: bool = True) -> Report:
    """Evaluate and diagnose runs, write every figure and one offline HTML page.

    Parameters
    ----------
    runs : run directory or sequence of them
        Written by :class:`robustviz.train.Trainer` or :func:`robustviz.runs.save_run`;
        each config's ``"data"`` entry names its data set.
    out : path
        Output folder: ``index.html`` and ``figures/*.pdf``.
    n : int
        Test examples for the accuracy table, pair distances and divergences.
    eps : float, optional
        Linf radius; default from the first run (:func:`default_eps`).
    steps : int
        PGD steps of the evaluation (step size 2.5 * eps / steps).
    n_sweep, sweep_steps : int
        Examples and PGD steps per point of the R-DIV / accuracy vs eps sweep.
    n_embed, n_embed_adv : int
        Clean and adversarial points of the t-SNE/UMAP map (paper 001: 1000 + 100).
    embed_method : {"tsne", "umap"}
    names : sequence of str, optional
        Display names (default: the run folders' names).
    seed : int
    progress : bool

    Returns
    -------
    Report
    """
    from robustviz import attacks, data, diagnostics, evaluate, figures, runs as _runs
    from robustviz._utils import tqdm

    t0 = time.time()
    if isinstance(runs, (str, os.PathLike)):
        runs = [runs]
    runs = [Path(r) for r in runs]
    if not runs:
        raise ValueError("runs must name at least one run directory")
    for r in runs:
        if not (r / "config.json").is_file():
            raise FileNotFoundError(f"{r} is not a run directory (no config.json)")
    check_int(n, "n", minimum=10)
    check_int(steps, "steps", minimum=1)
    check_int(n_sweep, "n_sweep", minimum=10)
    if names is None:
        names = [r.name for r in runs]
    if len(names) != len(runs) or len(set(names)) != len(names):
        raise ValueError("names must give one distinct name per run")
    out = Path(out)
    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)

    loaded = {nm: _runs.load_run(r) for nm, r in zip(names, runs)}
    first = next(iter(loaded.values())).config
    eps = float(eps) if eps is not None else default_eps(first)
    check_positive(eps, "eps", upper=1.0)
    dcfg = dict(first.get("data") or {})
    if "name" not in dcfg:
        raise ValueError(f"{runs[0]}/config.json has no data name; cannot pick a test set")
    for nm, run in loaded.items():
        other = (run.config.get("data") or {}).get("name")
        if other != dcfg["name"]:
            raise ValueError(f"runs use different data sets ({dcfg['name']!r} and {other!r} in "
                             f"{nm}); a report compares models on one test set")
    test = data.load(dcfg["name"], "test", root=dcfg.get("root"), n=min(n, _test_size(data, dcfg)),
                     seed=seed)

    # Adaptive: a model with a non-differentiable test path (reverse attention) is attacked
    # through its differentiable surrogate too (worst case per example); others as is
    pgd = attacks.Adaptive(attack=attacks.PGD(eps=eps, step_size=2.5 * eps / steps, steps=steps))
    atks = {"fgsm": attacks.Adaptive(attack=attacks.FGSM(eps=eps)), f"pgd{steps}": pgd}
    sweep_eps = sorted({0.0, eps / 4, eps / 2, eps, 1.5 * eps, 2 * eps})
    sweep_eps = [e for e in sweep_eps if e <= 1.0]
    sweep_atk = attacks.Adaptive(attack=attacks.PGD(eps=eps, step_size=2.5 * eps / sweep_steps,
                                                    steps=sweep_steps))

    jobs = len(loaded) * 3 + 2
    bar = tqdm(total=jobs, desc="report", disable=not progress)
    evals, feats, divs, pairs, embeds, rows = {}, {}, {}, {}, {}, []
    for nm, run in loaded.items():
        model = run.model
        bar.set_postfix_str(f"{nm}: evaluate")
        ev = evaluate.evaluate(model, test, atks, seed=seed, keep_adv=f"pgd{steps}", progress=False)
        x_adv = ev.adv.pop(f"pgd{steps}")  # the table's PGD examples feed the diagnostics too
        evals[nm] = ev
        bar.update()
        bar.set_postfix_str(f"{nm}: features")
        f = diagnostics.attacked_features(model, test, x_adv=x_adv)
        feats[nm] = f
        divs[nm] = diagnostics.divergence(f.z_nat, f.z_adv, f.y, n_boot=200, seed=seed)
        pairs[nm] = diagnostics.pair_distances(f.z_nat, f.z_adv, f.y, seed=seed)
        bar.update()
        bar.set_postfix_str(f"{nm}: embedding")
        k = min(n_embed, len(f.y))
        ka = min(n_embed_adv, k)
        embeds[nm] = diagnostics.embed(f.z_nat[:k], f.z_adv[:ka], f.y[:k], y_adv=f.y[:ka],
                                       probs=f.probs_nat[:k], probs_adv=f.probs_adv[:ka],
                                       method=embed_method, seed=seed)
        bar.update()
        acc = evals[nm].accuracy
        rows.append({"name": nm, "defense": _defense_name(run.config),
                     "clean": acc["clean"][1], "fgsm": acc["fgsm"][1],
                     "pgd": acc[f"pgd{steps}"][1], "rdiv": divs[nm].rdiv,
                     "d_pos": divs[nm].d_pos, "d_neg": divs[nm].d_neg})
    bar.set_postfix_str("eps sweep")
    sweep = diagnostics.rdiv_vs_eps({nm: r.model for nm, r in loaded.items()}, test, sweep_atk,
                                    sweep_eps, n=min(n_sweep, len(test)), seed=seed)
    bar.update()

    # ------------------------------------------------------------------ figures
    bar.set_postfix_str("figures")
    sections: list[tuple[str, str, list[tuple[str, Any]]]] = []
    figs: list[tuple[str, str, Any]] = []  # (section, file stem, figure)

    def add(section, stem, fig):
        figs.append((section, stem, fig))

    with figures.style("paper"):
        add("Accuracy", "topk_table", figures.plot_topk_table(evals))
        curves = {nm: {"parameter": "eps", "values": list(sweep.eps),
                       "accuracy": list(sweep.robust_acc[i])} for i, nm in enumerate(sweep.models)}
        add("Accuracy", "robustness_vs_eps", figures.plot_robustness_vs_eps(curves))
        add("Latent divergence", "rdiv_vs_eps", figures.plot_rdiv_vs_eps(sweep))
        add("Latent divergence", "divergence_pairs", figures.plot_divergence_pairs(divs))
        for nm in loaded:
            add("Latent divergence", f"class_divergence_{nm}",
                figures.plot_class_divergence(divs[nm], class_names=test.classes,
                                              title=f"{nm}: class x class distance"))
        add("Pair distances", "pair_histograms", figures.plot_pair_histograms(pairs))
        for nm in loaded:
            add("Embeddings", f"embedding_{nm}",
                figures.plot_embedding(embeds[nm], class_names=test.classes, title=nm))
            add("Embeddings", f"embedding_entropy_{nm}",
                figures.plot_embedding_entropy(embeds[nm], title=f"{nm}: prediction entropy"))
        training = {nm: r.metrics for nm, r in loaded.items()
                    if any(m.get("kind") == "rdiv" for m in r.metrics)}
        if training:
            add("Training", "rdiv_training", figures.plot_rdiv_training(training))
        sel = {}
        for nm, r in loaded.items():
            try:
                sel[nm] = diagnostics.selection_stats(r.metrics, name=nm)
            except ValueError:
                pass  # this run logged no positives/negatives (not a SupCon defense)
        if sel:
            add("Training", "selection_counts", figures.plot_selection_counts(sel))

        written = []
        for section, stem, fig in figs:
            written.extend(figures.save(fig, figdir / f"{stem}.pdf"))
    bar.update()

    # ------------------------------------------------------------------ HTML
    by_section: dict[str, list[tuple[str, str]]] = {}
    for section, stem, fig in figs:
        by_section.setdefault(section, []).append((stem, _png_data_uri(fig)))
    page = _html(rows, evals, loaded, by_section, eps=eps, steps=steps, n=len(test),
                 dname=dcfg["name"], sweep=sweep, seconds=time.time() - t0)
    from robustviz.runs import atomic_write_text

    path = atomic_write_text(out / "index.html", page)
    (out / "summary.json").write_text(json.dumps(
        {"rows": rows, "eps": eps, "steps": steps, "n": len(test),
         "evaluations": {nm: e.to_dict() for nm, e in evals.items()},
         "sweep": sweep.to_dict()}, indent=2, default=float))
    bar.close()
    return Report(path=path, figures=tuple(written), rows=tuple(rows), seconds=time.time() - t0)


def _test_size(data_mod, dcfg) -> int:
    return data_mod.info(dcfg["name"]).sizes["test"]


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}
th,td{padding:.3em .7em;border-bottom:1px solid #e5e5e5;text-align:right}
th:first-child,td:first-child,th:nth-child(2),td:nth-child(2){text-align:left}
th{background:#f6f6f6}figure{margin:1.2em 0;display:inline-block;vertical-align:top}
figure img{max-width:100%;height:auto}figcaption{font-size:.85em;color:#555}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.85em}
.note{color:#555;font-size:.9em}
"""


def _html(rows, evals, loaded, by_section, *, eps, steps, n, dname, sweep, seconds) -> str:
    from robustviz import attacks

    esc = html.escape
    eps_txt = f"{eps:.4g}" + (f" ({eps * 255:.3g}/255)" if eps < 0.1 else "")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>robustviz report</title>"
             f"<style>{_CSS}</style></head><body>",
             "<h1>robustviz report</h1>",
             f"<p class='note'>{len(rows)} run(s) on {n} {esc(dname)} test examples; "
             f"Linf eps {eps_txt}, PGD-{steps}. Written in {seconds:.0f} s.</p>",
             "<p class='note'>Models whose test-time prediction is not differentiable (reverse "
             "attention, paper 004) are attacked on the model and on its differentiable "
             "surrogate; the worst case per example is reported (Adaptive). PGD on the model "
             "alone reports masked gradients there.</p>" if any(
                 attacks.surrogate_of(r.model) is not None for r in loaded.values()) else "",
             "<h2>Summary</h2><table><tr><th>run</th><th>defense</th><th>clean</th><th>FGSM</th>"
             f"<th>PGD-{steps}</th><th>R-DIV (adv)</th><th>d<sub>a</sub><sup>+</sup></th>"
             "<th>d<sub>a</sub><sup>-</sup></th></tr>"]
    for r in rows:
        parts.append(f"<tr><td>{esc(r['name'])}</td><td>{esc(r['defense'])}</td>"
                     f"<td>{100 * r['clean']:.1f}%</td><td>{100 * r['fgsm']:.1f}%</td>"
                     f"<td>{100 * r['pgd']:.1f}%</td><td>{r['rdiv']:.3f}</td>"
                     f"<td>{r['d_pos']:.3f}</td><td>{r['d_neg']:.3f}</td></tr>")
    parts.append("</table><p class='note'>R-DIV = d<sub>a</sub><sup>+</sup> / "
                 "d<sub>a</sub><sup>-</sup> (Bui et al.): mean cosine distance from each natural "
                 "anchor to same-class natural and adversarial features, over the same to "
                 "other-class ones. Lower means adversarial examples stay with their class.</p>")
    parts.append("<h2>Top-k accuracy per attack</h2>")
    for nm, ev in evals.items():
        parts.append(f"<h3>{esc(nm)}</h3><pre>{esc(ev.table())}</pre>")
    for section, items in by_section.items():
        parts.append(f"<h2>{esc(section)}</h2>")
        for stem, uri in items:
            parts.append(f"<figure><img src='{uri}' alt='{esc(stem)}'>"
                         f"<figcaption>{esc(stem)} (vector: figures/{esc(stem)}.pdf)</figcaption></figure>")
    parts.append("<h2>Runs</h2>")
    for nm, run in loaded.items():
        epochs = [m for m in run.metrics if m.get("kind") == "epoch"]
        parts.append(f"<h3>{esc(nm)}</h3><p class='note'>{esc(str(run.path))}; "
                     f"{len(epochs)} epoch record(s)</p>"
                     f"<pre>{esc(json.dumps(run.config, indent=2, sort_keys=True))}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
