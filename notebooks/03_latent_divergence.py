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
# # Latent divergence: R-DIV, $d_a^+$ and $d_a^-$
#
# Bui et al. (paper 001) measure how far adversarial examples drift in latent space. For an anchor $x_i$ with latent feature $z_i$, positives are the clean and adversarial examples of its class, negatives those of other classes:
#
# $$d_a^+ = \frac1N\sum_i \operatorname{mean}_{x\in X_i^+} d(z_i, z(x)),\qquad d_a^- = \frac1N\sum_i \operatorname{mean}_{x\in X_i^-} d(z_i, z(x)),\qquad \text{R-DIV} = d_a^+/d_a^-$$
#
# with $d$ the cosine distance. A robust model keeps $x'$ near its class: low R-DIV.

# %%
# Parameters: "teach" runs on a laptop CPU in minutes; "paper" needs a GPU.
SCALE = "teach"
SEED = 0
EPS = 0.1            # Linf radius in pixel units (Fashion-MNIST teaching default)
if SCALE == "teach":
    N_TRAIN, N_TEST, EPOCHS, MODEL = 5_000, 500, 2, "tinycnn"
else:
    N_TRAIN, N_TEST, EPOCHS, MODEL = None, 10_000, 20, "smallcnn"

# %%
import robustviz as rv

DATA = "fashion-mnist" if rv.data.available("fashion-mnist") else "digits"
train = rv.data.load(DATA, "train", n=N_TRAIN if DATA == "fashion-mnist" else None, seed=SEED)
test = rv.data.load(DATA, "test", n=min(N_TEST, rv.data.info(DATA).sizes["test"]), seed=SEED)
print(DATA, train.x.shape, test.x.shape, train.classes)

# %% [markdown]
# ## 1. Train NAT and PGD-AT, recording R-DIV every epoch
#
# `RDivCallback` attacks the same fixed subset after each epoch and logs R-DIV, $d_a^\pm$ and clean/robust accuracy into the run's metrics.

# %%
pgd = rv.attacks.PGD(eps=EPS, step_size=EPS / 4, steps=10)
models = {}
for name, defense in [("NAT", {"name": "nat"}),
                      ("PGD-AT", {"name": "pgd_at", "eps": EPS, "step_size": EPS / 4, "steps": 5})]:
    model = rv.models.build(MODEL, num_classes=train.num_classes, in_channels=train.shape[0],
                            input_size=train.shape[1:], mean=train.mean, std=train.std, seed=SEED)
    cb = rv.diagnostics.RDivCallback(test, pgd, n=500, seed=SEED)
    rv.train.Trainer(defense=defense, epochs=EPOCHS + 1, optimizer="adam", lr=1e-3, weight_decay=0.0,
                     schedule="constant", eps=EPS, val_size=500, seed=SEED,
                     progress=False).fit(model, train, val=test, run_dir=f"runs/div_{name}",
                                         callbacks=[cb])
    models[name] = model
rv.figures.set_style("notebook")
rv.figures.plot_rdiv_training({name: f"runs/div_{name}" for name in models})

# %% [markdown]
# ## 2. The divergences of the final models
#
# Exact mode uses every pair (computed in blocks, never an $N\times N$ matrix at once); the bootstrap interval resamples anchors.

# %%
feats = {name: rv.diagnostics.attacked_features(m, test, pgd, seed=SEED) for name, m in models.items()}
divs = {name: rv.diagnostics.divergence(f.z_nat, f.z_adv, f.y, n_boot=200, seed=SEED)
        for name, f in feats.items()}
for name, d in divs.items():
    print(f"{name:7s} d_a+ {d.d_pos:.3f}  d_a- {d.d_neg:.3f}  R-DIV {d.rdiv:.3f}  CI {d.ci}")
rv.figures.plot_divergence_pairs(divs)

# %% [markdown]
# Which classes are close in latent space? The class $\times$ class matrix holds the mean distance between anchors of one class and the (clean and adversarial) features of another.

# %%
rv.figures.plot_class_divergence(divs["NAT"], class_names=test.classes, title="NAT")

# %% [markdown]
# ## 3. The paper's protocol: per mini-batch
#
# The paper averages per mini-batch of 128 then over batches. With one batch holding everything the two modes agree; with small batches they differ a little.

# %%
f = feats["NAT"]
for mode, bs in [("exact", None), ("minibatch", 128), ("minibatch", len(f.y))]:
    kw = {} if bs is None else {"batch_size": bs}
    d = rv.diagnostics.divergence(f.z_nat, f.z_adv, f.y, mode=mode, **kw)
    print(f"{mode:9s} batch {bs!s:5s} R-DIV {d.rdiv:.4f}")

# %% [markdown]
# ## 4. R-DIV as the attack grows
#
# Observation O1 of the paper: R-DIV rises with $\epsilon$, faster for a natural model than for an adversarially trained one.

# %%
sweep = rv.diagnostics.rdiv_vs_eps(models, test, pgd, [0, EPS / 4, EPS / 2, EPS, 2 * EPS],
                                  n=500, seed=SEED)
rv.figures.plot_rdiv_vs_eps(sweep)

# %% [markdown]
# ## 5. Pair distances (paper 004)
#
# Cosine similarity and $L_2$ distance of positive pairs $(x, x')$ and negative pairs $(x, \text{other-class example})$.

# %%
pairs = {name: rv.diagnostics.pair_distances(f.z_nat, f.z_adv, f.y, seed=SEED) for name, f in feats.items()}
rv.figures.plot_pair_histograms(pairs)

# %% [markdown]
# ## Exercises
#
# 1. Switch to `distance="l2"` in `divergence`. Does the ranking of the two models change? Why is cosine scale-invariant and L2 not?
# 2. Add TRADES (`{"name": "trades", "beta": 6, "eps": EPS}`) to section 1. Where does its R-DIV land?
# 3. Compute the clean-only R-DIV (`divergence(f.z_nat, None, f.y)`). Is a model with well separated clean classes automatically robust?
# 4. Extend the sweep of section 4 to `3 * EPS`: where does NAT's R-DIV approach 1?

# %% tags=["solution"]
# Solution 1 and 3: cosine divergence ignores the features' norms, L2 does not; a model
# with well separated clean classes (low clean R-DIV) can still be far from robust.
for name, f in feats.items():
    l2 = rv.diagnostics.divergence(f.z_nat, f.z_adv, f.y, distance="l2")
    clean = rv.diagnostics.divergence(f.z_nat, None, f.y)
    print(f"{name:7s} cosine R-DIV {divs[name].rdiv:.3f}  L2 R-DIV {l2.rdiv:.3f}  clean R-DIV {clean.rdiv:.3f}")
