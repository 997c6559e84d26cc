"""The floors of docs/architecture.md hold: no import circle among the package's modules (imports inside functions
count), the runtime imports the built-in models only for their weights folders, and training imports no lesson."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "imagegen_nb"


def _name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _exists(module: str) -> bool:
    path = PACKAGE.parent / module.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _imports() -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere in its code (TYPE_CHECKING blocks excluded)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        module = _name(path)
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and getattr(node.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(node)}
        found = set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if source.startswith("imagegen_nb"):
                    for alias in node.names:
                        candidate = f"{source}.{alias.name}"
                        found.add(candidate if _exists(candidate) else source)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("imagegen_nb")}
        found.discard(module)
        graph[module] = found
    return graph


GRAPH = _imports()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_imports_inside_functions():
    assert "imagegen_nb.cache" in GRAPH["imagegen_nb.tiny.evaluate"]  # `from ..cache import shared` in a function
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circles():
    assert _cycles(GRAPH) == []


FRONT_ENDS = ("imagegen_nb.teach", "imagegen_nb.widgets", "imagegen_nb.cli")
RUNTIME_MAY_ASK_TINY = {"imagegen_nb", "imagegen_nb.registry"}  # the package's lazy names; where the weights live
# The segmentation control kind reads a shapes-world picture with the world's checker, as the depth kind reads a
# photograph with a depth model: the world, not the trained models or their training
RUNTIME_MAY_READ_THE_WORLD = {"imagegen_nb.preprocessors": {"imagegen_nb.tiny.checker"}}


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if not m.startswith(("imagegen_nb.tiny",
                                                                                 "imagegen_nb.teach"))))
def test_the_runtime_knows_the_built_in_models_only_by_their_folders(module):
    into_tiny = {m for m in GRAPH[module] if m.startswith("imagegen_nb.tiny")}
    into_tiny -= RUNTIME_MAY_READ_THE_WORLD.get(module, set())
    if module in RUNTIME_MAY_ASK_TINY:
        assert into_tiny <= {"imagegen_nb.tiny"}  # tiny/__init__.py: model_path and controlnet_path only
    else:
        assert not into_tiny, f"{module} imports {sorted(into_tiny)}"


def test_the_weights_helpers_import_nothing_heavy():
    assert GRAPH["imagegen_nb.tiny"] == set()


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m.startswith("imagegen_nb.tiny")))
def test_training_imports_no_lesson_or_front_end(module):
    above = {m for m in GRAPH[module] if m.startswith(FRONT_ENDS)}
    assert not above, f"{module} imports {sorted(above)}"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if not m.startswith(FRONT_ENDS)
                                    and m not in ("imagegen_nb", "imagegen_nb.__main__")))
def test_nothing_below_imports_a_front_end(module):
    above = {m for m in GRAPH[module] if m.startswith(FRONT_ENDS)}
    assert not above, f"{module} imports {sorted(above)}"
