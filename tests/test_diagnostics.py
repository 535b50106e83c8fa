"""Latent-space diagnostics: values known on paper, properties, and cross-checks against
scikit-learn / SciPy."""
from __future__ import annotations

import dataclasses
import json
import math
import sys

import numpy as np
import pytest
import torch
from scipy.stats import entropy as scipy_entropy
from scipy.stats import spearmanr
from sklearn.metrics import pairwise_distances
from sklearn.metrics.pairwise import cosine_similarity
from sklearn.neighbors import KNeighborsClassifier

from robustviz.diagnostics import (RDivCallback, attack_at_eps, attacked_features, divergence,
                                   embed, entropy, pair_distances, rdiv_vs_eps, selection_stats)
from robustviz.diagnostics._class_distances import _class_sums
from robustviz.diagnostics._sweep import _spearman
from robustviz.runs import append_metrics, read_metrics

SQ2 = math.sqrt(2.0)


# --------------------------------------------------------------------------- fixtures
def _toy():
    """2 classes x 2 examples in 2-D; the adversarial features of examples 0 and 3 jump to
    the other class's direction. Worked out by hand in test_divergence_hand_built."""
    zn = torch.tensor([[1.0, 0], [1, 0], [0, 1], [0, 1]], dtype=torch.float64)
    za = torch.tensor([[0.0, 1], [1, 0], [0, 1], [1, 0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1])
    return zn, za, y


def _random(n=120, d=12, c=4, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(c, d)) * 2
    y = rng.integers(0, c, n)
    zn = centers[y] + rng.normal(size=(n, d))
    za = zn + 0.8 * rng.normal(size=(n, d))
    return zn.astype(dtype), za.astype(dtype), y


def _brute(zn, za, y, metric):
    """d_a+, d_a- from scikit-learn's full distance matrix, by the paper's definition."""
    n = len(y)
    Z = zn if za is None else np.concatenate([zn, za])
    yy = y if za is None else np.concatenate([y, y])
    jj = np.arange(n) if za is None else np.concatenate([np.arange(n)] * 2)
    D = pairwise_distances(zn, Z, metric=metric)
    pos, neg = [], []
    for i in range(n):
        keep = jj != i
        p, q = keep & (yy == y[i]), keep & (yy != y[i])
        if p.any():
            pos.append(D[i, p].mean())
        if q.any():
            neg.append(D[i, q].mean())
    return float(np.mean(pos)), float(np.mean(neg))


# --------------------------------------------------------------------------- divergence
def test_divergence_hand_built():
    # anchor 0: positives {x1, x'1} at distances 0, 0; negatives {x2, x3, x'2, x'3}: 1,1,1,0
    # anchor 1: positives {x0, x'0}: 0, 1;   anchor 2: {x3, x'3}: 0, 1;   anchor 3: {x2, x'2}: 0, 0
    # every anchor's negatives average 3/4  =>  d+ = 1/4, d- = 3/4, R-DIV = 1/3
    zn, za, y = _toy()
    r = divergence(zn, za, y, n_boot=0)
    assert r.d_pos == pytest.approx(0.25)
    assert r.d_neg == pytest.approx(0.75)
    assert r.rdiv == pytest.approx(1 / 3)
    np.testing.assert_allclose(r.anchor_pos, [0, 0.5, 0.5, 0], atol=1e-12)
    np.testing.assert_allclose(r.anchor_neg, [0.75] * 4, atol=1e-12)
    np.testing.assert_allclose(r.class_matrix, [[0.25, 0.75], [0.75, 0.25]], atol=1e-12)
    np.testing.assert_allclose(r.per_class_rdiv, [1 / 3, 1 / 3])
    assert r.adversarial and r.mode == "exact" and r.distance == "cosine"
    # orthogonal unit vectors are sqrt(2) apart: every distance scales by sqrt(2)
    l2 = divergence(zn, za, y, distance="l2", n_boot=0)
    assert (l2.d_pos, l2.d_neg) == (pytest.approx(SQ2 / 4), pytest.approx(3 * SQ2 / 4))
    assert l2.rdiv == pytest.approx(1 / 3)
    # clean-only variant: classes are single points, one unit of cosine distance apart
    clean = divergence(zn, None, y, n_boot=0)
    assert (clean.d_pos, clean.d_neg, clean.rdiv) == (0.0, pytest.approx(1.0), 0.0)
    assert not clean.adversarial


def test_divergence_unequal_classes_and_anchors_without_positives():
    # 1-D points 0, 2 (class 0), 5 (class 1), 9 (class 2); L2, clean-only.
    # anchor 0: pos {2} -> 2, neg {5, 9} -> 7;  anchor 1: pos {0} -> 2, neg {5, 9} -> 5
    # anchor 2: no positive, neg {0, 2, 9} -> 4;  anchor 3: no positive, neg {0, 2, 5} -> 20/3
    z = torch.tensor([[0.0], [2.0], [5.0], [9.0]])
    y = torch.tensor([0, 0, 1, 2])
    r = divergence(z, None, y, distance="l2", n_boot=0)
    assert r.d_pos == pytest.approx(2.0)
    assert r.d_neg == pytest.approx((7 + 5 + 4 + 20 / 3) / 4)
    assert r.rdiv == pytest.approx(2.0 / ((7 + 5 + 4 + 20 / 3) / 4))
    nan = np.nan
    np.testing.assert_allclose(r.class_matrix, [[2, 4, 8], [4, nan, 4], [8, 4, nan]])
    np.testing.assert_allclose(r.per_class_pos, [2, nan, nan])
    np.testing.assert_allclose(r.per_class_neg, [6, 4, 20 / 3])
    assert np.isnan(r.anchor_pos[2:]).all()


@pytest.mark.parametrize("distance,metric", [("cosine", "cosine"), ("l2", "euclidean")])
@pytest.mark.parametrize("adversarial", [True, False])
def test_divergence_matches_sklearn_pairwise_distances(distance, metric, adversarial):
    zn, za, y = _random()
    za = za if adversarial else None
    r = divergence(zn, za, y, distance=distance, n_boot=0, block_size=7)
    p, q = _brute(zn, za, y, metric)
    assert r.d_pos == pytest.approx(p, rel=1e-10)
    assert r.d_neg == pytest.approx(q, rel=1e-10)
    assert r.rdiv == pytest.approx(p / q, rel=1e-10)
    # float32 features give the same numbers to float32 accuracy
    r32 = divergence(torch.tensor(zn, dtype=torch.float32),
                     None if za is None else torch.tensor(za, dtype=torch.float32),
                     torch.tensor(y), distance=distance, n_boot=0)
    assert r32.rdiv == pytest.approx(p / q, rel=1e-4)


def test_cosine_blocked_and_linear_class_sums_agree():
    zn, za, y = _random(n=90, c=3)
    zn, za, yt = torch.tensor(zn), torch.tensor(za), torch.tensor(y)
    a = _class_sums(zn, za, yt, 3, "cosine", 11, blocked=True)
    b = _class_sums(zn, za, yt, 3, "cosine", None, blocked=False)
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
    # the block size never changes the L2 result
    c1 = _class_sums(zn, za, yt, 3, "l2", 1)
    c2 = _class_sums(zn, za, yt, 3, "l2", None)
    np.testing.assert_allclose(c1, c2, rtol=1e-12)


@pytest.mark.parametrize("distance", ["cosine", "l2"])
def test_exact_equals_minibatch_when_batch_is_everything(distance):
    zn, za, y = _random(n=100)
    ex = divergence(zn, za, y, distance=distance, n_boot=0)
    mb = divergence(zn, za, y, distance=distance, mode="minibatch", batch_size=100, n_boot=0)
    assert mb.n_batches == 1 and mb.batch_size == 100 and ex.batch_size is None
    assert mb.d_pos == pytest.approx(ex.d_pos, rel=1e-12)
    assert mb.d_neg == pytest.approx(ex.d_neg, rel=1e-12)
    np.testing.assert_allclose(mb.class_matrix, ex.class_matrix, rtol=1e-12)


def test_minibatch_is_the_mean_over_batches():
    zn, za, y = _random(n=200)
    mb = divergence(zn, za, y, mode="minibatch", batch_size=50, shuffle=False, n_boot=0)
    parts = [divergence(zn[s:s + 50], za[s:s + 50], y[s:s + 50], n_boot=0)
             for s in range(0, 200, 50)]
    assert mb.n_batches == 4
    assert mb.d_pos == pytest.approx(np.mean([p.d_pos for p in parts]), rel=1e-12)
    assert mb.d_neg == pytest.approx(np.mean([p.d_neg for p in parts]), rel=1e-12)
    assert mb.rdiv == pytest.approx(mb.d_pos / mb.d_neg)
    # shuffling is seeded: same seed, same numbers; another seed, other batches
    a = divergence(zn, za, y, mode="minibatch", batch_size=50, seed=3, n_boot=0)
    b = divergence(zn, za, y, mode="minibatch", batch_size=50, seed=3, n_boot=0)
    c = divergence(zn, za, y, mode="minibatch", batch_size=50, seed=4, n_boot=0)
    assert a.rdiv == b.rdiv and a.rdiv != c.rdiv


def test_cosine_is_scale_invariant_and_l2_scales():
    zn, za, y = _random()
    base = divergence(zn, za, y, n_boot=0)
    rng = np.random.default_rng(1)
    # cosine ignores every row's own positive scale, not only a global one
    s1, s2 = rng.uniform(0.1, 10, (len(y), 1)), rng.uniform(0.1, 10, (len(y), 1))
    scaled = divergence(zn * s1, za * s2, y, n_boot=0)
    assert scaled.d_pos == pytest.approx(base.d_pos, rel=1e-10)
    assert scaled.d_neg == pytest.approx(base.d_neg, rel=1e-10)
    l2 = divergence(zn, za, y, distance="l2", n_boot=0)
    l2s = divergence(3.5 * zn, 3.5 * za, y, distance="l2", n_boot=0)
    assert l2s.d_pos == pytest.approx(3.5 * l2.d_pos, rel=1e-10)
    assert l2s.rdiv == pytest.approx(l2.rdiv, rel=1e-10)


@pytest.mark.parametrize("distance", ["cosine", "l2"])
def test_swap_symmetry_under_an_isometric_involution(distance):
    # With z_adv = z_nat R for an orthogonal R with R^2 = I (a reflection), swapping the
    # roles maps anchors and sets by R, which preserves distances: results coincide.
    zn, _, y = _random()
    v = np.random.default_rng(2).normal(size=(zn.shape[1], 1))
    R = np.eye(zn.shape[1]) - 2 * v @ v.T / (v.T @ v)
    za = zn @ R
    a = divergence(zn, za, y, distance=distance, n_boot=0)
    b = divergence(za, zn, y, distance=distance, n_boot=0)
    assert a.d_pos == pytest.approx(b.d_pos, rel=1e-10)
    assert a.d_neg == pytest.approx(b.d_neg, rel=1e-10)
    # for generic adversarial features the anchors (always natural) matter
    zn2, za2, y2 = _random()
    za2 = za2 * np.linspace(0.2, 3.0, za2.shape[1])
    g1 = divergence(zn2, za2, y2, distance=distance, n_boot=0)
    g2 = divergence(za2, zn2, y2, distance=distance, n_boot=0)
    assert abs(g1.rdiv - g2.rdiv) > 1e-3


def test_label_permutation_permutes_class_matrix():
    zn, za, y = _random(c=4)
    perm = np.array([2, 0, 3, 1])
    a = divergence(zn, za, y, n_boot=0)
    b = divergence(zn, za, perm[y], n_boot=0)
    assert b.rdiv == pytest.approx(a.rdiv, rel=1e-12)
    np.testing.assert_allclose(b.class_matrix[np.ix_(perm, perm)], a.class_matrix, rtol=1e-12)


def test_bootstrap_interval():
    zn, za, y = _random(n=200)
    r = divergence(zn, za, y, n_boot=300, seed=5)
    assert r.ci[0] < r.rdiv < r.ci[1]
    assert r.ci_pos[0] < r.d_pos < r.ci_pos[1] and r.ci_neg[0] < r.d_neg < r.ci_neg[1]
    assert divergence(zn, za, y, n_boot=300, seed=5).ci == r.ci          # seeded
    big = divergence(*_random(n=1600), n_boot=300, seed=5)
    assert (big.ci[1] - big.ci[0]) < 0.6 * (r.ci[1] - r.ci[0])           # ~ 1/sqrt(N)
    assert divergence(zn, za, y, n_boot=0).ci is None
    mb = divergence(zn, za, y, mode="minibatch", batch_size=40, n_boot=200)
    assert mb.ci is not None and mb.ci[0] <= mb.rdiv <= mb.ci[1]
    d = r.to_dict()
    json.dumps(d)
    assert "anchor_pos" not in d and len(r.to_dict(include_anchors=True)["anchor_pos"]) == 200
    # NaN (a class without positives) becomes null in JSON
    one = divergence(torch.tensor([[0.0], [2.0], [5.0]]), None, torch.tensor([0, 0, 1]), n_boot=0)
    assert json.loads(json.dumps(one.to_dict()))["per_class_pos"][1] is None


def _gauss_classes(rng, n, centers, adv_noise=0.7):
    C, d = centers.shape
    y = np.arange(n) % C
    zn = centers[y] + rng.normal(size=(n, d))
    return zn, zn + adv_noise * rng.normal(size=(n, d)), y


def test_exact_mode_interval_covers_the_true_rdiv():
    """Simulation with known ground truth: 10 Gaussian classes (centres N(0, I_8), unit
    within-class noise, adversarial features = natural + 0.7 N(0, I)), N = 300. The truth is
    R-DIV (Bui et al., arXiv:2101.10027, Section 2) of the same distribution at N = 20,000.
    A nominal 95% interval must cover it at least 90% of the time over 200 samples. (The old
    bootstrap over anchors, whose means share pairs, covered 80% (160/200) here.) The interval
    must not be trivially wide either: its mean width stays within 1.6x the width the
    sampling spread calls for."""
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(10, 8))
    truth = divergence(*_gauss_classes(np.random.default_rng(123), 20000, centers), n_boot=0).rdiv
    hits, values, widths = 0, [], []
    for r in range(200):
        res = divergence(*_gauss_classes(rng, 300, centers), n_boot=200, seed=r)
        assert res.ci[0] < res.rdiv < res.ci[1]
        hits += res.ci[0] <= truth <= res.ci[1]
        values.append(res.rdiv)
        widths.append(res.ci[1] - res.ci[0])
    assert hits / 200 >= 0.90, hits / 200
    assert np.mean(widths) <= 1.6 * 2 * 1.96 * np.std(values)
    assert res.ci_method == "jackknife"


