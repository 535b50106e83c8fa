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
# # 13 What can be guaranteed: certificates against attacks
#
# **You will learn to** tell an upper bound on robust accuracy (what an attack leaves) from a
# lower bound (what a certificate proves); bound a network's logits over an $L_\infty$ box
# with interval bound propagation (IBP) and with CROWN's linear relaxation; read the
# certified-vs-empirical figure and its unknown region; and certify an $L_2$ radius for any
# classifier with randomized smoothing.
#
# **Prerequisites:** 01 (attacks), 02 (adversarial training). **Run time:** about 2 minutes
# on a 2-core CPU.
#
# An attack that fails to fool an image proves nothing: a stronger one may succeed. So the
# accuracy under attack is an *upper* bound on the true robust accuracy. A *certificate*
# proves that no perturbation within the radius changes the decision, so certified accuracy
# is a *lower* bound. Between the two lies what nobody knows. Sentences marked ✓ are checked
# against the numbers this notebook computes on your run; ✗ would mean they do not hold there.

# %%
# Colab only: install robustviz (with its zoo) and Fashion-MNIST; elsewhere nothing happens
import subprocess, sys
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "robustviz[all] @ git+https://github.com/robustviz/robustviz"], check=True)
    subprocess.run([sys.executable, "-m", "robustviz", "data", "fetch", "fashion-mnist"], check=True)

# %%
# Parameters. "teach": the teaching zoo (Fashion-MNIST, TinyCNN) on a CPU. "paper": your
# runs of the paper configs (rv.notebooks.PAPER_RUNS names the config of each model); the
# bounds need chains of supported layers (TinyCNN, SmallCNN), so "paper" ResNets fail here.
SCALE = "teach"
SEED = 0
N = 100         # images for the attack and IBP
N_CROWN = 10    # CROWN took 1.7-2 s per image and radius on a loaded 2-core CPU
RADII = [0.01, 0.02, 0.05]

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import torch

import robustviz as rv

S = rv.notebooks.setup(SCALE, seed=SEED)
test = S.test
models = {"NAT": S.load("nat"), "PGD-AT": S.load("pgd_at")}
x, y = test.x[:N], test.y[:N]

# %% [markdown]
# ## 1. Bounds on the logits: IBP and CROWN
#
# Gowal et al. ("On the Effectiveness of Interval Bound Propagation for Training Verifiably
# Robust Models", arXiv 2018) push the box $[x-\epsilon, x+\epsilon]$ through the network
# layer by layer: an affine layer $Wz+b$ maps a box with centre $c$ and radius $r$ to the
# box with centre $Wc+b$ and radius $|W|r$, and a ReLU clips both ends. Cheap (two forward
# passes) but loose: each layer forgets how its inputs are correlated.
#
# CROWN (Zhang, Weng, Chen, Hsieh and Daniel, "Efficient Neural Network Robustness
# Certification with General Activation Functions", NeurIPS 2018) bounds each ReLU whose
# input interval $[l, u]$ straddles 0 by two lines, $\frac{u}{u-l}(z-l)$ above and
# $\alpha z$ below, and propagates these *linear* functions of the input backwards to the
# box, where they are minimised in closed form. It keeps the correlations IBP drops, at the
# cost of a backward pass per layer. (Wong and Kolter, "Provable Defenses against
# Adversarial Examples via the Convex Outer Adversarial Polytope", ICML 2018, bound the same
# relaxation through its dual.)
#
# Both bound the *margin* $f_y - f_j$ of the true class over every other class $j$; the
# image is certified at $\epsilon$ when every lower bound is positive.

# %%
m = models["PGD-AT"]
e = RADII[1]
spec = rv.certify.margin_spec(y[:N_CROWN], 10)
ibp_lo, ibp_hi = rv.certify.interval_bounds(m, x[:N_CROWN], e, spec)
crown_lo, crown_hi = rv.certify.crown_bounds(m, x[:N_CROWN], e, spec)
x_adv = rv.attacks.PGD(eps=e, steps=20, seed=SEED)(m, x[:N_CROWN], y[:N_CROWN])
with torch.no_grad():
    margins_adv = torch.einsum("ncd,nd->nc", spec, m(x_adv))
