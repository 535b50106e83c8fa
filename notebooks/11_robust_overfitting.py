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
# # 11 Robust overfitting and early stopping
#
# **You will learn to** read a run's per-epoch records for robust overfitting (the robust
# accuracy on held-out images stops improving, then falls, while the training robust
# accuracy keeps rising);
# measure the robust generalization gap; and stop early on a validation split carved out of
# the training images, never on the test set.
#
# **Prerequisites:** 01 (attacks), 02 (adversarial training). **Run time:** about 1 minute on
# a 2-core CPU.
#
# **Data:** Fashion-MNIST; this notebook needs the zoo's per-epoch PGD-AT run
# `pgd_at_overfit`, which the digits zoo (the fallback where Fashion-MNIST is absent) does
# not have. `robustviz data fetch fashion-mnist` gets it (the Colab cell does).
#
# Rice, Wong & Kolter ("Overfitting in adversarially robust deep learning", ICML 2020) found
# that in PGD adversarial training the robust test accuracy peaks soon after the first
# learning-rate decay and then *falls* for the rest of the run, while the robust accuracy on
# the training images keeps rising: the network memorises the adversarial examples of its
# training set. In their runs the clean test accuracy suffers much less. Their remedy is the oldest one: keep the
# weights of the epoch that did best on held-out data (early stopping), which matched the
# later algorithmic improvements of that time.
#
# The effect needs longer training than a notebook can afford, so the zoo ships the
# per-epoch records of a run made ahead of time, and this notebook replays them; a short
# live run then shows the early-stopping mechanism. Sentences marked ✓ are checked against
# the numbers this notebook reads or computes.
# %%
# Colab only: install robustviz (with its zoo) and Fashion-MNIST; elsewhere nothing happens
import subprocess, sys
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "robustviz[all] @ git+https://github.com/robustviz/robustviz"], check=True)
    subprocess.run([sys.executable, "-m", "robustviz", "data", "fetch", "fashion-mnist"], check=True)

# %%
# Parameters. "teach": the teaching zoo (Fashion-MNIST, TinyCNN, Linf eps 0.1) on a CPU.
# "paper": your runs of the paper configs (CIFAR-10, eps 8/255, GPU); the replayed run is a
# zoo run, rv.notebooks.PAPER_RUNS has no paper-scale counterpart. LIVE_*: the live run.
SCALE = "teach"
SEED = 0
LIVE_TRAIN, LIVE_VAL, LIVE_EPOCHS = 500, 250, 6

# %%
# %matplotlib inline
import copy

import matplotlib.pyplot as plt
import torch

import robustviz as rv

S = rv.notebooks.setup(SCALE, seed=SEED)
EPS, test = S.eps, S.test

# %% [markdown]
# ## 1. The run and how it was made
#
# `rv.zoo.info` reads the zoo entry `pgd_at_overfit`: its config (`config.json`, written by
# the trainer), its evaluation record (`eval.json`: machine and training time) and its
# per-epoch records (`metrics.jsonl`). It was made with
#
#     python scripts/train_zoo.py --dataset fashion-mnist --models pgd_at_overfit --device cpu --n 500 --aa-n 20
#
# from `configs/zoo/fashion-mnist/pgd_at_overfit.yaml`: PGD-5 adversarial training
# (Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018)
# of a TinyCNN (64 and 128 channels, 256 hidden units) on a small class-stratified subset
# of the training split, for 100 epochs of SGD with the learning rate cut 10x at epochs 50
# and 75 (Rice et al.'s schedule shape); the small training set keeps the run affordable on
# a CPU. The cell prints what the records say.

# %%
run = rv.zoo.info("pgd_at_overfit", S.dataset)
cfg, records = run["config"], run["epochs"]
tr = cfg["train"]
print(f"data: {cfg['data']['n']} training images of {cfg['data']['name']} (class-stratified, "
      f"seed {cfg['data']['seed']}); held-out records on {records[0]['val_n']} test images")
print(f"training: {cfg['defense']['name']} eps {cfg['defense']['eps']}, {cfg['defense']['steps']} steps "
      f"of {cfg['defense']['step_size']}; {tr['epochs']} epochs, batch {tr['batch_size']}, "
      f"{tr['optimizer']} lr {tr['lr']} x{tr['gamma']} at epoch(s) {tr['milestones']}, "
      f"weight decay {tr['weight_decay']}")
