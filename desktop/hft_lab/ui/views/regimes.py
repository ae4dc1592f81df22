"""Regimes tab: Gaussian HMM regime detection on log returns. Price shaded by the Viterbi regime,
stacked posterior probabilities, regime table, transition matrix heat map, log-likelihood curve
drawn live (one point per EM iteration), fit statistics, CSV / JSON export.

Prices come from a seeded synthetic regime-switching series or, with a DatasetStore, from the
active dataset (one of its assets, or their equal-weight index); without a store, from the bundled
S&P 500 sample."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHeaderView,
    QLabel,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTabWidget,
)

from hft_lab.analysis.regimes import equal_weight_index, fit_regimes, segments
from hft_lab.data import load_sample_prices
from hft_lab.data.export import SessionItem, describe_prices
from hft_lab.data.synthetic import SYNTH_MEANS, SYNTH_STAY, SYNTH_STDS, synthetic_regime_returns
from hft_lab.ui.plots import BarAxis, PriceAxis, date_of, intraday, make_plot, pen
from hft_lab.ui.views.base import AnalysisView, Param, note, via
from hft_lab.ui.views.regimes_plots import RegimesPlots, regime_colors
from hft_lab.ui.widgets import StatsTable, spin
from hft_lab.ui.worker import TaskOutcome, TaskRunner

__all__ = [
    "RegimesView",
    "SciSpinBox",
    "regime_colors",
    "equal_weight_index",
    "fit_regimes",
    "segments",
    "synthetic_regime_returns",
]

log = logging.getLogger("hft_lab.ui.regimes")

SYNTHETIC = "Synthetic regime-switching series (3 regimes)"
EW_INDEX = "S&P 500 sample: equal-weight index (20 stocks)"
SAMPLE_PREFIX = "S&P 500 sample: "
ACTIVE_PREFIX = "Active dataset: "
ACTIVE_EW = "Active dataset: equal-weight index"
OBSERVATIONS = "log returns r_t = ln(p_t / p_(t-1)) of the series"
EW_CONSTRUCTION = (
    "equal-weight index: 100 at the first row, then the mean of the assets' simple returns "
    "p_t / p_(t-1) - 1 (assets with a missing price skipped), i.e. rebalanced every bar"
)


class SciSpinBox(QDoubleSpinBox):
    """A spin box for small positive numbers (tolerances): shows 1e-06, steps by factors of 10."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setDecimals(300)
        self.setRange(0.0, 1e6)

    def textFromValue(self, v: float) -> str:
        return f"{v:g}"

    def valueFromText(self, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):
        t = text.strip()
        try:
            v = float(t)
        except ValueError:
            ok = t == "" or t.lower().endswith(("e", "e-", "e+", ".", "-"))
            return (QValidator.State.Intermediate if ok else QValidator.State.Invalid), text, pos
        return (
            (QValidator.State.Acceptable if self.minimum() <= v <= self.maximum() else QValidator.State.Intermediate),
            text,
            pos,
        )

    def stepBy(self, steps: int) -> None:
        v = self.value()
        if v == 0.0:
            v = 1e-12 if steps > 0 else 0.0
            steps -= 1 if steps > 0 else 0
        self.setValue(min(self.maximum(), v * 10.0**steps) if v else 0.0)


