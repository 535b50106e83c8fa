"""The main job: train teaching-scale defenses, evaluate them, write the HTML report.

``python -m robustviz demo`` (the README's first command, through ``make demo``) runs
:func:`demo`: on Fashion-MNIST (scikit-learn's digits where Fashion-MNIST is missing) it
trains TinyCNN models with NAT, PGD-AT, TRADES, Leaked-ASCL (paper 001) and TRADES-ANCRA
(paper 004; SGD and ``aux_attack="own"``, see :data:`DEMO_DEFENSES`), with bf16 autocast
where the hardware makes it fast, evaluates them clean, under FGSM and PGD-20 (adaptive
for reverse attention), computes the latent diagnostics and writes ``report/index.html``.
About 7 minutes on a 2-core CPU.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

from robustviz.runs import DEFAULT_EPS

__all__ = ["demo", "DEMO_DEFENSES"]

EPS = DEFAULT_EPS["fashion-mnist"]   # 0.1, the one per-data-set table (digits: the same)

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
         defenses: Sequence[str] = tuple(DEMO_DEFENSES), n_train: int = 5_000, epochs: int = 2,
         n_test: int = 500, val_size: int = 200, bf16: bool | None = None, seed: int = 0,
         progress: bool = True, retrain: bool = False):
    """Train, evaluate and report the teaching-scale defenses; return the :class:`Report`.

    Parameters
    ----------
    out : path
        Parent folder of the run directories (one per defense). A finished run found
        there is reused unless ``retrain``.
    report_dir : path
        Where ``index.html`` and ``figures/`` go.
    defenses : sequence of str
        Keys of :data:`DEMO_DEFENSES`.
    n_train, epochs, n_test : int
        Training subset (class-stratified), epochs, test examples of the report.
    val_size : int
        Test examples scored clean and under PGD-20 after each epoch (a progress check;
        the report evaluates ``n_test`` examples).
    bf16 : bool, optional
        bf16 autocast for training (evaluation attacks stay fp32). Default: on where it is
        fast (CUDA, or a CPU with AVX512-BF16/AMX), off where PyTorch would emulate it.
    seed : int
    progress : bool
    retrain : bool
    """
    from robustviz import data, models, report, runs, train
    from robustviz._utils import bf16_is_fast

    unknown = [d for d in defenses if d not in DEMO_DEFENSES]
    if unknown or not defenses:
        raise ValueError(f"defenses must be among {list(DEMO_DEFENSES)}, got {list(defenses)}")
    if bf16 is None:
        bf16 = bf16_is_fast("cuda" if __import__("torch").cuda.is_available() else "cpu")
    t0 = time.time()
    name = "fashion-mnist" if data.available("fashion-mnist") else "digits"
    full = data.info(name).sizes["train"]
    tr = data.load(name, "train", n=min(n_train, full) if n_train < full else None, seed=seed)
    te = data.load(name, "test", seed=seed)
    print(f"robustviz demo: {name}, {len(tr)} training images, TinyCNN, {epochs} epochs per "
          f"defense, eps {EPS}, {'bf16' if bf16 else 'fp32'} training")
    out = Path(out)
    dirs = []
    for key in defenses:
        run_dir = out / key
        dirs.append(run_dir)
        done = (run_dir / "weights.safetensors").is_file() and any(
            r.get("kind") == "epoch" and r.get("epoch") == epochs
            for r in runs.read_metrics(run_dir))
        if done and not retrain:
            print(f"  {key}: reusing {run_dir}")
            continue
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)
        t = time.time()
        model = models.build("tinycnn", num_classes=tr.num_classes, in_channels=tr.shape[0],
                             input_size=tr.shape[1:], mean=tr.mean, std=tr.std, seed=seed,
                             reverse_attention=(key == "ancra"))
        optim = {**_OPTIM, **_OPTIM_OVERRIDES.get(key, {})}
        trainer = train.Trainer(defense=DEMO_DEFENSES[key], epochs=epochs, **optim, batch_size=128,
                                bf16=bf16, eps=EPS, val_size=val_size, seed=seed,
                                progress=progress)
        trainer.fit(model, tr, val=te, run_dir=run_dir,
                    meta={"data": {"name": name, "n": len(tr), "seed": seed}, "eval": {"eps": EPS}})
        last = trainer.history_[-1]
        print(f"  {key}: {time.time() - t:.0f} s, val clean {last.get('val_clean_acc', float('nan')):.3f}"
              f" robust {last.get('val_robust_acc', float('nan')):.3f}")
    rep = report.report(dirs, report_dir, n=n_test, eps=EPS, n_sweep=min(300, n_test),
                        n_embed=n_test, seed=seed, progress=progress)
    print()
    print(rep.table())
    print(f"\nreport: {Path(rep.path).resolve()}  ({time.time() - t0:.0f} s in all)")
    return rep
