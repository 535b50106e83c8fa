"""robustviz.data: loading real formats, stratified subsets, the tensor loader, augmentation.

Fixtures for MNIST, CIFAR, SVHN and STL-10 are written in the real on-disk formats
(tests/fixtures_data.py) and cross-checked against torchvision's own readers.
"""
from __future__ import annotations

import collections
import json
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

import fixtures_data as fx
from robustviz import data
from robustviz.cli import main as cli_main

FASHION = data.available("fashion-mnist")
needs_fashion = pytest.mark.skipif(not FASHION, reason="Fashion-MNIST files not on this machine "
                                                       "(see data/README.md)")


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Run in an empty working directory (so ./data is empty) and hide /usr/share/datasets."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr("robustviz.data._datasets.SYSTEM_ROOT", tmp_path / "no-system-datasets")
    return work


def _no_download(monkeypatch):
    """Make any torchvision download attempt fail loudly (tests never touch the network)."""
    import torchvision.datasets as tvd

    def refuse(*args, **kwargs):
        raise AssertionError("test tried to download")

    for cls in ("MNIST", "FashionMNIST", "CIFAR10", "CIFAR100", "SVHN", "STL10"):
        monkeypatch.setattr(tvd, cls, refuse)


def _as_uint8(x: torch.Tensor) -> np.ndarray:
    """Invert /255 exactly (the loaders divide uint8 by 255)."""
    v = x.numpy() * 255.0
    assert np.allclose(v, np.round(v), atol=1e-3)
    return np.round(v).astype(np.uint8)


# ------------------------------------------------------------------- digits

def test_digits_shapes_ranges_and_split_is_a_partition():
    from sklearn.datasets import load_digits

    train, test = data.load("digits", "train"), data.load("digits", "test")
    ref = load_digits()
    for ds in (train, test):
        assert ds.x.dtype == torch.float32 and ds.y.dtype == torch.int64
        assert ds.shape == (1, 8, 8) and ds.num_classes == 10 and ds.name == "digits"
        assert float(ds.x.min()) == 0.0 and float(ds.x.max()) == 1.0
        assert set(ds.y.tolist()) == set(range(10))
    assert len(train) + len(test) == len(ref.target) == 1797
    assert (len(train), len(test)) == (data.info("digits").sizes["train"], data.info("digits").sizes["test"])
    # train and test together are exactly scikit-learn's images (x * 16 recovers the 0..16 ints)
    def rows(ds):
        ints = np.round(ds.x.numpy().reshape(len(ds), -1) * 16).astype(np.int64)
        return collections.Counter((r.tobytes(), int(c)) for r, c in zip(ints, ds.y.numpy()))
    ref_rows = collections.Counter((r.astype(np.int64).tobytes(), int(c))
                                   for r, c in zip(ref.data, ref.target))
    assert rows(train) + rows(test) == ref_rows
    # stratified 80/20: per class round(0.2 * count) in test
    full = np.bincount(ref.target, minlength=10)
    assert test.class_counts().tolist() == [int(np.floor(0.2 * c + 0.5)) for c in full]
    # statistics are the training split's, identical for both splits
    assert train.mean == test.mean
    assert train.mean[0] == pytest.approx(float(train.x.double().mean()), abs=1e-6)
    assert train.std[0] == pytest.approx(float(train.x.double().std(correction=0)), abs=1e-6)
    assert data.load("digits", "test", seed=5).y.tolist() == test.y.tolist()  # split ignores seed


# ------------------------------------------------------------- Fashion-MNIST

@needs_fashion
def test_fashion_mnist_test_split_shape_range_counts():
    d = data.load("fashion-mnist", "test")
    assert d.x.shape == torch.Size([10000, 1, 28, 28])
    assert d.x.dtype == torch.float32 and d.y.dtype == torch.int64
    assert float(d.x.min()) == 0.0 and float(d.x.max()) == 1.0
    assert d.class_counts().tolist() == [1000] * 10
    assert d.classes[0] == "T-shirt/top" and d.classes[9] == "Ankle boot"


