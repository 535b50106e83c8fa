"""The site (``make docs``, scripts/build_docs.py): built offline from executed notebooks,
opened in headless Chromium; every notebook page shows its figures and no internal link or
image is broken. Executed copies are reused only while their source is unchanged.

The build runs on a toy notebook (two matplotlib figures and a widget output with its PNG
fallback, executed here by nbclient) and one API page, so that it takes seconds; ``make
docs`` builds the same pages for the thirteen notebooks and every package.
"""
import base64
import html.parser
import importlib.util
import io
import json
from pathlib import Path
from urllib.parse import unquote, urldefrag

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


site = _load("build_docs")


def _png() -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [1, 0])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _toy_source(folder: Path) -> Path:
    """A stripped notebook: a title, two figures, one widget output with its PNG fallback."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    widget = ("from IPython.display import display\n"
              f"display({{'image/png': {_png()!r}, 'text/plain': 'explorer',\n"
              "         'application/vnd.jupyter.widget-view+json': "
              "{'model_id': 'abc', 'version_major': 2, 'version_minor': 0}}, raw=True)")
    nb = new_notebook(cells=[
        new_markdown_cell("# 99 Toy notebook\n\n## A section\n\nTwo figures and a widget."),
        new_code_cell("%matplotlib inline\nimport matplotlib.pyplot as plt\n"
                      "fig, ax = plt.subplots(figsize=(3, 2)); ax.plot([0, 1, 4])"),
        new_code_cell("fig, ax = plt.subplots(figsize=(3, 2)); ax.bar([0, 1], [2, 1]);"),
        new_code_cell(widget),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    path = folder / "99_toy.ipynb"
    nbformat.write(nb, path)
    return path


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        for key in ("href", "src"):
            if a.get(key) and tag in ("a", "img", "link", "script", "iframe"):
                self.links.append(a[key])


def _broken_links(site_dir: Path) -> list[str]:
    """Relative links and images of every page whose target file or anchor is missing."""
    pages, broken = {}, []
    for page in site_dir.rglob("*.html"):
        if page.name == "404.html":            # a web server's page, linked from its root
            continue
        p = _Links()
        p.feed(page.read_text(errors="replace"))
        pages[page.resolve()] = p
    for page, p in pages.items():
        for link in p.links:
            if link.startswith(("http://", "https://", "mailto:", "data:", "javascript:")):
                continue
            target, anchor = urldefrag(link)
            path = (page.parent / unquote(target)).resolve() if target else page
            if path.is_dir():
                path = path / "index.html"
            if not path.exists():
                broken.append(f"{page.relative_to(site_dir.resolve())}: {link}")
            elif anchor and path in pages and anchor not in pages[path].ids:
                broken.append(f"{page.relative_to(site_dir.resolve())}: {link} (no #{anchor})")
    return broken


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]')")
    pytest.importorskip("mkdocs_jupyter")
    pytest.importorskip("mkdocstrings")
    tmp = tmp_path_factory.mktemp("site")
    source = _toy_source(tmp)
    executed = site.execute(source, tmp / "executed", timeout=120)
    nav = site.lay_out([executed], tmp / "src", api=site.API[:1])
    return source, executed, site.mkdocs(nav, tmp / "src", tmp / "site")


def test_an_executed_copy_is_reused_only_while_its_source_is_unchanged(built, tmp_path):
    source, executed, _ = built
    assert site.fresh_copy(source, executed.parent) == executed
    nb = json.loads(executed.read_text())
    assert sum("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", [])) == 3
    changed = tmp_path / source.name
    src = json.loads(source.read_text())
    src["cells"][1]["source"] += "\nax.set_title('changed')"
    changed.write_text(json.dumps(src))
    assert site.fresh_copy(changed, executed.parent) is None


def test_the_site_has_no_broken_internal_link(built):
    _, _, site_dir = built
    assert (site_dir / "notebooks" / "99_toy.html").is_file()
    assert (site_dir / "api" / "attacks.html").is_file() and (site_dir / "quickstart.html").is_file()
    assert _broken_links(site_dir) == []
    # the check finds a missing page and a missing anchor
    probe = site_dir / "probe.html"
    probe.write_text('<a href="api/nothing.html">x</a><a href="quickstart.html#no-such-part">y</a>')
    try:
        assert _broken_links(site_dir) == ["probe.html: api/nothing.html",
                                           "probe.html: quickstart.html#no-such-part (no #no-such-part)"]
    finally:
        probe.unlink()
    page = (site_dir / "notebooks" / "99_toy.html").read_text()
    assert site.colab_url("99_toy") in page
    # the API page is made from the docstrings
    assert "AutoAttack" in (site_dir / "api" / "attacks.html").read_text()


@pytest.mark.slow
def test_each_notebook_page_shows_its_figures_in_chromium(built):
    wb = _load("widgets_browser")
    why = wb.missing()
    if why:
        pytest.skip(f"no browser test here: {why}")
    _, executed, site_dir = built
    want = sum("image/png" in o.get("data", {}) for c in json.loads(executed.read_text())["cells"]
               for o in c.get("outputs", []))
    with wb.chromium() as driver:
        for page in sorted((site_dir / "notebooks").glob("*.html")):
            driver.get(page.resolve().as_uri())
            shown = driver.execute_script(
                "return Array.from(document.querySelectorAll('article img'))"
                ".filter(i => i.complete && i.naturalWidth > 0 && i.src.startsWith('data:image/png'))"
                ".length")
            assert shown == want, f"{page.name}: {shown} of {want} figures shown"
            # the widget's controls need a kernel: the page shows its picture, no dead widget
            assert not driver.find_elements("css selector", ".jupyter-widgets, .widget-area script")
