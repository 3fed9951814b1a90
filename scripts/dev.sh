#!/usr/bin/env bash
# Fast edit-and-test loop for developers (CI uses scripts/test.sh instead,
# which builds and tests the release wheel).
#
#   bash scripts/dev.sh                 # build + whole pytest suite
#   bash scripts/dev.sh tests/native -x # build + the given pytest arguments
#   NO_BUILD=1 bash scripts/dev.sh ...  # skip the build (Python-only edits)
#
# Builds the native module in place with `maturin develop` (dev profile:
# our crate unoptimised and incremental, dependencies such as the bundled
# SQLite optimised once, see Cargo.toml) into an editable install in
# $VENV (default .venv-dev), so edits to python/ are live without a
# rebuild. CARGO_TARGET_DIR may point at a directory shared by worktrees.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${VENV:-.venv-dev}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip "maturin>=1.7,<2"
fi
VENV="$(cd "$VENV" && pwd)"
if [ "${NO_BUILD:-0}" != "1" ]; then
  VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" "$VENV/bin/maturin" develop -q --extras test,bench,dev
fi
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
