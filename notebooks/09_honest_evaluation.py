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
# **You will learn to** recognise gradient masking and defeat it with an adaptive attack;
# run the sanity checks of an honest evaluation; report robust accuracy as a per-example
# worst case over attacks, with AutoAttack, a confidence interval and an evaluation card;
# read a transfer-attack matrix; and test robustness beyond the threat model on common
# corruptions.
#
# **Prerequisites:** 01 (attacks), 02 (adversarial training), 05 (feature geometry: the
# TRADES-ANCRA model). **Run time:** about 2 minutes on a 2-core CPU.
#
# **Data:** Fashion-MNIST; this notebook needs the zoo's TRADES-ANCRA model, which the
# digits zoo (the fallback where Fashion-MNIST is absent) does not have. `robustviz data
# fetch fashion-mnist` gets it (the Colab cell does).
#
# A defense is only as robust as the strongest attack it was tested against. Athalye,
# Carlini & Wagner ("Obfuscated Gradients Give a False Sense of Security", ICML 2018) and
# Carlini et al. ("On Evaluating Adversarial Robustness", arXiv 2019) list the checks:
# accuracy must fall to about 0 at a large $\epsilon$, more steps must not help the model, a
# white-box attack must beat a transferred one, and a model whose decision is not
# differentiable must be attacked through a differentiable stand-in (an *adaptive* attack;
# Tramèr, Carlini, Brendel & Madry, "On Adaptive Attacks to Adversarial Example Defenses",
# NeurIPS 2020). Sentences marked ✓ are checked against the numbers this notebook computes
# on your run; ✗ would mean they do not hold there.
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
models = {"NAT": S.load("nat"), "PGD-AT": S.load("pgd_at"), "TRADES": S.load("trades"),
          "TRADES-ANCRA": S.load("trades_ancra")}
sub = (test.x[:200], test.y[:200])

# %% [markdown]
# ## 1. A masked model: reverse attention under plain and adaptive PGD
#
# TRADES-ANCRA (Zhou et al., "Robust Representation Learning via Asymmetric Negative
# Contrast and Reverse Attention", arXiv 2023; TRADES: Zhang et al., "Theoretically
# Principled Trade-off between Robustness and Accuracy", ICML 2019) weights the last
# features by the classifier row of the class an argmax picks at test time. PGD gets no
# gradient through that choice (an argmax is flat almost everywhere), only through the rest
# of the network, so it cannot see how a perturbation would change the chosen row, and
# plain PGD can *overestimate* robustness. The model's `surrogate()` replaces the argmax
# by a softmax mixture; `Adaptive` attacks both and keeps, per example, the point that
# fools the model.

# %%
ancra = models["TRADES-ANCRA"]
pgd = rv.attacks.PGD(eps=EPS, steps=20)
res = rv.evaluate.evaluate(ancra, sub, {"PGD-20 (model only)": pgd,
                                        "adaptive PGD-20": rv.attacks.Adaptive(attack=pgd)},
                           topk=(1,), seed=SEED, progress=False)
print(res.table())
rv.figures.plot_topk_table({"TRADES-ANCRA": res}, k=(1,))

# %%
plain, adaptive = res.robust("PGD-20 (model only)"), res.robust("adaptive PGD-20")
rv.notebooks.expect(plain - adaptive >= 0.03,
                    "the adaptive attack (per image, the better of PGD on the model and PGD "
                    "through the surrogate) breaks at least 3 points more of the images than plain "
                    "PGD on the model",
                    plain=plain, adaptive=adaptive)

# %% [markdown]
# Keeping the better of two attacks per image can gain points even against a model with
# honest gradients, so this gap alone does not prove masking; section 2's transfer check
# isolates the surrogate's part. Report the adaptive number. The playground shows one of
# the images that plain PGD leaves correct and the adaptive attack breaks. Its first state
# is PGD on the model itself; its second model is the surrogate, whose bars show the
# *surrogate's* prediction. The line printed below the cell gives the real model's
# prediction on the surrogate's adversarial image: that is what the adaptive attack scores.

