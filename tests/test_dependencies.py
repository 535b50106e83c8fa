"""The extras resolve with plain pip, and the development environment is consistent.

torchattacks pins ``requests~=2.25.1`` while JupyterLab's server needs ``requests>=2.31``:
no extra may hold it. These tests ask pip's own resolver (``--dry-run --no-index``: offline,
against what the running environment has installed) and ``pip check``.
"""
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _extras():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def _pip(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_no_extra_holds_torchattacks_and_all_holds_what_a_user_runs():
    extras = _extras()
    assert not [(k, r) for k, reqs in extras.items() for r in reqs if "torchattacks" in r.lower()]
    assert extras["all"] == ["robustviz[embed,notebooks,corruptions,attributions,autoattack]"]
    assert any(r.startswith("pyautoattack") for r in extras["autoattack"])
    assert "robustviz[all,docs,robustbench]" in extras["dev"]
    assert any(r.startswith("robustbench") for r in extras["robustbench"])


@pytest.mark.parametrize("extra", ["all", "dev"])
def test_an_extra_resolves_with_plain_pip(extra, tmp_path):
    """pip's resolver, offline and without --no-deps, finds the extra satisfied by the
    installed packages: nothing to install but robustviz itself."""
    report = tmp_path / "report.json"
    out = _pip("install", "--dry-run", "--no-index", "--no-build-isolation", "--quiet",
               "--report", str(report), f".[{extra}]")
    if out.returncode and "No matching distribution" in out.stderr:
        # offline pip cannot tell a missing package from a conflict: say which is missing
        pytest.skip(f"a requirement of robustviz[{extra}] is not installed here, and pip "
                    f"cannot fetch it offline: {out.stderr.strip().splitlines()[-1]}")
    assert out.returncode == 0, out.stderr
    names = [i["metadata"]["name"] for i in json.loads(report.read_text())["install"]]
    assert names == ["robustviz"]


def test_pip_check_is_clean():
    out = _pip("check", timeout=120)
    assert out.returncode == 0, (out.stdout + out.stderr
                                 + "\n(an environment set up before torchattacks moved to "
                                   "<venv>/crosscheck: rerun bash scripts/setup.sh)")
