"""The attack base class and the projected-gradient engine every iterative attack uses.

An attack is a frozen dataclass of keyword-only hyperparameters; the model and data are
given at call time: ``x_adv = atk(model, x, y)``. The call validates its inputs once,
puts the model in ``bn_mode`` ("eval" by default), switches parameter gradients off,
enables autograd for the input only, and restores everything in ``finally``: every
submodule's train/eval flag and every buffer (the BatchNorm running statistics a
``bn_mode="train"`` attack would otherwise update).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Callable, Iterator

import torch
from torch import nn

from robustviz._utils import autocast, frozen_params, model_device, model_mode
from robustviz._validate import check_choice, check_images, check_int, check_labels, check_model_dtype

__all__ = ["Attack", "AttackOutput"]

BN_MODES = ("eval", "train")


def _check_bool(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def _check_model(model) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def _check_inputs(model: nn.Module, x, y) -> None:
    """Images (through the model's own ``check_input`` when it has one) and labels."""
    if callable(getattr(model, "check_input", None)) and isinstance(x, torch.Tensor):
        model.check_input(x, "x")
    else:
        check_images(x, "x", channels=getattr(model, "in_channels", None),
                     size=getattr(model, "input_size", None))
    check_labels(y, x.shape[0], "y", num_classes=getattr(model, "num_classes", None))
    dev = model_device(model)
    if x.device != dev:
        raise ValueError(f"x is on {x.device} but the model is on {dev}; move them to the "
                         f"same device")
    if y.device != x.device:
        raise ValueError(f"y is on {y.device} but x is on {x.device}")
    check_model_dtype(x, model, "x")


@contextlib.contextmanager
def kept_buffers(model: nn.Module) -> Iterator[nn.Module]:
    """Restore every buffer of ``model`` (BatchNorm ``running_mean``, ``running_var``,
    ``num_batches_tracked``, ...) to its value at entry, in place, even on error: forward
    passes in train mode inside the block leave no trace in the model."""
    saved = [(m, name, buf, buf.detach().clone()) for m in model.modules()
             for name, buf in m._buffers.items() if buf is not None]
    try:
        yield model
    finally:
        with torch.no_grad():
            for m, name, buf, value in saved:
                m._buffers[name] = buf   # a module may have replaced the tensor object
                # only buffers that changed are written, through .data: the restored
                # values are those a pending training graph saw, and a bumped version
                # counter would make its backward fail (BatchNorm saves its statistics)
                if not torch.equal(buf, value):
                    buf.data.copy_(value)


def _check_generator(generator) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got "
                        f"{type(generator).__name__}")


