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
# # 10 Paper figures
#
# **You will learn to** regenerate every figure of the report as a vector PDF in one paper
# style, save each atomically next to a PNG, and read what each figure shows from the
# numbers behind it rather than from its look.
#
# **Prerequisites:** 01 (attacks), 02 (adversarial training), 03 (latent divergence), 05
# (feature geometry). **Run time:** about 2 minutes on a 2-core CPU.
#
# The paper style is one column wide (3.4 in), 8 pt fonts and the colour-blind-safe
# Okabe-Ito palette (Okabe & Ito, "Color Universal Design (CUD): How to make figures and
# presentations that are friendly to colorblind people", J*Fly, 2008).
# `rv.figures.set_style("paper")` sets the style once; each `plot_*` function draws a result
# and returns its Figure; `rv.figures.save` writes PDF (and PNG) atomically. Sentences
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
from pathlib import Path

import matplotlib as mpl
import numpy as np

import robustviz as rv

S = rv.notebooks.setup(SCALE, seed=SEED)
EPS, test = S.eps, S.test
rv.figures.set_style("paper")
OUT = Path("figures")
models = {"NAT": S.load("nat"), "PGD-AT": S.load("pgd_at")}
sub = (test.x[:300], test.y[:300])
pgd = rv.attacks.PGD(eps=EPS, steps=10)
saved = []


def show(fig, name):
    """Save ``fig`` as figures/<name>.pdf (+ .png) and return it so the notebook shows it."""
    saved.extend(rv.figures.save(fig, OUT / f"{name}.pdf", formats=["pdf", "png"]))
    return fig


# %% [markdown]
# ## 1. Accuracy: the top-k table and the robustness curves
#
# The table is the report's summary: top-1/3/5 accuracy, clean and under FGSM (Goodfellow,
# Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015) and PGD-20
# (Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018).

# %%
results = {name: rv.evaluate.evaluate(m, sub, {"FGSM": rv.attacks.FGSM(eps=EPS),
                                               "PGD-20": rv.attacks.PGD(eps=EPS, steps=20)},
                                      topk=(1, 3, 5), seed=SEED, progress=False)
           for name, m in models.items()}
show(rv.figures.plot_topk_table(results, k=(1, 3, 5)), "topk_table")

# %%
for name, r in results.items():
    rv.notebooks.expect(r.robust("PGD-20") <= r.robust("FGSM"),
                        f"{name}: PGD-20 leaves no more top-1 accuracy than FGSM",
                        fgsm=r.robust("FGSM"), pgd20=r.robust("PGD-20"))
rv.notebooks.expect(results["PGD-AT"].robust("PGD-20") > results["NAT"].robust("PGD-20") + 0.3,
                    "under PGD-20 the adversarially trained model keeps at least 30 points more "
                    "top-1 accuracy than the natural one",
                    nat=results["NAT"].robust("PGD-20"), pgd_at=results["PGD-AT"].robust("PGD-20"))

# %% [markdown]
# Accuracy against the radius $\epsilon$ (PGD-10 at each point):

# %%
eps_grid = [0, EPS / 2, EPS, 2 * EPS]
curves = {name: rv.evaluate.accuracy_vs_eps(m, (test.x[:150], test.y[:150]), eps=eps_grid,
                                            steps=10, progress=False) for name, m in models.items()}
show(rv.figures.plot_robustness_vs_eps(curves, eps_scale=1.0), "accuracy_vs_eps")

# %%
nat_c, at_c = np.asarray(curves["NAT"].accuracy), np.asarray(curves["PGD-AT"].accuracy)
rv.notebooks.expect(0 < nat_c[0] - at_c[0] < 0.15,
                    "the robust model gives up some clean accuracy (less than 15 points)",
                    nat=nat_c[0], pgd_at=at_c[0])
rv.notebooks.expect(bool((at_c[1:] > nat_c[1:]).all()),
                    "and is more accurate than the natural model at every eps > 0 of the grid",
                    **{f"gain_at_{e:.3g}": float(a - n) for e, a, n in zip(eps_grid[1:], at_c[1:], nat_c[1:])})

# %% [markdown]
# Accuracy against the number of PGD steps at $\epsilon$: if the curve still falls at the
# last point, the numbers above are an artefact of too few steps.

# %%
steps_grid = [1, 5, 10, 20]
steps = {name: rv.evaluate.accuracy_vs_steps(m, (test.x[:150], test.y[:150]), eps=EPS,
                                             steps=steps_grid, progress=False)
         for name, m in models.items()}
