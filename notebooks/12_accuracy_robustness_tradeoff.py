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
# # 12 The accuracy-robustness trade-off
#
# **You will learn to** split a model's robust error into its natural error and its boundary
# error; explain, with a data distribution where it can be computed exactly, why a robust
# classifier may have to give up standard accuracy; draw clean against robust accuracy for
# the zoo's defenses and for TRADES at several $\beta$; and tell a model on the frontier from
# a dominated one.
#
# **Prerequisites:** 01 (attacks), 02 (adversarial training). **Run time:** about 1 minute
# on a 2-core CPU.
#
# **Data:** Fashion-MNIST; this notebook needs the zoo's FGSM-RS and MART models, which the
# digits zoo (the fallback where Fashion-MNIST is absent) does not have. `robustviz data
# fetch fashion-mnist` gets it (the Colab cell does).
#
# Every adversarially trained model of notebook 02 lost clean accuracy against the natural
# one. Tsipras, Santurkar, Engstrom, Turner & Madry ("Robustness May Be at Odds with
# Accuracy", ICLR 2019) show that this can be a property of the data, not of the training:
# when the features that predict the label well are also the ones a small perturbation can
# move, a robust classifier must ignore them. Zhang, Yu, Jiao, Xing, El Ghaoui & Jordan
# ("Theoretically Principled Trade-off between Robustness and Accuracy", ICML 2019) split the
# robust error into a natural and a boundary part and built TRADES, whose weight $\beta$ moves
# a model along the trade-off. Sentences marked ✓ are checked against the numbers this
# notebook computes.
# %%
# Colab only: install robustviz (with its zoo) and Fashion-MNIST; elsewhere nothing happens
import subprocess, sys
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "robustviz[all] @ git+https://github.com/robustviz/robustviz"], check=True)
    subprocess.run([sys.executable, "-m", "robustviz", "data", "fetch", "fashion-mnist"], check=True)

# %%
# Parameters. "teach": the teaching zoo (Fashion-MNIST, TinyCNN, Linf eps 0.1) on a CPU.
# "paper": your runs of the paper configs (CIFAR-10, eps 8/255, GPU; rv.notebooks.PAPER_RUNS
# names the config that makes each model). BETAS: the TRADES weights of section 3.
SCALE = "teach"
SEED = 0
BETAS = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0)

# %%
# %matplotlib inline
import math

import matplotlib.pyplot as plt
import torch

import robustviz as rv

S = rv.notebooks.setup(SCALE, seed=SEED)
EPS, test = S.eps, S.test
x, y = test.x[:300], test.y[:300]
pgd = rv.attacks.PGD(eps=EPS, steps=10)

# %% [markdown]
# ## 1. A distribution where robustness costs accuracy (Tsipras et al., section 2)
#
# The label is $y = \pm 1$. One *robust* feature agrees with it with probability $p$:
# $x_0 = y$ with probability $p$, else $-y$. Many *weak* features are each only slightly
# correlated with it: $x_1, \dots, x_d \sim \mathcal N(\eta y, 1)$ with $\eta = 3/\sqrt d$.
# The average of the weak features is $\mathcal N(\eta y, 1/d)$, so its sign is right with
# probability $\Phi(\eta\sqrt d) = \Phi(3) \approx 99.9\%$. An $L_\infty$ adversary with
# $\epsilon = 2\eta$ shifts every weak feature by $-2\eta y$, and the average becomes
# $\mathcal N(-\eta y, 1/d)$: now it is wrong with the same probability. It cannot flip $x_0$
# ($\epsilon < 1$). Their Theorem 2.1: a classifier with standard accuracy $1 - \delta$ has
# robust accuracy at most $\frac{p}{1-p}\,\delta$ at $\epsilon \ge 2\eta$.
#
# We sample the distribution and score linear classifiers $\operatorname{sign}(a\,x_0 +
# \bar x_{1..d})$: $a = 0$ uses only the weak features, a large $a$ only the robust one. For
# a linear score with non-negative weights the worst $L_\infty$ perturbation moves every
# feature by $\epsilon$ against $y$, so robust accuracy is exact here.