@needs_fashion
def test_fashion_mnist_train_counts_and_published_statistics():
    d = data.load("fashion-mnist", "train")
    assert d.x.shape == (60000, 1, 28, 28)
    assert d.class_counts().tolist() == [6000] * 10
    # float32 reductions (torch sums pairwise) are accurate far beyond the 4 decimals stored
    assert d.mean[0] == pytest.approx(float(d.x.mean()), abs=5e-4)
    assert d.std[0] == pytest.approx(float(d.x.std(correction=0)), abs=5e-4)


@needs_fashion
def test_fashion_mnist_matches_torchvision_reader(tmp_path):
    """Independent check of the IDX parser on the real test files."""
    import gzip
    import shutil

    import torchvision

    src = data.locate("fashion-mnist", "test")
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(src / f"{stem}.gz") as fin, open(raw / stem, "wb") as fout:
            shutil.copyfileobj(fin, fout)
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (raw / stem).touch()  # torchvision only checks they exist when train=False
    ref = torchvision.datasets.FashionMNIST(str(tmp_path), train=False, download=False)
    ours = data.load("fashion-mnist", "test")
    assert np.array_equal(_as_uint8(ours.x[:, 0]), ref.data.numpy())
    assert torch.equal(ours.y, ref.targets)


def test_fashion_mnist_search_order(tmp_path, isolated, monkeypatch):
    _no_download(monkeypatch)
    # ./data/FashionMNIST/raw (torchvision layout) is found without root
    in_cwd = fx.write_fashion_mnist(isolated / "data", layout="torchvision", n_test=14, seed=1)
    d = data.load("fashion-mnist", "test")
    assert np.array_equal(_as_uint8(d.x), in_cwd["test"][0])
    assert Path(d.source).resolve() == (isolated / "data" / "FashionMNIST" / "raw").resolve()
    # root comes first, in any of the layouts
    for layout in ("flat", "named", "torchvision"):
        root = tmp_path / f"root-{layout}"
        truth = fx.write_fashion_mnist(root, layout=layout, n_test=11, seed=2)
        d = data.load("fashion-mnist", "test", root=root)
        assert np.array_equal(_as_uint8(d.x), truth["test"][0])
        assert torch.equal(d.y, torch.from_numpy(truth["test"][1]))
    # an empty root falls through to ./data
    assert len(data.load("fashion-mnist", "test", root=tmp_path / "empty")) == 14


@needs_fashion
def test_fashion_mnist_falls_back_to_system_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d = data.load("fashion-mnist", "test", root=tmp_path / "nothing-here", download=False)
    assert len(d) == 10000 and "fashion-mnist" in d.source


def test_idx_reader_gz_and_raw_agree_and_reject_truncation(tmp_path):
    arr = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    a = data._formats.read_idx(fx.write_idx(tmp_path / "a", arr, gz=False))
    b = data._formats.read_idx(fx.write_idx(tmp_path / "b", arr, gz=True))
    assert np.array_equal(a, arr) and np.array_equal(b, arr)
    cut = tmp_path / "cut"
    cut.write_bytes((tmp_path / "a").read_bytes()[:-3])
    with pytest.raises(data.DatasetFormatError, match="cut.*truncated"):
        data._formats.read_idx(cut)
    (tmp_path / "junk").write_bytes(b"hello world")
    with pytest.raises(data.DatasetFormatError, match="not an IDX"):
        data._formats.read_idx(tmp_path / "junk")


def test_truncated_dataset_file_gives_error_naming_it(tmp_path, isolated, monkeypatch):
    _no_download(monkeypatch)
    fx.write_mnist(tmp_path, n_test=5)
    img = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    img.write_bytes(img.read_bytes()[:-100])
    with pytest.raises(data.DatasetFormatError, match="t10k-images-idx3-ubyte"):
        data.load("mnist", "test", root=tmp_path)


# ------------------------------------------------------------------- MNIST

