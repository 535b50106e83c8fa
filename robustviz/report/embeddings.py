"""The embeddings section: a t-SNE/UMAP map per model, by class and by entropy."""
from __future__ import annotations

from robustviz.report._context import Context
from robustviz.report._sections import ReportFigure, Section


def section(ctx: Context) -> Section:
    from robustviz import figures

    method = {"tsne": "t-SNE (van der Maaten & Hinton 2008)",
              "umap": "UMAP (McInnes et al. 2018)"}[ctx.embed_method]
    figs = []
    for nm in ctx.runs:
        emb = ctx.embedding(nm)
        f = ctx.features(nm)
        ka = int(emb.is_adv.sum())
        correct = (f.logits_adv[:ka].argmax(1) == f.y[:ka]).cpu().numpy()
        figs.append(ReportFigure(
            f"embedding_{nm}", figures.plot_embedding(
                emb, class_names=ctx.class_names, correct_adv=correct, title=nm),
            f"{nm}: {method} map of clean features by true class, with {ka} adversarial "
            f"points (crosses: misclassified; hollow circles: still correct). For a robust "
            f"model the adversarial points sit inside their own class's cluster."))
        figs.append(ReportFigure(
            f"embedding_entropy_{nm}", figures.plot_embedding_entropy(
                emb, title=f"{nm}: prediction entropy"),
            f"{nm}: the same map coloured by prediction entropy (dark: uncertain; the "
            f"colour bar ends at log C, total uncertainty). Adversarial crosses that are "
            f"dark and between clusters show an attack that confuses the model."))
    return Section(title="Embeddings", figures=figs)

