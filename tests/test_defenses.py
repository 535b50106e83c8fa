"""Defenses: each term against a direct evaluation of its formula on hand-built batches,
gradient flow (what receives gradient, what is stopped), composition and configs."""
import dataclasses
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import robustviz.defenses as D
from robustviz.attacks import PGD
from robustviz.models import Features, build
from robustviz.models._reverse_attention import ReverseAttention

pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")


# ------------------------------------------------------------------ hand-built pieces ----
class Hand(nn.Module):
    """Logits = the first K coordinates of the flattened image: z = x (the "penultimate"
    feature), classifier = identity rows, so predictions are argmax z[:K]."""

    def __init__(self, d=3, k=3):
        super().__init__()
        self.flat = nn.Flatten()
        self.classifier = nn.Linear(d, k, bias=False)
        with torch.no_grad():
            self.classifier.weight.copy_(torch.eye(k, d))
        self.num_classes = k

    def forward(self, x):
        return self.classifier(self.flat(x))


class FixedAttack:
    """Stand-in attack returning a given x_adv (and counting its calls)."""

    def __init__(self, x_adv):
        self.x_adv, self.calls = x_adv, 0

    def __call__(self, model, x, y, *, generator=None):
        self.calls += 1
        return self.x_adv.clone()


@dataclasses.dataclass(frozen=True)
class RecordingAttack:
    """Dataclass stand-in with the runtime fields the defenses set (bn_mode, bf16)."""

    eps: float = 0.05
    bn_mode: str = "eval"
    bf16: bool = False

    def __call__(self, model, x, y, *, generator=None):
        CALLS.append((self.bn_mode, self.bf16, model))
        return (x + self.eps).clamp(0, 1)


CALLS = []

# The hand batch of the SupCon masks: labels y = [0, 0, 1]; clean predictions [0, 1, 1];
# adversarial predictions [1, 1, 0]. Rows of H = [z(x); z(x')]: 0, 1, 2 clean, 3, 4, 5 adv.
Z_CLEAN = torch.tensor([[1.0, 0.0, 0.0], [0.2, 0.9, 0.0], [0.0, 1.0, 0.1]])
Z_ADV = torch.tensor([[0.1, 0.8, 0.0], [0.0, 0.7, 0.2], [0.9, 0.1, 0.0]])
Y3 = torch.tensor([0, 0, 1])


def _img(z):
    return z.reshape(z.shape[0], 1, 1, -1)


def tiny(seed=0, **kw):
    return build("tinycnn", input_size=8, width=4, hidden=16, seed=seed, **kw)


def batch(n=12, seed=0, classes=4):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g), torch.arange(n) % classes


# ------------------------------------------------------------------------- SupCon ----
# hand counts per anchor (rows 0..5), derived in the module comment above:
HAND_COUNTS = {
    #            positives             negatives
    "global": ([3, 3, 1, 3, 3, 1], [2, 2, 4, 2, 2, 4]),
    "hard":   ([3, 3, 1, 3, 3, 1], [1, 1, 3, 1, 1, 3]),   # neg only if pred_j == y_i
    "soft":   ([3, 3, 1, 3, 3, 1], [1, 1, 3, 1, 1, 1]),   # neg only if pred_j == pred_i
    "leaked": ([1, 2, 1, 3, 2, 1], [1, 1, 3, 1, 1, 1]),   # pos needs pred agreement, partner kept
}


def _hand_labels_preds():
    labels = torch.cat([Y3, Y3])
    preds = torch.cat([Z_CLEAN.argmax(1), Z_ADV.argmax(1)])
    assert preds.tolist() == [0, 1, 1, 1, 1, 0]
    return labels, preds


@pytest.mark.parametrize("selection", D._supcon.SELECTIONS)
def test_supcon_masks_match_hand_counts(selection):
    labels, preds = _hand_labels_preds()
    pos, neg = D.supcon_masks(labels, preds, selection)
    assert pos.sum(1).tolist() == HAND_COUNTS[selection][0]
    assert neg.sum(1).tolist() == HAND_COUNTS[selection][1]
    assert not (pos & neg).any() and not pos.diagonal().any() and not neg.diagonal().any()


def test_supcon_leaked_sets_on_paper():
    labels, preds = _hand_labels_preds()
    pos, neg = D.supcon_masks(labels, preds, "leaked")
    # anchor 3 (adv of 0, label 0, pred 1): its partner 0 (pred 0) plus same-label pred-1 rows 1, 4
    assert pos[3].nonzero().squeeze(1).tolist() == [0, 1, 4]
    # anchor 0 (label 0, pred 0): only its partner; negative: row 5 (label 1, pred 0)
    assert pos[0].nonzero().squeeze(1).tolist() == [3]
    assert neg[0].nonzero().squeeze(1).tolist() == [5]


@pytest.mark.parametrize("selection", D._supcon.SELECTIONS)
def test_supcon_partner_always_positive(selection):
    g = torch.Generator().manual_seed(1)
    b = 20
    y = torch.randint(0, 4, (b,), generator=g)
    labels = torch.cat([y, y])
    preds = torch.randint(0, 4, (2 * b,), generator=g)
    pos, neg = D.supcon_masks(labels, preds, selection)
    i = torch.arange(2 * b)
    assert pos[i, (i + b) % (2 * b)].all()
    # every selection keeps a subset of the global sets
    gpos, gneg = D.supcon_masks(labels, preds, "global")
    assert not (pos & ~gpos).any() and not (neg & ~gneg).any()


def _supcon_per_anchor(h, pos, neg, tau, sim):
    """Direct per-anchor losses L_i with Python floats (0 for an anchor without positives)."""
    m = h.shape[0]
    out = []
    for i in range(m):
        P = [j for j in range(m) if pos[i, j]]
        A = [j for j in range(m) if pos[i, j] or neg[i, j]]
        if not P:
            out.append(0.0)
            continue
        s = [sim(h[i], h[j]) / tau for j in range(m)]
        z = sum(math.exp(s[a]) for a in A)
        out.append(-sum(math.log(math.exp(s[p]) / z) for p in P) / len(P))
    return out


def _supcon_loop(h, pos, neg, tau, sim):
    """Mean of the per-anchor losses over all 2N anchors (reduction="anchor_mean")."""
    per = _supcon_per_anchor(h, pos, neg, tau, sim)
    return sum(per) / len(per)


def _cos(a, b):
    return float(a @ b / (a.norm() * b.norm()))


@pytest.mark.parametrize("selection", D._supcon.SELECTIONS)
@pytest.mark.parametrize("similarity", ["cosine", "lp"])
def test_supcon_value_matches_loop(selection, similarity):
    h = torch.cat([Z_CLEAN, Z_ADV]).double()
    labels, preds = _hand_labels_preds()
    pos, neg = D.supcon_masks(labels, preds, selection)
    if similarity == "cosine":
        def sim(a, b):
            return float(a @ b / (a.norm() * b.norm()))
    else:
        def sim(a, b):
            return -float((a - b).abs().pow(3).sum() ** (1 / 3))
    got = D.supcon_loss(h, pos, neg, tau=0.5, similarity=similarity, p=3.0)
    assert float(got) == pytest.approx(_supcon_loop(h, pos, neg, 0.5, sim), rel=1e-9)


def test_supcon_closed_form():
    # rows: e1 (y 0), e2 (y 1), e1 (adv of 0), -e2 (adv of 1); global, cosine, tau = 1:
    # rows 0, 2: -log(e / (e + 2)); rows 1, 3: -log(e^-1 / (e^-1 + 2))
    h = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, -1.0]])
    labels = torch.tensor([0, 1, 0, 1])
    pos, neg = D.supcon_masks(labels, torch.tensor([0, 1, 0, 0]), "global")
    expected = (math.log1p(2 * math.exp(-1)) + math.log1p(2 * math.exp(1))) / 2
    assert float(D.supcon_loss(h, pos, neg, tau=1.0)) == pytest.approx(expected, rel=1e-6)


