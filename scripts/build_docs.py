"""Builds robustviz's site (``make docs``): the executed notebooks with their figures, the
API reference from the docstrings, the README's quick start and a sample report; offline.

    python scripts/build_docs.py [--notebooks 07_feature_inversion ...] [--no-report]

Folders (all under ``build/``, which git ignores):

``build/notebooks/``
    Executed notebooks. One whose stored source hash equals its stripped notebook's is
    reused; only missing or stale ones are executed (nbclient, strict claims, as the test
    suite runs them). The suite's notebook tests write their executed copies here, so a
    ``make docs`` after ``make test`` executes nothing.
``build/docs/src/``
    The pages mkdocs reads, laid out fresh on each build.
``build/site/``
    The site: open ``build/site/index.html``.

The tool is MkDocs with the Material theme, mkdocs-jupyter (notebooks through nbconvert)
and mkdocstrings (numpydoc docstrings): plain Python packages that build without network.
Jupyter Book 2 was the alternative; it runs on the Node.js tool mystmd, whose site theme is
fetched from the web at build time, so it does not build offline. Material for MkDocs
announces its end of life for May 2027 (fixes until then) with Zensical, which reads the same
mkdocs.yml, as its successor; Zensical has no notebook plugin yet, so the move waits.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
EXECUTED = ROOT / "build" / "notebooks"
SRC = ROOT / "build" / "docs" / "src"
SITE = ROOT / "build" / "site"
PAGES = ROOT / "docs" / "site"            # hand-written pages (index, API reference)
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

#: the API reference: one page per public package, (page, module, title)
API = (("attacks", "robustviz.attacks", "Attacks"), ("defenses", "robustviz.defenses", "Defenses"),
       ("train", "robustviz.train", "Training"), ("evaluate", "robustviz.evaluate", "Evaluation"),
       ("diagnostics", "robustviz.diagnostics", "Diagnostics"),
       ("figures", "robustviz.figures", "Figures"), ("data", "robustviz.data", "Data"),
       ("models", "robustviz.models", "Models"), ("zoo", "robustviz.zoo", "Zoo"),
       ("notebooks", "robustviz.notebooks", "Notebook helpers"))


# --------------------------------------------------------------------------- the repository
def repository() -> str:
    """The repository's address: ``[project.urls] Repository`` of pyproject.toml."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return meta["urls"]["Repository"].rstrip("/")


def colab_url(name: str, repo: str | None = None) -> str:
    """Colab's address of ``notebooks/<name>.ipynb`` on the main branch."""
    repo = repo or repository()
    path = repo.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{path}/blob/main/notebooks/{name}.ipynb"


def colab_cell(repo: str | None = None) -> str:
    """The first code cell of every notebook: on Colab it installs robustviz (the wheel
    carries the teaching zoo) and fetches Fashion-MNIST; anywhere else it does nothing."""
    repo = repo or repository()
    return ("# Colab only: install robustviz (with its zoo) and Fashion-MNIST; elsewhere nothing happens\n"
            "import subprocess, sys\n"
            "if \"google.colab\" in sys.modules:\n"
            "    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\", "
            f"\"robustviz[all] @ git+{repo}\"], check=True)\n"
            "    subprocess.run([sys.executable, \"-m\", \"robustviz\", \"data\", \"fetch\", "
            "\"fashion-mnist\"], check=True)")


# --------------------------------------------------------------------------- executed notebooks
def source_hash(nb: dict) -> str:
    """sha256 of a notebook's cells (type, source, tags): what its execution depends on in
    the notebook itself."""
    cells = [(c["cell_type"], "".join(c["source"]) if isinstance(c["source"], list) else c["source"],
              sorted(c.get("metadata", {}).get("tags", []))) for c in nb["cells"]]
    return hashlib.sha256(json.dumps(cells).encode()).hexdigest()


def keep_executed(source: Path, nb, folder: Path = EXECUTED) -> Path:
    """Write the executed notebook ``nb`` (an nbformat node or dict) of ``source`` to
    ``folder``, stamped with the source's hash; atomic."""
    import nbformat

    stamp = source_hash(json.loads(Path(source).read_text()))
    nb = nbformat.from_dict(json.loads(nbformat.writes(nb)))
    nb.metadata.setdefault("robustviz", {})["source_sha256"] = stamp
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / Path(source).name
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        nbformat.write(nb, fh)
    os.replace(tmp, out)
    return out


def fresh_copy(source: Path, folder: Path = EXECUTED) -> Path | None:
    """The executed copy of ``source`` in ``folder`` when its hash matches, else None."""
    out = folder / Path(source).name
    if not out.is_file():
        return None
    meta = json.loads(out.read_text()).get("metadata", {}).get("robustviz", {})
    return out if meta.get("source_sha256") == source_hash(json.loads(Path(source).read_text())) else None


