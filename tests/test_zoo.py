"""The teaching zoo: every shipped model loads through the public API and reproduces its
recorded accuracies; the manifest catches changed, truncated and swapped files."""
import json
import shutil
import subprocess
import sys

import pytest
import torch

import robustviz as rv
from robustviz import zoo

ENTRIES = [(d, m) for d in zoo.datasets() for m in zoo.list(d)]
MAX_BYTES = 30 * 1024 * 1024


def test_zoo_has_the_required_models():
    assert {"nat", "fgsm_rs", "pgd_at", "trades", "mart", "cl_emb1", "cl_emb5", "ascl_global",
            "ascl_leaked", "trades_ancra"} <= set(zoo.list("fashion-mnist"))
    assert {"nat", "pgd_at", "trades"} <= set(zoo.list("digits"))


def test_zoo_under_30_mb():
    total = sum(p.stat().st_size for p in zoo.root().rglob("*") if p.is_file())
    assert total < MAX_BYTES, f"the zoo holds {total / 2**20:.1f} MiB (limit 30 MiB)"


def test_whole_zoo_matches_manifest():
    assert zoo.verify() == len(json.loads((zoo.root() / zoo.MANIFEST).read_text())["files"])


PREFIX = 100    # the check subset's first images that PGD-20 reruns, image by image


