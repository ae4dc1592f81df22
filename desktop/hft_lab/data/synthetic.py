"""Seeded synthetic generators (same seed, same series), and the same as datasets."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from hft_lab.lazy_import import lazy_module

from .samples import Dataset

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")  # imported on first use (issue 16: start-up)


def ou_series(n: int = 5000, kappa: float = 0.05, theta: float = 100.0, sigma: float = 1.0, seed: int = 0) -> np.ndarray:
    """Discretised Ornstein-Uhlenbeck: x[t+1] = x[t] + kappa (theta - x[t]) + sigma eps.

    Vectorised by blocks (x - theta is a linear recursion with factor phi = 1 - kappa): inside a
    block d[t] = phi^t (d0 + sum_s eps_s phi^-s), with blocks short enough that phi^-B stays
    below 1e3, so rounding stays within ~1e-13 of the plain loop (10M points take well under a second)."""
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    rng = np.random.default_rng(seed)
    eps = rng.normal(0.0, sigma, n)
    phi = 1.0 - kappa
    x = np.empty(n)
    x[0] = theta
    if not 0.0 < phi < 1.0 or n < 64:
        for t in range(1, n):
            x[t] = x[t - 1] + kappa * (theta - x[t - 1]) + eps[t]
        return x
    block = max(1, min(4096, int(np.log(1e3) / -np.log(phi))))
    powers = phi ** np.arange(1, block + 1)
    d0 = 0.0
    t = 1
    while t < n:
        e = eps[t : t + block]
        p = powers[: len(e)]
        d = p * (d0 + np.cumsum(e / p))
        x[t : t + len(e)] = theta + d
        d0 = d[-1]
        t += len(e)
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


# the regimes of regime_switching_returns (its defaults), used by the Regimes tab
SYNTH_MEANS = (-0.002, 0.0005, 0.001)
SYNTH_STDS = (0.025, 0.01, 0.005)
SYNTH_STAY = 0.98


def synthetic_regime_returns(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Same numbers as regime_switching_returns(n, seed=seed) (same random stream), ~15x faster
    (the chain's uniforms are drawn at once), so a large series does not stall the GUI thread."""
    rng = np.random.default_rng(seed)
    k = len(SYNTH_MEANS)
    trans = np.full((k, k), (1 - SYNTH_STAY) / (k - 1))
    np.fill_diagonal(trans, SYNTH_STAY)
    states = np.zeros(n, dtype=np.int64)
    if n > 1:
        u = rng.random(n - 1)  # Generator.choice(k, p=row) draws exactly one uniform per call
        cdf = trans.cumsum(axis=1)
        cdf /= cdf[:, -1:]
        nxt = [cdf[s].searchsorted(u, side="right").tolist() for s in range(k)]
        path = [0] * n
        s = 0
        for t in range(1, n):
            s = nxt[s][t - 1]
            path[t] = s
        states[:] = path
    r = rng.normal(np.asarray(SYNTH_MEANS)[states], np.asarray(SYNTH_STDS)[states])
    return r, states


def synthetic_universe(n_assets: int = 10, n_obs: int = 2520, seed: int = 0) -> pd.DataFrame:
    """Seeded correlated geometric Brownian motions (daily bars, 252 a year): one market factor and
    three sector factors; annual drifts 2–18 %, volatilities 15–45 %. Same seed, same prices.
    (The Portfolio tab's synthetic universe.)"""
    if n_assets < 1 or n_obs < 2:
        raise ValueError(f"need at least 1 asset and 2 observations, got {n_assets} and {n_obs}")
    rng = np.random.default_rng(seed)
    mu = rng.uniform(0.02, 0.18, n_assets)
    vol = rng.uniform(0.15, 0.45, n_assets)
    market = rng.uniform(0.3, 0.7, n_assets)
    sector = rng.integers(0, 3, n_assets)
    sector_load = rng.uniform(0.2, 0.5, n_assets)
    idio = np.sqrt(1.0 - market**2 - sector_load**2)  # unit-variance shocks
    z = rng.standard_normal((n_obs - 1, 4 + n_assets))
    shocks = market * z[:, [0]] + sector_load * z[:, 1 + sector] + idio * z[:, 4:]
    dt = 1.0 / 252.0
    r = (mu - 0.5 * vol**2) * dt + vol * math.sqrt(dt) * shocks  # log returns; E[simple] ≈ mu
    logp = np.vstack([np.zeros((1, n_assets)), np.cumsum(r, axis=0)])
    return pd.DataFrame(100.0 * np.exp(logp), columns=synthetic_names(n_assets), index=pd.RangeIndex(n_obs, name="bar"))


