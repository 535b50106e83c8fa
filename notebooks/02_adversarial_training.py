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
# **You will learn to** write the losses of five training methods as loss terms run by one
# training loop; compare trained defenses by clean and robust accuracy, at the training
# radius and beyond; measure what one adversarial training step costs (passes through the
# model and seconds); and recognise *catastrophic overfitting* of single-step training.
#
# **Prerequisites:** 01 (attacks). **Run time:** about 2.5 minutes on a 2-core CPU.
#
# **Data:** Fashion-MNIST; this notebook needs the zoo's FGSM-RS and MART models, which the
# digits zoo (the fallback where Fashion-MNIST is absent) does not have. `robustviz data
# fetch fashion-mnist` gets it (the Colab cell does).
#
# Adversarial training replaces the natural loss by a loss on attacked inputs. All five
# defenses below are loss terms run by the one `rv.train.Trainer`; the teaching zoo holds a
# TinyCNN trained with each on Fashion-MNIST (eps 0.1). We compare them, measure their cost,
# train two small models live to watch single-step training fail, then train a robust one
# live with the fast recipe. Sentences marked ✓ are checked against the numbers this
# notebook computes on your run.
# %%
# Colab only: install robustviz (with its zoo) and Fashion-MNIST; elsewhere nothing happens
import subprocess, sys
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "robustviz[all] @ git+https://github.com/robustviz/robustviz"], check=True)
    subprocess.run([sys.executable, "-m", "robustviz", "data", "fetch", "fashion-mnist"], check=True)

# %%
# Parameters. "teach": the teaching zoo (Fashion-MNIST, TinyCNN, Linf eps 0.1) on a CPU.
# "paper": your runs of the paper configs (CIFAR-10, eps 8/255, GPU; rv.notebooks.PAPER_RUNS
# names the config that makes each model; there is none for FGSM-RS).
SCALE = "teach"
SEED = 0

# %%
# %matplotlib inline
import time

import matplotlib.pyplot as plt
import torch

import robustviz as rv

S = rv.notebooks.setup(SCALE, seed=SEED)
EPS, test = S.eps, S.test
names = {"NAT": "nat", "FGSM-RS": "fgsm_rs", "PGD-AT": "pgd_at", "TRADES": "trades", "MART": "mart"}
models = {label: S.load(name) for label, name in names.items()}

# %% [markdown]
# ## 1. The losses
#
# - NAT: $\min_\theta \mathbb{E}\,\mathrm{CE}(f(x), y)$.
# - PGD-AT (Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards Deep Learning Models Resistant
#   to Adversarial Attacks", ICLR 2018): $\min_\theta \mathbb{E}\max_{\|\delta\|_\infty\le\epsilon}
#   \mathrm{CE}(f(x+\delta), y)$, the inner maximum approximated by $k$ steps of PGD.
# - FGSM-RS (Wong, Rice & Kolter, "Fast is better than free: Revisiting adversarial
#   training", ICLR 2020): the inner maximum by one FGSM step of size $1.25\epsilon$ from a
#   uniform random start in the ball.
# - TRADES (Zhang, Yu, Jiao, Xing, El Ghaoui & Jordan, "Theoretically Principled Trade-off
#   between Robustness and Accuracy", ICML 2019): $\mathrm{CE}(f(x), y) + \beta\,
#   \mathrm{KL}\big(p(x)\,\|\,p(x')\big)$, trading accuracy for smoothness.
# - MART (Wang, Zou, Yi, Bailey, Ma & Gu, "Improving Adversarial Robustness Requires
#   Revisiting Misclassified Examples", ICLR 2020): a boosted CE on $x'$ plus a KL term
#   weighted by $1 - p_y(x)$, so misclassified examples count more.

# %%
sub = (test.x[:300], test.y[:300])
attacks = {"FGSM": rv.attacks.FGSM(eps=EPS), "PGD-20": rv.attacks.PGD(eps=EPS, steps=20)}
results = {label: rv.evaluate.evaluate(m, sub, attacks, topk=(1,), seed=SEED, progress=False)
           for label, m in models.items()}
for label, r in results.items():
    print(f"{label:8s} clean {r.clean[1]:.1%}  FGSM {r.robust('FGSM'):.1%}  PGD-20 {r.robust('PGD-20'):.1%}")
