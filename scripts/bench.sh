#!/usr/bin/env bash
# The main job: every benchmark, side by side with the alternatives, on a
# release build. Figures are printed and kept as JSON in bench-results/.
# Pass --quick for a short run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
PY="$VENV/bin/python"
bash scripts/redis_server.sh  # benches/bench_events.py starts its own server
mkdir -p bench-results
for b in benches/bench_*.py; do
  name="$(basename "$b" .py)"
  echo
  echo "== $name"
  "$PY" "$b" "$@" --json "bench-results/$name.json"
done
