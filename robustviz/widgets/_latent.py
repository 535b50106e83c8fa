"""The latent explorer: a model's latent map, adversarial points placed into it, R-DIV."""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from robustviz._validate import check_choice, check_int, check_nonnegative, check_positive
from robustviz.widgets._common import (StateControls, ATTACKS, Timer, class_colors, class_names_of, image_array,
                                       make_attack, png, require_ipywidgets, resolve_bf16,
                                       resolve_model, resolve_models)

__all__ = ["LatentExplorer", "LatentView"]


@dataclasses.dataclass(frozen=True, repr=False)
class LatentView:
    """What the explorer shows for one setting of its controls.

    Attributes
    ----------
    clean_coords : ndarray of shape (n_map, 2)
        The fitted map of the clean points (the same for every eps).
    adv_coords : ndarray of shape (n_adv, 2)
        The adversarial versions of the first ``n_adv`` map points, placed into the map.
    rdiv, d_pos, d_neg : float
        R-DIV and its two parts on the ``n_adv`` clean/adversarial pairs.
    clean_acc, robust_acc : float
        Accuracy of the ``n_adv`` points, clean and under the attack.
    pred_nat, pred_adv : ndarray of shape (n_adv,)
        Predicted classes, clean and adversarial.
    conf_nat, conf_adv : ndarray of shape (n_adv,)
        Probability of the predicted class.
    """

    clean_coords: np.ndarray
    adv_coords: np.ndarray
    rdiv: float
    d_pos: float
    d_neg: float
    clean_acc: float
    robust_acc: float
    pred_nat: np.ndarray
    pred_adv: np.ndarray
    conf_nat: np.ndarray
    conf_adv: np.ndarray

    def __repr__(self) -> str:
        return (f"LatentView(rdiv={self.rdiv:.3f}, clean_acc={self.clean_acc:.3f}, "
                f"robust_acc={self.robust_acc:.3f}, n_adv={len(self.adv_coords)})")