show(rv.figures.plot_robustness_vs_steps(steps), "accuracy_vs_steps")

# %%
for name, c in steps.items():
    acc = dict(zip(steps_grid, c.accuracy))
    rv.notebooks.expect(abs(acc[10] - acc[20]) <= 0.02,
                        f"{name}: 20 steps change the accuracy of 10 steps by at most 2 points "
                        f"(the attack has converged)", steps10=acc[10], steps20=acc[20])

# %% [markdown]
# ## 2. Latent space: divergences, pairs and maps
#
# $d_a^+$ is the mean distance of an adversarial feature to the clean features of its own
# class, $d_a^-$ to the other classes, and R-DIV $= d_a^+/d_a^-$ (Bui et al., "Understanding
# and Achieving Efficient Robustness with Adversarial Supervised Contrastive Learning",
# arXiv 2021; notebook 03). The intervals are delete-a-group jackknife intervals.

# %%
feats = {name: rv.diagnostics.attacked_features(m, sub, pgd, seed=SEED) for name, m in models.items()}
divs = {name: rv.diagnostics.divergence(f.z_nat, f.z_adv, f.y, n_boot=100, seed=SEED)
        for name, f in feats.items()}
show(rv.figures.plot_divergence_pairs(divs), "divergence_pairs")

# %%
for name, d in divs.items():
    print(f"{name}: d+ {d.d_pos:.3f}, d- {d.d_neg:.3f}, R-DIV {d.rdiv:.3f} "
          f"[{d.ci[0]:.3f}, {d.ci[1]:.3f}]")
rv.notebooks.expect(divs["PGD-AT"].ci[1] < divs["NAT"].ci[0],
                    "the robust model's R-DIV is lower than the natural model's, and the two "
                    "intervals do not overlap: its adversarial features stay relatively closer "
                    "to their own class", nat=divs["NAT"].rdiv, pgd_at=divs["PGD-AT"].rdiv)

# %% [markdown]
# *Question:* R-DIV is a ratio. Compare $d_a^+$ and $d_a^-$ of the two models on their own:
# which part makes the robust model's ratio smaller? Are raw cosine distances of two
# different networks comparable at all?
#
# The class $\times$ class distances of the robust model:

# %%
show(rv.figures.plot_class_divergence(divs["PGD-AT"], class_names=test.classes), "class_divergence")

# %% [markdown]
# *Question:* the small off-diagonal entries are class pairs whose features lie close.
# Are they the pairs the attack moves examples between? Count the (true, adversarial
# prediction) pairs of `feats["PGD-AT"]` and compare (exercise 3 finds the closest pair).
#
# R-DIV against the radius:

# %%
sweep_eps = [0, EPS / 2, EPS, 2 * EPS]
sweep = rv.diagnostics.rdiv_vs_eps(models, (test.x[:200], test.y[:200]), pgd, sweep_eps, seed=SEED)
show(rv.figures.plot_rdiv_vs_eps(sweep), "rdiv_vs_eps")

# %%
rd = dict(zip(sweep.models, sweep.rdiv))
print({name: np.round(r, 3).tolist() for name, r in rd.items()}, "at eps", [round(e, 3) for e in sweep_eps])
rv.notebooks.expect(bool(np.all(np.diff(rd["NAT"]) > 0.05)),
                    "the natural model's R-DIV grows at every step of the radius",
                    steps=np.round(np.diff(rd["NAT"]), 3).tolist())
at = rd["PGD-AT"]
rv.notebooks.expect(at[2] - at[0] < 0.05 and at[3] - at[2] > 0.07,
                    "the robust model's R-DIV barely moves up to the radius it was trained at "
                    "and rises beyond it", rise_0_to_eps=float(at[2] - at[0]),
                    rise_eps_to_2eps=float(at[3] - at[2]))
rise = {name: float(r[-1] - r[0]) for name, r in rd.items()}
rv.notebooks.expect(rise["NAT"] > 1.5 * rise["PGD-AT"],
                    "from eps 0 to 2 eps R-DIV grows more for the natural model", **rise)

# %% [markdown]
# Cosine similarity of positive pairs (a clean feature and its adversarial version) and
# negative pairs (a clean feature and one of another class), in the style of Zhou et al.
# ("Robust Representation Learning via Asymmetric Negative Contrast and Reverse Attention",
# arXiv 2023, Fig. 4):

