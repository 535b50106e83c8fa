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
# **You will learn to** compare how clean and adversarial features sit relative to each
# other (positive and negative pairs, cosine and $L_2$); test whether a geometric summary
# ranks models by robustness, and find the counterexample; rank models by robustness
# honestly (an adaptive attack, the worst case over attacks); and read t-SNE and UMAP maps
# of the features and the prediction entropy over them.
#
# **Prerequisites:** 01 (attacks), 02 (adversarial training), 03 (latent divergence); the
# adaptive attack is explained in 09 (honest evaluation). **Run time:** about 3 minutes on
# a 2-core CPU.
#
# **Data:** Fashion-MNIST; this notebook needs the zoo's TRADES-ANCRA model, which the
# digits zoo (the fallback where Fashion-MNIST is absent) does not have. `robustviz data
# fetch fashion-mnist` gets it (the Colab cell does).
#
# How do clean and adversarial features sit relative to each other? Zhou et al. ("Robust
# Representation Learning via Asymmetric Negative Contrast and Reverse Attention",
# arXiv:2310.03358, 2023; ANCRA) look at the cosine similarity and $L_2$ distance of
# *positive pairs* $(x, x')$ and *negative pairs* ($x$ and an example of another class):
#
# $$\cos(z, z') = \frac{z\cdot z'}{\|z\|\,\|z'\|}, \qquad \|z - z'\|_2 .$$
#
# ANCRA adds an asymmetric negative contrast (pushing a negative's probability of the
# anchor's class down where both predict the same class) and *reverse attention*, which
# weights the last features channel-wise by the classifier row of the class. Sentences
# marked ✓ are checked against the numbers this notebook computes on your run; ✗ would
# mean they do not hold there.
# %%
# Colab only: install robustviz (with its zoo) and Fashion-MNIST; elsewhere nothing happens
import subprocess, sys
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "robustviz[all] @ git+https://github.com/robustviz/robustviz"], check=True)
    subprocess.run([sys.executable, "-m", "robustviz", "data", "fetch", "fashion-mnist"], check=True)

# %%
# Parameters. "teach": the teaching zoo (Fashion-MNIST, TinyCNN, Linf eps 0.1) on a CPU.
# "paper": your runs of the paper configs (CIFAR-10, eps 8/255, GPU; rv.notebooks.PAPER_RUNS
# names the config that makes each model).
SCALE = "teach"
SEED = 0

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
import torch

import robustviz as rv

S = rv.notebooks.setup(SCALE, seed=SEED)
EPS, test = S.eps, S.test
names = {"NAT": "nat", "PGD-AT": "pgd_at", "TRADES": "trades", "TRADES-ANCRA": "trades_ancra"}
models = {label: S.load(name) for label, name in names.items()}
x, y = test.x[:300], test.y[:300]
pgd = rv.attacks.PGD(eps=EPS, steps=10)
feats = {label: rv.diagnostics.attacked_features(m, (x, y), pgd, seed=SEED) for label, m in models.items()}

# %% [markdown]
# ## 1. Positive and negative pairs

# %%
pairs = {label: rv.diagnostics.pair_distances(f.z_nat, f.z_adv, f.y, seed=SEED) for label, f in feats.items()}
rv.figures.plot_pair_histograms(pairs)

# %%
pos = {label: float(p.pos_cosine.mean()) for label, p in pairs.items()}
neg = {label: float(p.neg_cosine.mean()) for label, p in pairs.items()}
gap = {label: pos[label] - neg[label] for label in pairs}
for label in pairs:
    print(f"{label:13s} mean cosine: positive pairs {pos[label]:.3f}, negative pairs {neg[label]:.3f}, "
          f"gap {gap[label]:.3f}")
# how much of the natural model's positive-pair histogram lies inside the negative one
overlap = {label: float((p.pos_cosine < np.quantile(p.neg_cosine, 0.95)).mean())
           for label, p in pairs.items()}
rv.notebooks.expect(min(pos[k] for k in pairs if k != "NAT") > 0.95 and pos["NAT"] < 0.8,
                    "the adversarially trained models' positive pairs have a mean cosine above 0.95, "
                    "the natural model's below 0.8", **pos)
