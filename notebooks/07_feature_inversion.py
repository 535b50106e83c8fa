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
# # 07 Feature inversion maps
#
# What does a neuron respond to? *Feature inversion* starts from a seed image and climbs
# the gradient of one coordinate $i$ of a layer's representation $R$ in pixel space,
#
# $$x_{t+1} = \Pi_{[0,1]}\big(x_t + a\,\operatorname{sign}\nabla_x R_i(x_t)\big),$$
#
# and shows where it ends. Engstrom et al. ("Adversarial Robustness as a Prior for Learned
# Representations", 2019) found that for robust models these images look like features a
# person would name (edges, parts), and that *representation inversion*, finding an $x$
# whose representation matches a target's, recovers the target; for natural models both
# stay noise-like.
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
seeds = test.x[:3]

# %% [markdown]
# ## 1. Maximising penultimate neurons from three seeds
#
# We take each model's five most active penultimate units on the seeds: a ReLU unit that
# is 0 on an image has no gradient there.

# %%
def top_neurons(model, k=5):
    z = rv.models.extract(model, seeds, ["penultimate"])["penultimate"]
    return z.mean(0).topk(k).indices.tolist()


inv = {name: rv.diagnostics.feature_inversion(m, "penultimate", neurons=top_neurons(m), seeds=seeds,
                                              steps=40, step_size=0.02, seed=SEED)
       for name, m in models.items()}
rv.figures.plot_inversion(inv)

# %% [markdown]
# The natural model's maps add high-frequency noise to the seed; the robust model's maps
# change the seed's shape in a few coherent strokes: its neurons respond to structures a
# person can see.

# %%
for name, r in inv.items():
    gain = (r.objective[-1] - r.objective[0]).mean()
    print(f"{name}: mean activation gain {float(gain):.2f}")

# %% [markdown]
# The natural model's activations grow much more for the same pixel budget: its features
# are easy to drive with imperceptible changes, which is exactly its lack of robustness.
#
# ## 2. Representation inversion
#
# Start from noise and minimise $\|R(x) - R(x_t)\|_2 / \|R(x_t)\|_2$ for a target image $x_t$.

# %%
targets = test.x[3:7]
rep = {name: rv.diagnostics.representation_inversion(m, targets, steps=100, seed=SEED)
       for name, m in models.items()}
rv.figures.plot_inversion(rep)

# %% [markdown]
# Only the robust model's reconstructions resemble the targets: its representation keeps
# the information a person uses to recognise the image.
#
# ## Exercises
#
# 1. Invert a channel of `conv2` (`neurons=[0, 1, 2]`) instead. What do early-layer maps show?
# 2. Add a total-variation penalty (`penalty="tv", penalty_weight=0.1`). What changes for the
#    natural model?

# %% tags=["solution"]
# Solution 1 and 2
r1 = {name: rv.diagnostics.feature_inversion(m, "conv2", neurons=[0, 1, 2], seeds=seeds[:1], steps=30, seed=SEED)
      for name, m in models.items()}
r2 = {name: rv.diagnostics.feature_inversion(m, "penultimate", neurons=top_neurons(m, 3), seeds=seeds[:1], steps=30,
                                             penalty="tv", penalty_weight=0.1, seed=SEED)
      for name, m in models.items()}
rv.figures.plot_inversion(r2)
