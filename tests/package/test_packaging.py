"""The installed package: wheel contents, bundled SQLite, and stubs that
match the native module."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import alkdev_storage
from alkdev_storage import _native

PKG = Path(alkdev_storage.__file__).parent


def test_runs_against_installed_wheel_when_required() -> None:
    # scripts/test.sh sets this so a packaging mistake fails CI instead of
    # passing against the source tree.
    if os.environ.get("ALKDEV_REQUIRE_WHEEL") == "1":
        assert "site-packages" in str(PKG), PKG
    assert (PKG / "py.typed").is_file()
    assert (PKG / "_native.pyi").is_file()


def test_bundled_sqlite_not_the_system_one() -> None:
    version = tuple(int(x) for x in alkdev_storage.sqlite_version().split("."))
    assert version >= (3, 45, 0)
    assert _native.sqlite_version_number >= 3045000
    so = Path(_native.__file__)
    out = subprocess.run(["ldd", str(so)], capture_output=True, text=True, check=False).stdout
    assert "libsqlite3" not in out, out


def _stub_tree() -> ast.Module:
    return ast.parse((PKG / "_native.pyi").read_text())


def test_stub_names_match_native_module() -> None:
    tree = _stub_tree()
    stub_names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef):
            stub_names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            stub_names.add(node.target.id)
    aliases = {"Value", "Params", "Row"}
    public = {n for n in dir(_native) if not n.startswith("__")}
    assert stub_names - aliases <= public, (stub_names - aliases) - public
    assert public <= stub_names, public - stub_names


def test_stub_methods_match_native_classes() -> None:
    for node in _stub_tree().body:
        if not isinstance(node, ast.ClassDef):
            continue
        cls = getattr(_native, node.name)
        if issubclass(cls, BaseException):
            continue
        declared = {
            n.name for n in node.body if isinstance(n, ast.FunctionDef) and n.name != "__init__"
        } | {
            n.target.id
            for n in node.body
            if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
        }
        for name in declared:
            assert hasattr(cls, name), f"{node.name}.{name} is in the stub but not native"
        native = {n for n in vars(cls) if not n.startswith("_")}
        assert native <= declared, f"{node.name}: not in stub: {native - declared}"


def _is_doc(node: ast.stmt | None) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        and bool(node.value.value.strip())
    )


def undocumented(body: list[ast.stmt], prefix: str = "") -> list[str]:
    """Public names in a stub ``body`` without a docstring: classes,
    functions and properties (a docstring as first statement), module
    constants, type aliases and class attributes (a string right after the
    assignment, the convention IDEs show). Names with a leading underscore
    are private and skipped; members of a class are checked recursively."""
    missing: list[str] = []
    for i, node in enumerate(body):
        following = body[i + 1] if i + 1 < len(body) else None
        if isinstance(node, ast.ClassDef | ast.FunctionDef):
            if node.name.startswith("_"):
                continue
            if ast.get_docstring(node) is None or not _is_doc(node.body[0]):
                missing.append(prefix + node.name)
            if isinstance(node, ast.ClassDef):
                missing += undocumented(node.body, f"{prefix}{node.name}.")
        elif isinstance(node, ast.AnnAssign | ast.Assign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and not target.id.startswith("_"):
                    if not _is_doc(following):
                        missing.append(prefix + target.id)
    return missing


def test_every_public_stub_name_has_a_docstring() -> None:
    # The stub's docstrings are what IDEs show for the native module.
    tree = _stub_tree()
    assert ast.get_docstring(tree), "the stub module has no docstring"
    missing = undocumented(tree.body)
    assert not missing, f"public names in _native.pyi without a docstring: {missing}"


def test_docstring_check_catches_a_missing_one() -> None:
    source = (
        "X: int\n"
        '"""documented."""\n'
        "Y: int\n"
        "def f() -> None: ...\n"
        "def _private() -> None: ...\n"
        "class C:\n"
        '    """documented."""\n'
        "    a: int\n"
        "    @property\n"
        "    def p(self) -> int: ...\n"
        "    def m(self) -> None:\n"
        '        """documented."""\n'
        "    def __enter__(self) -> None: ...\n"
    )
    assert undocumented(ast.parse(source).body) == ["Y", "f", "C.a", "C.p"]


def test_mypy_accepts_the_stubs_in_use(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import alkdev_storage\n"
        "db = alkdev_storage.open('x.db')\n"
        "s = db.prepare('SELECT 1')\n"
        "row = db.fetchone(s)\n"
        "r = db.execute('CREATE TABLE IF NOT EXISTS t(x)')\n"
        "n: int = r.changes + r.lastrowid\n"
        "with db.transaction() as tx:\n"
        "    tx.execute(s, ())\n"
        "    with tx.savepoint():\n"
        "        pass\n"
        "cols: tuple[str, ...] = s.columns\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", str(sample)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