inside = bool(((crown_lo <= margins_adv + 1e-4) & (margins_adv <= crown_hi + 1e-4)).all()
              and ((ibp_lo <= margins_adv + 1e-4) & (margins_adv <= ibp_hi + 1e-4)).all())
w_ibp, w_crown = float((ibp_hi - ibp_lo).mean()), float((crown_hi - crown_lo).mean())
print(f"eps {e}: mean width of the margin bounds: IBP {w_ibp:.2f}, CROWN {w_crown:.2f}")
rv.notebooks.expect(inside, "the margins of the PGD examples lie inside both methods' bounds "
                    "(a bound holds for every point of the box, the attack's included)",
                    images=N_CROWN, eps=e)
rv.notebooks.expect(w_crown < w_ibp / 2, "CROWN's margin bounds are less than half as wide as IBP's",
                    ibp=w_ibp, crown=w_crown)

# %% [markdown]
# The attack's point is one point of the box, so its margins sit inside both bounds, and
# CROWN's bounds are less than half as wide: back-substitution keeps what IBP forgets.
#
# ## 2. Certified and attacked accuracy at three radii
#
# `rv.certify.compare` runs PGD-20 and both certificates on the same images: the input of
# the certified-vs-empirical figure. CROWN runs on the first `N_CROWN` images only; IBP and
# the attack run on all `N`, so we compare the methods on the common images.

# %%
res = {name: rv.certify.compare(mm, (x[:N_CROWN], y[:N_CROWN]), RADII, progress=False)
       for name, mm in models.items()}
ibp_all = {name: rv.certify.certify(mm, (x, y), RADII, method="ibp", progress=False)
           for name, mm in models.items()}
for name, r in res.items():
    print(name, {k: [f"{100 * a:.0f}%" for a in v] for k, v in {**r["empirical"], **r["certified"]}.items()},
          f"IBP on {N} images:", [f"{100 * ibp_all[name].accuracy(e):.0f}%" for e in RADII])

# %%
ordered = all(ib <= cr <= pg for r in res.values()
              for ib, cr, pg in zip(r["certified"]["IBP"], r["certified"]["CROWN"], r["empirical"]["PGD-20"]))
rv.notebooks.expect(ordered, "at every radius and for both models, IBP <= CROWN <= PGD-20 accuracy: "
                    "two lower bounds below an upper bound",
                    **{f"{n}_{k}": v for n, r in res.items() for k, v in {**r["empirical"], **r["certified"]}.items()})
at_r = res["PGD-AT"]["certified"]
rv.notebooks.expect(at_r["CROWN"][1] >= at_r["IBP"][1] + 0.3,
                    f"for the adversarially trained model at eps {RADII[1]}, CROWN certifies at least "
                    f"30 points more of the images than IBP", ibp=at_r["IBP"][1], crown=at_r["CROWN"][1],
                    images=N_CROWN)
nat_ibp, at_ibp = ibp_all["NAT"].accuracy(RADII[0]), ibp_all["PGD-AT"].accuracy(RADII[0])
rv.notebooks.expect(at_ibp > nat_ibp + 0.1, f"at eps {RADII[0]} IBP certifies at least 10 points more "
                    f"of the adversarially trained model's images than of the natural model's",
                    nat=nat_ibp, pgd_at=at_ibp, images=N)
at_pgd = res["PGD-AT"]["empirical"]["PGD-20"]
rv.notebooks.expect(at_r["CROWN"][1] >= at_pgd[1] / 2,
                    f"for the adversarially trained model at eps {RADII[1]}, CROWN certifies at least "
                    f"half of the accuracy PGD-20 leaves", pgd20=at_pgd[1], crown=at_r["CROWN"][1],
                    ibp=at_r["IBP"][1], images=N_CROWN)

# %% [markdown]
# Adversarial training makes a network easier to certify, not only harder to attack, and
# the tighter bound matters: at $\epsilon = 0.02$ CROWN certifies at least 30 points more of
# the PGD-AT model's images than IBP, and at least half of what the attack leaves (on few
# images: `N_CROWN` is small). *Question:* at the
# largest radius, how much of the PGD-AT model's attacked accuracy does any certificate
# cover? Would you call that model "robust at 0.05" from these numbers?
#
# ## 3. The unknown region
#
# The figure draws attacks solid and certificates dashed and shades the band between the
# strongest attack and the best certificate: robust accuracy lies somewhere in it.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True, layout="constrained")
for ax, (name, r) in zip(axes, res.items()):
    rv.figures.plot_certified_vs_empirical(r, ax=ax, title=f"{name}, {N_CROWN} images")
