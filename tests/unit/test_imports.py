"""The package's modules import each other without a cycle, counting imports inside functions (those under
``if TYPE_CHECKING:`` aside: they never run)."""

import ast
from pathlib import Path

import resnext_gui

PACKAGE = Path(resnext_gui.__file__).parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


class Imports(ast.NodeVisitor):
    """Every import a module can run, resolved to the package's module names."""

    def __init__(self, name: str, is_package: bool, known: set[str]) -> None:
        self.base = name if is_package else name.rpartition(".")[0]
        self.known = known
        self.found: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
                isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def _add(self, name: str) -> None:
        while name and name not in self.known:  # an attribute of a module: the module itself
            name = name.rpartition(".")[0]
        if name:
            self.found.add(name)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.startswith("resnext_gui"):
                self._add(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.base
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = f"{base}.{node.module}" if node.module else base
        elif node.module and node.module.startswith("resnext_gui"):
            target = node.module
        else:
            return
        for alias in node.names:  # `from . import cam` names a module; `from .cam import X` names its attribute
            self._add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in self.known else target)


def import_graph() -> dict[str, set[str]]:
    known = modules()
    graph = {}
    for name, path in known.items():
        visitor = Imports(name, path.name == "__init__.py", set(known))
        visitor.visit(ast.parse(path.read_text(), str(path)))
        graph[name] = visitor.found - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_imports_inside_functions_and_ignores_type_checking_ones():
    graph = import_graph()
    assert "resnext_gui.core.classifier" in graph["resnext_gui.worker.runner"]  # imported inside default_factory
    assert "resnext_gui.worker.jobs.photo" not in graph["resnext_gui.worker.runner"]  # the runner imports no job
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_of_the_package_is_part_of_an_import_cycle():
    assert cycles(import_graph()) == []
