"""No import circles among the project's modules.

A circle between modules only works by accident of import order (one side must dodge it with
a function-level import), hides which layer depends on which, and breaks the day someone
moves an import to the top. The graph here is built from the source with `ast`, so it counts
every import the way a reader sees it: top-level, function-level and `TYPE_CHECKING` ones.

An edge goes to the module an import names: `from a.b import c` reaches `a.b.c` when that is
a module and `a.b` otherwise. Importing `a.b.c` also runs `a/__init__.py`, but a package that
re-exports its own submodules is not a circle in any sense that matters, so parent packages
get no implicit edge.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("domain", "producers", "processors", "snapshots", "api", "boxoffice", "stack")

# Circles known to exist, each with the reason it is tolerated; any other circle fails, and
# so does a known one that grows a member. Remove an entry once its circle is gone.
KNOWN: dict[frozenset[str], str] = {}


def module_files() -> dict[str, Path]:
    """Every project module by dotted name (packages under their package name)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported_names(path: Path, module: str, modules: set[str]) -> Iterator[str]:
    """Every module `path` imports, anywhere in it, relative imports resolved.

    `from a.b import c` reaches the module `a.b.c` when there is one, and `a.b` otherwise.
    """
    is_package = path.name == "__init__.py"
    here = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                yield submodule if submodule in modules else source


def import_graph() -> dict[str, set[str]]:
    """Project module -> the project modules it imports."""
    files = module_files()
    modules = set(files)
    return {
        name: {
            target
            for target in imported_names(path, name, modules)
            if target in modules and target != name
        }
        for name, path in files.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def a_path(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One concrete circle through the component, for the failure message."""
    members = set(component)
    start = component[0]
    trail = [start]
    seen = {start}
    while True:
        nxt = sorted(n for n in graph[trail[-1]] if n in members)
        back = [n for n in nxt if n in seen]
        if back:
            return [*trail[trail.index(back[0]) :], back[0]]
        trail.append(nxt[0])
        seen.add(nxt[0])


def test_the_graph_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text(
        "from . import sibling\n"
        "def later():\n"
        "    from processors.deciders import DeciderLoop\n"
        "    import domain.decider\n"
    )
    modules = {"processors.sibling", "processors.deciders", "domain.decider"}
    assert set(imported_names(source, "processors.probe", modules)) == modules


def test_cycles_finds_a_circle_and_only_the_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert a_path(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]


def test_no_import_cycles_among_the_project_modules() -> None:
    graph = import_graph()
    # The walk found the project, not an empty directory.
    assert {"processors.deciders", "domain.decider", "api.app"} <= set(graph)
    circles = {frozenset(c): c for c in cycles(graph)}
    unexplained = [
        " -> ".join(a_path(graph, circle)) for key, circle in circles.items() if key not in KNOWN
    ]
    assert not unexplained, "import circles:\n" + "\n".join(unexplained)
