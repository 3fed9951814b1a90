"""honker's SQLite loadable extension, for stdlib ``sqlite3`` connections.

The honker binding offers ``extension_info()`` and ``load_extension(conn)``
so that a plain :mod:`sqlite3` connection can call honker's SQL functions
(``honker_enqueue``, ``notify``, ...) on the same file. This package does
not ship the extension (the ``_native`` module links honker-core
directly); these two functions find a build of honker's own extension
(registry package ``honker-extension``, built by
``scripts/build_honker_ext.sh``) and load it.

Where the extension is looked for, first found wins:

1. the ``path`` argument;
2. the environment variable ``HONKER_EXT_PATH``;
3. ``target/honker-ext/release/`` of a source checkout (next to the
   ``python/`` directory of an editable install), then of the current
   directory.

A missing build raises :class:`~alkdev_storage.errors.ExtensionNotAvailable`
naming every place tried; so does a Python whose :mod:`sqlite3` cannot load
extensions.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from alkdev_storage.errors import ExtensionNotAvailable

__all__ = ["ENTRYPOINT", "extension_info", "load_extension"]

ENTRYPOINT = "sqlite3_honkerext_init"
"""The extension's init function (SQLite derives the same name from
``libhonker_ext``)."""

_FILES = ("libhonker_ext.so", "libhonker_ext.dylib", "honker_ext.dll")
_ENV = "HONKER_EXT_PATH"


def _candidates(path: str | os.PathLike[str] | None) -> list[Path]:
    if path is not None:
        return [Path(path)]
    env = os.environ.get(_ENV)
    if env:
        return [Path(env)]
    roots = [Path(__file__).resolve().parents[3], Path.cwd()]
    out: list[Path] = []
    for root in roots:
        for name in _FILES:
            p = root / "target" / "honker-ext" / "release" / name
            if p not in out:
                out.append(p)
    return out


def extension_info(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Where honker's extension is: ``{"available": bool, "path": str |
    None, "entrypoint": str, "searched": [str, ...], "source": "argument" |
    "env" | "checkout" | None}`` (never raises for a missing build)."""
    source = "argument" if path is not None else ("env" if os.environ.get(_ENV) else "checkout")
    searched = _candidates(path)
    found = next((p for p in searched if p.is_file()), None)
    return {
        "available": found is not None,
        "path": None if found is None else str(found),
        "entrypoint": ENTRYPOINT,
        "searched": [str(p) for p in searched],
        "source": source if found is not None else None,
    }


def load_extension(conn: Any, path: str | os.PathLike[str] | None = None) -> str:
    """Load honker's extension into ``conn`` (a :mod:`sqlite3` connection,
    or anything with ``enable_load_extension`` / ``load_extension``) and
    return the path loaded. Loading is enabled only for the call.
    :class:`~alkdev_storage.errors.ExtensionNotAvailable` if there is no
    build or the connection cannot load extensions."""
    info = extension_info(path)
    if not info["available"]:
        raise ExtensionNotAvailable(
            "honker's SQLite extension was not found (build it with "
            f"scripts/build_honker_ext.sh or set {_ENV}); looked at: " + ", ".join(info["searched"])
        )
    enable = getattr(conn, "enable_load_extension", None)
    if enable is None:
        raise ExtensionNotAvailable(
            f"{type(conn).__name__} cannot load SQLite extensions (this Python's sqlite3 "
            "was built without extension loading)"
        )
    ext: str = info["path"]
    enable(True)
    try:
        if sys.version_info >= (3, 12) and type(conn).__module__ == "sqlite3":
            conn.load_extension(ext, entrypoint=ENTRYPOINT)
        else:
            conn.load_extension(ext)
    finally:
        enable(False)
    return ext
