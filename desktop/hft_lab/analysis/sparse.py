"""Sparse Portfolio tab's computations and plain helpers (Qt-free): basket search, λ path, the
period cut, the ADF verdict text, the basket formula."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from hft_lab.data.synthetic import synthetic_dataset

from .context import TaskContext


def round_sig(x: float, digits: int = 3) -> float:
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - int(math.floor(math.log10(abs(x)))))


def cut_period(df: pd.DataFrame, years: int | None) -> pd.DataFrame:
    """The last `years` years of a dated frame (None, or bar numbers: every row); rows with a
    missing price dropped; float64."""
    if years and isinstance(df.index, pd.DatetimeIndex) and len(df):
        df = df.loc[df.index[-1] - pd.DateOffset(years=int(years)) :]
    return df.dropna(how="any").astype(np.float64)


def adf_verdict(stat: float, crit, tries: int = 1, search: bool = False) -> str:
    """Plain reading of the Engle-Granger ADF test: the strongest level at which it rejects.

    tries > 1: the basket is the best of `tries` fits (e.g. every asset tried as the target), so
    the single-test levels are corrected (Bonferroni: a single-test p below L% bounds the
    family-wise p by tries·L%). search: the combination itself was searched for (Box-Tiao,
    greedy), which the critical values do not account for: said plainly."""
    c = [float(v) for v in crit]
    if not math.isfinite(stat) or len(c) != 3:
        return "n/a"
    level = 1 if stat < c[0] else 5 if stat < c[1] else 10 if stat < c[2] else None
    caveat = ", in-sample search: optimistic" if search else ""
    if tries <= 1:
        if level is None:
            return "not significant" + caveat
        if level == 10:
            return "weak: significant at 10% only" + caveat
        return f"cointegrated at {level}%{caveat}"
    if level is None:
        return f"not significant (best of {tries} targets)"
    fw = level * tries
    if fw <= 5:
        return f"cointegrated at {fw:g}% after Bonferroni (best of {tries} targets)"
    if fw <= 10:
        return f"weak: {fw:g}% after Bonferroni (best of {tries} targets)"
    return (
        f"not significant after correcting for {tries} targets tried (single test {level}%: a best-of-{tries} in-sample result)"
    )


def basket_formula(names, weights, target_index: int = -1, max_terms: int = 6) -> str:
    """'KO − 0.523 PEP − 0.311 PG': the target first, then the largest |w|."""
    w = np.asarray(weights, dtype=np.float64)
    sel = sorted((int(i) for i in np.flatnonzero(w)), key=lambda i: (i != target_index, -abs(w[i])))
    parts = []
    for k, i in enumerate(sel[:max_terms]):
        v = float(w[i])
        term = f"{'' if abs(v) == 1.0 else f'{abs(v):.3g} '}{names[i]}"
        parts.append(("−" if v < 0 else "") + term if k == 0 else ("− " if v < 0 else "+ ") + term)
    if len(sel) > max_terms:
        parts.append(f"… ({len(sel) - max_terms} more)")
    return " ".join(parts) if parts else "(empty)"


class SyntheticPrices:
    """The seeded synthetic cointegrated basket, generated on the worker thread (its generator is
    a Python loop: large baskets take seconds) and cut to the period."""

    def __init__(self, n: int, assets: int, seed: int, years: int | None):
        self.params = dict(n=int(n), assets=int(assets), seed=int(seed))
        self.years = years

    def __call__(self) -> pd.DataFrame:
        ds = synthetic_dataset("cointegrated", **self.params)
        out = cut_period(ds.prices, self.years)
        out.attrs = dict(ds.prices.attrs, name=ds.name)
        return out


def find_basket(backend, prices, method: str, params: dict, ctx: TaskContext | None = None) -> dict:
    """The tab's run on one backend (worker thread): `prices` is a DataFrame or a callable making it."""
    frame = prices() if callable(prices) else prices
    res = backend.calculate_sparse_portfolio(frame, method=method, cancel=ctx, **params)
    return {"result": res, "frame": frame}


def lambda_path(backend, prices, params: dict, ctx: TaskContext | None = None) -> dict:
    frame = prices() if callable(prices) else prices
    path = backend.sparse_lambda_path(frame, cancel=ctx, **params)
    return {"path": path, "frame": frame}
