"""Latent-space diagnostics: pure functions on features returning small frozen results.

::

    from robustviz.diagnostics import attacked_features, divergence, pair_distances, embed
    f = attacked_features(model, test, PGD(eps=0.1, steps=10))   # the one extraction step
    res = divergence(f.z_nat, f.z_adv, f.y)                         # R-DIV, d_a+, d_a-, CI
    pairs = pair_distances(f.z_nat, f.z_adv, f.y)                   # paper 004 histograms
    emb = embed(f.z_nat, f.z_adv[:100], f.y, y_adv=f.y[:100],
                probs=f.probs_nat, probs_adv=f.probs_adv[:100])     # one t-SNE map
    sweep = rdiv_vs_eps({"NAT": nat, "AT": at}, test, PGD(eps=0.1, steps=10), [0, 0.05, 0.1])
    cb = RDivCallback(test, PGD(eps=0.1, steps=10), n=1000)         # Trainer callback
    a = attributions(model, x, y, method="integrated_gradients")     # captum, x's shape
    attribution_alignment(a, x, reference="edges").mean               # |a| vs Sobel edges

Every result has ``to_dict()``; :mod:`robustviz.figures` draws them.
"""
from robustviz.diagnostics._callback import RDivCallback
from robustviz.diagnostics._divergence import DivergenceResult, divergence
from robustviz.diagnostics._embed import UMAP_PAPER004, EmbeddingResult, embed, entropy
from robustviz.diagnostics._features import AttackedFeatures, attacked_features
from robustviz.diagnostics._pairs import PairDistances, PairHistogram, pair_distances
from robustviz.diagnostics._selection import SelectionStats, selection_stats
from robustviz.diagnostics._sweep import EpsSweep, attack_at_eps, rdiv_vs_eps

__all__ = [
    "divergence", "DivergenceResult",
    "pair_distances", "PairDistances", "PairHistogram",
    "embed", "EmbeddingResult", "entropy", "UMAP_PAPER004",
    "selection_stats", "SelectionStats",
    "attacked_features", "AttackedFeatures",
    "RDivCallback",
    "rdiv_vs_eps", "EpsSweep", "attack_at_eps",
    "feature_inversion", "representation_inversion", "InversionResult",
    "weight_landscape", "interpolation_landscape", "input_landscape", "random_directions", "Landscape",
    "attributions", "attribution_alignment", "AttributionAlignment", "attribution_maps",
    "AttributionMaps", "edge_map", "object_mask",
]
from robustviz.diagnostics._inversion import InversionResult, feature_inversion, representation_inversion  # noqa: E402
from robustviz.diagnostics._landscape import (Landscape, input_landscape, interpolation_landscape,  # noqa: E402
                                              random_directions, weight_landscape)
from robustviz.diagnostics._attributions import (AttributionAlignment, AttributionMaps,  # noqa: E402
                                                 attribution_alignment, attribution_maps,
                                                 attributions, edge_map, object_mask)
