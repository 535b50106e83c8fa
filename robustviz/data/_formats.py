"""Readers for the on-disk formats the supported data sets ship in.

Every reader returns plain NumPy arrays: images as ``uint8`` of shape (N, C, H, W) and
labels as ``int64`` of shape (N,). Conversion to float tensors in [0, 1] happens in one
place (``_datasets``). Formats:

* IDX (MNIST, Fashion-MNIST): big-endian header ``00 00 <dtype> <ndim>``, then ``ndim``
  uint32 sizes, then the values in C order; optionally gzip-compressed.
* CIFAR-10/100 "python version": pickled dicts (written by Python 2) with ``data`` of
  shape (N, 3072) holding the red, green and blue 32x32 planes in row-major order, and
  ``labels`` (CIFAR-10) or ``fine_labels`` (CIFAR-100). They are read with a restricted
  unpickler that only rebuilds NumPy arrays and plain containers, never arbitrary objects.
* SVHN cropped digits: MATLAB v5 files with ``X`` of shape (H, W, C, N) and ``y`` of shape
  (N, 1), where digit 0 is stored as label 10.
* STL-10 binary: raw ``uint8`` images stored column-major, 3x96x96 each, and labels 1..10.
"""
from __future__ import annotations

import codecs
import gzip
import importlib
import pickle
import struct
from pathlib import Path

import numpy as np

__all__ = [
    "DatasetFormatError", "read_idx", "read_cifar_batches", "read_cifar_meta",
    "read_svhn_mat", "read_stl10_binary", "read_stl10_class_names",
]


class DatasetFormatError(RuntimeError):
    """A data file exists but is truncated, corrupt or not in the expected format."""


# ---------------------------------------------------------------------------- IDX

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _open_maybe_gz(path: Path):
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def _read_exact_into(f, arr: np.ndarray, path: Path) -> None:
    view = memoryview(arr.reshape(-1).view(np.uint8))
    got = 0
    while got < len(view):
        k = f.readinto(view[got:])
        if not k:
            break
        got += k
    if got != len(view):
        raise DatasetFormatError(
            f"{path}: truncated IDX file: header promises {len(view)} data bytes, found {got}")


# deflate compresses at most about 1032:1, so a gzip file cannot hold more than this many
# times its own size (Deutsch, RFC 1951)
_GZIP_MAX_RATIO = 1032


def _check_idx_size(path: Path, dims, dtype: np.dtype, header: int) -> None:
    """Compare the size the header declares with the file's real size before taking memory:
    a header of a few bytes can declare a terabyte-sized array."""
    want = int(np.prod(dims, dtype=object)) * dtype.itemsize + header
    size = path.stat().st_size
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
        if gz:   # the gzip trailer holds the uncompressed size modulo 2**32 (RFC 1952)
            fh.seek(-4, 2)
            isize = int.from_bytes(fh.read(4), "little")
    if not gz and want != size:
        what = "truncated IDX file" if size < want else "IDX file is longer than its header says"
        raise DatasetFormatError(f"{path}: {what}: the IDX header declares shape {tuple(dims)} "
                                 f"({want} bytes) but the file has {size} bytes")
    if gz and (want > _GZIP_MAX_RATIO * size or want % 2 ** 32 != isize):
        raise DatasetFormatError(f"{path}: the IDX header declares shape {tuple(dims)} "
                                 f"({want} bytes) but the gzip file holds {isize} bytes "
                                 f"(modulo 2**32) in {size} compressed bytes")


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or uncompressed) into a NumPy array of its stored shape.

    The data are read straight into a preallocated array (no intermediate copy), so the
    60,000-image Fashion-MNIST training file loads in a fraction of a second.

    Raises
    ------
    DatasetFormatError
        When the header is invalid or the file is shorter or longer than the header says.
    """
    path = Path(path)
    try:
        with _open_maybe_gz(path) as f:
            head = f.read(4)
            if len(head) != 4 or head[:2] != b"\x00\x00" or head[2] not in _IDX_DTYPES:
                raise DatasetFormatError(f"{path}: not an IDX file (bad magic number {head!r})")
            dtype, ndim = _IDX_DTYPES[head[2]], head[3]
            raw_dims = f.read(4 * ndim)
            if len(raw_dims) != 4 * ndim:
                raise DatasetFormatError(f"{path}: truncated IDX header")
            dims = struct.unpack(f">{ndim}I", raw_dims)
            _check_idx_size(path, dims, dtype, 4 + 4 * ndim)
            arr = np.empty(dims, dtype=dtype)
            _read_exact_into(f, arr, path)
            if f.read(1):
                raise DatasetFormatError(
                    f"{path}: IDX file is longer than its header {tuple(dims)} says")
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise DatasetFormatError(f"{path}: cannot read IDX file ({err})") from err
    return arr.astype(dtype.newbyteorder("="), copy=False)


# -------------------------------------------------------------------- CIFAR pickles

def _numpy_multiarray():
    for mod in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return importlib.import_module(mod)
        except ImportError:  # pragma: no cover - depends on the NumPy version
            continue
    raise ImportError("cannot import numpy's multiarray module")  # pragma: no cover


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler for the CIFAR batch format only: NumPy arrays, dicts, lists, strings.

    ``find_class`` resolves exactly the globals a pickled NumPy array needs and refuses
    everything else, so a tampered batch file cannot run code when loaded.
    """

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module, name):
        multiarray = _numpy_multiarray()
        allowed = {
            ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
            ("numpy.core.multiarray", "scalar"): multiarray.scalar,
            ("numpy._core.multiarray", "scalar"): multiarray.scalar,
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): np.dtype,
            ("_codecs", "encode"): codecs.encode,
        }
        try:
            return allowed[(module, name)]
        except KeyError:
            raise DatasetFormatError(
                f"{self._path}: refusing to unpickle {module}.{name}; a CIFAR batch holds only "
                f"NumPy arrays, lists and strings (the file is not a CIFAR batch or was tampered with)"
            ) from None


