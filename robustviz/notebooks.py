"""The notebooks' course workflow: paired sources, stripped notebooks, student editions.

The source of truth of every notebook is a jupytext *percent-format* ``.py`` file
(``notebooks/NN_name.py``, reviewable as text); next to it sits the paired ``.ipynb``
with no outputs, which is what JupyterLab, Voila and the test suite open.
``notebooks/jupytext.toml`` declares the pairing, so JupyterLab (with jupytext) saves
both files together::

    robustviz notebooks sync                  # rewrite every .ipynb from its .py, stripped
    robustviz notebooks check                 # exit 1 when a pair differs or holds outputs
    robustviz notebooks student handout/      # copies without the cells tagged "solution"

Exercises keep their solutions in code cells tagged ``solution``
(``# %% tags=["solution"]`` in the ``.py``); the student edition drops them with
nbconvert's ``TagRemovePreprocessor`` and clears every output.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["pairs", "sync", "check", "student_edition", "SOLUTION_TAG", "setup", "Setup",
           "PAPER_RUNS", "expect", "exercise", "Verdict", "ClaimError", "STRICT_ENV"]

#: Cells with this tag hold exercise solutions; the student edition removes them.
SOLUTION_TAG = "solution"


def _jupytext():
    try:
        import jupytext
    except ImportError as err:  # pragma: no cover - part of the notebooks extra
        raise ImportError("the notebook workflow needs jupytext: "
                          "pip install 'robustviz[notebooks]'") from err
    return jupytext


def _nbformat():
    try:
        import nbformat
    except ImportError as err:  # pragma: no cover - part of the notebooks extra
        raise ImportError("the notebook workflow needs nbformat: "
                          "pip install 'robustviz[notebooks]'") from err
    return nbformat


def _folder(path) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"notebook folder {str(folder)!r} does not exist")
    return folder


def pairs(folder: str | os.PathLike = "notebooks") -> list[tuple[Path, Path]]:
    """The ``(source .py, notebook .ipynb)`` pairs of ``folder``, sorted by name.

    A notebook is a file named ``NN_*.py`` or ``NN_*.ipynb`` (two digits first); helper
    modules (``_*.py``) are not notebooks. Either side may be missing on disk.
    """
    folder = _folder(folder)
    stems = {p.stem for p in folder.glob("[0-9][0-9]_*.py")}
    stems |= {p.stem for p in folder.glob("[0-9][0-9]_*.ipynb")}
    return [(folder / f"{s}.py", folder / f"{s}.ipynb") for s in sorted(stems)]


def _stripped(nb):
    """``nb`` without outputs, execution counts or per-run metadata (in place); cell ids
    derive from the cell's source, so re-syncing an unchanged cell changes nothing."""
    import hashlib

    seen: dict[str, int] = {}
    for cell in nb.cells:
        digest = hashlib.sha1(f"{cell.cell_type}:{cell.source}".encode()).hexdigest()[:8]
        seen[digest] = seen.get(digest, 0) + 1
        cell["id"] = digest if seen[digest] == 1 else f"{digest}-{seen[digest]}"
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            for key in ("execution", "collapsed", "scrolled"):
                cell.metadata.pop(key, None)
    nb.metadata.pop("widgets", None)
    return nb


def _cells(nb) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", ())))
            for c in nb.cells]


def sync(folder: str | os.PathLike = "notebooks") -> list[Path]:
    """Rewrite every ``.ipynb`` of ``folder`` from its ``.py`` source, without outputs.

    Returns
    -------
    list of Path
        The notebooks written (only those whose content changed).
    """
    jupytext, nbformat = _jupytext(), _nbformat()
    from robustviz.runs import atomic_write_text

    written = []
    for py, ipynb in pairs(folder):
        if not py.exists():
            raise FileNotFoundError(f"{ipynb.name} has no source {py.name}: "
                                    f"run `jupytext --to py:percent {ipynb}` once")
        nb = _stripped(jupytext.read(py))
        text = nbformat.writes(nb) + "\n"
        if not ipynb.exists() or ipynb.read_text() != text:
            atomic_write_text(ipynb, text)
            written.append(ipynb)
    return written


