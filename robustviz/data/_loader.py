"""A tensor-resident batch iterator: the whole data set lives on the device, batches are
index gathers, augmentation is a pure batch function. No DataLoader, no workers."""
from __future__ import annotations

import math
from typing import Callable, Iterator

import numpy as np
import torch

from robustviz._validate import check_int, check_probability
from robustviz.data._augment import _hflip, _random_crop
from robustviz.data._dataset import Dataset

__all__ = ["TensorLoader", "AUGMENTATIONS"]

AUGMENTATIONS = ("crop", "flip")


def _default_padding(height: int) -> int:
    # 4 for 32x32 (the CIFAR standard), 3 for 28x28, 1 for 8x8 digits
    return max(1, height // 8)


def _build_augment(augment, height: int) -> list[Callable]:
    """Turn the ``augment`` argument into a list of ``f(x, generator) -> x``."""
    if augment is None:
        return []
    if callable(augment):
        return [augment]
    if isinstance(augment, str):
        augment = (augment,)
    if isinstance(augment, dict):
        items = list(augment.items())
    elif isinstance(augment, (list, tuple)):
        items = [(a, None) if isinstance(a, str) else a for a in augment]
    else:
        raise TypeError(f"augment must be None, a callable(x, generator), a name in "
                        f"{list(AUGMENTATIONS)}, a sequence of those, or a dict name -> "
                        f"parameter; got {type(augment).__name__}")
    fns: list[Callable] = []
    for item in items:
        if callable(item):
            fns.append(item)
            continue
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
            raise TypeError(f"augment entries must be names in {list(AUGMENTATIONS)} or "
                            f"callables, got {item!r}")
        name, param = item
        if name not in AUGMENTATIONS:
            raise ValueError(f"augment has unknown augmentation {name!r}; valid names: "
                             f"{list(AUGMENTATIONS)} (or pass a callable(x, generator))")
        if name == "crop":
            pad = _default_padding(height) if param is None else check_int(
                param, "augment['crop'] (padding)", minimum=0)
            fns.append(lambda x, g, _p=pad: _random_crop(x, _p, g))
        else:
            prob = 0.5 if param is None else check_probability(param, "augment['flip'] (p)")
            fns.append(lambda x, g, _p=prob: _hflip(x, _p, g))
    return fns


def _epoch_seed(seed: int, epoch: int) -> int:
    # A hash of (seed, epoch): nearby seeds and epochs give unrelated streams.
    state = np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


class TensorLoader:
    """Iterate over a ``Dataset`` in mini-batches held on one device.

    Parameters
    ----------
    dataset : Dataset or tuple (x, y)
        The data; moved once to ``device``.
    batch_size : int
        Examples per batch (the last one may be smaller unless ``drop_last``).
    shuffle : bool
        Draw a new random order every epoch (from ``seed`` and the epoch number).
    drop_last : bool
        Drop the final incomplete batch.
    augment : None, str, sequence, dict or callable
        ``"crop"`` (zero-pad by ``H // 8``, at least 1, and random-crop), ``"flip"``
        (horizontal flip, p = 0.5), a sequence of these applied in order, a dict such as
        ``{"crop": 4, "flip": 0.5}`` giving the padding and the probability, or a callable
        ``f(x, generator) -> x`` (``generator`` is a CPU ``torch.Generator``; draw on it and
        move the numbers to ``x.device``).
    seed : int
        Seeds the order and the augmentation; the same seed gives the same batches.
    device : torch.device or str, optional
        Where batches live; default: the dataset's device.

    Notes
    -----
    Each ``iter(loader)`` runs epoch ``loader.epoch`` and then advances it by one, so two
    successive ``for`` loops see different orders. ``set_epoch(e)`` makes the next
    iteration run epoch ``e``, whose order and augmentation depend only on ``(seed, e)``,
    never on what was iterated before.

    Shape
    -----
    Yields ``(x, y)`` with x: (B, C, H, W) float32 in [0, 1] and y: (B,) int64.

    Examples
    --------
    >>> loader = TensorLoader(ds, batch_size=256, augment=("crop", "flip"), seed=0)
    >>> for epoch in range(3):
    ...     loader.set_epoch(epoch)
    ...     for x, y in loader:
    ...         ...
    """

    def __init__(self, dataset, *, batch_size: int = 128, shuffle: bool = True,
                 drop_last: bool = False, augment=None, seed: int = 0, device=None):
        if isinstance(dataset, tuple) and len(dataset) == 2:
            x, y = dataset
            if not isinstance(y, torch.Tensor) or y.dim() != 1:
                raise TypeError("dataset as a tuple must be (x, y) tensors with 1-D y")
            num = int(y.max()) + 1 if y.numel() else 1
            dataset = Dataset(x, y, [str(i) for i in range(num)])
        if not isinstance(dataset, Dataset):
            raise TypeError(f"dataset must be a robustviz.data.Dataset or a tuple (x, y), "
                            f"got {type(dataset).__name__}")
        if len(dataset) == 0:
            raise ValueError("dataset is empty")
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)
        for flag, value in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(value, bool):
                raise TypeError(f"{flag} must be True or False, got {value!r}")
        if drop_last and self.batch_size > len(dataset):
            raise ValueError(f"batch_size ({self.batch_size}) is larger than the dataset "
                             f"({len(dataset)} examples) and drop_last=True: no batch would remain")
        self.shuffle, self.drop_last = shuffle, drop_last
        self.seed = check_int(seed, "seed", minimum=0)
        self._augment = _build_augment(augment, dataset.shape[1])
        self.augment = augment
        if device is None:
            self.device = dataset.device
        else:
            try:
                self.device = torch.device(device)
            except (TypeError, RuntimeError) as err:
                raise TypeError(f"device must be a torch.device or a string like 'cpu', "
                                f"got {device!r}") from err
        self.dataset = dataset if dataset.device == self.device else dataset.to(self.device)
        self._epoch = 0

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    @property
    def epoch(self) -> int:
        """The epoch the next iteration will run."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration run epoch ``epoch`` (reproducible from (seed, epoch) alone)."""
        self._epoch = check_int(epoch, "epoch", minimum=0)

    def generator(self, epoch: int) -> torch.Generator:
        """The CPU generator that drives epoch ``epoch``'s order and augmentation."""
        return torch.Generator().manual_seed(_epoch_seed(self.seed, epoch))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self._epoch
        self._epoch += 1
        return self._batches(epoch)

    def _batches(self, epoch: int):
        gen = self.generator(epoch)
        n = len(self.dataset)
        if self.shuffle:
            order = torch.randperm(n, generator=gen).to(self.device)
        else:
            order = torch.arange(n, device=self.device)
        x_all, y_all = self.dataset.x, self.dataset.y
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            xb, yb = x_all[idx], y_all[idx]
            for fn in self._augment:
                xb = fn(xb, gen)
                if not isinstance(xb, torch.Tensor) or xb.shape[0] != idx.shape[0]:
                    raise TypeError("an augment callable must return a tensor with the "
                                    "batch's number of images")
            yield xb, yb

    def __repr__(self) -> str:
        return (f"TensorLoader({self.dataset!r}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, augment={self.augment!r}, "
                f"seed={self.seed}, device={self.device})")
