"""The files of a run directory, by name (what every other module of the package reads or
writes; see the package docstring for what each holds)."""
from __future__ import annotations

CONFIG = "config.json"
WEIGHTS = "weights.safetensors"
STATE = "state.safetensors"
METRICS = "metrics.jsonl"
LOCK = "run.lock"
