"""Drive the widgets in a real browser: Voila serves a widget notebook, headless Chromium
(through Selenium) moves the eps slider and reads the page.

Used by ``tests/test_browser.py`` and, run as a script, saves the README's screenshots::

    OMP_NUM_THREADS=1 .venv/bin/python scripts/widgets_browser.py docs/img  [--model nat]

``--model`` takes a zoo name or a run directory; without one a TinyCNN is trained for one
epoch on 3,000 Fashion-MNIST images (seconds). Needs Debian's ``chromium`` and
``chromium-driver`` (``scripts/setup.sh`` installs them as root where apt exists), and
voila + selenium (``pip install -e '.[dev]'``).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-dev-shm-usage")


def missing() -> str | None:
    """Why the browser drive cannot run here (None when it can)."""
    for exe in ("chromium", "chromedriver"):
        if shutil.which(exe) is None:
            return (f"no {exe} on PATH (Debian: apt-get install chromium chromium-driver; "
                    f"scripts/setup.sh does it as root)")
    for mod in ("selenium", "voila"):
        try:
            __import__(mod)
        except ImportError:
            return f"{mod} is not installed (pip install -e '.[dev]')"
    return None


def widget_notebook(path: Path, model: str, *, what: str = "explorer") -> Path:
    """Write a small notebook that shows one widget for ``model`` (zoo name or run dir)."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    setup = ("import robustviz as rv\n"
             "test = rv.data.load('fashion-mnist', 'test', n=1000, seed=0)\n")
    if what == "explorer":
        code = (f"w = rv.widgets.LatentExplorer({model!r}, test, eps=0.1, steps=10, "
                f"n_map=400, n_adv=100)\nw.selected = 2\nw")
    else:
        code = f"w = rv.widgets.AttackPlayground({model!r}, test, index=0, eps=0.1, steps=10)\nw"
    nb = new_notebook(cells=[new_code_cell(setup), new_code_cell(code)], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, path)
    return path


def quick_model(run_dir: Path) -> str:
    """A one-epoch TinyCNN saved as a run directory (a stand-in when there is no zoo)."""
    import robustviz as rv

    train = rv.data.load("fashion-mnist", "train", n=3000, seed=0)
    m = rv.models.build("tinycnn", num_classes=10, in_channels=1, mean=train.mean,
                        std=train.std, seed=0)
    rv.train.Trainer(defense={"name": "nat"}, epochs=1, optimizer="adam", lr=2e-3,
                     weight_decay=0.0, schedule="constant", batch_size=128, eps=0.1,
                     progress=False, seed=0).fit(m, train, run_dir=run_dir)
    return str(run_dir)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def voila(notebook: Path, *, timeout: float = 60.0):
    """Serve ``notebook`` with Voila on a free local port; yields the page's URL."""
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    env.setdefault("OMP_NUM_THREADS", "1")
    log = open(notebook.with_suffix(".voila.log"), "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "voila", notebook.name, "--no-browser", f"--port={port}",
         "--Voila.ip=127.0.0.1", "--show_tracebacks=True"],
        cwd=notebook.parent, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise RuntimeError("voila did not start:\n" +
                                   notebook.with_suffix(".voila.log").read_text()[-3000:])
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextlib.contextmanager
def chromium(*, width: int = 1280, height: int = 900):
    """Headless Chromium through Selenium with a fresh profile directory."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="rv-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for flag in CHROMIUM_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={profile}")
    opts.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait(driver, predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            value = predicate()
            if value:
                return value
        time.sleep(0.5)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def readout(driver, css: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css).text


def map_points(driver) -> list[str]:
    """The plotted positions of the map's adversarial points (plotly's SVG transforms)."""
    return driver.execute_script(
        "const tr = document.querySelectorAll('.rv-map .scatterlayer .trace, "
        ".js-plotly-plot .scatterlayer .trace');"
        "if (tr.length < 2) return [];"
        "const adv = tr[tr.length - 2];"
        "return Array.from(adv.querySelectorAll('path.point')).map(p => p.getAttribute('transform'));")


def set_slider(driver, css: str, value: float) -> None:
    """Type ``value`` into the slider's editable read-out, as a user can."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.CSS_SELECTOR, f"{css} .widget-readout")
    box.click()
    driver.execute_script(
        "const el = arguments[0]; const r = document.createRange(); r.selectNodeContents(el);"
        "const s = window.getSelection(); s.removeAllRanges(); s.addRange(r);", box)
    box.send_keys(f"{value:.3f}")
    box.send_keys(Keys.ENTER)


def drive_explorer(driver, url: str, *, new_eps: float = 0.25, timeout: float = 240.0) -> dict:
    """Open the explorer page, move eps, and return the read-outs and map points before and
    after."""
    driver.get(url)
    before = _wait(driver, lambda: "R-DIV" in readout(driver, ".rv-rdiv") and
                   readout(driver, ".rv-rdiv"), timeout, "the R-DIV read-out")
    points_before = _wait(driver, lambda: map_points(driver), 60, "the map's points")
    set_slider(driver, ".rv-eps", new_eps)
    after = _wait(driver, lambda: (t := readout(driver, ".rv-rdiv")) != before and t,
                  60, "the R-DIV read-out to change")
    points_after = _wait(driver, lambda: (p := map_points(driver)) != points_before and p,
                         60, "the map to change")
    return {"before": before, "after": after, "points_before": points_before,
            "points_after": points_after}


def screenshot(driver, path: Path, *, css: str = ".widget-vbox", max_width: int = 1000) -> Path:
    """Save a small PNG of the first element matching ``css`` (downscaled, optimised)."""
    import io

    from PIL import Image
    from selenium.webdriver.common.by import By

    el = driver.find_element(By.CSS_SELECTOR, css)
    img = Image.open(io.BytesIO(el.screenshot_as_png)).convert("RGB")
    if img.width > max_width:
        img = img.resize((max_width, round(img.height * max_width / img.width)), Image.LANCZOS)
    img = img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    from robustviz.runs import atomic_write_bytes

    atomic_write_bytes(path, buf.getvalue())
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=str(ROOT / "docs" / "img"))
    parser.add_argument("--model", default=None, help="zoo name or run directory")
    args = parser.parse_args(argv)
    why = missing()
    if why:
        print(f"cannot drive a browser: {why}", file=sys.stderr)
        return 1
    out = Path(args.out)
    with tempfile.TemporaryDirectory(prefix="rv-widgets-") as tmp:
        tmp = Path(tmp)
        model = args.model or quick_model(tmp / "nat")
        with chromium() as driver:
            nb = widget_notebook(tmp / "explorer.ipynb", model, what="explorer")
            with voila(nb) as url:
                res = drive_explorer(driver, url, new_eps=0.2)
                time.sleep(1.0)
                print(json.dumps({"before": res["before"], "after": res["after"]}))
                print(screenshot(driver, out / "latent_explorer.png"))
            nb = widget_notebook(tmp / "playground.ipynb", model, what="playground")
            with voila(nb) as url:
                driver.get(url)
                _wait(driver, lambda: "adversarial" in readout(driver, ".rv-readout"), 240,
                      "the playground")
                time.sleep(1.0)
                print(screenshot(driver, out / "attack_playground.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
