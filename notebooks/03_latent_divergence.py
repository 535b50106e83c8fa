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
# **You will learn to** measure how far an attack moves a model's latent features relative
# to the separation of its classes ($d_a^+$, $d_a^-$ and their ratio R-DIV); read the
# class $\times$ class divergence matrix; say which confidence interval each protocol
# computes; follow R-DIV as the attack grows and over training; and explore a latent map
# interactively.
#
# **Prerequisites:** 01 (attacks), 02 (adversarial training). **Run time:** about 3 minutes
# on a 2-core CPU.
#
# **Data:** Fashion-MNIST; this notebook needs Fashion-MNIST's class names (exercise 2 asks
# about Sandal), which the digits zoo (the fallback where Fashion-MNIST is absent) does not
# have. `robustviz data fetch fashion-mnist` gets it (the Colab cell does).
#
# Bui et al. ("Understanding and Achieving Efficient Robustness with Adversarial Supervised
# Contrastive Learning", arXiv:2101.10027, 2021) measure how far adversarial examples drift
# in latent space. For an anchor $x_i$ with latent feature $z_i$, positives are the clean
# and adversarial examples of its class, negatives those of other classes:
#
# $$d_a^+ = \frac1N\sum_i \operatorname{mean}_{x\in X_i^+} d(z_i, z(x)),\qquad
# d_a^- = \frac1N\sum_i \operatorname{mean}_{x\in X_i^-} d(z_i, z(x)),\qquad
# \text{R-DIV} = d_a^+/d_a^-$$
#
# with $d$ the cosine distance. A model whose adversarial features stay near their class
# has a low R-DIV. Sentences marked ✓ are checked against the numbers this notebook
# computes on your run; ✗ would mean they do not hold there.
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
import shutil

import numpy as np

import robustviz as rv

S = rv.notebooks.setup(SCALE, seed=SEED)
EPS, test = S.eps, S.test
models = {"NAT": S.load("nat"), "PGD-AT": S.load("pgd_at")}
pgd = rv.attacks.PGD(eps=EPS, steps=10)

# %% [markdown]
# ## 1. The divergences of two zoo models
#
# `attacked_features` attacks a set once and extracts the clean and adversarial features;
# `divergence` computes the exact averages over every pair (in blocks, never an
# $N\times N$ matrix at once). With `n_boot > 0` it adds a 95% confidence interval for
# R-DIV. Which interval? In this exact mode the anchors' means share pairs ($d(z_i, z_j)$
# enters the means of anchors $i$ and $j$), so they are not independent and resampling
# anchors would give too narrow an interval. The interval is a **delete-a-group
# jackknife**: the points are split at random into 20 groups, R-DIV is recomputed with
# each group left out (as anchors and as set members), and the interval is
# $\hat\theta \pm t_{G-1}\,\mathrm{se}_{\text{jack}}$ (Efron & Stein, "The Jackknife
# Estimate of Variance", Annals of Statistics 1981; Shao & Tu, "The Jackknife and
# Bootstrap", Springer 1995). In exact mode `n_boot` only switches it on.

# %%
feats = {name: rv.diagnostics.attacked_features(m, test, pgd, seed=SEED) for name, m in models.items()}
divs = {name: rv.diagnostics.divergence(f.z_nat, f.z_adv, f.y, n_boot=200, seed=SEED)
        for name, f in feats.items()}
for name, d in divs.items():
    print(f"{name:7s} d_a+ {d.d_pos:.3f}  d_a- {d.d_neg:.3f}  R-DIV {d.rdiv:.3f}  "
          f"95% CI [{d.ci[0]:.3f}, {d.ci[1]:.3f}] ({d.ci_method}, {d.jackknife_groups} groups)")
rv.figures.plot_divergence_pairs(divs)

# %%
nat_d, at_d = divs["NAT"], divs["PGD-AT"]
rv.notebooks.expect(all(d.ci_method == "jackknife" and d.jackknife_groups == 20 for d in divs.values()),
                    "in exact mode the interval is a delete-a-group jackknife over 20 groups",
                    methods=[d.ci_method for d in divs.values()])