def test_mnist_fixture_matches_truth_and_torchvision(tmp_path, isolated, monkeypatch):
    import torchvision

    truth = fx.write_mnist(tmp_path, n_train=25, n_test=15, seed=3)
    for split in ("train", "test"):
        d = data.load("mnist", split, root=tmp_path)
        x, y = truth[split]
        assert d.x.shape == (len(y), 1, 28, 28) and d.x.dtype == torch.float32
        assert np.array_equal(_as_uint8(d.x), x)
        assert d.y.tolist() == y.tolist()
        assert d.mean == (0.1307,) and d.std == (0.3081,)
        ref = torchvision.datasets.MNIST(str(tmp_path), train=split == "train", download=False)
        assert np.array_equal(_as_uint8(d.x[:, 0]), ref.data.numpy())
        assert torch.equal(d.y, ref.targets)
    # ./data/mnist (gzipped, flat inside the named folder) is found too
    _no_download(monkeypatch)
    t2 = fx.write_mnist_like(isolated / "data" / "mnist", n_test=7, gz=True, seed=4)
    assert np.array_equal(_as_uint8(data.load("mnist", "test").x), t2["test"][0])


# ------------------------------------------------------------------- CIFAR

@pytest.fixture
def trust_torchvision_md5(monkeypatch):
    """torchvision checks the md5 of the real files; fixtures cannot match, so for the
    cross-checks its integrity test is switched off (its parsing is what we compare)."""
    import torchvision.datasets.cifar as tv_cifar
    import torchvision.datasets.stl10 as tv_stl
    import torchvision.datasets.svhn as tv_svhn

    for mod in (tv_cifar, tv_svhn, tv_stl):
        monkeypatch.setattr(mod, "check_integrity", lambda *a, **k: True)


def test_cifar10_fixture_matches_truth_and_torchvision(tmp_path, isolated, trust_torchvision_md5):
    import torchvision

    truth = fx.write_cifar10(tmp_path, per_batch=6, n_test=10, seed=5)
    for split in ("train", "test"):
        d = data.load("cifar10", split, root=tmp_path)
        x, y = truth[split]
        assert d.x.shape == (len(y), 3, 32, 32) and d.shape == (3, 32, 32)
        assert np.array_equal(_as_uint8(d.x), x)  # batches 1..5 concatenated in order
        assert d.y.tolist() == y.tolist()
        assert d.classes == truth["classes"] and d.num_classes == 10
        assert d.mean == (0.4914, 0.4822, 0.4465)
        assert float(d.x.min()) == 0.0 and float(d.x.max()) == 1.0
        ref = torchvision.datasets.CIFAR10(str(tmp_path), train=split == "train", download=False)
        assert np.array_equal(_as_uint8(d.x).transpose(0, 2, 3, 1), ref.data)  # torchvision: HWC
        assert d.y.tolist() == list(ref.targets)
        assert ref.classes == d.classes


def test_cifar10_in_data_folder_and_subset(isolated, monkeypatch):
    _no_download(monkeypatch)
    truth = fx.write_cifar10(isolated / "data", per_batch=10, seed=6)  # all classes per batch
    d = data.load("cifar10", "train", n=20, seed=1)
    assert len(d) == 20 and d.class_counts().tolist() == [2] * 10
    full = data.load("cifar10", "train")
    idx = data.stratified_indices(full.y, 20, seed=1)
    assert torch.equal(d.x, full.x[idx]) and torch.equal(d.y, full.y[idx])
    assert np.array_equal(_as_uint8(full.x), truth["train"][0])


def test_cifar100_fixture_matches_truth_and_torchvision(tmp_path, isolated, trust_torchvision_md5):
    import torchvision

    truth = fx.write_cifar100(tmp_path, n_train=120, n_test=100, seed=7)
    for split in ("train", "test"):
        d = data.load("cifar100", split, root=tmp_path)
        x, y = truth[split]
        assert np.array_equal(_as_uint8(d.x), x) and d.y.tolist() == y.tolist()
        assert d.num_classes == 100 and d.classes == truth["classes"]
        ref = torchvision.datasets.CIFAR100(str(tmp_path), train=split == "train", download=False)
        assert np.array_equal(_as_uint8(d.x).transpose(0, 2, 3, 1), ref.data)
        assert d.y.tolist() == list(ref.targets)


