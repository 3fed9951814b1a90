#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set-up, Rust checks and tests,
# lint and types, then pytest against the installed release wheel.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
export VENV
PY="$VENV/bin/python"

echo "== cargo fmt / clippy / test"
cargo fmt --all --check
cargo clippy --all-targets -q -- -D warnings
cargo test -q

echo "== ruff / mypy"
"$VENV/bin/ruff" check python tests benches
"$VENV/bin/mypy"

echo "== honker's SQLite extension from the registry (for the interop tests)"
HONKER_EXT_PATH="$(sh scripts/build_honker_ext.sh | tail -n 1)"
export HONKER_EXT_PATH

echo "== redis-server (the events tests start their own on a free port)"
bash scripts/redis_server.sh

echo "== pytest (against the installed wheel)"
ALKDEV_REQUIRE_WHEEL=1 ALKDEV_REQUIRE_INTEROP=1 ALKDEV_REQUIRE_REDIS=1 "$PY" -m pytest tests -q -p no:cacheprovider

echo "== SQLAlchemy dialect compliance suite (its own pytest sessions)"
VENV="$VENV" bash compliance/run.sh
