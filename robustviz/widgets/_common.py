"""Shared pieces of the widgets: model sources, attacks by name, PNG panels, timing."""
from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from robustviz._validate import check_choice, check_int, check_nonnegative

__all__ = ["ATTACKS", "make_attack", "resolve_bf16", "resolve_model", "resolve_models", "png", "Timer",
           "class_names_of", "require_ipywidgets", "class_colors"]

#: Attacks the widgets offer by name (all Linf, pixel units).
ATTACKS = ("PGD", "FGSM", "MIM", "PGD-CW")


def resolve_bf16(bf16, model: nn.Module) -> bool:
    """``"auto"``: bf16 autocast for the attack only where it is native and fast (CUDA,
    CPUs with AVX512-BF16/AMX), as the Trainer's default; else the bool given."""
    if bf16 == "auto":
        from robustviz._utils import bf16_is_fast, model_device

        return bool(bf16_is_fast(model_device(model)))
    if not isinstance(bf16, bool):
        raise ValueError(f"bf16 must be True, False or 'auto', got {bf16!r}")
    return bf16


def make_attack(name: str, eps: float, steps: int, *, bf16: bool = False):
    """An attack object by widget name at radius ``eps`` (None at eps 0: no attack)."""
    from robustviz import attacks

    check_choice(name, "attack", ATTACKS)
    check_nonnegative(eps, "eps")
    steps = check_int(steps, "steps", minimum=1)
    if eps == 0:
        return None
    if name == "FGSM":
        return attacks.FGSM(eps=float(eps), bf16=bf16)
    if name == "MIM":
        return attacks.MIM(eps=float(eps), steps=steps, bf16=bf16)
    return attacks.PGD(eps=float(eps), steps=steps, loss="cw" if name == "PGD-CW" else "ce",
                       bf16=bf16)


def resolve_model(source, *, dataset: str = "fashion-mnist") -> nn.Module:
    """A model from an ``nn.Module``, a run directory, or a zoo name."""
    if isinstance(source, nn.Module):
        return source.eval()
    if isinstance(source, (str, os.PathLike)):
        from robustviz import zoo

        path = Path(source)
        # a bare name means the zoo; a run directory must be an explicit path (a PathLike,
        # or a string holding a separator or starting with "."), so a local folder named
        # like a zoo model never replaces it silently
        explicit = not isinstance(source, str) or os.sep in source or "/" in source \
            or source.startswith(".")
        try:
            names = [] if explicit else zoo.list(dataset=dataset)
        except zoo.ZooError:
            names = []
        if source in names:
            print(f"model {source!r}: zoo model {dataset}/{source} ({zoo.run_dir(source, dataset)})")
            return zoo.load(source, dataset=dataset).eval()
        if (path / "config.json").is_file():
            from robustviz.runs import load_run

            print(f"model {str(source)!r}: run directory {path.resolve()}")
            return load_run(path).model.eval()
        raise FileNotFoundError(f"{str(source)!r} is neither a run directory (config.json) nor "
                                f"a zoo model of {dataset!r}")
    raise TypeError(f"a model source must be an nn.Module, a run directory or a zoo name, got "
                    f"{type(source).__name__}")


def resolve_models(models, *, dataset: str = "fashion-mnist") -> dict[str, Any]:
    """``{name: source}`` from one source, a list of names/paths, or a mapping (loaded lazily)."""
    if isinstance(models, dict):
        out = dict(models)
    elif isinstance(models, (list, tuple)):
        out = {Path(str(m)).name if not isinstance(m, nn.Module) else f"model {i}": m
               for i, m in enumerate(models)}
    else:
        out = {"model" if isinstance(models, nn.Module) else Path(str(models)).name: models}
    if not out:
        raise ValueError("give at least one model")
    return out


