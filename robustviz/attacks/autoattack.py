"""AutoAttack at its authors' settings: APGD, APGD-T, FAB and Square, configured as Croce &
Hein run them, chained by robustviz's worst-case engine. The attacks come from torchattacks
where it is installed (the numbers recorded in the zoo), else from the authors' own package
(``pyautoattack``, the ``robustviz[autoattack]`` extra)."""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from robustviz._validate import check_choice, check_positive
from robustviz.attacks._base import Attack
from robustviz.attacks.ensemble import run_sequence
from robustviz.attacks.threat import NORMS

__all__ = ["AutoAttack", "SquareAttack", "check_logits", "check_deterministic"]


@dataclasses.dataclass(frozen=True)
class _Component:
    """One attack of an AutoAttack version, with the budget its authors give it."""

    label: str
    kind: str                  # "apgd", "apgdt", "fab", "square"
    iterations: int = 100      # APGD/FAB iterations, Square queries
    restarts: int = 1
    targets: int = 0           # target classes (APGD-T, FAB-T)
    loss: str = "ce"           # APGD: "ce" or "dlr"
    eot: int = 1               # expectation over transformation draws (version "rand")

    def describe(self, k: int) -> dict:
        d = {"name": self.label, "restarts": self.restarts}
        d["queries" if self.kind == "square" else "iterations"] = self.iterations
        if self.targets:
            d["target_classes"] = min(self.targets, k - 1)
        if self.eot > 1:
            d["eot_draws"] = self.eot
        return d

    def text(self) -> str:
        unit = "queries" if self.kind == "square" else "it."
        s = f"{self.label} ({self.iterations} {unit}"
        if self.targets:
            s += f", {self.targets} targets"
        if self.restarts > 1:
            s += f", {self.restarts} restarts"
        if self.eot > 1:
            s += f", EOT {self.eot}"
        return s + ")"

    def build(self, lib, model: nn.Module, *, eps: float, norm: str, seed: int, k: int):
        """The attack object of backend ``lib`` (the torchattacks module, or the authors'
        ``pyautoattack``) at the authors' settings; called as ``atk(x, y) -> x_adv``."""
        if getattr(lib, "__name__", "") == "pyautoattack":
            return self._build_reference(model, eps=eps, norm=norm, seed=seed, k=k)
        ta = lib
        norm = "Linf" if norm == "linf" else "L2"
        common = dict(eps=float(eps), norm=norm, seed=seed, n_restarts=self.restarts)
        # torchattacks runs n_classes - 1 target classes: pass one more than the targets
        n_cls = min(self.targets, k - 1) + 1
        if self.kind == "apgd":
            return ta.APGD(model, steps=self.iterations, loss=self.loss, eot_iter=self.eot,
                           rho=0.75, **common)
        if self.kind == "apgdt":
            return ta.APGDT(model, steps=self.iterations, n_classes=n_cls, eot_iter=self.eot,
                            rho=0.75, **common)
        if self.kind == "fab":
            targeted = self.targets > 0
            return ta.FAB(model, steps=self.iterations, multi_targeted=targeted,
                          n_classes=n_cls if targeted else k, alpha_max=0.1, eta=1.05,
                          beta=0.9, **common)
        if self.kind == "square":
            # the reference runs Square with a fixed schedule (resc_schedule=False)
            return ta.Square(model, n_queries=self.iterations, p_init=0.8, loss="margin",
                             resc_schedule=False, **common)
        raise ValueError(self.kind)

    def _build_reference(self, model, *, eps, norm, seed, k):
        """The authors' attack classes with the values their ``AutoAttack`` sets."""
        from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted
        from pyautoattack.fab_pt import FABAttack_PT
        from pyautoattack.square import SquareAttack

        device = next(model.parameters(), torch.empty(0)).device
        common = dict(eps=float(eps), norm="Linf" if norm == "linf" else "L2", seed=seed,
                      n_restarts=self.restarts, verbose=False, device=device)
        targets = min(self.targets, k - 1)
        if self.kind == "apgd":
            atk = APGDAttack(model, n_iter=self.iterations, loss=self.loss, eot_iter=self.eot,
                                rho=0.75, **common)
        elif self.kind == "apgdt":
            atk = APGDAttack_targeted(model, n_iter=self.iterations, n_target_classes=targets,
                                         eot_iter=self.eot, rho=0.75, **common)
        elif self.kind == "fab":
            atk = FABAttack_PT(model, n_iter=self.iterations, targeted=self.targets > 0,
                                  n_target_classes=max(targets, 1), alpha_max=0.1, eta=1.05,
                                  beta=0.9, **common)
        elif self.kind == "square":
            atk = SquareAttack(model, n_queries=self.iterations, p_init=0.8, loss="margin",
                                  resc_schedule=False, **common)
        else:
            raise ValueError(self.kind)
        return lambda x, y: atk.perturb(x, y)


