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
# # 02 Adversarial training: NAT, PGD-AT, FGSM-RS, TRADES, MART
#
# Adversarial training replaces the natural loss by a loss on attacked inputs. All five
# defenses below are loss terms run by the one `rv.train.Trainer`; the teaching zoo holds a
# TinyCNN trained with each on Fashion-MNIST (eps 0.1). We compare them, then train two
# small models live to watch *catastrophic overfitting* of single-step training.
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

# %% [markdown]
# ## 1. The losses
#
# - NAT: $\min_\theta \mathbb{E}\,\mathrm{CE}(f(x), y)$.
# - PGD-AT (Madry et al., ICLR 2018): $\min_\theta \mathbb{E}\max_{\|\delta\|_\infty\le\epsilon}
#   \mathrm{CE}(f(x+\delta), y)$, the inner maximum approximated by PGD.
# - FGSM-RS (Wong, Rice & Kolter, "Fast is better than free", ICLR 2020): the inner maximum
#   by one FGSM step of size $1.25\epsilon$ from a uniform random start.
# - TRADES (Zhang et al., ICML 2019): $\mathrm{CE}(f(x), y) + \beta\,
#   \mathrm{KL}\big(p(x)\,\|\,p(x')\big)$, trading accuracy for smoothness.
# - MART (Wang et al., ICLR 2020): a boosted CE on $x'$ plus a KL term weighted by
#   $1 - p_y(x)$, so misclassified examples count more.

# %%
names = {"NAT": "nat", "FGSM-RS": "fgsm_rs", "PGD-AT": "pgd_at", "TRADES": "trades", "MART": "mart"}
models = {label: load(name) for label, name in names.items()}
sub = (test.x[:300], test.y[:300])
attacks = {"FGSM": rv.attacks.FGSM(eps=EPS), "PGD-20": rv.attacks.PGD(eps=EPS, steps=20)}
results = {label: rv.evaluate.evaluate(m, sub, attacks, topk=(1,), seed=SEED, progress=False)
           for label, m in models.items()}
for label, r in results.items():
    print(f"{label:8s} clean {r.clean[1]:.1%}  FGSM {r.robust('FGSM'):.1%}  PGD-20 {r.robust('PGD-20'):.1%}")
rv.figures.plot_topk_table(results, k=(1,))

# %% [markdown]
# Every adversarially trained model pays some clean accuracy for a large gain under PGD-20;
# the natural model is the most accurate on clean images and the least under attack. The
# single-step FGSM-RS model is close to PGD-AT at a fraction of the training cost.

# %%
for label, name in names.items():
    info = rv.zoo.info(name, dataset=DATA) if SCALE == "teach" else {}
    print(f"{label:8s} trained in {info.get('train_seconds', float('nan')):.0f} s")

# %% [markdown]
# ## 2. Accuracy against the radius
#
# The trade-off over the whole range of $\epsilon$, not only at the training radius.

# %%
curves = {label: rv.evaluate.accuracy_vs_eps(m, (test.x[:150], test.y[:150]),
                                             eps=[0, EPS / 2, EPS, 1.5 * EPS, 2 * EPS],
                                             steps=10, progress=False)
          for label, m in models.items()}
rv.figures.plot_robustness_vs_eps(curves, eps_scale=1.0)

# %% [markdown]
# The defended models cross the natural one near $\epsilon = 0$ (lower clean accuracy) and
# stay above it for every larger radius; beyond the training radius they all degrade.
#
# ## 3. Catastrophic overfitting, live
#
# FGSM training without a random start, with a large step, can suddenly stop working: the
# model learns to make FGSM's single linear step useless (its loss surface curves within the
# ball), its accuracy against FGSM keeps *rising*, while its accuracy against PGD collapses
# (Wong et al., 2020). A random start and a smaller step (FGSM-RS) avoid it. We train both on
# a small subset at a large radius and validate under PGD-20 after every epoch.