def _describe(value):
    """JSON-friendly form of a hyperparameter (callables by name, dataclasses as dicts)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"type": type(value).__name__,
                **{f.name: _describe(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if callable(value):
        return getattr(value, "__qualname__", type(value).__name__)
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if isinstance(value, tuple):
        return [_describe(v) for v in value]
    return value


@dataclasses.dataclass(frozen=True)
class AttackOutput:
    """What :meth:`Attack.run` returns: the adversarial images and, for ensembles of
    attacks, which component broke each example.

    Attributes
    ----------
    x_adv : Tensor
        (N, C, H, W) adversarial images.
    by : Tensor or None
        (N,) int64: index into ``components`` of the attack that first broke the example
        (made the model misclassify it), -1 where none did or the example was not attacked
        (misclassified already); ``None`` for single attacks.
    components : tuple of str
        Names of the ensemble's attacks, in the order they ran.
    """

    x_adv: torch.Tensor
    by: torch.Tensor | None = None
    components: tuple = ()


@dataclasses.dataclass(frozen=True, kw_only=True)
class Attack:
    """Base class of every attack: hyperparameters only, the model comes at call time.

    Parameters
    ----------
    bn_mode : {"eval", "train"}
        Mode of the model during the attack. Evaluation attacks use ``"eval"``; some
        training recipes (ASCL, AdvCL) attack in ``"train"`` mode. The mode of every
        submodule and every buffer (BatchNorm running statistics, which train-mode
        forward passes would update) are restored afterwards, even on error.
    bf16 : bool
        Run the model's forward passes under bf16 autocast (faster on GPUs and on CPUs
        with native bf16, AVX512-BF16/AMX; emulated and several times slower elsewhere). Inputs, gradients and the returned images stay in the input's dtype.
        Off by default: evaluations should be run in full precision.
    seed : int
        Seed of the generator used when the call gets no ``generator`` (so a default call
        is reproducible). Pass ``generator=`` to draw from your own stream instead.

    Notes
    -----
    Subclasses implement ``_attack(forward, x, y, generator)`` where ``forward`` runs the
    model (under autocast when ``bf16``) and returns float logits.
    """

    bn_mode: str = "eval"
    bf16: bool = False
    seed: int = 0

    def __post_init__(self):
        check_choice(self.bn_mode, "bn_mode", BN_MODES)
        _check_bool(self.bf16, "bf16")
        check_int(self.seed, "seed", minimum=0)
        self._check()
        eps = getattr(self, "eps", None)
        if (isinstance(eps, (int, float)) and not isinstance(eps, bool) and eps > 1
                and str(getattr(self, "norm", "linf")).lower() == "linf"):
            raise ValueError(f"eps={eps!r} is larger than 1: an L-infinity ball of that radius around "
                             f"images in [0, 1] holds every image, so robust accuracy means nothing. "
                             f"Pixels are in [0, 1] here: did you mean eps={eps:g}/255 = {eps / 255:.4g}?")

    def _check(self) -> None:
        """Validate the subclass's own hyperparameters (raise ValueError/TypeError)."""

    # ------------------------------------------------------------------------ call
    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Craft adversarial examples.

        Parameters
        ----------
        model : nn.Module
            Classifier taking pixels in [0, 1] and returning logits.
        x : Tensor
            Clean images in [0, 1].
        y : Tensor
            True labels (for a targeted attack: the target labels).
        generator : torch.Generator, optional
            Source of randomness (random starts); default: a generator seeded with
            ``self.seed``.

        Returns
        -------
        Tensor
            Adversarial images, detached, same shape, dtype and device as ``x``.

        Shape
        -----
        ``x``: (N, C, H, W); ``y``: (N,); returns (N, C, H, W).
        """
        return self.run(model, x, y, generator=generator).x_adv

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
            generator: torch.Generator | None = None) -> "AttackOutput":
        """Like calling the attack, but also says which component broke each example
        (for ensembles: :class:`~robustviz.attacks.AutoAttack`,
        :class:`~robustviz.attacks.WorstOf`); see :class:`AttackOutput`."""
        _check_model(model)
        _check_inputs(model, x, y)
        _check_generator(generator)
        if generator is None:
            generator = torch.Generator(device=x.device)
            generator.manual_seed(self.seed)
        forward = _Forward(model, self.bf16, x.device)
        with model_mode(model, self.bn_mode), kept_buffers(model), frozen_params(model), \
                torch.enable_grad():
            out = self._attack(forward, x.detach(), y.detach(), generator)
        if not isinstance(out, AttackOutput):
            out = AttackOutput(x_adv=out)
        x_adv = out.x_adv
        if not isinstance(x_adv, torch.Tensor) or x_adv.shape != x.shape:
            raise RuntimeError(f"{self.name} returned "
                               f"{tuple(x_adv.shape) if isinstance(x_adv, torch.Tensor) else type(x_adv).__name__}"
                               f" for inputs of shape {tuple(x.shape)}: an attack must return one "
                               f"adversarial image per input image")
        return dataclasses.replace(out, x_adv=x_adv.detach().to(dtype=x.dtype).contiguous())

    def _attack(self, forward, x, y, generator) -> torch.Tensor:
        raise NotImplementedError

    # ------------------------------------------------------------------------ misc
    @property
    def name(self) -> str:
        return type(self).__name__

    def describe(self) -> dict:
        """JSON-friendly dict of the attack's type and hyperparameters."""
        out = {"attack": self.name}
        for f in dataclasses.fields(self):
            out[f.name] = _describe(getattr(self, f.name))
        return out


class _Forward:
    """Callable running the model, under bf16 autocast when asked, returning float logits."""

    def __init__(self, model: nn.Module, bf16: bool, device: torch.device):
        self.model = model
        self.bf16 = bf16
        self.device = device

    def __call__(self, x: torch.Tensor, runner: Callable | None = None):
        run = runner if runner is not None else self.model
        if not self.bf16:
            return run(x)
        with autocast(self.device, enabled=True):
            out = run(x)
        if isinstance(out, dict):
            return {k: v.float() if v.is_floating_point() else v for k, v in out.items()}
        return out.float()


def _sel(t: torch.Tensor | None, rows: torch.Tensor | None):
    """``t[rows]`` (``rows=None`` means all rows, no copy)."""
    if t is None or rows is None:
        return t
    return t[rows]


def _index_dict(d: dict | None, rows):
    if d is None or rows is None:
        return d
    return {k: v[rows] for k, v in d.items()}


@dataclasses.dataclass
class _Outcome:
    """Result of one projected-gradient run over the full batch (rows that did not run keep
    their starting point and ``fooled=False``, ``score=-inf``)."""

    x_adv: torch.Tensor
    fooled: torch.Tensor | None
    score: torch.Tensor | None


