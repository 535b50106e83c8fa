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

__all__ = ["pairs", "sync", "check", "student_edition", "SOLUTION_TAG"]

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
