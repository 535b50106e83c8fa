"""The attack playground: one image, an attack, its perturbation and the top-5 predictions."""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from robustviz._validate import check_choice, check_int, check_nonnegative, check_positive
from robustviz.widgets._common import (StateControls, ATTACKS, Timer, class_names_of, image_array, make_attack,
                                       png, require_ipywidgets, resolve_bf16, resolve_model,
                                       resolve_models)

__all__ = ["AttackPlayground", "AttackView"]


@dataclasses.dataclass(frozen=True, repr=False)
class AttackView:
    """One attacked image.

    Attributes
    ----------
    x, x_adv, delta : Tensor of shape (C, H, W)
        The image, its adversarial version and the perturbation ``x_adv - x``.
    linf, l2 : float
        Norms of the perturbation.
    top5_clean, top5_adv : list of (str, float)
        The five most probable classes and their probabilities.
    label : str
        The true class.
    """

    x: torch.Tensor
    x_adv: torch.Tensor
    delta: torch.Tensor
    linf: float
    l2: float
    top5_clean: list
    top5_adv: list
    label: str

    @property
    def fooled(self) -> bool:
        return self.top5_adv[0][0] != self.label

    def __repr__(self) -> str:
        return (f"AttackView(label={self.label!r}, clean={self.top5_clean[0][0]!r} "
                f"{self.top5_clean[0][1]:.2f}, adversarial={self.top5_adv[0][0]!r} "
                f"{self.top5_adv[0][1]:.2f}, linf={self.linf:.3f})")


