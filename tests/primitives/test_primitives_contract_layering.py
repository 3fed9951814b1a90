"""The primitives talk to the Database only through the typed contract
(primitives/contract.py): no Database private is used from primitives/,
and database.py uses no private name of primitives/."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import alkdev_storage
from alkdev_storage import primitives

PKG = Path(alkdev_storage.__file__).parent
PRIMITIVES = sorted(Path(primitives.__file__).parent.glob("*.py"))

# A private attribute of a Database: db._x, self.db._x, self._db._x, queue.db._x
DB_PRIVATE = re.compile(r"\b_?db\._[A-Za-z]")


def test_primitives_use_no_database_private() -> None:
    assert len(PRIMITIVES) >= 12
    for path in PRIMITIVES:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            assert not DB_PRIVATE.search(code), f"{path.name}:{n}: {line.strip()}"


def test_database_uses_no_private_name_of_primitives() -> None:
    tree = ast.parse((PKG / "database.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            names = [a.name for a in node.names]
            if parts[:2] == ["alkdev_storage", "primitives"]:
                private = [p for p in parts[2:] + names if p.startswith("_")]
                assert not private, f"database.py imports {node.module}: {names}"
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            # e.g. queue._unclaim(...): a private of a primitive object
            if node.attr.startswith("_") and not node.attr.startswith("__"):
                assert node.value.id in ("self", "_native"), ast.unparse(node)


def test_no_type_ignore_in_primitives_and_database() -> None:
    for path in [*PRIMITIVES, PKG / "database.py"]:
        assert "type: ignore" not in path.read_text(), path.name


def python_calls_per_op(fn, n: int = 40) -> float:  # type: ignore[no-untyped-def]
    """Python-level function calls (not C calls) per call of ``fn``."""
    import sys

    for _ in range(3):
        fn()
    calls = 0

    def prof(frame, event, arg):  # type: ignore[no-untyped-def]
        nonlocal calls
        if event == "call":
            calls += 1

    sys.setprofile(prof)
    try:
        for _ in range(n):
            fn()
    finally:
        sys.setprofile(None)
    return calls / n


def test_hot_paths_add_no_python_call_layers(db) -> None:  # type: ignore[no-untyped-def]
    # Counted on the code before the typed contract: enqueue 9, claim_one +
    # ack 11, publish 5. The Protocol is a type, not a wrapper: these must
    # not grow (the lambda itself is one call).
    q, s = db.queue("hot"), db.stream("hot")
    with db.transaction() as tx:
        for i in range(300):
            q.enqueue(i, tx=tx)

    def claim_ack() -> None:
        job = q.claim_one("w")
        assert job is not None
        job.ack()

    assert python_calls_per_op(lambda: q.enqueue({"a": 1})) <= 5
    assert python_calls_per_op(claim_ack) <= 10
    assert python_calls_per_op(lambda: s.publish({"a": 1})) <= 5
