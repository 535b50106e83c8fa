"""``robustviz demo``: the main job (load the teaching zoo, evaluate, diagnose, write the report)."""
from __future__ import annotations


def register(sub) -> None:
    from robustviz.demo import DEMO_DEFENSES

    p = sub.add_parser(
        "demo", help="load the teaching zoo, evaluate, diagnose, write report/index.html",
        description="The main job: the shipped zoo models (NAT, PGD-AT, TRADES, ASCL, ANCRA) of "
                    "Fashion-MNIST (digits where it is missing) are evaluated and diagnosed and "
                    "the HTML report is written, in under 2 minutes on a 2-core CPU. --retrain "
                    "trains the same defenses from scratch at teaching scale instead.")
    p.add_argument("--report", default="report", help="report folder (default: %(default)s)")
    p.add_argument("--defenses", nargs="+", default=None, choices=list(DEMO_DEFENSES),
                   help="defenses to report (default: all the data set's zoo holds)")
    p.add_argument("--dataset", choices=["fashion-mnist", "digits"], default=None,
                   help="default: fashion-mnist where installed, else digits")
    p.add_argument("--n-test", type=int, default=500,
                   help="test examples of the report (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    g = p.add_argument_group("retraining (--retrain)")
    g.add_argument("--retrain", action="store_true",
                   help="train the defenses from scratch at teaching scale (about 7 minutes on a "
                        "2-core CPU) instead of loading the zoo")
    g.add_argument("--out", default="runs/demo",
                   help="parent folder of the retrained run directories (default: %(default)s)")
    g.add_argument("--n-train", type=int, default=5_000, help="training images (default: %(default)s)")
    g.add_argument("--epochs", type=int, default=2, help="default: %(default)s")
    g.add_argument("--val-size", type=int, default=200,
                   help="test examples scored under PGD-20 after each epoch (default: %(default)s)")
    g.add_argument("--rdiv-every", type=int, default=1,
                   help="record R-DIV every K epochs, 0 for never (default: %(default)s)")
    g.add_argument("--bf16", choices=["auto", "on", "off"], default="auto",
                   help="bf16 autocast for training; auto: on where the hardware makes it fast "
                        "(CUDA, AVX512-BF16/AMX CPUs), off where PyTorch emulates it (default: %(default)s)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from robustviz.demo import demo

    demo(args.out, args.report, defenses=args.defenses, retrain=args.retrain, n_train=args.n_train,
         epochs=args.epochs, n_test=args.n_test, val_size=args.val_size, rdiv_every=args.rdiv_every,
         bf16={"auto": "auto", "on": True, "off": False}[args.bf16], seed=args.seed,
         progress=not args.no_progress, dataset=args.dataset)
    return 0
