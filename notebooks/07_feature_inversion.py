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
# **You will learn to** draw feature inversion maps (what image change drives one unit of a
# layer); tell a natural model's maps from a robust model's by how rough the change is and
# how far the unit is driven; explore units and layers interactively; and invert a whole
# representation back into an image.
#
# **Prerequisites:** 01 (attacks), 02 (adversarial training). **Run time:** under a minute
# on a 2-core CPU.
#
# What does a neuron respond to? *Feature inversion* starts from a seed image and climbs
# the gradient of one coordinate $i$ of a layer's representation $R$ in pixel space,
#
# $$x_{t+1} = \Pi_{[0,1]}\big(x_t + a\,\operatorname{sign}\nabla_x R_i(x_t)\big),$$
#
# and shows where it ends. Engstrom, Ilyas, Santurkar, Tsipras, Tran & Madry ("Adversarial
# Robustness as a Prior for Learned Representations", arXiv:1906.00945, 2019) found that for
# robust models these images look like features a person would name (edges, parts), and that
# *representation inversion*, finding an $x$ whose representation matches a target's,
# recovers the target; for natural models both stay noise-like. Sentences marked ✓ are
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
import torch

import robustviz as rv

S = rv.notebooks.setup(SCALE, seed=SEED)
EPS, test = S.eps, S.test
models = {"NAT": S.load("nat"), "PGD-AT": S.load("pgd_at")}
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
# How rough is the change $\delta = x_{\text{map}} - x_{\text{seed}}$? Its *roughness* here is
# its total variation (the mean absolute difference between neighbouring pixels, across and
# down) divided by its mean absolute value: noise that flips sign from pixel to pixel scores
# high, a smooth stroke low.

# %%
def change_roughness(d):
    """Total variation of a change per unit of change (higher: noisier)."""
    tv = (d[..., 1:, :] - d[..., :-1, :]).abs().mean() + (d[..., :, 1:] - d[..., :, :-1]).abs().mean()
    return float(tv / d.abs().mean())


def roughness(result):
    """The roughness of the change from the seed of an inversion result."""
    return change_roughness(result.images - result.start[:, None])


rough = {name: roughness(r) for name, r in inv.items()}
# a reference: pixel-independent noise, the same 40 steps of 0.02 from the same seeds, each
# pixel's sign drawn at random at every step
g = torch.Generator().manual_seed(SEED)
noise = inv["NAT"].start[:, None].expand_as(inv["NAT"].images).clone()
for _ in range(40):
    noise = (noise + 0.02 * (2 * torch.randint(0, 2, noise.shape, generator=g) - 1)).clamp(0, 1)
rough["noise"] = change_roughness(noise - inv["NAT"].start[:, None])
# each unit's gain in units of its spread (standard deviation) over 200 test images
gain = {}
for name, r in inv.items():
    spread = rv.models.extract(models[name], test.x[:200], ["penultimate"])["penultimate"][:, list(r.neurons)].std(0)
    gain[name] = float(((r.objective[-1] - r.objective[0]) / spread).mean())
for name in rough:
    print(f"{name:7s} roughness {rough[name]:.2f}"
          + (f"  mean activation gain {gain[name]:.1f} standard deviations (over test images)" if name in gain else ""))
rv.notebooks.expect(rough["noise"] > rough["NAT"] > rough["PGD-AT"],
                    "pixel-independent noise is rougher than the natural model's change, which is rougher "
                    "than the robust model's", noise=rough["noise"], nat=rough["NAT"], pgd_at=rough["PGD-AT"])
rv.notebooks.expect(gain["NAT"] > 2 * gain["PGD-AT"],
                    "in 40 steps of 0.02, the natural model's units rise by more than twice as many of "
                    "their standard deviations over 200 test images as the robust model's",
                    nat=gain["NAT"], pgd_at=gain["PGD-AT"]);

# %% [markdown]
# Neither change is as rough as pixel-independent noise, and the robust model's is the
# smoother of the two; the printed numbers say by how much. *Question:* is that difference
# as large as the pictures of Engstrom et al. would lead you to expect? Looking at the maps,
# does the robust model's change follow the object's strokes, or spread everywhere?
#
# The natural model's units also rise more, measured against how much each unit varies over
# the test images. This budget is not small (40 steps of 0.02 allow up to 0.8 per pixel, far
# beyond the attack's $\epsilon$ of 0.1 at the teaching scale), so it says nothing yet about
# robustness.
# *Question:* would the gap hold within the attack's budget? Rerun the inversion with
# `eps=EPS` (`feature_inversion` keeps $x$ within that $L_\infty$ distance of its seed) and
# compare the gains.
#
# ## 2. The inversion explorer
#
# One unit, one seed, both models side by side: pick a layer (`conv1`, `conv2`,
# `penultimate`, `logits`), a unit (a channel of a convolutional layer counts as one unit,
# its mean over positions) and a seed. `explorer.set(layer=..., neuron=..., seed=...)` does
# the same from code, and `explorer.gains` holds each model's activation gain. Where no live
# kernel runs (a static page), its first state shows as an image.

# %%
explorer = rv.widgets.InversionExplorer(models, seeds, dataset=S.dataset, layer="penultimate",
                                        neuron=top_neurons(models["PGD-AT"], 1)[0], steps=30)
explorer