def _check_loss_shape(loss: torch.Tensor, n: int) -> torch.Tensor:
    if loss.dim() == 0 or (loss.dim() == 1 and loss.shape[0] == n):
        return loss
    raise ValueError(f"the attack loss must return a per-example tensor of shape ({n},) or a "
                     f"scalar, got shape {tuple(loss.shape)}")


def _ascend(forward: Callable, x: torch.Tensor, x0: torch.Tensor, *, threat, steps: int,
            step_size: float, objective: Callable, fooled_fn: Callable | None,
            early_stop: bool, generator: torch.Generator | None, rows: torch.Tensor | None = None,
            decay: float | None = None, score_fn: Callable | None = None) -> _Outcome:
    """Projected gradient ascent of ``objective`` from ``x0`` (the engine of PGD, MIM, FGSM,
    multi-targeted PGD).

    ``objective(out, idx)`` returns the per-example loss to *ascend* for the rows ``idx``
    of the full batch (``None``: all rows); ``fooled_fn(logits, idx)`` says which rows are
    fooled (None disables tracking). With tracking, an example that some iterate fooled
    always comes back fooled: the final iterate if it still fools the model, else the first
    iterate that did. ``early_stop`` freezes an example at that first fooling iterate and
    drops it from the remaining forward/backward passes, which therefore changes the
    running time but not which examples end up fooled.

    ``decay`` turns on momentum on L1-normalised gradients (MIM). ``score_fn(out, idx)``,
    when given, is evaluated once more at the returned points of the not-fooled rows, for
    choosing between restarts.

    Shape
    -----
    ``x``, ``x0``: (N, C, H, W); ``rows``: (M,) long or None.
    """
    n = x.shape[0]
    dev = x.device
    x_adv = x0.detach().clone()
    track = fooled_fn is not None
    fooled = torch.zeros(n, dtype=torch.bool, device=dev) if track else None
    x_first = x_adv.clone() if (track and not early_stop) else None
    mom = torch.zeros_like(x) if decay is not None else None
    active = rows  # row indices of the full batch still being updated (None: all)

    for _ in range(steps):
        xa = _sel(x_adv, active).detach().requires_grad_(True)
        out = forward(xa)
        loss = _check_loss_shape(objective(out, active), xa.shape[0])
        (grad,) = torch.autograd.grad(loss.sum(), xa)
        xa = xa.detach()
        if track:
            f = fooled_fn(out.detach(), active)
            idx = active if active is not None else torch.arange(n, device=dev)
            new = f & ~fooled[idx]
            if bool(new.any()):
                fooled[idx[new]] = True
                if x_first is not None:
                    x_first[idx[new]] = xa[new]
            if early_stop and bool(f.any()):
                keep = ~f
                active, xa, grad = idx[keep], xa[keep], grad[keep]
                if active.numel() == 0:
                    break
        if mom is not None:
            l1 = grad.abs().reshape(grad.shape[0], -1).mean(1).clamp_min(1e-12)
            g = grad / l1.reshape((-1,) + (1,) * (grad.dim() - 1))
            m = decay * _sel(mom, active) + g
            if active is None:
                mom = m
            else:
                mom[active] = m
            grad = m
        x_new = threat.project(threat.step(xa, grad, step_size, generator=generator),
                               _sel(x, active))
        if active is None:
            x_adv = x_new
        else:
            x_adv[active] = x_new

    with torch.no_grad():
        if x_first is not None:
            # Fooled at some iterate: keep the final iterate only if it still fools.
            cand = fooled.nonzero().squeeze(1)
            if rows is not None:
                cand = cand[torch.isin(cand, rows)]
            if cand.numel():
                still = fooled_fn(forward(x_adv[cand]), cand)
                back = cand[~still]
                x_adv[back] = x_first[back]
        score = None
        if score_fn is not None:
            base = rows if rows is not None else torch.arange(n, device=dev)
            todo = base[~fooled[base]] if track else base
            score = torch.full((n,), -math.inf, device=dev)
            if todo.numel():
                out = forward(x_adv[todo])
                s = score_fn(out, todo)
                if s.dim() == 0:
                    raise ValueError("restarts > 1 need a loss that returns one value per "
                                     "example (shape (N,)), got a scalar")
                score[todo] = s.detach().float()
                if track:
                    fooled[todo] = fooled_fn(out, todo)
    return _Outcome(x_adv=x_adv, fooled=fooled, score=score)


