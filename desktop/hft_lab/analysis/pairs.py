"""Scan tab's computations (Qt-free): the pairs universe scan on an executor, re-filtering a
finished scan without running it again, one pair's detail (OLS spread and the Kalman hedge), the
walk-forward, and the tables the tab shows and exports.

Every number comes from the core through the Backend API: the scan's shards run on the executor
the user chose (`hft_lab.cluster`), the filters and q-values are `Backend.finalize_pair_scan`
(the same merge `scan_pairs` does, so the table equals `backend.scan_pairs(prices, filters…)`),
the Kalman hedge is `backend.kalman_hedge`, the walk-forward `backend.walk_forward`. What is done
here is arithmetic for display: the OLS spread p_i − β·p_j − c of the scan's own β and c, and its
mean and standard deviation for the bands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hft_lab.cluster import InProcessExecutor, run_scan
from hft_lab.cluster.executors import Executor

from .context import TaskContext
from .sweep import EXECUTORS as _SWEEP_EXECUTORS
from .sweep import executor_for as _executor_for

EXECUTORS = {"backend": "The app's backend (toolbar)", **_SWEEP_EXECUTORS}
FILTER_KEYS = ("max_pvalue", "max_qvalue", "min_half_life", "max_half_life", "min_correlation", "top")
SCAN_KEYS = ("trend", "autolag", "max_lag")
# the ranking table's columns (the scan's per-pair fields, with the pair's names first)
TABLE_COLUMNS = (
    "asset_y",
    "asset_x",
    "pvalue",
    "qvalue",
    "statistic",
    "hedge_ratio",
    "intercept",
    "half_life",
    "hurst",
    "correlation",
    "used_lag",
)
WINDOW_COLUMNS = ("formation_start", "trading_start", "trading_end", "n_pairs", "trades", "pnl", "turnover", "costs")


def executor_for(kind: str, backend, address: str = "") -> Executor:
    """ "backend": the backend the app's router picked (PyO3 in this process, or its gRPC
    server); otherwise the Sweep tab's choices (in-process, gRPC server, Ray cluster)."""
    if kind == "backend":
        from hft_lab.backends.grpc_backend import GrpcBackend

        return _executor_for("grpc", backend) if isinstance(backend, GrpcBackend) else InProcessExecutor(backend)
    return _executor_for(kind, backend, address)


@dataclass(frozen=True, eq=False)
class PairScan:
    """A finished scan and what re-filtering it needs: the universe, the scan options, the raw
    shard rows (all pairs), and the filtered result on show."""

    prices: np.ndarray
    asset_names: tuple[str, ...]
    options: dict  # trend, autolag, max_lag
    parts: list  # PairScanShard, in shard order
    result: Any  # PairScanResult
    shards: int
    executor: str
    report: Any = None  # hft_lab.cluster.RunReport

    def with_result(self, result) -> PairScan:
        return PairScan(self.prices, self.asset_names, self.options, self.parts, result, self.shards, self.executor, self.report)


def scan(
    backend,
    prices,
    asset_names,
    *,
    trend: str = "c",
    autolag: str = "none",
    max_lag: int | None = 0,
    filters: dict | None = None,
    executor: str = "backend",
    address: str = "",
    shards: int = 0,
    ctx: TaskContext | None = None,
) -> PairScan:
    """Scan every pair of `prices` (time × assets) on the chosen executor, reporting (done, total)
    shards as progress; the result is filtered by `filters` (FILTER_KEYS; None = off)."""
    p = np.ascontiguousarray(np.asarray(prices, dtype=np.float64))
    ex = executor_for(executor, backend, address)
    progress = (lambda done, total: ctx.progress((done, total))) if ctx is not None else None
    opts: dict[str, Any] = dict(trend=trend, autolag=autolag, max_lag=max_lag)
    run = run_scan(
        p,
        ex,
        trend=trend,
        autolag=autolag,
        max_lag=max_lag,
        **_filters(filters),
        asset_names=list(asset_names),
        shards=shards or None,
        progress=progress,
        cancel=ctx,
    )
    return PairScan(p, tuple(str(a) for a in asset_names), opts, run.parts, run.result, run.shards, run.executor, run.report)