rv.notebooks.expect(overlap["NAT"] > 0.1 and max(overlap[k] for k in pairs if k != "NAT") < 0.02,
                    "more than 10% of the natural model's positive pairs are less similar than the "
                    "top 5% of its negative pairs; under 2% for every robust model", **overlap)

# %% [markdown]
# A robust geometry has positive pairs near cosine 1 (the attack barely moves the feature)
# and negative pairs clearly lower: the two histograms separate. For the natural model they
# overlap, so an attack can move a feature as far as another class.
#
# The gap between the two means summarises each histogram pair in one number. Does a
# larger gap mean a more robust model? To answer, we need each model's robust accuracy,
# measured honestly: TRADES-ANCRA's reverse attention takes a hard argmax decision, which
# masks the gradient of plain PGD (notebook 09). `rv.attacks.Adaptive` attacks the model
# and its differentiable surrogate and keeps, per image, whichever fools the model (for a
# model without a surrogate it is plain PGD).

# %%
adaptive = rv.attacks.Adaptive(attack=pgd)
robust = {label: rv.evaluate.evaluate(m, (x[:100], y[:100]), {"adaptive PGD-10": adaptive}, topk=(1,),
                                      seed=SEED, progress=False).robust("adaptive PGD-10")
          for label, m in models.items()}
print(f"{'model':13s} {'gap':>6s}  robust acc (adaptive PGD-10, 100 images)  has a surrogate")
for label in sorted(gap, key=gap.get, reverse=True):
    print(f"{label:13s} {gap[label]:6.3f}  {robust[label]:6.0%}  "
          f"{rv.attacks.surrogate_of(models[label]) is not None}")

# %%
rv.notebooks.expect(gap["NAT"] < min(gap["PGD-AT"], gap["TRADES"]) / 2
                    and robust["NAT"] < 0.05 and min(robust["PGD-AT"], robust["TRADES"]) > 0.5,
                    "among NAT, PGD-AT and TRADES the larger gap goes with robustness: both robust "
                    "models have more than twice NAT's gap",
                    **{f"gap_{k}": gap[k] for k in ("NAT", "PGD-AT", "TRADES")},
                    **{f"robust_{k}": robust[k] for k in ("NAT", "PGD-AT", "TRADES")})
rv.notebooks.expect(gap["TRADES-ANCRA"] < gap["NAT"] and robust["TRADES-ANCRA"] > robust["NAT"] + 0.5,
                    "counterexample: TRADES-ANCRA has a smaller gap than NAT, yet it is far more "
                    "robust under the adaptive attack",
                    gap_ancra=gap["TRADES-ANCRA"], gap_nat=gap["NAT"],
                    robust_ancra=robust["TRADES-ANCRA"], robust_nat=robust["NAT"])
rv.notebooks.expect(neg["TRADES-ANCRA"] > 2 * max(neg[k] for k in pairs if k != "TRADES-ANCRA"),
                    "TRADES-ANCRA's negative pairs have a mean cosine more than twice any other "
                    "model's", **neg)
# the share of each model's features (clean and adversarial) within cosine 0.7 of their mean direction
near_mean = {}
for label, f in feats.items():
    z = torch.nn.functional.normalize(torch.cat([f.z_nat, f.z_adv]), dim=1)
    near_mean[label] = float((z @ torch.nn.functional.normalize(z.mean(0), dim=0) > 0.7).float().mean())
rv.notebooks.expect(near_mean["TRADES-ANCRA"] > 0.9 and max(near_mean[k] for k in pairs if k != "TRADES-ANCRA") < 0.1,
                    "over 90% of TRADES-ANCRA's features have a cosine above 0.7 with their mean direction, "
                    "under 10% of any other model's", **near_mean)

