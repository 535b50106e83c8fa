"""Run directories and checkpoints that never unpickle.

A run directory holds::

    config.json            everything needed to rebuild the model and the data
    weights.safetensors    the model's state dict
    state.safetensors      optional training state (optimizer, scheduler, RNG), see save_state
    metrics.jsonl          one JSON object per line (epochs, evaluations, events)
    run.lock               while a process writes the run: its PID and host (see RunLock)
    figures/               optional

Every write goes to a temporary file in the same folder, is flushed to disk, then renamed
over the target, so a killed process leaves either the old file or the new one. Metric
lines are appended with one ``write`` under a file lock, so concurrent writers never lose
a line. A process that writes a run holds :class:`RunLock` for its lifetime.

The radius a run is evaluated at by default comes from :func:`eval_eps`; the per-data-set
defaults live in :data:`DEFAULT_EPS` (the one table the CLI, the trainer and the report use).
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import socket
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save
from torch import nn

__all__ = [
    "Run", "save_run", "load_run", "load_config", "save_weights", "load_weights",
    "save_state", "load_state", "append_metrics", "read_metrics", "atomic_write_bytes",
    "atomic_write_text", "CheckpointError", "RunLock", "RunLockedError", "DEFAULT_EPS",
    "default_eps", "eval_eps", "weights_epoch", "state_epoch", "clean_temp_files",
    "live_owner", "check_writable", "ZooReadOnlyError", "refuse_zoo", "load_encoder",
]

CONFIG = "config.json"
WEIGHTS = "weights.safetensors"
STATE = "state.safetensors"
METRICS = "metrics.jsonl"
LOCK = "run.lock"

try:  # POSIX advisory locks; elsewhere the lock file's PID alone decides
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


class CheckpointError(ValueError):
    """A weights or state file is truncated, tampered with, or belongs to another model."""


class RunLockedError(RuntimeError):
    """Another process holds the run directory's lock."""


class ZooReadOnlyError(PermissionError):
    """A write aimed into the teaching zoo, whose files are read-only."""


#: Set to ``1`` only by the zoo's own maintenance (``scripts/train_zoo.py``,
#: ``benchmarks/autoattack.py --write-zoo``, :func:`robustviz.zoo.write_manifest`): every
#: other write into the zoo folder is refused.
ZOO_MAINTENANCE_ENV = "ROBUSTVIZ_ZOO_MAINTENANCE"


def refuse_zoo(path: str | os.PathLike) -> None:
    """Raise :class:`ZooReadOnlyError` when ``path`` lies in the teaching zoo.

    Every writer of this module calls it (atomic writes, metric appends, run locks), so no
    command, report or training run can change a zoo file, whatever path it was given.
    """
    if os.environ.get(ZOO_MAINTENANCE_ENV) == "1":
        return
    from robustviz import zoo

    if zoo.in_zoo(path):
        raise ZooReadOnlyError(f"{path} is inside the teaching zoo ({zoo.root()}), which is "
                               f"read-only: write to another folder (e.g. --out runs/NAME)")


# --------------------------------------------------------------------------- atomic I/O
def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temp file + fsync + rename (never into the zoo)."""
    path = Path(path)
    refuse_zoo(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.filename is None:   # name the file (ENOSPC, EFBIG)
            raise OSError(err.errno, err.strerror or str(err), str(path)) from None
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def clean_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files an atomic write left behind when its process was killed
    before the rename (``.NAME.XXXX.tmp``); call it only while holding the folder's
    :class:`RunLock`. Returns the removed paths."""
    removed = []
    for p in Path(folder).glob(".*.tmp"):
        if p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return obj.item()
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "shape", None) == ():
        return obj.item()  # numpy scalars
    return obj


# --------------------------------------------------------------------------- weights
def save_weights(path: str | os.PathLike, model_or_state: nn.Module | dict, *,
                 metadata: dict[str, str] | None = None) -> Path:
    """Save a model's state dict as safetensors (atomically)."""
    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    return atomic_write_bytes(path, _st_save(tensors, metadata=metadata))


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    raw = path.read_bytes()
    try:
        tensors = _st_load(raw)
    except (SafetensorError, Exception) as err:  # noqa: BLE001 - any parse failure is corruption
        raise CheckpointError(f"{path} is not a readable safetensors file (truncated or "
                              f"tampered?): {err}") from None
    meta = {}
    try:
        n = int.from_bytes(raw[:8], "little")
        meta = json.loads(raw[8:8 + n]).get("__metadata__", {}) or {}
    except Exception:  # noqa: BLE001
        pass
    return tensors, meta