def class_names_of(data, class_names, num_classes: int) -> list[str]:
    if class_names is None:
        class_names = getattr(data, "classes", None)
    if class_names is None:
        return [str(i) for i in range(num_classes)]
    names = [str(c) for c in class_names]
    if len(names) < num_classes:
        raise ValueError(f"class_names must hold {num_classes} names, got {len(names)}")
    return names


def class_colors(n: int) -> list[str]:
    """One colour per class: the figures' colour-blind-safe palette, tab10/tab20 beyond 8."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    from robustviz.figures import palette

    if n <= 8:
        return palette(n)
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [to_hex(cmap(i % cmap.N)) for i in range(n)]


def png(fig) -> bytes:
    """PNG bytes of a matplotlib Figure (drawn with the Agg canvas, never pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    return buf.getvalue()


def image_array(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W) or (H, W, 3) for imshow."""
    a = x.detach().float().cpu().clamp(0, 1).numpy()
    return a[0] if a.shape[0] == 1 else np.transpose(a, (1, 2, 0))


def require_ipywidgets():
    try:
        import ipywidgets
    except ImportError as err:  # pragma: no cover - part of the notebooks extra
        raise ImportError("the widgets' controls need ipywidgets: "
                          "pip install 'robustviz[notebooks]'") from err
    return ipywidgets


#: What a static page (no live kernel, no widget manager) shows under a widget's image.
STATIC_NOTE = ("A live widget: open this notebook in Jupyter with a running kernel to use its "
               "controls. The image is its first state.")


def display_with_fallback(widget) -> None:
    """Display ``widget.ui`` with a static fallback in the same output.

    The output carries the widget view (what JupyterLab, Notebook and VS Code render) and,
    for a viewer without a widget manager (a static HTML page, GitHub, nbviewer), a PNG of
    the widget's current state (``widget.static_figure()``, else ``widget.figure()``) and a sentence saying what it is.
    A front end shows the richest type it can render, so a live kernel shows the controls.
    """
    from IPython.display import display

    ui = widget.ui
    bundle = dict(ui._repr_mimebundle_() or {})
    fig_fn = getattr(widget, "static_figure", None) or getattr(widget, "figure", None)
    if fig_fn is not None:
        import base64

        fig = fig_fn()
        if fig is not None:
            bundle["image/png"] = base64.b64encode(png(fig)).decode("ascii")
    bundle["text/plain"] = STATIC_NOTE
    display(bundle, raw=True)


class StateControls:
    """The controls of a widget as attributes: ``w.eps`` reads ``w._state["eps"]`` and
    ``w.eps = 0.2`` is ``w.set(eps=0.2)`` (checked, recomputed, redrawn). A widget sets
    ``_state`` (a dict of control values), ``_syncing`` (True while it writes its own
    controls) and ``timer`` (a :class:`Timer`), and defines ``set``, ``_compute``,
    ``_refresh_ui`` and the ``ui`` property."""

    def _on_control(self, name: str):
        """An ipywidgets observer: a user's change of control ``name`` becomes ``set``."""
        def handler(change):
            if not self._syncing and change["new"] != self._state[name]:
                self.set(**{name: change["new"]})
        return handler

    def _ipython_display_(self):
        display_with_fallback(self)

    def _update(self) -> None:
        self._compute()
        self._refresh_ui()

    def __getattr__(self, name):
        state = self.__dict__.get("_state")
        if state is not None and name in state:
            return state[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name, value):
        if name in self.__dict__.get("_state", {}):
            self.set(**{name: value})
        else:
            super().__setattr__(name, value)

    @property
    def latency_s(self) -> float | None:
        """Seconds the last control change took: recomputation and, with the front end
        built, redrawing it (None before the first)."""
        return self.timer.last_s


class Timer:
    """Wall time of the last and of every recomputation (``last_s``, ``history``)."""

    def __init__(self):
        self.last_s: float | None = None
        self.history: list[float] = []

    def run(self, fn: Callable[[], Any]):
        start = time.perf_counter()
        try:
            return fn()
        finally:
            self.last_s = time.perf_counter() - start
            self.history.append(self.last_s)
