"""robustviz: adversarial robustness research and teaching toolkit.

Subpackages load on first use, so ``import robustviz as rv`` is cheap and a user of
``rv.data`` never pays for ``rv.figures``::

    import robustviz as rv
    d = rv.data.load("fashion-mnist", "test", n=1000)
    model = rv.models.build("tinycnn", num_classes=10, in_channels=1)
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = (
    "data", "models", "runs", "attacks", "evaluate", "train", "defenses",
    "diagnostics", "figures", "report", "demo", "cli", "zoo", "notebooks", "widgets",
    "certify", "exercises",
)

__all__ = list(_SUBMODULES) + ["__version__"]


def __getattr__(name: str):
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'robustviz' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
