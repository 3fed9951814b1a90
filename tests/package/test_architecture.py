"""docs/ARCHITECTURE.md stays true: every source file it should map is
named in it, and every file it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
NAMED = set(re.findall(r"`([\w/*.]+\.(?:rs|py|pyi))`", DOC))


def _mapped(rel: str) -> bool:
    folder = rel.rsplit("/", 1)[0] if "/" in rel else ""
    suffix = rel.rsplit(".", 1)[1]
    return rel in NAMED or (folder != "" and f"{folder}/*.{suffix}" in NAMED)


def test_every_source_file_is_mapped() -> None:
    missing: list[str] = []
    for crate in sorted((ROOT / "crates").iterdir()):
        for path in sorted((crate / "src").rglob("*.rs")):
            rel = path.relative_to(crate / "src").as_posix()
            if rel.endswith("tests.rs") and rel != "tests.rs" and "/" in rel:
                continue  # unit tests beside the code they test
            if not _mapped(rel):
                missing.append(f"crates/{crate.name}/src/{rel}")
    pkg = ROOT / "python" / "alkdev_storage"
    for path in sorted(pkg.rglob("*.py*")):
        rel = path.relative_to(pkg).as_posix()
        if path.suffix in (".py", ".pyi") and not _mapped(rel):
            missing.append(f"python/alkdev_storage/{rel}")
    assert not missing, "not in docs/ARCHITECTURE.md: " + ", ".join(missing)


def test_every_named_file_exists() -> None:
    roots = [ROOT, ROOT / "python" / "alkdev_storage"]
    roots += [c / "src" for c in (ROOT / "crates").iterdir()]
    stale = [
        name
        for name in NAMED
        if "*" not in name and not any((r / name).exists() for r in roots)
    ]
    assert not stale, "named in docs/ARCHITECTURE.md but missing: " + ", ".join(sorted(stale))
