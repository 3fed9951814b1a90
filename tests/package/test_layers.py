"""Each layer imports only the layers below it, and no module reaches into
another layer's private (leading-underscore) names.

Layers, bottom up: the native module and the exceptions, the primitives,
the Database, the DB-API driver, the SQLAlchemy dialect, the schema
(tables and migrations), the domain (modules, models, secrets, catalog),
the operations, the events, the tenancy (the hub). The package root
(``alkdev_storage/__init__.py``) re-exports everything and is not a layer.
``alkdev_storage._native`` is the documented native module: any layer may
import it (but not reach into its own private names).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

import alkdev_storage

PKG = Path(alkdev_storage.__file__).parent
ROOT = "alkdev_storage"
NATIVE = "alkdev_storage._native"

# Bottom up.
LAYERS = [
    ("_native", "errors"),
    ("primitives",),
    ("database",),
    ("dbapi",),
    ("sqlalchemy",),
    ("schema",),
    ("domain",),
    ("operations",),
    ("events",),
    ("tenancy",),
]

# (module, "<expression>.<private name>") pairs allowed to reach into a
# private name the checker cannot prove is their own. Keep it empty; every
# entry needs a comment saying why the access is not a layering breach.
ALLOWED: frozenset[tuple[str, str]] = frozenset()


def layer_of(module: str) -> int:
    first = module.split(".")[1] if module.startswith(f"{ROOT}.") else module
    for i, names in enumerate(LAYERS):
        if first in names:
            return i
    raise AssertionError(f"module {module} is in no layer")


def layer_or_none(module: str) -> int | None:
    """Layer of one of our modules; None for the package root."""
    return None if module == ROOT else layer_of(module)


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == ROOT:
                found |= {f"{ROOT}.{a.name}" for a in node.names}
            elif node.module.startswith(f"{ROOT}."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith(f"{ROOT}.")}
    return found


def package_modules() -> list[tuple[str, Path]]:
    """(dotted name, path) of every module of the package but the root."""
    found = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.parts[-1] == "__init__" else rel.parts
        module = ".".join(parts)
        if module != ROOT:
            found.append((module, path))
    return found


def is_package_module(module: str) -> bool:
    """True when ``module`` is a module or package of ours (a file or a
    directory under the package), including the native extension."""
    if module == NATIVE or module == ROOT:
        return True
    if not module.startswith(f"{ROOT}."):
        return False
    rel = Path(*module.split(".")[1:])
    return (PKG / rel).with_suffix(".py").is_file() or (PKG / rel / "__init__.py").is_file()


# ---------------------------------------------------------------------
# Private-name checker
# ---------------------------------------------------------------------


def is_private(name: str) -> bool:
    """A leading-underscore name that is not a dunder."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def defined_names(tree: ast.AST) -> set[str]:
    """Names this file defines: functions, classes, assigned names, import
    aliases, parameters, attributes assigned on ``self``/``cls`` and
    ``__slots__`` entries. A private name defined here is this file's own."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.split(".")[0])
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("self", "cls")
        ):
            names.add(node.attr)
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets
        ):
            for c in ast.walk(node.value):
                if isinstance(c, ast.Constant) and isinstance(c.value, str):
                    names.add(c.value)
    return names


def module_aliases(tree: ast.AST, is_module: Callable[[str], bool]) -> dict[str, str]:
    """Local names bound to one of our modules by an import, anywhere in
    the file: ``import alkdev_storage.dbapi as d``, ``from alkdev_storage
    import dbapi``, ``import alkdev_storage`` (binds the root)."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if not (a.name == ROOT or a.name.startswith(f"{ROOT}.")):
                    continue
                if a.asname:
                    aliases[a.asname] = a.name
                else:
                    aliases[a.name.split(".")[0]] = a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                full = f"{node.module}.{a.name}"
                if is_module(full):
                    aliases[a.asname or a.name] = full
    return aliases


