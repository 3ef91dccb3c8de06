"""``python -m benchmarks [--quick] [NAME ...]``: run every benchmark, print one ratio table."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback
from pathlib import Path

from benchmarks.common import Row


def _modules(names: list[str]) -> list[str]:
    found = sorted(
        m.name
        for m in pkgutil.iter_modules([str(Path(__file__).parent)])
        if m.name.startswith("bench_")
    )
    return [m for m in found if not names or any(n in m for n in names)]


def _print(rows: list[Row]) -> None:
    header = f"{'figure':46} {'ours':>10} {'anchor':>10} {'ratio':>7}  {'goal':12} anchor / note"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.name:46} {r.ours:>9.3f}{r.unit:1} {r.anchor:>9.3f}{r.unit:1} {r.ratio:>7.2f}  "
            f"{r.goal:12} {r.anchor_name}{'; ' + r.note if r.note else ''}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument(
        "names", nargs="*", help="run only benchmarks whose module name contains one of these"
    )
    parser.add_argument("--quick", action="store_true", help="smaller inputs, for a smoke run")
    args = parser.parse_args()
    rows: list[Row] = []
    failed = 0
    for name in _modules(args.names):
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            rows.extend(importlib.import_module(f"benchmarks.{name}").run(quick=args.quick))
        except Exception:  # a broken benchmark is reported, the others still run
            failed += 1
            traceback.print_exc()
    _print(rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
