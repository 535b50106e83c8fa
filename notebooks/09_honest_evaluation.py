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
# # 09 Evaluating robustness honestly
#
# A defense is only as robust as the strongest attack it was tested against. Athalye,
# Carlini & Wagner ("Obfuscated Gradients Give a False Sense of Security", ICML 2018) and
# Carlini et al. ("On Evaluating Adversarial Robustness", 2019) list the checks: accuracy
# must fall to about 0 at a large $\epsilon$, more steps must not help the model, a
# white-box attack must beat a transferred one, and a model whose decision is not
# differentiable must be attacked through a differentiable stand-in (an *adaptive* attack).
# This notebook runs those checks, a reliable standard attack (AutoAttack), and transfer
# attacks between models, and how the models fare on common corruptions.
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
models = {"NAT": load("nat"), "PGD-AT": load("pgd_at"), "TRADES": load("trades"),
          "TRADES-ANCRA": load("trades_ancra")}
sub = (test.x[:200], test.y[:200])

# %% [markdown]
# ## 1. A masked model: reverse attention under plain and adaptive PGD
#
# ANCRA's reverse attention picks the class of an argmax at test time (Zhou et al., 2023):
# the gradient through that choice is zero, so plain PGD attacks a constant and
# *overestimates* robustness. The model's `surrogate()` replaces the argmax by a softmax
# mixture; `Adaptive` attacks both and keeps, per example, the point that fools the model.

# %%
ancra = models["TRADES-ANCRA"]
pgd = rv.attacks.PGD(eps=EPS, steps=20)
res = rv.evaluate.evaluate(ancra, sub, {"PGD-20 (model only)": pgd,
                                        "adaptive PGD-20": rv.attacks.Adaptive(attack=pgd)},
                           topk=(1,), seed=SEED, progress=False)
print(res.table())
rv.figures.plot_topk_table({"TRADES-ANCRA": res}, k=(1,))

# %% [markdown]
# The adaptive attack finds adversarial examples that plain PGD on the model misses: the
# gap between the two rows is robustness that was only masked gradients. Report the
# adaptive number.
#
# ## 2. The sanity checks
#
# `gradient_masking_report` runs the checks of Athalye et al. and flags the ones that fail.

# %%
for label in ("PGD-AT", "TRADES-ANCRA"):
    m = models[label]
    report = rv.evaluate.gradient_masking_report(
        m, (test.x[:100], test.y[:100]), eps=EPS, steps=10, more_steps=40,
        surrogate=rv.attacks.surrogate_of(m), square_queries=500, seed=SEED, progress=False)
    print(f"== {label}: {'FLAGGED ' + ', '.join(report.flags) if report.flagged else 'no flag'}")
    print(report.table())

# %% [markdown]
# A flag names the check that failed; an unflagged model passed every check at this size
# of evaluation (which is evidence, not proof, of honest robustness). The last five checks
# are the automatic flags of Croce & Hein's AutoAttack code: a randomized model (two
# forward passes differ), probabilities given as logits, zero input gradients, the
# black-box Square attack beating white-box PGD, and optimisation inside the forward pass.
#
# ## 3. AutoAttack, and the worst case over attacks
#
# Croce & Hein ("Reliable evaluation of adversarial robustness with an ensemble of diverse
# parameter-free attacks", ICML 2020) run four attacks in sequence, each on the examples
# the previous ones did not break: APGD-CE (100 iterations), APGD-T (100 iterations on
# each of 9 target classes), FAB-T and Square (5,000 queries). `rv.attacks.AutoAttack`
# runs them at those settings (`version="standard"`; the zoo's records hold its numbers on
# 500 images). On a CPU the last two cost minutes per 100 robust images, so here we run
# `version="fast"`: the first two attacks of the standard version, whose accuracy can
# only be at or above the standard one's.
#
# Robust accuracy against several attacks is a per-example worst case: an example counts
# as robust only if *no* attack breaks it. `result.worst_case()` computes it and says which
# attack broke how many examples first; the interval is the 95% Wilson interval of the
# number of examples, which is wide at this n.

