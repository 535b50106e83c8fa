"""Tiny-ImageNet (200 classes, 64x64 colour) in its distributed on-disk layout.

::

    tiny-imagenet-200/
        wnids.txt                      one WordNet id per line: class k is line k
        words.txt                      optional: "<wnid>\\t<names>" (class names)
        train/<wnid>/images/*.JPEG     500 training images per class
        val/images/*.JPEG              10,000 labelled validation images
        val/val_annotations.txt        "<file>\\t<wnid>\\t<x0>\\t<y0>\\t<x1>\\t<y1>" per image

The official test images carry no labels, so this package's ``"test"`` split is the
labelled ``val/`` folder (what papers report on). Images are decoded with Pillow (a
torchvision dependency) in a thread pool, converted to RGB (a few are greyscale) and must
be 64x64. With ``indices`` only the chosen files are decoded (a stratified subset of a
100,000-image split costs only its own decoding).

References
----------
Le and Yang, "Tiny ImageNet Visual Recognition Challenge", Stanford CS231N, 2015.
Zhou et al., "Robust Representation Learning via Asymmetric Negative Contrast and Reverse
Attention" (ANCRA), arXiv:2310.03358, 2023, Table III (Tiny-ImageNet results).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from robustviz.data._formats import DatasetFormatError

__all__ = ["tiny_imagenet_files", "read_tiny_imagenet", "SIZE"]

SIZE = 64
_EXTS = (".jpeg", ".jpg", ".png")


def _read_wnids(folder: Path) -> list[str]:
    path = folder / "wnids.txt"
    try:
        wnids = [w.strip() for w in path.read_text().splitlines() if w.strip()]
    except OSError as err:
        raise DatasetFormatError(f"{path}: cannot read the class list ({err})") from err
    if not wnids:
        raise DatasetFormatError(f"{path}: no WordNet ids")
    if len(set(wnids)) != len(wnids):
        raise DatasetFormatError(f"{path}: repeated WordNet ids")
    return wnids


def _class_names(folder: Path, wnids: list[str]) -> list[str]:
    """The first name of each class from ``words.txt`` (the WordNet id where it is absent)."""
    names = dict.fromkeys(wnids)
    path = folder / "words.txt"
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split("\t", 1)
            if len(parts) == 2 and parts[0] in names:
                names[parts[0]] = parts[1].split(",")[0].strip() or parts[0]
    return [names[w] or w for w in wnids]


def tiny_imagenet_files(folder: str | os.PathLike, split: str) -> tuple[list[Path], np.ndarray, list[str]]:
    """Image paths, labels and class names of one split, without decoding anything.

    Parameters
    ----------
    folder : path-like
        The ``tiny-imagenet-200`` folder.
    split : {"train", "test"}
        ``"test"`` reads the labelled ``val/`` folder.

    Returns
    -------
    paths : list of Path
        Sorted within each class (train) or by file name (val).
    labels : ndarray of int64, shape (N,)
        Index of the image's WordNet id in ``wnids.txt``.
    classes : list of str
    """
    folder = Path(folder)
    wnids = _read_wnids(folder)
    index = {w: k for k, w in enumerate(wnids)}
    paths: list[Path] = []
    labels: list[int] = []
    if split == "train":
        for k, w in enumerate(wnids):
            d = folder / "train" / w / "images"
            if not d.is_dir():
                raise DatasetFormatError(f"{d}: missing (train/<wnid>/images for every id of wnids.txt)")
            files = sorted(p for p in d.iterdir() if p.suffix.lower() in _EXTS)
            if not files:
                raise DatasetFormatError(f"{d}: no images")
            paths += files
            labels += [k] * len(files)
    elif split == "test":
        ann = folder / "val" / "val_annotations.txt"
        if not ann.is_file():
            raise DatasetFormatError(f"{ann}: missing (the labels of val/images)")
        rows = []
        for n, line in enumerate(ann.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) < 2:
                raise DatasetFormatError(f"{ann}, line {n}: expected '<file>\\t<wnid>\\t...', got {line!r}")
            if parts[1] not in index:
                raise DatasetFormatError(f"{ann}, line {n}: WordNet id {parts[1]!r} is not in wnids.txt")
            rows.append((parts[0], index[parts[1]]))
        if not rows:
            raise DatasetFormatError(f"{ann}: no annotations")
        rows.sort()
        for name, k in rows:
            p = folder / "val" / "images" / name
            if not p.is_file():
                raise DatasetFormatError(f"{p}: listed in val_annotations.txt but missing")
            paths.append(p)
            labels.append(k)
    else:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return paths, np.asarray(labels, dtype=np.int64), _class_names(folder, wnids)


def _decode(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except OSError as err:
        raise DatasetFormatError(f"{path}: cannot decode ({err})") from err
    if arr.shape != (SIZE, SIZE, 3):
        raise DatasetFormatError(f"{path}: expected a {SIZE}x{SIZE} image, got {arr.shape[1]}x{arr.shape[0]}")
    return arr.transpose(2, 0, 1)


def read_tiny_imagenet(folder: str | os.PathLike, split: str, *,
                       select: Callable[[np.ndarray], np.ndarray] | None = None,
                       workers: int | None = None, progress: bool = True
                       ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode one split: ``uint8`` images ``(N, 3, 64, 64)``, ``int64`` labels, class names.

    Parameters
    ----------
    folder : path-like
        The ``tiny-imagenet-200`` folder.
    split : {"train", "test"}
        ``"test"``: the labelled ``val/`` folder.
    select : callable, optional
        ``labels -> indices``: decode only those images (in that order).
    workers : int, optional
        Decoding threads (default: up to 8, at most the CPU count).
    progress : bool
        A progress bar over the images.

    Shape
    -----
    Images ``(N, 3, 64, 64)``; labels ``(N,)``.
    """
    from tqdm.auto import tqdm

    paths, labels, classes = tiny_imagenet_files(folder, split)
    if select is not None:
        idx = np.asarray(select(labels), dtype=np.int64)
        paths, labels = [paths[i] for i in idx], labels[idx]
    out = np.empty((len(paths), 3, SIZE, SIZE), dtype=np.uint8)
    workers = workers or max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        it = pool.map(_decode, paths, chunksize=64)
        for i, arr in enumerate(tqdm(it, total=len(paths), desc=f"tiny-imagenet {split}",
                                     disable=not progress, leave=False, mininterval=1.0)):
            out[i] = arr
    return out, labels, classes
