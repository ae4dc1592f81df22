"""Sparse Portfolio tab: from a universe of assets, find a small basket whose value mean-reverts
(to trade with the Mean Reversion tab).

Methods (backend.calculate_sparse_portfolio): lasso / elastic net regress one target asset on the
others (the basket is +1 target, -beta hedges); Box-Tiao takes the least predictable combination of
all assets under a VAR(1); d'Aspremont's greedy search builds the least predictable basket of k
assets. The data is the active dataset of the DatasetStore (without a store, the bundled S&P 500
sample), cut to the last N years, or a seeded synthetic cointegrated basket. The "λ path" button
shows, for lasso / elastic net with a chosen target, how many assets the basket holds and how fast it
mean-reverts along a grid of λ; clicking a point uses its λ.

Results: the basket weights (selected assets only), the spread (basket value) with its mean and
±2σ, and a statistics table with the Engle-Granger ADF test (critical values for the number of
assets in the basket; the weights were fitted on the same data, so the test is in-sample).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QSplitter,
    QTabWidget,
)

from hft_lab.analysis.sparse import (
    SyntheticPrices,
    adf_verdict,
    basket_formula,
    cut_period,
    find_basket,
    lambda_path,
    round_sig,
)
from hft_lab.data.export import SessionItem, describe_prices
from hft_lab.ui.plots import make_plot
from hft_lab.ui.views.base import AnalysisView, Param, note, via
from hft_lab.ui.views.portfolio_plots import NamesAxis
from hft_lab.ui.views.sparse_data import PERIOD_ALL, PERIOD_YEARS, SAMPLE, SYNTHETIC, SparseData
from hft_lab.ui.views.sparse_path import SparsePath
from hft_lab.ui.views.sparse_plots import (
    METHOD_HELP,
    METHOD_LABEL,
    METHOD_SHORT,
    METHODS,
    REGRESSION,
    SLIDER_DECADES,
    SLIDER_STEPS_PER_DECADE,
    LogSpinBox,
    SparsePlots,
    _pg_plot,
    verdict_color,
)
from hft_lab.ui.widgets import StatsTable, fmt, form_group, note_label, spin
from hft_lab.ui.worker import TaskOutcome, TaskRunner

log = logging.getLogger("hft_lab.ui.sparse")


__all__ = [
    "SparseView",
    "LogSpinBox",
    "SyntheticPrices",
    "adf_verdict",
    "basket_formula",
    "cut_period",
    "find_basket",
    "lambda_path",
    "round_sig",
    "verdict_color",
]


class SparseView(SparseData, SparsePath, SparsePlots, AnalysisView):
    # result_shown: the TaskOutcome of a basket run, after drawing (GUI thread)
    send_spread = Signal(str, object)  # (name, spread_payload()): the user wants to trade the basket
    path_shown = Signal(object)  # the TaskOutcome of a λ path, after drawing

    TASK_NAME = "sparse portfolio"
    CSV_TIP = "The spread (one row per bar), the weights and a summary"
    JSON_TIP = "The full result with the data and the parameters that produced it"

    def __init__(self, runner: TaskRunner, store=None, parent=None):
        super().__init__(runner, store, parent)
        self.outcome: TaskOutcome | None = None
        self.run_frame: pd.DataFrame | None = None  # the prices the shown basket was computed on
        self.run_params: dict = {}
        self.run_inputs: dict = {}
        self.path = None  # LambdaPath shown
        self.path_params: dict = {}
        self.path_outcome: TaskOutcome | None = None
        self._pending: dict = {}  # what the running basket task was started with
        self._pending_path: dict = {}
        self.weights_bars: pg.BarGraphItem | None = None
        self.spread_curve: pg.PlotDataItem | None = None
        self.spread_levels: tuple[float, float, float] | None = None  # mean, mean − 2σ, mean + 2σ
        self._spread_x: np.ndarray | None = None
        self.path_nonzero_item: pg.PlotDataItem | None = None
        self.path_half_life_item: pg.PlotDataItem | None = None
        self._hl_index = np.empty(0, dtype=np.int64)
        self._build()
        self._method_changed()
        self.reload()

    # ---- layout ----
    def _data_group(self) -> QGroupBox:
        data, df = form_group("Data")
        self.make_source(SAMPLE, SYNTHETIC)
        self.period = QComboBox()
        self.period.addItems([PERIOD_ALL, PERIOD_YEARS])
        self.period.setCurrentText(PERIOD_YEARS)
        self.years = spin(QSpinBox(), 1, 100, 5)
        self.years.setSuffix(" years")
        period_row = QHBoxLayout()
        period_row.addWidget(self.period, 1)
        period_row.addWidget(self.years)
        self.syn_n = spin(QSpinBox(), 50, 100_000, 2000, step=500)
        self.syn_n.setSuffix(" bars")
        self.syn_assets = spin(QSpinBox(), 2, 50, 5)
        self.syn_seed = spin(QSpinBox(), 0, 1_000_000, 0)
        for s in (self.years, self.syn_n, self.syn_assets, self.syn_seed):
            s.setKeyboardTracking(False)  # typing "10" must not clear the result twice
        self.data_label = note_label()
        df.addRow("Prices", self.source)
        df.addRow("Period", period_row)
        df.addRow("Length", self.syn_n)
        df.addRow("Assets", self.syn_assets)
        df.addRow("Seed", self.syn_seed)
        df.addRow(self.data_label)
        self.data_form = df
        return data

    def _method_group(self) -> QGroupBox:
        meth, mf = form_group("Method")
        self.method = QComboBox()
        for label, m, text in METHODS:
            self.method.addItem(label, m)
            self.method.setItemData(self.method.count() - 1, text, Qt.ItemDataRole.ToolTipRole)
        self.method_help = note_label()
        self.lam = LogSpinBox(0.0, 1e12, 1e-4)
        self.lam.setValue(10.0)
        self.lam.setToolTip(
            "Penalty λ (scikit-learn's alpha): 0 keeps every hedge; above λmax only the target is left. "
            "Prices near 100 give λmax in the thousands. Arrows step 1-2-5; type any number."
        )
        self.lam_slider = QSlider(Qt.Orientation.Horizontal)
        lo, hi = SLIDER_DECADES
        self.lam_slider.setRange(lo * SLIDER_STEPS_PER_DECADE, hi * SLIDER_STEPS_PER_DECADE)
        self.lam_slider.setToolTip("λ on a log scale (1e-4 … 1e8)")
        self.alpha = spin(QDoubleSpinBox(), 0.0, 1.0, 0.5, step=0.05, decimals=3)
        self.alpha.setToolTip("Share of the L1 penalty (scikit-learn's l1_ratio): 1 = lasso, 0 = ridge (not sparse)")
        self.target = QComboBox()
        self.target.setToolTip(
            "The asset regressed on the others (weight +1). Auto tries each asset "
            "and keeps the most mean-reverting spread (most negative ADF); slow for large universes."
        )
        self.k = spin(QSpinBox(), 2, 100_000, 3)
        self.k.setSuffix(" assets")
        self.k.setToolTip("Number of assets in the basket (2 … the number of assets)")
        self.tolerance = LogSpinBox(1e-15, 1.0, 1e-15, mantissas=(1.0,))
        self.tolerance.setValue(1e-4)
        self.tolerance.setToolTip("Coordinate descent stops at this duality gap (relative), as scikit-learn's tol")
        self.max_iterations = spin(QSpinBox(), 1, 100_000_000, 10_000, step=1000)
        self.n_lambdas = spin(QSpinBox(), 2, 500, 30)
        self.n_lambdas.setToolTip("λ values on the path: from λmax (only the target) down to λmax/1000")
        self.no_params = note_label("No parameters: Box-Tiao combines every asset.")
        self.declare(mf, Param("method", self.method, "Method", in_params=False))
        mf.addRow(self.method_help)
        self.declare(
            mf,
            Param("target", self.target, "Target", setting="", read=self.target_name),
            Param("lambda_param", self.lam, "λ (penalty)", setting="lambda"),
        )
        mf.addRow("", self.lam_slider)
        self.declare(
            mf,
            Param("alpha", self.alpha, "α (L1 ratio)"),
            Param("k", self.k, "k (basket size)"),
            Param("tolerance", self.tolerance, "Tolerance"),
            Param("max_iterations", self.max_iterations, "Max iterations"),
            Param("n_lambdas", self.n_lambdas, "λ path points"),
        )
        mf.addRow(self.no_params)
        self.method_form = mf
        return meth

    def _build(self) -> None:
        data, meth = self._data_group(), self._method_group()
        self.path_button = QPushButton("λ path")
        self.path_button.setToolTip("Basket size and half-life along a grid of λ (lasso / elastic net with a chosen target)")
        self.send_button = QPushButton("Trade this spread in Mean Reversion")
        self.send_button.setToolTip("Load the basket's spread into the Mean Reversion tab (z-score, OU half-life, live replay)")
        self.send_button.setEnabled(False)
        self.send_button.clicked.connect(lambda: self.send_spread.emit(self.spread_name(), self.spread_payload()))
        self.build_panel(
            [data, meth], extra_buttons=(self.path_button,), more_actions=[self.send_button], width=360, margins=(0, 0, 4, 0)
        )

        # results: basket
        self.summary = QLabel("Run to find a basket.")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setStyleSheet("padding: 2px 4px;")
        self.weights_axis = NamesAxis()
        self.weights_plot = _pg_plot("Weights", "weight", axis=self.weights_axis)
        self.weights_plot.setToolTip(
            "The assets in the basket: grey = the target (lasso / elastic net), blue = long, red = short"
        )
        self.weights_plot.getPlotItem().vb.setMouseEnabled(x=True, y=False)
        self.weights_plot.getPlotItem().getAxis("left").enableAutoSIPrefix(False)
        self.stats = StatsTable()
        self.stats.verticalHeader().setDefaultSectionSize(22)
        self.date_axis = pg.DateAxisItem(orientation="bottom", utcOffset=0)
        self.spread_plot = make_plot("Spread (basket value), mean and ±2σ", "spread")
        self.spread_plot.getPlotItem().getAxis("left").enableAutoSIPrefix(False)
        self.spread_plot.getPlotItem().setAxisItems({"bottom": self.date_axis})
        self._spread_dated = True
        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(self.weights_plot)
        top.addWidget(self.stats)
        top.setStretchFactor(0, 3)
        top.setStretchFactor(1, 2)
        top.setSizes([560, 380])
        basket = QSplitter(Qt.Orientation.Vertical)
        basket.addWidget(top)
        basket.addWidget(self.spread_plot)
        basket.setSizes([330, 400])

        path_w = self._build_path_tab()
        self.result_tabs = QTabWidget()
        self.result_tabs.addTab(basket, "Basket")
        self.result_tabs.addTab(path_w, "λ path")
        self.set_main(self.result_tabs, above=(self.summary,), margins=(0, 0, 0, 0))

        self.source.currentIndexChanged.connect(self._data_changed)
        self.period.currentIndexChanged.connect(self._data_changed)
        self.years.valueChanged.connect(self._data_changed)
        for s in (self.syn_n, self.syn_assets, self.syn_seed):
            s.valueChanged.connect(self._data_changed)
        self.method.currentIndexChanged.connect(self._method_changed)
        self.target.currentIndexChanged.connect(self.update_buttons)
        self.lam.valueChanged.connect(self._lam_changed)
        self.lam_slider.valueChanged.connect(self._slider_moved)
        self.path_button.clicked.connect(self.run_path)
        self._lam_changed(self.lam.value())
        self.track_hover(self.spread_plot, self._spread_readout)
        self.track_hover(self.weights_plot, self._weights_readout)
        for plot in (self.nonzero_plot, self.half_life_plot):
            self.track_hover(plot, self._path_readout)

    def reload(self) -> None:
        """Show the chosen source's controls, assets and row count (nothing is computed)."""
        syn = self.synthetic
        for w in (self.syn_n, self.syn_assets, self.syn_seed):
            self.data_form.setRowVisible(w, syn)
        dated = self._dated()
        self.period.setEnabled(dated)
        self.years.setEnabled(dated and self.period.currentText() == PERIOD_YEARS)
        self.period.setToolTip("" if dated else "This data has bar numbers, not dates: every row is used.")
        names = self.asset_names()
        self._fill_targets(names)
        self.data_label.setText(self._data_text(names))

    def _data_changed(self, *_) -> None:
        """The user chose other data: the shown basket and path belong to the old data."""
        if self.running:
            self.abandon()
        had = self.result is not None or self.path is not None
        self.clear_results()
        self.reload()
        self.set_status("Data changed: previous result cleared. Press Run." if had else "Data changed. Press Run.")

    def has_shown_result(self) -> bool:
        return self.result is not None or self.path is not None

    def clear_for_new_data(self, replaced: bool) -> None:
        self.clear_results()

    def clear_results(self) -> None:
        self.result = self.outcome = self.run_frame = None
        self.run_params, self.run_inputs = {}, {}
        self.weights_plot.getPlotItem().clear()
        self.weights_plot.getPlotItem().setTitle("Weights")
        self.weights_axis.set_names([])
        self.weights_bars = None
        self.spread_plot.getPlotItem().clear()
        self.spread_plot.getPlotItem().setTitle("Spread (basket value), mean and ±2σ")
        self.spread_curve = None
        self.spread_levels = None
        self._spread_x = None
        self.stats.set_rows([])
        self.summary.setText("Run to find a basket.")
        self.hover.setText(" ")
        for b in (self.export_csv_button, self.export_json_button, self.send_button):
            b.setEnabled(False)
        self.clear_path()

    # ---- parameters ----
    def method_name(self) -> str:
        return self.method.currentData()

    def set_method(self, method: str) -> None:
        self.method.setCurrentIndex(self.method.findData(method))

    def target_name(self) -> str | None:
        return self.target.currentData()

    def set_target(self, name: str | None) -> None:
        self.target.setCurrentIndex(max(0, self.target.findData(name)) if name is not None else 0)

    def backend_parameters(self) -> dict:
        """The keyword arguments of calculate_sparse_portfolio (besides prices and method) for the
        next run: only those the method uses."""
        m, p = self.method_name(), self.params()
        keys: tuple[str, ...] = ()
        if m in REGRESSION:
            keys = ("lambda_param", "target", "tolerance", "max_iterations") + (("alpha",) if m == "elastic_net" else ())
        elif m == "greedy":
            keys = ("k",)
        return {k: p[k] for k in keys}

    def _method_changed(self, *_) -> None:
        m = self.method_name()
        self.method_help.setText(METHOD_HELP[m])
        reg = m in REGRESSION
        f = self.method_form
        for w in (self.target, self.lam, self.lam_slider, self.tolerance, self.max_iterations, self.n_lambdas):
            f.setRowVisible(w, reg)
        f.setRowVisible(self.alpha, m == "elastic_net")
        f.setRowVisible(self.k, m == "greedy")
        f.setRowVisible(self.no_params, m == "box_tiao")
        self.update_buttons()

    def update_buttons(self, *_) -> None:
        busy = self.running
        self.run_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        can_path = self.method_name() in REGRESSION and self.target_name() is not None
        self.path_button.setEnabled(can_path and not busy)
        if self.method_name() not in REGRESSION:
            self.path_button.setToolTip("The λ path is for lasso and elastic net")
        elif self.target_name() is None:
            self.path_button.setToolTip("Choose a target asset (not Auto) for the λ path")
        else:
            self.path_button.setToolTip("Basket size and half-life along a grid of λ for this target")

    # ---- run ----
    def run(self, from_path: bool = False) -> int | None:
        """Find a basket with the chosen method on the chosen data."""
        method, params = self.method_name(), self.backend_parameters()
        prices = self._prices_for_run()
        names = self.asset_names()
        self._pending = {"params": params, "method": method, "inputs": self._inputs_description(), "from_path": from_path}
        auto = ""
        if method in REGRESSION and params.get("target") is None:
            auto = f", trying each of the {len(names)} assets as the target"
        return self.start(
            find_basket,
            prices,
            method,
            params,
            done=self._run_finished,
            status=f"Searching for a {METHOD_SHORT[method]} basket among {len(names)} assets{auto}…",
        )

    def _run_finished(self, out: TaskOutcome) -> None:
        self.outcome = out
        self.result = out.value["result"]
        self.run_frame = out.value["frame"]
        self.run_params = dict(self._pending["params"])
        self.run_inputs = self._pending["inputs"]
        self._draw()
        self._fill_stats()
        for b in (self.export_csv_button, self.export_json_button, self.send_button):
            b.setEnabled(True)
        r = self.result
        sel = r.selected
        shown = ", ".join(sel[:8]) + (", …" if len(sel) > 8 else "")
        self.set_status(
            f"{METHOD_LABEL.get(r.method, r.method)}{via(out)} in {out.seconds * 1e3:.1f} ms{note(out)}: "
            f"{r.nonzero} of {len(r.weights)} assets ({shown}), half-life {self._half_life_text(r.half_life)}, "
            f"ADF {fmt(r.adf_statistic, 4)}: {self.verdict()}."
        )
        if not self._pending.get("from_path"):
            self.result_tabs.setCurrentIndex(0)  # a run started on the path tab keeps the path in view

    def result_parameters(self) -> dict:
        """backend.calculate_sparse_portfolio(prices, **parameters) reproduces the shown result."""
        if self.result is None:
            return {}
        return {"method": self.result.method, **self.run_params}

    def result_inputs(self) -> dict:
        """The exact prices of the shown result (describe_prices: assets, rows, dates, SHA-256, the
        values when small) with the source and period they were cut from."""
        if self.result is None:
            return {}
        d = describe_prices(self.run_frame, name=self.run_inputs.get("name", ""))
        d.update(self.run_inputs)
        return d

    def _csv_index(self):
        """The dates of the spread rows, when the spread is the main CSV table (it is unless the
        weights table holds more values)."""
        r = self.result
        n = len(r.weights)
        return self.run_frame.index if len(r.spread) > 2 * n + 3 else None

    def session_items(self) -> list[SessionItem]:
        return self.result_item(
            "sparse_portfolio",
            parameters=self.result_parameters(),
            inputs=self.result_inputs(),
            outcome=self.outcome,
            plots={"weights": self.weights_plot, "spread": self.spread_plot},
            index=self._csv_index() if self.result is not None else None,
        )

    def default_export_name(self, kind: str) -> str:
        r = self.result
        return f"sparse_{r.method}_{r.nonzero}_assets.{kind}"
