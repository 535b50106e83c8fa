"""One self-contained HTML report for one or several runs, built from section functions.

``report(["runs/nat", "runs/pgd_at"], out="report")`` evaluates every run on its test
split, computes the latent-space diagnostics, draws every figure (PDF and PNG in
``report/figures/``, PNG inline in ``report/index.html``), exports every table (CSV and
LaTeX booktabs in ``report/tables/``) and appends an evaluation record to each run's
``metrics.jsonl`` (so ``robustviz compare`` reads the report's numbers). The page reads
offline (no external assets) and its layout is the Jinja2 template
``robustviz/templates/report.html.j2``: change the layout there, not here.

Thin by design: every number comes from :mod:`robustviz.evaluate` and
:mod:`robustviz.diagnostics`, every picture from :mod:`robustviz.figures`.

Sections
--------
The page is a list of sections, each made by a plain function::

    from robustviz.report import Section, ReportFigure, register_section

    @register_section("landscape", title="Loss landscape")
    def landscape(ctx):
        figs = []
        for name, run in ctx.runs.items():
            fig = my_figures.plot_landscape(my_diag.landscape(run.model, ctx.test))
            figs.append(ReportFigure(f"landscape_{name}", fig,
                                     "What the figure shows. What to look for in it."))
        return Section(title="Loss landscape", text=["One paragraph per string."],
                       figures=figs)

- A section function takes the shared :class:`Context` and returns a :class:`Section`
  (or ``None`` to leave the page unchanged, e.g. when the runs lack what it draws). It
  computes nothing the context already offers: ``ctx.evaluation(name)`` (the accuracy
  table's :class:`~robustviz.evaluate.EvalResult`, PGD examples kept),
  ``ctx.adversarial(name)``, ``ctx.features(name)``, ``ctx.divergence(name)``,
  ``ctx.pairs(name)``, ``ctx.embedding(name)``, ``ctx.sweep()`` are computed once, on
  first use, and shared by every section. ``ctx.styles`` gives each model one colour and
  marker (pass ``colors=ctx.styles, markers=ctx.styles`` to the figure functions);
  ``ctx.eps_text(e)`` writes a radius in the report's one convention.
- A :class:`Section` holds a title, paragraphs (plain text: the template escapes every
  ``str``; ``markupsafe.Markup`` only for markup written in the section's own code, never
  for text holding a run name, a config value or an argument), :class:`ReportFigure` s
  (a figure, a file stem, a caption of one sentence on what it shows and one on what to
  look for; stems become safe file names) and :class:`ReportTable` s
  (header, rows of strings, one sentence per column in ``notes``, optional bold cells).
  The report saves each figure as PDF and PNG, each table as CSV and LaTeX, and inlines
  them into the page.
- :func:`register_section` adds the function to :data:`SECTIONS` (in page order; ``after=``
  places it after another section); ``report(..., sections=[...])`` and the CLI's
  ``--sections`` pick a subset by name.
- Test a section alone: ``ctx = Context.build(run_dirs, out); sec = SECTIONS[name](ctx)``.
"""
from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from robustviz._validate import check_choice, check_int, check_positive

__all__ = ["report", "Report", "default_eps", "Context", "Section", "ReportFigure", "DEFAULT_SECTIONS",
           "ReportTable", "SECTIONS", "register_section", "CITATIONS"]

# Data sets whose pixels are not 8-bit (scikit-learn's digits has 17 grey levels): their eps
# is shown without the /255 equivalent.
_NOT_8BIT = {"digits"}

#: Full references of the methods the report uses, by key.
CITATIONS = {
    "bui2021": "A. Bui, T. Le, H. Zhao, P. Montague, S. Camtepe, D. Phung. Understanding and "
               "Achieving Efficient Robustness with Adversarial Supervised Contrastive "
               "Learning. arXiv:2101.10027, 2021.",
    "madry2018": "A. Madry, A. Makelov, L. Schmidt, D. Tsipras, A. Vladu. Towards Deep Learning "
                 "Models Resistant to Adversarial Attacks. ICLR 2018.",
    "goodfellow2015": "I. J. Goodfellow, J. Shlens, C. Szegedy. Explaining and Harnessing "
                      "Adversarial Examples. ICLR 2015.",
    "athalye2018": "A. Athalye, N. Carlini, D. Wagner. Obfuscated Gradients Give a False Sense "
                   "of Security: Circumventing Defenses to Adversarial Examples. ICML 2018.",
    "zhou2023": "N. Zhou, N. Wang, D. Liu, D. Zhou, X. Gao. Robust Representation Learning via "
                "Asymmetric Negative Contrast and Reverse Attention. arXiv:2310.03358, 2023.",
    "wilson1927": "E. B. Wilson. Probable Inference, the Law of Succession, and Statistical "
                  "Inference. Journal of the American Statistical Association 22(158), 1927.",
    "vandermaaten2008": "L. van der Maaten, G. Hinton. Visualizing Data using t-SNE. Journal of "
                        "Machine Learning Research 9, 2008.",
    "mcinnes2018": "L. McInnes, J. Healy, J. Melville. UMAP: Uniform Manifold Approximation and "
                   "Projection for Dimension Reduction. arXiv:1802.03426, 2018.",
}


