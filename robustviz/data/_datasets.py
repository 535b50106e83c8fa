"""Named data sets: where their files are looked for, how they are read, how they are fetched.

Search order for a data set's files (the first folder holding every file of the split wins):

1. ``root`` and its data-set subfolders (when ``root`` is given);
2. ``./data`` (relative to the working directory) and its data-set subfolders;
3. ``/usr/share/datasets/<name>`` (Debian's ``dataset-fashion-mnist`` installs there);
4. a torchvision download into ``root`` (default ``./data``), unless ``download=False``.

Offline, step 4 fails and the error says where to put the files and which command
fetches them (``data/README.md`` has the same table).
"""
from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np
import torch

from robustviz._validate import check_choice, check_int
from robustviz.data import _formats
from robustviz.data._dataset import Dataset, stratified_indices

__all__ = ["DatasetInfo", "NAMES", "SPLITS", "load", "available", "locate", "fetch",
           "info", "list_datasets"]

SPLITS = ("train", "test")
SYSTEM_ROOT = Path("/usr/share/datasets")
DEFAULT_ROOT = "data"

_FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                    "Sneaker", "Bag", "Ankle boot")
_DIGIT_CLASSES = tuple(str(i) for i in range(10))
_STL10_CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship",
                  "truck")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a named data set.

    ``sizes`` are the standard split sizes (what a complete copy holds); ``mean``/``std``
    are per-channel statistics of the training split (population std over all pixels),
    published values where a standard one exists.
    """

    name: str
    description: str
    shape: tuple[int, int, int]
    num_classes: int
    sizes: dict
    mean: tuple[float, ...]
    std: tuple[float, ...]
    subfolders: tuple[str, ...] = ()
    flat: bool = False            # also look in ./data itself (names that cannot clash)
    files: dict = dataclasses.field(default_factory=dict)   # split -> ((alternatives), ...)
    where: str = ""               # where to put the files, for error messages
    fetch_command: str = ""       # a shell command that downloads them


def _idx_files(prefix: str):
    names = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    return tuple((n, n + ".gz") for n in names)


def _tv(cls: str, extra: str = "") -> str:
    return (f"python -c \"import torchvision; torchvision.datasets.{cls}('data'{extra}, "
            f"download=True)\"")


_INFOS: dict[str, DatasetInfo] = {}


def _register(i: DatasetInfo) -> None:
    _INFOS[i.name] = i


_register(DatasetInfo(
    name="digits", description="scikit-learn handwritten digits, 8x8 (bundled, always available)",
    shape=(1, 8, 8), num_classes=10, sizes={"train": 1438, "test": 359},
    mean=(0.3059,), std=(0.3765,),  # load() computes them on the train split
    where="(bundled with scikit-learn)", fetch_command="(nothing to fetch)",
))
_register(DatasetInfo(
    name="fashion-mnist", description="Zalando Fashion-MNIST, 28x28 grey",
    shape=(1, 28, 28), num_classes=10, sizes={"train": 60000, "test": 10000},
    mean=(0.2860,), std=(0.3530,),
    subfolders=("fashion-mnist", "FashionMNIST/raw"), flat=True,
    files={"train": _idx_files("train"), "test": _idx_files("t10k")},
    where=("train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz "
           "and t10k-labels-idx1-ubyte.gz (gzipped or not) in ./data/fashion-mnist/ or ROOT/ "
           "(load(..., root=ROOT)); on Debian/Ubuntu `sudo apt-get install dataset-fashion-mnist` "
           "puts them in /usr/share/datasets/fashion-mnist"),
    fetch_command=_tv("FashionMNIST"),
))
_register(DatasetInfo(
    name="mnist", description="LeCun et al. MNIST digits, 28x28 grey",
    shape=(1, 28, 28), num_classes=10, sizes={"train": 60000, "test": 10000},
    mean=(0.1307,), std=(0.3081,),
    subfolders=("mnist", "MNIST/raw"),
    files={"train": _idx_files("train"), "test": _idx_files("t10k")},
    where=("the four IDX files train-images-idx3-ubyte, train-labels-idx1-ubyte, "
           "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (gzipped or not) in ./data/MNIST/raw/ "
           "(torchvision's layout) or ./data/mnist/"),
    fetch_command=_tv("MNIST"),
))
_register(DatasetInfo(
    name="cifar10", description="CIFAR-10, 32x32 colour",
    shape=(3, 32, 32), num_classes=10, sizes={"train": 50000, "test": 10000},
    # population std over all training pixels (not the often-quoted mean of per-image stds)
    mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
    subfolders=("cifar-10-batches-py",),
    files={"train": tuple((f"data_batch_{i}",) for i in range(1, 6)) + (("batches.meta",),),
           "test": (("test_batch",), ("batches.meta",))},
    where=("the extracted folder cifar-10-batches-py/ (data_batch_1..5, test_batch, "
           "batches.meta from cifar-10-python.tar.gz) in ./data/"),
    fetch_command=_tv("CIFAR10"),
))
_register(DatasetInfo(
    name="cifar100", description="CIFAR-100 (fine labels), 32x32 colour",
    shape=(3, 32, 32), num_classes=100, sizes={"train": 50000, "test": 10000},
    mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762),
    subfolders=("cifar-100-python",),
    files={"train": (("train",), ("meta",)), "test": (("test",), ("meta",))},
    where=("the extracted folder cifar-100-python/ (train, test, meta from "
           "cifar-100-python.tar.gz) in ./data/"),
    fetch_command=_tv("CIFAR100"),
))
_register(DatasetInfo(
    name="svhn", description="Street View House Numbers (cropped digits), 32x32 colour",
    shape=(3, 32, 32), num_classes=10, sizes={"train": 73257, "test": 26032},
    mean=(0.4377, 0.4438, 0.4728), std=(0.1980, 0.2010, 0.1970),
    subfolders=("svhn", "SVHN"), flat=True,
    files={"train": (("train_32x32.mat",),), "test": (("test_32x32.mat",),)},
    where="train_32x32.mat and test_32x32.mat in ./data/svhn/",
    fetch_command=("python -c \"import torchvision; [torchvision.datasets.SVHN('data/svhn', "
                   "split=s, download=True) for s in ('train', 'test')]\""),
))
_register(DatasetInfo(
    name="stl10", description="STL-10 labelled splits, 96x96 colour",
    shape=(3, 96, 96), num_classes=10, sizes={"train": 5000, "test": 8000},
    mean=(0.4467, 0.4398, 0.4066), std=(0.2603, 0.2566, 0.2713),
    subfolders=("stl10_binary",),
    files={"train": (("train_X.bin",), ("train_y.bin",)),
           "test": (("test_X.bin",), ("test_y.bin",))},
    where=("the extracted folder stl10_binary/ (train_X.bin, train_y.bin, test_X.bin, "
           "test_y.bin, class_names.txt from stl10_binary.tar.gz) in ./data/"),
    fetch_command=_tv("STL10", ", split='test'"),
))

_register(DatasetInfo(
    name="tiny-imagenet", description="Tiny-ImageNet, 200 classes, 64x64 colour ('test' = the labelled val/)",
    shape=(3, 64, 64), num_classes=200, sizes={"train": 100000, "test": 10000},
    mean=(0.4802, 0.4481, 0.3975), std=(0.2770, 0.2691, 0.2821),
    subfolders=("tiny-imagenet-200",),
    files={"train": (("wnids.txt",), ("train",)), "test": (("wnids.txt",), ("val/val_annotations.txt",))},
    where=("the extracted folder tiny-imagenet-200/ (wnids.txt, words.txt, train/<wnid>/images/, "
           "val/images/ and val/val_annotations.txt from tiny-imagenet-200.zip) in ./data/"),
    fetch_command=("wget http://cs231n.stanford.edu/tiny-imagenet-200.zip && unzip -q "
                   "tiny-imagenet-200.zip -d data/   (no torchvision downloader)"),
))

NAMES: tuple[str, ...] = tuple(_INFOS)

_ALIASES = {
    "fashion": "fashion-mnist", "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist",
    "cifar-10": "cifar10", "cifar-100": "cifar100", "stl-10": "stl10",
    "tinyimagenet": "tiny-imagenet", "tiny-imagenet-200": "tiny-imagenet",
}


# ------------------------------------------------------------------ arguments

def _canonical(name) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, one of {list(NAMES)}; got {type(name).__name__}")
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in _INFOS:
        check_choice(name, "name", NAMES)
    return key


def _check_root(root) -> Path | None:
    if root is None:
        return None
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a folder path (str or os.PathLike) or None, "
                        f"got {type(root).__name__}")
    if str(root) == "":
        raise ValueError("root must be a folder path, got an empty string")
    return Path(root).expanduser()


def _check_split(split) -> str:
    return check_choice(split, "split", SPLITS)


# ------------------------------------------------------------------ searching

def _candidate_folders(info_: DatasetInfo, root: Path | None) -> list[Path]:
    out: list[Path] = []
    bases = ([(root, True)] if root is not None else []) + [(Path(DEFAULT_ROOT), info_.flat)]
    for base, flat in bases:
        if flat:
            out.append(base)
        out.extend(base / sub for sub in info_.subfolders)
    out.append(SYSTEM_ROOT / info_.name)
    seen, unique = set(), []
    for p in out:
        key = os.path.abspath(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def _split_files(info_: DatasetInfo, folder: Path, split: str) -> list[Path] | None:
    """Paths of every file the split needs in ``folder``, or None if one is missing."""
    paths = []
    for alternatives in info_.files[split]:
        for fname in alternatives:
            p = folder / fname
            if p.is_file() or (fname == "train" and p.is_dir()):   # Tiny-ImageNet's train/ folder
                paths.append(p)
                break
        else:
            return None
    return paths


def _locate(info_: DatasetInfo, split: str, root: Path | None):
    for folder in _candidate_folders(info_, root):
        paths = _split_files(info_, folder, split)
        if paths is not None:
            return folder, paths
    return None, None


def locate(name: str, split: str = "train", *, root=None) -> Path | None:
    """The folder ``load`` would read ``name``/``split`` from, or None if not on disk.

    Never downloads. Digits (bundled with scikit-learn) give None.
    """
    key = _canonical(name)
    split = _check_split(split)
    root = _check_root(root)
    if key == "digits":
        return None
    folder, _ = _locate(_INFOS[key], split, root)
    return folder


def available(name: str, root=None, *, split: str | None = None) -> bool:
    """Whether ``name`` can be loaded without a download (both splits unless ``split``)."""
    key = _canonical(name)
    root = _check_root(root)
    splits = SPLITS if split is None else (_check_split(split),)
    if key == "digits":
        return True
    return all(_locate(_INFOS[key], s, root)[0] is not None for s in splits)


def info(name: str) -> DatasetInfo:
    """Static facts about a named data set (shape, classes, standard sizes, statistics)."""
    return _INFOS[_canonical(name)]


def list_datasets() -> list[str]:
    """Names ``load`` accepts."""
    return list(NAMES)


# ------------------------------------------------------------------ reading

def _read_digits(split: str):
    from sklearn.datasets import load_digits

    d = load_digits()
    images = d.images.astype(np.float32) / np.float32(16.0)   # values 0..16 -> [0, 1]
    labels = d.target.astype(np.int64)
    test_mask = _digits_test_mask(labels)
    mask = test_mask if split == "test" else ~test_mask
    train = images[~test_mask]
    mean, std = float(train.mean(dtype=np.float64)), float(train.std(dtype=np.float64))
    x = torch.from_numpy(np.ascontiguousarray(images[mask])).unsqueeze(1)
    y = torch.from_numpy(labels[mask])
    return x, y, list(_DIGIT_CLASSES), (mean,), (std,)


def _digits_test_mask(labels: np.ndarray, test_fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """Fixed stratified split: per class, floor(0.2 * count + 0.5) examples drawn with a
    generator seeded 0 go to test. Independent of ``load``'s ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    mask = np.zeros(labels.shape[0], dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = int(math.floor(test_fraction * len(members) + 0.5))
        pick = torch.randperm(len(members), generator=gen)[:k].numpy()
        mask[members[pick]] = True
    return mask


