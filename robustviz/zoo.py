"""The teaching model zoo: trained, evaluated, checksummed models shipped with robustviz.

Each zoo entry is an ordinary run directory (``config.json``, ``weights.safetensors``,
``metrics.jsonl``) plus ``eval.json``, the evaluation record written by
``scripts/train_zoo.py``: clean accuracy, FGSM, PGD-20 (eps 0.1, step 0.01, uniform random
start), the adaptive attack for models whose test-time prediction is not differentiable,
AutoAttack (standard) on a smaller subset, the test subset they were measured on, and how
long training took on which machine. ``MANIFEST.json`` at the zoo's root holds the sha256 of
every file; :func:`load` checks it, so a changed, truncated or swapped file is refused with
an error naming it (weights are safetensors and are never unpickled either way).

::

    import robustviz as rv
    rv.zoo.list()                          # ['ascl_global', 'ascl_leaked', 'cl_emb1', ...]
    model = rv.zoo.load("pgd_at")          # TinyCNN in eval mode, Normalize first
    rv.zoo.info("pgd_at")["eval"]["pgd20"]  # recorded PGD-20 accuracy
    test = rv.zoo.data(split="test", n=1000)

The zoo lives in ``data/zoo/`` of the source tree and travels in the wheel as the package
data folder ``robustviz/zoo_data/`` (``setup.py``); set ``ROBUSTVIZ_ZOO`` to use another
folder.
"""
from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import os
from pathlib import Path

# where the zoo lies and its read-only guard: a leaf module that robustviz.runs uses too
from robustviz._zoo_folder import MANIFEST, ZOO_MAINTENANCE_ENV, in_zoo, root
from robustviz._zoo_folder import ZOO_ENV as _ENV

__all__ = ["list", "info", "load", "data", "verify", "root", "in_zoo", "datasets", "default_dataset",
           "table", "run_dir", "eval_subset", "pack_bits", "unpack_bits", "maintenance", "ZooError",
           "ZooIntegrityError", "MANIFEST", "DEFAULT_DATASET"]

EVAL = "eval.json"
DEFAULT_DATASET = "fashion-mnist"

#: What each entry is, for tables and notebooks (the zoo's configs hold the exact recipes).
DESCRIPTIONS = {
    "nat": "natural training (cross-entropy on clean images)",
    "fgsm_rs": "fast adversarial training: FGSM from a uniform random start, step 1.25 eps "
               "(Wong, Rice & Kolter, ICLR 2020)",
    "pgd_at": "PGD adversarial training (Madry et al., ICLR 2018)",
    "trades": "TRADES, beta 6 (Zhang et al., ICML 2019)",
    "mart": "MART, beta 5 (Wang et al., ICLR 2020)",
    "cl_emb1": "PGD-AT + contrastive distance in embedding space at the shallowest tap "
               "(conv1); Zhang's embedding-space contrastive loss, layer ablation",
    "cl_emb5": "PGD-AT + contrastive distance in embedding space at the deepest tap "
               "(penultimate)",
    "ascl_global": "ASCL with global selection + TRADES (Bui et al., arXiv:2101.10027, 2021)",
    "ascl_leaked": "ASCL with Leaked local selection + TRADES (Bui et al., arXiv:2101.10027, 2021)",
    "pgd_at_overfit": "PGD-AT on 500 training images for 20 epochs, learning rate cut 10x at "
                      "epoch 10: the robust-overfitting run of notebook 11 (Rice, Wong & Kolter, "
                      "ICML 2020); its per-epoch records are the lesson, its final weights the "
                      "over-trained end of the run",
    "trades_ancra": "TRADES-ANCRA: asymmetric negative contrast and reverse attention "
                    "(Zhou et al., arXiv 2023)",
    "simclr_slf": "SimCLR contrastive pretraining without labels or attacks (Chen et al., "
                  "ICML 2020), then a linear head on the frozen encoder (SLF): the "
                  "non-robust reference of robust pretraining",
    "advcl_slf": "AdvCL robust contrastive pretraining without labels (Fan et al., NeurIPS "
                 "2021), then a linear head on the frozen encoder (SLF)",
    "ascl_pretrain_slf": "adversarial supervised contrastive pretraining (Machine Learning, "
                         "2023), then a linear head on the frozen encoder (SLF)",
}


