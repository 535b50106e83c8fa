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
# # 00 A tour of robustviz
#
# **You will learn to** load a model from the teaching zoo, read its feature taps, attack it
# with PGD and score the attack, draw its latent space with clean and adversarial points in
# one t-SNE map, watch the points move as the radius grows, compare with an adversarially
# trained model, and explore both with the latent-explorer widget.
#
# **Prerequisites:** none (this is the first notebook). **Run time:** about 1 minute on a
# 2-core CPU.
#
# Every step uses the public API only; the parameters cell picks the scale. Sentences
# marked ✓ below are checked against the numbers this notebook computes on your run; ✗
# would mean they do not hold there.
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

import robustviz as rv

S = rv.notebooks.setup(SCALE, seed=SEED)
EPS, test = S.eps, S.test
print(test.classes)

# %% [markdown]
# ## 1. Data and a model
#
# Images are float tensors in $[0,1]$, shape $(N, C, H, W)$; normalisation is the model's
# first layer, so attacks work in pixel space. The zoo's models are small CNNs trained on
# the teaching data; every model names its feature taps, among them `penultimate` (the
# latent space $z$) and `logits`.

# %%
nat = S.load("nat")
print(nat.layer_names)
with rv.models.Features(nat, ["penultimate", "logits"]) as tap:
    out = tap(test.x[:4])
{k: tuple(v.shape) for k, v in out.items()}

# %% [markdown]
# ## 2. Attack it
#
# PGD (Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR
# 2018) takes $K$ signed-gradient steps of size $a$ and projects back into the ball:
#
# $$x'_{k+1} = \Pi_{[0,1]}\,\Pi_{\|x'-x\|_\infty\le\epsilon}\big(x'_k + a\,\operatorname{sign}\nabla_{x}\mathrm{CE}(f(x'_k), y)\big)$$
#
# FGSM (Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR
# 2015) is the single step of size $\epsilon$.

# %%
pgd = rv.attacks.PGD(eps=EPS, steps=20)
sub = (test.x[:300], test.y[:300])
x_adv = pgd(nat, test.x[:256], test.y[:256])
change = float((x_adv - test.x[:256]).abs().max())
print(f"max |x_adv - x| = {change:.4f}, range [{float(x_adv.min()):.3f}, {float(x_adv.max()):.3f}]")
res = rv.evaluate.evaluate(nat, sub, {"fgsm": rv.attacks.FGSM(eps=EPS), "pgd20": pgd},
                           seed=SEED, progress=False)
print(res.table())
rv.notebooks.expect(change <= EPS + 1e-6 and 0 <= float(x_adv.min()) and float(x_adv.max()) <= 1,
                    "the PGD images stay in the eps-ball and in [0, 1]", max_change=change, eps=EPS)
rv.notebooks.expect(res.robust("pgd20") < res.clean[1] / 2,
                    "PGD-20 removes more than half of the natural model's accuracy",
                    clean=res.clean[1], pgd20=res.robust("pgd20"))
rv.notebooks.expect(res.robust("pgd20") <= res.robust("fgsm"),
                    "twenty projected steps are at least as strong as FGSM's one step",
                    fgsm=res.robust("fgsm"), pgd20=res.robust("pgd20"))

# %% [markdown]
# The perturbation stays inside the $\epsilon$-ball and $[0, 1]$, yet PGD removes most of the
# natural model's accuracy: it was never trained to resist such changes.
#
# ## 3. Its latent space, natural and adversarial
#
# One t-SNE map (van der Maaten & Hinton, "Visualizing Data using t-SNE", JMLR 2008) holds
# the clean points (dots) and the adversarial versions of the first 100 (crosses, coloured
# by their *true* class).

# %%
feats = rv.diagnostics.attacked_features(nat, sub, pgd, seed=SEED)
emb = rv.diagnostics.embed(feats.z_nat, feats.z_adv[:100], feats.y, y_adv=feats.y[:100],
                           probs=feats.probs_nat, probs_adv=feats.probs_adv[:100], seed=SEED)
