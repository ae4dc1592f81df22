"""Portfolio tab's computation (Qt-free): the optimised portfolio and each asset's own moments."""

from __future__ import annotations

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


def optimise(backend, prices, method: str, parameters: dict, ctx: TaskContext | None = None) -> dict:
    """The tab's computation on one backend (worker thread): the portfolio, then each asset's own
    annualised return and volatility for the frontier plot. `prices` is a DataFrame, or a
    SyntheticSelection that makes one."""
    loader = prices if isinstance(prices, SyntheticSelection) else None
    if loader is not None:
        prices = loader()
        check(ctx)
    res = backend.optimize_portfolio(prices, method=method, parameters=parameters, cancel=ctx)
    # each asset's own moments, estimated by the core exactly as the optimiser estimates them
    # (None: the core's default)
    m = backend.estimate_moments(
        prices,
        returns=parameters.get("returns"),
        annualization=parameters.get("annualization"),
        covariance=parameters.get("covariance"),
        cancel=ctx,
    )
    mean, vol = m.mean, m.volatilities
    universe = (loader.key, loader.frame) if loader is not None else None
    return {"result": res, "asset_returns": mean, "asset_volatilities": vol, "universe": universe}
