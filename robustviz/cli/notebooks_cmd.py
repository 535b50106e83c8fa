"""``robustviz notebooks sync|check|student``: the notebooks' course workflow."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("notebooks", help="sync the paired notebooks, check them, or write a "
                                         "student edition without solutions")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    s = verbs.add_parser("sync", help="rewrite every NN_*.ipynb from its jupytext .py, stripped")
    s.add_argument("folder", nargs="?", default="notebooks")
    c = verbs.add_parser("check", help="exit 1 when a .py/.ipynb pair differs or holds outputs")
    c.add_argument("folder", nargs="?", default="notebooks")
    st = verbs.add_parser("student", help="copies without the cells tagged 'solution'")
    st.add_argument("out", help="folder for the student notebooks")
    st.add_argument("--from", dest="folder", default="notebooks",
                    help="the instructor's notebook folder (default: notebooks)")
    st.add_argument("--tag", default="solution", help="tag of the cells to remove")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from robustviz import notebooks

    if args.verb == "sync":
        for path in notebooks.sync(args.folder):
            print(f"wrote {path}")
        return 0
    if args.verb == "check":
        problems = notebooks.check(args.folder)
        for line in problems:
            print(line)
        if not problems:
            print(f"{len(notebooks.pairs(args.folder))} notebook pairs in sync, no outputs")
        return 1 if problems else 0
    paths = notebooks.student_edition(args.out, args.folder, tag=args.tag)
    print(f"wrote {len(paths)} student notebooks to {args.out}")
    return 0
