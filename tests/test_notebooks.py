"""The notebooks: paired with their jupytext sources, stored stripped, executed top to bottom.

``test_notebook_executes`` prints each notebook's wall time (``pytest -s`` or the summary
of ``-rA``) and checks that every cell calling a ``plot_*`` function shows an image.
"""
import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "notebooks"
NOTEBOOKS = sorted(FOLDER.glob("[0-9][0-9]_*.ipynb"))
PLOT_CALL = re.compile(r"\bplot_\w+\(")
# Notebooks written against APIs that land with other issues: (module, attribute) they need.
NEEDS = {
    "07_feature_inversion": ("robustviz.diagnostics", "feature_inversion"),
    "08_loss_landscapes": ("robustviz.diagnostics", "weight_landscape"),
}


def _missing_api(stem):
    import importlib

    need = NEEDS.get(stem)
    if need is None:
        return None
    module, attr = need
    if not hasattr(importlib.import_module(module), attr):
        return f"{stem} needs {module}.{attr}, which has not landed on this branch yet"
    return None


def _ids(paths):
    return [p.stem for p in paths]


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb"


def test_every_pair_is_in_sync_and_stripped():
    nbk = pytest.importorskip("robustviz.notebooks")
    pytest.importorskip("jupytext")
    assert {p.stem for p in FOLDER.glob("[0-9][0-9]_*.py")} == {p.stem for p in NOTEBOOKS}
    assert nbk.check(FOLDER) == []


def _toy_folder(tmp_path):
    """A folder with one paired notebook holding a solution cell."""
    nbk = pytest.importorskip("robustviz.notebooks")
    pytest.importorskip("jupytext")
    folder = tmp_path / "nbs"
    folder.mkdir()
    (folder / "jupytext.toml").write_text('formats = "ipynb,py:percent"\n')
    (folder / "01_toy.py").write_text(
        '# %% [markdown]\n# # Toy\n\n# %%\nSCALE = "teach"\n\n'
        '# %% [markdown]\n# ## Exercises\n# 1. Square 3.\n\n'
        '# %% tags=["solution"]\nprint(3 ** 2)\n\n# %%\nprint("end")\n')
    assert nbk.sync(folder) == [folder / "01_toy.ipynb"]
    assert nbk.sync(folder) == []  # unchanged source: nothing rewritten (stable cell ids)
    return nbk, folder


def test_check_finds_a_stale_pair_and_stored_outputs(tmp_path):
    nbk, folder = _toy_folder(tmp_path)
    assert nbk.check(folder) == []
    py, ipynb = folder / "01_toy.py", folder / "01_toy.ipynb"
    original = ipynb.read_text()
    py.write_text(py.read_text().replace('print("end")', 'print("the end")'))
    problems = nbk.check(folder)
    assert len(problems) == 1 and "differ from cell 4" in problems[0]
    nbk.sync(folder)
    assert nbk.check(folder) == []
    nb = json.loads(ipynb.read_text())
    nb["cells"][1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["x\n"]}]
    ipynb.write_text(json.dumps(nb))
    problems = nbk.check(folder)
    assert len(problems) == 1 and "outputs" in problems[0]
    (folder / "02_lonely.ipynb").write_text(original)
    assert any("02_lonely.py is missing" in p for p in nbk.check(folder))


def test_student_edition_removes_only_solution_cells(tmp_path):
    nbk, folder = _toy_folder(tmp_path)
    pytest.importorskip("nbconvert")
    out = tmp_path / "student"
    written = nbk.student_edition(out, folder)
    assert written == [out / "01_toy.ipynb"]
    nb = json.loads(written[0].read_text())
    sources = ["".join(c["source"]) for c in nb["cells"]]
    assert "print(3 ** 2)" not in "".join(sources)
    full = json.loads((folder / "01_toy.ipynb").read_text())
    assert len(nb["cells"]) == len(full["cells"]) - 1
    assert sources == ["".join(c["source"]) for c in full["cells"]
                       if "solution" not in c["metadata"].get("tags", [])]
    with pytest.raises(ValueError, match="differ"):
        nbk.student_edition(folder, folder)