# %%
p, d, n_toy = 0.9, 1000, 20_000
eta = 3 / math.sqrt(d)
eps_toy = 2 * eta
g = torch.Generator().manual_seed(SEED)
y_toy = torch.randint(0, 2, (n_toy,), generator=g) * 2 - 1
x0 = torch.where(torch.rand(n_toy, generator=g) < p, y_toy, -y_toy).float()
weak = (eta * y_toy[:, None] + torch.randn(n_toy, d, generator=g)).mean(1)


def toy_accuracy(a):
    """Clean and exact robust accuracy of sign(a * x0 + mean of the weak features)."""
    score = a * x0 + weak
    worst = score - y_toy * eps_toy * (a + 1)   # every feature moved by eps against y
    return float((torch.sign(score) == y_toy).float().mean()), float((torch.sign(worst) == y_toy).float().mean())


toy = {a: toy_accuracy(a) for a in (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)}
for a, (c, r) in toy.items():
    print(f"a = {a:4.2f}: clean {c:6.1%}  robust at eps = 2 eta {r:6.1%}")
delta = 1 - toy[0.0][0]
rv.notebooks.expect(toy[0.0][0] > 0.99 and toy[0.0][1] < 0.01,
                    "the weak features alone are more than 99% accurate and less than 1% robust",
                    clean=toy[0.0][0], robust=toy[0.0][1])
rv.notebooks.expect(toy[0.0][1] <= p / (1 - p) * delta + 0.005,
                    "its robust accuracy respects Tsipras et al.'s bound p/(1-p) * delta",
                    robust=toy[0.0][1], bound=p / (1 - p) * delta)
rv.notebooks.expect(abs(toy[1.0][0] - p) < 0.02 and abs(toy[1.0][1] - p) < 0.02,
                    "the classifier dominated by the robust feature is about p accurate, clean and robust alike",
                    clean=toy[1.0][0], robust=toy[1.0][1], p=p)
a_s = list(toy)
clean_a, robust_a = [toy[a][0] for a in a_s], [toy[a][1] for a in a_s]
best_clean, best_robust = max(a_s, key=lambda a: toy[a][0]), max(a_s, key=lambda a: toy[a][1])
rv.notebooks.expect(all(c2 <= c1 for c1, c2 in zip(clean_a, clean_a[1:]))
                    and all(r2 >= r1 for r1, r2 in zip(robust_a, robust_a[1:]))
                    and toy[best_clean][1] < toy[best_robust][1] - 0.5
                    and toy[best_robust][0] < toy[best_clean][0] - 0.05,
                    "as a grows, clean accuracy never rises and robust accuracy never falls; the most "
                    "accurate classifier is more than 50 points less robust than the most robust one, "
                    "which is more than 5 points less accurate",
                    clean=[round(c, 4) for c in clean_a], robust=[round(r, 4) for r in robust_a],
                    best_clean_a=best_clean, best_robust_a=best_robust)

# %%
fig, ax = plt.subplots(figsize=(4.2, 3.2))
ax.plot([100 * c for c, _ in toy.values()], [100 * r for _, r in toy.values()], "o-")
for a, (c, r) in toy.items():
    ax.annotate(f"a={a:g}", (100 * c, 100 * r), textcoords="offset points", xytext=(4, 4), fontsize=8)
ax.set_xlabel("clean accuracy (%)")
ax.set_ylabel("robust accuracy (%)")
ax.set_title("toy distribution: weight a on the robust feature")
plt.show()

