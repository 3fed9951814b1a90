#!/bin/sh
# Build honker's SQLite loadable extension (the registry package
# `honker-extension`) for the interop tests in tests/primitives/test_primitives_interop.py.
#
#   sh scripts/build_honker_ext.sh [OUT_DIR]      (default: target/honker-ext)
#
# cargo fetches the package from the registry; it is built from cargo's
# registry copy (nothing is copied into this repository) with its own
# Cargo.lock. Prints the path of the built library on the last line.
# The tests find it there, or through $HONKER_EXT_PATH.
set -eu
VERSION="${HONKER_EXT_VERSION:-0.5.0}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-$ROOT/target/honker-ext}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT INT TERM
mkdir -p "$WORK/src"
cat > "$WORK/Cargo.toml" <<TOML
[package]
name = "fetch-honker-extension"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
honker-extension = "=$VERSION"

[workspace]
TOML
: > "$WORK/src/lib.rs"
# Resolve and download; metadata gives the unpacked package's manifest.
MANIFEST="$(cargo metadata --format-version 1 --manifest-path "$WORK/Cargo.toml" |
  python3 -c 'import json, sys
d = json.load(sys.stdin)
print(next(p["manifest_path"] for p in d["packages"] if p["name"] == "honker-extension"))')"
cargo build --release --locked --manifest-path "$MANIFEST" --target-dir "$OUT" >&2
for name in libhonker_ext.so libhonker_ext.dylib honker_ext.dll; do
  if [ -f "$OUT/release/$name" ]; then
    echo "$OUT/release/$name"
    exit 0
  fi
done
echo "honker extension was not built" >&2
exit 1
