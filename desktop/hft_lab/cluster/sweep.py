"""Parameter sweep of the mean-reversion strategy, in sample and out of sample, on any executor.

For every point of a grid lookback × entry × exit × stop × cost, the rolling z-score strategy
(`Backend.calculate_mean_reversion`) is run on the whole series — its signals are causal: the
position held in bar t is decided at the close of bar t−1 from bars ≤ t−1 only — and backtested
(`Backend.backtest`) separately on

* the in-sample part, bars ``0 .. split−1``, and
* the out-of-sample part, bars ``split .. n−1`` (the backtest starts at bar ``split−1`` so the first
  OOS return is bar split's; a position carried into the OOS part pays its entry cost there),

with ``split = n − round(oos_fraction·n)``. Choose parameters on the in-sample columns
(`SweepResult.best`), read their out-of-sample columns: that is the honest number. With
``oos_fraction=0`` the in-sample part is the whole series and the OOS columns are NaN.

The grid is cut into shards of consecutive points (cost varies fastest, so a shard computes each
signal once for all its costs); shards run on the executor and are concatenated in grid order, so
the table is the same, bit for bit, on every executor.
"""

from __future__ import annotations

import csv
import itertools
import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backends.base import Backend, CancelToken, as_vector
from .executors import Executor, InProcessExecutor, Progress, RunReport

PARAMS = ("lookback", "entry", "exit", "stop", "cost_bps")
METRICS = ("sharpe", "total_return", "annual_return", "max_drawdown", "n_trades", "win_rate")
COLUMNS = PARAMS + tuple(f"is_{m}" for m in METRICS) + tuple(f"oos_{m}" for m in METRICS)
MAX_GRID_POINTS = 1_000_000


def _values(name: str, v: Any, *, integer: bool = False, allow_none: bool = False) -> tuple:
    if isinstance(v, (str, bytes)) or not isinstance(v, Iterable):
        v = [v]
    out: list[Any] = []
    for x in v:
        if x is None and allow_none:
            out.append(None)
            continue
        if isinstance(x, bool) or not isinstance(x, numbers.Real):
            raise ValueError(f"{name} values must be real numbers, got {x!r}")
        x = float(x)
        if not math.isfinite(x):
            raise ValueError(f"{name} values must be finite, got {x!r}")
        if integer:
            if x != int(x) or x < 1:
                raise ValueError(f"{name} values must be integers >= 1, got {x!r}")
            x = int(x)
        out.append(x)
    if not out:
        raise ValueError(f"{name} needs at least one value")
    if len(set(out)) != len(out):
        raise ValueError(f"{name} values must be distinct, got {out!r}")
    return tuple(out)


@dataclass(frozen=True)
class ParameterGrid:
    """The Cartesian grid; ``stop`` may contain None (no stop)."""

    lookback: tuple = (20,)
    entry: tuple = (2.0,)
    exit: tuple = (0.0,)
    stop: tuple = (None,)
    cost_bps: tuple = (0.0,)

    def __post_init__(self):
        object.__setattr__(self, "lookback", _values("lookback", self.lookback, integer=True))
        object.__setattr__(self, "entry", _values("entry", self.entry))
        object.__setattr__(self, "exit", _values("exit", self.exit))
        object.__setattr__(self, "stop", _values("stop", self.stop, allow_none=True))
        cost = _values("cost_bps", self.cost_bps)
        if any(c < 0 for c in cost):
            raise ValueError(f"cost_bps values must be >= 0, got {cost!r}")
        object.__setattr__(self, "cost_bps", cost)
        if len(self) > MAX_GRID_POINTS:
            raise ValueError(f"the grid has {len(self)} points; at most {MAX_GRID_POINTS} are allowed")

    def __len__(self) -> int:
        return len(self.lookback) * len(self.entry) * len(self.exit) * len(self.stop) * len(self.cost_bps)

    def points(self) -> np.ndarray:
        """(len, 5) float64 rows lookback, entry, exit, stop (NaN = none), cost_bps; cost fastest."""
        rows = [
            (lb, en, ex, math.nan if st is None else st, c)
            for lb, en, ex, st, c in itertools.product(self.lookback, self.entry, self.exit, self.stop, self.cost_bps)
        ]
        return np.asarray(rows, dtype=np.float64).reshape(-1, 5)


