"""Writes the notebooks from the cell lists below (outputs stripped).

Edit here, then `python notebooks/_make.py`; the test suite executes the .ipynb files.
"""
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent

PARAMS_TEACH = '''# Parameters: "teach" runs on a laptop CPU in minutes; "paper" needs a GPU.
SCALE = "teach"
SEED = 0
EPS = 0.1            # Linf radius in pixel units (Fashion-MNIST teaching default)
if SCALE == "teach":
    N_TRAIN, N_TEST, EPOCHS, MODEL = 5_000, 500, 2, "tinycnn"
else:
    N_TRAIN, N_TEST, EPOCHS, MODEL = None, 10_000, 20, "smallcnn"'''

DATA = '''import robustviz as rv

DATA = "fashion-mnist" if rv.data.available("fashion-mnist") else "digits"
train = rv.data.load(DATA, "train", n=N_TRAIN if DATA == "fashion-mnist" else None, seed=SEED)
test = rv.data.load(DATA, "test", n=min(N_TEST, rv.data.info(DATA).sizes["test"]), seed=SEED)
print(DATA, train.x.shape, test.x.shape, train.classes)'''


def tour():
    return [
        new_markdown_cell("# A tour of robustviz\n\n"
                          "Load a data set, train a small classifier, attack it, and watch its latent "
                          "space move as the attack grows. Every step uses the public API only; the "
                          "parameters cell below picks the scale."),
        new_code_cell(PARAMS_TEACH),
        new_markdown_cell("## 1. Data\n\nImages are float tensors in $[0,1]$, shape $(N, C, H, W)$. "
                          "Normalisation is the model's first layer, so attacks work in pixel space. "
                          "`n=` takes a class-stratified, seeded subset."),
        new_code_cell(DATA),
        new_markdown_cell("## 2. A model and its feature taps\n\n`build` gives a network whose first layer "
                          "is `Normalize`. `Features` taps named layers; every model names "
                          "`penultimate` (the latent space $z$) and `logits` ($f$)."),
        new_code_cell('''model = rv.models.build(MODEL, num_classes=train.num_classes, in_channels=train.shape[0],
                        input_size=train.shape[1:], mean=train.mean, std=train.std, seed=SEED)
print(model.layer_names)
with rv.models.Features(model, ["penultimate", "logits"]) as tap:
    out = tap(test.x[:4])
{k: tuple(v.shape) for k, v in out.items()}'''),
        new_markdown_cell("## 3. Natural training\n\nThe one `Trainer` runs every defense; NAT minimises "
                          "$\\mathrm{CE}(f(x), y)$. `bf16=True` turns on bfloat16 autocast (3-4x faster on "
                          "a recent CPU). The run directory is resumable and rebuilds the model."),
        new_code_cell('''nat = rv.train.Trainer(defense={"name": "nat"}, epochs=EPOCHS, optimizer="adam", lr=1e-3,
                       weight_decay=0.0, schedule="constant", batch_size=128, eps=EPS,
                       val_size=500, seed=SEED)
nat.fit(model, train, val=test, run_dir="runs/tour_nat")
nat.history_[-1]'''),
        new_markdown_cell("## 4. Attack it\n\nPGD takes $K$ signed-gradient steps and projects back "
                          "into the ball:\n\n$$x'_{k+1} = \\Pi_{[0,1]}\\,\\Pi_{\\|x'-x\\|_\\infty\\le\\epsilon}"
                          "\\big(x'_k + a\\,\\mathrm{sign}\\,\\nabla_{x}\\mathrm{CE}(f(x'_k), y)\\big)$$"),
        new_code_cell('''pgd = rv.attacks.PGD(eps=EPS, step_size=EPS / 4, steps=20)
x, y = test.x[:512], test.y[:512]
x_adv = pgd(model, x, y)
print("max |x_adv - x| =", float((x_adv - x).abs().max()), " range:", float(x_adv.min()), float(x_adv.max()))
res = rv.evaluate.evaluate(model, test, {"fgsm": rv.attacks.FGSM(eps=EPS), "pgd20": pgd}, progress=False)
print(res.table())'''),
        new_markdown_cell("## 5. Its latent space, natural and adversarial\n\nOne t-SNE map holds clean "
                          "points (dots) and adversarial ones (crosses, coloured by their true class). "
                          "Adversarial points of a natural model land in other classes' clusters."),
        new_code_cell('''feats = rv.diagnostics.attacked_features(model, test, pgd, seed=SEED)
emb = rv.diagnostics.embed(feats.z_nat, feats.z_adv[:100], feats.y, y_adv=feats.y[:100],
                           probs=feats.probs_nat, probs_adv=feats.probs_adv[:100], seed=SEED)
rv.figures.set_style("notebook")
rv.figures.plot_embedding(emb, class_names=test.classes, title="NAT: clean + PGD-20")'''),
        new_markdown_cell("## 6. Watch it move\n\nThe map is fitted once; adversarial features at growing "
                          "$\\epsilon$ are *placed into the same map* with `transform`, so the pictures "
                          "are comparable."),
        new_code_cell('''import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 3, figsize=(13, 4))
for ax, eps in zip(axes, [EPS / 4, EPS / 2, EPS]):
    atk = rv.attacks.PGD(eps=eps, step_size=eps / 4, steps=10)
    f = rv.diagnostics.attacked_features(model, (test.x[:100], test.y[:100]), atk, seed=SEED)
    moved = emb.transform(f.z_adv, f.y, probs=f.probs_adv)
    rv.figures.plot_embedding(moved, ax=ax, class_names=test.classes, legend=False,
                              title=f"eps = {eps:.3f}, robust acc {f.robust_acc:.0%}")
fig'''),
        new_markdown_cell("## 7. An adversarially trained model\n\nPGD-AT (Madry et al.) trains on "
                          "$\\mathrm{CE}(f(x'), y)$ with $x'$ from PGD. Compare its accuracy and its map."),
        new_code_cell('''robust = rv.models.build(MODEL, num_classes=train.num_classes, in_channels=train.shape[0],
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
rv.figures.plot_embedding(emb_at, class_names=test.classes, title="PGD-AT: clean + PGD-20")'''),
        new_markdown_cell("## Exercises\n\n1. Raise `EPS` to 0.2: how far does PGD-AT's accuracy fall, and "
                          "does NAT's reach 0?\n2. Replace PGD by `rv.attacks.FGSM(eps=EPS)` in section 6. "
                          "Which moves points further, and why?\n3. Train with `defense={\"name\": \"trades\", "
                          "\"beta\": 6, \"eps\": EPS}` and compare its map with PGD-AT's.\n4. Use "
                          "`method=\"umap\"` in `embed`: what is kept, what changes?"),
    ]


