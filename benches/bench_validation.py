"""Generated validation models vs hand-written pydantic, side by side.

Validates the same insert payloads of a tenant ``nodes``-like table (id
TEXT with a Python default, graph_id TEXT, key String(255), type
String(64), attributes JSON NOT NULL with a default, key_version INTEGER
NULL, created_at an aware-datetime TypeDecorator with a default) with:

* ``generated``: ``model_for(nodes, "insert")``;
* ``hand``: the model a developer writes by hand for the same columns
  with pydantic's built-ins: same lengths, 64-bit bounds, aware datetimes,
  unknown keys refused, finite floats, ``JsonValue`` for the JSON column
  (which, unlike the generated type, lets null through, and NaN/Infinity
  inside JSON text);
* ``hand_same``: the same, with the generated model's JSON type
  (``JsonNotNull``): what is left is the cost of generation itself.

Two workloads: Python dicts (``model_validate``, the target) and JSON
text (``model_validate_json``). Every round walks the payloads in chunks
of 1,000, timing the models on each chunk back to back (order alternating),
so a ratio compares runs a few milliseconds apart on a shared machine.
Reported: median ns/payload over the rounds with the spread (max/min of
the rounds), and the median of the per-chunk ratios generated / hand
(target: <= 1.2x) and generated / hand_same.

Run:  python benches/bench_validation.py [--quick] [--json PATH]
"""

from __future__ import annotations

import datetime as dt
import json
import random
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Annotated, Any

import _cli
import sqlalchemy as sa
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

from alkdev_storage.domain import model_for
from alkdev_storage.domain.column_types import JsonNotNull

TARGET = 1.2
CHUNK = 1_000
I64 = 2**63


class UTCDateTime(sa.types.TypeDecorator[dt.datetime]):
    """TEXT on disk, aware datetimes in Python (the schema's UTCDateTime)."""

    impl = sa.String(24)
    cache_ok = True

    @property
    def python_type(self) -> type[dt.datetime]:
        return dt.datetime


nodes = sa.Table(
    "nodes",
    sa.MetaData(),
    sa.Column("id", sa.String, primary_key=True, default=lambda: uuid.uuid4().hex),
    sa.Column("graph_id", sa.String, nullable=False),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("attributes", sa.JSON, nullable=False, default=dict),
    sa.Column("key_version", sa.Integer, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False,
              default=lambda: dt.datetime.now(dt.UTC)),
)


class HandNodeInsert(BaseModel):
    """The same columns, written by hand with pydantic's built-ins."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    id: str | None = None
    graph_id: str
    key: Annotated[str, Field(max_length=255)]
    type: Annotated[str, Field(max_length=64)]
    attributes: JsonValue = Field(default_factory=dict)
    key_version: Annotated[int, Field(ge=-I64, le=I64 - 1)] | None = None
    created_at: AwareDatetime | None = None


class HandSameNodeInsert(HandNodeInsert):
    """The same, with the generated model's JSON type."""

    attributes: JsonNotNull = Field(default_factory=dict)


def payloads(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    graph = [uuid.uuid4().hex[:26].upper() for _ in range(20)]
    types = ["call", "result", "error", "principal", "agent"]
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    out = []
    for i in range(n):
        p: dict[str, Any] = {
            "graph_id": rng.choice(graph),
            "key": f"call-{i}",
            "type": rng.choice(types),
            "attributes": {
                "operation": f"op-{rng.randrange(100)}",
                "timeout_ms": rng.randrange(1, 60_000),
                "retries": rng.randrange(5),
                "tags": ["a", "b"][: rng.randrange(3)],
                "ok": rng.random() < 0.5,
            },
        }
        if rng.random() < 0.3:
            p["key_version"] = rng.randrange(1, 10)
        if rng.random() < 0.5:
            p["created_at"] = t0 + dt.timedelta(seconds=i)
        out.append(p)
    return out


def summarize(samples: list[float]) -> dict[str, float]:
    return {"median_ns": statistics.median(samples), "spread": max(samples) / min(samples)}


def run(quick: bool) -> dict[str, Any]:
    n = 20_000 if quick else 100_000
    rounds = 3 if quick else 5
    generated = model_for(nodes, "insert")
    data = payloads(n)
    texts = [json.dumps(p, default=str).encode() for p in data]
    # Same verdicts, same values.
    for p in data[:1000]:
        g, h = generated.model_validate(p), HandNodeInsert.model_validate(p)
        assert g.model_dump(exclude_unset=True) == h.model_dump(exclude_unset=True)
    models = {"generated": generated, "hand": HandNodeInsert, "hand_same": HandSameNodeInsert}
    result: dict[str, Any] = {"payloads": n, "rounds": rounds, "workloads": {}}
    for workload, items in (("python", data), ("json", texts)):
        fns: dict[str, Callable[[Any], Any]] = {
            k: (m.model_validate if workload == "python" else m.model_validate_json)
            for k, m in models.items()
        }
        for fn in fns.values():  # warm up
            for item in items[:CHUNK]:
                fn(item)
        totals: dict[str, list[float]] = {k: [] for k in fns}
        ratios: dict[str, list[float]] = {"hand": [], "hand_same": []}
        order = list(fns)
        for _ in range(rounds):
            spent = dict.fromkeys(fns, 0)
            for i, start in enumerate(range(0, n, CHUNK)):
                part = items[start : start + CHUNK]
                took = {}
                for k in order if i % 2 == 0 else order[::-1]:
                    fn = fns[k]
                    t0 = time.perf_counter_ns()
                    for item in part:
                        fn(item)
                    took[k] = time.perf_counter_ns() - t0
                    spent[k] += took[k]
                for k in ratios:
                    ratios[k].append(took["generated"] / took[k])
            for k in fns:
                totals[k].append(spent[k] / n)
        ratio = statistics.median(ratios["hand"])
        result["workloads"][workload] = {
            **{k: summarize(v) for k, v in totals.items()},
            "ratio": ratio,
            "ratio_p25_p75": statistics.quantiles(ratios["hand"], n=4)[::2],
            "ratio_same": statistics.median(ratios["hand_same"]),
            "target": TARGET if workload == "python" else None,
            "met": ratio <= TARGET if workload == "python" else None,
        }
    return result


def report(result: dict[str, Any]) -> str:
    lines = [
        f"Validation of {result['payloads']:,} insert payloads (nodes-like table), "
        f"median ns/payload over {result['rounds']} rounds (± max/min of the rounds); "
        "ratios: median of the per-chunk ratios generated / hand (p25-p75) "
        "and generated / hand_same",
        f"{'input':<7} {'generated':>14} {'hand':>14} {'hand_same':>14} "
        f"{'vs hand':>8} {'p25-p75':>11} {'vs same':>8}  target",
    ]
    for name, w in result["workloads"].items():
        cells = " ".join(
            f"{w[k]['median_ns']:>7.0f} ±{w[k]['spread']:.2f}"
            for k in ("generated", "hand", "hand_same")
        )
        lo, hi = w["ratio_p25_p75"]
        target = (
            f"<={w['target']:.1f}x " + ("ok" if w["met"] else "MISSED")
            if w["target"] is not None
            else "(reported)"
        )
        lines.append(
            f"{name:<7} {cells} {w['ratio']:>7.2f}x {lo:>5.2f}-{hi:<5.2f} "
            f"{w['ratio_same']:>7.2f}x  {target}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return _cli.main(__doc__, run, report, argv)


if __name__ == "__main__":
    raise SystemExit(main())
