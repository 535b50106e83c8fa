"""The pretraining section: the pretrain -> finetune lineage and the SLF / ALF / AFF table
(with paper 003's linear-separability comparison).

:func:`pretrain_section` computes it as a dict from run directories; the report registers
:func:`section`, which reads the report's runs through it. It reads run directories only (no training,
no attack), so it is cheap.

References
----------
Fan et al., "When Does Contrastive Learning Preserve Adversarial Robustness from
Pretraining to Finetuning?", NeurIPS 2021 (Table 1: SA, RA, AA after SLF/ALF/AFF).
Paper 003: adversarial supervised contrastive pretraining, Machine Learning 2023
(linear separability: standard vs adversarial linear head on the same frozen features).
"""
from __future__ import annotations

from pathlib import Path

from robustviz.report._context import Context
from robustviz.report._sections import ReportFigure, Section, tables_from_dicts

__all__ = ["pretrain_section", "finetune_rows", "section"]

_MODE_NAMES = {"slf": "SLF", "alf": "ALF", "aff": "AFF", "full": "full FT"}
_KIND_NAMES = {"ntxent": "SimCLR", "advcl": "AdvCL", "ascl_pretrain": "ASCL pretraining"}


def _kind_name(cfg: dict) -> str:
    pre = cfg.get("pretrain") or {}
    kind = pre.get("kind")
    if kind == "ntxent":
        views = (cfg.get("defense") or {}).get("views") or []
        if any(str(v).startswith("adv") for v in views):
            return "adversarial SimCLR"
    return _KIND_NAMES.get(kind, str(kind or "supervised"))


def _final(run: Path) -> dict:
    from robustviz import runs

    finals = [r for r in runs.read_metrics(run) if r.get("kind") == "final"]
    return finals[-1] if finals else {}


def finetune_rows(run_dirs) -> list[dict]:
    """One dict per finetuning run among ``run_dirs`` (others are skipped): ``run``,
    ``encoder``, ``pretraining``, ``mode``, ``dataset``, ``transfer``, ``sa``, ``ra``, ``aa``,
    ``aa_n``, ``n``, ``eps`` (accuracies as fractions, ``None`` when not measured),
    ``pretrain_seconds``, ``clusterfit_from``."""
    from robustviz import runs

    rows = []
    for run in map(Path, run_dirs):
        try:
            cfg = runs.load_config(run)
        except FileNotFoundError:
            continue
        fin = cfg.get("finetune")
        if not fin:
            continue
        enc = Path(fin["encoder"])
        try:
            enc_cfg = runs.load_config(enc)
            enc_final = _final(enc)
        except FileNotFoundError:
            enc_cfg, enc_final = {}, {}
        res = _final(run)
        steps = next((k for k in res if k.startswith("pgd") and k.endswith("_acc")), None)
        rows.append({
            "run": str(run), "encoder": str(enc), "pretraining": _kind_name(enc_cfg) if enc_cfg else "?",
            "mode": fin.get("mode"), "dataset": (cfg.get("data") or {}).get("name"),
            "transfer": bool(fin.get("transfer")), "sa": res.get("clean_acc"),
            "ra": res.get(steps) if steps else None, "ra_attack": (steps or "pgd20_acc")[:-4].upper(),
            "aa": res.get("aa_acc"), "aa_n": res.get("aa_n"), "n": res.get("n"), "eps": res.get("eps"),
            "pretrain_seconds": enc_final.get("pretrain_seconds"),
            "clusterfit_from": ((enc_cfg.get("pretrain") or {}).get("clusterfit") or {}).get("from"),
        })
    return rows


def _pct(v) -> str:
    return "-" if v is None else f"{100 * float(v):.1f}"