_APGD_CE = _Component("APGD-CE", "apgd")
_APGD_T = _Component("APGD-T", "apgdt", targets=9)
_FAB_T = _Component("FAB-T", "fab", targets=9)
_SQUARE = _Component("Square", "square", iterations=5000)

#: The attacks of each version, in the order they run (Croce & Hein 2020, and their code).
VERSIONS = {
    "standard": (_APGD_CE, _APGD_T, _FAB_T, _SQUARE),
    "plus": (_Component("APGD-CE", "apgd", restarts=5),
             _Component("APGD-DLR", "apgd", loss="dlr", restarts=5),
             _Component("FAB", "fab", restarts=5), _SQUARE, _APGD_T, _FAB_T),
    "rand": (_Component("APGD-CE", "apgd", eot=20), _Component("APGD-DLR", "apgd", loss="dlr", eot=20)),
    "fast": (_APGD_CE, _APGD_T),
}


#: The implementations AutoAttack can run, in the order they are tried: torchattacks
#: first (the zoo's AutoAttack numbers were measured with it), then the authors' package.
BACKENDS = ("torchattacks", "pyautoattack")


def _backend():
    """The first importable module of :data:`BACKENDS`.

    torchattacks pins an old ``requests`` that pip cannot install beside JupyterLab, so
    ``pip install "robustviz[all]"`` brings the authors' ``pyautoattack`` instead (pure
    Python); robustviz's development setup installs torchattacks too, as a cross-check."""
    import importlib

    for name in BACKENDS:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError("AutoAttack needs the attacks of the authors' package or of torchattacks, "
                      "and neither is installed: pip install \"robustviz[autoattack]\" (the "
                      "authors' pyautoattack)")


def _backend_text(lib) -> str:
    if lib.__name__ == "pyautoattack":
        version = getattr(lib, "__version__", None)
        if version is None:
            from importlib.metadata import PackageNotFoundError, version as dist_version
            try:
                version = dist_version("pyautoattack")
            except PackageNotFoundError:  # pragma: no cover - a source checkout
                version = "?"
        return f"the authors' AutoAttack code (pyautoattack {version})"
    return f"torchattacks {lib.__version__}"


class _Wrapped(nn.Module):
    """The model behind robustviz's forward (autocast when bf16, float logits)."""

    def __init__(self, model: nn.Module, forward):
        super().__init__()
        self.model = model
        self._forward = forward

    def forward(self, x):
        return self._forward(x)


def check_logits(out: torch.Tensor, *, what: str = "the model", tol: float = 1e-5) -> bool:
    """True when every row of ``out`` looks like a probability vector (entries in [0, 1],
    rows summing to 1): a model that ends in a softmax. Attacks on such outputs use the
    cross-entropy of probabilities, whose gradient vanishes: an optimistic evaluation.

    Shape
    -----
    ``out``: (N, K).
    """
    out = out.detach().float()
    return bool(out.max() < 1 + tol and out.min() > -tol
                and ((out.sum(-1) - 1).abs() < tol).all())