def _read_files(key: str, split: str, folder: Path, paths: list[Path]):
    """uint8 images (N, C, H, W), int64 labels (N,) and class names from ``paths``."""
    if key in ("fashion-mnist", "mnist"):
        images = _formats.read_idx(paths[0])
        labels = _formats.read_idx(paths[1]).astype(np.int64)
        if images.dtype != np.uint8 or images.ndim != 3:
            raise _formats.DatasetFormatError(
                f"{paths[0]}: expected uint8 images of shape (N, H, W), got {images.dtype} {images.shape}")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise _formats.DatasetFormatError(
                f"{paths[1]}: {labels.shape} labels for {images.shape[0]} images in {paths[0].name}")
        classes = _FASHION_CLASSES if key == "fashion-mnist" else _DIGIT_CLASSES
        return images[:, None], labels, list(classes)
    if key == "cifar10":
        images, labels = _formats.read_cifar_batches(paths[:-1], "labels")
        return images, labels, _formats.read_cifar_meta(paths[-1], "label_names")
    if key == "cifar100":
        images, labels = _formats.read_cifar_batches(paths[:-1], "fine_labels")
        return images, labels, _formats.read_cifar_meta(paths[-1], "fine_label_names")
    if key == "svhn":
        images, labels = _formats.read_svhn_mat(paths[0])
        return images, labels, list(_DIGIT_CLASSES)
    if key == "stl10":
        images, labels = _formats.read_stl10_binary(paths[0], paths[1])
        names_file = folder / "class_names.txt"
        classes = (_formats.read_stl10_class_names(names_file) if names_file.is_file()
                   else list(_STL10_CLASSES))
        return images, labels, classes
    raise AssertionError(key)  # pragma: no cover


