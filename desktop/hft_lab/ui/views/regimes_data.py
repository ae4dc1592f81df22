"""Regimes tab: the data. The price series on show (synthetic, the active dataset's equal-weight
index, several of its assets, or one asset; without a store the bundled S&P 500 sample), its log
returns, and the features the HMM sees (log returns, absolute log returns, rolling volatility of
each series: hft_lab.analysis.regimes.build_features)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QListWidgetItem

from hft_lab.analysis.regimes import FEATURE_TEXT, aligned_log_returns, build_features, equal_weight_index
from hft_lab.data import load_sample_prices
from hft_lab.data.export import describe_prices
from hft_lab.data.synthetic import SYNTH_MEANS, SYNTH_STAY, SYNTH_STDS, synthetic_regime_returns
from hft_lab.ui.plots import date_of, intraday, pen
from hft_lab.ui.views.base import Refused
from hft_lab.ui.views.regimes_state import RegimesState

log = logging.getLogger("hft_lab.ui.regimes")

SYNTHETIC = "Synthetic regime-switching series (3 regimes)"
EW_INDEX = "S&P 500 sample: equal-weight index (20 stocks)"
SAMPLE_PREFIX = "S&P 500 sample: "
SAMPLE_MULTI = "S&P 500 sample: several assets (check them below)"
ACTIVE_PREFIX = "Active dataset: "
ACTIVE_EW = "Active dataset: equal-weight index"
ACTIVE_MULTI = "Active dataset: several assets (check them below)"
OBSERVATIONS = "log returns r_t = ln(p_t / p_(t-1)) of the series"
EW_CONSTRUCTION = (
    "equal-weight index: 100 at the first row, then the mean of the assets' simple returns "
    "p_t / p_(t-1) - 1 (assets with a missing price skipped), i.e. rebalanced every bar"
)
MULTI_CONSTRUCTION = (
    "the checked assets on the dates where every one has a price; the chart shows their equal-weight "
    "index (rebalanced every bar); the features are computed per asset"
)
DEFAULT_CHECKED = 3  # assets checked at first in the several-assets list


def _dates(index: pd.Index):
    """The dates of an index (None for bar numbers)."""
    return index.to_numpy() if isinstance(index, pd.DatetimeIndex) else None


class RegimesData(RegimesState):
    """Part of RegimesView (mixed in): see regimes.py."""

    # ---- the source entries ----
    def _fill_sources(self) -> None:
        """The synthetic series, then the active dataset (its equal-weight index and 'several
        assets' when it has 2 or more assets, then each asset), or without a store the bundled
        sample. The current choice is kept when it is still offered; no signal is emitted."""
        current = self.source.currentData()
        self.source.blockSignals(True)
        self.source.clear()
        self.source.addItem(SYNTHETIC, "synthetic")
        assets: list[str] = []
        try:
            if self.store is not None:
                assets = list(self.store.assets)  # the columns of store.selected_prices()
                if len(assets) >= 2:
                    self.source.addItem(ACTIVE_EW, "active_ew")
                    self.source.addItem(ACTIVE_MULTI, "active_multi")
                for a in assets:
                    self.source.addItem(ACTIVE_PREFIX + a, "active:" + a)
            else:
                assets = list(load_sample_prices().assets)
                self.source.addItem(EW_INDEX, "sample_ew")
                self.source.addItem(SAMPLE_MULTI, "sample_multi")
                for a in assets:
                    self.source.addItem(SAMPLE_PREFIX + a, "sample:" + a)
        except OSError as e:
            log.warning("sample data unavailable: %s", e)
        i = self.source.findData(current) if current is not None else 0
        self.source.setCurrentIndex(max(i, 0))
        self.source.blockSignals(False)
        self._fill_assets(assets)

    def _fill_assets(self, assets: list[str]) -> None:
        """The several-assets check list: checks kept for assets still offered; a new list has its
        first DEFAULT_CHECKED assets checked."""
        before = {self.asset_list.item(i).text(): self.asset_list.item(i).checkState() for i in range(self.asset_list.count())}
        keep = any(a in before for a in assets)
        self.asset_list.blockSignals(True)
        self.asset_list.clear()
        for j, a in enumerate(assets):
            it = QListWidgetItem(a)
            it.setFlags(it.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            on = before.get(a, Qt.CheckState.Unchecked) if keep else (Qt.CheckState.Checked if j < DEFAULT_CHECKED else None)
            it.setCheckState(on or Qt.CheckState.Unchecked)
            self.asset_list.addItem(it)
        self.asset_list.blockSignals(False)

    def checked_assets(self) -> list[str]:
        return [
            self.asset_list.item(i).text()
            for i in range(self.asset_list.count())
            if self.asset_list.item(i).checkState() == Qt.CheckState.Checked
        ]

    def set_checked_assets(self, assets) -> None:
        """Check exactly these assets (the list's order is kept); reloads a several-assets series."""
        want = set(assets)
        self.asset_list.blockSignals(True)
        for i in range(self.asset_list.count()):
            it = self.asset_list.item(i)
            it.setCheckState(Qt.CheckState.Checked if it.text() in want else Qt.CheckState.Unchecked)
        self.asset_list.blockSignals(False)
        self._assets_changed()

    def _assets_changed(self, *_) -> None:
        if self.source_key().endswith("_multi"):
            self._load_series()

    def source_key(self) -> str:
        """ "synthetic", "sample_ew", "sample_multi", "sample:<asset>", "active_ew", "active_multi"
        or "active:<asset>"."""
        return self.source.currentData() or "synthetic"

    @property
    def uses_store(self) -> bool:
        return self.source_key().startswith("active")

    def _show_dataset(self) -> None:
        on = self.store is not None and self.uses_store
        self.dataset_label.setVisible(on)
        if on:
            self.dataset_label.setText(self.store.describe())

    def _on_store_changed(self) -> None:
        """The active dataset or its selection changed: new entries; if the series came from it,
        load the new data (never fit automatically) and say that the old result is gone."""
        replaced = self.store.dataset is not self._store_dataset
        self._store_dataset = self.store.dataset
        was = self.source_key()
        before = self.source.currentText()
        had_result, was_running = self.result is not None, self.running
        self._fill_sources()
        if not was.startswith("active"):
            return
        moved = ""
        if self.source_key() != was:  # that asset is gone: the first entry of the active dataset
            self.source.blockSignals(True)
            self.source.setCurrentIndex(min(1, self.source.count() - 1))
            self.source.blockSignals(False)
            moved = f" ({before[len(ACTIVE_PREFIX) :]} is not in it: now {self.source.currentText()[len(ACTIVE_PREFIX) :]})"
        self._load_series()
        what = "Active dataset replaced" if replaced else "Active dataset selection changed"
        gone = []
        if was_running:
            gone.append("the running fit was cancelled")
        if had_result:
            gone.append("the previous result was cleared (it belongs to the old data)")
        tail = f"; {' and '.join(gone)}" if gone else ""
        rest = self.status.text()
        self.set_status(f"{what}{moved}{tail}. {rest[:1].upper()}{rest[1:]}")

    # ---- loading ----
    def _load_series(self) -> None:
        key, text = self.source_key(), self.source.currentText()
        synthetic = key == "synthetic"
        self.n_points.setEnabled(synthetic)
        self.data_seed.setEnabled(synthetic)
        self.asset_list.setVisible(key.endswith("_multi"))
        self._show_dataset()
        try:
            if synthetic:
                n, seed = self.n_points.value(), self.data_seed.value()
                r, states = synthetic_regime_returns(n, seed=seed)
                prices = 100.0 * np.exp(np.r_[0.0, np.cumsum(r)])
                described = {
                    "name": "synthetic regime-switching prices",
                    "generator": "hft_lab.data.regime_switching_returns",
                    "n": n,
                    "seed": seed,
                    "regime_means": list(SYNTH_MEANS),
                    "regime_stds": list(SYNTH_STDS),
                    "stay_probability": SYNTH_STAY,
                    "prices": "100 * exp(cumsum(returns)), with 100 first",
                }
                self.set_prices(prices, true_states=states, label="synthetic regime-switching prices", inputs=described)
            elif key == "sample_ew":
                ds = load_sample_prices()
                df = ds.prices
                simple = df.pct_change().iloc[1:].mean(axis=1).to_numpy()  # rebalanced daily to equal weights
                prices = 100.0 * np.r_[1.0, np.cumprod(1.0 + simple)]

                def inputs():
                    return dict(describe_prices(df, name=ds.name), series="equal-weight index", construction=EW_CONSTRUCTION)

                self.set_prices(
                    prices, dates=df.index.to_numpy(), label="equal-weight index (20 stocks, daily rebalanced)", inputs=inputs
                )
            elif key.endswith("_multi"):
                self._load_several(key)
            elif key.startswith("sample:"):
                ticker = key.split(":", 1)[1]
                ds = load_sample_prices()
                s = ds.prices[ticker].dropna()
                inputs = lambda: dict(describe_prices(ds.prices, name=ds.name), series=ticker)  # noqa: E731
                self.set_prices(s.to_numpy(dtype=np.float64), dates=s.index.to_numpy(), label=ticker, inputs=inputs)
            elif key == "active_ew":
                df = self.store.selected_prices()
                try:
                    prices, labels, left_out = equal_weight_index(df)
                except ValueError as e:
                    self._refuse(f"Cannot use the equal-weight index: {e}.")
                    return
                store = self.store

                def inputs():
                    return dict(store.inputs(), series="equal-weight index", construction=EW_CONSTRUCTION, bars_left_out=left_out)

                label = f"equal-weight index of {df.shape[1]} assets (rebalanced every bar)"
                if left_out:
                    label += f"; {left_out:,} bars where no asset had a return left out"
                self.set_prices(prices, dates=_dates(labels), label=label, inputs=inputs)
            else:
                asset = key.split(":", 1)[1]
                s = self._store_column(asset)
                missing = int(s.isna().sum())
                s = s.dropna()
                store = self.store
                inputs = lambda: dict(store.inputs(), series=asset, missing_prices_dropped=missing)  # noqa: E731
                label = asset + (f" ({missing:,} missing prices dropped)" if missing else "")
                self.set_prices(s.to_numpy(dtype=np.float64), dates=_dates(s.index), label=label, inputs=inputs)
        except (OSError, KeyError, ValueError) as e:
            log.warning("could not load %s: %s", text, e)
            self._refuse(f"Error loading {text}: {e}")

    def _load_several(self, key: str) -> None:
        """The checked assets: their log returns on the dates where all have a price; the chart
        shows their equal-weight index."""
        assets = self.checked_assets()
        if not assets:
            self._refuse("Check at least one asset in the list below the source.")
            return
        if key == "active_multi":
            full = self.store.selected_prices()
            store = self.store
            describe: Callable[[], dict] = store.inputs
        else:
            ds = load_sample_prices()
            full = ds.prices
            describe = lambda: describe_prices(ds.prices, name=ds.name)  # noqa: E731
        df = full[assets]
        try:
            px, rets, labels = aligned_log_returns(df)
        except ValueError as e:
            self._refuse(f"Cannot use these assets: {e}.")
            return
        levels, _, _ = equal_weight_index(pd.DataFrame(px, index=labels, columns=assets))
        dropped = len(df) - len(labels)

        def inputs():
            return dict(
                describe(), series="several assets", assets=list(assets), construction=MULTI_CONSTRUCTION, rows_dropped=dropped
            )

        label = f"{len(assets)} assets ({', '.join(assets)}), equal-weight index shown"
        if dropped:
            label += f"; {dropped:,} dates without a price for every one left out"
        self.set_prices(levels, dates=_dates(labels), label=label, inputs=inputs, returns=rets, names=assets)

    def _store_column(self, asset: str) -> pd.Series:
        """store.selected_prices()[asset] without copying every other column of a large dataset."""
        start, end = self.store.date_range
        return self.store.dataset.prices.loc[start:end, asset].astype(np.float64)

    def _refuse(self, text: str) -> None:
        """No usable series: nothing is drawn and Run explains why (old data is never used)."""
        if self.running:
            self.cancel()
        self.stop_replay()
        self.prices = self.observations = self.dates = self.true_states = self.series_returns = None
        self.intraday = False
        self.axis.dates = self.post_axis.dates = None
        self._series_inputs = dict
        self._clear_results()
        self.price_plot.getPlotItem().clear()
        self.hover.setText(" ")
        self._describe_features()
        self.set_status(text)

    def set_prices(
        self,
        prices,
        dates=None,
        true_states=None,
        label: str = "prices",
        inputs: dict | Callable[[], dict] | None = None,
        returns=None,
        names=None,
    ) -> None:
        """Show a new series; observations are its log returns (returns: the log returns of
        several series, T x N, whose features the HMM sees instead; names: theirs). Earlier results
        are cleared (they belong to other data) and a running fit is cancelled. inputs: what the
        series is, for export, or a function that tells it (default: the prices themselves,
        described by describe_prices)."""
        if self.running:
            self.cancel()
        self.stop_replay()
        prices = np.asarray(prices, dtype=np.float64).ravel()
        self.prices = prices
        self.dates = None if dates is None else np.asarray(dates).astype("datetime64[s]")
        self.intraday = self.dates is not None and intraday(self.dates)
        if inputs is None:
            frame = pd.DataFrame({label: prices}, index=pd.DatetimeIndex(self.dates) if self.dates is not None else None)
            inputs = lambda: {"name": label, "series": describe_prices(frame, name=label)}  # noqa: E731
        made = inputs if callable(inputs) else (lambda: dict(inputs))
        n = len(prices)
        self._series_inputs = lambda: dict(made(), series_prices=n, observations=OBSERVATIONS)
        self.true_states = None if true_states is None else np.asarray(true_states)
        self.axis.dates = self.post_axis.dates = self.dates
        self._clear_results()
        pi = self.price_plot.getPlotItem()
        pi.clear()
        idx = np.arange(len(prices), dtype=np.float64)
        bad = ~np.isfinite(prices) | (prices <= 0)
        self.series_returns, self.series_names = None, [""]
        if bad.any():
            self.observations = None
            i = int(np.flatnonzero(bad)[0])
            self.set_status(f"Cannot use these prices: log returns need finite positive prices (bar {i:,} is {prices[i]:g}).")
        elif len(prices) < 2:
            self.observations = None
            self.set_status("Cannot use these prices: at least two are needed for one log return.")
        else:
            self.observations = np.diff(np.log(prices))
            if returns is None:
                self.series_returns = self.observations.reshape(-1, 1)
            else:
                self.series_returns = np.asarray(returns, dtype=np.float64)
                self.series_names = list(names)
            span = (
                f", {date_of(self.dates, 0, self.intraday)} … {date_of(self.dates, len(prices) - 1, self.intraday)}"
                if self.dates is not None
                else ""
            )
            self.set_status(f"{label}: {len(prices):,} prices{span} → {len(self.observations):,} log returns.")
        if not bad.all():
            pi.plot(idx, np.where(bad, np.nan, prices), pen=pen("price"), skipFiniteCheck=not bad.any(), connect="finite")
        self.hover.setText(" ")
        self._describe_features()

    # ---- features ----
    def feature_kinds(self) -> list[str]:
        return [k for k, box in self.feature_boxes.items() if box.isChecked()]

    def features_for(self, action: str) -> tuple[np.ndarray, list[str], int]:
        """The features for `action` ("fit", "run the walk-forward"); `Refused` saying why there
        are none."""
        if self.observations is None:
            raise Refused("No usable data: choose a price series first.", error=False)
        try:
            return self.features()
        except ValueError as e:
            raise Refused(f"Cannot {action}: {e}.") from e

    def features(self) -> tuple[np.ndarray, list[str], int]:
        """The HMM's observations now: (X rows x features, names, offset of row 0 in the returns).
        ValueError with the reason when there are none."""
        if self.series_returns is None:
            raise ValueError("no usable data: choose a price series first")
        return build_features(self.series_returns, self.series_names, self.feature_kinds(), self.vol_window.value())

    def feature_description(self, names: list[str], offset: int) -> str:
        """What the observations are, for export."""
        if names == ["r"]:
            return OBSERVATIONS
        kinds = "; ".join(f"{k}: {FEATURE_TEXT[k]}" for k in self.feature_kinds())
        w = f" (w = {self.vol_window.value()})" if "rolling_vol" in self.feature_kinds() else ""
        start = f"; row 0 is return {offset} (the first with every feature)" if offset else ""
        return f"features {', '.join(names)} of the series' log returns r_t = ln(p_t / p_(t-1)): {kinds}{w}{start}"
