"""``robustviz defenses list``: the names `robustviz train --defense` and config files take."""
from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    p = subparsers.add_parser("defenses", help="list the defenses and loss terms",
                              description="Defenses of robustviz.defenses: loss objects "
                                          "composed from terms and run by the one Trainer.")
    sub = p.add_subparsers(dest="defenses_command", metavar="ACTION")
    lst = sub.add_parser("list", help="name, class and one-line description of each defense",
                         description="One entry per name robustviz.defenses.build accepts "
                                     "(`robustviz train --defense NAME`, a config's "
                                     "defense.name or a term's name).")
    lst.add_argument("--json", action="store_true", help="print JSON instead of text")
    lst.set_defaults(func=_list)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def rows() -> list[dict]:
    from robustviz import defenses
    from robustviz.defenses._base import _REGISTRY

    out = []
    for name in defenses.list_defenses():
        cls = _REGISTRY[name]
        doc = (cls.__doc__ or "").strip().split("\n\n")[0]
        out.append({"name": name, "class": cls.__name__, "description": " ".join(doc.split())})
    return out


def _list(args: argparse.Namespace) -> int:
    records = rows()
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    width = max(len(r["name"]) for r in records)
    for r in records:
        print(f"{r['name']:<{width}}  {r['description']}")
    return 0
