"""The active dataset, shared by every tab, and the synthetic generators as datasets.

`DatasetStore` holds one `Dataset` plus a selection (a date range and a subset of assets).
Views read `store.selected_prices()` (a DataFrame: DatetimeIndex ascending, float64 columns, the
selected assets in the selected range) and listen to `store.changed`, emitted on any change of
the dataset or of the selection (never when a setter leaves everything as it was).
Selections that would leave fewer than 2 rows or no asset are refused with ValueError, and the
previous selection stays.

Synthetic datasets (`synthetic_dataset(kind, **params)`, defined in synthetic.py without Qt and
re-exported here) have a business-day DatetimeIndex from 2000-01-03 when it fits (n <= 60,000);
longer series get a RangeIndex of bar numbers (pandas dates stop in 2262), and the date range is
then given in bars.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from hft_lab.lazy_import import lazy_module

from .samples import ArrayDataset, Dataset, load_sample_prices
from .synthetic import SYNTHETIC_DEFAULTS, SYNTHETIC_KINDS, synthetic_dataset

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")  # imported on first use (issue 16: start-up)

__all__ = ["DatasetStore", "synthetic_dataset", "SYNTHETIC_KINDS", "SYNTHETIC_DEFAULTS"]

log = logging.getLogger("hft_lab.data.store")


def _clean(ds: Dataset) -> Dataset:
    """Validate a dataset for the views; returns it (or a copy with float64 columns)."""
    if not isinstance(ds, Dataset):
        raise TypeError(f"expected a Dataset, got {type(ds).__name__}")
    if isinstance(ds, ArrayDataset) and not ds.materialized:
        return ds  # the bundled sample's arrays: checked when read (samples.read_sample_cache)
    df = ds.prices
    if not isinstance(df, pd.DataFrame):
        raise TypeError("Dataset.prices must be a pandas DataFrame")
    if df.shape[1] == 0:
        raise ValueError(f"{ds.name}: no asset columns")
    if len(df) < 2:
        raise ValueError(f"{ds.name}: {len(df)} row(s); at least 2 are needed")
    if not df.index.is_monotonic_increasing or not df.index.is_unique:
        raise ValueError(f"{ds.name}: the index must be ascending without duplicates")
    if len(set(map(str, df.columns))) != df.shape[1]:
        raise ValueError(f"{ds.name}: asset names must be unique")
    if all(dt == np.float64 for dt in df.dtypes) and all(isinstance(c, str) for c in df.columns):
        return ds
    try:
        fixed = df.astype(np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{ds.name}: prices must be numbers ({e})") from None
    fixed.columns = [str(c) for c in df.columns]
    fixed.attrs = dict(df.attrs)
    return Dataset(ds.name, fixed)


class DatasetStore(QObject):
    """The active dataset and the selection every view works on."""

    changed = Signal()  # any change: dataset or selection
    dataset_changed = Signal(object)  # a new Dataset was set (also emits `changed`)

    def __init__(self, dataset: Dataset | None = None, parent: QObject | None = None):
        super().__init__(parent)
        if dataset is None:
            try:
                dataset = load_sample_prices()
            except OSError as e:  # resources missing (broken install): still usable
                log.warning("sample data unavailable (%s): starting with a synthetic universe", e)
                dataset = synthetic_dataset("gbm")
        self._ds = _clean(dataset)
        # (first, last) index labels of the selection; None: the whole dataset, its labels read
        # when first needed (the bundled sample's DataFrame, and pandas, are not needed to start)
        self._range: tuple[Any, Any] | None = None
        self._assets: list[str] = self._ds.assets

    @property
    def _start(self) -> Any:
        return self._bounds()[0]

    @property
    def _end(self) -> Any:
        return self._bounds()[1]

    def _bounds(self) -> tuple[Any, Any]:
        if self._range is None:
            idx = self._ds.prices.index
            self._range = (idx[0], idx[-1])
        return self._range

    # ---- dataset ----
    @property
    def dataset(self) -> Dataset:
        return self._ds

    def set_dataset(self, ds: Dataset) -> None:
        """Make ds the active dataset; the selection is reset to all of it."""
        ds = _clean(ds)
        self._ds = ds
        self._range = None
        self._assets = ds.assets
        log.info("dataset: %s", ds.describe())
        self.dataset_changed.emit(ds)
        self.changed.emit()

    def load_sample(self) -> Dataset:
        ds = load_sample_prices()
        self.set_dataset(ds)
        return ds

    def load_synthetic(self, kind: str, **params: Any) -> Dataset:
        ds = synthetic_dataset(kind, **params)
        self.set_dataset(ds)
        return ds

    # ---- selection ----
    @property
    def date_range(self) -> tuple[Any, Any]:
        """(first, last) index labels of the selection (Timestamps, or bar numbers)."""
        return self._start, self._end

    @property
    def assets(self) -> list[str]:
        """The selected assets, in the order they were chosen."""
        return list(self._assets)

    @property
    def full_selection(self) -> bool:
        if self._range is None:
            return self._assets == self._ds.assets
        idx = self._ds.prices.index
        return self._start == idx[0] and self._end == idx[-1] and self._assets == self._ds.assets

    def _label(self, v: Any, default: Any) -> Any:
        if v is None:
            return default
        idx = self._ds.prices.index
        if isinstance(idx, pd.DatetimeIndex):
            try:
                return pd.Timestamp(v)
            except (TypeError, ValueError):
                raise ValueError(f"not a date: {v!r}") from None
        try:
            return int(v)
        except (TypeError, ValueError):
            raise ValueError(f"not a bar number: {v!r}") from None

    def _rows(self, start: Any, end: Any) -> tuple[Any, Any]:
        """Effective (first, last) labels inside [start, end]; ValueError when < 2 rows."""
        idx = self._ds.prices.index
        if start > end:
            raise ValueError(f"the start {start} is after the end {end}")
        i = int(idx.searchsorted(start, side="left"))
        j = int(idx.searchsorted(end, side="right")) - 1
        if j - i + 1 < 2:
            raise ValueError(f"the range {_lab(start)} … {_lab(end)} holds {max(j - i + 1, 0)} row(s); at least 2 are needed")
        return idx[i], idx[j]

    def set_selection(self, start: Any = None, end: Any = None, assets: Iterable[str] | None = None) -> None:
        """Select [start, end] (inclusive; None = from the first / to the last row) and the assets
        (None = all, in the dataset's order). Emits `changed` once if anything changed."""
        idx = self._ds.prices.index
        s, e = self._rows(self._label(start, idx[0]), self._label(end, idx[-1]))
        names = self._check_assets(assets)
        if (s, e, names) == (self._start, self._end, self._assets):
            return
        self._range, self._assets = (s, e), names
        self.changed.emit()

    def set_date_range(self, start: Any = None, end: Any = None) -> None:
        self.set_selection(start, end, self._assets)

    def set_assets(self, assets: Iterable[str] | None = None) -> None:
        self.set_selection(self._start, self._end, assets)

    def reset_selection(self) -> None:
        self.set_selection(None, None, None)

    def _check_assets(self, assets: Iterable[str] | None) -> list[str]:
        if assets is None:
            return self._ds.assets
        names = [str(a) for a in assets]
        if not names:
            raise ValueError("select at least one asset")
        have = set(self._ds.assets)
        missing = [a for a in names if a not in have]
        if missing:
            raise ValueError(f"not in {self._ds.name}: {', '.join(missing)}")
        if len(set(names)) != len(names):
            raise ValueError("an asset is selected twice")
        return names

    def selected_prices(self) -> pd.DataFrame:
        """The selected assets over the selected range (a copy: views may modify it)."""
        df = self._ds.prices.loc[self._start : self._end, self._assets].copy()
        df.attrs = dict(self._ds.prices.attrs)
        return df

    def selected_series(self, asset: str) -> tuple[np.ndarray, np.ndarray | None]:
        """One selected asset over the selected range without its missing values: (float64 prices,
        datetime64 dates, or None when the index is bar numbers), i.e. `selected_prices()[asset].dropna()`
        as arrays. While the whole bundled sample is selected it is read from the sample's arrays,
        without building the DataFrame (the first tab at start-up: no pandas). KeyError if the asset
        is not selected."""
        if asset not in self._assets:
            raise KeyError(asset)
        ds = self._ds
        if self._range is None and isinstance(ds, ArrayDataset) and not ds.materialized:
            return ds.column(asset)
        col = self.selected_prices()[asset].dropna()
        dates = col.index.to_numpy() if np.issubdtype(col.index.dtype, np.datetime64) else None
        return col.to_numpy(dtype=np.float64), dates

    def selected_dataset(self) -> Dataset:
        return Dataset(self._ds.name, self.selected_prices())

    def describe(self) -> str:
        """ "name: N assets, T rows, 1990-01-02 … 2022-12-28" for the selection (the status bar)."""
        if self.full_selection:
            return self._ds.describe()
        full = self._ds.prices
        sel = self.selected_dataset()
        return f"{sel.describe()} (selected from {full.shape[1]} assets, {len(full)} rows)"

    def inputs(self) -> dict[str, Any]:
        """A description of the selection for export_result_json(inputs=...)."""
        from .export import describe_prices

        return describe_prices(self.selected_prices(), name=self._ds.name)


def _lab(v: Any) -> str:
    if isinstance(v, pd.Timestamp):
        return f"{v:%Y-%m-%d}" if v == v.normalize() else str(v)
    return str(v)
