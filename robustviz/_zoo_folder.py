"""Where the teaching zoo lies, and the guard that keeps it read-only.

Both :mod:`robustviz.runs` (whose writers refuse the zoo's folder) and :mod:`robustviz.zoo`
(whose models are run directories) need to know where the zoo is; this module imports
nothing of robustviz, so neither has to import the other for it. The public names live on
where users find them: :func:`robustviz.zoo.root`, :func:`robustviz.zoo.in_zoo`,
:func:`robustviz.runs.refuse_zoo`, :class:`robustviz.runs.ZooReadOnlyError` and
:data:`robustviz.runs.ZOO_MAINTENANCE_ENV`.
"""
from __future__ import annotations

import os
from pathlib import Path

#: The zoo's sha256 manifest, at its root.
MANIFEST = "MANIFEST.json"
#: Environment variable naming another zoo folder.
ZOO_ENV = "ROBUSTVIZ_ZOO"
#: Set to ``1`` only by the zoo's own maintenance (``scripts/train_zoo.py``,
#: ``benchmarks/autoattack.py --write-zoo``, :func:`robustviz.zoo.write_manifest`): every
#: other write into the zoo folder is refused.
ZOO_MAINTENANCE_ENV = "ROBUSTVIZ_ZOO_MAINTENANCE"


class ZooReadOnlyError(PermissionError):
    """A write aimed into the teaching zoo, whose files are read-only."""


def root() -> Path:
    """The zoo folder: ``$ROBUSTVIZ_ZOO``, else the package's ``zoo_data`` folder (an
    installed wheel carries the zoo there), else ``data/zoo`` of the source tree (a clone,
    an editable install)."""
    env = os.environ.get(ZOO_ENV)
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    packaged = here / "zoo_data"
    if (packaged / MANIFEST).is_file():
        return packaged
    return here.parent / "data" / "zoo"


def in_zoo(path: str | os.PathLike) -> bool:
    """Whether ``path`` lies in the zoo folder (whose files are read-only: never written)."""
    try:
        Path(path).resolve().relative_to(root().resolve())
        return True
    except (ValueError, OSError):
        return False


def refuse_zoo(path: str | os.PathLike) -> None:
    """Raise :class:`ZooReadOnlyError` when ``path`` lies in the teaching zoo.

    Every writer of :mod:`robustviz.runs` calls it (atomic writes, metric appends, run
    locks), so no command, report or training run can change a zoo file, whatever path it
    was given.
    """
    if os.environ.get(ZOO_MAINTENANCE_ENV) == "1":
        return
    if in_zoo(path):
        raise ZooReadOnlyError(f"{path} is inside the teaching zoo ({root()}), which is "
                               f"read-only: write to another folder (e.g. --out runs/NAME)")
