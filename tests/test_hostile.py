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
import textwrap
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
    rep = R.report([a, b], out, names=["../../../escaped", "$\\foo{$ ..\\x/../y"], n=20, steps=1,
                   sections=["examples"], progress=False, record=False)
    new = {p for p in tmp_path.rglob("*")} - before
    assert new and all(p == out or out in p.parents or p in out.parents for p in new), new
    assert not (tmp_path / "escaped.png").exists() and not list(tmp_path.glob("*escaped*"))
    for p in rep.figures:
        assert p.resolve().parent == (out / "figures").resolve()
        assert set(p.stem) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
    from robustviz.report._page import _safe_stem

    stems = {_safe_stem(f"examples_{nm}") for nm in ["../../../escaped", "$\\foo{$ ..\\x/../y"]}
    assert len(stems) == 2                                             # distinct names stay distinct
    assert all(set(s) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
               for s in stems)
    assert "../../../escaped" in rep.path.read_text()                  # shown as the name
    # a name that is broken mathtext is drawn as plain text, not a failed report
    assert "$\\foo{$ ..\\x/../y" in rep.path.read_text()


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


# --------------------------------------------------------------------------- 3. the zoo
@pytest.fixture
def zoo_copy(tmp_path, monkeypatch):
    """A copy of one digits zoo entry with its own manifest (ROBUSTVIZ_ZOO points at it)."""
    shutil.copytree(zoo.root() / "digits" / "nat", tmp_path / "zoo" / "digits" / "nat")
    monkeypatch.setenv("ROBUSTVIZ_ZOO", str(tmp_path / "zoo"))
    zoo.write_manifest(tmp_path / "zoo")
    return tmp_path / "zoo"


def test_evaluate_on_a_zoo_model_never_writes_the_zoo(zoo_copy, capsys):
    entry = zoo_copy / "digits" / "nat"
    before = _files(zoo_copy)
    assert cli_main(["evaluate", str(entry), "--attack", "fgsm", "--n", "20", "--topk", "1",
                     "--no-progress"]) == 0
    assert "the zoo is read-only" in capsys.readouterr().out
    assert _files(zoo_copy) == before
    assert zoo.verify() == len(before) - 1 and zoo.load("nat", "digits") is not None


def test_an_unlisted_weights_file_is_refused_and_verify_fails(zoo_copy):
    man = json.loads((zoo_copy / zoo.MANIFEST).read_text())
    del man["files"]["digits/nat/weights.safetensors"]
    (zoo_copy / zoo.MANIFEST).write_text(json.dumps(man))
    with pytest.raises(zoo.ZooIntegrityError, match=r"nat/weights\.safetensors is not listed"):
        zoo.load("nat", "digits")
    with pytest.raises(zoo.ZooIntegrityError, match="not listed"):
        zoo.verify()
    assert cli_main(["zoo", "verify"]) == 2


def test_an_extra_file_in_a_zoo_entry_is_refused(zoo_copy):
    (zoo_copy / "digits" / "nat" / "state.safetensors").write_bytes(b"x")
    with pytest.raises(zoo.ZooIntegrityError, match=r"state\.safetensors is not listed"):
        zoo.load("nat", "digits")


@pytest.mark.parametrize("manifest", [
    {"file": {}}, {"files": []}, {"files": {"digits/nat/config.json": {"bytes": 3}}},
    {"files": {"digits/nat/config.json": {"sha256": "0" * 64, "bytes": "3"}}},
    {"files": {"digits/../config.json": {"sha256": "0" * 64, "bytes": 3}}}, [1, 2]])
def test_a_malformed_manifest_is_refused_naming_it(zoo_copy, manifest):
    (zoo_copy / zoo.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(zoo.ZooIntegrityError, match=r"MANIFEST\.json is malformed"):
        zoo.load("nat", "digits")


def test_a_local_folder_named_like_a_zoo_model_does_not_replace_it(zoo_copy, tmp_path,
                                                                   monkeypatch, capsys):
    from robustviz.widgets._common import resolve_model

    _tiny_run(tmp_path / "work" / "nat")
    monkeypatch.chdir(tmp_path / "work")
    m = resolve_model("nat", dataset="digits")
    assert "zoo model digits/nat" in capsys.readouterr().out
    ref = zoo.load("nat", "digits")
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), ref.state_dict().values()))
    local = resolve_model("./nat", dataset="digits")                # an explicit path
    assert "run directory" in capsys.readouterr().out
    assert local.conv1[0].weight.shape[0] == 4


