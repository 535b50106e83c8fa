"""``robustviz train``: train a model with a defense from flags or a config file.

::

    robustviz train --dataset fashion-mnist --model tinycnn --defense trades --beta 6 \\
        --epochs 5 --out runs/trades
    robustviz train --config configs/teach/trades.yaml --out runs/trades

Flags override the config file. The effective config is saved into the run as
``train_config.yaml`` (and in ``config.json``) once every check has passed; the last line
printed is the final clean and PGD-20 accuracy on the test split. ``--resume`` continues the
run in ``--out`` from its saved config (flags may change only ``--epochs`` and ``--device``).
Without ``--eps`` anywhere, the radius is the data set's default
(:data:`robustviz.runs.DEFAULT_EPS`), the one the report uses.
"""
from __future__ import annotations

import argparse
import os
import sys


def _key_value(text: str) -> tuple[str, object]:
    import yaml

    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a model with a defense (NAT, PGD-AT, TRADES, MART, ASCL, ANCRA, ...)",
        description="Train a model with a defense and write a resumable run directory. "
                    "Flags override the values of --config.")
    p.add_argument("--config", metavar="FILE", help="YAML or JSON training config (see configs/)")
    p.add_argument("--out", metavar="DIR", help="run directory (default: the config's 'out')")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out (its saved config is the base; only --epochs and "
                        "--device may differ)")
    g = p.add_argument_group("data and model")
    g.add_argument("--dataset", help="data set name (default fashion-mnist)")
    g.add_argument("--data-root", help="folder searched first for the data files")
    g.add_argument("--n-train", type=int, help="stratified training subset size (default: all)")
    g.add_argument("--n-test", type=int, help="test images for the final evaluation (default 2000)")
    g.add_argument("--model", help="architecture name (default tinycnn)")
    g = p.add_argument_group("defense")
    g.add_argument("--defense", help="defense name: nat, pgd_at, fgsm_rs, trades, mart, embedding, ascl, ancra")
    g.add_argument("--beta", type=float, help="defense weight beta (TRADES, MART, embedding)")
    g.add_argument("--eps", type=float, help="attack radius (training attack, validation and final PGD-20); "
                                             "default: the data set's (0.1 Fashion-MNIST/digits, 0.3 MNIST, "
                                             "8/255 colour)")
    g.add_argument("--step-size", type=float, help="training attack step size")
    g.add_argument("--steps", type=int, help="training attack steps")
    g.add_argument("--defense-arg", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                   help="any other defense option (repeatable), e.g. --defense-arg selection=leaked")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, help="training epochs (default: the config's)")
    g.add_argument("--lr", type=float, help="peak learning rate (default: the config's)")
    g.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], help="optimiser (default: the config's, sgd)")
    g.add_argument("--schedule", choices=["piecewise", "cosine", "constant"],
                   help="learning-rate schedule (default: the config's)")
    g.add_argument("--warmup-epochs", type=float, help="linear warm-up length in epochs (default: the config's)")
    g.add_argument("--weight-decay", type=float, help="L2 weight decay (default: the config's)")
    g.add_argument("--batch-size", type=int, help="examples per step (default: the config's)")
    g.add_argument("--seed", type=int, help="seed of data order, init and attacks (default: the config's)")
    g.add_argument("--attack-bn", choices=["eval", "train"], help="BatchNorm mode in training attacks")
    g.add_argument("--val-size", type=int, help="validation subset scored after each epoch (default 1000)")
    g.add_argument("--bf16", nargs="?", const="on", default=None, choices=["auto", "on", "off"],
                   type=lambda v: {"true": "on", "false": "off"}.get(str(v).lower(), str(v).lower()),
                   help="bf16 autocast: auto (on only where bf16 is native: CUDA, AVX512-BF16/AMX "
                        "CPUs), on (plain --bf16) or off (default: the config's, else auto)")
    g.add_argument("--no-bf16", dest="bf16", action="store_const", const="off",
                   help="fp32 training even if the config asks for bf16 (same as --bf16 off)")
    g.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available, else cpu)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g = p.add_argument_group("diagnostics")
    g.add_argument("--rdiv-every", type=int, metavar="K",
                   help="record R-DIV, d_a+/d_a- and clean/robust accuracy every K epochs "
                        "(Bui et al., arXiv:2101.10027, 2021, Fig. 2b; the report draws them)")
    g.add_argument("--rdiv-n", type=int, metavar="N", help="fixed test images of --rdiv-every (default 500)")
    g.add_argument("--rdiv-mode", choices=["exact", "minibatch"],
                   help="R-DIV over all pairs (default) or paper 001's mean over batches of 128")
    p.set_defaults(func=run)


