"""One self-contained HTML report for one or several runs, built from section functions.

``report(["runs/nat", "runs/pgd_at"], out="report")`` evaluates every run on its test
split, computes the latent-space diagnostics, draws every figure (PDF and PNG in
``report/figures/``, PNG inline in ``report/index.html``), exports every table (CSV and
LaTeX booktabs in ``report/tables/``) and appends an evaluation record to each run's
``metrics.jsonl`` (so ``robustviz compare`` reads the report's numbers). The page reads
offline (no external assets) and its layout is the Jinja2 template ``report.html.j2``
beside this file: change the layout there, not in Python.

Thin by design: every number comes from :mod:`robustviz.evaluate` and
:mod:`robustviz.diagnostics`, every picture from :mod:`robustviz.figures`.

Where things are
----------------
- ``_sections.py``: :class:`Section`, :class:`ReportFigure`, :class:`ReportTable`, the
  registry :data:`SECTIONS` and :func:`register_section`.
- ``_context.py``: :class:`Context`, what every section reads (runs, test set, threat
  model, shared computations).
- ``_page.py``: :func:`report` and :class:`Report` (runs the sections, writes the files,
  renders the page).
- ``_format.py``: how numbers and names are written (percentages, intervals, bold cells).
- One module per section, registered at the end of this file in page order: ``summary``,
  ``attacks``, ``examples``, ``training``, ``pretrain``, ``divergence``, ``pairs``,
  ``embeddings``, ``visual`` (the optional ``inversion``, ``landscape``, ``corruptions``,
  ``transfer``), ``runs``, ``references``.

Adding a section
----------------
One file and one registration. The file, ``robustviz/report/landscape2.py``::

    from robustviz.report._context import Context
    from robustviz.report._sections import ReportFigure, Section

    def section(ctx: Context) -> Section | None:
        figs = []
        for name, run in ctx.runs.items():
            fig = my_figures.plot_landscape(my_diag.landscape(run.model, ctx.test))
            figs.append(ReportFigure(f"landscape2_{name}", fig,
                                     "What the figure shows. What to look for in it."))
        return Section(title="Loss landscape", text=["One paragraph per string."], figures=figs)

and one line at the end of this file: ``register_section("landscape2", after="pairs")
(landscape2.section)`` (with ``default=False`` if it is costly and asked for by name).
Outside the package, the same function registers itself with the decorator
``@register_section("landscape2")``.

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

from robustviz.report import (attacks, certified, divergence, embeddings, examples, pairs,
                              pretrain, references, runs, summary, training, visual)
from robustviz.report._context import Context, default_eps
from robustviz.report._page import Report, report
from robustviz.report._sections import (DEFAULT_SECTIONS, SECTIONS, ReportFigure, ReportTable,
                                        Section, register_section)
from robustviz.report.references import CITATIONS

__all__ = ["report", "Report", "default_eps", "Context", "Section", "ReportFigure", "DEFAULT_SECTIONS",
           "ReportTable", "SECTIONS", "register_section", "CITATIONS"]

# ---- the page, in order: one registration per section
register_section("summary")(summary.section)
register_section("attacks")(attacks.section)
register_section("certified", default=False)(certified.section)   # optional: asked for by name
register_section("examples")(examples.section)
register_section("training")(training.section)
register_section("divergence")(divergence.section)
register_section("pairs")(pairs.section)
register_section("embeddings")(embeddings.section)
for _kind in visual.SECTIONS:           # optional: asked for by name
    register_section(_kind, default=False)(visual.section(_kind))
register_section("pretrain", after="training")(pretrain.section)
register_section("runs")(runs.section)
register_section("references")(references.section)
