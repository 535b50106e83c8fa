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
# # Robust pretraining: SimCLR, AdvCL and ASCL pretraining, then finetuning
#
# Can an encoder learn robust features *before* it sees the task's labels? Fan et al.
# ("When Does Contrastive Learning Preserve Adversarial Robustness from Pretraining to
# Finetuning?", NeurIPS 2021, AdvCL) pretrain with a contrastive loss over several views of
# each image, one of them adversarial, and then finetune a classifier on top. Adversarial
# supervised contrastive pretraining (ASCL pretraining, Machine Learning 2023) adds labels
# to the pretraining. This notebook builds the views, pretrains three encoders with the one
# `Trainer`, and compares them after standard linear (SLF), adversarial linear (ALF) and
# adversarial full (AFF) finetuning.

# %%
# Parameters: "teach" runs on a laptop CPU in minutes; "paper" needs a GPU.
SCALE = "teach"
SEED = 0
EPS = 0.1            # Linf radius in pixel units (Fashion-MNIST teaching default)
if SCALE == "teach":
    N_TRAIN, N_TEST, EPOCHS, FT_EPOCHS, MODEL = 1_500, 300, 2, 1, "tinycnn"
else:
    N_TRAIN, N_TEST, EPOCHS, FT_EPOCHS, MODEL = None, 10_000, 30, 10, "tinycnn"

# %%
import matplotlib.pyplot as plt
import torch

import robustviz as rv

DATA = "fashion-mnist" if rv.data.available("fashion-mnist") else "digits"
train = rv.data.load(DATA, "train", n=N_TRAIN if DATA == "fashion-mnist" else None, seed=SEED)
test = rv.data.load(DATA, "test", n=min(N_TEST, rv.data.info(DATA).sizes["test"]), seed=SEED)
RADIUS = 8.0 if train.shape[-1] >= 16 else 2.0      # HFC threshold, in frequency-index units
print(DATA, train.x.shape, test.x.shape)


def new_model():
    return rv.models.build(MODEL, num_classes=train.num_classes, in_channels=train.shape[0],
                           input_size=train.shape[1:], mean=train.mean, std=train.std, seed=SEED)


# %% [markdown]
# ## 1. Views
#
# SimCLR (Chen et al. 2020) contrasts two random augmentations $t_1(x), t_2(x)$: random
# resized crop, flip, colour jitter and grayscale, here as batched tensor operations. On
# one-channel images saturation, hue and grayscale do nothing; brightness and contrast apply.
#
# AdvCL adds the **high-frequency component** of the image. With $F = \mathrm{fftshift}(\mathrm{FFT}_2(x))$
# and a radius $r$,
#
# $$x_{\mathrm{HFC}} = \mathrm{Re}\,\mathrm{IFFT}_2\big(\mathrm{ifftshift}(F \cdot \mathbb 1[\|\omega\| \ge r])\big),\qquad x_{\mathrm{LFC}} = x - x_{\mathrm{HFC}}.$$

# %%
x = test.x[:6]
g = torch.Generator().manual_seed(SEED)
aug1 = rv.data.simclr_augment(x, generator=g, crop_scale=(0.3, 1.0))
aug2 = rv.data.simclr_augment(x, generator=g, crop_scale=(0.3, 1.0))
lfc, hfc = rv.data.frequency_split(x, radius=RADIUS)


def show_rows(rows, titles, cmap="gray"):
    fig, axes = plt.subplots(len(rows), rows[0].shape[0], figsize=(1.4 * rows[0].shape[0], 1.5 * len(rows)))
    for r, (imgs, title) in enumerate(zip(rows, titles)):
        for c in range(imgs.shape[0]):
            img = imgs[c].permute(1, 2, 0).squeeze(-1).numpy()
            axes[r, c].imshow(img, cmap=cmap)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(title, rotation=0, ha="right", va="center")
    return fig


show_rows([x, aug1, aug2, lfc, hfc], ["x", "t1(x)", "t2(x)", "LFC", "HFC"]);

# %% [markdown]
# ## 2. SimCLR: the non-robust baseline
#
# NT-Xent over the $2B$ embeddings $h$ (projection head on the penultimate features), cosine
# similarity $s$, temperature $\tau = 0.5$: for anchor $i$ with positive $p(i)$ (the other view
# of the same image),
#
# $$\ell_i = -\log \frac{\exp(s_{i,p(i)}/\tau)}{\sum_{a\ne i}\exp(s_{ia}/\tau)},\qquad L = \frac1{2B}\sum_i \ell_i .$$
#
# It is a loss term like every defense, run by the same `Trainer`; it never reads the labels.

# %%
AUG = {"crop_scale": [0.3, 1.0], "jitter": [0.4, 0.4, 0.0, 0.0], "head": "mlp", "head_dim": 64}
pre = dict(epochs=EPOCHS, optimizer="adam", lr=2e-3, weight_decay=0.0, schedule="cosine", batch_size=256,
           attack_bn="train", val_attack=None, seed=SEED, progress=False)