def test_supcon_anchor_without_positives_adds_zero_and_no_nan_grad():
    h = torch.randn(4, 3, requires_grad=True)
    pos = torch.zeros(4, 4, dtype=torch.bool)
    pos[0, 2] = pos[2, 0] = True
    neg = torch.zeros(4, 4, dtype=torch.bool)       # rows 1, 3: nothing at all
    loss = D.supcon_loss(h, pos, neg, tau=0.1)
    # rows 0 and 2 have a single candidate, the positive: log(1) = 0
    assert float(loss) == pytest.approx(0.0, abs=1e-6)
    g, = torch.autograd.grad(loss, h)
    assert torch.isfinite(g).all()


def test_supcon_term_on_hand_batch_logs_counts_and_value():
    model = Hand()
    x, x_adv = _img(Z_CLEAN), _img(Z_ADV)
    term = D.SupCon(selection="leaked", tau=0.2, reduction="anchor_mean", attack=FixedAttack(x_adv))
    loss, logs = term(model, x, Y3)
    assert logs["pos_per_anchor"] == pytest.approx(10 / 6)
    assert logs["neg_per_anchor"] == pytest.approx(8 / 6)
    labels, preds = _hand_labels_preds()
    pos, neg = D.supcon_masks(labels, preds, "leaked")
    h = torch.cat([Z_CLEAN, Z_ADV]).double()
    expected = _supcon_loop(h, pos, neg, 0.2, lambda a, b: float(a @ b / (a.norm() * b.norm())))
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert logs["supcon"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("selection", D._supcon.SELECTIONS)
def test_supcon_default_reduction_is_paper001_eq3(selection):
    """Bui et al., "Understanding and Achieving Efficient Robustness with Adversarial
    Supervised Contrastive Learning" (arXiv:2101.10027, 2021), eq. 3:
    L^SCL = (1/N) sum_i (L_i^scl + L_i^a,scl), the natural anchor x_i's and the adversarial
    anchor x'_i's losses SUMMED per sample and averaged over the N samples. The mean over
    all 2N anchors (the common SupCon code) is half of it and stays available by name."""
    model = Hand()
    x, x_adv = _img(Z_CLEAN), _img(Z_ADV)
    labels, preds = _hand_labels_preds()
    pos, neg = D.supcon_masks(labels, preds, selection)
    per = _supcon_per_anchor(torch.cat([Z_CLEAN, Z_ADV]).double(), pos, neg, 0.2, _cos)
    n = Z_CLEAN.shape[0]
    eq3 = sum(per[i] + per[i + n] for i in range(n)) / n
    assert eq3 > 0
    loss, logs = D.SupCon(selection=selection, tau=0.2, attack=FixedAttack(x_adv))(model, x, Y3)
    assert float(loss) == pytest.approx(eq3, rel=1e-5) and logs["supcon"] == pytest.approx(eq3, rel=1e-5)
    half, _ = D.SupCon(selection=selection, tau=0.2, reduction="anchor_mean",
                       attack=FixedAttack(x_adv))(model, x, Y3)
    assert float(half) == pytest.approx(eq3 / 2, rel=1e-5)
    h = torch.cat([Z_CLEAN, Z_ADV]).double()
    assert float(D.supcon_loss(h, pos, neg, tau=0.2, reduction="pair_sum")) == pytest.approx(eq3, rel=1e-9)
    # the paper-001 preset: L = L_AT + lambda_SCL * L^SCL(eq. 3) + lambda_VAT * L_VAT (eq. 6)
    ascl = D.ASCL(selection=selection, tau=0.2, lambda_scl=1.0, lambda_vat=2.0, attack=FixedAttack(x_adv))
    assert ascl.reduction == "pair_sum" and D.build("ascl").config()["reduction"] == "pair_sum"
    loss, logs = ascl(model, x, Y3)
    assert logs["supcon"] == pytest.approx(eq3, rel=1e-5)
    assert float(loss) == pytest.approx(logs["pgd_at"] + eq3 + 2.0 * logs["vat"], rel=1e-5)
    old = D.ASCL(selection=selection, tau=0.2, reduction="anchor_mean", attack=FixedAttack(x_adv))
    assert old(model, x, Y3)[1]["supcon"] == pytest.approx(eq3 / 2, rel=1e-5)
    with pytest.raises(ValueError, match="reduction must be one of"):
        D.SupCon(reduction="mean")
    with pytest.raises(ValueError, match="2N rows"):
        D.supcon_loss(h[:5], pos[:5, :5], neg[:5, :5], reduction="pair_sum")


def test_supcon_gradient_reaches_clean_and_adversarial_features():
    zc = Z_CLEAN.clone().requires_grad_()
    za = Z_ADV.clone().requires_grad_()
    labels, preds = _hand_labels_preds()
    pos, neg = D.supcon_masks(labels, preds, "global")
    gc, ga = torch.autograd.grad(D.supcon_loss(torch.cat([zc, za]), pos, neg), [zc, za])
    assert (gc.norm(dim=1) > 0).all() and (ga.norm(dim=1) > 0).all()


def test_supcon_projection_head_is_trainable_and_seeded():
    model = tiny()
    x, y = batch()
    d1 = D.PGDAT(attack=FixedAttack(x.flip(0))) + D.SupCon(head="linear", head_dim=8, head_seed=3)
    assert list(d1.parameters()) == []
    d1.prepare(model, x)
    params = list(d1.parameters())
    assert [p.shape for p in params] == [torch.Size([8, 16]), torch.Size([8])]
    loss, _ = d1(model, x, y)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
    d2 = D.SupCon(head="mlp", head_dim=8, head_seed=3).prepare(model, x)
    d3 = D.SupCon(head="mlp", head_dim=8, head_seed=3).prepare(model, x)
    assert all(torch.equal(a, b) for a, b in zip(d2.parameters(), d3.parameters()))
    assert len(list(d2.parameters())) == 4
    # a head built lazily at the first call warns that no optimizer holds it
    with pytest.warns(UserWarning, match="prepare"):
        D.SupCon(head="linear", attack=FixedAttack(x.flip(0)))(model, x, y)


# ---------------------------------------------------------------- TRADES, MART, VAT ----
def _kl_loop(a, b):
    """KL(softmax(a) || softmax(b)) of one row, Python floats."""
    pa = [math.exp(v) for v in a]
    pb = [math.exp(v) for v in b]
    sa, sb = sum(pa), sum(pb)
    return sum((u / sa) * math.log((u / sa) / (w / sb)) for u, w in zip(pa, pb))


def _ce_loop(a, y):
    return -a[y] + math.log(sum(math.exp(v) for v in a))


def test_trades_kl_matches_loop():
    a = torch.tensor([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]])
    b = torch.tensor([[1.0, 1.0, 0.0], [0.5, -0.5, 2.0]])
    expected = sum(_kl_loop(a[i].tolist(), b[i].tolist()) for i in range(2)) / 2
    assert float(D.trades_kl(a, b)) == pytest.approx(expected, rel=1e-6)
    assert float(D.trades_kl(a, a)) == pytest.approx(0.0, abs=1e-7)


def test_trades_term_on_hand_batch_and_gradient_through_both():
    model = Hand()
    x, x_adv = _img(Z_CLEAN), _img(Z_ADV)
    loss, logs = D.TRADES(beta=6.0, attack=FixedAttack(x_adv))(model, x, Y3)
    ce = sum(_ce_loop(Z_CLEAN[i].tolist(), int(Y3[i])) for i in range(3)) / 3
    kl = sum(_kl_loop(Z_CLEAN[i].tolist(), Z_ADV[i].tolist()) for i in range(3)) / 3
    assert float(loss) == pytest.approx(ce + 6.0 * kl, rel=1e-6)
    assert logs["kl"] == pytest.approx(kl, rel=1e-6) and logs["ce_clean"] == pytest.approx(ce, rel=1e-6)
    # gradient flows through both arguments of the training KL
    lc = Z_CLEAN.clone().requires_grad_()
    la = Z_ADV.clone().requires_grad_()
    gc, ga = torch.autograd.grad(D.trades_kl(lc, la), [lc, la])
    assert gc.abs().sum() > 0 and ga.abs().sum() > 0