@pytest.mark.parametrize("distance", ["cosine", "l2"])
@pytest.mark.parametrize("adversarial", [True, False])
def test_jackknife_interval_matches_recomputing_without_each_group(distance, adversarial):
    """The one-pass jackknife equals R-DIV recomputed from scratch on the points left after
    deleting each group (as anchors and as set members), combined by the delete-a-group
    jackknife: theta +- t_{G-1, 0.975} sqrt((G-1)/G sum_g (theta_(g) - mean)^2)."""
    from scipy.stats import t as student_t

    from robustviz.diagnostics._divergence_ci import _groups
    zn, za, y = _random(n=90, c=3, seed=4)
    za = za if adversarial else None
    G = 6
    res = divergence(zn, za, y, distance=distance, n_boot=1, seed=7, jackknife_groups=G, block_size=11)
    group = _groups(90, G, 7)
    assert np.bincount(group).tolist() == [15] * 6
    for k, attr in enumerate(("rdiv", "d_pos", "d_neg")):
        thetas = []
        for g in range(G):
            keep = group != g
            sub = divergence(zn[keep], None if za is None else za[keep], y[keep], distance=distance, n_boot=0)
            thetas.append(getattr(sub, attr))
        thetas = np.array(thetas)
        se = math.sqrt((G - 1) / G * ((thetas - thetas.mean()) ** 2).sum())
        half = student_t.ppf(0.975, G - 1) * se
        ci = (res.ci, res.ci_pos, res.ci_neg)[k]
        full = getattr(res, attr)
        assert ci == pytest.approx((full - half, full + half), rel=1e-9)
    assert res.jackknife_groups == G and res.to_dict()["ci_method"] == "jackknife"
    # the point estimate does not depend on whether an interval was asked for
    assert res.rdiv == pytest.approx(divergence(zn, za, y, distance=distance, n_boot=0).rdiv, rel=1e-12)
    mb = divergence(zn, za, y, distance=distance, mode="minibatch", batch_size=30, n_boot=50)
    assert mb.ci_method == "bootstrap" and mb.jackknife_groups is None
    with pytest.raises(ValueError, match="jackknife_groups"):
        divergence(zn, za, y, jackknife_groups=1)
    # the interval's Student t quantile (closed form + bisection) agrees with SciPy's
    from robustviz.diagnostics._divergence_ci import _t_quantile
    for df in (1, 2, 3, 4, 5, 19, 40, 101):
        for level in (0.8, 0.95, 0.99):
            assert _t_quantile(level, df) == pytest.approx(student_t.ppf(0.5 + level / 2, df), rel=1e-9)