def effective_config(args: argparse.Namespace):
    """The :class:`~robustviz.train.TrainConfig` of a command line: the config file (or
    the defaults) with the flags applied."""
    from robustviz.train import TrainConfig

    if args.config:
        cfg = TrainConfig.load(args.config)
    elif args.resume and args.out is not None and _saved_config(args.out) is not None:
        cfg = TrainConfig.from_dict(_saved_config(args.out))   # the run's own record
    else:
        cfg = TrainConfig()
    d = cfg.to_dict()
    if args.dataset is not None and args.dataset != d["data"].get("name"):
        d["data"] = {"name": args.dataset}
    if args.model is not None and args.model != d["model"].get("name"):
        d["model"] = {"name": args.model}
    if args.defense is not None and args.defense != d["defense"].get("name"):
        d["defense"] = {"name": args.defense}
    for key, value in (("root", args.data_root), ("n", args.n_train)):
        if value is not None:
            d["data"][key] = value
    if args.n_test is not None:
        d["eval"]["n"] = args.n_test
    if args.eps is not None:
        d["eval"]["eps"] = args.eps
        d["train"]["eps"] = args.eps
        if d["defense"]["name"] != "nat":
            d["defense"]["eps"] = args.eps
    for key, value in (("beta", args.beta), ("step_size", args.step_size), ("steps", args.steps)):
        if value is not None:
            d["defense"][key] = value
    d["defense"].update(dict(args.defense_arg))
    for key in ("epochs", "lr", "optimizer", "schedule", "warmup_epochs", "weight_decay", "batch_size",
                "seed", "attack_bn", "val_size", "bf16", "device"):
        value = getattr(args, key)
        if key == "bf16" and value is not None:
            value = {"on": True, "off": False, "auto": "auto"}[value]
        if value is not None:
            d["train"][key] = value
    for key, value in (("rdiv_every", args.rdiv_every), ("n", args.rdiv_n), ("mode", args.rdiv_mode)):
        if value is not None:
            d["diagnostics"][key] = value
    if args.out is not None:
        d["out"] = args.out
    return TrainConfig.from_dict(d)


def _saved_config(out) -> dict | None:
    """The train command config a run recorded (config.json ``train_config``), if any."""
    from robustviz import runs

    try:
        saved = runs.load_config(out).get("train_config")
    except FileNotFoundError:
        return None
    return saved if isinstance(saved, dict) else None