rv.figures.plot_topk_table(results, k=(1,))

# %%
clean = {label: r.clean[1] for label, r in results.items()}
pgd = {label: r.robust("PGD-20") for label, r in results.items()}
defended = [label for label in models if label != "NAT"]
rv.notebooks.expect(all(clean[d] < clean["NAT"] and pgd[d] > pgd["NAT"] + 0.3 for d in defended),
                    "every adversarially trained model has lower clean accuracy than NAT and "
                    "more than 30 points more accuracy under PGD-20",
                    nat_clean=clean["NAT"], nat_pgd20=pgd["NAT"],
                    **{f"{d}_clean": clean[d] for d in defended}, **{f"{d}_pgd20": pgd[d] for d in defended})
rv.notebooks.expect(abs(pgd["FGSM-RS"] - pgd["PGD-AT"]) <= 0.05,
                    "FGSM-RS's accuracy under PGD-20 is within 5 points of PGD-AT's",
                    fgsm_rs=pgd["FGSM-RS"], pgd_at=pgd["PGD-AT"])

# %% [markdown]
# Every adversarially trained model pays some clean accuracy for a large gain under PGD-20;
# the natural model is the most accurate on clean images and the least under attack. The
# single-step FGSM-RS model ends close to PGD-AT under PGD-20. *Question:* the table holds
# 300 test images; how large a difference between two models would you trust (an accuracy
# on 300 images has a standard error of about $\sqrt{p(1-p)/300}$)?
#
# ## 2. What one training step costs
#
# Each attack step is one forward and one backward pass through the model (the gradient
# with respect to the input); the weight update adds one more (with the clean logits too
# for TRADES and MART). We build each defense as its zoo model was trained (the run's
# config), count the forward passes of one training step with a hook, and time a step on
# a batch of 128 images on this machine (the fastest of 3 repeats). The zoo also records
# how long each model trained, but those runs shared one GPU at the same time, so those
# seconds do not compare the methods' costs.


# %%
def run_config(name):
    """The config a model was trained with: the zoo's record (teach) or your run's (paper)."""
    if SCALE == "teach":
        return rv.zoo.info(name, dataset=S.dataset)["config"]
    return rv.runs.load_run(S.root / rv.notebooks.PAPER_RUNS[name][0]).config


train = rv.zoo.data(S.dataset, "train", n=1000) if SCALE == "teach" else rv.data.load(S.dataset, "train")
xb, yb = train.x[:128], train.y[:128]


def step_cost(cfg):
    """Attack steps, forward passes and seconds of one training step of a config's defense
    and model on the batch (xb, yb)."""
    defense, net = rv.defenses.build(cfg["defense"]), rv.models.build(**cfg["model"]).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    calls = []
    hook = net.register_forward_hook(lambda *_: calls.append(1))
    seconds = []
    for _ in range(4):  # the first step warms up; the fastest of the other 3 is kept
        start = time.perf_counter()
        opt.zero_grad()
        loss, _ = defense(net, xb, yb)
        loss.backward()
        opt.step()
        seconds.append(time.perf_counter() - start)
    hook.remove()
    attack = getattr(defense, "attack", None)
    return {"attack steps": getattr(attack, "steps", 1) if attack is not None else 0,
            "forwards": len(calls) // 4, "seconds": min(seconds[1:]),
            "parameters": sum(p.numel() for p in net.parameters())}


cost = {label: step_cost(run_config(name)) for label, name in names.items()}
for label, c in cost.items():
    print(f"{label:8s} attack steps {c['attack steps']:2d}  forward passes per step {c['forwards']:2d}  "
          f"one step {c['seconds'] * 1e3:6.0f} ms  ({c['seconds'] / cost['NAT']['seconds']:.1f} x NAT)")

# %%
k = cost["PGD-AT"]["attack steps"]
rv.notebooks.expect(cost["FGSM-RS"]["forwards"] == 2 and cost["PGD-AT"]["forwards"] == k + 1,
                    "one training step makes 2 forward passes with FGSM-RS (1 attack step + the "
                    "update) and k + 1 with PGD-AT (k attack steps + the update)",
                    fgsm_rs=cost["FGSM-RS"]["forwards"], pgd_at=cost["PGD-AT"]["forwards"], k=k)