def default_eps(config: dict) -> float:
    """The attack radius of a run (:func:`robustviz.runs.eval_eps`): its evaluation eps,
    else its training eps, else the data set's default (:data:`robustviz.runs.DEFAULT_EPS`)."""
    from robustviz.runs import eval_eps

    return eval_eps(config)[0]


# --------------------------------------------------------------------------- section API
@dataclasses.dataclass
class ReportFigure:
    """A figure of a section: ``stem`` names its files (``figures/<stem>.pdf``/``.png``);
    ``caption``: one sentence on what it shows, one on what to look for."""

    stem: str
    figure: Any
    caption: str


@dataclasses.dataclass
class ReportTable:
    """A table of a section: ``header`` and ``rows`` of strings; ``notes`` maps a column
    name to one sentence saying what it holds and what to look for; ``bold`` holds the
    (row, column) cells to emphasise; ``stem`` names ``tables/<stem>.csv``/``.tex``."""

    stem: str
    header: list
    rows: list
    notes: dict = dataclasses.field(default_factory=dict)
    caption: str = ""
    bold: set = dataclasses.field(default_factory=set)


@dataclasses.dataclass
class Section:
    """What a section function returns (see the module docstring)."""

    title: str
    text: list = dataclasses.field(default_factory=list)
    figures: list = dataclasses.field(default_factory=list)
    tables: list = dataclasses.field(default_factory=list)
    details: list = dataclasses.field(default_factory=list)   # (summary, preformatted text)
    name: str = ""


#: name -> section function, in page order.
SECTIONS: dict[str, Callable[["Context"], Section | None]] = {}
#: Sections a report holds when none are named (the costly optional ones, e.g. loss
#: landscapes and corruptions, are asked for by name).
DEFAULT_SECTIONS: list[str] = []


def register_section(name: str, *, after: str | None = None, replace: bool = False,
                     default: bool = True):
    """Decorator: add ``func(ctx) -> Section | None`` to :data:`SECTIONS` under ``name``
    (at the end, or right after the section ``after``); ``default=False`` leaves it out of
    reports that do not name it."""
    def deco(func):
        # every check before any change: a refused registration leaves both lists as they were
        if not replace and name in SECTIONS:
            raise ValueError(f"a report section named {name!r} exists (replace=True to swap it)")
        items = [(k, v) for k, v in SECTIONS.items() if k != name]
        if after is None:
            items.append((name, func))
        else:
            keys = [k for k, _ in items]
            if after not in keys:
                raise ValueError(f"after={after!r}: no such section (have {keys})")
            items.insert(keys.index(after) + 1, (name, func))
        if default and name not in DEFAULT_SECTIONS:
            DEFAULT_SECTIONS.append(name)
        elif not default and name in DEFAULT_SECTIONS:
            DEFAULT_SECTIONS.remove(name)
        SECTIONS.clear()
        SECTIONS.update(items)
        return func
    return deco


