"""``evaluate``: clean and adversarial top-k accuracy of a model over a data set."""
from __future__ import annotations

import dataclasses
import time
from typing import Mapping

import torch
from torch import nn

from robustviz._utils import (device_name, model_device, model_mode, tqdm,
                              with_inner_progress)
from robustviz._validate import check_int
from robustviz.attacks import Attack, attack_label
from robustviz.evaluate._common import (as_tensors, batches, check_batch_size, check_model,
                                        fmt_pct, generator, stream_seed, topk_correct)

__all__ = ["EvalResult", "WorstCase", "evaluate"]


@dataclasses.dataclass(frozen=True, eq=False)
class EvalResult:
    """Clean and per-attack accuracy of one model on one data set.

    Attributes
    ----------
    n : int
        Number of examples.
    topk : tuple of int
        The k of the top-k accuracies.
    accuracy : dict
        ``{"clean": {k: acc}, attack_name: {k: acc}, ...}`` (fractions in [0, 1]).
        An example is robust at top-k when its label is in the top k for both the
        clean and the adversarial input (the clean input is a point of the ball).
        Attacks target top-1: with ``early_stop=True`` they stop at the first
        misclassified point, so their top-3/5 numbers are lenient.
    correct : dict
        ``{name: Tensor (N, len(topk)) bool}`` per-example correctness, columns in the
        order of ``topk``; :meth:`correct_top1` gives the first column.
    perturbation : dict
        ``{attack_name: {"l2_median", "l2_mean", "linf_median", "linf_max"}}`` of
        ``x_adv - x``.
    attacks : dict
        ``{attack_name: attack.describe()}``.
    seconds : dict
        Wall time per attack (and ``"clean"``).
    adv : dict
        ``{attack_name: Tensor (N, C, H, W)}`` adversarial images (CPU) of the attacks
        named in ``evaluate(..., keep_adv=...)``; empty by default.
    minimal : dict
        For minimal-perturbation attacks (no ``eps``: C&W, DeepFool), which find the
        smallest perturbation that flips the prediction rather than the worst one inside
        a ball: ``{name: {"success_rate", "l2_median", "linf_median", "eps", "norm",
        "acc_at_eps"}}``; norms are medians over the successful examples, ``acc_at_eps``
        the top-1 accuracy when only perturbations within the threat model's eps count
        (``None`` when no eps is known). :meth:`table` lists them apart from the
        eps-bounded accuracies.
    breakdown : dict
        For ensembles (:class:`~robustviz.attacks.AutoAttack`,
        :class:`~robustviz.attacks.WorstOf`): ``{attack_name: {component: examples it
        broke first}}`` (top-1; examples misclassified clean are not counted).
    spread : dict
        With ``evaluate(..., seeds=k)``, k > 1: ``{attack_name: {"seeds", "accuracy",
        "mean", "min", "max", "worst"}}``: top-1 robust accuracy per attack seed, its mean
        and range, and ``worst``, the accuracy when an example counts as broken if any
        seed broke it. The other fields hold the first seed's run.
    context : dict
        What :meth:`card` reports besides the attacks: seeds, device, how the examples
        were chosen, versions.
    """

    n: int
    topk: tuple[int, ...]
    accuracy: dict
    correct: dict
    perturbation: dict
    attacks: dict
    seconds: dict
    data_name: str | None = None
    adv: dict = dataclasses.field(default_factory=dict, repr=False)
    minimal: dict = dataclasses.field(default_factory=dict)
    breakdown: dict = dataclasses.field(default_factory=dict)
    spread: dict = dataclasses.field(default_factory=dict)
    context: dict = dataclasses.field(default_factory=dict)

    @property
    def clean(self) -> dict:
        """``{k: clean top-k accuracy}``."""
        return self.accuracy["clean"]

    def robust(self, name: str, k: int = 1) -> float:
        """Top-k accuracy under attack ``name``."""
        return self.accuracy[name][k]

    def correct_top1(self, name: str = "clean") -> torch.Tensor:
        """(N,) bool top-1 correctness for ``"clean"`` or an attack."""
        return self.correct[name][:, 0]

    def bounded(self) -> list[str]:
        """Names of the eps-bounded attacks (all but minimal-perturbation ones), in order."""
        return [k for k in self.accuracy if k != "clean" and k not in self.minimal]

    def worst_case(self, names=None) -> "WorstCase":
        """Per-example worst case over the eps-bounded attacks ``names`` (default: all that
        ran): an example is robust only when it is correct on the clean input and under
        every attack (top-1). Raises ``ValueError`` for attacks with different threat
        models (a worst case over different balls means nothing)."""
        names = self.bounded() if names is None else list(names)
        unknown = [k for k in names if k not in self.accuracy or k == "clean"]
        if unknown or not names:
            raise ValueError(f"worst_case needs attacks that were evaluated; unknown {unknown}, "
                             f"evaluated {self.bounded()}")
        minimal = [k for k in names if k in self.minimal]
        if minimal:
            raise ValueError(f"{minimal} search for the smallest perturbation (no eps); a "
                             f"worst case is taken over eps-bounded attacks")
        threats = {(d.get("norm", "linf"), d.get("eps")) for d in
                   (_threat(self.attacks.get(k, {})) for k in names)}
        if len(threats) > 1:
            raise ValueError(f"the attacks {names} use different threat models {sorted(map(str, threats))}: "
                             f"a worst case over them means nothing")
        ok = self.correct_top1("clean").clone()
        first = torch.full((self.n,), -1, dtype=torch.long)
        for j, k in enumerate(names):
            broke = ok & ~self.correct_top1(k)
            first[broke] = j
            ok &= ~broke
        return WorstCase(accuracy=int(ok.sum()) / self.n if self.n else 0.0, n=self.n,
                         attacks=tuple(names),
                         breakdown={k: int((first == j).sum()) for j, k in enumerate(names)},
                         correct=ok)

    def card(self) -> dict:
        """The evaluation card: threat model, attacks with their budgets, backend and
        versions, number of examples and how they were chosen, seeds, interval method,
        device and precision: what a reviewer asks before trusting a robust accuracy.
        :meth:`card_text` prints it."""
        eps_norm = sorted({(t.get("norm", "linf"), t["eps"]) for t in
                           (_threat(self.attacks[k]) for k in self.bounded())
                           if t.get("eps") is not None}, key=str)
        threat = [{"norm": nm, "eps": e, "eps_x255": round(e * 255, 3) if nm == "linf" else None}
                  for nm, e in eps_norm]
        atk = {}
        for k, d in self.attacks.items():
            entry = {"label": d.get("label", k), "type": d.get("attack"),
                     "precision": "bf16 autocast" if d.get("bf16") else "fp32"}
            for key in ("steps", "restarts", "step_size", "loss", "random_start", "version",
                        "backend", "components"):
                if d.get(key) is not None:
                    entry[key] = d[key]
            wrapped = d.get("wrapped")
            if wrapped:
                entry["wrapped"] = {kk: wrapped[kk] for kk in ("attack", "steps", "restarts",
                                                               "version", "backend", "components")
                                    if wrapped.get(kk) is not None}
                entry["precision"] = "bf16 autocast" if wrapped.get("bf16") else "fp32"
            atk[k] = entry
        return {"threat_model": threat, "attacks": atk, "n": self.n,
                "data": self.data_name, **self.context,
                "interval": "95% Wilson score interval per accuracy (binomial over n examples)",
                "worst_case": "per example over the eps-bounded attacks (EvalResult.worst_case)"}

    def card_text(self) -> str:
        """The evaluation card as plain text, one fact per line."""
        c = self.card()
        lines = ["evaluation card"]
        for t in c["threat_model"]:
            extra = f" ({t['eps_x255']:g}/255)" if t.get("eps_x255") is not None else ""
            lines.append(f"  threat model: {t['norm']} eps {t['eps']:g}{extra}, pixels in [0, 1]")
        for k, a in c["attacks"].items():
            budget = ", ".join(f"{key} {a[key]}" for key in ("steps", "restarts", "step_size", "loss")
                               if key in a)
            inner = a.get("wrapped")
            if inner:
                budget = f"on the model and its surrogate: {inner.get('attack')}" + \
                    (f" {inner['version']}" if inner.get("version") else "") + \
                    (f", steps {inner['steps']}" if inner.get("steps") else "")
            lines.append(f"  attack {k}: {a['type']}" + (f" {a['version']}" if a.get("version") else "")
                         + (f" ({budget})" if budget else "") + f", {a['precision']}")
            backend = a.get("backend") or (inner or {}).get("backend")
            if backend:
                lines.append(f"    backend: {backend}")
        lines.append(f"  examples: {c['n']}" + (f" of {c['data']}" if c.get("data") else "")
                     + (f", {c['selection']}" if c.get("selection") else ""))
        if c.get("seeds"):
            lines.append(f"  attack seeds: {c['seeds']}")
        lines.append(f"  interval: {c['interval']}")
        if c.get("device"):
            lines.append(f"  device: {c['device']}; versions: {c.get('versions', {})}")
        return "\n".join(lines)

    def table(self) -> str:
        """Plain-text table: one row per input kind, accuracies in percent."""
        head = ["", *[f"top-{k}" for k in self.topk], "L2 med", "Linf med", "seconds"]
        rows = []
        lenient = ensemble = False
        for name, acc in self.accuracy.items():
            if name in self.minimal:
                continue
            pert = self.perturbation.get(name)
            star = "*" if self.attacks.get(name, {}).get("early_stop") else ""
            lenient = lenient or (bool(star) and len(self.topk) > 1)
            rows.append([name, *[fmt_pct(acc[k]).strip() + (star if k > 1 else "") for k in self.topk],
                         "-" if pert is None else f"{pert['l2_median']:.4f}" + ("+" if pert.get("over") else ""),
                         "-" if pert is None else f"{pert['linf_median']:.4f}" + ("+" if pert.get("over") else ""),
                         f"{self.seconds.get(name, float('nan')):.1f}"])
            ensemble = ensemble or bool(pert and pert.get("over"))
        widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
        title = f"accuracy (%) on {self.n} examples" + (f" of {self.data_name}" if self.data_name else "")
        lines = [title,
                 "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths)))]
        lines.append("-" * len(lines[-1]))
        for r in rows:
            lines.append("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                                   for i, (c, w) in enumerate(zip(r, widths))))
        if lenient:
            lines.append("* early_stop=True: the attack stops at the first misclassified point, "
                         "so top-k (k > 1) is lenient")
        if ensemble:
            lines.append("+ ensembles return the clean image where no attack broke the example: "
                         "their perturbation sizes are over the examples they broke")
        if len(self.bounded()) > 1:
            try:
                w = self.worst_case()
                lines.append(f"worst case per example over {', '.join(w.attacks)}: "
                             f"{fmt_pct(w.accuracy).strip()}% (broken first by: "
                             + ", ".join(f"{k} {v}" for k, v in w.breakdown.items()) + ")")
            except ValueError:
                pass
        for name, parts in self.breakdown.items():
            lines.append(f"{name}: examples broken first by " +
                         ", ".join(f"{k} {v}" for k, v in parts.items()))
        for name, sp in self.spread.items():
            lines.append(f"{name} over {len(sp['seeds'])} attack seeds: mean "
                         f"{fmt_pct(sp['mean']).strip()}%, range {fmt_pct(sp['min']).strip()}-"
                         f"{fmt_pct(sp['max']).strip()}%, any seed {fmt_pct(sp['worst']).strip()}%")
        if self.minimal:
            lines.append("")
            lines.append("minimal-perturbation attacks (no eps; norms: medians over the "
                         "successful examples)")
            mh = ["", "success %", "L2 med", "Linf med", "acc at eps %", "seconds"]
            mrows = []
            for name, m in self.minimal.items():
                at = "-" if m.get("acc_at_eps") is None else \
                    f"{fmt_pct(m['acc_at_eps']).strip()} ({m['norm']} {m['eps']:.4g})"
                mrows.append([name, fmt_pct(m["success_rate"]).strip(),
                              "-" if m["l2_median"] is None else f"{m['l2_median']:.4f}",
                              "-" if m["linf_median"] is None else f"{m['linf_median']:.4f}",
                              at, f"{self.seconds.get(name, float('nan')):.1f}"])
            mw = [max(len(str(r[i])) for r in [mh] + mrows) for i in range(len(mh))]
            lines.append("  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                                   for i, (h, w) in enumerate(zip(mh, mw))))
            lines.append("-" * len(lines[-1]))
            for r in mrows:
                lines.append("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                                       for i, (c, w) in enumerate(zip(r, mw))))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def to_dict(self, *, per_example: bool = False) -> dict:
        """JSON-serialisable dict; ``per_example=True`` adds the correctness lists."""
        out = {
            "n": self.n,
            "topk": list(self.topk),
            "data": self.data_name,
            "accuracy": {name: {f"top{k}": v for k, v in acc.items()}
                         for name, acc in self.accuracy.items()},
            "perturbation": self.perturbation,
            "attacks": self.attacks,
            "seconds": self.seconds,
            "minimal": self.minimal,
            "breakdown": self.breakdown,
            "spread": self.spread,
            "card": self.card(),
        }
        if len(self.bounded()) > 1:
            try:
                out["worst_case"] = self.worst_case().to_dict()
            except ValueError:
                pass
        if per_example:
            out["correct"] = {name: c.tolist() for name, c in self.correct.items()}
        return out


@dataclasses.dataclass(frozen=True, eq=False)
class WorstCase:
    """Per-example worst case over several attacks (:meth:`EvalResult.worst_case`).

    Attributes
    ----------
    accuracy : float
        Fraction of examples correct on the clean input and under every attack (top-1).
    n : int
    attacks : tuple of str
        The attacks, in the order their breaks are attributed.
    breakdown : dict
        ``{attack: examples it broke that no earlier attack of the list broke}``.
    correct : Tensor
        (N,) bool per-example robustness.
    """

    accuracy: float
    n: int
    attacks: tuple
    breakdown: dict
    correct: torch.Tensor = dataclasses.field(repr=False)

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "n": self.n, "attacks": list(self.attacks),
                "breakdown": dict(self.breakdown)}


def _threat(described: dict) -> dict:
    """``{"norm", "eps"}`` of an attack's ``describe()`` (looking through wrappers)."""
    d = described.get("wrapped", described)
    return {"norm": str(d.get("norm", "linf")).lower(), "eps": d.get("eps")}


def _check_topk(topk, num_classes: int | None) -> tuple[int, ...]:
    if isinstance(topk, int):
        topk = (topk,)
    try:
        ks = tuple(sorted(set(check_int(k, "topk", minimum=1) for k in topk)))
    except TypeError:
        raise TypeError(f"topk must be an int or a sequence of ints, got {topk!r}") from None
    if not ks:
        raise ValueError("topk must hold at least one k")
    if num_classes is not None and ks[-1] > num_classes:
        raise ValueError(f"topk has k={ks[-1]} but the model has only {num_classes} classes")
    return ks


def _check_attacks(attacks) -> dict[str, Attack]:
    if attacks is None:
        return {}
    if isinstance(attacks, Attack):
        return {attacks.name.lower(): attacks}
    if isinstance(attacks, Mapping):
        out = {}
        for name, atk in attacks.items():
            if not isinstance(name, str) or not name or name == "clean":
                raise ValueError(f"attack names must be non-empty strings other than 'clean', "
                                 f"got {name!r}")
            if not isinstance(atk, Attack):
                raise TypeError(f"attacks[{name!r}] must be a robustviz Attack (e.g. PGD(...)), "
                                f"got {type(atk).__name__}")
            out[name] = atk
        return out
    raise TypeError(f"attacks must be a dict name -> Attack (or one Attack), got "
                    f"{type(attacks).__name__}")


def evaluate(model: nn.Module, data, attacks: Mapping[str, Attack] | Attack | None = None, *,
             topk=(1, 3, 5), batch_size: int = 256, seed: int = 0, keep_adv=False,
             eps: float | None = None, norm: str | None = None, seeds: int = 1,
             selection: str | None = None, progress: bool = True) -> EvalResult:
    """Clean and adversarial top-k accuracy of ``model`` on ``data``.

    Parameters
    ----------
    model : nn.Module
        Classifier on pixels in [0, 1]. Evaluated in eval mode (its mode is restored).
    data : Dataset or (Tensor, Tensor)
        A :class:`robustviz.data.Dataset` or a pair ``(x, y)``; batches are moved to
        the model's device.
    attacks : dict of str to Attack, optional
        E.g. ``{"pgd20": PGD(eps=0.1, steps=20), "fgsm": FGSM(eps=0.1)}``.
    topk : int or tuple of int
        Default ``(1, 3, 5)`` (Zhang's embedding-space contrastive study reports Top-1/3/5).
    batch_size : int
    seed : int
        Every attack gets its own generator seeded from ``seed`` (the same stream for
        each: common random numbers, so two attacks differing in one option see the
        same random starts, and adding an attack changes no other result).
    keep_adv : bool or str or sequence of str
        Keep the adversarial images (on the CPU) of every attack (True) or of the named
        ones in ``result.adv``, e.g. to extract their features with
        :func:`robustviz.diagnostics.attacked_features` (``x_adv=``) without attacking
        again.
    eps, norm : float and {"linf", "l2"}, optional
        The threat model against which minimal-perturbation attacks (C&W, DeepFool) are
        scored (``result.minimal[name]["acc_at_eps"]``). Default: the ``eps`` and ``norm``
        of the eps-bounded attacks evaluated alongside, when they agree.
    seeds : int
        Attack seeds to run (``seed, seed + 1, ...``). With more than one, every attack
        runs once per seed and ``result.spread`` holds the robust accuracy per seed, its
        mean, range and the any-seed worst case: random starts and restarts make a single
        run a sample, not a result. The other fields hold the first seed's run.
    selection : str, optional
        How the examples were chosen (e.g. ``"class-stratified subset, seed 0"``), for the
        evaluation card (:meth:`EvalResult.card`).
    progress : bool
        tqdm progress bar over batches.

    Returns
    -------
    EvalResult

    Shape
    -----
    ``data.x``: (N, C, H, W) in [0, 1]; ``data.y``: (N,); ``result.correct[name]``:
    (N, len(topk)) bool.

    Examples
    --------
    >>> res = evaluate(model, test, {"pgd20": PGD(eps=0.1, steps=20)}, topk=(1, 3))
    >>> print(res.table()); res.to_dict()
    """
    check_model(model)
    x, y = as_tensors(data, model)
    atks = _check_attacks(attacks)
    batch_size = check_batch_size(batch_size)
    check_int(seed, "seed", minimum=0)
    check_int(seeds, "seeds", minimum=1)
    if selection is not None and not isinstance(selection, str):
        raise TypeError(f"selection must be a string saying how the examples were chosen, got "
                        f"{type(selection).__name__}")
    ks = _check_topk(topk, getattr(model, "num_classes", None))
    if isinstance(keep_adv, bool):
        keep = set(atks) if keep_adv else set()
    else:
        keep = {keep_adv} if isinstance(keep_adv, str) else set(keep_adv)
        if keep - set(atks):
            raise ValueError(f"keep_adv names attacks that are not evaluated: "
                             f"{sorted(keep - set(atks))}; attacks are {list(atks)}")
    adv: dict[str, list] = {name: [] for name in keep}
    dev = model_device(model)
    gens = {name: generator(dev, stream_seed(seed)) for name in atks}
    correct: dict[str, list] = {"clean": [], **{name: [] for name in atks}}
    l2: dict[str, list] = {name: [] for name in atks}
    linf: dict[str, list] = {name: [] for name in atks}
    seconds = {"clean": 0.0, **{name: 0.0 for name in atks}}
    by: dict[str, list] = {name: [] for name in atks}
    components: dict[str, tuple] = {}
    n = x.shape[0]
    for sl in with_inner_progress(tqdm(list(batches(n, batch_size)), disable=not progress,
                                       desc="evaluate", unit="batch", leave=False), progress):
        xb, yb = x[sl].to(dev), y[sl].to(dev)
        t0 = time.perf_counter()
        with model_mode(model, "eval"), torch.no_grad():
            logits = model(xb)
            if not torch.isfinite(logits).all():
                raise ValueError(f"model {type(model).__name__} gives NaN or infinite logits on "
                                 f"{int((~torch.isfinite(logits)).any(1).sum())} of {len(xb)} "
                                 f"examples (broken weights, training diverged?): its accuracy "
                                 f"would not be a result")
            c_clean = topk_correct(logits, yb, ks)
        seconds["clean"] += time.perf_counter() - t0
        correct["clean"].append(c_clean.cpu())
        for name, atk in atks.items():
            t0 = time.perf_counter()
            out = atk.run(model, xb, yb, generator=gens[name])
            x_adv = out.x_adv
            with model_mode(model, "eval"), torch.no_grad():
                c_adv = topk_correct(model(x_adv), yb, ks) & c_clean
            if out.by is not None:
                components[name] = out.components
                by[name].append(torch.where(c_clean[:, 0] & ~c_adv[:, 0], out.by,
                                            torch.full_like(out.by, -1)).cpu())
            seconds[name] += time.perf_counter() - t0
            correct[name].append(c_adv.cpu())
            if name in adv:
                adv[name].append(x_adv.detach().cpu())
            d = (x_adv - xb).reshape(xb.shape[0], -1).float()
            n2, ni = torch.linalg.vector_norm(d, dim=1), d.abs().amax(1)
            if out.by is not None:
                # an ensemble returns the clean image where no attack broke the example:
                # its perturbation statistics are over the examples it broke (NaN elsewhere)
                keep = out.by >= 0
                n2 = torch.where(keep, n2, torch.full_like(n2, float("nan")))
                ni = torch.where(keep, ni, torch.full_like(ni, float("nan")))
            l2[name].append(n2.cpu())
            linf[name].append(ni.cpu())
    corr = {name: torch.cat(v) for name, v in correct.items()}
    acc = {name: {k: c[:, i].sum().item() / c.shape[0] for i, k in enumerate(ks)} for name, c in corr.items()}
    pert = {}
    for name in atks:
        a2, ai = torch.cat(l2[name]), torch.cat(linf[name])
        a2, ai = a2[~a2.isnan()], ai[~ai.isnan()]
        if a2.numel() == 0:
            pert[name] = {"l2_median": 0.0, "l2_mean": 0.0, "linf_median": 0.0, "linf_max": 0.0}
        else:
            pert[name] = {"l2_median": float(a2.median()), "l2_mean": float(a2.mean()),
                          "linf_median": float(ai.median()), "linf_max": float(ai.max())}
        if name in components:
            pert[name]["over"] = "broken examples"
    minimal = _minimal(atks, corr, l2, linf, eps, norm)
    breakdown = {}
    for name, comps in components.items():
        b = torch.cat(by[name])
        breakdown[name] = {c: int((b == j).sum()) for j, c in enumerate(comps)}
    result = EvalResult(n=n, topk=ks, accuracy=acc, correct=corr, perturbation=pert,
                        attacks={name: {**atk.describe(), "label": attack_label(atk)}
                                 for name, atk in atks.items()},
                        seconds=seconds, data_name=getattr(data, "name", None),
                        adv={name: torch.cat(v) for name, v in adv.items()}, minimal=minimal,
                        breakdown=breakdown,
                        context=_context(dev, seed, seeds, selection, data, n))
    if seeds > 1 and atks:
        runs = [result] + [evaluate(model, (x, y), atks, topk=(1,), batch_size=batch_size,
                                    seed=seed + i, eps=eps, norm=norm, progress=progress)
                           for i in range(1, seeds)]
        spread = {}
        for name in atks:
            if name in minimal:
                continue
            accs = [r.robust(name, 1) for r in runs]
            any_seed = torch.stack([r.correct_top1(name) for r in runs]).all(0)
            spread[name] = {"seeds": [seed + i for i in range(seeds)], "accuracy": accs,
                            "mean": sum(accs) / len(accs), "min": min(accs), "max": max(accs),
                            "worst": int(any_seed.sum()) / len(any_seed)}
            for r in runs[1:]:
                seconds[name] += r.seconds[name]
        result = dataclasses.replace(result, spread=spread)
    return result


def _context(dev, seed: int, seeds: int, selection, data, n: int) -> dict:
    """The card's facts that are not attacks: seeds, device, selection, versions."""
    import robustviz

    if selection is None:
        split = getattr(data, "split", "")
        selection = (f"the {n} images given" + (f" ({split} split)" if split else ""))
    device = device_name(dev)
    versions = {"robustviz": getattr(robustviz, "__version__", "?"), "torch": torch.__version__}
    try:
        import torchattacks
        versions["torchattacks"] = torchattacks.__version__
    except ImportError:
        pass
    return {"seeds": [seed + i for i in range(seeds)], "device": device, "selection": selection,
            "versions": versions}


def _bounded(atk) -> bool:
    """Whether an attack searches inside an eps ball (``eps`` field) rather than for the
    smallest flipping perturbation (C&W, DeepFool); Adaptive wrappers are looked through."""
    inner = getattr(atk, "attack", atk)
    return getattr(inner, "eps", None) is not None


def _minimal(atks, corr, l2, linf, eps, norm) -> dict:
    unbounded = [name for name, atk in atks.items() if not _bounded(atk)]
    if not unbounded:
        return {}
    if eps is None:
        found = {(float(getattr(a, "attack", a).eps),
                  str(getattr(getattr(a, "attack", a), "norm", "linf")).lower())
                 for a in atks.values() if _bounded(a)}
        if len(found) == 1:
            eps, found_norm = found.pop()
            norm = norm or found_norm
    norm = (norm or "linf").lower()
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
    clean = corr["clean"][:, 0]
    out = {}
    for name in unbounded:
        fooled = clean & ~corr[name][:, 0]
        a2, ai = torch.cat(l2[name]), torch.cat(linf[name])
        n_clean = int(clean.sum())
        size = ai if norm == "linf" else a2
        entry = {"success_rate": float(fooled.sum()) / n_clean if n_clean else 0.0,
                 "l2_median": float(a2[fooled].median()) if fooled.any() else None,
                 "linf_median": float(ai[fooled].median()) if fooled.any() else None,
                 "eps": None if eps is None else float(eps), "norm": norm, "acc_at_eps": None}
        if eps is not None:
            # robust at eps: correct on the clean input and not flipped within the ball
            inside = fooled & (size <= float(eps) + 1e-6)
            entry["acc_at_eps"] = float((clean & ~inside).sum()) / clean.shape[0]
        out[name] = entry
    return out
