"""The training replay: the latent space of a fixed test subset, epoch by epoch."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustviz._validate import check_int
from robustviz.widgets._common import (Timer, class_colors, display_with_fallback, png,
                                       require_ipywidgets)

__all__ = ["TrainingReplay", "ReplayFrame", "align"]


def align(coords: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Rotate/reflect, scale and shift ``coords`` onto ``reference`` (orthogonal Procrustes).

    t-SNE maps are defined up to rotation, reflection and scale; aligning each epoch's map
    to the previous one keeps the replay from spinning. Distances within one map are kept.

    Shape
    -----
    coords, reference: (M, 2) with the same M -> (M, 2)
    """
    from scipy.linalg import orthogonal_procrustes

    a = np.asarray(coords, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"coords and reference must have one shape (M, k), got {a.shape} "
                         f"and {b.shape}")
    a_c, b_c = a - a.mean(0), b - b.mean(0)
    rot, _ = orthogonal_procrustes(a_c, b_c)
    a_rot = a_c @ rot
    scale = float((a_rot * b_c).sum() / max((a_rot ** 2).sum(), 1e-12))
    return a_rot * scale + b.mean(0)


@dataclasses.dataclass(frozen=True, repr=False)
class ReplayFrame:
    """One epoch of the replay.

    Attributes
    ----------
    epoch : int
    coords : ndarray of shape (2n, 2)
        Map of the n clean points, then their n adversarial versions.
    labels : ndarray of shape (2n,)
    is_adv : ndarray of bool, shape (2n,)
    rdiv, clean_acc, robust_acc : float
        Of the subset at this epoch.
    """

    epoch: int
    coords: np.ndarray
    labels: np.ndarray
    is_adv: np.ndarray
    rdiv: float
    clean_acc: float
    robust_acc: float

    def __repr__(self) -> str:
        return (f"ReplayFrame(epoch={self.epoch}, rdiv={self.rdiv:.3f}, "
                f"clean_acc={self.clean_acc:.3f}, robust_acc={self.robust_acc:.3f})")


def _load_run_features(run_dir: Path) -> dict[int, dict[str, torch.Tensor]]:
    from robustviz.runs import load_state

    folder = run_dir / "features"
    files = sorted(folder.glob("epoch_*.safetensors")) if folder.is_dir() else []
    if not files:
        raise FileNotFoundError(
            f"{run_dir} holds no features/epoch_*.safetensors: train with "
            f"RDivCallback(..., keep_features=True) (a few hundred points)")
    out = {}
    for f in files:
        m = re.fullmatch(r"epoch_(\d+)\.safetensors", f.name)
        if m:
            out[int(m.group(1))] = load_state(f)
    return out


