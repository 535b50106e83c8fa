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
# # 01 Attacks: FGSM, PGD, MIM, C&W, DeepFool, multi-targeted
#
# **You will learn to** craft adversarial examples with one-step, iterative, momentum,
# minimal-perturbation and multi-targeted attacks; read top-1/3/5 accuracy under attack;
# tell a bounded attack (a radius $\epsilon$) from a minimal one (a distance); and draw
# accuracy against $\epsilon$ and against the number of steps.
#
# **Prerequisites:** 00 (the tour). **Run time:** about 2 minutes on a 2-core CPU.
#
# An adversarial example $x'$ is a small change of an input $x$ that changes the model's
# decision. Every attack here is an object holding its hyperparameters and called as
# `x_adv = atk(model, x, y)`; images stay in $[0, 1]$ (the model normalises inside). We
# attack a naturally trained model (`nat`) and an adversarially trained one (`pgd_at`) from
# the teaching zoo. Sentences marked ✓ are checked against the numbers this notebook
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
import matplotlib.pyplot as plt
import torch

import robustviz as rv

S = rv.notebooks.setup(SCALE, seed=SEED)
EPS, test = S.eps, S.test
models = {"NAT": S.load("nat"), "PGD-AT": S.load("pgd_at")}
x, y = test.x[:200], test.y[:200]

# %% [markdown]
# ## 1. One step: FGSM
#
# Goodfellow, Shlens & Szegedy ("Explaining and Harnessing Adversarial Examples", ICLR 2015)
# move every pixel by $\epsilon$ in the direction that increases the loss:
#
# $$x' = \Pi_{[0,1]}\big(x + \epsilon\,\operatorname{sign}\nabla_x \mathrm{CE}(f(x), y)\big).$$

# %%
fgsm = rv.attacks.FGSM(eps=EPS)
x_fgsm = fgsm(models["NAT"], x, y)
with torch.no_grad():
    clean_nat = float((models["NAT"](x).argmax(1) == y).float().mean())
    fgsm_nat = float((models["NAT"](x_fgsm).argmax(1) == y).float().mean())
rv.notebooks.expect(float((x_fgsm - x).abs().max()) <= EPS + 1e-6 and 0 <= x_fgsm.min() and x_fgsm.max() <= 1,
                    "the FGSM image stays in the eps-ball and in [0, 1]",
                    max_change=float((x_fgsm - x).abs().max()), eps=EPS)
rv.notebooks.expect(fgsm_nat < clean_nat / 2,
                    "one FGSM step removes more than half of the natural model's accuracy",
                    clean=clean_nat, fgsm=fgsm_nat)

# %% [markdown]
# The perturbation never leaves the $\epsilon$-ball, yet one step already removes most of
# the natural model's accuracy: its loss rises steeply along the gradient's sign.
#
# ## 2. Many steps: PGD and MIM
#
# Madry et al. ("Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018)
# repeat smaller steps from a random start and project back into the ball $B_\epsilon(x)$:
#
# $$x'_{t+1} = \Pi_{B_\epsilon(x)\cap[0,1]}\big(x'_t + a\,\operatorname{sign}\nabla_x \mathrm{CE}(f(x'_t), y)\big).$$
#
# MIM (Dong et al., "Boosting Adversarial Attacks with Momentum", CVPR 2018) accumulates a
# momentum $g_{t+1} = \mu g_t + \nabla / \|\nabla\|_1$ and steps along $\operatorname{sign} g_{t+1}$.
# The multi-targeted PGD (Gowal et al., "An Alternative Surrogate Loss for PGD-based
# Adversarial Testing", arXiv 2019) runs one PGD per target class and keeps the worst.

# %%
attacks = {
    "FGSM": fgsm,
    "PGD-20": rv.attacks.PGD(eps=EPS, steps=20),
    "MIM-10": rv.attacks.MIM(eps=EPS, steps=10),
    "MT-PGD": rv.attacks.MultiTargetedPGD(eps=EPS, steps=10, num_targets=3),
}
results = {name: rv.evaluate.evaluate(m, (x, y), attacks, topk=(1, 3, 5), seed=SEED, progress=False)
           for name, m in models.items()}
print(results["NAT"].table())
rv.figures.plot_topk_table(results, k=(1, 3, 5))

