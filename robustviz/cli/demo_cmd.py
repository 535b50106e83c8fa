"""``robustviz demo``: the main job (train teaching defenses, evaluate, write the report)."""
from __future__ import annotations


def register(sub) -> None:
    from robustviz.demo import DEMO_DEFENSES

    p = sub.add_parser("demo", help="train teaching-scale defenses, evaluate, write report/index.html")
    p.add_argument("--out", default="runs/demo", help="parent folder of the run directories")
    p.add_argument("--report", default="report", help="report folder (index.html, figures/)")
    p.add_argument("--defenses", nargs="+", default=list(DEMO_DEFENSES), choices=list(DEMO_DEFENSES))
    p.add_argument("--n-train", type=int, default=5_000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--n-test", type=int, default=500, help="test examples of the report")
    p.add_argument("--val-size", type=int, default=200,
                   help="test examples scored under PGD-20 after each epoch")
    p.add_argument("--bf16", choices=["auto", "on", "off"], default="auto",
                   help="bf16 autocast for training (auto: on where the hardware makes it fast)")
    p.add_argument("--retrain", action="store_true", help="retrain runs found in --out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from robustviz.demo import demo

    demo(args.out, args.report, defenses=args.defenses, n_train=args.n_train, epochs=args.epochs,
         n_test=args.n_test, val_size=args.val_size, bf16={"auto": None, "on": True, "off": False}[args.bf16], seed=args.seed, progress=not args.no_progress,
         retrain=args.retrain)
    return 0