# %% [markdown]
# Moving weight onto the robust feature buys robust accuracy with clean accuracy: none of
# these seven classifiers is best at both. The weak features are real signal (they make the natural
# classifier almost perfect), but the signal is exactly what the adversary can erase.
#
# ## 2. Natural, boundary and robust error (Zhang et al.)
#
# Zhang et al. write the robust error as the sum of two parts:
#
# $$\underbrace{\Pr[\exists x' \in B_\epsilon(x): f(x') \ne y]}_{\text{robust error}}
# = \underbrace{\Pr[f(x) \ne y]}_{\text{natural error}}
# + \underbrace{\Pr[f(x) = y,\ \exists x' \in B_\epsilon(x): f(x') \ne y]}_{\text{boundary error}}.$$
#
# The boundary error counts correctly classified points that lie within $\epsilon$ of the
# decision boundary. TRADES minimises a surrogate of both:
# $\mathrm{CE}(f(x), y) + \beta\,\max_{x'} \mathrm{KL}(f(x)\,\|\,f(x'))$; $\beta$ sets how much
# the boundary part weighs. Here are the zoo's models on the first 300 test images (PGD-10;
# an image counts as robust when it is right both clean and attacked).

# %%
zoo_names = {"NAT": "nat", "FGSM-RS": "fgsm_rs", "PGD-AT": "pgd_at", "TRADES (beta 6)": "trades",
             "MART": "mart"}
models = {label: S.load(name) for label, name in zoo_names.items()}
zoo_res = {label: rv.evaluate.evaluate(m, (x, y), {"PGD-10": pgd}, topk=(1,), seed=SEED, progress=False)
           for label, m in models.items()}
points = {label: (r.clean[1], r.robust("PGD-10")) for label, r in zoo_res.items()}
print(f"{'model':16s} {'clean':>6s} {'robust':>6s} {'natural err':>11s} {'boundary err':>12s}")
for label, (c, r) in points.items():
    print(f"{label:16s} {c:6.1%} {r:6.1%} {1 - c:11.1%} {c - r:12.1%}")

# %%
robust_models = [k for k in points if k != "NAT"]
rv.notebooks.expect(all(points["NAT"][0] > points[k][0] + 0.03 for k in robust_models),
                    "the natural model is the most accurate on clean images, by more than 3 points",
                    nat=points["NAT"][0], **{k: points[k][0] for k in robust_models})
rv.notebooks.expect(points["NAT"][1] < 0.05 and all(points[k][1] > 0.6 for k in robust_models),
                    "it is the least robust (under 5%) while every adversarially trained model keeps over 60%",
                    nat=points["NAT"][1], **{k: points[k][1] for k in robust_models})
rv.notebooks.expect(points["NAT"][0] - points["NAT"][1] > 0.8,
                    "almost all of the natural model's robust error is boundary error",
                    boundary=points["NAT"][0] - points["NAT"][1], natural=1 - points["NAT"][0])
nat_rise = {k: (1 - points[k][0]) - (1 - points["NAT"][0]) for k in robust_models}
boundary_cut = {k: (points["NAT"][0] - points["NAT"][1]) - (points[k][0] - points[k][1])
                for k in robust_models}
rv.notebooks.expect(max(nat_rise.values()) < 0.12 and min(boundary_cut.values()) > 0.75,
                    "against the natural model, every adversarially trained model's natural error is "
                    "higher by less than 12 points and its boundary error lower by more than 75 points",
                    **{f"natural_err_rise_{k}": v for k, v in nat_rise.items()},
                    **{f"boundary_err_cut_{k}": v for k, v in boundary_cut.items()})

# %% [markdown]
# The natural model's images are nearly all correctly classified *and* within $\epsilon$ of
# its boundary. Adversarial training trades less than 12 points of natural error for a cut
# of more than 75 points of boundary error. *Question:* how far apart are the adversarially
# trained models on these 300 images, clean and robust, and which of their differences would
# you trust? (The zoo's records, `rv.zoo.info(name)["eval"]`, use 2,000 images.)
#
# ## 3. Moving along the trade-off: TRADES with several $\beta$
#
# TRADES's $\beta$ is the knob. Converged TRADES runs on Fashion-MNIST at several $\beta$
# take longer than a notebook on a CPU, so we turn it on the distribution of section 1,
# where a run takes a second and robust accuracy is exact. The model is a linear score $s = w^\top x + b$ on all
# $d+1$ features; for it the inner maximisation of TRADES has a closed form: within the
# $L_\infty$ ball the score moves by at most $\epsilon\|w\|_1$, and the shift towards the
# boundary, $s' = s - \operatorname{sign}(s)\,\epsilon\|w\|_1$, is the one that changes the
# prediction most. The loss is $\mathrm{CE}(s, y) + \beta\,\mathrm{KL}(\sigma(s)\,\|\,\sigma(s'))$
# (binary, with $\sigma$ the logistic function), trained on 10,000 samples and scored on
# 10,000 others; an image counts as robust when $y\,s - \epsilon\|w\|_1 > 0$.