class AttackPlayground(StateControls):
    """Attack one image and look at the perturbation, the adversarial image and the top-5.

    The perturbation of an untargeted Linf attack (FGSM: Goodfellow et al., "Explaining and
    Harnessing Adversarial Examples", ICLR 2015; PGD: Madry et al., "Towards Deep Learning
    Models Resistant to Adversarial Attacks", ICLR 2018; MIM: Dong et al., "Boosting
    Adversarial Attacks with Momentum", CVPR 2018) stays in ``||x' - x||_inf <= eps``; the
    bars show how the model's top-5 classes change.

    A plain object: set ``model``, ``index``, ``attack``, ``eps`` or ``steps`` (or call
    :meth:`set`) and read :attr:`view` and :attr:`latency_s`; ``ui`` (or displaying the
    object) gives the ipywidgets front end. Results are cached per setting.

    Parameters
    ----------
    models : nn.Module, str, list or dict
        One model or several by name: modules, run directories or zoo names.
    data : Dataset or (Tensor, Tensor)
        Images in [0, 1] and labels.
    dataset : str
        Data set of zoo names.
    index, attack, eps, steps : initial controls.
    eps_max : float
        Largest eps on the slider (default ``3 * eps``).
    class_names : list of str, optional
    seed : int
        Seed of the attack's random start.
    bf16 : bool or "auto"
        bf16 autocast in the attack; ``"auto"`` (default) only where it is native.

    Shape
    -----
    data.x: (N, C, H, W); view.x, view.x_adv, view.delta: (C, H, W).
    """

    def __init__(self, models, data, *, dataset: str = "fashion-mnist", index: int = 0,
                 attack: str = "PGD", eps: float = 0.1, steps: int = 10,
                 eps_max: float | None = None, class_names=None, seed: int = 0,
                 bf16: bool | str = "auto"):
        from robustviz.diagnostics._features import as_images_labels

        self._sources = resolve_models(models, dataset=dataset)
        self.dataset = dataset
        x, y = as_images_labels(data, "data")
        self.x, self.y = x.detach().cpu(), y.detach().cpu().long()
        self.seed = check_int(seed, "seed", minimum=0)
        check_nonnegative(eps, "eps")
        self.eps_max = float(eps_max) if eps_max is not None else 3 * float(eps)
        check_positive(self.eps_max, "eps_max")
        if bf16 != "auto" and not isinstance(bf16, bool):
            raise ValueError(f"bf16 must be True, False or 'auto', got {bf16!r}")
        self.bf16 = bf16
        self._loaded: dict[str, Any] = {}
        self._views: dict[tuple, AttackView] = {}
        first = next(iter(self._sources))
        self._state = {"model": first, "index": int(index), "attack": attack,
                       "eps": float(eps), "steps": int(steps)}
        self.class_names = class_names_of(data, class_names,
                                          int(getattr(self._model(first), "num_classes",
                                                      int(self.y.max()) + 1)))
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

    def set(self, **changes) -> AttackView:
        """Change controls (``model``, ``index``, ``attack``, ``eps``, ``steps``) and
        recompute; returns the new :attr:`view`."""
        unknown = set(changes) - set(self._state)
        if unknown:
            raise TypeError(f"unknown control(s) {sorted(unknown)}; "
                            f"controls are {sorted(self._state)}")
        state = {**self._state, **changes}
        check_choice(state["model"], "model", tuple(self._sources))
        state["index"] = check_int(state["index"], "index", minimum=0)
        if state["index"] >= len(self.y):
            raise ValueError(f"index must be below the {len(self.y)} images, got {state['index']}")
        check_choice(state["attack"], "attack", ATTACKS)
        check_nonnegative(state["eps"], "eps")
        state["eps"] = round(float(state["eps"]), 6)
        state["steps"] = check_int(state["steps"], "steps", minimum=1)
        self._state = state
        self.timer.run(self._update)
        return self.view

    def _key(self) -> tuple:
        s = self._state
        return (s["model"], s["index"], s["attack"], s["eps"], s["steps"])

    @property
    def view(self) -> AttackView:
        return self._views[self._key()]

    def _top5(self, logits: torch.Tensor) -> list:
        p = logits.float().softmax(-1)[0]
        k = min(5, p.shape[0])
        vals, idx = p.topk(k)
        return [(self.class_names[int(i)], float(v)) for v, i in zip(vals, idx)]

    def _compute(self) -> None:
        key = self._key()
        if key in self._views:
            return
        from robustviz._utils import model_device, model_mode

        name, i, attack, eps, steps = key
        model = self._model(name)
        dev = model_device(model)
        x, y = self.x[i:i + 1].to(dev), self.y[i:i + 1].to(dev)
        atk = make_attack(attack, eps, steps, bf16=resolve_bf16(self.bf16, model))
        if atk is None:
            x_adv = x
        else:
            gen = torch.Generator(device=dev).manual_seed(self.seed)
            x_adv = atk(model, x, y, generator=gen).detach()
        with model_mode(model, "eval"), torch.no_grad():
            logits = model(torch.cat([x, x_adv]))
        delta = (x_adv - x)[0].cpu()
        self._views[key] = AttackView(
            x=x[0].cpu(), x_adv=x_adv[0].cpu(), delta=delta, linf=float(delta.abs().max()),
            l2=float(delta.norm()), top5_clean=self._top5(logits[:1].cpu()),
            top5_adv=self._top5(logits[1:].cpu()), label=self.class_names[int(self.y[i])])

    def figure(self):
        """A matplotlib Figure of the current view: image, perturbation, adversarial image
        and the top-5 bars of both predictions (never through pyplot)."""
        from matplotlib.figure import Figure

        from robustviz.figures import palette

        v, s = self.view, self._state
        fig = Figure(figsize=(9.6, 2.6), dpi=80)
        axes = fig.subplots(1, 5, gridspec_kw={"width_ratios": [1, 1, 1, 1.3, 1.3]})
        cmap = "gray" if v.x.shape[0] == 1 else None
        axes[0].imshow(image_array(v.x), cmap=cmap, vmin=0, vmax=1)
        axes[0].set_title(f"clean: {v.label}", fontsize=9)
        d = v.delta.float()
        scale = max(float(s["eps"]), 1e-12)
        shown = d[0].numpy() if d.shape[0] == 1 else (d.permute(1, 2, 0).numpy() / (2 * scale) + 0.5)
        if d.shape[0] == 1:
            axes[1].imshow(shown, cmap="RdBu_r", vmin=-scale, vmax=scale)
        else:
            axes[1].imshow(np.clip(shown, 0, 1))
        axes[1].set_title(f"perturbation\nLinf {v.linf:.3f}, L2 {v.l2:.2f}", fontsize=9)
        axes[2].imshow(image_array(v.x_adv), cmap=cmap, vmin=0, vmax=1)
        axes[2].set_title("adversarial", fontsize=9, color="#D55E00" if v.fooled else "black")
        blue, orange = palette(2)
        for ax, top, title, col in ((axes[3], v.top5_clean, "clean top-5", blue),
                                    (axes[4], v.top5_adv, "adversarial top-5", orange)):
            names = [n for n, _ in top][::-1]
            ax.barh(range(len(top)), [p for _, p in top][::-1], color=col)
            ax.set_yticks(range(len(top)), names, fontsize=8)
            ax.set_xlim(0, 1)
            ax.set_title(title, fontsize=9)
            ax.tick_params(axis="x", labelsize=7)
        for ax in axes[:3]:
            ax.set_axis_off()
        fig.tight_layout()
        return fig

    def readout(self) -> str:
        v = self.view
        return (f"true {v.label} | clean: {v.top5_clean[0][0]} {v.top5_clean[0][1]:.0%} | "
                f"adversarial: {v.top5_adv[0][0]} {v.top5_adv[0][1]:.0%}"
                f"{' (fooled)' if v.fooled else ''}")

    def _refresh_ui(self) -> None:
        ui = self._ui
        if ui is None:
            return
        self._syncing = True
        try:
            for name in ("model", "index", "attack", "eps", "steps"):
                if ui[name].value != self._state[name]:
                    ui[name].value = self._state[name]
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
            ui = {
                "model": w.Dropdown(options=self.model_names, value=s["model"], description="model"),
                "index": w.BoundedIntText(value=s["index"], min=0, max=len(self.y) - 1,
                                          description="image"),
                "attack": w.Dropdown(options=list(ATTACKS), value=s["attack"], description="attack"),
                "eps": w.FloatSlider(value=s["eps"], min=0.0, max=self.eps_max,
                                     step=round(self.eps_max / 30, 6), readout_format=".3f",
                                     continuous_update=False, description="eps"),
                "steps": w.IntSlider(value=s["steps"], min=1, max=50, continuous_update=False,
                                     description="steps"),
                "readout": w.HTML(),
                "image": w.Image(format="png", layout=w.Layout(width="770px", height="auto",
                                                               object_fit="contain")),
            }
            for name in ("model", "index", "attack", "eps", "steps"):
                ui[name].observe(self._on_control(name), names="value")
            ui["eps"].add_class("rv-eps")
            ui["readout"].add_class("rv-readout")
            ui["root"] = w.VBox([w.HBox([w.VBox([ui["model"], ui["index"], ui["attack"]]),
                                         w.VBox([ui["eps"], ui["steps"]])]),
                                 ui["readout"], ui["image"]])
            self._ui = ui
            self._refresh_ui()
        return self._ui["root"]

    def __repr__(self) -> str:
        s = self._state
        return (f"AttackPlayground(model={s['model']!r}, index={s['index']}, "
                f"attack={s['attack']!r}, eps={s['eps']}, steps={s['steps']})")