def load_weights(path: str | os.PathLike, model: nn.Module, *, strict: bool = True) -> nn.Module:
    """Load safetensors weights into ``model``; mismatches raise a ``CheckpointError`` naming
    the file, the missing/unexpected keys and any shape differences."""
    path = Path(path)
    tensors, _ = _read_safetensors(path)
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    shapes = [f"{k}: file {tuple(tensors[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(tensors)) if tensors[k].shape != own[k].shape]
    if strict and (missing or unexpected or shapes):
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s) e.g. {missing[:3]}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s) e.g. {unexpected[:3]}")
        if shapes:
            parts.append(f"shape mismatch e.g. {shapes[:3]}")
        raise CheckpointError(f"weights in {path} do not fit {type(model).__name__} "
                              f"(another architecture?): " + "; ".join(parts))
    dev = next((t.device for t in own.values()), torch.device("cpu"))
    model.load_state_dict({k: v.to(dev) for k, v in tensors.items() if k in own}, strict=strict)
    return model


# --------------------------------------------------------------------------- nested state
def _flatten(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        key = prefix or "_"
        tensors[key] = obj.detach().to("cpu").contiguous()
        return {"__tensor__": key}
    if hasattr(obj, "__array__") and hasattr(obj, "dtype") and not isinstance(obj, (int, float)):
        key = prefix or "_"
        tensors[key] = torch.as_tensor(obj).contiguous()
        return {"__ndarray__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[_flatten(k, f"{prefix}/k{i}", tensors), _flatten(v, f"{prefix}/{i}", tensors)]
                             for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_flatten(v, f"{prefix}/{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_flatten(v, f"{prefix}/{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint without pickling")


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__ndarray__" in obj:
            return tensors[obj["__ndarray__"]].numpy()
        if "__tuple__" in obj:
            return tuple(_unflatten(v, tensors) for v in obj["__tuple__"])
        if "__dict__" in obj:
            return {_unflatten(k, tensors): _unflatten(v, tensors) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


def save_state(path: str | os.PathLike, state: dict) -> Path:
    """Save a nested structure of tensors, arrays and JSON scalars (an optimizer's or
    scheduler's state dict, RNG states) as one safetensors file, atomically, without pickle.
    Dict keys keep their type (ints stay ints), tuples stay tuples."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _flatten(state, "", tensors)
    return atomic_write_bytes(path, _st_save(tensors, metadata={"robustviz_state": json.dumps(skeleton)}))


def load_state(path: str | os.PathLike) -> dict:
    """Inverse of :func:`save_state`."""
    path = Path(path)
    tensors, meta = _read_safetensors(path)
    if "robustviz_state" not in meta:
        raise CheckpointError(f"{path} holds no robustviz training state")
    try:
        skeleton = json.loads(meta["robustviz_state"])
        return _unflatten(skeleton, tensors)
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{path}: training state is inconsistent ({err})") from None


# --------------------------------------------------------------------------- metrics
def _flock(fd: int, exclusive: bool = True) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)


def append_metrics(run_dir: str | os.PathLike, record: dict) -> None:
    """Append one JSON line to ``metrics.jsonl``.

    The line goes out in a single ``write`` on a file opened with ``O_APPEND``, under an
    exclusive ``flock``, then is fsynced: concurrent writers (two evaluations of one run,
    a training process and an evaluation) never lose or interleave lines. A file whose last
    line was cut short (power loss) gets a newline first, so the new line stays whole.
    """
    run_dir = Path(run_dir)
    refuse_zoo(run_dir / METRICS)
    run_dir.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(_jsonable(record)) + "\n").encode("utf-8")
    fd = os.open(run_dir / METRICS, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        _flock(fd)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as err:   # name the file (ENOSPC, EFBIG)
            raise OSError(err.errno, err.strerror, str(run_dir / METRICS)) from None
    finally:
        os.close(fd)  # releases the flock


def read_metrics(run_dir: str | os.PathLike, *, kind: str | None = None) -> list[dict]:
    """All metric records of a run (optionally only those whose ``"kind"`` matches).

    A line that is not valid JSON (the cut-off last line of a process killed mid-write on a
    file system without atomic appends) is skipped with a warning naming it.
    """
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.split("\n")
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            last = i == len(lines) - 1   # no newline after it: a write that never finished
            what = "an incomplete last line" if last else f"line {i + 1}, which is not valid JSON"
            warnings.warn(f"{path}: skipping {what} ({line[:60]!r})", stacklevel=2)
    return [r for r in out if kind is None or r.get("kind") == kind]


# --------------------------------------------------------------------------- lock
_HELD: dict[str, list] = {}   # lock path -> [owner pid, depth, fd, created dir]


def _owner_text() -> str:
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                       "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                       "argv": [str(a) for a in sys.argv[:12]]})


def _read_owner(path: Path) -> dict:
    try:
        info = json.loads(path.read_text())
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


def _pid_alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # alive, another user's
        return True
    except OSError:
        return False
    return True


def _describe_owner(info: dict) -> str:
    if not info:
        return "an unknown process (the lock file is empty or unreadable)"
    return (f"pid {info.get('pid')} on host {info.get('host')}"
            + (f", started {info['started']}" if info.get("started") else "")
            + (f" ({' '.join(info['argv'])})" if info.get("argv") else ""))


class RunLock:
    """Exclusive lock of a run directory for the lifetime of the process that writes it.

    The lock is the file ``run.lock`` in the run directory, holding the owner's PID, host,
    start time and command line. On POSIX systems the owner also holds an ``flock`` on it,
    so a lock left by a killed process (kill -9, power loss) is recognised as stale, reported
    with a warning and taken over; without ``flock`` the PID decides (same host only). A lock
    held by a live process, or written on another host, is refused with a
    :class:`RunLockedError` naming the owner. Re-entrant within the owning process (the CLI
    holds it around ``Trainer.fit``, which takes it too).

    Acquire before writing anything into the run directory::

        with RunLock("runs/pgd_at"):
            ...

    Attributes
    ----------
    path : Path
        The lock file.
    stale_ : dict or None
        The owner record of a stale lock that was taken over.
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK
        self.stale_: dict | None = None

    def _key(self) -> str:
        return os.path.realpath(self.path)

    def acquire(self) -> "RunLock":
        held = _HELD.get(self._key())
        if held is not None and held[0] == os.getpid():
            held[1] += 1
            return self
        refuse_zoo(self.path)
        created = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = self._take()
        except BaseException:
            if created:
                _remove_if_empty(self.run_dir)
            raise
        _HELD[self._key()] = [os.getpid(), 1, fd, created]
        return self

    def _take(self) -> int | None:
        for _ in range(20):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    raise RunLockedError(self._message(_read_owner(self.path), "holds it")) from None
                try:   # the file may have been removed and re-created by a releasing owner
                    same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
                except FileNotFoundError:
                    same = False
                if not same:
                    os.close(fd)
                    continue
            previous = _read_owner(self.path)
            if previous and not self._stale(previous):
                os.close(fd)
                raise RunLockedError(self._message(previous, "holds it"))
            if previous:
                self.stale_ = previous
                warnings.warn(f"{self.run_dir}: taking over a stale lock left by "
                              f"{_describe_owner(previous)}: that process no longer runs "
                              f"(killed?); continuing", stacklevel=3)
            text = _owner_text().encode("utf-8")
            os.ftruncate(fd, 0)
            os.pwrite(fd, text, 0)
            os.fsync(fd)
            return fd
        raise RunLockedError(f"{self.run_dir}: could not take {self.path} (it keeps being replaced)")

    def _stale(self, owner: dict) -> bool:
        """Whether a lock record whose file is not flocked by anyone is a leftover."""
        if owner.get("host") != socket.gethostname():
            # flock may not reach across hosts (network file systems): do not guess
            raise RunLockedError(self._message(owner, "may hold it (written on another host, cannot "
                                                      "check that process from here)"))
        if fcntl is not None:
            return True   # no live process holds the flock: its owner is gone
        return owner.get("pid") != os.getpid() and not _pid_alive(owner.get("pid"))

    def _message(self, owner: dict, what: str) -> str:
        return (f"run directory {self.run_dir} is in use: {_describe_owner(owner)} {what}. Two "
                f"processes writing one run would mix their files. Wait for it, use another "
                f"directory, or, if that process is gone, delete {self.path}")

    def release(self) -> None:
        held = _HELD.get(self._key())
        if held is None or held[0] != os.getpid():
            return
        held[1] -= 1
        if held[1] > 0:
            return
        del _HELD[self._key()]
        _, _, fd, created = held
        try:
            os.unlink(self.path)   # while still holding the flock: nobody took it meanwhile
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)
        if created:
            _remove_if_empty(self.run_dir)

    @property
    def held(self) -> bool:
        held = _HELD.get(self._key())
        return held is not None and held[0] == os.getpid()

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> bool:
        self.release()
        return False


def live_owner(run_dir: str | os.PathLike) -> dict | None:
    """The owner record of the run's lock when a live process on this host holds it (a
    training run still writing), else ``None``. Reads only; never takes the lock."""
    path = Path(run_dir) / LOCK
    if not path.is_file():
        return None
    owner = _read_owner(path)
    if owner.get("host") == socket.gethostname() and owner.get("pid") != os.getpid() \
            and _pid_alive(owner.get("pid")):
        return owner
    return None


def check_writable(run_dir: str | os.PathLike) -> None:
    """Raise ``PermissionError`` naming the file when a record cannot be appended to the
    run's ``metrics.jsonl`` (read-only folder or file), before any work is spent on it.
    Creates nothing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no such folder)")
    target = run_dir / METRICS
    refuse_zoo(target)
    probe = target if target.exists() else run_dir
    if not os.access(probe, os.W_OK) or (probe == run_dir and not os.access(run_dir, os.X_OK)):
        raise PermissionError(f"cannot write {target} (read-only?)")
    try:   # a read-only mount answers os.access as writable for root: ask the file system
        if os.statvfs(run_dir).f_flag & os.ST_RDONLY:
            raise PermissionError(f"cannot write {target}: {run_dir} is on a read-only file system")
    except (AttributeError, OSError) as err:
        if isinstance(err, PermissionError):
            raise


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


# --------------------------------------------------------------------------- eval eps
#: Linf radius of each data set when a run records none: MNIST 0.3 (Madry et al., ICLR 2018);
#: this project's teaching radius 0.1 for Fashion-MNIST and digits; 8/255 for colour images.
DEFAULT_EPS: dict[str, float] = {"digits": 0.1, "fashion-mnist": 0.1, "mnist": 0.3, "cifar10": 8 / 255,
                                 "cifar100": 8 / 255, "svhn": 8 / 255, "stl10": 8 / 255,
                                 "tiny-imagenet": 8 / 255}


def default_eps(dataset: str | None, *, in_channels: int | None = None) -> float:
    """The default Linf radius of a data set (:data:`DEFAULT_EPS`); for an unknown data
    set 0.1 for one-channel and 8/255 for colour images."""
    if dataset in DEFAULT_EPS:
        return float(DEFAULT_EPS[dataset])
    return 0.1 if in_channels == 1 else 8 / 255


def _valid_eps(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and 0 < float(value) <= 1)


def eval_eps(config: dict, dataset: str | None = None) -> tuple[float, str]:
    """The radius a run is evaluated at by default, and why.

    In order: the evaluation radius recorded in ``config.json`` (``eval.eps``, written by
    the trainer and the train command); the ``eval.eps`` of the saved train command config
    (runs written before that); the trainer's ``eps`` option (``train.eps``, the radius it
    validated at); the training attack's radius (``defense.eps``); the data set's default
    (:data:`DEFAULT_EPS`).

    Parameters
    ----------
    config : dict
        A run's ``config.json`` (:func:`load_config`).
    dataset : str, optional
        Data set name for the default when the config names none.

    Returns
    -------
    (float, str)
        The radius and a short reason, e.g. ``(0.2, "the run's training eps (config.json
        defense.eps)")``.
    """
    if not isinstance(config, dict):
        raise TypeError(f"config must be a run's config dict, got {type(config).__name__}")

    def get(*keys):
        d = config
        for k in keys:
            if not isinstance(d, dict):
                return None
            d = d.get(k)
        return d

    for keys, what in ((("eval", "eps"), "the run's evaluation eps"),
                       (("train_config", "eval", "eps"), "the run's evaluation eps"),
                       (("train", "eps"), "the run's training eps"),
                       (("defense", "eps"), "the run's training eps")):
        value = get(*keys)
        if value is not None:
            if not _valid_eps(value):
                raise ValueError(f"config.json {'.'.join(keys)} = {value!r} is not a radius in (0, 1]")
            return float(value), f"{what} (config.json {'.'.join(keys)})"
    name = dataset if dataset is not None else get("data", "name")
    channels = get("model", "in_channels")
    eps = default_eps(name, in_channels=channels if isinstance(channels, int) else None)
    if name in DEFAULT_EPS:
        return eps, f"no eps recorded in the run: the default for {name}"
    return eps, (f"no eps recorded in the run and no default for data set {name!r}: "
                 f"{'0.1 for grey' if eps == 0.1 else '8/255 for colour'} images")


# --------------------------------------------------------------------------- runs
@dataclasses.dataclass
class Run:
    """A loaded run: the rebuilt model with its weights, its config and its metrics."""

    path: Path
    model: nn.Module
    config: dict
    metrics: list[dict]


def save_run(run_dir: str | os.PathLike, model: nn.Module, config: dict | Any, *,
             metrics: list[dict] | None = None) -> Path:
    """Write ``config.json`` and ``weights.safetensors`` (and metric lines if given).

    ``config`` must hold a ``"model"`` entry with the keyword arguments of
    :func:`robustviz.models.build` (``name``, ``num_classes``, ``in_channels``, ...), so
    :func:`load_run` can rebuild the model.
    """
    run_dir = Path(run_dir)
    cfg = _jsonable(config)
    if not isinstance(cfg, dict) or "model" not in cfg or "name" not in cfg["model"]:
        raise ValueError("config must be a dict with a 'model' entry holding build() arguments "
                         "(at least 'name')")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG, json.dumps(cfg, indent=2, sort_keys=True))
    save_weights(run_dir / WEIGHTS, model, metadata={"model": cfg["model"]["name"]})
    for rec in metrics or []:
        append_metrics(run_dir, rec)
    return run_dir


def load_config(run_dir: str | os.PathLike) -> dict:
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no {CONFIG})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} is not valid JSON: {err}") from None


def _header(path: Path) -> dict:
    """The JSON header of a safetensors file (reads only the header)."""
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        if not 0 < n < 100_000_000:
            raise CheckpointError(f"{path} is not a safetensors file (header length {n})")
        try:
            return json.loads(fh.read(n))
        except ValueError as err:
            raise CheckpointError(f"{path} has a corrupt header: {err}") from None


def weights_epoch(run_dir: str | os.PathLike) -> int | None:
    """The training epoch recorded in a run's weights file (``None``: not recorded, e.g.
    weights saved by :func:`save_run`, or no weights file)."""
    path = Path(run_dir) / WEIGHTS
    if not path.is_file():
        return None
    value = (_header(path).get("__metadata__") or {}).get("epoch")
    return int(value) if value is not None and str(value).isdigit() else None


def state_epoch(run_dir: str | os.PathLike) -> int | None:
    """The epoch of a run's training state (``None`` when there is no state file)."""
    path = Path(run_dir) / STATE
    if not path.is_file():
        return None
    meta = _header(path).get("__metadata__") or {}
    try:   # the skeleton of save_state: a dict is {"__dict__": [[key, value], ...]}
        pairs = json.loads(meta["robustviz_state"])["__dict__"]
        return int(dict((k, v) for k, v in pairs if isinstance(k, str))["epoch"])
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{path} holds no robustviz training state") from None


def _check_declared_sizes(run_dir: Path, spec: dict, models) -> None:
    """Compare the model ``config.json`` asks for with the weights file's header before any
    memory is taken: the header's data must fit the file, and the model, built on the
    ``meta`` device (no memory), must have the file's tensor names and shapes. A config
    asking for a model of any width is refused here, not after allocating it."""
    path = run_dir / WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    head = _header(path)
    with open(path, "rb") as fh:
        n_head = int.from_bytes(fh.read(8), "little")
    size = path.stat().st_size
    try:
        ends = [int(v["data_offsets"][1]) for k, v in head.items() if k != "__metadata__"]
        shapes = {k: [int(d) for d in v["shape"]] for k, v in head.items() if k != "__metadata__"}
    except (TypeError, KeyError, ValueError, IndexError):
        raise CheckpointError(f"{path} has a malformed safetensors header") from None
    if 8 + n_head + max(ends, default=0) != size:
        raise CheckpointError(f"{path}: its header declares {8 + n_head + max(ends, default=0)} "
                              f"bytes but the file has {size} (truncated or tampered?)")
    try:
        with torch.device("meta"):
            probe = models.build(**spec)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{run_dir / CONFIG}: the 'model' entry cannot be built: {err}") from None
    except Exception:  # noqa: BLE001 - a model that cannot be built on meta: load_weights checks
        return
    own = {k: list(v.shape) for k, v in probe.state_dict().items()}
    wrong = [f"{k}: config {own[k]} vs file {shapes.get(k)}" for k in own if shapes.get(k) != own[k]]
    extra = sorted(set(shapes) - set(own))
    if wrong or extra:
        raise CheckpointError(
            f"{run_dir / CONFIG} asks for a model that {path.name} does not hold (refused before "
            f"building it): " + "; ".join(wrong[:3] + [f"unexpected {k}" for k in extra[:3]]))


def load_run(run_dir: str | os.PathLike, *, device: str | torch.device = "cpu") -> Run:
    """Rebuild a run's model from its config and load its weights (never unpickles).

    Warns when the weights file and the training state disagree on the epoch (a process
    stopped between writing the two): resuming the run repairs it.
    """
    from robustviz import models  # runs sit above models in the layering

    run_dir = Path(run_dir)
    cfg = load_config(run_dir)
    spec = cfg.get("model")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ValueError(f"{run_dir / CONFIG} has no 'model' entry with the build() arguments "
                         f"(at least 'name'), so the model cannot be rebuilt; got {spec!r}. Runs of "
                         "models not built by robustviz.models.build cannot be loaded by name")
    _check_declared_sizes(run_dir, spec, models)
    model = models.build(**spec).to(device)
    load_weights(run_dir / WEIGHTS, model)
    bad = [k for k, v in model.state_dict().items()
           if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        warnings.warn(f"{run_dir / WEIGHTS} holds NaN or infinite values in {len(bad)} tensor(s), "
                      f"e.g. {bad[:3]} (training diverged?): this model's outputs are not results",
                      stacklevel=2)
    w_epoch, s_epoch = weights_epoch(run_dir), state_epoch(run_dir)
    if w_epoch is not None and s_epoch is not None and w_epoch != s_epoch:
        warnings.warn(f"{run_dir}: {WEIGHTS} holds epoch {w_epoch} but the training state is at "
                      f"epoch {s_epoch} (the process stopped between the two writes); resume the "
                      f"run to rewrite the weights from the state", stacklevel=2)
    model.eval()
    return Run(path=run_dir, model=model, config=cfg, metrics=read_metrics(run_dir))


def load_encoder(run_dir, *, branch: str | None = None, device="cpu") -> nn.Module:
    """The model of a pretraining (or any training) run, in eval mode, as an encoder to
    finetune (:func:`robustviz.train.prepare_finetune`) or to cluster with.

    A run trained with separate BatchNorm (``config["pretrain"]["separate_bn"]``) is rebuilt
    with its branches, loaded, and folded to ``branch`` (default: the run's
    ``finetune_branch``, AdvCL's adversarial one) so the result is the plain architecture.
    Loads ``weights.safetensors`` without unpickling.
    """
    from robustviz import models  # runs sit above models in the layering
    from robustviz.models._dual_bn import select_branch, separate_bn

    run_dir = Path(run_dir)
    cfg = load_config(run_dir)
    if not isinstance(cfg.get("model"), dict):
        raise ValueError(f"{run_dir}/config.json has no 'model' entry to rebuild the encoder from")
    model = models.build(**cfg["model"])
    pre = cfg.get("pretrain") or {}
    branches = pre.get("separate_bn") or []
    if branches:
        separate_bn(model, branches)
    load_weights(run_dir / WEIGHTS, model)
    if branches:
        select_branch(model, branch or pre.get("finetune_branch") or branches[-1])
    return model.to(device).eval()
