"""Figures of quantities recorded over training: loss and accuracy per epoch, R-DIV with
robust accuracy and positives/negatives per anchor (Bui et al., "Understanding and Achieving
Efficient Robustness with Adversarial Supervised Contrastive Learning", arXiv:2101.10027,
2021, Fig. 2b and Fig. 3)."""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from matplotlib.lines import Line2D

from robustviz.figures._common import (colors_for, finish, integer_ticks, named, new_axes,
                                       twin_accuracy_axis)

__all__ = ["plot_rdiv_training", "plot_selection_counts", "plot_training_curves"]


def _is_records(obj) -> bool:
    if isinstance(obj, (str, os.PathLike)):
        return True
    return isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)) and \
        all(isinstance(r, dict) for r in obj) and len(obj) > 0


def _rdiv_series(obj, name: str):
    from robustviz.runs import read_metrics

    records = read_metrics(obj) if isinstance(obj, (str, os.PathLike)) else list(obj)
    rows = [r for r in records if r.get("kind") == "rdiv" and r.get("rdiv") is not None]
    if not rows:  # the trainer also merges the callback's metrics into its epoch records
        rows = [r for r in records if r.get("kind") == "epoch" and r.get("rdiv") is not None]
    if not rows:
        raise ValueError(f"{name or 'records'}: no records with an 'rdiv' value (kind 'rdiv' "
                         f"from RDivCallback, or 'epoch')")
    rows = sorted(rows, key=lambda r: r.get("epoch", 0))
    ep = np.array([r.get("epoch", i) for i, r in enumerate(rows)], float)
    rd = np.array([r["rdiv"] for r in rows], float)

    def col(*keys):
        for k in keys:
            if all(r.get(k) is not None for r in rows):
                return np.array([r[k] for r in rows], float)
        return None

    acc = col("rdiv_robust_acc", "robust_acc")
    lo, hi = col("rdiv_ci_low"), col("rdiv_ci_high")
    return ep, rd, acc, lo, hi


def plot_rdiv_training(records, ax=None, *, accuracy: bool = True, ci: bool = True,
                       percent: bool = True, colors=None, title: str | None = None, **kwargs):
    """R-DIV (left axis) and robust accuracy (right axis) over training epochs.

    Parameters
    ----------
    records : list of dict, run directory, or mapping name -> either
        Metric records written by :class:`robustviz.diagnostics.RDivCallback` (kind
        ``"rdiv"``; epoch records carrying ``"rdiv"`` also work), e.g.
        ``{"NAT": "runs/nat", "AT": "runs/at"}``.
    ax : Axes, optional
        Left axis; the right one is its twin.
    accuracy : bool
        Draw robust accuracy (dashed) on the right axis.
    ci : bool
        Shade the R-DIV confidence interval when the records hold one.
    percent : bool
        Accuracy in percent.
    colors : sequence of str, optional
        One per run (default: the Okabe-Ito palette).
    title : str, optional
    **kwargs
        Passed to the R-DIV ``Axes.plot`` calls.

    Returns
    -------
    Figure
        ``fig.axes``: the R-DIV axis, then (with ``accuracy``) the accuracy axis.

    References
    ----------
    Bui et al., arXiv:2101.10027, 2021, Fig. 2b.
    """
    runs = named(records, _is_records, "list of metric records or run directory")
    fig, (ax,) = new_axes(ax)
    cols = colors_for(len(runs), colors, list(runs))
    ax2 = twin_accuracy_axis(ax) if accuracy else None
    scale = 100.0 if percent else 1.0
    for (name, obj), c in zip(runs.items(), cols):
        ep, rd, acc, lo, hi = _rdiv_series(obj, name)
        ax.plot(ep, rd, color=c, marker="o", label=name or "R-DIV", **kwargs)
        if ci and lo is not None and hi is not None:
            ax.fill_between(ep, lo, hi, color=c, alpha=0.2, linewidth=0)
        if ax2 is not None:
            if acc is None:
                raise ValueError(f"{name or 'records'}: no robust accuracy in the records; "
                                 f"use accuracy=False")
            ax2.plot(ep, acc * scale, color=c, linestyle="--", marker="s", markersize=3)
    ax.set_xlabel("epoch")
    integer_ticks(ax)
    ax.set_ylabel(r"R-DIV $d_a^+/d_a^-$")
    handles = []
    if len(runs) > 1 or next(iter(runs)):
        handles += [Line2D([], [], color=c, label=n) for n, c in zip(runs, cols)]
    if ax2 is not None:
        ax2.set_ylabel("robust accuracy" + (" (%)" if percent else ""))
        handles += [Line2D([], [], color="0.3", linestyle="-", label="R-DIV"),
                    Line2D([], [], color="0.3", linestyle="--", label="robust acc.")]
    if handles:
        ax.legend(handles=handles, loc="best", frameon=True, framealpha=0.85, facecolor="white",
                  edgecolor="none")
    return finish(fig, ax, title)


