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
# # 03 Latent divergence: R-DIV, $d_a^+$ and $d_a^-$
#
# Bui et al. ("Understanding and Achieving Efficient Robustness with Adversarial Supervised
# Contrastive Learning", 2021) measure how far adversarial examples drift in latent space.
# For an anchor $x_i$ with latent feature $z_i$, positives are the clean and adversarial
# examples of its class, negatives those of other classes:
#
# $$d_a^+ = \frac1N\sum_i \operatorname{mean}_{x\in X_i^+} d(z_i, z(x)),\qquad
# d_a^- = \frac1N\sum_i \operatorname{mean}_{x\in X_i^-} d(z_i, z(x)),\qquad
# \text{R-DIV} = d_a^+/d_a^-$$
#
# with $d$ the cosine distance. A robust model keeps $x'$ near its class: low R-DIV.
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

# %%
models = {"NAT": load("nat"), "PGD-AT": load("pgd_at")}
pgd = rv.attacks.PGD(eps=EPS, steps=10)

# %% [markdown]
# ## 1. The divergences of two zoo models
#
# `attacked_features` attacks a set once and extracts the clean and adversarial features;
# `divergence` computes the exact averages over every pair (in blocks, never an
# $N\times N$ matrix at once), with a bootstrap interval over anchors.

# %%
feats = {name: rv.diagnostics.attacked_features(m, test, pgd, seed=SEED) for name, m in models.items()}
divs = {name: rv.diagnostics.divergence(f.z_nat, f.z_adv, f.y, n_boot=200, seed=SEED)
        for name, f in feats.items()}
for name, d in divs.items():
    print(f"{name:7s} d_a+ {d.d_pos:.3f}  d_a- {d.d_neg:.3f}  R-DIV {d.rdiv:.3f}  CI {d.ci}")
rv.figures.plot_divergence_pairs(divs)

# %% [markdown]
# The adversarially trained model has the lower R-DIV: its adversarial features stay closer
# to their own class relative to the other classes, as Bui et al. (arXiv:2101.10027, 2021)
# observe for adversarially trained models.
#
# Which classes are close in latent space? The class $\times$ class matrix holds the mean
# distance between anchors of one class and the (clean and adversarial) features of another.

# %%
rv.figures.plot_class_divergence(divs["NAT"], class_names=test.classes, title="NAT")

# %% [markdown]
# Small off-diagonal entries mark class pairs the attack can move between easily (on
# Fashion-MNIST: shirt, T-shirt, pullover and coat).
#
# ## 2. The paper's protocol: per mini-batch
#
# The paper averages per mini-batch of 128, then over batches. With one batch holding
# everything the two modes agree; with small batches they differ a little.

# %%
f = feats["NAT"]
for mode, bs in [("exact", None), ("minibatch", 128), ("minibatch", len(f.y))]:
    kw = {} if bs is None else {"batch_size": bs}
    d = rv.diagnostics.divergence(f.z_nat, f.z_adv, f.y, mode=mode, **kw)
    print(f"{mode:9s} batch {bs!s:5s} R-DIV {d.rdiv:.4f}")

# %% [markdown]
# The protocol changes the third decimal, not the ranking of models.
#
# ## 3. R-DIV as the attack grows
#
# R-DIV rises with $\epsilon$, faster for a natural model than for an adversarially trained one.

# %%
sweep = rv.diagnostics.rdiv_vs_eps(models, (test.x[:200], test.y[:200]), pgd,
                                   [0, EPS / 2, EPS, 2 * EPS], seed=SEED)
rv.figures.plot_rdiv_vs_eps(sweep)

# %% [markdown]
# At $\epsilon = 0$ both start from their clean R-DIV; the natural model's curve climbs
# steeply while its robust accuracy collapses, the robust model's rises slowly.
#
# ## 4. Over training, and the latent space reorganising
#
# Training is the lesson here, so we train a small PGD-AT model (2,000 images, 3 epochs).
# `RDivCallback` attacks the same fixed test subset after each epoch, logs R-DIV and the
# accuracies, and with `keep_features=True` keeps the subset's features for the replay.

# %%
import shutil

shutil.rmtree("runs/div_pgd_at", ignore_errors=True)  # a re-run starts afresh
train = rv.zoo.data(DATA, "train", n=2000) if SCALE == "teach" else rv.data.load(DATA, "train")
model = rv.models.build("tinycnn", num_classes=10, in_channels=train.shape[0],
                        mean=train.mean, std=train.std, seed=SEED)
cb = rv.diagnostics.RDivCallback(test, rv.attacks.PGD(eps=EPS, steps=5), n=200, seed=SEED,
                                 keep_features=True)
rv.train.Trainer(defense={"name": "pgd_at", "eps": EPS, "steps": 3}, epochs=3, optimizer="adam",
                 lr=3e-3, weight_decay=0.0, schedule="constant", batch_size=128, eps=EPS,
                 seed=SEED, progress=False).fit(model, train, run_dir="runs/div_pgd_at", callbacks=[cb])
rv.figures.plot_rdiv_training({"PGD-AT": "runs/div_pgd_at"})

# %% [markdown]
# Clean and robust accuracy climb over the three epochs. R-DIV moves much less at this tiny
# budget: the separation between NAT and PGD-AT of section 1 builds up over full training,
# so expect a flat or slowly falling curve here. Move the slider to replay the latent
# space epoch by epoch (each epoch's t-SNE map is aligned to the previous one).

# %%
replay = rv.widgets.TrainingReplay(cb, class_names=test.classes, n_iter=250)
print(replay.history)
replay

# %% [markdown]
# ## 5. Pair distances (Zhou et al., ANCRA)
#
# Cosine similarity and $L_2$ distance of positive pairs $(x, x')$ and negative pairs
# $(x, \text{other-class example})$.

# %%
pairs = {name: rv.diagnostics.pair_distances(f.z_nat, f.z_adv, f.y, seed=SEED) for name, f in feats.items()}
rv.figures.plot_pair_histograms(pairs)

# %% [markdown]
# For the robust model the positive pairs are more similar (cosine near 1) than for the
# natural one: an attack moves its features less.
#
# ## Exercises
#
# 1. Switch to `distance="l2"` in `divergence`. Does the ranking of the two models change?
#    Why is cosine scale-invariant and L2 not?
# 2. Compute the clean-only R-DIV (`divergence(f.z_nat, None, f.y)`). Is a model with well
#    separated clean classes automatically robust?

# %% tags=["solution"]
# Solutions 1 and 2: cosine ignores the features' norms, L2 does not; a model with well
# separated clean classes (low clean R-DIV) can still be far from robust.
for name, f in feats.items():
    l2 = rv.diagnostics.divergence(f.z_nat, f.z_adv, f.y, distance="l2")
    clean = rv.diagnostics.divergence(f.z_nat, None, f.y)
    print(f"{name:7s} cosine R-DIV {divs[name].rdiv:.3f}  L2 R-DIV {l2.rdiv:.3f}  "
          f"clean R-DIV {clean.rdiv:.3f}  robust acc {f.robust_acc:.0%}")