# %%
surrogate = rv.attacks.surrogate_of(ancra)
playground = rv.widgets.AttackPlayground({"TRADES-ANCRA": ancra, "TRADES-ANCRA surrogate": surrogate},
                                         sub, dataset=S.dataset, eps=EPS, steps=20, seed=SEED,
                                         class_names=test.classes)
masked = (res.correct_top1("PGD-20 (model only)") & ~res.correct_top1("adaptive PGD-20")).nonzero()
shown = None
for i in masked.flatten().tolist():
    on_model = playground.set(model="TRADES-ANCRA", index=i)
    on_surrogate = playground.set(model="TRADES-ANCRA surrogate", index=i)
    with torch.no_grad():
        pred = int(ancra(on_surrogate.x_adv[None]).argmax())
    if not on_model.fooled and test.classes[pred] != on_model.label:
        shown = i
        break
rv.notebooks.expect(shown is not None,
                    "an image exists that PGD on the model leaves correct while PGD on the "
                    "surrogate produces an image the real model gets wrong", image=shown)
if shown is not None:
    print(f"image {shown} ({on_model.label}): PGD on the model -> the model says "
          f"{on_model.top5_adv[0][0]}; PGD on the surrogate -> the model says {test.classes[pred]}")
playground.set(model="TRADES-ANCRA", index=shown or 0)
playground

# %% [markdown]
# *Look and answer:* switch the playground between the model and its surrogate (and try
# other images, attacks and radii). How do the two perturbations differ? Why does PGD on
# the model itself hardly change its prediction?
#
# ## 2. The sanity checks
#
# `gradient_masking_report` runs the checks of Athalye et al. and flags the ones that fail.
# The last five are the automatic flags of Croce & Hein's AutoAttack code: a randomized
# model (two forward passes differ), probabilities given as logits, zero input gradients,
# the black-box Square attack (Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a
# query-efficient black-box adversarial attack via random search", ECCV 2020) beating
# white-box PGD, and optimisation inside the forward pass.

# %%
reports = {}
for label in ("PGD-AT", "TRADES-ANCRA"):
    m = models[label]
    reports[label] = rv.evaluate.gradient_masking_report(
        m, (test.x[:100], test.y[:100]), eps=EPS, steps=10, more_steps=20,
        surrogate=rv.attacks.surrogate_of(m), square_queries=250, seed=SEED, progress=False)
    print(f"== {label}: {'FLAGGED ' + ', '.join(reports[label].flags) if reports[label].flagged else 'no flag'}")
    print(reports[label].table())

# %%
rv.notebooks.expect(reports["TRADES-ANCRA"].flagged and not reports["PGD-AT"].flagged,
                    "the checks flag the masked model and not PGD-AT",
                    ancra_flags=", ".join(reports["TRADES-ANCRA"].flags) or "none",
                    pgd_at_flags=", ".join(reports["PGD-AT"].flags) or "none")
tr_check = reports["TRADES-ANCRA"]["transfer"].values
rv.notebooks.expect(tr_check["transfer"] < tr_check["white_box"],
                    "on TRADES-ANCRA, PGD-10 run on the surrogate alone and transferred leaves lower "
                    "accuracy than PGD-10 on the model itself: the model's own gradient misses "
                    "examples a stand-in's gradient finds (masked gradients)",
                    transfer=tr_check["transfer"], white_box=tr_check["white_box"],
                    n=reports["TRADES-ANCRA"].n)

# %% [markdown]
# A flag names the check that failed; an unflagged model passed every check at this size
# of evaluation, which is evidence, not proof, of honest robustness.
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
# attack broke how many examples first; the interval is the 95% Wilson interval (Wilson,
# "Probable Inference, the Law of Succession, and Statistical Inference", JASA 1927) of
# the number of examples.

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