def check_deterministic(forward, x: torch.Tensor, *, draws: int = 2, tol: float = 1e-4) -> float:
    """Largest difference between ``draws`` forward passes on the same images (outputs
    L2-normalised per row, as in Croce & Hein's check); 0 for a deterministic model.

    Shape
    -----
    ``x``: (N, C, H, W).
    """
    with torch.no_grad():
        outs = []
        for _ in range(draws):
            o = forward(x).detach().float()
            outs.append(o / (o.norm(dim=1, keepdim=True) + 1e-10))
    return max(float((outs[0] - o).norm(dim=1).max()) for o in outs[1:])


@dataclasses.dataclass(frozen=True, kw_only=True)
class AutoAttack(Attack):
    """AutoAttack (Croce & Hein, ICML 2020) at the settings its authors run.

    Each version is a list of attacks run one after the other, each only on the examples
    the earlier ones left correctly classified; robust accuracy is the per-example worst
    case (:meth:`~robustviz.attacks.Attack.run` says which attack broke each example):

    ``"standard"``
        APGD-CE (100 iterations), APGD-T (targeted DLR loss, 100 iterations on each of 9
        target classes), FAB-T (100 iterations, 9 targets), Square (5,000 queries).
    ``"plus"``
        APGD-CE and APGD-DLR with 5 restarts, FAB with 5 restarts, Square, APGD-T, FAB-T.
    ``"rand"``
        APGD-CE and APGD-DLR with expectation over transformation (20 draws per
        gradient), for randomized defenses.
    ``"fast"``
        APGD-CE then APGD-T: the first two attacks of ``"standard"``, a few times cheaper
        and an upper bound of its accuracy (equal on most models; not "AutoAttack
        standard", never label it so). For quick looks, widgets and teaching.

    The attacks are torchattacks' implementations (ports of the authors' code) where
    torchattacks is installed, else the authors' own (``pyautoattack``, the
    ``robustviz[autoattack]`` extra); either runs the authors' iterations, restarts,
    targets, queries and Square schedule (torchattacks' own ``AutoAttack`` runs 10
    iterations and a rescaled Square schedule). :meth:`backend` names the one that ran,
    and the evaluation card carries it. The cross-check of the two is
    ``tests/test_autoattack.py`` and ``benchmarks/autoattack.py``.

    Parameters
    ----------
    eps : float
    norm : {"linf", "l2"}
    version : {"standard", "plus", "rand", "fast"}
    bf16, seed
        See :class:`Attack`. One seed for the attacks' random starts is drawn from the
        call's generator; the global torch RNG is restored after the call.

    Raises
    ------
    ValueError
        When the model returns probabilities instead of logits, or when its outputs
        differ between two forward passes on the same images under a version other than
        ``"rand"`` (a randomized defense, for which the deterministic versions report an
        optimistic number).

    Notes
    -----
    Evaluation only: ``bn_mode`` must be ``"eval"``. Expensive on a CPU: about 2.5 minutes
    per 100 robust Fashion-MNIST images of a small CNN for ``"standard"`` (FAB-T and
    Square run on every survivor), which is why ``"fast"`` exists.

    Shape
    -----
    ``x``: (N, C, H, W); ``y``: (N,) true labels; returns (N, C, H, W).

    References
    ----------
    Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of
    diverse parameter-free attacks", ICML 2020. Andriushchenko et al., "Square Attack",
    ECCV 2020. Croce & Hein, "Minimally distorted adversarial examples with a fast
    adaptive boundary attack", ICML 2020. Kim, "Torchattacks: A PyTorch Repository for
    Adversarial Attacks", 2020.
    """

    eps: float
    norm: str = "linf"
    version: str = "standard"

    def _check(self):
        check_positive(self.eps, "eps")
        check_choice(self.norm, "norm", NORMS)
        check_choice(self.version, "version", tuple(VERSIONS))
        if self.bn_mode != "eval":
            raise ValueError("AutoAttack is an evaluation attack: bn_mode must be 'eval'")

    @property
    def components(self) -> tuple:
        return VERSIONS[self.version]

    def backend(self) -> str:
        """Which implementation runs, e.g. ``"torchattacks 3.5.1 at the reference settings:
        APGD-CE (100 it.), APGD-T (100 it., 9 targets), ..."``."""
        return (f"{_backend_text(_backend())} at the reference settings: "
                + ", ".join(c.text() for c in self.components))

    def describe(self, num_classes: int = 10) -> dict:
        out = super().describe()
        try:
            out["backend"] = self.backend()
        except ImportError:
            out["backend"] = "not installed (neither torchattacks nor pyautoattack)"
        out["components"] = [c.describe(num_classes) for c in self.components]
        return out

    def _attack(self, forward, x, y, generator):
        lib = _backend()
        if x.dtype != torch.float32:
            raise TypeError(f"AutoAttack needs float32 images, got {x.dtype}")
        probe = x[:250]
        with torch.no_grad():
            out = forward(probe)
        k = out.shape[1]
        if check_logits(out):
            raise ValueError("the model's outputs are probabilities (rows in [0, 1] summing to 1), "
                             "not logits: attacks on them see vanishing gradients and report "
                             "an optimistic accuracy; give AutoAttack the model without its "
                             "final softmax")
        if self.version != "rand":
            diff = check_deterministic(forward, probe)
            if diff > 1e-4:
                raise ValueError(f"the model's outputs differ between two forward passes on the "
                                 f"same images (by {diff:.2g}): a randomized defense, or a "
                                 f"layer left in training mode. AutoAttack {self.version!r} "
                                 f"would report an optimistic number; use version='rand' "
                                 f"(expectation over 20 draws)")
        needs_dlr = any(c.loss == "dlr" or c.targets for c in self.components)
        if needs_dlr and k < 4:
            raise ValueError(f"AutoAttack {self.version!r} uses the (targeted) DLR loss, which "
                             f"needs at least 4 classes; the model has {k}")
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device))
        wrapped = _Wrapped(forward.model, forward)
        devices = [x.device] if x.device.type == "cuda" else []

        def step(comp):
            def fn(xs, ys):
                atk = comp.build(lib, wrapped, eps=self.eps, norm=self.norm, seed=seed, k=k)
                return atk(xs, ys)
            return comp.label, fn

        with torch.random.fork_rng(devices=devices):
            return run_sequence(forward, x, y, [step(c) for c in self.components])