# %%
CO_EPS, CO_EPOCHS = (0.3, 4) if SCALE == "teach" else (8 / 255, 30)
train = rv.zoo.data(DATA, "train", n=1000) if SCALE == "teach" else rv.data.load(DATA, "train")
runs = {"FGSM (no random start)": {"name": "pgd_at", "eps": CO_EPS, "step_size": CO_EPS,
                                   "steps": 1, "random_start": "none"},
        "FGSM-RS": {"name": "fgsm_rs", "eps": CO_EPS}}
histories = {}
for label, defense in runs.items():
    m = rv.models.build("tinycnn", num_classes=10, in_channels=train.shape[0],
                        mean=train.mean, std=train.std, seed=SEED)
    trainer = rv.train.Trainer(defense=defense, epochs=CO_EPOCHS, optimizer="adam", lr=5e-3,
                               weight_decay=0.0, schedule="constant", batch_size=64, eps=CO_EPS,
                               val_size=100, seed=SEED, progress=False)
    trainer.fit(m, train, val=test)
    histories[label] = trainer.history_

fig, ax = plt.subplots(figsize=(7, 3.5))
for (label, hist), color in zip(histories.items(), rv.figures.palette(2)):
    epochs = [h["epoch"] for h in hist]
    ax.plot(epochs, [h["train_acc_adv"] for h in hist], "--", color=color, label=f"{label}: train (own attack)")
    ax.plot(epochs, [h["val_robust_acc"] for h in hist], "-o", color=color, label=f"{label}: PGD-20")
ax.set_xlabel("epoch")
ax.set_ylabel("accuracy")
ax.set_ylim(0, 1)
ax.legend(fontsize=8)
plt.show()

# %%
for label, hist in histories.items():
    last = hist[-1]
    print(f"{label:24s} last epoch: accuracy against its own attack {last['train_acc_adv']:.0%}, "
          f"against PGD-20 {last['val_robust_acc']:.0%}, clean {last['val_clean_acc']:.0%}")

# %% [markdown]
# Read the gap between the dashed line (accuracy against the training attack) and the solid
# one (against PGD-20). Catastrophic overfitting shows as the solid line of the run without
# a random start dropping towards 0 within an epoch while its dashed line jumps up; with the
# random start the lines stay together. At this radius PGD-20 is much stronger than any
# single step, so both runs keep some gap; how abruptly it opens depends on the run, and on
# this small teaching budget (1,000 images, 4 epochs) the collapse may only begin:
# exercise 1 trains longer.
#
# ## Exercises
#
# 1. Repeat section 3 with `CO_EPOCHS = 10` and 5,000 training images. When does the run
#    without a random start collapse under PGD-20? Then try `CO_EPS = 0.1`.
# 2. TRADES with $\beta = 1$ and $\beta = 6$: train each for an epoch on 1,000 images and
#    compare clean and PGD-20 accuracy. Which way does $\beta$ move the trade-off?

# %% tags=["solution"]
# Solution 2: a larger beta weighs smoothness more, so in expectation lower clean and higher
# robust accuracy; after one short epoch the difference can be within noise (train longer).
for beta in (1.0, 6.0):
    m = rv.models.build("tinycnn", num_classes=10, in_channels=train.shape[0],
                        mean=train.mean, std=train.std, seed=SEED)
    rv.train.Trainer(defense={"name": "trades", "beta": beta, "eps": EPS, "steps": 2},
                     epochs=1, optimizer="adam", lr=3e-3, weight_decay=0.0, schedule="constant",
                     batch_size=64, eps=EPS, seed=SEED, progress=False).fit(m, train)
    r = rv.evaluate.evaluate(m, sub, {"PGD-20": attacks["PGD-20"]}, topk=(1,), progress=False)
    print(f"beta {beta}: clean {r.clean[1]:.1%}  PGD-20 {r.robust('PGD-20'):.1%}")
