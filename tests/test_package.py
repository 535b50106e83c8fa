"""The wheel carries everything the first use needs: built here, installed into a throwaway
venv outside the source tree (offline, reusing this environment's torch and other
dependencies), then the zoo is loaded, verified and the demo runs from a temporary folder."""
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index",
                    "--no-build-isolation", "-w", str(out), str(ROOT)], check=True,
                   capture_output=True, text=True)
    (whl,) = out.glob("robustviz-*.whl")
    return whl


def test_the_wheel_holds_the_package_templates_and_the_whole_zoo(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    zoo_files = sorted((ROOT / "data" / "zoo").rglob("*"))
    expected = {"robustviz/zoo_data/" + p.relative_to(ROOT / "data" / "zoo").as_posix()
                for p in zoo_files if p.is_file() and not p.name.startswith(".")}
    assert expected and expected <= names, sorted(expected - names)[:5]
    assert "robustviz/report/report.html.j2" in names
    assert {"robustviz/__init__.py", "robustviz/zoo.py", "robustviz/exercises/__init__.py",
            "robustviz/runs/__init__.py", "robustviz/runs/_run.py"} <= names
    assert not [n for n in names if n.startswith(("tests/", "data/", "notebooks/", "benchmarks/"))]


@pytest.mark.slow
def test_the_installed_wheel_loads_the_zoo_and_runs_the_demo_outside_the_tree(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # this environment's dependencies (torch, ...) without its editable robustviz: a plain
    # path entry, whose own .pth files (the editable finder) Python does not process
    (site / "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True, text=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ROBUSTVIZ_ZOO")}
    env["OMP_NUM_THREADS"] = "1"
    code = ("import robustviz as rv, robustviz.zoo as z; "
            "assert z.root().is_relative_to(__import__('pathlib').Path(rv.__file__).parent), z.root(); "
            "print(z.root()); print(z.verify()); "
            "m = rv.zoo.load('pgd_at', 'digits'); print(type(m).__name__)")
    r = subprocess.run([str(py), "-c", code], cwd=work, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    root, checked, model = r.stdout.split()
    assert "site-packages/robustviz/zoo_data" in root and int(checked) >= 77
    demo = subprocess.run([str(venv / "bin" / "robustviz"), "demo", "--dataset", "digits",
                           "--defenses", "nat", "pgd_at", "--n-test", "100", "--no-progress",
                           "--report", "report"], cwd=work, env=env, capture_output=True,
                          text=True, timeout=900)
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert (work / "report" / "index.html").is_file()
    # the installed zoo is read-only like the source tree's
    w = subprocess.run([str(py), "-c", "import robustviz as rv; rv.runs.append_metrics("
                        "rv.zoo.run_dir('nat', 'digits'), {'kind': 'x'})"], cwd=work, env=env,
                       capture_output=True, text=True)
    assert w.returncode != 0 and "ZooReadOnlyError" in w.stderr