def execute(source: Path, folder: Path = EXECUTED, *, timeout: int = 900) -> Path:
    """Execute ``source`` as the test suite does (nbclient, strict claims) in a scratch
    folder and keep the result in ``folder``."""
    import nbclient
    import nbformat

    nb = nbformat.read(source, as_version=4)
    env = {"ROBUSTVIZ_STRICT_CLAIMS": "1"}
    old = {k: os.environ.get(k) for k in (*env, "MPLBACKEND")}
    os.environ.update(env)
    os.environ.pop("MPLBACKEND", None)          # the kernel's inline backend draws PNGs
    try:
        with tempfile.TemporaryDirectory() as work:
            nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                    resources={"metadata": {"path": work}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return keep_executed(source, nb, folder)


def executed_notebooks(names=None, folder: Path = EXECUTED, *, log=print) -> list[Path]:
    """Executed copies of the notebooks ``names`` (stems; default all), reusing fresh ones."""
    sources = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if names is not None:
        known = {p.stem: p for p in sources}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise SystemExit(f"no notebook {', '.join(unknown)}; there are {', '.join(known)}")
        sources = [known[n] for n in names]
    out = []
    for src in sources:
        copy = fresh_copy(src, folder)
        if copy is None:
            t = time.perf_counter()
            copy = execute(src, folder)
            log(f"executed {src.stem} ({time.perf_counter() - t:.0f} s)")
        else:
            log(f"reused {copy.relative_to(ROOT) if copy.is_relative_to(ROOT) else copy}")
        out.append(copy)
    return out


def static_fallback(nb: dict) -> dict:
    """The notebook as a static page shows it: every widget output keeps its PNG and
    sentence (the widgets' static fallback) instead of controls that need a kernel."""
    nb = json.loads(json.dumps(nb))
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            if WIDGET_VIEW in data and len(data) > 1:
                data.pop(WIDGET_VIEW)
    return nb


# --------------------------------------------------------------------------- pages
def _title(nb: dict, stem: str) -> str:
    for c in nb["cells"]:
        if c["cell_type"] == "markdown":
            m = re.search(r"^# (.+)$", "".join(c["source"]), re.M)
            if m:
                return m.group(1).strip()
    return stem


def _readme_section(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## )", text, re.M | re.S)
    if not m:
        raise SystemExit(f"README.md has no '## {heading}' section")
    # the README's links into the repository become links to it
    return re.sub(r"\]\((?!https?://|#)([^)]+)\)", lambda k: f"]({repository()}/blob/main/{k.group(1)})",
                  m.group(1))


def lay_out(notebooks: list[Path], src: Path = SRC, *, report: Path | None = None,
            api=API) -> list:
    """Write the pages mkdocs reads into ``src`` (the executed ``notebooks``, the API pages
    ``api`` and, when given, the sample report folder ``report``); return the navigation."""
    if src.exists():
        shutil.rmtree(src)
    (src / "notebooks").mkdir(parents=True)
    shutil.copytree(PAGES, src, dirs_exist_ok=True)
    nav_nb = []
    for path in notebooks:
        nb = static_fallback(json.loads(path.read_text()))
        badge = (f"[![Open in Colab](../img/colab.svg)]({colab_url(path.stem)}) "
                 f"(the first cell installs robustviz there)")
        nb["cells"].insert(0, {"cell_type": "markdown", "metadata": {}, "source": badge})
        (src / "notebooks" / path.name).write_text(json.dumps(nb))
        nav_nb.append({_title(nb, path.stem): f"notebooks/{path.name}"})
    quick = ["# Quick start\n", _readme_section("The two commands"), "## First use\n",
             _readme_section("First use")]
    (src / "quickstart.md").write_text("\n".join(quick))
    (src / "api").mkdir(exist_ok=True)
    for page, module, title in api:
        (src / "api" / f"{page}.md").write_text(f"# {title}\n\n::: {module}\n")
    nav = [{"Home": "index.md"}, {"Quick start": "quickstart.md"}, {"Notebooks": nav_nb},
           {"API reference": [{title: f"api/{page}.md"} for page, _, title in api]}]
    if report is not None:
        shutil.copytree(report, src / "report", dirs_exist_ok=True)
        (src / "sample_report.md").write_text(
            "# Sample report\n\nThe HTML report `robustviz demo` writes for the teaching zoo's "
            "models (`robustviz report RUN_DIR ...` writes the same for your runs): "
            "[open it](report/index.html).\n\n"
            '<iframe src="../report/index.html" style="width:100%;height:80vh;border:1px solid #ccc">'
            "</iframe>\n")
        nav.append({"Sample report": "sample_report.md"})
    return nav


def sample_report(folder: Path = ROOT / "build" / "docs" / "report") -> Path:
    """The report ``make demo`` wrote (report/), else one written now by ``robustviz demo``."""
    made = ROOT / "report"
    if (made / "index.html").is_file():
        return made
    if not (folder / "index.html").is_file():
        subprocess.run([sys.executable, "-m", "robustviz", "demo", "--report", str(folder),
                        "--no-progress"], check=True, cwd=ROOT)
    return folder


def mkdocs(nav: list, src: Path = SRC, site: Path = SITE) -> Path:
    """Run ``mkdocs build --strict`` on ``src`` with mkdocs.yml and ``nav``."""
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    config.update(docs_dir=str(src), site_dir=str(site), nav=nav, repo_url=repository())
    cfg = src.parent / "mkdocs.generated.yml"
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-f", str(cfg)],
                   check=True, cwd=ROOT, env=env)
    return site


def build(names=None, *, src: Path = SRC, site: Path = SITE, executed: Path = EXECUTED,
          report: bool = True, log=print) -> Path:
    notebooks = executed_notebooks(names, executed, log=log)
    nav = lay_out(notebooks, src, report=sample_report() if report else None)
    return mkdocs(nav, src, site)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--notebooks", nargs="+", metavar="NAME", help="stems (default: all)")
    ap.add_argument("--no-report", action="store_true", help="leave the sample report out")
    ap.add_argument("--site", type=Path, default=SITE, help=f"output folder (default: {SITE.relative_to(ROOT)})")
    args = ap.parse_args(argv)
    t = time.perf_counter()
    out = build(args.notebooks, site=args.site, report=not args.no_report)
    print(f"site: {out / 'index.html'} ({time.perf_counter() - t:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
