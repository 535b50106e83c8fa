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
# Load a model from the teaching zoo, attack it, and watch its latent space move as the
# attack grows; then compare with an adversarially trained model and explore both with a
# widget. Every step uses the public API only; the parameters cell picks the scale.
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
# ## 1. Data and a model
#
# Images are float tensors in $[0,1]$, shape $(N, C, H, W)$; normalisation is the model's
# first layer, so attacks work in pixel space. The zoo's models are TinyCNNs trained on
# Fashion-MNIST; every model names the feature taps `penultimate` (the latent space $z$)
# and `logits`.

# %%
nat = load("nat")
print(nat.layer_names)
with rv.models.Features(nat, ["penultimate", "logits"]) as tap:
    out = tap(test.x[:4])
{k: tuple(v.shape) for k, v in out.items()}

# %% [markdown]
# ## 2. Attack it
#
# PGD (Madry et al., ICLR 2018) takes $K$ signed-gradient steps and projects back into the ball:
#
# $$x'_{k+1} = \Pi_{[0,1]}\,\Pi_{\|x'-x\|_\infty\le\epsilon}\big(x'_k + a\,\operatorname{sign}\nabla_{x}\mathrm{CE}(f(x'_k), y)\big)$$

# %%
pgd = rv.attacks.PGD(eps=EPS, steps=20)
sub = (test.x[:300], test.y[:300])
x_adv = pgd(nat, test.x[:256], test.y[:256])
print("max |x_adv - x| =", float((x_adv - test.x[:256]).abs().max()),
      " range:", float(x_adv.min()), float(x_adv.max()))
res = rv.evaluate.evaluate(nat, sub, {"fgsm": rv.attacks.FGSM(eps=EPS), "pgd20": pgd}, progress=False)
print(res.table())

# %% [markdown]
# The perturbation stays inside the $\epsilon$-ball and $[0, 1]$, yet PGD removes most of the
# natural model's accuracy: it was never trained to resist such changes.
#
# ## 3. Its latent space, natural and adversarial
#
# One t-SNE map holds clean points (dots) and adversarial ones (crosses, coloured by their
# true class).

# %%
feats = rv.diagnostics.attacked_features(nat, sub, pgd, seed=SEED)
emb = rv.diagnostics.embed(feats.z_nat, feats.z_adv[:100], feats.y, y_adv=feats.y[:100],
                           probs=feats.probs_nat, probs_adv=feats.probs_adv[:100], seed=SEED)
rv.figures.plot_embedding(emb, class_names=test.classes, title="NAT: clean + PGD-20")

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
for ax, eps in zip(axes, [EPS / 4, EPS / 2, EPS]):
    f = rv.diagnostics.attacked_features(nat, (test.x[:100], test.y[:100]),
                                         rv.attacks.PGD(eps=eps, steps=10), seed=SEED)
    moved = emb.transform(f.z_adv, f.y, probs=f.probs_adv)
    rv.figures.plot_embedding(moved, ax=ax, class_names=test.classes, legend=False,
                              title=f"eps = {eps:.3f}, robust acc {f.robust_acc:.0%}")
plt.show()

# %% [markdown]
# At a quarter of the radius more than half of the points stay in their cluster; at the
# full radius nearly all have left it, matching the falling robust accuracy in the titles.
#
# ## 5. An adversarially trained model
#
# PGD-AT trains on $\mathrm{CE}(f(x'), y)$ with $x'$ from PGD. Compare its accuracy and its map.

# %%
robust = load("pgd_at")
res_at = rv.evaluate.evaluate(robust, sub, {"fgsm": rv.attacks.FGSM(eps=EPS), "pgd20": pgd}, progress=False)
print(res_at.table())
feats_at = rv.diagnostics.attacked_features(robust, sub, pgd, seed=SEED)
emb_at = rv.diagnostics.embed(feats_at.z_nat, feats_at.z_adv[:100], feats_at.y, y_adv=feats_at.y[:100],
                              probs=feats_at.probs_nat, probs_adv=feats_at.probs_adv[:100], seed=SEED)
rv.figures.plot_embedding(emb_at, class_names=test.classes, title="PGD-AT: clean + PGD-20")

# %% [markdown]
# The robust model gives up a little clean accuracy, but most of its crosses stay in their
# own cluster: the attack no longer carries them across.
#
# ## 6. Explore
#
# The latent explorer does all of the above interactively: pick the model, the layer, the
# attack and $\epsilon$; R-DIV (notebook 03) updates, and clicking a point shows its clean
# and adversarial images with both predictions.

# %%
explorer = rv.widgets.LatentExplorer({"NAT": nat, "PGD-AT": robust}, test, eps=EPS, n_map=300)
print(explorer.readout())
explorer

# %% [markdown]
# ## Exercises
#
# 1. Replace PGD by `rv.attacks.FGSM(eps=EPS)` in section 4. Which moves points further, and why?
# 2. Set `explorer.eps = 0.2` for both models (`explorer.model = "PGD-AT"`). How do R-DIV
#    and the robust accuracy change?

# %% tags=["solution"]
# Solution 1: FGSM takes one step of size eps along the gradient's sign; PGD takes many
# projected steps and finds points further inside the wrong classes' clusters.
f_fgsm = rv.diagnostics.attacked_features(nat, (test.x[:100], test.y[:100]), rv.attacks.FGSM(eps=EPS), seed=SEED)
print(f"robust accuracy under FGSM {f_fgsm.robust_acc:.0%} vs PGD-10 {f.robust_acc:.0%}")

# %% tags=["solution"]
# Solution 2
for name in ("NAT", "PGD-AT"):
    view = explorer.set(model=name, eps=0.2)
    print(f"{name}: R-DIV {view.rdiv:.3f}, robust accuracy {view.robust_acc:.0%}")