class LatentExplorer(StateControls):
    """Pick a model, a layer, an attack and eps; see the latent map move and R-DIV change.

    The clean features of ``n_map`` test points are embedded once per (model, layer) with
    :func:`robustviz.diagnostics.embed` (t-SNE, openTSNE); the adversarial versions of the
    first ``n_adv`` of them are *placed into that map* with
    :meth:`~robustviz.diagnostics.EmbeddingResult.transform`, so maps at different eps are
    comparable. R-DIV (Bui et al., "Understanding and Achieving Efficient Robustness with
    Adversarial Supervised Contrastive Learning", 2021) is computed on the ``n_adv``
    clean/adversarial pairs with :func:`robustviz.diagnostics.divergence`. Clicking a point
    of the map (plotly ``FigureWidget``) shows its image, its adversarial version and both
    predictions.

    The explorer is a plain object: set ``model``, ``layer``, ``attack``, ``eps``,
    ``steps`` or ``selected`` (or call :meth:`set`) and read :attr:`view`,
    :attr:`selection` and :attr:`latency_s`; the ipywidgets controls (``ui``, or display
    the object) follow the state both ways. Adversarial images, features and maps are
    cached per setting, so revisiting one is instant.

    Parameters
    ----------
    models : nn.Module, str, list or dict
        One model or several by name: modules, run directories or zoo names
        (``rv.zoo``; loaded on first use).
    data : Dataset or (Tensor, Tensor)
        Test images in [0, 1] and labels.
    dataset : str
        Data set of zoo names.
    layer, attack, eps, steps : initial controls (attacks: ``"PGD"``, ``"FGSM"``,
        ``"MIM"``, ``"PGD-CW"``; Linf radius in pixel units).
    eps_max : float
        Largest eps on the slider (default ``3 * eps``).
    n_map, n_adv : int
        Clean points in the map; how many of them are attacked.
    class_names : list of str, optional
    seed : int
        Subset, attack random start and t-SNE seed.
    bf16 : bool or "auto"
        bf16 autocast in the attack; ``"auto"`` (default) only where it is native (CUDA,
        AVX512-BF16/AMX CPUs), where it makes an update about a third faster.
    tsne_iter : int
        t-SNE optimisation iterations of the map.

    Shape
    -----
    data.x: (N, C, H, W); view.clean_coords: (n_map, 2); view.adv_coords: (n_adv, 2).
    """

    def __init__(self, models, data, *, dataset: str = "fashion-mnist",
                 layer: str = "penultimate", attack: str = "PGD", eps: float = 0.1,
                 steps: int = 10, eps_max: float | None = None, n_map: int = 500,
                 n_adv: int = 100, class_names=None, seed: int = 0, tsne_iter: int = 500,
                 bf16: bool | str = "auto"):
        from robustviz.diagnostics._features import as_images_labels

        self._sources = resolve_models(models, dataset=dataset)
        self.dataset = dataset
        x, y = as_images_labels(data, "data")
        n_map = check_int(n_map, "n_map", minimum=10)
        n_adv = check_int(n_adv, "n_adv", minimum=10)
        self.seed = check_int(seed, "seed", minimum=0)
        self.tsne_iter = check_int(tsne_iter, "tsne_iter", minimum=50)
        n_map = min(n_map, x.shape[0])
        g = torch.Generator().manual_seed(self.seed)
        idx = torch.randperm(x.shape[0], generator=g)[:n_map]
        self.x, self.y = x[idx.to(x.device)].detach().cpu(), y[idx.to(y.device)].detach().cpu().long()
        self.n_adv = min(n_adv, n_map)
        check_positive(eps, "eps") if eps_max is None else check_nonnegative(eps, "eps")
        self.eps_max = float(eps_max) if eps_max is not None else 3 * float(eps)
        check_positive(self.eps_max, "eps_max")
        if bf16 != "auto" and not isinstance(bf16, bool):
            raise ValueError(f"bf16 must be True, False or 'auto', got {bf16!r}")
        self.bf16 = bf16
        self._loaded: dict[str, Any] = {}
        self._maps: dict[tuple, tuple] = {}
        self._x_adv: dict[tuple, torch.Tensor | None] = {}
        self._views: dict[tuple, LatentView] = {}
        first = next(iter(self._sources))
        self._state = {"model": first, "layer": layer, "attack": attack, "eps": float(eps),
                       "steps": int(steps), "selected": None}
        self.class_names = class_names_of(data, class_names,
                                          int(getattr(self._model(first), "num_classes",
                                                      int(self.y.max()) + 1)))
        self.timer = Timer()
        self._ui: dict[str, Any] | None = None
        self._syncing = False
        self.set()  # validate and compute the first view

    # ------------------------------------------------------------------ state
    @property
    def model_names(self) -> list[str]:
        return list(self._sources)

    def layer_names(self, model: str | None = None) -> list[str]:
        """Feature taps of ``model`` (default the current one)."""
        return list(self._model(model or self._state["model"]).layer_names)

    def set(self, **changes) -> LatentView:
        """Change one or more controls (``model``, ``layer``, ``attack``, ``eps``, ``steps``,
        ``selected``) and recompute; returns the new :attr:`view`."""
        unknown = set(changes) - set(self._state)
        if unknown:
            raise TypeError(f"unknown control(s) {sorted(unknown)}; "
                            f"controls are {sorted(self._state)}")
        state = {**self._state, **changes}
        check_choice(state["model"], "model", tuple(self._sources))
        if "model" in changes and "layer" not in changes and \
                state["layer"] not in self.layer_names(state["model"]):
            state["layer"] = "penultimate"
        check_choice(state["layer"], "layer", tuple(self.layer_names(state["model"])))
        check_choice(state["attack"], "attack", ATTACKS)
        check_nonnegative(state["eps"], "eps")
        state["eps"] = round(float(state["eps"]), 6)
        state["steps"] = check_int(state["steps"], "steps", minimum=1)
        if state["selected"] is not None:
            state["selected"] = check_int(state["selected"], "selected", minimum=0)
            if state["selected"] >= self.n_adv:
                raise ValueError(f"selected must index one of the {self.n_adv} attacked points, "
                                 f"got {state['selected']}")
        self._state = state
        self.timer.run(self._update)
        return self.view

    @property
    def view(self) -> LatentView:
        return self._views[self._key()]

    @property
    def selection(self) -> dict | None:
        """The selected point: its index, true class, clean and adversarial images and both
        predictions with their probabilities (None when nothing is selected)."""
        i = self._state["selected"]
        if i is None:
            return None
        v, names = self.view, self.class_names
        x_adv = self._x_adv[self._attack_key()]
        return {"index": i, "label": names[int(self.y[i])],
                "pred_nat": names[int(v.pred_nat[i])], "conf_nat": float(v.conf_nat[i]),
                "pred_adv": names[int(v.pred_adv[i])], "conf_adv": float(v.conf_adv[i]),
                "x": self.x[i], "x_adv": self.x[i] if x_adv is None else x_adv[i]}

    # ------------------------------------------------------------------ computation
    def _model(self, name: str):
        if name not in self._loaded:
            self._loaded[name] = resolve_model(self._sources[name], dataset=self.dataset)
        return self._loaded[name]

    def _attack_key(self) -> tuple:
        s = self._state
        return (s["model"], s["attack"], s["eps"], s["steps"])

    def _key(self) -> tuple:
        return self._attack_key() + (self._state["layer"],)

    def _map(self, name: str, layer: str):
        key = (name, layer)
        if key not in self._maps:
            from robustviz.diagnostics import embed
            from robustviz.models import extract

            model = self._model(name)
            out = extract(model, self.x, [layer] if layer == "logits" else [layer, "logits"])
            z = out[layer].reshape(len(self.x), -1).float()
            probs = out["logits"].float().softmax(-1)
            emb = embed(z, None, self.y, probs=probs, seed=self.seed, n_iter=self.tsne_iter)
            self._maps[key] = (emb, z, probs)
        return self._maps[key]

    def _compute(self) -> None:
        key = self._key()
        if key in self._views:
            return
        from robustviz.diagnostics import attacked_features, divergence

        name, attack, eps, steps, layer = key
        emb, z_map, _ = self._map(name, layer)
        model = self._model(name)
        sub = (self.x[:self.n_adv], self.y[:self.n_adv])
        akey = self._attack_key()
        if akey not in self._x_adv:
            # first visit of this attack setting: attack once, keep the images for the
            # other layers and for the selection panel
            atk = make_attack(attack, eps, steps, bf16=resolve_bf16(self.bf16, model))
            f = attacked_features(model, sub, atk, layer=layer, seed=self.seed,
                                  keep_images=eps > 0)
            self._x_adv[akey] = f.x_adv
        else:
            f = attacked_features(model, sub, None, layer=layer, x_adv=self._x_adv[akey])
        placed = emb.transform(f.z_adv, f.y, probs=f.probs_adv)
        div = divergence(f.z_nat, f.z_adv, f.y)
        p_nat, p_adv = f.probs_nat, f.probs_adv
        self._views[key] = LatentView(
            clean_coords=emb.coords, adv_coords=placed.coords, rdiv=float(div.rdiv),
            d_pos=float(div.d_pos), d_neg=float(div.d_neg), clean_acc=f.clean_acc,
            robust_acc=f.robust_acc, pred_nat=p_nat.argmax(1).numpy(),
            pred_adv=p_adv.argmax(1).numpy(), conf_nat=p_nat.max(1).values.numpy(),
            conf_adv=p_adv.max(1).values.numpy())

    # ------------------------------------------------------------------ front end
    def readout(self) -> str:
        """The R-DIV read-out line shown above the map."""
        v, s = self.view, self._state
        what = "clean" if s["eps"] == 0 else \
            f"{s['attack']}{'' if s['attack'] == 'FGSM' else '-' + str(s['steps'])}"
        return (f"R-DIV {v.rdiv:.3f} (d+ {v.d_pos:.3f}, d- {v.d_neg:.3f}) | "
                f"clean {v.clean_acc:.0%}, robust {v.robust_acc:.0%} | {what} at eps "
                f"{s['eps']:.3f}, {self.n_adv} points")

    def selection_png(self) -> bytes:
        """PNG of the selected point: clean image and adversarial image with predictions."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(4.2, 2.3), dpi=80)
        sel = self.selection
        axes = fig.subplots(1, 2)
        for ax in axes:
            ax.set_axis_off()
        if sel is None:
            axes[0].text(0.5, 0.5, "click a point of the map", ha="center", va="center",
                         transform=axes[0].transAxes)
        else:
            cmap = "gray" if sel["x"].shape[0] == 1 else None
            axes[0].imshow(image_array(sel["x"]), cmap=cmap, vmin=0, vmax=1)
            axes[0].set_title(f"clean ({sel['label']})\n{sel['pred_nat']} {sel['conf_nat']:.0%}",
                              fontsize=9)
            axes[1].imshow(image_array(sel["x_adv"]), cmap=cmap, vmin=0, vmax=1)
            ok = sel["pred_adv"] == sel["label"]
            axes[1].set_title(f"adversarial\n{sel['pred_adv']} {sel['conf_adv']:.0%}", fontsize=9,
                              color="black" if ok else "#D55E00")
        fig.tight_layout()
        return png(fig)

    def static_figure(self):
        """The current state as a matplotlib ``Figure`` (built without pyplot): the map of
        the clean points (dots) and of their adversarial versions placed into it (crosses),
        both coloured by true class, the read-out as title. What a viewer without a live
        kernel sees (:func:`~robustviz.widgets._common.display_with_fallback`).

        Returns
        -------
        matplotlib.figure.Figure
            One axes: ``collections[0]`` holds the clean points (``view.clean_coords``),
            ``collections[1]`` the adversarial ones (``view.adv_coords``).
        """
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D

        v, cols = self.view, class_colors(len(self.class_names))
        y = self.y.numpy()
        fig = Figure(figsize=(7.6, 5.0), dpi=80)
        ax = fig.subplots()
        ax.scatter(v.clean_coords[:, 0], v.clean_coords[:, 1], s=12, alpha=0.45,
                   c=[cols[c] for c in y], linewidths=0)
        ax.scatter(v.adv_coords[:, 0], v.adv_coords[:, 1], s=30, marker="x", linewidths=1.2,
                   c=[cols[c] for c in y[:self.n_adv]])
        handles = [Line2D([], [], ls="", marker="o", color=cols[c], label=name)
                   for c, name in enumerate(self.class_names) if (y == c).any()]
        handles.append(Line2D([], [], ls="", marker="x", color="black", label="adversarial"))
        ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5),
                  frameon=False)
        ax.set_xticks([])
        ax.set_yticks([])
        s = self._state
        ax.set_title(f"{s['model']}, {s['layer']}: clean (dots), adversarial (crosses)\n"
                     f"{self.readout()}", fontsize=8)
        fig.tight_layout()
        return fig

    def _figure(self):
        """The plotly map as a FigureWidget, built with the current data in its initial
        state (changes made before a front end shows the widget would otherwise be lost)."""
        import plotly.graph_objects as go

        v, cols = self.view, class_colors(len(self.class_names))
        fig = go.Figure()
        for c, name in enumerate(self.class_names):
            m = self.y.numpy() == c
            fig.add_scatter(x=v.clean_coords[m, 0].tolist(), y=v.clean_coords[m, 1].tolist(),
                            mode="markers", name=name, customdata=np.flatnonzero(m).tolist(),
                            legendgroup=name,
                            marker={"color": cols[c], "size": 6, "opacity": 0.45},
                            hovertemplate=f"{name}<extra>clean</extra>")
        yl = self.y[:self.n_adv].numpy()
        fig.add_scatter(x=v.adv_coords[:, 0].tolist(), y=v.adv_coords[:, 1].tolist(),
                        mode="markers", name="adversarial",
                        customdata=list(range(self.n_adv)),
                        marker={"color": [cols[c] for c in yl], "size": 9, "symbol": "x",
                                "line": {"width": 1, "color": "black"}},
                        hovertemplate="adversarial (true %{text})<extra></extra>",
                        text=[self.class_names[c] for c in yl])
        sx, sy = self._selected_xy()
        fig.add_scatter(x=sx, y=sy, mode="lines+markers", name="selected", showlegend=False,
                        marker={"size": 14, "color": "rgba(0,0,0,0)",
                                "line": {"width": 2, "color": "black"}},
                        line={"color": "black", "dash": "dot"}, hoverinfo="skip")
        fig.update_layout(width=620, height=480, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                          title="t-SNE map: clean (dots), adversarial (crosses)",
                          xaxis={"visible": False}, yaxis={"visible": False},
                          template="plotly_white")
        widget = go.FigureWidget(fig)
        for trace in widget.data[:-1]:
            trace.on_click(self._on_click)
        return widget

    def _selected_xy(self):
        i, v = self._state["selected"], self.view
        if i is None:
            return [], []
        return ([float(v.clean_coords[i, 0]), float(v.adv_coords[i, 0])],
                [float(v.clean_coords[i, 1]), float(v.adv_coords[i, 1])])

    def _on_click(self, trace, points, _state=None):
        if not points.point_inds:
            return
        i = int(trace.customdata[points.point_inds[0]])
        if i < self.n_adv:
            self.set(selected=i)

    def _refresh_ui(self) -> None:
        ui = self._ui
        if ui is None:
            return
        s, v = self._state, self.view
        self._syncing = True
        try:
            for name in ("model", "attack", "eps", "steps"):
                if ui[name].value != s[name]:
                    ui[name].value = s[name]
            layers = self.layer_names()
            if list(ui["layer"].options) != layers:
                ui["layer"].options = layers
            ui["layer"].value = s["layer"]
        finally:
            self._syncing = False
        fig = ui.get("figure")
        if fig is not None:
            with fig.batch_update():
                for c, trace in enumerate(fig.data[:len(self.class_names)]):
                    m = self.y.numpy() == c
                    trace.x, trace.y = v.clean_coords[m, 0], v.clean_coords[m, 1]
                fig.data[-2].x, fig.data[-2].y = v.adv_coords[:, 0], v.adv_coords[:, 1]
                fig.data[-1].x, fig.data[-1].y = self._selected_xy()
        ui["readout"].value = f"<b>{self.readout()}</b>"
        ui["panel"].value = self.selection_png()

    @property
    def ui(self):
        """The ipywidgets front end (built on first use)."""
        if self._ui is None:
            w = require_ipywidgets()
            s = self._state
            ui = {
                "model": w.Dropdown(options=self.model_names, value=s["model"], description="model"),
                "layer": w.Dropdown(options=self.layer_names(), value=s["layer"], description="layer"),
                "attack": w.Dropdown(options=list(ATTACKS), value=s["attack"], description="attack"),
                "eps": w.FloatSlider(value=s["eps"], min=0.0, max=self.eps_max,
                                     step=round(self.eps_max / 30, 6), readout_format=".3f",
                                     continuous_update=False, description="eps"),
                "steps": w.IntSlider(value=s["steps"], min=1, max=50, continuous_update=False,
                                     description="steps"),
                "readout": w.HTML(),
                "panel": w.Image(format="png", layout=w.Layout(width="340px", height="auto",
                                                               object_fit="contain")),
            }
            for name in ("model", "layer", "attack", "eps", "steps"):
                ui[name].observe(self._on_control(name), names="value")
            ui["eps"].add_class("rv-eps")
            ui["readout"].add_class("rv-rdiv")
            controls = w.HBox([w.VBox([ui["model"], ui["layer"], ui["attack"]]),
                               w.VBox([ui["eps"], ui["steps"]])])
            self._ui = ui
            self._refresh_ui()  # controls, read-out and panel; the map starts current
            ui["figure"] = self._figure()
            ui["figure"].add_class("rv-map")
            ui["root"] = w.VBox([controls, ui["readout"], w.HBox([ui["figure"], ui["panel"]])])
        return self._ui["root"]

    def __repr__(self) -> str:
        s = self._state
        return (f"LatentExplorer(model={s['model']!r}, layer={s['layer']!r}, "
                f"attack={s['attack']!r}, eps={s['eps']}, steps={s['steps']}, "
                f"n_map={len(self.y)}, n_adv={self.n_adv})")
