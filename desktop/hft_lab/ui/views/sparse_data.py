"""Sparse Portfolio tab: the data (source, period, synthetic basket, targets) and the basket's spread for
other tabs."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PySide6.QtWidgets import QComboBox, QSpinBox

from hft_lab.analysis.sparse import (
    SyntheticPrices,
    cut_period,
)
from hft_lab.data import load_sample_prices
from hft_lab.data.synthetic import synthetic_index
from hft_lab.ui.views.sources import DatasetSource

AUTO = "Auto (try each)"


SAMPLE = "S&P 500 sample (20 stocks, 1990–2022)"


SYNTHETIC = "Synthetic cointegrated basket"


PERIOD_ALL, PERIOD_YEARS = "All rows", "Last N years"


class SparseData(DatasetSource):
    """Part of SparseView (mixed in): see sparse.py."""

    # the view's state and widgets this part reads (SparseView.__init__ / _build make them)
    period: QComboBox
    years: QSpinBox
    syn_n: QSpinBox
    syn_assets: QSpinBox
    syn_seed: QSpinBox
    target: QComboBox
    run_frame: pd.DataFrame | None

    # ---- data ----
    def _source_index(self) -> pd.Index:
        if self.synthetic:
            return synthetic_index(self.syn_n.value())
        return self._frame().index

    def _dated(self) -> bool:
        return isinstance(self._source_index(), pd.DatetimeIndex)

    def period_years(self) -> int | None:
        """Years to keep (None: every row; bar-numbered data always uses every row)."""
        if self.period.currentText() == PERIOD_YEARS and self._dated():
            return self.years.value()
        return None

    def asset_names(self) -> list[str]:
        if self.synthetic:
            return [f"C{i + 1}" for i in range(self.syn_assets.value())]
        return [str(c) for c in self._frame().columns]

    def selected_prices(self) -> pd.DataFrame:
        """The prices the next run uses (synthetic data is generated here, synchronously: the run
        itself generates it on the worker thread)."""
        if self.synthetic:
            return SyntheticPrices(self.syn_n.value(), self.syn_assets.value(), self.syn_seed.value(), self.period_years())()
        return cut_period(self._frame(), self.period_years())

    def _prices_for_run(self):
        if self.synthetic:
            return SyntheticPrices(self.syn_n.value(), self.syn_assets.value(), self.syn_seed.value(), self.period_years())
        return self.selected_prices()

    def _data_text(self, names: list[str]) -> str:
        years = self.period_years()
        if self.synthetic:
            idx = synthetic_index(self.syn_n.value())
            if years and isinstance(idx, pd.DatetimeIndex):
                idx = idx[idx >= idx[-1] - pd.DateOffset(years=years)]
            dropped = 0
            rows = len(idx)
        else:
            full = self._frame()
            cut = full
            if years and isinstance(full.index, pd.DatetimeIndex):
                cut = full.loc[full.index[-1] - pd.DateOffset(years=years) :]
            rows = int(cut.notna().all(axis=1).sum())
            dropped = len(cut) - rows
            idx = cut.index
        if len(idx) == 0:
            return f"{len(names)} assets, no rows in this period."
        if isinstance(idx, pd.DatetimeIndex):
            span = f"{idx[0]:%Y-%m-%d} … {idx[-1]:%Y-%m-%d}"
        else:
            span = f"bars {idx[0]:,} … {idx[-1]:,}"
        text = f"{len(names)} assets × {rows:,} rows ({span})"
        if dropped:
            text += f"; {dropped:,} rows with a missing price are left out"
        if self.uses_store:
            text = f"{self.store.describe()}<br>{text}"
        return text

    def _fill_targets(self, names: list[str]) -> None:
        current = self.target.currentText()
        self.target.blockSignals(True)
        self.target.clear()
        self.target.addItem(AUTO, None)
        for n in names:
            self.target.addItem(n, n)
        i = self.target.findText(current)
        self.target.setCurrentIndex(max(i, 0))
        self.target.blockSignals(False)
        self.update_buttons()

    # ---- for other tabs ----
    def spread_series(self) -> np.ndarray | None:
        """The spread (basket value per bar) of the shown result, for the Mean Reversion tab."""
        return None if self.result is None else np.array(self.result.spread, dtype=np.float64)

    def spread_payload(self) -> dict | None:
        """What Mean Reversion needs to trade the basket: the spread, its dates (when the data has
        dates) and the gross notional Σ|wᵢ|·pᵢ per bar (costs are charged on it)."""
        s = self.spread_series()
        if s is None:
            return None
        out = {"spread": s, "dates": None, "notional": None}
        frame = self.run_frame
        if frame is not None and len(frame) == len(s):
            if isinstance(frame.index, pd.DatetimeIndex):
                out["dates"] = frame.index.to_numpy()
            names = list(self.result.asset_names)
            if all(n in frame.columns for n in names):
                p = frame[names].to_numpy(dtype=np.float64)
                notional = np.abs(p) @ np.abs(np.asarray(self.result.weights, dtype=np.float64))
                if np.all(np.isfinite(notional)):
                    out["notional"] = notional
        return out

    def spread_name(self) -> str:
        r = self.result
        if r is None:
            return ""
        legs = " ".join(f"{w:+.3g}·{n}" for n, w in zip(r.asset_names, r.weights) if w != 0)
        return f"{r.method} basket: {legs}"

    # ---- session, export ----
    def _period_text(self) -> str:
        years = self.period_years()
        if years:
            return f"last {years} years"
        return "all rows" if self._dated() else "all rows (bar numbers)"

    def _inputs_description(self) -> dict:
        d: dict = {"source": self.source.currentText(), "period": self._period_text()}
        if self.uses_store:
            d["name"] = self.store.dataset.name
        elif not self.synthetic:
            d["name"] = load_sample_prices().name
        if self.synthetic:
            d["generator"] = "hft_lab.data.synthetic_dataset('cointegrated', …)"
            d["params"] = {"n": self.syn_n.value(), "assets": self.syn_assets.value(), "seed": self.syn_seed.value()}
        elif self.uses_store:
            d["dataset"] = self.store.describe()
        return d
