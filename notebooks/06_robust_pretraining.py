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
# # 06 Robust pretraining: SimCLR, AdvCL and ASCL pretraining, then finetuning
#
# **You will learn to** build the views of contrastive pretraining (augmentations, the
# high-frequency component, an adversarial view); pretrain an encoder without labels
# (SimCLR, AdvCL) and with them (ASCL pretraining) using the one `Trainer`; set a linear
# head's learning rate on the scale of the features; and compare encoders after standard
# linear (SLF), adversarial linear (ALF) and adversarial full (AFF) finetuning.
#
# **Prerequisites:** 02 (adversarial training), 04 (contrastive defenses). **Run time:**
# about 2 minutes on a 2-core CPU.
#
# Can an encoder learn robust features *before* it sees the task's labels? Fan, Liu, Chang,
# Chen, Wang & Liu ("When Does Contrastive Learning Preserve Adversarial Robustness from
# Pretraining to Finetuning?", NeurIPS 2021; AdvCL) pretrain with a contrastive loss over
# several views of each image, one of them adversarial, and then finetune a classifier on
# top. Li, Yu, Wu, Jin & Yu ("Adversarial Supervised Contrastive Learning", Machine Learning
# 112, 2023; ASCL pretraining) add the labels to the pretraining. This notebook builds the
# views, pretrains three small encoders and compares them. Sentences marked ✓ are checked
# against the numbers this notebook computes on your run.

# %%
# Colab only: install robustviz (with its zoo) and Fashion-MNIST; elsewhere nothing happens
import subprocess, sys
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "robustviz[all] @ git+https://github.com/robustviz/robustviz"], check=True)
    subprocess.run([sys.executable, "-m", "robustviz", "data", "fetch", "fashion-mnist"], check=True)

# %%
# Parameters. "teach": small encoders trained here on a CPU (Fashion-MNIST, TinyCNN, Linf
# eps 0.1). "paper": CIFAR-10 at eps 8/255 on a GPU (hours).
SCALE = "teach"
SEED = 0
# training images, pretraining and finetuning epochs, test images (all; for the finetuning
# table), AutoAttack images (0: none; too slow for a CPU)
if SCALE == "teach":
    N_TRAIN, EPOCHS, FT_EPOCHS, N_TEST, N_FT_TEST, N_AA = 1_000, 2, 1, 150, 100, 0
else:
    N_TRAIN, EPOCHS, FT_EPOCHS, N_TEST, N_FT_TEST, N_AA = None, 30, 10, 10_000, 10_000, 1_000

# %%
# %matplotlib inline
import shutil

import matplotlib.pyplot as plt
import torch

import robustviz as rv

S = rv.notebooks.setup(SCALE, seed=SEED, n_test=N_TEST)
EPS, test = S.eps, S.test
n_train = None if N_TRAIN is None else min(N_TRAIN, rv.data.info(S.dataset).sizes["train"])
train = rv.data.load(S.dataset, "train", n=n_train, seed=SEED)
MODEL = "tinycnn" if SCALE == "teach" else "resnet18"
RADIUS = 8.0 if train.shape[-1] >= 16 else 2.0      # HFC threshold, in frequency-index units
print(f"training images {tuple(train.x.shape)}")


def new_model():
    return rv.models.build(MODEL, num_classes=train.num_classes, in_channels=train.shape[0],
                           input_size=train.shape[1:], mean=train.mean, std=train.std, seed=SEED)


# %% [markdown]
# ## 1. Views
#
# SimCLR (Chen, Kornblith, Norouzi & Hinton, "A Simple Framework for Contrastive Learning of
# Visual Representations", ICML 2020) contrasts two random augmentations $t_1(x), t_2(x)$:
# random resized crop, flip, colour jitter and grayscale, here as batched tensor operations.
# On one-channel images saturation, hue and grayscale do nothing; brightness and contrast
# apply.
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
rv.notebooks.expect(float((lfc + hfc - x).abs().max()) < 1e-5,
                    "the low- and high-frequency components add up to the image",
                    max_error=float((lfc + hfc - x).abs().max()))