# %%
nat, at = results["NAT"], results["PGD-AT"]
rv.notebooks.expect(all(nat.robust(a) < 0.05 for a in ("PGD-20", "MIM-10", "MT-PGD")),
                    "the natural model's top-1 accuracy falls below 5% under every iterative attack",
                    **{a: nat.robust(a) for a in ("PGD-20", "MIM-10", "MT-PGD")})
rv.notebooks.expect(nat.robust("PGD-20", 3) > 0.4,
                    "under PGD-20 the true class is still among the natural model's top 3 for more "
                    "than 40% of the images",
                    top1=nat.robust("PGD-20", 1), top3=nat.robust("PGD-20", 3),
                    top5=nat.robust("PGD-20", 5))
rv.notebooks.expect(at.robust("PGD-20") > 0.8 * at.clean[1],
                    "the adversarially trained model keeps more than 80% of its clean top-1 accuracy under PGD-20",
                    clean=at.clean[1], pgd20=at.robust("PGD-20"))

# %% [markdown]
# Top-1 accuracy collapses for the natural model under every iterative attack, while the
# true class is still among its top 3 for more than 40% of the images. The adversarially
# trained model keeps more than 80% of its clean top-1 accuracy at this radius.
# *Question:* the top-3 figure is under half for the natural model; would you call the true
# class "usually" in the top 3? What about the top 5? PGD maximises the loss inside the
# ball: does it stop just past the decision boundary, or push the image as far into
# another class as the ball allows?
#
# ## 3. Minimal perturbations: C&W and DeepFool
#
# Carlini & Wagner ("Towards Evaluating the Robustness of Neural Networks", IEEE S&P 2017)
# minimise $\|\delta\|_2^2 + c\cdot\max(f_y - \max_{j\ne y} f_j, -\kappa)$; DeepFool
# (Moosavi-Dezfooli, Fawzi & Frossard, "DeepFool: a simple and accurate method to fool deep
# neural networks", CVPR 2016) linearises the classifier and steps to the nearest boundary.
# Both look for the *smallest* change that flips the decision, so they have no $\epsilon$:
# their result is the size of $\delta$. With a budget of steps they do not always find one:
# the fraction they fool is their success rate, not an accuracy at a radius.

# %%
minimal = {"C&W-L2": rv.attacks.CW(c=10.0, steps=50, lr=0.05), "DeepFool": rv.attacks.DeepFool(steps=30)}
fooled, median_l2, found = {}, {}, {}
for name, atk in minimal.items():
    for mname, m in models.items():
        x_min = atk(m, x[:100], y[:100])
        norms = (x_min - x[:100]).flatten(1).norm(dim=1)
        with torch.no_grad():
            hit = m(x_min).argmax(1) != y[:100]
        fooled[name, mname] = float(hit.float().mean())
        median_l2[name, mname] = float(norms[hit].median())
        found[name, mname] = torch.where(hit, norms, torch.full_like(norms, float("inf")))
        print(f"{name:8s} {mname:7s} fooled {fooled[name, mname]:.0%}  "
              f"median L2 of the fooling perturbations {median_l2[name, mname]:.3f} (over the fooled images)")
# per image, the smaller of the two attacks' fooling perturbations (inf where neither fooled it)
smallest = {mname: torch.minimum(found["C&W-L2", mname], found["DeepFool", mname]) for mname in models}
bound = {mname: float(s[s.isfinite()].median()) for mname, s in smallest.items()}
for mname, s in smallest.items():
    print(f"smaller of the two, {mname:7s} fooled by either {float(s.isfinite().float().mean()):.0%}  "
          f"median L2 {bound[mname]:.3f}")

# %%
for name in minimal:
    rv.notebooks.expect(median_l2[name, "PGD-AT"] > median_l2[name, "NAT"],
                        f"{name}: the median L2 of its fooling perturbations (over the images it fooled) "
                        "is larger for the robust model than for the natural one",
                        nat=median_l2[name, "NAT"], pgd_at=median_l2[name, "PGD-AT"])
rv.notebooks.expect(fooled["C&W-L2", "PGD-AT"] < 1,
                    "C&W with 50 steps does not fool every image of the robust model: "
                    "a minimal attack's accuracy is not 0 by construction",
                    fooled=fooled["C&W-L2", "PGD-AT"])