rv.notebooks.expect(at_d.ci[1] < nat_d.ci[0],
                    "the adversarially trained model has the lower R-DIV, and the two intervals "
                    "do not overlap",
                    pgd_at=at_d.rdiv, pgd_at_high=at_d.ci[1], nat=nat_d.rdiv, nat_low=nat_d.ci[0])

# %% [markdown]
# The adversarially trained model has the lower R-DIV: its adversarial features stay closer
# to their own class relative to the other classes, as Bui et al. (2021) observe for
# adversarially trained models.
#
# Which classes are close in latent space? The class $\times$ class matrix holds the mean
# distance between anchors of one class and the (clean and adversarial) features of another.

# %%
rv.figures.plot_class_divergence(nat_d, class_names=test.classes, title="NAT")

# %%
def closest_pairs(result, classes, k=6):
    """The k closest pairs of different classes: (distance, class a, class b), the matrix
    made symmetric (the mean of a->b and b->a)."""
    m = (result.class_matrix + result.class_matrix.T) / 2
    c = len(classes)
    return sorted((float(m[a, b]), classes[a], classes[b]) for a in range(c) for b in range(a + 1, c))[:k]


closest = closest_pairs(nat_d, test.classes)
for dist, a, b in closest:
    print(f"{a:>11s} - {b:<11s} {dist:.3f}")
FOOTWEAR = {"Sandal", "Sneaker", "Ankle boot"}
if FOOTWEAR <= set(test.classes):  # the names below are Fashion-MNIST's
    rv.notebooks.expect(all({a, b} <= FOOTWEAR for _, a, b in closest[:3]),
                        "for the natural model the three closest class pairs are the three "
                        "footwear pairs (Sandal, Sneaker, Ankle boot)",
                        **{f"{a}-{b}": dist for dist, a, b in closest[:3]})
    rv.notebooks.expect({closest[3][1], closest[3][2]} == {"Pullover", "Coat"},
                        "the fourth closest pair, the closest outside footwear, is Pullover-Coat "
                        "(two upper-body garments)",
                        pair=f"{closest[3][1]}-{closest[3][2]}", distance=closest[3][0],
                        fifth=f"{closest[4][1]}-{closest[4][2]}", fifth_distance=closest[4][0])

# %% [markdown]
# On Fashion-MNIST the three closest pairs are the three footwear pairs, and the next is
# Pullover-Coat, two upper-body garments: the printed ranking comes from the matrix above,
# not from intuition. *Question:* T-shirt/top is not among the six printed pairs; which
# class is it closest to (`closest_pairs(nat_d, test.classes, k=45)` lists every pair)?
# Small off-diagonal entries mark classes that sit close in latent space.
# *Question:* does the attack move points along these short distances, i.e. does an
# attacked sandal become a sneaker? Exercise 2 measures it.
#
# ## 2. The paper's protocol: per mini-batch
#
# The paper averages per mini-batch of 128, then over batches. With one batch holding
# everything the two modes agree; with small batches they differ a little. The batches
# hold disjoint points, so their means are independent: the minibatch mode's interval is a
# **percentile bootstrap over the batches' means** (`n_boot` resamples). With one batch
# there is nothing to resample, and no interval.

# %%
protocol = {}
for name, f in feats.items():
    for mode, bs in [("exact", None), ("minibatch", 128), ("minibatch", len(f.y))]:
        kw = {} if bs is None else {"batch_size": bs}
        d = rv.diagnostics.divergence(f.z_nat, f.z_adv, f.y, mode=mode, n_boot=200, seed=SEED, **kw)
        protocol[name, mode, bs] = d
        ci = "none" if d.ci is None else f"[{d.ci[0]:.4f}, {d.ci[1]:.4f}] ({d.ci_method})"
        print(f"{name:7s} {mode:9s} batch {bs!s:5s} R-DIV {d.rdiv:.4f}  interval {ci}")