def check(folder: str | os.PathLike = "notebooks") -> list[str]:
    """Problems of ``folder``'s pairs: a missing side, cells that differ, stored outputs.

    Returns
    -------
    list of str
        One line per problem (empty when every pair is in sync and stripped).
    """
    jupytext, nbformat = _jupytext(), _nbformat()
    problems = []
    for py, ipynb in pairs(folder):
        if not py.exists() or not ipynb.exists():
            missing = py if not py.exists() else ipynb
            problems.append(f"{missing.name} is missing (run `robustviz notebooks sync`)")
            continue
        nb = nbformat.read(ipynb, as_version=4)
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "code" and (cell.get("outputs") or
                                             cell.get("execution_count") is not None):
                problems.append(f"{ipynb.name}: cell {i} holds outputs or an execution count "
                                f"(run `robustviz notebooks sync`)")
                break
        src, stored = _cells(jupytext.read(py)), _cells(nb)
        if src != stored:
            first = next((i for i, (a, b) in enumerate(zip(src, stored)) if a != b),
                         min(len(src), len(stored)))
            problems.append(f"{py.name} and {ipynb.name} differ from cell {first} on "
                            f"({len(src)} vs {len(stored)} cells; edit the .py, then run "
                            f"`robustviz notebooks sync`)")
    return problems


def student_edition(out_dir: str | os.PathLike, folder: str | os.PathLike = "notebooks", *,
                    tag: str = SOLUTION_TAG) -> list[Path]:
    """Write the student copies of ``folder``'s notebooks into ``out_dir``.

    Each copy is the notebook without its cells tagged ``tag`` (nbconvert's
    ``TagRemovePreprocessor``) and without outputs (``ClearOutputPreprocessor``), read
    from the ``.py`` source (the ``.ipynb`` where there is no source).

    Returns
    -------
    list of Path
        The ``.ipynb`` files written, one per notebook.
    """
    nbformat = _nbformat()
    try:
        from nbconvert.preprocessors import ClearOutputPreprocessor, TagRemovePreprocessor
    except ImportError as err:  # pragma: no cover - part of the notebooks extra
        raise ImportError("the student edition needs nbconvert: "
                          "pip install 'robustviz[notebooks]'") from err
    from robustviz.runs import atomic_write_text

    if not isinstance(tag, str) or not tag:
        raise ValueError(f"tag must be a non-empty string, got {tag!r}")
    found = pairs(folder)
    if not found:
        raise FileNotFoundError(f"{str(folder)!r} holds no notebooks (NN_*.py / NN_*.ipynb)")
    out = Path(out_dir)
    if out.resolve() == Path(folder).resolve():
        raise ValueError("out_dir must differ from the notebook folder (it would overwrite "
                         "the instructor's notebooks)")
    remove = TagRemovePreprocessor(remove_cell_tags={tag}, enabled=True)
    clear = ClearOutputPreprocessor(enabled=True)
    written = []
    for py, ipynb in found:
        nb = _jupytext().read(py) if py.exists() else nbformat.read(ipynb, as_version=4)
        nb, _ = remove.preprocess(nb, {})
        nb, _ = clear.preprocess(nb, {})
        nb.metadata.pop("jupytext", None)
        path = out / ipynb.name
        atomic_write_text(path, nbformat.writes(_stripped(nb)) + "\n")
        written.append(path)
    return written


# --------------------------------------------------------------------------- one setup
#: Where the paper scale finds each model the notebooks load: the run directory a config
#: of ``configs/`` writes, and the commands that make it (GPU scale).
PAPER_RUNS: dict[str, tuple[str, str]] = {
    "nat": ("runs/baseline_nat",
            "robustviz train --config configs/baseline_nat.yaml --out runs/baseline_nat"),
    "pgd_at": ("runs/baseline_pgd_at",
               "robustviz train --config configs/baseline_pgd_at.yaml --out runs/baseline_pgd_at"),
    "trades": ("runs/baseline_trades",
               "robustviz train --config configs/baseline_trades.yaml --out runs/baseline_trades"),
    "mart": ("runs/baseline_mart",
             "robustviz train --config configs/baseline_mart.yaml --out runs/baseline_mart"),
    "trades_ancra": ("runs/paper004_trades_ancra",
                     "robustviz train --config configs/paper004_resnet18_trades_ancra.yaml "
                     "--out runs/paper004_trades_ancra"),
    "cl_emb5": ("runs/paper000_cl",
                "robustviz train --config configs/paper000_resnet18_cl.yaml --out runs/paper000_cl"),
    "ascl_global": ("runs/paper001_ascl_adv",
                    "robustviz train --config configs/paper001_resnet20_ascl_adv.yaml "
                    "--out runs/paper001_ascl_adv"),
    "ascl_leaked": ("runs/paper001_leaked_trades",
                    "robustviz train --config configs/paper001_resnet20_leaked_ascl_trades.yaml "
                    "--out runs/paper001_leaked_trades"),
    "simclr_slf": ("runs/paper002_simclr_slf",
                   "robustviz pretrain --config configs/paper002_resnet18_simclr.yaml --out "
                   "runs/paper002_simclr && robustviz finetune --encoder runs/paper002_simclr "
                   "--mode slf --out runs/paper002_simclr_slf"),
    "advcl_slf": ("runs/paper002_advcl_slf",
                  "robustviz pretrain --config configs/paper002_resnet18_advcl.yaml --out "
                  "runs/paper002_advcl && robustviz finetune --encoder runs/paper002_advcl "
                  "--mode slf --out runs/paper002_advcl_slf"),
    "ascl_pretrain_slf": ("runs/paper003_ascl_slf",
                          "robustviz pretrain --config configs/paper003_resnet18_ascl_pretrain.yaml "
                          "--out runs/paper003_ascl && robustviz finetune --encoder "
                          "runs/paper003_ascl --mode slf --out runs/paper003_ascl_slf"),
}

