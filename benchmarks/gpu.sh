#!/usr/bin/env bash
# The GPU run, in one script a lent device can finish in under 10 minutes:
#
#   bash benchmarks/gpu.sh            # on the device (cuda when present, else a CPU dry run)
#   bash benchmarks/gpu.sh --write    # also (re)write its section of benchmarks/RESULTS.md
#
# It prints, each from the benchmark script that owns the measurement:
#   1. PGD-10 throughput, robustviz vs torchattacks (benchmarks/attacks.py)
#   2. the Trainer's PGD-AT step vs (k+1) plain steps, fp32 and bf16 (benchmarks/train.py)
#   3. batched feature inversion vs the per-pair loop (benchmarks/visual.py --only inversion;
#      the >= 5x target is a GPU target: a 2-core CPU's own batching ceiling is about 2x)
#   4. torch.compile vs eager for PGD-10 and a training step (benchmarks/compile.py; GPU only
#      here: inductor's first compilation takes minutes on a 2-core CPU, run it there alone)
#   5. the CIFAR-10 fast adversarial training speedrun (benchmarks/speedrun.py --dataset cifar10;
#      skipped where CIFAR-10 is not on disk: nothing is downloaded)
# On a machine without CUDA it runs the same steps small (a dry run) and marks the GPU-only
# rows as skipped. Logs and the markdown section go to $OUT (the device tool's folder) when it
# is set, else runs/bench/gpu/.
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
WRITE=0
[ "${1:-}" = "--write" ] && WRITE=1
DEST=${OUT:-runs/bench/gpu}
mkdir -p "$DEST"
DEV=$($PY -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
NAME=$($PY -c "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'CPU dry run')")
echo "# benchmarks/gpu.sh on $DEV ($NAME), $(date -u '+%Y-%m-%d %H:%M') UTC" | tee "$DEST/gpu.log"

step() {  # step NAME SECONDS CMD...: run with a time limit, keep its output
    local name=$1 limit=$2; shift 2
    echo "== $name: $*" | tee -a "$DEST/gpu.log"
    local t0=$SECONDS
    timeout "$limit" "$@" > "$DEST/$name.out" 2>&1
    local rc=$?
    cat "$DEST/$name.out" >> "$DEST/gpu.log"
    echo "== $name: exit $rc in $((SECONDS - t0)) s" | tee -a "$DEST/gpu.log"
}

if [ "$DEV" = cuda ]; then
    step attacks 150 $PY benchmarks/attacks.py --device cuda --batch 1024 --repeats 5
    step train 180 $PY benchmarks/train.py --device cuda --batch-size 512 --batches 20 --repeats 3 \
        --precisions fp32 bf16
    step inversion 90 $PY benchmarks/visual.py --only inversion --device cuda
    step compile 150 $PY benchmarks/compile.py --device cuda --repeats 5
    if [ -f benchmarks/speedrun.py ]; then
        step speedrun 240 $PY benchmarks/speedrun.py --dataset cifar10 --device cuda
    fi
else
    step attacks 300 $PY benchmarks/attacks.py --quick --device cpu --n-acc 256
    step train 300 $PY benchmarks/train.py --device cpu --batches 4 --repeats 1 --precisions fp32
    step inversion 300 $PY benchmarks/visual.py --only inversion --device cpu
fi

# the markdown section: the lines that carry the numbers, the device beside them
$PY - "$DEST" "$DEV" "$NAME" "$WRITE" <<'EOF'
import re, sys, time
from pathlib import Path

dest, dev, name, write = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] == "1"


def lines(step, *patterns):
    f = dest / f"{step}.out"
    if not f.is_file():
        return ["skipped: not run on this machine"]
    text = f.read_text().splitlines()
    got = [l.strip() for l in text if any(re.search(p, l) for p in patterns)]
    return got or ["no result (see gpu.log): " + (text[-1].strip() if text else "no output")]


gpu_only = "" if dev == "cuda" else " (GPU row: skipped on the CPU dry run)"
rows = [
    ("PGD-10 throughput, robustviz / torchattacks", lines("attacks", r"throughput robustviz", r"PGD-\d+ time /", r"^device", r"peak CUDA")),
    ("Trainer PGD-AT / (k+1) plain steps", lines("train", r"^\| (fp32|bf16) ", r"bf16/fp32")),
    ("feature inversion, batched vs per-pair loop (target >= 5x on a GPU)" + gpu_only,
     lines("inversion", r"\[inversion\]")),
    ("torch.compile vs eager (PGD-10 and a training step)" + gpu_only,
     lines("compile", r"torch.compile|eager|compilation")),
    ("CIFAR-10 fast-AT speedrun (>= 45% PGD-50 at 8/255; anchor 12 min on a 2020 GPU, goal <= 2 min on one H100)"
     + gpu_only, lines("speedrun", r"cifar|CIFAR|speedrun|skip")),
]
out = [f"Run {time.strftime('%Y-%m-%d %H:%M')} UTC on **{name}** (`bash benchmarks/gpu.sh`).", ""]
for title, ls in rows:
    out.append(f"- {title}:")
    out += [f"    - `{l}`" for l in ls]
text = "\n".join(out) + "\n"
print(text)
(dest / "gpu_section.md").write_text(text)
if write:
    path = Path("benchmarks/RESULTS.md")
    start, end = "<!-- gpu:start -->", "<!-- gpu:end -->"
    old = path.read_text()
    block = f"{start}\n## GPU run (`benchmarks/gpu.sh`)\n\n{text}{end}"
    new = (old[:old.index(start)] + block + old[old.index(end) + len(end):]
           if start in old and end in old else old.rstrip("\n") + "\n\n" + block + "\n")
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(new)
    tmp.replace(path)
    print(f"wrote the GPU section of {path}")
EOF