@pytest.mark.slow
@pytest.mark.parametrize("dataset,name", ENTRIES, ids=[f"{d}/{m}" for d, m in ENTRIES])
def test_zoo_model_reproduces_its_record(dataset, name):
    """The check record (the same 500 stratified test images, eps 0.1, step 0.01, uniform
    start, seed 0, CPU, one thread): clean accuracy image by image on all of them, within
    one image, and PGD-20 image by image on the first 100 (they draw the same random start
    as in the whole run), within one image; a fifth of the attack's cost of the whole subset."""
    model = rv.zoo.load(name, dataset=dataset)
    assert not model.training
    rec = json.loads((zoo.run_dir(name, dataset) / "eval.json").read_text())
    chk = rec["check"]
    sub = rv.zoo.eval_subset(dataset, chk["n"], seed=chk["seed"])
    assert len(sub) == chk["n"]
    want = {k: zoo.unpack_bits(chk["correct"][k], chk["n"]) for k in ("clean", "pgd20")}
    assert want["clean"].float().mean().item() == pytest.approx(chk["clean"])   # the bits are the record's
    assert want["pgd20"].float().mean().item() == pytest.approx(chk["pgd20"])
    pgd = rv.attacks.PGD(eps=rec["eval"]["eps"], step_size=rec["eval"]["pgd"]["step_size"], steps=20,
                         random_start="uniform")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            clean = model(sub.x).argmax(1) == sub.y
        res = rv.evaluate.evaluate(model, (sub.x[:PREFIX], sub.y[:PREFIX]), {"pgd20": pgd}, topk=(1,),
                                   seed=0, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert int((clean != want["clean"]).sum()) <= 1
    robust = res.correct["pgd20"][:, 0]
    assert int((robust != want["pgd20"][:PREFIX]).sum()) <= 1, (robust.float().mean(), want["pgd20"][:PREFIX].float().mean())
    assert bool((robust <= clean[:PREFIX]).all())


def test_check_bits_round_trip():
    mask = torch.rand(37, generator=torch.Generator().manual_seed(0)) > 0.5
    assert torch.equal(zoo.unpack_bits(zoo.pack_bits(mask), 37), mask)
    assert zoo.pack_bits([True] + [False] * 7 + [True]) == "8080"
    with pytest.raises(ValueError, match="fewer than"):
        zoo.unpack_bits("ff", 9)


def test_records_are_consistent():
    """Every record: accuracies in [0,1], robust <= clean, PGD-20 <= FGSM up to noise, the
    strongest attack is the minimum, and the training machine and time are recorded."""
    for dataset, name in ENTRIES:
        inf = zoo.info(name, dataset)
        ev = inf["eval"]
        assert inf["train_seconds"] > 0 and inf["device"]
        assert 0 <= ev["pgd20"] <= ev["clean"] <= 1
        assert ev["fgsm"] <= ev["clean"]
        attacked = [ev["fgsm"], ev["pgd20"], ev["adaptive"], ev["autoattack"]["acc"]]
        assert ev["strongest"] == min(a for a in attacked if a is not None)
        needs_adaptive = rv.attacks.surrogate_of(zoo.load(name, dataset, verify_files=False)) is not None
        assert (ev["adaptive"] is not None) == needs_adaptive


PRETRAINED = ("simclr_slf", "advcl_slf", "ascl_pretrain_slf")   # pretraining + linear head
# over-trained on 500 images on purpose (notebook 11 replays its robust overfitting): a record
# of a failure mode, not a defense held to the quality targets
DEMONSTRATIONS = ("pgd_at_overfit",)


def test_quality_targets_fashion_mnist():
    """eps 0.1: NAT >= 90% clean and <= 5% robust; PGD-AT >= 83% clean and >= 70% PGD-20;
    every other supervised defense >= 55 points above NAT under its strongest attack."""
    ev = {m: zoo.info(m)["eval"] for m in zoo.list("fashion-mnist")
          if m not in PRETRAINED + DEMONSTRATIONS}
    assert ev["nat"]["clean"] >= 0.90 and ev["nat"]["pgd20"] <= 0.05
    assert ev["pgd_at"]["clean"] >= 0.83 and ev["pgd_at"]["pgd20"] >= 0.70
    nat = ev["nat"]["strongest"]
    short = {m: round(100 * (e["strongest"] - nat), 1) for m, e in ev.items()
             if m != "nat" and e["strongest"] - nat < 0.55 and m not in _KNOWN_SHORT}
    assert not short, f"defenses less than 55 points above NAT: {short}"


def test_robust_pretraining_beats_simclr_by_20_points():
    """AdvCL + SLF and ASCL pretraining + SLF: at least 20 points of PGD-20 accuracy above
    SimCLR + SLF (non-robust features) on the same 2,000 test images at eps 0.1, and each
    entry records its pipeline (pretraining run, then a frozen-encoder finetune)."""
    ev = {m: zoo.info(m)["eval"] for m in PRETRAINED}
    assert len({e["n"] for e in ev.values()}) == 1 and ev["simclr_slf"]["n"] == 2000
    for m in ("advcl_slf", "ascl_pretrain_slf"):
        assert ev[m]["pgd20"] - ev["simclr_slf"]["pgd20"] >= 0.20, (m, ev[m]["pgd20"])
        fin = zoo.info(m)["config"]["finetune"]
        assert fin["mode"] == "slf" and fin["encoder"].startswith("runs/teach/pretrain_")


# Defenses whose recipe misses the 55-point margin at teaching scale; each is stated in its
# record and in the README with the measured figures (empty when every defense meets it).
_KNOWN_SHORT: set[str] = set()


def test_unknown_name_lists_available():
    with pytest.raises(LookupError, match="available: .*pgd_at"):
        rv.zoo.load("pgd-at")
    with pytest.raises(LookupError, match="datasets with models"):
        rv.zoo.list("cifar10")


@pytest.fixture
def zoo_copy(tmp_path, monkeypatch):
    """A copy of two zoo entries with their own manifest (ROBUSTVIZ_ZOO points at it)."""
    for name in ("nat", "pgd_at"):
        shutil.copytree(zoo.root() / "digits" / name, tmp_path / "digits" / name)
    monkeypatch.setenv("ROBUSTVIZ_ZOO", str(tmp_path))
    zoo.write_manifest(tmp_path)
    return tmp_path


def test_changed_file_is_refused_with_its_name(zoo_copy):
    assert rv.zoo.load("nat", dataset="digits") is not None
    w = zoo_copy / "digits" / "nat" / "weights.safetensors"
    raw = bytearray(w.read_bytes())
    raw[-5] ^= 0xFF                      # one flipped byte in a weight: still a valid file
    w.write_bytes(bytes(raw))
    with pytest.raises(zoo.ZooIntegrityError, match=r"nat/weights\.safetensors.*sha256"):
        rv.zoo.load("nat", dataset="digits")
    # the other entry is untouched and still loads
    assert rv.zoo.load("pgd_at", dataset="digits") is not None


def test_truncated_and_swapped_files_are_refused(zoo_copy):
    w = zoo_copy / "digits" / "nat" / "weights.safetensors"
    w.write_bytes(w.read_bytes()[:1000])
    with pytest.raises(zoo.ZooIntegrityError, match="truncated"):
        rv.zoo.load("nat", dataset="digits")
    # swapping two models' weights: both files are valid safetensors of the same architecture
    shutil.copy(zoo_copy / "digits" / "pgd_at" / "weights.safetensors", w)
    with pytest.raises(zoo.ZooIntegrityError, match=r"digits/nat/weights\.safetensors"):
        rv.zoo.load("nat", dataset="digits")
    (zoo_copy / "digits" / "pgd_at" / "config.json").unlink()
    with pytest.raises(zoo.ZooIntegrityError, match="missing"):
        rv.zoo.load("pgd_at", dataset="digits")


def test_info_and_data():
    inf = rv.zoo.info("pgd_at")
    assert inf["config"]["defense"]["name"] == "pgd_at"
    assert inf["eval"]["eps"] == 0.1 and inf["epochs"]
    d = rv.zoo.data("digits", "test", n=50)
    assert len(d) == 50 and d.shape == (1, 8, 8)


def test_cli_zoo_list():
    out = subprocess.run([sys.executable, "-m", "robustviz", "zoo", "list", "--dataset", "fashion-mnist"],
                         capture_output=True, text=True, check=True).stdout
    for name in zoo.list("fashion-mnist"):
        assert name in out
    bad = subprocess.run([sys.executable, "-m", "robustviz", "zoo", "info", "nope"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "available:" in bad.stderr


def test_demo_from_zoo_reports_zoo_models(tmp_path, capsys):
    """The main job loads the zoo (no training) and writes the report with one row per model."""
    from robustviz.cli import main as cli_main

    argv = ["demo", "--report", str(tmp_path / "report"), "--defenses", "nat", "pgd_at",
            "--n-test", "60", "--no-progress", "--out", str(tmp_path / "never")]
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert "teaching zoo" in out and "checked against" in out
    assert (tmp_path / "report" / "index.html").is_file()
    assert not (tmp_path / "never").exists()          # nothing trained, nothing written
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    rows = {r["name"]: r for r in summary["rows"]}
    assert set(rows) == {"nat", "pgd_at"}
    assert rows["pgd_at"]["pgd"] > rows["nat"]["pgd"] + 0.3   # the zoo's contrast shows in the report
    zoo.verify()                                               # the report wrote nothing into the zoo


def test_demo_falls_back_to_the_digits_zoo(tmp_path, capsys, monkeypatch):
    """Without Fashion-MNIST the demo says so in one line and reports the digits zoo."""
    from robustviz import data
    from robustviz.demo import demo

    monkeypatch.setattr(data, "available", lambda name, *a, **k: name != "fashion-mnist")
    assert zoo.default_dataset() == "digits"
    rep = demo(report_dir=tmp_path / "r", defenses=["nat"], n_test=40, n_sweep=20, n_embed=40,
               progress=False)
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if "Fashion-MNIST is not installed" in line]
    assert len(notes) == 1 and "digits" in notes[0]
    assert [r["name"] for r in rep.rows] == ["nat"]
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["n"] == 40
