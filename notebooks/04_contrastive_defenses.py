# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 Contrastive defenses
#
# Two ways to shape the latent space during adversarial training:
#
# - **Embedding-space contrast** (Zhang, "Contrastive loss in embedding space for
#   adversarial robustness", course project): pull the adversarial example's embedding
#   $g(x')$ onto the clean one's at a chosen layer,
#   $$L = \mathrm{CE}(f(x'), y) + \beta\, d\big(g(x'), g(x)\big).$$
#   Which layer $g$ taps matters: the ablation below compares the shallowest and the deepest tap.
# - **ASCL** (Bui et al., "Understanding and Achieving Efficient Robustness with Adversarial
#   Supervised Contrastive Learning", 2021): a supervised contrastive loss over clean and
#   adversarial features, $L = L_{AT} + \lambda_{SCL} L_{SCL} + \lambda_{VAT} L_{VAT}$,
#   where a *selection* rule decides which samples count as positives and negatives of
#   each anchor. Global: every same-class sample is a positive, every other a negative.
#   Leaked: only samples whose predicted class agrees with the anchor's.
# %%
# Parameters. "teach": the teaching zoo (Fashion-MNIST, TinyCNN, eps 0.1) on a 2-core CPU.
# "paper": your runs of the paper configs (`robustviz train --config configs/paper...`, GPU),
# read from RUNS, with the paper's CIFAR-10 radius.
SCALE = "teach"
SEED = 0
RUNS = "runs/paper"
if SCALE == "teach":
    DATA, EPS, N_TEST = "fashion-mnist", 0.1, 500
else:
    DATA, EPS, N_TEST = "cifar10", 8 / 255, 10_000

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import torch

import robustviz as rv


def load(name):
    """A teaching-zoo model (SCALE = "teach") or your run of a paper config ("paper")."""
    if SCALE == "teach":
        return rv.zoo.load(name, dataset=DATA)
    return rv.runs.load_run(f"{RUNS}/{name}").model


test = rv.zoo.data(DATA, "test", n=N_TEST) if SCALE == "teach" else rv.data.load(DATA, "test", n=N_TEST)
rv.figures.set_style("notebook")
print(DATA, tuple(test.x.shape), test.classes)

# %% [markdown]
# ## 1. Embedding-space contrast and its layer ablation

# %%
names = {"PGD-AT": "pgd_at", "CL emb-1 (shallow)": "cl_emb1", "CL emb-5 (deep)": "cl_emb5",
         "ASCL global": "ascl_global", "ASCL leaked": "ascl_leaked"}
models = {label: load(name) for label, name in names.items()}
sub = (test.x[:300], test.y[:300])
pgd = rv.attacks.PGD(eps=EPS, steps=20)
results = {label: rv.evaluate.evaluate(m, sub, {"PGD-20": pgd}, topk=(1, 3, 5), seed=SEED, progress=False)
           for label, m in models.items()}
rv.figures.plot_topk_table(results, k=(1, 3, 5))

# %% [markdown]
# The table compares each contrastive variant with plain PGD-AT at top-1/3/5 under PGD-20;
# differences of a point or two on 300 images are within noise, larger ones are the effect
# of the extra term.

# %%
feats = {label: rv.diagnostics.attacked_features(m, sub, rv.attacks.PGD(eps=EPS, steps=10), seed=SEED)
         for label, m in models.items()}
divs = {label: rv.diagnostics.divergence(f.z_nat, f.z_adv, f.y) for label, f in feats.items()}
for label, d in divs.items():
    print(f"{label:20s} R-DIV {d.rdiv:.3f}  robust acc {feats[label].robust_acc:.0%}")
rv.figures.plot_divergence_pairs(divs)

# %% [markdown]
# A contrastive term acts on distances in latent space, so its first visible effect is on
# $d_a^+$: the models trained with it keep adversarial features nearer their class.
#
# ## 2. ASCL selections, counted
#
# The selection rule changes how many positives and negatives each anchor sees. Training
# is the lesson here: we train two short ASCL runs (2,000 images, one epoch each) and read
# the logged counts per anchor.

# %%
import shutil

train = rv.zoo.data(DATA, "train", n=2000) if SCALE == "teach" else rv.data.load(DATA, "train")
stats = {}
for selection in ("global", "leaked"):
    model = rv.models.build("tinycnn", num_classes=10, in_channels=train.shape[0],
                            mean=train.mean, std=train.std, seed=SEED)
    run_dir = f"runs/ascl_{selection}"
    shutil.rmtree(run_dir, ignore_errors=True)  # a re-run starts afresh
    rv.train.Trainer(defense={"name": "ascl", "base": "pgd_at", "selection": selection,
                              "lambda_scl": 1.0, "lambda_vat": 2.0, "tau": 0.07,
                              "eps": EPS, "steps": 2},
                     epochs=1, optimizer="adam", lr=3e-3, weight_decay=0.0, schedule="constant",
                     batch_size=128, eps=EPS, seed=SEED, progress=False).fit(model, train, run_dir=run_dir)
    stats[selection] = rv.diagnostics.selection_stats(run_dir, name=selection)
    print(stats[selection])
rv.figures.plot_selection_counts(stats)

# %% [markdown]
# With the global rule an anchor sees about a tenth of the batch as positives and the rest
# as negatives; the leaked rule keeps only samples the model confuses with the anchor, so
# both counts drop sharply: the loss then concentrates on the hard cases.
#
# ## Exercises
#
# 1. Which layer of the TinyCNN gives the lower R-DIV when tapped by the embedding loss?
#    Explain with where the distance is measured.
# 2. Train the embedding defense yourself: `{"name": "embedding", "layer": "penultimate",
#    "distance": "mse", "beta": 6.0, "eps": EPS, "steps": 2}` for one epoch and compare its
#    R-DIV with PGD-AT's.

# %% tags=["solution"]
# Solution 1: compare R-DIV at the penultimate layer (where R-DIV is measured)
for label in ("CL emb-1 (shallow)", "CL emb-5 (deep)"):
    print(f"{label}: R-DIV {divs[label].rdiv:.3f}")

# %% tags=["solution"]
# Solution 2
model = rv.models.build("tinycnn", num_classes=10, in_channels=train.shape[0],
                        mean=train.mean, std=train.std, seed=SEED)
rv.train.Trainer(defense={"name": "embedding", "layer": "penultimate", "distance": "mse",
                          "beta": 6.0, "eps": EPS, "steps": 2},
                 epochs=1, optimizer="adam", lr=3e-3, weight_decay=0.0, schedule="constant",
                 batch_size=128, eps=EPS, seed=SEED, progress=False).fit(model, train)
f = rv.diagnostics.attacked_features(model, sub, rv.attacks.PGD(eps=EPS, steps=10), seed=SEED)
print(f"embedding CL (1 epoch): R-DIV {rv.diagnostics.divergence(f.z_nat, f.z_adv, f.y).rdiv:.3f}")
