"""The pairs universe scan (issue 17's Engle-Granger scan), sharded over an executor.

The core numbers the pairs of n assets in a canonical order — (0,1), (0,2), …, (0,n−1), (1,2), … —
and scans any range of it alone (`scan_pairs_range`: the raw rows, q-values not yet known). Here
the order is cut into contiguous ranges, one per shard; each shard runs on the executor (a Ray
worker, or this process); the rows are concatenated in shard order and `scan_pairs_finalize`
computes, once, on the driver, what needs all pairs: the Benjamini-Hochberg q-values, the filters,
the ranking, the p-value matrix and the Hurst exponents of the rows reported. The result is the
same, bit for bit, as one unsharded `scan_pairs` call (tested).

Every shard is one core call that is itself parallel (rayon); on a Ray worker the core's thread
pool is limited to the task's CPUs (RayExecutor sets RAYON_NUM_THREADS).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backends.base import Backend, CancelToken, as_matrix
from ..backends.errors import BackendUnavailable
from .executors import Executor, InProcessExecutor, Progress, RunReport
from .sweep import shard_ranges

ROW_COLUMNS = (
    "i",
    "j",
    "hedge_ratio",
    "intercept",
    "statistic",
    "pvalue",
    "qvalue",
    "half_life",
    "hurst",
    "correlation",
    "used_lag",
)


def _core(backend: Backend):
    """The PyO3 module, which the shards call. The scan has no gRPC shard call (yet): over gRPC
    it runs whole through the backend's own scan."""
    from ..backends.pyo3_backend import Pyo3Backend, _core

    if not isinstance(backend, Pyo3Backend):
        raise ValueError(f"a sharded pairs scan runs on the PyO3 core (in-process or on Ray workers), not on {backend.name}")
    rc = _core()
    if not hasattr(rc, "scan_pairs_range"):
        raise BackendUnavailable("this hft_lab._rustcore has no pairs scan: rebuild it (make build)")
    return rc


def scan_shard(backend: Backend, shared: dict, pair_range: tuple[int, int], cancel: CancelToken | None = None) -> dict:
    """One shard: the raw rows of pairs ``pair_range`` of the canonical order."""
    rc = _core(backend)
    lo, hi = pair_range
    return rc.scan_pairs_range(
        shared["prices"],
        int(lo),
        int(hi),
        trend=shared["trend"],
        autolag=shared["autolag"],
        max_lag=shared["max_lag"],
        cancel=None if cancel is None else cancel.rust,
    )


@dataclass(frozen=True, eq=False)
class ScanRun:
    """The finalised scan (``result``: the dict `scan_pairs` returns: one array per row column,
    n_assets, n_tested, n_failed, n_passed, critical_values, pvalue_matrix), the executor kind
    and where the shards ran."""

    result: dict[str, Any]
    shards: int
    executor: str
    report: RunReport | None = field(default=None, compare=False)


def run_scan(
    prices: Any,
    executor: Executor | None = None,
    *,
    trend: str = "c",
    autolag: str = "none",
    max_lag: int | None = 0,
    max_pvalue: float | None = None,
    max_qvalue: float | None = None,
    min_half_life: float | None = None,
    max_half_life: float | None = None,
    min_correlation: float | None = None,
    top: int | None = None,
    shards: int | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> ScanRun:
    """Scan every pair of ``prices`` (time × assets) on ``executor`` (default in-process)."""
    p, _names = as_matrix("prices", prices)
    n = p.shape[1]
    if n < 2:
        raise ValueError(f"prices needs at least 2 assets (columns) for a pairs scan, got {n}")
    if max_lag is not None and (isinstance(max_lag, bool) or not isinstance(max_lag, numbers.Integral) or max_lag < 0):
        raise ValueError(f"max_lag must be an integer >= 0 or None, got {max_lag!r}")
    if executor is None:
        executor = InProcessExecutor()
    n_pairs = n * (n - 1) // 2
    k = shards if shards is not None else executor.default_shards()
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"shards must be an integer >= 1, got {shards!r}")
    ranges = shard_ranges(n_pairs, k)
    opts = dict(trend=trend, autolag=autolag, max_lag=None if max_lag is None else int(max_lag))
    shared = dict(prices=p, **opts)
    parts = executor.map(scan_shard, shared, ranges, progress=progress, cancel=cancel)
    rows = {c: np.concatenate([part[c] for part in parts]) for c in ROW_COLUMNS}
    # finalise here, once: it needs every pair (q-values) and is cheap next to the scan
    from ..backends.pyo3_backend import Pyo3Backend

    rc = _core(Pyo3Backend())
    result = rc.scan_pairs_finalize(
        rows,
        p,
        max_pvalue=max_pvalue,
        max_qvalue=max_qvalue,
        min_half_life=min_half_life,
        max_half_life=max_half_life,
        min_correlation=min_correlation,
        top=top,
        **opts,
    )
    return ScanRun(result, len(ranges), executor.kind, executor.last_report)