print(f"machine: {run['device']}; training time {run['train_seconds']:.0f} s "
      f"(sum of the epochs: {sum(r['time_s'] for r in records):.0f} s)")
print(f"final weights on {run['eval']['n']} test images: clean {run['eval']['clean']:.1%}, "
      f"PGD-20 {run['eval']['pgd20']:.1%}")

# %% [markdown]
# The final weights ship too. Schmidt, Santurkar, Tsipras, Talwar & Madry ("Adversarially
# Robust Generalization Requires More Data", NeurIPS 2018) show that adversarially robust
# generalization can need much more data than standard generalization. The zoo's PGD-AT
# model, trained with the same attack on all 60,000 training images, illustrates it
# against these weights, though not as a controlled test: the two runs also differ in
# width, epochs, batch size and learning-rate schedule, not only in data.

# %%
models = {"500 images, 100 epochs": S.load("pgd_at_overfit"), "60,000 images (pgd_at)": S.load("pgd_at")}
res = {k: rv.evaluate.evaluate(m, (test.x[:300], test.y[:300]), {"PGD-10": rv.attacks.PGD(eps=EPS, steps=10)},
                               topk=(1,), seed=SEED, progress=False) for k, m in models.items()}
for k, r in res.items():
    print(f"{k:24s} clean {r.clean[1]:6.1%}  PGD-10 {r.robust('PGD-10'):6.1%}")
small, full = (res[k] for k in models)
rv.notebooks.expect(full.robust("PGD-10") > small.robust("PGD-10") + 0.1,
                    "the model trained on all the data is more than 10 points more robust",
                    small_data=small.robust("PGD-10"), all_data=full.robust("PGD-10"))
robust_gap, clean_gap = full.robust("PGD-10") - small.robust("PGD-10"), full.clean[1] - small.clean[1]
rv.notebooks.expect(robust_gap > 3 * clean_gap,
                    "its lead in robust accuracy is more than three times its lead in clean accuracy",
                    robust_gap=robust_gap, clean_gap=clean_gap)

# %% [markdown]
# Each epoch record holds `train_acc_adv`, the accuracy on the PGD-5 examples the model
# trained on during that epoch (a running average while the weights change: the training
# robust accuracy); `val_clean_acc` and `val_robust_acc`, clean and PGD-20 accuracy on a
# fixed, seeded subset of test images scored after the epoch (here they are *test*
# numbers: the run had no validation split); and `lr`.
#
# ## 2. The replay

# %%
epoch = [r["epoch"] for r in records]
train_rob = [r["train_acc_adv"] for r in records]
test_rob = [r["val_robust_acc"] for r in records]
test_clean = [r["val_clean_acc"] for r in records]
lr = [r["lr"] for r in records]
decay = min(e for e, a, b in zip(epoch[1:], lr[1:], lr[:-1]) if a < b)   # first epoch at the lower rate

fig, (ax, ax_lr) = plt.subplots(1, 2, figsize=(10, 3.4), gridspec_kw={"width_ratios": [3, 1]})
ax.plot(epoch, [100 * v for v in train_rob], "o-", label="training robust (PGD-5, running)")
ax.plot(epoch, [100 * v for v in test_rob], "s-", label="test robust (PGD-20)")
ax.plot(epoch, [100 * v for v in test_clean], "^--", label="test clean", alpha=0.6)
for a in (ax, ax_lr):
    a.axvline(decay - 0.5, color="0.5", linestyle=":")
ax.set_xlabel("epoch")
ax.set_ylabel("accuracy (%)")
ax.legend(loc="lower right", fontsize=8)
ax_lr.plot(epoch, lr, "k.-")
ax_lr.set_yscale("log")
ax_lr.set_xlabel("epoch")
ax_lr.set_ylabel("learning rate")
plt.show()

# %%
n_val = records[-1]["val_n"]


def mean5(values, i):
    """Mean of the five epochs around epoch index i: the held-out numbers move by a couple
    of points from one epoch to the next (sampling noise of n_val images), a window steadies them."""
    lo, hi = max(0, i - 2), min(len(values), i + 3)
    return sum(values[lo:hi]) / (hi - lo)