def _metrics(r) -> list[float]:
    return [r.sharpe, r.total_return, r.annual_return, r.max_drawdown, float(r.n_trades), r.win_rate]


def sweep_shard(backend: Backend, shared: dict, points: np.ndarray, cancel: CancelToken | None = None) -> np.ndarray:
    """One shard: (k, 5) parameter rows → (k, 12) metric rows (IS then OOS). Runs on any backend,
    here or on a Ray worker."""
    prices = shared["prices"]
    split = int(shared["split"])
    ppy = float(shared["periods_per_year"])
    n = prices.size
    out = np.full((points.shape[0], 2 * len(METRICS)), np.nan)
    key = None
    positions = np.empty(0)
    for j, (lb, en, ex, st, c) in enumerate(points):
        k = (lb, en, ex, st)
        if k != key:
            mr = backend.calculate_mean_reversion(
                prices, int(lb), float(en), float(ex), None if math.isnan(st) else float(st), cancel=cancel
            )
            positions = np.asarray(mr.positions, dtype=np.float64)
            key = k
        ins = backend.backtest(prices[:split], positions[:split], float(c), ppy, cancel=cancel)
        out[j, : len(METRICS)] = _metrics(ins)
        if split < n:
            oos = backend.backtest(prices[split - 1 :], positions[split - 1 :], float(c), ppy, cancel=cancel)
            out[j, len(METRICS) :] = _metrics(oos)
    return out