def test_divergence_validation():
    zn, za, y = _toy()
    with pytest.raises(ValueError, match="z_nat"):
        divergence(torch.ones(4), None, y)
    with pytest.raises(ValueError, match="z_adv"):
        divergence(zn, za[:3], y)
    with pytest.raises(TypeError, match="y"):
        divergence(zn, za, y.float())
    with pytest.raises(ValueError, match="y"):
        divergence(zn, za, y[:3])
    with pytest.raises(ValueError, match="two classes"):
        divergence(zn, za, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="positive"):
        divergence(zn[1:], za[1:], torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="distance"):
        divergence(zn, za, y, distance="manhattan")
    with pytest.raises(ValueError, match="mode"):
        divergence(zn, za, y, mode="batch")
    with pytest.raises(ValueError, match="batch_size"):
        divergence(zn, za, y, mode="minibatch", batch_size=1)
    with pytest.raises(ValueError, match="NaN"):
        divergence(zn * float("nan"), za, y)
    with pytest.raises(TypeError, match="z_nat"):
        divergence([[1.0, 2.0]], None, y)
    with pytest.raises(TypeError, match="n_boot"):
        divergence(zn, za, y, n_boot=1.5)
    with pytest.raises(ValueError, match="batch_size"):  # no batch holds a positive
        divergence(zn, None, torch.tensor([0, 1, 0, 1]), mode="minibatch", batch_size=2,
                   shuffle=False)