def test_trades_attack_option_sets_the_attack_loss():
    assert D.TRADES().attack.loss == "kl" and D.TRADES().attack.random_start == "normal_small"
    assert D.TRADES(trades_attack="ce").attack.loss == "ce"
    assert D.TRADES(attack=PGD(eps=0.1, steps=2), trades_attack="ce").attack.loss == "ce"


def _mart_loop(lc, la, y, beta):
    b = len(y)
    total = 0.0
    for i in range(b):
        za, zc = la[i], lc[i]
        sa = sum(math.exp(v) for v in za)
        pa = [math.exp(v) / sa for v in za]
        sc = sum(math.exp(v) for v in zc)
        pc = [math.exp(v) / sc for v in zc]
        y2 = max((j for j in range(len(pa)) if j != y[i]), key=lambda j: pa[j])
        total += -math.log(pa[y[i]])                                  # CE(f', y)
        total += -math.log(1.0001 - pa[y2] + 1e-12)                    # NLL(log(1.0001 - p'), y2)
        total += beta * _kl_loop(zc, za) * (1.0000001 - pc[y[i]])
    return total / b


def test_mart_matches_loop():
    lc = torch.tensor([[2.0, 0.5, -1.0], [0.0, 0.2, 3.0], [1.0, 1.5, 0.0]])
    la = torch.tensor([[1.0, 1.2, 0.0], [0.5, -0.5, 2.0], [3.0, 0.0, 0.1]])
    y = [0, 2, 0]
    got, parts = D.mart_loss(lc, la, torch.tensor(y), 5.0)
    assert float(got) == pytest.approx(_mart_loop(lc.tolist(), la.tolist(), y, 5.0), rel=1e-6)
    # y2 = argmax over the OTHER classes of p': for row 2 (y = 0 is the argmax) it is class 2
    assert float(parts["ce_adv"]) == pytest.approx(F.cross_entropy(la, torch.tensor(y)).item())
    # gradient reaches both the clean and the adversarial logits
    a, b = lc.clone().requires_grad_(), la.clone().requires_grad_()
    ga, gb = torch.autograd.grad(D.mart_loss(a, b, torch.tensor(y), 5.0)[0], [a, b])
    assert ga.abs().sum() > 0 and gb.abs().sum() > 0


def test_mart_and_vat_terms_on_hand_batch():
    model = Hand()
    x, x_adv = _img(Z_CLEAN), _img(Z_ADV)
    loss, _ = D.MART(beta=5.0, attack=FixedAttack(x_adv))(model, x, Y3)
    assert float(loss) == pytest.approx(_mart_loop(Z_CLEAN.tolist(), Z_ADV.tolist(), Y3.tolist(), 5.0), rel=1e-6)
    vat, logs = D.VAT(attack=FixedAttack(x_adv))(model, x, Y3)
    kl = sum(_kl_loop(Z_CLEAN[i].tolist(), Z_ADV[i].tolist()) for i in range(3)) / 3
    assert float(vat) == pytest.approx(kl, rel=1e-6) and logs["vat"] == pytest.approx(kl, rel=1e-6)


def test_pgdat_and_nat_on_hand_batch():
    model = Hand()
    x, x_adv = _img(Z_CLEAN), _img(Z_ADV)
    ce_adv = sum(_ce_loop(Z_ADV[i].tolist(), int(Y3[i])) for i in range(3)) / 3
    ce = sum(_ce_loop(Z_CLEAN[i].tolist(), int(Y3[i])) for i in range(3)) / 3
    assert float(D.PGDAT(attack=FixedAttack(x_adv))(model, x, Y3)[0]) == pytest.approx(ce_adv, rel=1e-6)
    loss, logs = D.PGDAT(attack=FixedAttack(x_adv), clean_ce=True)(model, x, Y3)
    assert float(loss) == pytest.approx(ce + ce_adv, rel=1e-6)
    assert logs["acc_adv"] == 0.0                           # adv preds [1, 1, 0] vs y [0, 0, 1]
    assert logs["acc_clean"] == pytest.approx(2 / 3)        # clean preds [0, 1, 1]
    assert float(D.NAT()(model, x, Y3)[0]) == pytest.approx(ce, rel=1e-6)


def test_adversarial_examples_are_constants_of_the_training_loss():
    """x' is detached: the loss reaches the clean pixels only through clean forward passes."""
    model = Hand()
    x = _img(Z_CLEAN).clone().requires_grad_()
    x_adv = _img(Z_ADV)
    g, = torch.autograd.grad(D.PGDAT(attack=FixedAttack(x_adv))(model, x, Y3)[0], [x], allow_unused=True)
    assert g is None
    g, = torch.autograd.grad(D.TRADES(attack=FixedAttack(x_adv))(model, x, Y3)[0], [x], allow_unused=True)
    assert g is not None and g.abs().sum() > 0


# ---------------------------------------------------------------------- paper 000 ----
def test_embedding_distances_on_paper():
    a = torch.tensor([[3.0, 4.0], [0.0, 0.0]], requires_grad=True)
    b = torch.zeros(2, 2, requires_grad=True)
    assert float(D.embedding_distance(a, b, "euclidean")) == pytest.approx(2.5)   # (5 + 0) / 2
    assert float(D.embedding_distance(a, b, "mse")) == pytest.approx(6.25)        # (9 + 16) / 4
    ga, gb = torch.autograd.grad(D.embedding_distance(a, b), [a, b])
    # d/da ||a - b|| / 2 = (a - b) / (2 ||a - b||); zero (not NaN) at the coinciding row
    assert torch.allclose(ga, torch.tensor([[0.3, 0.4], [0.0, 0.0]]))
    assert torch.allclose(gb, -ga)


def test_embedding_term_on_hand_batch():
    model = Hand()
    x, x_adv = _img(Z_CLEAN), _img(Z_ADV)
    term = D.EmbeddingDistance(layer="penultimate", beta=2.0, attack=FixedAttack(x_adv))
    loss, logs = term(model, x, Y3)
    dist = sum(float((Z_ADV[i] - Z_CLEAN[i]).norm()) for i in range(3)) / 3
    ce_adv = sum(_ce_loop(Z_ADV[i].tolist(), int(Y3[i])) for i in range(3)) / 3
    assert logs["emb_dist"] == pytest.approx(dist, rel=1e-6)
    assert float(loss) == pytest.approx(ce_adv + 2.0 * dist, rel=1e-6)
    only, _ = D.EmbeddingDistance(layer="logits", distance="mse", beta=1.0, ce=False,
                                  attack=FixedAttack(x_adv))(model, x, Y3)
    assert float(only) == pytest.approx(float((Z_ADV - Z_CLEAN).pow(2).mean()), rel=1e-6)


def test_embedding_layers_of_resnet18():
    model = build("resnet18", width=4, in_channels=1, input_size=8)
    x, y = batch(4)
    atk = FixedAttack((x + 0.1).clamp(0, 1))
    for layer in ("embedding1", "embedding5"):
        loss, logs = D.EmbeddingDistance(layer=layer, attack=atk)(model, x, y)
        assert math.isfinite(logs["emb_dist"]) and logs["emb_dist"] > 0
    with pytest.raises(ValueError, match="embedding5"):
        D.EmbeddingDistance(layer="embedding9", attack=atk)(model, x, y)


