"""Each layer imports only the layers below it (DESIGN.md, "Layers")."""

from __future__ import annotations

import ast
from pathlib import Path

import alkdev_storage

PKG = Path(alkdev_storage.__file__).parent

# Bottom up. The package root re-exports everything and is not a layer.
LAYERS = [
    ("_native", "errors"),
    ("primitives",),
    ("database",),
    ("dbapi",),
    ("sqlalchemy",),
]


def layer_of(module: str) -> int:
    first = module.split(".")[1] if module.startswith("alkdev_storage.") else module
    for i, names in enumerate(LAYERS):
        if first in names:
            return i
    raise AssertionError(f"module {module} is in no layer")


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "alkdev_storage":
                found |= {f"alkdev_storage.{a.name}" for a in node.names}
            elif node.module.startswith("alkdev_storage."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("alkdev_storage.")}
    return found


def test_no_layer_imports_a_higher_one() -> None:
    checked = 0
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG.parent).with_suffix("")
        module = ".".join(rel.parts)
        if module in ("alkdev_storage.__init__",):
            continue
        mine = layer_of(module)
        for imported in imports(path):
            assert layer_of(imported) <= mine, f"{module} (layer {mine}) imports {imported}"
        checked += 1
    assert checked >= 15
