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