def test_paper000_setting_adamw_wd_deepfool_steps_and_embedding1_tap():
    """Paper 000 (Zhang, "Contrastive loss in embedding space for adversarial robustness"):
    AdamW with weight decay 0.1; DeepFool capped at 20 steps in its table, and the evaluate
    CLI's --steps reaches DeepFool; the CIFAR ResNet-18's embedding1 has no max-pool, unlike
    the paper's Embedding-1 (ImageNet stem), as documented."""
    from pathlib import Path

    from robustviz.cli import build_parser
    from robustviz.cli.evaluate_cmd import build_attacks
    from robustviz.train import TrainConfig

    cfg = TrainConfig.load(Path(__file__).resolve().parents[1] / "configs" / "paper000_resnet18_cl.yaml")
    assert cfg.train["optimizer"] == "adamw" and cfg.train["weight_decay"] == pytest.approx(0.1)
    assert "deepfool --steps 20" in cfg.notes
    for steps in (20, 7):
        args = build_parser().parse_args(["evaluate", "run", "--attack", "deepfool", "pgd", "--steps", str(steps)])
        atks = build_attacks(args, 0.03)
        assert atks["deepfool"].steps == steps and atks[f"pgd{steps}"].steps == steps
    # embedding1: after conv1-bn1-relu at full resolution on the CIFAR ResNet-18, after the
    # max-pool (a quarter of the positions per side pair) on the ImageNet-stem ResNet-18
    x = torch.rand(2, 3, 32, 32)
    cifar = build("resnet18", num_classes=10, in_channels=3, width=8).eval()
    imnet = build("resnet18_imagenet", num_classes=10).eval()
    with Features(cifar, ["embedding1"]) as tap:
        assert tuple(tap(x)["embedding1"].shape) == (2, 8, 32, 32)
    with Features(imnet, ["embedding1", "stem"]) as tap:
        out = tap(x)
    assert tuple(out["embedding1"].shape) == (2, 64, 8, 8)         # stride-2 conv, then max-pool
    assert "max-pool" in D.EmbeddingDistance.__doc__ and "max-pool" in D._embedding.__doc__


# --------------------------------------------------------------------- paper 004 ----
def test_anc_value_on_paper_and_stop_gradient_pattern():
    # pair 0: both predict class 0 -> sqrt(0.7 * 0.4); pair 1: predictions differ -> 0
    pa = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]], requires_grad=True)
    pn = torch.tensor([[0.4, 0.35, 0.25], [0.6, 0.3, 0.1]], requires_grad=True)
    value, mask = D.anc_value(pa, pn, alpha=1.0)
    assert mask.tolist() == [True, False]
    assert float(value) == pytest.approx(math.sqrt(0.28) / 2)
    ga, gn = torch.autograd.grad(value, [pa, pn], allow_unused=True)
    # alpha = 1: only the negative's probability receives gradient
    assert ga is None or ga.abs().sum() == 0
    expected = torch.zeros(2, 3)
    expected[0, 0] = 0.5 * 0.5 * math.sqrt(0.7 / 0.4)          # d/dpn of sqrt(0.7 pn) / 2
    assert torch.allclose(gn, expected)
    # alpha = 0: only the anchor's
    ga, gn = torch.autograd.grad(D.anc_value(pa, pn, alpha=0.0)[0], [pa, pn], allow_unused=True)
    assert gn is None or gn.abs().sum() == 0
    assert ga[0, 0] == pytest.approx(0.5 * 0.5 * math.sqrt(0.4 / 0.7)) and ga[1].abs().sum() == 0
    # valid=False drops a pair
    assert float(D.anc_value(pa, pn, 1.0, torch.tensor([False, True]))[0]) == 0.0


def test_pick_negatives_strategies():
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    pred = torch.tensor([0, 1, 1, 0, 0, 2])
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        idx, valid, found = D.pick_negatives(y, pred, "random", generator=g)
        assert valid.all() and found.all() and (y[idx] != y).all()
        idx, valid, found = D.pick_negatives(y, pred, "soft", generator=g)
        # soft: same prediction where a candidate exists (anchor 5, pred 2, has none)
        assert found.tolist() == [True] * 5 + [False] and torch.equal(valid, found)
        assert (y[idx][:5] != y[:5]).all() and (pred[idx][:5] == pred[:5]).all()
        idx, valid, found = D.pick_negatives(y, pred, "hard", generator=g)
        # hard: predicted as the anchor's label (anchors of class 2: nobody predicts 2 outside it)
        assert found.tolist() == [True] * 4 + [False] * 2 and torch.equal(valid, found)
        assert (y[idx][:4] != y[:4]).all() and (pred[idx][:4] == y[:4]).all()
        # the random fallback only when asked for
        idx, valid, found = D.pick_negatives(y, pred, "hard", generator=g, fallback=True)
        assert valid.all() and not found[4:].any() and (y[idx] != y).all()
    idx, valid, found = D.pick_negatives(torch.zeros(4, dtype=torch.long), torch.zeros(4, dtype=torch.long))
    assert not valid.any() and not found.any()


def test_anc_soft_hard_report_no_candidate_and_do_not_fall_back():
    """Zhou et al., ANCRA (arXiv:2310.03358), Table IX ablation: Soft (p_j = p_i) and Hard
    (p_j = y_i) selection of other-class negatives often find none (>= 60% of anchors at
    batch 128 on CIFAR-10 in the paper). The term reports the no-candidate rate, an anchor
    without a candidate adds 0 (no silent random fallback), and the selected negatives are
    used as they are unless the attack on them is asked for."""
    model = Hand()
    # logits = z: predictions [0, 0, 0, 0, 0, 0]: everybody predicts class 0
    z = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.1, 0.1], [0.7, 0.2, 0.1],
                      [0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.6, 0.1, 0.3]])
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    x = _img(z)
    # hard: a negative must be predicted as the anchor's label; only class-0 anchors find one
    term = D.ANC(strategy="hard", alpha=1.0)
    assert term.neg_attack is False                          # off by default for soft/hard
    loss, logs = term(model, x, y, generator=torch.Generator().manual_seed(0))
    assert logs["anc_no_candidate"] == pytest.approx(4 / 6)
    # by hand: anchors 0, 1 (pred 0) with a negative of class 1 or 2 (pred 0): h = h_o = 0,
    # value sqrt(p_0(anchor) * p_0(negative)); the four anchors without a candidate add 0
    idx, valid, found = D.pick_negatives(y, z.argmax(1), "hard", generator=torch.Generator().manual_seed(0))
    p = torch.softmax(z, 1)
    want = sum(math.sqrt(float(p[i, 0] * p[int(idx[i]), 0])) for i in (0, 1)) / 6
    assert float(loss) == pytest.approx(want, rel=1e-5)
    assert logs["anc_active"] == pytest.approx(2 / 6)
    # soft: everybody predicts 0, so every anchor finds another-class sample predicted 0
    _, logs = D.ANC(strategy="soft")(model, x, y, generator=torch.Generator().manual_seed(0))
    assert logs["anc_no_candidate"] == 0.0
    # the fallback, when asked for, gives every anchor a (random) negative
    _, logs = D.ANC(strategy="hard", fallback=True)(model, x, y, generator=torch.Generator().manual_seed(0))
    assert logs["anc_active"] == pytest.approx(1.0) and logs["anc_no_candidate"] == pytest.approx(4 / 6)
    # the attack on the selected negative: on for "random" (the paper's OEs), off for soft/hard
    from robustviz.defenses._base import StepContext
    for strategy, neg_attack, calls in (("random", None, 1), ("soft", None, 0), ("hard", None, 0),
                                        ("hard", True, 1), ("random", False, 0)):
        t = D.ANC(strategy=strategy, neg_attack=neg_attack, neg_steps=1, neg_eps=0.01, neg_step_size=0.01)
        ctx = StepContext(model, x, y, layers=["logits"], generator=torch.Generator().manual_seed(0))
        t.negatives(ctx)
        assert ctx.attack_calls == calls, (strategy, neg_attack)
    cfg = D.build({"name": "ancra", "strategy": "soft"}).config()
    assert cfg["neg_attack"] is False and cfg["fallback"] is False
    assert D.build({"name": "ancra"}).config()["neg_attack"] is True
    assert D.build({"name": "ancra", "strategy": "hard", "neg_attack": True}).config()["neg_attack"] is True


