"""The package's layout holds: modules import only modules of their own layer or below (LAYERS,
bottom first), no two modules import each other in a circle, and nothing outside rnnscope/cells
branches on a cell's name (a new cell is a module and a registry row)."""

import ast
from pathlib import Path

from rnnscope.cells import CELLS

PACKAGE = Path(__file__).resolve().parents[1] / "rnnscope"
LAYERS = [  # top-level modules and packages, bottom first; a module may import its layer or below
    {"version", "errors", "health", "synthetic", "cells"},
    {"optim", "data"},
    {"config"},
    {"model"},
    {"runs", "sample", "panel", "heldout"},
    {"corpora", "records"},
    {"triage"},
    {"display", "plots"},
    {"report", "compare"},
    {"train", "gradcheck", "sinks"},
    {"torch", "bench"},
    {"sweep", "lightning"},
    {"trial"},
    {"cli", "__init__"},
]


def modules() -> dict[str, Path]:
    return {".".join(f.relative_to(PACKAGE.parent).with_suffix("").parts): f
            for f in PACKAGE.rglob("*.py")}


def imports(name: str, file: Path) -> set[str]:
    """The rnnscope modules that module `name` imports (at its top or inside a function)."""
    here = name.split(".")[:-1]  # its package: rnnscope.triage.story and .__init__ -> triage's
    found = set()
    known = modules()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = here[:len(here) - node.level + 1]
            target = base + (node.module.split(".") if node.module else [])
            for alias in node.names:
                full = ".".join(target + [alias.name])
                found.add(full if full in known or f"{full}.__init__" in known
                          else ".".join(target))
    return {m for m in found if m != name}


def unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer(u: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if u in names)


def test_every_module_has_a_layer():
    assert {unit(m) for m in modules()} <= set().union(*LAYERS)


def test_no_module_imports_one_above_it():
    upward = [(m, t) for m, f in modules().items() for t in imports(m, f)
              if layer(unit(t)) > layer(unit(m))]
    assert upward == []


def test_no_import_circle():
    graph = {m: imports(m, f) for m, f in modules().items()}
    graph = {m: {t if t in graph else f"{t}.__init__" for t in ts} for m, ts in graph.items()}
    done, path = set(), []

    def visit(m):
        if m in path:
            raise AssertionError(f"import circle: {' -> '.join(path[path.index(m):] + [m])}")
        if m in done:
            return
        path.append(m)
        for t in graph.get(m, ()):
            visit(t)
        path.pop()
        done.add(m)

    for m in graph:
        visit(m)


def test_nothing_outside_cells_branches_on_a_cell_name():
    names = set(CELLS)
    found = []
    for module, file in modules().items():
        if unit(module) == "cells":
            continue
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                if any(isinstance(o, ast.Constant) and o.value in names for o in operands):
                    found.append(f"{module}:{node.lineno}")
            if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
                    and node.slice.value in names:
                found.append(f"{module}:{node.lineno}")
    assert found == []
