"""Portfolio tab: min-variance / max-Sharpe / risk-parity / equal-weight portfolios of the active
dataset (with a DatasetStore; without one, the bundled S&P 500 sample), with a date range, or of a
seeded synthetic universe. Weights and risk-contribution bar charts, the efficient frontier with
every asset and the chosen portfolio, results and summary tables, CSV / JSON export."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import pyqtgraph as pg
from PySide6.QtCore import QDate, Qt, QTimer
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateEdit,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QStyledItemDelegate,
    QTableWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from hft_lab.analysis.portfolio import SyntheticSelection, optimise
from hft_lab.data import load_sample_prices
from hft_lab.data.export import SessionItem, describe_prices
from hft_lab.data.synthetic import synthetic_names, synthetic_universe
from hft_lab.ui.plots import PercentAxis
from hft_lab.ui.views.base import AnalysisView, Param, note, via
from hft_lab.ui.views.portfolio_data import PERIOD_ALL, PERIOD_DATES, PERIOD_YEARS, PortfolioData, _label
from hft_lab.ui.views.portfolio_plots import (
    METHOD_LABEL,
    METHODS,
    NamesAxis,
    PortfolioPlots,
    _plot,
)
from hft_lab.ui.views.sources import active_label
from hft_lab.ui.widgets import StatsTable, form_group, pct, spin
from hft_lab.ui.worker import TaskOutcome, TaskRunner

log = logging.getLogger("hft_lab.ui.portfolio")

SAMPLE = "S&P 500 sample (20 stocks, 1990–2022)"
SYNTHETIC = "Synthetic universe (correlated GBM)"


__all__ = [
    "PortfolioView",
    "active_label",
    "NamesAxis",
    "SyntheticSelection",
    "optimise",
    "synthetic_universe",
    "synthetic_names",
]


class _BudgetDelegate(QStyledItemDelegate):
    def createEditor(self, parent, option, index):
        ed = QDoubleSpinBox(parent)
        ed.setRange(0.001, 1_000_000.0)
        ed.setDecimals(3)
        ed.setFrame(False)
        return ed


# ---------------------------------------------------------------- the view


class PortfolioView(PortfolioData, PortfolioPlots, AnalysisView):
    TASK_NAME = "portfolio optimisation"
    CSV_MAIN = "weights"
    CSV_TIP = "The weights table (asset, weight, risk contribution) and the frontier, as CSV tables"
    JSON_TIP = "The full result with the data selection and parameters"

    def __init__(self, runner: TaskRunner, store=None, parent=None):
        super().__init__(runner, store, parent)
        self._date_limits = None
        self.run_frame: pd.DataFrame | None = None  # the prices of the shown result (None: synthetic)
        self._pending_frame: pd.DataFrame | None = None
        self._universe = None
        self.outcome: TaskOutcome | None = None
        self.asset_returns: np.ndarray | None = None
        self.asset_volatilities: np.ndarray | None = None
        self.run_inputs: dict | None = None  # the inputs of the shown result (for export)
        self._pending_inputs: dict | None = None
        self._checked: dict[str, bool] = {}
        self._budgets: dict[str, float] = {}
        self._prev_frontier = 30
        self._build()
        self.reload()

    # ---- layout ----
    def _build(self) -> None:
        # data source
        data = QGroupBox("Data")
        dl = QVBoxLayout(data)
        self.make_source(SAMPLE, SYNTHETIC)
        dl.addWidget(self.source)
        self.dataset_label = QLabel(" ")
        self.dataset_label.setWordWrap(True)
        self.dataset_label.setStyleSheet("color: #555")
        self.dataset_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.dataset_label.setVisible(False)
        dl.addWidget(self.dataset_label)
        self.source_options = QStackedWidget()
        sample_w = QWidget()
        sf = QFormLayout(sample_w)
        sf.setContentsMargins(0, 0, 0, 0)
        self.period = QComboBox()
        self.period.addItems([PERIOD_ALL, PERIOD_YEARS, PERIOD_DATES])
        self.period.setCurrentText(PERIOD_YEARS)
        self.years = QSpinBox()
        self.years.setRange(1, 50)
        self.years.setValue(10)
        self.years.setSuffix(" years")
        self.start_date = QDateEdit()
        self.end_date = QDateEdit()
        for d in (self.start_date, self.end_date):
            d.setCalendarPopup(True)
            d.setDisplayFormat("yyyy-MM-dd")
        self.period_note = QLabel(
            "This dataset has bar numbers, not dates: the period controls do not apply and every row is used "
            "(“Last N years” means all rows)."
        )
        self.period_note.setWordWrap(True)
        self.period_note.setStyleSheet("color: #8a5a00")
        self.period_note.setVisible(False)
        dates = QHBoxLayout()
        dates.addWidget(self.start_date, 1)
        dates.addWidget(QLabel("to"))
        dates.addWidget(self.end_date, 1)
        sf.addRow("Period", self.period)
        sf.addRow("Length", self.years)
        sf.addRow("From", dates)
        sf.addRow(self.period_note)
        self._period_form, self._dates_row = sf, dates
        synth_w = QWidget()
        yf = QFormLayout(synth_w)
        yf.setContentsMargins(0, 0, 0, 0)
        self.n_assets = QSpinBox()
        self.n_assets.setRange(2, 300)
        self.n_assets.setValue(10)
        self.n_obs = QSpinBox()
        self.n_obs.setRange(50, 20_000)
        self.n_obs.setValue(2520)
        self.n_obs.setSingleStep(252)
        self.n_obs.setSuffix(" days")
        self.seed = QSpinBox()
        self.seed.setRange(0, 1_000_000)
        yf.addRow("Assets", self.n_assets)
        yf.addRow("Length", self.n_obs)
        yf.addRow("Seed", self.seed)
        self.source_options.addWidget(sample_w)
        self.source_options.addWidget(synth_w)
        dl.addWidget(self.source_options)

        # assets
        assets = QGroupBox("Assets")
        al = QVBoxLayout(assets)
        sel = QHBoxLayout()
        self.select_all = QPushButton("Select all")
        self.select_none = QPushButton("Select none")
        sel.addWidget(self.select_all)
        sel.addWidget(self.select_none)
        al.addLayout(sel)
        self.assets = QTableWidget(0, 2)
        self.assets.setHorizontalHeaderLabels(["asset", "risk budget"])
        self.assets.verticalHeader().setVisible(False)
        self.assets.verticalHeader().setDefaultSectionSize(22)
        self.assets.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.assets.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.assets.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.assets.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.AnyKeyPressed
        )
        self.assets.setItemDelegateForColumn(1, _BudgetDelegate(self.assets))
        self.assets.setMinimumHeight(110)
        self.assets.setToolTip("Check the assets to optimise over. With risk parity, double-click a risk budget to edit it.")
        al.addWidget(self.assets, 1)
        self.selection_label = QLabel(" ")
        self.selection_label.setWordWrap(True)
        # two lines reserved: at small window sizes the asset table shrinks, this text does not
        self.selection_label.setMinimumHeight(2 * self.selection_label.fontMetrics().lineSpacing() + 4)
        al.addWidget(self.selection_label)

        # method and parameters
        opt, of = form_group("Optimisation")
        self.method = QComboBox()
        for label, m in METHODS:
            self.method.addItem(label, m)
        self.returns = QComboBox()
        self.returns.addItem("simple  p(t)/p(t-1) − 1", "simple")
        self.returns.addItem("log  ln(p(t)/p(t-1))", "log")
        self.covariance = QComboBox()
        self.covariance.addItem("sample (ddof = 1)", "sample")
        self.covariance.addItem("Ledoit-Wolf shrinkage", "ledoit_wolf")
        self.risk_free = spin(QDoubleSpinBox(), -100.0, 100.0, 2.0, step=0.25, decimals=2)
        self.risk_free.setSuffix(" % p.a.")
        self.annualization = spin(QDoubleSpinBox(), 1.0, 100_000_000.0, 252.0, decimals=0)
        self.min_weight = spin(QDoubleSpinBox(), -100.0, 100.0, 0.0, step=1.0, decimals=2)
        self.max_weight = spin(QDoubleSpinBox(), 0.0, 200.0, 100.0, step=1.0, decimals=2)
        for s in (self.min_weight, self.max_weight):
            s.setSuffix(" %")
        bounds = QHBoxLayout()
        bounds.addWidget(self.min_weight, 1)
        bounds.addWidget(QLabel("to"))
        bounds.addWidget(self.max_weight, 1)
        self.frontier_points = spin(QSpinBox(), 0, 1000, 30)
        self.frontier_points.setSpecialValueText("none")
        self.frontier_points.setKeyboardTracking(False)  # typing "15" must not pass through 1
        self.bounds_label = QLabel("Weight bounds")
        self.declare(
            of,
            Param("method", self.method, "Method", in_params=False),
            Param("returns", self.returns, "Returns"),
            Param("covariance", self.covariance, "Covariance"),
            Param("risk_free_rate", self.risk_free, "Risk-free rate", read=lambda: self.risk_free.value() / 100.0),
            Param("annualization", self.annualization, "Periods per year"),
            Param("min_weight", self.min_weight, None, read=lambda: self.min_weight.value() / 100.0),
            Param("max_weight", self.max_weight, None, read=lambda: self.max_weight.value() / 100.0),
        )
        of.addRow(self.bounds_label, bounds)
        self.declare(of, Param("frontier_points", self.frontier_points, "Frontier points"))

        # inputs scroll when the window is short; Run, status and export stay in view below them
        self.build_panel([data, (assets, 1), opt], margins=(0, 0, 4, 0))

        # results
        self.frontier_plot = _plot(
            "Efficient frontier (annualised)", PercentAxis("bottom"), PercentAxis("left"), "expected return", "volatility"
        )
        # the legend is a line under the plot: inside, it would hide points or the frontier
        self.frontier_legend = QLabel(" ")
        self.frontier_legend.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.frontier_legend.setWordWrap(True)
        self.frontier_legend.setStyleSheet("background: white; color: #222; padding: 2px;")
        self._label_font = QFont(self.font().family())
        self._label_font.setPointSizeF(8.0)
        self._labels: list = []
        self.frontier_plot.getPlotItem().vb.sigRangeChanged.connect(self._place_labels)
        self.frontier_plot.getPlotItem().vb.sigResized.connect(self._place_labels)
        self.weights_axis = NamesAxis()
        self.risk_axis = NamesAxis()
        self.weights_plot = _plot("Weights", self.weights_axis, PercentAxis("left"), "weight")
        self.risk_plot = _plot(
            "Risk contributions (share of portfolio variance)", self.risk_axis, PercentAxis("left"), "share of variance"
        )
        self.risk_plot.setXLink(self.weights_plot)
        for p in (self.weights_plot, self.risk_plot):
            p.getPlotItem().vb.setMouseEnabled(x=True, y=False)
        self.weights_bars: pg.BarGraphItem | None = None
        self.risk_bars: pg.BarGraphItem | None = None
        self.budget_marks: pg.ScatterPlotItem | None = None
        self.frontier_curve: pg.PlotDataItem | None = None
        self.asset_points: pg.ScatterPlotItem | None = None
        self.portfolio_point: pg.ScatterPlotItem | None = None
        self.cml_curve: pg.PlotDataItem | None = None

        self.results = QTableWidget(0, 4)
        self.results.setHorizontalHeaderLabels(["asset", "weight", "risk contribution", "risk budget"])
        self.results.verticalHeader().setVisible(False)
        self.results.verticalHeader().setDefaultSectionSize(22)
        self.results.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.results.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.results.setColumnHidden(3, True)
        self.results.setSortingEnabled(True)
        self.results.sortByColumn(1, Qt.SortOrder.DescendingOrder)
        self.stats = StatsTable()
        self.stats.verticalHeader().setDefaultSectionSize(22)

        self.tables = QTabWidget()
        self.tables.addTab(self.stats, "Summary")
        self.tables.addTab(self.results, "Weights table")
        tables = self.tables
        top = QSplitter(Qt.Orientation.Horizontal)
        frontier_box = QWidget()
        fl = QVBoxLayout(frontier_box)
        fl.setContentsMargins(0, 0, 0, 2)
        fl.setSpacing(0)
        fl.addWidget(self.frontier_plot, 1)
        fl.addWidget(self.frontier_legend)
        top.addWidget(frontier_box)
        top.addWidget(tables)
        top.setStretchFactor(0, 3)
        top.setStretchFactor(1, 2)
        top.setSizes([700, 420])
        bars = QSplitter(Qt.Orientation.Horizontal)
        bars.addWidget(self.weights_plot)
        bars.addWidget(self.risk_plot)
        right_split = QSplitter(Qt.Orientation.Vertical)
        right_split.addWidget(top)
        right_split.addWidget(bars)
        right_split.setSizes([560, 400])
        self.set_main(right_split, margins=(0, 0, 0, 0))

        # signals
        self._reload_timer = QTimer(self)
        self._reload_timer.setSingleShot(True)
        self._reload_timer.setInterval(250)
        self._reload_timer.timeout.connect(self.reload)
        self.source.currentIndexChanged.connect(self.reload)
        for s in (self.n_assets, self.n_obs, self.seed):
            s.valueChanged.connect(self._reload_timer.start)
        self.period.currentIndexChanged.connect(self._period_changed)
        self.years.valueChanged.connect(self._inputs_changed)
        self.start_date.dateChanged.connect(self._inputs_changed)
        self.end_date.dateChanged.connect(self._inputs_changed)
        self.assets.itemChanged.connect(self._asset_item_changed)
        self.select_all.clicked.connect(lambda: self.set_all_checked(True))
        self.select_none.clicked.connect(lambda: self.set_all_checked(False))
        self.method.currentIndexChanged.connect(self._method_changed)
        self.frontier_points.valueChanged.connect(self._frontier_points_changed)
        for plot in (self.weights_plot, self.risk_plot):
            self.track_hover(plot, lambda x: self.readout(int(round(x))))
        self._period_changed()
        self._method_changed()

    def reload(self, *_) -> None:
        """Load the chosen source (active dataset, sample or synthetic) and rebuild the asset list,
        keeping the check marks and risk budgets of assets that are still there."""
        self._reload_timer.stop()
        synthetic = self.synthetic
        self.source_options.setCurrentIndex(1 if synthetic else 0)
        names = synthetic_names(self.n_assets.value()) if synthetic else [str(c) for c in self._frame().columns]
        self._set_date_limits()
        self._update_period_controls()
        if self.uses_store:
            self.dataset_label.setText(self.store.describe())
        self.dataset_label.setVisible(self.uses_store)
        self._fill_asset_table(names)
        self._inputs_changed()

    STORE_TASK = "optimisation"
    PRESS_RUN = "Press Run to optimise."

    def has_shown_result(self) -> bool:
        return self.result is not None

    def clear_for_new_data(self, replaced: bool) -> None:
        self._clear_results()
        if replaced:
            self._date_limits = None  # dates chosen for the old data mean nothing now

    def _clear_results(self) -> None:
        self.result = None
        self.outcome = None
        self.asset_returns = self.asset_volatilities = None
        self.run_inputs = None
        self.run_frame = None
        for p in (self.weights_plot, self.risk_plot, self.frontier_plot):
            p.getPlotItem().clear()
        self.weights_axis.set_names([])
        self.risk_axis.set_names([])
        self.weights_bars = self.risk_bars = self.budget_marks = None
        self.frontier_curve = self.asset_points = self.portfolio_point = self.cml_curve = None
        self._labels = []
        self.frontier_legend.setText(" ")
        self.results.setRowCount(0)
        self.stats.set_rows([])
        self.hover.setText(" ")
        for b in (self.export_csv_button, self.export_json_button):
            b.setEnabled(False)

    def _inputs_changed(self, *_) -> None:
        if not hasattr(self, "selection_label"):
            return
        span = ""
        if self.synthetic:  # sizes only: the universe itself is made when it is needed
            n, rows = len(self.checked_assets()), self.n_obs.value()
        else:
            df = self.selected_prices()
            n, rows = df.shape[1], len(df)
            dated = isinstance(df.index, pd.DatetimeIndex)
            if rows:
                span = (
                    f" ({_label(df.index[0])} … {_label(df.index[-1])})"
                    if dated
                    else f" (bars {df.index[0]:,} … {df.index[-1]:,})"
                )
            if rows and dated and self.period.currentText() != PERIOD_DATES:
                # show the period the other modes resolve to (the date fields are read-only then)
                for edit, ts in ((self.start_date, df.index[0]), (self.end_date, df.index[-1])):
                    edit.blockSignals(True)
                    edit.setDate(QDate(ts.year, ts.month, ts.day))
                    edit.blockSignals(False)
        text = f"{n} of {self.assets.rowCount()} assets checked · {rows:,} price rows{span}"
        problem = self._selection_problem(n, rows)
        if problem:
            self.selection_label.setText(f"<span style='color:#c62828'>{problem}</span><br>{text}")
        else:
            self.selection_label.setText(text)
        if self.result is not None and not self.running:
            self.set_status("Inputs changed: press Run to update the result.")

    def _method_changed(self, *_) -> None:
        rp = self.method.currentData() == "risk_parity"
        self.assets.setColumnHidden(1, not rp)
        for w in (self.min_weight, self.max_weight, self.bounds_label):
            w.setEnabled(not rp)
        tip = "Risk parity is long-only without bounds (min 0 %, max 100 %)." if rp else ""
        for w in (self.min_weight, self.max_weight):
            w.setToolTip(tip)
        self._inputs_changed()

    def _frontier_points_changed(self, v: int) -> None:
        # 1 point is not a frontier: step over it (0 = none, then 2, 3, …)
        if v == 1:
            self.frontier_points.setValue(2 if self._prev_frontier < 1 else 0)
            return
        self._prev_frontier = v
        self._inputs_changed()

    # ---- run ----
    def method_name(self) -> str:
        return self.method.currentData()

    def set_method(self, method: str) -> None:
        self.method.setCurrentIndex(self.method.findData(method))

    def parameters(self) -> dict:
        """The backend parameters of the next run (annual fractions, as the backend expects)."""
        p = self.params()
        if self.method_name() == "risk_parity":
            del p["min_weight"], p["max_weight"]
            p["risk_budgets"] = self.risk_budgets()
        return p

    def run(self) -> int | None:
        """Start an optimisation of the selected data; None (and a message) if the selection cannot
        make a portfolio."""
        names = self.checked_assets()
        start: Any
        end: Any
        if self.synthetic:
            rows = self.n_obs.value()
            key = self._synthetic_key()
            u = self._universe
            prices = u[1][names] if u is not None and u[0] == key else SyntheticSelection(*key, names)
            start, end = 0, rows - 1
        else:
            prices = self.selected_prices()
            rows = len(prices)
            start, end = (prices.index[0], prices.index[-1]) if rows else (None, None)
        problem = self._selection_problem(len(names), rows)
        if problem:
            self.set_status(problem, error=True)
            return None
        method, params = self.method_name(), self.parameters()
        self._pending_frame = None if self.synthetic else prices
        self._pending_inputs = {
            "source": self.source.currentText(),
            "synthetic": (
                {"assets": self.n_assets.value(), "observations": self.n_obs.value(), "seed": self.seed.value()}
                if self.synthetic
                else None
            ),
            "start": _label(start) if isinstance(start, pd.Timestamp) else (None if start is None else int(start)),
            "end": _label(end) if isinstance(end, pd.Timestamp) else (None if end is None else int(end)),
            "rows": int(rows),
            "asset_names": names,
            "period": self._period_text(),
            "method": method,
            "parameters": params,
        }
        return self.start(
            optimise,
            prices,
            method,
            params,
            done=self._show_result,
            status=f"Optimising {len(names)} assets × {rows:,} rows ({METHOD_LABEL[method]})…",
        )

    def _show_result(self, out: TaskOutcome) -> None:
        v = out.value
        if v["universe"] is not None:
            self._universe = v["universe"]
        self.outcome = out
        self.result = v["result"]
        self.asset_returns = np.asarray(v["asset_returns"])
        self.asset_volatilities = np.asarray(v["asset_volatilities"])
        self.run_inputs = self._pending_inputs
        self.run_frame = self._pending_frame
        self._draw()
        self._fill_tables()
        self.enable_export()
        r = self.result
        self.set_status(
            f"{METHOD_LABEL.get(r.method, r.method)}{via(out)} in {out.seconds * 1e3:.1f} ms{note(out)}: "
            f"return {pct(r.expected_return)}, volatility {pct(r.volatility)}, Sharpe {r.sharpe:.3f}."
        )

    def result_parameters(self) -> dict:
        """Method and backend parameters of the shown result: optimize_portfolio(prices,
        method=p.pop("method"), parameters=p) reproduces it."""
        if self.result is None or self.run_inputs is None:
            return {}
        return {"method": self.run_inputs["method"], **self.run_inputs["parameters"]}

    def result_inputs(self) -> dict:
        """The prices of the shown result: for a dataset, describe_prices of exactly the matrix the
        optimiser got (assets, rows, dates, SHA-256; the values when small) plus the period and,
        for the active dataset, the store's selection it was cut from; for the synthetic universe,
        the generator and its parameters."""
        inp = self.run_inputs
        if self.result is None or inp is None:
            return {}
        if inp["synthetic"] is not None:
            return {
                "name": "synthetic universe (correlated GBM)",
                "generator": "hft_lab.data.synthetic.synthetic_universe",
                "params": {
                    "n_assets": inp["synthetic"]["assets"],
                    "n_obs": inp["synthetic"]["observations"],
                    "seed": inp["synthetic"]["seed"],
                },
                "assets": list(inp["asset_names"]),
                "rows": inp["rows"],
            }
        frame = self.run_frame
        name = self.store.dataset.name if self.store is not None else load_sample_prices().name
        d = describe_prices(frame, name=name)
        d["period"] = inp.get("period", "")
        if self.store is not None:
            d["dataset"] = self.store.inputs()
        return d

    def session_items(self) -> list[SessionItem]:
        plots = {"frontier": self.frontier_plot, "weights": self.weights_plot, "risk_contributions": self.risk_plot}
        return self.result_item(
            "portfolio", parameters=self.result_parameters(), inputs=self.result_inputs(), outcome=self.outcome, plots=plots
        )

    def default_export_name(self, kind: str) -> str:
        r = self.result
        return f"portfolio_{r.method}_{len(r.weights)}_assets.{kind}"
