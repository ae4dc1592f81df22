"""Portfolio tab: min-variance / max-Sharpe / risk-parity / equal-weight portfolios of the active
dataset (with a DatasetStore; without one, the bundled S&P 500 sample), with a date range, or of a
seeded synthetic universe. Weights and risk-contribution bar charts, the efficient frontier with
every asset and the chosen portfolio, results and summary tables, CSV / JSON export."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pyqtgraph as pg
from PySide6.QtCore import QDate, Qt, QTimer
from PySide6.QtGui import QFont, QFontMetrics
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
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from hft_lab.analysis.portfolio import SyntheticSelection, asset_moments, optimise
from hft_lab.data import load_sample_prices
from hft_lab.data.export import SessionItem, describe_prices
from hft_lab.data.synthetic import synthetic_names, synthetic_universe
from hft_lab.ui.plots import LabPlot, PercentAxis, pen
from hft_lab.ui.views.base import AnalysisView, Param, note, via
from hft_lab.ui.widgets import StatsTable, fmt, pct, spin
from hft_lab.ui.worker import TaskOutcome, TaskRunner

log = logging.getLogger("hft_lab.ui.portfolio")

SAMPLE = "S&P 500 sample (20 stocks, 1990–2022)"
SYNTHETIC = "Synthetic universe (correlated GBM)"

METHODS = [
    ("Max Sharpe (tangency)", "max_sharpe"),
    ("Min variance", "min_variance"),
    ("Risk parity (risk budgets)", "risk_parity"),
    ("Equal weight", "equal_weight"),
]
METHOD_LABEL = {m: label for label, m in METHODS}
SHORT_LABEL = {
    "max_sharpe": "max-Sharpe",
    "min_variance": "min-variance",
    "risk_parity": "risk-parity",
    "equal_weight": "equal-weight",
}

PERIOD_ALL, PERIOD_YEARS, PERIOD_DATES = "All data", "Last N years", "Between dates"

POSITIVE = (31, 119, 180)
NEGATIVE = (214, 39, 40)
RISK = (255, 127, 14)
PORTFOLIO = (214, 39, 40)
MAX_ASSET_LABELS = 40  # more text labels on the frontier plot would be unreadable (tooltips remain)
# label positions tried in turn: right of the point, left, above, below (TextItem anchors)
LABEL_ANCHORS = [(-0.12, 0.5), (1.12, 0.5), (0.5, 1.15), (0.5, -0.15)]
# further positions for the largest holdings' labels: the four diagonals
DIAGONAL_ANCHORS = [(-0.05, 1.1), (1.05, 1.1), (-0.05, -0.1), (1.05, -0.1)]


def active_label(name: str) -> str:
    """The source entry of the store's active dataset."""
    return f"Active dataset ({name})"


__all__ = [
    "PortfolioView",
    "NamesAxis",
    "SyntheticSelection",
    "asset_moments",
    "optimise",
    "synthetic_universe",
    "synthetic_names",
]


def _label(ts: pd.Timestamp) -> str:
    """A date, with the time of day only when it has one."""
    return f"{ts:%Y-%m-%d}" if ts == ts.normalize() else f"{ts:%Y-%m-%d %H:%M:%S}"