# --------------------------------------------------------------------------- context
class Context:
    """Everything sections share: the runs, the test set, the threat model, and the
    computations (evaluation, features, divergences, maps, eps sweep), each done once on
    first use. Build with :meth:`build`."""

    def __init__(self, runs: dict, test, *, eps: float, steps: int, out: Path, dname: str,
                 n_sweep: int, sweep_steps: int, n_embed: int, n_embed_adv: int,
                 embed_method: str, seed: int, autoattack: str | None = None, seeds: int = 1,
                 selection: str | None = None):
        from robustviz import attacks
        from robustviz.figures import model_styles

        self.runs = runs
        self.test = test
        self.eps = float(eps)
        self.steps = int(steps)
        self.out = Path(out)
        self.dname = dname
        self.n = len(test)
        self.n_sweep = min(int(n_sweep), len(test))
        self.sweep_steps = int(sweep_steps)
        self.n_embed = int(n_embed)
        self.n_embed_adv = int(n_embed_adv)
        self.embed_method = embed_method
        self.seed = int(seed)
        self.class_names = list(test.classes)
        self.styles = model_styles(list(runs))
        # one PGD rule everywhere: the attack core's default step 2.5 * eps / steps
        self.pgd = attacks.PGD(eps=self.eps, steps=self.steps)
        self.pgd_name = f"pgd{self.steps}"
        self.attacks = {"clean": None,
                        self.pgd_name: attacks.Adaptive(attack=self.pgd),
                        "fgsm": attacks.Adaptive(attack=attacks.FGSM(eps=self.eps))}
        self.autoattack = autoattack
        if autoattack is not None:
            self.attacks["autoattack"] = attacks.Adaptive(
                attack=attacks.AutoAttack(eps=self.eps, version=autoattack))
        self.seeds = int(seeds)
        self.selection = selection
        self.adaptive = {nm: attacks.surrogate_of(r.model) is not None for nm, r in runs.items()}
        self._cache: dict = {}
        self._stack: list = []
        self.extra_files: list[Path] = []   # files sections wrote themselves (owned)
        self.timings: dict[str, float] = {}

    @classmethod
    def build(cls, runs, out="report", *, n: int = 1000, eps: float | None = None,
              steps: int = 20, n_sweep: int = 500, sweep_steps: int = 10, n_embed: int = 1000,
              n_embed_adv: int = 100, embed_method: str = "tsne",
              names: Sequence[str] | None = None, seed: int = 0, autoattack: str | None = None,
              seeds: int = 1) -> "Context":
        """Load the runs and their (common) test set; see :func:`report` for the arguments."""
        from robustviz import data, runs as _runs

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
        check_int(seeds, "seeds", minimum=1)
        if autoattack is not None:
            from robustviz.attacks.autoattack import VERSIONS

            check_choice(autoattack, "autoattack", tuple(VERSIONS))
        if names is None:
            names = [r.name for r in runs]
        if len(names) != len(runs) or len(set(names)) != len(names):
            raise ValueError("names must give one distinct name per run")
        loaded = {nm: _runs.load_run(r) for nm, r in zip(names, runs)}
        first = next(iter(loaded.values())).config
        if eps is None:
            eps, why = _runs.eval_eps(first)
            print(f"report: eps {eps:g} ({why}, {runs[0]})")
        eps = float(eps)
        check_positive(eps, "eps", upper=1.0)
        dcfg = dict(first.get("data") or {})
        if "name" not in dcfg:
            raise ValueError(f"{runs[0]}/config.json has no data name; cannot pick a test set")
        for nm, run in loaded.items():
            other = (run.config.get("data") or {}).get("name")
            if other != dcfg["name"]:
                raise ValueError(f"runs use different data sets ({dcfg['name']!r} and {other!r} "
                                 f"in {nm}); a report compares models on one test set")
        size = data.info(dcfg["name"]).sizes["test"]
        test = data.load(dcfg["name"], "test", root=dcfg.get("root"), n=min(n, size), seed=seed)
        from robustviz.models import check_finite_logits

        for r, run in zip(runs, loaded.values()):   # a NaN model scores chance, silently
            check_finite_logits(run.model, test.x, name=str(r))
        return cls(loaded, test, eps=eps, steps=steps, out=Path(out), dname=dcfg["name"],
                   n_sweep=n_sweep, sweep_steps=sweep_steps, n_embed=n_embed,
                   n_embed_adv=n_embed_adv, embed_method=embed_method, seed=seed,
                   autoattack=autoattack, seeds=seeds,
                   selection=(f"class-stratified random subset of the test split (seed {seed})"
                              if n < size else "the whole test split"))

    # ---- conventions
    def eps_text(self, eps: float | None = None) -> str:
        """A radius in the report's one convention: the data's pixel scale, with the /255
        equivalent in brackets where the data is 8-bit (``0.1 (25.5/255)``)."""
        e = self.eps if eps is None else float(eps)
        if self.dname in _NOT_8BIT:
            return f"{e:.4g}"
        return f"{e:.4g} ({e * 255:.3g}/255)"

    @property
    def pgd_label(self) -> str:
        """``PGD-20`` with its step rule and value, for table headers."""
        return (f"PGD-{self.steps} (step 2.5 eps/{self.steps} = "
                f"{self.pgd.effective_step_size:.4g})")

    # ---- shared computations, each done once
    def _once(self, key, make):
        if key not in self._cache:
            kind = key[0] if isinstance(key, tuple) else key
            self._stack.append(0.0)            # seconds spent in nested computations
            t = time.perf_counter()
            try:
                self._cache[key] = make()
            finally:
                total = time.perf_counter() - t
                nested = self._stack.pop()
                # exclusive seconds per kind of computation ("eval", "sweep", "embed", ...)
                self.timings[kind] = self.timings.get(kind, 0.0) + total - nested
                if self._stack:
                    self._stack[-1] += total
        return self._cache[key]

    def evaluation(self, name: str):
        """The table's :class:`~robustviz.evaluate.EvalResult` of run ``name`` (clean,
        PGD, FGSM at ``eps``); the PGD examples are kept for the diagnostics."""
        from robustviz import evaluate

        def make():
            atks = {k: v for k, v in self.attacks.items() if v is not None}
            ev = evaluate.evaluate(self.runs[name].model, self.test, atks, seed=self.seed,
                                   keep_adv=self.pgd_name, seeds=self.seeds,
                                   selection=self.selection, progress=False)
            self._cache[("adv", name)] = ev.adv.pop(self.pgd_name)
            return ev
        return self._once(("eval", name), make)

    def adversarial(self, name: str):
        """The PGD examples of the accuracy table, shape (N, C, H, W)."""
        self.evaluation(name)
        return self._cache[("adv", name)]

    def features(self, name: str):
        from robustviz import diagnostics

        return self._once(("feat", name), lambda: diagnostics.attacked_features(
            self.runs[name].model, self.test, x_adv=self.adversarial(name)))

    def divergence(self, name: str):
        from robustviz import diagnostics

        def make():
            f = self.features(name)
            return diagnostics.divergence(f.z_nat, f.z_adv, f.y, n_boot=200, seed=self.seed)
        return self._once(("div", name), make)

    def pairs(self, name: str):
        from robustviz import diagnostics

        def make():
            f = self.features(name)
            return diagnostics.pair_distances(f.z_nat, f.z_adv, f.y, seed=self.seed)
        return self._once(("pairs", name), make)

    def embedding(self, name: str):
        from robustviz import diagnostics

        def make():
            f = self.features(name)
            k = min(self.n_embed, len(f.y))
            ka = min(self.n_embed_adv, k)
            return diagnostics.embed(f.z_nat[:k], f.z_adv[:ka], f.y[:k], y_adv=f.y[:ka],
                                     probs=f.probs_nat[:k], probs_adv=f.probs_adv[:ka],
                                     method=self.embed_method, seed=self.seed)
        return self._once(("embed", name), make)

    def sweep(self):
        """R-DIV and robust accuracy at eps x {0, 1/4, 1/2, 1, 3/2, 2} (PGD with
        ``sweep_steps`` steps on ``n_sweep`` examples)."""
        from robustviz import attacks, diagnostics

        def make():
            grid = sorted({0.0, self.eps / 4, self.eps / 2, self.eps, 1.5 * self.eps,
                           2 * self.eps})
            grid = [e for e in grid if e <= 1.0]
            atk = attacks.Adaptive(attack=attacks.PGD(eps=self.eps, steps=self.sweep_steps))
            return diagnostics.rdiv_vs_eps({nm: r.model for nm, r in self.runs.items()},
                                           self.test, atk, grid, n=self.n_sweep, n_boot=100,
                                           seed=self.seed)
        return self._once("sweep", make)


