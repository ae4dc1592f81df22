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
import math

import numpy as np
import pandas as pd
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
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
from hft_lab.ui.plots import LogAxis, make_plot
from hft_lab.ui.views.base import AnalysisView, Param, note, via
from hft_lab.ui.views.portfolio_plots import NamesAxis
from hft_lab.ui.views.sparse_data import PERIOD_ALL, PERIOD_YEARS, SAMPLE, SYNTHETIC, SparseData
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
from hft_lab.ui.widgets import StatsTable, fmt
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


# ---------------------------------------------------------------- widgets


# ---------------------------------------------------------------- the view


class SparseView(SparseData, SparsePlots, AnalysisView):
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
    def _build(self) -> None:
        data = QGroupBox("Data")
        df = QFormLayout(data)
        self.make_source(SAMPLE, SYNTHETIC)
        self.period = QComboBox()
        self.period.addItems([PERIOD_ALL, PERIOD_YEARS])
        self.period.setCurrentText(PERIOD_YEARS)
        self.years = QSpinBox()
        self.years.setRange(1, 100)
        self.years.setValue(5)
        self.years.setSuffix(" years")
        period_row = QHBoxLayout()
        period_row.addWidget(self.period, 1)
        period_row.addWidget(self.years)
        self.syn_n = QSpinBox()
        self.syn_n.setRange(50, 100_000)
        self.syn_n.setValue(2000)
        self.syn_n.setSingleStep(500)
        self.syn_n.setSuffix(" bars")
        self.syn_assets = QSpinBox()
        self.syn_assets.setRange(2, 50)
        self.syn_assets.setValue(5)
        self.syn_seed = QSpinBox()
        self.syn_seed.setRange(0, 1_000_000)
        for s in (self.years, self.syn_n, self.syn_assets, self.syn_seed):
            s.setKeyboardTracking(False)  # typing "10" must not clear the result twice
        self.data_label = QLabel(" ")
        self.data_label.setWordWrap(True)
        self.data_label.setStyleSheet("color: #555")
        self.data_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        df.addRow("Prices", self.source)
        df.addRow("Period", period_row)
        df.addRow("Length", self.syn_n)
        df.addRow("Assets", self.syn_assets)
        df.addRow("Seed", self.syn_seed)
        df.addRow(self.data_label)
        self.data_form = df

        meth = QGroupBox("Method")
        mf = QFormLayout(meth)
        self.method = QComboBox()
        for label, m, text in METHODS:
            self.method.addItem(label, m)
            self.method.setItemData(self.method.count() - 1, text, Qt.ItemDataRole.ToolTipRole)
        self.method_help = QLabel(" ")
        self.method_help.setWordWrap(True)
        self.method_help.setStyleSheet("color: #555")
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
        self.alpha = QDoubleSpinBox()
        self.alpha.setRange(0.0, 1.0)
        self.alpha.setDecimals(3)
        self.alpha.setSingleStep(0.05)
        self.alpha.setValue(0.5)
        self.alpha.setToolTip("Share of the L1 penalty (scikit-learn's l1_ratio): 1 = lasso, 0 = ridge (not sparse)")
        self.target = QComboBox()
        self.target.setToolTip(
            "The asset regressed on the others (weight +1). Auto tries each asset "
            "and keeps the most mean-reverting spread (most negative ADF); slow for large universes."
        )
        self.k = QSpinBox()
        self.k.setRange(2, 100_000)
        self.k.setValue(3)
        self.k.setSuffix(" assets")
        self.k.setToolTip("Number of assets in the basket (2 … the number of assets)")
        self.tolerance = LogSpinBox(1e-15, 1.0, 1e-15, mantissas=(1.0,))
        self.tolerance.setValue(1e-4)
        self.tolerance.setToolTip("Coordinate descent stops at this duality gap (relative), as scikit-learn's tol")
        self.max_iterations = QSpinBox()
        self.max_iterations.setRange(1, 100_000_000)
        self.max_iterations.setValue(10_000)
        self.max_iterations.setSingleStep(1000)
        self.n_lambdas = QSpinBox()
        self.n_lambdas.setRange(2, 500)
        self.n_lambdas.setValue(30)
        self.n_lambdas.setToolTip("λ values on the path: from λmax (only the target) down to λmax/1000")
        self.no_params = QLabel("No parameters: Box-Tiao combines every asset.")
        self.no_params.setStyleSheet("color: #555")
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

        # results: λ path
        self.path_info = QLabel("Choose lasso or elastic net with a target asset and press “λ path”.")
        self.path_info.setWordWrap(True)
        self.run_on_click = QCheckBox("Run when a point is clicked")
        self.run_on_click.setChecked(True)
        self.declare(None, Param("run_on_click", self.run_on_click, None, in_params=False))
        head = QHBoxLayout()
        head.addWidget(self.path_info, 1)
        head.addWidget(self.run_on_click)
        self.nonzero_plot = _pg_plot("Assets in the basket", "assets", axis=LogAxis("bottom"))
        self.half_life_plot = _pg_plot(
            "Half-life of the spread (bars; not shown where it does not mean-revert)",
            "half-life",
            "λ",
            axis=LogAxis("bottom"),
            log_y=True,
        )
        self.half_life_plot.setXLink(self.nonzero_plot)
        for p in (self.nonzero_plot, self.half_life_plot):
            p.getPlotItem().getAxis("left").setWidth(56)  # same width: the linked x axes line up
        self.nonzero_plot.getPlotItem().setLogMode(x=True)
        self.half_life_plot.getPlotItem().setLogMode(x=True, y=True)
        self.lam_lines = []
        for p in (self.nonzero_plot, self.half_life_plot):
            line = pg.InfiniteLine(
                angle=90,
                movable=True,
                pen=pg.mkPen(214, 39, 40, width=1.5, style=Qt.PenStyle.DashLine),
                hoverPen=pg.mkPen(214, 39, 40, width=3),
            )
            line.setToolTip("Current λ: drag to change it")
            line.setVisible(False)
            p.addItem(line, ignoreBounds=True)
            line.sigPositionChangeFinished.connect(self._lam_line_moved)
            self.lam_lines.append(line)
        path_split = QSplitter(Qt.Orientation.Vertical)
        path_split.addWidget(self.nonzero_plot)
        path_split.addWidget(self.half_life_plot)
        path_w = QWidget()
        pl = QVBoxLayout(path_w)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.addLayout(head)
        pl.addWidget(path_split, 1)

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

    def clear_path(self) -> None:
        self.path = self.path_outcome = None
        self.path_params = {}
        for p in (self.nonzero_plot, self.half_life_plot):
            for item in list(p.getPlotItem().listDataItems()):
                p.getPlotItem().removeItem(item)
        self.path_nonzero_item = self.path_half_life_item = None
        for line in self.lam_lines:
            line.setVisible(False)
        self.path_info.setText("Choose lasso or elastic net with a target asset and press “λ path”.")

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

    def path_parameters(self) -> dict:
        """The keyword arguments of sparse_lambda_path for the next path."""
        p = self.params()
        return {
            "target": p["target"],
            "n_lambdas": p["n_lambdas"],
            "alpha": p["alpha"] if self.method_name() == "elastic_net" else 1.0,
            "tolerance": p["tolerance"],
            "max_iterations": p["max_iterations"],
        }

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

    def _lam_changed(self, v: float) -> None:
        self.lam_slider.blockSignals(True)
        if v > 0:
            self.lam_slider.setValue(int(round(math.log10(v) * SLIDER_STEPS_PER_DECADE)))
        else:
            self.lam_slider.setValue(self.lam_slider.minimum())
        self.lam_slider.blockSignals(False)
        for line in self.lam_lines:
            line.setVisible(v > 0 and self.path is not None)
            if v > 0:
                line.setValue(math.log10(v))

    def _slider_moved(self, s: int) -> None:
        self.lam.setValue(round_sig(10.0 ** (s / SLIDER_STEPS_PER_DECADE), 3))

    def _lam_line_moved(self, line) -> None:
        self.lam.setValue(round_sig(10.0 ** line.value(), 3))

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

    def run_path(self) -> int | None:
        if self.method_name() not in REGRESSION or self.target_name() is None:
            self.set_status("The λ path needs lasso or elastic net with a target asset (not Auto).", error=True)
            return None
        params = self.path_parameters()
        self._pending_path = {"params": params, "method": self.method_name()}
        return self.start(
            lambda_path,
            self._prices_for_run(),
            params,
            done=self._path_finished,
            signal=self.path_shown,
            status=f"Computing the λ path for {params['target']} ({params['n_lambdas']} values of λ)…",
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

    # ---- λ path ----
    def _path_finished(self, out: TaskOutcome) -> None:
        self.path_outcome = out
        self.path = out.value["path"]
        self.path_params = dict(self._pending_path["params"], method=self._pending_path["method"])
        self._draw_path()
        lp = self.path
        self.set_status(
            f"λ path{via(out)} in {out.seconds * 1e3:.1f} ms: {len(lp.lambdas)} values of λ, "
            f"{int(lp.nonzero.min())}–{int(lp.nonzero.max())} assets. Click a point to use its λ."
        )
        self.result_tabs.setCurrentIndex(1)

    def _nonzero_clicked(self, item, points, ev=None) -> None:
        if len(points):
            self.select_path_point(int(points[0].index()))

    def _half_life_clicked(self, item, points, ev=None) -> None:
        if len(points):
            self.select_path_point(int(self._hl_index[int(points[0].index())]))

    def select_path_point(self, i: int) -> None:
        """Use the i-th λ of the path (with the path's method, target and α); runs if asked."""
        if self.path is None or not 0 <= i < len(self.path.lambdas):
            return
        pp = self.path_params
        self.set_method(pp["method"])
        self.set_target(pp["target"])
        if pp["method"] == "elastic_net":
            self.alpha.setValue(pp["alpha"])
        self.lam.setValue(float(self.path.lambdas[i]))
        lp = self.path
        self.set_status(
            f"λ = {fmt(float(lp.lambdas[i]), 6)}: {int(lp.nonzero[i])} assets, half-life "
            f"{self._half_life_text(float(lp.half_life[i]))}, ADF {fmt(float(lp.adf_statistic[i]), 4)}."
        )
        if self.run_on_click.isChecked() and not self.running:
            self.run(from_path=True)

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

    def session_items(self) -> list:
        if self.result is None:
            return []
        return [
            SessionItem(
                "sparse_portfolio",
                self.result,
                parameters=self.result_parameters(),
                inputs=self.result_inputs(),
                backend=self.outcome.backend_name,
                plots={"weights": self.weights_plot, "spread": self.spread_plot},
                index=self._csv_index(),
            )
        ]

    def default_export_name(self, kind: str) -> str:
        r = self.result
        return f"sparse_{r.method}_{r.nonzero}_assets.{kind}"