@dataclass(frozen=True, eq=False)
class SweepResult:
    """One row per grid point, in grid order (lookback slowest, cost fastest)."""

    grid: ParameterGrid
    points: np.ndarray  # (n, 5)
    values: np.ndarray  # (n, 12): is_* then oos_* metrics
    split: int
    n_bars: int
    executor: str
    report: RunReport | None = field(default=None, compare=False)

    def __len__(self) -> int:
        return self.points.shape[0]

    def column(self, name: str) -> np.ndarray:
        if name in PARAMS:
            return self.points[:, PARAMS.index(name)]
        if name in COLUMNS:
            return self.values[:, COLUMNS.index(name) - len(PARAMS)]
        raise ValueError(f"unknown column {name!r}; columns are {', '.join(COLUMNS)}")

    def table(self) -> np.ndarray:
        """(n, 17) float64: the parameters then the metrics (COLUMNS order)."""
        return np.hstack([self.points, self.values])

    def to_frame(self):
        import pandas as pd

        df = pd.DataFrame(self.table(), columns=list(COLUMNS))
        df["lookback"] = df["lookback"].astype(np.int64)
        for c in ("is_n_trades", "oos_n_trades"):
            df[c] = df[c].astype("Int64") if df[c].isna().any() else df[c].astype(np.int64)
        return df

    def to_csv(self, path) -> None:
        """Full precision (repr of each float), stop empty when there is none."""
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(COLUMNS)
            for row in self.table():
                w.writerow(["" if math.isnan(v) else (int(v) if i == 0 else repr(float(v))) for i, v in enumerate(row)])

    def export_fields(self) -> dict[str, Any]:
        """A flat mapping for hft_lab.data.export: one array per column (the table), then the
        scalars that produced it."""
        out: dict[str, Any] = {c: self.column(c) for c in COLUMNS}
        out["lookback"] = out["lookback"].astype(np.int64)
        out.update(split=self.split, n_bars=self.n_bars, executor=self.executor)
        return out

    def best(self, metric: str = "is_sharpe") -> int:
        """Row with the highest finite ``metric`` (first such row on ties); -1 when none is finite."""
        v = self.column(metric)
        finite = np.isfinite(v)
        if not finite.any():
            return -1
        return int(np.flatnonzero(finite)[np.argmax(v[finite])])

    def heatmap(
        self, metric: str = "oos_sharpe", x: str = "lookback", y: str = "entry", reduce: str = "max"
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x values, y values, Z[len(y), len(x)]): ``metric`` over x × y, reduced over the other
        parameters by "max", "mean" or "median" of the finite values (NaN where none is finite)."""
        if x not in PARAMS or y not in PARAMS or x == y:
            raise ValueError(f"x and y must be two different parameters among {', '.join(PARAMS)}")
        fn: Any = {"max": np.max, "mean": np.mean, "median": np.median}.get(reduce)
        if fn is None:
            raise ValueError(f"reduce must be max, mean or median, got {reduce!r}")
        v, xc, yc = self.column(metric), self.column(x), self.column(y)
        xs = np.unique(xc[~np.isnan(xc)]) if x != "stop" else np.unique(xc)
        ys = np.unique(yc[~np.isnan(yc)]) if y != "stop" else np.unique(yc)
        z = np.full((ys.size, xs.size), np.nan)
        for a, xv in enumerate(xs):
            mx = np.isnan(xc) if np.isnan(xv) else xc == xv
            for b, yv in enumerate(ys):
                sel = mx & (np.isnan(yc) if np.isnan(yv) else yc == yv)
                vals = v[sel]
                vals = vals[np.isfinite(vals)]
                if vals.size:
                    z[b, a] = fn(vals)
        return xs, ys, z


def shard_ranges(n: int, shards: int) -> list[tuple[int, int]]:
    """``shards`` contiguous, near-equal [lo, hi) ranges covering 0..n (fewer if n is smaller)."""
    shards = max(1, min(int(shards), n))
    bounds = [round(i * n / shards) for i in range(shards + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(shards) if bounds[i + 1] > bounds[i]]


def run_sweep(
    prices: Any,
    grid: ParameterGrid,
    executor: Executor | None = None,
    *,
    oos_fraction: float = 0.3,
    periods_per_year: float = 252.0,
    shards: int | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> SweepResult:
    """Run the grid on ``executor`` (default: in-process) and return the table in grid order."""
    if not isinstance(grid, ParameterGrid):
        raise TypeError(f"grid must be a ParameterGrid, got {type(grid).__name__}")
    p = as_vector("prices", prices)
    if isinstance(oos_fraction, bool) or not isinstance(oos_fraction, numbers.Real) or not (0.0 <= oos_fraction < 1.0):
        raise ValueError(f"oos_fraction must be a number in [0, 1), got {oos_fraction!r}")
    n = p.size
    split = n - int(round(float(oos_fraction) * n))
    if split < 3 or (split < n and n - split + 1 < 3):
        raise ValueError(
            f"{n} prices are too few for oos_fraction={oos_fraction}: each part needs at least 3 bars "
            f"(in-sample {split}, out-of-sample {n - split})"
        )
    if executor is None:
        executor = InProcessExecutor()
    pts = grid.points()
    k = shards if shards is not None else executor.default_shards()
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"shards must be an integer >= 1, got {shards!r}")
    ranges = shard_ranges(len(pts), k)
    shared = {"prices": p, "split": split, "periods_per_year": float(periods_per_year)}
    parts = executor.map(sweep_shard, shared, [pts[lo:hi] for lo, hi in ranges], progress=progress, cancel=cancel)
    values = np.vstack(parts) if parts else np.empty((0, 2 * len(METRICS)))
    return SweepResult(grid, pts, values, split, n, executor.kind, executor.last_report)


def grid_from_text(**fields: str | Sequence) -> ParameterGrid:
    """Parse the UI's fields: comma-separated lists or ``start:stop:step`` ranges (inclusive),
    "none" in stop for no stop."""
    parsed: dict[str, Any] = {}
    for name, txt in fields.items():
        if not isinstance(txt, str):
            parsed[name] = txt
            continue
        vals: list = []
        for part in (s.strip() for s in txt.split(",")):
            if not part:
                continue
            if part.lower() in ("none", "-") and name == "stop":
                vals.append(None)
                continue
            if ":" in part:
                bits = part.split(":")
                if len(bits) != 3:
                    raise ValueError(f"{name}: a range is start:stop:step, got {part!r}")
                try:
                    a, b, s = (float(x) for x in bits)
                except ValueError:
                    raise ValueError(f"{name}: not a number in {part!r}") from None
                if not (s > 0) or b < a or (b - a) / s > 10_000:
                    raise ValueError(f"{name}: a range needs step > 0, stop >= start and at most 10000 steps, got {part!r}")
                m = int(math.floor((b - a) / s + 1e-9))
                vals.extend(round(a + i * s, 12) for i in range(m + 1))
                continue
            try:
                vals.append(float(part))
            except ValueError:
                raise ValueError(f"{name}: not a number: {part!r}") from None
        parsed[name] = vals
    return ParameterGrid(**parsed)