rv.notebooks.expect(bound["PGD-AT"] > 3 * bound["NAT"],
                    "taking per image the smaller of the two fooling perturbations, the median L2 is "
                    "more than 3 times as large for the robust model as for the natural one",
                    nat=bound["NAT"], pgd_at=bound["PGD-AT"])

# %% [markdown]
# A fooling perturbation is an *upper bound* on the image's $L_2$ distance to the decision
# boundary: the boundary is at most that far, perhaps closer, and an attack with a budget
# (C&W here with a fixed $c = 10$ and 50 steps, no search over $c$) need not find the
# closest point. Each median above is over the images that attack fooled only, so the two
# attacks' medians are not over the same images. Taking per image the smaller of the two
# bounds tightens them; its median is more than 3 times as large for the robust model as
# for the natural one: robustness at a radius means no decision boundary within that radius.
# *Question:* which attack found the smaller perturbations for each model, and by how much?
# Would you report either one alone as "the distance to the boundary"?
#
# ## 4. The perturbations as images
#
# $\delta = x' - x$, with red for brighter and blue for darker pixels.

# %%
i = 0
fig, axes = plt.subplots(2, 5, figsize=(12, 5))
shown = {"clean": None, "FGSM": fgsm, "PGD-20": attacks["PGD-20"], "MIM-10": attacks["MIM-10"],
         "DeepFool": minimal["DeepFool"]}
