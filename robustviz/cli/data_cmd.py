"""``robustviz data list`` / ``robustviz data fetch``: which data sets are on this machine,
their size and shape, where they were found; download one with torchvision."""
from __future__ import annotations

import argparse
import json
import os


def register(subparsers) -> None:
    p = subparsers.add_parser("data", help="list or fetch data sets")
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")
    lst = sub.add_parser("list", help="name, available here or not, size, shape, where found")
    lst.add_argument("--root", default=None, help="folder searched before ./data (as load(root=...))")
    lst.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lst.set_defaults(func=_list)
    fet = sub.add_parser("fetch", help="download a data set with torchvision (needs internet)")
    fet.add_argument("name", help="data set name (see `robustviz data list`)")
    fet.add_argument("--root", default="data", help="download folder (default: ./data)")
    fet.add_argument("--split", choices=("train", "test"), default=None,
                     help="only this split (default: both)")
    fet.set_defaults(func=_fetch)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def _disk_bytes(folder, alternatives) -> int:
    """Bytes of the split's files in ``folder`` (the first existing name of each group)."""
    total = 0
    for names in alternatives:
        for fname in names:
            path = os.path.join(folder, fname)
            if os.path.isfile(path):
                total += os.path.getsize(path)
                break
    return total


def rows(root=None) -> list[dict]:
    """One record per data set: availability per split, standard sizes, shape, folder."""
    from robustviz import data

    out = []
    for name in data.list_datasets():
        info = data.info(name)
        where, on_disk, splits = {}, 0, {}
        for split in data.SPLITS:
            if name == "digits":
                splits[split], where[split] = True, "scikit-learn (bundled)"
                continue
            folder = data.locate(name, split, root=root)
            splits[split] = folder is not None
            if folder is not None:
                where[split] = str(folder)
                on_disk += _disk_bytes(folder, info.files[split])
        out.append({
            "name": name,
            "available": all(splits.values()),
            "splits": splits,
            "train": info.sizes["train"],
            "test": info.sizes["test"],
            "shape": list(info.shape),
            "classes": info.num_classes,
            "disk_mb": round(on_disk / 2**20, 1),
            "where": where,
            "fetch": info.fetch_command,
            "description": info.description,
        })
    return out


def _status(r: dict) -> str:
    if r["available"]:
        return "yes"
    have = [s for s, ok in r["splits"].items() if ok]
    return f"{have[0]} only" if have else "no"


def _list(args: argparse.Namespace) -> int:
    records = rows(args.root)
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    header = ("NAME", "AVAILABLE", "TRAIN", "TEST", "SHAPE", "CLASSES", "DISK", "WHERE")
    table = []
    for r in records:
        folders = sorted(set(r["where"].values()))
        table.append((
            r["name"], _status(r), f"{r['train']:,}", f"{r['test']:,}",
            "x".join(map(str, r["shape"])), str(r["classes"]),
            f"{r['disk_mb']:.1f} MB" if r["disk_mb"] else "-",
            ", ".join(folders) if folders else "-",
        ))
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths[:-1]) + "  {}"
    print(fmt.format(*header))
    for row in table:
        print(fmt.format(*row))
    missing = [r["name"] for r in records if not r["available"]]
    if missing:
        print(f"\nTRAIN/TEST are the standard split sizes. Missing: {', '.join(missing)}; "
              f"fetch with `robustviz data fetch NAME` or see data/README.md.")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from robustviz import data

    folder = data.fetch(args.name, args.root, split=args.split)
    if folder is None:
        print(f"{args.name}: bundled with scikit-learn, nothing to fetch")
    else:
        print(f"{args.name}: ready in {folder}")
    return 0
