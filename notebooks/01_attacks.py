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
# An adversarial example $x'$ is a small change of an input $x$ that changes the model's
# decision. Every attack here is an object holding its hyperparameters and called as
# `x_adv = atk(model, x, y)`; images stay in $[0, 1]$ (the model normalises inside). We
# attack a naturally trained model (`nat`) and an adversarially trained one (`pgd_at`) from
# the teaching zoo, look at the perturbations, read top-1/3/5 accuracy, and draw accuracy
# against the radius $\epsilon$ and against the number of steps.
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
print("max |x' - x| =", float((x_fgsm - x).abs().max()), " range:", float(x_fgsm.min()), float(x_fgsm.max()))
with torch.no_grad():
    print("NAT accuracy clean", float((models["NAT"](x).argmax(1) == y).float().mean()),
          "FGSM", float((models["NAT"](x_fgsm).argmax(1) == y).float().mean()))

# %% [markdown]
# The perturbation never leaves the $\epsilon$-ball, yet one step already removes a large part
# of the natural model's accuracy: its loss rises steeply along the gradient's sign.
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
#
# ## 3. Minimal perturbations: C&W and DeepFool
#
# Carlini & Wagner ("Towards Evaluating the Robustness of Neural Networks", IEEE S&P 2017)
# minimise $\|\delta\|_2^2 + c\cdot\max(f_y - \max_{j\ne y} f_j, -\kappa)$; DeepFool
# (Moosavi-Dezfooli et al., CVPR 2016) linearises the classifier and steps to the nearest
# boundary. Both look for the *smallest* change that flips the decision, so they have no
# $\epsilon$: their accuracy is 0 by construction, and the size of $\delta$ is the result.
# The multi-targeted PGD (Gowal et al., 2019) runs one PGD per target class and keeps the worst.

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

# %% [markdown]
# Top-1 accuracy collapses for the natural model under every iterative attack, while the
# true class usually stays among its top 3-5: the attack pushes it just past the boundary.
# The adversarially trained model keeps most of its top-1 accuracy at this radius.

# %%
minimal = {"C&W-L2": rv.attacks.CW(c=10.0, steps=50, lr=0.05), "DeepFool": rv.attacks.DeepFool(steps=30)}
for name, atk in minimal.items():
    for mname, m in models.items():
        x_min = atk(m, x[:100], y[:100])
        norms = (x_min - x[:100]).flatten(1).norm(dim=1)
        with torch.no_grad():
            fooled = m(x_min).argmax(1) != y[:100]
        print(f"{name:8s} {mname:7s} fooled {float(fooled.float().mean()):.0%}  "
              f"median L2 of the fooling perturbations {float(norms[fooled].median()):.3f}")

# %% [markdown]
# The robust model needs a larger minimal perturbation (median $L_2$ distance to its
# boundary) than the natural one: robustness is distance to the decision boundary.
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
# The natural model's perturbations look like noise; the robust model's perturbations under
# DeepFool look like edges of the object: to fool it, the attack must change the shape.
#
# The playground below attacks one image interactively (change the image, attack, eps and
# steps; the bars show the top-5 classes).

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

# %% [markdown]
# The natural model falls to almost 0 well before $\epsilon = 0.1$; the adversarially
# trained one degrades slowly up to the radius it was trained at, then faster.

# %%
steps_curves = {name: rv.evaluate.accuracy_vs_steps(m, sub, eps=EPS, steps=[1, 2, 5, 10, 20],
                                                    progress=False)
                for name, m in models.items()}
rv.figures.plot_robustness_vs_steps(steps_curves)

# %% [markdown]
# Accuracy stops falling after about 10 steps: the attack has converged. A curve that keeps
# falling with more steps would mean the evaluation was too weak (see notebook 09).
#
# ## Exercises
#
# 1. Run PGD with `loss="cw"` (the C&W margin inside PGD). Is it stronger or weaker than
#    cross-entropy PGD on the robust model?
# 2. Use an $L_2$ threat model: `rv.attacks.PGD(eps=1.5, norm="l2", steps=20)`. Which
#    model suffers more?
# 3. Targeted attack: make every image look like class 0 (`targeted=True`, `y` = zeros).
#    How often does it succeed on each model?

# %% tags=["solution"]
# Solution 1 and 2
for name, m in models.items():
    r = rv.evaluate.evaluate(m, (x[:100], y[:100]),
                             {"PGD-CE": rv.attacks.PGD(eps=EPS, steps=10),
                              "PGD-CW": rv.attacks.PGD(eps=EPS, steps=10, loss="cw"),
                              "PGD-L2": rv.attacks.PGD(eps=1.5, norm="l2", steps=10)},
                             topk=(1,), progress=False)
    print(name, {k: f"{v[1]:.1%}" for k, v in r.accuracy.items()})

# %% tags=["solution"]
# Solution 3: a targeted attack *descends* the loss towards the target class
target = torch.zeros_like(y)
for name, m in models.items():
    x_t = rv.attacks.PGD(eps=EPS, steps=10, targeted=True)(m, x[:100], target[:100])
    with torch.no_grad():
        hit = (m(x_t).argmax(1) == 0).float().mean()
    print(f"{name}: {float(hit):.0%} of the images classified as {test.classes[0]!r}")