def _to_float(images: np.ndarray) -> torch.Tensor:
    # division (not multiplication by 1/255) keeps 255 exactly at 1.0
    return torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32).div_(255.0)


# ------------------------------------------------------------------ fetching

def _torchvision_download(key: str, target: Path, split: str) -> None:
    import torchvision.datasets as tvd

    train = split == "train"
    if key == "fashion-mnist":
        tvd.FashionMNIST(str(target), train=train, download=True)
    elif key == "mnist":
        tvd.MNIST(str(target), train=train, download=True)
    elif key == "cifar10":
        tvd.CIFAR10(str(target), train=train, download=True)
    elif key == "cifar100":
        tvd.CIFAR100(str(target), train=train, download=True)
    elif key == "svhn":
        tvd.SVHN(str(target / "svhn"), split=split, download=True)
    elif key == "stl10":
        tvd.STL10(str(target), split=split, download=True)
    elif key == "tiny-imagenet":
        raise RuntimeError("torchvision has no Tiny-ImageNet downloader; fetch the zip by hand")
    else:  # pragma: no cover
        raise AssertionError(key)


def _not_found_message(info_: DatasetInfo, split: str, root: Path | None, reason: str) -> str:
    searched = ", ".join(os.path.abspath(p) for p in _candidate_folders(info_, root))
    return (f"data set {info_.name!r} ({split} split) {reason}.\n"
            f"  Searched: {searched}\n"
            f"  Put {info_.where}.\n"
            f"  Or fetch it where there is internet:\n"
            f"    {info_.fetch_command}\n"
            f"    (or: robustviz data fetch {info_.name} --root data)\n"
            f"  See data/README.md.")


