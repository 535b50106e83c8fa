# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A tour of robustviz
#
# Load a data set, train a small classifier, attack it, and watch its latent space move as the attack grows. Every step uses the public API only; the parameters cell below picks the scale.

# %%
# Parameters: "teach" runs on a laptop CPU in minutes; "paper" needs a GPU.
SCALE = "teach"
SEED = 0
EPS = 0.1            # Linf radius in pixel units (Fashion-MNIST teaching default)
if SCALE == "teach":
    N_TRAIN, N_TEST, EPOCHS, MODEL = 5_000, 500, 2, "tinycnn"
else:
    N_TRAIN, N_TEST, EPOCHS, MODEL = None, 10_000, 20, "smallcnn"

# %% [markdown]
# ## 1. Data
#
# Images are float tensors in $[0,1]$, shape $(N, C, H, W)$. Normalisation is the model's first layer, so attacks work in pixel space. `n=` takes a class-stratified, seeded subset.

# %%
import robustviz as rv

DATA = "fashion-mnist" if rv.data.available("fashion-mnist") else "digits"
train = rv.data.load(DATA, "train", n=N_TRAIN if DATA == "fashion-mnist" else None, seed=SEED)
test = rv.data.load(DATA, "test", n=min(N_TEST, rv.data.info(DATA).sizes["test"]), seed=SEED)
print(DATA, train.x.shape, test.x.shape, train.classes)

# %% [markdown]
# ## 2. A model and its feature taps
#
# `build` gives a network whose first layer is `Normalize`. `Features` taps named layers; every model names `penultimate` (the latent space $z$) and `logits` ($f$).

# %%
model = rv.models.build(MODEL, num_classes=train.num_classes, in_channels=train.shape[0],
                        input_size=train.shape[1:], mean=train.mean, std=train.std, seed=SEED)
print(model.layer_names)
with rv.models.Features(model, ["penultimate", "logits"]) as tap:
    out = tap(test.x[:4])
{k: tuple(v.shape) for k, v in out.items()}

# %% [markdown]
# ## 3. Natural training
#
# The one `Trainer` runs every defense; NAT minimises $\mathrm{CE}(f(x), y)$. `bf16=True` turns on bfloat16 autocast (3-4x faster on a recent CPU). The run directory is resumable and rebuilds the model.

# %%
nat = rv.train.Trainer(defense={"name": "nat"}, epochs=EPOCHS, optimizer="adam", lr=1e-3,
                       weight_decay=0.0, schedule="constant", batch_size=128, eps=EPS,
                       val_size=500, seed=SEED)
nat.fit(model, train, val=test, run_dir="runs/tour_nat")
nat.history_[-1]

# %% [markdown]
# ## 4. Attack it
#
# PGD takes $K$ signed-gradient steps and projects back into the ball:
#
# $$x'_{k+1} = \Pi_{[0,1]}\,\Pi_{\|x'-x\|_\infty\le\epsilon}\big(x'_k + a\,\mathrm{sign}\,\nabla_{x}\mathrm{CE}(f(x'_k), y)\big)$$

# %%
pgd = rv.attacks.PGD(eps=EPS, step_size=EPS / 4, steps=20)
x, y = test.x[:512], test.y[:512]
x_adv = pgd(model, x, y)
print("max |x_adv - x| =", float((x_adv - x).abs().max()), " range:", float(x_adv.min()), float(x_adv.max()))
res = rv.evaluate.evaluate(model, test, {"fgsm": rv.attacks.FGSM(eps=EPS), "pgd20": pgd}, progress=False)
print(res.table())

# %% [markdown]
# ## 5. Its latent space, natural and adversarial
#
# One t-SNE map holds clean points (dots) and adversarial ones (crosses, coloured by their true class). Adversarial points of a natural model land in other classes' clusters.

# %%
feats = rv.diagnostics.attacked_features(model, test, pgd, seed=SEED)
emb = rv.diagnostics.embed(feats.z_nat, feats.z_adv[:100], feats.y, y_adv=feats.y[:100],
                           probs=feats.probs_nat, probs_adv=feats.probs_adv[:100], seed=SEED)
rv.figures.set_style("notebook")
rv.figures.plot_embedding(emb, class_names=test.classes, title="NAT: clean + PGD-20")

# %% [markdown]
# ## 6. Watch it move
#
# The map is fitted once; adversarial features at growing $\epsilon$ are *placed into the same map* with `transform`, so the pictures are comparable.

# %%
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 3, figsize=(13, 4))
for ax, eps in zip(axes, [EPS / 4, EPS / 2, EPS]):
    atk = rv.attacks.PGD(eps=eps, step_size=eps / 4, steps=10)
    f = rv.diagnostics.attacked_features(model, (test.x[:100], test.y[:100]), atk, seed=SEED)
    moved = emb.transform(f.z_adv, f.y, probs=f.probs_adv)
    rv.figures.plot_embedding(moved, ax=ax, class_names=test.classes, legend=False,
                              title=f"eps = {eps:.3f}, robust acc {f.robust_acc:.0%}")
fig

# %% [markdown]
# ## 7. An adversarially trained model
#
# PGD-AT (Madry et al.) trains on $\mathrm{CE}(f(x'), y)$ with $x'$ from PGD. Compare its accuracy and its map.

# %%
robust = rv.models.build(MODEL, num_classes=train.num_classes, in_channels=train.shape[0],
                         input_size=train.shape[1:], mean=train.mean, std=train.std, seed=SEED)
at = rv.train.Trainer(defense={"name": "pgd_at", "eps": EPS, "step_size": EPS / 4, "steps": 5},
                      epochs=EPOCHS, optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="constant",
                      batch_size=128, eps=EPS, val_size=500, seed=SEED)
at.fit(robust, train, val=test, run_dir="runs/tour_pgd_at")
res_at = rv.evaluate.evaluate(robust, test, {"fgsm": rv.attacks.FGSM(eps=EPS), "pgd20": pgd}, progress=False)
print(res_at.table())
feats_at = rv.diagnostics.attacked_features(robust, test, pgd, seed=SEED)
emb_at = rv.diagnostics.embed(feats_at.z_nat, feats_at.z_adv[:100], feats_at.y, y_adv=feats_at.y[:100],
                              probs=feats_at.probs_nat, probs_adv=feats_at.probs_adv[:100], seed=SEED)
rv.figures.plot_embedding(emb_at, class_names=test.classes, title="PGD-AT: clean + PGD-20")

# %% [markdown]
# ## Exercises
#
# 1. Raise `EPS` to 0.2: how far does PGD-AT's accuracy fall, and does NAT's reach 0?
# 2. Replace PGD by `rv.attacks.FGSM(eps=EPS)` in section 6. Which moves points further, and why?
# 3. Train with `defense={"name": "trades", "beta": 6, "eps": EPS}` and compare its map with PGD-AT's.
# 4. Use `method="umap"` in `embed`: what is kept, what changes?

# %% tags=["solution"]
# Solution 2: FGSM takes one step of size eps along the gradient's sign; PGD takes many
# smaller projected steps and finds points further inside the wrong classes' clusters.
fgsm = rv.attacks.FGSM(eps=EPS)
f_fgsm = rv.diagnostics.attacked_features(model, (test.x[:100], test.y[:100]), fgsm, seed=SEED)
print(f"robust accuracy under FGSM {f_fgsm.robust_acc:.0%} vs PGD-10 {f.robust_acc:.0%}")
