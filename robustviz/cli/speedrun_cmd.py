"""``robustviz speedrun``: a robust model from the fast recipe (Fashion-MNIST: under a minute of CPU time).

::

    robustviz speedrun                          # Fashion-MNIST, configs/fast/fashion_mnist.yaml
    robustviz speedrun --dataset cifar10 --seed 1 --out runs/fast_cifar

A thin alias of ``robustviz train --config configs/fast/<dataset>.yaml``: single-step
adversarial training with a one-cycle-like schedule and the catastrophic-overfitting guard
(the run stops at a collapse and keeps its best epoch's weights). The last line printed is
the final clean and PGD-20 accuracy.
"""
from __future__ import annotations

import argparse
from pathlib import Path

RECIPES = {"fashion-mnist": "fashion_mnist.yaml", "cifar10": "cifar10.yaml"}


def recipe_path(dataset: str) -> Path:
    """The fast recipe of ``dataset`` in the source tree's ``configs/fast/`` (configs are not
    installed with the package: a clear error says so)."""
    if dataset not in RECIPES:
        raise ValueError(f"no fast recipe for {dataset!r}; available: {sorted(RECIPES)}")
    import robustviz

    path = Path(robustviz.__file__).resolve().parents[1] / "configs" / "fast" / RECIPES[dataset]
    if not path.is_file():
        raise FileNotFoundError(f"the fast recipe {path} is not here (configs/ ship with the source tree, "
                                f"not the installed package); pass --config FILE")
    return path


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "speedrun", help="train a robust model fast (single-step adversarial training; Fashion-MNIST "
                         "in under a minute of CPU time)",
        description="Train with the fast recipe of configs/fast/ (robustviz train --config "
                    "configs/fast/<dataset>.yaml): single-step adversarial training, one-cycle-like "
                    "schedule, stopped at catastrophic overfitting.")
    p.add_argument("--dataset", choices=sorted(RECIPES), default="fashion-mnist", help="data set")
    p.add_argument("--config", metavar="FILE", help="another recipe file (default: configs/fast/<dataset>.yaml)")
    p.add_argument("--out", metavar="DIR", help="run directory (default runs/speedrun/<dataset>-seed<seed>)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of data order, initialisation and attacks")
    p.add_argument("--data-root", metavar="DIR", help="folder searched first for the data files")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available, else cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def train_argv(args: argparse.Namespace) -> list[str]:
    """The ``robustviz train`` command line this speedrun stands for."""
    config = args.config or str(recipe_path(args.dataset))
    out = args.out or f"runs/speedrun/{args.dataset}-seed{args.seed}"
    argv = ["--config", config, "--out", out, "--seed", str(args.seed)]
    for flag, value in (("--data-root", args.data_root), ("--device", args.device)):
        if value is not None:
            argv += [flag, value]
    return argv + (["--no-progress"] if args.no_progress else [])


def run(args: argparse.Namespace) -> int:
    from robustviz.cli import _Parser, train_cmd

    parser = _Parser(prog="robustviz")
    train_cmd.register(parser.add_subparsers(dest="command"))
    return train_cmd.run(parser.parse_args(["train", *train_argv(args)]))