ratio = cost["FGSM-RS"]["seconds"] / cost["PGD-AT"]["seconds"]
rv.notebooks.expect(ratio < 0.6,
                    "on this machine an FGSM-RS training step takes less than 60% of the time of "
                    "a PGD-AT step",
                    fgsm_rs_ms=1e3 * cost["FGSM-RS"]["seconds"], pgd_at_ms=1e3 * cost["PGD-AT"]["seconds"],
                    ratio=ratio)
per_pass = {label: c["seconds"] / cost["NAT"]["seconds"] / c["forwards"]
            for label, c in cost.items() if label != "NAT"}
rv.notebooks.expect(all(0.5 < r < 2 for r in per_pass.values()),
                    "each defense's step time divided by NAT's step time lies between half and twice "
                    "its number of forward passes per step",
                    **{f"{label}_time_per_pass": r for label, r in per_pass.items()})

# %% [markdown]
# The cost of adversarial training is the attack: with $k$ PGD steps a training step makes
# $k + 1$ forward and backward passes where FGSM-RS makes 2, and the measured step times
# follow the counts roughly: each defense's step, in units of NAT's, lies between half and
# twice its number of forward passes (the update's own overhead and this machine's load
# blur it; the printed times show how closely they follow here). So FGSM-RS reaches a
# PGD-20 accuracy close to PGD-AT's at a fraction of the passes per step, on this model
# with the zoo's $k$.
#
# ## 3. Accuracy against the radius
#
# The trade-off over the whole range of $\epsilon$, not only at the training radius.

# %%
radii = [0, EPS / 2, EPS, 1.5 * EPS, 2 * EPS]
curves = {label: rv.evaluate.accuracy_vs_eps(m, (test.x[:150], test.y[:150]), eps=radii,
                                             steps=10, progress=False)
          for label, m in models.items()}
rv.figures.plot_robustness_vs_eps(curves, eps_scale=1.0)

# %%
acc = {label: c.accuracy for label, c in curves.items()}
rv.notebooks.expect(all(acc[d][0] < acc["NAT"][0] for d in defended),
                    "at eps = 0 the natural model is the most accurate",
                    **{label: a[0] for label, a in acc.items()})
rv.notebooks.expect(all(acc[d][i] > acc["NAT"][i] for d in defended for i in range(1, len(radii))),
                    "at every radius from eps/2 to 2 eps every defended model is more accurate "
                    "than the natural one",
                    **{f"{label}_2eps": a[-1] for label, a in acc.items()})
rv.notebooks.expect(all(acc[d][2] - acc[d][4] > acc[d][0] - acc[d][2] for d in defended),
                    "every defended model loses more accuracy from eps to 2 eps than from 0 to eps",
                    **{f"{d}_0_to_eps": acc[d][0] - acc[d][2] for d in defended},
                    **{f"{d}_eps_to_2eps": acc[d][2] - acc[d][4] for d in defended})

# %% [markdown]
# The defended models start below the natural one at $\epsilon = 0$ (lower clean accuracy)
# and stay above it at every larger radius; beyond the training radius they all degrade
# faster than within it.
#
# ## 4. Catastrophic overfitting, live
#
# FGSM training without a random start can suddenly stop working: the model learns to make
# FGSM's single linear step useless (its loss surface curves within the ball), its accuracy
# against FGSM keeps *rising*, while its accuracy against PGD collapses (Wong, Rice & Kolter
# 2020 named this catastrophic overfitting). Their fix is the uniform random start; the step
# from there is *larger* than $\epsilon$ (printed below from the attack itself), and the
# projection pulls the result back into the ball. We train both on a small subset at a
# large radius and validate under PGD-20 after every epoch.

# %%
CO_EPS, CO_EPOCHS = (0.3, 4) if SCALE == "teach" else (8 / 255, 30)
runs = {"FGSM (no random start)": {"name": "pgd_at", "eps": CO_EPS, "step_size": CO_EPS,
                                   "steps": 1, "random_start": "none"},
        "FGSM-RS": {"name": "fgsm_rs", "eps": CO_EPS}}