class ZooError(LookupError):
    """An unknown zoo entry or a missing zoo."""


class ZooIntegrityError(ValueError):
    """A zoo file does not match the manifest (changed, truncated or swapped)."""


def _manifest(base: Path | None = None) -> dict:
    base = root() if base is None else base
    path = base / MANIFEST
    if not path.is_file():
        raise ZooError(f"no model zoo at {base} (missing {MANIFEST}); it ships with the "
                       f"source tree in data/zoo/, or set {_ENV} to its folder")
    try:
        man = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ZooIntegrityError(f"{path} is not valid JSON: {err}") from None
    _check_manifest(man, path)
    return man


def _check_manifest(man, path: Path) -> None:
    """A manifest is ``{"files": {"<dataset>/<name>/<file>": {"sha256": 64 hex digits,
    "bytes": int}}}``; anything else is refused naming the manifest and the entry."""
    files = man.get("files") if isinstance(man, dict) else None
    if not isinstance(files, dict):
        raise ZooIntegrityError(f"{path} is malformed: it must hold a 'files' mapping of "
                                f"'<dataset>/<name>/<file>' to its sha256 and bytes")
    for rel, rec in files.items():
        parts = rel.split("/")
        ok_path = len(parts) == 3 and all(p and p not in (".", "..") and "\\" not in p
                                          for p in parts)
        ok_rec = (isinstance(rec, dict) and isinstance(rec.get("sha256"), str)
                  and len(rec["sha256"]) == 64
                  and all(c in "0123456789abcdef" for c in rec["sha256"])
                  and isinstance(rec.get("bytes"), int) and not isinstance(rec["bytes"], bool)
                  and rec["bytes"] >= 0)
        if not (ok_path and ok_rec):
            raise ZooIntegrityError(f"{path} is malformed at entry {rel!r}: each entry is "
                                    f"'<dataset>/<name>/<file>' -> {{'sha256': 64 hex digits, "
                                    f"'bytes': int}}, got {rec!r}"[:400])


@contextlib.contextmanager
def maintenance():
    """Allow writes into the zoo folder inside this block (and in the processes it starts).

    For the zoo's maintainers only (``scripts/train_zoo.py``, ``benchmarks/autoattack.py
    --write-zoo``); everywhere else the zoo is read-only (:func:`robustviz.runs.refuse_zoo`).
    Rewrite the manifest (:func:`write_manifest`) before leaving the block.
    """
    old = os.environ.get(ZOO_MAINTENANCE_ENV)
    os.environ[ZOO_MAINTENANCE_ENV] = "1"
    try:
        yield root()
    finally:
        if old is None:
            os.environ.pop(ZOO_MAINTENANCE_ENV, None)
        else:
            os.environ[ZOO_MAINTENANCE_ENV] = old


def datasets() -> list[str]:
    """Data sets that have zoo models."""
    files = _manifest()["files"]
    return sorted({k.split("/")[0] for k in files})


def default_dataset() -> str:
    """Fashion-MNIST where its files are on this machine, else scikit-learn's ``digits``."""
    from robustviz import data as _data

    return DEFAULT_DATASET if _data.available(DEFAULT_DATASET) else "digits"


def list(dataset: str = DEFAULT_DATASET) -> builtins.list[str]:  # noqa: A001 - public name
    """Names of the zoo models of ``dataset``, sorted."""
    files = _manifest()["files"]
    names = sorted({k.split("/")[1] for k in files if k.split("/")[0] == dataset})
    if not names:
        raise ZooError(f"no zoo models for dataset {dataset!r}; datasets with models: {datasets()}")
    return names


