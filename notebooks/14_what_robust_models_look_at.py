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
# # 14 What robust models look at: saliency, integrated gradients, SmoothGrad
#
# **You will learn to** compute input attributions (saliency, integrated gradients,
# SmoothGrad) for clean and adversarial images with captum; measure how well a map follows
# the object instead of judging it by eye; check integrated gradients' completeness; and see
# how the noise of SmoothGrad changes what a robust model's map shows.
#
# **Prerequisites:** 01 (attacks), 02 (adversarial training). **Run time:** about 1 minute
# on a 2-core CPU.
#
# An *attribution* assigns each input pixel a share of the model's output for a class $y$.
# Tsipras, Santurkar, Engstrom, Turner & Madry ("Robustness May Be at Odds with Accuracy",
# ICLR 2019) showed that the input gradients of adversarially trained models look like the
# object, and those of standard models like noise; Santurkar, Tsipras, Tran, Ilyas, Engstrom
# & Madry ("Image Synthesis with a Single (Robust) Classifier", NeurIPS 2019) built image
# synthesis on that. We compute the maps with captum (Kokhlikyan et al., "Captum: A unified
# and generic model interpretability library for PyTorch", arXiv:2009.07896, 2020) for the
# teaching zoo's natural (`nat`) and adversarially trained (`pgd_at`) models, and turn
# "looks like the object" into a number. Sentences marked ✓ are checked against the numbers
# this notebook computes on your run; ✗ would mean they do not hold there.
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
import torch

import robustviz as rv

S = rv.notebooks.setup(SCALE, seed=SEED)
EPS, test = S.eps, S.test
models = {"NAT": S.load("nat"), "PGD-AT": S.load("pgd_at")}
x, y = test.x[:32], test.y[:32]
pgd = rv.attacks.PGD(eps=EPS, steps=10, seed=SEED)

# %% [markdown]
# ## 1. Three attributions, clean and adversarial
#
# For the logit $f_y$ of the true class:
#
# - **saliency** (Simonyan, Vedaldi & Zisserman, "Deep Inside Convolutional Networks:
#   Visualising Image Classification Models and Saliency Maps", ICLR workshop 2014) is the
#   input gradient $\nabla_x f_y(x)$;
# - **integrated gradients** (Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep
#   Networks", ICML 2017) average the gradient along the straight path from a baseline $b$
#   (here the black image) to $x$ and multiply by $x - b$:
#   $\mathrm{IG}_i = (x_i - b_i)\int_0^1 \partial_i f_y(b + \alpha(x - b))\,d\alpha$;
# - **SmoothGrad** (Smilkov, Thorat, Kim, Viégas & Wattenberg, "SmoothGrad: removing noise by
#   adding noise", arXiv:1706.03825, 2017) averages the gradient over copies of $x$ with
#   Gaussian noise of standard deviation $\sigma$ (here `NOISE`, a fifth of $\epsilon$;
#   section 4 shows why not more).
#
# The adversarial input of each model is its own PGD-10 example at $\epsilon$; the class
# explained is still the true one. The maps show $|{\rm attribution}|$, each panel on its
# own scale: the models' gradients differ in size, and the question is *where* a map puts
# its mass.

# %%
NOISE = EPS / 5
maps = rv.diagnostics.attribution_maps(models, x, y, attack=pgd,
                                       methods=("saliency", "integrated_gradients", "smoothgrad"),
                                       steps=32, samples=16, noise=NOISE, seed=SEED)
rv.figures.plot_attributions(maps, images=[0, 1], classes=test.classes, absolute=True)

# %% [markdown]
# *Look and answer:* which model's saliency traces the outline of the garment, and which
# one's is spread over the black background? Does the adversarial input change that?
#
# ## 2. How well does a map follow the object? A number for it
#
# `rv.diagnostics.attribution_alignment(attr, x)` correlates $|{\rm attribution}|$ with the
# image's *edge map* (the magnitude of Sobel's gradient operator), pixel by pixel, one
# Spearman rank correlation per image, then averages over the images with a bootstrap 95%
# interval. A map equal to the edge map scores 1, a map of noise about 0. For adversarial
# inputs the reference is still the clean image: the object is what the map is compared with.