# both panels draw the same curves in the same colours: one legend under the pair, not one
# under each panel (side by side, those two run into each other)
handles, labels = axes[0].get_legend_handles_labels()
for ax in axes:
    ax.get_legend().remove()
fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize="small", frameon=False)
plt.show()

# %%
gap = {name: [pg - max(ib, cr) for pg, ib, cr in zip(r["empirical"]["PGD-20"], r["certified"]["IBP"],
                                                      r["certified"]["CROWN"])]
       for name, r in res.items()}
print({k: [f"{100 * g:.0f}" for g in v] for k, v in gap.items()})

# %% [markdown]
# *Look and answer:* for which model and at which radius is the shaded band widest? Does the
# band grow with the radius for both models? Certified training (Gowal et al.'s IBP
# training, `defense: {name: ibp}`) aims to narrow it from below; a stronger attack narrows
# it from above.
#
# ## 4. An $L_2$ certificate for any classifier: randomized smoothing
#
# Cohen, Rosenfeld and Kolter ("Certified Adversarial Robustness via Randomized Smoothing",
# ICML 2019) replace the classifier $f$ by $g(x) = \arg\max_c P(f(x + \sigma\eta) = c)$,
# $\eta \sim \mathcal N(0, I)$. If a lower confidence bound $\underline{p_A}$ on the top
# class's probability exceeds $1/2$, $g$ is constant on the $L_2$ ball of radius
# $R = \sigma\,\Phi^{-1}(\underline{p_A})$. No network structure is needed, only samples; the
# price is Monte-Carlo: we draw `n0 = 20` samples to pick the class and `n = 200` to bound
# its probability (the paper uses 100 and 100,000), so the largest radius we can certify is
# $\sigma\,\Phi^{-1}(0.001^{1/200}) \approx 1.83\,\sigma$ (printed below: with $\sigma = 0.25$,
# about 0.46), and radii are smaller than with more samples. No radius above that ceiling
# can be certified, whatever the model, so we read the curves below it.

# %%
from scipy.stats import norm

SIGMA, N_SMOOTH = 0.25, 20
smooth = rv.certify.Smooth(sigma=SIGMA, n0=20, n=200, alpha=0.001, seed=SEED)
ceiling = SIGMA * float(norm.ppf(smooth.alpha ** (1 / smooth.n)))
print(f"the most n = {smooth.n} samples can certify: sigma * Phi^-1(alpha^(1/n)) = "
      f"{ceiling / SIGMA:.2f} sigma = {ceiling:.3f}")
sm = {name: smooth.certify(mm, x[:N_SMOOTH]) for name, mm in models.items()}
with torch.no_grad():
    base_ok = {name: int((mm(x[:N_SMOOTH]).argmax(1) == y[:N_SMOOTH]).sum()) for name, mm in models.items()}
for name, r in sm.items():
    abstain = int((r.prediction == rv.certify.ABSTAIN).sum())
    right = int((r.prediction == y[:N_SMOOTH]).sum())
    print(f"{name}: base model right on {base_ok[name]} of {N_SMOOTH}; smoothed: right on {right}, "
          f"wrong on {N_SMOOTH - right - abstain}, abstains on {abstain}; "
          f"certified accuracy at L2 radius 0 / 0.2 / 0.4: "
          + " / ".join(f"{100 * r.certified_accuracy(y[:N_SMOOTH], rr):.0f}%" for rr in (0, 0.2, 0.4)))
fig, ax = plt.subplots(figsize=(5, 3.5))
for name, r in sm.items():
    # certified accuracy at radius R: the share of images predicted correctly with a certified
    # radius >= R, so it steps down by one image at each image's radius
    rad = r.radius[r.prediction == y[:N_SMOOTH]].sort().values
    ax.step(torch.cat([torch.zeros(1), rad]), torch.arange(len(rad), -1, -1) / N_SMOOTH * 100,
            where="post", label=name)