peak = max(range(len(epoch)), key=lambda i: mean5(test_rob, i))
end = len(epoch) - 3                                     # the window of the last five epochs
se = (mean5(test_rob, peak) * (1 - mean5(test_rob, peak)) / n_val) ** 0.5   # binomial standard error
at_decay = epoch.index(decay)
print(f"held-out robust accuracy (5-epoch means): peak {mean5(test_rob, peak):.1%} around epoch "
      f"{epoch[peak]}, last epochs {mean5(test_rob, end):.1%}; one standard error {se:.1%}")
print(f"training robust accuracy: {mean5(train_rob, peak):.1%} at the peak, {mean5(train_rob, end):.1%} at the end")
rv.notebooks.expect(epoch[peak] < decay,
                    "the held-out robust accuracy peaks before the first learning-rate decay",
                    peak_epoch=epoch[peak], decay_epoch=decay)
rv.notebooks.expect(mean5(test_rob, end) < mean5(test_rob, peak) - 2 * se,
                    "by the last epochs it has fallen more than two standard errors below that peak",
                    peak=mean5(test_rob, peak), last=mean5(test_rob, end), two_standard_errors=2 * se)
rv.notebooks.expect(mean5(train_rob, end) > mean5(train_rob, peak) + 0.2,
                    "while the training robust accuracy rises by more than 20 points",
                    train_at_peak=mean5(train_rob, peak), train_last=mean5(train_rob, end))
rv.notebooks.expect(mean5(test_clean, end) > mean5(test_clean, peak),
                    "and the held-out clean accuracy does not fall: it ends above its value at "
                    "the robust peak", clean_at_peak=mean5(test_clean, peak),
                    clean_last=mean5(test_clean, end))
before, after = sum(test_rob[at_decay - 5:at_decay]) / 5, sum(test_rob[at_decay:at_decay + 5]) / 5
tr_before, tr_after = sum(train_rob[at_decay - 5:at_decay]) / 5, sum(train_rob[at_decay:at_decay + 5]) / 5
rv.notebooks.expect(tr_after > tr_before + 0.05 and abs(after - before) < 2 * se,
                    "at the decay the training robust accuracy jumps by more than 5 points, the "
                    "held-out one moves by less than two standard errors",
                    train_before=tr_before, train_after=tr_after, held_out_before=before,
                    held_out_after=after)
rv.notebooks.expect(before < mean5(test_rob, peak) - 2 * se,
                    "in the five epochs before the decay the held-out robust accuracy is already more "
                    "than two standard errors below its peak",
                    peak=mean5(test_rob, peak), before_decay=before, two_standard_errors=2 * se)

# %% [markdown]
# This is robust overfitting, but not on Rice et al.'s schedule. In their CIFAR-10 runs
# (50,000 training images) the robust test accuracy peaks right *after* the first decay and
# falls from there. Here, with 500 training images and a network wide enough to fit them,
# the fall starts before any decay: the held-out robust accuracy peaks around epoch 19 and
# has fallen more than two standard errors below that peak in the five epochs before the
# first decay (after epoch 50). The network memorises the adversarial examples of its small
# training set at the initial learning rate already, and the decay only speeds that up (the
# training robust accuracy jumps, the held-out one moves by less than two standard errors).
# The clean held-out accuracy ends higher than at the robust peak: overfitting shows in the
# robust numbers, not the clean ones. (The peak of a noisy curve flatters it: the maximum
# of many 5-epoch windows sits a little above the true value, which is one more reason to
# choose the epoch on a validation split, section 3.)
#
# *Question:* the zoo's `pgd_at` was trained on all 60,000 images for 8 epochs. Where would
# you expect its robust test accuracy to peak if it were trained for 100 epochs with this
# schedule, and why?
#
# *Question:* the epoch to keep is the peak of the held-out curve. How many points would
# early stopping have saved on this run, and why is reading that number off this test-image
# curve not an honest estimate of the kept model's accuracy?
#
# The same records drawn by `rv.figures.plot_training_curves` (loss, then clean and robust
# accuracy on the held-out images):

# %%
# the run scored test images each epoch (it had no validation split): the axis says so
rv.figures.plot_training_curves({"pgd_at_overfit": records}, val_label="test")