def _choose_eps(cfg, args, defense) -> tuple[float | None, str]:
    """Fill in the data set's default radius when no eps is given anywhere (not on resume:
    a resumed run keeps what it recorded). Returns the radius the run is validated and
    evaluated at, when known now, and why."""
    from robustviz import runs

    if args.eps is not None:
        return float(args.eps), "--eps"
    if "eps" in cfg.eval:
        return float(cfg.eval["eps"]), "the config's eval.eps"
    if cfg.train.get("eps") is not None:
        return float(cfg.train["eps"]), "the config's train.eps"
    if "eps" in cfg.defense:
        return float(cfg.defense["eps"]), "the config's defense.eps"
    if args.resume:
        return None, "as the run recorded"
    eps = runs.default_eps(cfg.data["name"])
    if "eps" in (defense.config() if callable(getattr(defense, "config", None)) else {}):
        cfg.defense["eps"] = eps   # not the defense's own (CIFAR) default
    cfg.eval["eps"] = eps
    return eps, f"no eps given, the default for {cfg.data['name']}"


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from robustviz import data, defenses, models, runs
    from robustviz.train import CatastrophicOverfitting
    from robustviz.train._checkpoint import has_checkpoint

    # every check before anything is written (a refused command leaves the run as it was)
    cfg = effective_config(args)
    if not cfg.out:
        raise ValueError("--out is required (or an 'out' entry in the config file)")
    out = Path(cfg.out)
    if "device" not in cfg.train:
        cfg.train["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    defense = defenses.build(dict(cfg.defense))
    eps, why = _choose_eps(cfg, args, defense)
    defense = defenses.build(dict(cfg.defense))
    trainer = cfg.trainer(defense=defense, progress=not args.no_progress)
    if trainer.eps is None and "eps" in cfg.eval:
        trainer.eps = cfg.eval["eps"]
    trainer.check()
    if not args.resume and has_checkpoint(out):
        raise ValueError(f"{out} already holds a training checkpoint; pass --resume to continue it, "
                         f"or choose a new --out")
    if args.resume and not has_checkpoint(out):
        raise FileNotFoundError(f"cannot --resume {out}: it holds no training checkpoint")
    dspec = cfg.data
    seed = int(dspec.get("seed", 0))
    train = data.load(dspec["name"], dspec.get("split", "train"), root=dspec.get("root"),
                      n=dspec.get("n"), seed=seed)
    test = data.load(dspec["name"], dspec.get("val_split", "test"), root=dspec.get("root"))
    model_kw = {"num_classes": train.num_classes, "in_channels": train.shape[0], "mean": train.mean,
                "std": train.std, "input_size": tuple(train.shape[1:]), **cfg.model}
    model = models.build(**model_kw)   # reverse_attention: true wraps it (paper 004)
    if eps is None:
        eps = trainer.resolve_eps(model, defense, dspec["name"])
    is_main = int(os.environ.get("RANK", "0")) == 0
    if is_main:
        print(f"eps {eps:g}: {why}", file=sys.stdout)
    meta = {"data": {"name": dspec["name"], "split": dspec.get("split", "train"), "n": len(train),
                     "seed": seed, "val_split": dspec.get("val_split", "test")},
            "paper": cfg.paper, "paper_table": cfg.paper_table, "train_config": cfg.to_dict(),
            "eval": {"eps": eps}}
    callbacks = _diagnostics_callbacks(cfg, model, test, trainer, defense, seed, eps)
    # the lock covers training and the final evaluation; fit writes train_config.yaml with
    # config.json once its own checks (options, resume compatibility) have passed
    with runs.RunLock(out) if is_main else _nothing():
        epochs_before = len(runs.read_metrics(out, kind="epoch")) if args.resume else None
        try:
            trainer.fit(model, train, val=test, run_dir=out, resume=out if args.resume else None, meta=meta,
                        callbacks=callbacks,
                        files={"train_config.yaml": cfg.dumps("yaml")} if is_main else None)
        except CatastrophicOverfitting as stop:   # the model holds the best epoch's weights
            if is_main:
                print(f"stopped: {stop}", file=sys.stdout)
        if (args.resume and runs.read_metrics(out, kind="final")
                and len(runs.read_metrics(out, kind="epoch")) == epochs_before):
            # a finished run resumed: nothing was trained, its final record stands (a second
            # one would count the same model twice)
            if is_main:
                print(f"{out}: the run had already finished; its final record is kept", file=sys.stdout)
            return 0
        _final(cfg, trainer, model, test, eps, seed, out, is_main)
    return 0


def _nothing():
    import contextlib

    return contextlib.nullcontext()


def _final(cfg, trainer, model, test, eps, seed, out, is_main) -> None:
    import time

    from robustviz import attacks, runs

    n_test = int(cfg.eval.get("n", 2000))
    final = test if n_test >= len(test) else test.sample(n_test, seed=seed)  # class-stratified
    steps = int(cfg.eval.get("steps", 20))
    pgd = attacks.PGD(eps=eps, step_size=float(cfg.eval.get("step_size") or 2.5 * eps / steps), steps=steps,
                      random_start="uniform")
    adaptive = attacks.surrogate_of(model) is not None   # reverse attention: attack its surrogate too
    t0 = time.perf_counter()
    result = trainer.evaluate(model, final, attack=attacks.Adaptive(attack=pgd) if adaptive else pgd)
    record = {"kind": "final", "clean_acc": result['clean_acc'], f"pgd{steps}_acc": result['robust_acc'],
              "eps": eps, "step_size": pgd.step_size, "n": result["n"], "adaptive": adaptive,
              "time_s": time.perf_counter() - t0}
    masked = ""
    if adaptive:   # the number PGD on the model alone reports, for comparison (masked gradients)
        alone = trainer.evaluate(model, final, attack=pgd)["robust_acc"]
        record[f"pgd{steps}_model_only_acc"] = alone
        masked = f"; adaptive (model + surrogate), PGD-{steps} on the model alone {100 * alone:.1f}%"
    if is_main:
        runs.append_metrics(out, record)
        print(f"final: defense {cfg.defense['name']}  clean {100 * result['clean_acc']:.1f}%  "
              f"PGD-{steps} {100 * result['robust_acc']:.1f}% (eps {eps:g}, step {pgd.step_size:.4g}, n {result['n']}{masked})  run {out}",
              file=sys.stdout)


def _overfit_guard(cfg, test, seed: int, eps: float) -> list:
    """The catastrophic-overfitting guard of ``diagnostics.overfit_guard`` (or none), on
    test images outside the final evaluation's."""
    from robustviz.train import OverfitGuard

    spec = cfg.diagnostics.get("overfit_guard")
    if spec in (None, False):
        return []
    if spec is True:
        spec = {}
    if not isinstance(spec, dict):
        raise TypeError(f"diagnostics.overfit_guard must be true, false or a dict of OverfitGuard options, "
                        f"got {spec!r}")
    unknown = sorted(set(spec) - {"n", "steps", "drop", "rise"})
    if unknown:
        raise ValueError(f"unknown diagnostics.overfit_guard option(s) {unknown}; "
                         f"valid: ['n', 'steps', 'drop', 'rise']")
    n_test = int(cfg.eval.get("n", 2000))
    n = int(spec.get("n", 256))
    left = len(test) - min(n_test, len(test))
    if left < n:
        raise ValueError(f"diagnostics.overfit_guard needs {n} test images outside the final evaluation's "
                         f"eval.n={n_test}, but only {left} are left; lower eval.n or overfit_guard.n")
    held = test.held_out(n_test, seed=seed)
    return [OverfitGuard(held.sample(n, seed=seed), eps=eps, seed=seed,
                         **{k: v for k, v in spec.items() if k != "n"}, n=n)]


def _diagnostics_callbacks(cfg, model, test, trainer, defense, seed: int, eps: float) -> list:
    """The callbacks of the config's ``diagnostics`` section: the overfitting guard and the
    R-DIV-per-epoch record (or none)."""
    from robustviz import attacks
    from robustviz._validate import check_int
    from robustviz.diagnostics import RDivCallback

    diag = cfg.diagnostics
    guard = _overfit_guard(cfg, test, seed, eps)
    every = check_int(diag.get("rdiv_every", 0) or 0, "diagnostics.rdiv_every", minimum=0)
    if not every:
        return guard
    steps = check_int(diag.get("steps", 10), "diagnostics.steps", minimum=1)
    # Adaptive: reverse-attention models are attacked through their surrogate too; for any
    # other model it is the plain PGD (as in the report)
    atk = attacks.Adaptive(attack=attacks.PGD(eps=eps, steps=steps,
                                              step_size=float(diag.get("step_size") or 2.5 * eps / steps)))
    return guard + [RDivCallback(test, atk, n=check_int(diag.get("n", 500), "diagnostics.n", minimum=10),
                                 distance=diag.get("distance", "cosine"),
                                 layer=diag.get("layer", "penultimate"), every=every, seed=seed,
                                 mode=diag.get("mode", "exact"), batch_size=diag.get("batch_size", 128),
                                 n_boot=diag.get("n_boot", 0))]
