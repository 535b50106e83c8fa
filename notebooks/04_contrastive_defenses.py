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
# # 04 Contrastive defenses: embedding-space contrast and ASCL
#
# **You will learn to** add a contrastive term to adversarial training (in embedding space,
# or supervised over a batch); compare such defenses with plain PGD-AT at top-1/3/5 accuracy
# and in latent space (R-DIV and its two parts); and count the positives and negatives a
# selection rule gives each anchor during training.
#
# **Prerequisites:** 02 (adversarial training), 03 (latent divergence, R-DIV). **Run time:**
# about 1 minute on a 2-core CPU.
#
# **Data:** Fashion-MNIST; this notebook needs the zoo's contrastive models (embedding CL,
# ASCL), which the digits zoo (the fallback where Fashion-MNIST is absent) does not have.
# `robustviz data fetch fashion-mnist` gets it (the Colab cell does).
#
# Two ways to shape the latent space during adversarial training:
#
# - **Embedding-space contrast** (Zhang, "Contrastive loss in embedding space for adversarial
#   robustness", unpublished course project report): pull the adversarial example's
#   embedding $g(x')$ onto the clean one's at a chosen layer,
#   $$L = \mathrm{CE}(f(x'), y) + \beta\, d\big(g(x'), g(x)\big).$$
#   Which layer $g$ taps matters: the ablation below compares the shallowest and the deepest tap.
# - **ASCL** (Bui, Le, Zhao, Montague, Camtepe & Phung, "Understanding and Achieving Efficient
#   Robustness with Adversarial Supervised Contrastive Learning", arXiv:2101.10027, 2021): a
#   supervised contrastive loss (Khosla et al., "Supervised Contrastive Learning", NeurIPS
#   2020) over clean and adversarial features, $L = L_{AT} + \lambda_{SCL} L_{SCL} +
#   \lambda_{VAT} L_{VAT}$ (the last term is virtual adversarial training: Miyato, Maeda,
#   Koyama & Ishii, IEEE TPAMI 2019), where a *selection* rule decides which samples count as
#   positives and negatives of each anchor. Global: every same-class sample is a positive,
#   every other a negative. Leaked: only samples whose predicted class agrees with the anchor's.
#
# Every model is compared with PGD-AT (Madry et al., "Towards Deep Learning Models Resistant
# to Adversarial Attacks", ICLR 2018). Sentences marked ✓ are checked against the numbers
# this notebook computes on your run.
# %%
# Colab only: install robustviz (with its zoo) and Fashion-MNIST; elsewhere nothing happens
import subprocess, sys
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "robustviz[all] @ git+https://github.com/robustviz/robustviz"], check=True)
    subprocess.run([sys.executable, "-m", "robustviz", "data", "fetch", "fashion-mnist"], check=True)

# %%
# Parameters. "teach": the teaching zoo (Fashion-MNIST, TinyCNN, Linf eps 0.1) on a CPU.
# "paper": your runs of the paper configs (CIFAR-10, eps 8/255, GPU; rv.notebooks.PAPER_RUNS
# names the config that makes each model; the shallow-tap model cl_emb1 has none).
SCALE = "teach"
SEED = 0

# %%
# %matplotlib inline
import shutil

import robustviz as rv

S = rv.notebooks.setup(SCALE, seed=SEED)
EPS, test = S.eps, S.test
names = {"PGD-AT": "pgd_at", "CL emb-1 (shallow)": "cl_emb1", "CL emb-5 (deep)": "cl_emb5",
         "ASCL global": "ascl_global", "ASCL leaked": "ascl_leaked"}
models = {label: S.load(name) for label, name in names.items()}
sub = (test.x[:300], test.y[:300])

# %% [markdown]
# ## 1. Embedding-space contrast and its layer ablation

# %%
pgd = rv.attacks.PGD(eps=EPS, steps=20)
results = {label: rv.evaluate.evaluate(m, sub, {"PGD-20": pgd}, topk=(1, 3, 5), seed=SEED, progress=False)
           for label, m in models.items()}
rv.figures.plot_topk_table(results, k=(1, 3, 5))

