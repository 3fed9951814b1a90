"""The command line every benchmark script shares:
``python benches/bench_X.py [--quick] [--json PATH]``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def main(
    doc: str | None,
    run: Callable[[bool], dict[str, Any]],
    report: Callable[[dict[str, Any]], str],
    argv: list[str] | None = None,
) -> int:
    """Run the benchmark (short with ``--quick``), print its report and,
    with ``--json PATH``, keep the figures there."""
    ap = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small counts, 3 repeats")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = ap.parse_args(argv)
    result = run(args.quick)
    print(report(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0
