"""Portfolio tab's computation (Qt-free): the optimised portfolio and each asset's own moments."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from hft_lab.data.synthetic import synthetic_universe

from .context import TaskContext, check


class SyntheticSelection:
    """Generates a synthetic universe and picks the checked assets: called on the worker thread
    (a large universe takes a fraction of a second to draw); keeps the whole universe in `frame`
    so the view can reuse it."""

    def __init__(self, n_assets: int, n_obs: int, seed: int, names: list[str]):
        self.key = (n_assets, n_obs, seed)
        self.names = list(names)
        self.frame: pd.DataFrame | None = None

    def __call__(self) -> pd.DataFrame:
        self.frame = synthetic_universe(*self.key)
        return self.frame[self.names]


def asset_moments(prices: np.ndarray, returns: str = "simple", annualization: float = 252.0, covariance: str = "sample"):
    """Annualised expected return and volatility of each asset held alone, for the frontier plot.

    Same conventions as the core (rustcore/src/portfolio.rs, `estimate`), so the points sit where
    the core's frontier puts them: returns r_t = p_t/p_{t-1} - 1 ("simple") or ln(p_t/p_{t-1})
    ("log"); mean = mean(r) * annualization; volatility = std(r, ddof=1) * sqrt(annualization) for
    the sample covariance, or the square root of the diagonal of sklearn's Ledoit-Wolf covariance
    (shrinkage of the ddof=0 covariance towards its average variance) * annualization.

    (A NumPy copy of the core's estimator: issue 15 asks for it to come from rustcore through both
    transports instead.)
    """
    p = np.asarray(prices, dtype=np.float64)
    r = np.log(p[1:] / p[:-1]) if returns == "log" else p[1:] / p[:-1] - 1.0
    mean = r.mean(axis=0) * annualization
    if covariance != "ledoit_wolf":
        return mean, r.std(axis=0, ddof=1) * math.sqrt(annualization)
    # sklearn.covariance.ledoit_wolf_shrinkage, as in the core
    x = r - r.mean(axis=0)
    t, n = x.shape
    emp = x.T @ x / t
    var = np.diag(emp)
    m = var.sum() / n
    beta_ = float(np.sum((x * x).sum(axis=1) ** 2))
    delta_ = float(np.sum(emp * emp))
    beta = (beta_ / t - delta_) / (n * t)
    delta = (delta_ - 2.0 * m * var.sum() + n * m * m) / n
    beta = min(beta, delta)
    shrink = 0.0 if beta == 0.0 or delta <= 0.0 else beta / delta
    return mean, np.sqrt(((1.0 - shrink) * var + shrink * m) * annualization)


def optimise(backend, prices, method: str, parameters: dict, ctx: TaskContext | None = None) -> dict:
    """The tab's computation on one backend (worker thread): the portfolio, then each asset's own
    annualised return and volatility for the frontier plot. `prices` is a DataFrame, or a
    SyntheticSelection that makes one."""
    loader = prices if isinstance(prices, SyntheticSelection) else None
    if loader is not None:
        prices = loader()
        check(ctx)
    res = backend.optimize_portfolio(prices, method=method, parameters=parameters, cancel=ctx)
    mean, vol = asset_moments(
        prices.to_numpy(dtype=np.float64),
        parameters.get("returns", "simple"),
        parameters.get("annualization", 252.0),
        parameters.get("covariance", "sample"),
    )
    universe = (loader.key, loader.frame) if loader is not None else None
    return {"result": res, "asset_returns": mean, "asset_volatilities": vol, "universe": universe}