# %%
top1 = {label: r.robust("PGD-20") for label, r in results.items()}
gap = {label: top1[label] - top1["PGD-AT"] for label in models if label != "PGD-AT"}
rv.notebooks.expect(all(abs(d) <= 0.05 for d in gap.values()),
                    "every contrastive variant's top-1 PGD-20 accuracy lies within 5 points of PGD-AT's",
                    **{label: round(d, 3) for label, d in gap.items()});

# %% [markdown]
# On 300 images a 95% interval around an accuracy of 75% is about $\pm 5$ points, so at this
# scale none of the extra terms buys robustness the table can resolve: their effect, if
# any, has to be looked for where they act, in latent space. *Question:* the README's table
# holds the same models on 2,000 test images; which of their differences to PGD-AT would you
# trust there?

# %%
feats = {label: rv.diagnostics.attacked_features(m, sub, rv.attacks.PGD(eps=EPS, steps=10), seed=SEED)
         for label, m in models.items()}
divs = {label: rv.diagnostics.divergence(f.z_nat, f.z_adv, f.y) for label, f in feats.items()}
for label, d in divs.items():
    print(f"{label:20s} d+ {d.d_pos:.3f}  d- {d.d_neg:.3f}  R-DIV {d.rdiv:.3f}  "
          f"robust acc {feats[label].robust_acc:.0%}")
rv.figures.plot_divergence_pairs(divs)

# %%
contrastive = [label for label in models if label != "PGD-AT"]
ref = divs["PGD-AT"]
drop = {label: (ref.d_pos - divs[label].d_pos, ref.d_neg - divs[label].d_neg) for label in contrastive}
rv.notebooks.expect(all(dp > 0 and dn > dp for dp, dn in drop.values()),
                    "every model trained with a contrastive term has a smaller d+ than PGD-AT, and its d- "
                    "is smaller than PGD-AT's by more than its d+ is (drops of d+ / d-)",
                    **{label: f"{dp:.3f} / {dn:.3f}" for label, (dp, dn) in drop.items()})
rv.notebooks.expect(all(divs[label].rdiv < 0.75 * ref.rdiv for label in contrastive),
                    "every model trained with a contrastive term has an R-DIV (d+/d-) below 3/4 of PGD-AT's: "
                    "relative to PGD-AT, its d+ shrinks by a larger factor than its d-",
                    pgd_at=ref.rdiv, **{label: divs[label].rdiv for label in contrastive});

# %% [markdown]
# A contrastive term acts on distances in latent space, but its effect is not simply "a smaller
# $d_a^+$" (the mean distance of an anchor to the natural and adversarial examples of its own
# class): every contrastive model has a smaller $d_a^+$ than PGD-AT, but its $d_a^-$ drops
# by even more. The whole latent space is more compact, so the raw $d_a^+$ alone
# cannot say that adversarial features sit nearer their class. What does hold is the relative
# measure: $d_a^+$ shrinks by a larger factor than $d_a^-$, so R-DIV $= d_a^+/d_a^-$ falls
# below 3/4 of PGD-AT's. *Question:* why is R-DIV, not $d_a^+$, the quantity to compare across
# models whose latent spaces have different scales?
#
# ## 2. ASCL selections, counted
#
# The selection rule changes how many positives and negatives each anchor sees. Training
# is the lesson here: we train two short ASCL runs (2,000 images, one epoch each, on top of
# PGD-AT with a 2-step attack) and read the logged counts per anchor.

# %%
train = rv.zoo.data(S.dataset, "train", n=2000) if SCALE == "teach" else rv.data.load(S.dataset, "train")
stats = {}
for selection in ("global", "leaked"):
    model = rv.models.build("tinycnn", num_classes=train.num_classes, in_channels=train.shape[0],
                            input_size=train.shape[1:], mean=train.mean, std=train.std, seed=SEED)
    run_dir = f"runs/ascl_{selection}"
    shutil.rmtree(run_dir, ignore_errors=True)  # a re-run starts afresh
    rv.train.Trainer(defense={"name": "ascl", "base": "pgd_at", "selection": selection,
                              "lambda_scl": 1.0, "lambda_vat": 2.0, "tau": 0.07,
                              "eps": EPS, "steps": 2},
                     epochs=1, optimizer="adam", lr=3e-3, weight_decay=0.0, schedule="constant",
                     batch_size=128, eps=EPS, seed=SEED, progress=False).fit(model, train, run_dir=run_dir)
    stats[selection] = rv.diagnostics.selection_stats(run_dir, name=selection)
    print(stats[selection])