def synthetic_names(n_assets: int) -> list[str]:
    """The Portfolio tab's synthetic asset names: SYN01, SYN02, …"""
    width = max(2, len(str(n_assets)))
    return [f"SYN{i + 1:0{width}d}" for i in range(n_assets)]


def correlated_gbm(
    n: int = 2520,
    assets: int = 10,
    mu=0.07,
    sigma=0.2,
    rho: float = 0.3,
    corr=None,
    s0=100.0,
    dt: float = 1.0 / 252.0,
    seed: int = 0,
) -> np.ndarray:
    """A universe of correlated geometric Brownian motions, n x assets, exact in distribution:
    S[t] = S[t-1] exp((mu - sigma^2/2) dt + sigma sqrt(dt) Z[t]), Z ~ N(0, C) with C the given
    correlation matrix `corr` (or constant pairwise correlation `rho`). mu and sigma are annual
    (with dt = 1/252 per bar) and may be scalars or one value per asset; S[0] = s0."""
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    if assets < 1:
        raise ValueError(f"assets must be at least 1, got {assets}")
    if not dt > 0:
        raise ValueError(f"dt must be positive, got {dt}")
    mu_v = np.broadcast_to(np.asarray(mu, dtype=np.float64), (assets,)).copy()
    sig_v = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (assets,)).copy()
    s0_v = np.broadcast_to(np.asarray(s0, dtype=np.float64), (assets,)).copy()
    if np.any(sig_v < 0) or np.any(s0_v <= 0):
        raise ValueError("sigma must be >= 0 and s0 > 0")
    if corr is None:
        lo = -1.0 / (assets - 1) if assets > 1 else -1.0
        if not lo < rho < 1.0 and assets > 1:
            raise ValueError(f"rho must be in ({lo:.4g}, 1) for {assets} assets, got {rho}")
        c = np.full((assets, assets), float(rho))
        np.fill_diagonal(c, 1.0)
    else:
        c = np.asarray(corr, dtype=np.float64)
        if c.shape != (assets, assets) or not np.allclose(c, c.T) or not np.allclose(np.diag(c), 1.0):
            raise ValueError(f"corr must be a symmetric {assets}x{assets} matrix with a unit diagonal")
    try:
        chol = np.linalg.cholesky(c)
    except np.linalg.LinAlgError:
        raise ValueError("the correlation matrix is not positive definite") from None
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n - 1, assets)) @ chol.T
    steps = (mu_v - 0.5 * sig_v**2) * dt + sig_v * np.sqrt(dt) * z
    logp = np.vstack([np.zeros(assets), np.cumsum(steps, axis=0)])
    return s0_v * np.exp(logp)


# ---- the generators as datasets (the store offers them; no Qt here) ----

SYNTHETIC_START = "2000-01-03"
MAX_DATED_BARS = 60_000

SYNTHETIC_KINDS: dict[str, str] = {
    "ou": "Ornstein-Uhlenbeck series (one asset)",
    "cointegrated": "cointegrated basket (common random walk + stationary noise)",
    "regimes": "prices from regime-switching returns (Markov chain of Gaussian regimes)",
    "gbm": "correlated geometric Brownian motions (a stock universe)",
}

SYNTHETIC_DEFAULTS: dict[str, dict[str, Any]] = {
    "ou": dict(n=5000, kappa=0.05, theta=100.0, sigma=1.0, seed=0),
    "cointegrated": dict(n=2000, assets=5, seed=0),
    "regimes": dict(n=3000, means=(-0.002, 0.0005, 0.001), stds=(0.025, 0.01, 0.005), stay=0.98, s0=100.0, seed=0),
    "gbm": dict(n=2520, assets=10, mu=0.07, sigma=0.2, rho=0.3, s0=100.0, seed=0),
}


