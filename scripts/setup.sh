#!/usr/bin/env bash
# Creates .venv (python3 -m venv) if missing and installs robustviz with its dev extras
# (`pip install -e ".[dev]"`, which resolves with plain pip; `pip check` is clean after it).
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
crosscheck="$VENV/crosscheck"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ ! -d "$crosscheck/torchattacks" ]; then
  # pip's notes about missing local index folders are noise; keep real errors.
  "$VENV/bin/python" -m pip install -q --upgrade pip 2> >(grep -v "is ignored" >&2)
  "$VENV/bin/python" -m pip install -q -e ".[dev]" 2> >(grep -v "is ignored" >&2)
  # torchattacks, the test suite's cross-check, pins requests~=2.25.1 (JupyterLab needs
  # >= 2.31): it goes beside the environment, not into it, so that `pip check` stays clean
  # and robustviz itself runs as a user's `pip install "robustviz[all]"` does; its code
  # imports only packages installed above. tests/conftest.py adds the folder to the path.
  if "$VENV/bin/python" -m pip show -q torchattacks >/dev/null 2>&1; then
    "$VENV/bin/python" -m pip uninstall -q -y torchattacks   # an older setup put it inside
  fi
  "$VENV/bin/python" -m pip install -q --no-deps --upgrade --target "$crosscheck" \
    "torchattacks>=3.5" 2> >(grep -v "is ignored" >&2)
  # its wheel also carries an old copy of robustbench's package, which torchattacks never
  # imports: removed, so that `import robustbench` finds the real one or nothing
  rm -rf "$crosscheck/robustbench"
  touch "$stamp"
fi
# Where PYTHONDONTWRITEBYTECODE is set (some CI images and sandboxes), Python never caches
# robustviz's bytecode, and every process that imports it (each pytest worker, notebook
# kernel and CLI run of the tests) compiles the whole package again, 1-2 s each: compile it
# once here (files already compiled and unchanged are skipped).
"$VENV/bin/python" -m compileall -q -j 0 robustviz >/dev/null
bash scripts/get_data.sh
# The widgets' browser test (tests/test_browser.py) drives Debian's Chromium; as root on a
# Debian-like system install it, anywhere else the test skips with the reason.
if ! command -v chromedriver >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
    && [ "$(id -u)" = 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive \
         apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; } \
    || echo "note: could not apt-get chromium; the browser test will skip" >&2
fi
