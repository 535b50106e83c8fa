"""A training callback recording R-DIV and accuracies every epoch (paper 001, Fig. 2b)."""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from robustviz._utils import model_device
from robustviz._validate import check_choice, check_int
from robustviz.diagnostics._divergence import divergence
from robustviz.diagnostics._features import as_images_labels, attacked_features

__all__ = ["RDivCallback"]


class RDivCallback:
    """Record R-DIV, ``d_a+``/``d_a-`` and clean/robust accuracy on a fixed subset.

    Called by :meth:`robustviz.train.Trainer.fit` after every epoch as
    ``cb(model=, epoch=, run_dir=)``: it attacks the same ``n`` examples each time,
    extracts the ``layer`` features of the clean and adversarial images, computes the
    divergences, appends a record of kind ``"rdiv"`` to the run's ``metrics.jsonl``
    and returns the metrics (which the trainer adds to the epoch's record).

    Parameters
    ----------
    data : Dataset or (Tensor, Tensor)
        Images in [0, 1] and labels (typically the test split).
    attack : Attack or callable
        ``x_adv = attack(model, x, y)``, e.g. ``PGD(eps=0.1, steps=10)``.
    n : int or None
        Size of the fixed subset, drawn once with ``seed`` (None: all of ``data``).
    layer : str
        Feature tap (default ``"penultimate"``).
    distance, mode, batch_size
        See :func:`robustviz.diagnostics.divergence` (``batch_size`` is the minibatch
        protocol's; default ``mode="exact"``).
    n_boot : int
        0: no R-DIV interval in the record; otherwise the interval of :func:`divergence`
        (exact mode: delete-a-group jackknife; minibatch mode: ``n_boot`` bootstrap resamples
        of the batches).
    every : int
        Run every ``every`` epochs (and return None otherwise).
    attack_batch_size : int
        Batch size of the attack and the feature extraction.
    seed : int
        Seeds the subset and the attack's random start (same numbers every epoch).
    progress : bool
    keep_features : bool
        Also keep the subset's clean and adversarial features and logits of every recorded
        epoch: in memory (``features_``, ``{epoch: dict}``) and, with a run directory, as
        ``features/epoch_NNN.safetensors`` (no pickle), for
        :class:`robustviz.widgets.TrainingReplay`. Keep ``n`` small (a few hundred).

    Returns (per call)
    ------------------
    dict or None
        ``{"rdiv", "rdiv_clean", "d_pos", "d_neg", "rdiv_clean_acc", "rdiv_robust_acc"}``
        (plus ``"rdiv_ci_low"``/``"rdiv_ci_high"`` with ``n_boot``). The record appended
        to ``metrics.jsonl`` also has ``kind="rdiv"``, ``epoch``, ``n``, ``distance``,
        ``mode`` (with ``batch_size`` in minibatch mode) and ``layer``. ``rdiv_robust_acc`` counts an example as robust when it is
        correct on both the clean and the adversarial input.

    Examples
    --------
    >>> cb = RDivCallback(test, PGD(eps=0.1, steps=10), n=1000)        # doctest: +SKIP
    >>> Trainer(...).fit(model, train, run_dir="runs/at", callbacks=[cb])  # doctest: +SKIP
    >>> plot_rdiv_training(read_metrics("runs/at", kind="rdiv"))         # doctest: +SKIP

    References
    ----------
    Bui et al., "Understanding and Achieving Efficient Robustness with Adversarial
    Supervised Contrastive Learning", arXiv:2101.10027, 2021, Fig. 2b: R-DIV and robust
    accuracy over training, NAT vs AT (the paper averages over mini-batches of 128:
    ``mode="minibatch"``).
    """

    def __init__(self, data, attack, *, n: int | None = 1000, layer: str = "penultimate",
                 distance: str = "cosine", mode: str = "exact", batch_size: int = 128,
                 n_boot: int = 0, every: int = 1, attack_batch_size: int = 256, seed: int = 0,
                 progress: bool = False, keep_features: bool = False):
        x, y = as_images_labels(data, "data")
        if attack is None or not callable(attack):
            raise TypeError(f"attack must be an Attack or a callable atk(model, x, y), got "
                            f"{type(attack).__name__}")
        check_choice(distance, "distance", ("cosine", "l2"))
        check_choice(mode, "mode", ("exact", "minibatch"))
        self.batch_size = check_int(batch_size, "batch_size", minimum=2)
        self.n_boot = check_int(n_boot, "n_boot", minimum=0)
        self.every = check_int(every, "every", minimum=1)
        self.attack_batch_size = check_int(attack_batch_size, "attack_batch_size", minimum=1)
        self.seed = check_int(seed, "seed", minimum=0)
        if not isinstance(layer, str):
            raise TypeError(f"layer must be a tap name (str), got {type(layer).__name__}")
        if n is not None:
            n = check_int(n, "n", minimum=2)
        total = x.shape[0]
        if n is not None and n < total:
            g = torch.Generator().manual_seed(self.seed)
            idx = torch.randperm(total, generator=g)[:n].sort().values
            x, y = x[idx.to(x.device)], y[idx.to(y.device)]
        self.x, self.y = x.detach(), y.detach()
        self.attack, self.layer = attack, layer
        self.distance, self.mode = distance, mode
        self.progress = bool(progress)
        self.keep_features = bool(keep_features)
        self.features_: dict[int, dict[str, torch.Tensor]] = {}
        self._last_features = None

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    def compute(self, model: nn.Module) -> dict[str, Any]:
        """The metrics for ``model`` now (no record is written)."""
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        dev = model_device(model)
        devices = [dev] if dev.type == "cuda" else []
        # the callback must not move the training's global random streams
        with torch.random.fork_rng(devices=devices):
            feats = attacked_features(model, (self.x, self.y), self.attack, layer=self.layer,
                                      batch_size=self.attack_batch_size, seed=self.seed,
                                      progress=self.progress)
        if self.keep_features:
            self._last_features = {"z_nat": feats.z_nat, "z_adv": feats.z_adv, "y": feats.y,
                                   "logits_nat": feats.logits_nat,
                                   "logits_adv": feats.logits_adv}
        kw = dict(distance=self.distance, mode=self.mode, batch_size=self.batch_size,
                  seed=self.seed)
        adv = divergence(feats.z_nat, feats.z_adv, feats.y, n_boot=self.n_boot, **kw)
        clean = divergence(feats.z_nat, None, feats.y, n_boot=0, **kw)
        out = {"rdiv": adv.rdiv, "rdiv_clean": clean.rdiv, "d_pos": adv.d_pos,
               "d_neg": adv.d_neg, "rdiv_clean_acc": feats.clean_acc,
               "rdiv_robust_acc": feats.robust_acc}
        if adv.ci is not None:
            out["rdiv_ci_low"], out["rdiv_ci_high"] = adv.ci
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}

    def __call__(self, *, model: nn.Module, epoch: int, run_dir=None, **_: Any) -> dict | None:
        epoch = check_int(epoch, "epoch", minimum=0)
        if epoch % self.every:
            return None
        metrics = self.compute(model)
        if self.keep_features and self._last_features is not None:
            self.features_[epoch] = self._last_features
            self._last_features = None
            if run_dir is not None:
                from pathlib import Path

                from robustviz.runs import save_state

                save_state(Path(run_dir) / "features" / f"epoch_{epoch:03d}.safetensors",
                           {"epoch": epoch, "layer": self.layer, **self.features_[epoch]})
        if run_dir is not None:
            from robustviz.runs import append_metrics

            extra = {"batch_size": self.batch_size} if self.mode == "minibatch" else {}
            append_metrics(run_dir, {"kind": "rdiv", "epoch": epoch, **metrics, "n": self.n,
                                     "distance": self.distance, "mode": self.mode, **extra,
                                     "layer": self.layer})
        return metrics

    def __repr__(self) -> str:
        return (f"RDivCallback(n={self.n}, attack={self.attack!r}, layer={self.layer!r}, "
                f"distance={self.distance!r}, mode={self.mode!r}, every={self.every})")