@dataclasses.dataclass(frozen=True, kw_only=True)
class SquareAttack(Attack):
    """The Square attack (Andriushchenko et al., ECCV 2020): a black-box, score-based random
    search over square-shaped perturbations at the corners of the ball; it uses no
    gradient, so it is the check that a model's robustness is not masked gradients.

    Parameters
    ----------
    eps : float
    norm : {"linf", "l2"}
    queries : int
        Model queries per example (AutoAttack standard: 5,000).
    bf16, seed
        See :class:`Attack`.

    Notes
    -----
    torchattacks' implementation (else the authors', as for :class:`AutoAttack`) with
    AutoAttack's settings (``p_init`` 0.8, margin loss, the fixed schedule). Evaluation only: ``bn_mode`` must be ``"eval"``.

    Shape
    -----
    ``x``: (N, C, H, W); ``y``: (N,); returns (N, C, H, W).

    References
    ----------
    Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a query-efficient black-box
    adversarial attack via random search", ECCV 2020.
    """

    eps: float
    norm: str = "linf"
    queries: int = 5000

    def _check(self):
        from robustviz._validate import check_int

        check_positive(self.eps, "eps")
        check_choice(self.norm, "norm", NORMS)
        check_int(self.queries, "queries", minimum=1)
        if self.bn_mode != "eval":
            raise ValueError("SquareAttack is an evaluation attack: bn_mode must be 'eval'")

    @property
    def name(self) -> str:
        return "Square"

    def _attack(self, forward, x, y, generator):
        lib = _backend()
        if x.dtype != torch.float32:
            raise TypeError(f"SquareAttack needs float32 images, got {x.dtype}")
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device))
        comp = dataclasses.replace(_SQUARE, iterations=int(self.queries))
        atk = comp.build(lib, _Wrapped(forward.model, forward), eps=self.eps, norm=self.norm,
                         seed=seed, k=2)
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            return atk(x, y).to(x.device)
