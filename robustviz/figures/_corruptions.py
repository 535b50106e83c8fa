"""Figures beyond the white-box threat model: common corruptions and the transfer matrix."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from robustviz.figures._common import colors_for, finish, new_axes

__all__ = ["plot_corruptions", "plot_transfer_matrix"]


def plot_corruptions(result, ax=None, *, colors=None, title: str | None = None) -> Figure:
    """Accuracy under common corruptions: vs severity (left) and per type (right).

    Parameters
    ----------
    result : CorruptionResult
        From :func:`robustviz.evaluate.corruption_accuracy`.
    ax : None or sequence of 2 Axes
    colors : sequence of str, optional
        One per model.
    title : str, optional

    Returns
    -------
    Figure
        Left: mean accuracy over the types at each severity (severity 0 = clean), one line
        per model. Right: accuracy per type (mean over severities), grouped bars; types
        skipped for these images are listed under the panel.
    """
    for attr in ("names", "corruptions", "severities", "accuracy", "clean"):
        if not hasattr(result, attr):
            raise TypeError(f"result must be a CorruptionResult, got {type(result).__name__}")
    names, corrs = list(result.names), list(result.corruptions)
    if ax is None:
        fig = Figure(figsize=(7.0, 0.22 * len(corrs) + 1.6), layout="constrained")
        axes = list(fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.4]}))
    else:
        fig, axes = new_axes(ax, ncols=2)
    cols = colors_for(len(names), colors)
    sev = [0, *result.severities]
    for name, col in zip(names, cols):
        acc = [result.clean[name]] + [float(np.mean([result.accuracy[name][c][i] for c in corrs]))
                                      for i in range(len(result.severities))]
        axes[0].plot(sev, 100 * np.array(acc), marker="o", color=col, label=name)
    axes[0].set_xlabel("severity (0 = clean)")
    axes[0].set_ylabel("accuracy (%)")
    axes[0].set_ylim(0, 100)
    axes[0].set_xticks(sev)
    axes[0].legend(loc="best")
    y = np.arange(len(corrs))
    h = 0.8 / max(1, len(names))
    for k, (name, col) in enumerate(zip(names, cols)):
        vals = [100 * float(np.mean(result.accuracy[name][c])) for c in corrs]
        axes[1].barh(y + (k - (len(names) - 1) / 2) * h, vals, height=h, color=col, label=name)
    axes[1].set_yticks(y)
    axes[1].set_yticklabels([c.replace("_", " ") for c in corrs])
    axes[1].invert_yaxis()
    axes[1].set_xlim(0, 100)
    axes[1].set_xlabel("accuracy (%), mean over severities")
    skipped = getattr(result, "skipped", {}) or {}
    if skipped:
        import textwrap

        axes[1].set_title(textwrap.fill("skipped for these images: " + ", ".join(
            c.replace("_", " ") for c in skipped), 60), fontsize="x-small", loc="left")
    if title is not None:
        fig.suptitle(title)
    return fig


def plot_transfer_matrix(result, ax=None, *, percent: bool = True, cmap: str = "viridis",
                         annotate: bool = True, title: str | None = None) -> Figure:
    """Annotated heatmap of a transfer matrix: rows are source models (where the adversarial
    examples were crafted), columns target models; the diagonal (white-box) is outlined.

    Parameters
    ----------
    result : TransferMatrix or dict
        From :func:`robustviz.evaluate.transfer_matrix` (or its ``to_dict()``).
    ax : Axes, optional
    percent : bool
        Show accuracies in % (default) rather than fractions.
    cmap : str
    annotate : bool
        Write each accuracy in its cell.
    title : str, optional

    Returns
    -------
    Figure
    """
    get = (lambda k: result[k]) if isinstance(result, Mapping) else (lambda k: getattr(result, k))
    try:
        names, acc = list(get("names")), np.asarray(get("accuracy"), dtype=float)
    except (KeyError, AttributeError):
        raise TypeError("result must be a TransferMatrix (names, accuracy)") from None
    if acc.shape != (len(names), len(names)):
        raise ValueError(f"accuracy must be {len(names)}x{len(names)}, got {acc.shape}")
    k = len(names)
    fig, (ax,) = new_axes(ax, figsize=(1.0 + 0.75 * k, 0.8 + 0.65 * k))
    scale = 100.0 if percent else 1.0
    im = ax.imshow(acc * scale, cmap=cmap, vmin=0, vmax=scale)
    ax.grid(False)
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_yticklabels(names)
    ax.set_xlabel("target model")
    ax.set_ylabel("source model (attacked)")
    if annotate:
        for i in range(k):
            for j in range(k):
                v = acc[i, j] * scale
                light = (v / scale) < 0.55
                ax.text(j, i, f"{v:.1f}" if percent else f"{v:.2f}", ha="center", va="center",
                        fontsize="small", color="white" if light else "black")
    for i in range(k):
        ax.add_patch(Rectangle(
            (i - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="k", lw=1.2))
    fig.colorbar(im, ax=ax, label="accuracy" + (" (%)" if percent else ""), shrink=0.85)
    return finish(fig, ax, title)