def test_tampered_cifar_pickle_is_refused_without_running_code(tmp_path, isolated):
    import os
    import pickle

    fx.write_cifar10(tmp_path, per_batch=2, n_test=2)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(pickle.dumps({"data": Evil(), "labels": [0]}, protocol=2))
    with pytest.raises(data.DatasetFormatError, match="refusing to unpickle"):
        data.load("cifar10", "test", root=tmp_path, download=False)
    assert not marker.exists()
    pickle.loads(batch.read_bytes())  # the payload is live: a plain unpickler runs it
    assert marker.is_dir()


# -------------------------------------------------------------- SVHN, STL-10

def test_svhn_fixture_matches_truth_and_torchvision(tmp_path, isolated, trust_torchvision_md5):
    import torchvision

    truth = fx.write_svhn(tmp_path / "svhn", seed=8)
    for split in ("train", "test"):
        d = data.load("svhn", split, root=tmp_path)
        x, y = truth[split]
        assert d.shape == (3, 32, 32)
        assert np.array_equal(_as_uint8(d.x), x)
        assert d.y.tolist() == y.tolist() and 0 in d.y.tolist()  # stored 10 -> 0
        ref = torchvision.datasets.SVHN(str(tmp_path / "svhn"), split=split, download=False)
        assert np.array_equal(_as_uint8(d.x), ref.data) and d.y.tolist() == ref.labels.tolist()


def test_stl10_fixture_matches_truth_and_torchvision(tmp_path, isolated, trust_torchvision_md5):
    import torchvision

    truth = fx.write_stl10(tmp_path, n_train=6, n_test=4, seed=9)
    for split in ("train", "test"):
        d = data.load("stl10", split, root=tmp_path)
        x, y = truth[split]
        assert d.shape == (3, 96, 96) and np.array_equal(_as_uint8(d.x), x)
        assert d.y.tolist() == y.tolist() and d.classes == truth["classes"]
        ref = torchvision.datasets.STL10(str(tmp_path), split=split, download=False)
        assert np.array_equal(_as_uint8(d.x), ref.data) and d.y.tolist() == ref.labels.tolist()


# ------------------------------------------------------- missing data, download

def test_missing_dataset_error_names_folder_and_command(tmp_path, isolated):
    with pytest.raises(FileNotFoundError) as err:
        data.load("cifar10", "test", root=tmp_path / "mine", download=False)
    msg = str(err.value)
    assert str(tmp_path / "mine") in msg and "cifar-10-batches-py" in msg
    assert "torchvision.datasets.CIFAR10('data', download=True)" in msg
    assert "data/README.md" in msg
    assert not data.available("cifar10", tmp_path)
    assert data.locate("cifar10", "test", root=tmp_path) is None


def test_offline_download_failure_is_clear_and_leaves_no_empty_folders(tmp_path, isolated, monkeypatch):
    import torchvision.datasets as tvd

    calls = []

    def offline(root, *args, **kwargs):
        calls.append(root)
        Path(root).mkdir(parents=True, exist_ok=True)  # as torchvision does before fetching
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(tvd, "SVHN", offline)
    target = tmp_path / "new" / "dir"
    with pytest.raises(FileNotFoundError, match=r"(?s)download into .*failed.*URLError.*SVHN\('data/svhn'"):
        data.load("svhn", "test", root=target)
    assert calls == [str(target / "svhn")]
    assert not (tmp_path / "new").exists()
    (isolated / "data" / "mine").mkdir(parents=True)  # folders that were there stay
    with pytest.raises(FileNotFoundError):
        data.load("svhn", "train")
    assert sorted(p.name for p in (isolated / "data").iterdir()) == ["mine"]


