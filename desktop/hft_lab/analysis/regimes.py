"""Regimes tab's computations (Qt-free): the HMM fit with live progress, the equal-weight index,
runs of the Viterbi path."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .context import TaskContext


def equal_weight_index(df: pd.DataFrame) -> tuple[np.ndarray, pd.Index, int]:
    """The equal-weight index of a price table (100 at the first row, then the mean of the assets'
    simple returns, assets with a missing price skipped): (levels, their index labels, number of
    bars left out because no asset had a return there). ValueError when a price is not finite and
    positive (the index would be meaningless, and so would its log returns)."""
    v = df.to_numpy(dtype=np.float64)
    bad = ~np.isnan(v) & (~np.isfinite(v) | (v <= 0))
    if bad.any():
        i, j = (int(a[0]) for a in np.nonzero(bad))
        lab = df.index[i]
        at = f"{lab:%Y-%m-%d}" if isinstance(lab, pd.Timestamp) and lab == lab.normalize() else str(lab)
        raise ValueError(f"log returns need finite positive prices: {df.columns[j]} is {v[i, j]:g} at {at} (row {i:,})")
    with np.errstate(invalid="ignore", divide="ignore"):
        simple = v[1:] / v[:-1] - 1.0
    have = ~np.isnan(simple)
    count = have.sum(axis=1)
    keep = count > 0
    mean = np.where(have, simple, 0.0).sum(axis=1)[keep] / count[keep]
    levels = 100.0 * np.r_[1.0, np.cumprod(1.0 + mean)]
    labels = df.index[np.r_[True, keep]]
    return levels, labels, int((~keep).sum())


def fit_regimes(backend, observations, n_states, max_iterations, tolerance, n_restarts, seed, ctx: TaskContext | None = None):
    """The tab's computation (on the worker thread): one Gaussian HMM fit; every EM iteration is
    reported as `ctx.progress((iteration, log_likelihood))`, and a cancelled context stops EM."""

    def progress(it, ll):
        if ctx is None:
            return True
        return ctx.progress((int(it), float(ll)))

    return backend.run_hmm(
        observations,
        n_states=n_states,
        max_iterations=max_iterations,
        tolerance=tolerance,
        n_restarts=n_restarts,
        seed=seed,
        progress=progress,
        cancel=ctx,
    )


def segments(path: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Consecutive runs of the same state: (starts, ends (exclusive), states)."""
    path = np.asarray(path)
    if len(path) == 0:
        e = np.empty(0, dtype=np.int64)
        return e, e, e
    change = np.flatnonzero(path[1:] != path[:-1]) + 1
    starts = np.r_[0, change]
    ends = np.r_[change, len(path)]
    return starts, ends, path[starts]


# ---------------------------------------------------------------------------------------------
# features (several per series) and the multivariate / filtered / walk-forward runs
# ---------------------------------------------------------------------------------------------

FEATURE_KINDS = ("returns", "abs_returns", "rolling_vol")
FEATURE_TEXT = {
    "returns": "log return r_t",
    "abs_returns": "absolute log return |r_t|",
    "rolling_vol": "rolling volatility: sample standard deviation (ddof=1) of the last w log returns r_(t-w+1..t)",
}


def aligned_log_returns(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, pd.Index]:
    """The rows of a price table where every column has a price: (prices T+1 x N, log returns
    T x N, the rows' labels). ValueError when a price is not finite and positive or fewer than two
    rows are complete."""
    full = df.dropna(how="any")
    v = full.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(v) | (v <= 0)
    if bad.any():
        i, j = (int(a[0]) for a in np.nonzero(bad))
        raise ValueError(f"log returns need finite positive prices: {full.columns[j]} is {v[i, j]:g} at {full.index[i]}")
    if len(v) < 2:
        raise ValueError(f"the assets {', '.join(map(str, df.columns))} have fewer than two dates with a price for every one")
    return v, np.diff(np.log(v), axis=0), full.index


