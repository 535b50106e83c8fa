"""The ``robustviz`` command line.

Thin by design: each subcommand lives in its own module of this package, defines
``register(subparsers)`` and calls only the public API. Modules listed in ``_COMMANDS``
that are not present yet are skipped, so the CLI grows with the package.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

# Order is the order of `robustviz --help`.
_COMMANDS = ("demo", "data", "models", "train", "pretrain", "evaluate", "compare", "report")


def build_parser() -> argparse.ArgumentParser:
    from robustviz import __version__

    parser = argparse.ArgumentParser(
        prog="robustviz",
        description="Adversarial robustness toolkit: train defenses, attack, diagnose latent space.",
    )
    parser.add_argument("--version", action="version", version=f"robustviz {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        modname = f"{__name__}.{name}_cmd"
        if importlib.util.find_spec(modname) is None:
            continue
        importlib.import_module(modname).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as err:
        print(f"robustviz {args.command}: error: {err}", file=sys.stderr)
        return 2