# --------------------------------------------------------------------------- helpers
def _pct(p: float) -> str:
    """The one way percentages are printed: one decimal, no sign."""
    return f"{100 * p:.1f}"


def _pct_ci(p: float, n: int) -> str:
    from robustviz.figures import binomial_ci

    lo, hi = binomial_ci(p, n)
    return f"{_pct(p)} [{_pct(lo)}, {_pct(hi)}]"


def _best_cells(values: list[float], n: int, col: int, *, lower: bool = False) -> set:
    """The best row of a column, only when its 95% interval clears the runner-up's."""
    from robustviz.figures import binomial_ci, intervals_overlap

    if len(values) < 2:
        return set()
    order = sorted(range(len(values)), key=lambda i: values[i], reverse=not lower)
    a, b = order[0], order[1]
    if intervals_overlap(binomial_ci(values[a], n), binomial_ci(values[b], n)):
        return set()
    return {(a, col)}


def _defense_name(config: dict) -> str:
    d = config.get("defense") or {}
    if isinstance(d, dict):
        name = d.get("name", "nat")
        extra = [t.get("name") for t in d.get("terms", []) if isinstance(t, dict)]
        return "+".join([name] + extra)
    return str(d)


def _png(fig, dpi: int = 110) -> bytes:
    from robustviz.figures._style import literal_text_where_math_fails

    literal_text_where_math_fails(fig)   # run names are text, not mathtext
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _interval_name(results) -> str:
    """How the R-DIV intervals of ``results`` were computed, in words for a caption."""
    methods = {getattr(r, "ci_method", None) for r in results} - {None}
    names = {"jackknife": "delete-a-group jackknife interval",
             "bootstrap": "bootstrap interval over batches"}
    if len(methods) == 1:
        return names.get(next(iter(methods)), "interval")
    if methods:
        return "interval (" + " or ".join(sorted(names.get(m, m) for m in methods)) + ")"
    return "interval"