def _load_pickle_dict(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = _ArrayUnpickler(f, path).load()
    except DatasetFormatError:
        raise
    except FileNotFoundError:
        raise
    except Exception as err:  # truncated stream, wrong protocol, ...
        raise DatasetFormatError(f"{path}: cannot read CIFAR batch ({type(err).__name__}: {err})") from err
    if not isinstance(obj, dict):
        raise DatasetFormatError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def read_cifar_batches(paths, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Read and concatenate CIFAR "python version" batches.

    Parameters
    ----------
    paths : list of path-like
        Batch files, in order (``data_batch_1`` .. ``data_batch_5``, or ``test_batch``;
        ``train``/``test`` for CIFAR-100).
    label_key : {"labels", "fine_labels"}

    Returns
    -------
    images : np.ndarray of uint8, shape (N, 3, 32, 32)
    labels : np.ndarray of int64, shape (N,)
    """
    images, labels = [], []
    for p in paths:
        p = Path(p)
        entry = _load_pickle_dict(p)
        if "data" not in entry or label_key not in entry:
            raise DatasetFormatError(f"{p}: CIFAR batch lacks 'data' or '{label_key}' "
                                     f"(keys: {sorted(map(str, entry))})")
        data = np.asarray(entry["data"])
        lab = np.asarray(entry[label_key], dtype=np.int64).reshape(-1)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise DatasetFormatError(f"{p}: 'data' must be uint8 of shape (N, 3072), "
                                     f"got {data.dtype} {data.shape}")
        if data.shape[0] != lab.shape[0]:
            raise DatasetFormatError(f"{p}: {data.shape[0]} images but {lab.shape[0]} labels")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(lab)
    return np.concatenate(images), np.concatenate(labels)


def read_cifar_meta(path: str | Path, key: str) -> list[str]:
    """Class names from ``batches.meta`` (key ``label_names``) or ``meta`` (``fine_label_names``)."""
    path = Path(path)
    entry = _load_pickle_dict(path)
    if key not in entry:
        raise DatasetFormatError(f"{path}: meta file lacks '{key}'")
    return [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in entry[key]]


# ---------------------------------------------------------------------------- SVHN

def read_svhn_mat(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an SVHN ``*_32x32.mat`` file.

    Returns
    -------
    images : np.ndarray of uint8, shape (N, 3, 32, 32)
    labels : np.ndarray of int64, shape (N,), digit 0 as label 0 (the file stores 10)
    """
    from scipy.io import loadmat

    path = Path(path)
    try:
        mat = loadmat(path, variable_names=["X", "y"])
    except FileNotFoundError:
        raise
    except Exception as err:
        raise DatasetFormatError(f"{path}: cannot read SVHN .mat file ({err})") from err
    if "X" not in mat or "y" not in mat:
        raise DatasetFormatError(f"{path}: SVHN file lacks 'X' or 'y'")
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1).astype(np.int64)
    if x.ndim != 4 or x.shape[2] != 3 or x.shape[3] != y.shape[0]:
        raise DatasetFormatError(f"{path}: 'X' must be (H, W, 3, N) matching {y.shape[0]} "
                                 f"labels, got {x.shape}")
    y[y == 10] = 0
    images = np.ascontiguousarray(np.transpose(x, (3, 2, 0, 1)), dtype=np.uint8)
    return images, y


# --------------------------------------------------------------------------- STL-10

_STL_SIDE = 96


def read_stl10_binary(images_path: str | Path, labels_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read STL-10 ``*_X.bin`` / ``*_y.bin`` files.

    Returns
    -------
    images : np.ndarray of uint8, shape (N, 3, 96, 96)
    labels : np.ndarray of int64, shape (N,), 0-based (the file stores 1..10)
    """
    images_path, labels_path = Path(images_path), Path(labels_path)
    raw = np.fromfile(images_path, dtype=np.uint8)
    per = 3 * _STL_SIDE * _STL_SIDE
    if raw.size % per:
        raise DatasetFormatError(f"{images_path}: size {raw.size} is not a multiple of {per} "
                                 f"(3x96x96 images); truncated?")
    # stored column-major per channel: swap the last two axes to get (C, H, W)
    images = np.ascontiguousarray(raw.reshape(-1, 3, _STL_SIDE, _STL_SIDE).transpose(0, 1, 3, 2))
    labels = np.fromfile(labels_path, dtype=np.uint8).astype(np.int64) - 1
    if labels.shape[0] != images.shape[0]:
        raise DatasetFormatError(f"{labels_path}: {labels.shape[0]} labels for "
                                 f"{images.shape[0]} images in {images_path.name}")
    if labels.size and labels.min() < 0:
        raise DatasetFormatError(f"{labels_path}: STL-10 labels must be 1..10")
    return images, labels


def read_stl10_class_names(path: str | Path) -> list[str]:
    """One class name per line."""
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