# %%
feats = torch.cat([x0[:, None], eta * y_toy[:, None] + torch.randn(n_toy, d, generator=g)], 1)
yf = y_toy.float()
tr_idx, te_idx = slice(0, n_toy // 2), slice(n_toy // 2, None)


def bernoulli_kl(s, s_adv):
    p, q = torch.sigmoid(s), torch.sigmoid(s_adv)
    return (p * (torch.log(p + 1e-12) - torch.log(q + 1e-12))
            + (1 - p) * (torch.log(1 - p + 1e-12) - torch.log(1 - q + 1e-12)))


def trades_linear(beta, steps=300):
    """A linear TRADES model on the toy features: (clean, robust accuracy, share of |w| on x0)."""
    torch.manual_seed(SEED)
    w = torch.zeros(d + 1, requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=0.01)
    xs, ys = feats[tr_idx], yf[tr_idx]
    for _ in range(steps):
        s = xs @ w + b
        s_adv = s - torch.sign(s).detach() * eps_toy * w.abs().sum()
        loss = torch.nn.functional.softplus(-ys * s).mean() + beta * bernoulli_kl(s, s_adv).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        s = feats[te_idx] @ w + b
        margin = yf[te_idx] * s
        return (float((margin > 0).float().mean()), float((margin - eps_toy * w.abs().sum() > 0).float().mean()),
                float(w[0].abs() / w.abs().sum()))


sweep = {beta: trades_linear(beta) for beta in BETAS}
for beta, (c, r, share) in sweep.items():
    print(f"beta {beta:5.1f}: clean {c:6.1%}  robust {r:6.1%}  boundary error {c - r:6.1%}  "
          f"weight on the robust feature {share:5.1%}")

# %%
lo, hi = min(BETAS), max(BETAS)
rv.notebooks.expect(sweep[lo][0] > sweep[hi][0] + 0.05,
                    f"beta {hi:g} costs more than 5 points of clean accuracy against beta {lo:g}",
                    **{f"clean_beta_{lo:g}": sweep[lo][0], f"clean_beta_{hi:g}": sweep[hi][0]})
rv.notebooks.expect(sweep[hi][1] > sweep[lo][1] + 0.5,
                    "and buys more than 50 points of robust accuracy",
                    **{f"robust_beta_{lo:g}": sweep[lo][1], f"robust_beta_{hi:g}": sweep[hi][1]})
rv.notebooks.expect(sweep[hi][2] > 1 / 3 and sweep[lo][2] < 0.01,
                    f"beta {hi:g} puts more than a third of the weight (L1) on the robust feature, "
                    f"beta {lo:g} less than 1%",
                    **{f"share_beta_{lo:g}": sweep[lo][2], f"share_beta_{hi:g}": sweep[hi][2]})
shares = [sweep[b][2] for b in BETAS]
rv.notebooks.expect(all(s2 > s1 + 0.01 for s1, s2 in zip(shares, shares[1:])),
                    "each step up in beta raises the robust feature's share of the weight by more "
                    "than 1 point", shares=[round(v, 4) for v in shares])

# %% [markdown]
# Raising $\beta$ moves the weight from the many weak features to the one robust feature,
# and the model slides along the same kind of curve as in section 1: what it gains in
# robust accuracy it pays in clean accuracy. *Question:* are clean and robust accuracy
# monotone in $\beta$ in the printed table? Where does most of the change happen?
#
# *Question:* train two TinyCNNs on Fashion-MNIST for two epochs on 1,000 images with
# `defense={"name": "trades", "beta": beta, "eps": EPS, "steps": 3, "step_size": 0.04}`,
# $\beta = 0$ and $\beta = 6$ (see notebook 02 for the `Trainer` call). Does $\beta$ trade
# clean for robust accuracy after so short a run, or does the regulariser help both?
#
# ## 4. The frontier
#
# A model is *dominated* when another is at least as good on both axes and better on one;
# the models no other dominates form the frontier. The two families live on different data,
# so each gets its own panel.


# %%
def frontier(pts):
    """Names of the points no other point dominates (>= on both axes, > on one)."""
    return [k for k, (c, r) in pts.items()
            if not any(c2 >= c and r2 >= r and (c2 > c or r2 > r) for k2, (c2, r2) in pts.items() if k2 != k)]


sweep_pts = {f"beta {b:g}": (c, r) for b, (c, r, _) in sweep.items()}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
for ax, pts, title in ((axes[0], points, "Fashion-MNIST, the zoo (PGD-10, 300 images)"),
                       (axes[1], sweep_pts, "toy distribution, linear TRADES (exact)")):
    front = sorted((pts[k] for k in frontier(pts)), key=lambda v: v[0])
    ax.plot([100 * c for c, _ in front], [100 * r for _, r in front], "-", color="0.6")
    for k, (c, r) in pts.items():
        ax.plot(100 * c, 100 * r, "o")
        ax.annotate(k, (100 * c, 100 * r), textcoords="offset points", xytext=(4, 3), fontsize=7)
    ax.set_xlabel("clean accuracy (%)")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_title(title, fontsize=9)
plt.show()
print("zoo frontier:", frontier(points))
print("TRADES frontier:", frontier(sweep_pts))
rv.notebooks.expect("NAT" in frontier(points),
                    "the natural model is on the zoo's frontier: nothing beats its clean accuracy",
                    frontier=", ".join(frontier(points)))

# %% [markdown]
# A frontier, not a ranking: which point is "best" depends on how much clean accuracy you
# will give for a point of robustness. A defense helps only where it moves the frontier out,
# not where it slides along it ($\beta$ slides; the papers of notebooks 04-06 claim to move
# it). *Question:* where would you put the zoo's `trades_ancra` on the left panel, and why
# would you evaluate it with an adaptive attack first (notebook 09)?
#
# ## Exercises
#
# Write each answer in its cell, replacing `...`, then run the check below it: it says what
# is still wrong, not the answer.
#
# **Exercise 1.** For each model of `models` (the zoo's), compute the *boundary error* of
# Zhang et al. on `x, y` under `pgd` (PGD-10), scored with
# `rv.evaluate.evaluate(..., seed=SEED)`: the fraction of images the model classifies
# correctly clean but not after the attack. Answer with a dict `{label: float in [0, 1]}`
# with the keys of `models`.

# %%
answer_1 = ...

# %% tags=["solution"]
# section 2 already ran this evaluation (zoo_res); robust counts an image only when it is
# right clean too, so the boundary error is clean minus robust accuracy
answer_1 = {label: r.clean[1] - r.robust("PGD-10") for label, r in zoo_res.items()}

# %%
rv.notebooks.exercise("12.1", answer_1, models=models, x=x, y=y, attack=pgd, seed=SEED)

# %% [markdown]
# **Exercise 2.** The *price* of a zoo defense: the points of clean accuracy it gives up,
# against the natural model, for each point of robust accuracy it gains,
# $(\text{clean}_{NAT} - \text{clean}_m) / (\text{robust}_m - \text{robust}_{NAT})$, from
# `points`. Answer with a dict `{label: float}` for the adversarially trained models (the
# keys of `points` other than `"NAT"`). Which defense is cheapest here, and is the
# difference larger than the noise of 300 images?

# %%
answer_2 = ...

# %% tags=["solution"]
nat_clean, nat_robust = points["NAT"]
answer_2 = {k: (nat_clean - c) / (r - nat_robust) for k, (c, r) in points.items() if k != "NAT"}
print({k: round(v, 3) for k, v in answer_2.items()})

# %%
rv.notebooks.exercise("12.2", answer_2, points=points, reference="NAT")
