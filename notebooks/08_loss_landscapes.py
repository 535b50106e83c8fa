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
# **You will learn to** draw the loss around a trained model along filter-normalised random
# directions in weight space (2-D and 1-D, clean and adversarial), along the line between two
# models, and around the inputs; to measure flatness as the rise of the loss at a distance
# from the centre; and to tell what one picture shows from what it does not.
#
# **Prerequisites:** 01 (attacks), 02 (adversarial training). **Run time:** about 2 minutes
# on a 2-core CPU.
#
# Li, Xu, Taylor, Studer & Goldstein ("Visualizing the Loss Landscape of Neural Nets",
# NeurIPS 2018) plot the loss around the trained weights $\theta$ along random directions
# $d_1, d_2$,
#
# $$L(\theta + \alpha d_1 + \beta d_2),$$
#
# with each direction rescaled filter by filter to the norm of the weights it perturbs
# (*filter normalisation*), so landscapes of different models are comparable. Adversarially
# trained models are often said to sit in flatter regions; here we measure it, in weight
# space, along the line between two models, and in input space. Sentences marked ✓ are
# checked against the numbers this notebook computes on your run.
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
import numpy as np

import robustviz as rv

S = rv.notebooks.setup(SCALE, seed=SEED)
EPS, test = S.eps, S.test
models = {"NAT": S.load("nat"), "PGD-AT": S.load("pgd_at")}
sub = (test.x[:200], test.y[:200])
grid = [i / 5 for i in range(-5, 6)]

# %% [markdown]
# ## 1. Weight space, 2-D
#
# Both panels share one colour scale; the circle has radius 1 (the grid's half-width).

# %%
land = {name: rv.diagnostics.weight_landscape(m, sub, dims=2, alphas=grid, betas=grid, seed=SEED,
                                              progress=False)
        for name, m in models.items()}
rv.figures.plot_landscape_contour(land, radius=1.0)

# %% [markdown]
# Flatness as a number: how much the loss rises from the centre (the trained model) when the
# weights move. We average over the grid's edge (every point at filter-normalised distance 1
# along $d_1$ or $d_2$), over the circle of radius 1 and over the circle of radius 0.5
# (`Landscape.rise`).


# %%
def edge_rise(landscape):
    """Mean loss over the border of a 2-D grid minus the loss at the centre."""
    v = landscape.loss
    edge = np.concatenate([v[0], v[-1], v[1:-1, 0], v[1:-1, -1]])
    return float(edge.mean()) - landscape.center()


rise2d = {name: {"edge": edge_rise(L), "circle 1": L.rise(1.0), "circle 0.5": L.rise(0.5)}
          for name, L in land.items()}
for name, r in rise2d.items():
    print(f"{name:7s} centre {land[name].center():.3f}  rise: " +
          "  ".join(f"{k} {v:+.3f}" for k, v in r.items()))
nat2, at2 = rise2d["NAT"], rise2d["PGD-AT"]
rv.notebooks.expect(at2["edge"] < 0.75 * nat2["edge"],
                    "averaged over the grid's edge, the PGD-AT model's loss rises less than three "
                    "quarters as much as the natural model's",
                    nat=nat2["edge"], pgd_at=at2["edge"])
rv.notebooks.expect(at2["circle 1"] < nat2["circle 1"],
                    "on the circle of radius 1, too, the PGD-AT model's loss rises less",
                    nat=nat2["circle 1"], pgd_at=at2["circle 1"])

# %% [markdown]
# On average over the edge of this plane, the robust model's loss rises less: in that sense
# it sits in a flatter region. *Question:* compare the two models on the circle of radius
# 0.5 (printed above). Is the robust model flatter there too, and by how much? What does
# that say about a flatness claim made at one distance only?
#
# ## 2. Clean and adversarial loss along one direction
#
# A 1-D landscape is the line $\theta + \alpha d_1$: with the same seed, $d_1$ is the first
# direction of the plane above (its horizontal axis). With `attack=` the adversarial example
# is recomputed against the shifted model at every point, so the dashed curve is the robust
# loss, not the loss of fixed examples.

# %%
land1 = {name: rv.diagnostics.weight_landscape(m, (test.x[:100], test.y[:100]), dims=1, alphas=grid,
                                               attack=rv.attacks.PGD(eps=EPS, steps=3), seed=SEED,
                                               progress=False)
         for name, m in models.items()}
rv.figures.plot_landscape_1d(land1)

# %%
i0, i04 = grid.index(0.0), grid.index(0.4)
rise04 = {name: float(L.loss[i04] - L.loss[i0]) for name, L in land1.items()}
rise1 = {name: L.rise(1.0) for name, L in land1.items()}
for name, L in land1.items():
    print(f"{name:7s} clean loss at 0 {L.loss[i0]:.3f}, rise at alpha=+0.4 {rise04[name]:+.3f}, "
          f"mean rise at alpha=+-1 {rise1[name]:+.3f}; adversarial loss from "
          f"{L.adv_loss.min():.2f} to {L.adv_loss.max():.2f}")
