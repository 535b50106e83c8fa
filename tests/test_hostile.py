"""Hostile inputs: run folders, files and names crafted by someone else, a full disk, a
read-only folder, Ctrl-C, a model gone NaN. Each case is built in a temporary directory and
must end escaped, refused with a message naming the file, or warned.

Everything here is fast (tiny untrained digits models, at most a few seconds a test)."""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from robustviz import data, models, runs, zoo
from robustviz.cli import main as cli_main

HOSTILE = '<img src=x onerror="alert(1)">'


def _tiny_run(folder: Path, *, seed: int = 0, defense: str = "nat", **model_kw) -> Path:
    """An untrained tiny TinyCNN on digits (8x8) as a run directory."""
    d8 = data.load("digits", "train", n=50)
    spec = {"name": "tinycnn", "num_classes": 10, "in_channels": 1, "input_size": 8, "width": 4,
            "hidden": 8, "mean": d8.mean, "std": d8.std, **model_kw}
    net = models.build(**spec, seed=seed)
    cfg = {"model": spec, "data": {"name": "digits"}, "defense": {"name": defense},
           "eval": {"eps": 0.1}}
    run_dir = runs.save_run(folder, net, cfg)
    for e in (1, 2):
        runs.append_metrics(run_dir, {"kind": "epoch", "epoch": e, "loss": 2.3 - 0.1 * e,
                                      "val_clean_acc": 0.1 * e, "val_robust_acc": 0.05 * e})
    return run_dir


def _files(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- 1. markup
def test_a_run_folder_named_like_a_tag_is_escaped_in_every_section(tmp_path):
    from robustviz import report as R

    a = _tiny_run(tmp_path / HOSTILE, seed=0)
    b = _tiny_run(tmp_path / "<b>bold</b>", seed=1, defense="<script>alert(2)</script>")
    cfg = runs.load_config(b)
    cfg["note"] = "</pre><script>alert(3)</script>"
    (b / "config.json").write_text(json.dumps(cfg))
    out = tmp_path / "out"
    # every section that prints a name or a config (the sweep and the t-SNE map, slow, only
    # draw names inside figures and captions, the same escaped path as examples')
    rep = R.report([a, b], out, n=20, steps=1, progress=False, record=False,
                   sections=["summary", "attacks", "examples", "training", "runs", "references",
                             "inversion"])
    page = rep.path.read_text()
    for raw in (HOSTILE, "<b>bold</b>", "<script>", "</pre><script>"):
        assert raw not in page, raw
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page       # shown, as text
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    # no markup beyond the template's own tags: every '<' opens a known element
    import re

    tags = set(re.findall(r"</?([a-zA-Z0-9]+)", page))
    assert tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "nav",
                    "a", "section", "table", "caption", "thead", "tbody", "tr", "th", "td",
                    "dl", "dt", "dd", "figure", "img", "figcaption", "span", "details",
                    "summary", "pre"}, tags


def test_visual_section_text_is_plain_text():
    """The optional sections' text names the models: it is returned as text, not markup."""
    import inspect

    from robustviz import _report_visual, report

    assert "Markup(" not in inspect.getsource(report)
    src = inspect.getsource(_report_visual)
    assert "<code>" not in src and "&amp;" not in src


# --------------------------------------------------------------------------- 2. paths
def test_names_become_safe_file_names_inside_the_output_folder(tmp_path):
    from robustviz import report as R

    a, b = _tiny_run(tmp_path / "a", seed=0), _tiny_run(tmp_path / "b", seed=1)
    out = tmp_path / "deep" / "out"
    before = {p for p in tmp_path.rglob("*")}
    rep = R.report([a, b], out, names=["../../../escaped", "..\\x/../y"], n=20, steps=1,
                   sections=["examples"], progress=False, record=False)
    new = {p for p in tmp_path.rglob("*")} - before
    assert new and all(p == out or out in p.parents or p in out.parents for p in new), new
    assert not (tmp_path / "escaped.png").exists() and not list(tmp_path.glob("*escaped*"))
    for p in rep.figures:
        assert p.resolve().parent == (out / "figures").resolve()
        assert set(p.stem) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
    assert len({p.stem for p in rep.figures}) == 2                     # distinct names stay distinct
    assert "../../../escaped" in rep.path.read_text()                  # shown as the name


# --------------------------------------------------------------------------- 7. CSV formulas
def test_csv_cells_that_start_a_formula_are_guarded(tmp_path):
    from robustviz.figures import save_table, table_to_csv

    text = table_to_csv(["run", "acc"], [["=HYPERLINK(\"http://x\")", "-0.5"],
                                          ["+cmd|' /C calc'!A0", "-"], ["@SUM(A1)", "1e-3"],
                                          ["-2+3", "+1"], ["plain", "=1"]])
    lines = text.splitlines()
    assert lines[1].startswith("\"'=HYPERLINK") and lines[1].endswith(",-0.5")
    assert lines[2].startswith("'+cmd") and lines[2].endswith(",-")
    assert lines[3] == "'@SUM(A1),1e-3" and lines[4] == "'-2+3,+1" and lines[5] == "plain,'=1"
    (csv_path, _) = save_table(["run"], [["=1+1"]], tmp_path / "t")
    assert csv_path.read_text().splitlines()[1] == "'=1+1"
