"""The in-memory ``Dataset`` and class-stratified subsets."""
from __future__ import annotations

import copy
import dataclasses
from typing import Sequence

import numpy as np
import torch

from robustviz._validate import check_images, check_int, check_labels

__all__ = ["Dataset", "stratified_indices"]


def _as_index_tensor(indices, size: int, name: str = "indices") -> torch.Tensor:
    """Integer indices (or a boolean mask of length ``size``) as a 1-D int64 CPU tensor."""
    if isinstance(indices, torch.Tensor):
        idx = indices.detach().cpu()
    elif isinstance(indices, (np.ndarray, list, tuple, range)):
        try:
            idx = torch.as_tensor(np.asarray(indices))
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"{name} must be integers or a boolean mask") from None
    else:
        raise TypeError(f"{name} must be a tensor, array, list or range of integers, "
                        f"got {type(indices).__name__}")
    if idx.numel() == 0:
        raise ValueError(f"{name} selects no examples")
    if idx.dtype == torch.bool:
        if idx.dim() != 1 or idx.shape[0] != size:
            raise ValueError(f"{name} as a boolean mask must have shape ({size},), "
                             f"got {tuple(idx.shape)}")
        idx = idx.nonzero().reshape(-1)
    elif idx.is_floating_point() or idx.is_complex():
        raise TypeError(f"{name} must hold integers, got dtype {idx.dtype}")
    if idx.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(idx.shape)}")
    if idx.numel() == 0:
        raise ValueError(f"{name} selects no examples (the mask is all False)")
    idx = idx.to(torch.int64)
    lo, hi = int(idx.min()), int(idx.max())
    if lo < 0 or hi >= size:
        raise ValueError(f"{name} must be in [0, {size - 1}], got values in [{lo}, {hi}]")
    return idx


@dataclasses.dataclass(eq=False)
class Dataset:
    """A whole labelled image data set held as two tensors.

    Parameters
    ----------
    x : torch.Tensor
        Images, float32 in [0, 1]. Other floating dtypes are converted to float32.
    y : torch.Tensor
        Integer class labels in ``[0, len(classes))``; stored as int64.
    classes : list of str
        Class names; ``classes[k]`` names label ``k``.
    name : str
        Data set name (``"fashion-mnist"``, ... or ``"custom"``).
    mean, std : tuple of float, optional
        Per-channel statistics a model's ``Normalize`` layer should use. For the built-in
        data sets they are the training split's values whatever split or subset this is.
        When omitted they are computed from ``x`` (population std).
    split : str
        ``"train"``, ``"test"`` or ``""``.
    source : str
        Where the data were read from (a folder, or ``"scikit-learn"``).

    Shape
    -----
    x: (N, C, H, W); y: (N,); ``ds[i]`` gives ``(x[i], y[i])`` of shapes (C, H, W) and ().

    Examples
    --------
    >>> ds = Dataset(torch.rand(6, 1, 4, 4), torch.tensor([0, 1, 0, 1, 0, 1]), ["a", "b"])
    >>> ds.shape, ds.num_classes, len(ds.subset([0, 2]))
    ((1, 4, 4), 2, 2)
    """

    x: torch.Tensor
    y: torch.Tensor
    classes: list
    name: str = "custom"
    mean: tuple | None = None
    std: tuple | None = None
    split: str = ""
    source: str = ""

    def __post_init__(self):
        check_images(self.x, "x")
        if self.x.dtype != torch.float32:
            self.x = self.x.to(torch.float32)
        if isinstance(self.classes, (str, bytes)) or not isinstance(self.classes, Sequence):
            raise TypeError(f"classes must be a list of class names, got {type(self.classes).__name__}")
        self.classes = [str(c) for c in self.classes]
        if not self.classes:
            raise ValueError("classes must name at least one class")
        check_labels(self.y, self.x.shape[0], "y", num_classes=len(self.classes))
        if self.y.dtype != torch.int64:
            self.y = self.y.to(torch.int64)
        if self.y.device != self.x.device:
            raise ValueError(f"x and y must be on the same device, got {self.x.device} and {self.y.device}")
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a string, got {type(self.name).__name__}")
        c = self.x.shape[1]
        if self.mean is None or self.std is None:
            dims = (0, 2, 3)
            xd = self.x.double()
            if self.mean is None:
                self.mean = tuple(float(v) for v in xd.mean(dim=dims))
            if self.std is None:
                self.std = tuple(float(v) for v in xd.std(dim=dims, correction=0))
        self.mean = self._stats(self.mean, "mean", c, positive=False)
        self.std = self._stats(self.std, "std", c, positive=True)

    @staticmethod
    def _stats(values, name, channels, *, positive):
        try:
            vals = tuple(float(v) for v in values)
        except TypeError:
            raise TypeError(f"{name} must be a sequence of {channels} numbers, got {values!r}") from None
        if len(vals) != channels:
            raise ValueError(f"{name} must have one value per channel ({channels}), got {len(vals)}")
        if positive and any(not v > 0 for v in vals):
            raise ValueError(f"{name} must be > 0 for every channel, got {vals}")
        return vals

    # -- container protocol ------------------------------------------------------
    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i):
        return self.x[i], self.y[i]

    def __repr__(self) -> str:
        split = f", split={self.split!r}" if self.split else ""
        return (f"Dataset(name={self.name!r}{split}, n={len(self)}, shape={self.shape}, "
                f"classes={self.num_classes}, device={self.device})")

    # -- properties --------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """Number of classes, ``len(classes)``."""
        return len(self.classes)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Image shape ``(C, H, W)``."""
        return tuple(int(s) for s in self.x.shape[1:])

    @property
    def device(self) -> torch.device:
        return self.x.device

    def class_counts(self) -> torch.Tensor:
        """Examples per class, shape (num_classes,)."""
        return torch.bincount(self.y.cpu(), minlength=self.num_classes)

    # -- construction without the full value scan ----------------------------------
    @classmethod
    def _trusted(cls, **fields) -> "Dataset":
        """Build from tensors known to be valid (float32 in [0, 1], int64 labels in range),
        skipping ``__post_init__``'s scan over every pixel. Internal use only."""
        obj = cls.__new__(cls)
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        for key, value in {**defaults, **fields}.items():
            setattr(obj, key, value)
        obj.classes = [str(c) for c in obj.classes]
        obj.mean = tuple(float(v) for v in obj.mean)
        obj.std = tuple(float(v) for v in obj.std)
        return obj

    # -- derived data sets -------------------------------------------------------
    def _derive(self, x, y) -> "Dataset":
        out = copy.copy(self)  # already validated: skip __post_init__'s full scan
        out.x, out.y = x, y
        out.classes = list(self.classes)
        return out

    def subset(self, indices) -> "Dataset":
        """The examples at ``indices`` (ints or a boolean mask), in that order.

        Returns a new ``Dataset`` with the same classes, name and statistics.
        """
        idx = _as_index_tensor(indices, len(self)).to(self.x.device)
        return self._derive(self.x[idx], self.y[idx])

    def to(self, device) -> "Dataset":
        """A copy with ``x`` and ``y`` on ``device`` (the same object's tensors if already there)."""
        try:
            dev = torch.device(device)
        except (TypeError, RuntimeError) as err:
            raise TypeError(f"device must be a torch.device or a string like 'cpu', got {device!r}") from err
        return self._derive(self.x.to(dev), self.y.to(dev))

    def sample(self, n: int, *, seed: int = 0) -> "Dataset":
        """A class-stratified subset of ``n`` examples, see :func:`stratified_indices`."""
        return self.subset(stratified_indices(self.y, n, seed=seed))

    def held_out(self, n: int, *, seed: int = 0) -> "Dataset":
        """The examples that :meth:`sample` ``(n, seed=seed)`` leaves out, in their order.

        An evaluation that scores ``sample(n, seed=seed)`` never sees them, so they can
        watch a run (a catastrophic-overfitting guard, early stopping) without touching the
        numbers it reports. Raises ``ValueError`` when the sample takes every example.
        """
        n = check_int(n, "n", minimum=1)
        if n >= len(self):
            raise ValueError(f"a sample of n={n} takes all {len(self)} examples: none is held out")
        free = torch.ones(len(self), dtype=torch.bool)
        free[stratified_indices(self.y, n, seed=seed)] = False
        return self.subset(free)