# %%
align = {(name, kind): maps.alignment(name, "saliency", kind, seed=SEED)
         for name in models for kind in maps.kinds}
for (name, kind), a in align.items():
    print(f"{name:6s} {kind:5s}  saliency vs edges: {a.mean:.2f}  [{a.ci[0]:.2f}, {a.ci[1]:.2f}]")

# %%
for kind in maps.kinds:
    rob, nat = align["PGD-AT", kind], align["NAT", kind]
    rv.notebooks.expect(rob.ci[0] > nat.ci[1] + 0.2,
                        f"on {kind} inputs the robust model's saliency follows the edges more than "
                        f"the natural model's: its 95% interval lies more than 0.2 above",
                        pgd_at=rob.mean, pgd_at_lo=rob.ci[0], nat=nat.mean, nat_hi=nat.ci[1])

# %% [markdown]
# Where does the mass of a map lie? The share of $|{\rm saliency}|$ on the object (pixels
# brighter than 0.1) against the share of the pixels that are object: a map blind to the
# object puts about that share there.

# %%
mask = rv.diagnostics.object_mask(x, 0.1)
object_share = float(mask.float().mean())


def on_object(attr):
    """Mean over images of the share of |attr| on the object's pixels."""
    a = attr.abs().sum(1)
    return float(((a * mask).flatten(1).sum(1) / a.flatten(1).sum(1)).mean())


share = {name: on_object(maps.get(name, "saliency")) for name in models}
print(f"object pixels: {object_share:.0%}; saliency on the object: "
      + ", ".join(f"{k} {v:.0%}" for k, v in share.items()))
rv.notebooks.expect(share["PGD-AT"] > 0.8 and abs(share["NAT"] - object_share) < 0.1,
                    "the robust model puts more than 80% of its saliency on the object; the natural "
                    "model's share is within 10 points of the object's share of the pixels",
                    pgd_at=share["PGD-AT"], nat=share["NAT"], object_pixels=object_share)

# %%
from scipy.stats import spearmanr


def map_stability(name):
    """Per image: Spearman correlation of |saliency| on the clean and on the adversarial input."""
    a, b = (maps.get(name, "saliency", kind).abs().sum(1).flatten(1).numpy() for kind in ("clean", "adv"))
    return torch.tensor([float(spearmanr(u, v)[0]) for u, v in zip(a, b)])


stability = {name: map_stability(name) for name in models}
print("Spearman of each image's |saliency| clean vs adversarial, median over images: "
      + ", ".join(f"{k} {float(v.median()):.2f}" for k, v in stability.items()))
rv.notebooks.expect(float(stability["PGD-AT"].median()) > float(stability["NAT"].median()) + 0.2,
                    "the robust model's saliency map changes less when its input moves to its "
                    "adversarial example: its median clean-vs-adversarial Spearman is more than "
                    "0.2 above the natural model's",
                    pgd_at=float(stability["PGD-AT"].median()), nat=float(stability["NAT"].median()))

# %% [markdown]
# The natural model's gradient is about as large on the background as on the object: a
# change of black pixels that a person would not notice moves its logit as much as a change
# of the garment. That is the freedom an attack uses. The robust model's gradient lives on
# the object and its outline. The adversarial images differ from the clean ones by at most
# $\epsilon$ per pixel, and the robust model's map changes less between the two than the
# natural model's (✓ above). *Question:* why would a model trained to keep its *output*
# steady within $\epsilon$ also keep its *gradient* steadier there?
#
# ## 3. Integrated gradients: completeness, and what the baseline does
#
# Integrated gradients satisfy *completeness*: the attributions sum to
# $f_y(x) - f_y(b)$. captum integrates with Gauss-Legendre points (`steps`); on a ReLU
# network the gradient jumps along the path, so the sum is only as exact as the number of
# points allows.

# %%
black = torch.zeros_like(x)
with torch.no_grad():
    logit_gap = {name: (m(x) - m(black)).gather(1, y[:, None])[:, 0] for name, m in models.items()}
