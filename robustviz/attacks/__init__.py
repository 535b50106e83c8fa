"""Adversarial attacks: hyperparameter objects called as ``x_adv = atk(model, x, y)``.

::

    from robustviz.attacks import PGD, FGSM, DeepFool
    atk = PGD(eps=8/255, step_size=2/255, steps=10)
    x_adv = atk(model, x, y)                       # model in eval inside, mode restored
    x_adv = atk(model, x, y, generator=torch.Generator().manual_seed(1))

The threat-model geometry (projection, step, random start) lives in
:mod:`robustviz.attacks.threat`; every attack composes it. Change one field with
``dataclasses.replace(atk, bn_mode="train")``.
"""
from robustviz.attacks._base import Attack, AttackOutput
from robustviz.attacks.adaptive import Adaptive, surrogate_of
from robustviz.attacks._losses import FeatureLoss, cross_entropy, cw_margin, kl_to_clean
from robustviz.attacks.autoattack import AutoAttack, SquareAttack
from robustviz.attacks.ensemble import WorstOf, attack_label
from robustviz.attacks.cw import CW
from robustviz.attacks.deepfool import DeepFool
from robustviz.attacks.fgsm import FGSM, FGSMRS
from robustviz.attacks.mim import MIM
from robustviz.attacks.multitarget import MultiTargetedPGD
from robustviz.attacks.pgd import PGD
from robustviz.attacks.threat import L2, Linf, ThreatModel, threat_model

__all__ = [
    "Attack", "AttackOutput", "WorstOf", "attack_label", "Adaptive", "surrogate_of", "PGD", "FGSM", "FGSMRS", "MIM", "CW", "DeepFool", "MultiTargetedPGD", "AutoAttack", "SquareAttack",
    "FeatureLoss", "cross_entropy", "cw_margin", "kl_to_clean",
    "ThreatModel", "Linf", "L2", "threat_model",
]
