"""No import circles inside convc: the module graph of the installed package tree (convc, convc.passes,
convc.backends, convc.models) is acyclic, counting the imports that run when a module is imported; and
counting deferred imports (inside functions) too, no circle beyond the one listed below."""
from __future__ import annotations

import ast
import importlib.util
from collections.abc import Callable
from pathlib import Path

import networkx as nx

ROOTS = ("convc", "convc.passes", "convc.backends", "convc.models")


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations, f"{name} is not an installed package"
    return Path(next(iter(spec.submodule_search_locations)))


def modules() -> dict[str, Path]:
    """Every module of the tree by dotted name (a package is its __init__)."""
    found: dict[str, Path] = {}
    for root in ROOTS:
        base = package_dir(root)
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join([root, *parts])
            found.setdefault(name, path)  # convc's own walk would find convc.passes under another path
    return found


# Circles closed only by an import deferred into a function, each with its reason. Shrink, never grow.
KNOWN_DEFERRED_CIRCLES: set[frozenset[str]] = set()


def all_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, deferred ones in functions included, except under `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for stmt in child.orelse:
                    visit(stmt)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append(child)
            visit(child)
    visit(tree)
    return found


def module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Import statements that run when the module is imported: not in functions or classes, not under
    `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(body: list[ast.stmt]) -> None:
        for stmt in body:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                found.append(stmt)
            elif isinstance(stmt, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(stmt.test):
                    visit(stmt.body)
                visit(stmt.orelse)
            elif isinstance(stmt, ast.Try):
                for block in (stmt.body, stmt.orelse, stmt.finalbody, *[h.body for h in stmt.handlers]):
                    visit(block)
            elif isinstance(stmt, ast.With):
                visit(stmt.body)
    visit(tree.body)
    return found


def imported_names(stmt: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The dotted names `stmt` imports: `from a import b` names both a.b (a module, if it is one) and a."""
    if isinstance(stmt, ast.Import):
        return [alias.name for alias in stmt.names]
    base = stmt.module or ""
    if stmt.level:
        anchor = module.split(".") if is_package else module.split(".")[:-1]
        anchor = anchor[: len(anchor) - (stmt.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
    return [base] + [f"{base}.{alias.name}" for alias in stmt.names]


def import_graph(imports: Callable[[ast.Module], list[ast.Import | ast.ImportFrom]] = module_level_imports
                 ) -> nx.DiGraph:
    mods = modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(mods)
    for name, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        for stmt in imports(tree):
            targets = imported_names(stmt, name, path.name == "__init__.py")
            if isinstance(stmt, ast.Import):
                found = [t for t in targets if t in mods]
            else:  # `from a import b`: the edge goes to a.b when b is a module, else to a itself
                found = [t for t in targets[1:] if t in mods] or [t for t in targets[:1] if t in mods]
            for target in found:
                if target != name:
                    graph.add_edge(name, target)
    return graph


def test_the_tree_is_found() -> None:
    graph = import_graph()
    assert {"convc.compiler", "convc.passes.conv_algo", "convc.backends.triton.lower",
            "convc.frontends.fx_convert"} <= set(graph)
    assert graph.has_edge("convc.frontends.fx_convert", "convc.frontends.torch_functions")


def test_no_module_imports_itself_back() -> None:
    cycles = list(nx.simple_cycles(import_graph()))
    assert not cycles, "import circles: " + "; ".join(" -> ".join(c + c[:1]) for c in cycles[:10])


def test_no_circle_through_deferred_imports_beyond_the_known_ones() -> None:
    cycles = [c for c in nx.simple_cycles(import_graph(all_imports))
              if frozenset(c) not in KNOWN_DEFERRED_CIRCLES]
    assert not cycles, "import circles: " + "; ".join(" -> ".join(c + c[:1]) for c in cycles[:10])


def test_imports_are_read_as_python_runs_them() -> None:
    a = ast.parse("from convc.frontends import b\n")
    b = ast.parse("import os\nif TYPE_CHECKING:\n    from convc.frontends import a\ndef f():\n    import x\n")
    assert [ast.unparse(s) for s in module_level_imports(a)] == ["from convc.frontends import b"]
    assert [ast.unparse(s) for s in module_level_imports(b)] == ["import os"]
    assert [ast.unparse(s) for s in all_imports(b)] == ["import os", "import x"]
    assert imported_names(ast.parse("from ..ir import Node").body[0], "convc.frontends.x", False) == \
        ["convc.ir", "convc.ir.Node"]
    assert imported_names(ast.parse("from . import lower").body[0], "convc.backends.triton", True) == \
        ["convc.backends.triton", "convc.backends.triton.lower"]


# Core modules that read a pass module's data format (not a pass): the plan a saved artifact carries.
# Shrink, never grow.
KNOWN_CORE_TO_PASSES = {("convc.artifact", "convc.passes.plan")}


def test_data_flows_one_way_between_the_layers() -> None:
    """docs/architecture.md: the core imports no pass or backend, and no pass imports a backend (a pass
    reaches one through convc.registry, by name, as the NumPy cost model's probes do), deferred imports
    counted too."""
    graph = import_graph(all_imports)

    def layer(module: str) -> str:
        parts = module.split(".")
        return parts[1] if len(parts) > 1 and parts[1] in ("passes", "backends", "models") else "core"
    wrong = sorted(f"{a} -> {b}" for a, b in graph.edges
                   if (layer(a) in ("core", "passes") and layer(b) == "backends"
                       or layer(a) == "core" and layer(b) == "passes" and (a, b) not in KNOWN_CORE_TO_PASSES))
    assert not wrong, "imports against the data flow: " + "; ".join(wrong)