rise_grid = {name: np.asarray(L.loss) - L.loss[i0] for name, L in land1.items()}
pos, neg = [i for i, a in enumerate(grid) if a > 0], [i for i, a in enumerate(grid) if a < 0]
rv.notebooks.expect(all(rise_grid["PGD-AT"][i] > rise_grid["NAT"][i] for i in pos)
                    and all(rise_grid["PGD-AT"][i] < rise_grid["NAT"][i] for i in neg),
                    "along this direction the two sides disagree: at every positive alpha of the grid "
                    "the PGD-AT model's clean loss has risen more than the natural model's, at every "
                    "negative alpha less",
                    nat=np.round(rise_grid["NAT"], 3).tolist(),
                    pgd_at=np.round(rise_grid["PGD-AT"], 3).tolist())
rv.notebooks.expect(rise04["PGD-AT"] > 2 * rise04["NAT"] and rise1["PGD-AT"] < rise1["NAT"],
                    "at alpha = +0.4 the PGD-AT model's clean loss has risen more than twice as much "
                    "as the natural model's, yet its mean rise at alpha = +-1 is smaller",
                    nat_04=rise04["NAT"], pgd_at_04=rise04["PGD-AT"], nat_1=rise1["NAT"],
                    pgd_at_1=rise1["PGD-AT"])
nat1, at1 = land1["NAT"], land1["PGD-AT"]
rv.notebooks.expect(nat1.adv_loss.min() > at1.adv_loss.max(),
                    "the natural model's adversarial loss is higher at every point of the line "
                    "than the robust model's is at any point",
                    nat_lowest=nat1.adv_loss.min(), pgd_at_highest=at1.adv_loss.max())
rv.notebooks.expect(int(np.argmin(at1.adv_loss)) == i0,
                    "the robust model's adversarial loss is lowest at alpha = 0, its own weights",
                    argmin_alpha=grid[int(np.argmin(at1.adv_loss))])

# %% [markdown]
# One direction can tell two stories on its two sides: along $d_1$ the robust model's clean
# loss rises more than the natural model's at every positive $\alpha$ of the grid (more than
# twice as much at $+0.4$) and less at every negative one, so a flatness number depends on
# where on the line it is read: averaged over $\alpha = \pm 1$ the robust model rises less.
# What the adversarial (dashed) curves show is sturdier: the natural model's adversarial loss
# stays above the robust model's along the whole line (no nearby weights make it robust), and
# the robust model's adversarial loss is lowest at its own weights, where training put it.
# *Question:* change `SEED` (a new pair of directions). Which of these sentences still hold,
# and which ones were a property of one direction?
#
# ## 3. From one model to the other
#
# The loss along $(1 - a)\,\theta_{NAT} + a\,\theta_{PGD\text{-}AT}$ (same architecture), as
# in Goodfellow, Vinyals & Saxe ("Qualitatively characterizing neural network optimization
# problems", ICLR 2015).

# %%
line = rv.diagnostics.interpolation_landscape(models["NAT"], models["PGD-AT"], sub,
                                              alphas=[i / 10 for i in range(-2, 13)], progress=False)
rv.figures.plot_landscape_1d({"NAT -> PGD-AT": line}, metrics=("loss", "accuracy"))

# %%
a = np.asarray(line.coords[0])
inside = (a >= 0) & (a <= 1)
ends = [line.at([0.0]), line.at([1.0])]
barrier = float(line.loss[inside].max()) - max(ends)
print(f"loss at a=0 {ends[0]:.3f}, at a=1 {ends[1]:.3f}, highest in between "
      f"{line.loss[inside].max():.3f} (a={a[inside][np.argmax(line.loss[inside])]:.1f})")
rv.notebooks.expect(barrier > 0.05,
                    "between the two models the clean loss rises above both ends (a barrier)",
                    barrier=barrier, loss_nat=ends[0], loss_pgd_at=ends[1])

# %% [markdown]
# The loss rises above both end points on the way: the robust solution is not reached from
# the natural one by a straight move downhill, so the two sit in different basins of the
# (clean) loss. Exercise 3 asks whether the accuracy shows a barrier too.
#
# ## 4. Input space
#
# $L(x + \alpha\,\operatorname{sign}\nabla_x L + \beta r)$ averaged over the data, $r$ a
# random sign direction; the axes are in pixel units, the training radius is
# $\epsilon = $ `EPS`.

# %%
inp = {name: rv.diagnostics.input_landscape(m, sub, alphas=[i / 40 for i in range(-6, 7)],
                                            betas=[i / 40 for i in range(-6, 7)], seed=SEED,
                                            progress=False)
       for name, m in models.items()}
rv.figures.plot_landscape_contour(inp)

# %%
up = {name: L.at([EPS, 0.0]) - L.center() for name, L in inp.items()}
side = {name: L.at([0.0, EPS]) - L.center() for name, L in inp.items()}
for name in inp:
    print(f"{name:7s} input-space loss rise at eps along sign(grad) {up[name]:+.3f}, "
          f"along the random sign {side[name]:+.3f}")