def refilter(backend, scan_: PairScan, filters: dict | None, ctx: TaskContext | None = None) -> PairScan:
    """The same scan with other filters, without scanning again (`finalize_pair_scan`: q-values
    over all pairs, filters, ranking, Hurst of the reported rows; in-process on both backends)."""
    from hft_lab.backends.pyo3_backend import Pyo3Backend

    res = Pyo3Backend().finalize_pair_scan(
        scan_.prices, scan_.parts, **scan_.options, **_filters(filters), asset_names=list(scan_.asset_names)
    )
    return scan_.with_result(res)


def _filters(filters: dict | None) -> dict:
    f = dict(filters or {})
    unknown = sorted(set(f) - set(FILTER_KEYS))
    if unknown:
        raise ValueError(f"unknown filter {', '.join(map(repr, unknown))}; known: {', '.join(FILTER_KEYS)}")
    if f.get("top") == 0:
        f["top"] = None  # 0: every pair passing the filters
    return f


@dataclass(frozen=True, eq=False)
class PairDetail:
    """One pair: y = asset i (dependent), x = asset j; the OLS spread y − β·x − c of the scan's
    hedge ratio and intercept with its mean and standard deviation (population), and the forward
    Kalman hedge of y on x (`backend.kalman_hedge`)."""

    name_y: str
    name_x: str
    y: np.ndarray
    x: np.ndarray
    hedge_ratio: float
    intercept: float
    spread: np.ndarray
    spread_mean: float
    spread_std: float
    kalman: Any  # KalmanHedgeResult

    @property
    def name(self) -> str:
        c = f" {'−' if self.intercept >= 0 else '+'} {abs(self.intercept):.4g}"
        return f"{self.name_y} − {self.hedge_ratio:.4g}·{self.name_x}{c}"

    def trade_payload(self, dates=None) -> dict:
        """What the Mean Reversion tab trades: the OLS spread (P&L units), its dates, the gross
        notional |y| + |β|·|x| per bar (costs are charged on it), and the hedge ratio it carries."""
        notional = np.abs(self.y) + abs(self.hedge_ratio) * np.abs(self.x)
        return {
            "spread": self.spread.copy(),
            "dates": dates,
            "notional": notional,
            "hedge_ratio": self.hedge_ratio,
            "intercept": self.intercept,
            "legs": (self.name_y, self.name_x),
        }


def pair_detail(
    backend,
    prices,
    names,
    i: int,
    j: int,
    hedge_ratio: float,
    intercept: float,
    delta: float = 1e-4,
    observation_var: float = 1e-3,
    ctx: TaskContext | None = None,
) -> PairDetail:
    p = np.asarray(prices, dtype=np.float64)
    y, x = np.ascontiguousarray(p[:, i]), np.ascontiguousarray(p[:, j])
    kal = backend.kalman_hedge(y, x, delta=delta, observation_var=observation_var)
    spread = y - hedge_ratio * x - intercept
    return PairDetail(
        str(names[i]),
        str(names[j]),
        y,
        x,
        float(hedge_ratio),
        float(intercept),
        spread,
        float(np.mean(spread)),
        float(np.std(spread)),
        kal,
    )


def walk_forward(backend, prices, asset_names, *, selection: dict, ctx: TaskContext | None = None, **params):
    """`backend.walk_forward` with progress (window, fraction) → ctx.progress(fraction)."""
    progress = (lambda w, frac: ctx.progress(float(frac))) if ctx is not None else None
    return backend.walk_forward(
        np.ascontiguousarray(np.asarray(prices, dtype=np.float64)),
        selection=selection,
        asset_names=list(asset_names),
        progress=progress,
        cancel=ctx,
        **params,
    )


# ---- tables (for the tab and its exports) ----


def ranking_columns(res) -> dict[str, np.ndarray]:
    """The ranking table of a PairScanResult: pair names, then the per-pair fields."""
    names = np.asarray(res.asset_names, dtype=object)
    cols: dict[str, np.ndarray] = {
        "asset_y": names[np.asarray(res.i, dtype=np.int64)] if len(res) else np.zeros(0, dtype=object),
        "asset_x": names[np.asarray(res.j, dtype=np.int64)] if len(res) else np.zeros(0, dtype=object),
    }
    for c in TABLE_COLUMNS[2:]:
        cols[c] = np.asarray(getattr(res, c))
    cols["i"] = np.asarray(res.i, dtype=np.int64)
    cols["j"] = np.asarray(res.j, dtype=np.int64)
    return cols