simclr = new_model()
rv.train.Trainer(defense={"name": "ntxent", "views": ["aug1", "aug2"], **AUG}, **pre).fit(
    simclr, train, run_dir="runs/nb06_simclr")

# %% [markdown]
# ## 3. The adversarial view
#
# AdvCL's adversarial view is built on the *un-augmented* image: $\delta$ maximises the
# contrastive loss of the views, by PGD through the attack core's custom-loss path
# (`FeatureLoss`):
#
# $$\delta = \arg\max_{\|\delta\|_\infty \le \epsilon} \; L_{\mathrm{NT\text{-}Xent}}\big(t_1(x), t_2(x), x + \delta\big).$$
#
# Here, by hand, against the SimCLR encoder's penultimate features:

# %%
with torch.no_grad():
    z1 = rv.models.extract(simclr, aug1, "penultimate")["penultimate"]
    z2 = rv.models.extract(simclr, aug2, "penultimate")["penultimate"]


def contrastive(feats, y):
    return rv.defenses.nt_xent([z1, z2, feats["penultimate"]], tau=0.5)


atk = rv.attacks.PGD(eps=EPS, step_size=EPS / 4, steps=10, loss=rv.attacks.FeatureLoss(contrastive))
x_adv = atk(simclr, x, torch.zeros(len(x), dtype=torch.long))
show_rows([x, x_adv, (x_adv - x) / (2 * EPS) + 0.5], ["x", "x + delta", "delta"]);

# %% [markdown]
# ## 4. AdvCL and ASCL pretraining
#
# **AdvCL** contrasts four views, $t_1(x), t_2(x), x+\delta, x_{\mathrm{HFC}}$, and adds
# $\lambda = 0.2$ times an adversarial cross-entropy on **ClusterFit** pseudo-labels: K-means
# on the normalised features of the SimCLR encoder for several $K$, one linear head per $K$:
#
# $$L_{\mathrm{AdvCL}} = L_{\mathrm{NT\text{-}Xent}}(t_1(x), t_2(x), x+\delta, x_{\mathrm{HFC}}) + \lambda\,\frac1{|\mathcal K|}\sum_{K} \mathrm{CE}\big(g_K(f(x+\delta_{ce})), \hat y_K\big).$$
#
# **ASCL pretraining** (Machine Learning 2023) uses the labels:
# $L = L_{\mathrm{AT}} + \lambda_1 L_{\mathrm{CL}}(\tilde x_i, \tilde x_j + \delta_{\mathrm{CL}}) + \lambda_2 L_{\mathrm{ASCL}}(\tilde x_i, x + \delta_{\mathrm{ASCL}})$
# with a label-free attack on the NT-Xent term and a label-based attack on the supervised
# contrastive term ($\lambda_1 = 0.5$, $\lambda_2 = 0.2$).

# %%
fit = rv.defenses.cluster_fit(simclr, train.x, ks=(10, 50), seed=SEED, source="runs/nb06_simclr")
fit.save("runs/nb06_simclr/clusterfit.safetensors")
print({k: torch.bincount(v).tolist()[:10] for k, v in fit.labels.items()})

attack = {"eps": EPS, "step_size": EPS * 0.4, "steps": 3}
advcl = new_model()
rv.train.Trainer(defense={"name": "advcl", "radius": RADIUS, "clusterfit": "runs/nb06_simclr/clusterfit.safetensors",
                          **attack, **AUG}, **pre).fit(advcl, train, run_dir="runs/nb06_advcl")
ascl = new_model()
rv.train.Trainer(defense={"name": "ascl_pretrain", **attack, **AUG}, **pre).fit(ascl, train, run_dir="runs/nb06_ascl")

# %% [markdown]
# ## 5. Finetuning: SLF, ALF, AFF
#
# A fresh linear head on the encoder. **SLF**: frozen encoder, clean CE; **ALF**: frozen
# encoder, TRADES on the head; **AFF**: every weight, TRADES. Each is the same `Trainer`
# with a different defense and a frozen or trainable encoder. We report clean accuracy (SA),
# PGD-20 accuracy (RA) at $\epsilon = 0.1$, and (at paper scale) AutoAttack.

# %%
trades = {"name": "trades", "beta": 6.0, "eps": EPS, "step_size": EPS / 3, "steps": 3}
defenses = {"slf": {"name": "nat"}, "alf": trades, "aff": trades}
rows, finetuned = [], {}
for name, enc in [("SimCLR", simclr), ("AdvCL", advcl), ("ASCL", ascl)]:
    for mode, defense in defenses.items():
        model = finetuned[name, mode] = rv.train.prepare_finetune(enc, mode)
        rv.train.Trainer(defense=defense, epochs=FT_EPOCHS, lr=0.1 if mode != "aff" else 0.01,
                         weight_decay=0.0, schedule="cosine", batch_size=256, val_attack=None, seed=SEED,
                         progress=False).fit(model, train)
        res = rv.train.evaluate_finetuned(model, test, eps=EPS, aa_n=0 if SCALE == "teach" else 1000)
        rows.append({"pretraining": name, "finetuning": mode.upper(), "SA": 100 * res["clean_acc"],
                     "RA (PGD-20)": 100 * res["pgd20_acc"], "AA": 100 * res.get("aa_acc", float("nan"))})
