"""The main job: load the teaching zoo, evaluate, diagnose, write the HTML report.

``python -m robustviz demo`` (the README's first command, through ``make demo``) runs
:func:`demo`: it loads the shipped zoo models (:mod:`robustviz.zoo`) of Fashion-MNIST
(scikit-learn's digits where Fashion-MNIST is missing) for NAT, PGD-AT, TRADES, Leaked-ASCL
(Bui et al., ECCV 2022) and TRADES-ANCRA (Zhou et al., 2023), checks their files against the
zoo's manifest, evaluates them clean, under FGSM and PGD-20 (adaptive for reverse attention),
computes the latent diagnostics and writes ``report/index.html``: under 2 minutes on a
2-core CPU. ``robustviz demo --retrain`` trains the demo's defenses from scratch at teaching
scale instead (TinyCNN, 5,000 images, 2 epochs, R-DIV recorded after every epoch; about 7
minutes on a 2-core CPU).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

from robustviz.runs import DEFAULT_EPS

__all__ = ["demo", "DEMO_DEFENSES", "DEMO_ZOO"]

EPS = DEFAULT_EPS["fashion-mnist"]   # 0.1, the one per-data-set table (digits: the same)

# The zoo models the demo reports, per data set (display name -> zoo name).
DEMO_ZOO = {
    "fashion-mnist": {"nat": "nat", "pgd_at": "pgd_at", "trades": "trades", "ascl": "ascl_leaked",
                      "ancra": "trades_ancra"},
    "digits": {"nat": "nat", "pgd_at": "pgd_at", "trades": "trades"},
}

# One spec per defense at teaching scale; eps/step/steps as in configs/teach/*.yaml.
_ATTACK = {"eps": EPS, "step_size": EPS / 4, "steps": 5}
DEMO_DEFENSES = {
    "nat": {"name": "nat"},
    "pgd_at": {"name": "pgd_at", **_ATTACK},
    "trades": {"name": "trades", "beta": 6.0, **_ATTACK, "random_start": "normal_small"},
    "ascl": {"name": "ascl", "base": "pgd_at", "selection": "leaked", "tau": 0.07,
             "lambda_scl": 1.0, "lambda_vat": 2.0, **_ATTACK},
    # aux_attack "own" as in configs/teach/paper004_trades_ancra.yaml: with the paper's shared
    # examples the auxiliary head (the test-time decision) is never attacked in training and
    # the demo model is as weak as NAT under the adaptive attack (76.2% clean, 37.2% PGD-20
    # with Adam; 75.0% / 46.2% with SGD); "own" gives 75.0% / 57.0% on 500 test images.
    "ancra": {"name": "ancra", "base": "trades", "beta": 6.0, "zeta": 3.0, "gamma": 2.0,
              "aux_attack": "own", "neg_eps": EPS, "neg_step_size": 0.04, "neg_steps": 3,
              **_ATTACK, "random_start": "normal_small"},
}

# Optimiser per defense: Adam 1e-3 learns the small models fastest in 2 epochs; ANCRA's
# contrastive and auxiliary terms need SGD with momentum and a cosine schedule (Adam leaves
# its features collapsed: 50% clean with aux_attack "own").
_OPTIM = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "schedule": "constant"}
_OPTIM_OVERRIDES = {"ancra": {"optimizer": "sgd", "lr": 0.02, "momentum": 0.9,
                              "weight_decay": 5e-4, "schedule": "cosine"}}


def demo(out: str | Path = "runs/demo", report_dir: str | Path = "report", *,
         defenses: Sequence[str] | None = None, retrain: bool = False, n_train: int = 5_000,
         epochs: int = 2, n_test: int = 500, n_sweep: int = 200, sweep_steps: int = 5,
         n_embed: int = 500, val_size: int = 200, rdiv_every: int = 1, bf16="auto", seed: int = 0,
         progress: bool = True, dataset: str | None = None):
    """Report the teaching defenses: from the zoo (default) or retrained from scratch.

    Parameters
    ----------
    out : path
        With ``retrain``: parent folder of the run directories (one per defense; a finished
        run found there is reused). Unused otherwise (the zoo's run directories are read in
        place and never written).
    report_dir : path
        Where ``index.html`` and ``figures/`` go.
    defenses : sequence of str, optional
        Keys of :data:`DEMO_DEFENSES` (default: all that the data set's zoo holds).
    retrain : bool
        Train the defenses at teaching scale (``n_train`` images, ``epochs`` epochs, R-DIV
        recorded every ``rdiv_every`` epochs) instead of loading the zoo.
    n_train, epochs, val_size, rdiv_every : int
        Retraining only: class-stratified training subset, epochs, test examples scored
        after each epoch, R-DIV cadence (0: off).
    n_test : int
        Test examples of the report's table and diagnostics.
    n_sweep, sweep_steps, n_embed : int
        Examples and PGD steps per point of the robustness/R-DIV vs eps sweep; clean points
        of the t-SNE map.
    bf16 : "auto", bool
        Retraining only: bf16 autocast ("auto": on where the hardware makes it fast, i.e.
        CUDA or a CPU with AVX512-BF16/AMX; evaluation attacks stay fp32).
    seed : int
    progress : bool
    dataset : str, optional
        "fashion-mnist" or "digits"; default Fashion-MNIST where installed, else digits.
    """
    from robustviz import report, zoo

    t0 = time.time()
    name = dataset or zoo.default_dataset()
    if dataset is None and name != zoo.DEFAULT_DATASET:
        print("robustviz demo: Fashion-MNIST is not installed here; using the digits zoo "
              "(scikit-learn's 8x8 digits) instead")
    available = DEMO_ZOO.get(name, {}) if not retrain else DEMO_DEFENSES
    if defenses is None:
        defenses = [k for k in DEMO_DEFENSES if k in available]
    unknown = [d for d in defenses if d not in available]
    if unknown or not defenses:
        raise ValueError(f"defenses must be among {list(available)} for {name}"
                         f"{' (retrain)' if retrain else ''}, got {list(defenses)}")
    if retrain:
        dirs = _retrain(Path(out), name, defenses, n_train=n_train, epochs=epochs, val_size=val_size,
                        rdiv_every=rdiv_every, bf16=bf16, seed=seed, progress=progress)
    else:
        dirs = []
        for key in defenses:
            zname = DEMO_ZOO[name][key]
            zoo.verify(zname, name)
            dirs.append(zoo.run_dir(zname, name))
        print(f"robustviz demo: {name} teaching zoo ({', '.join(DEMO_ZOO[name][k] for k in defenses)}; "
              f"files checked against {zoo.MANIFEST}), eps {EPS}")
    rep = report.report(dirs, report_dir, n=n_test, eps=EPS, n_sweep=min(n_sweep, n_test),
                        sweep_steps=sweep_steps, n_embed=n_embed, names=list(defenses), seed=seed,
                        progress=progress)
    print()
    print(rep.table())
    tm = rep.timings
    print(f"\nreport: {Path(rep.path).resolve()}  ({time.time() - t0:.0f} s in all: "
          + ", ".join(f"{k} {v:.0f} s" for k, v in sorted(tm.items(), key=lambda kv: -kv[1]) if v >= 0.5)
          + ")")
    return rep


def _retrain(out: Path, name: str, defenses, *, n_train, epochs, val_size, rdiv_every, bf16, seed,
             progress) -> list[Path]:
    """Train the demo's defenses from scratch at teaching scale (one run directory each)."""
    import shutil

    import torch

    from robustviz import attacks, data, diagnostics, models, runs, train
    from robustviz._utils import bf16_is_fast

    if bf16 == "auto" or bf16 is None:
        bf16 = bf16_is_fast("cuda" if torch.cuda.is_available() else "cpu")
    full = data.info(name).sizes["train"]
    tr = data.load(name, "train", n=min(n_train, full) if n_train < full else None, seed=seed)
    te = data.load(name, "test", seed=seed)
    print(f"robustviz demo --retrain: training from scratch on {name}, {len(tr)} images, TinyCNN, "
          f"{epochs} epochs per defense, eps {EPS}, {'bf16' if bf16 else 'fp32'}"
          f"{f', R-DIV every {rdiv_every} epoch(s)' if rdiv_every else ''}")
    dirs = []
    for key in defenses:
        run_dir = out / key
        dirs.append(run_dir)
        done = (run_dir / "weights.safetensors").is_file() and any(
            r.get("kind") == "epoch" and r.get("epoch") == epochs for r in runs.read_metrics(run_dir))
        if done:
            print(f"  {key}: reusing {run_dir} (finished; delete it to train again)")
            continue
        if run_dir.exists():
            shutil.rmtree(run_dir)
        t = time.time()
        model = models.build("tinycnn", num_classes=tr.num_classes, in_channels=tr.shape[0],
                             input_size=tr.shape[1:], mean=tr.mean, std=tr.std, seed=seed,
                             reverse_attention=(key == "ancra"))
        optim = {**_OPTIM, **_OPTIM_OVERRIDES.get(key, {})}
        callbacks = []
        if rdiv_every:
            atk = attacks.Adaptive(attack=attacks.PGD(eps=EPS, steps=5, step_size=2.5 * EPS / 5))
            callbacks.append(diagnostics.RDivCallback(te, atk, n=200, every=rdiv_every, seed=seed))
        trainer = train.Trainer(defense=DEMO_DEFENSES[key], epochs=epochs, **optim, batch_size=128,
                                bf16=bool(bf16), eps=EPS, val_size=val_size, seed=seed, progress=progress)
        trainer.fit(model, tr, val=te, run_dir=run_dir, callbacks=callbacks,
                    meta={"data": {"name": name, "n": len(tr), "seed": seed}, "eval": {"eps": EPS}})
        last = trainer.history_[-1]
        print(f"  {key}: {time.time() - t:.0f} s, validation clean "
              f"{100 * last.get('val_clean_acc', float('nan')):.1f}%  robust "
              f"{100 * last.get('val_robust_acc', float('nan')):.1f}% ({last.get('val_n', val_size)} test images)")
    return dirs