def rolling_std(r: np.ndarray, window: int) -> np.ndarray:
    """The sample (ddof = 1) rolling standard deviation of each column of `r` over `window` rows
    (NaN for the first window - 1 rows), from the core's exact rolling statistics (in-process, as
    on both backends: input preparation, not a result; a window of equal values gives exactly 0)."""
    from hft_lab import _rustcore

    out = np.empty(r.shape, dtype=np.float64)
    for j in range(r.shape[1]):
        col = np.ascontiguousarray(r[:, j])
        if col.size and np.all(col == col[0]):
            # a constant column: every window is flat (the core's mean reversion refuses a constant
            # price series, but a flat volatility feature is well defined: 0)
            out[: window - 1, j] = np.nan
            out[window - 1 :, j] = 0.0
            continue
        out[:, j] = _rustcore.mean_reversion(col, window, 2.0, outputs=["std"])["rolling_std"]
    return out


def build_features(
    returns: np.ndarray, names: list[str] | tuple[str, ...], kinds: tuple[str, ...] | list[str], vol_window: int = 20
) -> tuple[np.ndarray, list[str], int]:
    """The HMM's observations from log returns (T x N, one column per series): for every kind
    (in FEATURE_KINDS order) one column per series, named "<series name> r", "… |r|", "… vol<w>"
    (just "r", "|r|", "vol<w>" for a series named ""). Returns (X, feature names, offset): with a
    rolling volatility the first vol_window - 1 returns have no value and every feature starts at
    return `offset` = vol_window - 1 (else 0), so row i of X is return offset + i."""
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim == 1:
        r = r.reshape(-1, 1)
    unknown = set(kinds) - set(FEATURE_KINDS)
    kinds = [k for k in FEATURE_KINDS if k in set(kinds)]
    if unknown or not kinds:
        raise ValueError(f"choose at least one feature ({', '.join(FEATURE_KINDS)})")
    offset = 0
    if "rolling_vol" in kinds:
        if not 2 <= vol_window <= len(r):
            raise ValueError(f"the volatility window must be between 2 and the number of returns ({len(r):,}), got {vol_window}")
        offset = vol_window - 1
    cols, out_names = [], []
    for kind in kinds:
        if kind == "returns":
            block, tag = r, "r"
        elif kind == "abs_returns":
            block, tag = np.abs(r), "|r|"
        else:
            block, tag = rolling_std(r, vol_window), f"vol{vol_window}"
        cols.append(block[offset:])
        out_names += [f"{n} {tag}".strip() for n in names]
    return np.ascontiguousarray(np.hstack(cols)), out_names, offset


def fit_regimes_mv(
    backend,
    observations,
    n_states,
    covariance_type,
    max_iterations,
    tolerance,
    n_restarts,
    seed,
    ctx: TaskContext | None = None,
):
    """Several features: one multivariate Gaussian HMM fit (backend.run_hmm_mv), progress and
    cancel as in fit_regimes."""

    def progress(it, ll):
        return True if ctx is None else ctx.progress((int(it), float(ll)))

    return backend.run_hmm_mv(
        observations,
        n_states=n_states,
        covariance_type=covariance_type,
        max_iterations=max_iterations,
        tolerance=tolerance,
        n_restarts=n_restarts,
        seed=seed,
        progress=progress,
        cancel=ctx,
    )


def walk_forward_regimes(
    backend,
    observations,
    formation,
    step,
    n_states,
    covariance_type,
    max_iterations,
    tolerance,
    n_restarts,
    seed,
    ctx: TaskContext | None = None,
):
    """backend.hmm_walk_forward; progress is reported as ctx.progress(("windows", done, total))."""

    def progress(done, total):
        return True if ctx is None else ctx.progress(("windows", int(done), int(total)))

    return backend.hmm_walk_forward(
        observations,
        formation=formation,
        step=step,
        n_states=n_states,
        covariance_type=covariance_type,
        max_iterations=max_iterations,
        tolerance=tolerance,
        n_restarts=n_restarts,
        seed=seed,
        progress=progress,
        cancel=ctx,
    )


def most_likely_differs(smoothed: np.ndarray, filtered: np.ndarray) -> np.ndarray:
    """Where the most likely regime of the filtered probabilities (knowable at the time) is not the
    one of the smoothed probabilities (which use later data): a boolean per row."""
    s, f = np.asarray(smoothed), np.asarray(filtered)
    if s.shape != f.shape or s.ndim != 2:
        return np.zeros(len(s), dtype=bool)
    return s.argmax(axis=1) != f.argmax(axis=1)