# %%
rv.notebooks.expect(worst.accuracy <= min(r.robust("PGD-20"), r.robust("AutoAttack fast")),
                    "the worst case is at or below every single attack's accuracy",
                    worst=worst.accuracy, pgd20=r.robust("PGD-20"), autoattack=r.robust("AutoAttack fast"))
rv.notebooks.expect(hi - lo > 0.1,
                    "on 100 images the 95% interval is more than 10 points wide",
                    low=lo, high=hi, n=worst.n)

# %% [markdown]
# The evaluation card above is what a reader needs to trust the number: the threat model,
# each attack with its budget and implementation, how many images and which, the seeds,
# the interval and the machine. *Question:* how many images would you need to halve the
# interval's width (exercise 2 computes the interval)?
#
# ## 4. Transfer attacks
#
# Adversarial examples crafted on one model (rows) and tested on another (columns); Papernot,
# McDaniel & Goodfellow ("Transferability in Machine Learning: from Phenomena to Black-Box
# Attacks using Adversarial Samples", arXiv 2016) studied how far they carry. A white-box
# attack (the diagonal) must be at least as strong as any transferred one: a column whose
# lowest value sits off the diagonal is a sign of gradient masking.

# %%
tm = rv.evaluate.transfer_matrix({k: models[k] for k in ("NAT", "PGD-AT", "TRADES")}, sub,
                                 rv.attacks.PGD(eps=EPS, steps=10), seed=SEED, progress=False)
print(tm.table())
rv.figures.plot_transfer_matrix(tm)

# %%
acc = {(s, t): tm.accuracy[i][j] for i, s in enumerate(tm.names) for j, t in enumerate(tm.names)}
rv.notebooks.expect(all(acc[t, t] <= min(acc[s, t] for s in tm.names) for t in tm.names),
                    "each column's lowest value sits on the diagonal (white-box is the strongest)",
                    **{f"white_box_{t}": acc[t, t] for t in tm.names})
clean = dict(zip(tm.names, tm.clean))
rv.notebooks.expect(all(acc["NAT", t] > clean[t] - 0.05 for t in ("PGD-AT", "TRADES")),
                    "examples crafted on the natural model transfer poorly to the robust ones: "
                    "they cost each robust model less than 5 points of its clean accuracy",
                    **{f"{t}_clean": clean[t] for t in ("PGD-AT", "TRADES")},
                    **{f"{t}_from_NAT": acc["NAT", t] for t in ("PGD-AT", "TRADES")})

# %% [markdown]
# *Question:* the natural model's perturbations exploit features the robust models do not
# use. What do the transfers between the two robust models (PGD-AT and TRADES) say about
# the features *they* share?
#
# ## 5. Beyond the threat model: common corruptions
#
# An $L_\infty$ ball is one kind of shift. Hendrycks & Dietterich ("Benchmarking Neural
# Network Robustness to Common Corruptions and Perturbations", ICLR 2019) corrupt test
# images with noise, blur, weather and digital distortions at five severities and compare
# models by the corruption error relative to a baseline,
# $\mathrm{CE}^f_c = \sum_s E^f_{s,c} / \sum_s E^{\mathrm{base}}_{s,c}$ and mCE its mean over
# the corruption types. Types that cannot apply to the images (28x28 grey ones at teaching
# scale) are adapted or skipped,
# with the reason printed.

# %%
cres = rv.evaluate.corruption_accuracy({k: models[k] for k in ("NAT", "PGD-AT")},
                                       test.sample(100, seed=SEED), severities=(1, 3, 5),
                                       seed=SEED, progress=False)
print(cres.table(baseline="NAT"))
rv.figures.plot_corruptions(cres)

# %%
ce = cres.corruption_errors("PGD-AT", "NAT")
worse = sorted((c for c, v in ce.items() if v > 1), key=ce.get, reverse=True)
better = sorted((c for c, v in ce.items() if v < 1), key=ce.get)
print(f"PGD-AT makes more errors than NAT on {len(worse)} types (worst first): {', '.join(worse)}")
print(f"and fewer on {len(better)} (best first): {', '.join(better)}")
mce = cres.mce("PGD-AT", "NAT")
rv.notebooks.expect(len(worse) > 0 and len(better) > 0,
                    "adversarial training is not robustness everywhere: PGD-AT makes more errors "
                    "than NAT on some corruption types and fewer on others",
                    worse=len(worse), better=len(better), mce=mce)

