"""``robustviz compare RUN_DIR ...``: one table of finished runs, read from their metrics
(nothing is recomputed): defense, epochs, training time, clean and robust accuracy of the
final evaluation, and the robust gain over a reference run (NAT by default)."""
from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="table of finished runs: clean / robust accuracy and gain over NAT",
        description="Read each RUN_DIR's config.json and metrics.jsonl (the 'final' record written "
                    "by `robustviz train`, else the newest 'evaluation' record of `robustviz "
                    "evaluate`) and print one table. Nothing is trained or attacked.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--reference", default=None, metavar="RUN_DIR",
                   help="run the robust gain is measured against (default: the run whose defense is nat)")
    p.add_argument("--min-gain", type=float, default=None, metavar="POINTS",
                   help="exit with status 1 when an adversarial defense gains fewer robust points than this")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    p.set_defaults(func=run)


def summarize(run_dir) -> dict:
    """One row: name, defense, epochs, training seconds, n, eps, clean and robust accuracy
    (fractions) and the attack that measured it."""
    from pathlib import Path

    from robustviz import runs

    path = Path(run_dir)
    cfg_file = path / runs.CONFIG
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{path} is not a run directory (no {runs.CONFIG})")
    config = json.loads(cfg_file.read_text())
    metrics = runs.read_metrics(path)
    epochs = [m for m in metrics if m.get("kind") == "epoch"]
    row = {"run": path.name, "path": str(path),
           "defense": (config.get("defense") or {}).get("name", "?"),
           "model": (config.get("model") or {}).get("name", "?"),
           "epochs": max((int(m["epoch"]) for m in epochs), default=0),
           "train_s": sum(float(m.get("time_s", 0.0)) for m in epochs)}
    final = [m for m in metrics if m.get("kind") == "final"]
    if final:
        f = final[-1]
        attack = next((k[:-4] for k in f if k.endswith("_acc") and k != "clean_acc"
                       and not k.endswith("_model_only_acc")), None)
        row.update(n=f.get("n"), eps=f.get("eps"), clean=f.get("clean_acc"),
                   attack=(attack + " adaptive" if attack and f.get("adaptive") else attack),
                   robust=f.get(f"{attack}_acc") if attack else None,
                   model_only=f.get(f"{attack}_model_only_acc") if attack else None)
        return row
    evals = [m for m in metrics if m.get("kind") == "evaluation"]
    if evals:
        e = evals[-1]
        acc = e.get("accuracy") or {}
        names = [k for k in acc if k != "clean"]
        top1 = (lambda v: v.get("top1") if isinstance(v, dict) else v)
        row.update(n=e.get("n"), eps=e.get("eps"), clean=top1(acc.get("clean")),
                   attack=(names[0] + (" adaptive" if e.get("adaptive") else "")) if names else None,
                   robust=top1(acc[names[0]]) if names else None)
        return row
    row.update(n=None, eps=None, clean=None, attack=None, robust=None)
    return row


def _footnotes(rows: list[dict]) -> list[str]:
    out = []
    for r in rows:
        if r.get("model_only") is not None:
            out.append(f"{r['run']}: {r['attack']} attacks the model and its differentiable surrogate "
                       f"(worst case per example); on the model alone it reports "
                       f"{100 * r['model_only']:.1f}% (masked gradients)")
    return out


def table(rows: list[dict], ref: dict | None) -> str:
    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}"

    head = ["run", "defense", "epochs", "train", "n", "eps", "clean %", "attack", "robust %",
            "gain vs " + (ref["run"] if ref else "-")]
    body = []
    for r in rows:
        gain = "-"
        if ref and r["robust"] is not None and ref["robust"] is not None:
            gain = f"{100 * (r['robust'] - ref['robust']):+.1f}"
        body.append([r["run"], r["defense"], str(r["epochs"]), f"{r['train_s'] / 60:.1f} min",
                     "-" if r["n"] is None else str(r["n"]),
                     "-" if r["eps"] is None else f"{r['eps']:g}", pct(r["clean"]),
                     r["attack"] or "not evaluated", pct(r["robust"]), gain])
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for b in body:
        lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(b, widths))))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    rows = [summarize(d) for d in args.run_dirs]
    if args.reference is not None:
        ref_path = str(Path(args.reference))
        ref = next((r for r in rows if str(Path(r["path"])) == ref_path), None) or summarize(args.reference)
    else:
        ref = next((r for r in rows if r["defense"] == "nat"), None)
    if args.json:
        print(json.dumps({"reference": ref["run"] if ref else None, "rows": rows}, indent=1))
    else:
        print(table(rows, ref))
        for line in _footnotes(rows):
            print(line)
    missing = [r["run"] for r in rows if r["robust"] is None]
    if missing:
        print(f"not evaluated yet: {', '.join(missing)}")
    if args.min_gain is not None:
        if ref is None or ref["robust"] is None:
            raise ValueError("--min-gain needs a reference run with a robust accuracy "
                             "(a nat run among RUN_DIRs, or --reference)")
        short = [r["run"] for r in rows if r is not ref and r["defense"] != "nat"
                 and (r["robust"] is None or 100 * (r["robust"] - ref["robust"]) < args.min_gain)]
        if short:
            print(f"below the {args.min_gain:g}-point robust gain: {', '.join(short)}")
            return 1
        print(f"every adversarial defense gains at least {args.min_gain:g} robust points over {ref['run']}")
    return 0
