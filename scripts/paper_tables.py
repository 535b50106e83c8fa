"""Reproduce the paper-table rows of robust pretraining at paper scale (a GPU) and print each
paper's numbers beside the measured ones.

Rows:

- ``advcl_slf``: Fan et al., "When Does Contrastive Learning Preserve Adversarial Robustness
  from Pretraining to Finetuning?", NeurIPS 2021, Table 1, CIFAR-10 ResNet-18, AdvCL then
  standard linear finetuning (SLF): SA 80.85, RA (PGD-20) 50.45, AA 42.57.
- ``ascl_pretrain_sepbn``: adversarial supervised contrastive pretraining (Machine Learning,
  2023), Table 1, CIFAR-10 ResNet-18, separate BatchNorm: SA 81.67, RA (PGD-20) 53.09, with
  the finetuning mode of configs/paper003_resnet18_ascl_pretrain.yaml (LAF, the paper's
  default; the mode of that row was not checked against the paper's text).

Each row runs its CLI stages in order (a stage whose run directory already has its final
record is kept, so an interrupted run resumes at the stage it stopped in)::

    python scripts/paper_tables.py --out runs/paper_tables            # every row (days on a GPU)
    python scripts/paper_tables.py --rows advcl_slf --device cuda
    python scripts/paper_tables.py --dry-run                          # seconds on a CPU

``--dry-run`` checks every config and command line (the configs load, the commands parse)
and prints the plan and the paper's numbers, training nothing. ``--epochs`` and
``--n-train`` shrink every stage (smoke tests; the numbers then mean nothing).
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ROWS = {
    "advcl_slf": {
        "source": "Fan et al., NeurIPS 2021, Table 1 (CIFAR-10, ResNet-18): AdvCL, SLF",
        "paper": {"clean_acc": 80.85, "pgd20_acc": 50.45, "aa_acc": 42.57},
        "stages": [
            "pretrain --config configs/paper002_resnet18_simclr.yaml --out {out}/paper002_simclr",
            "pretrain --config configs/paper002_resnet18_advcl.yaml --clusterfit-from {out}/paper002_simclr "
            "--out {out}/paper002_advcl",
            "finetune --encoder {out}/paper002_advcl --mode slf --out {out}/paper002_advcl_slf",
        ],
    },
    "ascl_pretrain_sepbn": {
        "source": "ASCL pretraining (Machine Learning, 2023), Table 1 (CIFAR-10, ResNet-18): separate BN",
        "paper": {"clean_acc": 81.67, "pgd20_acc": 53.09, "aa_acc": None},
        "stages": [
            "pretrain --config configs/paper003_resnet18_ascl_pretrain.yaml --out {out}/paper003_ascl",
            "finetune --encoder {out}/paper003_ascl --out {out}/paper003_ascl_ft",
        ],
    },
}
COLUMNS = (("clean_acc", "SA"), ("pgd20_acc", "RA PGD-20"), ("aa_acc", "AA"))


def stage_args(line: str, out: Path, *, device: str | None, epochs: int | None, n_train: int | None,
               progress: bool) -> list[str]:
    args = shlex.split(line.replace("{out}", str(out)))
    if device:
        args += ["--device", device]
    if epochs is not None:
        args += ["--epochs", str(epochs)]
    if n_train is not None:
        args += ["--n-train", str(n_train)]
    if not progress:
        args.append("--no-progress")
    return args


def _ended(run: Path) -> bool:
    from robustviz import runs
    try:
        return bool(runs.read_metrics(run, kind="final"))
    except FileNotFoundError:
        return False


def check(args: list[str]) -> None:
    """Parse a stage's command line and load its config (no training)."""
    from robustviz.cli import build_parser
    from robustviz.train import PretrainConfig

    ns = build_parser().parse_args(args)
    if getattr(ns, "config", None) and args[0] == "pretrain":
        cfg = PretrainConfig.load(ROOT / ns.config)
        from robustviz import defenses
        spec = dict(cfg.train.defense)
        spec.pop("clusterfit", None)
        defenses.build(spec)          # every option is valid
        cfg.train.trainer(defense=None).check()


def measured(run: Path) -> dict:
    from robustviz import runs
    final = runs.read_metrics(run, kind="final")[-1]
    return {k: (None if final.get(k) is None else 100 * float(final[k])) for k, _ in COLUMNS}


def table(rows: dict) -> str:
    head = f"{'row':22s} " + " ".join(f"{name:>20s}" for _, name in COLUMNS)
    lines = [head, " " * 23 + " ".join(f"{'paper / measured':>20s}" for _ in COLUMNS)]
    for key, (paper, got) in rows.items():
        cells = []
        for col, _ in COLUMNS:
            p = "-" if paper.get(col) is None else f"{paper[col]:.2f}"
            m = "-" if got.get(col) is None else f"{got[col]:.2f}"
            cells.append(f"{p + ' / ' + m:>20s}")
        lines.append(f"{key:22s} " + " ".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", nargs="+", choices=sorted(ROWS), default=sorted(ROWS))
    ap.add_argument("--out", default="runs/paper_tables", help="folder of the run directories")
    ap.add_argument("--device", help="cuda, cpu ... (default: cuda when available)")
    ap.add_argument("--epochs", type=int, help="override every stage's epochs (smoke tests only)")
    ap.add_argument("--n-train", type=int, help="training subset of every stage (smoke tests only)")
    ap.add_argument("--dry-run", action="store_true", help="check configs and commands, print the plan")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    out = Path(a.out)
    results = {}
    for key in a.rows:
        row = ROWS[key]
        print(f"[{key}] {row['source']}", flush=True)
        last = None
        for line in row["stages"]:
            args = stage_args(line, out, device=a.device, epochs=a.epochs, n_train=a.n_train,
                              progress=not a.no_progress)
            last = Path(args[args.index("--out") + 1])
            if a.dry_run:
                check(args)
                print(f"  robustviz {' '.join(args)}", flush=True)
                continue
            if _ended(last):
                print(f"  kept {last}", flush=True)
                continue
            from robustviz.cli import main as cli
            print(f"  robustviz {' '.join(args)}", flush=True)
            if cli(args):
                raise SystemExit(f"[{key}] robustviz {args[0]} failed")
        got = {} if a.dry_run or last is None or not _ended(last) else measured(last)
        results[key] = (row["paper"], got)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
