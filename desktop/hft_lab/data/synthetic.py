"""Seeded synthetic generators (same seed, same series)."""

from __future__ import annotations

import numpy as np


def ou_series(n: int = 5000, kappa: float = 0.05, theta: float = 100.0, sigma: float = 1.0, seed: int = 0) -> np.ndarray:
    """Discretised Ornstein-Uhlenbeck: x[t+1] = x[t] + kappa (theta - x[t]) + sigma eps."""
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    rng = np.random.default_rng(seed)
    eps = rng.normal(0.0, sigma, n)
    x = np.empty(n)
    x[0] = theta
    for t in range(1, n):
        x[t] = x[t - 1] + kappa * (theta - x[t - 1]) + eps[t]
    return x


def cointegrated_basket(n: int = 2000, assets: int = 5, seed: int = 0) -> np.ndarray:
    """Prices driven by one common random walk plus stationary noise (all pairs cointegrated)."""
    rng = np.random.default_rng(seed)
    common = np.cumsum(rng.normal(0, 1, n))
    loadings = rng.uniform(0.5, 1.5, assets)
    noise = np.column_stack([ou_series(n, 0.1, 0.0, 0.5, seed + i + 1) for i in range(assets)])
    return 100.0 + common[:, None] * loadings[None, :] + noise


def regime_switching_returns(
    n: int = 3000,
    means=(-0.002, 0.0005, 0.001),
    stds=(0.025, 0.01, 0.005),
    stay: float = 0.98,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Returns drawn from a Markov chain of Gaussian regimes; gives (returns, true_states)."""
    rng = np.random.default_rng(seed)
    k = len(means)
    trans = np.full((k, k), (1 - stay) / (k - 1))
    np.fill_diagonal(trans, stay)
    states = np.empty(n, dtype=np.int64)
    states[0] = 0
    for t in range(1, n):
        states[t] = rng.choice(k, p=trans[states[t - 1]])
    r = rng.normal(np.asarray(means)[states], np.asarray(stds)[states])
    return r, states