def ranking_export(res) -> dict[str, Any]:
    """Flat mapping for hft_lab.data.export: the ranking table, then the scan's counts."""
    out: dict[str, Any] = dict(ranking_columns(res))
    out.update(
        n_assets=int(res.n_assets),
        n_tested=int(res.n_tested),
        n_failed=int(res.n_failed),
        n_passed=int(res.n_passed),
        critical_value_1pct=float(res.critical_values[0]),
        critical_value_5pct=float(res.critical_values[1]),
        critical_value_10pct=float(res.critical_values[2]),
    )
    return out


def window_columns(wf, dates=None) -> dict[str, np.ndarray]:
    """The walk-forward's per-window table (with the first and last dates of each trading window
    when the data has dates), and the pairs traded in each window as text."""
    cols: dict[str, np.ndarray] = {}
    if dates is not None and len(dates) == len(wf.oos_equity):
        d = np.asarray(dates).astype("datetime64[D]").astype(str)
        cols["trading_from"] = d[np.asarray(wf.trading_start, dtype=np.int64)]
        cols["trading_to"] = d[np.asarray(wf.trading_end, dtype=np.int64) - 1]
    cols.update({c: np.asarray(getattr(wf, c)) for c in WINDOW_COLUMNS})
    s = wf.selections
    names = wf.asset_names
    win = np.asarray(s.get("window", []), dtype=np.int64)
    si, sj = np.asarray(s.get("i", []), dtype=np.int64), np.asarray(s.get("j", []), dtype=np.int64)
    pairs = []
    for w in range(len(cols["pnl"])):
        k = np.flatnonzero(win == w)
        pairs.append("; ".join(f"{names[si[m]]}/{names[sj[m]]}" for m in k))
    cols["pairs"] = np.asarray(pairs, dtype=object)
    return cols


def selections_frame(wf):
    """The pairs chosen in each formation window (sample "out-of-sample") and on the whole sample
    (sample "in-sample"), with their p-value, hedge ratio, intercept and spread mean/std."""
    import pandas as pd

    names = np.asarray(wf.asset_names, dtype=object)
    frames = []
    for label, sel in (("out-of-sample", wf.selections), ("in-sample", wf.is_selections)):
        i, j = np.asarray(sel.get("i", []), dtype=np.int64), np.asarray(sel.get("j", []), dtype=np.int64)
        d: dict[str, Any] = {"sample": [label] * len(i), "window": np.asarray(sel.get("window", []), dtype=np.int64)}
        d["asset_y"], d["asset_x"] = names[i] if len(i) else [], names[j] if len(j) else []
        for c in ("pvalue", "hedge_ratio", "intercept", "spread_mean", "spread_std"):
            d[c] = np.asarray(sel.get(c, []), dtype=np.float64)
        frames.append(pd.DataFrame(d))
    return pd.concat(frames, ignore_index=True)


def curves_frame(wf, dates=None):
    """One row per bar: (date,) bar, out-of-sample and in-sample equity and drawdown."""
    import pandas as pd

    d: dict[str, Any] = {}
    if dates is not None and len(dates) == len(wf.oos_equity):
        d["date"] = dates
    d["bar"] = np.arange(len(wf.oos_equity))
    for c in ("oos_equity", "oos_drawdown", "is_equity", "is_drawdown"):
        d[c] = np.asarray(getattr(wf, c))
    return pd.DataFrame(d)


def walk_forward_flat(wf) -> dict[str, Any]:
    """The walk-forward as one flat mapping of arrays (File ▸ Export session's CSV writer takes
    no nested dicts): the per-bar curves, the per-window table (window_*), and the pairs chosen
    per window (selection_*) and on the whole sample (is_selection_*)."""
    out: dict[str, Any] = {c: np.asarray(getattr(wf, c)) for c in ("oos_equity", "oos_drawdown", "is_equity", "is_drawdown")}
    out.update({f"window_{k}": v for k, v in window_columns(wf).items()})
    sel = selections_frame(wf)
    for label, prefix in (("out-of-sample", "selection_"), ("in-sample", "is_selection_")):
        part = sel[sel["sample"] == label].drop(columns="sample")
        out.update({f"{prefix}{c}": part[c].to_numpy() for c in part.columns})
    return out