def latent_divergence():
    return [
        new_markdown_cell("# Latent divergence: R-DIV, $d_a^+$ and $d_a^-$\n\n"
                          "Bui et al. (paper 001) measure how far adversarial examples drift in latent "
                          "space. For an anchor $x_i$ with latent feature $z_i$, positives are the clean "
                          "and adversarial examples of its class, negatives those of other classes:\n\n"
                          "$$d_a^+ = \\frac1N\\sum_i \\operatorname{mean}_{x\\in X_i^+} d(z_i, z(x)),\\qquad "
                          "d_a^- = \\frac1N\\sum_i \\operatorname{mean}_{x\\in X_i^-} d(z_i, z(x)),\\qquad "
                          "\\text{R-DIV} = d_a^+/d_a^-$$\n\nwith $d$ the cosine distance. A robust model "
                          "keeps $x'$ near its class: low R-DIV."),
        new_code_cell(PARAMS_TEACH),
        new_code_cell(DATA),
        new_markdown_cell("## 1. Train NAT and PGD-AT, recording R-DIV every epoch\n\n"
                          "`RDivCallback` attacks the same fixed subset after each epoch and logs "
                          "R-DIV, $d_a^\\pm$ and clean/robust accuracy into the run's metrics."),
        new_code_cell('''pgd = rv.attacks.PGD(eps=EPS, step_size=EPS / 4, steps=10)
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
rv.figures.plot_rdiv_training({name: f"runs/div_{name}" for name in models})'''),
        new_markdown_cell("## 2. The divergences of the final models\n\nExact mode uses every pair "
                          "(computed in blocks, never an $N\\times N$ matrix at once); the bootstrap "
                          "interval resamples anchors."),
        new_code_cell('''feats = {name: rv.diagnostics.attacked_features(m, test, pgd, seed=SEED) for name, m in models.items()}
divs = {name: rv.diagnostics.divergence(f.z_nat, f.z_adv, f.y, n_boot=200, seed=SEED)
        for name, f in feats.items()}
for name, d in divs.items():
    print(f"{name:7s} d_a+ {d.d_pos:.3f}  d_a- {d.d_neg:.3f}  R-DIV {d.rdiv:.3f}  CI {d.ci}")
rv.figures.plot_divergence_pairs(divs)'''),
        new_markdown_cell("Which classes are close in latent space? The class $\\times$ class matrix "
                          "holds the mean distance between anchors of one class and the (clean and "
                          "adversarial) features of another."),
        new_code_cell('''rv.figures.plot_class_divergence(divs["NAT"], class_names=test.classes, title="NAT")'''),
        new_markdown_cell("## 3. The paper's protocol: per mini-batch\n\nThe paper averages per "
                          "mini-batch of 128 then over batches. With one batch holding everything the "
                          "two modes agree; with small batches they differ a little."),
        new_code_cell('''f = feats["NAT"]
for mode, bs in [("exact", None), ("minibatch", 128), ("minibatch", len(f.y))]:
    kw = {} if bs is None else {"batch_size": bs}
    d = rv.diagnostics.divergence(f.z_nat, f.z_adv, f.y, mode=mode, **kw)
    print(f"{mode:9s} batch {bs!s:5s} R-DIV {d.rdiv:.4f}")'''),
        new_markdown_cell("## 4. R-DIV as the attack grows\n\nObservation O1 of the paper: R-DIV rises "
                          "with $\\epsilon$, faster for a natural model than for an adversarially "
                          "trained one."),
        new_code_cell('''sweep = rv.diagnostics.rdiv_vs_eps(models, test, pgd, [0, EPS / 4, EPS / 2, EPS, 2 * EPS],
                                  n=500, seed=SEED)
rv.figures.plot_rdiv_vs_eps(sweep)'''),
        new_markdown_cell("## 5. Pair distances (paper 004)\n\nCosine similarity and $L_2$ distance of "
                          "positive pairs $(x, x')$ and negative pairs $(x, \\text{other-class example})$."),
        new_code_cell('''pairs = {name: rv.diagnostics.pair_distances(f.z_nat, f.z_adv, f.y, seed=SEED) for name, f in feats.items()}
rv.figures.plot_pair_histograms(pairs)'''),
        new_markdown_cell("## Exercises\n\n1. Switch to `distance=\"l2\"` in `divergence`. Does the "
                          "ranking of the two models change? Why is cosine scale-invariant and L2 not?\n"
                          "2. Add TRADES (`{\"name\": \"trades\", \"beta\": 6, \"eps\": EPS}`) to section 1. "
                          "Where does its R-DIV land?\n3. Compute the clean-only R-DIV "
                          "(`divergence(f.z_nat, None, f.y)`). Is a model with well separated clean "
                          "classes automatically robust?\n4. Extend the sweep of section 4 to "
                          "`3 * EPS`: where does NAT's R-DIV approach 1?"),
    ]


def write(name, cells):
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}})
    nbformat.write(nb, HERE / name)


if __name__ == "__main__":
    write("00_tour.ipynb", tour())
    write("03_latent_divergence.ipynb", latent_divergence())
