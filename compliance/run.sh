#!/usr/bin/env bash
# SQLAlchemy's third-party dialect compliance suite (sqlalchemy.testing.suite)
# against sqlite+honker, in its own pytest sessions (SQLAlchemy's plugin
# takes over the session; its config is read from setup.cfg here).
#
#  1. the full suite, with SQLAlchemy's SQLite provisioning (an attached
#     ``test_schema`` database);
#  2. again without the attached database, so that reads run on the reader
#     pool (an attached database lives on the writer only, which routes
#     every read there); schema tests are skipped in this pass.
#
# Usage: bash compliance/run.sh   (VENV=/path/to/venv to pick the interpreter)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
PY="${VENV:-../.venv}/bin/python"
rm -f ./*.db ./*.db-wal ./*.db-shm
echo "== compliance: full suite (attached test_schema)"
"$PY" -m pytest -q "$@"
rm -f ./*.db ./*.db-wal ./*.db-shm
echo "== compliance: reader-pool pass (no attached database)"
HONKER_COMPLIANCE_READERS=1 "$PY" -m pytest -q "$@"
rm -f ./*.db ./*.db-wal ./*.db-shm