for name in models:
    total = maps.get(name, "integrated_gradients").flatten(1).sum(1)
    rel = ((total - logit_gap[name]).abs() / logit_gap[name].abs()).median()
    print(f"{name:6s} median |sum IG - (f(x) - f(0))| / |f(x) - f(0)| with 32 points: {float(rel):.2%}")
    rv.notebooks.expect(float(rel) < 0.05,
                        f"{name}: the integrated gradients sum to f_y(x) - f_y(black) within 5% "
                        f"(median over images)", median_relative_gap=float(rel))

# %%
ig_share = {name: on_object(maps.get(name, "integrated_gradients")) for name in models}
ig_align = {name: maps.alignment(name, "integrated_gradients", seed=SEED).mean for name in models}
rv.notebooks.expect(min(ig_share.values()) > 0.95,
                    "both models' integrated gradients lie on the object (more than 95% of |IG|)",
                    **{k: v for k, v in ig_share.items()})
rv.notebooks.expect(abs(ig_align["PGD-AT"] - ig_align["NAT"])
                    < (align["PGD-AT", "clean"].mean - align["NAT", "clean"].mean) / 3,
                    "the two models' integrated gradients differ in edge alignment by less than a third "
                    "of the difference of their saliency maps",
                    ig_pgd_at=ig_align["PGD-AT"], ig_nat=ig_align["NAT"],
                    sal_pgd_at=align["PGD-AT", "clean"].mean, sal_nat=align["NAT", "clean"].mean)

black_px = x == 0
print(f"{float(black_px.float().mean()):.0%} of the pixels are exactly black")
rv.notebooks.expect(all(float(maps.get(name, "integrated_gradients")[black_px].abs().max()) == 0
                        for name in models),
                    "for both models, integrated gradients are exactly 0 on every exactly black pixel",
                    black_pixels=float(black_px.float().mean()))

# %% [markdown]
# With the black baseline, the factor $x_i - b_i$ is 0 on every black background pixel:
# integrated gradients cannot put mass there, whatever the model (✓ above). Most of the
# difference between the two models' edge alignments disappears with integrated gradients:
# less than a third of the saliency maps' difference is left (✓ above). *Question:* how
# much of that is the baseline's doing? The natural model's saliency spread over the
# background in section 2; where can its integrated gradients put that mass? A baseline is
# a choice of what "absent" means; report it with the map. *Question:* what would a grey
# baseline ($b = 0.5$) do on Fashion-MNIST's black background?
#
# ## 4. SmoothGrad's noise and a robust model
#
# Smilkov et al. recommend noise of 10-20% of the input range. The robust model was
# trained against changes of at most $\epsilon = 0.1$ per pixel; Gaussian noise with
# $\sigma = 0.15$ moves about half of the pixels by more than that
# ($2(1 - \Phi(0.1/0.15)) \approx 0.50$). SmoothGrad's edge alignment and its
# share on the object against $\sigma$, with 8 noisy copies of each image:

# %%
sigmas = [0.02, 0.05, 0.1, 0.15]
sweep, sweep_share = {}, {}
for name, m in models.items():
    sg = [rv.diagnostics.attributions(m, x, y, method="smoothgrad", samples=8, noise=s, seed=SEED,
                                      progress=False) for s in sigmas]
    sweep[name] = [rv.diagnostics.attribution_alignment(a, x, seed=SEED).mean for a in sg]
    sweep_share[name] = [on_object(a) for a in sg]
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
for name in models:
    axes[0].plot(sigmas, sweep[name], marker="o", label=name)
    axes[1].plot(sigmas, sweep_share[name], marker="o", label=name)