def test_download_path_reads_what_torchvision_fetched(isolated, monkeypatch):
    import torchvision.datasets as tvd

    written = {}

    def fake_cifar10(root, train=True, download=False, **kw):
        assert download is True
        written.update(fx.write_cifar10(root, per_batch=3, n_test=5, seed=10))

    monkeypatch.setattr(tvd, "CIFAR10", fake_cifar10)
    assert not data.available("cifar10")
    d = data.load("cifar10", "test")  # default target ./data
    assert np.array_equal(_as_uint8(d.x), written["test"][0])
    assert data.available("cifar10") and (isolated / "data" / "cifar-10-batches-py").is_dir()


# ------------------------------------------------------- stratified subsets

def test_subset_is_stratified_and_reproducible():
    full = data.load("digits", "train")
    a = data.load("digits", "train", n=100, seed=3)
    assert a.class_counts().tolist() == [10] * 10
    b = data.load("digits", "train", n=100, seed=3)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    c = data.load("digits", "train", n=100, seed=4)
    assert not torch.equal(a.x, c.x)
    idx = data.stratified_indices(full.y, 100, seed=3)
    assert torch.equal(idx, torch.sort(idx).values) and len(set(idx.tolist())) == 100
    assert torch.equal(a.x, full.x[idx])
    odd = data.load("digits", "train", n=105, seed=0).class_counts()
    assert int(odd.sum()) == 105 and int(odd.max() - odd.min()) == 1
    assert a.mean == full.mean and a.classes == full.classes
    assert len(data.load("digits", "test", n=len(data.load("digits", "test")))) == 359


def test_held_out_is_exactly_what_the_sample_leaves_out():
    full = data.load("digits", "test")
    sample, rest = full.sample(200, seed=5), full.held_out(200, seed=5)
    assert len(sample) + len(rest) == len(full)
    idx = data.stratified_indices(full.y, 200, seed=5)
    mask = torch.ones(len(full), dtype=torch.bool)
    mask[idx] = False
    assert torch.equal(rest.x, full.x[mask]) and torch.equal(rest.y, full.y[mask])
    assert not torch.equal(full.held_out(200, seed=6).x, rest.x)
    with pytest.raises(ValueError, match="none is held out"):
        full.held_out(len(full))


def test_stratified_indices_water_fills_small_classes():
    y = torch.tensor([0] * 2 + [1] * 50 + [2] * 50)
    idx = data.stratified_indices(y, 30, seed=0)
    assert torch.bincount(y[idx], minlength=3).tolist() == [2, 14, 14]
    idx = data.stratified_indices(y, 31, seed=0)
    assert sorted(torch.bincount(y[idx], minlength=3).tolist()) == [2, 14, 15]
    assert data.stratified_indices(y, 102, seed=1).tolist() == list(range(102))
    seeds = {tuple(data.stratified_indices(y, 10, seed=s).tolist()) for s in range(5)}
    assert len(seeds) == 5


# ------------------------------------------------------------------- Dataset

def test_dataset_container_api():
    x = torch.rand(6, 1, 4, 4)
    y = torch.tensor([0, 1, 0, 1, 0, 1], dtype=torch.int32)
    ds = data.Dataset(x, y, ("a", "b"))
    assert ds.y.dtype == torch.int64 and ds.classes == ["a", "b"] and len(ds) == 6
    assert ds.mean[0] == pytest.approx(float(x.mean()), abs=1e-6)
    xi, yi = ds[2]
    assert torch.equal(xi, x[2]) and int(yi) == 0
    sub = ds.subset([5, 0])
    assert torch.equal(sub.x, x[[5, 0]]) and sub.y.tolist() == [1, 0] and sub.mean == ds.mean
    mask = ds.subset(ds.y == 1)
    assert mask.y.tolist() == [1, 1, 1]
    assert ds.to("cpu").device == torch.device("cpu")
    assert "n=6" in repr(ds)


# ------------------------------------------------------------------- loader

def _indexed(n: int) -> data.Dataset:
    """Each example's label is its index, so batches reveal the order."""
    x = (torch.arange(n, dtype=torch.float32) / n).reshape(n, 1, 1, 1).expand(n, 1, 4, 4).clone()
    return data.Dataset(x, torch.arange(n), [str(i) for i in range(n)])


