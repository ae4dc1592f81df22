"""The pairs universe scan (issue 17's Engle-Granger scan), sharded over an executor.

The core numbers the pairs of n assets in a canonical order — (0,1), (0,2), …, (0,n−1), (1,2), … —
and scans any range of it alone (`scan_pairs_range`: the raw rows, q-values not yet known). Here
the order is cut into contiguous ranges, one per shard; each shard is `Backend.scan_pairs_shard`
on the executor (PyO3 on a Ray worker or in this process, or grpcd); `finalize_pair_scan`
computes, once, on the driver, from the shards in shard order, what needs all pairs: the Benjamini-Hochberg q-values, the filters,
the ranking, the p-value matrix and the Hurst exponents of the rows reported. The result is the
same, bit for bit, as one unsharded `Backend.scan_pairs` call (tested on every executor).

Every shard is one core call that is itself parallel (rayon); on a Ray worker the core's thread
pool is limited to the task's CPUs (RayExecutor sets RAYON_NUM_THREADS).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import Backend, CancelToken, as_matrix
from .executors import Executor, InProcessExecutor, Progress, RunReport
from .sweep import shard_ranges


def scan_shard(backend: Backend, shared: dict, pair_range: tuple[int, int], cancel: CancelToken | None = None):
    """One shard: the raw rows of pairs ``pair_range`` of the canonical order, through the
    Backend API (PyO3 here or on a Ray worker, or grpcd for the gRPC executor)."""
    lo, hi = pair_range
    return backend.scan_pairs_shard(
        shared["prices"],
        int(lo),
        int(hi),
        trend=shared["trend"],
        autolag=shared["autolag"],
        max_lag=shared["max_lag"],
        cancel=cancel,
    )


@dataclass(frozen=True, eq=False)
class ScanRun:
    """The finalised scan (``result``: the PairScanResult `Backend.scan_pairs` returns for the
    same prices and options), the number of shards, the executor kind and where the shards ran."""

    result: Any
    shards: int
    executor: str
    report: RunReport | None = field(default=None, compare=False)
    # the raw shard rows, in shard order: `Backend.finalize_pair_scan(prices, parts, filters…)`
    # re-filters the scan without running it again (the Scan tab's filters)
    parts: list = field(default_factory=list, compare=False, repr=False)


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
    asset_names: Any = None,
    shards: int | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> ScanRun:
    """Scan every pair of ``prices`` (time × assets) on ``executor`` (default in-process)."""
    p, names = as_matrix("prices", prices)
    if asset_names is None:
        asset_names = names
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
    # finalise here, once: it needs every pair (q-values) and is cheap next to the scan
    from ..backends.pyo3_backend import Pyo3Backend

    result = Pyo3Backend().finalize_pair_scan(
        p,
        parts,
        max_pvalue=max_pvalue,
        max_qvalue=max_qvalue,
        min_half_life=min_half_life,
        max_half_life=max_half_life,
        min_correlation=min_correlation,
        top=top,
        asset_names=asset_names,
        **opts,
    )
    return ScanRun(result, len(ranges), executor.kind, executor.last_report, parts=list(parts))
