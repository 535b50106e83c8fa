"""A training run described by one config (YAML or JSON): data, model, defense, trainer
options, final evaluation, and the paper table it reproduces."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from robustviz import runs

__all__ = ["TrainConfig"]

_DATA_KEYS = ("name", "n", "seed", "root", "split", "val_split")
_EVAL_KEYS = ("eps", "steps", "step_size", "n", "split")
_DIAG_KEYS = ("rdiv_every", "n", "steps", "step_size", "distance", "layer", "mode", "batch_size", "n_boot",
              "overfit_guard")
_FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}


def _section(value, name: str, allowed: tuple[str, ...] | None, *, needs_name: bool) -> dict:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise TypeError(f"config section {name!r} must be a mapping, got {type(value).__name__}")
    if needs_name and not isinstance(value.get("name"), str):
        raise ValueError(f"config section {name!r} needs a 'name' (got {value.get('name')!r})")
    if allowed is not None:
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise ValueError(f"unknown key(s) {unknown} in config section {name!r}; valid: {list(allowed)}")
    return dict(value)


@dataclasses.dataclass
class TrainConfig:
    """Everything that describes a training run; saved into the run as ``train_config``.

    Parameters
    ----------
    data : dict
        :func:`robustviz.data.load` arguments: ``name``, ``n`` (training subset size),
        ``seed``, ``root``, ``split`` (default "train") and ``val_split`` (default "test",
        where the validation subset and the final evaluation come from).
    model : dict
        :func:`robustviz.models.build` arguments (``name`` and keywords); ``num_classes``
        and ``in_channels`` default to the data's.
    defense : dict
        A :func:`robustviz.defenses.build` spec.
    train : dict
        :class:`robustviz.train.Trainer` options (all but ``defense``).
    eval : dict
        Final evaluation: ``eps`` (default: the trainer's), ``steps`` (20), ``step_size``
        (``2.5 * eps / steps``, the PGD-k rule used everywhere), ``n`` test images (2000), ``split``.
    diagnostics : dict
        Per-epoch latent diagnostics (:class:`robustviz.diagnostics.RDivCallback`):
        ``rdiv_every`` (epochs; 0 or absent: off), ``n`` fixed test images (500),
        ``steps`` (10) and ``step_size`` (``2.5 * eps / steps``) of the PGD at the final
        evaluation's eps, ``distance`` ("cosine"), ``layer`` ("penultimate"), ``mode``
        ("exact", or "minibatch": paper 001's average over batches of ``batch_size``, 128)
        and ``n_boot`` (0: no interval). ``overfit_guard``: ``true`` or a dict of
        :class:`robustviz.train.OverfitGuard` options (``n``, ``steps``, ``drop``, ``rise``)
        stops the run at catastrophic overfitting, keeping the best epoch's weights.
    paper, paper_table, notes : str, optional
        Which paper and table the setting reproduces.
    out : str, optional
        Default run directory.
    """

    data: dict = dataclasses.field(default_factory=lambda: {"name": "fashion-mnist"})
    model: dict = dataclasses.field(default_factory=lambda: {"name": "tinycnn"})
    defense: dict = dataclasses.field(default_factory=lambda: {"name": "nat"})
    train: dict = dataclasses.field(default_factory=dict)
    eval: dict = dataclasses.field(default_factory=dict)
    diagnostics: dict = dataclasses.field(default_factory=dict)
    paper: str | None = None
    paper_table: str | None = None
    notes: str | None = None
    out: str | None = None

    def __post_init__(self):
        from robustviz.train._trainer import Trainer

        self.data = _section(self.data, "data", _DATA_KEYS, needs_name=True)
        self.model = _section(self.model, "model", None, needs_name=True)
        self.defense = _section(self.defense, "defense", None, needs_name=True)
        options = tuple(o for o in Trainer.option_names() if o != "defense")
        self.train = _section(self.train, "train", options, needs_name=False)
        self.eval = _section(self.eval, "eval", _EVAL_KEYS, needs_name=False)
        self.diagnostics = _section(self.diagnostics, "diagnostics", _DIAG_KEYS, needs_name=False)
        for name in ("paper", "paper_table", "notes", "out"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                setattr(self, name, str(value))

    # -------------------------------------------------------------- conversions
    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        if not isinstance(d, dict):
            raise TypeError(f"a training config must be a mapping, got {type(d).__name__}")
        fields = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise ValueError(f"unknown top-level key(s) {unknown} in training config; valid: {fields}")
        return cls(**d)

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        """Read a ``.yaml``/``.yml`` or ``.json`` file."""
        path = Path(path)
        fmt = _FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise ValueError(f"config file must end in .yaml, .yml or .json, got {path.name!r}")
        if not path.is_file():
            raise FileNotFoundError(f"no config file at {path}")
        text = path.read_text()
        try:
            if fmt == "json":
                d = json.loads(text)
            else:
                import yaml
                d = yaml.safe_load(text)
        except Exception as err:  # noqa: BLE001 - both parsers' errors become one message
            raise ValueError(f"cannot parse {path} as {fmt.upper()}: {err}") from None
        if d is None or d == {}:   # not "train the defaults": 10 epochs on all the data
            raise ValueError(f"config file {path} is empty; it needs at least a 'data' or 'defense' "
                             f"section (see configs/)")
        return cls.from_dict(d)

    def dumps(self, fmt: str = "yaml") -> str:
        """The config as YAML or JSON text."""
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=2)
        if fmt != "yaml":
            raise ValueError(f"fmt must be 'yaml' or 'json', got {fmt!r}")
        import yaml
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> Path:
        """Write as YAML or JSON (by the suffix), atomically."""
        path = Path(path)
        fmt = _FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise ValueError(f"config file must end in .yaml, .yml or .json, got {path.name!r}")
        return runs.atomic_write_text(path, self.dumps(fmt))

    # -------------------------------------------------------------- use
    def trainer(self, **overrides: Any):
        """The :class:`~robustviz.train.Trainer` this config describes (``overrides``
        replace trainer options)."""
        from robustviz.train._trainer import Trainer

        return Trainer(**{"defense": dict(self.defense), **self.train, **overrides})