def _allocate(counts: list[int], n: int, gen: torch.Generator) -> list[int]:
    """Split ``n`` over classes as equally as the class sizes allow (water-filling).

    Small classes are taken whole; the others get ``floor`` of the equal share and the
    remainder goes, one each, to randomly drawn classes among them.
    """
    k = len(counts)
    alloc = [0] * k
    order = sorted(range(k), key=lambda c: counts[c])
    remaining, open_classes = n, list(order)
    while open_classes:
        share = remaining // len(open_classes)
        small = [c for c in open_classes if counts[c] <= share]
        if not small:
            break
        for c in small:
            alloc[c] = counts[c]
            remaining -= counts[c]
        open_classes = [c for c in open_classes if c not in small]
    if open_classes:
        share, extra = divmod(remaining, len(open_classes))
        open_sorted = sorted(open_classes)
        for c in open_sorted:
            alloc[c] = share
        if extra:
            pick = torch.randperm(len(open_sorted), generator=gen)[:extra]
            for j in pick.tolist():
                alloc[open_sorted[j]] += 1
    return alloc


def stratified_indices(y, n: int, *, seed: int = 0) -> torch.Tensor:
    """Seeded indices of a class-stratified subset of ``n`` examples.

    Every class gets ``n // K`` examples (``K`` classes present) and the remainder goes one
    each to randomly chosen classes; a class with fewer examples than its share is taken
    whole and the rest is spread over the others. Within a class the examples are drawn
    uniformly without replacement. The same seed always gives the same indices.

    Parameters
    ----------
    y : torch.Tensor of int
        Labels, shape (N,).
    n : int
        Subset size, ``1 <= n <= N``.
    seed : int
        Seed of the ``torch.Generator`` that draws the subset.

    Returns
    -------
    torch.Tensor of int64, shape (n,)
        Sorted indices into ``y`` (so the subset keeps the original order).
    """
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a torch.Tensor of labels, got {type(y).__name__}")
    if y.dim() != 1:
        raise ValueError(f"y must be 1-D labels, got shape {tuple(y.shape)}")
    check_labels(y, y.shape[0], "y")
    size = int(y.shape[0])
    if size == 0:
        raise ValueError("y is empty: cannot draw a subset")
    n = check_int(n, "n", minimum=1, maximum=size)
    seed = check_int(seed, "seed", minimum=0)
    gen = torch.Generator().manual_seed(seed)
    y = y.detach().cpu()
    present = torch.unique(y).tolist()
    members = [(y == c).nonzero().reshape(-1) for c in present]
    alloc = _allocate([len(m) for m in members], n, gen)
    chosen = []
    for m, a in zip(members, alloc):
        if a:
            chosen.append(m[torch.randperm(len(m), generator=gen)[:a]])
    return torch.sort(torch.cat(chosen)).values