rv.figures.plot_embedding(emb, class_names=test.classes, title="NAT: clean + PGD-20")

# %% [markdown]
# Which cluster does a cross sit in? `emb.cluster_of()` asks its 10 nearest clean dots in
# the map for their majority true class; we compare that with the cross's true class and
# with the class the model predicts for it.

# %%
crosses = emb.cluster_of()
y100, pred_adv = feats.y[:100].numpy(), feats.probs_adv[:100].argmax(1).numpy()
fooled = pred_adv != y100
in_own = float((crosses == y100).mean())
in_predicted = float((crosses[fooled] == pred_adv[fooled]).mean())
print(f"crosses in their own class's cluster: {in_own:.0%}; fooled crosses in the cluster of "
      f"the predicted class: {in_predicted:.0%} ({int(fooled.sum())} fooled)")
rv.notebooks.expect(in_own < 0.5 and in_predicted > 0.5,
                    "most crosses sit outside their own class's cluster, and most fooled ones "
                    "inside the cluster of the class the model now predicts",
                    in_own=in_own, in_predicted=in_predicted)

# %% [markdown]
# The crosses sit inside *other* classes' clusters: in latent space the attack has carried
# the examples over to the class the model now predicts.
#
# ## 4. Watch it move
#
# The map is fitted once; adversarial features at growing $\epsilon$ are *placed into the
# same map* with `transform`, so the pictures are comparable.

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 4))
moved_acc, moved_own = {}, {}
for ax, eps in zip(axes, [EPS / 4, EPS / 2, EPS]):
    f = rv.diagnostics.attacked_features(nat, (test.x[:100], test.y[:100]),
                                         rv.attacks.PGD(eps=eps, steps=10), seed=SEED)
    moved = emb.transform(f.z_adv, f.y, probs=f.probs_adv)
    moved_acc[eps], moved_own[eps] = f.robust_acc, emb.own_cluster_share(moved)
    rv.figures.plot_embedding(moved, ax=ax, class_names=test.classes, legend=False,
                              title=f"eps = {eps:.3f}: robust acc {f.robust_acc:.0%}, "
                                    f"{moved_own[eps]:.0%} in own cluster")
plt.show()
quarter, full = EPS / 4, EPS
rv.notebooks.expect(moved_own[quarter] > 0.5 and moved_own[full] < 0.25,
                    "at a quarter of the radius more than half of the points stay in their own "
                    "cluster; at the full radius fewer than a quarter do",
                    quarter=moved_own[quarter], half=moved_own[EPS / 2], full=moved_own[full])
rv.notebooks.expect(moved_own[quarter] >= moved_own[EPS / 2] >= moved_own[full]
                    and moved_acc[quarter] >= moved_acc[EPS / 2] >= moved_acc[full],
                    "the points leave their clusters as the robust accuracy falls: both shrink "
                    "as eps grows", **{f"acc_{e:.3f}": a for e, a in moved_acc.items()})

# %% [markdown]
# The larger the radius, the more points leave their own cluster, as the robust accuracy in
# the titles falls. *Question:* the map is fitted on clean features only. Why can a point
# the model still classifies correctly nevertheless sit outside its cluster in the map?
#
# ## 5. An adversarially trained model
#
# PGD-AT (Madry et al., 2018) trains on $\mathrm{CE}(f(x'), y)$ with $x'$ from PGD. Compare its
# accuracy and its map.

# %%
robust = S.load("pgd_at")
res_at = rv.evaluate.evaluate(robust, sub, {"fgsm": rv.attacks.FGSM(eps=EPS), "pgd20": pgd},
                              seed=SEED, progress=False)
print(res_at.table())
feats_at = rv.diagnostics.attacked_features(robust, sub, pgd, seed=SEED)
emb_at = rv.diagnostics.embed(feats_at.z_nat, feats_at.z_adv[:100], feats_at.y, y_adv=feats_at.y[:100],
                              probs=feats_at.probs_nat, probs_adv=feats_at.probs_adv[:100], seed=SEED)
