"""The benchmark (hft_lab.bench.runner): timing primitives."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


class BenchCancelled(Exception):
    """The benchmark was cancelled (between cells or between calls)."""


def _is_cancelled(cancel) -> bool:
    if cancel is None:
        return False
    if hasattr(cancel, "cancelled"):
        return bool(cancel.cancelled)
    if hasattr(cancel, "is_set"):
        return cancel.is_set()
    return bool(cancel())


def _check_cancel(cancel) -> None:
    if _is_cancelled(cancel):
        raise BenchCancelled("benchmark cancelled")


# ---------------------------------------------------------------------------------------------
# timing primitives
# ---------------------------------------------------------------------------------------------


@dataclass
class Measurement:
    op: str
    size: str
    backend: str
    calls: int  # successful timed calls
    failures: int
    p50_us: float
    p95_us: float
    p99_us: float
    mean_us: float
    ops_per_s: float
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _warm(fn, warmup: int, max_seconds: float, cancel=None) -> None:
    deadline = time.perf_counter() + max_seconds
    for _ in range(warmup):
        _check_cancel(cancel)
        try:
            fn()
        except Exception:
            pass
        if time.perf_counter() > deadline:
            break


def timeit(
    fn: Callable[[], Any],
    op: str,
    size: str,
    backend: str,
    calls: int = 100,
    warmup: int = 5,
    max_seconds: float = 20.0,
    note: str = "",
    min_calls: int = 5,
    warmup_seconds: float = 1.0,
    cancel=None,
) -> Measurement:
    """Warm up, then time up to `calls` calls one by one (stop when `max_seconds` is used and at
    least `min_calls` succeeded). Failures are counted, never timed."""
    _warm(fn, warmup, warmup_seconds, cancel)
    times: list[int] = []
    failures = 0
    deadline = time.perf_counter() + max_seconds
    for _ in range(calls):
        _check_cancel(cancel)
        t0 = time.perf_counter_ns()
        try:
            fn()
        except BenchCancelled:
            raise
        except Exception:
            failures += 1
        else:
            times.append(time.perf_counter_ns() - t0)
        if time.perf_counter() > deadline and len(times) >= min_calls:
            break
        if time.perf_counter() > deadline + 5 * max_seconds + 10:  # everything fails: do not loop forever
            break
    if not times:
        return Measurement(op, size, backend, 0, failures, *(float("nan"),) * 4, 0.0, note)
    us = np.asarray(times, dtype=np.float64) / 1e3
    p50, p95, p99 = np.percentile(us, [50, 95, 99])
    return Measurement(
        op,
        size,
        backend,
        len(times),
        failures,
        float(p50),
        float(p95),
        float(p99),
        float(us.mean()),
        1e6 / float(us.mean()),
        note,
    )


def throughput(fn: Callable[[], Any], concurrency: int, calls: int, max_seconds: float, cancel=None) -> dict:
    """ops/s with `concurrency` threads calling `fn` at once: up to `calls` calls in total (at least
    one per thread), stopping when the time budget is used. Failures are counted, not as ops."""
    c = max(1, int(concurrency))
    total = max(int(calls), c)
    tickets = itertools.count()
    lock = threading.Lock()
    ok = [0]
    failed = [0]
    start = threading.Barrier(c + 1)
    deadline = [0.0]

    def worker():
        start.wait()
        first = True
        while True:
            if _is_cancelled(cancel):
                return
            if not first and time.perf_counter() > deadline[0]:
                return
            first = False
            with lock:
                if next(tickets) >= total:
                    return
            try:
                fn()
            except Exception:
                with lock:
                    failed[0] += 1
            else:
                with lock:
                    ok[0] += 1

    with ThreadPoolExecutor(max_workers=c, thread_name_prefix="bench") as ex:
        futs = [ex.submit(worker) for _ in range(c)]
        deadline[0] = time.perf_counter() + max_seconds
        start.wait()
        t0 = time.perf_counter()
        for f in futs:
            f.result()
        el = time.perf_counter() - t0
    _check_cancel(cancel)
    return {"concurrency": c, "calls": ok[0], "failures": failed[0], "seconds": el, "ops_per_s": ok[0] / el if el > 0 else 0.0}
