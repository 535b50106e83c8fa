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
# # 05 Feature geometry: pair distances, ANCRA, t-SNE and UMAP
#
# How do clean and adversarial features sit relative to each other? Zhou et al. ("Robust
# Representation Learning via Asymmetric Negative Contrast and Reverse Attention", ANCRA,
# 2023) look at the cosine similarity and $L_2$ distance of *positive pairs* $(x, x')$
# and *negative pairs* ($x$ and an example of another class):
#
# $$\cos(z, z') = \frac{z\cdot z'}{\|z\|\,\|z'\|}, \qquad \|z - z'\|_2 .$$
#
# ANCRA adds an asymmetric negative contrast (pushing a negative's probability of the
# anchor's class down where both predict the same class) and *reverse attention*, which
# weights the last features channel-wise by the classifier row of the class.
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
names = {"NAT": "nat", "PGD-AT": "pgd_at", "TRADES": "trades", "TRADES-ANCRA": "trades_ancra"}
models = {label: load(name) for label, name in names.items()}
sub = (test.x[:300], test.y[:300])
feats = {label: rv.diagnostics.attacked_features(m, sub, rv.attacks.PGD(eps=EPS, steps=10), seed=SEED)
         for label, m in models.items()}

# %% [markdown]
# ## 1. Positive and negative pairs

# %%
pairs = {label: rv.diagnostics.pair_distances(f.z_nat, f.z_adv, f.y, seed=SEED) for label, f in feats.items()}
rv.figures.plot_pair_histograms(pairs)

# %% [markdown]
# A robust geometry has positive pairs near cosine 1 (the attack barely moves the feature)
# and negative pairs clearly lower: the two histograms separate. For the natural model they
# overlap, so an attack can move a feature as far as another class.

# %%
for label, p in pairs.items():
    print(f"{label:13s} mean cosine: positive pairs {p.pos_cosine.mean():.3f}, "
          f"negative pairs {p.neg_cosine.mean():.3f}, gap {p.pos_cosine.mean() - p.neg_cosine.mean():.3f}")

# %% [markdown]
# The gap between the two means summarises each histogram pair in one number: the larger
# it is, the further an attack would have to move a feature to reach another class.
#
# ## 2. t-SNE and UMAP of the same features
#
# t-SNE (van der Maaten & Hinton, JMLR 2008) keeps local neighbourhoods; UMAP (McInnes et
# al., 2018) also keeps more of the global layout. The UMAP setting of Zhou et al.
# (arXiv:2310.03358, 2023) is `preset="zhou2023"` (n_neighbors 12, min_dist 0.01,
# correlation metric, densMAP).

# %%
label = "TRADES-ANCRA"
f = feats[label]
tsne = rv.diagnostics.embed(f.z_nat, f.z_adv[:100], f.y, y_adv=f.y[:100],
                            probs=f.probs_nat, probs_adv=f.probs_adv[:100], seed=SEED)
umap = rv.diagnostics.embed(f.z_nat, f.z_adv[:100], f.y, y_adv=f.y[:100], method="umap",
                            preset="zhou2023", seed=SEED)
fig, axes = plt.subplots(1, 2, figsize=(12, 5))
rv.figures.plot_embedding(tsne, ax=axes[0], class_names=test.classes, legend=False, title=f"{label}: t-SNE")
rv.figures.plot_embedding(umap, ax=axes[1], class_names=test.classes, title=f"{label}: UMAP (Zhou et al. 2023 setting)")
plt.show()

# %% [markdown]
# Both maps agree on which classes form tight clusters and which overlap; distances
# *between* clusters mean little in t-SNE and somewhat more in UMAP.
#
# ## 3. Prediction entropy over the map (Bui et al., Fig. 6)
#
# Adversarial points that fool the model often sit where the model is uncertain (high
# entropy of its predicted probabilities).

# %%
rv.figures.plot_embedding_entropy(tsne, title=f"{label}: entropy")

# %% [markdown]
# Bright points are uncertain predictions: adversarial crosses that left their class sit
# where the model hesitates, clean points in the middle of a cluster stay dark.
#
# ## Exercises
#
# 1. Which model has the largest gap between the mean positive-pair and negative-pair
#    cosine similarity? Does the ranking match robust accuracy?
# 2. Draw the t-SNE map of the natural model and compare it with ANCRA's.

# %% tags=["solution"]
# Solution 1: rank by the positive-negative gap and compare with robust accuracy
gaps = {label: p.pos_cosine.mean() - p.neg_cosine.mean() for label, p in pairs.items()}
for label in sorted(gaps, key=gaps.get, reverse=True):
    print(f"{label:13s} gap {gaps[label]:.3f}  robust acc {feats[label].robust_acc:.0%}")

# %% tags=["solution"]
# Solution 2
fn = feats["NAT"]
emb_nat = rv.diagnostics.embed(fn.z_nat, fn.z_adv[:100], fn.y, y_adv=fn.y[:100], seed=SEED)
rv.figures.plot_embedding(emb_nat, class_names=test.classes, title="NAT: t-SNE")
