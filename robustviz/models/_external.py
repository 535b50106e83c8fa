"""Classifiers from other zoos (RobustBench, timm, torchvision) as robustviz models.

::

    net = rv.models.from_robustbench("Standard", "cifar10", "Linf", model_dir="models")
    rv.runs.save_run("runs/standard", net, {"model": net.build_kwargs,
                                            "data": {"name": "cifar10"}, "eval": {"eps": 8 / 255}})
    rv.report(["runs/standard"], out="report")      # every diagnostic, on a published model

:func:`wrap` puts any ``nn.Module`` classifier behind a :class:`Normalize` layer and gives it
tap names (its top-level stages in forward order, ``penultimate`` and ``logits``), so that
attacks, R-DIV, pair histograms, embeddings, inversion, landscapes and the report treat it
like a model of :func:`robustviz.models.build`. ``build_kwargs`` rebuild the architecture
(without weights) so :func:`robustviz.runs.load_run` reloads a saved run from its
``weights.safetensors``.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustviz._validate import check_choice, check_int
from robustviz.models._base import RobustModel
from robustviz.models._normalize import Normalize, channel_stats

__all__ = ["ExternalModel", "wrap", "from_robustbench", "from_timm", "from_torchvision",
           "EXTERNAL_SOURCES"]

#: ``build(name=...)`` values that rebuild a model of another library (see :func:`rebuild`)
EXTERNAL_SOURCES = ("robustbench", "timm", "torchvision")
#: RobustBench's data sets: classes and the input side its models are evaluated at
_RB_DATASETS = {"cifar10": (10, 32), "cifar100": (100, 32), "imagenet": (1000, 224)}
_RB_THREATS = ("Linf", "L2", "corruptions")
#: modules that are never a stage worth tapping
_SKIP = (nn.Identity, nn.Dropout, nn.Flatten)


def _find_head(net: nn.Module, num_classes: int, head: str | None) -> str:
    """Qualified name of the final linear layer (its input is the ``penultimate`` feature)."""
    if head is not None:
        try:
            mod = net.get_submodule(head)
        except AttributeError:
            raise ValueError(f"head={head!r} is not a submodule of the model") from None
        if not isinstance(mod, nn.Linear):
            raise ValueError(f"head={head!r} is a {type(mod).__name__}, not an nn.Linear")
        return head
    for name in ("fc", "classifier", "linear", "head", "logits", "last_linear"):
        mod = getattr(net, name, None)
        if isinstance(mod, nn.Linear) and mod.out_features == num_classes:
            return name
    found = [n for n, m in net.named_modules() if isinstance(m, nn.Linear) and m.out_features == num_classes]
    if not found:
        raise ValueError(f"the model has no nn.Linear with {num_classes} outputs to serve as the "
                         f"classifier; pass head='<qualified name>' of its final linear layer")
    return found[-1]


class ExternalModel(RobustModel):
    """A classifier of another library behind :class:`Normalize`, with tap names.

    Parameters
    ----------
    net : nn.Module
        Maps ``(N, C, H, W)`` inputs (normalised by ``mean``/``std``; pixels in [0, 1] when
        both are left at the identity) to ``(N, num_classes)`` logits.
    num_classes, in_channels : int
    mean, std : float or sequence of float
        The normalisation ``net`` expects (identity by default: RobustBench's models take
        pixels in [0, 1] and normalise inside). Attacks always work in pixel space.
    input_size : int or (H, W), optional
        The size the model is used at; when given, one forward pass on zeros (in eval mode,
        no gradients) orders the taps as the forward pass runs them.
    head : str, optional
        Qualified name of the final ``nn.Linear`` (default: ``fc``, ``classifier``,
        ``linear``, ``head``, or the last linear layer with ``num_classes`` outputs).
    taps : dict of str to str, optional
        Tap name -> qualified submodule name of ``net`` whose output it is. Default: every
        top-level stage of ``net`` (descending through single-child wrappers) except the head.
    build_kwargs : dict, optional
        Arguments of :func:`robustviz.models.build` that rebuild this architecture.

    Notes
    -----
    In-place ReLUs are made out-of-place, so that a tapped tensor is never overwritten later
    in the forward pass (the arithmetic is unchanged).
    """

    def __init__(self, net: nn.Module, *, num_classes: int, in_channels: int = 3, mean=0.0,
                 std=1.0, input_size=None, head: str | None = None,
                 taps: dict[str, str] | None = None, build_kwargs: dict[str, Any] | None = None):
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}")
        self.num_classes = check_int(num_classes, "num_classes", minimum=2)
        self.in_channels = int(check_choice(in_channels, "in_channels", [1, 3]))
        if isinstance(input_size, int):
            input_size = (input_size, input_size)
        self.input_size = None if input_size is None else (int(input_size[0]), int(input_size[1]))
        self.normalize = Normalize(channel_stats(mean, "mean", self.in_channels),
                                   channel_stats(std, "std", self.in_channels, positive=True),
                                   channels=self.in_channels)
        for m in net.modules():
            if isinstance(m, (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.LeakyReLU, nn.ELU, nn.SiLU)) \
                    and getattr(m, "inplace", False):
                m.inplace = False
        self.net = net
        self._head = _find_head(net, self.num_classes, head)
        self._stage_taps = self._default_taps() if taps is None else self._check_taps(taps)
        self.build_kwargs = dict(build_kwargs or {"name": "external"})

    # the final linear layer lives inside ``net``; exposed without registering it twice
    @property
    def classifier(self) -> nn.Linear:
        return self.net.get_submodule(self._head)

    @classifier.setter
    def classifier(self, layer: nn.Linear) -> None:   # a finetuning head replaces it in place
        parent, _, leaf = self._head.rpartition(".")
        setattr(self.net.get_submodule(parent) if parent else self.net, leaf, layer)

    def _check_taps(self, taps: dict[str, str]) -> dict[str, str]:
        out = {}
        for name, target in taps.items():
            if name in ("penultimate", "logits"):
                raise ValueError(f"tap name {name!r} is reserved")
            try:
                self.net.get_submodule(target)
            except AttributeError:
                raise ValueError(f"tap {name!r}: {target!r} is not a submodule of the model") from None
            out[str(name)] = "net." + target
        return out

    def _default_taps(self) -> dict[str, str]:
        root, prefix = self.net, ""
        while True:   # descend through wrappers holding one module (e.g. normalisation + model)
            kids = [(n, m) for n, m in root.named_children() if not isinstance(m, (Normalize,) + _SKIP)
                    and any(True for _ in m.parameters())]
            if len(kids) != 1 or (prefix + kids[0][0]) == self._head:
                break
            prefix, root = prefix + kids[0][0] + ".", kids[0][1]
        names = [prefix + n for n, m in root.named_children()
                 if prefix + n != self._head and not isinstance(m, _SKIP)
                 and not self._head.startswith(prefix + n + ".")]
        names = self._forward_order(names)
        leaf = {n: n.rsplit(".", 1)[-1] for n in names}   # reserved names keep their full path
        return {(leaf[n] if leaf[n] not in ("penultimate", "logits") else n): "net." + n for n in names}

    def _forward_order(self, names: list[str]) -> list[str]:
        """Keep the stages that run, in the order they run, on one zero image."""
        if self.input_size is None or not names:
            return names
        order: list[str] = []
        hooks = [self.net.get_submodule(n).register_forward_hook(
            lambda m, a, o, n=n: order.append(n) if n not in order and torch.is_tensor(o) else None)
            for n in names]
        was = self.net.training
        try:
            self.net.eval()
            device = next(iter(self.net.parameters()), torch.empty(0)).device
            with torch.no_grad():
                self.net(torch.zeros(1, self.in_channels, *self.input_size, device=device))
        except Exception:   # noqa: BLE001 - a probe only; fall back to declaration order
            return names
        finally:
            for h in hooks:
                h.remove()
            self.net.train(was)
        return order or names

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


def wrap(net: nn.Module, *, num_classes: int, in_channels: int = 3, mean=0.0, std=1.0,
         input_size=None, head: str | None = None, taps: dict[str, str] | None = None) -> ExternalModel:
    """Wrap any classifier so robustviz's attacks, diagnostics and report run on it.

    ``mean``/``std`` are the normalisation ``net`` expects (a torchvision ImageNet model:
    :data:`IMAGENET_MEAN`/:data:`IMAGENET_STD`); inputs to the wrapped model are pixels in
    [0, 1]. A wrapped module cannot be rebuilt by name, so a run saved from it is not
    reloadable by :func:`robustviz.runs.load_run`: use :func:`from_robustbench`,
    :func:`from_timm` or :func:`from_torchvision` for that. See :class:`ExternalModel`.

    Examples
    --------
    >>> import torchvision
    >>> net = wrap(torchvision.models.resnet18(num_classes=10), num_classes=10, input_size=32)
    >>> net.layer_names[-3:]
    ('layer4', 'penultimate', 'logits')
    """
    return ExternalModel(net, num_classes=num_classes, in_channels=in_channels, mean=mean, std=std,
                         input_size=input_size, head=head, taps=taps)


# ---------------------------------------------------------------------------- RobustBench
def _import_robustbench():
    try:
        import autoattack  # noqa: F401  robustbench imports the authors' package by this name
    except ImportError:
        # robustbench 1.1 declares `pyautoattack` (the same code, installed as `pyautoattack`)
        # but imports `autoattack`: give it the installed package under that name
        try:
            import pyautoattack
        except ImportError:
            pyautoattack = None
        if pyautoattack is not None:
            sys.modules.setdefault("autoattack", pyautoattack)
    try:
        from robustbench.model_zoo import model_dicts
        from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel
    except ImportError as err:
        raise ImportError(f"RobustBench models need the robustbench package ({err}): "
                          f"pip install \"robustviz[robustbench]\"") from None
    return model_dicts, BenchmarkDataset, ThreatModel


def _robustbench_entry(name: str, dataset: str, threat_model: str) -> dict:
    check_choice(dataset, "dataset", tuple(_RB_DATASETS))
    check_choice(threat_model, "threat_model", _RB_THREATS)
    model_dicts, BenchmarkDataset, ThreatModel = _import_robustbench()
    zoo = model_dicts[BenchmarkDataset(dataset)][ThreatModel(threat_model)]
    if name not in zoo:
        close = sorted(k for k in zoo if k.lower().startswith(name[:4].lower()))[:8]
        raise ValueError(f"RobustBench has no {dataset}/{threat_model} model {name!r}"
                         + (f"; similar: {', '.join(close)}" if close else "")
                         + f" ({len(zoo)} models; robustbench.model_zoo lists them)")
    return zoo[name]


def checkpoint_kind(path: Path) -> str:
    """``"zip"`` (torch.save's format) or ``"pickle"`` (the legacy one); raises a clear error
    naming the file for anything else, an HTML page above all: RobustBench's most reported
    failure is a download link that answered with a web page (a quota or sign-in page)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    with open(path, "rb") as fh:
        start = fh.read(512)
    if not start:
        raise ValueError(f"{path} is empty (an interrupted download?); delete it and download again")
    if start.startswith(b"PK\x03\x04"):
        return "zip"
    if start[:1] == b"\x80":
        return "pickle"
    low = start.lstrip().lower()
    if low.startswith(b"<") or b"<html" in low:   # <!doctype html>, <html>, <?xml ...>
        raise ValueError(f"{path} is an HTML page, not a checkpoint: the download answered with a "
                         f"web page (Google Drive does this when a file is over its quota or needs "
                         f"a sign-in). Delete it and download the checkpoint again (RobustBench's "
                         f"model card names the source)")
    raise ValueError(f"{path} is not a PyTorch checkpoint (it starts with {start[:16]!r}); "
                     f"delete it and download it again")


def _state_dict_of(path: Path) -> dict[str, torch.Tensor]:
    checkpoint_kind(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickle errors of every kind: one message
        raise ValueError(f"{path} cannot be read as tensors only (weights_only=True): {err}. "
                         f"robustviz never unpickles code from a checkpoint") from None
    for key in ("state_dict", "model_state_dict", "model", "last"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise ValueError(f"{path} holds no state dict of tensors")
    out = {}
    for k, v in obj.items():   # DataParallel's and wrappers' prefixes
        for prefix in ("module.", "model."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


def _load_checked(net: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    own = net.state_dict()
    if not any(k in own for k in state) and all(("model." + k) in own for k in state):
        state = {"model." + k: v for k, v in state.items()}   # models that normalise outside `model`
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in state if k in own and tuple(own[k].shape) != tuple(state[k].shape)]
    # checkpoints saved before a model gained its normalisation buffers lack only those
    benign = all(k.rsplit(".", 1)[-1] in ("mu", "sigma", "mean", "std") for k in missing)
    if wrong or unexpected or (missing and not benign):
        raise ValueError(f"{path} does not fit the RobustBench architecture: "
                         + "; ".join([f"shape of {k}: file {tuple(state[k].shape)} vs model "
                                      f"{tuple(own[k].shape)}" for k in wrong[:3]]
                                     + [f"missing {k}" for k in missing[:3]]
                                     + [f"unexpected {k}" for k in unexpected[:3]]))
    net.load_state_dict(state, strict=False)


def from_robustbench(name: str, dataset: str = "cifar10", threat_model: str = "Linf", *,
                     model_dir: str | Path = "models", weights: bool = True) -> ExternalModel:
    """A model of RobustBench's zoo (Croce et al., "RobustBench: a standardized adversarial
    robustness benchmark", NeurIPS Datasets and Benchmarks 2021), wrapped for robustviz.

    Offline by design: the checkpoint is read from where RobustBench keeps downloads,
    ``<model_dir>/<dataset>/<threat_model>/<name>.pt`` (download it once with
    ``robustbench.utils.load_model(name, model_dir, dataset, threat_model)`` on a machine with
    internet, or copy it there). It is read with ``weights_only=True``; an empty, truncated or
    HTML "checkpoint" is refused with an error naming the file.

    Parameters
    ----------
    name : str
        The model's name in RobustBench (``"Standard"``, ``"Wong2020Fast"``, ...).
    dataset : {"cifar10", "cifar100", "imagenet"}
    threat_model : {"Linf", "L2", "corruptions"}
    model_dir : str or Path
        RobustBench's ``model_dir`` (its default is ``./models``).
    weights : bool
        False: the architecture at random initialisation (what :func:`robustviz.runs.load_run`
        builds before loading a saved run's weights).

    Returns
    -------
    ExternalModel
        Pixels in [0, 1] -> logits; ``build_kwargs`` rebuild it (``name="robustbench"``), so
        save it as a run with :func:`robustviz.runs.save_run` and report on it.

    Raises
    ------
    ImportError
        Without the ``robustbench`` package (``pip install "robustviz[robustbench]"``).
    FileNotFoundError, ValueError
        No checkpoint at the path (the message says where to put it), an HTML page or other
        non-checkpoint file, a checkpoint that needs code to unpickle, or one that does not
        fit the architecture.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a RobustBench model name (str), got {name!r}")
    entry = _robustbench_entry(name, dataset, threat_model)
    if isinstance(entry.get("gdrive_id"), list):
        raise ValueError(f"{name} is an ensemble of {len(entry['gdrive_id'])} checkpoints; load it "
                         f"with robustbench.utils.load_model and pass it to robustviz.models.wrap")
    num_classes, side = _RB_DATASETS[dataset]
    net = entry["model"]()
    if weights:
        path = Path(model_dir) / dataset / threat_model / f"{name}.pt"
        if not path.is_file():
            raise FileNotFoundError(
                f"no RobustBench checkpoint at {path}. robustviz does not download: fetch it once "
                f"with robustbench.utils.load_model({name!r}, model_dir={str(model_dir)!r}, "
                f"dataset={dataset!r}, threat_model={threat_model!r}) where there is internet, "
                f"or copy the file there")
        _load_checked(net, _state_dict_of(path), path)
    spec = {"name": "robustbench", "model": name, "dataset": dataset, "threat_model": threat_model,
            "num_classes": num_classes, "in_channels": 3, "input_size": [side, side]}
    return ExternalModel(net.eval(), num_classes=num_classes, in_channels=3,
                         input_size=(side, side), build_kwargs=spec)


# ---------------------------------------------------------------------------- timm, torchvision
def from_timm(arch: str, *, num_classes: int, pretrained: bool = False, input_size=None,
              in_channels: int = 3) -> ExternalModel:
    """A timm classifier with its own normalisation (``pretrained_cfg``'s mean and std).

    ``pretrained=True`` lets timm fetch weights (internet or its cache); robustviz never
    downloads otherwise. Saved as a run, it reloads with random weights replaced by the run's.
    """
    try:
        import timm
    except ImportError:
        raise ImportError("timm models need the timm package: pip install timm") from None
    net = timm.create_model(arch, pretrained=pretrained, num_classes=num_classes, in_chans=in_channels)
    cfg = getattr(net, "pretrained_cfg", None) or {}
    mean, std = cfg.get("mean", (0.0,) * in_channels), cfg.get("std", (1.0,) * in_channels)
    if input_size is None:
        input_size = tuple(cfg.get("input_size", (in_channels, 224, 224))[1:])
    spec = {"name": "timm", "model": arch, "num_classes": num_classes, "in_channels": in_channels,
            "input_size": list(_pair(input_size)), "mean": list(mean), "std": list(std)}
    return ExternalModel(net, num_classes=num_classes, in_channels=in_channels, mean=mean, std=std,
                         input_size=input_size, build_kwargs=spec)


def from_torchvision(arch: str, *, num_classes: int, weights: str | None = None,
                     input_size=224) -> ExternalModel:
    """A torchvision classifier (``torchvision.models.get_model``) behind the ImageNet
    normalisation it was trained with. ``weights`` (e.g. ``"DEFAULT"``) are fetched by
    torchvision (internet or torch hub's cache)."""
    import torchvision

    from robustviz.models._imagenet import IMAGENET_MEAN, IMAGENET_STD

    net = torchvision.models.get_model(arch, weights=weights, num_classes=num_classes)
    spec = {"name": "torchvision", "model": arch, "num_classes": num_classes, "in_channels": 3,
            "input_size": list(_pair(input_size))}
    return ExternalModel(net, num_classes=num_classes, in_channels=3, mean=IMAGENET_MEAN,
                         std=IMAGENET_STD, input_size=input_size, build_kwargs=spec)


def _pair(size) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


def rebuild(name: str, **spec) -> ExternalModel:
    """The architecture of a saved external model, at random initialisation (its run's
    ``weights.safetensors`` is loaded next): what ``build(name="robustbench", ...)`` does."""
    spec = dict(spec)
    arch = spec.pop("model", None)
    if not isinstance(arch, str):
        raise ValueError(f"an external model spec needs 'model' (the architecture's name), got {arch!r}")
    if name == "robustbench":
        return from_robustbench(arch, spec.get("dataset", "cifar10"),
                                spec.get("threat_model", "Linf"), weights=False)
    if name == "timm":
        return from_timm(arch, num_classes=spec["num_classes"], input_size=spec.get("input_size"),
                         in_channels=spec.get("in_channels", 3))
    if name == "torchvision":
        return from_torchvision(arch, num_classes=spec["num_classes"],
                                input_size=spec.get("input_size") or 224)
    raise ValueError(f"unknown external source {name!r}; one of {EXTERNAL_SOURCES}")