SCALES = ("teach", "paper")


class Setup:
    """What a notebook's first cells hold: the scale, data set, radius, test images and a
    loader of models; made by :func:`setup`.

    Attributes
    ----------
    scale : str
        ``"teach"`` (the teaching zoo on a CPU) or ``"paper"`` (your runs of the paper
        configs, GPU scale).
    dataset : str
    eps : float
        The Linf radius in pixel units (``eps * 255`` is the x/255 figure).
    seed : int
    test : robustviz.data.Dataset
        The first ``n_test`` images of the test split (the zoo's stratified subset at
        teaching scale).
    root : Path
        Where the paper scale's run directories are looked for (the repository root by
        default).
    """

    def __init__(self, scale, dataset, eps, seed, test, root):
        self.scale, self.dataset, self.eps, self.seed = scale, dataset, eps, seed
        self.test, self.root = test, Path(root)

    def source(self, name: str) -> str:
        """Where :meth:`load` reads ``name`` from, in words."""
        if self.scale == "teach":
            from robustviz import zoo

            return f"zoo model {self.dataset}/{name} ({zoo.run_dir(name, self.dataset)})"
        folder, command = self._paper(name)
        return f"run directory {self.root / folder} (made by: {command})"

    def _paper(self, name: str) -> tuple[str, str]:
        if name not in PAPER_RUNS:
            raise KeyError(f"no paper config trains {name!r}; the paper scale has "
                           f"{', '.join(sorted(PAPER_RUNS))}")
        return PAPER_RUNS[name]

    def load(self, name: str):
        """The model ``name`` in eval mode: the zoo model at teaching scale (its files
        checked against the zoo's manifest), your run of its paper config at paper scale."""
        if self.scale == "teach":
            from robustviz import zoo

            return zoo.load(name, dataset=self.dataset)
        from robustviz import runs

        folder, command = self._paper(name)
        path = self.root / folder
        if not (path / runs.WEIGHTS).is_file():
            raise FileNotFoundError(f"the paper scale reads {name!r} from {path}, which holds "
                                    f"no trained run; make it on a GPU with: {command}")
        return runs.load_run(path).model.eval()

    def __repr__(self) -> str:
        return (f"Setup(scale={self.scale!r}, dataset={self.dataset!r}, eps={self.eps:.4g} "
                f"({self.eps * 255:.1f}/255), test={tuple(self.test.x.shape)}, seed={self.seed})")


def setup(scale: str = "teach", *, seed: int = 0, n_test: int | None = None,
          root: str | os.PathLike | None = None, style: str = "notebook") -> Setup:
    """The one setup call of the notebooks: seeds, the figure style, the test images and
    a model loader for the chosen scale, printed in one line.

    Parameters
    ----------
    scale : {"teach", "paper"}
        ``"teach"``: the teaching zoo (Fashion-MNIST, or scikit-learn's digits where the
        Fashion-MNIST files are absent; TinyCNN; Linf eps 0.1) on a 2-core CPU.
        ``"paper"``: CIFAR-10 at eps 8/255, models read from the run directories the
        configs of ``configs/`` write (:data:`PAPER_RUNS` names each with its command).
    seed : int
        Seeds torch's and NumPy's generators.
    n_test : int, optional
        Test images (default 500 at teaching scale, or all 359 of digits; 10,000 at paper
        scale).
    root : path, optional
        Folder the paper scale's ``runs/...`` are relative to (default: the working folder).
    style : str
        :func:`robustviz.figures.set_style` preset.
    """
    from robustviz import data, figures, zoo
    from robustviz._utils import seed_everything
    from robustviz._validate import check_choice, check_int

    check_choice(scale, "scale", SCALES)
    check_int(seed, "seed", minimum=0)
    seed_everything(seed)
    figures.set_style(style)
    if scale == "teach":
        dataset, eps = zoo.default_dataset(), 0.1
        # digits, the fallback where Fashion-MNIST is absent, has 359 test images
        n = (min(500, data.info(dataset).sizes["test"]) if n_test is None
             else check_int(n_test, "n_test", minimum=1))
        test = zoo.data(dataset, "test", n=n)
    else:
        dataset, eps = "cifar10", 8 / 255
        n = 10_000 if n_test is None else check_int(n_test, "n_test", minimum=1)
        test = data.load(dataset, "test", n=n)
    s = Setup(scale, dataset, eps, seed, test, Path(root) if root is not None else Path.cwd())
    print(f"{scale} scale: {dataset}, {len(test.y)} test images {tuple(test.x.shape[1:])}, "
          f"Linf eps {eps:.4g} ({eps * 255:.1f}/255), seed {seed}")
    return s