ax.axvline(ceiling, color="0.5", linestyle=":", label=f"ceiling of n = {smooth.n} samples")
ax.set_xlabel("L2 radius"), ax.set_ylabel("certified accuracy (%)"), ax.legend()
ax.set_title(f"randomized smoothing, sigma {SIGMA}, {N_SMOOTH} images")
plt.show()

# %%
largest = max(float(r.radius.max()) for r in sm.values())
rv.notebooks.expect(largest <= ceiling + 1e-6,
                    "no certified radius exceeds sigma * Phi^-1(alpha^(1/n)), the most that n noisy "
                    "samples can prove even when every one of them votes for the top class",
                    ceiling=ceiling, largest=largest)

# %%
l2_pgd = {name: rv.evaluate.evaluate(mm, (x[:N_SMOOTH], y[:N_SMOOTH]),
                                     {"l2": rv.attacks.PGD(eps=0.25, norm="l2", steps=20)},
                                     topk=(1,), seed=SEED, progress=False).robust("l2")
          for name, mm in models.items()}
cert25 = {name: r.certified_accuracy(y[:N_SMOOTH], 0.25) for name, r in sm.items()}
print("L2 PGD-20 accuracy of the base model at 0.25:", {k: f"{v:.0%}" for k, v in l2_pgd.items()})
print("certified accuracy of the smoothed model at 0.25:", {k: f"{v:.0%}" for k, v in cert25.items()})

# %% [markdown]
# The certificate speaks of the *smoothed* classifier $g$, the attack above of the base
# model $f$: the two numbers bound different classifiers, so they need not be ordered.
# *Question:* the zoo's models were not trained under Gaussian noise. For each model,
# compare the base model's right answers with the smoothed classifier's right answers,
# wrong answers and abstentions (printed in the smoothing cell): does noise of
# $\sigma = 0.25$ make the smoothed classifier abstain, or answer wrongly without
# abstaining? Which of the two would you rather have from a certified classifier?
# (Training with noise of the same $\sigma$, `defense: {name: gaussian_aug, sigma: 0.25}`,
# is what Cohen et al. do; `benchmarks/certify.py` measures it.)
#
# ## Exercises
#
# Write each answer in its cell, replacing `...`, then run the check below it: it says what
# is still wrong, not the answer.
#
# **Exercise 1.** At `EPS_GAP = 0.02`, what share of `x[:50]` lies in the unknown region for
# each model: the accuracy under `rv.attacks.PGD(eps=EPS_GAP, steps=20)` (scored with
# `rv.evaluate.evaluate(..., seed=SEED)`) minus the IBP certified accuracy
# (`rv.certify.certify(..., method="ibp")`)? Answer with a dict `{"NAT": ..., "PGD-AT": ...}`.

# %%
EPS_GAP = 0.02

# %%
answer_1 = ...

# %% tags=["solution"]
answer_1 = {}
for name, mm in models.items():
    pg = rv.evaluate.evaluate(mm, (x[:50], y[:50]), {"pgd": rv.attacks.PGD(eps=EPS_GAP, steps=20)},
                              topk=(1,), seed=SEED, progress=False).robust("pgd")
    answer_1[name] = pg - rv.certify.certify(mm, (x[:50], y[:50]), EPS_GAP, method="ibp",
                                             progress=False).accuracy(EPS_GAP)

# %%
rv.notebooks.exercise("13.1", answer_1, models=models, x=x[:50], y=y[:50], eps=EPS_GAP, seed=SEED)

# %% [markdown]
# **Exercise 2.** From the lower confidence bounds `sm["PGD-AT"].p_lower` (one per image),
# compute each image's certified $L_2$ radius $\sigma\,\Phi^{-1}(\underline{p_A})$ yourself,
# with 0 where the smoothed classifier abstains ($\underline{p_A} \le 1/2$). Answer with a
# tensor of `N_SMOOTH` radii. (`scipy.stats.norm.ppf` is $\Phi^{-1}$.)

# %%
answer_2 = ...

# %% tags=["solution"]
p = sm["PGD-AT"].p_lower
answer_2 = torch.where(p > 0.5, SIGMA * torch.as_tensor(norm.ppf(p.numpy())), torch.zeros(len(p)))

# %%
rv.notebooks.exercise("13.2", answer_2, result=sm["PGD-AT"], sigma=SIGMA)