def test_anc_term_targets_anchor_labels_and_stops_anchor_gradient():
    model, (x, y) = tiny(), batch(8)
    rec = []

    class Rec:
        def __call__(self, m, xn, target, *, generator=None):
            rec.append((m, target))
            return xn

    term = D.ANC(alpha=1.0)
    term.negative_attack = lambda: Rec()
    xr = x.clone().requires_grad_()
    loss, logs = term(model, xr, y)
    m, target = rec[0]
    assert torch.equal(target, y)                         # targeted toward the anchor's label
    g, = torch.autograd.grad(loss, [xr], allow_unused=True)
    assert g is None or g.abs().sum() == 0                # alpha = 1: anchor (clean x) is constant
    assert 0.0 <= logs["anc_active"] <= 1.0
    params = [p for p in model.parameters()]
    gp = torch.autograd.grad(term(model, x, y)[0], params, allow_unused=True)
    assert any(t is not None and t.abs().sum() > 0 for t in gp) or logs["anc_active"] == 0


def test_anc_negatives_are_targeted_pgd_in_the_ball():
    model, (x, y) = tiny(), batch(8)
    term = D.ANC(neg_eps=0.05, neg_step_size=0.02, neg_steps=2)
    from robustviz.defenses._base import StepContext
    ctx = StepContext(model, x, y, layers=["logits"], generator=torch.Generator().manual_seed(0))
    x_neg, y_neg, valid = term.negatives(ctx)
    assert valid.all() and (y_neg != y).all() and ctx.attack_calls == 1
    # each negative is within eps of a batch sample of another class
    d = (x_neg[:, None] - x[None]).abs().flatten(2).amax(2)          # (B, B) Linf distances
    assert ((d <= 0.05 + 1e-6) & (y[None, :] != y[:, None])).any(1).all()


# -------------------------------------------------------------- reverse attention ----
def test_reverse_attention_forward_matches_formula():
    inner = tiny()
    ra = ReverseAttention(inner)
    x, y = batch(6)
    with Features(inner, ["penultimate"]) as tap:
        z = tap(x)["penultimate"]
    w, b = inner.classifier.weight, inner.classifier.bias
    logits, aux = ra(x, y, return_aux=True)
    assert torch.allclose(aux, inner(x))
    assert torch.allclose(logits, (z * w[y]) @ w.t() + b, atol=1e-6)
    c = aux.argmax(1)
    assert torch.allclose(ra(x), (z * w[c]) @ w.t() + b, atol=1e-6)     # test: predicted class
    assert ra.needs_labels and ra.num_classes == 10 and ra.in_channels == 1
    assert ra.input_size == inner.input_size and ra.layer_names == inner.layer_names
    assert ra.classifier is inner.classifier
    assert ra.build_kwargs["reverse_attention"] is True
    with Features(ra, ["penultimate", "aux_logits", "logits"]) as tap:
        out = tap(x)
    assert torch.allclose(out["penultimate"], z) and torch.allclose(out["aux_logits"], aux)
    with pytest.raises(TypeError, match="classifier"):
        ReverseAttention(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)))


def test_reverse_attention_surrogate_is_the_soft_formula_and_passes_gradient_through_aux():
    inner = tiny()
    ra = ReverseAttention(inner)
    x, _ = batch(6)
    with Features(inner, ["penultimate"]) as tap:
        z = tap(x)["penultimate"]
    w, b = inner.classifier.weight, inner.classifier.bias
    aux = inner(x)
    for t in (1.0, 0.5):
        sur = ra.surrogate(temperature=t)
        mix = torch.softmax(aux / t, 1) @ w
        assert torch.allclose(sur(x), (z * mix) @ w.t() + b, atol=1e-6)
    cold = ra.surrogate(temperature=1e-4)            # T -> 0: the hard test-time argmax
    assert torch.allclose(cold(x), ra(x), atol=1e-4)
    assert set(dict(sur.named_parameters())) == {"ra." + k for k, _ in ra.named_parameters()}
    assert sur.num_classes == 10 and sur.in_channels == 1 and sur.input_size == ra.input_size
    # the hard path treats the class as a constant; the surrogate differentiates through it:
    # d logits / d aux is zero for the hard model and not for the surrogate
    z0 = z.detach()
    a = aux.detach().requires_grad_(True)
    hard = (z0 * w[a.argmax(1)]) @ w.t() + b
    assert not hard.requires_grad or torch.autograd.grad(hard.sum(), a, allow_unused=True)[0] is None
    soft = (z0 * (torch.softmax(a, 1) @ w)) @ w.t() + b
    assert torch.autograd.grad(soft[:, 0].sum(), a)[0].abs().sum() > 0
    with pytest.raises(ValueError, match="temperature"):
        ra.surrogate(temperature=0.0)
    with pytest.raises(TypeError, match="ReverseAttention"):
        type(sur)(inner)


def test_ancra_auxiliary_loss_and_labels_in_training():
    inner = tiny()
    ra = ReverseAttention(inner)
    x, y = batch(8)
    x_adv = (x + 0.05).clamp(0, 1)
    CALLS.clear()
    ancra = D.ANCRA(attack=FixedAttack(x_adv), neg_attack=False, gamma=2.0, zeta=3.0)
    loss, logs = ancra(ra, x, y)
    # the aux term is TRADES on the auxiliary logits (= the inner model's own output)
    aux_c, aux_a = inner(x), inner(x_adv)
    expected_aux = F.cross_entropy(aux_c, y) + 6.0 * D.trades_kl(aux_c, aux_a)
    assert logs["aux_trades"] == pytest.approx(float(expected_aux), rel=1e-5)
    assert logs["aux"] == pytest.approx(logs["aux_trades"] + 3.0 * logs["aux_anc"], rel=1e-5)
    # the main term sees the label-conditioned logits
    main_c, main_a = ra(x, y), ra(x_adv, y)
    expected = F.cross_entropy(main_c, y) + 6.0 * D.trades_kl(main_c, main_a)
    assert logs["trades"] == pytest.approx(float(expected), rel=1e-5)
    assert float(loss) == pytest.approx(logs["trades"] + 3.0 * logs["anc"] + 2.0 * logs["aux"], rel=1e-5)
    # training attacks see the model with the labels bound
    D.PGDAT(attack=RecordingAttack())(ra, x, y)
    assert isinstance(CALLS[-1][2], nn.Module) and torch.equal(CALLS[-1][2]._labels, y)
    with pytest.raises(ValueError, match="ReverseAttention"):
        D.ANCRA(attack=FixedAttack(x_adv))(inner, x, y)
    D.ANCRA(attack=FixedAttack(x_adv), gamma=0, neg_attack=False)(inner, x, y)   # ANC alone is fine


def _anc_by_hand(p, po):
    """Zhou et al. (ANCRA) ANC with alpha = 1, by its definition: mean over the B pairs of
    [h == h_o] * sqrt(p_h * p^o_h), h = argmax p, h_o = argmax p^o."""
    h, ho = p.argmax(1), po.argmax(1)
    vals = [math.sqrt(float(p[i, h[i]]) * float(po[i, h[i]])) if h[i] == ho[i] else 0.0
            for i in range(p.shape[0])]
    return sum(vals) / len(vals)