# %% [markdown]
# So "the larger the gap, the more robust" holds among NAT, PGD-AT and TRADES, and
# TRADES-ANCRA breaks it: its gap is the smallest of the four while it is robust. The
# reason is where its features sit, not how far an attack moves them: nearly all of them
# point within cosine 0.7 of one mean direction, so even features of *different* classes
# have a high cosine. Reverse attention, which multiplies the features by a classifier row,
# is a likely cause. The gap shrinks from the
# negative side. A one-number summary of geometry is a description of the features, not a
# measure of robustness; robustness is measured by attacks.
#
# *Question:* PGD-AT and TRADES have close gaps and close robust accuracies. Does the
# larger gap go with the higher robust accuracy for these two? Would a difference of one
# or two images out of 100 convince you either way?
#
# ## 2. t-SNE and UMAP of the same features
#
# t-SNE (van der Maaten & Hinton, "Visualizing Data using t-SNE", JMLR 2008) keeps local
# neighbourhoods; UMAP (McInnes, Healy & Melville, "UMAP: Uniform Manifold Approximation
# and Projection for Dimension Reduction", arXiv:1802.03426, 2018) also keeps more of the
# global layout. The UMAP setting of Zhou et al. (2023) is `preset="zhou2023"`
# (n_neighbors 12, min_dist 0.01, correlation metric, densMAP).

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
# Distances *between* clusters mean little in t-SNE and somewhat more in UMAP.
# *Question:* do the two maps agree on which classes form tight clusters and which
# overlap? Name one pair of classes that overlaps in both.
#
# ## 3. Prediction entropy over the map (Bui et al., Fig. 6)
#
# Bui et al. ("Understanding and Achieving Efficient Robustness with Adversarial
# Supervised Contrastive Learning", arXiv:2101.10027, 2021, Fig. 6) colour the map by the
# entropy of the model's predicted probabilities (in nats; at most $\ln 10 \approx 2.3$
# for ten classes) and find the adversarial points that fool their models where those
# models are uncertain. Does that hold for TRADES-ANCRA?

# %%
rv.figures.plot_embedding_entropy(tsne, title=f"{label}: entropy")

# %%
ent_nat = rv.diagnostics.entropy(f.probs_nat)
ent_adv = rv.diagnostics.entropy(f.probs_adv[:100])
right_nat = (f.probs_nat.argmax(1) == f.y).numpy()
fooled = (f.probs_adv[:100].argmax(1) != f.y[:100]).numpy()
ent = {"clean_correct": float(ent_nat[right_nat].mean()), "adv_fooling": float(ent_adv[fooled].mean())}
rv.notebooks.expect(max(ent.values()) < 0.05,
                    "the adversarial points that fool TRADES-ANCRA have a mean entropy under 0.05 nats, "
                    "and so do its correctly classified clean points",
                    n_fooling=int(fooled.sum()), **ent)
rv.notebooks.expect(max(ent_nat.max(), ent_adv.max()) < 0.1,
                    "every point of the map, clean or adversarial, has an entropy under 0.1 nats",
                    max_clean=float(ent_nat.max()), max_adv=float(ent_adv.max()))
# the mean entropy of the wrong predictions, TRADES-ANCRA and TRADES (trained without ANCRA's two terms)
wrong = {}
for name in ("TRADES-ANCRA", "TRADES"):
    fm = feats[name]
    e_nat, e_adv = rv.diagnostics.entropy(fm.probs_nat), rv.diagnostics.entropy(fm.probs_adv[:100])
    wrong[name] = {"clean_wrong": float(e_nat[(fm.probs_nat.argmax(1) != fm.y).numpy()].mean()),
                   "adv_fooling": float(e_adv[(fm.probs_adv[:100].argmax(1) != fm.y[:100]).numpy()].mean())}
rv.notebooks.expect(all(wrong["TRADES"][k] > 10 * wrong["TRADES-ANCRA"][k] for k in ("clean_wrong", "adv_fooling")),
                    "on its misclassified clean points and on its fooling adversarial points, TRADES has "
                    "a mean entropy more than 10 times TRADES-ANCRA's",
                    **{f"{n}_{k}": v for n, d in wrong.items() for k, v in d.items()})

