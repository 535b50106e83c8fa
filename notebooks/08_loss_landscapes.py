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
# # 08 Loss landscapes
#
# Li et al. ("Visualizing the Loss Landscape of Neural Nets", NeurIPS 2018) plot the loss
# around the trained weights $\theta$ along random directions $d_1, d_2$,
#
# $$L(\theta + \alpha d_1 + \beta d_2),$$
#
# with each direction rescaled filter by filter to the norm of the weights it perturbs
# (*filter normalisation*), so landscapes of different models are comparable. Adversarially
# trained models are often said to sit in flatter regions; here we look for ourselves, in
# weight space, along the line between two models, and in input space.
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
sub = (test.x[:200], test.y[:200])
grid = [i / 5 for i in range(-5, 6)]

# %% [markdown]
# ## 1. Weight space, 2-D

# %%
land = {name: rv.diagnostics.weight_landscape(m, sub, dims=2, alphas=grid, betas=grid, seed=SEED,
                                              progress=False)
        for name, m in models.items()}
rv.figures.plot_landscape_contour(land)

# %% [markdown]
# Both panels share one colour scale. The robust model's basin is wider at the same
# (filter-normalised) distance: its loss rises more slowly when the weights move.
#
# ## 2. Clean and adversarial loss along one direction
#
# With `attack=` the adversarial example is recomputed against the shifted model at every
# point, so the curve is the robust loss, not the loss of fixed examples.

# %%
land1 = {name: rv.diagnostics.weight_landscape(m, (test.x[:100], test.y[:100]), dims=1, alphas=grid,
                                               attack=rv.attacks.PGD(eps=EPS, steps=3), seed=SEED,
                                               progress=False)
         for name, m in models.items()}
rv.figures.plot_landscape_1d(land1)

# %% [markdown]
# The natural model's adversarial loss (dashed) is high everywhere: there is no nearby
# weight setting where it is robust. The robust model's adversarial loss has its own minimum
# at $\alpha = 0$.
#
# ## 3. From one model to the other
#
# The loss along $(1 - a)\,\theta_{NAT} + a\,\theta_{PGD\text{-}AT}$ (same architecture).

# %%
line = rv.diagnostics.interpolation_landscape(models["NAT"], models["PGD-AT"], sub,
                                              alphas=[i / 10 for i in range(-2, 13)], progress=False)
rv.figures.plot_landscape_1d({"NAT -> PGD-AT": line}, metrics=("loss",))

# %% [markdown]
# A barrier between $a = 0$ and $a = 1$ means the two models sit in different basins: the
# robust solution is not a small change of the natural one.
#
# ## 4. Input space
#
# $L(x + \alpha\,\operatorname{sign}\nabla_x L + \beta r)$ averaged over the data, $r$ a
# random sign direction.

# %%
inp = {name: rv.diagnostics.input_landscape(m, sub, alphas=[i / 40 for i in range(-6, 7)],
                                            betas=[i / 40 for i in range(-6, 7)], seed=SEED, progress=False)
       for name, m in models.items()}
rv.figures.plot_landscape_contour(inp)

# %% [markdown]
# Along the gradient sign the natural model's loss climbs steeply within $\epsilon = 0.1$;
# the robust model's barely moves, which is what adversarial training optimises for.
#
# ## Exercises
#
# 1. Draw the 3-D surface of section 1 (`rv.figures.plot_landscape_surface`).
# 2. Repeat section 1 with `ignore="none"` (biases and BatchNorm perturbed too). Does the
#    picture change?

# %% tags=["solution"]
# Solution 1
rv.figures.plot_landscape_surface(land)