class NamesAxis(pg.AxisItem):
    """Category axis: asset i at x = i. Labels are staggered on two lines and thinned when the plot
    is too narrow for all of them (every name stays available in the hover readout)."""

    def __init__(self, *args, **kwargs):
        super().__init__("bottom", *args, **kwargs)
        self.names: list[str] = []
        self._step = 1
        self._stagger = False
        f = QFont()
        f.setPointSizeF(8.0)
        # hideOverlappingLabels=24: the first and last names may overhang the axis by 24 px
        self.setStyle(tickFont=f, autoExpandTextSpace=False, autoReduceTextSpace=False, hideOverlappingLabels=24)
        self.setHeight(2 * QFontMetrics(f).height() + 12)  # room for the staggered second line

    def set_names(self, names) -> None:
        self.names = [str(n) for n in names]
        self.picture = None
        self.update()

    def tickValues(self, minVal, maxVal, size):
        n = len(self.names)
        if n == 0 or size <= 0 or maxVal <= minVal:
            return []
        lo, hi = max(0, math.ceil(minVal)), min(n - 1, math.floor(maxVal))
        if hi < lo:
            return []
        fm = QFontMetrics(self.style["tickFont"] or self.font())
        label = max(fm.horizontalAdvance(s) for s in self.names) + 6
        per_unit = size / (maxVal - minVal)
        self._stagger = label > per_unit
        self._step = max(1, math.ceil(label / (per_unit * (2 if self._stagger else 1))))
        first = -(-lo // self._step) * self._step
        return [(self._step, list(range(first, hi + 1, self._step)))]

    def tickStrings(self, values, scale, spacing):
        out = []
        for v in values:
            i = int(round(v))
            s = self.names[i] if 0 <= i < len(self.names) else ""
            if self._stagger and (i // self._step) % 2 == 1:
                s = "\n" + s
            out.append(s)
        return out


class _NumberItem(QTableWidgetItem):
    """Table item that shows formatted text and sorts by its number."""

    def __init__(self, value: float, text: str):
        super().__init__(text)
        self.value = value
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other):
        if isinstance(other, _NumberItem):
            return self.value < other.value
        return super().__lt__(other)


class _BudgetDelegate(QStyledItemDelegate):
    def createEditor(self, parent, option, index):
        ed = QDoubleSpinBox(parent)
        ed.setRange(0.001, 1_000_000.0)
        ed.setDecimals(3)
        ed.setFrame(False)
        return ed


def _plot(title: str, bottom: pg.AxisItem, left: pg.AxisItem, left_label: str, bottom_label: str = "") -> LabPlot:
    w = LabPlot(title, axisItems={"bottom": bottom, "left": left}, legend=False)
    p = w.getPlotItem()
    p.showGrid(x=not isinstance(bottom, NamesAxis), y=True, alpha=0.2)
    p.setLabel("left", left_label)
    if bottom_label:
        p.setLabel("bottom", bottom_label)
    p.layout.setContentsMargins(0, 0, 14, 0)  # room for the last x tick label
    return w


# ---------------------------------------------------------------- the view


class PortfolioView(AnalysisView):
    TASK_NAME = "portfolio optimisation"
    CSV_MAIN = "weights"
    CSV_TIP = "The weights table (asset, weight, risk contribution) and the frontier, as CSV tables"
    JSON_TIP = "The full result with the data selection and parameters"

    def __init__(self, runner: TaskRunner, store=None, parent=None):
        super().__init__(runner, store, parent)
        self._store_dataset = store.dataset if store is not None else None
        self._active: pd.DataFrame | None = None  # store.selected_prices(), kept until the store changes
        self._date_limits: tuple | None = None  # (first, last) date the date fields allow
        self.run_frame: pd.DataFrame | None = None  # the prices of the shown result (None: synthetic)
        self._pending_frame: pd.DataFrame | None = None
        self._universe: tuple[tuple, pd.DataFrame] | None = None  # the last synthetic universe made
        self.outcome: TaskOutcome | None = None
        self.asset_returns: np.ndarray | None = None
        self.asset_volatilities: np.ndarray | None = None
        self.run_inputs: dict | None = None  # the inputs of the shown result (for export)
        self._pending_inputs: dict | None = None
        self._checked: dict[str, bool] = {}
        self._budgets: dict[str, float] = {}
        self._sample: pd.DataFrame | None = None
        self._prev_frontier = 30
        self._build()
        if store is not None:
            store.changed.connect(self._on_store_changed)
        self.reload()

    # ---- layout ----
    def _build(self) -> None:
        # data source
        data = QGroupBox("Data")
        dl = QVBoxLayout(data)
        self.source = QComboBox()
        self.source.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.source.setMinimumContentsLength(16)
        if self.store is not None:
            self.source.addItem(active_label(self.store.dataset.name), "active")
            self.source.setItemData(0, self.store.describe(), Qt.ItemDataRole.ToolTipRole)
        else:
            try:
                self._sample = load_sample_prices().prices
                self.source.addItem(SAMPLE, "sample")
            except OSError as e:
                log.warning("sample data unavailable: %s", e)
        self.source.addItem(SYNTHETIC, "synthetic")
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
        self.assets.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
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
        opt = QGroupBox("Optimisation")
        of = QFormLayout(opt)
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
        self.results.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
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
        right = QVBoxLayout()
        right.setContentsMargins(0, 0, 0, 0)
        right.addWidget(right_split, 1)
        right.addWidget(self.hover_line())
        right_w = QWidget()
        right_w.setLayout(right)
        self.set_main(right_w)

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

    # ---- data ----
    @property
    def synthetic(self) -> bool:
        return self.source.currentData() == "synthetic"

    @property
    def uses_store(self) -> bool:
        """The prices come from the active dataset of the store."""
        return self.source.currentData() == "active"

    def data_frame(self) -> pd.DataFrame | None:
        """All prices of the chosen non-synthetic source (the store's selection, or the sample)
        before this view's period and asset choice; None for the synthetic universe."""
        if self.synthetic:
            return None
        if self.uses_store:
            if self._active is None:
                self._active = self.store.selected_prices()
            return self._active
        return self._sample

    def _dated(self) -> bool:
        df = self.data_frame()
        return df is not None and isinstance(df.index, pd.DatetimeIndex)

    def reload(self, *_) -> None:
        """Load the chosen source (active dataset, sample or synthetic) and rebuild the asset list,
        keeping the check marks and risk budgets of assets that are still there."""
        self._reload_timer.stop()
        synthetic = self.synthetic
        self.source_options.setCurrentIndex(1 if synthetic else 0)
        df = self.data_frame()
        names = synthetic_names(self.n_assets.value()) if synthetic else [str(c) for c in df.columns]
        self._set_date_limits()
        self._update_period_controls()
        if self.uses_store:
            self.dataset_label.setText(self.store.describe())
        self.dataset_label.setVisible(self.uses_store)
        self._fill_asset_table(names)
        self._inputs_changed()

    def _set_date_limits(self, reset: bool = False) -> None:
        """Limit the date fields to the dates of the data; when the limits change (or reset), the
        "between dates" fields show the last five years."""
        df = self.data_frame()
        if df is None or not isinstance(df.index, pd.DatetimeIndex) or len(df) == 0:
            return
        first, last = df.index[0], df.index[-1]
        if (first, last) == self._date_limits and not reset:
            return
        qfirst, qlast = QDate(first.year, first.month, first.day), QDate(last.year, last.month, last.day)
        fresh = reset or self._date_limits is None
        self._date_limits = (first, last)
        for d in (self.start_date, self.end_date):
            d.blockSignals(True)
            d.setDateRange(qfirst, qlast)  # clamps the dates chosen for other data
        if fresh or self.start_date.date() >= self.end_date.date():
            self.start_date.setDate(max(qlast.addYears(-5), qfirst))
            self.end_date.setDate(qlast)
        for d in (self.start_date, self.end_date):
            d.blockSignals(False)

    def _update_period_controls(self) -> None:
        """Date fields only for dated data; for bar numbers they are off and a note says why."""
        dated = self._dated()
        mode = self.period.currentText()
        self.period.setEnabled(dated)
        self.years.setEnabled(dated and mode == PERIOD_YEARS)
        self.start_date.setEnabled(dated and mode == PERIOD_DATES)
        self.end_date.setEnabled(dated and mode == PERIOD_DATES)
        self.period_note.setVisible(not self.synthetic and not dated)
        self._period_form.setRowVisible(self._dates_row, dated or self.synthetic)  # no stale dates of other data

    def _on_store_changed(self) -> None:
        """The active dataset or its selection changed: if this view uses it, reload the assets and
        rows and clear the result, which belongs to the old data (nothing is recomputed)."""
        replaced = self.store.dataset is not self._store_dataset
        self._store_dataset = self.store.dataset
        self._active = None
        i = self.source.findData("active")
        if i >= 0:
            self.source.setItemText(i, active_label(self.store.dataset.name))
            self.source.setItemData(i, self.store.describe(), Qt.ItemDataRole.ToolTipRole)
        if not self.uses_store:
            return
        gone = []
        if self.running:
            self.abandon()
            gone.append("the running optimisation was cancelled")
        if self.result is not None:
            gone.append("the previous result was cleared (it belongs to the old data)")
        self._clear_results()
        if replaced:
            self._date_limits = None  # dates chosen for the old data mean nothing now
        self.reload()
        what = "Active dataset replaced" if replaced else "Active dataset selection changed"
        tail = f"; {' and '.join(gone)}" if gone else ""
        self.set_status(f"{what}: {self.store.describe()}{tail}. Press Run to optimise.")

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

    def _synthetic_key(self) -> tuple[int, int, int]:
        return (self.n_assets.value(), self.n_obs.value(), self.seed.value())

    def synthetic_frame(self) -> pd.DataFrame:
        """The whole synthetic universe of the current settings (made now unless cached)."""
        key = self._synthetic_key()
        if self._universe is None or self._universe[0] != key:
            self._universe = (key, synthetic_universe(*key))
        return self._universe[1]

    def _fill_asset_table(self, names: list[str]) -> None:
        t = self.assets
        t.blockSignals(True)
        t.setRowCount(len(names))
        for i, name in enumerate(names):
            it = QTableWidgetItem(name)
            it.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
            it.setCheckState(Qt.CheckState.Checked if self._checked.get(name, True) else Qt.CheckState.Unchecked)
            t.setItem(i, 0, it)
            b = QTableWidgetItem()
            b.setData(Qt.ItemDataRole.EditRole, float(self._budgets.get(name, 1.0)))
            b.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsEditable | Qt.ItemFlag.ItemIsSelectable)
            b.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            t.setItem(i, 1, b)
        t.blockSignals(False)

    def asset_names(self) -> list[str]:
        return [self.assets.item(i, 0).text() for i in range(self.assets.rowCount())]

    def checked_assets(self) -> list[str]:
        return [
            self.assets.item(i, 0).text()
            for i in range(self.assets.rowCount())
            if self.assets.item(i, 0).checkState() == Qt.CheckState.Checked
        ]

    def set_checked(self, names, checked: bool = True) -> None:
        want = set(names)
        for i in range(self.assets.rowCount()):
            it = self.assets.item(i, 0)
            if it.text() in want:
                it.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)

    def set_all_checked(self, checked: bool) -> None:
        self.assets.blockSignals(True)
        for i in range(self.assets.rowCount()):
            it = self.assets.item(i, 0)
            it.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
            self._checked[it.text()] = checked
        self.assets.blockSignals(False)
        self._inputs_changed()

    def set_budget(self, name: str, value: float) -> None:
        for i in range(self.assets.rowCount()):
            if self.assets.item(i, 0).text() == name:
                self.assets.item(i, 1).setData(Qt.ItemDataRole.EditRole, float(value))
                return
        raise KeyError(name)

    def risk_budgets(self) -> list[float]:
        """The risk budgets of the checked assets, in table order."""
        out = []
        for i in range(self.assets.rowCount()):
            if self.assets.item(i, 0).checkState() == Qt.CheckState.Checked:
                out.append(float(self.assets.item(i, 1).data(Qt.ItemDataRole.EditRole)))
        return out

    def _asset_item_changed(self, item: QTableWidgetItem) -> None:
        name = self.assets.item(item.row(), 0).text()
        if item.column() == 0:
            self._checked[name] = item.checkState() == Qt.CheckState.Checked
        else:
            self._budgets[name] = float(item.data(Qt.ItemDataRole.EditRole))
        self._inputs_changed()

    def date_range(self) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
        """The period chosen (None = open end; both None for bar numbers: every row is used). The
        end is the last instant of the end date, so intraday bars of that day are included."""
        df = self.data_frame()
        if df is None or not isinstance(df.index, pd.DatetimeIndex) or len(df) == 0:
            return None, None
        mode = self.period.currentText()
        if mode == PERIOD_YEARS:
            last = df.index[-1]
            return last - pd.DateOffset(years=self.years.value()), None
        if mode == PERIOD_DATES:
            end = pd.Timestamp(self.end_date.date().toPython()) + pd.Timedelta(days=1) - pd.Timedelta(1, "ns")
            return pd.Timestamp(self.start_date.date().toPython()), end
        return None, None

    def selected_prices(self) -> pd.DataFrame:
        """The prices the next run uses: checked assets, chosen period, rows with a missing price
        dropped."""
        if self.synthetic:
            return self.synthetic_frame()[self.checked_assets()].astype(np.float64)
        df = self.data_frame()[self.checked_assets()]
        start, end = self.date_range()
        if start is not None or end is not None:
            df = df.loc[start:end]
        return df.dropna(how="any").astype(np.float64)

    def _period_changed(self, *_) -> None:
        self._update_period_controls()
        self._inputs_changed()

    @staticmethod
    def _selection_problem(n: int, rows: int) -> str:
        if n < 2:
            return f"Check at least 2 assets (a portfolio needs 2 or more); {n} checked."
        if rows < n + 2:
            return f"The period has {rows:,} price rows: too few for {n} assets (need at least {n + 2})."
        return ""

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
        if self.synthetic:
            rows = self.n_obs.value()
            key = self._synthetic_key()
            cached = self._universe is not None and self._universe[0] == key
            prices = self._universe[1][names] if cached else SyntheticSelection(*key, names)
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

    def _period_text(self) -> str:
        if self.synthetic:
            return "synthetic"
        if not self._dated():
            return "all rows (bar numbers)"
        mode = self.period.currentText()
        if mode == PERIOD_YEARS:
            return f"last {self.years.value()} years"
        if mode == PERIOD_DATES:
            return f"{self.start_date.date().toString('yyyy-MM-dd')} … {self.end_date.date().toString('yyyy-MM-dd')}"
        return "all data"

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

    # ---- drawing (GUI thread; at most a few hundred items) ----
    def _draw(self) -> None:
        r = self.result
        names = list(r.asset_names)
        n = len(names)
        x = np.arange(n, dtype=np.float64)
        w = np.asarray(r.weights, dtype=np.float64)
        rc = np.asarray(r.risk_contributions, dtype=np.float64)

        wp = self.weights_plot.getPlotItem()
        wp.clear()
        self.weights_axis.set_names(names)
        brushes = [pg.mkBrush(*(POSITIVE if v >= 0 else NEGATIVE)) for v in w]
        self.weights_bars = pg.BarGraphItem(x=x, height=w, width=0.7, brushes=brushes, pen=pg.mkPen(None))
        wp.addItem(self.weights_bars)
        wp.addLine(y=0, pen=pg.mkPen(120, 120, 120))

        rp = self.risk_plot.getPlotItem()
        rp.clear()
        self.risk_axis.set_names(names)
        rbrushes = [pg.mkBrush(*(RISK if v >= 0 else NEGATIVE)) for v in rc]
        self.risk_bars = pg.BarGraphItem(x=x, height=rc, width=0.7, brushes=rbrushes, pen=pg.mkPen(None))
        rp.addItem(self.risk_bars)
        rp.addLine(y=0, pen=pg.mkPen(120, 120, 120))
        self.budget_marks = None
        if r.method == "risk_parity":
            b = np.asarray(self.run_inputs["parameters"].get("risk_budgets") or np.ones(n), dtype=np.float64)
            self.budget_marks = pg.ScatterPlotItem(
                x,
                b / b.sum(),
                symbol="_",
                size=max(8, min(40, 600 // max(n, 1))),
                pen=pg.mkPen(30, 30, 30, width=2),
                brush=None,
            )
            rp.addItem(self.budget_marks)
            rp.setTitle("Risk contributions and risk budgets (black marks)")
        else:
            rp.setTitle("Risk contributions (share of portfolio variance)")
        for p in (wp, rp):
            p.setXRange(-0.6, n - 0.4, padding=0)
            p.enableAutoRange(axis="y")
        self._draw_frontier()

    def _draw_frontier(self) -> None:
        r = self.result
        fp = self.frontier_plot.getPlotItem()
        fp.clear()
        names = list(r.asset_names)
        mean, vol = self.asset_returns, self.asset_volatilities
        fv = np.asarray(r.frontier_volatilities, dtype=np.float64)
        fr = np.asarray(r.frontier_returns, dtype=np.float64)
        self.frontier_curve = None
        if len(fv):
            self.frontier_curve = fp.plot(fv, fr, pen=pen("mean", 2))
        self.asset_points = pg.ScatterPlotItem(
            vol,
            mean,
            data=names,
            symbol="o",
            size=7,
            brush=pg.mkBrush(110, 110, 110, 200),
            pen=pg.mkPen(60, 60, 60),
            hoverable=True,
            hoverSize=10,
            tip=lambda x, y, data: f"{data}\nvolatility {x * 100:.2f} %\nexpected return {y * 100:.2f} %",
        )
        fp.addItem(self.asset_points)
        self._labels = []
        if len(names) <= MAX_ASSET_LABELS:
            for name, xv, yv in zip(names, vol, mean):
                t = pg.TextItem(name, color=(70, 70, 70), anchor=LABEL_ANCHORS[0])
                t.setFont(self._label_font)
                t.textItem.document().setDocumentMargin(1)  # the box is the text (placement below uses it)
                t.setPos(float(xv), float(yv))
                fp.addItem(t)
                self._labels.append((t, float(xv), float(yv), name))
        self.cml_curve = None
        rf = self.run_inputs["parameters"]["risk_free_rate"]
        if r.method == "max_sharpe" and math.isfinite(r.sharpe):
            # up to the highest return on the plot, so the line does not stretch the y axis
            y_top = float(max(np.max(mean), np.max(fr) if len(fr) else -np.inf, r.expected_return))
            x_end = (y_top - rf) / r.sharpe if r.sharpe > 0 else r.volatility
            self.cml_curve = fp.plot(
                [0.0, x_end],
                [rf, rf + r.sharpe * x_end],
                pen=pen("exit", 1.2, Qt.PenStyle.DashLine),
            )
        label = SHORT_LABEL.get(r.method, r.method)
        self.portfolio_point = pg.ScatterPlotItem(
            [r.volatility],
            [r.expected_return],
            symbol="star",
            size=18,
            brush=pg.mkBrush(*PORTFOLIO),
            pen=pg.mkPen(90, 0, 0),
            hoverable=True,
            tip=lambda x, y, data: f"{label} portfolio\nvolatility {x * 100:.2f} %\nexpected return {y * 100:.2f} %",
        )
        fp.addItem(self.portfolio_point)
        keys = []
        if self.frontier_curve is not None:
            keys.append((POSITIVE, "━━", f"efficient frontier ({len(fv)} points)"))
        keys.append(((110, 110, 110), "●", "single assets"))
        if self.cml_curve is not None:
            keys.append(((120, 120, 120), "- - -", f"capital market line (rf {pct(rf)})"))
        keys.append((PORTFOLIO, "★", f"{label} portfolio (Sharpe {r.sharpe:.2f})"))
        self.frontier_legend.setText(
            " &nbsp; ".join(
                f"<span style='color:rgb{c}'>{sym.replace(' ', '&nbsp;')}</span>&nbsp;{text.replace(' ', '&nbsp;')}"
                for c, sym, text in keys
            )
        )
        # the whole picture, with room on the right for the labels of the riskiest assets
        xs = [vol, fv, [r.volatility]] + ([[0.0]] if self.cml_curve is not None else [])
        ys = [mean, fr, [r.expected_return]] + ([[rf]] if self.cml_curve is not None else [])
        x_lo, x_hi = min(float(np.min(a)) for a in xs if len(a)), max(float(np.max(a)) for a in xs if len(a))
        y_lo, y_hi = min(float(np.min(a)) for a in ys if len(a)), max(float(np.max(a)) for a in ys if len(a))
        dx, dy = max(x_hi - x_lo, 1e-9), max(y_hi - y_lo, 1e-9)
        fp.setXRange(x_lo - 0.03 * dx, x_hi + (0.12 if self._labels else 0.04) * dx, padding=0)
        fp.setYRange(y_lo - 0.05 * dy, y_hi + 0.06 * dy, padding=0)
        self._place_labels()

    def _place_labels(self, *_) -> None:
        """Put each asset label right, left, above or below its point, wherever it overlaps no
        other label or point at the current zoom; hide it if nowhere fits (the tooltip remains)."""
        labels = getattr(self, "_labels", None)
        if not labels:
            return
        vb = self.frontier_plot.getPlotItem().vb
        (x0, x1), (y0, y1) = vb.viewRange()
        w, h = vb.width(), vb.height()
        if w <= 0 or h <= 0 or x1 <= x0 or y1 <= y0:
            return
        sx, sy = w / (x1 - x0), h / (y1 - y0)
        pts = [((px - x0) * sx, (y1 - py) * sy) for _, px, py, _ in labels]
        taken = [(X - 4, Y - 4, X + 4, Y + 4) for X, Y in pts]  # the markers themselves
        if self.portfolio_point is not None:
            r = self.result
            X, Y = (r.volatility - x0) * sx, (y1 - r.expected_return) * sy
            taken.append((X - 9, Y - 9, X + 9, Y + 9))

        n_markers = len(taken)

        def free(rect, own, labels_only=False):
            a0, b0, a1, b1 = rect
            if a0 < 0 or b0 < 0 or a1 > w or b1 > h:
                return False  # a label outside the plot area would be clipped
            return all(
                k == own or a1 <= c0 or a0 >= c1 or b1 <= d0 or b0 >= d1
                for k, (c0, d0, c1, d1) in enumerate(taken)
                if not (labels_only and k < n_markers)
            )

        # the largest holdings of the shown portfolio are placed first and never vanish: next to
        # their point (sides, then diagonals), over other markers if nowhere else; then the other
        # assets top to bottom, hidden when no side is free (their tooltip remains)
        weights = {}
        if self.result is not None:
            weights = {str(n): abs(float(wt)) for n, wt in zip(self.result.asset_names, self.result.weights)}
        top = {n for n, wt in sorted(weights.items(), key=lambda kv: -kv[1])[:5] if wt > 1e-6}
        order = sorted(range(len(labels)), key=lambda i: (labels[i][3] not in top, -weights.get(labels[i][3], 0.0), pts[i][1]))
        self.hidden_labels = []
        for leader in getattr(self, "_leaders", []):
            self.frontier_plot.getPlotItem().removeItem(leader)
        self._leaders = []
        for i in order:
            item, _, _, text = labels[i]
            X, Y = pts[i]
            br = item.textItem.boundingRect()  # the label's real box on screen, in pixels
            tw, th = br.width(), br.height()
            tries = [(LABEL_ANCHORS, False, 0.0)]
            if text in top:
                # no free side: a diagonal, then further out (1 to 4 label heights) with a leader
                # line to the point, and only then over other assets' markers (never other labels)
                far = [(DIAGONAL_ANCHORS + LABEL_ANCHORS[2:], k * th) for k in (1, 2, 3, 4)]
                tries += [(DIAGONAL_ANCHORS, False, 0.0)] + [(a, False, d) for a, d in far]
                tries += [(LABEL_ANCHORS + DIAGONAL_ANCHORS, True, 0.0)] + [(a, True, d) for a, d in far]
            placed = False
            for anchors, labels_only, dist in tries:
                for ax, ay in anchors:
                    # TextItem anchor (ax, ay) puts that fraction of the text box on the point
                    dx = dist * (1 if ax < 0.5 else -1 if ax > 0.5 else 0)
                    dy = dist * (1 if ay < 0.5 else -1 if ay > 0.5 else 0)
                    rect = (X + dx - ax * tw, Y + dy - ay * th, X + dx - ax * tw + tw, Y + dy - ay * th + th)
                    if free(rect, i, labels_only):
                        item.setAnchor((ax - dx / tw, ay - dy / th))
                        item.setVisible(True)
                        taken.append(rect)
                        placed = True
                        if dist:
                            cx, cy = X + dx, Y + dy  # the label's corner nearest its point
                            leader = pg.PlotCurveItem(
                                [x0 + X / sx, x0 + cx / sx],
                                [y1 - Y / sy, y1 - cy / sy],
                                pen=pg.mkPen(120, 120, 120, 200, width=1),
                            )
                            self.frontier_plot.getPlotItem().addItem(leader)
                            self._leaders.append(leader)
                        break
                if placed:
                    break
            if not placed:
                item.setVisible(False)
                self.hidden_labels.append(text)

    def _fill_tables(self) -> None:
        r, inp = self.result, self.run_inputs
        names = list(r.asset_names)
        rp = r.method == "risk_parity"
        budgets = None
        if rp:
            b = np.asarray(inp["parameters"].get("risk_budgets") or np.ones(len(names)), dtype=np.float64)
            budgets = b / b.sum()
        t = self.results
        t.setSortingEnabled(False)
        t.setRowCount(len(names))
        for i, name in enumerate(names):
            t.setItem(i, 0, QTableWidgetItem(name))
            t.setItem(i, 1, _NumberItem(float(r.weights[i]), pct(float(r.weights[i]))))
            t.setItem(i, 2, _NumberItem(float(r.risk_contributions[i]), pct(float(r.risk_contributions[i]))))
            if budgets is not None:
                t.setItem(i, 3, _NumberItem(float(budgets[i]), pct(float(budgets[i]))))
            else:
                t.setItem(i, 3, QTableWidgetItem(""))
        t.setColumnHidden(3, not rp)
        t.setSortingEnabled(True)  # re-sorts by the header's sort column (weight, descending, at first)

        p = inp["parameters"]
        period = f"{inp['start']} … {inp['end']}" if inp["synthetic"] is None else f"synthetic, seed {inp['synthetic']['seed']}"
        held = int(np.sum(np.abs(r.weights) > 1e-9))
        rows = [
            ("method", METHOD_LABEL.get(r.method, r.method)),
            ("expected return", pct(r.expected_return)),
            ("volatility", pct(r.volatility)),
            ("Sharpe ratio", f"{r.sharpe:.4f}" if math.isfinite(r.sharpe) else fmt(r.sharpe)),
            ("risk-free rate", pct(p["risk_free_rate"])),
            ("status", r.status),
            ("iterations", int(r.iterations)),
            ("assets held / given", f"{held} / {len(names)}"),
            ("data", period),
            ("price rows", int(inp["rows"])),
            ("returns / covariance", f"{p['returns']} / {p['covariance'].replace('_', '-')}"),
            ("backend", self.outcome.backend_name),
            ("time", f"{self.outcome.seconds * 1e3:.1f} ms"),
        ]
        if not rp:
            rows.insert(5, ("weight bounds", f"{pct(p['min_weight'], 1)} … {pct(p['max_weight'], 1)}"))
        self.stats.set_rows(rows)

    # ---- hover readout on the bar charts ----
    def readout(self, i: int) -> str:
        r = self.result
        if r is None or not 0 <= i < len(r.weights):
            return " "
        parts = [
            f"<b>{r.asset_names[i]}</b>",
            f"weight {pct(float(r.weights[i]))}",
            f"risk contribution {pct(float(r.risk_contributions[i]))}",
        ]
        if self.asset_returns is not None:
            parts += [
                f"alone: return {pct(float(self.asset_returns[i]))}",
                f"volatility {pct(float(self.asset_volatilities[i]))}",
            ]
        return "   ".join(parts)

    def result_parameters(self) -> dict:
        """Method and backend parameters of the shown result: optimize_portfolio(prices,
        method=p.pop("method"), parameters=p) reproduces it."""
        if self.result is None:
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
        if self.result is None:
            return []
        return [
            SessionItem(
                "portfolio",
                self.result,
                parameters=self.result_parameters(),
                inputs=self.result_inputs(),
                backend=self.outcome.backend_name,
                plots={"frontier": self.frontier_plot, "weights": self.weights_plot, "risk_contributions": self.risk_plot},
            )
        ]

    def default_export_name(self, kind: str) -> str:
        r = self.result
        return f"portfolio_{r.method}_{len(r.weights)}_assets.{kind}"