rv.notebooks.expect(up["NAT"] > 5 * up["PGD-AT"] and up["NAT"] > 1,
                    "one eps along the gradient sign, the natural model's loss rises by more than "
                    "1 and more than five times as much as the robust model's",
                    nat=up["NAT"], pgd_at=up["PGD-AT"])
rv.notebooks.expect(all(abs(side[n]) < up[n] / 10 for n in inp),
                    "for both models one eps along the random sign moves the loss less than a "
                    "tenth as much as one eps along the gradient sign",
                    **{f"random_{n}": side[n] for n in inp})

# %%
# the plot's random direction is one draw: move the same images one eps along a few more
# random sign directions (`input_landscape` on a 2 x 2 grid each, its random sign drawn
# from the seed; we read the centre and one eps along the random sign)
N_RANDOM = 8


def random_sign_rise(name, k):
    """Mean loss rise of `sub` moved one eps along random sign direction number k."""
    L = rv.diagnostics.input_landscape(models[name], sub, alphas=[0.0, EPS], betas=[0.0, EPS],
                                       seed=SEED + 1 + k, progress=False)
    return L.at([0.0, EPS]) - L.center()


rand_rise = {name: [random_sign_rise(name, k) for k in range(N_RANDOM)] for name in models}
for name, v in rand_rise.items():
    print(f"{name:7s} rise at eps along {N_RANDOM} more random signs: " + " ".join(f"{r:+.3f}" for r in v)
          + f"  (a tenth of the gradient sign's: {up[name] / 10:.3f})")
rv.notebooks.expect(all(abs(r) < up[n] / 10 for n in models for r in rand_rise[n]),
                    f"for both models, each of {N_RANDOM} more random sign directions moves the loss "
                    "less than a tenth as much as the gradient sign",
                    **{f"largest_random_{n}": max(abs(r) for r in rand_rise[n]) for n in models},
                    **{f"tenth_gradient_{n}": up[n] / 10 for n in models})

# %% [markdown]
# Along the gradient sign the natural model's loss climbs steeply within $\epsilon$; the
# robust model's moves far less, which is what adversarial training optimises for. Random
# sign directions barely move either model, none of the nine we tried: a random direction
# is almost never a steep one, which is why attacks follow the gradient.
#
# ## Exercises
#
# Write each answer in its cell, replacing `...`, then run the check below it: it says what
# is still wrong, not the answer.
#
# **Exercise 1.** Flatness depends on the direction. From the 2-D landscapes `land`, compute
# for each model how much the clean loss rises along the *second* direction $d_2$ alone
# (the line $\alpha = 0$): the mean of the loss at $\beta = -1$ and $\beta = +1$ minus the
# loss at the centre. `land[name].loss[i, j]` is the loss at `(alphas[i], betas[j])`. Answer
# with a dict `{"NAT": ..., "PGD-AT": ...}` of floats. Along $d_2$, which model is flatter?

# %%
answer_1 = ...

# %% tags=["solution"]
answer_1 = {}
for name, L in land.items():
    v, c = L.loss, grid.index(0.0)
    answer_1[name] = float((v[c, 0] + v[c, -1]) / 2 - v[c, c])
print(answer_1)

# %%
rv.notebooks.exercise("08.1", answer_1, landscapes=land)

# %% [markdown]
# **Exercise 2.** Li et al. leave biases and normalisation parameters unperturbed
# (`ignore="biasbn"`, the default). Compute the clean 1-D landscape of each model on `sub`
# with `alphas=grid`, `seed=SEED` and `ignore="none"` (biases perturbed too; no attack), and
# answer with its mean rise at distance 1 (`Landscape.rise(1.0)`), a dict per model. Does
# the order of the two models change?

# %%
answer_2 = ...

# %% tags=["solution"]
answer_2 = {}
for name, m in models.items():
    L = rv.diagnostics.weight_landscape(m, sub, dims=1, alphas=grid, seed=SEED, ignore="none",
                                        progress=False)
    answer_2[name] = L.rise(1.0)
print(answer_2)

# %%
rv.notebooks.exercise("08.2", answer_2, models=models, data=sub, alphas=grid, seed=SEED)

# %% [markdown]
# **Exercise 3.** Is there an *accuracy* barrier between the two models of section 3? From
# `line`, compute the lowest accuracy over $0 \le a \le 1$ minus the lower of the two end
# points' accuracies (a float; negative means the accuracy dips below both models on the
# way). Compare with the loss barrier above.

# %%
answer_3 = ...

# %% tags=["solution"]
a = np.asarray(line.coords[0])
inside = (a >= 0) & (a <= 1)
answer_3 = float(line.accuracy[inside].min()) - min(line.at([0.0], "accuracy"), line.at([1.0], "accuracy"))
print(answer_3)

# %%
rv.notebooks.exercise("08.3", answer_3, line=line)