# --------------------------------------------------------------------------- sections
@register_section("summary")
def summary_section(ctx: Context) -> Section:
    """Clean, FGSM and PGD accuracy with binomial intervals, and R-DIV with its interval
    (jackknife in exact mode, bootstrap in minibatch mode), one row per run."""
    aa = "autoattack" in ctx.attacks
    aa_col = f"AutoAttack {ctx.autoattack} %" if aa else None
    header = ["run", "defense", "clean %", "FGSM %", f"PGD-{ctx.steps} %",
              *([aa_col] if aa else []), "worst case %", "R-DIV", "d_a+", "d_a-"]
    keys = ["clean", "fgsm", ctx.pgd_name, *(["autoattack"] if aa else []), "worst"]
    rows, acc = [], {k: [] for k in keys}
    divs = {nm: ctx.divergence(nm) for nm in ctx.runs}
    spread = []
    for nm, run in ctx.runs.items():
        ev, div = ctx.evaluation(nm), divs[nm]
        a = {k: ev.accuracy[k][1] for k in keys if k != "worst"}
        a["worst"] = ev.worst_case().accuracy
        for k in acc:
            acc[k].append(a[k])
        rd = f"{div.rdiv:.3f}"
        if div.ci is not None:
            rd += f" [{div.ci[0]:.3f}, {div.ci[1]:.3f}]"
        rows.append([nm, _defense_name(run.config), *[_pct_ci(a[k], ev.n) for k in keys], rd,
                     f"{div.d_pos:.3f}", f"{div.d_neg:.3f}"])
        for k, sp in ev.spread.items():
            spread.append(f"{nm}, {_attack_col(ctx, k)}: mean {_pct(sp['mean'])}%, range "
                          f"{_pct(sp['min'])}-{_pct(sp['max'])}% over attack seeds "
                          f"{sp['seeds']}; {_pct(sp['worst'])}% when an example counts as "
                          f"broken if any seed broke it.")
    bold = set()
    for col, k in enumerate(keys, start=2):
        bold |= _best_cells(acc[k], ctx.n, col)
    worst_of = ", ".join(_attack_col(ctx, k) for k in keys[1:-1])
    notes = {
        "run": "The run directory's name.",
        "defense": "The training objective (nat: plain cross-entropy on clean images).",
        "clean %": "Top-1 accuracy on unperturbed test images, with its 95% Wilson interval "
                   "in brackets; intervals that overlap mean the difference is within "
                   "sampling noise at this n.",
        "FGSM %": f"Top-1 accuracy under one signed-gradient step of size eps "
                  f"{ctx.eps_text()} (Goodfellow et al. 2015); a model far above its PGD "
                  f"number here is weak against the stronger attack, not robust.",
        f"PGD-{ctx.steps} %": f"Top-1 accuracy under {ctx.pgd_label}, random start "
                              f"(Madry et al. 2018): the robust accuracy to compare; higher "
                              f"is better, and it can never exceed the clean accuracy.",
        **({aa_col: f"Top-1 accuracy under AutoAttack {ctx.autoattack} (Croce & Hein 2020) "
                    f"at its authors' settings: "
                    + ctx.attacks["autoattack"].attack.backend().split(": ", 1)[-1]
                    + "; each attack runs on the examples the earlier ones left correct."}
           if aa else {}),
        "worst case %": f"The headline robust accuracy: an example counts as robust only if it is "
                        f"correct on the clean image and under every attack that ran "
                        f"({worst_of}); the per-example worst case, never above any single "
                        f"attack's column.",
        "R-DIV": f"d_a+ / d_a- with its 95% {_interval_name(divs.values())} (Bui et al. "
                 "2021): how close "
                 "adversarial features stay to their own class relative to other classes; "
                 "lower is better (adversarial examples stay with their class).",
        "d_a+": "Mean cosine distance from a clean anchor to same-class clean and "
                "adversarial features; lower means a tighter class.",
        "d_a-": "Mean cosine distance from a clean anchor to other-class features; higher "
                "means classes are further apart.",
    }
    text = [f"{len(ctx.runs)} run(s) evaluated on the same {ctx.n} {ctx.dname} test "
            f"images, L-infinity radius eps {ctx.eps_text()} (pixels in [0, 1]). Bold marks "
            f"the best value of a column only where its interval does not overlap the "
            f"runner-up's."]
    if any(ctx.adaptive.values()):
        text.append("Models whose test-time prediction is not differentiable (reverse "
                    "attention, Zhou et al. 2023) are attacked on the model and on its "
                    "differentiable surrogate, and the worst case per example is reported "
                    "(an adaptive attack, Athalye et al. 2018); PGD on the model alone would "
                    "report masked gradients.")
    text += spread
    first = ctx.evaluation(next(iter(ctx.runs)))
    card = first.card()
    return Section(title="Summary", text=text, tables=[
        ReportTable("evaluation_card", ["item", "value"], _card_rows(ctx, card), {},
                    caption="Evaluation card: how the numbers below were obtained."),
        ReportTable("summary", header, rows, notes,
                    caption="Accuracy (%) and latent divergence per run.", bold=bold)])


def _attack_col(ctx: Context, key: str) -> str:
    return {"fgsm": "FGSM", ctx.pgd_name: f"PGD-{ctx.steps}",
            "autoattack": f"AutoAttack {ctx.autoattack}"}.get(key, key)