rv.notebooks.expect(abs(float(hfc.mean())) < 0.05,
                    "the high-frequency component has a mean near 0 (the mean, frequency 0, is in the LFC)",
                    hfc_mean=float(hfc.mean()));

# %% [markdown]
# The HFC keeps edges and texture and has mean near 0, so it is not an image in $[0, 1]$:
# the training clips it before the model sees it.
#
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
for old in ("runs/nb06_simclr", "runs/nb06_advcl", "runs/nb06_ascl"):
    shutil.rmtree(old, ignore_errors=True)  # a re-run starts afresh
simclr = new_model()
rv.train.Trainer(defense={"name": "ntxent", "views": ["aug1", "aug2"], **AUG}, **pre).fit(
    simclr, train, run_dir="runs/nb06_simclr");

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
with torch.no_grad():
    z_clean = rv.models.extract(simclr, x, "penultimate")
    z_adv = rv.models.extract(simclr, x_adv, "penultimate")
    loss_clean = float(contrastive(z_clean, None))
    loss_adv = float(contrastive(z_adv, None))
cos = torch.nn.functional.cosine_similarity
to_views = {"clean": float((cos(z_clean["penultimate"], z1) + cos(z_clean["penultimate"], z2)).mean() / 2),
            "adversarial": float((cos(z_adv["penultimate"], z1) + cos(z_adv["penultimate"], z2)).mean() / 2)}
print(f"mean cosine with the two augmented views: clean image {to_views['clean']:.3f}, "
      f"adversarial view {to_views['adversarial']:.3f}; the two views with each other {float(cos(z1, z2).mean()):.3f}")
rv.notebooks.expect(float((x_adv - x).abs().max()) <= EPS + 1e-6,
                    "the adversarial view stays in the eps-ball", max_change=float((x_adv - x).abs().max()))
rv.notebooks.expect(loss_adv > loss_clean,
                    "the adversarial view raises the contrastive loss of the three views",
                    clean=loss_clean, adversarial=loss_adv)
rv.notebooks.expect(to_views["adversarial"] < to_views["clean"],
                    "the adversarial view's features have a lower mean cosine with the two augmented views "
                    "than the clean image's", **to_views);

# %% [markdown]
# The attack moves the image's features away from its two augmented views (their mean cosine
# drops, the loss rises); AdvCL trains the encoder to pull the adversarial view back
# towards the other views. *Question:* is
# the adversarial view now farther from the two views than they are from each other (the
# last number printed)? What would you change in the attack to push it further?
#
# ## 4. AdvCL and ASCL pretraining
#
# **AdvCL** contrasts four views, $t_1(x), t_2(x), x+\delta, x_{\mathrm{HFC}}$, and adds
# $\lambda = 0.2$ times an adversarial cross-entropy on **ClusterFit** pseudo-labels (Yan,
# Misra, Gupta, Ghadiyaram & Mahajan, "ClusterFit: Improving Generalization of Visual
# Representations", CVPR 2020): K-means on the normalised features of the SimCLR encoder for
# several $K$, one linear head per $K$:
#
# $$L_{\mathrm{AdvCL}} = L_{\mathrm{NT\text{-}Xent}}(t_1(x), t_2(x), x+\delta, x_{\mathrm{HFC}}) + \lambda\,\frac1{|\mathcal K|}\sum_{K} \mathrm{CE}\big(g_K(f(x+\delta_{ce})), \hat y_K\big).$$
#
# **ASCL pretraining** (Li et al. 2023) uses the labels:
# $L = L_{\mathrm{AT}} + \lambda_1 L_{\mathrm{CL}}(\tilde x_i, \tilde x_j + \delta_{\mathrm{CL}}) + \lambda_2 L_{\mathrm{ASCL}}(\tilde x_i, x + \delta_{\mathrm{ASCL}})$
# with a label-free attack on the NT-Xent term and a label-based attack on the supervised
# contrastive term ($\lambda_1 = 0.5$, $\lambda_2 = 0.2$).

