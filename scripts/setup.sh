#!/usr/bin/env bash
# Creates .venv (python3 -m venv) if missing and installs robustviz with its dev extras.
# torch/torchvision are plain ranges in pyproject.toml; pip resolves them to the wheels
# on this machine's disk where there are some, from PyPI elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
stamp="$VENV/.installed"
if [ ! -x "$VENV/bin/python" ]; then
  echo "robustviz setup: creating $VENV (first run installs PyTorch: a few minutes)"
  "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  # pip's notes about missing local index folders are noise; keep real errors.
  "$VENV/bin/python" -m pip install -q --upgrade pip 2> >(grep -v "is ignored" >&2)
  "$VENV/bin/python" -m pip install -q -e ".[dev]" 2> >(grep -v "is ignored" >&2)
  touch "$stamp"
fi
bash scripts/get_data.sh
