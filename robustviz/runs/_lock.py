"""The run lock: one process writes a run directory at a time.

A process that writes a run holds :class:`RunLock` for its lifetime (the file ``run.lock``
with its PID and host, and an ``flock`` on POSIX systems); :func:`live_owner` tells whether
a live process holds it, and :func:`check_writable` whether a record could be appended to
the run at all, before any work is spent on it.
"""
from __future__ import annotations

import datetime
import json
import os
import socket
import sys
import warnings
from pathlib import Path

from robustviz._zoo_folder import refuse_zoo
from robustviz.runs._layout import LOCK, METRICS

try:  # POSIX advisory locks; elsewhere the lock file's PID alone decides
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


class RunLockedError(RuntimeError):
    """Another process holds the run directory's lock."""


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
