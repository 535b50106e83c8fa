"""Defenses as composable loss terms, run by one training loop.

::

    from robustviz.attacks import PGD
    from robustviz.defenses import PGDAT, SupCon, VAT, build

    defense = PGDAT(attack=PGD(eps=0.1, step_size=0.02, steps=5)) + SupCon(selection="leaked") + VAT() * 2.0
    defense.prepare(model, x)              # builds trainable pieces (a projection head), if any
    optimizer = torch.optim.SGD([*model.parameters(), *defense.parameters()], lr=0.1)
    loss, logs = defense(model, x, y, attack_bn="eval", bf16=False, generator=g)

    same = build(defense.config())         # configs round-trip through JSON

Names for :func:`build`: ``nat``, ``pgd_at``, ``fgsm_rs``, ``nfgsm``, ``trades``, ``mart``,
``gaussian_aug`` and ``ibp`` (training for certificates), ``embedding`` (paper 000),
``ascl`` (paper 001 preset), ``ancra`` (paper 004 preset, with ``"base"``), and the terms
``supcon``, ``vat``, ``anc``, ``aux_head``.
"""
from robustviz.defenses._base import (Composite, StepContext, Term, attack_config, attack_from_config,
                                      build, label_bound, list_defenses, register, unwrap_model)
from robustviz.defenses._baselines import FGSMRSAT, MART, NAT, PGDAT, TRADES, kl_rows, mart_loss, trades_kl
from robustviz.defenses._nfgsm import NFGSM, NFGSMAT
from robustviz.defenses._embedding import EmbeddingDistance, embedding_distance
from robustviz.defenses._supcon import ASCL, VAT, SupCon, similarity_matrix, supcon_loss, supcon_masks
from robustviz.defenses._ancra import ANC, ANCRA, AuxHead, anc_value, pick_negatives
from robustviz.defenses._certified import GaussianAugment, IBPTraining, ibp_worst_logits
from robustviz.defenses._ntxent import contrastive_masks, nt_xent
from robustviz.defenses._pretrain import NTXent, ViewSupCon
from robustviz.defenses._clusterfit import ClusterFit, PseudoLabelCE, cluster_fit
from robustviz.defenses._pretrain_presets import AdvCL, ASCLPretrain

__all__ = [
    "NTXent", "ViewSupCon", "PseudoLabelCE", "AdvCL", "ASCLPretrain", "ClusterFit", "cluster_fit", "nt_xent", "contrastive_masks",
    "Term", "Composite", "StepContext", "build", "list_defenses", "register",
    "NAT", "PGDAT", "FGSMRSAT", "NFGSMAT", "NFGSM", "TRADES", "MART", "GaussianAugment", "IBPTraining",
    "ibp_worst_logits",
    "EmbeddingDistance", "SupCon", "VAT", "ASCL", "ANC", "AuxHead", "ANCRA",
    "kl_rows", "trades_kl", "mart_loss", "embedding_distance", "supcon_masks", "supcon_loss",
    "similarity_matrix", "anc_value", "pick_negatives",
    "attack_config", "attack_from_config", "label_bound", "unwrap_model",
]