# %%
fit = rv.defenses.cluster_fit(simclr, train.x, ks=(10, 50), seed=SEED, source="runs/nb06_simclr")
fit.save("runs/nb06_simclr/clusterfit.safetensors")
print("images per pseudo-class (K=10):", torch.bincount(fit.labels[10]).tolist())

attack = {"eps": EPS, "step_size": EPS * 0.4, "steps": 3}
advcl = new_model()
rv.train.Trainer(defense={"name": "advcl", "radius": RADIUS, "clusterfit": "runs/nb06_simclr/clusterfit.safetensors",
                          **attack, **AUG}, **pre).fit(advcl, train, run_dir="runs/nb06_advcl")
ascl = new_model()
rv.train.Trainer(defense={"name": "ascl_pretrain", **attack, **AUG}, **pre).fit(ascl, train, run_dir="runs/nb06_ascl")
encoders = {"SimCLR": simclr, "AdvCL": advcl, "ASCL": ascl}

# %% [markdown]
# ## 5. Finetuning: SLF, ALF, AFF
#
# A fresh linear head on the encoder. **SLF**: frozen encoder, clean CE; **ALF**: frozen
# encoder, TRADES on the head; **AFF**: every weight, TRADES. Each is the same `Trainer`
# with a different defense and a frozen or trainable encoder.
#
# **The head's learning rate.** A linear head trained by SGD on features $z$ moves its logits
# by about $\mathrm{lr}\cdot\|z\|^2$ per unit of gradient, $1/(1-\mu)$ times that with momentum
# $\mu$, so its learning rate has to match the scale of the features. `rv.train.check_head_lr`
# warns when $\mathrm{lr}\,\mathbb E\|z\|^2/(1-\mu)$ exceeds 400 (the head then overshoots) and
# suggests $100\,(1-\mu)/\mathbb E\|z\|^2$, the step a well-scaled encoder gets at lr 0.1. The
# teaching configs (`configs/teach/pretrain_*.yaml`) follow it: SimCLR's head at 0.1, the
# robust encoders' at 0.005, because the zoo's robust encoders (the same pipelines on 20,000
# images, `configs/zoo/`) have a mean squared feature norm $\mathbb E\|z\|^2$ about 20 times
# SimCLR's; at 0.1 their heads overshoot
# and lose much of their SLF robustness (README, "Robust pretraining"). Here are the scales,
# of the zoo's encoders and of the small ones trained above.

# %%
MOMENTUM = 0.9                                                # the Trainer's SGD default
CONFIG_LR = {"SimCLR": 0.1, "AdvCL": 0.005, "ASCL": 0.005}    # the teaching configs' finetune.lr
ZOO = {"SimCLR": "simclr_slf", "AdvCL": "advcl_slf", "ASCL": "ascl_pretrain_slf"}
if SCALE == "paper" or S.dataset == "fashion-mnist":   # the zoo (teach) or your paper runs
    reference = {name: S.load(zoo_name) for name, zoo_name in ZOO.items()}
else:                                                  # digits: no pretrained zoo encoders
    reference = None


def suggested_lr(scale):
    """The head lr that gives the step of a well-scaled encoder at lr 0.1 (check_head_lr's)."""
    return 100 * (1 - MOMENTUM) / scale