co_attacks = {label: rv.defenses.build(spec).attack for label, spec in runs.items()}
fgsm_rs_step = co_attacks["FGSM-RS"].effective_step_size
no_rs_step = co_attacks["FGSM (no random start)"].effective_step_size
print(f"eps {CO_EPS}: FGSM-RS steps {fgsm_rs_step:.3f} ({fgsm_rs_step / CO_EPS:.2f} eps) from a random "
      f"start, the run without one steps {no_rs_step:.3f} ({no_rs_step / CO_EPS:.2f} eps) from x")
rv.notebooks.expect(fgsm_rs_step > CO_EPS and abs(no_rs_step - CO_EPS) < 1e-12,
                    "FGSM-RS steps further than eps from its random start; the run without a "
                    "random start steps exactly eps",
                    fgsm_rs_step=fgsm_rs_step, eps=CO_EPS)

# %%
histories, co_models = {}, {}
for label, defense in runs.items():
    m = rv.models.build("tinycnn", num_classes=10, in_channels=train.shape[0],
                        mean=train.mean, std=train.std, seed=SEED)
    trainer = rv.train.Trainer(defense=defense, epochs=CO_EPOCHS, optimizer="adam", lr=5e-3,
                               weight_decay=0.0, schedule="constant", batch_size=64, eps=CO_EPS,
                               val_size=100, seed=SEED, progress=False)
    trainer.fit(m, train, val=test)
    histories[label], co_models[label] = trainer.history_, m.eval()

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
    print(f"{label:24s} records of the last epoch: own attack on the training batches "
          f"{last['train_acc_adv']:.0%}, PGD-20 on the validation images {last['val_robust_acc']:.0%}")
# both final models on the same 100 held-out test images, under their own training attack and PGD-20
co_val = (test.x[:100], test.y[:100])
co_scores = {label: rv.evaluate.evaluate(m, co_val, {"own attack": co_attacks[label],
                                                     "PGD-20": rv.attacks.PGD(eps=CO_EPS, steps=20)},
                                         topk=(1,), seed=SEED, progress=False)
             for label, m in co_models.items()}
for label, r in co_scores.items():
    print(f"{label:24s} 100 held-out test images: clean {r.clean[1]:.0%}, own attack "
          f"{r.robust('own attack'):.0%}, PGD-20 {r.robust('PGD-20'):.0%}")
co_gap = {label: r.robust("own attack") - r.robust("PGD-20") for label, r in co_scores.items()}
rv.notebooks.expect(all(g > 0.2 for g in co_gap.values()),
                    "on the same 100 held-out test images, each run's final model is more than 20 "
                    "points more accurate against its own training attack than against PGD-20",
                    **{f"{label} gap": g for label, g in co_gap.items()})

# %% [markdown]
# Read the gap between the dashed line (accuracy against the training attack, a running mean
# over the epoch's training batches while the model changes) and the solid one (against
# PGD-20 on held-out images). Catastrophic overfitting shows as the solid line dropping
# towards 0 within an epoch while the dashed line jumps up. The plot's two lines differ in
# data as well as in attack; scored on the same held-out images, each final model is more
# than 20 points more accurate against its own single training step than against PGD-20,
# so at this radius both runs keep a gap; how abruptly it opens depends on the run, and on
# this small teaching budget (1,000 images, 4 epochs) the collapse may only begin.
# *Question:* Andriushchenko & Flammarion ("Understanding and Improving Fast Adversarial
# Training", NeurIPS 2020) found that FGSM-RS overfits catastrophically too once the radius
# is large enough. Which run's gap is larger here, and is 0.3 a large radius for
# Fashion-MNIST? Try `CO_EPS = 0.1` and `CO_EPOCHS = 10` at home.
#
# ## 5. A robust model in a minute, live
#
# Wong, Rice & Kolter (2020) made single-step training fast enough to run while you wait:
# FGSM-RS, one short cycle of the learning rate and mixed precision trained a CIFAR-10
# model to 45% PGD accuracy at 8/255 in minutes on one GPU. The zoo's `fast_at` carries the
# idea to Fashion-MNIST on a CPU: FGSM-RS, the learning rate warmed up over half the run and
# then decayed (cosine) to zero, four epochs over all 60,000 training images, and a narrow
# TinyCNN whose blocks downsample by stride-2 convolutions instead of max-pooling. A guard
# (`rv.train.OverfitGuard`) scores 256 held-out test images under FGSM and PGD-10 after every
# epoch, and stops the run, keeping its best epoch, if PGD accuracy collapses while FGSM
# accuracy rises: catastrophic overfitting caught as it happens. We train it again here from
# the zoo model's own config, time it, and score it on the 300 images of section 1.

