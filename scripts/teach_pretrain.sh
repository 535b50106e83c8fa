#!/usr/bin/env bash
# Robust pretraining at teaching scale (issue 12): SimCLR, AdvCL (ClusterFit on the SimCLR
# encoder) and ASCL pretraining on Fashion-MNIST, each followed by SLF, from the CLI with the
# committed configs; then ALF and AFF rows (smaller: FT_N images, FT_EPOCHS epochs, FT_NTEST
# test images). Prints
# wall and CPU seconds per stage. Finished stages are kept.
#   OMP_NUM_THREADS=2 scripts/teach_pretrain.sh            # OUT=runs/teach by default
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/teach}
FT_N=${FT_N:-5000}
FT_EPOCHS=${FT_EPOCHS:-2}
FT_NTEST=${FT_NTEST:-1000}
STAGES=${STAGES:-"slf alf aff"}
done_final() { [ -f "$1/metrics.jsonl" ] && grep -q '"kind": "final"' "$1/metrics.jsonl"; }
timed() {   # name, command...
    local name=$1; shift
    local t0; t0=$(date +%s)
    /usr/bin/time -f "== $name: %e s wall, %U s user, %S s sys" "$@"
    echo "== $name done at $(date -u +%H:%M:%S) after $(( $(date +%s) - t0 )) s (load: $(cut -d' ' -f1-3 /proc/loadavg))"
}
pre() {     # kind, extra args
    local kind=$1; shift
    local d="$OUT/pretrain_$kind"
    if done_final "$d"; then echo "== pretrain $kind: kept ($d)"; return; fi
    rm -rf "$d"
    timed "pretrain $kind" "$PY" -m robustviz pretrain --config "configs/teach/pretrain_$kind.yaml" --out "$d" \
        --no-progress "$@"
}
fine() {    # kind, mode, extra args
    local kind=$1 mode=$2; shift 2
    local d="$OUT/pretrain_${kind}_$mode"
    if done_final "$d"; then echo "== $kind $mode: kept ($d)"; return; fi
    rm -rf "$d"
    timed "finetune $kind $mode" "$PY" -m robustviz finetune --encoder "$OUT/pretrain_$kind" --mode "$mode" \
        --out "$d" --no-progress "$@"
}
for stage in $STAGES; do
    case $stage in
        slf)
            pre simclr; fine simclr slf --n-train 20000
            pre advcl --clusterfit-from "$OUT/pretrain_simclr"; fine advcl slf --n-train 20000
            pre ascl; fine ascl slf --n-train 20000 ;;
        alf|aff)
            for kind in advcl ascl simclr; do
                fine "$kind" "$stage" --n-train "$FT_N" --epochs "$FT_EPOCHS" --n-test "$FT_NTEST" --aa-n 0
            done ;;
    esac
done
"$PY" - "$OUT" <<'PY'
import sys
from pathlib import Path
from robustviz._report_pretrain import pretrain_section
sec = pretrain_section(sorted(Path(sys.argv[1]).glob("pretrain_*_*")))
print(sec["text"])
for t in sec["tables"]:
    print("\n" + t["caption"])
    print(" | ".join(t["columns"]))
    for r in t["rows"]:
        print(" | ".join(r))
PY
