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
_COMMANDS = ("demo", "zoo", "data", "models", "attacks", "defenses", "train", "speedrun", "pretrain", "evaluate",
             "compare", "report", "landscape", "inversion", "notebooks")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default (unless it states one already)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if not text and action.option_strings and action.default not in (None, False,
                                                                         argparse.SUPPRESS):
            return "default: %(default)s"
        if (not text or "default" in text or not action.option_strings
                or action.default in (None, False, argparse.SUPPRESS)
                or isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction,
                                       argparse._StoreConstAction))):
            return text
        return text + " (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """The parser of every subcommand: defaults in the help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def _describe(parser: argparse.ArgumentParser) -> None:
    """A subcommand without a description gets its one-line help as one."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                if not sub.description and helps.get(name):
                    sub.description = helps[name][0].upper() + helps[name][1:] + "."
                _describe(sub)


def build_parser() -> argparse.ArgumentParser:
    from robustviz import __version__

    parser = _Parser(
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
    _describe(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        # every file is written through a temporary file and a rename: what is on disk is
        # whole; a training run picks up from its last checkpoint
        resume = " (resume a training run with --resume)" if args.command in ("train", "pretrain") else ""
        print(f"robustviz {args.command}: interrupted (Ctrl-C); files already written are "
              f"complete{resume}", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileNotFoundError, RuntimeError, LookupError) as err:
        print(f"robustviz {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:   # full disk, file-size limit, read-only folder, a file as a folder
        print(f"robustviz {args.command}: error: {_os_error(err)}", file=sys.stderr)
        return 1


def _os_error(err: OSError) -> str:
    """One line for an error the machine raised: what failed, on which path, what to do."""
    import errno

    hint = {errno.ENOSPC: "the disk is full: free space and run again",
            errno.EFBIG: "the file is larger than this process may write (ulimit -f)",
            errno.EROFS: "the folder is on a read-only file system: choose another output folder",
            errno.EACCES: "no permission to write there: choose another output folder",
            errno.ENOTDIR: "a path component is a file, not a folder",
            errno.EEXIST: "a file with that name is in the way",
            errno.EDQUOT: "the disk quota is exceeded"}.get(err.errno, "")
    path = err.filename if err.filename is not None else ""
    what = err.strerror or str(err)
    return "; ".join(x for x in (f"{what}: {path}" if path else what, hint) if x)