scale = {name: rv.train.head_input_scale(enc, train.x) for name, enc in encoders.items()}
HEAD_LR = {name: suggested_lr(scale[name]) for name in encoders}
if reference is not None:
    ref_scale = {name: rv.train.head_input_scale(m, train.x) for name, m in reference.items()}
    for name in reference:
        print(f"zoo {name:6s} E||z||^2 = {ref_scale[name]:6.0f}  suggested lr {suggested_lr(ref_scale[name]):.3g}"
              f"  (config {CONFIG_LR[name]:g}; at lr 0.1: "
              f"{'overshoots' if rv.train.check_head_lr(ref_scale[name], 0.1, MOMENTUM) else 'fine'})")
    rv.notebooks.expect(all(CONFIG_LR[n] / 1.5 < suggested_lr(ref_scale[n]) < CONFIG_LR[n] * 1.5 for n in ZOO),
                        "for the zoo's encoders the rule gives the configs' rates (0.1 and 0.005) within a factor 1.5",
                        **{n: suggested_lr(ref_scale[n]) for n in ZOO})
    rv.notebooks.expect(all(rv.train.check_head_lr(ref_scale[n], 0.1, MOMENTUM) for n in ("AdvCL", "ASCL"))
                        and rv.train.check_head_lr(ref_scale["SimCLR"], 0.1, MOMENTUM) is None,
                        "lr 0.1 is fine for the zoo's SimCLR encoder and overshoots for its robust encoders",
                        **{n: 0.1 * ref_scale[n] / (1 - MOMENTUM) for n in ZOO})
    rv.notebooks.expect(all(15 < ref_scale[n] / ref_scale["SimCLR"] < 30 for n in ("AdvCL", "ASCL")),
                        "the zoo's robust encoders have an E||z||^2 between 15 and 30 times its SimCLR encoder's",
                        **{n: ref_scale[n] / ref_scale["SimCLR"] for n in ("AdvCL", "ASCL")})
for name in encoders:
    print(f"ours {name:6s} E||z||^2 = {scale[name]:6.0f}  head lr {HEAD_LR[name]:.3g}")
if reference is not None:
    rv.notebooks.expect(all(scale[n] < ref_scale[n] / 5 for n in ("AdvCL", "ASCL")),
                        "our robust encoders' E||z||^2 is less than a fifth of the zoo's robust encoders'",
                        **{f"ours_{n}": scale[n] for n in ("AdvCL", "ASCL")},
                        **{f"zoo_{n}": ref_scale[n] for n in ("AdvCL", "ASCL")})

# %% [markdown]
# After two epochs on 1,000 images our robust encoders' features have not grown to the zoo's
# scale (their $\mathbb E\|z\|^2$ is less than a fifth of it), so we give
# each head the learning rate its own features call for (`HEAD_LR`, the rule above) rather
# than copy a number tuned for other encoders. AFF trains the whole network at the configs'
# `full_lr` of 0.01. We report clean accuracy (SA) and PGD-10 accuracy (RA) at $\epsilon$ on
# the first `N_FT_TEST` test images (PGD-20 and AutoAttack standard at paper scale).

# %%
trades = {"name": "trades", "beta": 6.0, "eps": EPS, "step_size": EPS / 3, "steps": 3}
defenses = {"slf": {"name": "nat"}, "alf": trades, "aff": trades}
rows, finetuned = [], {}
for name, enc in encoders.items():
    for mode, defense in defenses.items():
        model = finetuned[name, mode] = rv.train.prepare_finetune(enc, mode)
        rv.train.Trainer(defense=defense, epochs=FT_EPOCHS, lr=HEAD_LR[name] if mode != "aff" else 0.01,
                         momentum=MOMENTUM, weight_decay=0.0, schedule="cosine", batch_size=64,
                         val_attack=None, seed=SEED, progress=False).fit(model, train)
        steps = 10 if SCALE == "teach" else 20
        res = rv.train.evaluate_finetuned(model.eval(), test.subset(range(N_FT_TEST)), eps=EPS, seed=SEED,
                                          steps=steps, aa_n=N_AA)
        row = {"pretraining": name, "finetuning": mode.upper(), "SA": 100 * res["clean_acc"],
               f"RA (PGD-{steps})": 100 * res[f"pgd{steps}_acc"]}
        if "aa_acc" in res:                            # paper scale only (N_AA > 0)
            row[f"AutoAttack standard (n={res['aa_n']})"] = 100 * res["aa_acc"]
        rows.append(row)
try:
    import pandas as pd
    table = pd.DataFrame(rows).round(1)
except ImportError:
    table = rows
table

# %%
sa = {(r["pretraining"], r["finetuning"]): r["SA"] for r in rows}
rv.notebooks.expect(min(sa[k] for k in sa if k[1] == "SLF") > 30,
                    "every SLF head learns the task at its learning rate (clean accuracy above 30%, chance is 10%)",
                    **{k[0]: sa[k] for k in sa if k[1] == "SLF"});