for row, (mname, m) in zip(axes, models.items()):
    for ax, (aname, atk) in zip(row, shown.items()):
        xi = x[i:i + 1] if atk is None else atk(m, x[i:i + 1], y[i:i + 1])
        with torch.no_grad():
            pred = test.classes[int(m(xi).argmax())]
        if atk is None:
            ax.imshow(xi[0, 0], cmap="gray", vmin=0, vmax=1)
        else:
            d = (xi - x[i:i + 1])[0, 0]
            lim = max(float(d.abs().max()), 1e-6)
            ax.imshow(d, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(f"{mname} {aname}\n-> {pred}", fontsize=9)
        ax.set_axis_off()
plt.show()

# %% [markdown]
# *Look and answer:* does the natural model's perturbation look like noise to you? Does the
# robust model's DeepFool perturbation follow the edges of the object? (Change `i` to look
# at other images before you decide.)
#
# The playground attacks one image interactively (change the image, attack, eps and steps;
# the bars show the top-5 classes). Where no live kernel runs (a static page), its first
# state shows as an image.

# %%
rv.widgets.AttackPlayground(models, test, eps=EPS, steps=10)

# %% [markdown]
# ## 5. Accuracy against $\epsilon$ and against the number of steps
#
# A robustness curve shows the whole trade: each point is a full evaluation at one radius
# (or one number of PGD steps).

# %%
sub = (test.x[:200], test.y[:200])
eps_grid = [0, EPS / 4, EPS / 2, EPS, 1.5 * EPS, 2 * EPS]
curves = {name: rv.evaluate.accuracy_vs_eps(m, sub, eps=eps_grid, steps=10, progress=False)
          for name, m in models.items()}
rv.figures.plot_robustness_vs_eps(curves, eps_scale=1.0)

# %%
nat_curve, at_curve = curves["NAT"].accuracy, curves["PGD-AT"].accuracy
rv.notebooks.expect(nat_curve[2] < nat_curve[0] / 2 and nat_curve[3] < 0.05,
                    "the natural model loses more than half of its accuracy by half the radius "
                    "and is below 5% at eps",
                    clean=nat_curve[0], half_eps=nat_curve[2], eps=nat_curve[3])
rv.notebooks.expect(at_curve[0] - at_curve[3] < at_curve[3] - at_curve[5],
                    "the adversarially trained model loses less from 0 to eps than from eps to 2 eps",
                    lost_0_to_eps=at_curve[0] - at_curve[3], lost_eps_to_2eps=at_curve[3] - at_curve[5])

# %% [markdown]
# The natural model has lost most of its accuracy at half the radius and is near 0 at
# $\epsilon$; the adversarially trained one degrades slowly up to the radius it was trained
# at, then faster.

# %%
steps_curves = {name: rv.evaluate.accuracy_vs_steps(m, sub, eps=EPS, steps=[1, 2, 5, 10, 20],
                                                    progress=False)
                for name, m in models.items()}
rv.figures.plot_robustness_vs_steps(steps_curves)

# %%
acc_steps = {name: c.accuracy for name, c in steps_curves.items()}  # at 1, 2, 5, 10, 20 steps
rv.notebooks.expect(all(a[0] - a[3] > 0.02 and abs(a[3] - a[4]) <= 0.02 for a in acc_steps.values()),
                    "for both models the accuracy falls by more than 2 points from 1 to 10 steps, "
                    "and 20 steps change the accuracy of 10 steps by at most 2 points",
                    **{f"{name}_steps{k}": a[i] for name, a in acc_steps.items()
                       for i, k in ((0, 1), (3, 10), (4, 20))})

# %% [markdown]
# For both models the accuracy falls over the first steps and changes by at most 2 points
# from 10 to 20 steps: on these models the attack has converged by about 10 steps. A curve
# that keeps falling with more steps would mean the evaluation was too weak (see notebook
# 09).
#
# ## Exercises
#
# Write each answer in its cell, replacing `...`, then run the check below it: it says what
# is still wrong, not the answer.
#
# **Exercise 1.** PGD can ascend the C&W margin $\max_{j\ne y} f_j - f_y$ instead of the
# cross-entropy (`loss="cw"`). Compute the robust top-1 accuracy of the PGD-AT model under
# `rv.attacks.PGD(eps=EPS, steps=10, loss="cw")` on `x[:100], y[:100]`, scored with
# `rv.evaluate.evaluate(..., seed=SEED)`. Is it stronger or weaker than cross-entropy PGD?

# %%
answer_1 = ...

# %% tags=["solution"]
r = rv.evaluate.evaluate(models["PGD-AT"], (x[:100], y[:100]),
                         {"PGD-CW": rv.attacks.PGD(eps=EPS, steps=10, loss="cw")},
                         topk=(1,), seed=SEED, progress=False)
answer_1 = r.robust("PGD-CW")

# %%
rv.notebooks.exercise("01.1", answer_1, model=models["PGD-AT"], x=x[:100], y=y[:100], eps=EPS, seed=SEED)

# %% [markdown]
# **Exercise 2.** An $L_2$ threat model: `rv.attacks.PGD(eps=1.5, norm="l2", steps=10)`.
# For each model, how much top-1 accuracy does it lose on `x[:100]` (clean minus robust)?
# Answer with a dict `{"NAT": ..., "PGD-AT": ...}`. Which model suffers more, and is that
# the order you saw under $L_\infty$?

# %%
answer_2 = ...

# %% tags=["solution"]
answer_2 = {}
for name, m in models.items():
    r = rv.evaluate.evaluate(m, (x[:100], y[:100]), {"L2": rv.attacks.PGD(eps=1.5, norm="l2", steps=10)},
                             topk=(1,), seed=SEED, progress=False)
    answer_2[name] = r.clean[1] - r.robust("L2")

# %%
rv.notebooks.exercise("01.2", answer_2, models=models, x=x[:100], y=y[:100], seed=SEED)

# %% [markdown]
# **Exercise 3.** A targeted attack *descends* the loss of a chosen class: make every image
# of `x[:100]` look like class 0 with `rv.attacks.PGD(eps=EPS, steps=10, targeted=True)`
# (pass the targets as `y`). For each model, what fraction of the images succeed? Count
# only the images whose true class is not 0: an image that already is class 0 is no success
# of the attack.

# %%
answer_3 = ...

# %% tags=["solution"]
target = torch.zeros_like(y[:100])
answer_3 = {}
for name, m in models.items():
    x_t = rv.attacks.PGD(eps=EPS, steps=10, targeted=True)(m, x[:100], target)
    with torch.no_grad():
        hit = m(x_t).argmax(1) == 0
    answer_3[name] = float(hit[y[:100] != 0].float().mean())
print({k: f"{v:.0%}" for k, v in answer_3.items()}, "to", repr(test.classes[0]))

# %%
rv.notebooks.exercise("01.3", answer_3, models=models, x=x[:100], y=y[:100], eps=EPS, seed=SEED)
