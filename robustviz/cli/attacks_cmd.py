"""``robustviz attacks list``: the attacks, their kind (eps-bounded or minimal-perturbation),
fields and defaults."""
from __future__ import annotations

import argparse
import json

# CLI name (robustviz evaluate --attack) -> class name in robustviz.attacks
NAMES = {"fgsm": "FGSM", "fgsm_rs": "FGSMRS", "pgd": "PGD", "mim": "MIM",
         "mpgd": "MultiTargetedPGD", "autoattack": "AutoAttack", "cw": "CW",
         "deepfool": "DeepFool"}
#: Attacks that look for the smallest perturbation that flips the prediction instead of
#: the worst one inside an eps ball: reported by median norm and success rate.
UNBOUNDED = ("cw", "deepfool")
_RUNTIME = ("bn_mode", "bf16", "seed")


def register(subparsers) -> None:
    p = subparsers.add_parser("attacks", help="list the attacks and their options",
                              description="Attacks of robustviz.attacks, called as "
                                          "x_adv = atk(model, x, y).")
    sub = p.add_subparsers(dest="attacks_command", metavar="ACTION")
    lst = sub.add_parser("list", help="name, kind, one-line description and fields of each attack",
                         description="One entry per attack: the name `robustviz evaluate "
                                     "--attack` takes, the class, whether it is bounded by eps "
                                     "or finds a minimal perturbation, and its fields with "
                                     "their defaults.")
    lst.add_argument("--json", action="store_true", help="print JSON instead of text")
    lst.set_defaults(func=_list)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def rows() -> list[dict]:
    import dataclasses

    from robustviz import attacks

    out = []
    for name, cls_name in NAMES.items():
        cls = getattr(attacks, cls_name, None)
        if cls is None:
            continue
        doc = (cls.__doc__ or "").strip().splitlines()
        fields = {}
        for f in dataclasses.fields(cls):
            if f.name in _RUNTIME or not f.init:
                continue
            default = f.default if f.default is not dataclasses.MISSING else None
            fields[f.name] = default if isinstance(default, (int, float, str, bool, type(None))) \
                else repr(default)
        out.append({"name": name, "class": cls_name,
                    "kind": "minimal perturbation" if name in UNBOUNDED else "eps-bounded",
                    "description": doc[0] if doc else "", "fields": fields})
    return out


def _list(args: argparse.Namespace) -> int:
    records = rows()
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    width = max(len(r["name"]) for r in records)
    for r in records:
        print(f"{r['name']:<{width}}  {r['class']} ({r['kind']}): {r['description']}")
        opts = ", ".join(f"{k}={v!r}" for k, v in r["fields"].items())
        print(f"{'':<{width}}  fields: {opts}")
    return 0