# %%
aa_data = (test.x[:100], test.y[:100])
aa_fast = rv.attacks.AutoAttack(eps=EPS, version="fast")
aa = {"PGD-AT": rv.evaluate.evaluate(models["PGD-AT"], aa_data,
                                     {"PGD-20": pgd, "AutoAttack fast": aa_fast},
                                     topk=(1,), seed=SEED, progress=False)}
r = aa["PGD-AT"]
print(r.table())
worst = r.worst_case()
lo, hi = rv.figures.binomial_ci(worst.accuracy, worst.n)
print(f"\nworst case over {', '.join(worst.attacks)}: {100 * worst.accuracy:.1f}% "
      f"[{100 * lo:.1f}, {100 * hi:.1f}] on {worst.n} images; broken first by {worst.breakdown}")
gap = r.robust("PGD-20") - r.robust("AutoAttack fast")
print(f"PGD-20 minus AutoAttack fast: {100 * gap:+.1f} points "
      + ("(AutoAttack found examples PGD-20 missed)" if gap > 0 else
         "(PGD-20 was already as strong on these images)" if gap == 0 else
         "(PGD-20 broke examples AutoAttack missed: that is why the worst case is reported)"))
print()
print(r.card_text())
rv.figures.plot_topk_table(aa, k=(1,))

# %% [markdown]
# The evaluation card above is what a reader needs to trust the number: the threat model,
# each attack with its budget and implementation, how many images and which, the seeds,
# the interval and the machine. A PGD number far above the worst case would mean the PGD
# evaluation alone was too weak.
#
# ## 4. Transfer attacks
#
# Adversarial examples crafted on one model (rows) and tested on another (columns). A
# white-box attack (the diagonal) must be at least as strong as any transferred one.

# %%
tm = rv.evaluate.transfer_matrix({k: models[k] for k in ("NAT", "PGD-AT", "TRADES")}, sub,
                                 rv.attacks.PGD(eps=EPS, steps=10), seed=SEED, progress=False)
print(tm.table())
rv.figures.plot_transfer_matrix(tm)

# %% [markdown]
# Each column's lowest value should sit on the diagonal. Examples crafted on the natural
# model transfer poorly to the robust ones: their perturbations exploit features the robust
# models do not use.
#
# ## 5. Beyond the threat model: common corruptions
#
# An $L_\infty$ ball is one kind of shift. Hendrycks & Dietterich ("Benchmarking Neural
# Network Robustness to Common Corruptions and Perturbations", ICLR 2019) corrupt test
# images with noise, blur, weather and digital distortions at five severities and compare
# models by the corruption error relative to a baseline,
# $\mathrm{CE}^f_c = \sum_s E^f_{s,c} / \sum_s E^{\mathrm{base}}_{s,c}$ and mCE its mean over
# the corruption types. Types that cannot apply to 28x28 grey images are adapted or skipped,
# with the reason printed.

# %%
cres = rv.evaluate.corruption_accuracy({k: models[k] for k in ("NAT", "PGD-AT")},
                                       test.sample(100, seed=SEED), severities=(1, 3, 5),
                                       seed=SEED, progress=False)
print(cres.table(baseline="NAT"))
rv.figures.plot_corruptions(cres)

# %% [markdown]
# Adversarial training buys robustness inside the eps ball, not everywhere. On the teaching
# zoo PGD-AT loses most on the low-frequency, global changes (fog, frost, brightness,
# contrast: a robust model leans on coarse shape and local contrast, which these wash out)
# and gains on several blurs and elastic warps. A mCE
# above 100% means more errors than the natural model overall.
#
# ## Exercises
#
# 1. Run `gradient_masking_report` on the natural model. Which checks does it pass?
# 2. Attack TRADES-ANCRA with MIM through `Adaptive`. Is the gap the same as with PGD?

# %% tags=["solution"]
# Solution 2
mim = rv.attacks.MIM(eps=EPS, steps=20)
r = rv.evaluate.evaluate(ancra, sub, {"MIM": mim, "adaptive MIM": rv.attacks.Adaptive(attack=mim)},
                         topk=(1,), progress=False)
print(r.table())

# %% tags=["solution"]
# Solution 1
print(rv.evaluate.gradient_masking_report(models["NAT"], (test.x[:100], test.y[:100]), eps=EPS,
                                          steps=10, more_steps=40, progress=False).table())