def pretrain_section(run_dirs) -> dict:
    """The report section of pretraining/finetuning runs.

    Parameters
    ----------
    run_dirs : iterable of path
        Run directories; finetuning runs (written by ``robustviz finetune``) are used, and
        their encoders' runs are read through the lineage.

    Returns
    -------
    dict
        ``{"title": str, "text": str, "tables": [...], "figures": [...]}``. Each table is
        ``{"caption": str, "columns": [str], "rows": [[str]]}``; ``figures`` holds one
        matplotlib Figure (robust accuracy per encoder and finetuning mode) when there are
        rows. ``text`` lists the lineage ``ClusterFit source -> encoder -> finetuning run``.
    """
    rows = finetune_rows(run_dirs)
    title = "Robust pretraining and finetuning"
    if not rows:
        return {"title": title, "text": "No finetuning runs.", "tables": [], "figures": []}
    lines = []
    for r in rows:
        src = f"{r['clusterfit_from']} (ClusterFit) -> " if r["clusterfit_from"] else ""
        t = f" in {r['pretrain_seconds']:.0f} s" if r["pretrain_seconds"] else ""
        lines.append(f"{src}{r['encoder']} ({r['pretraining']}{t}) -> {r['run']} "
                     f"({_MODE_NAMES.get(r['mode'], r['mode'])} on {r['dataset']}"
                     f"{', transfer' if r['transfer'] else ''})")
    eps = next((r["eps"] for r in rows if r["eps"] is not None), None)
    text = ("Each finetuning run names its encoder's run directory. SA: clean accuracy; RA: "
            f"Linf PGD accuracy (eps {eps:g}); AA: AutoAttack (standard) on the first n test images. "
            "Lineage:\n" + "\n".join(lines)) if eps is not None else "Lineage:\n" + "\n".join(lines)
    main = {"caption": "SA / RA / AA (%) after standard linear (SLF), adversarial linear (ALF), "
                       "adversarial full (AFF) and standard full finetuning (Fan et al. 2021, Table 1)",
            "columns": ["pretraining", "encoder", "finetuning", "data", "SA", "RA", "AA", "AA n"],
            "rows": [[r["pretraining"], Path(r["encoder"]).name, _MODE_NAMES.get(r["mode"], r["mode"]),
                      r["dataset"], _pct(r["sa"]), _pct(r["ra"]), _pct(r["aa"]), str(r["aa_n"] or "-")]
                     for r in rows]}
    tables = [main]
    by_enc: dict[tuple, dict] = {}
    for r in rows:
        by_enc.setdefault((r["encoder"], r["dataset"]), {})[r["mode"]] = r
    sep = [[by_enc_key_row["slf"]["pretraining"], Path(k[0]).name, k[1],
            _pct(by_enc_key_row["slf"]["sa"]), _pct(by_enc_key_row["slf"]["ra"]),
            _pct(by_enc_key_row["alf"]["sa"]), _pct(by_enc_key_row["alf"]["ra"])]
           for k, by_enc_key_row in by_enc.items() if "slf" in by_enc_key_row and "alf" in by_enc_key_row]
    if sep:
        tables.append({"caption": "Linear separability (paper 003): a standard and an adversarial "
                                  "linear head on the same frozen features",
                       "columns": ["pretraining", "encoder", "data", "standard head SA", "standard head RA",
                                   "adversarial head SA", "adversarial head RA"],
                       "rows": sep})
    return {"title": title, "text": text, "tables": tables, "figures": [_figure(rows)]}


def _figure(rows):
    import numpy as np

    from robustviz.figures._common import new_axes
    from robustviz.figures._style import palette

    encs = list(dict.fromkeys((r["pretraining"], Path(r["encoder"]).name) for r in rows))
    modes = [m for m in ("slf", "alf", "aff", "full") if any(r["mode"] == m for r in rows)]
    fig, (ax,) = new_axes(figsize=(1.2 + 0.9 * len(encs) * max(len(modes), 1), 3.0))
    colors = palette(max(len(modes), 1))
    width = 0.8 / max(len(modes), 1)
    for j, m in enumerate(modes):
        vals = []
        for kind, name in encs:
            hit = [r for r in rows if r["mode"] == m and (r["pretraining"], Path(r["encoder"]).name) == (kind, name)]
            vals.append(100 * hit[-1]["ra"] if hit and hit[-1]["ra"] is not None else np.nan)
        ax.bar(np.arange(len(encs)) + j * width, vals, width, color=colors[j], label=_MODE_NAMES[m])
    ax.set_xticks(np.arange(len(encs)) + width * (len(modes) - 1) / 2)
    ax.set_xticklabels([k for k, _ in encs])
    ax.set_ylabel("robust accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(frameon=False)
    ax.set_title("Robust accuracy after finetuning")
    return fig


def section(ctx: Context) -> Section | None:
    """Robust pretraining: the pretrain -> finetune lineage and the SLF/ALF/AFF table (Fan
    et al., NeurIPS 2021; and paper 003's linear-separability comparison); only for
    finetuning runs (``robustviz finetune``), which it reads without attacking."""
    res = pretrain_section([run.path for run in ctx.runs.values()])
    if not res["tables"]:
        return None
    figs = [ReportFigure("pretrain_robust_accuracy", f,
                         "Robust accuracy after each finetuning mode, per pretrained encoder. "
                         "Robust pretraining should keep RA high even with a standard linear head (SLF).")
            for f in res["figures"]]
    return Section(title=res["title"], text=res["text"].split("\n"), figures=figs,
                   tables=tables_from_dicts("pretrain", res["tables"]))
