"""Robustness curves: accuracy vs attack radius and vs PGD steps."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from robustviz.figures._common import colors_for, finish, markers_for, named, new_axes

__all__ = ["plot_robustness_curve", "plot_robustness_vs_eps", "plot_robustness_vs_steps",
           "plot_certified_vs_empirical"]


def _is_curve(obj) -> bool:
    if isinstance(obj, Mapping):
        return "values" in obj and "accuracy" in obj
    return hasattr(obj, "values") and hasattr(obj, "accuracy") and \
        not callable(getattr(obj, "values"))


def _field(obj, key):
    return obj[key] if isinstance(obj, Mapping) else getattr(obj, key)


def plot_robustness_curve(curves, ax=None, *, xlabel: str | None = None,
                          eps_scale: float = 1.0, percent: bool = True, colors=None,
                          markers=None, title: str | None = None, **kwargs):
    """Accuracy as a function of one attack parameter, one line per model.

    Parameters
    ----------
    curves : Curve or dict or mapping name -> either, or list of them
        :class:`robustviz.evaluate.Curve` objects (``parameter``, ``values``,
        ``accuracy``) or dicts with ``"values"`` and ``"accuracy"`` (fractions in [0, 1]).
    ax : Axes, optional
    xlabel : str, optional
        Default from the curve's ``parameter``.
    eps_scale : float
        Multiply eps values for display when the parameter is eps (255: 1/255 units).
    percent : bool
    colors, markers : sequence or mapping name -> value, optional
        See :func:`robustviz.figures.model_styles`.
    title : str, optional
    **kwargs
        Passed to ``Axes.plot``.

    Returns
    -------
    Figure
        One line per curve.
    """
    res = named(curves, _is_curve, "robustness curve (values, accuracy)")
    fig, (ax,) = new_axes(ax)
    cols = colors_for(len(res), colors, list(res))
    marks = markers_for(list(res), markers)
    params = set()
    for (name, c), col in zip(res.items(), cols):
        p = c.get("parameter") if isinstance(c, Mapping) else getattr(c, "parameter", None)
        params.add(p)
        x = np.asarray(_field(c, "values"), float)
        y = np.asarray(_field(c, "accuracy"), float)
        if x.shape != y.shape:
            raise ValueError(f"curve {name!r}: values and accuracy differ in length "
                             f"({x.shape[0]} vs {y.shape[0]})")
        if p == "eps":
            x = x * eps_scale
        kw = {"marker": marks[list(res).index(name)], **kwargs}
        ax.plot(x, y * (100 if percent else 1), color=col, label=name or None, **kw)
    param = params.pop() if len(params) == 1 else None
    if xlabel is None:
        xlabel = {"eps": "attack radius $\\epsilon$" + (" (x 1/255)" if eps_scale == 255 else ""),
                  "steps": "PGD steps"}.get(param, param or "attack parameter")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("robust accuracy" + (" (%)" if percent else ""))
    ax.set_ylim(0, 100 if percent else 1)
    if any(res):
        ax.legend(loc="best")
    return finish(fig, ax, title)


def plot_robustness_vs_eps(curves, ax=None, *, eps_scale: float = 1.0, **kwargs):
    """Accuracy vs attack radius, eps on the pixel scale like every robustviz figure
    (``eps_scale=255`` shows 1/255 units); see :func:`plot_robustness_curve`. Curves from
    :func:`robustviz.evaluate.accuracy_vs_eps`."""
    kwargs.setdefault("xlabel", "attack radius $\\epsilon$" +
                      (" (x 1/255)" if eps_scale == 255 else ""))
    return plot_robustness_curve(_with_param(curves, "eps"), ax, eps_scale=eps_scale, **kwargs)


def plot_robustness_vs_steps(curves, ax=None, **kwargs):
    """Accuracy vs number of PGD steps; see :func:`plot_robustness_curve`. Curves from
    :func:`robustviz.evaluate.accuracy_vs_steps`. A curve that rises with more steps
    signals gradient masking."""
    kwargs.setdefault("xlabel", "PGD steps")
    return plot_robustness_curve(_with_param(curves, "steps"), ax, **kwargs)


def _with_param(curves, param):
    """Plain dicts without a ``parameter`` get the one the wrapper plots."""
    def fix(c):
        if isinstance(c, Mapping) and "parameter" not in c:
            return {**c, "parameter": param}
        return c

    if _is_curve(curves):
        return fix(curves)
    if isinstance(curves, Mapping):
        return {k: fix(v) for k, v in curves.items()}
    return [fix(c) for c in curves]


def plot_certified_vs_empirical(result, ax=None, *, eps_scale: float = 1.0, percent: bool = True,
                                title: str | None = None):
    """Accuracy under attack (an upper bound on robust accuracy) and certified accuracy (a
    lower bound) against the radius, with the gap between the strongest attack and the
    best certificate shaded: the region where nobody knows.

    Parameters
    ----------
    result : dict
        ``{"eps": [...], "empirical": {name: [acc, ...]}, "certified": {name: [acc, ...]}}``
        with accuracies in [0, 1] (what :func:`robustviz.certify.compare` returns).
    ax : Axes, optional
    eps_scale : float
        Display scale of the radius (255: 1/255 units).
    percent : bool
    title : str, optional

    Returns
    -------
    Figure
        Solid lines for attacks, dashed for certificates, the shaded gap between them.
    """
    if not isinstance(result, Mapping) or not {"eps", "empirical", "certified"} <= set(result):
        raise ValueError("result must be a dict with 'eps', 'empirical' and 'certified' "
                         "(see robustviz.certify.compare)")
    eps = np.asarray(result["eps"], float) * eps_scale
    emp, cert = dict(result["empirical"]), dict(result["certified"])
    if not emp or not cert:
        raise ValueError("need at least one attack curve and one certified curve")
    for group in (emp, cert):
        for name, acc in group.items():
            if len(acc) != len(eps):
                raise ValueError(f"curve {name!r} has {len(acc)} points for {len(eps)} radii")
    fig, (ax,) = new_axes(ax)
    scale = 100 if percent else 1
    cols = colors_for(len(emp) + len(cert), None, list(emp) + list(cert))
    for (name, acc), col in zip(emp.items(), cols):
        ax.plot(eps, np.asarray(acc, float) * scale, "-o", color=col, label=f"{name} (attack)")
    for (name, acc), col in zip(cert.items(), cols[len(emp):]):
        ax.plot(eps, np.asarray(acc, float) * scale, "--s", color=col, label=f"{name} (certified)")
    upper = np.min([np.asarray(a, float) for a in emp.values()], axis=0) * scale
    lower = np.max([np.asarray(a, float) for a in cert.values()], axis=0) * scale
    # a certificate equal to the attack (float32 bounds against float64 accuracies) still
    # closes the band there, so compare with a tolerance
    ax.fill_between(eps, lower, upper, where=upper >= lower - 1e-6 * scale, interpolate=True,
                    color="0.6", alpha=0.25, lw=0,
                    label="unknown: between the best certificate and the strongest attack")
    ax.set_xlabel("radius $\\epsilon$ (Linf" + (", x 1/255)" if eps_scale == 255 else ")"))
    ax.set_ylabel("accuracy" + (" (%)" if percent else ""))
    ax.set_ylim(0, 100 if percent else 1)
    # below the axes: the curves and the shaded gap fill the plot wherever a legend would sit
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize="small",
              frameon=False)
    return finish(fig, ax, title)