@pytest.mark.parametrize("base", ["trades", "pgd_at"])
def test_ancra_auxiliary_head_gets_the_anc_term_too(base):
    """Zhou et al., "Robust Representation Learning via Asymmetric Negative Contrast and
    Reverse Attention" (arXiv:2310.03358, 2023), Algorithm 1 / eq. 4: the auxiliary logits
    of reverse attention are trained with the same loss as the main logits,
    L_AT + zeta * L_ANC, weighted by gamma:
        L = L_AT(f) + zeta L_ANC(f) + gamma (L_AT(f_aux) + zeta L_ANC(f_aux)),
    with the ANC of the auxiliary head on the same anchors and other-class examples."""
    inner = tiny(seed=1)
    ra = ReverseAttention(inner)
    x, y = batch(12, seed=3)
    x_adv = (x + 0.05).clamp(0, 1)
    zeta, gamma = 3.0, 2.0
    ancra = D.ANCRA(base=base, attack=FixedAttack(x_adv), neg_attack=False, zeta=zeta, gamma=gamma)
    loss, logs = ancra(ra, x, y, generator=torch.Generator().manual_seed(5))
    # the negatives, drawn as ANC draws them: random other-class rows of the batch
    idx, valid, _ = D.pick_negatives(y, ra(x, y).argmax(1), "random", generator=torch.Generator().manual_seed(5))
    assert valid.all()
    x_neg, y_neg = x[idx], y[idx]

    def l_at(c, a):
        if base == "trades":
            return F.cross_entropy(c, y) + 6.0 * D.trades_kl(c, a)
        return F.cross_entropy(a, y)

    main = l_at(ra(x, y), ra(x_adv, y))
    anc_main = _anc_by_hand(ra(x, y).softmax(1), ra(x_neg, y_neg).softmax(1))
    aux_at = l_at(inner(x), inner(x_adv))                 # the aux logits = the inner classifier
    anc_aux = _anc_by_hand(inner(x).softmax(1), inner(x_neg).softmax(1))
    assert anc_aux > 0                                      # the term is live in this batch
    expected = float(main) + zeta * anc_main + gamma * (float(aux_at) + zeta * anc_aux)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert logs["aux_anc"] == pytest.approx(anc_aux, rel=1e-5)
    assert logs["aux"] == pytest.approx(float(aux_at) + zeta * anc_aux, rel=1e-5)
    # gradients match the equation's too (alpha = 1: only the negatives' probabilities move)
    params = [p for p in ra.parameters() if p.requires_grad]
    want_loss = main + gamma * aux_at
    for net, w in ((lambda t, l: ra(t, l), zeta), (lambda t, l: inner(t), gamma * zeta)):
        pa, pn = net(x, y).softmax(1).detach(), net(x_neg, y_neg).softmax(1)
        h = pa.argmax(1)
        agree = (h == pn.detach().argmax(1)).float()
        want_loss = want_loss + w * (agree * torch.sqrt(pa.gather(1, h[:, None]).squeeze(1)
                                                        * pn.gather(1, h[:, None]).squeeze(1))).mean()
    g_got = torch.autograd.grad(ancra(ra, x, y, generator=torch.Generator().manual_seed(5))[0], params,
                                allow_unused=True)
    g_want = torch.autograd.grad(want_loss, params, allow_unused=True)
    for a, b in zip(g_got, g_want):
        a = torch.zeros_like(b) if a is None else a
        b = torch.zeros_like(a) if b is None else b
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)
    # the old behaviour, base loss alone on the auxiliary head, by name
    old = D.ANCRA(base=base, attack=FixedAttack(x_adv), neg_attack=False, zeta=zeta, gamma=gamma, aux_anc=False)
    l_old, logs_old = old(ra, x, y, generator=torch.Generator().manual_seed(5))
    assert float(l_old) == pytest.approx(float(main) + zeta * anc_main + gamma * float(aux_at), rel=1e-5)
    assert "aux_anc" not in logs_old
    cfg = D.build({"name": "ancra", "aux_anc": False}).config()
    assert cfg["aux_anc"] is False and D.build(cfg).aux_anc is False
    assert ancra.aux_anc is True and D.build("ancra").config()["aux_anc"] is True
    with pytest.raises(TypeError, match="aux_anc"):
        D.ANCRA(aux_anc="yes")


def test_reverse_attention_in_both_last_stage_blocks():
    """Zhou et al., ANCRA (arXiv:2310.03358): on ResNet-18 the reverse attention sits in both
    blocks of layer4, each block weighted by the rows of THE linear classifier (Algorithm 1,
    P <- f^-1(Z); the authors' released ResNet-18 passes its one fc to both blocks), and the
    auxiliary loss is the mean over the blocks' auxiliary logits (released code)."""
    import copy

    ra = build("resnet18", num_classes=5, in_channels=3, width=4, input_size=16, reverse_attention="blocks")
    assert isinstance(ra, ReverseAttention) and ra.placement == "blocks"
    assert ra.aux_heads == ("aux_logits_1", "aux_logits_2")
    assert ra.build_kwargs["reverse_attention"] == "blocks"
    assert build(**ra.build_kwargs).placement == "blocks"
    # no parameter of its own: the state dict is the plain model's (the old code added two heads)
    assert set(ra.state_dict()) == {f"model.{k}" for k in ra.model.state_dict()}
    ra.eval()
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(6, 3, 16, 16, generator=g), torch.tensor([0, 1, 2, 3, 4, 0])
    m = ra.model
    blocks = list(m.layer4)
    plain = copy.deepcopy(m)                       # the same weights, hooks removed
    for b in plain.layer4:
        b._forward_hooks.clear()
    W, bias = plain.classifier.weight, plain.classifier.bias

    def by_hand(c_rule):
        h = plain.relu(plain.bn1(plain.conv1(plain.normalize(x))))
        h = plain.layer3(plain.layer2(plain.layer1(h)))
        auxes = []
        for b in plain.layer4:
            h = b(h)
            aux = h.mean(dim=(2, 3)) @ W.t() + bias
            auxes.append(aux)
            h = h * c_rule(aux)[:, :, None, None]
        return h.mean(dim=(2, 3)) @ W.t() + bias, auxes

    want, auxes = by_hand(lambda aux: W[y])                  # training: labels
    got, aux_last = ra(x, y, return_aux=True)
    assert torch.allclose(got, want, atol=1e-5) and torch.allclose(aux_last, auxes[-1], atol=1e-5)
    with Features(ra, ["aux_logits_1", "aux_logits_2", "logits", "penultimate"]) as tap:
        out = tap(x)
    test_want, test_auxes = by_hand(lambda aux: W[aux.argmax(1)])   # test: argmax
    assert torch.allclose(out["logits"], test_want, atol=1e-5)
    assert torch.allclose(out["aux_logits_1"], test_auxes[0], atol=1e-5)
    assert torch.allclose(out["aux_logits_2"], test_auxes[1], atol=1e-5)
    assert out["penultimate"].shape == (6, W.shape[1])
    soft_want, _ = by_hand(lambda aux: torch.softmax(aux / 0.5, 1) @ W)
    assert torch.allclose(ra.surrogate(temperature=0.5)(x), soft_want, atol=1e-5)
    assert len(blocks) == 2 and all(len(b._forward_hooks) == 1 for b in blocks)
    # each block's auxiliary logits get the base + zeta * ANC; gamma weighs their MEAN
    ra.train()
    xt, yt = torch.rand(8, 3, 16, 16, generator=g), torch.arange(8) % 5
    x_adv = (xt + 0.03).clamp(0, 1)
    d = D.ANCRA(attack=FixedAttack(x_adv), neg_attack=False, zeta=3.0, gamma=2.0)
    assert d.aux_reduce == "mean" and d.terms[-1].reduce == "mean"
    loss, logs = d(ra, xt, yt, generator=torch.Generator().manual_seed(1))
    with Features(D.label_bound(ra, yt), ["aux_logits_1", "aux_logits_2"]) as tap:   # training: labels
        c, a = tap(xt), tap(x_adv)
    for k in (1, 2):
        want_k = F.cross_entropy(c[f"aux_logits_{k}"], yt) + 6.0 * D.trades_kl(c[f"aux_logits_{k}"],
                                                                               a[f"aux_logits_{k}"])
        assert logs[f"aux{k}_trades"] == pytest.approx(float(want_k), rel=1e-4)
        assert logs[f"aux{k}"] == pytest.approx(logs[f"aux{k}_trades"] + 3.0 * logs[f"aux{k}_anc"], rel=1e-5)
    assert logs["aux"] == pytest.approx((logs["aux1"] + logs["aux2"]) / 2, rel=1e-6)
    assert float(loss) == pytest.approx(logs["trades"] + 3.0 * logs["anc"] + 2.0 * logs["aux"], rel=1e-5)
    summed = D.ANCRA(attack=FixedAttack(x_adv), neg_attack=False, zeta=3.0, gamma=2.0, aux_reduce="sum")
    _, logs_sum = summed(ra, xt, yt, generator=torch.Generator().manual_seed(1))
    assert logs_sum["aux"] == pytest.approx(logs_sum["aux1"] + logs_sum["aux2"], rel=1e-6)
    loss.backward()
    assert ra.model.classifier.weight.grad.abs().sum() > 0
    with pytest.raises(TypeError, match="layer4"):
        ReverseAttention(tiny(), placement="blocks")
    with pytest.raises(ValueError, match="placement"):
        ReverseAttention(tiny(), placement="layer3")


