"""Write tiny data sets in the real on-disk formats torchvision reads and downloads; hand
data sets to a test's subprocesses without unpickling code (save_datasets / load_datasets).

Each writer takes a folder, writes the files where torchvision's download would put them,
and returns the ground truth as uint8 images of shape (N, C, H, W) and int64 labels, so
tests compare what ``robustviz.data.load`` returns with what was written.

Formats (from the data sets' own documentation):

* IDX: ``00 00 08 <ndim>``, big-endian uint32 sizes, then uint8 values in C order.
* CIFAR "python version": a pickled dict per batch, ``data`` uint8 (N, 3072) holding the
  R, G and B 32x32 planes row by row, ``labels`` / ``fine_labels`` lists; ``batches.meta``
  / ``meta`` dicts with the class names. (Protocol 2, as the originals.)
* SVHN: MATLAB v5 ``X`` (32, 32, 3, N) uint8 and ``y`` (N, 1) with digit 0 stored as 10.
* STL-10: uint8 images written column-major (each 96x96 plane transposed), labels 1..10.
"""
from __future__ import annotations

import dataclasses
import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]


def _images(rng: np.random.Generator, n: int, shape) -> np.ndarray:
    """Random uint8 images that include the extremes 0 and 255."""
    x = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    x.reshape(n, -1)[:, 0] = 0
    x.reshape(n, -1)[:, -1] = 255
    return x


def _labels(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """Every class at least once (when n >= k), then random."""
    y = np.concatenate([np.arange(min(n, k)), rng.integers(0, k, size=max(0, n - k))])
    return rng.permutation(y).astype(np.int64)


# ------------------------------------------------------------------------ IDX

def write_idx(path: Path, array: np.ndarray, *, gz: bool) -> Path:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.tobytes()
    path = Path(str(path) + ".gz") if gz else Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path.write_bytes(gzip.compress(payload, compresslevel=1))
    else:
        path.write_bytes(payload)
    return path


def write_mnist_like(folder, *, n_train: int = 30, n_test: int = 20, seed: int = 0,
                     gz: bool = False) -> dict:
    """The four IDX files of MNIST / Fashion-MNIST directly in ``folder``."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    truth = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        x, y = _images(rng, n, (28, 28)), _labels(rng, n, 10)
        write_idx(folder / f"{prefix}-images-idx3-ubyte", x, gz=gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", y.astype(np.uint8), gz=gz)
        truth[split] = (x[:, None], y)
    return truth


def write_mnist(root, **kw) -> dict:
    """torchvision's layout: ``root/MNIST/raw/*-ubyte`` (uncompressed, as it extracts them)."""
    return write_mnist_like(Path(root) / "MNIST" / "raw", **kw)


def write_fashion_mnist(root, *, layout: str = "torchvision", gz: bool = True, **kw) -> dict:
    """``root/FashionMNIST/raw`` (torchvision), ``root/fashion-mnist`` or ``root`` itself (flat)."""
    sub = {"torchvision": Path("FashionMNIST") / "raw", "named": Path("fashion-mnist"),
           "flat": Path(".")}[layout]
    return write_mnist_like(Path(root) / sub, gz=gz, **kw)


# ---------------------------------------------------------------------- CIFAR

def _dump(path: Path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10(root, *, per_batch: int = 6, n_test: int = 10, seed: int = 0) -> dict:
    """``root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for i in range(1, 6):
        x, y = _images(rng, per_batch, (3, 32, 32)), _labels(rng, per_batch, 10)
        _dump(folder / f"data_batch_{i}", {
            "batch_label": f"training batch {i} of 5", "labels": y.tolist(),
            "data": x.reshape(per_batch, -1), "filenames": [f"img_{i}_{j}.png" for j in range(per_batch)],
        })
        xs.append(x)
        ys.append(y)
    xt, yt = _images(rng, n_test, (3, 32, 32)), _labels(rng, n_test, 10)
    _dump(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "labels": yt.tolist(),
                                  "data": xt.reshape(n_test, -1),
                                  "filenames": [f"test_{j}.png" for j in range(n_test)]})
    _dump(folder / "batches.meta", {"label_names": CIFAR10_CLASSES, "num_cases_per_batch": per_batch,
                                    "num_vis": 3072})
    return {"train": (np.concatenate(xs), np.concatenate(ys)), "test": (xt, yt),
            "classes": list(CIFAR10_CLASSES)}


def write_cifar100(root, *, n_train: int = 120, n_test: int = 100, seed: int = 0) -> dict:
    """``root/cifar-100-python/{train, test, meta}`` with fine and coarse labels."""
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    fine = [f"class_{k:02d}" for k in range(100)]
    truth = {"classes": fine}
    for split, n in (("train", n_train), ("test", n_test)):
        x, y = _images(rng, n, (3, 32, 32)), _labels(rng, n, 100)
        _dump(folder / split, {"filenames": [f"{split}_{j}.png" for j in range(n)],
                               "batch_label": f"{split} batch", "fine_labels": y.tolist(),
                               "coarse_labels": (y // 5).tolist(), "data": x.reshape(n, -1)})
        truth[split] = (x, y)
    _dump(folder / "meta", {"fine_label_names": fine,
                            "coarse_label_names": [f"super_{k}" for k in range(20)]})
    return truth


# ----------------------------------------------------------------------- SVHN

def write_svhn(folder, *, n_train: int = 20, n_test: int = 12, seed: int = 0) -> dict:
    """``folder/{train,test}_32x32.mat``; ground-truth labels are 0..9."""
    from scipy.io import savemat

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    truth = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x, y = _images(rng, n, (3, 32, 32)), _labels(rng, n, 10)
        stored = np.where(y == 0, 10, y).astype(np.uint8)[:, None]
        savemat(folder / f"{split}_32x32.mat", {"X": np.transpose(x, (2, 3, 1, 0)), "y": stored})
        truth[split] = (x, y)
    return truth


# ---------------------------------------------------------------------- STL-10

def write_stl10(root, *, n_train: int = 10, n_test: int = 10, seed: int = 0) -> dict:
    """``root/stl10_binary/{train,test}_{X,y}.bin`` and ``class_names.txt``."""
    folder = Path(root) / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    (folder / "class_names.txt").write_text("\n".join(names) + "\n")
    truth = {"classes": names}
    for split, n in (("train", n_train), ("test", n_test)):
        x, y = _images(rng, n, (3, 96, 96)), _labels(rng, n, 10)
        np.ascontiguousarray(np.transpose(x, (0, 1, 3, 2))).tofile(folder / f"{split}_X.bin")
        (y + 1).astype(np.uint8).tofile(folder / f"{split}_y.bin")
        truth[split] = (x, y)
    return truth


def save_datasets(path, datasets) -> None:
    """``robustviz.data.Dataset`` objects as plain tensors, lists and strings, for a test's
    subprocess to read with :func:`load_datasets` (cheaper than loading them again there:
    digits costs each process 1.4 s of CPU importing scikit-learn)."""
    import torch

    torch.save([dataclasses.asdict(d) for d in datasets], path)


def load_datasets(path) -> tuple:
    """The data sets :func:`save_datasets` wrote, read with ``weights_only=True``."""
    import torch

    from robustviz.data import Dataset

    return tuple(Dataset(**fields) for fields in torch.load(path, weights_only=True))