# %%
n = len(test.y)
rv.notebooks.expect(all(abs(protocol[m, "minibatch", n].rdiv - protocol[m, "exact", None].rdiv) < 1e-9
                        for m in models),
                    "with one batch holding every point, the minibatch protocol equals the exact one",
                    **{m: protocol[m, "minibatch", n].rdiv for m in models})
rv.notebooks.expect(protocol["NAT", "minibatch", 128].ci_method == "bootstrap"
                    and protocol["NAT", "minibatch", n].ci is None,
                    "batches of 128 get a bootstrap interval over batches; one batch gets none")
diffs = {m: abs(protocol[m, "minibatch", 128].rdiv - protocol[m, "exact", None].rdiv) for m in models}
rv.notebooks.expect(max(diffs.values()) < 0.01 and
                    protocol["PGD-AT", "minibatch", 128].rdiv < protocol["NAT", "minibatch", 128].rdiv,
                    "batches of 128 change R-DIV by less than 0.01 and keep the ranking of the models",
                    **diffs)

# %% [markdown]
# The protocol changes the third decimal, not the ranking of the models.
#
# ## 3. R-DIV as the attack grows
#
# `rdiv_vs_eps` attacks 200 test images at several radii and computes R-DIV and robust
# accuracy at each.

# %%
eps_grid = [0, EPS / 2, EPS, 2 * EPS]
sweep = rv.diagnostics.rdiv_vs_eps(models, (test.x[:200], test.y[:200]), pgd, eps_grid, seed=SEED)
rv.figures.plot_rdiv_vs_eps(sweep)

# %%
rise = {m: float(sweep.rdiv[i, -1] - sweep.rdiv[i, 0]) for i, m in enumerate(sweep.models)}
rv.notebooks.expect(bool(np.allclose(sweep.rdiv[:, 0], sweep.rdiv_clean)),
                    "at eps 0 each model's R-DIV is its clean R-DIV",
                    at_eps0=sweep.rdiv[:, 0].round(4).tolist(), clean=sweep.rdiv_clean.round(4).tolist())
rv.notebooks.expect(bool((np.diff(sweep.rdiv, axis=1) > 0).all()) and rise["NAT"] > 1.5 * rise["PGD-AT"],
                    "R-DIV rises with eps for both models, the natural one's by more than 1.5 times as much",
                    **{f"rise_{m}": r for m, r in rise.items()})
i_nat, i_at = sweep.models.index("NAT"), sweep.models.index("PGD-AT")
rv.notebooks.expect(sweep.robust_acc[i_nat, 2] < 0.05 and sweep.robust_acc[i_at, 2] > 0.5,
                    "at eps the natural model's robust accuracy has collapsed, the robust model's has not",
                    nat=sweep.robust_acc[i_nat, 2], pgd_at=sweep.robust_acc[i_at, 2])

# %% [markdown]
# At $\epsilon = 0$ both start from their clean R-DIV; the natural model's curve climbs
# steeply while its robust accuracy collapses, the robust model's rises more slowly.
# *Question:* at $\epsilon = 0$, which model has the lower R-DIV? What does that say
# about reading clean class separation as robustness? (Exercise 3 comes back to it.)
#
# The explorer shows the same thing on a map: 200 clean test points embedded with t-SNE,
# and the adversarial versions of the first 50 placed into that map. Move `eps` and watch
# the crosses leave their class (the map itself stays fixed); switch the model; click a
# point to see its image and both predictions. Where no live kernel runs (a static page),
# its current state shows as an image.

# %%
explorer = rv.widgets.LatentExplorer(models, test, eps=EPS, steps=10, n_map=200, n_adv=50,
                                     tsne_iter=250, seed=SEED)
explorer

# %% [markdown]
# ## 4. Over training, and the latent space reorganising
#
# Training is the lesson here, so we train a small PGD-AT model (2,000 images, 3 epochs).
# `RDivCallback` attacks the same fixed test subset after each epoch, logs R-DIV and the
# accuracies, and with `keep_features=True` keeps the subset's features for the replay.

