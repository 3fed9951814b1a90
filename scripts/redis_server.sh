#!/usr/bin/env bash
# Make sure a `redis-server` binary is available for the Redis Streams
# transport tests and benchmarks (Debian's redis-server package). The
# tests start their own server on 127.0.0.1 on a free port and stop it:
# nothing here starts a service. Idempotent and quiet.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  SUDO="sudo"
fi
if command -v apt-get >/dev/null 2>&1; then
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  # The package may start a system service; the tests never use it.
  if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true
  fi
fi
command -v redis-server >/dev/null 2>&1 || { echo "redis-server is not available" >&2; exit 1; }
