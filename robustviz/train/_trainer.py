"""The one training loop: any defense (a loss object) on any model, with resumable run
directories, validation under attack, callbacks and DDP.

The loop is here; its collaborators each have a module: the options, their checks and
their record in config.json (``_options``), validation (``_validation``), checkpoints and
resumption (``_checkpoint``), callbacks (``_callbacks``), the precision choice
(``_precision``), progress (``_progress``), the learning-rate schedule (``_schedule``)
and DDP (``_ddp``)."""
from __future__ import annotations

import inspect
import math
import time
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn

from robustviz import runs
from robustviz._utils import model_device
from robustviz._validate import check_model_dtype, check_nonempty
from robustviz.train import _ddp, _progress, _validation
from robustviz.train._callbacks import callback_metrics
from robustviz.train._checkpoint import (has_checkpoint, load_checkpoint, refuse_existing, restore,
                                         resumed_config, rng_state, save_checkpoint, start_run_dir)
from robustviz.train._options import (DEFAULT_LR, build_optimizer, check_fit_inputs, check_options,
                                      jsonable, run_config)
from robustviz.train._precision import use_bf16
from robustviz.train._schedule import Schedule

__all__ = ["Trainer", "NonFiniteLossError"]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the run directory keeps the last good epoch.

    Attributes
    ----------
    epoch, batch : int
        1-based epoch and 0-based batch index of the step.
    term : str
        The first non-finite term the defense logged (``"loss"`` when only the total is), or
        ``"gradient"`` when the loss was finite but its gradient was not.
    value : float
    """

    def __init__(self, epoch: int, batch: int, term: str, value: float, run_dir=None):
        self.epoch, self.batch, self.term, self.value = epoch, batch, term, value
        where = ""
        if run_dir is not None and has_checkpoint(run_dir):
            where = f"; the last good checkpoint in {run_dir} (epoch {epoch - 1}) is intact"
        what = "gradient norm" if term == "gradient" else f"term {term!r}"
        super().__init__(f"non-finite loss at epoch {epoch}, batch {batch}: {what} = {value}{where}")


class Trainer:
    """Train a model with a defense: one loop for every method (sklearn style).

    The constructor only stores options; :meth:`fit` does the work and returns ``self``
    with ``history_``, one dict per epoch (the ``kind="epoch"`` lines of ``metrics.jsonl``).

    Parameters
    ----------
    defense : callable or dict or None
        A loss object ``loss, logs = defense(model, x, y, *, attack_bn, bf16, generator)``
        (see :mod:`robustviz.defenses`), or a spec dict for :func:`robustviz.defenses.build`
        (``{"name": "trades", "beta": 6, "eps": 0.1}``). ``None``: natural training (NAT).
        When the defense has parameters of its own (a projection head), they are trained
        with the model.
    epochs : int
    optimizer : {"sgd", "adam", "adamw"}
        SGD uses ``momentum`` and ``nesterov``.
    lr : float or None
        Peak learning rate; ``None`` means 0.1 for SGD and 1e-3 for Adam/AdamW.
    momentum, weight_decay : float
    nesterov : bool
    schedule : {"piecewise", "cosine", "constant"}
        Set per optimisation step, see :class:`robustviz.train.Schedule`.
    milestones : sequence of float
        Piecewise decay points, in epochs or (all in (0, 1)) fractions of ``epochs``.
    gamma : float
        Piecewise decay factor.
    warmup_epochs : float
        Linear warm-up length in epochs.
    batch_size : int
        The GLOBAL batch size (split across ranks under DDP).
    seed : int
        Seeds the data order, the augmentation, the defense's generator (attack random
        starts) and torch's default generator inside ``fit`` (dropout); the caller's global
        random state is left as it was.
    bf16 : bool or "auto"
        bf16 autocast (CPU or CUDA) in the defense and the validation. ``"auto"`` (default)
        turns it on only where it is faster than fp32: on CUDA GPUs with bf16 and on CPUs with
        native bf16 units (AVX512-BF16 or AMX); on other CPUs PyTorch emulates bf16 and it is
        several times slower, so fp32 is used. ``bf16_`` holds the choice after :meth:`fit`.
    attack_bn : {"eval", "train"}
        BatchNorm mode during training-time attacks (eval: TRADES/MART; train: ASCL/AdvCL).
        In "train" the attack's forward passes normalise with batch statistics but leave
        the running statistics as they were (only the training step updates them).
    augment : None, tuple of str or callable
        Batch augmentation of :class:`robustviz.data.TensorLoader` (``("crop", "flip")``).
    drop_last : bool
    eps : float or None
        Radius of the default validation attack; ``None`` takes the defense's ``eps``
        (from its ``config()``), else 0.1 for one-channel and 8/255 for three-channel data.
    val_attack : "pgd20", attack object or None
        Robust validation attack. ``"pgd20"``: Linf PGD, 20 steps of ``2.5 * eps / 20`` (the
        project-wide PGD-k rule, step 2.5 eps / k, Madry et al. 2018) from a
        uniform random start. ``None``: clean validation only.
    val_size : int
        Size of the fixed (seeded) validation subset.
    val_batch_size : int
    progress : bool
        tqdm progress bars (``tqdm.auto``: they render in notebooks).
    device : str, torch.device or None
        Training device; default: the model's (under DDP with CUDA: ``cuda:LOCAL_RANK``).

    Attributes
    ----------
    history_ : list of dict
        Per epoch: ``epoch``, ``loss`` (mean total loss), ``train_<term>`` (mean of each
        value the defense logged), ``val_clean_acc``, ``val_robust_acc``, ``val_n``, ``lr``
        (at the last step), ``images`` (seen by all ranks), ``time_s``, and the metrics
        returned by callbacks.
    defense_ : callable
        The defense used (built from the spec when a dict was given).
    run_dir_ : Path or None

    Notes
    -----
    Several GPUs or nodes: launch the same script with ``torchrun --nproc_per_node N
    script.py``. ``fit`` sees ``WORLD_SIZE`` > 1 (or an initialised process group), joins the
    group (``nccl`` on CUDA, ``gloo`` on CPU), wraps the model in
    ``DistributedDataParallel``, gives every rank a contiguous shard of each global batch
    (``batch_size`` is global), averages the loss terms and validation counts over ranks,
    and writes the run directory and calls the callbacks on rank 0 only. Each rank draws its
    attack noise from its own generator, so results match one process within noise, not
    bit for bit. BatchNorm statistics are per rank (DDP broadcasts rank 0's buffers).

    Exact resume (CPU): the data order and augmentation of epoch ``e`` depend only on
    ``(seed, e)``; the optimizer, the step counter of the schedule, the defense's own
    parameters and the random states are in ``state.safetensors``.

    Examples
    --------
    >>> trainer = Trainer(defense={"name": "pgd_at", "eps": 0.1}, epochs=2, lr=0.01)
    >>> trainer.fit(model, train, val=test, run_dir="runs/pgd_at")   # doctest: +SKIP
    >>> trainer.history_[-1]["val_robust_acc"]                        # doctest: +SKIP
    """

    def __init__(self, *, defense=None, epochs: int = 10, optimizer: str = "sgd", lr: float | None = None,
                 momentum: float = 0.9, weight_decay: float = 5e-4, nesterov: bool = False,
                 schedule: str = "piecewise", milestones=(0.5, 0.75), gamma: float = 0.1,
                 warmup_epochs: float = 0.0, batch_size: int = 128, seed: int = 0, bf16="auto",
                 attack_bn: str = "eval", augment=None, drop_last: bool = False, eps: float | None = None,
                 val_attack="pgd20", val_size: int = 1000, val_batch_size: int = 500,
                 progress: bool = True, device=None):
        self.defense = defense
        self.epochs = epochs
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.nesterov = nesterov
        self.schedule = schedule
        self.milestones = milestones
        self.gamma = gamma
        self.warmup_epochs = warmup_epochs
        self.batch_size = batch_size
        self.seed = seed
        self.bf16 = bf16
        self.attack_bn = attack_bn
        self.augment = augment
        self.drop_last = drop_last
        self.eps = eps
        self.val_attack = val_attack
        self.val_size = val_size
        self.val_batch_size = val_batch_size
        self.progress = progress
        self.device = device

    # ------------------------------------------------------------------ sklearn protocol
    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """Names of the constructor's options."""
        return tuple(p for p in inspect.signature(cls.__init__).parameters if p != "self")

    def get_params(self) -> dict:
        """The options, as given to the constructor."""
        return {name: getattr(self, name) for name in self.option_names()}

    def set_params(self, **options) -> "Trainer":
        unknown = sorted(set(options) - set(self.option_names()))
        if unknown:
            raise ValueError(f"unknown Trainer option(s) {unknown}; valid: {list(self.option_names())}")
        for k, v in options.items():
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        defaults = inspect.signature(type(self).__init__).parameters
        shown = [f"{k}={v!r}" for k, v in self.get_params().items() if v != defaults[k].default]
        return f"Trainer({', '.join(shown)})"

    def check(self) -> "Trainer":
        """Validate the options (a ``ValueError``/``TypeError`` naming the bad one) without
        training; ``fit`` does the same first. Returns ``self``."""
        self._check_options()
        return self

    def _check_options(self) -> None:
        check_options(self)

    def options_config(self) -> dict:
        """The options as JSON (``defense`` excluded: it has its own section)."""
        out = {k: jsonable(v) for k, v in self.get_params().items() if k != "defense"}
        out["milestones"] = list(out["milestones"])
        return out

    # ------------------------------------------------------------------ pieces
    def _build_defense(self):
        if self.defense is None or isinstance(self.defense, dict):
            from robustviz import defenses
            return defenses.build(dict(self.defense) if self.defense else {"name": "nat"})
        return self.defense

    def use_bf16(self, device) -> bool:
        """Whether bf16 autocast runs on ``device``: the ``bf16`` option, with ``"auto"``
        resolved by :func:`robustviz._utils.bf16_is_fast` (native bf16 only)."""
        return use_bf16(self.bf16, device)

    def resolve_eps(self, model: nn.Module, defense=None, dataset: str | None = None) -> float:
        """Radius of the default validation attack: the ``eps`` option, else the defense's
        ``eps`` (from its ``config()``), else the data set's default
        (:data:`robustviz.runs.DEFAULT_EPS`; 0.1 for one-channel and 8/255 for
        three-channel data it does not list). Recorded in ``config.json`` as ``eval.eps``."""
        return _validation.resolve_eps(self.eps, model, defense, dataset)

    def _build_val_attack(self, defense, model: nn.Module, dataset: str | None = None):
        if self.val_attack != "pgd20":   # None or an attack object
            return self.val_attack
        return _validation.pgd20(model, self.resolve_eps(model, defense, dataset),
                                 bf16=self.use_bf16(model_device(model)))

    def _loader(self, train, device):
        if hasattr(train, "set_epoch"):  # a TensorLoader built by the caller
            return train
        from robustviz.data import TensorLoader
        augment = tuple(self.augment) if isinstance(self.augment, list) else self.augment
        return TensorLoader(train, batch_size=self.batch_size, shuffle=True, drop_last=self.drop_last,
                            augment=augment, seed=self.seed, device=device)

    def _val_subset(self, val):
        return _validation.val_subset(val, self.val_size, self.seed)

    def _build_optimizer(self, params) -> torch.optim.Optimizer:
        return build_optimizer(self, params)

    def evaluate(self, model: nn.Module, data, *, attack="default", defense=None,
                 _info: _ddp.DistInfo | None = None) -> dict:
        """Clean and robust accuracy of ``model`` on ``data`` (a Dataset), in eval mode.

        ``attack="default"`` uses the trainer's validation attack (``val_attack``); pass an
        attack object, or ``None`` for clean accuracy only. The attack's random start comes
        from a generator seeded with ``seed + 1``, so repeated calls give the same numbers.

        Returns
        -------
        dict
            ``{"clean_acc": float, "robust_acc": float or None, "n": int}``.
        """
        check_nonempty(data, "data")
        if not (hasattr(data, "x") and hasattr(data, "y")):
            raise TypeError(f"data must be a robustviz.data.Dataset (with .x and .y), got {type(data).__name__}")
        check_model_dtype(data.x, model, "data images")
        atk = self._build_val_attack(defense, model, getattr(data, "name", None)) if attack == "default" else attack
        return _validation.accuracy(model, data, atk, seed=self.seed + 1, batch_size=self.val_batch_size,
                                    bf16=self.use_bf16(model_device(model)), info=_info)

    # ------------------------------------------------------------------ fit
    def fit(self, model: nn.Module, train, *, val=None, run_dir=None, resume=None,
            callbacks: Iterable[Callable] = (), meta: dict | None = None,
            files: dict[str, str] | None = None) -> "Trainer":
        """Train ``model`` on ``train`` with the defense.

        Parameters
        ----------
        model : nn.Module
            Trained in place. Models built by :func:`robustviz.models.build` record their
            build arguments, so the run directory can rebuild them.
        train : robustviz.data.Dataset or TensorLoader
            Training data (pixels in [0, 1]). A Dataset is batched with the trainer's
            ``batch_size``, ``augment`` and ``seed``.
        val : robustviz.data.Dataset, optional
            Validation data; a fixed seeded subset of ``val_size`` images is scored after
            every epoch, clean and under ``val_attack``.
        run_dir : path, optional
            Run directory, written after every epoch (rank 0 only): ``config.json``,
            ``state.safetensors`` (the resume point), ``weights.safetensors``,
            ``metrics.jsonl``. A directory that already holds a checkpoint is refused
            unless it is the one resumed. The directory is locked
            (:class:`robustviz.runs.RunLock`) before anything is written, for the whole
            fit: a second process on it gets a :class:`robustviz.runs.RunLockedError`.
        resume : path, optional
            Run directory of a killed or finished run to continue: model, defense,
            optimizer, schedule and random states are restored, and the remaining epochs
            reproduce an uninterrupted run exactly (CPU). ``run_dir`` defaults to it. The
            run's whole config must match (only ``epochs``, ``progress`` and ``device`` may
            change), else a ``ValueError`` lists the differing keys; config.json keeps the
            run's record. Weights and metrics left behind by a process stopped between
            its checkpoint writes are rewritten from the checkpoint's state.
        callbacks : iterable of callables
            Called after each epoch's validation as ``cb(model=, epoch=, run_dir=)`` (rank 0
            only, model unwrapped from DDP, in train mode); a returned dict of metrics is
            added to the epoch's record.
        meta : dict, optional
            Extra entries for ``config.json`` (``"data"`` and ``"eval"`` entries are
            merged, others set), e.g. the data split and seed, or a paper table.
        files : dict of str to str, optional
            Text files written into ``run_dir`` with ``config.json``, once every check
            has passed (the train command's ``train_config.yaml``).

        Returns
        -------
        self

        Raises
        ------
        NonFiniteLossError
            When the loss or its gradient becomes NaN/inf (checked before the optimizer
            step, so the weights stay finite); nothing of that epoch is written.
        """
        self._check_options()
        callbacks, files = check_fit_inputs(model, train, val, callbacks, meta, files)
        if resume is not None:
            run_dir = run_dir if run_dir is not None else resume
            if not has_checkpoint(resume):
                load_checkpoint(resume)   # raises the clear FileNotFoundError
        elif run_dir is not None:
            refuse_existing(run_dir)
        run_dir = Path(run_dir) if run_dir is not None else None

        info, device = _ddp.setup(torch.device(self.device) if self.device is not None else None)
        lock = runs.RunLock(run_dir) if run_dir is not None and info.is_main else None
        finished = False
        try:
            if lock is not None:   # before anything is written; held until the run is on disk
                lock.acquire()
            state = None
            if resume is not None:
                state = load_checkpoint(resume)
            elif run_dir is not None:   # written meanwhile
                refuse_existing(run_dir)
            device = device or model_device(model)
            self.bf16_ = self.use_bf16(device)
            devices = [device] if device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                self._fit(model, train, val, run_dir, state, resume, callbacks, meta or {}, info, device, files)
            finished = True
        finally:
            try:
                lock.release() if lock is not None and lock.held else None
            finally:   # a barrier only after a normal run: after an error other ranks never reach it
                _ddp.teardown(info, synchronize=finished)
        return self

    def _fit(self, model, train, val, run_dir, state, resume, callbacks, meta, info, device, files):
        model.to(device)
        defense = self._build_defense()
        if not callable(defense):
            raise TypeError(f"defense must be callable, got {type(defense).__name__}")
        if callable(getattr(defense, "to", None)):
            defense.to(device)
        loader = self._loader(train, device)
        if callable(getattr(defense, "prepare", None)):  # trainable pieces (a projection head)
            x0 = loader.dataset.x[:2].to(device)
            defense.prepare(model, x0, generator=torch.Generator(device=device).manual_seed(self.seed))
        own = {id(p) for p in model.parameters()}
        extra = [p for p in defense.parameters() if id(p) not in own] if hasattr(defense, "parameters") else []
        optimizer = self._build_optimizer(list(model.parameters()) + extra)
        val = self._val_subset(val)
        val_attack = (self._build_val_attack(defense, model, getattr(train, "name", None))
                      if val is not None else None)
        steps_per_epoch = len(loader)
        if steps_per_epoch == 0:
            raise ValueError(f"train gives no batch (n={len(train)}, batch_size={self.batch_size}, "
                             f"drop_last={self.drop_last})")
        schedule = Schedule(self.schedule, self.lr if self.lr is not None else DEFAULT_LR[self.optimizer],
                            self.epochs, steps_per_epoch, tuple(self.milestones), self.gamma,
                            float(self.warmup_epochs))
        loader_seed = int(getattr(loader, "seed", self.seed))
        cfg = run_config(self, model, train, defense, meta)

        gen = torch.Generator(device=device).manual_seed(self.seed + 1_000_003 * info.rank)
        torch.default_generator.manual_seed(self.seed + 1_000_003 * info.rank)
        if device.type == "cuda":
            torch.cuda.manual_seed(self.seed + 1_000_003 * info.rank)
        start_epoch, step, history = 0, 0, []
        if state is not None:
            cfg = resumed_config(Path(resume), cfg)
            start_epoch, step, history = restore(state, resume, model=model, defense=defense,
                                                 optimizer=optimizer, generator=gen, device=device,
                                                 steps_per_epoch=steps_per_epoch)
        if run_dir is not None and info.is_main:   # every check passed: write
            start_run_dir(run_dir, cfg, files, state, history)

        net = _ddp.wrap(model, info, device)
        self.defense_, self.run_dir_, self.history_ = defense, run_dir, history
        for epoch in range(start_epoch + 1, self.epochs + 1):
            record, step = self._epoch(net, model, defense, extra, optimizer, loader, schedule, gen,
                                       epoch, step, info, device, run_dir)
            if val is not None:
                ev = self.evaluate(model, val, attack=val_attack, _info=info)
                record.update(val_clean_acc=ev["clean_acc"], val_robust_acc=ev["robust_acc"], val_n=ev["n"])
            if info.is_main:
                record.update(callback_metrics(callbacks, model=model, epoch=epoch, run_dir=run_dir))
            model.train()
            history.append(record)
            if run_dir is not None and info.is_main:
                save_checkpoint(run_dir, model=model, defense=defense, optimizer=optimizer, epoch=epoch,
                                step=step, history=history, rng=rng_state(gen, device), loader_seed=loader_seed)
                runs.append_metrics(run_dir, record)
            if self.progress and info.is_main:
                _progress.write_line(record, self.epochs)
        return self

    @staticmethod
    def _stop(run_dir, info, epoch, batch, term, value):
        if run_dir is not None and info.is_main:
            runs.append_metrics(run_dir, {"kind": "event", "event": "non_finite_loss", "epoch": epoch,
                                          "batch": batch, "term": term, "value": str(value)})
        raise NonFiniteLossError(epoch, batch, term, value, run_dir)

    def _epoch(self, net, model, defense, extra, optimizer, loader, schedule, gen, epoch, step,
               info, device, run_dir):
        t0 = time.perf_counter()
        model.train()
        loader.set_epoch(epoch)
        sums: dict[str, float] = {}
        n_seen = 0
        lr = schedule(step)
        bar = _progress.epoch_bar(len(loader), epoch, self.epochs, enabled=self.progress and info.is_main)
        try:
            for batch, (xb, yb) in enumerate(loader):
                n_global = xb.shape[0]
                if n_global < info.world_size:  # too small to give every rank an example
                    step += 1
                    bar.update(1)
                    continue
                x, y = _ddp.shard(xb, yb, info)
                lr = schedule(step)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                loss, logs = defense(net, x, y, attack_bn=self.attack_bn, bf16=self.bf16_, generator=gen)
                value = float(loss.detach())
                bad = not math.isfinite(value)
                if _ddp.any_rank(bad, info, device):
                    term, tval = "loss", value
                    for k, v in logs.items():
                        if k != "loss" and not math.isfinite(float(v)):
                            term, tval = k, float(v)
                            break
                    if not bad:
                        term, tval = "loss (on another rank)", float("nan")
                    self._stop(run_dir, info, epoch, batch, term, tval)
                optimizer.zero_grad(set_to_none=True)
                # DDP averages gradients over ranks: weight each shard by its share of the global batch
                scale = x.shape[0] * info.world_size / n_global
                (loss * scale if scale != 1.0 else loss).backward()
                _ddp.average_gradients(extra, info)
                # a finite loss can still give NaN/inf gradients (sqrt or log at 0): stop before
                # the step writes them into the weights (gradients are already equal on all ranks)
                grad_norm = float(torch.nn.utils.get_total_norm(
                    [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]))
                if not math.isfinite(grad_norm):
                    self._stop(run_dir, info, epoch, batch, "gradient", grad_norm)
                optimizer.step()
                step += 1
                n = x.shape[0]
                n_seen += n
                sums["loss"] = sums.get("loss", 0.0) + value * n
                for k, v in logs.items():
                    if k != "loss":  # the total, already counted
                        sums[k] = sums.get(k, 0.0) + float(v) * n
                bar.update(1)
                if batch % 10 == 0:
                    bar.set_postfix(loss=f"{value:.4f}", lr=f"{lr:.3g}")
        finally:
            bar.close()
        keys = sorted(sums)
        totals = torch.tensor([float(n_seen)] + [sums[k] for k in keys], dtype=torch.float64, device=device)
        totals = _ddp.all_reduce_sum(totals, info).tolist()
        n_all = max(totals[0], 1.0)
        record = {"kind": "epoch", "epoch": epoch, "loss": totals[1 + keys.index("loss")] / n_all if keys else None}
        for k, total in zip(keys, totals[1:]):
            if k != "loss":
                record[f"train_{k}"] = total / n_all
        record.update(lr=lr, images=int(totals[0]), time_s=time.perf_counter() - t0)
        return record, step