# %% [markdown]
# ## 3. Representation inversion
#
# Start from noise and minimise $\|R(x) - R(x_t)\|_2 / \|R(x_t)\|_2$ for a target image $x_t$,
# with $R$ the penultimate representation.

# %%
targets = test.x[3:7]
rep = {name: rv.diagnostics.representation_inversion(m, targets, steps=100, seed=SEED)
       for name, m in models.items()}
rv.figures.plot_inversion(rep)

# %%
pixel_dist = {name: (r.images - r.targets).flatten(1).norm(dim=1) for name, r in rep.items()}
start_dist = (rep["NAT"].start - targets).flatten(1).norm(dim=1)
for name in models:
    print(f"{name:7s} L2 distance to the target per image: "
          + " ".join(f"{v:.1f}" for v in pixel_dist[name].tolist())
          + f"   (noise start: {' '.join(f'{v:.1f}' for v in start_dist.tolist())})")
rv.notebooks.expect(bool((pixel_dist["PGD-AT"] < pixel_dist["NAT"]).all()),
                    "on every target the robust model's reconstruction is nearer the target (L2, pixels) "
                    "than the natural model's",
                    nat=pixel_dist["NAT"].mean(), pgd_at=pixel_dist["PGD-AT"].mean())
rv.notebooks.expect(bool((pixel_dist["PGD-AT"] < start_dist).all()),
                    "the robust model's reconstructions all move nearer their targets than the noise "
                    "they start from", start=start_dist.mean(), pgd_at=pixel_dist["PGD-AT"].mean())
rv.notebooks.expect(float(pixel_dist["NAT"].mean()) > float(start_dist.mean()) - 0.5,
                    "the natural model's reconstructions end, on average, no nearer their targets "
                    "than the noise start (within 0.5)",
                    start=start_dist.mean(), nat=pixel_dist["NAT"].mean());

# %% [markdown]
# Only the robust model's reconstructions move towards the targets in pixels; the natural
# model's end, on average, no nearer than the noise they started from. Engstrom et al. read
# this as the robust representation keeping the information a person uses to recognise the
# image. Distances in pixels do not show that by themselves: Exercise 2 asks how well each
# model *matched the representation* while doing so, and whether the better match is the
# image that looks more like the target.
#
# ## Exercises
#
# Write each answer in its cell, replacing `...`, then run the check below it: it says what
# is still wrong, not the answer.
#
# **Exercise 1.** Early layers. With the explorer above (`explorer.set(layer="conv2",
# neuron=c, seed=0)`, then `explorer.gains`), compare the channels `c = 0, ..., 5` of `conv2`
# from seed 0. Which channel does the *robust* model raise the most? Answer an int.

# %%
answer_1 = ...

# %% tags=["solution"]
robust_gain = {}
for c in range(6):
    explorer.set(layer="conv2", neuron=c, seed=0)
    robust_gain[c] = explorer.gains["PGD-AT"]
answer_1 = max(robust_gain, key=robust_gain.get)
print({c: round(g, 3) for c, g in robust_gain.items()})

# %%
rv.notebooks.exercise("07.1", answer_1, models=models, seeds=seeds, layer="conv2", channels=range(6),
                      seed_index=0, steps=30, robust="PGD-AT");

# %% [markdown]
# **Exercise 2.** Representation inversion minimises the relative distance
# $\|R(x) - R(x_t)\|_2 / \|R(x_t)\|_2$ (stored per step in `rep[name].objective`, shape
# (steps + 1, targets)). For each model, what is its mean over the four targets at the last
# step? Answer a dict `{"NAT": ..., "PGD-AT": ...}`. Which model matched the representation
# better, and does that model's image look more like the target?

# %%
answer_2 = ...

# %% tags=["solution"]
answer_2 = {name: float(r.objective[-1].mean()) for name, r in rep.items()}
print(answer_2)

# %%
rv.notebooks.exercise("07.2", answer_2, results=rep);

# %% [markdown]
# **Exercise 3.** Can a smoothness prior replace robustness? Rerun the natural model's
# inversion of its five top units (`top_neurons(models["NAT"])`) on the first seed only
# (`seeds[:1]`, 40 steps of 0.02, `seed=SEED`), once as above and once with a total-variation
# penalty (`penalty="tv", penalty_weight=1.0`). Answer the ratio of the two roughnesses,
# with penalty over without, as a float.

# %%
answer_3 = ...

# %% tags=["solution"]
kw = dict(neurons=top_neurons(models["NAT"]), seeds=seeds[:1], steps=40, step_size=0.02, seed=SEED)
plain = rv.diagnostics.feature_inversion(models["NAT"], "penultimate", **kw)
smooth = rv.diagnostics.feature_inversion(models["NAT"], "penultimate", penalty="tv", penalty_weight=1.0, **kw)
answer_3 = roughness(smooth) / roughness(plain)
print(f"roughness {roughness(plain):.2f} -> {roughness(smooth):.2f} with the penalty "
      f"(the robust model: {rough['PGD-AT']:.2f})")

# %%
rv.notebooks.exercise("07.3", answer_3, model=models["NAT"], seeds=seeds[:1], neurons=top_neurons(models["NAT"]),
                      steps=40, step_size=0.02, penalty_weight=1.0, seed=SEED);

# %% [markdown]
# *Question:* the penalty's gradient competes with the unit's; with sign steps, which one
# decides the direction of a pixel? What does your ratio say about where the natural model's
# noise comes from: the optimisation, or the model?