def _card_rows(ctx: Context, card: dict) -> list:
    """The evaluation card as (item, value) rows: threat model, attacks with their budgets,
    backend and versions, examples and how they were chosen, seeds, intervals, device."""
    rows = [["threat model", f"L-infinity ball of radius eps {ctx.eps_text()} on pixels in [0, 1]"]]
    for k, a in card["attacks"].items():
        inner = a.get("wrapped", {})
        what = {"fgsm": "one signed-gradient step of size eps",
                ctx.pgd_name: f"{ctx.pgd_label}, uniform random start, 1 restart"}.get(
            k, inner.get("backend") or a.get("backend") or a.get("type", k))
        surrogate = " (and on the differentiable surrogate of reverse-attention models, " \
                    "worst case per example)" if any(ctx.adaptive.values()) else ""
        rows.append([f"attack: {_attack_col(ctx, k)}", f"{what}{surrogate}; {a['precision']}"])
    rows.append(["worst case", "per example over all attacks above (the 'worst case %' column)"])
    rows.append(["examples", f"{card['n']} {ctx.dname} test images: {card.get('selection', '?')}"])
    rows.append(["attack seeds", ", ".join(map(str, card.get("seeds", [ctx.seed])))
                 + ("" if ctx.seeds > 1 else " (one seed: pass seeds=k for the spread)")])
    rows.append(["intervals", "95% Wilson score interval per accuracy; R-DIV: "
                 + _interval_name([ctx.divergence(nm) for nm in ctx.runs])])
    versions = card.get("versions", {})
    rows.append(["backend", ", ".join(f"{k} {v}" for k, v in versions.items())])
    rows.append(["device", card.get("device", "?")])
    return rows


@register_section("attacks")
def attacks_section(ctx: Context) -> Section:
    """Top-3/5 accuracy and the size and cost of each attack's perturbations."""
    header = ["run", "attack", "top-3 %", "top-5 %", "L2 median", "Linf median", "seconds"]
    rows = []
    for nm in ctx.runs:
        ev = ctx.evaluation(nm)
        for k, acc in ev.accuracy.items():
            pert = ev.perturbation.get(k)
            label = {"clean": "clean", "fgsm": "FGSM", ctx.pgd_name: f"PGD-{ctx.steps}"}.get(k, k)
            rows.append([nm, label, *[_pct(acc[t]) if t in acc else "-" for t in (3, 5)],
                         "-" if pert is None else f"{pert['l2_median']:.3f}",
                         "-" if pert is None else f"{pert['linf_median']:.3f}",
                         f"{ev.seconds.get(k, float('nan')):.1f}"])
    notes = {
        "top-3 %": "The true class is among the model's three highest scores (clean and "
                   "attacked input); the top-1 numbers are in the summary.",
        "top-5 %": "The same with the five highest scores; a large gap to top-1 means the "
                   "attack moves the true class down only a little.",
        "L2 median": "Median Euclidean norm of x' - x over the test images (pixel scale); "
                     "an eps-bounded attack uses most of its budget, so this is close to "
                     "eps * sqrt(pixels) for FGSM.",
        "Linf median": f"Median largest per-pixel change; it cannot exceed eps "
                       f"{ctx.eps_text()}, and a value well below eps means the attack "
                       f"stopped early.",
        "seconds": "Wall-clock time of the attack over all test images on this machine.",
    }
    return Section(title="Attacks in detail", tables=[ReportTable(
        "attacks", header, rows, notes, caption="Top-k accuracy and perturbation size per "
        "attack.")])


@register_section("examples")
def examples_section(ctx: Context) -> Section:
    """Adversarial examples as images, per model."""
    from robustviz import figures

    figs = []
    for nm, run in ctx.runs.items():
        f = ctx.features(nm)
        k = 6
        x = ctx.test.x[:k]
        figs.append(ReportFigure(
            f"examples_{nm}",
            figures.plot_adversarial_examples(
                x, ctx.adversarial(nm)[:k], f.y[:k], pred=f.logits_nat[:k].argmax(1),
                pred_adv=f.logits_adv[:k].argmax(1), class_names=ctx.class_names, n=k,
                title=nm),
            f"{nm}: test images (top), the PGD perturbation scaled to its largest value "
            f"(middle; red brighter, blue darker) and the adversarial images with the "
            f"model's prediction (bottom, red when wrong). For a robust model the "
            f"perturbation shows object-shaped structure and fewer predictions turn red."))
    return Section(title="Adversarial examples", figures=figs)