def _epoch(loader):
    return [(xb.clone(), yb.clone()) for xb, yb in loader]


def test_loader_covers_each_example_once_per_epoch():
    ds = _indexed(103)
    loader = data.TensorLoader(ds, batch_size=10, seed=0)
    assert len(loader) == 11
    batches = _epoch(loader)
    assert [len(y) for _, y in batches] == [10] * 10 + [3]
    order = torch.cat([y for _, y in batches])
    assert sorted(order.tolist()) == list(range(103))
    assert order.tolist() != list(range(103))  # shuffled
    for xb, yb in batches:
        assert torch.equal(xb, ds.x[yb])  # images travel with their labels
    plain = data.TensorLoader(ds, batch_size=10, shuffle=False)
    assert torch.cat([y for _, y in plain]).tolist() == list(range(103))


def test_loader_drop_last():
    loader = data.TensorLoader(_indexed(103), batch_size=10, drop_last=True, seed=1)
    assert len(loader) == 10
    sizes, seen = [], []
    for _, y in loader:
        sizes.append(len(y))
        seen += y.tolist()
    assert sizes == [10] * 10 and len(set(seen)) == 100


def test_loader_is_deterministic_and_set_epoch_is_history_free():
    ds = _indexed(50)
    kw = dict(batch_size=8, augment=("crop", "flip"), seed=7)
    a, b = data.TensorLoader(ds, **kw), data.TensorLoader(ds, **kw)
    ea = [_epoch(a) for _ in range(3)]
    eb = [_epoch(b) for _ in range(3)]
    for e1, e2 in zip(ea, eb):
        assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(e1, e2))
    assert torch.cat([y for _, y in ea[0]]).tolist() != torch.cat([y for _, y in ea[1]]).tolist()
    fresh = data.TensorLoader(ds, **kw)
    fresh.set_epoch(2)
    assert fresh.epoch == 2
    again = _epoch(fresh)
    assert all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(again, ea[2]))
    assert fresh.epoch == 3
    other = _epoch(data.TensorLoader(ds, **{**kw, "seed": 8}))
    assert torch.cat([y for _, y in other]).tolist() != torch.cat([y for _, y in ea[0]]).tolist()