def test_no_writer_can_write_into_the_zoo(zoo_copy, capsys):
    entry = zoo_copy / "digits" / "nat"
    before = _files(zoo_copy)
    with pytest.raises(runs.ZooReadOnlyError, match="read-only"):
        runs.append_metrics(entry, {"kind": "event"})
    with pytest.raises(runs.ZooReadOnlyError, match="inside the teaching zoo"):
        runs.atomic_write_text(entry / "eval.json", "{}")
    with pytest.raises(runs.ZooReadOnlyError):
        runs.RunLock(zoo_copy / "digits" / "new_run").acquire()
    with pytest.raises(runs.ZooReadOnlyError):
        runs.save_run(zoo_copy / "digits" / "new_run", torch.nn.Linear(2, 2), {"model": {"name": "x"}})
    # the CLI: training into the zoo (a new entry, or resuming a zoo model) is one line, exit 1
    assert cli_main(["train", "--dataset", "digits", "--epochs", "1", "--n-train", "50",
                     "--out", str(zoo_copy / "digits" / "evil"), "--no-progress"]) == 1
    assert "teaching zoo" in capsys.readouterr().err
    assert _files(zoo_copy) == before and not (zoo_copy / "digits" / "evil").exists()
    with zoo.maintenance():               # the zoo's own maintenance may write, and says so
        runs.atomic_write_text(entry / "eval.json", (entry / "eval.json").read_text())
    assert zoo.verify() == len(before) - 1


def test_a_changed_zoo_record_is_refused_by_info_and_the_table(zoo_copy):
    rec = zoo_copy / "digits" / "nat" / "eval.json"
    rec.write_text(rec.read_text().replace('"clean": 0.99', '"clean": 0.98', 1))
    with pytest.raises(zoo.ZooIntegrityError, match=r"eval\.json does not match"):
        zoo.info("nat", "digits")
    with pytest.raises(zoo.ZooIntegrityError):
        zoo.table("digits")


# --------------------------------------------------------------------------- 4. numbers
def _nan_run(folder: Path) -> Path:
    run_dir = _tiny_run(folder)
    model = runs.load_run(run_dir).model
    with torch.no_grad():
        model.classifier.weight.fill_(float("nan"))
    runs.save_weights(run_dir / runs.WEIGHTS, model)
    return run_dir