# -------------------------------------------------------------------- composition ----
def test_composition_weights_shared_attack_and_logs():
    model, (x, y) = tiny(), batch()
    atk = FixedAttack((x + 0.05).clamp(0, 1))
    n_forward = []
    model.register_forward_hook(lambda *a: n_forward.append(1))
    defense = D.PGDAT(attack=atk, clean_ce=True) + D.SupCon(selection="leaked") * 1.0 + D.VAT() * 2.0
    loss, logs = defense(model, x, y)
    assert atk.calls == 1                    # one x' per step, shared by all terms
    assert len(n_forward) == 2               # one clean and one adversarial forward pass
    for k in ("loss", "pgd_at", "supcon", "vat", "pos_per_anchor", "neg_per_anchor"):
        assert k in logs and isinstance(logs[k], float)
    assert logs["loss"] == pytest.approx(logs["pgd_at"] + logs["supcon"] + 2.0 * logs["vat"], rel=1e-6)
    # weights multiply, through nesting
    both = (D.NAT() * 2.0 + D.VAT(attack=atk) * 3.0) * 0.5
    assert both.weights == [1.0, 1.5]
    l2, lg = both(model, x, y)
    assert float(l2) == pytest.approx(lg["nat"] + 1.5 * lg["vat"], rel=1e-6)
    assert sum([D.NAT(), D.VAT(attack=atk)]).weights == [1.0, 1.0]
    # a repeated name gets a suffix
    _, lg = (D.NAT() + D.NAT())(model, x, y)
    assert "nat" in lg and "nat_2" in lg


def test_equal_attack_configs_share_one_adversarial_example():
    from robustviz.defenses._base import StepContext
    model, (x, y) = tiny(), batch(4)
    ctx = StepContext(model, x, y, layers=["logits"], generator=torch.Generator().manual_seed(0))
    a = ctx.x_adv(PGD(eps=0.1, step_size=0.05, steps=1))
    b = ctx.x_adv(PGD(eps=0.1, step_size=0.05, steps=1))
    assert ctx.attack_calls == 1 and a is b
    ctx.x_adv(PGD(eps=0.2, step_size=0.05, steps=1))
    assert ctx.attack_calls == 2


def test_attack_bn_and_bf16_reach_the_attack():
    model, (x, y) = tiny(), batch(4)
    CALLS.clear()
    D.PGDAT(attack=RecordingAttack())(model, x, y, attack_bn="train", bf16=True)
    assert CALLS[-1][:2] == ("train", True) and CALLS[-1][2] is model
    D.PGDAT(attack=RecordingAttack(bn_mode="train"))(model, x, y)
    assert CALLS[-1][:2] == ("eval", False)


def test_training_attacks_return_their_last_iterate():
    """Madry-style training uses the last PGD iterate (keep="last"), whatever the evaluation
    default; an attack that stops early per example keeps its first fooling iterates."""
    from robustviz.defenses._base import StepContext
    model, (x, y) = tiny(), batch(8)
    atk = PGD(eps=0.1, step_size=0.05, steps=3)
    ctx = StepContext(model, x, y, layers=["logits"], generator=torch.Generator().manual_seed(0))
    got = ctx.x_adv(atk)
    want = dataclasses.replace(atk, keep="last")(model, x, y, generator=torch.Generator().manual_seed(0))
    assert torch.equal(got, want)
    ctx = StepContext(model, x, y, layers=["logits"], generator=torch.Generator().manual_seed(0))
    early = dataclasses.replace(atk, early_stop=True)
    assert torch.equal(ctx.x_adv(early), early(model, x, y, generator=torch.Generator().manual_seed(0)))
    assert "keep" not in D.PGDAT(attack=atk).config()      # set per call, not a config option


def test_terms_without_attack_need_one():
    model, (x, y) = tiny(), batch(4)
    with pytest.raises(ValueError, match="SupCon needs an adversarial example"):
        D.SupCon()(model, x, y)
    with pytest.raises(ValueError, match="VAT"):
        (D.NAT() + D.VAT())(model, x, y)


def test_same_generator_same_loss_and_gradients_flow_to_parameters():
    model, (x, y) = tiny(), batch()
    defense = D.build({"name": "ancra", "base": "trades", "eps": 0.1, "step_size": 0.05, "steps": 2,
                       "gamma": 0, "neg_eps": 0.1, "neg_steps": 2})
    l1, _ = defense(model, x, y, generator=torch.Generator().manual_seed(5))
    l2, _ = defense(model, x, y, generator=torch.Generator().manual_seed(5))
    assert float(l1) == float(l2)
    l1.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_bf16_runs_and_stays_close():
    model, (x, y) = tiny(), batch()
    d = D.TRADES(attack=PGD(eps=0.1, step_size=0.05, steps=2, random_start="normal_small"))
    g = torch.Generator().manual_seed(0)
    l32, _ = d(model, x, y, generator=g)
    l16, logs = d(model, x, y, bf16=True, generator=torch.Generator().manual_seed(0))
    assert l16.dtype == torch.float32 and math.isfinite(logs["loss"])
    assert float(l16) == pytest.approx(float(l32), rel=0.05)


# ---------------------------------------------------------------- configs, errors ----
SPECS = {
    "nat": {},
    "pgd_at": {"eps": 0.1, "step_size": 0.02, "steps": 5, "clean_ce": True},
    "fgsm_rs": {"eps": 0.1},
    "trades": {"beta": 6, "eps": 0.1, "step_size": 0.02, "steps": 5, "trades_attack": "ce"},
    "mart": {"beta": 5.0, "eps": 0.1},
    "embedding": {"layer": "embedding3", "distance": "mse", "beta": 1.0, "attack": "fgsm", "eps": 0.1},
    "supcon": {"selection": "leaked", "tau": 0.2, "head": "mlp", "similarity": "lp", "p": 1.0,
               "reduction": "anchor_mean"},
    "vat": {},
    "ascl": {"base": "trades", "selection": "leaked", "lambda_vat": 1.0, "eps": 0.1, "steps": 3},
    "anc": {"strategy": "hard", "alpha": 0.5, "neg_steps": 3},
    "aux_head": {"term": {"name": "mart", "beta": 3.0}},
    "ancra": {"base": "mart", "zeta": 2.0, "eps": 0.1, "strategy": "soft", "anchor": "adv"},
    # robust contrastive pretraining (Fan et al. 2021; ASCL pretraining)
    "ntxent": {"tau": 0.2, "head": "mlp", "head_dim": 64},
    "view_supcon": {"tau": 0.1},
    "advcl": {"lambda_ce": 0.3, "hfc": False, "eps": 0.1, "steps": 3},
    "ascl_pretrain": {"lambda1": 0.4, "lambda2": 0.3, "eps": 0.1, "steps": 2},
    # single-step training with noise (de Jorge et al., NeurIPS 2022); certified training
    # (Cohen et al. 2019's Gaussian augmentation; Gowal et al. 2018's IBP)
    "nfgsm": {"eps": 0.1, "noise": 2.0},
    "gaussian_aug": {"sigma": 0.5},
    "ibp": {"eps": 0.1, "kappa": 0.5, "warmup_steps": 0, "ramp_steps": 100},
}
# Defenses whose spec names a file (ClusterFit pseudo-labels); tests/test_pretrain.py builds
# them from a cache it writes.
NEEDS_FILE = {"clusterfit_ce"}


def test_every_registered_name_has_a_spec_here():
    assert set(SPECS) | NEEDS_FILE == set(D.list_defenses())


@pytest.mark.parametrize("name", sorted(SPECS))
def test_build_config_roundtrip(name):
    d = D.build({"name": name, **SPECS[name]})
    cfg = d.config()
    assert cfg["name"] == name
    for k, v in SPECS[name].items():
        if k != "term":
            assert cfg[k] == v, k
    again = D.build(json.loads(json.dumps(cfg)))
    assert type(again) is type(d) and again.config() == cfg
    plain = D.build(name)
    assert D.build(plain.config()).config() == plain.config()


