"""The inversion explorer: what one neuron responds to, natural vs robust model side by side."""
from __future__ import annotations

from typing import Any

import torch

from robustviz._validate import check_choice, check_int, check_positive
from robustviz.widgets._common import (StateControls, Timer, image_array, png, require_ipywidgets,
                                       resolve_model, resolve_models)

__all__ = ["InversionExplorer"]


class InversionExplorer(StateControls):
    """Pick a layer, a neuron and a seed image; see each model's feature inversion map.

    For every model the seed image is pushed up the gradient of the chosen unit (a unit of
    a flat layer, or a channel's mean over positions of a spatial one) with
    :func:`robustviz.diagnostics.feature_inversion`,
    ``x <- clip_[0,1](x + step_size * sign(grad_x R_i(x)))``. Robust models turn the seed
    into shapes a person can name; natural models add high-frequency patterns (Engstrom et
    al., "Adversarial Robustness as a Prior for Learned Representations", 2019).

    A plain object: set ``layer``, ``neuron`` or ``seed`` (or call :meth:`set`) and read
    :attr:`view` (``{model name: InversionResult}``), :attr:`gains` and
    :attr:`latency_s`; ``ui`` (or displaying the object) gives the front end. Results are
    cached per setting.

    Parameters
    ----------
    models : nn.Module, str, list or dict
        Models by name (modules, run directories or zoo names), shown side by side; they
        must share the layer names (e.g. ``{"NAT": "nat", "PGD-AT": "pgd_at"}``).
    seeds : Dataset or Tensor or (Tensor, Tensor)
        Seed images in [0, 1].
    dataset : str
        Data set of zoo names.
    layer, neuron, seed : initial controls (``seed`` indexes ``seeds``).
    steps, step_size : int, float
        The gradient ascent of each map.

    Shape
    -----
    seeds: (S, C, H, W); view[name].images: (1, 1, C, H, W).
    """

    def __init__(self, models, seeds, *, dataset: str = "fashion-mnist",
                 layer: str = "penultimate", neuron: int = 0, seed: int = 0, steps: int = 40,
                 step_size: float = 0.02):
        self._sources = resolve_models(models, dataset=dataset)
        self.dataset = dataset
        x = seeds
        if isinstance(seeds, (tuple, list)) and len(seeds) == 2:
            x = seeds[0]
        elif isinstance(getattr(seeds, "x", None), torch.Tensor):
            x = seeds.x
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[0] == 0:
            raise TypeError("seeds must be images (S, C, H, W), a pair (x, y) or a Dataset")
        self.x = x.detach().cpu()
        self.steps = check_int(steps, "steps", minimum=1)
        check_positive(step_size, "step_size")
        self.step_size = float(step_size)
        self._loaded: dict[str, Any] = {}
        self._units: dict[tuple, int] = {}
        self._views: dict[tuple, dict] = {}
        self._state = {"layer": layer, "neuron": int(neuron), "seed": int(seed)}
        self.timer = Timer()
        self._ui: dict[str, Any] | None = None
        self._syncing = False
        self.set()

    @property
    def model_names(self) -> list[str]:
        return list(self._sources)

    def _model(self, name: str):
        if name not in self._loaded:
            self._loaded[name] = resolve_model(self._sources[name], dataset=self.dataset)
        return self._loaded[name]

    def layer_names(self) -> list[str]:
        """Taps every model has (in the first model's order)."""
        names = [list(self._model(n).layer_names) for n in self.model_names]
        return [layer for layer in names[0] if all(layer in other for other in names[1:])]

    def units(self, layer: str | None = None) -> int:
        """Number of units (flat layer) or channels (spatial layer) of ``layer``."""
        layer = layer or self._state["layer"]
        key = (self.model_names[0], layer)
        if key not in self._units:
            from robustviz.models import extract

            out = extract(self._model(self.model_names[0]), self.x[:1], [layer])[layer]
            self._units[key] = int(out.shape[1])
        return self._units[key]

    def set(self, **changes) -> dict:
        """Change controls (``layer``, ``neuron``, ``seed``) and recompute; returns the
        new :attr:`view`. A new layer keeps the neuron when it exists there, else 0."""
        unknown = set(changes) - set(self._state)
        if unknown:
            raise TypeError(f"unknown control(s) {sorted(unknown)}; "
                            f"controls are {sorted(self._state)}")
        state = {**self._state, **changes}
        check_choice(state["layer"], "layer", tuple(self.layer_names()))
        n_units = self.units(state["layer"])
        if "layer" in changes and "neuron" not in changes and state["neuron"] >= n_units:
            state["neuron"] = 0
        state["neuron"] = check_int(state["neuron"], "neuron", minimum=0)
        if state["neuron"] >= n_units:
            raise ValueError(f"neuron must be below the {n_units} units of {state['layer']!r}, "
                             f"got {state['neuron']}")
        state["seed"] = check_int(state["seed"], "seed", minimum=0)
        if state["seed"] >= self.x.shape[0]:
            raise ValueError(f"seed must index one of the {self.x.shape[0]} seed images, "
                             f"got {state['seed']}")
        self._state = state
        self.timer.run(self._update)
        return self.view

    def _key(self) -> tuple:
        s = self._state
        return (s["layer"], s["neuron"], s["seed"])

    @property
    def view(self) -> dict:
        """``{model name: InversionResult}`` of the current layer, neuron and seed."""
        return self._views[self._key()]

    @property
    def gains(self) -> dict[str, float]:
        """How much each model's unit rose from the seed to the map (its activation)."""
        return {name: float(r.objective[-1].mean() - r.objective[0].mean())
                for name, r in self.view.items()}

    def _update(self) -> None:
        key = self._key()
        if key not in self._views:
            from robustviz.diagnostics import feature_inversion

            layer, neuron, seed = key
            self._views[key] = {
                name: feature_inversion(self._model(name), layer, [neuron],
                                        seeds=self.x[seed:seed + 1], steps=self.steps,
                                        step_size=self.step_size, seed=0)
                for name in self.model_names}
        self._refresh_ui()

    def figure(self):
        """The seed and each model's map side by side (a pyplot-free Figure)."""
        from matplotlib.figure import Figure

        view, gains = self.view, self.gains
        fig = Figure(figsize=(2.0 * (1 + len(view)), 2.4), dpi=80)
        axes = fig.subplots(1, 1 + len(view))
        seed = self.x[self._state["seed"]]
        cmap = "gray" if seed.shape[0] == 1 else None
        axes[0].imshow(image_array(seed), cmap=cmap, vmin=0, vmax=1)
        axes[0].set_title("seed", fontsize=9)
        for ax, (name, res) in zip(axes[1:], view.items()):
            ax.imshow(image_array(res.images[0, 0]), cmap=cmap, vmin=0, vmax=1)
            ax.set_title(f"{name}\nunit gain {gains[name]:+.2f}", fontsize=9)
        for ax in axes:
            ax.set_axis_off()
        fig.tight_layout()
        return fig

    def readout(self) -> str:
        s = self._state
        gains = ", ".join(f"{n} {g:+.2f}" for n, g in self.gains.items())
        return (f"{s['layer']} unit {s['neuron']} from seed {s['seed']}, {self.steps} steps: "
                f"activation gain {gains}")

    def _refresh_ui(self) -> None:
        ui = self._ui
        if ui is None:
            return
        s = self._state
        self._syncing = True
        try:
            if ui["layer"].value != s["layer"]:
                ui["layer"].value = s["layer"]
            ui["neuron"].max = self.units(s["layer"]) - 1
            for name in ("neuron", "seed"):
                if ui[name].value != s[name]:
                    ui[name].value = s[name]
        finally:
            self._syncing = False
        ui["readout"].value = f"<b>{self.readout()}</b>"
        ui["image"].value = png(self.figure())

    @property
    def ui(self):
        """The ipywidgets front end (built on first use)."""
        if self._ui is None:
            w = require_ipywidgets()
            s = self._state
            ui = {"layer": w.Dropdown(options=self.layer_names(), value=s["layer"],
                                      description="layer"),
                  "neuron": w.IntSlider(value=s["neuron"], min=0, max=self.units() - 1,
                                        continuous_update=False, description="neuron"),
                  "seed": w.IntSlider(value=s["seed"], min=0, max=self.x.shape[0] - 1,
                                      continuous_update=False, description="seed"),
                  "readout": w.HTML(), "image": w.Image(format="png")}
            for name in ("layer", "neuron", "seed"):
                ui[name].observe(self._on_control(name), names="value")
            ui["readout"].add_class("rv-inversion")
            ui["root"] = w.VBox([w.HBox([ui["layer"], ui["neuron"], ui["seed"]]),
                                 ui["readout"], ui["image"]])
            self._ui = ui
            self._refresh_ui()
        return self._ui["root"]

    def __repr__(self) -> str:
        s = self._state
        return (f"InversionExplorer(models={self.model_names}, layer={s['layer']!r}, "
                f"neuron={s['neuron']}, seed={s['seed']})")