# %% [markdown]
# ## 3. Early stopping, on a validation split
#
# The best epoch of the curve above was chosen by looking at test images. Reporting its
# accuracy as the model's is choosing on the test set: the maximum of a noisy curve is an
# optimistic estimate, and the test set no longer measures anything independent. Early
# stopping needs its own held-out data: a *validation split* taken out of the training
# images before training, used to pick the epoch; the test set is read once, at the end.
#
# A short live run shows the mechanism: `LIVE_TRAIN` training images and `LIVE_VAL`
# validation images, disjoint by construction (one stratified pool, shuffled and cut), PGD
# adversarial training with a 10x decay halfway, and a callback that scores the validation
# *and* test images after every epoch and keeps a copy of the weights. (We score the test
# images every epoch only to look at them afterwards; the choice reads the validation
# column alone.)

# %%
pool = rv.zoo.data(S.dataset, "train", n=LIVE_TRAIN + LIVE_VAL)
order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(SEED))
train, val = pool.subset(order[:LIVE_TRAIN]), pool.subset(order[LIVE_TRAIN:])
x_test, y_test = test.x[:250], test.y[:250]
pgd10 = rv.attacks.PGD(eps=EPS, steps=10)
history, weights = [], {}


def score(model, xs, ys):
    r = rv.evaluate.evaluate(model, (xs, ys), {"PGD-10": pgd10}, topk=(1,), seed=SEED, progress=False)
    return r.clean[1], r.robust("PGD-10")


def keep_and_score(model, epoch, run_dir=None):
    weights[epoch] = copy.deepcopy(model.state_dict())
    (vc, vr), (tc, tr_) = score(model, val.x, val.y), score(model, x_test, y_test)
    history.append({"epoch": epoch, "val_clean": vc, "val_robust": vr, "test_clean": tc, "test_robust": tr_})
    print(f"epoch {epoch}: validation robust {vr:.1%}   test robust {tr_:.1%}")


model = rv.models.build("tinycnn", num_classes=10, in_channels=train.shape[0], mean=train.mean,
                        std=train.std, seed=SEED)
rv.train.Trainer(defense={"name": "pgd_at", "eps": EPS, "steps": 3, "step_size": 0.04},
                 epochs=LIVE_EPOCHS, lr=0.05, schedule="piecewise", milestones=[LIVE_EPOCHS // 2],
                 batch_size=32, eps=EPS, seed=SEED, progress=False).fit(model, train,
                                                                         callbacks=[keep_and_score])

# %%
kept = max(history, key=lambda h: h["val_robust"])
early = rv.models.build("tinycnn", num_classes=10, in_channels=train.shape[0], mean=train.mean,
                        std=train.std, seed=SEED)
early.load_state_dict(weights[kept["epoch"]])
early.eval()
print(f"kept epoch {kept['epoch']} (best validation robust accuracy {kept['val_robust']:.1%}); "
      f"test robust accuracy: kept {kept['test_robust']:.1%}, last epoch {history[-1]['test_robust']:.1%}")
rv.notebooks.expect(abs(score(early, val.x, val.y)[1] - kept["val_robust"]) < 1e-9,
                    "the restored weights are the kept epoch's: they score the validation robust "
                    "accuracy recorded at that epoch",
                    recorded=kept["val_robust"], restored=score(early, val.x, val.y)[1])

# %% [markdown]
# Early stopping costs one copy of the weights per improvement and one evaluation of the
# validation split per epoch. *Question:* in your run, did the validation split pick the
# epoch the test column would have picked? Six epochs on 500 images are a short run; what
# would you expect with the zoo run's schedule?
#
# ## Exercises
#
# Write each answer in its cell, replacing `...`, then run the check below it: it says what
# is still wrong, not the answer.
#
# **Exercise 1.** From the replayed `records`: the robust generalization gap of the last
# epoch, training robust accuracy minus test robust accuracy. Answer with a float (a
# difference of fractions, not of percentages).

# %%
answer_1 = ...

# %% tags=["solution"]
answer_1 = records[-1]["train_acc_adv"] - records[-1]["val_robust_acc"]

# %%
rv.notebooks.exercise("11.1", answer_1, records=records)

# %% [markdown]
# **Exercise 2.** Which epoch does early stopping keep in the live run? Use `history` (one
# dict per epoch) and the rule of section 3. Answer with the epoch number as `history`
# counts it (an int).

# %%
answer_2 = ...

# %% tags=["solution"]
answer_2 = max(history, key=lambda h: h["val_robust"])["epoch"]

# %%
rv.notebooks.exercise("11.2", answer_2, history=history)