# %%
shutil.rmtree("runs/div_pgd_at", ignore_errors=True)  # a re-run starts afresh
train = rv.zoo.data(S.dataset, "train", n=2000) if SCALE == "teach" else rv.data.load(S.dataset, "train")
model = rv.models.build("tinycnn", num_classes=10, in_channels=train.shape[0],
                        mean=train.mean, std=train.std, seed=SEED)
cb = rv.diagnostics.RDivCallback(test, rv.attacks.PGD(eps=EPS, steps=5), n=200, seed=SEED,
                                 keep_features=True)
rv.train.Trainer(defense={"name": "pgd_at", "eps": EPS, "steps": 3}, epochs=3, optimizer="adam",
                 lr=3e-3, weight_decay=0.0, schedule="constant", batch_size=128, eps=EPS,
                 seed=SEED, progress=False).fit(model, train, run_dir="runs/div_pgd_at", callbacks=[cb])
rv.figures.plot_rdiv_training({"PGD-AT": "runs/div_pgd_at"})

# %%
replay = rv.widgets.TrainingReplay(cb, class_names=test.classes, n_iter=250)
h = replay.history
for e, r, c, a in zip(h["epoch"], h["rdiv"], h["clean_acc"], h["robust_acc"]):
    print(f"epoch {e}: R-DIV {r:.3f}, clean {c:.0%}, robust {a:.0%}")
rv.notebooks.expect(h["clean_acc"][-1] > h["clean_acc"][0] and h["robust_acc"][-1] > h["robust_acc"][0],
                    "clean and robust accuracy are higher after the last epoch than after the first",
                    clean=h["clean_acc"], robust=h["robust_acc"])
# the zoo models under the callback's own protocol (PGD-5 on its 200 images), to compare like with like
zoo_same = {name: cb.compute(m) for name, m in models.items()}
for name, z in zoo_same.items():
    print(f"zoo {name:7s} same protocol: R-DIV {z['rdiv']:.3f}, clean {z['rdiv_clean_acc']:.0%}, "
          f"robust {z['rdiv_robust_acc']:.0%}")
spread = max(h["rdiv"]) - min(h["rdiv"])
zoo_gap = abs(zoo_same["NAT"]["rdiv"] - zoo_same["PGD-AT"]["rdiv"])
rv.notebooks.expect(spread < zoo_gap,
                    "over these three epochs R-DIV moves less than the gap between the zoo's NAT "
                    "and PGD-AT models measured the same way (PGD-5 on the callback's 200 images)",
                    rdiv_spread=spread, zoo_gap=zoo_gap)
rv.notebooks.expect(h["rdiv"][-1] < zoo_same["PGD-AT"]["rdiv"]
                    and h["robust_acc"][-1] < zoo_same["PGD-AT"]["rdiv_robust_acc"],
                    "measured the same way, the live model after its last epoch has a lower R-DIV "
                    "than the zoo's PGD-AT and a lower robust accuracy",
                    live_rdiv=h["rdiv"][-1], zoo_pgd_at_rdiv=zoo_same["PGD-AT"]["rdiv"],
                    live_robust=h["robust_acc"][-1], zoo_pgd_at_robust=zoo_same["PGD-AT"]["rdiv_robust_acc"])

# %% [markdown]
# Accuracy climbs over the three epochs while R-DIV moves less than the gap between the
# zoo's NAT and PGD-AT models measured the same way. And the live model ends with a lower
# R-DIV than the fully trained PGD-AT, yet a lower robust accuracy: a low R-DIV alone does
# not make a model robust. *Question:* does R-DIV fall, rise or stay flat from epoch to
# epoch here? Would you trust a trend read off three points? The callback also records
# $d_a^+$ and $d_a^-$ (`rv.runs.read_metrics("runs/div_pgd_at", kind="rdiv")`): is the live
# model's low R-DIV a small $d_a^+$ or a large $d_a^-$?
#
# Move the slider to replay the latent space epoch by epoch (each epoch's t-SNE map is
# aligned to the previous one, so the picture does not spin).

# %%
replay