class RegimesView(RegimesPlots, AnalysisView):
    progress_shown = Signal(int, float)  # every EM iteration received from the running task

    SHADE_ALPHA = 55
    LIVE_REFRESH_MS = 50

    TASK_NAME = "HMM fit"
    CSV_TIP = "Per-return table (regime, posteriors), regime parameters, summary: CSV files"

    def __init__(self, runner: TaskRunner, store=None, parent=None):
        super().__init__(runner, store, parent)
        self._store_dataset = store.dataset if store is not None else None
        self.prices: np.ndarray | None = None
        self.observations: np.ndarray | None = None  # log returns of self.prices
        self.dates: np.ndarray | None = None
        self.intraday = False  # the dates have times of day
        # what the current series is, for export: made when asked (hashing a large dataset takes time)
        self._series_inputs: Callable[[], dict] = dict
        self._run_inputs: Callable[[], dict] = dict
        self._result_inputs: Callable[[], dict] = dict
        self.result_params: dict = {}  # parameters of the result on show
        self.true_states: np.ndarray | None = None  # synthetic series only (state of each return)
        self.result_seconds = 0.0
        self.result_backend = ""
        self.total_iterations = 0  # EM iterations of the last run including restarts
        self.live_iterations: list[int] = []
        self.live_ll: list[float] = []
        self._run_params: dict = {}
        self._shade: pg.ImageItem | None = None
        self.segments = segments(np.empty(0, dtype=np.int64))  # Viterbi runs: (starts, ends, states)
        self._post_img: pg.ImageItem | None = None
        self._post_lut = np.zeros((1, 4), dtype=np.uint8)
        self._build()
        if store is not None:
            store.changed.connect(self._on_store_changed)
        self._load_series()

    # ---- layout ----
    def _build(self) -> None:
        data = QGroupBox("Data")
        df = QFormLayout(data)
        self.source = QComboBox()
        self.source.setMaxVisibleItems(25)
        self._fill_sources()
        self.dataset_label = QLabel(" ")
        self.dataset_label.setWordWrap(True)
        self.dataset_label.setStyleSheet("color: #555")
        self.dataset_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.dataset_label.setVisible(False)
        self.n_points = spin(QSpinBox(), 100, 1_000_000, 3000, step=1000)
        self.n_points.setGroupSeparatorShown(True)
        self.n_points.setKeyboardTracking(False)
        self.data_seed = spin(QSpinBox(), 0, 1_000_000, 0)
        self.data_seed.setKeyboardTracking(False)
        self.ann = spin(QDoubleSpinBox(), 0.0, 10_000_000.0, 252.0, decimals=1)
        self.ann.setSpecialValueText("off")
        self.ann.setToolTip("Bars per year, for the annualised mean and volatility in the regime table (0 = off)")
        obs = QLabel("Observations: log returns  r_t = ln(p_t / p_t−1)")
        obs.setStyleSheet("color: #555")
        df.addRow(QLabel("Prices"))
        df.addRow(self.source)
        df.addRow(self.dataset_label)
        df.addRow("Synthetic returns", self.n_points)
        df.addRow("Synthetic seed", self.data_seed)
        self.log_scale = QCheckBox("Log price axis")
        self.log_scale.setChecked(True)
        self.declare(
            df,
            Param("annualization", self.ann, "Annualisation (bars/yr)", in_params=False),
            Param("log_scale", self.log_scale, in_params=False),
        )
        df.addRow(obs)

        model = QGroupBox("Gaussian HMM (Baum-Welch EM)")
        mf = QFormLayout(model)
        self.n_states = spin(QSpinBox(), 1, 10, 3)
        self.max_iterations = spin(QSpinBox(), 1, 1_000_000, 1000)
        self.tolerance = SciSpinBox()
        self.tolerance.setValue(1e-6)
        self.tolerance.setToolTip("EM stops when the log-likelihood gains less than this in one iteration (0: never)")
        self.n_restarts = spin(QSpinBox(), 0, 1000, 0)
        self.n_restarts.setToolTip("Extra EM runs from seeded random starts; the best log-likelihood wins")
        self.seed = spin(QSpinBox(), 0, 2_147_483_647, 0)
        self.declare(
            mf,
            Param("n_states", self.n_states, "Regimes (states)"),
            Param("max_iterations", self.max_iterations, "Max iterations"),
            Param("tolerance", self.tolerance, "Tolerance (ΔLL)"),
            Param("n_restarts", self.n_restarts, "Random restarts"),
            Param("seed", self.seed, "Restart seed"),
        )
        self.stats = StatsTable()
        self.build_panel([data, model])

        # price shaded by regime, posteriors below (x-linked)
        self.price_plot = make_plot("Price, shaded by the most likely regime (Viterbi)", "price")
        self.axis = BarAxis()
        self.price_plot.getPlotItem().setAxisItems({"bottom": self.axis, "left": PriceAxis()})
        self.price_plot.getPlotItem().setLabel("left", "price")
        self.price_plot.getPlotItem().legend.setBrush(pg.mkBrush(255, 255, 255, 210))
        self.post_plot = make_plot("Posterior regime probabilities (stacked)", "P(regime)")
        self.post_plot.table_provider = self._posterior_table
        self.post_axis = BarAxis()
        pp = self.post_plot.getPlotItem()
        pp.setAxisItems({"bottom": self.post_axis})
        pp.setXLink(self.price_plot.getPlotItem())
        pp.setYRange(0.0, 1.0, padding=0.02)
        pp.setMouseEnabled(x=True, y=False)
        pp.legend.setVisible(False)
        self.price_plot.getPlotItem().setLogMode(y=True)
        self._post_timer = QTimer(self)
        self._post_timer.setSingleShot(True)
        self._post_timer.setInterval(30)
        self._post_timer.timeout.connect(self._render_posteriors)
        pp.vb.sigXRangeChanged.connect(self._post_timer.start)
        pp.vb.sigResized.connect(self._post_timer.start)
        self.price_plot.getPlotItem().vb.sigYRangeChanged.connect(self._fit_shading)

        # regime table, transition heat map, log-likelihood curve
        self.regime_table = QTableWidget(0, 0)
        self.regime_table.verticalHeader().setVisible(False)
        self.regime_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.regime_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.regime_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.regime_table.verticalHeader().setDefaultSectionSize(22)
        self.heat = make_plot("Transitions", legend=False)
        hp = self.heat.getPlotItem()
        hp.setLabel("left", "from")
        hp.setLabel("bottom", "to")
        hp.invertY(True)
        hp.setMouseEnabled(x=False, y=False)
        hp.hideButtons()
        hp.showGrid(x=False, y=False)
        self.heat.setMinimumWidth(170)
        self.ll_plot = make_plot("Log-likelihood", "")
        self.ll_plot.getPlotItem().setLabel("bottom", "iteration")
        self.ll_plot.getPlotItem().legend.setVisible(False)
        self.ll_plot.setMinimumWidth(170)
        self._ll_curve = None
        self._live_timer = QTimer(self)
        self._live_timer.setSingleShot(True)
        self._live_timer.setInterval(self.LIVE_REFRESH_MS)
        self._live_timer.timeout.connect(self._refresh_live)

        self.table_tabs = QTabWidget()
        self.table_tabs.addTab(self.regime_table, "Regimes")
        self.table_tabs.addTab(self.stats, "Fit statistics")
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.table_tabs)
        bottom.addWidget(self.heat)
        bottom.addWidget(self.ll_plot)
        bottom.setStretchFactor(0, 5)
        bottom.setStretchFactor(1, 2)
        bottom.setStretchFactor(2, 2)
        bottom.setSizes([560, 220, 240])
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.price_plot)
        right.addWidget(self.post_plot)
        right.addWidget(bottom)
        right.setSizes([420, 190, 240])
        self.set_main(right)

        self.source.currentIndexChanged.connect(self._load_series)
        self.n_points.valueChanged.connect(self._load_series)
        self.data_seed.valueChanged.connect(self._load_series)
        self.ann.valueChanged.connect(self._fill_regime_table)
        self.log_scale.toggled.connect(self._set_log_scale)
        for plot in (self.price_plot, self.post_plot):
            self.track_hover(plot, lambda x: self.readout(int(round(x))))

    # ---- data ----
    def _fill_sources(self) -> None:
        """The synthetic series, then the active dataset (its equal-weight index when it has 2 or
        more assets, then each asset), or without a store the bundled sample. The current choice
        is kept when it is still offered; no signal is emitted."""
        current = self.source.currentData()
        self.source.blockSignals(True)
        self.source.clear()
        self.source.addItem(SYNTHETIC, "synthetic")
        try:
            if self.store is not None:
                assets = self.store.assets  # the columns of store.selected_prices()
                if len(assets) >= 2:
                    self.source.addItem(ACTIVE_EW, "active_ew")
                for a in assets:
                    self.source.addItem(ACTIVE_PREFIX + a, "active:" + a)
            else:
                assets = load_sample_prices().assets
                self.source.addItem(EW_INDEX, "sample_ew")
                for a in assets:
                    self.source.addItem(SAMPLE_PREFIX + a, "sample:" + a)
        except OSError as e:
            log.warning("sample data unavailable: %s", e)
        i = self.source.findData(current) if current is not None else 0
        self.source.setCurrentIndex(max(i, 0))
        self.source.blockSignals(False)

    def source_key(self) -> str:
        """ "synthetic", "sample_ew", "sample:<asset>", "active_ew" or "active:<asset>"."""
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

    def _load_series(self) -> None:
        key, text = self.source_key(), self.source.currentText()
        synthetic = key == "synthetic"
        self.n_points.setEnabled(synthetic)
        self.data_seed.setEnabled(synthetic)
        self._show_dataset()
        try:
            if synthetic:
                n, seed = self.n_points.value(), self.data_seed.value()
                r, states = synthetic_regime_returns(n, seed=seed)
                prices = 100.0 * np.exp(np.r_[0.0, np.cumsum(r)])
                inputs = {
                    "name": "synthetic regime-switching prices",
                    "generator": "hft_lab.data.regime_switching_returns",
                    "n": n,
                    "seed": seed,
                    "regime_means": list(SYNTH_MEANS),
                    "regime_stds": list(SYNTH_STDS),
                    "stay_probability": SYNTH_STAY,
                    "prices": "100 * exp(cumsum(returns)), with 100 first",
                }
                self.set_prices(prices, true_states=states, label="synthetic regime-switching prices", inputs=inputs)
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

    def _store_column(self, asset: str) -> pd.Series:
        """store.selected_prices()[asset] without copying every other column of a large dataset."""
        start, end = self.store.date_range
        return self.store.dataset.prices.loc[start:end, asset].astype(np.float64)

    def _refuse(self, text: str) -> None:
        """No usable series: nothing is drawn and Run explains why (old data is never used)."""
        if self.running:
            self.cancel()
        self.prices = self.observations = self.dates = self.true_states = None
        self.intraday = False
        self.axis.dates = self.post_axis.dates = None
        self._series_inputs = dict
        self._clear_results()
        self.price_plot.getPlotItem().clear()
        self.hover.setText(" ")
        self.set_status(text)

    def set_prices(
        self, prices, dates=None, true_states=None, label: str = "prices", inputs: dict | Callable[[], dict] | None = None
    ) -> None:
        """Show a new series; observations are its log returns. Earlier results are cleared
        (they belong to other data) and a running fit is cancelled. inputs: what the series is,
        for export, or a function that tells it (default: the prices themselves, described by
        describe_prices)."""
        if self.running:
            self.cancel()
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
        if bad.any():
            self.observations = None
            i = int(np.flatnonzero(bad)[0])
            self.set_status(f"Cannot use these prices: log returns need finite positive prices (bar {i:,} is {prices[i]:g}).")
        elif len(prices) < 2:
            self.observations = None
            self.set_status("Cannot use these prices: at least two are needed for one log return.")
        else:
            self.observations = np.diff(np.log(prices))
            span = (
                f", {date_of(self.dates, 0, self.intraday)} … {date_of(self.dates, len(prices) - 1, self.intraday)}"
                if self.dates is not None
                else ""
            )
            self.set_status(f"{label}: {len(prices):,} prices{span} → {len(self.observations):,} log returns.")
        if not bad.all():
            pi.plot(idx, np.where(bad, np.nan, prices), pen=pen("price"), skipFiniteCheck=not bad.any(), connect="finite")
        self.hover.setText(" ")

    def _clear_results(self) -> None:
        self.result = None
        self.total_iterations = 0
        self._shade = None
        self._post_img = None
        self.segments = segments(np.empty(0, dtype=np.int64))
        self.post_plot.getPlotItem().clear()
        self.price_plot.getPlotItem().legend.clear()
        self.regime_table.clear()
        self.regime_table.setRowCount(0)
        self.regime_table.setColumnCount(0)
        self._empty_heat()
        self.ll_plot.getPlotItem().clear()
        self._ll_curve = None
        self.stats.set_rows([])
        self.result_params, self._result_inputs = {}, dict
        self.enable_export(False)

    # ---- run ----
    def run(self) -> int | None:
        if self.observations is None:
            self.set_status("No usable data: choose a price series first.")
            return None
        self.live_iterations, self.live_ll = [], []
        self._live_timer.stop()
        self._run_params = self.params()
        self._run_inputs = self._series_inputs
        tid = self.start(
            fit_regimes,
            self.observations,
            **self._run_params,
            done=self._show_result,
            status=f"Running EM on {len(self.observations):,} log returns…",
        )
        self._show_live_curve()
        return tid

    def on_cancelled(self) -> None:
        self._live_timer.stop()
        self._draw_ll(self.result)  # back to the curve of the result on show (if any)

    def on_failed(self, out: TaskOutcome) -> None:
        self._live_timer.stop()
        self._draw_ll(self.result)

    # ---- live progress ----
    def _show_live_curve(self) -> None:
        lp = self.ll_plot.getPlotItem()
        lp.clear()
        lp.setTitle("Log-likelihood (running)")
        self._ll_curve = lp.plot(
            [], [], pen=pen("mean", 1.5), symbol="o", symbolSize=4, symbolBrush=pg.mkBrush(31, 119, 180), symbolPen=None
        )

    def on_progress(self, payload) -> None:
        it, ll = payload
        if self.live_iterations and it <= self.live_iterations[-1]:
            # the call was retried on the other backend: its iterations start again
            self.live_iterations, self.live_ll = [], []
        self.live_iterations.append(it)
        self.live_ll.append(ll)
        self.progress_shown.emit(it, ll)
        if not self._live_timer.isActive():
            self._live_timer.start()

    def _refresh_live(self) -> None:
        if not self.running or not self.live_iterations or self._ll_curve is None:
            return
        n = len(self.live_iterations)
        x = np.asarray(self.live_iterations, dtype=np.float64)
        y = np.asarray(self.live_ll)
        if n > 300:
            self._ll_curve.setSymbol(None)
        self._ll_curve.setData(x, y)
        self.set_status(
            f"Running EM on {len(self.observations):,} log returns: iteration {self.live_iterations[-1]:,}, "
            f"log-likelihood {self.live_ll[-1]:,.4f}"
        )

    # ---- result ----
    def _show_result(self, out: TaskOutcome) -> None:
        self._live_timer.stop()
        r = out.value
        self.result = r
        self.result_seconds = out.seconds
        self.result_backend = out.backend_name
        self.result_params, self._result_inputs = dict(self._run_params), self._run_inputs
        self.total_iterations = self.live_iterations[-1] if self.live_iterations else r.iterations
        self._draw(r)
        conv = (
            "converged" if r.converged else f"NOT converged after {r.iterations:,} iterations (raise max iterations or tolerance)"
        )
        n_runs = self._run_params["n_restarts"] + 1
        restarts = f", best of {n_runs} runs" if n_runs > 1 else ""
        self.set_status(
            f"Fitted{via(out)} in {out.seconds * 1e3:,.1f} ms{note(out)}: {r.n_states} regimes on "
            f"{len(r.viterbi_path):,} log returns, "
            f"{r.iterations:,} EM iterations{restarts}, {conv}. Log-likelihood {r.log_likelihood:,.2f}, "
            f"BIC {r.bic:,.2f}."
        )
        self.result_shown.emit(out)

    # ---- settings, session, export ----
    @property
    def series_inputs(self) -> dict[str, Any]:
        """What the current series is (dataset, asset or generator, with its parameters)."""
        return self._series_inputs()

    @property
    def result_inputs(self) -> dict[str, Any]:
        """What the series of the result on show is ({} without a result)."""
        return self._result_inputs() if self.result is not None else {}

    def result_index(self):
        """Dates (or bar numbers) of the returns: return i is from bar i to bar i + 1."""
        if self.result is None:
            return None
        if self.dates is not None:
            return pd.DatetimeIndex(self.dates[1:])
        return pd.RangeIndex(1, len(self.result.viterbi_path) + 1)

    def session_items(self) -> list[SessionItem]:
        if self.result is None:
            return []
        return [
            SessionItem(
                "regimes",
                self.result,
                parameters=dict(self.result_params),
                inputs=dict(self.result_inputs),
                backend=self.result_backend,
                plots={"price": self.price_plot, "posteriors": self.post_plot, "log_likelihood": self.ll_plot},
                index=self.result_index(),
            )
        ]

    def default_export_name(self, kind: str) -> str:
        return f"regimes_{self.result.n_states}_states.{kind}"


def _dates(index: pd.Index):
    """The dates of an index (None for bar numbers)."""
    return index.to_numpy() if isinstance(index, pd.DatetimeIndex) else None