# --------------------------------------------------------------------------- pairs
def test_pair_distances_hand_built():
    zn = torch.tensor([[1.0, 0], [0, 2]])
    za = torch.tensor([[0.0, 1], [0, 1]])
    r = pair_distances(zn, za, torch.tensor([0, 1]))
    np.testing.assert_allclose(r.pos_cosine, [0, 1], atol=1e-12)
    np.testing.assert_allclose(r.pos_l2, [SQ2, 1])
    np.testing.assert_array_equal(r.neg_index, [1, 0])     # the only other-class example
    np.testing.assert_allclose(r.neg_cosine, [0, 0], atol=1e-12)
    np.testing.assert_allclose(r.neg_l2, [math.sqrt(5)] * 2)
    assert r.negatives == "random"


def test_random_negatives_are_other_class_uniform_and_seeded():
    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 20).repeat(30)
    z = torch.randn(len(y), 3, generator=torch.Generator().manual_seed(0))
    r = pair_distances(z, z, y, seed=1)
    idx = torch.from_numpy(r.neg_index.copy())
    assert (y[idx] != y).all()
    # anchors of class 0 draw among the 1,500 examples of classes 1 and 2: 60% / 40%
    frac = (y[idx][y == 0] == 1).float().mean().item()
    assert abs(frac - 0.6) < 0.05
    np.testing.assert_array_equal(pair_distances(z, z, y, seed=1).neg_index, r.neg_index)
    assert (pair_distances(z, z, y, seed=2).neg_index != r.neg_index).any()
    np.testing.assert_allclose(r.neg_cosine, cosine_similarity(z, z[idx]).diagonal(), atol=1e-6)