axes[0].axhline(0, color="grey", lw=0.8)
axes[1].axhline(object_share, color="grey", lw=0.8, label="object's share of the pixels")
for ax in axes:
    ax.axvline(EPS, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("SmoothGrad noise $\\sigma$ (dashed: training $\\epsilon$)")
axes[0].set_ylabel("Spearman with the edge map")
axes[1].set_ylabel("share of |SmoothGrad| on the object")
axes[1].legend()
plt.show()

# %%
rob, nat = sweep["PGD-AT"], sweep["NAT"]
rv.notebooks.expect(rob[0] > max(nat) + 0.2 and rob[-1] < min(nat) - 0.1,
                    "the robust model's SmoothGrad follows the edges better than the natural model's "
                    "at sigma 0.02 and worse at sigma 0.15",
                    pgd_at_002=rob[0], pgd_at_015=rob[-1], nat_min=min(nat), nat_max=max(nat))
rv.notebooks.expect(sweep_share["PGD-AT"][0] > 0.8 and sweep_share["PGD-AT"][-1] < object_share - 0.1,
                    "at sigma 0.02 more than 80% of the robust model's SmoothGrad lies on the object; "
                    "at sigma 0.15 less than the object's share of the pixels: it has moved to the "
                    "background", share_002=sweep_share["PGD-AT"][0],
                    share_015=sweep_share["PGD-AT"][-1], object_pixels=object_share)
rv.notebooks.expect(max(nat) - min(nat) < 0.15,
                    "the natural model's SmoothGrad alignment changes by less than 0.15 over the four sigmas",
                    nat_min=min(nat), nat_max=max(nat))

# %% [markdown]
# At the noise the method's authors recommend, the robust model's map moves off the object
# onto the background; at a noise well inside its training radius it follows the edges. The
# natural model's map hardly changes with $\sigma$. An attribution method's settings are
# part of its result. *Question:* the noisy copies of a black background pixel are bright
# specks the robust model never saw in training at that size; what would you expect its
# gradient to do there? Would clipping the noisy copies to $[0, 1]$ change the picture?
#
# ## Exercises
#
# Write each answer in its cell, replacing `...`, then run the check below it: it says what
# is still wrong, not the answer.
#
# **Exercise 1.** Completeness needs enough integration points. For the PGD-AT model on
# `x[:16], y[:16]`, compute integrated gradients with `steps=8` (black baseline) and answer
# the mean over the images of $|\sum_i \mathrm{IG}_i - (f_y(x) - f_y(0))|$, in logits. Is it
# larger or smaller than with 32 points?

# %%
answer_1 = ...

# %% tags=["solution"]
ig8 = rv.diagnostics.attributions(models["PGD-AT"], x[:16], y[:16], method="integrated_gradients",
                                  steps=8, progress=False)
answer_1 = float((ig8.flatten(1).sum(1) - logit_gap["PGD-AT"][:16]).abs().mean())
print(f"mean completeness gap with 8 points: {answer_1:.4f} logits")

# %%
rv.notebooks.exercise("14.1", answer_1, model=models["PGD-AT"], x=x[:16], y=y[:16], steps=8)

# %% [markdown]
# **Exercise 2.** A sanity check in the spirit of Adebayo, Gilmer, Muelly, Goodfellow, Hardt
# & Kim ("Sanity Checks for Saliency Maps", NeurIPS 2018): does an *untrained* network's
# saliency follow the edges too? Build one with
# `rv.models.build("tinycnn", num_classes=10, in_channels=1, input_size=tuple(x.shape[-2:]), seed=SEED)`
# and answer the mean Spearman alignment of its saliency (for the labels `y`) with the edge
# map on `x`.

# %%
answer_2 = ...

# %% tags=["solution"]
untrained = rv.models.build("tinycnn", num_classes=10, in_channels=1, input_size=tuple(x.shape[-2:]),
                            seed=SEED)
answer_2 = rv.diagnostics.attribution_alignment(
    rv.diagnostics.attributions(untrained, x, y, progress=False), x).mean
print(f"untrained {answer_2:.2f}, NAT {align['NAT', 'clean'].mean:.2f}, "
      f"PGD-AT {align['PGD-AT', 'clean'].mean:.2f}")

# %%
rv.notebooks.exercise("14.2", answer_2, x=x, y=y, seed=SEED)

# %% [markdown]
# *Question:* where does the untrained network lie between the two trained ones? What does
# that say about reading "it follows the edges" as "it understood the object"?
