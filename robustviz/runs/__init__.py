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
a line. A process that writes a run holds :class:`RunLock` for its lifetime. No write
reaches the teaching zoo (:func:`refuse_zoo`).

The radius a run is evaluated at by default comes from :func:`eval_eps`; the per-data-set
defaults live in :data:`DEFAULT_EPS` (the one table the CLI, the trainer and the report use).

Where each part lives (import everything from ``robustviz.runs``):

=================  ====================================================================
``_layout``        the file names above (``CONFIG``, ``WEIGHTS``, ``STATE``, ``METRICS``,
                   ``LOCK``)
``_atomic``        atomic writes (``atomic_write_bytes``, ``atomic_write_text``) and the
                   clean-up of their leftovers (``clean_temp_files``)
``_weights``       safetensors weights and training state (``save_weights``,
                   ``load_weights``, ``save_state``, ``load_state``, ``weights_epoch``,
                   ``state_epoch``, ``CheckpointError``)
``_metrics``       ``metrics.jsonl`` (``append_metrics`` under its lock, ``read_metrics``)
``_lock``          ``RunLock``, ``RunLockedError``, ``live_owner``, ``check_writable``
``_eps``           ``DEFAULT_EPS``, ``default_eps``, ``eval_eps``
``_run``           ``Run``, ``save_run``, ``load_config``, ``load_run``, ``load_encoder``
                   (a config's model checked against the weights' header before it is built)
=================  ====================================================================

``refuse_zoo``, ``ZooReadOnlyError`` and ``ZOO_MAINTENANCE_ENV`` come from
:mod:`robustviz._zoo_folder`, which knows where the zoo lies without importing
:mod:`robustviz.zoo` (the zoo's models are runs: it imports this package).

The writers inside the package call ``atomic_write_bytes``, ``atomic_write_text``,
``save_weights`` and ``append_metrics`` through this namespace, so replacing
``robustviz.runs.atomic_write_bytes`` or ``robustviz.runs.append_metrics`` (the fault
injection of ``tests/test_faults.py``) intercepts every byte a run receives.
"""
from __future__ import annotations

from robustviz._zoo_folder import ZOO_MAINTENANCE_ENV, ZooReadOnlyError, refuse_zoo
from robustviz.runs._atomic import atomic_write_bytes, atomic_write_text, clean_temp_files
from robustviz.runs._eps import DEFAULT_EPS, default_eps, eval_eps
from robustviz.runs._layout import CONFIG, LOCK, METRICS, STATE, WEIGHTS
from robustviz.runs._lock import RunLock, RunLockedError, check_writable, live_owner
from robustviz.runs._metrics import append_metrics, read_metrics
from robustviz.runs._run import Run, load_config, load_encoder, load_run, save_run
from robustviz.runs._weights import (CheckpointError, load_state, load_weights, save_state,
                                     save_weights, state_epoch, weights_epoch)
from robustviz.runs._weights import _read_safetensors  # noqa: F401 - robustviz.train._checkpoint reads it

__all__ = [
    "Run", "save_run", "load_run", "load_config", "save_weights", "load_weights",
    "save_state", "load_state", "append_metrics", "read_metrics", "atomic_write_bytes",
    "atomic_write_text", "CheckpointError", "RunLock", "RunLockedError", "DEFAULT_EPS",
    "default_eps", "eval_eps", "weights_epoch", "state_epoch", "clean_temp_files",
    "live_owner", "check_writable", "ZooReadOnlyError", "refuse_zoo", "load_encoder",
]
