"""``robustviz evaluate RUN_DIR``: attack a trained run, print the accuracy table and append
it to the run's metrics (kind ``"evaluation"``)."""
from __future__ import annotations

import argparse

ATTACKS = ("fgsm", "pgd", "mim", "cw", "deepfool", "mpgd", "autoattack")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="robust accuracy of a trained run under attacks",
        description="Load RUN_DIR (config.json + weights), load its data set's test split, "
                    "run the attacks and print clean and adversarial top-k accuracy. The "
                    "table is appended to RUN_DIR/metrics.jsonl with kind='evaluation'.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by robustviz train")
    p.add_argument("--attack", nargs="+", default=["pgd"], choices=ATTACKS, metavar="NAME",
                   help=f"one or more of {', '.join(ATTACKS)} (default pgd)")
    p.add_argument("--eps", type=float, default=None,
                   help="attack radius in pixel units (default: the run's evaluation eps, else its "
                        "training eps, else the data set's default; the command prints which and why)")
    p.add_argument("--norm", choices=["linf", "l2"], default="linf", help="threat model of the eps-bounded attacks")
    p.add_argument("--steps", type=int, default=20, help="iterations of pgd/mim/mpgd; deepfool's cap (default 20)")
    p.add_argument("--step-size", type=float, default=None,
                   help="pgd/mpgd step (default 2.5*eps/steps; mim eps/steps)")
    p.add_argument("--restarts", type=int, default=1, help="pgd restarts (default 1)")
    p.add_argument("--aa-version", choices=["standard", "plus", "rand", "fast"], default="standard",
                   help="AutoAttack version, at its authors' settings (default standard; fast = "
                        "APGD-CE + APGD-T only)")
    p.add_argument("--seeds", type=int, default=1,
                   help="attack seeds: with more than one, each attack's mean and range over them")
    p.add_argument("--n", type=int, default=1000, help="stratified test subset size (default 1000; 0 = all)")
    p.add_argument("--split", default="test", help="data split (default test)")
    p.add_argument("--topk", type=int, nargs="+", default=[1, 3, 5], help="k of top-k accuracy (1 3 5)")
    p.add_argument("--batch-size", type=int, default=256, help="examples per attack batch")
    p.add_argument("--seed", type=int, default=0, help="seed of the subset and of the attacks")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast inside the attacks (default: off, fp32)")
    p.add_argument("--no-adaptive", action="store_true",
                   help="attack only the model itself, also when it offers a differentiable surrogate "
                        "(reverse attention); the default attacks both and reports the worst case")
    p.add_argument("--no-save", action="store_true", help="do not append to metrics.jsonl")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def build_attacks(args: argparse.Namespace, eps: float) -> dict:
    """Attack objects of the command line, named e.g. ``pgd20``, ``fgsm``."""
    from robustviz import attacks as A

    common = {"bf16": bool(args.bf16), "seed": int(args.seed)}
    # early stopping leaves examples just past the boundary: exact for top-1, lenient for
    # top-k with k > 1, so it is used only when top-1 is all that is reported
    stop = set(args.topk) == {1}
    out = {}
    for name in args.attack:
        if name == "fgsm":
            if args.norm != "linf":
                raise ValueError("--attack fgsm is an Linf attack; use --norm linf")
            out["fgsm"] = A.FGSM(eps=eps, **common)
        elif name == "pgd":
            key = f"pgd{args.steps}" + (f"x{args.restarts}" if args.restarts > 1 else "")
            out[key] = A.PGD(eps=eps, steps=args.steps, step_size=args.step_size, norm=args.norm,
                             restarts=args.restarts, early_stop=stop, **common)
        elif name == "mim":
            out[f"mim{args.steps}"] = A.MIM(eps=eps, steps=args.steps, norm=args.norm,
                                            step_size=args.step_size, early_stop=stop, **common)
        elif name == "mpgd":
            out[f"mpgd{args.steps}"] = A.MultiTargetedPGD(eps=eps, steps=args.steps, norm=args.norm,
                                                          step_size=args.step_size,
                                                          early_stop=stop, **common)
        elif name == "cw":
            out["cw"] = A.CW(**common)
        elif name == "deepfool":
            out["deepfool"] = A.DeepFool(steps=args.steps, **common)
        elif name == "autoattack":
            key = "autoattack" if args.aa_version == "standard" else f"autoattack_{args.aa_version}"
            out[key] = A.AutoAttack(eps=eps, norm=args.norm, version=args.aa_version, **common)
    return out


def run(args: argparse.Namespace) -> int:
    import warnings

    import torch

    from robustviz import data, models, runs, zoo
    from robustviz.evaluate import evaluate

    if args.n < 0:
        raise ValueError(f"--n must be >= 0, got {args.n}")
    save = not args.no_save
    if save and zoo.in_zoo(args.run_dir):
        save = False
        print(f"{args.run_dir} is a zoo model: the zoo is read-only (its files are checksummed), "
              f"so this evaluation is printed, not recorded; copy the folder to record it")
    if save:   # before minutes of attacks, not after
        runs.check_writable(args.run_dir)
    owner = runs.live_owner(args.run_dir)
    if owner is not None:
        warnings.warn(f"{args.run_dir} is being trained by pid {owner.get('pid')}: this evaluates "
                      f"the weights of the epoch written last (recorded as weights_epoch), not "
                      f"the final model", stacklevel=2)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    run_ = runs.load_run(args.run_dir, device=device)
    weights_epoch = runs.weights_epoch(args.run_dir)
    spec = run_.config.get("data")
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"{args.run_dir}/config.json has no 'data' entry with a 'name'; "
                         f"cannot tell which data set to evaluate on")
    if args.eps is not None:
        eps, why = float(args.eps), "--eps"
    else:
        eps, why = runs.eval_eps(run_.config, spec["name"])
    print(f"eps {eps:g}: {why}")
    test = data.load(spec["name"], args.split, root=spec.get("root"))
    whole = len(test)
    if 0 < args.n < len(test):   # a stratified subset; the whole split when n is larger
        test = test.subset(data.stratified_indices(test.y, args.n, seed=args.seed))
    models.check_finite_logits(run_.model, test.x, name=str(args.run_dir))
    atks = build_attacks(args, eps)
    from robustviz.attacks import Adaptive, surrogate_of
    adaptive = surrogate_of(run_.model) is not None and not args.no_adaptive
    if adaptive:
        atks = {k: Adaptive(attack=a) for k, a in atks.items()}
        print("the model's prediction is not differentiable (reverse attention): every attack also "
              "runs on its differentiable surrogate, worst case per example (--no-adaptive: the model only)")
    selection = (f"class-stratified subset of the {args.split} split (seed {args.seed})"
                 if 0 < args.n < whole else f"the whole {args.split} split")
    res = evaluate(run_.model, test, atks, topk=tuple(args.topk), batch_size=args.batch_size,
                   seed=args.seed, seeds=args.seeds, selection=selection,
                   progress=not args.no_progress)
    print(res.table())
    if save:
        record = {"kind": "evaluation", "split": args.split, "eps": eps, "norm": args.norm,
                  "adaptive": adaptive, "weights_epoch": weights_epoch,
                  **res.to_dict(), "table": res.table()}
        runs.append_metrics(args.run_dir, record)
        print(f"appended to {args.run_dir}/metrics.jsonl (kind='evaluation')")
    return 0