def test_loader_augmentation_keeps_range_and_shape_and_callable_gets_generator():
    ds = data.load("digits", "train", n=64)
    loader = data.TensorLoader(ds, batch_size=16, augment={"crop": 2, "flip": 1.0}, seed=0)
    plain = data.TensorLoader(ds, batch_size=16, seed=0)
    n_changed = 0
    for (xb, yb), (xp, yp) in zip(loader, plain):
        assert torch.equal(yb, yp)  # augmentation does not change the order
        assert xb.shape == (len(yb), 1, 8, 8) and xb.dtype == torch.float32
        assert float(xb.min()) >= 0.0 and float(xb.max()) <= 1.0
        n_changed += int((xb != xp).flatten(1).any(1).sum())
    assert n_changed == len(ds)  # every image was flipped (p=1) and/or shifted
    seen = []

    def double_then_clip(x, generator):
        assert isinstance(generator, torch.Generator)
        seen.append(len(x))
        return (x * 2).clamp(0, 1)

    out = _epoch(data.TensorLoader(ds, batch_size=16, augment=double_then_clip, shuffle=False))
    assert seen == [16] * 4
    assert torch.equal(out[0][0], (ds.x[:16] * 2).clamp(0, 1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_loader_on_cuda_matches_cpu_batches():
    ds = _indexed(40)
    cpu = _epoch(data.TensorLoader(ds, batch_size=8, augment=("crop", "flip"), seed=3))
    gpu = _epoch(data.TensorLoader(ds, batch_size=8, augment=("crop", "flip"), seed=3, device="cuda"))
    for (xc, yc), (xg, yg) in zip(cpu, gpu):
        assert xg.device.type == "cuda"
        assert torch.equal(xc, xg.cpu()) and torch.equal(yc, yg.cpu())


# ------------------------------------------------------------- augmentation

def _shift(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Content moved down by dy and right by dx, zeros where nothing moved in."""
    out = torch.zeros_like(img)
    h, w = img.shape[-2:]
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        img[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def test_random_crop_shifts_content_within_padding():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 2, 7, 9, generator=g) * 0.9 + 0.05  # no zeros inside the image
    p = 2
    out = data.random_crop(x, p, generator=1)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    shifts = []
    for i in range(len(x)):
        match = [(dy, dx) for dy in range(-p, p + 1) for dx in range(-p, p + 1)
                 if torch.equal(out[i], _shift(x[i], dy, dx))]
        assert len(match) == 1, f"image {i} is not a shift of its input"
        shifts.append(match[0])
    assert len(set(shifts)) > 10  # offsets really vary
    assert torch.equal(data.random_crop(x, p, generator=1), out)  # same seed, same crops
    assert torch.equal(data.random_crop(x, 0, generator=0), x)


def test_hflip_reverses_width():
    x = torch.rand(200, 3, 5, 6, generator=torch.Generator().manual_seed(1))
    assert torch.equal(data.hflip(x, p=1.0, generator=0), x[..., torch.arange(5, -1, -1)])
    assert torch.equal(data.hflip(x, p=0.0, generator=0), x)
    out = data.hflip(x, p=0.5, generator=torch.Generator().manual_seed(2))
    flipped = torch.tensor([torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x)])
    kept = torch.tensor([torch.equal(o, xi) for o, xi in zip(out, x)])
    assert bool((flipped ^ kept).all())
    assert 70 <= int(flipped.sum()) <= 130


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(name="cifar11"), ValueError, r"name must be one of \['digits', 'fashion-mnist'"),
    (dict(name=3), TypeError, "name must be a string"),
    (dict(name="digits", split="val"), ValueError, "split must be one of"),
    (dict(name="digits", n=0), ValueError, "n must be"),
    (dict(name="digits", n=-5), ValueError, "n must be"),
    (dict(name="digits", n=2.5), TypeError, "n must be an integer"),
    (dict(name="digits", n=10**6), ValueError, r"n must be in \[1, 1438\]"),
    (dict(name="digits", seed=-1), ValueError, "seed must be"),
    (dict(name="digits", seed="a"), TypeError, "seed must be an integer"),
    (dict(name="digits", root=5), TypeError, "root must be a folder path"),
    (dict(name="digits", root=""), ValueError, "root must be a folder path"),
    (dict(name="digits", download="yes"), TypeError, "download must be"),
])
def test_load_rejects_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        data.load(**kwargs)


def test_name_aliases():
    assert data.info("Fashion_MNIST").name == "fashion-mnist"
    assert data.info("CIFAR-10").name == "cifar10"
    assert data.available("digits") and data.list_datasets() == list(data.NAMES)


def test_dataset_and_loader_reject_bad_input():
    x, y = torch.rand(4, 1, 3, 3), torch.tensor([0, 1, 0, 1])
    bad = [
        (lambda: data.Dataset(x * 2, y, ["a", "b"]), ValueError, r"\[0, 1\]"),
        (lambda: data.Dataset(x[0], y, ["a", "b"]), ValueError, "shape"),
        (lambda: data.Dataset(x.long(), y, ["a", "b"]), TypeError, "floating"),
        (lambda: data.Dataset(x, y[:3], ["a", "b"]), ValueError, "y must have shape"),
        (lambda: data.Dataset(x, y, ["a"]), ValueError, "only 1 classes"),
        (lambda: data.Dataset(x, y.float(), ["a", "b"]), TypeError, "integer"),
        (lambda: data.Dataset(x, y, "ab"), TypeError, "classes"),
        (lambda: data.Dataset(x, y, ["a", "b"], std=(0.0,)), ValueError, "std must be > 0"),
        (lambda: data.Dataset(x, y, ["a", "b"], mean=(0.1, 0.2)), ValueError, "one value per channel"),
        (lambda: data.Dataset(x, y, ["a", "b"]).subset([4]), ValueError, r"indices must be in \[0, 3\]"),
        (lambda: data.Dataset(x, y, ["a", "b"]).subset([]), ValueError, "selects no"),
        (lambda: data.Dataset(x, y, ["a", "b"]).subset([0.5]), TypeError, "integers"),
        (lambda: data.Dataset(x, y, ["a", "b"]).subset(torch.ones(3, dtype=torch.bool)), ValueError, "mask"),
        (lambda: data.stratified_indices(y, 5), ValueError, r"n must be in \[1, 4\]"),
        (lambda: data.stratified_indices([0, 1], 1), TypeError, "torch.Tensor"),
    ]
    ds = data.Dataset(x, y, ["a", "b"])
    bad += [
        (lambda: data.TensorLoader(x), TypeError, "Dataset"),
        (lambda: data.TensorLoader(ds, batch_size=0), ValueError, "batch_size"),
        (lambda: data.TensorLoader(ds, batch_size="8"), TypeError, "batch_size"),
        (lambda: data.TensorLoader(ds, shuffle="yes"), TypeError, "shuffle"),
        (lambda: data.TensorLoader(ds, batch_size=8, drop_last=True), ValueError, "no batch"),
        (lambda: data.TensorLoader(ds, augment="rotate"), ValueError, r"valid names: \['crop', 'flip'\]"),
        (lambda: data.TensorLoader(ds, augment=5), TypeError, "augment"),
        (lambda: data.TensorLoader(ds, augment={"crop": -1}), ValueError, "padding"),
        (lambda: data.TensorLoader(ds, augment={"flip": 2.0}), ValueError, "<= 1"),
        (lambda: data.TensorLoader(ds, seed=-1), ValueError, "seed"),
        (lambda: data.TensorLoader(ds, device=3.5), TypeError, "device"),
        (lambda: data.TensorLoader(ds).set_epoch(-1), ValueError, "epoch"),
        (lambda: data.random_crop(x, -1, generator=0), ValueError, "padding"),
        (lambda: data.random_crop(x, 1, generator=None), TypeError, "generator"),
        (lambda: data.random_crop(x + 1, 1, generator=0), ValueError, r"\[0, 1\]"),
        (lambda: data.hflip(x, p=1.5, generator=0), ValueError, "p must be"),
        (lambda: data.hflip(x[0], generator=0), ValueError, "shape"),
    ]
    for fn, exc, match in bad:
        with pytest.raises(exc, match=match):
            fn()


def test_loader_rejects_callable_that_changes_batch_size():
    ds = data.load("digits", "test", n=20)
    loader = data.TensorLoader(ds, batch_size=10, augment=lambda x, g: x[:1])
    with pytest.raises(TypeError, match="augment callable"):
        next(iter(loader))


# ----------------------------------------------------------------------- CLI

def test_cli_data_list(tmp_path, isolated, capsys):
    fx.write_cifar10(tmp_path, per_batch=2, n_test=2)
    assert cli_main(["data", "list", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    assert set(data.NAMES) <= set(lines)
    assert lines["digits"].split()[1] == "yes" and "1x8x8" in lines["digits"]
    assert lines["cifar10"].split()[1] == "yes" and str(tmp_path) in lines["cifar10"]
    assert lines["mnist"].split()[1] == "no"
    assert cli_main(["data", "list", "--json", "--root", str(tmp_path)]) == 0
    records = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert records["cifar10"]["available"] and records["cifar10"]["shape"] == [3, 32, 32]
    assert not records["svhn"]["available"] and records["svhn"]["test"] == 26032


def test_cli_data_fetch_offline_reports_error(tmp_path, isolated, monkeypatch, capsys):
    import torchvision.datasets as tvd

    def offline(*a, **k):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(tvd, "MNIST", offline)
    assert cli_main(["data", "fetch", "mnist", "--root", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "MNIST('data', download=True)" in err and "MNIST/raw" in err
