"""Regimes tab: Gaussian HMM regime detection on features of a price series (log returns, absolute
log returns, rolling volatility; of one series or of several assets). One feature is fitted by
backend.run_hmm, several by backend.run_hmm_mv (diagonal or full covariances). Price shaded by
regime, stacked smoothed or filtered probabilities (filtered = what was knowable at the time; the
bars where the most likely regime differs are marked and counted), regime table, transition heat
map, log-likelihood curve drawn live, fit statistics (log-likelihood, AIC, BIC); a walk-forward
run (fit on a formation window, filter the next step out of sample); a live filter replaying the
features tick by tick through the backend's online filter; CSV / JSON export.

Modules: regimes_data.py (series and features), regimes_plots.py (drawing), regimes_walk.py
(walk-forward), regimes_live.py (live replay); the computations are in hft_lab.analysis.regimes."""

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
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QRadioButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from hft_lab.analysis.regimes import equal_weight_index, fit_regimes, fit_regimes_mv, segments
from hft_lab.data.export import SessionItem
from hft_lab.data.synthetic import synthetic_regime_returns
from hft_lab.ui.plots import BarAxis, PriceAxis, make_plot, pen
from hft_lab.ui.views.base import AnalysisView, Param, note, refusable, via
from hft_lab.ui.views.regimes_data import (
    ACTIVE_EW,
    ACTIVE_MULTI,
    ACTIVE_PREFIX,
    EW_INDEX,
    OBSERVATIONS,
    SAMPLE_MULTI,
    SAMPLE_PREFIX,
    SYNTHETIC,
    RegimesData,
)
from hft_lab.ui.views.regimes_live import RegimesLive
from hft_lab.ui.views.regimes_plots import RegimesPlots, regime_colors
from hft_lab.ui.views.regimes_walk import RegimesWalk
from hft_lab.ui.widgets import StatsTable, form_group, spin
from hft_lab.ui.worker import TaskOutcome, TaskRunner

__all__ = [
    "ACTIVE_EW",
    "ACTIVE_MULTI",
    "ACTIVE_PREFIX",
    "EW_INDEX",
    "OBSERVATIONS",
    "SAMPLE_MULTI",
    "SAMPLE_PREFIX",
    "SYNTHETIC",
    "RegimesView",
    "SciSpinBox",
    "regime_colors",
    "equal_weight_index",
    "fit_regimes",
    "segments",
    "synthetic_regime_returns",
]

log = logging.getLogger("hft_lab.ui.regimes")


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


