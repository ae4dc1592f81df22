"""The sample dataset that ships with the app (works offline from the first launch)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd


def resources_dir() -> Path:
    if hasattr(sys, "_MEIPASS"):
        return Path(sys._MEIPASS) / "resources"
    return Path(__file__).resolve().parents[3] / "resources"


@dataclass(frozen=True)
class Dataset:
    name: str
    prices: pd.DataFrame  # DatetimeIndex (or RangeIndex) x assets

    @property
    def assets(self) -> list[str]:
        return [str(c) for c in self.prices.columns]

    def describe(self) -> str:
        idx = self.prices.index
        span = f"{idx[0]:%Y-%m-%d} … {idx[-1]:%Y-%m-%d}" if isinstance(idx, pd.DatetimeIndex) else f"{len(idx)} bars"
        k = len(self.prices.columns)
        return f"{self.name}: {k} asset{'s' if k != 1 else ''}, {len(self.prices):,} rows, {span}"


@lru_cache(maxsize=1)
def _sp500() -> pd.DataFrame:
    path = resources_dir() / "data" / "sp500_20_stocks.csv.gz"
    return pd.read_csv(path, index_col="Date", parse_dates=["Date"])


def load_sample_prices() -> Dataset:
    """20 S&P 500 stocks, daily adjusted close 1990-2022 (from skfolio, BSD-3; see resources/data)."""
    return Dataset("S&P 500 sample (20 stocks)", _sp500().copy())