def _is_stats(obj) -> bool:
    return all(hasattr(obj, a) for a in ("x", "pos", "neg", "x_label"))


def plot_selection_counts(stats, ax=None, *, log: bool = True, colors=None,
                          title: str | None = None, **kwargs):
    """Mean positives (left panel) and negatives (right panel) per anchor over training.

    Parameters
    ----------
    stats : SelectionStats or mapping name -> SelectionStats or list of them
        From :func:`robustviz.diagnostics.selection_stats` (one per selection strategy
        or run; a list uses each one's ``name``).
    ax : sequence of two Axes, optional
    log : bool
        Logarithmic count axes (Global keeps ~10x more negatives than Leaked-LS).
    colors : sequence of str, optional
    title : str, optional
        Figure title.
    **kwargs
        Passed to ``Axes.plot``.

    Returns
    -------
    Figure
        Two axes: positives per anchor, negatives per anchor.

    References
    ----------
    Bui et al., arXiv:2101.10027, 2021, Fig. 3.
    """
    runs = named(stats, _is_stats, "SelectionStats")
    if len(runs) == 1 and "" in runs:
        only = runs.pop("")
        runs[getattr(only, "name", "") or ""] = only
    fig, axes = new_axes(ax, ncols=2, name="ax")
    cols = colors_for(len(runs), colors, list(runs))
    for (name, s), c in zip(runs.items(), cols):
        axes[0].plot(s.x, s.pos, color=c, label=name, **kwargs)
        axes[1].plot(s.x, s.neg, color=c, label=name, **kwargs)
    x_label = next(iter(runs.values())).x_label
    for a, what in zip(axes, ("positives", "negatives")):
        a.set_xlabel(x_label)
        a.set_ylabel(f"{what} per anchor")
        if x_label in ("epoch", "step"):
            integer_ticks(a)
        if log:
            from matplotlib.ticker import FuncFormatter

            a.set_yscale("log")
            plain = FuncFormatter(lambda v, _: f"{v:g}")
            a.yaxis.set_major_formatter(plain)
            a.yaxis.set_minor_formatter(plain)
    if any(runs):
        axes[1].legend(loc="best")
    if title is not None:
        fig.suptitle(title)
    return fig


def _epochs(obj):
    from robustviz.runs import read_metrics

    records = read_metrics(obj) if isinstance(obj, (str, os.PathLike)) else list(obj)
    rows = sorted((r for r in records if r.get("kind") == "epoch"), key=lambda r: r["epoch"])
    rdiv = sorted((r for r in records if r.get("kind") == "rdiv" and r.get("rdiv") is not None),
                  key=lambda r: r.get("epoch", 0))
    if not rdiv:
        rdiv = [r for r in rows if r.get("rdiv") is not None]
    return rows, rdiv


