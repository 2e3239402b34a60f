"""The layering of components/: each layer imports only the layers below it, with no cycles.

Function-level imports count as imports here: a lazy import (kept out of DAG parse time or out
of a light image) is fine when it points down, never when it dodges a cycle or reaches up.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "components"
# Bottom to top. Layers on one rank are siblings and may not import each other.
RANKS = [("contracts",), ("core",), ("data",), ("features",), ("model",), ("serving", "monitoring"),
         ("orchestration", "backtest"), ("ops",)]
RANK = {layer: i for i, layers in enumerate(RANKS) for layer in layers}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def components_imports(path: Path) -> set[str]:
    """Every components.* module a file imports, at any depth (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "components"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                node.module.split(".")[0] == "components":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if _exists(sub) else node.module)
    return found


def _exists(module: str) -> bool:
    path = REPO.joinpath(*module.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None  # None: the root package (version only)


def graph() -> dict[str, set[str]]:
    return {module_name(p): components_imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_is_in_a_layer():
    strays = [m for m in graph() if layer_of(m) is None and m != "components" or
              layer_of(m) is not None and layer_of(m) not in RANK]
    assert strays == [], f"modules outside the layers {sorted(RANK)}: {strays}"


def test_layers_import_only_layers_below():
    violations = []
    for module, imports in graph().items():
        here = layer_of(module)
        for target in imports:
            there = layer_of(target)
            if there is None:
                if module != "components":
                    continue  # the root package holds only the version
            elif here is None:
                violations.append(f"{module} (the root package) imports {target}")
            elif there != here and RANK[there] >= RANK[here]:
                violations.append(f"{module} ({here}) imports {target} ({there})")
    assert violations == [], "imports that break the layering:\n" + "\n".join(sorted(violations))


def test_no_import_cycles():
    edges = {m: {t for t in imports if t != m} for m, imports in graph().items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if nxt not in edges:
                continue
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("dag", sorted((REPO / "dags").glob("*.py")), ids=lambda p: p.name)
def test_dag_files_import_only_the_orchestration_layer(dag):
    outside = sorted(t for t in components_imports(dag) if layer_of(t) != "orchestration")
    assert outside == [], f"{dag.name} imports {outside}: DAG files wire the orchestration layer only"


@pytest.mark.parametrize("plugin", sorted((REPO / "plugins").glob("*.py")), ids=lambda p: p.name)
def test_airflow_plugins_import_only_the_orchestration_layer(plugin):
    """plugins/ is loaded by every Airflow process, like dags/: it wires the orchestration layer only."""
    outside = sorted(t for t in components_imports(plugin) if layer_of(t) != "orchestration")
    assert components_imports(plugin) and outside == [], f"{plugin.name} imports {outside}"


def test_the_check_sees_a_violation(tmp_path):
    """The checker itself: an upward import is found (a check that cannot fail checks nothing)."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from components.ops import cli\n")
    assert "components.ops.cli" in components_imports(bad)
    assert RANK[layer_of("components.ops.cli")] > RANK[layer_of("components.core.store")]