# %%
if SCALE == "teach":
    fast_cfg = rv.zoo.info("fast_at", dataset=S.dataset)["config"]
    full_train, full_test = rv.data.load(S.dataset, "train"), rv.data.load(S.dataset, "test")
    # the guard's images: outside the 2,000 test images of the zoo's records (and so of `sub`)
    guard = rv.train.OverfitGuard(full_test.held_out(2000, seed=0).sample(256, seed=SEED),
                                  eps=EPS, n=256, steps=10, drop=0.2, seed=SEED)
    live = rv.models.build(**fast_cfg["model"])
    options = {k: v for k, v in fast_cfg["train"].items() if k not in ("device", "progress")}
    start = time.perf_counter()
    try:
        rv.train.Trainer(defense=fast_cfg["defense"], **options, progress=False).fit(
            live, full_train, val=full_test, callbacks=[guard])
    except rv.train.CatastrophicOverfitting as stop:  # the guard kept the best epoch's weights
        print(stop)
    live_seconds = time.perf_counter() - start
    print(f"trained {options['epochs']} epochs on {len(full_train):,} images in {live_seconds:.0f} s")
    for h in guard.history_:
        print(f"epoch {h['epoch']}: guard images clean {h['guard_clean_acc']:.1%}  "
              f"FGSM {h['guard_fgsm_acc']:.1%}  PGD-10 {h['guard_pgd_acc']:.1%}")
    fast = {label: rv.evaluate.evaluate(m, sub, attacks, topk=(1,), seed=SEED, progress=False)
            for label, m in {"fast_at, live": live.eval(), "fast_at, zoo": S.load("fast_at")}.items()}
    for label, r in [*fast.items(), ("FGSM-RS", results["FGSM-RS"]), ("PGD-AT", results["PGD-AT"])]:
        print(f"{label:14s} clean {r.clean[1]:.1%}  FGSM {r.robust('FGSM'):.1%}  PGD-20 {r.robust('PGD-20'):.1%}")
    # the narrow network's own saving: a step of the same defense (FGSM-RS) as in section 2
    fast_step = step_cost(fast_cfg)
    print(f"one FGSM-RS training step on the batch of section 2: fast_at's network "
          f"{fast_step['seconds'] * 1e3:.0f} ms ({fast_step['parameters']:,} parameters), the zoo "
          f"FGSM-RS model's {cost['FGSM-RS']['seconds'] * 1e3:.0f} ms ({cost['FGSM-RS']['parameters']:,})")
    print(f"epochs: fast_at {options['epochs']}, the zoo's PGD-AT {run_config('pgd_at')['train']['epochs']}")
else:
    print("the paper-scale speedrun is a command for a GPU: robustviz speedrun --dataset cifar10")

