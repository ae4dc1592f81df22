"""CLI: python -m hft_lab bench [--quick] [--json] [--out FILE]."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .runner import SECTIONS, format_table, run_suite, to_json


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="hft-lab bench", description="Benchmark both backends against the references")
    ap.add_argument("--quick", action="store_true", help="fewer calls (a quick look, noisier)")
    ap.add_argument("--json", action="store_true", help="print the machine-readable JSON instead of the table")
    ap.add_argument("--out", default="bench-results/latest.json", help="also write the JSON here")
    ap.add_argument("--only", nargs="*", help="sections to run (default: all): " + ", ".join(SECTIONS))
    args = ap.parse_args(argv)
    suite = run_suite(quick=args.quick, only=args.only, progress=None if args.json else lambda m: print(f"  {m.op} {m.size} {m.backend}: p50 {m.p50_us:.1f} µs", file=sys.stderr))
    js = to_json(suite)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(js)
    print(js if args.json else format_table(suite))
    return 0


if __name__ == "__main__":
    sys.exit(main())
