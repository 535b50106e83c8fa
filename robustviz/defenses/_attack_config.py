"""How a term writes its training attack into a defense config and reads it back: a flat
JSON-able dict (``{"attack": "pgd", "eps": 0.1, ...}``) of the attack's dataclass fields,
without those set per call."""
from __future__ import annotations

import dataclasses
import math
from typing import Iterable

from robustviz._validate import check_choice

# set per call: BatchNorm mode and precision from the defense's arguments; training attacks
# return their last iterate (Madry et al.), unless they stop early per example
_ATTACK_RUNTIME_FIELDS = ("bn_mode", "bf16", "keep")


def _attack_classes() -> dict[str, type]:
    from robustviz import attacks
    names = {"pgd": "PGD", "fgsm": "FGSM", "fgsm_rs": "FGSMRS", "mim": "MIM"}
    return {k: getattr(attacks, v) for k, v in names.items() if hasattr(attacks, v)}


def _attack_key(attack) -> str:
    for key, cls in _attack_classes().items():
        if type(attack) is cls:
            return key
    raise ValueError(f"cannot write {type(attack).__name__} into a defense config; config() "
                     f"supports the attacks {sorted(_attack_classes())}")


def _jsonable(v) -> bool:
    if v is None or isinstance(v, (bool, int, str)):
        return True
    return isinstance(v, float) and math.isfinite(v)


def attack_config(attack, *, prefix: str = "", fixed: Iterable[str] = ()) -> dict:
    """Flat JSON-able description of a training attack: ``{"attack": "pgd", "eps": ...}``.

    Fields set per call (``bn_mode``, ``bf16``) and those in ``fixed`` (chosen by the term,
    such as TRADES' loss) are left out. Raises ``ValueError`` for a field that JSON cannot
    hold (a callable loss)."""
    if attack is None:
        return {}
    out = {f"{prefix}attack": _attack_key(attack)}
    for f in dataclasses.fields(attack):
        if f.name in _ATTACK_RUNTIME_FIELDS or f.name in fixed or not f.init:
            continue
        value = getattr(attack, f.name)
        if isinstance(value, tuple):
            value = list(value)
        if not (_jsonable(value) or (isinstance(value, list) and all(map(_jsonable, value)))):
            raise ValueError(f"attack field {f.name}={value!r} cannot be written into a config "
                             f"(only numbers, strings, booleans and None)")
        out[prefix + f.name] = value
    return out


def attack_fields(kind: str) -> list[str]:
    """Field names a config may give for an attack of kind ``kind`` (``"pgd"``...)."""
    cls = _attack_classes()[kind]
    return [f.name for f in dataclasses.fields(cls) if f.init and f.name not in _ATTACK_RUNTIME_FIELDS]


def attack_from_config(spec: dict, default, *, prefix: str = "", fixed: dict | None = None):
    """Build an attack from the flat keys of ``spec`` (removing them), on top of ``default``.

    ``spec["attack"]`` names the kind (``"pgd"``, ``"fgsm"``, ``"fgsm_rs"``); the other keys
    are fields of that dataclass. With no attack key at all, returns ``default`` (which may be
    ``None``: no attack). Fields missing from ``spec`` keep ``default``'s values when the kind
    is the same as ``default``'s."""
    classes = _attack_classes()
    kind = spec.pop(prefix + "attack", None)
    all_fields = {f for k in classes for f in attack_fields(k)}
    given = {k[len(prefix):]: spec.pop(k) for k in list(spec)
             if k.startswith(prefix) and k[len(prefix):] in all_fields}
    if kind is None and not given:
        return default if not fixed or default is None else dataclasses.replace(default, **fixed)
    if kind is None:
        kind = _attack_key(default) if default is not None else "pgd"
    check_choice(kind, prefix + "attack", sorted(classes))
    valid = attack_fields(kind)
    bad = sorted(set(given) - set(valid))
    if bad:
        raise ValueError(f"unknown option(s) {[prefix + b for b in bad]} for attack {kind!r}; "
                         f"valid: {[prefix + v for v in valid]}")
    if default is not None and _attack_key(default) == kind:
        atk = dataclasses.replace(default, **given, **(fixed or {}))
    else:
        base = {}
        if default is not None:   # carry over the shared fields of another default kind
            base = {f: getattr(default, f) for f in valid if hasattr(default, f)
                    and f in ("eps", "norm")}
        fixed_ok = {k: v for k, v in (fixed or {}).items() if k in valid}
        atk = classes[kind](**{**base, **given, **fixed_ok})
    return atk