# %%
if SCALE == "teach":
    live_pgd, zoo_pgd = fast["fast_at, live"].robust("PGD-20"), fast["fast_at, zoo"].robust("PGD-20")
    rv.notebooks.expect(guard.collapse_ is None,
                        "the guard saw no catastrophic overfitting: PGD-10 accuracy on its held-out "
                        "images never collapsed while FGSM accuracy rose",
                        **{f"pgd10_epoch{h['epoch']}": h["guard_pgd_acc"] for h in guard.history_})
    rv.notebooks.expect(abs(live_pgd - zoo_pgd) <= 0.05,
                        "the live run lands within 5 points of the zoo's fast_at under PGD-20 on the "
                        "same 300 images (same config, same seed)",
                        live=live_pgd, zoo=zoo_pgd)
    rv.notebooks.expect(pgd["PGD-AT"] - live_pgd <= 0.10,
                        "the live model is at most 10 points below the zoo's PGD-AT under PGD-20",
                        live=live_pgd, pgd_at=pgd["PGD-AT"])
    pgd_cfg = run_config("pgd_at")["train"]
    pgd_at_estimate = (cost["PGD-AT"]["seconds"] * pgd_cfg["epochs"]
                       * -(-len(full_train) // pgd_cfg["batch_size"]))
    rv.notebooks.expect(live_seconds < pgd_at_estimate / 3,
                        "the live run took less than a third of the time a run of the zoo's PGD-AT "
                        "recipe would take here (its step time of section 2 times its steps)",
                        live_seconds=live_seconds, pgd_at_estimate_seconds=pgd_at_estimate)
    rv.notebooks.expect(fast_cfg["defense"] == run_config("fgsm_rs")["defense"]
                        and fast_step["seconds"] < cost["FGSM-RS"]["seconds"] / 4,
                        "with the same FGSM-RS defense, a training step of fast_at's network takes "
                        "less than a quarter of the time of the zoo FGSM-RS model's step (batch of "
                        "section 2)",
                        fast_at_ms=1e3 * fast_step["seconds"], fgsm_rs_ms=1e3 * cost["FGSM-RS"]["seconds"])

# %% [markdown]
# A robust model trained while you watched, within 10 points of PGD-AT under PGD-20 at less
# than a third of its estimated cost here (the numbers above). The recipe saves in three
# places: one attack step per update instead of $k$, half the epochs of the zoo's PGD-AT
# (4 instead of 8, from the two configs), and a narrower network that downsamples with
# strided convolutions instead of max-pooling, whose training step (with the same defense)
# takes less than a quarter of the time of the zoo FGSM-RS model's here. *Question:* the
# guard watches PGD-10 and FGSM on held-out images. Why would FGSM accuracy alone, or the
# accuracy against the training attack, miss catastrophic overfitting (look back at section
# 4)? From a shell, `robustviz speedrun` runs the same recipe with its evaluation; `benchmarks/speedrun.py`
# times it and checks it with a second attack library.
#
# ## Exercises
#
# Write each answer in its cell, replacing `...`, then run the check below it: it says what
# is still wrong, not the answer.
#
# **Exercise 1.** Measure catastrophic overfitting from the records: for each run of
# section 4, the gap at the *last* epoch between its accuracy against its own training
# attack (`train_acc_adv`) and its accuracy under PGD-20 (`val_robust_acc`). Answer with a
# dict `{run label: gap}` (floats; positive when the training attack looks weaker than
# PGD-20). Which run's training attack overstates its robustness more?

# %%
answer_1 = ...

# %% tags=["solution"]
answer_1 = {label: hist[-1]["train_acc_adv"] - hist[-1]["val_robust_acc"]
            for label, hist in histories.items()}
print(answer_1)

# %%
rv.notebooks.exercise("02.1", answer_1, histories=histories)

# %% [markdown]
# **Exercise 2.** The CIFAR-10 recipe of TRADES uses 10 attack steps. How many forward
# passes through the model does one training step of
# `rv.defenses.TRADES(beta=6.0, attack=rv.attacks.PGD(eps=EPS, step_size=EPS / 4, steps=10))`
# make? Predict it from section 2, then count it with a forward hook as there (an int).

# %%
answer_2 = ...

# %% tags=["solution"]
net = rv.models.build(**run_config("trades")["model"]).train()
calls = []
hook = net.register_forward_hook(lambda *_: calls.append(1))
trades10 = rv.defenses.TRADES(beta=6.0, attack=rv.attacks.PGD(eps=EPS, step_size=EPS / 4, steps=10))
trades10(net, xb[:16], yb[:16])[0].backward()
hook.remove()
answer_2 = len(calls)
print(answer_2)

# %%
rv.notebooks.exercise("02.2", answer_2, model=models["TRADES"], eps=EPS)

# %% [markdown]
# **Exercise 3.** The price of robustness: for each defended model, how many points of clean
# accuracy did it give up per point of PGD-20 accuracy gained, both relative to NAT in the
# table of section 1? Answer with a dict `{label: (clean_NAT - clean_model) / (pgd20_model -
# pgd20_NAT)}` over the four defended models (use `results`). Which defense pays least?

# %%
answer_3 = ...

# %% tags=["solution"]
nat = results["NAT"]
answer_3 = {label: (nat.clean[1] - r.clean[1]) / (r.robust("PGD-20") - nat.robust("PGD-20"))
            for label, r in results.items() if label != "NAT"}
print({label: round(v, 3) for label, v in answer_3.items()})

# %%
rv.notebooks.exercise("02.3", answer_3, results=results)
