"""CLI: python -m hft_lab bench [--quick] [--json] [--only …] [--sizes family=a,b,c …] [--calls N]
[--concurrency 1,2,4] [--no-references] [--backends pyo3,grpc] [--out FILE]."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from .runner import FAMILIES, PARTS, SIZE_HELP, BenchConfig, format_table, parse_int_list, parse_sizes, run_suite, to_json


def build_config(args) -> BenchConfig:
    cfg = BenchConfig.quick_config() if args.quick else BenchConfig.full()
    changes: dict = {}
    if args.sizes:
        sizes = {k: list(v) for k, v in cfg.sizes.items()}
        for item in args.sizes:
            fam, sep, text = item.partition("=")
            fam = fam.strip()
            if not sep or fam not in FAMILIES:
                raise SystemExit(f"--sizes expects family=size,size,… with family one of {', '.join(FAMILIES)}; got {item!r}")
            try:
                sizes[fam] = parse_sizes(fam, text)
            except ValueError as e:
                raise SystemExit(f"--sizes {item!r}: {e}")
        changes["sizes"] = sizes
    if args.calls is not None:
        changes["calls"] = args.calls
    if args.concurrency:
        try:
            changes["concurrency"] = parse_int_list(args.concurrency)
        except ValueError as e:
            raise SystemExit(str(e))
    if args.no_references:
        changes["references"] = False
    if args.backends:
        bs = [b.strip() for b in args.backends.split(",") if b.strip()]
        if not bs or any(b not in ("pyo3", "grpc") for b in bs):
            raise SystemExit(f"--backends expects pyo3, grpc or pyo3,grpc; got {args.backends!r}")
        changes["backends"] = bs
    if args.cell_seconds is not None:
        changes["cell_seconds"] = args.cell_seconds
    return dataclasses.replace(cfg, **changes)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="hft-lab bench",
        description="Benchmark both backends (PyO3 in-process, gRPC to grpcd) against each other and the reference libraries.",
        epilog="sizes (editable with --sizes): " + "; ".join(f"{k}: {v}" for k, v in SIZE_HELP.items()),
    )
    ap.add_argument("--quick", action="store_true", help="small sizes and few calls (< 30 s; noisier)")
    ap.add_argument("--json", action="store_true", help="print the machine-readable JSON instead of the table")
    ap.add_argument("--out", default="bench-results/latest.json", help="also write the JSON here ('' for no file)")
    ap.add_argument("--only", nargs="*", help="what to run (default: all): " + ", ".join(PARTS))
    ap.add_argument(
        "--sizes", action="append", metavar="FAMILY=S1,S2", help="payload sizes of an operation family, e.g. mean_reversion=1k,1M"
    )
    ap.add_argument("--calls", type=int, help="timed calls per cell at most (the time budget may stop earlier)")
    ap.add_argument("--cell-seconds", type=float, help="time budget of a timed cell")
    ap.add_argument("--concurrency", help="concurrent callers to measure, e.g. 1,2,4")
    ap.add_argument("--no-references", action="store_true", help="skip pandas / cvxpy / hmmlearn / scikit-learn columns")
    ap.add_argument("--backends", help="pyo3,grpc (default both)")
    args = ap.parse_args(argv)
    if args.only:
        bad = [o for o in args.only if o not in PARTS]
        if bad:
            ap.error(f"unknown --only {', '.join(bad)}; choose from {', '.join(PARTS)}")
    cfg = build_config(args)

    def progress(ev):
        if ev.message:
            prefix = f"[{ev.done}/{ev.total}] " if ev.total else "  "
            print(prefix + ev.message, file=sys.stderr, flush=True)

    suite = run_suite(config=cfg, only=args.only, progress=progress)
    js = to_json(suite)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(js)
    print(js if args.json else format_table(suite))
    if suite.parity_failures:
        print("PARITY FAILED: see the table", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