def plot_training_curves(records, ax=None, *, rdiv: bool | None = None, percent: bool = True,
                         colors=None, markers=None, title: str | None = None,
                         val_label: str = "validation", **kwargs):
    """Training loss, clean and robust validation accuracy (and R-DIV when recorded) per
    epoch, one colour per run.

    Parameters
    ----------
    records : list of dict, run directory, or mapping name -> either
        Metric records of :class:`robustviz.train.Trainer` (kind ``"epoch"`` with ``loss``,
        ``val_clean_acc``, ``val_robust_acc``; kind ``"rdiv"`` from ``RDivCallback``).
    ax : sequence of 2 or 3 Axes, optional
    rdiv : bool, optional
        Add the R-DIV panel (default: when any run recorded R-DIV).
    percent : bool
    colors, markers : sequence or mapping name -> value, optional
        See :func:`robustviz.figures.model_styles`.
    title : str, optional
    val_label : str
        What the Trainer's ``val=`` images were, for the accuracy axis: ``"validation"``
        (default), or ``"test"`` for a run that scored the test set each epoch.
    **kwargs
        Passed to ``Axes.plot``.

    Returns
    -------
    Figure
        Panels: loss; accuracy (clean solid, robust dashed); R-DIV (when drawn).
    """
    from robustviz.figures._common import markers_for

    runs = named(records, _is_records, "list of metric records or run directory")
    series = {nm: _epochs(obj) for nm, obj in runs.items()}
    if not any(rows for rows, _ in series.values()):
        raise ValueError("no epoch records to plot")
    if rdiv is None:
        rdiv = any(rd for _, rd in series.values())
    names = list(runs)
    cols = colors_for(len(names), colors, names)
    marks = markers_for(names, markers)
    fig, axes = new_axes(ax, ncols=3 if rdiv else 2, name="ax",
                         figsize=None if ax is not None else (6.9, 2.3))
    scale = 100.0 if percent else 1.0
    for nm, c, mk in zip(names, cols, marks):
        rows, rd = series[nm]
        ep = [r["epoch"] for r in rows]
        kw = {"color": c, "marker": mk, **kwargs}
        if rows and all(r.get("loss") is not None for r in rows):
            axes[0].plot(ep, [r["loss"] for r in rows], label=nm or None, **kw)
        for key, ls in (("val_clean_acc", "-"), ("val_robust_acc", "--")):
            pts = [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]
            if pts:
                axes[1].plot([p[0] for p in pts], [scale * p[1] for p in pts], linestyle=ls, **kw)
        if rdiv and rd:
            axes[2].plot([r.get("epoch", i) for i, r in enumerate(rd)], [r["rdiv"] for r in rd],
                         **kw)
    axes[0].set_ylabel("training loss")
    if not isinstance(val_label, str) or not val_label.strip():
        raise ValueError(f"val_label must be a non-empty string such as 'test', got {val_label!r}")
    axes[1].set_ylabel(f"{val_label} accuracy" + (" (%)" if percent else ""))
    axes[1].set_ylim(0, 100 if percent else 1)
    if rdiv:
        axes[2].set_ylabel(r"R-DIV $d_a^+/d_a^-$")
    all_ep = [r["epoch"] for rows, _ in series.values() for r in rows]
    for a in axes:
        a.set_xlabel("epoch")
        integer_ticks(a)
        if min(all_ep) == max(all_ep):           # one epoch: one tick, not a float range
            a.set_xlim(all_ep[0] - 0.5, all_ep[0] + 0.5)
            a.set_xticks([all_ep[0]])
    handles = [Line2D([], [], color=c, marker=mk, label=nm) for nm, c, mk in zip(names, cols, marks)
               if nm]
    handles += [Line2D([], [], color="0.3", linestyle="-", label="clean"),
                Line2D([], [], color="0.3", linestyle="--", label="robust")]
    axes[-1].legend(handles=handles, loc="center left", bbox_to_anchor=(1.02, 0.5))
    if title is not None:
        fig.suptitle(title)
    return fig
