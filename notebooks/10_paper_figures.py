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
# Every figure of the report, regenerated as a vector PDF in the paper style: one column
# wide (3.4 in), 8 pt fonts, the colour-blind-safe Okabe-Ito palette (Okabe & Ito, 2008).
# `rv.figures.set_style("paper")` sets the style once; each `plot_*` function draws a
# result and returns its Figure; `rv.figures.save` writes PDF (and PNG) atomically.
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
from pathlib import Path

OUT = Path("figures")
rv.figures.set_style("paper")
models = {"NAT": load("nat"), "PGD-AT": load("pgd_at")}
sub = (test.x[:300], test.y[:300])
pgd = rv.attacks.PGD(eps=EPS, steps=10)
saved = []


def show(fig, name):
    """Save ``fig`` as figures/<name>.pdf (+ .png) and return it so the notebook shows it."""
    saved.extend(rv.figures.save(fig, OUT / f"{name}.pdf", formats=["pdf", "png"]))
    return fig


# %% [markdown]
# ## Accuracy: the top-k table and the robustness curves

# %%
results = {name: rv.evaluate.evaluate(m, sub, {"FGSM": rv.attacks.FGSM(eps=EPS), "PGD-20": rv.attacks.PGD(eps=EPS, steps=20)},
                                      topk=(1, 3, 5), seed=SEED, progress=False)
           for name, m in models.items()}
show(rv.figures.plot_topk_table(results, k=(1, 3, 5)), "topk_table")

# %% [markdown]
# The table is the paper's Table-style summary: top-1/3/5 accuracy clean and under each attack.

# %%
curves = {name: rv.evaluate.accuracy_vs_eps(m, (test.x[:150], test.y[:150]), eps=[0, EPS / 2, EPS, 2 * EPS],
                                            steps=10, progress=False) for name, m in models.items()}
show(rv.figures.plot_robustness_vs_eps(curves, eps_scale=1.0), "accuracy_vs_eps")

# %% [markdown]
# Accuracy against the radius: the robust model trades a little clean accuracy for much
# higher accuracy at every $\epsilon > 0$.

# %%
steps = {name: rv.evaluate.accuracy_vs_steps(m, (test.x[:150], test.y[:150]), eps=EPS, steps=[1, 5, 10, 20],
                                             progress=False) for name, m in models.items()}
show(rv.figures.plot_robustness_vs_steps(steps), "accuracy_vs_steps")

# %% [markdown]
# Flat after 10 steps: the attack has converged, so the numbers are not an artefact of too
# few steps.
#
# ## Latent space: divergences, pairs and maps

# %%
feats = {name: rv.diagnostics.attacked_features(m, sub, pgd, seed=SEED) for name, m in models.items()}
divs = {name: rv.diagnostics.divergence(f.z_nat, f.z_adv, f.y, n_boot=100, seed=SEED) for name, f in feats.items()}
show(rv.figures.plot_divergence_pairs(divs), "divergence_pairs")

# %% [markdown]
# $d_a^+$ and $d_a^-$ with bootstrap intervals: the robust model's adversarial features stay
# closer to their class.

# %%
show(rv.figures.plot_class_divergence(divs["PGD-AT"], class_names=test.classes), "class_divergence")

# %% [markdown]
# The class $\times$ class distances: the small off-diagonal entries are the class pairs an
# attack moves between.

# %%
sweep = rv.diagnostics.rdiv_vs_eps(models, (test.x[:200], test.y[:200]), pgd, [0, EPS / 2, EPS, 2 * EPS], seed=SEED)
show(rv.figures.plot_rdiv_vs_eps(sweep), "rdiv_vs_eps")

# %% [markdown]
# R-DIV grows with the radius, faster for the natural model (Bui et al., 2021).

# %%
pairs = {name: rv.diagnostics.pair_distances(f.z_nat, f.z_adv, f.y, seed=SEED) for name, f in feats.items()}
show(rv.figures.plot_pair_histograms(pairs), "pair_histograms")

# %% [markdown]
# Positive pairs of the robust model concentrate near cosine 1 (Zhou et al., 2023, Fig. 4 style).

# %%
f = feats["PGD-AT"]
emb = rv.diagnostics.embed(f.z_nat, f.z_adv[:100], f.y, y_adv=f.y[:100], probs=f.probs_nat,
                           probs_adv=f.probs_adv[:100], seed=SEED)
show(rv.figures.plot_embedding(emb, class_names=test.classes), "embedding")

# %% [markdown]
# 300 clean points and 100 adversarial ones in one t-SNE map.

# %%
show(rv.figures.plot_embedding_entropy(emb), "embedding_entropy")

# %% [markdown]
# The same map coloured by prediction entropy (Bui et al., Fig. 6 shows it as height).

# %%
print(f"{len(saved)} files:", sorted(p.name for p in saved))

# %% [markdown]
# ## Exercises
#
# 1. Switch to `rv.figures.set_style("slides")` and regenerate one figure. What changes?
# 2. Save the top-k table as SVG as well.

# %% tags=["solution"]
# Solutions 1 and 2
rv.figures.set_style("slides")
fig = rv.figures.plot_topk_table(results, k=(1,))
print(rv.figures.save(fig, OUT / "topk_table_slides.pdf", formats=["pdf", "svg"]))
rv.figures.set_style("paper")
fig