def run_dir(name: str, dataset: str = DEFAULT_DATASET) -> Path:
    """The run directory of a zoo model (after checking the name)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    names = list(dataset)
    if name not in names:
        raise ZooError(f"no zoo model {name!r} for {dataset}; available: {', '.join(names)}")
    return root() / dataset / name


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(name: str | None = None, dataset: str | None = None) -> int:
    """Check zoo files against the manifest's sha256 and sizes; return how many were checked.

    ``name`` and ``dataset`` restrict the check (``dataset`` alone: all its models; neither:
    the whole zoo). Raises :class:`ZooIntegrityError` naming the first file that is missing,
    truncated or changed.
    """
    base = root()
    files = _manifest(base)["files"]
    if name is not None:
        prefix = f"{dataset or DEFAULT_DATASET}/{name}/"
        run_dir(name, dataset or DEFAULT_DATASET)
    elif dataset is not None:
        prefix = f"{dataset}/"
    else:
        prefix = ""
    # every file a load may read must be listed: a file present but not in the manifest
    # (a weights file whose entry was deleted) would otherwise load unchecked
    folders = {rel.rsplit("/", 1)[0] for rel in files if rel.startswith(prefix)}
    if name is not None:
        folders.add(prefix.rstrip("/"))
    for folder in sorted(folders):
        if not (base / folder).is_dir():
            continue
        for path in sorted((base / folder).iterdir()):
            rel = f"{folder}/{path.name}"
            if rel not in files and not path.name.startswith("."):
                raise ZooIntegrityError(f"zoo file {path} is not listed in {base / MANIFEST}: "
                                        f"an unlisted file cannot be checked, so the model is "
                                        f"refused (restore the manifest entry or remove the file)")
    if name is not None:
        for required in ("config.json", "weights.safetensors"):
            if f"{prefix}{required}" not in files:
                raise ZooIntegrityError(f"zoo model {prefix.rstrip('/')} has no {required} "
                                        f"entry in {base / MANIFEST}; the model is refused")
    checked = 0
    for rel, rec in sorted(files.items()):
        if not rel.startswith(prefix):
            continue
        path = base / rel
        if not path.is_file():
            raise ZooIntegrityError(f"zoo file {path} is missing (listed in {MANIFEST})")
        size = path.stat().st_size
        if size != rec["bytes"]:
            raise ZooIntegrityError(f"zoo file {path} has {size} bytes, the manifest says "
                                    f"{rec['bytes']} (truncated or replaced?)")
        digest = _sha256(path)
        if digest != rec["sha256"]:
            raise ZooIntegrityError(f"zoo file {path} does not match its sha256 in {MANIFEST} "
                                    f"(changed or swapped): {digest[:12]}... != {rec['sha256'][:12]}...")
        checked += 1
    if prefix and not checked:
        raise ZooError(f"no zoo files under {prefix!r}")
    return checked


def write_manifest(base: str | os.PathLike | None = None) -> Path:
    """Rewrite ``MANIFEST.json`` from the files under the zoo (what ``train_zoo.py`` calls
    after training; never needed by a user)."""
    from robustviz.runs import atomic_write_text

    base = Path(base) if base is not None else root()
    files = {}
    for path in sorted(base.rglob("*")):
        if path.is_file() and path.name != MANIFEST and not path.name.startswith("."):
            rel = path.relative_to(base).as_posix()
            if rel.count("/") != 2:
                continue  # only <dataset>/<name>/<file>
            files[rel] = {"sha256": _sha256(path), "bytes": path.stat().st_size}
    with maintenance():
        atomic_write_text(base / MANIFEST, json.dumps({"files": files}, indent=1, sort_keys=True) + "\n")
    return base / MANIFEST


def info(name: str, dataset: str = DEFAULT_DATASET) -> dict:
    """What the zoo records about a model, its files checked against the manifest first
    (a record is trusted only when it matches, like the weights :func:`load` reads).

    Returns
    -------
    dict
        ``name``, ``dataset``, ``path``, ``description``, ``config`` (the run's
        config.json), ``eval`` (the evaluation record: accuracies in [0, 1] under
        ``clean``, ``fgsm``, ``pgd20``, ``adaptive`` (or None), ``autoattack``, the
        subsets, eps and attack settings), ``train_seconds`` and ``device`` (where it was
        trained), ``epochs`` (the per-epoch metric lines).
    """
    from robustviz import runs

    path = run_dir(name, dataset)
    verify(name, dataset)
    cfg = runs.load_config(path)
    rec_path = path / EVAL
    record = json.loads(rec_path.read_text()) if rec_path.is_file() else {}
    return {"name": name, "dataset": dataset, "path": str(path),
            "description": DESCRIPTIONS.get(name, cfg.get("defense", {}).get("name", "")),
            "config": cfg, "eval": record.get("eval", {}),
            "train_seconds": record.get("train_seconds"), "device": record.get("device"),
            "epochs": runs.read_metrics(path, kind="epoch")}


def load(name: str, dataset: str = DEFAULT_DATASET, *, device="cpu", verify_files: bool = True):
    """The zoo model ``name`` of ``dataset`` in eval mode, its files checked against the
    manifest first (``verify_files=False`` skips the hash check)."""
    from robustviz import runs

    path = run_dir(name, dataset)
    if verify_files:
        verify(name, dataset)
    return runs.load_run(path, device=device).model.eval()


def data(dataset: str = DEFAULT_DATASET, split: str = "test", n: int | None = None, *, seed: int = 0):
    """The data set a zoo's models were trained on (``n``: a class-stratified subset)."""
    from robustviz import data as _data

    return _data.load(dataset, split, n=n, seed=seed)