def test_a_nan_model_is_refused_naming_it(tmp_path, capsys):
    from robustviz import report as R

    run_dir = _nan_run(tmp_path / "gone_nan")
    with pytest.warns(UserWarning, match="NaN or infinite values"):
        runs.load_run(run_dir)
    before = _files(run_dir)
    with pytest.warns(UserWarning, match="NaN or infinite values"):
        assert cli_main(["evaluate", str(run_dir), "--attack", "fgsm", "--n", "20",
                         "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"model {run_dir} gives NaN or infinite logits" in err and err.count("\n") == 1
    assert _files(run_dir) == before                                  # no record
    with pytest.raises(ValueError, match="gone_nan gives NaN"), pytest.warns(UserWarning):
        R.report([run_dir], tmp_path / "out", n=20, steps=1, sections=["summary"], progress=False)


def test_pgd_at_with_zero_steps_is_refused():
    from robustviz import defenses

    with pytest.raises(ValueError, match="steps=0.*random-start noise"):
        defenses.build({"name": "pgd_at", "eps": 0.1, "steps": 0})


def test_train_pgd_at_steps_0_is_refused_before_training(tmp_path, capsys):
    out = tmp_path / "never"
    assert cli_main(["train", "--dataset", "digits", "--defense", "pgd_at", "--steps", "0",
                     "--epochs", "1", "--out", str(out)]) == 2
    assert "steps=0" in capsys.readouterr().err and not out.exists()


def test_l2_divergence_of_large_features_is_not_nan():
    from robustviz import diagnostics

    g = torch.Generator().manual_seed(0)
    z = torch.randn(40, 16, generator=g)
    y = torch.arange(40) % 4
    small = diagnostics.divergence(z, z + 0.1, y, distance="l2", n_boot=0)
    big = diagnostics.divergence(z * 1e19, (z + 0.1) * 1e19, y, distance="l2", n_boot=0)
    assert np.isfinite(big.rdiv) and big.rdiv == pytest.approx(small.rdiv, rel=1e-4)
    with pytest.raises(ValueError, match="overflow even float64"):
        diagnostics.divergence(z.double() * 1e160, None, y, distance="l2", n_boot=0)


def test_evaluate_records_the_weights_epoch_and_warns_on_a_live_run(tmp_path):
    run_dir = _tiny_run(tmp_path / "r")
    (run_dir / runs.LOCK).write_text(json.dumps({"pid": os.getppid(), "host": __import__(
        "socket").gethostname()}))
    with pytest.warns(UserWarning, match="being trained by pid"):
        assert cli_main(["evaluate", str(run_dir), "--attack", "fgsm", "--n", "20",
                         "--no-progress"]) == 0
    (rec,) = runs.read_metrics(run_dir, kind="evaluation")
    assert "weights_epoch" in rec


# --------------------------------------------------------------------------- 5. sizes
def test_an_idx_header_declaring_a_terabyte_is_refused_before_allocating(tmp_path):
    import gzip

    from robustviz.data._formats import DatasetFormatError, read_idx

    raw = b"\x00\x00\x08\x03" + struct.pack(">3I", 1_000_000, 1000, 1000) + bytes(100)
    (tmp_path / "big-idx3-ubyte").write_bytes(raw)
    with pytest.raises(DatasetFormatError, match=r"big-idx3-ubyte: truncated IDX file: the IDX header declares "
                                                 r"shape \(1000000, 1000, 1000\)"):
        read_idx(tmp_path / "big-idx3-ubyte")
    (tmp_path / "big.gz").write_bytes(gzip.compress(raw))
    with pytest.raises(DatasetFormatError, match=r"big\.gz: the IDX header declares"):
        read_idx(tmp_path / "big.gz")
    ok = b"\x00\x00\x08\x01" + struct.pack(">I", 3) + bytes([1, 2, 3])
    (tmp_path / "ok.gz").write_bytes(gzip.compress(ok))
    (tmp_path / "ok").write_bytes(ok)
    assert read_idx(tmp_path / "ok").tolist() == read_idx(tmp_path / "ok.gz").tolist() == [1, 2, 3]


def test_a_config_asking_for_a_huge_model_is_refused_before_building_it(tmp_path):
    run_dir = _tiny_run(tmp_path / "r")
    cfg = runs.load_config(run_dir)
    cfg["model"]["width"] = 10 ** 7                  # ~ 10^15 parameters if built
    (run_dir / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(runs.CheckpointError, match=r"config\.json asks for a model that "
                                                   r"weights\.safetensors does not hold"):
        runs.load_run(run_dir)


def test_a_stray_huge_label_asks_for_num_classes():
    from robustviz import diagnostics

    z = torch.randn(20, 4)
    y = torch.arange(20) % 2
    y[0] = 10 ** 9
    with pytest.raises(ValueError, match="label 1000000000.*pass num_classes"):
        diagnostics.divergence(z, None, y, n_boot=0)


# --------------------------------------------------------------------------- 6. the machine says no
@pytest.fixture
def small_fs(tmp_path):
    """A mount point for a tmpfs (root only); the test is skipped with the reason otherwise."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mounted = []

    def mount(size: str, *, ro: bool = False) -> Path:
        opts = f"size={size}" + (",ro" if ro else "")
        if os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("needs root to mount a small tmpfs (disk-full / read-only cases)")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mnt)],
                           capture_output=True, text=True)
        if r.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
        mounted.append(mnt)
        return mnt

    yield mount
    for m in mounted:
        subprocess.run(["umount", str(m)], check=False)


def _one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_report_into_a_read_only_folder_is_one_line(tmp_path, small_fs, capsys):
    run_dir = _tiny_run(tmp_path / "r")
    ro = small_fs("1m", ro=True)
    assert cli_main(["report", str(run_dir), "--out", str(ro / "out"), "--n", "20",
                     "--sections", "runs", "--no-progress"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert "Read-only file system" in line and str(ro / "out") in line


def test_evaluate_refuses_a_read_only_run_before_attacking(tmp_path, small_fs, capsys, monkeypatch):
    import robustviz.evaluate

    mnt = small_fs("1m")
    run_dir = _tiny_run(mnt / "r")
    subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
    called = []
    monkeypatch.setattr(robustviz.evaluate, "evaluate", lambda *a, **k: called.append(1))
    assert cli_main(["evaluate", str(run_dir), "--no-progress"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert "metrics.jsonl" in line and "read-only" in line and not called
    # the report checks the same before its sections attack
    assert cli_main(["report", str(run_dir), "--out", str(tmp_path / "rep"), "--n", "20",
                     "--sections", "summary", "--no-progress"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert "metrics.jsonl" in line and "read-only" in line and not called
    subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=True)


def test_a_full_disk_is_one_line_naming_the_file_and_the_run_stays_readable(tmp_path, small_fs,
                                                                             capsys):
    mnt = small_fs("400k")
    run_dir = _tiny_run(mnt / "r")
    # tmpfs gives whole pages: end metrics.jsonl on a page boundary, so no slack is left
    size = (run_dir / runs.METRICS).stat().st_size
    base = len(json.dumps({"kind": "event", "pad": ""}) + "\n")
    runs.append_metrics(run_dir, {"kind": "event", "pad": "x" * (-(size + base) % 4096)})
    assert (run_dir / runs.METRICS).stat().st_size % 4096 == 0
    fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT)    # fill the disk to the last byte
    try:
        for chunk in (65536, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError:
                pass
    finally:
        os.close(fd)
    before = _files(run_dir)
    rc = cli_main(["evaluate", str(run_dir), "--attack", "fgsm", "--n", "20", "--no-progress"])
    line = _one_line(capsys.readouterr().err)
    assert rc == 1 and "No space left on device" in line and "metrics.jsonl" in line
    assert "disk is full" in line
    assert runs.read_metrics(run_dir, kind="epoch") == [r for r in runs.read_metrics(run_dir)
                                                         if r.get("kind") == "epoch"]
    assert _files(run_dir)["config.json"] == before["config.json"]
    runs.load_run(run_dir)                          # still loads


def test_a_file_size_limit_is_one_line(tmp_path):
    if not hasattr(__import__("resource"), "RLIMIT_FSIZE"):
        pytest.skip("no RLIMIT_FSIZE on this platform")
    import resource

    run_dir = _tiny_run(tmp_path / "r")
    out = tmp_path / "out"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

    r = subprocess.run([sys.executable, "-m", "robustviz", "report", str(run_dir), "--out",
                        str(out), "--n", "20", "--sections", "runs", "--no-progress"],
                       preexec_fn=limit, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert r.returncode == 1, r.stderr
    line = _one_line("\n".join(ln for ln in r.stderr.splitlines()
                               if not ln.startswith("report: eps")))
    assert "File too large" in line and "ulimit" in line and str(out) in line


def test_an_out_that_names_a_file_is_one_line(tmp_path, capsys):
    run_dir = _tiny_run(tmp_path / "r")
    (tmp_path / "afile").write_text("mine")
    assert cli_main(["report", str(run_dir), "--out", str(tmp_path / "afile"), "--n", "20",
                     "--sections", "runs", "--no-progress"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert str(tmp_path / "afile") in line and (tmp_path / "afile").read_text() == "mine"


def test_ctrl_c_is_one_line_exit_130_and_the_run_is_unchanged(tmp_path, capsys, monkeypatch):
    import robustviz.evaluate

    run_dir = _tiny_run(tmp_path / "r")
    before = _files(run_dir)

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(robustviz.evaluate, "evaluate", interrupted)
    assert cli_main(["evaluate", str(run_dir), "--no-progress"]) == 130
    assert "interrupted (Ctrl-C)" in _one_line(capsys.readouterr().err)
    assert _files(run_dir) == before


def test_resuming_a_finished_run_appends_no_second_final_record(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--dataset", "digits", "--model", "tinycnn", "--defense", "nat",
            "--epochs", "1", "--n-train", "200", "--n-test", "50", "--val-size", "50",
            "--batch-size", "100", "--no-bf16", "--no-progress", "--out", str(out)]
    assert cli_main(argv) == 0
    assert len(runs.read_metrics(out, kind="final")) == 1
    before = _files(out)
    assert cli_main([*argv, "--resume"]) == 0
    assert "already finished" in capsys.readouterr().out
    after = _files(out)
    assert len(runs.read_metrics(out, kind="final")) == 1
    # train_config.yaml is rewritten on resume with its keys in another order (same content)
    import yaml

    assert yaml.safe_load(after.pop("train_config.yaml")) == yaml.safe_load(before.pop("train_config.yaml"))
    assert after == before


# --------------------------------------------------------------------------- load
# Starts the concurrent commands of the load test. A fresh `python -m robustviz` spends 3 to 5
# s of CPU importing torch, scikit-learn, matplotlib and robustviz before its command does
# 0.1 to 1 s of work; this launcher imports them once, then forks one child process per
# command, which calls the CLI's `main` (what `python -m robustviz` calls) with its own
# stdout and stderr. The children are separate processes (own pid, own open files, own
# locks) as before. All are forked before any starts its command (each waits for its byte
# on a pipe), so all of them are alive together and their commands really overlap.
LOAD_LAUNCHER = textwrap.dedent("""
    import json, os, sys, traceback
    import torch
    torch.set_num_threads(1)
    import sklearn.datasets, torch._dynamo              # digits; the optimizer's first use
    import robustviz.evaluate, robustviz.report, robustviz.train
    from robustviz.cli import build_parser, main
    build_parser()                                      # imports every command module

    jobs, logs = json.loads(sys.argv[1]), sys.argv[2]
    go_r, go_w = os.pipe()
    pids = []
    for i, argv in enumerate(jobs):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(go_w)
                for fd, name in ((1, "out"), (2, "err")):
                    os.dup2(os.open(f"{logs}/{i}.{name}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
                os.read(go_r, 1)                        # wait until every child exists
                code = main(argv)
            except SystemExit as stop:
                code = 0 if stop.code is None else stop.code if isinstance(stop.code, int) else 1
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        pids.append(pid)
    os.write(go_w, b"x" * len(pids))                    # all forked: start them together
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    print(json.dumps(codes))
""")


@pytest.mark.slow
def test_eight_evaluations_and_two_reports_on_one_run_while_another_trains(tmp_path):
    """8 concurrent `evaluate` processes and 2 reports read one finished run while a third
    kind of process trains another: all finish, every record is whole, and the run directory
    is byte-identical apart from the appended evaluation records."""
    run_dir = _tiny_run(tmp_path / "finished")
    runs.append_metrics(run_dir, {"kind": "final", "clean_acc": 0.1, "pgd20_acc": 0.0})
    before = _files(run_dir)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    jobs = [["train", "--dataset", "digits", "--model", "tinycnn", "--defense", "nat",
             "--epochs", "2", "--n-train", "200", "--n-test", "50", "--val-size", "50",
             "--no-bf16", "--no-progress", "--out", str(tmp_path / "training")]]
    jobs += [["evaluate", str(run_dir), "--attack", "fgsm", "--n", "20", "--topk", "1",
              "--seed", str(i), "--no-progress"] for i in range(8)]
    jobs += [["report", str(run_dir), "--out", str(tmp_path / f"report{i}"), "--n", "20",
              "--steps", "1", "--sections", "summary", "runs", "--no-progress"] for i in range(2)]
    logs = tmp_path / "logs"
    logs.mkdir()
    launched = subprocess.run([sys.executable, "-c", LOAD_LAUNCHER, json.dumps(jobs), str(logs)],
                              env=env, capture_output=True, text=True, timeout=900)
    assert launched.returncode == 0, launched.stderr
    codes = json.loads(launched.stdout.splitlines()[-1])
    results = [(rc, (logs / f"{i}.err").read_text()) for i, rc in enumerate(codes)]
    assert len(results) == 11
    assert all(rc == 0 for rc, _ in results), [err[-500:] for rc, err in results if rc]
    after = _files(run_dir)
    old = before.pop("metrics.jsonl")
    new = after.pop("metrics.jsonl")
    assert after == before                            # nothing else changed
    assert new.startswith(old)                        # records only appended
    added = [json.loads(line) for line in new[len(old):].decode().splitlines()]
    assert len(added) == 10 and all(r["kind"] == "evaluation" for r in added)
    assert sum(r.get("source") == "report" for r in added) == 2
    assert len(runs.read_metrics(tmp_path / "training", kind="epoch")) == 2
