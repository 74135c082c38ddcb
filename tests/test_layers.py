"""The package's layers (docs/architecture.md) hold: imports point downward only.

A static scan of every module (imports inside functions count: a lazy import is still a
dependency) maps each import of ``sci_diffusion.<unit>`` to its layer. An edge to a higher
layer, an edge inside a layer that is not explicitly allowed, a unit with no layer, or any
import cycle between units fails the test with the files that make the edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LAYERS: dict[str, int] = {
    # 0: torch-only diffusion math
    "core": 0,
    # 1: generic helpers every layer may use; plain networks; figures; config schemas
    "io": 1, "nets": 1, "report": 1, "configs": 1, "pyg": 1,
    # 2: the domains
    "envs": 2, "policy": 2, "chem": 2,
    # 3: one module per benchmark task
    "tasks": 3,
    # 4: orchestration: build a task from its config, run it, write cards, benchmarks
    "train": 4, "cards": 4, "bench": 4, "config": 4,
    # 5-6: the end-to-end demo and the command line
    "quickstart": 5, "cli": 6,
}  # fmt: skip
"""Unit (``sci_diffusion.<unit>``) -> layer; a unit may import units of lower layers."""

SAME_LAYER = {("policy", "envs"), ("train", "cards")}
"""Allowed imports inside one layer: policies act in environments; training writes cards."""

SOURCES = {"sci_diffusion": "sci_diffusion", "envs": "sci_diffusion.envs",
           "tasks": "sci_diffusion.tasks", "configs": "sci_diffusion.configs"}  # fmt: skip


def _modules() -> list[tuple[Path, str]]:
    out = []
    for folder, package in SOURCES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out.append((path, ".".join([package, *parts])))
    return out


def _unit(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "sci_diffusion" and len(parts) > 1 else None


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join(base + ([node.module] if node.module else []))
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
    return found


def import_graph() -> dict[tuple[str, str], set[str]]:
    """``(unit, imported unit) -> files`` over the whole package."""
    edges: dict[tuple[str, str], set[str]] = {}
    for path, module in _modules():
        source = _unit(module)
        if source in (None, "__main__"):
            continue
        for target in filter(None, map(_unit, _imports(path, module))):
            if target not in (source, "__main__"):
                edges.setdefault((source, target), set()).add(str(path.relative_to(ROOT)))
    return edges


def test_every_unit_has_a_layer():
    units = {_unit(module) for _, module in _modules()} - {None, "__main__", "__init__"}
    missing = sorted(units - LAYERS.keys())
    assert not missing, f"units without a layer in tests/test_layers.py: {missing}"


def test_imports_point_downward():
    wrong = []
    for (source, target), files in sorted(import_graph().items()):
        if target not in LAYERS:
            continue  # reported by test_every_unit_has_a_layer (or not a package unit)
        up = LAYERS[target] > LAYERS[source]
        sideways = LAYERS[target] == LAYERS[source] and (source, target) not in SAME_LAYER
        if up or sideways:
            wrong.append(f"{source} (layer {LAYERS[source]}) -> {target} (layer "
                         f"{LAYERS[target]}): {', '.join(sorted(files))}")  # fmt: skip
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_no_import_cycle_between_units():
    graph: dict[str, set[str]] = {}
    for source, target in import_graph():
        graph.setdefault(source, set()).add(target)

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(graph.get(node, ()))
        return False

    cycles = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if reaches(b, a)})
    assert not cycles, f"import cycles between units: {cycles}"


def test_the_scan_sees_lazy_and_relative_imports():
    """The scan must not be blind: known edges (a relative import, a function-level one)."""
    edges = import_graph()
    assert ("bench", "nets") in edges  # `from ..nets.egnn import EGNN`
    assert ("cli", "train") in edges  # imports inside command functions