def synthetic_index(n: int) -> pd.Index:
    if n <= MAX_DATED_BARS:
        return pd.bdate_range(SYNTHETIC_START, periods=n, name="date")
    return pd.RangeIndex(n, name="bar")


def _g(v: Any) -> str:
    if isinstance(v, (list, tuple, np.ndarray)):
        return "(" + ", ".join(_g(x) for x in v) + ")"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def synthetic_dataset(kind: str, **params: Any) -> Dataset:
    """A seeded synthetic dataset (same parameters, same prices). Kinds and their parameters
    (defaults in SYNTHETIC_DEFAULTS): "ou" (n, kappa, theta, sigma, seed), "cointegrated" (n, assets,
    seed), "regimes" (n, means, stds, stay, s0, seed; prices s0·exp(cumsum(returns))), "gbm" (n, assets,
    mu, sigma, rho, s0, seed)."""
    if kind not in SYNTHETIC_DEFAULTS:
        raise ValueError(f"unknown synthetic kind {kind!r}: use one of {', '.join(SYNTHETIC_DEFAULTS)}")
    unknown = set(params) - set(SYNTHETIC_DEFAULTS[kind])
    if unknown:
        raise ValueError(
            f"unknown parameter(s) for {kind!r}: {', '.join(sorted(unknown))} (allowed: {', '.join(SYNTHETIC_DEFAULTS[kind])})"
        )
    p = {**SYNTHETIC_DEFAULTS[kind], **params}
    n = int(p["n"])
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    if kind == "ou":
        x = ou_series(n, kappa=p["kappa"], theta=p["theta"], sigma=p["sigma"], seed=int(p["seed"]))
        data, cols = x[:, None], ["OU"]
        name = f"Synthetic OU (n={n}, κ={_g(p['kappa'])}, seed={p['seed']})"
    elif kind == "cointegrated":
        k = int(p["assets"])
        if k < 2:
            raise ValueError(f"a cointegrated basket needs at least 2 assets, got {k}")
        data = cointegrated_basket(n, assets=k, seed=int(p["seed"]))
        cols = [f"C{i + 1}" for i in range(k)]
        name = f"Synthetic cointegrated basket (n={n}, {k} assets, seed={p['seed']})"
    elif kind == "regimes":
        if len(p["means"]) != len(p["stds"]) or len(p["means"]) < 2:
            raise ValueError("means and stds must have the same length, at least 2 (one per regime)")
        if not 0.0 < float(p["stay"]) < 1.0:
            raise ValueError(f"stay must be in (0, 1), got {p['stay']}")
        r, _states = regime_switching_returns(n, means=p["means"], stds=p["stds"], stay=float(p["stay"]), seed=int(p["seed"]))
        r = r.copy()
        r[0] = 0.0  # the first price is s0
        data = (float(p["s0"]) * np.exp(np.cumsum(r)))[:, None]
        cols = ["REGIMES"]
        name = f"Synthetic regimes (n={n}, {len(p['means'])} states, stay={_g(p['stay'])}, seed={p['seed']})"
    else:  # gbm
        k = int(p["assets"])
        data = correlated_gbm(n, assets=k, mu=p["mu"], sigma=p["sigma"], rho=float(p["rho"]), s0=p["s0"], seed=int(p["seed"]))
        cols = [f"GBM{i + 1:02d}" for i in range(k)]
        name = f"Synthetic GBM (n={n}, {k} assets, ρ={_g(p['rho'])}, seed={p['seed']})"
    prices = pd.DataFrame(np.ascontiguousarray(data, dtype=np.float64), index=synthetic_index(n), columns=cols)
    prices.attrs["source"] = {"kind": "synthetic", "generator": kind, "params": {k: _jsonable(v) for k, v in p.items()}}
    return Dataset(name, prices)


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v
