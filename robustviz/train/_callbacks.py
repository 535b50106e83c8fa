"""Callbacks: functions called after each epoch's validation, whose returned metrics join
the epoch's record (``metrics.jsonl``)."""
from __future__ import annotations

from robustviz.train._options import jsonable

# Keys of an epoch record that a callback may not overwrite.
RESERVED = ("kind", "epoch", "loss", "lr", "time_s", "images", "val_clean_acc", "val_robust_acc",
            "val_n")


def callback_metrics(callbacks, *, model, epoch: int, run_dir) -> dict:
    """Call each of ``callbacks`` as ``cb(model=, epoch=, run_dir=)``; return the metrics they
    returned, merged (a ``TypeError`` for a return that is not a dict or ``None``, a
    ``ValueError`` for a name in :data:`RESERVED`)."""
    out: dict = {}
    for cb in callbacks:
        extra_metrics = cb(model=model, epoch=epoch, run_dir=run_dir)
        if extra_metrics is not None:
            if not isinstance(extra_metrics, dict):
                raise TypeError(f"callback {getattr(cb, '__name__', cb)!r} must return a dict "
                                f"of metrics or None, got {type(extra_metrics).__name__}")
            clash = sorted(set(extra_metrics) & set(RESERVED))
            if clash:
                raise ValueError(f"callback {getattr(cb, '__name__', cb)!r} returned reserved "
                                 f"metric name(s) {clash}")
            out.update(jsonable(extra_metrics))
    return out