def eval_subset(dataset: str, n: int, *, seed: int = 0):
    """The fixed test subset of the evaluation records: ``n`` class-stratified test images
    drawn with ``seed`` (the whole test split when ``n`` covers it)."""
    from robustviz import data as _data

    test = _data.load(dataset, "test")
    return test if n >= len(test) else test.sample(n, seed=seed)


def pack_bits(mask) -> str:
    """A boolean vector as hex, its bits packed big-endian (the zoo's check records keep
    which test images a model got right this way); :func:`unpack_bits` inverts it."""
    import numpy as np

    return np.packbits(np.asarray(mask, dtype=bool)).tobytes().hex()


def unpack_bits(text: str, n: int):
    """The first ``n`` booleans packed by :func:`pack_bits`, as a bool tensor."""
    import numpy as np
    import torch

    bits = np.unpackbits(np.frombuffer(bytes.fromhex(text), dtype=np.uint8))
    if len(bits) < n:
        raise ValueError(f"{len(text)} hex digits hold {len(bits)} bits, fewer than the {n} asked for")
    return torch.from_numpy(bits[:n].astype(bool))


def table(dataset: str = DEFAULT_DATASET) -> str:
    """Plain-text table of the zoo's evaluation records (accuracies in percent)."""
    rows = []
    for name in list(dataset):
        inf = info(name, dataset)
        ev = inf["eval"]

        def pct(key):
            v = ev.get(key)
            mark = ""
            if isinstance(v, dict):
                mark = "" if aa_reference(v) or v.get("acc") is None else "*"
                v = v.get("acc")
            return "-" if v is None else f"{100 * v:.1f}{mark}"

        size = sum(p.stat().st_size for p in Path(inf["path"]).iterdir() if p.is_file())
        secs = inf["train_seconds"]
        rows.append([name, pct("clean"), pct("fgsm"), pct("pgd20"), pct("adaptive"), pct("autoattack"),
                     f"{size / 1e6:.2f}", "-" if secs is None else f"{secs / 60:.1f}"])
    head = ["model", "clean", "FGSM", "PGD-20", "adaptive", "AutoAttack", "MB", "train min"]
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                              for i, (c, w) in enumerate(zip(r, widths)))
    evs = [info(m, dataset)["eval"] for m in list(dataset)]
    aa_n = sorted({e.get("autoattack", {}).get("n") for e in evs} - {None})
    title = (f"zoo: {dataset}, accuracy (%) at eps {evs[0].get('eps', '?')} "
             f"on {evs[0].get('n', '?')} test images; PGD-20 step {evs[0].get('pgd', {}).get('step_size', '?')}, "
             f"uniform start; AutoAttack standard (its authors' settings) on the first "
             f"{'/'.join(map(str, aa_n))}")
    lines = [title, fmt(head), "-" * len(fmt(head)), *[fmt(r) for r in rows]]
    if any(r[5].endswith("*") for r in rows):
        lines.append("* measured with torchattacks' own AutoAttack (10 iterations per attack, a "
                     "rescaled Square schedule), not yet re-measured at the authors' settings")
    return "\n".join(lines)


def aa_reference(record: dict) -> bool:
    """Whether an AutoAttack record was measured at its authors' settings (robustviz's
    AutoAttack since the cross-check against their code), not torchattacks' own 10-iteration
    ``AutoAttack``."""
    return "reference settings" in str(record.get("backend", ""))