def _existing_dirs(target: Path) -> set[str]:
    if not target.exists():
        return set()
    return {os.path.abspath(d) for d, _, _ in os.walk(target)}


def _remove_new_empty_dirs(target: Path, before: set[str], created_parents: list[Path]) -> None:
    """Undo the empty folders a failed download left behind (never touches older ones)."""
    if target.exists():
        for d, _, _ in os.walk(target, topdown=False):
            if os.path.abspath(d) not in before:
                try:
                    os.rmdir(d)
                except OSError:
                    pass
    for d in sorted(created_parents, key=lambda p: -len(p.parts)):
        try:
            d.rmdir()
        except OSError:
            pass


def fetch(name: str, root=None, *, split: str | None = None) -> Path | None:
    """Download ``name`` with torchvision into ``root`` (default ``./data``); return its folder.

    Both splits unless ``split`` is given. Does nothing when ``load(name, root=root)``
    already finds the files (in ``root``, ``./data`` or the system folder); returns None
    for ``digits`` (bundled with scikit-learn). Raises ``FileNotFoundError`` (naming the
    folders searched and the command) when the download fails, e.g. offline; empty
    folders the failed attempt created are removed again.
    """
    key = _canonical(name)
    root = _check_root(root)
    splits = SPLITS if split is None else (_check_split(split),)
    if key == "digits":
        return None
    info_ = _INFOS[key]
    target = root if root is not None else Path(DEFAULT_ROOT)
    folder = None
    for s in splits:
        folder, _ = _locate(info_, s, target)
        if folder is not None:  # load(root=target) already finds it
            continue
        created = [p for p in (target, *target.parents) if not p.exists()]
        before = _existing_dirs(target)
        try:
            _torchvision_download(key, target, s)
        except Exception as err:  # offline: URLError, OSError, RuntimeError, ...
            _remove_new_empty_dirs(target, before, created)
            raise FileNotFoundError(_not_found_message(
                info_, s, root, f"is not on disk and the download into {os.path.abspath(target)} failed "
                                f"({type(err).__name__}: {err})")) from err
        folder, _ = _locate(info_, s, target)
        if folder is None:
            raise FileNotFoundError(_not_found_message(
                info_, s, root, f"was downloaded into {target} but its files are not where "
                                f"expected"))
    return folder


