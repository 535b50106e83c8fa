"""``robustviz pretrain`` and ``robustviz finetune``: robust contrastive pretraining
(SimCLR, adversarial SimCLR, AdvCL, ASCL pretraining) and finetuning of its encoder.

::

    robustviz pretrain --config configs/teach/pretrain_simclr.yaml --out runs/simclr
    robustviz pretrain --config configs/teach/pretrain_advcl.yaml --clusterfit-from runs/simclr --out runs/advcl
    robustviz finetune --encoder runs/advcl --mode slf --out runs/advcl_slf
    robustviz finetune --encoder runs/advcl --mode slf --dataset digits --out runs/advcl_slf_digits

The finetuning run records its encoder's run directory (the report draws the lineage);
its last line gives SA, RA (PGD-20) and, with ``--aa-n``, AutoAttack accuracy.
"""
from __future__ import annotations

import argparse
import sys
import time


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "pretrain", help="contrastive (robust) pretraining of an encoder: SimCLR, AdvCL, ASCL pretraining",
        description="Pretrain an encoder with a contrastive defense (ntxent, advcl, ascl_pretrain) "
                    "through the one Trainer and write a run directory for `robustviz finetune`.")
    p.add_argument("--config", required=True, metavar="FILE", help="pretraining config (configs/teach/pretrain_*.yaml)")
    p.add_argument("--out", metavar="DIR", help="run directory (default: the config's 'out')")
    p.add_argument("--clusterfit-from", metavar="RUN",
                   help="AdvCL: encoder run whose features K-means clusters into pseudo-labels")
    p.add_argument("--dataset", help="pretrain on another data set than the config's")
    p.add_argument("--n-train", type=int, help="stratified training subset size")
    p.add_argument("--epochs", type=int)
    p.add_argument("--device", help="cpu, cuda ... (default: cuda when available)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_pretrain)

    f = subparsers.add_parser(
        "finetune", help="finetune a pretrained encoder: SLF, ALF, AFF or full",
        description="Put a new linear head on a pretrained encoder and train it (SLF: frozen "
                    "encoder, clean CE; ALF: frozen, TRADES; AFF: all weights, TRADES; full: all "
                    "weights, clean CE); report SA, RA (PGD-20) and AutoAttack.")
    f.add_argument("--encoder", required=True, metavar="RUN", help="the pretraining run directory")
    f.add_argument("--mode", choices=["slf", "alf", "aff", "full"], help="default: the encoder config's")
    f.add_argument("--out", required=True, metavar="DIR")
    f.add_argument("--config", metavar="FILE",
                   help="YAML with a 'finetune' section (over the encoder's) and an optional 'data' "
                        "section (transfer: configs/paper002_transfer_stl10.yaml)")
    f.add_argument("--dataset", help="finetune on another data set (cross-dataset transfer)")
    f.add_argument("--n-train", type=int, help="stratified training subset size (default: the encoder's)")
    f.add_argument("--n-test", type=int, help="test images of the final evaluation (default 2000)")
    f.add_argument("--aa-n", type=int, help="AutoAttack on the first N of them (default: config, 0 = off)")
    f.add_argument("--branch", help="BatchNorm branch of a separate-BN encoder (default: the run's)")
    f.add_argument("--epochs", type=int)
    f.add_argument("--lr", type=float)
    f.add_argument("--device")
    f.add_argument("--no-progress", action="store_true")
    f.set_defaults(func=run_finetune)


def _device(name):
    import torch
    return name or ("cuda" if torch.cuda.is_available() else "cpu")


def run_pretrain(args: argparse.Namespace) -> int:
    from pathlib import Path

    from robustviz import data, defenses, models, runs
    from robustviz.defenses import cluster_fit
    from robustviz.models import separate_bn
    from robustviz.train import PretrainConfig, load_encoder

    cfg = PretrainConfig.load(args.config)
    tc = cfg.train
    out = Path(args.out or tc.out or "")
    if not str(out) or str(out) == ".":
        raise ValueError("--out is required (or an 'out' entry in the config file)")
    if args.dataset is not None and args.dataset != tc.data["name"]:
        tc.data = {"name": args.dataset, "seed": tc.data.get("seed", 0)}
    if args.n_train is not None:
        tc.data["n"] = args.n_train
    if args.epochs is not None:
        tc.train["epochs"] = args.epochs
    tc.train["device"] = _device(args.device or tc.train.get("device"))
    if args.clusterfit_from:
        cfg.pretrain.setdefault("clusterfit", {})
        cfg.pretrain["clusterfit"] = {**(cfg.pretrain.get("clusterfit") or {}), "from": args.clusterfit_from}
    seed = int(tc.data.get("seed", 0))
    train = data.load(tc.data["name"], tc.data.get("split", "train"), root=tc.data.get("root"),
                      n=tc.data.get("n"), seed=seed)
    model = models.build(**{"num_classes": train.num_classes, "in_channels": train.shape[0], "mean": train.mean,
                            "std": train.std, "input_size": tuple(train.shape[1:]), **tc.model})
    if cfg.pretrain["separate_bn"]:
        separate_bn(model, cfg.pretrain["separate_bn"])
    spec = dict(tc.defense)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cf = cfg.pretrain.get("clusterfit")
    if spec["name"] == "advcl" and cf and cf.get("from"):
        cache = out / "clusterfit.safetensors"
        if not cache.is_file():
            src = load_encoder(cf["from"], device=tc.train["device"])
            n = min(int(cf.get("n", len(train))), len(train))
            fit = cluster_fit(src, train.x[:n].to(tc.train["device"]), ks=cf.get("ks", (2, 10, 50, 100, 500)),
                              seed=int(cf.get("seed", 0)), source=str(cf["from"]), n_init=int(cf.get("n_init", 1)))
            fit.save(cache)
            print(f"clusterfit: K = {list(fit.ks)} on {n} images of {cf['from']} -> {cache} "
                  f"({time.perf_counter() - t0:.1f}s)", file=sys.stdout)
        spec["clusterfit"] = str(cache)
    defense = defenses.build(spec)
    supervised = any(getattr(t, "uses_labels", True) for t in getattr(defense, "terms", [defense]))
    trainer = tc.trainer(defense=defense, progress=not args.no_progress)
    val = None
    if supervised:   # the classifier is trained too (ASCL pretraining's L_AT): validate it
        val = data.load(tc.data["name"], tc.data.get("val_split", "test"), root=tc.data.get("root"))
        if trainer.eps is None and "eps" in tc.eval:
            trainer.eps = tc.eval["eps"]
    else:
        trainer.val_attack = None
    meta = {"data": {"name": tc.data["name"], "split": tc.data.get("split", "train"), "n": len(train),
                     "seed": seed},
            "paper": tc.paper, "paper_table": tc.paper_table,
            "pretrain": {**cfg.pretrain, "kind": spec["name"]}, "pretrain_config": cfg.to_dict()}
    trainer.fit(model, train, val=val, run_dir=out, meta=meta)
    seconds = time.perf_counter() - t0
    runs.append_metrics(out, {"kind": "final", "pretrain_seconds": seconds, "n_train": len(train),
                              "epochs": trainer.epochs})
    print(f"pretrain: {spec['name']}  {trainer.epochs} epochs on {len(train)} images  "
          f"{seconds:.1f}s  run {out}", file=sys.stdout)
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    from pathlib import Path

    from robustviz import data, runs
    from robustviz.data import match_images
    from robustviz.train import (FINETUNE_DEFENSES, Trainer, evaluate_finetuned, load_encoder,
                                 prepare_finetune)
    from robustviz.train._finetune import finetune_defaults

    enc_dir = Path(args.encoder)
    enc_cfg = runs.load_config(enc_dir)
    fin = finetune_defaults(enc_dir)
    own = {}
    if args.config:
        import yaml
        own = yaml.safe_load(Path(args.config).read_text()) or {}
        bad = sorted(set(own) - {"data", "finetune"})
        if bad:
            raise ValueError(f"unknown top-level key(s) {bad} in {args.config}; valid: ['data', 'finetune']")
        fin.update(own.get("finetune") or {})
    if args.mode is not None:
        fin["mode"] = args.mode
    mode = fin.get("mode", "slf")
    pcfg = enc_cfg.get("pretrain_config") or {}
    dspec = dict(pcfg.get("data") or enc_cfg.get("data") or {})
    ev = dict(pcfg.get("eval") or {})
    name = args.dataset or (own.get("data") or {}).get("name") or dspec.get("name")
    transfer = name != dspec.get("name")
    seed = int(dspec.get("seed", 0))
    n_train = args.n_train if args.n_train is not None else (None if transfer else dspec.get("n"))
    device = _device(args.device)
    encoder = load_encoder(enc_dir, branch=args.branch, device=device)
    size = getattr(encoder, "input_size", None)
    train = match_images(data.load(name, "train", n=n_train, seed=seed), channels=encoder.in_channels, size=size)
    test = match_images(data.load(name, "test"), channels=encoder.in_channels, size=size)
    model = prepare_finetune(encoder, mode, num_classes=train.num_classes, head_seed=int(fin.get("head_seed", 0)),
                             head_init=str(fin.get("head_init", "default")))
    eps = float(ev.get("eps") or (0.1 if encoder.in_channels == 1 else 8 / 255))
    defense = dict(fin.get("defense") or FINETUNE_DEFENSES[mode]) if mode in ("alf", "aff") else \
        dict(FINETUNE_DEFENSES[mode])
    if defense["name"] != "nat":
        defense.setdefault("eps", eps)
        defense.setdefault("step_size", eps / 4)
        defense.setdefault("steps", 5)
    opts = {k: fin[k] for k in ("epochs", "lr", "batch_size", "optimizer", "weight_decay", "schedule",
                                "momentum", "milestones", "gamma") if k in fin}
    if fin.get("augment"):
        opts["augment"] = tuple(fin["augment"])
    if mode in ("aff", "full") and "lr" in opts:   # the whole network: a smaller step than a head
        opts["lr"] = float(fin.get("full_lr", opts["lr"] / 10))
    if args.epochs is not None:
        opts["epochs"] = args.epochs
    if args.lr is not None:
        opts["lr"] = args.lr
    trainer = Trainer(defense=defense, seed=seed, eps=eps, val_size=int(fin.get("val_size", 500)),
                      progress=not args.no_progress, device=device, **opts)
    if mode in ("slf", "alf") and trainer.optimizer == "sgd":   # a linear head: is its lr on the features' scale?
        from robustviz.train._finetune import check_head_lr, head_input_scale

        scale = head_input_scale(model, train.x)
        from robustviz.train._options import DEFAULT_LR

        lr = trainer.lr if trainer.lr is not None else DEFAULT_LR[trainer.optimizer]
        msg = check_head_lr(scale, lr, trainer.momentum)
        if msg:
            print(f"warning: {msg}", file=sys.stderr)
    meta = {"data": {"name": name, "split": "train", "n": len(train), "seed": seed},
            "finetune": {"encoder": str(enc_dir), "mode": mode, "transfer": transfer,
                         "branch": args.branch or (enc_cfg.get("pretrain") or {}).get("finetune_branch"),
                         "pretrain_kind": (enc_cfg.get("pretrain") or {}).get("kind")}}
    t0 = time.perf_counter()
    trainer.fit(model, train, val=test, run_dir=Path(args.out), meta=meta)
    n_test = args.n_test if args.n_test is not None else int(ev.get("n", 2000))
    final = test if n_test >= len(test) else test.sample(n_test, seed=seed)
    aa_n = args.aa_n if args.aa_n is not None else int(fin.get("aa_n", 0))
    steps = int(ev.get("steps", 20))
    res = evaluate_finetuned(model, final, eps=eps, steps=steps, step_size=ev.get("step_size"), aa_n=aa_n,
                             seed=seed)
    record = {"kind": "final", "mode": mode, "finetune_seconds": time.perf_counter() - t0, **res}
    runs.append_metrics(args.out, record)
    aa = f"  AA {100 * res['aa_acc']:.1f}% (n {res['aa_n']})" if "aa_acc" in res else ""
    print(f"finetune: {mode} of {enc_dir}  SA {100 * res['clean_acc']:.1f}%  "
          f"PGD-{steps} {100 * res[f'pgd{steps}_acc']:.1f}% (eps {eps:g}, n {res['n']}){aa}  run {args.out}",
          file=sys.stdout)
    return 0