try:
    import pandas as pd
    table = pd.DataFrame(rows).round(1)
except ImportError:
    table = rows
table

# %% [markdown]
# The SLF rows measure how robust the *features* are: the head is trained on clean data only,
# so any robustness comes from pretraining. SimCLR's features are not robust; AdvCL's and
# ASCL's are. Comparing SLF with ALF on the same frozen features is the linear separability
# test of ASCL pretraining (Machine Learning 2023).
#
# ## 6. t-SNE of the features: SimCLR vs AdvCL
#
# Clean penultimate features of the test images, and adversarial ones (PGD against the SLF
# classifier) as crosses. The encoders above saw 1,500 images for two epochs; the teaching
# zoo holds the same pipelines run on 20,000 images (`simclr_slf`, `advcl_slf`,
# `ascl_pretrain_slf`: `scripts/train_zoo.py`, minutes on a CPU), and we use those where
# they are available.

# %%
if SCALE == "teach" and DATA == "fashion-mnist":
    tsne_models = {"SimCLR": rv.zoo.load("simclr_slf"), "AdvCL": rv.zoo.load("advcl_slf")}
    for name in ["simclr_slf", "advcl_slf", "ascl_pretrain_slf"]:
        ev = rv.zoo.info(name)["eval"]
        print(f"zoo {name:18s} SA {ev['clean']:.1%}  PGD-20 {ev['pgd20']:.1%}  (n {ev['n']})")
else:
    tsne_models = {name: finetuned[name, "slf"].eval() for name in ["SimCLR", "AdvCL"]}
fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
pgd = rv.attacks.PGD(eps=EPS, step_size=EPS / 4, steps=20)
for ax, name in zip(axes, ["SimCLR", "AdvCL"]):
    clf = tsne_models[name]
    feats = rv.diagnostics.attacked_features(clf, test.subset(range(300)), pgd, seed=SEED)
    emb = rv.diagnostics.embed(feats.z_nat, feats.z_adv[:60], feats.y, y_adv=feats.y[:60], seed=SEED)
    rv.figures.plot_embedding(emb, ax=ax, class_names=test.classes, legend=False, title=name)
fig

# %% [markdown]
# ## Exercises
#
# 1. Drop the HFC view (`"hfc": False`) and then the ClusterFit term (no `"clusterfit"`) from
#    AdvCL: how do the SLF rows move (the paper's ablation)?
# 2. Replace the adversarial view of AdvCL by adversarial SimCLR, both augmented views attacked:
#    `{"name": "ntxent", "views": ["adv1", "adv2"], ...}`.
# 3. Verify that NT-Xent is invariant to the scale of each embedding, and that it equals the
#    formula above on two hand-built views.

# %% tags=["solution"]
# Solution 1: the ablations, SLF only.
for label, spec in [("no HFC", {"hfc": False, "clusterfit": "runs/nb06_simclr/clusterfit.safetensors"}),
                    ("no ClusterFit", {})]:
    enc = new_model()
    rv.train.Trainer(defense={"name": "advcl", "radius": RADIUS, **spec, **attack, **AUG}, **pre).fit(enc, train)
    clf = rv.train.prepare_finetune(enc, "slf")
    rv.train.Trainer(epochs=FT_EPOCHS, lr=0.1, weight_decay=0.0, batch_size=256, val_attack=None, seed=SEED,
                     progress=False).fit(clf, train)
    res = rv.train.evaluate_finetuned(clf, test, eps=EPS)
    print(f"AdvCL {label:14s} SA {100 * res['clean_acc']:.1f}  RA {100 * res['pgd20_acc']:.1f}")

# %% tags=["solution"]
# Solution 2: adversarial SimCLR (ACL / RoCL style).
enc = new_model()
rv.train.Trainer(defense={"name": "ntxent", "views": ["adv1", "adv2"], **attack, **AUG}, **pre).fit(enc, train)
clf = rv.train.prepare_finetune(enc, "slf")
rv.train.Trainer(epochs=FT_EPOCHS, lr=0.1, weight_decay=0.0, batch_size=256, val_attack=None, seed=SEED,
                 progress=False).fit(clf, train)
res = rv.train.evaluate_finetuned(clf, test, eps=EPS)
print(f"adversarial SimCLR SA {100 * res['clean_acc']:.1f}  RA {100 * res['pgd20_acc']:.1f}")

# %% tags=["solution"]
# Solution 3: scale invariance and the formula with two views.
import math

v1, v2 = torch.randn(4, 3), torch.randn(4, 3)
print(float(rv.defenses.nt_xent([v1, v2])), float(rv.defenses.nt_xent([v1 * 10, v2 * 0.1])))
z = torch.nn.functional.normalize(torch.cat([v1, v2]), dim=1)
s = z @ z.T / 0.5
total = 0.0
for i in range(8):
    p = (i + 4) % 8
    total += -(s[i, p] - torch.logsumexp(torch.cat([s[i, :i], s[i, i + 1:]]), 0))
print(float(total / 8))