def test_build_with_terms_roundtrip_and_equals_operators():
    spec = {"name": "pgd_at", "eps": 0.1, "step_size": 0.02, "steps": 5,
            "terms": [{"name": "supcon", "weight": 1.0, "selection": "leaked", "tau": 0.07},
                      {"name": "vat", "weight": 2.0}]}
    d = D.build(spec)
    assert isinstance(d, D.Composite) and d.weights == [1.0, 1.0, 2.0]
    assert [type(t) for t in d.terms] == [D.PGDAT, D.SupCon, D.VAT]
    assert d.terms[0].attack == PGD(eps=0.1, step_size=0.02, steps=5)
    op = D.PGDAT(attack=PGD(eps=0.1, step_size=0.02, steps=5)) + D.SupCon(selection="leaked") + D.VAT() * 2.0
    assert op.config() == d.config()
    assert D.build(json.loads(json.dumps(d.config()))).config() == d.config()
    # a preset stays one named part when terms are added
    mixed = D.ASCL(attack=PGD(eps=0.1, steps=2)) + D.EmbeddingDistance(layer="penultimate", ce=False) * 0.5
    cfg = mixed.config()
    assert cfg["name"] == "ascl" and cfg["terms"][0]["weight"] == 0.5
    assert D.build(cfg).config() == cfg
    scaled = D.build({"name": "trades", "weight": 0.5})
    assert scaled.weights == [0.5] and D.build(scaled.config()).config() == scaled.config()


@pytest.mark.parametrize("spec, err, match", [
    ({"name": "tradez"}, ValueError, r"name must be one of .*'trades'.*'supcon'"),
    ({"beta": 6}, ValueError, "needs a 'name'.*'nat'"),
    ({"name": "trades", "betta": 6}, ValueError, r"unknown option\(s\) \['betta'\].*'beta'"),
    ({"name": "pgd_at", "attack": "fgsm", "steps": 3}, ValueError, r"\['steps'\] for attack 'fgsm'"),
    ({"name": "pgd_at", "attack": "bim"}, ValueError, "attack must be one of"),
    ({"name": "supcon", "selection": "local"}, ValueError, r"selection must be one of \['global'"),
    ({"name": "supcon", "head": "deep"}, ValueError, "head must be one of"),
    ({"name": "anc", "strategy": "easy"}, ValueError, "strategy must be one of"),
    ({"name": "ancra", "base": "nat"}, ValueError, r"base must be one of \['trades'"),
    ({"name": "ascl", "base": "mart"}, ValueError, r"base must be one of \['pgd_at', 'trades'\]"),
    ({"name": "trades", "beta": -1}, ValueError, "beta must be >= 0"),
    ({"name": "supcon", "tau": 0}, ValueError, "tau must be > 0"),
    ({"name": "embedding", "distance": "cosine"}, ValueError, "distance must be one of"),
    ({"name": "vat", "weight": "x"}, TypeError, "multiplied by a number"),
    ({"name": "nat", "terms": {"name": "vat"}}, TypeError, "'terms' must be a list"),
    (42, TypeError, "spec must be"),
])
def test_bad_specs_raise_clear_errors(spec, err, match):
    with pytest.raises(err, match=match):
        D.build(spec)


def test_bad_call_arguments():
    model, (x, y) = tiny(), batch(4)
    d = D.NAT()
    with pytest.raises(ValueError, match="attack_bn must be one of"):
        d(model, x, y, attack_bn="training")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        d(model, x * 3, y)
    with pytest.raises(ValueError, match="y must have shape"):
        d(model, x, y[:2])
    with pytest.raises(TypeError, match="generator"):
        d(model, x, y, generator=0)
    with pytest.raises(TypeError, match="added to another term"):
        D.NAT() + 1
    with pytest.raises(TypeError, match="multiplied by a number"):
        D.NAT() * torch.tensor(2.0)
    with pytest.raises(TypeError, match="attack must be"):
        D.PGDAT(attack="pgd")


def test_ancra_with_real_attacks_on_reverse_attention_model():
    """Real PGD (whose final check forwards a subset of rows) through the label-bound view."""
    ra = ReverseAttention(tiny())
    x, y = batch(8)
    for base in ("pgd_at", "mart", "trades"):
        d = D.build({"name": "ancra", "base": base, "eps": 0.1, "step_size": 0.05, "steps": 2,
                     "neg_eps": 0.1, "neg_step_size": 0.05, "neg_steps": 2})
        loss, logs = d(ra, x, y, generator=torch.Generator().manual_seed(0))
        assert math.isfinite(logs["loss"]) and "aux" in logs and "anc" in logs
    bound = D.label_bound(ra, y)
    assert torch.allclose(bound(x), ra(x, y))
    assert torch.allclose(bound(x[:3]), ra(x[:3]))     # a subset cannot be matched: test-time path


def test_aux_head_own_attack_is_aimed_at_the_auxiliary_logits():
    from robustviz.defenses._base import StepContext
    inner = tiny()
    ra = ReverseAttention(inner)
    x, y = batch(8)
    atk = PGD(eps=0.1, step_size=0.05, steps=3)
    ctx = StepContext(ra, x, y, layers=["logits", "aux_logits"], primary_attack=atk,
                      generator=torch.Generator().manual_seed(0))
    own = ctx.view("aux_logits", own_attack=True).x_adv()
    want = dataclasses.replace(atk, keep="last")(inner, x, y, generator=torch.Generator().manual_seed(0))
    assert torch.equal(own, want)                              # the plain classifier = the aux head
    shared = ctx.view("aux_logits").x_adv()
    assert ctx.attack_calls == 2 and not torch.equal(shared, own)
    assert torch.equal(ctx.view("aux_logits", own_attack=True).x_adv(), own)   # cached
    assert ctx.attack_calls == 2
    out = ctx.view("aux_logits", own_attack=True).adv()
    assert torch.allclose(out["logits"], inner(own), atol=1e-6)

    for aux_attack, calls in (("shared", 2), ("own", 3)):     # main + negatives (+ aux)
        d = D.build({"name": "ancra", "base": "trades", "aux_attack": aux_attack, "eps": 0.1,
                     "step_size": 0.05, "steps": 2, "neg_eps": 0.1, "neg_step_size": 0.05, "neg_steps": 2})
        assert d.config()["aux_attack"] == aux_attack and D.build(d.config()).config() == d.config()
        ctx_calls = []
        orig = StepContext.x_adv

        def counting(self, *a, **kw):
            before = self.attack_calls
            r = orig(self, *a, **kw)
            ctx_calls.append(self.attack_calls - before)
            return r

        StepContext.x_adv = counting
        try:
            loss, logs = d(ra, x, y, generator=torch.Generator().manual_seed(0))
        finally:
            StepContext.x_adv = orig
        assert math.isfinite(logs["loss"]) and "aux" in logs
        assert sum(ctx_calls) == calls - 1                     # negatives come from ANC's own PGD
    with pytest.raises(ValueError, match="aux_attack|attack"):
        D.build({"name": "ancra", "aux_attack": "mine"})


def test_anc_value_finite_gradient_when_excluded_pair_underflows():
    """Regression: an excluded pair whose probability underflows to 0 must not turn the
    gradient into NaN (sqrt'(0) = inf times the where-mask's 0)."""
    from robustviz.defenses import anc_value

    logits_a = torch.tensor([[20.0, -200.0, 0.0], [5.0, 0.0, 0.0]], requires_grad=True)
    logits_n = torch.tensor([[-200.0, 200.0, 0.0], [4.0, 0.0, 0.0]], requires_grad=True)
    pa, pn = logits_a.softmax(1), logits_n.softmax(1)
    value, mask = anc_value(pa, pn, alpha=0.5)
    assert mask.tolist() == [False, True]
    ga, gn = torch.autograd.grad(value, [logits_a, logits_n])
    assert torch.isfinite(ga).all() and torch.isfinite(gn).all()
    ph, poh = pa[1, 0], pn[1, 0]
    assert torch.allclose(value, torch.sqrt(ph * poh) / 2)  # mean over the batch of [0, sqrt]
