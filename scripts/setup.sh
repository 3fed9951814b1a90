#!/usr/bin/env bash
# Set-up shared by scripts/test.sh and scripts/bench.sh: a virtual
# environment, a release build of the abi3 wheel (bundled SQLite), and that
# wheel installed (not an editable build) with the test/bench extras.
# Idempotent; the Rust build is cached in target/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
VENV="$(cd "$VENV" && pwd)"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "maturin>=1.7,<2"
rm -rf dist
"$VENV/bin/maturin" build --release -q -o dist
WHEEL="$(ls dist/alkdev_storage-*.whl)"
"$VENV/bin/python" -m pip install -q --force-reinstall --no-deps "$WHEEL"
"$VENV/bin/python" -m pip install -q "${WHEEL}[test,bench,dev]"
echo "setup: installed $(basename "$WHEEL") into $VENV"
