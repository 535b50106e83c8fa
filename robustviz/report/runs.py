"""The runs section: each run's path and config.json."""
from __future__ import annotations

import json

from robustviz.report._context import Context
from robustviz.report._sections import Section


def section(ctx: Context) -> Section:
    details = []
    for nm, run in ctx.runs.items():
        epochs = [m for m in run.metrics if m.get("kind") == "epoch"]
        details.append((f"{nm}: {run.path} ({len(epochs)} epoch record(s)), config.json",
                        json.dumps(run.config, indent=2, sort_keys=True)))
    return Section(title="Runs", details=details)

