"""The package's folders show its architecture, and the README's tree says so (issue 11).

Read with :mod:`ast` only (nothing is imported), so a cycle or a forbidden import is found even
where it would only bite at run time or under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import keyframed

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "keyframed"
# Libraries that do I/O; handlers/ decides and must import none of them.
IO_LIBRARIES = {"httpx", "sqlite3", "watchdog", "socket", "subprocess", "websockets",
                "huggingface_hub", "aiohttp", "requests", "urllib", "shutil", "tempfile"}
IO_FOLDERS = ("daemon", "backends", "cli", "inputs", "models", "service", "render", "oneshot")
MAX_MODULES = 15


def module_name(path: Path) -> str:
    """``keyframed/daemon/loop.py`` -> ``keyframed.daemon.loop``."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported(path: Path, name: str) -> set[str]:
    """Dotted names a module imports (relative imports resolved), type-only ones included."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        deps = {d for d in imported(path, name) if d in known and d != name}
        graph[name] = {d for d in deps if d != "keyframed"}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep):], dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_every_module_imports() -> None:
    for info in pkgutil.walk_packages(keyframed.__path__, "keyframed."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)


def test_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_type_only_cycle(tmp_path: Path) -> None:
    # The check must be able to fail: a circle closed under TYPE_CHECKING counts.
    a = tmp_path / "a.py"
    a.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import b\n")
    b = tmp_path / "b.py"
    b.write_text("from pkg import a\n")
    graph = {"pkg.a": {d for d in imported(a, "pkg.a") if d in ("pkg.a", "pkg.b")},
             "pkg.b": {d for d in imported(b, "pkg.b") if d in ("pkg.a", "pkg.b")}}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]


@pytest.mark.parametrize("name", sorted(n for n in modules() if n.startswith("keyframed.handlers")))
def test_handlers_do_no_io(name: str) -> None:
    deps = imported(modules()[name], name)
    roots = {d.split(".")[0] for d in deps}
    assert not roots & IO_LIBRARIES, f"{name} imports {sorted(roots & IO_LIBRARIES)}"
    rooms = {d.split(".")[1] for d in deps if d.startswith("keyframed.") and d.count(".") >= 1}
    assert not rooms & set(IO_FOLDERS), f"{name} imports from {sorted(rooms & set(IO_FOLDERS))}"


def test_no_folder_is_crowded() -> None:
    for folder in [PACKAGE, *(p for p in PACKAGE.rglob("*") if p.is_dir())]:
        count = len([p for p in folder.glob("*.py") if p.name != "__init__.py"])
        assert count <= MAX_MODULES, f"{folder.relative_to(REPO)} holds {count} modules"


def readme_tree() -> set[str]:
    """The folders the README's layout section names, as package-relative paths."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- layout:start -->")[1].split("<!-- layout:end -->")[0]
    folders: set[str] = set()
    parents: list[str] = []
    for line in block.splitlines():
        match = re.match(r"^(\s*)([a-z_]+)/(\s|$)", line)
        if not match or match[2] == "keyframed":
            continue
        depth = (len(match[1]) - 2) // 2
        parents = [*parents[:depth], match[2]]
        folders.add("/".join(parents))
    return folders


def test_readme_layout_matches_the_tree() -> None:
    actual = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*")
              if p.is_dir() and p.name != "__pycache__" and p.name != "files"}
    assert readme_tree() == actual