def test_pair_distances_given_negatives_and_histogram():
    zn, za, y = _random(n=200)
    zneg = np.roll(zn, 1, axis=0)
    yneg = np.roll(y, 1)
    ok = yneg != y
    r = pair_distances(zn[ok], za[ok], y[ok], z_neg=zneg[ok], y_neg=yneg[ok])
    assert r.negatives == "given" and (r.neg_index == -1).all()
    np.testing.assert_allclose(r.pos_cosine, cosine_similarity(zn[ok], za[ok]).diagonal())
    np.testing.assert_allclose(r.neg_l2, np.linalg.norm(zn[ok] - zneg[ok], axis=1))
    h = r.histogram("cosine", bins=20)
    assert h.edges.shape == (21,) and h.pos.shape == h.neg.shape == (20,)
    assert (h.pos * h.widths).sum() == pytest.approx(1.0)      # densities integrate to 1
    assert (h.neg * h.widths).sum() == pytest.approx(1.0)
    assert h.edges[0] == pytest.approx(min(r.pos_cosine.min(), r.neg_cosine.min()))
    counts = r.histogram("l2", bins=7, density=False, range=(0, 100))
    assert counts.pos.sum() == ok.sum() and counts.edges[-1] == 100
    json.dumps(counts.to_dict())
    json.dumps(r.to_dict())
    with pytest.raises(ValueError, match="y_neg"):
        pair_distances(zn, za, y, z_neg=zn, y_neg=y)
    with pytest.raises(ValueError, match="y_neg"):
        pair_distances(zn, za, y, y_neg=y)
    with pytest.raises(ValueError, match="metric"):
        r.histogram("dot")
    with pytest.raises(ValueError, match="z_adv"):
        pair_distances(zn, za[:5], y)


# --------------------------------------------------------------------------- embed
def _blobs(n_per=100, c=3, d=20, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(c, d)) * 8
    y = np.repeat(np.arange(c), n_per)
    z = centers[y] + rng.normal(size=(len(y), d))
    probs = rng.dirichlet(np.ones(c), size=len(y))
    return z, y, centers, probs, rng


def test_embed_opentsne_one_map_entropy_and_transform():
    z, y, centers, probs, rng = _blobs()
    adv = z[:30] + 0.2 * rng.normal(size=(30, z.shape[1]))
    r = embed(z, adv, y, y_adv=y[:30], probs=probs, probs_adv=probs[:30], n_iter=100,
              early_exaggeration_iter=100, n_jobs=1, seed=0)
    assert r.backend == "opentsne" and r.coords.shape == (330, 2)
    assert (r.n_clean, r.n_adv) == (300, 30) and r.is_adv[300:].all() and not r.is_adv[:300].any()
    np.testing.assert_array_equal(r.labels, np.concatenate([y, y[:30]]))
    np.testing.assert_allclose(r.entropy[:300], scipy_entropy(probs.T))
    # the map keeps the blobs apart and adversarial points land in their own cluster
    knn = KNeighborsClassifier(5).fit(r.coords[:300], y)
    assert knn.score(r.coords[300:], y[:30]) == 1.0
    # new points near each centre are placed into the existing map next to their cluster
    new = r.transform(centers + 0.1 * rng.normal(size=centers.shape), y=[0, 1, 2],
                      probs=np.full((3, 3), 1 / 3))
    assert new.n_adv == 3 and new.coords.shape == (3, 2)
    np.testing.assert_array_equal(knn.predict(new.coords), [0, 1, 2])
    np.testing.assert_allclose(new.entropy, np.log(3))
    both = r.concat(new)
    assert both.n == 333 and both.entropy.shape == (333,)
    np.testing.assert_array_equal(both.coords[:330], r.coords)
    again = embed(z, adv, y, y_adv=y[:30], n_iter=100, early_exaggeration_iter=100, n_jobs=1,
                  seed=0)
    np.testing.assert_allclose(again.coords, r.coords)            # same seed, same map
    json.dumps(r.to_dict())
    with pytest.raises(ValueError, match="features"):
        r.transform(np.zeros((2, 5)))


def test_cluster_of_matches_scikit_learn_knn_and_own_cluster_share_is_analytic():
    from robustviz.diagnostics import EmbeddingResult

    rng = np.random.default_rng(0)
    coords = rng.normal(size=(400, 2)) * 3
    labels = rng.integers(0, 4, 400)
    is_adv = np.arange(400) >= 300
    r = EmbeddingResult(coords, labels, is_adv, None, "tsne", "opentsne", {})
    for k in (1, 4, 10):   # random labels: many close votes, so ties are exercised too
        knn = KNeighborsClassifier(n_neighbors=k).fit(coords[:300], labels[:300])
        np.testing.assert_array_equal(r.cluster_of(k=k), knn.predict(coords[300:]))
        assert r.own_cluster_share(k=k) == pytest.approx(knn.score(coords[300:], labels[300:]))
    # two far-apart clusters: 3 of 4 adversarial points sit in their own, 1 in the other
    two = np.concatenate([np.zeros((10, 2)), np.full((10, 2), 100.0), [[1, 0], [99, 99], [0, 1], [100, 101]]])
    lab = np.array([0] * 10 + [1] * 10 + [0, 1, 1, 1])
    t = EmbeddingResult(two, lab, np.arange(24) >= 20, None, "tsne", "opentsne", {})
    assert t.cluster_of().tolist() == [0, 1, 0, 1] and t.own_cluster_share() == 0.75
    moved = dataclasses.replace(t, coords=np.array([[100.0, 100.0]]), labels=np.array([0]),
                                is_adv=np.array([True]))
    assert t.own_cluster_share(moved) == 0.0 and t.cluster_of(moved, k=3).tolist() == [1]
    with pytest.raises(ValueError, match="k must"):
        t.cluster_of(k=21)
    with pytest.raises(ValueError, match="true label"):
        t.own_cluster_share(dataclasses.replace(moved, labels=np.array([-1])))
    with pytest.raises(TypeError, match="EmbeddingResult"):
        t.cluster_of(two)
    with pytest.raises(ValueError, match="no adversarial"):
        dataclasses.replace(t, is_adv=np.zeros(24, bool)).own_cluster_share()