class TrainingReplay:
    """Replay how the latent space of a fixed test subset reorganises during training.

    :class:`robustviz.diagnostics.RDivCallback` with ``keep_features=True`` keeps, after
    every epoch, the clean and adversarial features of its fixed subset. Each epoch's
    clean + adversarial features are embedded together with t-SNE
    (:func:`robustviz.diagnostics.embed`; the network, hence the feature space, changes
    between epochs, so each epoch gets its own map) and aligned to the previous epoch's
    map by orthogonal Procrustes (:func:`align`), so the picture does not spin. Beside it:
    R-DIV (Bui et al., 2021) and clean/robust accuracy of the subset over the epochs, the
    current epoch marked. All frames are computed once (``prepare``); moving the slider
    only redraws.

    A plain object: set ``epoch`` (or call :meth:`set`) and read :attr:`frame`,
    :attr:`epochs`, :attr:`history` and :attr:`latency_s`; ``ui`` gives the front end.

    Parameters
    ----------
    source : RDivCallback or str or Path or dict
        A callback used with ``keep_features=True``, a run directory written with one, or
        ``{epoch: {"z_nat", "z_adv", "y", "logits_nat", "logits_adv"}}``.
    class_names : list of str, optional
    n_iter : int
        t-SNE iterations per epoch.
    seed : int
    progress : bool
        A progress bar while the frames are computed.
    """

    def __init__(self, source, *, class_names=None, n_iter: int = 300, seed: int = 0,
                 progress: bool = False):
        if hasattr(source, "features_"):
            feats = dict(source.features_)
            if not feats:
                raise ValueError("the callback kept no features: create it with "
                                 "keep_features=True and train at least one epoch")
        elif isinstance(source, (str, Path)):
            feats = _load_run_features(Path(source))
        elif isinstance(source, dict):
            feats = dict(source)
        else:
            raise TypeError(f"source must be an RDivCallback, a run directory or a dict, got "
                            f"{type(source).__name__}")
        if not feats:
            raise ValueError("no epochs to replay")
        self._features = {int(k): v for k, v in sorted(feats.items())}
        self.n_iter = check_int(n_iter, "n_iter", minimum=50)
        self.seed = check_int(seed, "seed", minimum=0)
        y = self._features[self.epochs[0]]["y"]
        n_classes = int(self._features[self.epochs[0]]["logits_nat"].shape[1])
        self.class_names = ([str(c) for c in class_names] if class_names is not None
                            else [str(i) for i in range(n_classes)])
        self.y = torch.as_tensor(y).long()
        self._frames: dict[int, ReplayFrame] = {}
        self.timer = Timer()
        self._ui: dict[str, Any] | None = None
        self._syncing = False
        self._epoch = self.epochs[-1]
        self.prepare(progress=progress)
        self.set(epoch=self.epochs[-1])

    @property
    def epochs(self) -> list[int]:
        return list(self._features)

    def prepare(self, *, progress: bool = False) -> None:
        """Compute every epoch's frame (t-SNE + alignment), in epoch order."""
        from tqdm.auto import tqdm

        from robustviz.diagnostics import divergence, embed

        previous = None
        for epoch in tqdm(self.epochs, desc="replay maps", disable=not progress):
            if epoch in self._frames:
                previous = self._frames[epoch].coords
                continue
            f = self._features[epoch]
            z_nat, z_adv = torch.as_tensor(f["z_nat"]).float(), torch.as_tensor(f["z_adv"]).float()
            ln, la = torch.as_tensor(f["logits_nat"]), torch.as_tensor(f["logits_adv"])
            emb = embed(z_nat, z_adv, self.y, seed=self.seed, n_iter=self.n_iter)
            coords = emb.coords if previous is None else align(emb.coords, previous)
            correct = ln.argmax(1) == self.y
            self._frames[epoch] = ReplayFrame(
                epoch=epoch, coords=coords, labels=emb.labels, is_adv=emb.is_adv,
                rdiv=float(divergence(z_nat, z_adv, self.y).rdiv),
                clean_acc=float(correct.float().mean()),
                robust_acc=float((correct & (la.argmax(1) == self.y)).float().mean()))
            previous = coords

    @property
    def history(self) -> dict[str, list[float]]:
        """R-DIV and the accuracies of every epoch (the curves beside the map)."""
        fr = [self._frames[e] for e in self.epochs]
        return {"epoch": self.epochs, "rdiv": [f.rdiv for f in fr],
                "clean_acc": [f.clean_acc for f in fr], "robust_acc": [f.robust_acc for f in fr]}

    @property
    def epoch(self) -> int:
        return self._epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        self.set(epoch=value)

    @property
    def frame(self) -> ReplayFrame:
        return self._frames[self._epoch]

    @property
    def latency_s(self) -> float | None:
        return self.timer.last_s

    def set(self, *, epoch: int) -> ReplayFrame:
        """Show ``epoch`` (one of :attr:`epochs`); returns its frame."""
        epoch = check_int(epoch, "epoch", minimum=0)
        if epoch not in self._frames:
            raise ValueError(f"epoch must be one of the recorded epochs {self.epochs}, got {epoch}")
        self._epoch = epoch
        self.timer.run(self._refresh_ui)
        return self.frame

    def readout(self) -> str:
        f = self.frame
        return (f"epoch {f.epoch} | R-DIV {f.rdiv:.3f} | clean {f.clean_acc:.0%}, "
                f"robust {f.robust_acc:.0%} ({len(self.y)} test points)")

    def curves_png(self) -> bytes:
        """PNG of R-DIV and the accuracies over the epochs, the current epoch marked."""
        from matplotlib.figure import Figure

        from robustviz.figures import palette

        h, cols = self.history, palette(3)
        fig = Figure(figsize=(3.6, 3.4), dpi=80)
        ax1, ax2 = fig.subplots(2, 1, sharex=True)
        ax1.plot(h["epoch"], h["rdiv"], "o-", color=cols[0])
        ax1.set_ylabel("R-DIV")
        ax2.plot(h["epoch"], h["clean_acc"], "o-", color=cols[1], label="clean")
        ax2.plot(h["epoch"], h["robust_acc"], "s-", color=cols[2], label="robust")
        ax2.set_ylim(0, 1)
        ax2.set_ylabel("accuracy")
        ax2.set_xlabel("epoch")
        ax2.legend(fontsize=7, loc="lower right")
        for ax in (ax1, ax2):
            ax.axvline(self._epoch, color="black", lw=1, ls=":")
        fig.tight_layout()
        return png(fig)

    def static_figure(self):
        """The current epoch as a matplotlib ``Figure`` (built without pyplot): its map of
        clean (dots) and adversarial (crosses) features coloured by class, and beside it
        R-DIV and the accuracies over the epochs with the current one marked. What a viewer
        without a live kernel sees (``display_with_fallback``).

        Returns
        -------
        matplotlib.figure.Figure
            Three axes: the map (``collections[0]`` the clean points, ``collections[1]``
            the adversarial ones, in the frame's order), R-DIV, and the accuracies.
        """
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D

        from robustviz.figures import palette

        f, h = self.frame, self.history
        cols, lc = class_colors(len(self.class_names)), palette(3)
        fig = Figure(figsize=(9.0, 4.2), dpi=80)
        grid = fig.add_gridspec(2, 2, width_ratios=(1.6, 1.0))
        ax = fig.add_subplot(grid[:, 0])
        for adv in (False, True):
            m = f.is_adv == adv
            ax.scatter(f.coords[m, 0], f.coords[m, 1], c=[cols[c] for c in f.labels[m]],
                       s=28 if adv else 12, marker="x" if adv else "o",
                       alpha=1.0 if adv else 0.5, linewidths=1.0 if adv else 0)
        present = set(int(c) for c in f.labels)
        handles = [Line2D([], [], ls="", marker="o", color=cols[c], label=name)
                   for c, name in enumerate(self.class_names) if c in present]
        handles.append(Line2D([], [], ls="", marker="x", color="black", label="adversarial"))
        ax.legend(handles=handles, fontsize=6, loc="best", frameon=False)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(self.readout(), fontsize=8)
        ax1 = fig.add_subplot(grid[0, 1])
        ax2 = fig.add_subplot(grid[1, 1], sharex=ax1)
        ax1.plot(h["epoch"], h["rdiv"], "o-", color=lc[0])
        ax1.set_ylabel("R-DIV")
        ax2.plot(h["epoch"], h["clean_acc"], "o-", color=lc[1], label="clean")
        ax2.plot(h["epoch"], h["robust_acc"], "s-", color=lc[2], label="robust")
        ax2.set_ylim(0, 1)
        ax2.set_ylabel("accuracy")
        ax2.set_xlabel("epoch")
        ax2.legend(fontsize=7, loc="lower right")
        for a in (ax1, ax2):
            a.axvline(self._epoch, color="black", lw=1, ls=":")
        fig.tight_layout()
        return fig

    def _figure(self):
        """The plotly map of the current epoch as a FigureWidget (data in its initial state)."""
        import plotly.graph_objects as go

        self._cols = class_colors(len(self.class_names))
        f = self.frame
        fig = go.Figure()
        for adv in (False, True):
            m = f.is_adv == adv
            fig.add_scatter(x=f.coords[m, 0].tolist(), y=f.coords[m, 1].tolist(), mode="markers",
                            name="adversarial" if adv else "clean",
                            text=[self.class_names[c] for c in f.labels[m]],
                            marker={"size": 8 if adv else 6, "symbol": "x" if adv else "circle",
                                    "opacity": 1.0 if adv else 0.5,
                                    "color": [self._cols[c] for c in f.labels[m]]})
        fig.update_layout(width=520, height=440, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                          title="clean (dots) and adversarial (crosses) features",
                          xaxis={"visible": False}, yaxis={"visible": False},
                          template="plotly_white")
        return go.FigureWidget(fig)

    def _refresh_ui(self) -> None:
        ui = self._ui
        if ui is None:
            return
        f = self.frame
        if ui["epoch"].value != f.epoch:
            self._syncing = True
            try:
                ui["epoch"].value = f.epoch
            finally:
                self._syncing = False
        fig = ui.get("figure")
        if fig is not None:
            with fig.batch_update():
                for trace, adv in zip(fig.data, (False, True)):
                    m = f.is_adv == adv
                    trace.x, trace.y = f.coords[m, 0], f.coords[m, 1]
                    trace.marker.color = [self._cols[c] for c in f.labels[m]]
                    trace.text = [self.class_names[c] for c in f.labels[m]]
        ui["readout"].value = f"<b>{self.readout()}</b>"
        ui["curves"].value = self.curves_png()

    @property
    def ui(self):
        if self._ui is None:
            w = require_ipywidgets()
            ui = {"epoch": w.SelectionSlider(options=self.epochs, value=self._epoch,
                                             description="epoch", continuous_update=False),
                  "readout": w.HTML(), "curves": w.Image(format="png", layout=w.Layout(
                      width="290px", height="auto", object_fit="contain"))}
            ui["epoch"].observe(lambda ch: None if self._syncing else self.set(epoch=ch["new"]),
                                names="value")
            ui["readout"].add_class("rv-replay")
            self._ui = ui
            self._refresh_ui()
            ui["figure"] = self._figure()
            ui["figure"].add_class("rv-map")
            ui["root"] = w.VBox([ui["epoch"], ui["readout"], w.HBox([ui["figure"], ui["curves"]])])
        return self._ui["root"]

    def _ipython_display_(self):
        display_with_fallback(self)

    def __repr__(self) -> str:
        return f"TrainingReplay(epochs={self.epochs}, n={len(self.y)}, epoch={self._epoch})"

