"""``robustviz zoo``: list, describe and verify the shipped teaching models."""
from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("zoo", help="the shipped teaching models: list, info, verify",
                       description="The teaching model zoo (data/zoo/): trained, evaluated and "
                                   "checksummed models. `list` prints each model's recorded "
                                   "accuracies, `info NAME` its record, `verify` checks every "
                                   "file against the manifest's sha256.")
    zsub = p.add_subparsers(dest="zoo_command", metavar="ZOO_COMMAND")
    q = zsub.add_parser("list", help="models and their recorded accuracies")
    q.add_argument("--dataset", default=None,
                   help="data set (default: fashion-mnist where it is installed, else digits)")
    q.set_defaults(func=_list)
    q = zsub.add_parser("info", help="one model's config and evaluation record (JSON)")
    q.add_argument("name", help="model name, as `robustviz zoo list` prints it")
    q.add_argument("--dataset", default=None, help="data set (default as for list)")
    q.set_defaults(func=_info)
    q = zsub.add_parser("verify", help="check every zoo file against MANIFEST.json")
    q.set_defaults(func=_verify)
    p.set_defaults(func=_list, dataset=None)


def _list(args) -> int:
    from robustviz import zoo

    for ds in ([args.dataset] if args.dataset else zoo.datasets()):
        print(zoo.table(ds))
        print()
    print(f"zoo folder: {zoo.root()}  (rv.zoo.load(NAME, dataset=...))")
    return 0


def _info(args) -> int:
    from robustviz import zoo

    inf = zoo.info(args.name, args.dataset or zoo.default_dataset())
    inf.pop("epochs", None)
    print(json.dumps(inf, indent=1, sort_keys=True))
    return 0


def _verify(args) -> int:
    from robustviz import zoo

    n = zoo.verify()
    print(f"zoo OK: {n} files match {zoo.MANIFEST} in {zoo.root()}")
    return 0