# %% [markdown]
# ## 5. Pair distances (Zhou et al., ANCRA)
#
# Zhou et al. ("Robust Representation Learning via Asymmetric Negative Contrast and
# Reverse Attention", arXiv:2310.03358, 2023) look at the cosine similarity and $L_2$
# distance of positive pairs $(x, x')$ and negative pairs $(x, \text{other-class example})$.
# Notebook 05 develops this view.

# %%
pairs = {name: rv.diagnostics.pair_distances(f.z_nat, f.z_adv, f.y, seed=SEED) for name, f in feats.items()}
rv.figures.plot_pair_histograms(pairs)

# %%
pos = {name: float(p.pos_cosine.mean()) for name, p in pairs.items()}
rv.notebooks.expect(pos["PGD-AT"] > 0.95 and pos["PGD-AT"] > pos["NAT"] + 0.2,
                    "the robust model's positive pairs have a mean cosine above 0.95, more than "
                    "0.2 above the natural model's", **pos)
# how far the attack moves the features in L2, relative to the features' own size
moved = {name: float(p.pos_l2.mean()) / float(feats[name].z_nat.norm(dim=1).mean())
         for name, p in pairs.items()}
rv.notebooks.expect(moved["PGD-AT"] < moved["NAT"] / 4,
                    "the mean L2 distance of the positive pairs, divided by the mean clean feature "
                    "norm, is less than a quarter as large for the robust model as for the natural one",
                    **moved)

# %% [markdown]
# For the robust model the positive pairs are more similar (cosine near 1) than for the
# natural one: an attack turns its features less. The cosine ignores the norm, so the
# second check measures the move in $L_2$ relative to the features' size: by that measure
# the attack moves the robust model's features less than a quarter as far.
#
# ## Exercises
#
# Write each answer in its cell, replacing `...`, then run the check below it: it says what
# is still wrong, not the answer.
#
# **Exercise 1.** Compute R-DIV with the Euclidean distance instead of the cosine one
# (`distance="l2"` in `divergence`), on the features `feats` of section 1. Answer with a
# dict `{"NAT": ..., "PGD-AT": ...}` of the two R-DIVs.

# %%
answer_1 = ...

# %% tags=["solution"]
answer_1 = {name: rv.diagnostics.divergence(f.z_nat, f.z_adv, f.y, distance="l2", n_boot=0).rdiv
            for name, f in feats.items()}
print(answer_1)

# %%
rv.notebooks.exercise("03.1", answer_1, feats=feats)

# %% [markdown]
# *Question:* does the ranking of the two models change with the distance? The cosine
# distance ignores the features' norms, $L_2$ does not: which one compares models whose
# features have very different scales fairly?
#
# **Exercise 2.** Where does the attack send the natural model's sandals? Among the test
# images of class `"Sandal"` in `feats["NAT"]`, find the class the model predicts most
# often on their adversarial versions. Answer with a class name from `test.classes`.

# %%
answer_2 = ...

# %% tags=["solution"]
f = feats["NAT"]
sandal = f.y == test.classes.index("Sandal")
answer_2 = test.classes[int(f.logits_adv[sandal].argmax(1).bincount(minlength=len(test.classes)).argmax())]
print(answer_2)

# %%
rv.notebooks.exercise("03.2", answer_2, features=feats["NAT"], classes=test.classes, true_class="Sandal")

# %% [markdown]
# *Question:* is that the class closest to Sandal in the NAT matrix of section 1?
#
# **Exercise 3.** Compute the clean-only R-DIV of each model (pass `None` as the
# adversarial features: `divergence(f.z_nat, None, f.y)`), on `feats`. Answer with a dict
# `{"NAT": ..., "PGD-AT": ...}`.

# %%
answer_3 = ...

# %% tags=["solution"]
answer_3 = {name: rv.diagnostics.divergence(f.z_nat, None, f.y, n_boot=0).rdiv for name, f in feats.items()}
print(answer_3, {name: f.robust_acc for name, f in feats.items()})

# %%
rv.notebooks.exercise("03.3", answer_3, feats=feats)

# %% [markdown]
# *Question:* which model separates its *clean* classes better, and which one is robust?
# Is a model with well separated clean classes automatically robust?
