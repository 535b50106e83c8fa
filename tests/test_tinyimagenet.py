"""Tiny-ImageNet (Le and Yang 2015; paper 004's Table III) read from its on-disk layout,
tested on a small fixture written in that layout: train/<wnid>/images, val/images with
val/val_annotations.txt, wnids.txt (class k = line k) and words.txt."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import robustviz as rv
from robustviz.data import DatasetFormatError

PIL = pytest.importorskip("PIL.Image")

WNIDS = ["n02124075", "n04067472", "n01443537"]          # class 0, 1, 2 (wnids.txt order)
WORDS = {"n01443537": "goldfish, Carassius auratus", "n02124075": "Egyptian cat",
         "n04067472": "reel", "n09999999": "not in this set"}
TRAIN_PER_CLASS = 4
# val images, listed out of order in the annotation file: (file, wnid)
VAL = [("val_3.JPEG", "n01443537"), ("val_0.JPEG", "n04067472"), ("val_1.JPEG", "n02124075"),
       ("val_2.JPEG", "n01443537"), ("val_4.JPEG", "n02124075")]


def _colour(label: int, j: int) -> tuple[int, int, int]:
    return (40 + 60 * label, 10 + 40 * j, 200 - 30 * label)


def _save(path, rgb, grey=False):
    img = PIL.new("RGB", (64, 64), rgb)
    if grey:
        img = img.convert("L")
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="JPEG", quality=98)


@pytest.fixture()
def tiny_root(tmp_path):
    root = tmp_path / "tiny-imagenet-200"
    root.mkdir()
    (root / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (root / "words.txt").write_text("".join(f"{k}\t{v}\n" for k, v in WORDS.items()))
    for k, w in enumerate(WNIDS):
        for j in range(TRAIN_PER_CLASS):
            _save(root / "train" / w / "images" / f"{w}_{j}.JPEG", _colour(k, j), grey=(k == 2 and j == 3))
        (root / "train" / w / f"{w}_boxes.txt").write_text("ignored\n")
    lines = []
    for name, w in VAL:
        _save(root / "val" / "images" / name, _colour(WNIDS.index(w), 4))
        lines.append(f"{name}\t{w}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_tiny_imagenet_train_and_val_from_the_layout(tiny_root):
    train = rv.data.load("tiny-imagenet", "train", root=tiny_root, download=False)
    assert train.x.shape == (12, 3, 64, 64) and train.x.dtype == torch.float32
    assert train.y.tolist() == [0] * 4 + [1] * 4 + [2] * 4          # wnids.txt order
    assert train.classes == ["Egyptian cat", "reel", "goldfish"]    # first name in words.txt
    assert 0.0 <= float(train.x.min()) and float(train.x.max()) <= 1.0
    for i in range(12):
        k, j = divmod(i, 4)
        want = torch.tensor(_colour(k, j), dtype=torch.float32) / 255
        if k == 2 and j == 3:    # a greyscale JPEG comes back as three equal channels
            assert torch.allclose(train.x[i, 0], train.x[i, 1]) and torch.allclose(train.x[i, 1], train.x[i, 2])
            continue
        got = train.x[i].mean(dim=(1, 2))
        assert torch.allclose(got, want, atol=4 / 255), (i, got, want)
    test = rv.data.load("tiny-imagenet", "test", root=tiny_root, download=False)
    # val/ is the labelled test split, sorted by file name, labels from val_annotations.txt
    assert test.y.tolist() == [1, 0, 2, 2, 0]                       # val_0 .. val_4
    assert test.split == "test" and test.name == "tiny-imagenet" and test.num_classes == 3
    for i, (name, w) in enumerate(sorted(VAL)):
        want = torch.tensor(_colour(WNIDS.index(w), 4), dtype=torch.float32) / 255
        assert torch.allclose(test.x[i].mean(dim=(1, 2)), want, atol=4 / 255)
    assert rv.data.info("tiny-imagenet").shape == (3, 64, 64) and rv.data.info("tinyimagenet").num_classes == 200
    assert rv.data.locate("tiny-imagenet", "train", root=tiny_root).name == "tiny-imagenet-200"
    # given root = the folder itself
    assert len(rv.data.load("tiny-imagenet", "test", root=tiny_root / "tiny-imagenet-200", download=False)) == 5


def test_tiny_imagenet_subset_decodes_the_same_stratified_images(tiny_root):
    full = rv.data.load("tiny-imagenet", "train", root=tiny_root, download=False)
    sub = rv.data.load("tiny-imagenet", "train", root=tiny_root, n=6, seed=3, download=False)
    want = full.sample(6, seed=3)
    assert torch.equal(sub.x, want.x) and torch.equal(sub.y, want.y)
    assert sub.class_counts().tolist() == [2, 2, 2]


def test_tiny_imagenet_errors_name_the_file(tiny_root):
    root = tiny_root / "tiny-imagenet-200"
    with pytest.raises(FileNotFoundError, match="tiny-imagenet-200.zip"):
        rv.data.load("tiny-imagenet", "train", root=tiny_root / "nowhere", download=False)
    (root / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn00000000\t0\t0\t1\t1\n")
    with pytest.raises(DatasetFormatError, match="not in wnids.txt"):
        rv.data.load("tiny-imagenet", "test", root=tiny_root, download=False)
    PIL.new("RGB", (32, 32)).save(root / "train" / WNIDS[0] / "images" / "small.JPEG", format="JPEG")
    with pytest.raises(DatasetFormatError, match="64x64"):
        rv.data.load("tiny-imagenet", "train", root=tiny_root, download=False)


def test_paper_scale_tiny_imagenet_config():
    from pathlib import Path

    from robustviz.train import TrainConfig

    cfg = TrainConfig.load(Path(__file__).resolve().parents[1] / "configs" /
                           "paper004_resnet18_trades_ancra_tinyimagenet.yaml")
    assert cfg.data["name"] == "tiny-imagenet" and cfg.model["reverse_attention"] == "blocks"
    assert cfg.defense["name"] == "ancra" and cfg.paper == "004"
    assert rv.data.info(cfg.data["name"]).num_classes == 200
    assert np.isclose(cfg.eval["eps"], 8 / 255, atol=1e-6)