def test_student_cli_on_the_real_notebooks(tmp_path):
    pytest.importorskip("nbconvert")
    pytest.importorskip("jupytext")
    from robustviz.cli import main

    assert main(["notebooks", "student", str(tmp_path / "out"), "--from", str(FOLDER)]) == 0
    assert main(["notebooks", "check", str(FOLDER)]) == 0
    for path in NOTEBOOKS:
        full = json.loads(path.read_text())
        student = json.loads((tmp_path / "out" / path.name).read_text())
        n_solution = sum("solution" in c["metadata"].get("tags", []) for c in full["cells"])
        assert n_solution >= 1, f"{path.name}: exercises need solution cells tagged 'solution'"
        assert len(student["cells"]) == len(full["cells"]) - n_solution
        assert not any("solution" in c["metadata"].get("tags", []) for c in student["cells"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_stripped_and_starts_with_parameters(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"{path.name}: outputs must be stripped in git"
            assert cell.get("execution_count") is None, f"{path.name}: execution counts must be stripped"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "".join(code[0]["source"]) == _site().colab_cell(), \
        f"{path.name}: the first code cell must be the Colab cell (scripts/build_docs.py colab_cell)"
    assert 'SCALE = "teach"' in "".join(code[1]["source"]), "the second code cell must be the parameters cell"
    src = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    private = re.findall(r"\b(?:rv|robustviz)(?:\.[a-z]\w*)*\._\w+", src)
    assert not private, f"{path.name}: notebooks use only the public API, found {private}"


def _site():
    """scripts/build_docs.py (the site builder), which holds the Colab cell and keeps the
    executed notebooks that ``make docs`` reuses."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_docs", ROOT / "scripts" / "build_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_colab_cell_installs_only_on_colab(monkeypatch):
    """Off Colab the cell runs nothing; on Colab (``google.colab`` imported) it installs
    robustviz with its extras from the repository of pyproject.toml, then Fashion-MNIST."""
    import subprocess
    import sys
    import types

    site = _site()
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw)))
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(site.colab_cell(), {})
    assert calls == []
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    exec(site.colab_cell(), {})
    assert [c[0][1:] for c in calls] == [
        ["-m", "pip", "install", "-q", f"robustviz[all] @ git+{site.repository()}"],
        ["-m", "robustviz", "data", "fetch", "fashion-mnist"]]
    assert all(c[0][0] == sys.executable and c[1] == {"check": True} for c in calls)
    assert site.repository().startswith("https://github.com/")


def test_every_notebook_has_its_open_in_colab_link_in_the_readme():
    site = _site()
    readme = (ROOT / "README.md").read_text()
    missing = [p.stem for p in NOTEBOOKS if site.colab_url(p.stem) not in readme]
    assert not missing, f"README.md lacks the Open in Colab link of {missing}"


def _executes(path, tmp_path, monkeypatch, capsys, record_property):
    why = _missing_api(path.stem)
    if why:
        pytest.skip(why)
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(path, as_version=4)
    env_dir = tmp_path / "work"
    env_dir.mkdir()
    # the notebooks may read sibling files (widget notebooks: none today); run in a copy
    for helper in FOLDER.glob("_*.py"):
        shutil.copy(helper, env_dir)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # the kernel shares the cores with the other workers: one thread each (torch reads
        # OMP_NUM_THREADS; robustviz's t-SNE follows torch). Oversubscribed, the spinning
        # thread pools made 00_tour 4-5x slower than alone.
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
            monkeypatch.setenv(var, "1")
    # the kernel's own (inline) backend renders figures as PNG, as in JupyterLab
    monkeypatch.delenv("MPLBACKEND", raising=False)
    # a sentence its own numbers contradict, or an exercise whose solution fails its check,
    # is an error in the notebook (rv.notebooks.expect / exercise)
    monkeypatch.setenv("ROBUSTVIZ_STRICT_CLAIMS", "1")
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3",
        resources={"metadata": {"path": str(env_dir)}},
    )
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    with capsys.disabled():
        print(f"\n[notebook time] {path.stem}: {seconds:.1f} s")
    # also in the run's summary (conftest.py), which pytest-xdist relays from its workers
    record_property("notebook_seconds", round(seconds, 1))
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []) if o.get("output_type") == "stream")
    claims = len(re.findall(r"^\u2713 (?!exercise )", text, re.M))
    passed = len(re.findall(r"^\u2713 exercise ", text, re.M))
    exercises = len(re.findall(r"rv\.notebooks\.exercise\(", "".join(c.source for c in nb.cells)))
    with capsys.disabled():
        print(f"[notebook claims] {path.stem}: {claims} computed claims, "
              f"{passed}/{exercises} exercises pass")
    record_property("notebook_claims", claims)
    assert passed == exercises, f"{path.name}: {exercises - passed} exercise checks did not pass"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not PLOT_CALL.search(cell.source):
            continue
        kinds = [o.get("output_type") for o in cell.outputs]
        images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert images, (f"{path.name} cell {i} calls plot_* but shows no image "
                        f"(outputs: {kinds}):\n{cell.source[:200]}")
    # every check passed: keep the executed copy for the site (make docs reuses it)
    _site().keep_executed(path, nb)



def _execution_test(path):
    """One class per notebook, so that ``pytest -n 2 --dist loadscope`` (the README's test
    command) spreads the notebooks over both workers while every other test module stays
    on one worker, as under ``loadfile``."""
    @pytest.mark.slow
    def test_notebook_executes(self, tmp_path, monkeypatch, capsys, record_property):
        _executes(path, tmp_path, monkeypatch, capsys, record_property)

    name = "TestExecute_" + path.stem
    return type(name, (), {"test_notebook_executes": test_notebook_executes, "path": path})


for _path in NOTEBOOKS:
    globals()["TestExecute_" + _path.stem] = _execution_test(_path)

# --------------------------------------------------------------------------- claims and exercises
def _sources():
    return {p.stem: p.read_text() for p in sorted(FOLDER.glob("[0-9][0-9]_*.py"))}


def test_every_exercise_has_an_empty_answer_a_solution_and_a_registered_check():
    jupytext = pytest.importorskip("jupytext")
    from robustviz import exercises

    used = []
    for stem, _ in _sources().items():
        nb = jupytext.read(FOLDER / f"{stem}.py")
        for i, cell in enumerate(nb.cells):
            m = re.search(r'rv\.notebooks\.exercise\("([\w.]+)", (\w+)', cell.source)
            if not m:
                continue
            key, var = m.groups()
            used.append(key)
            assert key.startswith(stem[:2] + "."), f"{stem}: exercise {key} belongs to another notebook"
            before = nb.cells[:i]
            empty = [c for c in before if c.cell_type == "code" and
                     re.fullmatch(rf"{var} = \.\.\.", c.source.strip())
                     and "solution" not in c.metadata.get("tags", ())]
            solved = [c for c in before if "solution" in c.metadata.get("tags", ())
                      and re.search(rf"^{var}\b.*=", c.source, re.M)]
            assert empty, f"{stem}: exercise {key} has no answer cell `{var} = ...`"
            assert solved, f"{stem}: exercise {key} has no solution cell assigning {var}"
    assert sorted(used) == sorted(set(used)), "an exercise key is used twice"
    assert set(used) == set(exercises.keys()), (
        f"registered checks without a notebook exercise, or the reverse: "
        f"{set(used) ^ set(exercises.keys())}")


def test_every_check_fails_on_the_empty_answer():
    from robustviz import exercises

    assert exercises.keys(), "no exercise checks registered"
    for key in exercises.keys():
        problems = exercises.grade(key, ...)
        assert problems and "no answer yet" in problems[0], key


def test_expect_prints_the_numbers_and_strict_mode_refuses_a_false_claim(monkeypatch, capsys):
    import robustviz as rv

    monkeypatch.delenv("ROBUSTVIZ_STRICT_CLAIMS", raising=False)
    assert rv.notebooks.expect(0.7 > 0.1, "PGD-AT keeps more than NAT", pgd_at=0.7, nat=0.1)
    assert capsys.readouterr().out == "\u2713 PGD-AT keeps more than NAT (pgd_at=0.7, nat=0.1)\n"
    assert not rv.notebooks.expect(False, "NAT is robust", nat=0.0)
    assert "does not hold here" in capsys.readouterr().out
    monkeypatch.setenv("ROBUSTVIZ_STRICT_CLAIMS", "1")
    with pytest.raises(rv.notebooks.ClaimError, match="NAT is robust"):
        rv.notebooks.expect(False, "NAT is robust", nat=0.0)
    with pytest.raises(ValueError):
        rv.notebooks.expect(True, "")


def test_setup_teach_and_a_paper_scale_without_runs_names_the_config(tmp_path, capsys):
    import robustviz as rv

    s = rv.notebooks.setup("teach", seed=0, n_test=20)
    assert s.eps == 0.1 and len(s.test.y) == 20 and "teach scale" in capsys.readouterr().out
    assert not s.load("nat").training
    paper = rv.notebooks.Setup("paper", "cifar10", 8 / 255, 0, s.test, tmp_path)
    with pytest.raises(FileNotFoundError, match=r"configs/baseline_pgd_at\.yaml"):
        paper.load("pgd_at")
    with pytest.raises(KeyError, match="no paper config trains"):
        paper.load("cl_emb1")
    for name, (folder, command) in rv.notebooks.PAPER_RUNS.items():
        for cfg in re.findall(r"--config (\S+)", command):
            assert (ROOT / cfg).is_file(), f"{name}: {cfg} does not exist"
        assert command.split("--out ")[-1].split()[0] == folder, name


def test_setup_without_fashion_mnist_takes_every_digits_test_image(monkeypatch, capsys):
    """Where Fashion-MNIST is absent (Colab before its first cell, a machine without the
    Debian package) the teaching scale runs on the digits zoo, whose test split has 359
    images: the default 500 would be refused."""
    import robustviz as rv

    monkeypatch.setattr(rv.data, "available", lambda name, *a, **k: name == "digits")
    s = rv.notebooks.setup("teach", seed=0)
    assert s.dataset == "digits" and len(s.test.y) == 359 == rv.data.info("digits").sizes["test"]
    assert "digits, 359 test images" in capsys.readouterr().out
    assert len(s.load("pgd_at")(s.test.x[:4]).shape) == 2


@pytest.mark.slow
def test_a_notebook_fails_when_its_model_is_broken(tmp_path, monkeypatch):
    """Notebook 01 with the zoo's `nat` replaced by the robust `pgd_at` (a model broken on
    purpose): its first claim about the natural model no longer holds and the cell fails."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from robustviz import zoo

    fake = tmp_path / "zoo"
    src = zoo.root() / "fashion-mnist"
    shutil.copytree(src / "pgd_at", fake / "fashion-mnist" / "nat")
    shutil.copytree(src / "pgd_at", fake / "fashion-mnist" / "pgd_at")
    zoo.write_manifest(fake)
    monkeypatch.setenv("ROBUSTVIZ_ZOO", str(fake))
    monkeypatch.setenv("ROBUSTVIZ_STRICT_CLAIMS", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = nbformat.read(FOLDER / "01_attacks.ipynb", as_version=4)
    first_claim = next(i for i, c in enumerate(nb.cells) if "rv.notebooks.expect(" in c.source)
    nb.cells = nb.cells[:first_claim + 1]
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="ClaimError"):
        client.execute()
    assert "does not hold here" in "".join(o.get("text", "") for o in nb.cells[first_claim].outputs)