# ------------------------------------------------------------------ load

def load(name: str, split: str = "train", *, root=None, n: int | None = None, seed: int = 0,
         download: bool = True) -> Dataset:
    """Load a named image data set into memory as float32 tensors in [0, 1].

    Parameters
    ----------
    name : str
        One of ``"digits"``, ``"fashion-mnist"``, ``"mnist"``, ``"cifar10"``,
        ``"cifar100"``, ``"svhn"``, ``"stl10"``, ``"tiny-imagenet"``.
    split : {"train", "test"}
        ``tiny-imagenet``'s ``"test"`` is its labelled ``val/`` folder (the official test
        images have no labels).
        ``digits`` has no official split: a fixed stratified 80/20 split is used (per
        class, ``floor(0.2 * count + 0.5)`` images drawn with seed 0 go to test), the same
        for every ``seed``; train 1438, test 359 images.
    root : path-like, optional
        Folder searched first, and the download target (default ``./data``). See the
        module docstring for the full search order.
    n : int, optional
        Return a class-stratified random subset of ``n`` images (equal numbers per class
        as far as the class sizes allow), see :func:`stratified_indices`.
    seed : int
        Seed of that subset; unused without ``n``.
    download : bool
        Try a torchvision download when the files are not found (default True).

    Returns
    -------
    Dataset
        ``x`` float32 in [0, 1], ``y`` int64, ``classes``, ``name``, ``split``,
        ``source`` (the folder read), and ``mean``/``std`` of the *training* split.

    Raises
    ------
    FileNotFoundError
        The files are not on disk and cannot be downloaded; the message says where to
        put them and which command fetches them.
    DatasetFormatError
        A file exists but is corrupt or truncated (the message names it).

    Shape
    -----
    x: (N, C, H, W) with (C, H, W) = (1, 8, 8) digits, (1, 28, 28) MNIST and
    Fashion-MNIST, (3, 32, 32) CIFAR and SVHN, (3, 96, 96) STL-10, (3, 64, 64)
    Tiny-ImageNet; y: (N,).

    Examples
    --------
    >>> d = load("fashion-mnist", "test")
    >>> d.x.shape
    torch.Size([10000, 1, 28, 28])
    """
    key = _canonical(name)
    split = _check_split(split)
    root = _check_root(root)
    subset_done = False
    if n is not None:
        check_int(n, "n", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    if not isinstance(download, bool):
        raise TypeError(f"download must be True or False, got {download!r}")
    info_ = _INFOS[key]

    if key == "digits":
        x, y, classes, mean, std = _read_digits(split)
        source = "scikit-learn"
    else:
        folder, paths = _locate(info_, split, root)
        if folder is None:
            if not download:
                raise FileNotFoundError(_not_found_message(
                    info_, split, root, "is not on disk (and download=False)"))
            target = root if root is not None else Path(DEFAULT_ROOT)
            fetch(key, target, split=split)
            folder, paths = _locate(info_, split, target)
        if key == "tiny-imagenet":   # with n, decode only the stratified subset's files
            from robustviz.data._tinyimagenet import read_tiny_imagenet
            select = None if n is None else (
                lambda lab: stratified_indices(torch.from_numpy(lab), n, seed=seed).numpy())
            images, labels, classes = read_tiny_imagenet(folder, split, select=select)
            subset_done = n is not None
        else:
            images, labels, classes = _read_files(key, split, folder, paths)
        x, y = _to_float(images), torch.from_numpy(labels)
        mean, std = info_.mean, info_.std
        source = str(folder)
    # The readers guarantee uint8 / 255 pixels and int64 labels; a cheap label check
    # replaces Dataset's scan over every pixel (which costs more than the read itself).
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= len(classes)):
        raise _formats.DatasetFormatError(
            f"{source}: labels in [{int(y.min())}, {int(y.max())}] but {len(classes)} classes")
    ds = Dataset._trusted(x=x, y=y, classes=classes, name=key, mean=mean, std=std,
                          split=split, source=source)
    if n is not None and not subset_done:
        ds = ds.sample(n, seed=seed)
    return ds