# %% [markdown]
# The SLF rows measure how robust the *features* are: the head is trained on clean data only,
# so any robustness comes from pretraining. Comparing SLF with ALF on the same frozen
# features is the linear separability test of Li et al. (2023): how much robustness a linear
# head can add on top. *Question:* does ALF add robustness over SLF for every encoder here?
# These encoders saw 1,000 images for two epochs, and RA is measured on 100 test images (a
# 95% interval of about $\pm 8$ points near 25%): which differences between the rows would
# you trust? Is AFF, which also trains the encoder, the most robust row?
#
# ## 6. The same pipelines at 20 times the data, and their features
#
# The teaching zoo holds the three pipelines run on 20,000 images with the configs' head
# rates (`simclr_slf`, `advcl_slf`, `ascl_pretrain_slf`, loaded above; the paper scale reads
# your runs of the paper configs). We attack them on the test images with PGD-20. The number
# to cite is AutoAttack's (Croce & Hein, "Reliable evaluation of adversarial robustness with an
# ensemble of diverse parameter-free attacks", ICML 2020; notebook 09), but on a CPU even its
# fast version (APGD-CE and APGD-T) takes about half a minute per model here, so the teaching
# scale leaves it out (`N_AA = 0`) and the paper scale adds AutoAttack standard on `N_AA`
# images. Then the t-SNE maps: clean penultimate features, and adversarial ones (PGD against
# the SLF classifier) as crosses.

# %%
slf = reference if reference is not None else {name: finetuned[name, "slf"] for name in encoders}
pgd = rv.attacks.PGD(eps=EPS, step_size=EPS / 4, steps=20)
feats, slf_rows = {}, []
for name, m in slf.items():
    feats[name] = rv.diagnostics.attacked_features(m, test, pgd, seed=SEED)
    slf_rows.append({"pretraining": name, "SLF SA": 100 * feats[name].clean_acc,
                     "RA (PGD-20)": 100 * feats[name].robust_acc})
    if N_AA:
        aa = rv.evaluate.evaluate(m, (test.x[:N_AA], test.y[:N_AA]), {"aa": rv.attacks.AutoAttack(eps=EPS)},
                                  topk=(1,), seed=SEED, progress=False)
        slf_rows[-1][f"AutoAttack standard (n={N_AA})"] = 100 * aa.robust("aa")
for r in slf_rows:
    print("  ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{v:7s}" for k, v in r.items()))
fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
own = {}   # the share of crosses whose 10 nearest clean points in the map are mostly of their class
for ax, name in zip(axes, ["SimCLR", "AdvCL"]):
    f = feats[name]
    emb = rv.diagnostics.embed(f.z_nat, f.z_adv[:60], f.y, y_adv=f.y[:60], seed=SEED)
    rv.figures.plot_embedding(emb, ax=ax, class_names=test.classes, legend=False,
                              title=f"{name} SLF (PGD-20 accuracy {f.robust_acc:.0%})")
    own[name] = emb.own_cluster_share()
    print(f"{name}: {own[name]:.0%} of the adversarial crosses lie in their own class's cluster")
plt.show()

# %%
acc = {name: f.robust_acc for name, f in feats.items()}
rv.notebooks.expect(min(acc["AdvCL"], acc["ASCL"]) > acc["SimCLR"] + 0.2,
                    "with a head trained on clean data only, both robust encoders keep at least 20 points "
                    f"more PGD-20 accuracy than SimCLR (on {len(test.y)} test images)",
                    simclr=acc["SimCLR"], advcl=acc["AdvCL"], ascl=acc["ASCL"]);
rv.notebooks.expect(own["SimCLR"] < 0.5 and own["AdvCL"] > own["SimCLR"] + 0.2,
                    "in the maps, most of SimCLR's adversarial crosses lie outside their own class's "
                    "cluster, and more than 20 points more of AdvCL's than of SimCLR's lie inside it",
                    simclr=own["SimCLR"], advcl=own["AdvCL"]);