# %% [markdown]
# Adversarial training buys robustness inside the $\epsilon$-ball, not everywhere: the
# lists above are the corruption types where PGD-AT's corruption error is above and below
# the natural model's. An mCE above 100% means more errors than the natural model over the
# types on average. *Question:* sort the types of each list into families: noise (gaussian,
# shot, impulse, speckle), blur (defocus, glass, motion, zoom, gaussian), weather (snow,
# frost, fog, spatter) and digital (brightness, contrast, elastic, pixelate, JPEG). Does
# one family land wholly in one list, or do its members split (compare the three noises)?
# With 100 images and three severities, which of the smaller differences in the table
# would you trust?
#
# ## Exercises
#
# Write each answer in its cell, replacing `...`, then run the check below it: it says what
# is still wrong, not the answer.
#
# **Exercise 1.** Another attack, the same masking. Attack TRADES-ANCRA on the first 100
# images of `sub` with `rv.attacks.MIM(eps=EPS, steps=10)`, once plainly and once through
# `rv.attacks.Adaptive`, scored with `rv.evaluate.evaluate(..., seed=SEED)`. Answer with
# the masked part: plain MIM's robust top-1 accuracy minus the adaptive one, a float in
# [0, 1]. Is it about the gap PGD showed in section 1?

# %%
answer_1 = ...

# %% tags=["solution"]
mim = rv.attacks.MIM(eps=EPS, steps=10)
r_mim = rv.evaluate.evaluate(ancra, (sub[0][:100], sub[1][:100]),
                             {"MIM": mim, "adaptive MIM": rv.attacks.Adaptive(attack=mim)},
                             topk=(1,), seed=SEED, progress=False)
print(r_mim.table())
answer_1 = r_mim.robust("MIM") - r_mim.robust("adaptive MIM")

# %%
rv.notebooks.exercise("09.1", answer_1, model=ancra, x=sub[0][:100], y=sub[1][:100], eps=EPS, seed=SEED)

# %% [markdown]
# **Exercise 2.** An interval. Compute the 95% Wilson interval of PGD-AT's robust accuracy
# under PGD-20 *alone* on the 100 images of section 3 (the result `r`), as a tuple
# `(low, high)` of fractions. Then find how many images (with the same accuracy) would
# make it half as wide.

# %%
answer_2 = ...

# %% tags=["solution"]
answer_2 = rv.figures.binomial_ci(r.robust("PGD-20"), r.n)


def width_at(n):
    low, high = rv.figures.binomial_ci(r.robust("PGD-20"), n)
    return high - low


n_half = next(n for n in range(r.n, 100 * r.n) if width_at(n) <= width_at(r.n) / 2)
print(f"[{answer_2[0]:.3f}, {answer_2[1]:.3f}], width {width_at(r.n):.3f}; "
      f"half as wide from about {n_half} images")

# %%
rv.notebooks.exercise("09.2", answer_2, result=r, attack="PGD-20")

# %% [markdown]
# **Exercise 3.** The best transfer. From the transfer matrix `tm` of section 4, find for
# each target model the *other* model whose adversarial examples hurt it most (leave it with
# the lowest accuracy). Answer with a dict `{target: source}` over `tm.names`, e.g.
# `{"NAT": "TRADES", ...}`.

# %%
answer_3 = ...

# %% tags=["solution"]
answer_3 = {}
for j, target in enumerate(tm.names):
    others = [(tm.accuracy[i][j], source) for i, source in enumerate(tm.names) if source != target]
    answer_3[target] = min(others)[1]
print(answer_3)

# %%
rv.notebooks.exercise("09.3", answer_3, transfer=tm)
