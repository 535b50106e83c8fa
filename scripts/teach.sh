#!/usr/bin/env bash
# Train the six teaching configurations of issue #4 (NAT, PGD-AT, TRADES, Leaked-ASCL,
# TRADES-ANCRA, paper 000's CL) on Fashion-MNIST, each from the CLI, then print one table
# and check that every adversarial defense gains >= 40 robust points (PGD-20, eps 0.1,
# 2,000 test images) over NAT. Finished runs are kept; an interrupted one is resumed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/teach}
CONFIGS=${CONFIGS:-"nat pgd_at baseline_trades paper001_leaked_ascl_trades paper004_trades_ancra paper000_cl"}
dirs=()
for c in $CONFIGS; do
    d="$OUT/$c"
    dirs+=("$d")
    if [ -f "$d/metrics.jsonl" ] && grep -q '"kind": "final"' "$d/metrics.jsonl"; then
        echo "== $c: finished, kept ($d)"
        continue
    fi
    extra=()
    if [ -f "$d/config.json" ]; then extra=(--resume); fi
    echo "== $c"
    start=$(date +%s)
    "$PY" -m robustviz train --config "configs/teach/$c.yaml" --out "$d" "${extra[@]}"
    echo "== $c: $(( $(date +%s) - start )) s wall"
done
"$PY" -m robustviz compare "${dirs[@]}" --min-gain 40
