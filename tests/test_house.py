"""The house's shape, read from the source: data flows one way, no module grows past a
few hundred lines, long functions stay rare. Imports inside functions count: a lazy
import is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_MODULE_LINES = 600
MAX_LONG_FUNCTIONS = 3  # functions over 80 lines
LONG = 80


def _modules() -> dict[str, Path]:
    mods = {}
    for p in (SRC / "quantbench").rglob("*.py"):
        parts = p.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """The quantbench modules ``name`` imports, at any depth of its code."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names
            ]
        else:
            continue
        for t in targets:
            while t and t not in mods:
                t = t.rpartition(".")[0]
            if t and t != name and t.startswith("quantbench"):
                out.add(t)
    return out


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(m, p, mods) for m, p in mods.items()}


def _room(module: str) -> str:
    """A module's room: its top-level module or subpackage of quantbench."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "quantbench"


def test_no_import_loop_between_modules():
    assert _cycles(_graph()) == []


def test_no_import_runs_back_up_between_rooms():
    # Rooms (runner/, report/, recipes/, store.py, ...) stand in floors: an import from a
    # room to one that (through others) imports it back would point up a floor.
    rooms: dict[str, set[str]] = {}
    for m, targets in _graph().items():
        if m in ("quantbench", "quantbench.__main__"):  # the package's face: top of the house
            continue
        rooms.setdefault(_room(m), set()).update(_room(t) for t in targets if _room(t) != _room(m))
    assert _cycles(rooms) == []


def test_modules_stay_small_and_long_functions_rare():
    big = {}
    long = []
    for m, p in _modules().items():
        text = p.read_text()
        if (n := len(text.splitlines())) > MAX_MODULE_LINES:
            big[m] = n
        for node in ast.walk(ast.parse(text)):
            is_def = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            if is_def and node.end_lineno - node.lineno + 1 > LONG:
                long.append(f"{m}.{node.name}")
    assert big == {}
    assert len(long) <= MAX_LONG_FUNCTIONS, long


def test_the_checks_see_a_loop_when_there_is_one():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