def test_embed_sklearn_backend_and_fallback(monkeypatch):
    z, y, _, _, _ = _blobs(n_per=40)
    r = embed(z, None, y, backend="sklearn", n_iter=50, seed=0, n_jobs=1)
    assert r.backend == "sklearn" and r.coords.shape == (120, 2)
    assert KNeighborsClassifier(5).fit(r.coords, y).score(r.coords, y) > 0.95
    with pytest.raises(NotImplementedError, match="openTSNE"):
        r.transform(z[:2])
    monkeypatch.setitem(sys.modules, "openTSNE", None)       # as if it were not installed
    with pytest.warns(RuntimeWarning, match="openTSNE"):
        fb = embed(z[:30], None, y[:30], n_iter=1, seed=0, n_jobs=1)
    assert fb.backend == "sklearn"
    with pytest.raises(ImportError, match="openTSNE"):
        embed(z, None, y, backend="opentsne")


def test_embed_validation_and_entropy():
    z, y, _, probs, _ = _blobs(n_per=10)
    with pytest.raises(ValueError, match="logits"):
        embed(z, None, y, probs=np.log(probs))
    with pytest.raises(ValueError, match="probs_adv"):
        embed(z, z, y, probs=probs)
    with pytest.raises(ValueError, match="y_adv"):
        embed(z, z[:5], y)
    with pytest.raises(ValueError, match="preset"):
        embed(z, None, y, preset="paper004")
    with pytest.raises(ValueError, match="method"):
        embed(z, None, y, method="pca")
    with pytest.raises(TypeError, match="labels"):
        embed(z, None)
    np.testing.assert_allclose(entropy(np.eye(3)), 0.0)
    np.testing.assert_allclose(entropy(np.full((2, 4), 0.25)), np.log(4))


@pytest.mark.slow
def test_embed_umap_transform_and_paper004_preset():
    z, y, centers, _, rng = _blobs(n_per=60)
    r = embed(z, z[:20] + 0.2, y, y_adv=y[:20], method="umap", seed=0)
    assert r.backend == "umap-learn" and r.coords.shape == (200, 2)
    knn = KNeighborsClassifier(5).fit(r.coords[:180], y)
    assert knn.score(r.coords[180:], y[:20]) == 1.0
    new = r.transform(centers, y=[0, 1, 2])
    np.testing.assert_array_equal(knn.predict(new.coords), [0, 1, 2])
    p = embed(z, None, y, method="umap", preset="paper004", seed=0)
    assert (p.model.n_neighbors, p.model.min_dist, p.model.metric, p.model.densmap) == \
        (12, 0.01, "correlation", True)
    assert not p.can_transform
    with pytest.raises(NotImplementedError, match="densMAP"):
        p.transform(z[:2])


# --------------------------------------------------------------------------- selection
def test_selection_stats_from_run_and_records(tmp_path):
    for e in (1, 2, 3):
        append_metrics(tmp_path, {"kind": "epoch", "epoch": e, "loss": 1.0,
                                  "train_pos_per_anchor": 26.0 - e,
                                  "train_neg_per_anchor": 228.0 - 10 * e})
    s = selection_stats(tmp_path)
    assert s.name == tmp_path.name and s.x_label == "epoch" and s.source == "epoch"
    np.testing.assert_allclose(s.pos, [25, 24, 23])
    np.testing.assert_allclose(s.neg, [218, 208, 198])
    assert s.final == (23.0, 198.0)
    steps = [{"kind": "train_step", "epoch": 1 + i // 2, "step": i, "pos_per_anchor": float(i),
              "neg_per_anchor": 10.0 * i} for i in range(4)]
    per_epoch = selection_stats(steps, name="leaked")
    np.testing.assert_allclose(per_epoch.x, [1, 2])
    np.testing.assert_allclose(per_epoch.pos, [0.5, 2.5])
    per_step = selection_stats(steps, per_epoch=False)
    assert per_step.x_label == "step" and per_step.neg.tolist() == [0, 10, 20, 30]
    json.dumps(per_step.to_dict())
    with pytest.raises(ValueError, match="pos_per_anchor"):
        selection_stats([{"kind": "epoch", "epoch": 1, "loss": 1.0}])
    with pytest.raises(FileNotFoundError):
        selection_stats(tmp_path / "missing")