@register_section("training")
def training_section(ctx: Context) -> Section | None:
    """Loss, clean and robust accuracy (and R-DIV when recorded) per epoch."""
    from robustviz import diagnostics, figures

    recs = {nm: r.metrics for nm, r in ctx.runs.items()
            if any(m.get("kind") == "epoch" for m in r.metrics)}
    figs = []
    if recs:
        figs.append(ReportFigure(
            "training_curves",
            figures.plot_training_curves(recs, colors=ctx.styles, markers=ctx.styles),
            "Training loss, validation accuracy (clean solid, robust dashed) and, where "
            "recorded, R-DIV per epoch. Look for robust accuracy still rising at the last "
            "epoch (train longer) or falling while clean accuracy rises (robust "
            "overfitting)."))
    sel = {}
    for nm, r in ctx.runs.items():
        try:
            sel[nm] = diagnostics.selection_stats(r.metrics, name=nm)
        except ValueError:
            pass  # this run logged no positives/negatives (not a SupCon defense)
    if sel:
        figs.append(ReportFigure(
            "selection_counts", figures.plot_selection_counts(
                sel, colors=figures.model_colors(list(sel))),
            "Mean positives and negatives per anchor of the supervised contrastive term "
            "(Bui et al. 2021, Fig. 3). Local selection keeps far fewer negatives than "
            "global selection; a count falling to zero starves the contrastive loss."))
    if not figs:
        return None
    return Section(title="Training", figures=figs)


@register_section("divergence")
def divergence_section(ctx: Context) -> Section:
    """R-DIV and accuracy vs eps, d_a+/d_a- per model, class x class distances."""
    from robustviz import figures

    sweep = ctx.sweep()
    divs = {nm: ctx.divergence(nm) for nm in ctx.runs}
    differ = sweep.n != ctx.n or ctx.sweep_steps != ctx.steps
    how = (f" The sweep uses {sweep.n} test images and PGD-{ctx.sweep_steps} (step "
           f"2.5 eps/{ctx.sweep_steps}), not the table's {ctx.n} and PGD-{ctx.steps}."
           if differ else "")
    figs = [
        ReportFigure("rdiv_vs_eps", figures.plot_rdiv_vs_eps(
            sweep, colors=ctx.styles, markers=ctx.styles),
            f"Adversarial R-DIV (left, shaded: 95% "
            f"{_interval_name(r for rs in sweep.results.values() for r in rs)}) and robust accuracy "
            f"(right) as the attack radius grows, eps on the pixel scale (the table's eps "
            f"is {ctx.eps_text()}).{how} A robust model keeps R-DIV low and accuracy high "
            f"over a wider range of eps; R-DIV rising together with falling accuracy shows "
            f"features leaving their class."),
        ReportFigure("divergence_pairs", figures.plot_divergence_pairs(divs),
                     "Mean distance from clean anchors to their own class (d_a+, blue) and "
                     "to other classes (d_a-, orange) with 95% intervals, R-DIV above. Look "
                     "for a short blue bar next to a tall orange one."),
        ReportFigure("class_divergence", figures.plot_class_divergence(
            divs, class_names=ctx.class_names),
            "Mean cosine distance from anchors of each class (rows) to the members of each "
            "class (columns), one shared colour scale across models. A dark diagonal on a "
            "bright background means well-separated classes; bright off-diagonal cells "
            "name the class pairs the attack confuses."),
    ]
    return Section(title="Latent divergence", figures=figs, text=[
        "R-DIV (Bui et al. 2021) compares how far a clean feature is from same-class clean "
        "and adversarial features (d_a+) with how far it is from other classes (d_a-). "
        "Lower R-DIV is better: the attack does not move examples out of their class in "
        "feature space."])


@register_section("pairs")
def pairs_section(ctx: Context) -> Section:
    from robustviz import figures

    return Section(title="Pair distances", figures=[ReportFigure(
        "pair_histograms", figures.plot_pair_histograms({nm: ctx.pairs(nm) for nm in ctx.runs}),
        "Distributions of cosine similarity and L2 distance between clean features of "
        "positive (same-class) and negative (different-class) pairs. Well-separated "
        "histograms mean the features keep classes apart; overlapping ones mean they "
        "do not.")])


@register_section("embeddings")
def embeddings_section(ctx: Context) -> Section:
    from robustviz import figures

    method = {"tsne": "t-SNE (van der Maaten & Hinton 2008)",
              "umap": "UMAP (McInnes et al. 2018)"}[ctx.embed_method]
    figs = []
    for nm in ctx.runs:
        emb = ctx.embedding(nm)
        f = ctx.features(nm)
        ka = int(emb.is_adv.sum())
        correct = (f.logits_adv[:ka].argmax(1) == f.y[:ka]).cpu().numpy()
        figs.append(ReportFigure(
            f"embedding_{nm}", figures.plot_embedding(
                emb, class_names=ctx.class_names, correct_adv=correct, title=nm),
            f"{nm}: {method} map of clean features by true class, with {ka} adversarial "
            f"points (crosses: misclassified; hollow circles: still correct). For a robust "
            f"model the adversarial points sit inside their own class's cluster."))
        figs.append(ReportFigure(
            f"embedding_entropy_{nm}", figures.plot_embedding_entropy(
                emb, title=f"{nm}: prediction entropy"),
            f"{nm}: the same map coloured by prediction entropy (dark: uncertain; the "
            f"colour bar ends at log C, total uncertainty). Adversarial crosses that are "
            f"dark and between clusters show an attack that confuses the model."))
    return Section(title="Embeddings", figures=figs)