# --------------------------------------------------------------------------- computed claims
#: Set to ``1`` (the notebook tests do) to make a claim that does not hold an error.
STRICT_ENV = "ROBUSTVIZ_STRICT_CLAIMS"


class ClaimError(AssertionError):
    """A notebook's sentence does not hold on the numbers the notebook computed."""


def _fmt(value) -> str:
    try:
        import torch

        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class Verdict:
    """What :func:`expect` and :func:`exercise` return: true when the claim holds (or the
    answer passes). Its line is already printed, so as a cell's last value it shows nothing
    more (no stray ``True`` under the sentence)."""

    __slots__ = ("ok", "line")

    def __init__(self, ok: bool, line: str):
        self.ok, self.line = bool(ok), line

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return f"Verdict({self.ok}, {self.line!r})"

    def _ipython_display_(self) -> None:
        pass


def expect(condition, claim: str, **numbers) -> Verdict:
    """Print a notebook's claim with the numbers behind it, and whether they bear it out.

    ``expect(acc["PGD-AT"] > acc["NAT"], "PGD-AT keeps more accuracy than NAT under PGD",
    pgd_at=acc["PGD-AT"], nat=acc["NAT"])`` prints ``✓ PGD-AT keeps ... (pgd_at=0.77,
    nat=0)``. When the condition is false the line says so (``✗ does not hold here``): a
    student who changed the seed or the scale sees that the sentence is not true of their
    run. With ``ROBUSTVIZ_STRICT_CLAIMS=1`` (the notebook tests, on the teaching data and
    seeds) a false claim raises :class:`ClaimError`, so a notebook can never print a
    sentence its own numbers contradict.

    Returns
    -------
    Verdict
        True when the claim holds (shows nothing more as a cell's last value).
    """
    if not isinstance(claim, str) or not claim.strip():
        raise ValueError("claim must be a non-empty sentence")
    ok = bool(condition)
    shown = ", ".join(f"{k}={_fmt(v)}" for k, v in numbers.items())
    line = f"{claim} ({shown})" if shown else claim
    if ok:
        print(f"\u2713 {line}")
        return Verdict(True, line)
    print(f"\u2717 does not hold here: {line}")
    if os.environ.get(STRICT_ENV) == "1":
        raise ClaimError(f"claim does not hold: {line}")
    return Verdict(False, line)


# --------------------------------------------------------------------------- exercises
def exercise(key: str, answer=..., **context) -> bool:
    """Check a student's answer to the notebook exercise ``key`` and say what is still wrong
    (never the answer).

    The answer cell of the student edition holds ``answer = ...``; the instructor edition
    adds a cell tagged ``solution`` that replaces it. Checks are functions of
    :mod:`robustviz.exercises` (:data:`robustviz.exercises.CHECKS`), each given the answer
    and the notebook's objects it needs (``context``).

    Returns
    -------
    Verdict
        True when the answer passes. Under ``ROBUSTVIZ_STRICT_CLAIMS=1`` (the tests run the
        instructor edition so) a failing answer raises :class:`ClaimError`.
    """
    from robustviz import exercises

    problems = exercises.grade(key, answer, **context)
    if not problems:
        print(f"\u2713 exercise {key}: every check passes")
        return Verdict(True, f"exercise {key}")
    print(f"\u2717 exercise {key}: not yet")
    for p in problems:
        print(f"  - {p}")
    if os.environ.get(STRICT_ENV) == "1":
        raise ClaimError(f"exercise {key} fails its checks: {'; '.join(problems)}")
    return Verdict(False, f"exercise {key}: {'; '.join(problems)}")