rv.figures.plot_selection_counts(stats)

# %%
pos_g, neg_g = stats["global"].final
pos_l, neg_l = stats["leaked"].final
rv.notebooks.expect(0.05 < pos_g / (pos_g + neg_g) < 0.2,
                    "with the global rule an anchor sees about a tenth of the batch as positives",
                    positives=pos_g, negatives=neg_g, fraction=pos_g / (pos_g + neg_g))
rv.notebooks.expect(pos_l < pos_g and neg_l < neg_g / 2 and neg_l / neg_g < pos_l / pos_g,
                    "the leaked rule keeps fewer positives and less than half the negatives of the global "
                    "rule, a smaller fraction of its negatives than of its positives",
                    global_pos=pos_g, leaked_pos=pos_l, global_neg=neg_g, leaked_neg=neg_l);

# %% [markdown]
# With ten balanced classes, the global rule gives an anchor about a tenth of the batch as
# positives and the rest as negatives; the leaked rule keeps only samples the model's
# prediction ties to the anchor, so the counts drop, the negatives most: the loss then
# concentrates on the cases the model confuses.
#
# ## Exercises
#
# Write each answer in its cell, replacing `...`, then run the check below it: it says what
# is still wrong, not the answer.
#
# **Exercise 1.** The layer ablation. Which tap of the embedding loss gives the lower R-DIV
# at the penultimate layer on `sub`? Answer one of the strings `"CL emb-1 (shallow)"` or
# `"CL emb-5 (deep)"`. *Question:* explain the result with where the embedding loss measures
# its distance and where R-DIV measures it.

# %%
answer_1 = ...

# %% tags=["solution"]
answer_1 = min(["CL emb-1 (shallow)", "CL emb-5 (deep)"], key=lambda label: divs[label].rdiv)
print(answer_1)

# %%
rv.notebooks.exercise("04.1", answer_1, features={k: feats[k] for k in ("CL emb-1 (shallow)", "CL emb-5 (deep)")});

# %% [markdown]
# **Exercise 2.** From the logged counts (`stats`), what fraction of the samples an anchor is
# compared with are its positives under the *leaked* rule at the end of training? Answer a
# float in [0, 1] (positives over positives plus negatives).

# %%
answer_2 = ...

# %% tags=["solution"]
answer_2 = pos_l / (pos_l + neg_l)
print(f"leaked {answer_2:.2f} vs global {pos_g / (pos_g + neg_g):.2f}")

# %%
rv.notebooks.exercise("04.2", answer_2, run_dir="runs/ascl_leaked");

# %% [markdown]
# **Exercise 3.** Train the embedding defense yourself on `train`: `{"name": "embedding",
# "layer": "penultimate", "distance": "mse", "beta": 6.0, "eps": EPS, "steps": 2}` for one
# epoch (Adam, lr 3e-3, batch 128, as the ASCL runs above), then compute its R-DIV on `sub`
# as in section 1 (`attacked_features` with PGD-10, `seed=SEED`). Answer the R-DIV as a float
# and pass your model to the check. Is it lower than PGD-AT's?

# %%
answer_3 = ...

# %% tags=["solution"]
emb_model = rv.models.build("tinycnn", num_classes=train.num_classes, in_channels=train.shape[0],
                            input_size=train.shape[1:], mean=train.mean, std=train.std, seed=SEED)
rv.train.Trainer(defense={"name": "embedding", "layer": "penultimate", "distance": "mse",
                          "beta": 6.0, "eps": EPS, "steps": 2},
                 epochs=1, optimizer="adam", lr=3e-3, weight_decay=0.0, schedule="constant",
                 batch_size=128, eps=EPS, seed=SEED, progress=False).fit(emb_model, train)
f = rv.diagnostics.attacked_features(emb_model, sub, rv.attacks.PGD(eps=EPS, steps=10), seed=SEED)
answer_3 = rv.diagnostics.divergence(f.z_nat, f.z_adv, f.y).rdiv
print(f"embedding CL (1 epoch): R-DIV {answer_3:.3f}  (PGD-AT: {divs['PGD-AT'].rdiv:.3f})")

# %%
rv.notebooks.exercise("04.3", answer_3, model=emb_model, zoo_models=models, data=sub, eps=EPS, seed=SEED);