class RegimesView(RegimesPlots, RegimesData, RegimesWalk, RegimesLive, AnalysisView):
    progress_shown = Signal(int, float)  # every EM iteration received from the running task

    SHADE_ALPHA = 55
    LIVE_REFRESH_MS = 50

    TASK_NAME = "HMM fit"
    CSV_TIP = "Per-return table (regime, smoothed and filtered probabilities), regime parameters, summary: CSV files"

    def __init__(self, runner: TaskRunner, store=None, parent=None):
        super().__init__(runner, store, parent)
        self._store_dataset = store.dataset if store is not None else None
        self.prices: np.ndarray | None = None
        self.observations: np.ndarray | None = None  # log returns of self.prices
        self.series_returns: np.ndarray | None = None  # log returns of the series the features come from (T x N)
        self.series_names: list[str] = [""]
        self.dates: np.ndarray | None = None
        self.intraday = False  # the dates have times of day
        # what the current series is, for export: made when asked (hashing a large dataset takes time)
        self._series_inputs: Callable[[], dict] = dict
        self._run_inputs: Callable[[], dict] = dict
        self._result_inputs: Callable[[], dict] = dict
        self.result_params: dict = {}  # parameters of the result on show
        self.result_offset = 0  # row 0 of the result is log return number result_offset
        self.result_features: list[str] = []
        self.result_x: np.ndarray | None = None  # the observations the result was fitted on
        self.true_states: np.ndarray | None = None  # synthetic series only (state of each return)
        self.result_seconds = 0.0
        self.result_backend = ""
        self.total_iterations = 0  # EM iterations of the last run including restarts
        self.live_iterations: list[int] = []
        self.live_ll: list[float] = []
        self._run_params: dict = {}
        self._run_meta: dict = {}
        self._shade: pg.ImageItem | None = None
        self.segments = segments(np.empty(0, dtype=np.int64))  # runs of the regime path: (starts, ends, states)
        self._post_img: pg.ImageItem | None = None
        self._diff_img: pg.ImageItem | None = None
        self._post_lut = np.zeros((1, 4), dtype=np.uint8)
        self.wf_result = None
        self.live_probs: np.ndarray | None = None  # filtered probabilities of the live replay so far
        self._build()
        if store is not None:
            store.changed.connect(self._on_store_changed)
        self._load_series()

    # ---- layout ----
    def _build(self) -> None:
        data, df = form_group("Data")
        self.source = QComboBox()
        self.source.setMaxVisibleItems(25)
        self.asset_list = QListWidget()
        self.asset_list.setMaximumHeight(110)
        self.asset_list.setToolTip("The assets whose features the HMM sees (several-assets source)")
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
        df.addRow(QLabel("Prices"))
        df.addRow(self.source)
        df.addRow(self.asset_list)
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

        feats, ff = form_group("Features (of each series)")
        self.feature_boxes = {
            "returns": QCheckBox("log returns  r_t = ln(p_t / p_t−1)"),
            "abs_returns": QCheckBox("absolute log returns  |r_t|"),
            "rolling_vol": QCheckBox("rolling volatility (std of r)"),
        }
        self.feature_boxes["returns"].setChecked(True)
        self.vol_window = spin(QSpinBox(), 2, 100_000, 20)
        self.vol_window.setToolTip("Rolling volatility: sample standard deviation of the last w log returns")
        self.covariance = QComboBox()
        self.covariance.addItem("full (correlated features)", "full")
        self.covariance.addItem("diagonal (independent features)", "diag")
        self.covariance.setToolTip("Several features: the covariance of each regime's Gaussian (run_hmm_mv)")
        self.declare(
            ff,
            *(Param(f"feature_{k}", b, "", in_params=False) for k, b in self.feature_boxes.items()),
            Param("vol_window", self.vol_window, "Volatility window (bars)", in_params=False),
            Param("covariance_type", self.covariance, "Covariance", in_params=False),
        )
        self.feature_label = QLabel(" ")
        self.feature_label.setWordWrap(True)
        self.feature_label.setStyleSheet("color: #555")
        ff.addRow(self.feature_label)

        model, mf = form_group("Gaussian HMM (Baum-Welch EM)")
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
        self.build_panel([data, feats, model, self._build_walk_group(), self._build_live_group()], width=370)

        # price shaded by regime, probabilities below (x-linked)
        self.price_plot = make_plot("Price, shaded by the most likely regime (Viterbi)", "price")
        self.axis = BarAxis()
        self.price_plot.getPlotItem().setAxisItems({"bottom": self.axis, "left": PriceAxis()})
        self.price_plot.getPlotItem().setLabel("left", "price")
        self.price_plot.getPlotItem().legend.setBrush(pg.mkBrush(255, 255, 255, 210))
        self.post_plot = make_plot("Smoothed regime probabilities (stacked)", "P(regime)")
        self.post_plot.table_provider = self._posterior_table
        self.post_axis = BarAxis()
        pp = self.post_plot.getPlotItem()
        pp.setAxisItems({"bottom": self.post_axis})
        pp.setXLink(self.price_plot.getPlotItem())
        pp.setYRange(0.0, self.PROB_TOP, padding=0.0)
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

        # smoothed / filtered toggle
        self.show_smoothed = QRadioButton("Smoothed: P(regime | all data), uses later data")
        self.show_filtered = QRadioButton("Filtered: P(regime | data up to t), what was knowable at the time")
        self.show_smoothed.setChecked(True)
        self._prob_group = QButtonGroup(self)
        for b in (self.show_smoothed, self.show_filtered):
            self._prob_group.addButton(b)
        self.declare(None, Param("show_filtered", self.show_filtered, None, in_params=False))
        self.diff_label = QLabel(" ")
        self.diff_label.setWordWrap(True)
        toggle = QWidget()
        tl = QVBoxLayout(toggle)
        tl.setContentsMargins(4, 0, 4, 0)
        row = QHBoxLayout()
        row.addWidget(QLabel("Probabilities:"))
        row.addWidget(self.show_smoothed)
        row.addWidget(self.show_filtered)
        row.addStretch(1)
        tl.addLayout(row)
        tl.addWidget(self.diff_label)

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
        probs = QWidget()
        pl = QVBoxLayout(probs)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.addWidget(toggle)
        pl.addWidget(self.post_plot, 1)
        right.addWidget(probs)
        right.addWidget(bottom)
        right.setSizes([380, 250, 240])
        self.view_tabs = QTabWidget()
        self.view_tabs.addTab(right, "Full-sample fit")
        self.view_tabs.addTab(self._build_walk_view(), "Walk-forward (out of sample)")
        self.set_main(self.view_tabs)

        self.source.currentIndexChanged.connect(self._load_series)
        self.asset_list.itemChanged.connect(self._assets_changed)
        self.n_points.valueChanged.connect(self._load_series)
        self.data_seed.valueChanged.connect(self._load_series)
        self.ann.valueChanged.connect(self._fill_regime_table)
        self.log_scale.toggled.connect(self._set_log_scale)
        self.show_filtered.toggled.connect(self._prob_view_changed)
        for box in self.feature_boxes.values():
            box.toggled.connect(self._describe_features)
        self.vol_window.valueChanged.connect(self._describe_features)
        for plot in (self.price_plot, self.post_plot):
            self.track_hover(plot, lambda x: self.readout(int(round(x))))
        self.view_tabs.currentChanged.connect(lambda i: self.ensure_walk_view() if i == 1 else None)

    def _describe_features(self, *_) -> None:
        """The line under the feature choice: how many features, and which fit they get."""
        try:
            x, names, offset = self.features()
        except ValueError as e:
            self.feature_label.setText(f"⚠ {e}")
            return
        fit = "run_hmm (one feature)" if x.shape[1] == 1 else f"run_hmm_mv ({x.shape[1]} features, covariance below)"
        start = f"; the first {offset:,} returns have no volatility yet" if offset else ""
        self.feature_label.setText(f"{x.shape[1]} feature{'s' * (x.shape[1] > 1)} × {len(x):,} rows → {fit}{start}")
        self.covariance.setEnabled(x.shape[1] > 1)

    # ---- run ----
    @refusable
    def run(self) -> int | None:
        x, names, offset = self.features_for("fit")
        self.stop_replay()
        self.live_iterations, self.live_ll = [], []
        self._live_timer.stop()
        self._run_params = self.params()
        inputs = self._series_inputs
        desc = self.feature_description(names, offset)
        self._run_inputs = lambda: dict(inputs(), observations=desc)
        self._run_meta = {"x": x, "names": names, "offset": offset}
        fn: Callable[..., Any]
        if x.shape[1] == 1:
            fn, args = fit_regimes, (x[:, 0],)
        else:
            self._run_params["covariance_type"] = self.covariance.currentData()
            fn, args = fit_regimes_mv, (x,)
        tid = self.start(
            fn,
            *args,
            **self._run_params,
            done=self._show_result,
            status=f"Running EM on {len(x):,} rows × {x.shape[1]} feature{'s' * (x.shape[1] > 1)}…",
        )
        self._show_live_curve()
        return tid

    def update_buttons(self) -> None:
        super().update_buttons()
        busy = self.running or self.replaying
        self.run_button.setEnabled(not busy)
        self.wf_button.setEnabled(not busy)
        self.replay_start.setEnabled(not busy and self.result is not None)

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
        if payload and payload[0] == "windows":
            self.wf_progress(payload[1], payload[2])
            return
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
        rows = len(self._run_meta.get("x", ()))
        self.set_status(
            f"Running EM on {rows:,} rows: iteration {self.live_iterations[-1]:,}, log-likelihood {self.live_ll[-1]:,.4f}"
        )

    # ---- result ----
    def _show_result(self, out: TaskOutcome) -> None:
        self._live_timer.stop()
        r = out.value
        self.result = r
        self.result_seconds = out.seconds
        self.result_backend = out.backend_name
        self.result_params, self._result_inputs = dict(self._run_params), self._run_inputs
        self.result_x = self._run_meta["x"]
        self.result_features = list(self._run_meta["names"])
        self.result_offset = int(self._run_meta["offset"])
        self.live_probs = None
        self.total_iterations = self.live_iterations[-1] if self.live_iterations else r.iterations
        self._draw(r)
        self.replay_label.setText(
            f"Ready: Start filters the {len(self.result_x):,} fitted rows tick by tick with these parameters."
        )
        conv = (
            "converged" if r.converged else f"NOT converged after {r.iterations:,} iterations (raise max iterations or tolerance)"
        )
        n_runs = self._run_params["n_restarts"] + 1
        restarts = f", best of {n_runs} runs" if n_runs > 1 else ""
        d = len(self.result_features)
        what = "log returns" if d == 1 else f"rows × {d} features ({self.result_params['covariance_type']} covariance)"
        self.set_status(
            f"Fitted{via(out)} in {out.seconds * 1e3:,.1f} ms{note(out)}: {r.n_states} regimes on "
            f"{len(r.viterbi_path):,} {what}, "
            f"{r.iterations:,} EM iterations{restarts}, {conv}. Log-likelihood {r.log_likelihood:,.2f}, "
            f"AIC {r.aic:,.2f}, BIC {r.bic:,.2f}."
        )
        self.update_buttons()

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
        """Dates (or bar numbers) of the result's rows: row i is the return from bar offset + i to
        bar offset + i + 1."""
        if self.result is None:
            return None
        first = 1 + self.result_offset
        if self.dates is not None:
            return pd.DatetimeIndex(self.dates[first:])
        return pd.RangeIndex(first, first + len(self.result.viterbi_path))

    def session_items(self) -> list[SessionItem]:
        wf = self.walk_item()
        if self.result is None:
            return [wf] if wf is not None else []
        items = [
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
        return items + ([wf] if wf is not None else [])

    def default_export_name(self, kind: str) -> str:
        if self.result is None:
            return f"regimes_walk_forward.{kind}"
        return f"regimes_{self.result.n_states}_states.{kind}"