def foreign_names(tree: ast.AST) -> set[str]:
    """Local names bound by imports from outside the package (``os``,
    ``sqlalchemy`` ...): their private names are not a layering matter."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name != ROOT and not a.name.startswith(f"{ROOT}."):
                    names.add(a.asname or a.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module != ROOT and not node.module.startswith(f"{ROOT}."):
                names |= {a.asname or a.name for a in node.names}
    return names


def private_path_part(module: str) -> str | None:
    """First private component of a dotted module path below the root,
    other than the native module (e.g. ``_util`` in
    ``alkdev_storage.primitives._util``)."""
    if module == NATIVE or module.startswith(f"{NATIVE}."):
        return None
    for part in module.split(".")[1:]:
        if is_private(part):
            return part
    return None


def private_index(sources: Mapping[str, str]) -> dict[str, set[int | None]]:
    """Private name -> the layers of the modules that define it, over
    ``sources`` (module name -> text)."""
    index: dict[str, set[int | None]] = {}
    for module, source in sources.items():
        for name in defined_names(ast.parse(source)):
            if is_private(name):
                index.setdefault(name, set()).add(layer_or_none(module))
    return index


def package_sources() -> dict[str, str]:
    """Text of every module of the package, the native stub included (as
    the native module: its names are layer 0's)."""
    sources = {module: path.read_text() for module, path in package_modules()}
    sources[NATIVE] = (PKG / "_native.pyi").read_text()
    return sources


def private_reaches(
    source: str,
    module: str,
    index: Mapping[str, set[int | None]],
    is_module: Callable[[str], bool] = is_package_module,
) -> list[str]:
    """Every place in ``source`` (the text of ``module``) that reaches into
    another layer's private names. One line per violation,
    ``module:line: what``. Counted:

    * importing a private name, or anything from a private module, of
      another layer (``alkdev_storage._native`` itself is public);
    * ``m._name`` where ``m`` is one of our modules in another layer;
    * ``x._name`` or ``getattr(x, "_name")`` on an object whose type cannot
      be known statically, unless ``x`` is ``self``/``cls``, a name imported
      from outside the package, or ``_name`` is defined in this file. Such a
      name counts when a module of another layer defines it (``index``); a
      private name no module of ours defines is a third-party internal
      (SQLAlchemy's, say), not a layering matter.

    Known blind spot of the "defined in this file" rule: a file that defines
    a private name of its own (``self._stmt = ...``) is not told when it
    also reads another layer's private of the same name on a parameter
    (``db._stmt``).
    """
    tree = ast.parse(source)
    mine = layer_or_none(module)
    own = defined_names(tree)
    aliases = module_aliases(tree, is_module)
    foreign = foreign_names(tree)
    found: list[str] = []

    def report(node: ast.AST, what: str) -> None:
        line = getattr(node, "lineno", 0)
        found.append(f"{module}:{line}: {what}")

    def other_layer(target: str) -> bool:
        return layer_or_none(target) != mine or target == ROOT

    def module_of(expr: ast.expr) -> str | None:
        """The module an expression names (``alias`` or ``alias.sub``)."""
        if isinstance(expr, ast.Name):
            return aliases.get(expr.id)
        if isinstance(expr, ast.Attribute):
            base = module_of(expr.value)
            if base is not None and is_module(f"{base}.{expr.attr}"):
                return f"{base}.{expr.attr}"
        return None

    def check_access(node: ast.AST, obj: ast.expr, name: str) -> None:
        if not is_private(name):
            return
        target = module_of(obj)
        if target is not None:
            if target == ROOT and name == "_native":
                return  # the documented native module
            if other_layer(target):
                report(node, f"{ast.unparse(obj)}.{name} (private name of {target})")
            return
        if isinstance(obj, ast.Name) and (obj.id in ("self", "cls") or obj.id in foreign):
            return
        if name in own:
            return
        owners = index.get(name, set()) - {mine}
        if not owners:
            return
        if (module, f"{ast.unparse(obj)}.{name}") in ALLOWED:
            return
        where = ", ".join(
            "root" if layer is None else "/".join(LAYERS[layer])
            for layer in sorted(owners, key=lambda x: -1 if x is None else x)
        )
        report(node, f"{ast.unparse(obj)}.{name} (private name of layer {where})")

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            target = node.module
            if not (target == ROOT or target.startswith(f"{ROOT}.")):
                continue
            if not other_layer(target):
                continue
            part = private_path_part(target)
            if part is not None:
                report(node, f"imports from private module {target}")
                continue
            for a in node.names:
                if is_private(a.name) and not (target == ROOT and a.name == "_native"):
                    report(node, f"imports private name {a.name} from {target}")
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            report(node, "relative import (use absolute alkdev_storage imports)")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith(f"{ROOT}.") and other_layer(a.name):
                    if private_path_part(a.name) is not None:
                        report(node, f"imports private module {a.name}")
        elif isinstance(node, ast.Attribute):
            check_access(node, node.value, node.attr)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr", "setattr", "delattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            check_access(node, node.args[0], node.args[1].value)
    return sorted(set(found), key=lambda f: (int(f.split(":")[1]), f))


# ---------------------------------------------------------------------
# The package
# ---------------------------------------------------------------------


def test_no_layer_imports_a_higher_one() -> None:
    checked = 0
    for module, path in package_modules():
        mine = layer_of(module)
        for imported in imports(path):
            assert layer_of(imported) <= mine, f"{module} (layer {mine}) imports {imported}"
        checked += 1
    assert checked >= 15


def test_no_module_reaches_into_another_layers_private_names() -> None:
    sources = package_sources()
    index = private_index(sources)
    found: list[str] = []
    for module, source in sources.items():
        found += private_reaches(source, module, index)
    assert not found, "private names reached across layers:\n" + "\n".join(found)


def test_allowlist_stays_short() -> None:
    assert len(ALLOWED) <= 3, "fix the code instead of allowing more private accesses"


# ---------------------------------------------------------------------
# The checker itself, on small synthetic sources
# ---------------------------------------------------------------------

FAKE_MODULES = {
    ROOT,
    NATIVE,
    f"{ROOT}.errors",
    f"{ROOT}.database",
    f"{ROOT}.dbapi",
    f"{ROOT}.primitives",
    f"{ROOT}.primitives.queue",
    f"{ROOT}.primitives._sql",
    f"{ROOT}.sqlalchemy",
    f"{ROOT}.sqlalchemy.dialect",
}


# Which layers define which private names, in the synthetic package.
FAKE_INDEX = private_index(
    {
        f"{ROOT}.database": (
            "class Database:\n"
            "    def _stmt(self, sql): ...\n"
            "    def _w(self, stmt): ...\n"
            "    def _wake_hub(self): ...\n"
        ),
        f"{ROOT}.dbapi": (
            "_registry = {}\n"
            "class Connection:\n"
            "    def __init__(self):\n"
            "        self._begin_write_eagerly = False\n"
            "    def _run_prepared(self): ...\n"
        ),
        f"{ROOT}.primitives.queue": (
            "class ClaimIterator:\n    __slots__ = ('_wait_hint', '_mark', '_w')\n"
        ),
        NATIVE: "def _panic_for_tests() -> None: ...\n",
    }
)


def check(source: str, module: str) -> list[str]:
    return [
        line.split(": ", 1)[1]
        for line in private_reaches(source, module, FAKE_INDEX, is_module=FAKE_MODULES.__contains__)
    ]


def test_index_records_the_defining_layers() -> None:
    assert FAKE_INDEX["_stmt"] == {2}
    assert FAKE_INDEX["_begin_write_eagerly"] == {3}
    assert FAKE_INDEX["_w"] == {1, 2}
    assert FAKE_INDEX["_panic_for_tests"] == {0}
    assert "__init__" not in FAKE_INDEX


CLEAN = [
    # Own privates, through self/cls or defined in the file.
    (
        f"{ROOT}.primitives.queue",
        "class Q:\n"
        "    _cache = {}\n"
        "    def __init__(self):\n"
        "        self._n = 0\n"
        "    def _helper(self):\n"
        "        return self._n + Q._cache.get(1, 0)\n"
        "    @classmethod\n"
        "    def make(cls):\n"
        "        return cls._cache\n"
        "def f(other: Q):\n"
        "    return other._helper(), other._n, getattr(other, '_n', None)\n",
    ),
    # The same layer's private modules and names.
    (
        f"{ROOT}.primitives.queue",
        "from alkdev_storage.primitives import _sql\n"
        "from alkdev_storage.primitives._sql import CLAIM, _ROW\n"
        "x = _sql._PRIVATE_BUT_SAME_LAYER\n",
    ),
    # The native module, from any layer, and public names of lower layers.
    (
        f"{ROOT}.sqlalchemy.dialect",
        "import alkdev_storage\n"
        "from alkdev_storage import _native, dbapi\n"
        "from alkdev_storage.dbapi import connect\n"
        "db = _native.Database\n"
        "n = alkdev_storage._native.sqlite_version()\n"
        "c = dbapi.connect('x.db')\n",
    ),
    # Dunders are not private.
    (
        f"{ROOT}.database",
        "from alkdev_storage import _native\nclass D(_native.Database):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.__class__.__name__\n",
    ),
    # Private names of third-party modules and objects are not a layering
    # matter (no module of ours defines them).
    (
        f"{ROOT}.sqlalchemy.dialect",
        "import os\nfrom sqlalchemy.sql import _typing\n"
        "os._exit\n"
        "def f(compiled):\n    return compiled._result_columns\n",
    ),
    # Another module of the same layer.
    (f"{ROOT}.primitives.tasks", "def f(it):\n    return it._wait_hint\n"),
]

DIRTY = [
    (
        f"{ROOT}.sqlalchemy.dialect",
        "from alkdev_storage.dbapi import _run_prepared\n",
        "imports private name _run_prepared from alkdev_storage.dbapi",
    ),
    (
        f"{ROOT}.database",
        "from alkdev_storage.primitives import _sql\n",
        "imports private name _sql from alkdev_storage.primitives",
    ),
    (
        f"{ROOT}.database",
        "from alkdev_storage.primitives._sql import NOTIFY\n",
        "imports from private module alkdev_storage.primitives._sql",
    ),
    (
        f"{ROOT}.database",
        "import alkdev_storage.primitives._sql as s\n",
        "imports private module alkdev_storage.primitives._sql",
    ),
    (
        f"{ROOT}.sqlalchemy.dialect",
        "from alkdev_storage import dbapi as _dbapi\n_dbapi._registry\n",
        "_dbapi._registry (private name of alkdev_storage.dbapi)",
    ),
    (
        f"{ROOT}.sqlalchemy.dialect",
        "import alkdev_storage\nalkdev_storage.dbapi._registry\n",
        "alkdev_storage.dbapi._registry (private name of alkdev_storage.dbapi)",
    ),
    (
        f"{ROOT}.dbapi",
        "from alkdev_storage import _native\n_native._panic_for_tests()\n",
        "_native._panic_for_tests (private name of alkdev_storage._native)",
    ),
    (
        f"{ROOT}.primitives.queue",
        "def enqueue(db):\n    return db._stmt('SELECT 1')\n",
        "db._stmt (private name of layer database)",
    ),
    (
        f"{ROOT}.sqlalchemy.dialect",
        "def begin(conn):\n    return getattr(conn, '_begin_write_eagerly', False)\n",
        "conn._begin_write_eagerly (private name of layer dbapi)",
    ),
    (
        f"{ROOT}.primitives.queue",
        "def f(tx):\n    tx._stmt = 1\n",
        "tx._stmt (private name of layer database)",
    ),
    (
        f"{ROOT}.sqlalchemy.dialect",
        "def f(conn):\n    return conn.dbapi_connection._w\n",
        "conn.dbapi_connection._w (private name of layer primitives, database)",
    ),
]


@pytest.mark.parametrize(("module", "source"), CLEAN)
def test_checker_accepts_clean_sources(module: str, source: str) -> None:
    assert check(source, module) == []


@pytest.mark.parametrize(("module", "source", "expected"), DIRTY)
def test_checker_reports_each_violation(module: str, source: str, expected: str) -> None:
    assert check(source, module) == [expected]


def test_checker_reports_line_numbers() -> None:
    found = private_reaches(
        "x = 1\n\ndef f(db):\n    return db._stmt(1)\n",
        f"{ROOT}.primitives.queue",
        FAKE_INDEX,
        is_module=FAKE_MODULES.__contains__,
    )
    assert found == [f"{ROOT}.primitives.queue:4: db._stmt (private name of layer database)"]


def test_a_name_also_defined_in_the_same_layer_still_counts() -> None:
    # `_w` is defined by the primitives and by the Database: from the
    # primitives, `db._w` may be either, so it counts; `self._w` does not.
    assert check("def f(db):\n    return db._w\n", f"{ROOT}.primitives.lock") == [
        "db._w (private name of layer database)"
    ]
    assert (
        check("class L:\n    def f(self):\n        return self._w\n", f"{ROOT}.primitives.lock")
        == []
    )


def test_package_modules_are_found_and_layered() -> None:
    modules = dict(package_modules())
    for expected in ("errors", "database", "dbapi", "primitives", "sqlalchemy"):
        assert f"{ROOT}.{expected}" in modules
    assert is_package_module(NATIVE) and is_package_module(f"{ROOT}.primitives")
    assert not is_package_module(f"{ROOT}.nonexistent")