# ---- the visual diagnostics (robustviz._report_visual): optional, asked for by name
def _visual(kind: str, title: str):
    """A section from :mod:`robustviz._report_visual`'s ``kind`` function: it writes its
    figures (PDF and PNG) and raw arrays (``.npz``) under ``figures/``; the report inlines
    and owns them."""
    def section(ctx: Context) -> Section:
        from robustviz import _report_visual

        models = {nm: run.model for nm, run in ctx.runs.items()}
        # report-sized settings: an 11 x 11 landscape on at most 200 images; inversion from
        # 6 test images; corruptions and transfer on the report's test images
        opts = {"landscape": {"points": 11, "n": min(ctx.n, 200), "pgd_steps": 3}}.get(kind, {})
        res = _report_visual.SECTIONS[kind](models, ctx.test, ctx.out / "figures", eps=ctx.eps,
                                            seed=ctx.seed, **{"n": ctx.n, **opts})
        figs = [ReportFigure(Path(p).stem, Path(p), f"{title}: {Path(p).stem.replace('_', ' ')} "
                             f"(raw arrays: figures/*.npz).") for p in res["figures"]]
        ctx.extra_files.extend(Path(p) for p in (ctx.out / "figures").glob("*.npz"))
        tables = [ReportTable(f"{kind}_{i}", [str(c) for c in t["columns"]],
                              [[str(v) for v in r] for r in t["rows"]], caption=t["caption"])
                  for i, t in enumerate(res["tables"])]
        # plain text (it names the models): the template escapes it
        return Section(title=title, text=[res["text"]], figures=figs, tables=tables)
    section.__name__ = f"{kind}_section"
    section.__doc__ = f"{title} (optional: ``sections=[..., {kind!r}]``)."
    return section


for _kind, _title in (("inversion", "Feature inversion maps"), ("landscape", "Loss landscapes"),
                      ("corruptions", "Common corruptions"), ("transfer", "Transfer attacks")):
    register_section(_kind, default=False)(_visual(_kind, _title))
from robustviz._report_certified import section as _certified  # noqa: E402  (optional, by name)
register_section("certified", after="attacks", default=False)(_certified)


@register_section("pretrain", after="training")
def pretrain_section(ctx: Context) -> Section | None:
    """Robust pretraining: the pretrain -> finetune lineage and the SLF/ALF/AFF table (Fan
    et al., NeurIPS 2021; and paper 003's linear-separability comparison); only for
    finetuning runs (``robustviz finetune``), which it reads without attacking."""
    from robustviz import _report_pretrain

    res = _report_pretrain.pretrain_section([run.path for run in ctx.runs.values()])
    if not res["tables"]:
        return None
    tables = [ReportTable(f"pretrain_{i}", [str(c) for c in t["columns"]],
                          [[str(v) for v in r] for r in t["rows"]], caption=t["caption"])
              for i, t in enumerate(res["tables"])]
    figs = [ReportFigure("pretrain_robust_accuracy", f,
                         "Robust accuracy after each finetuning mode, per pretrained encoder. "
                         "Robust pretraining should keep RA high even with a standard linear head (SLF).")
            for f in res["figures"]]
    return Section(title=res["title"], text=res["text"].split("\n"), figures=figs, tables=tables)


@register_section("runs")
def runs_section(ctx: Context) -> Section:
    details = []
    for nm, run in ctx.runs.items():
        epochs = [m for m in run.metrics if m.get("kind") == "epoch"]
        details.append((f"{nm}: {run.path} ({len(epochs)} epoch record(s)), config.json",
                        json.dumps(run.config, indent=2, sort_keys=True)))
    return Section(title="Runs", details=details)


@register_section("references")
def references_section(ctx: Context) -> Section:
    keys = ["madry2018", "goodfellow2015", "bui2021", "wilson1927",
            "vandermaaten2008" if ctx.embed_method == "tsne" else "mcinnes2018"]
    if any(ctx.adaptive.values()):
        keys += ["athalye2018", "zhou2023"]
    return Section(title="References", text=[CITATIONS[k] for k in keys])


# --------------------------------------------------------------------------- driver
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
        body = [[r["name"], r["defense"], _pct(r["clean"]), _pct(r["fgsm"]), _pct(r["pgd"]),
                 _pct(r["worst"]) if "worst" in r else "-",
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


def _template():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("robustviz", "templates"),
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
            rows.append({"name": nm, "defense": _defense_name(run.config),
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