# --------------------------------------------------------------------------- model-level
@pytest.fixture(scope="module")
def digits_model():
    import robustviz as rv

    data = rv.data.load("digits", "test")
    model = rv.models.build("tinycnn", num_classes=10, in_channels=1, input_size=8, seed=0)
    # a few quick steps so the features mean something (deterministic on CPU)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    tr = rv.data.load("digits", "train")
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(40):
        idx = torch.randint(0, len(tr), (64,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(tr.x[idx]), tr.y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model, data


def test_attacked_features_and_callback(digits_model, tmp_path):
    from robustviz.attacks import PGD

    model, data = digits_model
    atk = PGD(eps=0.1, steps=5)
    model.train()                                     # as the trainer calls it
    cb = RDivCallback(data, atk, n=150, seed=0)
    rng_before = torch.get_rng_state()
    out = cb(model=model, epoch=1, run_dir=tmp_path)
    assert torch.equal(torch.get_rng_state(), rng_before)    # training RNG untouched
    assert model.training and all(m.training for m in model.modules())
    assert not {"kind", "epoch"} & set(out)                  # reserved epoch-record keys
    assert set(out) == {"rdiv", "rdiv_clean", "d_pos", "d_neg", "rdiv_clean_acc",
                        "rdiv_robust_acc"}
    # the same numbers from the public building blocks, on the same fixed subset
    f = attacked_features(model, (cb.x, cb.y), atk, seed=0)
    ref = divergence(f.z_nat, f.z_adv, f.y, n_boot=0)
    assert out["rdiv"] == pytest.approx(ref.rdiv, rel=1e-6)
    assert out["d_pos"] == pytest.approx(ref.d_pos, rel=1e-6)
    assert out["rdiv_clean"] == pytest.approx(divergence(f.z_nat, None, f.y, n_boot=0).rdiv)
    assert out["rdiv_robust_acc"] <= out["rdiv_clean_acc"] == pytest.approx(f.clean_acc)
    assert out["rdiv_clean_acc"] > 0.5                        # the model learned something
    rec = read_metrics(tmp_path, kind="rdiv")
    assert len(rec) == 1 and rec[0]["epoch"] == 1 and rec[0]["n"] == 150
    assert rec[0]["rdiv"] == pytest.approx(out["rdiv"])
    assert cb(model=model, epoch=2, run_dir=None) == out        # fixed subset and seed
    every = RDivCallback(data, atk, n=40, every=2)
    assert every(model=model, epoch=1) is None and every(model=model, epoch=2) is not None
    # any callable attack works; the identity "attack" leaves robust = clean accuracy
    ident = RDivCallback(data, lambda m, x, y: x, n=60)(model=model, epoch=1)
    assert ident["rdiv_robust_acc"] == ident["rdiv_clean_acc"]
    with pytest.raises(TypeError, match="attack"):
        RDivCallback(data, None)
    with pytest.raises(TypeError, match="data"):
        RDivCallback(data.x, atk)


def test_rdiv_vs_eps_sweep(digits_model):
    from robustviz.attacks import PGD

    model, data = digits_model
    eps = [0.0, 0.05, 0.15, 0.3]
    s = rdiv_vs_eps({"a": model}, data, PGD(eps=0.1, step_size=0.025, steps=5), eps, n=120,
                    n_boot=50)
    assert s.models == ("a",) and s.rdiv.shape == (1, 4) and s.rdiv_ci.shape == (1, 4, 2)
    # eps = 0 is the clean set {x_j, x_j}; robust accuracy starts at clean accuracy and falls
    f = attacked_features(model, data, None)
    assert s.robust_acc[0, 0] == pytest.approx(s.clean_acc[0])
    assert (np.diff(s.robust_acc[0]) <= 1e-9).all() and s.robust_acc[0, -1] < s.clean_acc[0]
    assert s.trend()["a"] > 0                                  # R-DIV grows with eps
    assert s.results["a"][2].rdiv == s.rdiv[0, 2]
    assert f.z_nat.shape[0] == len(data)
    json.dumps(s.to_dict())
    assert s.row("a")["rdiv"].shape == (4,)


def test_attack_at_eps_and_spearman():
    from robustviz.attacks import PGD

    a = PGD(eps=0.1, step_size=0.02, steps=5)
    b = attack_at_eps(a, 0.2)
    assert b.eps == 0.2 and b.step_size == pytest.approx(0.04) and b.steps == 5
    assert attack_at_eps(a, 0.2, scale_step=False).step_size == 0.02
    assert attack_at_eps(PGD(eps=0.1), 0.3).step_size is None
    assert attack_at_eps(a, 0) is None
    assert attack_at_eps(lambda e: ("made", e), 0.5) == ("made", 0.5)
    with pytest.raises(TypeError, match="eps"):
        attack_at_eps(3, 0.1)
    rng = np.random.default_rng(0)
    for _ in range(5):
        u, v = rng.normal(size=8), rng.integers(0, 4, 8).astype(float)   # with ties
        assert _spearman(u, v) == pytest.approx(spearmanr(u, v).statistic)


def test_fixed_step_size_at_every_eps(digits_model, monkeypatch):
    """Paper 001 (Bui et al., arXiv:2101.10027) Fig. 4 attacks with PGD k = 250 and step
    2/255 at every eps: the sweep can hold the step fixed instead of scaling it with eps."""
    from robustviz.attacks import PGD, Adaptive
    import robustviz.diagnostics._sweep as sweep_mod

    a = PGD(eps=0.1, step_size=0.025, steps=250)
    for e in (0.05, 0.3):
        assert attack_at_eps(a, e, step_size=2 / 255).step_size == 2 / 255
        assert attack_at_eps(a, e, step_size=2 / 255).eps == e
        assert attack_at_eps(Adaptive(attack=a), e, step_size=2 / 255).attack.step_size == 2 / 255
    assert attack_at_eps(a, 0.3).step_size == pytest.approx(0.075)        # default: scaled
    with pytest.raises(TypeError, match="factory"):
        attack_at_eps(lambda e: a, 0.3, step_size=0.01)
    with pytest.raises(ValueError, match="step_size"):
        attack_at_eps(a, 0.3, step_size=0.0)
    model, data = digits_model
    seen = []
    real = sweep_mod.attacked_features

    def spy(model, data, atk, **kw):
        seen.append(None if atk is None else (atk.eps, atk.step_size))
        return real(model, data, atk, **kw)

    monkeypatch.setattr(sweep_mod, "attacked_features", spy)
    s = rdiv_vs_eps(model, data, PGD(eps=0.1, step_size=0.025, steps=2), [0.0, 0.05, 0.2], n=60,
                    step_size=0.01)
    assert seen == [None, (0.05, 0.01), (0.2, 0.01)]
    assert s.attack["step_rule"] == "fixed 0.01"
    seen.clear()
    s = rdiv_vs_eps(model, data, PGD(eps=0.1, step_size=0.025, steps=2), [0.05, 0.2], n=60)
    assert seen == [(0.05, pytest.approx(0.0125)), (0.2, pytest.approx(0.05))]
    assert s.attack["step_rule"] == "scaled with eps"


def test_rdiv_mode_in_train_config_and_cli(tmp_path, capsys):
    """The per-epoch R-DIV's protocol is chosen in the config and on the command line:
    exact (all pairs) or paper 001's average over mini-batches of 128; the paper-001
    configs evaluate with PGD-250 (step 2/255) as the paper does."""
    from pathlib import Path

    import yaml

    from robustviz.cli import main
    from robustviz.train import TrainConfig

    cfg = TrainConfig(diagnostics={"rdiv_every": 1, "mode": "minibatch", "batch_size": 64, "n_boot": 50})
    assert cfg.diagnostics["mode"] == "minibatch"
    root = Path(__file__).resolve().parents[1] / "configs"
    for name in ("paper001_resnet20_ascl_adv.yaml", "paper001_resnet20_leaked_ascl_trades.yaml"):
        c = TrainConfig.load(root / name)
        assert c.eval["steps"] == 250 and c.eval["step_size"] == pytest.approx(2 / 255, abs=1e-6)
        assert c.diagnostics["mode"] == "minibatch" and c.diagnostics["batch_size"] == 128
        assert c.diagnostics["steps"] == 250
        assert yaml.safe_load((root / name).read_text())["eval"]["steps"] == 250
    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--model", "tinycnn", "--defense", "nat", "--eps", "0.1",
                 "--epochs", "1", "--n-train", "256", "--val-size", "50", "--n-test", "60",
                 "--rdiv-every", "1", "--rdiv-n", "130", "--rdiv-mode", "minibatch",
                 "--device", "cpu", "--no-progress", "--out", str(out)]) == 0
    capsys.readouterr()
    assert TrainConfig.load(out / "train_config.yaml").diagnostics["mode"] == "minibatch"
    rec = read_metrics(out, kind="rdiv")
    assert rec[0]["mode"] == "minibatch" and rec[0]["batch_size"] == 128 and rec[0]["n"] == 130


def test_callback_inside_the_trainer(tmp_path):
    import robustviz as rv
    from robustviz.attacks import PGD

    train = rv.data.load("digits", "train", n=256)
    test = rv.data.load("digits", "test")
    model = rv.models.build("tinycnn", num_classes=10, in_channels=1, input_size=8, seed=0)
    cb = RDivCallback(test, PGD(eps=0.1, steps=3), n=100)
    trainer = rv.train.Trainer(defense=None, epochs=2, lr=0.05, batch_size=64, val_attack=None,
                               progress=False)
    trainer.fit(model, train, run_dir=tmp_path, callbacks=[cb])
    recs = read_metrics(tmp_path, kind="rdiv")
    assert [r["epoch"] for r in recs] == [1, 2]
    epochs = read_metrics(tmp_path, kind="epoch")
    # the trainer merges the returned metrics into its epoch records
    assert [e["rdiv"] for e in epochs] == pytest.approx([r["rdiv"] for r in recs])
    # and the final record matches a fresh computation on the trained model
    assert cb.compute(model)["rdiv"] == pytest.approx(recs[-1]["rdiv"], rel=1e-6)