def _merge(best: _Outcome | None, new: _Outcome) -> _Outcome:
    """Keep, per example, the worst point over restarts: a fooled point over a non-fooled
    one (the earlier restart on ties), else the higher score."""
    if best is None:
        return new
    if best.fooled is not None:
        take = (new.fooled & ~best.fooled) | (~new.fooled & ~best.fooled & (new.score > best.score))
        fooled = best.fooled | new.fooled
    else:
        take = new.score > best.score
        fooled = None
    x_adv = torch.where(take.reshape((-1,) + (1,) * (new.x_adv.dim() - 1)), new.x_adv, best.x_adv)
    score = torch.where(take, new.score, best.score)
    return _Outcome(x_adv=x_adv, fooled=fooled, score=score)


# ---------------------------------------------------------------------------- losses
def _check_loss(loss, *, targeted: bool, early_stop: bool, bn_mode: str) -> None:
    """Shared validation of the ``loss`` option of the gradient attacks."""
    from robustviz.attacks._losses import LOSSES, FeatureLoss

    if isinstance(loss, str):
        check_choice(loss, "loss", LOSSES)
    elif not (callable(loss) or isinstance(loss, FeatureLoss)):
        raise TypeError(f"loss must be one of {list(LOSSES)}, a callable (logits, y) -> "
                        f"per-example loss, or a FeatureLoss; got {type(loss).__name__}")
    if loss == "kl" and targeted:
        raise ValueError("loss='kl' (distance to the clean prediction) cannot be targeted; "
                         "use targeted=False")
    if early_stop:
        if loss not in ("ce", "cw"):
            raise ValueError("early_stop=True needs loss='ce' or 'cw' (a loss whose ascent "
                             "means misclassification); got "
                             f"{loss!r}" if isinstance(loss, str) else
                             "early_stop=True needs loss='ce' or 'cw' (a loss whose ascent "
                             "means misclassification), not a custom loss")
        if bn_mode == "train":
            raise ValueError("early_stop=True cannot be combined with bn_mode='train': "
                             "dropping examples would change the batch statistics")


class _LossSetup:
    """Context manager giving ``(forward, objective, fooled_fn)`` for a loss option.

    The objective is the loss to *ascend* (negated for targeted attacks, which descend the
    loss towards the target labels held in ``y``). ``fooled_fn`` (tracking of fooled
    iterates) is given only for ``"ce"`` and ``"cw"``: a custom loss may not mean
    "misclassify" at all (e.g. a loss that makes the model *more* confident).
    """

    def __init__(self, loss, targeted: bool, forward: _Forward, x: torch.Tensor, y: torch.Tensor):
        self.loss, self.targeted, self.forward, self.x, self.y = loss, targeted, forward, x, y
        self._tap = None

    def __enter__(self):
        from robustviz.attacks._losses import FeatureLoss, cross_entropy, cw_margin, kl_to_clean

        loss, y, forward = self.loss, self.y, self.forward
        sign = -1.0 if self.targeted else 1.0
        if isinstance(loss, FeatureLoss):
            from robustviz.models import Features  # attacks sit above models in the layering

            self._tap = tap = Features(forward.model, list(loss.layers))

            def fwd(xs):
                return forward(xs, runner=tap)

            clean = None
            if loss.with_clean:
                with torch.no_grad():
                    clean = {k: v.detach() for k, v in fwd(self.x).items()}

            def objective(out, idx):
                args = (out, _sel(y, idx))
                if loss.with_clean:
                    args = args + (_index_dict(clean, idx),)
                return sign * loss.fn(*args)

            return fwd, objective, None

        if loss == "kl":
            with torch.no_grad():
                p_clean = torch.softmax(forward(self.x).float(), dim=1)

            def objective(out, idx):
                return kl_to_clean(out.float(), _sel(p_clean, idx))

            return forward, objective, None

        base = {"ce": cross_entropy, "cw": cw_margin}.get(loss, loss) if isinstance(loss, str) else loss

        def objective(out, idx):
            return sign * base(out, _sel(y, idx))

        if not isinstance(loss, str):
            return forward, objective, None
        if self.targeted:
            def fooled_fn(logits, idx):
                return logits.argmax(1) == _sel(y, idx)
        else:
            def fooled_fn(logits, idx):
                return logits.argmax(1) != _sel(y, idx)

        return forward, objective, fooled_fn

    def __exit__(self, *exc):
        if self._tap is not None:
            self._tap.close()
            self._tap = None
        return False


def _step_default(step_size, value):
    return value if step_size is None else float(step_size)


def _check_step_size(step_size) -> None:
    from robustviz._validate import check_positive

    if step_size is not None:
        check_positive(step_size, "step_size")