# %% [markdown]
# Not for this model: the crosses that left their class are predicted as confidently as
# the clean points in the middle of a cluster, and the map stays dark all over (its colour
# scale runs to $\ln 10$). TRADES, trained without ANCRA's two terms, has more than ten
# times TRADES-ANCRA's mean entropy on its wrong answers. Reverse attention multiplies the
# features by the row of the predicted class, which would sharpen every prediction, right or
# wrong; the asymmetric negative contrast is the other difference between the two models,
# so this comparison alone does not say which term does it. A confident wrong answer gives no
# warning: entropy is no detector of adversarial examples here.
# *Question:* would you expect the same picture for the natural model? Compute the two
# mean entropies from `feats["NAT"]` and compare.
#
# ## 4. Explore the maps
#
# The explorer embeds 200 clean test points of one model and places the adversarial
# versions of the first 50 into that map. Switch the model (NAT first, then TRADES-ANCRA),
# the layer, the attack and `eps`; click a point to see its image and both predictions.
# Its attacks are plain (not adaptive), so for TRADES-ANCRA the robust accuracy it reads
# out is the masked one. Where no live kernel runs (a static page), its current state
# shows as an image.

# %%
rv.widgets.LatentExplorer(models, test, eps=EPS, steps=10, n_map=200, n_adv=50, tsne_iter=250,
                          seed=SEED)

# %% [markdown]
# ## Exercises
#
# Write each answer in its cell, replacing `...`, then run the check below it: it says what
# is still wrong, not the answer.
#
# **Exercise 1.** Rank the four models by robustness the honest way: the per-image worst
# case over two attacks, both through `Adaptive`: `Adaptive(attack=PGD(eps=EPS, steps=10))`
# and `Adaptive(attack=PGD(eps=EPS, steps=10, loss="cw"))`, on `x[:100], y[:100]` with
# `rv.evaluate.evaluate(..., seed=SEED)` (an image counts as robust only if *neither*
# attack fools the model: `result.worst_case().accuracy`). Answer with a dict of the four
# worst-case robust accuracies, keyed like `models`.

# %%
answer_1 = ...

# %% tags=["solution"]
two = {"adaptive PGD-10": rv.attacks.Adaptive(attack=pgd),
       "adaptive PGD-10 (CW loss)": rv.attacks.Adaptive(attack=rv.attacks.PGD(eps=EPS, steps=10, loss="cw"))}
answer_1 = {label: rv.evaluate.evaluate(m, (x[:100], y[:100]), two, topk=(1,), seed=SEED,
                                        progress=False).worst_case().accuracy
            for label, m in models.items()}
for label in sorted(answer_1, key=answer_1.get, reverse=True):
    print(f"{label:13s} worst case {answer_1[label]:.0%}  gap {gap[label]:.3f}")

# %%
rv.notebooks.exercise("05.1", answer_1, models=models, x=x[:100], y=y[:100], eps=EPS, seed=SEED)

# %% [markdown]
# *Question:* order the models by your worst-case accuracies and by the cosine gap. Where
# do the two orders disagree, and which of the two would you report as "robustness"?
#
# **Exercise 2.** The t-SNE map shows adversarial crosses inside other classes' clusters;
# measure it in feature space instead of on the map. For each model, what fraction of the
# adversarial features `f.z_adv` have, as their nearest clean feature by cosine
# similarity, a point of *another* class? Search among the clean features `f.z_nat` of the
# other images: leave out each image's own clean version. Answer with a dict of fractions
# in [0, 1], keyed like `feats`.

# %%
answer_2 = ...

# %% tags=["solution"]
answer_2 = {}
for label, f in feats.items():
    sim = torch.nn.functional.normalize(f.z_adv, dim=1) @ torch.nn.functional.normalize(f.z_nat, dim=1).T
    sim.fill_diagonal_(-2.0)  # not its own clean version
    answer_2[label] = float((f.y[sim.argmax(1)] != f.y).float().mean())
print({k: f"{v:.0%}" for k, v in answer_2.items()})

# %%
rv.notebooks.exercise("05.2", answer_2, feats=feats)

# %% [markdown]
# *Question:* compare these fractions with the robust accuracies of Exercise 1. Does
# TRADES-ANCRA's small cosine gap show here?
