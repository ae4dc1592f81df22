"""The sample dataset that ships with the app (works offline from the first launch).

Start-up (issue 16): the window shows the sample at once, and pandas costs ~0.3 s to import, so
the sample is read without it. `resources/data/sp500_20_stocks.npz` holds the same table as the
CSV, as pandas parses it (the values, the dates in pandas' unit, the column names), made by
`write_sample_cache()` (`python tools/make_sample_cache.py`) and tagged with the SHA-256 of the CSV
it was made from. `load_sample_prices()` returns an `ArrayDataset` over those arrays: its name,
assets, `describe()` and single columns (`column()`) need no pandas; its `prices` DataFrame is
built from the same arrays on first use (pandas imported then). Without the file, or when it
does not match the CSV, the CSV is read with pandas as before (and a log line says so)."""

from __future__ import annotations

import hashlib
import logging
import sys
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from hft_lab.lazy_import import lazy_module

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

log = logging.getLogger("hft_lab.data.samples")

SAMPLE_NAME = "S&P 500 sample (20 stocks)"
SAMPLE_CSV = "sp500_20_stocks.csv.gz"
SAMPLE_CACHE = "sp500_20_stocks.npz"
CACHE_FORMAT = 1


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


class SampleArrays(NamedTuple):
    """A price table as plain arrays: what `pd.read_csv(csv, index_col="Date", parse_dates=["Date"])`
    gives, taken apart (read-only arrays)."""

    columns: tuple[str, ...]
    dates: np.ndarray  # datetime64[<pandas' unit>], strictly increasing
    values: np.ndarray  # float64, rows x columns (NaN where missing)
    index_name: str


class ArrayDataset(Dataset):
    """A Dataset held as arrays; `prices` (the DataFrame, as `Dataset.prices`) is built on first
    use, and is then the same object on every access. Before that, `assets`, `describe()`, `rows`
    and `column()` read the arrays (no pandas)."""

    _arrays: SampleArrays
    _frame: pd.DataFrame | None
    _lock: threading.Lock

    def __init__(self, name: str, arrays: SampleArrays):  # noqa: D107 (not the dataclass __init__)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "_arrays", arrays)
        object.__setattr__(self, "_frame", None)
        object.__setattr__(self, "_lock", threading.Lock())

    @property  # type: ignore[override]  # a field in Dataset, computed here
    def prices(self) -> pd.DataFrame:
        frame = self._frame
        if frame is None:
            with self._lock:
                frame = self._frame
                if frame is None:
                    a = self._arrays
                    index = pd.DatetimeIndex(a.dates, name=a.index_name)
                    # one block per column, each its own copy, as read_csv lays it out
                    cols = [pd.Series(np.array(a.values[:, j]), index=index, name=c, copy=False) for j, c in enumerate(a.columns)]
                    frame = pd.concat(cols, axis=1)
                    object.__setattr__(self, "_frame", frame)
        return frame

    @property
    def materialized(self) -> bool:
        """True once `prices` (the DataFrame) was built."""
        return self._frame is not None

    @property
    def assets(self) -> list[str]:
        return list(self._arrays.columns)

    @property
    def rows(self) -> int:
        return len(self._arrays.dates)

    def describe(self) -> str:
        a = self._arrays
        k = len(a.columns)
        first, last = (str(d) for d in a.dates[[0, -1]].astype("datetime64[D]"))
        return f"{self.name}: {k} asset{'s' if k != 1 else ''}, {len(a.dates):,} rows, {first} … {last}"

    def column(self, asset: str) -> tuple[np.ndarray, np.ndarray]:
        """(prices, dates) of one asset without its missing values: the same as
        `prices[asset].dropna()` as arrays (`.to_numpy(dtype=float64)`, `.index.to_numpy()`)."""
        a = self._arrays
        try:
            j = a.columns.index(asset)
        except ValueError:
            raise KeyError(asset) from None
        col = a.values[:, j]
        keep = ~np.isnan(col)
        return col[keep], a.dates[keep]  # boolean indexing: new arrays (writable, as to_numpy's)


def _csv_path() -> Path:
    return resources_dir() / "data" / SAMPLE_CSV


def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, index_col="Date", parse_dates=["Date"])


@lru_cache(maxsize=1)
def _sp500() -> pd.DataFrame:
    return _read_csv(_csv_path())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_sample_cache(cache: Path, csv: Path) -> SampleArrays:
    """The arrays saved by `write_sample_cache(csv, cache)`; ValueError when the file is not one,
    or was made from another CSV (OSError when a file cannot be read)."""
    with np.load(cache, allow_pickle=False) as z:
        if int(z["format"]) != CACHE_FORMAT:
            raise ValueError(f"{cache.name}: format {int(z['format'])}, expected {CACHE_FORMAT}")
        if str(z["csv_sha256"]) != _sha256(csv):
            raise ValueError(f"{cache.name} was not made from this {csv.name} (SHA-256 differs)")
        columns = tuple(str(c) for c in z["columns"])
        dates = z["dates"].astype(np.int64).view(f"datetime64[{z['date_unit']}]")
        values = np.ascontiguousarray(z["values"], dtype=np.float64)
        index_name = str(z["index_name"])
    n = len(dates)
    if values.shape != (n, len(columns)) or n < 2 or not columns:
        raise ValueError(f"{cache.name}: {values.shape} values for {n} dates and {len(columns)} columns")
    if len(set(columns)) != len(columns):
        raise ValueError(f"{cache.name}: repeated column names")
    if not bool(np.all(dates[1:] > dates[:-1])):
        raise ValueError(f"{cache.name}: the dates are not strictly increasing")
    dates.flags.writeable = False
    values.flags.writeable = False
    return SampleArrays(columns, dates, values, index_name)


def write_sample_cache(csv: Path | None = None, cache: Path | None = None) -> Path:
    """Parse the sample CSV with pandas (as `_read_csv`) and save it as arrays for `read_sample_cache`."""
    csv = csv or _csv_path()
    cache = cache or csv.with_name(SAMPLE_CACHE)
    df = _read_csv(csv)
    idx = df.index
    if not isinstance(idx, pd.DatetimeIndex) or idx.tz is not None:
        raise ValueError(f"{csv.name}: expected a date index without time zone, got {type(idx).__name__}")
    unit = np.datetime_data(idx.dtype)[0]
    with open(cache, "wb") as f:
        np.savez_compressed(
            f,
            format=np.array(CACHE_FORMAT),
            csv_sha256=np.array(_sha256(csv)),
            columns=np.array([str(c) for c in df.columns]),
            dates=idx.asi8,
            date_unit=np.array(unit),
            index_name=np.array(str(idx.name)),
            values=df.to_numpy(dtype=np.float64),
        )
    return cache


@lru_cache(maxsize=1)
def _sample_arrays() -> SampleArrays | None:
    """The sample's arrays from the pre-parsed file, or None (then the CSV is read with pandas)."""
    csv = _csv_path()
    try:
        return read_sample_cache(csv.with_name(SAMPLE_CACHE), csv)
    except (OSError, ValueError, KeyError) as e:
        if csv.exists():
            log.info("pre-parsed sample not used (%s): reading %s", e, csv.name)
        return None


def load_sample_prices() -> Dataset:
    """20 S&P 500 stocks, daily adjusted close 1990-2022 (from skfolio, BSD-3; see resources/data).
    A new Dataset each call (its DataFrame is its own copy)."""
    arrays = _sample_arrays()
    if arrays is not None:
        return ArrayDataset(SAMPLE_NAME, arrays)
    return Dataset(SAMPLE_NAME, _sp500().copy())
