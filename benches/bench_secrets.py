"""Encrypted secrets: encrypt + decrypt of a 1 KiB secret per op, side by
side with two floors, and the envelope's size overhead.

``floor_aesgcm`` is raw ``AESGCM.encrypt`` + ``decrypt`` from the
``cryptography`` package with a prepared cipher object, a fixed nonce and
no envelope: the cipher alone. ``floor_text`` adds what any text envelope
in a JSON attribute must pay: a fresh nonce and unpadded base64url of
``nonce || ciphertext`` (encode, then decode with the stdlib's fastest
decoder, ``binascii.a2b_base64``).

``ours`` is ``encrypt(plaintext, binding, provider)`` then
``decrypt(envelope, binding, provider)``: key lookup and check, a fresh
``os.urandom`` nonce, the binding's associated data, AES-256-GCM, the text
envelope (base64url) and its parse. Each workload runs ``n`` ops per
repeat, floor and ours interleaved in every repeat; the median µs/op is
reported with the spread (max/min of the repeats).

Rotation: ``n`` secret nodes written through a ``GraphStore`` with the
secret graph's sealer into a real tenant file, then rotated to the next
key version by ``run_rotation`` (batches of 200, one write transaction
each) once per repeat (version 1 -> 2 -> 3 ...); µs per rotated row, side
by side with our encrypt + decrypt of the same value (the crypto floor of
a row).

Run:  python benches/bench_secrets.py [--quick] [--json PATH]
"""

from __future__ import annotations

import base64
import binascii
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _cli
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import alkdev_storage
from alkdev_storage.domain import GraphStore, Principal, SecretSealer, init_tenant
from alkdev_storage.domain.rotation import rotation_status, run_rotation, start_rotation
from alkdev_storage.domain.secrets import (
    Binding,
    StaticKeyProvider,
    decrypt,
    encrypt,
    envelope_size,
)

SIZES = (64, 1024, 16384)
FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def _time(fn: Callable[[], object], n: int) -> float:
    """µs per call over n calls."""
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def _workloads(size: int) -> dict[str, Callable[[], object]]:
    key = os.urandom(32)
    provider = StaticKeyProvider({1: key})
    where = Binding("01HORG00000000000000000000", "nodes", "attributes.value",
                    "01HNODE0000000000000000000")
    plaintext = os.urandom(size)
    cipher = AESGCM(key)
    nonce = os.urandom(12)
    aad = where.associated_data(1)

    def floor() -> object:
        return cipher.decrypt(nonce, cipher.encrypt(nonce, plaintext, aad), aad)

    def floor_text() -> object:
        n = os.urandom(12)
        text = base64.urlsafe_b64encode(n + cipher.encrypt(n, plaintext, aad)).rstrip(b"=")
        raw = binascii.a2b_base64(text.translate(FROM_URLSAFE) + b"=" * (-len(text) % 4))
        return cipher.decrypt(raw[:12], raw[12:], aad)

    def ours() -> object:
        return decrypt(encrypt(plaintext, where, provider), where, provider)

    assert ours() == plaintext == floor() == floor_text()
    return {"floor_aesgcm": floor, "floor_text": floor_text, "ours": ours}


def _rotation(rows: int, repeats: int) -> dict[str, Any]:
    org = "01HORG00000000000000000000"
    keys = {v: os.urandom(32) for v in range(1, repeats + 2)}
    with tempfile.TemporaryDirectory() as tmp:
        db = alkdev_storage.open(Path(tmp) / "tenant.db")
        try:
            init_tenant(db, org)
            first = StaticKeyProvider(keys, current=1)
            admin = Principal.tenant_admin(org, "bench")
            with GraphStore(db, org, admin, sealer=SecretSealer(first)) as store:
                (gt,) = store.graph_types(name="secret-graph")
                g = store.create_graph(gt, "bench")
                value = "x" * 64
                for start in range(0, rows, 500):
                    store.add_nodes(g.id, [
                        (f"s{i}", "secret", {"name": f"s{i}", "value": value})
                        for i in range(start, min(rows, start + 500))
                    ])
            samples, floor = [], []
            where = Binding(org, "nodes", "attributes.value", "01HNODE0000000000000000000")
            for r in range(repeats):
                provider = StaticKeyProvider(keys, current=r + 2)
                start_rotation(db, org, provider, batch_size=200)
                t0 = time.perf_counter()
                progress = run_rotation(db, provider)
                samples.append((time.perf_counter() - t0) / rows * 1e6)
                assert progress is not None and progress.done == rows
                assert rotation_status(db, provider).done
                floor.append(_time(lambda p=provider: decrypt(encrypt(value, where, p), where, p),
                                   rows))
        finally:
            db.close()
    ours, base = statistics.median(samples), statistics.median(floor)
    return {
        "rows": rows,
        "batch_size": 200,
        "us_per_row": ours,
        "spread": max(samples) / min(samples),
        "floor_crypto_us": base,
        "ratio": ours / base,
    }


def run(quick: bool) -> dict[str, Any]:
    repeats = 3 if quick else 7
    n = 2_000 if quick else 10_000
    result: dict[str, Any] = {"repeats": repeats, "ops_per_repeat": n, "sizes": {}}
    for size in SIZES:
        work = _workloads(size)
        samples: dict[str, list[float]] = {name: [] for name in work}
        for _ in range(repeats):
            for name, fn in work.items():
                samples[name].append(_time(fn, n))
        figures = {
            name: {
                "us_per_op": statistics.median(values),
                "spread": max(values) / min(values),
            }
            for name, values in samples.items()
        }
        envelope = envelope_size(size)
        result["sizes"][str(size)] = {
            **figures,
            "ratio": figures["ours"]["us_per_op"] / figures["floor_aesgcm"]["us_per_op"],
            "ratio_text": figures["ours"]["us_per_op"] / figures["floor_text"]["us_per_op"],
            "envelope_chars": envelope,
            "overhead_chars": envelope - size,
            "overhead_pct": 100 * (envelope - size) / size,
        }
    result["rotation"] = _rotation(1_000 if quick else 5_000, repeats)
    return result


def report(result: dict[str, Any]) -> str:
    lines = [
        f"encrypt + decrypt per op (median of {result['repeats']} x "
        f"{result['ops_per_repeat']} ops; spread = max/min of the repeats)",
        f"{'plaintext':>10} {'aesgcm µs':>10} {'text µs':>8} {'ours µs':>8} {'x aesgcm':>9}"
        f" {'x text':>7} {'spread':>16} {'envelope':>9} {'overhead':>14}",
    ]
    for size, f in result["sizes"].items():
        spread = "/".join(f"{f[k]['spread']:.2f}" for k in ("floor_aesgcm", "floor_text", "ours"))
        lines.append(
            f"{size + ' B':>10} {f['floor_aesgcm']['us_per_op']:10.2f} "
            f"{f['floor_text']['us_per_op']:8.2f} {f['ours']['us_per_op']:8.2f} "
            f"{f['ratio']:9.2f} {f['ratio_text']:7.2f} {spread:>16}"
            f" {f['envelope_chars']:9d} {f['overhead_chars']:6d} ({f['overhead_pct']:5.1f}%)"
        )
    rot = result["rotation"]
    lines.append(
        f"rotation of {rot['rows']} secret nodes (batches of {rot['batch_size']}): "
        f"{rot['us_per_row']:.1f} µs/row (spread {rot['spread']:.2f}), "
        f"encrypt+decrypt alone {rot['floor_crypto_us']:.1f} µs, ratio {rot['ratio']:.2f}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(_cli.main(__doc__, run, report))