rv.figures.plot_embedding(emb_at, class_names=test.classes, title="PGD-AT: clean + PGD-20")

# %%
in_own_at = emb_at.own_cluster_share()
clean_cost = res.clean[1] - res_at.clean[1]
print(f"clean accuracy NAT {res.clean[1]:.1%}, PGD-AT {res_at.clean[1]:.1%}; crosses in their "
      f"own cluster: NAT {in_own:.0%}, PGD-AT {in_own_at:.0%}")
rv.notebooks.expect(0 < clean_cost < 0.15,
                    "the robust model gives up some clean accuracy, less than 15 points",
                    nat=res.clean[1], pgd_at=res_at.clean[1])
rv.notebooks.expect(in_own_at > 0.5 and in_own_at > in_own + 0.3,
                    "most of the robust model's crosses stay in their own cluster, far more than "
                    "the natural model's", pgd_at=in_own_at, nat=in_own)

# %% [markdown]
# The robust model gives up some clean accuracy, but most of its crosses stay in their own
# cluster: the attack no longer carries them across.
#
# ## 6. Explore
#
# The latent explorer does all of the above interactively: pick the model, the layer, the
# attack and $\epsilon$; R-DIV (the ratio of the adversarial points' distance to their own
# class and to the other classes, Bui et al., "Understanding and Achieving Efficient
# Robustness with Adversarial Supervised Contrastive Learning", arXiv 2021; notebook 03)
# updates, and clicking a point shows its clean and adversarial images with both
# predictions. Where no live kernel runs (a static page), its first state shows as an image.

# %%
explorer = rv.widgets.LatentExplorer({"NAT": nat, "PGD-AT": robust}, test, dataset=S.dataset,
                                     eps=EPS, n_map=300, seed=SEED)
print(explorer.readout())
explorer

# %% [markdown]
# *Question:* move $\epsilon$ from 0 up to its maximum for each model. At which radius do
# the PGD-AT crosses start to leave their clusters, and how does that compare with the
# radius it was trained at?
#
# ## Exercises
#
# Write each answer in its cell, replacing `...`, then run the check below it: it says what
# is still wrong, not the answer.
#
# **Exercise 1.** One step or many? Compute the natural model's robust accuracy on
# `test.x[:100], test.y[:100]` under `rv.attacks.FGSM(eps=EPS)` and under
# `rv.attacks.PGD(eps=EPS, steps=10)`, with `rv.diagnostics.attacked_features(...,
# seed=SEED).robust_acc`. Answer with a dict `{"FGSM": ..., "PGD-10": ...}` of fractions in
# [0, 1]. Which attack moves more points out of their cluster in section 4's map, and why?

# %%
answer_1 = ...

# %% tags=["solution"]
answer_1 = {}
for name, atk in {"FGSM": rv.attacks.FGSM(eps=EPS), "PGD-10": rv.attacks.PGD(eps=EPS, steps=10)}.items():
    answer_1[name] = rv.diagnostics.attacked_features(nat, (test.x[:100], test.y[:100]), atk,
                                                      seed=SEED).robust_acc
print({k: f"{v:.0%}" for k, v in answer_1.items()})

# %%
rv.notebooks.exercise("00.1", answer_1, model=nat, x=test.x[:100], y=test.y[:100], eps=EPS, seed=SEED)

# %% [markdown]
# **Exercise 2.** Twice the radius. With the explorer, read R-DIV of both models under
# PGD at $\epsilon$ = `2 * EPS` (`explorer.set(model=..., eps=2 * EPS).rdiv`). Answer with a
# dict `{"NAT": ..., "PGD-AT": ...}`. Does the ordering of the two models stay the same as at
# `EPS`?

# %%
answer_2 = ...

# %% tags=["solution"]
answer_2 = {name: explorer.set(model=name, eps=2 * EPS).rdiv for name in ("NAT", "PGD-AT")}
print({k: round(v, 3) for k, v in answer_2.items()})

# %%
rv.notebooks.exercise("00.2", answer_2, explorer=explorer, eps=2 * EPS)
