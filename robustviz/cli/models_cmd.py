"""``robustviz models list``: the architectures build() knows, their size, input sizes and taps."""
from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    p = subparsers.add_parser("models", help="list model architectures")
    sub = p.add_subparsers(dest="models_command", metavar="ACTION")
    lst = sub.add_parser("list", help="name, parameters, input sizes and tap names of each model")
    lst.add_argument("--num-classes", type=int, default=10, help="classes to count parameters for (10)")
    lst.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lst.set_defaults(func=_list)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def rows(num_classes: int = 10) -> list[dict]:
    """One record per model: built with default options on the meta device (no memory,
    no initialisation cost) to count parameters and read the tap names."""
    import torch

    from robustviz import models

    out = []
    for name in models.list_models():
        info = models.model_info(name)
        with torch.device("meta"):
            model = models.build(name, num_classes=num_classes, seed=None)
        out.append({
            "name": name,
            "params": models.count_parameters(model),
            "in_channels": info.default_in_channels,
            "input_sizes": info.sizes_text(),
            "taps": list(model.layer_names),
            "options": info.options,
            "description": info.description,
        })
    return out


def _list(args: argparse.Namespace) -> int:
    records = rows(args.num_classes)
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    width = max(len(r["name"]) for r in records)
    for r in records:
        print(f"{r['name']:<{width}}  {r['params']:>12,} params  {r['description']}")
        print(f"{'':<{width}}  input: {r['in_channels']} ch (default), size {r['input_sizes']}")
        print(f"{'':<{width}}  taps: {', '.join(r['taps'])}")
        if r["options"]:
            opts = ", ".join(f"{k}={v!r}" for k, v in r["options"].items())
            print(f"{'':<{width}}  options: {opts}")
    return 0
