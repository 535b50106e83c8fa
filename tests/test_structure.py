"""The package's shape: no import cycle between its modules, and no module so long that it
holds several ideas.

The import graph is read from the source with :mod:`ast` (nothing is imported): an edge
``a -> b`` for every import in ``a`` that Python runs when ``a`` is imported (module level,
class bodies, ``try``/``if`` blocks; not ``if TYPE_CHECKING:``) and that names a robustviz
module ``b``; imports inside functions are lazy and make no edge. ``from p import x`` points
at ``p.x`` when that is a module, else at ``p``. ``python tests/test_structure.py`` prints
the graph's counts (modules, edges, largest module, cycles).
"""
from __future__ import annotations

import ast
import functools
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "robustviz"

#: Longest a module may be, in lines.
MAX_LINES = 500
#: Modules allowed past MAX_LINES: their current ceiling and why. A module here that grows
#: past its ceiling fails as any other would.
LONG_MODULES = {
    "robustviz.evaluate._core": (580, "one idea: evaluate a model under a set of attacks into "
                                      "one EvalResult (its dataclass is most of the length)"),
    "robustviz.data._datasets": (540, "one idea: the data-set registry, one loader per data set"),
    "robustviz.diagnostics._landscape": (525, "one idea: loss landscapes (weight-space and "
                                              "input-space) and their flatness measures"),
}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package by dotted name."""
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


@functools.lru_cache(maxsize=None)
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def _eager_imports(tree: ast.Module):
    """Import nodes that run when the module is imported (not inside a function, a lambda,
    or an ``if TYPE_CHECKING:`` block)."""
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
        else:
            todo.extend(ast.iter_child_nodes(node))


#: Cycles between subpackages (lazy imports included) that are known, and why they stay.
SUBPACKAGE_CYCLES: dict[tuple[str, ...], str] = {}


def subpackage_graph(mods: dict[str, Path] | None = None) -> dict[str, set[str]]:
    """``robustviz.<top>`` -> the other ``robustviz.<top>`` it imports anywhere in its code,
    inside functions too."""
    mods = modules() if mods is None else mods
    top = lambda n: ".".join(n.split(".")[:2])  # noqa: E731
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        for node in ast.walk(_parse(path)):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                base = node.module or ""
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                           for a in node.names]
            else:
                continue
            for t in targets:
                r = _resolve(t, mods)
                if r is not None and top(r) != top(name):
                    graph.setdefault(top(name), set()).add(top(r))
    return graph


def _resolve(name: str, known) -> str | None:
    """The longest prefix of ``name`` that is a robustviz module."""
    parts = name.split(".")
    while parts:
        cand = ".".join(parts)
        if cand in known:
            return cand
        parts.pop()
    return None


def import_graph(mods: dict[str, Path] | None = None) -> dict[str, set[str]]:
    """module -> the robustviz modules it imports eagerly."""
    mods = modules() if mods is None else mods
    graph = {}
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        edges = set()
        for node in _eager_imports(_parse(path)):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:                       # relative: from . / .. import
                    pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                    pkg = pkg[:len(pkg) - node.level + 1]
                    base = ".".join(pkg + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                           for a in node.names]
            for t in targets:
                r = _resolve(t, mods)
                if r is not None and r != name:
                    edges.add(r)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(out)


def line_count(path: Path) -> int:
    return len(path.read_text().splitlines())


# --------------------------------------------------------------------------- the checker
def test_the_checker_finds_a_cycle_and_ignores_lazy_and_type_checking_imports(tmp_path):
    pkg = tmp_path / "robustviz"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "from robustviz.sub import b\n",
        "sub/__init__.py": "from . import b\n",
        "sub/b.py": "from ..c import thing\n",
        "c.py": "import robustviz.a as a\nthing = 1\n",            # a -> b -> c -> a
        "d.py": "def f():\n    from robustviz import e\n",          # lazy: no edge
        "e.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from robustviz import d\n"
                "else:\n    import os\nclass K:\n    from robustviz import c\n",
    }
    for rel, text in files.items():
        (pkg / rel).write_text(text)
    graph = import_graph(modules(pkg))
    assert graph["robustviz.sub"] == {"robustviz.sub.b"}
    assert graph["robustviz.sub.b"] == {"robustviz.c"}
    assert graph["robustviz.d"] == set()
    assert graph["robustviz.e"] == {"robustviz.c"}                     # class body runs
    assert cycles(graph) == [["robustviz.a", "robustviz.c", "robustviz.sub.b"]]
    graph["robustviz.c"] = set()
    assert cycles(graph) == []


# --------------------------------------------------------------------------- the package
def test_no_import_cycle_between_modules():
    graph = import_graph()
    assert len(graph) > 100 and sum(map(len, graph.values())) > 100    # it read the package
    found = cycles(graph)
    assert not found, "import cycles (strongly connected modules): " + "; ".join(
        " <-> ".join(c) for c in found)


def test_no_cycle_between_subpackages_even_through_lazy_imports():
    """One level up, lazy imports included: a subpackage that imports another inside a
    function still depends on it. (The cycle issue 27 named: defenses imported train for
    ``load_encoder`` while train builds defenses; loading an encoder from a run directory
    now lives in robustviz.runs, beside ``load_run``.)"""
    graph = subpackage_graph()
    assert "robustviz.defenses" in graph["robustviz.train"]             # it read lazy imports
    found = [c for c in cycles(graph) if tuple(c) not in SUBPACKAGE_CYCLES]
    assert not found, "cycles between subpackages: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_module_past_its_length():
    mods = modules()
    too_long = {n: line_count(p) for n, p in mods.items()
                if line_count(p) > LONG_MODULES.get(n, (MAX_LINES,))[0]}
    assert not too_long, (f"modules over {MAX_LINES} lines (split them by idea, or list them "
                          f"in LONG_MODULES with the reason they hold one idea): {too_long}")
    stale = [n for n in LONG_MODULES if n not in mods or line_count(mods[n]) <= MAX_LINES]
    assert not stale, f"LONG_MODULES entries no longer needed: {stale}"


def summary() -> dict:
    """The graph's counts: modules, edges, lines, the largest module, cycles."""
    mods = modules()
    graph = import_graph(mods)
    sizes = {n: line_count(p) for n, p in mods.items()}
    big = max(sizes, key=sizes.get)
    return {"modules": len(mods), "edges": sum(map(len, graph.values())),
            "lines": sum(sizes.values()), "largest": f"{big} ({sizes[big]} lines)",
            "over_500": sorted(f"{n} ({s})" for n, s in sizes.items() if s > MAX_LINES),
            "cycles": cycles(graph)}


if __name__ == "__main__":
    for k, v in summary().items():
        print(f"{k}: {v}")