# %%
pairs = {name: rv.diagnostics.pair_distances(f.z_nat, f.z_adv, f.y, seed=SEED) for name, f in feats.items()}
show(rv.figures.plot_pair_histograms(pairs), "pair_histograms")

# %%
pos = {name: float(np.median(p.pos_cosine)) for name, p in pairs.items()}
rv.notebooks.expect(pos["PGD-AT"] > pos["NAT"] and pos["PGD-AT"] > 0.9,
                    "the robust model's positive pairs concentrate nearer cosine 1 (median above "
                    "0.9 and above the natural model's)", **pos)

# %% [markdown]
# One t-SNE map (van der Maaten & Hinton, "Visualizing Data using t-SNE", JMLR 2008) of the
# robust model's clean features and the adversarial versions of the first 100:

# %%
f = feats["PGD-AT"]
emb = rv.diagnostics.embed(f.z_nat, f.z_adv[:100], f.y, y_adv=f.y[:100], probs=f.probs_nat,
                           probs_adv=f.probs_adv[:100], seed=SEED)
print(f"{emb.n_clean} clean points and {emb.n_adv} adversarial ones in one map")
show(rv.figures.plot_embedding(emb, class_names=test.classes), "embedding")

# %% [markdown]
# The same map coloured by the entropy of the predicted class probabilities (Bui et al.,
# 2021, Fig. 6 draws it as height):

# %%
show(rv.figures.plot_embedding_entropy(emb), "embedding_entropy")

# %%
# the adversarial points are the versions of the first n_adv clean points (clean points come
# first in the map): compare each with its own clean image
h_clean = float(emb.entropy[~emb.is_adv][:emb.n_adv].mean())
h_adv = float(emb.entropy[emb.is_adv].mean())
rv.notebooks.expect(h_adv > h_clean,
                    f"on the same {emb.n_adv} images, the adversarial points are on average less certain "
                    "(higher mean entropy) than their clean versions", clean=h_clean, adversarial=h_adv)
print(f"{len(saved)} files:", sorted(p.name for p in saved))

# %% [markdown]
# *Question:* where in the map do the high-entropy points sit: inside the clusters or
# between them? What does that say about where the attack leaves the examples?
#
# ## Exercises
#
# Write each answer in its cell, replacing `...`, then run the check below it: it says what
# is still wrong, not the answer.
#
# **Exercise 1.** Slides. Switch to `rv.figures.set_style("slides")`, redraw the top-k
# table (top-1 only) and read the font size the style sets: answer with the float
# `mpl.rcParams["font.size"]` under the slides style. Switch back to `"paper"`
# afterwards. By what factor are the slides' letters larger than the paper's?

# %%
answer_1 = ...

# %% tags=["solution"]
rv.figures.set_style("slides")
fig_slides = rv.figures.plot_topk_table(results, k=(1,))
answer_1 = float(mpl.rcParams["font.size"])
rv.figures.set_style("paper")
fig_slides

# %%
rv.notebooks.exercise("10.1", answer_1)

# %% [markdown]
# **Exercise 2.** Vector formats. Save the top-k table of `results` as PDF *and* SVG with
# `rv.figures.save(fig, OUT / "topk_table_svg.pdf", formats=["pdf", "svg"])`; answer with
# the list of paths `save` returns.

# %%
answer_2 = ...

# %% tags=["solution"]
fig_svg = rv.figures.plot_topk_table(results, k=(1, 3, 5))
answer_2 = rv.figures.save(fig_svg, OUT / "topk_table_svg.pdf", formats=["pdf", "svg"])
print(answer_2)
fig_svg

# %%
rv.notebooks.exercise("10.2", answer_2)

# %% [markdown]
# **Exercise 3.** The closest classes. In the class $\times$ class matrix of the robust
# model (`divs["PGD-AT"].class_matrix`: entry `[a, b]` is the mean distance of class `a`'s
# anchors to the examples of class `b`, in the order of `test.classes`), which entry off the
# diagonal is the smallest? Answer with the pair of class names `(class a, class b)`, e.g.
# `("Shirt", "Coat")`. Then count how many of the robust model's fooled adversarial
# examples move between those two classes.

# %%
answer_3 = ...

# %% tags=["solution"]
m = np.array(divs["PGD-AT"].class_matrix, dtype=float)
np.fill_diagonal(m, np.inf)
i, j = np.unravel_index(np.argmin(m), m.shape)
answer_3 = (test.classes[i], test.classes[j])
print(answer_3)

# %%
rv.notebooks.exercise("10.3", answer_3, divergence=divs["PGD-AT"], class_names=test.classes)