# %% [markdown]
# At this scale robust pretraining pays: SimCLR's features are not robust, AdvCL's and
# ASCL's are, with the head trained on clean data only. In the maps, most of SimCLR's
# adversarial features land in other classes' clusters, while more of AdvCL's stay in their
# own (the shares printed above, from the 10 nearest clean points of each cross).
# *Question:* PGD-20 is an upper bound of the robust accuracy; which of these three numbers
# would you expect AutoAttack to lower the most, and why (notebook 09)?
#
# ## Exercises
#
# Write each answer in its cell, replacing `...`, then run the check below it: it says what
# is still wrong, not the answer.
#
# **Exercise 1.** How much of an image is high-frequency? For the six images `x` of
# section 1, compute the fraction of their energy (sum of squared pixel values) that lies in
# the HFC at radius `RADIUS`: $\sum x_{\mathrm{HFC}}^2 / \sum x^2$ over all six. Answer a
# float in [0, 1].

# %%
answer_1 = ...

# %% tags=["solution"]
answer_1 = float(hfc.pow(2).sum() / x.pow(2).sum())
print(f"{answer_1:.1%} of the energy is in the HFC")

# %%
rv.notebooks.exercise("06.1", answer_1, x=x, radius=RADIUS);

# %% [markdown]
# **Exercise 2.** NT-Xent by hand. For the two views `v1, v2` below (4 images, 3 dimensions
# each), compute the formula of section 2 with $\tau = 0.5$ yourself (cosine similarity,
# every anchor's positive is the other view of its image, the denominator runs over every
# other embedding). Answer a float; `rv.defenses.nt_xent([v1, v2])` is what the check
# compares with, so do not call it. Then check that it does not change when you scale
# `v1` by 10.

# %%
gen = torch.Generator().manual_seed(SEED)
v1, v2 = torch.randn(4, 3, generator=gen), torch.randn(4, 3, generator=gen)

# %%
answer_2 = ...

# %% tags=["solution"]
z = torch.nn.functional.normalize(torch.cat([v1, v2]), dim=1)
s = z @ z.T / 0.5
total = 0.0
for i in range(8):
    p = (i + 4) % 8
    total += -(s[i, p] - torch.logsumexp(torch.cat([s[i, :i], s[i, i + 1:]]), 0))
answer_2 = float(total / 8)
print(answer_2, float(rv.defenses.nt_xent([v1 * 10, v2])))

# %%
rv.notebooks.exercise("06.2", answer_2, v1=v1, v2=v2, tau=0.5);

# %% [markdown]
# **Exercise 3.** The head's learning rate. For each of the three encoders, what is the
# largest SGD learning rate (momentum `MOMENTUM`) that `rv.train.check_head_lr` accepts for
# a linear head on its features (`rv.train.head_input_scale(encoder, train.x)`)? Answer a
# dict `{"SimCLR": ..., "AdvCL": ..., "ASCL": ...}`. Is 0.1 below it for SimCLR? For the
# others?

# %%
answer_3 = ...

# %% tags=["solution"]
answer_3 = {name: 400 * (1 - MOMENTUM) / rv.train.head_input_scale(enc, train.x) for name, enc in encoders.items()}
print({k: f"{v:.3g}" for k, v in answer_3.items()})

# %%
rv.notebooks.exercise("06.3", answer_3, encoders=encoders, x=train.x, momentum=MOMENTUM);

# %% [markdown]
# *Try it (minutes each, not run here):* the ablations of Fan et al. (2021) drop the HFC view
# (`"hfc": False` in the AdvCL defense) or the ClusterFit term (no `"clusterfit"`); and
# adversarial SimCLR attacks both augmented views instead of adding a third
# (`{"name": "ntxent", "views": ["adv1", "adv2"], **attack, **AUG}`). Pretrain each as in
# section 4, finetune with SLF at the head learning rate its feature scale allows, and
# compare the SLF rows: which part of AdvCL buys the most robustness at this scale?
