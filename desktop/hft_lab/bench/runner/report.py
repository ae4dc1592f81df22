"""The benchmark (hft_lab.bench.runner): output."""

from __future__ import annotations

import json
import math

import numpy as np

from .derive import TARGETS, target_status
from .machine import describe_machine, machine
from .model import Cell, Suite, fmt_rate, fmt_us

# ---------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------


def speedup_phrase(ratio: float, other: str) -> str:
    """other p50 / this p50 -> '3.2× faster than other' / '3.2× slower than other'."""
    if not math.isfinite(ratio) or ratio <= 0:
        return f"n/a vs {other}"
    if ratio >= 1:
        return f"{ratio:.3g}× faster than {other}"
    return f"{1 / ratio:.3g}× slower than {other}"


def speedup_text(c: Cell) -> str:
    return ", ".join(speedup_phrase(v, k) for k, v in c.speedup.items())


def throughput_text(c: Cell) -> str:
    return " ".join(
        f"{k}:{fmt_rate(v['ops_per_s'])}" + (f"({v['failures']}f)" if v.get("failures") else "")
        for k, v in sorted(c.throughput.items())
    )


def format_table(suite: Suite) -> str:
    lines = []
    if suite.machine:
        lines.append(describe_machine(suite.machine))
        lines.append("")
    if suite.cancelled:
        lines.append("*** CANCELLED: partial results ***")
    head = (
        ""
        if not suite.cells
        else f"{'op':<24}{'size':<16}{'backend':<19}{'parity':<10}"
        f"{'calls':>6}{'fail':>5}{'p50':>11}{'p95':>11}{'p99':>11}{'ops/s':>9}  {'ops/s @ C callers':<28}"
        f"  speedup / accuracy / note"
    )
    if head:
        lines.append(head)
        lines.append("-" * len(head))
    prev = None
    for c in suite.cells:
        if prev is not None and (c.op, c.size) != prev:
            lines.append("")
        prev = (c.op, c.size)
        if c.skipped:
            lines.append(
                f"{c.op:<24}{c.size:<16}{c.backend:<19}{c.parity:<10}  skipped: {c.skipped}" + (f"  ({c.note})" if c.note else "")
            )
            continue
        tail = "; ".join(t for t in (speedup_text(c), c.accuracy, c.note) if t)
        if "iterations" in c.extra:
            tail = f"{c.extra['iterations']} it; " + tail
        lines.append(
            f"{c.op:<24}{c.size:<16}{c.backend:<19}{c.parity:<10}{c.calls:>6}{c.failures:>5}{fmt_us(c.p50_us):>11}{fmt_us(c.p95_us):>11}"
            f"{fmt_us(c.p99_us):>11}{fmt_rate(c.ops_per_s):>9}  {throughput_text(c):<28}  {tail}"
        )
    fails = suite.parity_failures
    if fails:
        lines.append("")
        lines.append("!" * 100)
        lines.append("!!! PARITY FAILED: the backends give DIFFERENT answers; those timings compare nothing:")
        seen = set()
        for c in fails:
            if (c.op, c.size) not in seen:
                seen.add((c.op, c.size))
                lines.append(f"!!!   {c.op} {c.size}: {c.parity_detail}")
        lines.append("!" * 100)
    if suite.results:
        lines.append("")
        lines.append(
            f"{'op':<24}{'size':<16}{'backend':<19}{'calls':>6}{'fail':>5}{'p50':>11}{'p95':>11}{'p99':>11}{'ops/s':>9}  note"
        )
        for m in suite.results:
            lines.append(
                f"{m.op:<24}{m.size:<16}{m.backend:<19}{m.calls:>6}{m.failures:>5}{fmt_us(m.p50_us):>11}"
                f"{fmt_us(m.p95_us):>11}{fmt_us(m.p99_us):>11}{fmt_rate(m.ops_per_s):>9}  {m.note}"
            )
    lines.append("")
    lines.append("targets:")
    for t in target_status(suite):
        if t["status"] in ("INVALID", "SKIPPED"):
            lines.append(f"  {t['status']} {t['label']}: {t['why']}")
        else:
            lines.append(f"  {t['status']:<7} {t['label']}: {t['value']:,.2f} (target {t['op']} {t['target']:,g})")
    others = {k: v for k, v in suite.derived.items() if k not in {t[0] for t in TARGETS}}
    for k, v in others.items():
        lines.append(f"          {k}: {v:,.2f}")
    e = suite.encoding
    if e:
        lines.append("")
        lines.append(
            f"array encoding, 1M float64 in Python: packed repeated double serialize {e['packed_serialize_ms']:.1f} ms / parse "
            f"{e['packed_parse_ms']:.1f} ms; "
            f"bytes serialize {e['bytes_serialize_ms']:.1f} ms / parse {e['bytes_parse_ms']:.1f} ms"
        )
    lines.append("")
    lines.append(f"total {suite.seconds:.1f} s")
    return "\n".join(lines)


def _clean(o):
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, (np.floating,)):
        return _clean(float(o))
    if isinstance(o, (np.integer,)):
        return int(o)
    return o


def to_dict(suite: Suite) -> dict:
    return _clean(
        {
            "machine": suite.machine or machine(),
            "config": suite.config,
            "cells": [c.to_dict() for c in suite.cells],
            "results": [m.to_dict() for m in suite.all_measurements()],
            "derived": suite.derived,
            "targets": target_status(suite),
            "parity_failures": [
                dict(op=c.op, size=c.size, backend=c.backend, detail=c.parity_detail) for c in suite.parity_failures
            ],
            "encoding": suite.encoding,
            "cancelled": suite.cancelled,
            "seconds": suite.seconds,
        }
    )


def to_json(suite: Suite) -> str:
    """Machine-readable form (NaN/inf become null: strict JSON)."""
    return json.dumps(to_dict(suite), indent=2, allow_nan=False)


CSV_COLUMNS = [
    "op",
    "size",
    "payload_values",
    "backend",
    "kind",
    "parity",
    "skipped",
    "calls",
    "failures",
    "p50_us",
    "p95_us",
    "p99_us",
    "mean_us",
    "ops_per_s",
    "throughput",
    "speedup",
    "accuracy",
    "note",
]


def to_csv(suite: Suite) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for c in suite.cells:
        w.writerow(
            [
                c.op,
                c.size,
                c.payload_values,
                c.backend,
                c.kind,
                c.parity,
                c.skipped,
                c.calls,
                c.failures,
                *(f"{v:.3f}" if math.isfinite(v) else "" for v in (c.p50_us, c.p95_us, c.p99_us, c.mean_us, c.ops_per_s)),
                " ".join(f"{k}:{v['ops_per_s']:.3f}" for k, v in sorted(c.throughput.items())),
                " ".join(f"{k}:{v:.4g}" for k, v in c.speedup.items()),
                c.accuracy,
                c.note,
            ]
        )
    return buf.getvalue()
