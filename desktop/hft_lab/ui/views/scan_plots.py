"""Scan tab: the result side — the ranking table, the heat map of pairwise p-values, one pair's
spread and hedge ratios, the walk-forward charts and per-window table."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from hft_lab.analysis.pairs import TABLE_COLUMNS, WINDOW_COLUMNS, ranking_columns, window_columns
from hft_lab.ui.plots import BarAxis, PercentAxis, make_plot, pen

HEADERS = {
    "asset_y": "y (asset i)",
    "asset_x": "x (asset j)",
    "hedge_ratio": "hedge ratio β",
    "intercept": "intercept",
    "statistic": "ADF stat",
    "pvalue": "p-value",
    "qvalue": "q-value",
    "half_life": "half-life",
    "hurst": "Hurst",
    "correlation": "corr (returns)",
    "used_lag": "lags",
}
MAX_TABLE_ROWS = 20_000  # the table shows the best rows; the export has them all
HEAT_MAX_P = 0.25  # the heat map's colour scale: p from 0 (bright) to this (dark)
MAX_HEAT_ASSETS = 400  # a larger p-value matrix is drawn without per-asset tick labels


class _Cell(QTableWidgetItem):
    """A cell that sorts by its exact value (numbers as numbers, NaN after every number), shown
    with 6 significant digits (the full value in the tooltip)."""

    def __init__(self, v) -> None:
        super().__init__()
        if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
            self.key: object = float(v)
            self.setData(Qt.ItemDataRole.DisplayRole, int(v))
        elif isinstance(v, (float, np.floating)):
            f = float(v)
            self.key = f
            self.setText(f"{f:.6g}" if np.isfinite(f) else ("" if np.isnan(f) else str(f)))
            self.setToolTip(repr(f))
        else:
            self.key = str(v)
            self.setText(str(v))
        self.setTextAlignment(
            (Qt.AlignmentFlag.AlignRight if isinstance(self.key, float) else Qt.AlignmentFlag.AlignLeft)
            | Qt.AlignmentFlag.AlignVCenter
        )

    def __lt__(self, other) -> bool:  # noqa: D105 (Qt's sort order)
        a, b = self.key, getattr(other, "key", None)
        if isinstance(a, float) and isinstance(b, float):
            if np.isnan(a) or np.isnan(b):
                return not np.isnan(a) and np.isnan(b)
            return a < b
        return str(a) < str(b)


def _item(v) -> QTableWidgetItem:
    return _Cell(v)


def _table(columns, headers) -> QTableWidget:
    t = QTableWidget(0, len(columns))
    t.setHorizontalHeaderLabels([headers.get(c, c) for c in columns])
    t.setSortingEnabled(True)
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    t.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    t.verticalHeader().setVisible(False)
    return t


def fill_table(t: QTableWidget, cols: dict, order, limit: int = MAX_TABLE_ROWS, key=None) -> None:
    """Rows of the column arrays `cols` (in `order`); `key` (an array) is stored in each row's
    first cell as UserRole (e.g. the row's index in the result, which survives sorting)."""
    n = min(len(cols[order[0]]), limit)
    t.setSortingEnabled(False)
    t.clearContents()
    t.setRowCount(n)
    for r in range(n):
        for c, name in enumerate(order):
            it = _item(cols[name][r])
            if c == 0 and key is not None:
                it.setData(Qt.ItemDataRole.UserRole, int(key[r]))
            t.setItem(r, c, it)
    t.setSortingEnabled(True)
    t.resizeColumnsToContents()


class ScanPlots:
    """Part of ScanView (mixed in): builds self.result_tabs and draws results."""

    scan_result: Any  # analysis.pairs.PairScan on show (set by ScanView)

    def build_results(self) -> QTabWidget:
        # ranking: table | heat map
        self.table = _table(TABLE_COLUMNS, HEADERS)
        self.table.setToolTip("Click a pair to see its spread and hedge ratios (tab Pair)")
        self._sorted_by_user = False
        self.table.horizontalHeader().sectionClicked.connect(lambda _c: setattr(self, "_sorted_by_user", True))
        self.heat = make_plot(
            "p-values of every pair", "", legend=False, empty_text="Run a scan to see the p-values of every pair."
        )
        self.heat.export_name = "pairs_pvalue_heatmap"
        self.heat.setMinimumWidth(280)
        self.heat_img: pg.ImageItem | None = None
        rank = QSplitter(Qt.Orientation.Horizontal)
        rank.addWidget(self.table)
        rank.addWidget(self.heat)
        rank.setSizes([560, 480])

        # pair: spread with bands, Kalman spread, hedge ratios
        self.pair_axes = [BarAxis() for _ in range(3)]
        self.pair_label = QLabel("Click a pair in the ranking table.")
        self.pair_label.setWordWrap(True)
        self.pair_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.trade_button = QPushButton("Trade in Mean Reversion")
        self.trade_button.setToolTip("Send this pair's OLS spread y − β·x − c (and its hedge ratio) to the Mean Reversion tab")
        self.trade_button.setEnabled(False)
        top = QHBoxLayout()
        top.addWidget(self.pair_label, 1)
        top.addWidget(self.trade_button)
        self.spread_plot = make_plot("OLS spread y − β·x − c, mean ± entry·σ", "spread", axisItems={"bottom": self.pair_axes[0]})
        self.spread_plot.export_name = "pair_spread"
        self.kalman_plot = make_plot(
            "Kalman spread (one-step prediction error) ± entry·predicted σ", "spread", axisItems={"bottom": self.pair_axes[1]}
        )
        self.kalman_plot.export_name = "pair_kalman_spread"
        self.hedge_plot = make_plot(
            "Hedge ratio: OLS (whole sample) and Kalman (forward filter)", "β", axisItems={"bottom": self.pair_axes[2]}
        )
        self.hedge_plot.export_name = "pair_hedge_ratio"
        for p in (self.kalman_plot, self.hedge_plot):
            p.setXLink(self.spread_plot)
        pair_split = QSplitter(Qt.Orientation.Vertical)
        for p in (self.spread_plot, self.kalman_plot, self.hedge_plot):
            pair_split.addWidget(p)
        pair_w = QWidget()
        pl = QVBoxLayout(pair_w)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.addLayout(top)
        pl.addWidget(pair_split, 1)

        # walk-forward: equity, drawdown, per-window table
        self.wf_axes = [BarAxis() for _ in range(2)]
        self.equity_plot = make_plot(
            "Equity: out of sample (walk-forward) vs in sample (look-ahead)", "equity", axisItems={"bottom": self.wf_axes[0]}
        )
        self.equity_plot.export_name = "walk_forward_equity"
        self.dd_plot = make_plot("Drawdown", "drawdown", axisItems={"bottom": self.wf_axes[1], "left": PercentAxis("left")})
        self.dd_plot.export_name = "walk_forward_drawdown"
        self.dd_plot.setXLink(self.equity_plot)
        self.window_table = _table(("trading_from", "trading_to", *WINDOW_COLUMNS, "pairs"), {})
        self.window_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.window_table.horizontalHeader().setSortIndicator(0, Qt.SortOrder.AscendingOrder)
        self.wf_label = QLabel("")
        self.wf_label.setWordWrap(True)
        self.wf_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        wf_split = QSplitter(Qt.Orientation.Vertical)
        wf_split.addWidget(self.equity_plot)
        wf_split.addWidget(self.dd_plot)
        wf_split.addWidget(self.window_table)
        wf_split.setSizes([400, 200, 220])
        wf_w = QWidget()
        wl = QVBoxLayout(wf_w)
        wl.setContentsMargins(0, 0, 0, 0)
        wl.addWidget(self.wf_label)
        wl.addWidget(wf_split, 1)

        self.result_tabs = QTabWidget()
        self.result_tabs.addTab(rank, "Ranking")
        self.result_tabs.addTab(pair_w, "Pair")
        self.result_tabs.addTab(wf_w, "Walk-forward")
        return self.result_tabs

    # ---- ranking ----
    def fill_ranking(self) -> None:
        res = self.scan_result.result
        if not self._sorted_by_user:  # the ranking: best (smallest p-value) first
            self.table.horizontalHeader().setSortIndicator(TABLE_COLUMNS.index("pvalue"), Qt.SortOrder.AscendingOrder)
        fill_table(self.table, ranking_columns(res), TABLE_COLUMNS, key=np.arange(len(res)))

    def table_row_index(self, row: int) -> int:
        """The result row (0 = best) shown in table row `row` (after any sorting)."""
        it = self.table.item(row, 0)
        if it is None:
            raise IndexError(f"no row {row} in the ranking table")
        return int(it.data(Qt.ItemDataRole.UserRole))

    def draw_heat(self) -> None:
        hp = self.heat.getPlotItem()
        hp.clear()
        self.heat_img = None
        if self.scan_result is None:
            return
        res = self.scan_result.result
        m = np.asarray(res.pvalue_matrix, dtype=np.float64)
        n = m.shape[0]
        # symmetric for display (the core fills i < j); the diagonal stays empty (NaN → white)
        z = np.where(np.isfinite(m), m, m.T)
        img = pg.ImageItem(np.where(np.isfinite(z), z, 1.0), axisOrder="row-major")
        img.setRect(QRectF(0, 0, n, n))
        cmap = pg.colormap.get("viridis")
        img.setLookupTable(cmap.getLookupTable(nPts=256)[::-1])  # bright = small p-value
        img.setLevels((0.0, HEAT_MAX_P))  # the interesting range; larger p-values are all dark
        hp.addItem(img)
        self.heat_img = img
        self.heat_values = z
        names = list(res.asset_names)
        if n <= MAX_HEAT_ASSETS:  # as many names as fit (the hover line names every cell)
            ticks = [(k + 0.5, names[k]) for k in range(n)]
            w, h = max(self.heat.width() - 80, 100), max(self.heat.height() - 80, 100)
            wide = max(len(a) for a in names) * 7 + 8
            hp.getAxis("bottom").setTicks([ticks[:: max(1, math.ceil(n * wide / w))]])
            hp.getAxis("left").setTicks([ticks[:: max(1, math.ceil(n * 16 / h))]])
        hp.getViewBox().invertY(True)
        hp.setXRange(0, n, padding=0)
        hp.setYRange(0, n, padding=0)
        hp.setTitle(f"p-values (bright 0, dark ≥ {HEAT_MAX_P:g})", size="10pt")

    def heat_readout(self, x: float, y: float) -> str | None:
        if self.heat_img is None:
            return None
        n = self.heat_values.shape[0]
        i, j = int(np.floor(y)), int(np.floor(x))
        if not (0 <= i < n and 0 <= j < n) or i == j:
            return None
        names = self.scan_result.result.asset_names
        return f"{names[i]} / {names[j]}: p = {self.heat_values[i, j]:.4g}"

    # ---- pair ----
    def draw_pair(self, d, entry: float, dates) -> None:
        for ax in self.pair_axes:
            ax.dates = dates
        for p in (self.spread_plot, self.kalman_plot, self.hedge_plot):
            p.clear()
        n = len(d.spread)
        t = np.arange(n, dtype=np.float64)
        sp = self.spread_plot
        sp.plot(t, d.spread, pen=pen("price"), name="spread")
        mu, sd = d.spread_mean, d.spread_std
        for level, name, kind in (
            (mu, "mean", "mean"),
            (mu + entry * sd, f"+{entry:g}σ", "threshold"),
            (mu - entry * sd, f"−{entry:g}σ", "threshold"),
        ):
            sp.plot(t[[0, -1]], np.array([level, level]), pen=pen(kind, style=Qt.PenStyle.DashLine), name=name)
        k = d.kalman
        kp = self.kalman_plot
        kp.plot(t, k.spread, pen=pen("z"), name="Kalman spread")
        kp.plot(t, entry * k.spread_std, pen=pen("threshold", style=Qt.PenStyle.DashLine), name=f"+{entry:g}·σ_t")
        kp.plot(t, -entry * k.spread_std, pen=pen("threshold", style=Qt.PenStyle.DashLine), name=f"−{entry:g}·σ_t")
        hp = self.hedge_plot
        hp.plot(
            t[[0, -1]], np.array([d.hedge_ratio, d.hedge_ratio]), pen=pen("threshold", 2), name=f"OLS β = {d.hedge_ratio:.4g}"
        )
        hp.plot(t, k.hedge_ratio, pen=pen("mean"), name="Kalman β_t")
        # the filter's first steps swing widely: show the part after its start-up
        skip = min(n - 1, max(20, n // 50))
        kb = np.asarray(k.hedge_ratio[skip:])
        kb = kb[np.isfinite(kb)]
        if kb.size:
            lo, hi = min(kb.min(), d.hedge_ratio), max(kb.max(), d.hedge_ratio)
            pad = 0.05 * (hi - lo or 1.0)
            hp.setYRange(lo - pad, hi + pad)

    # ---- walk-forward ----
    def draw_walk_forward(self, wf, dates) -> None:
        for ax in self.wf_axes:
            ax.dates = dates
        self.equity_plot.clear()
        self.dd_plot.clear()
        t = np.arange(len(wf.oos_equity), dtype=np.float64)
        self.equity_plot.plot(t, wf.oos_equity, pen=pen("long", 2), name="out of sample (walk-forward)")
        self.equity_plot.plot(t, wf.is_equity, pen=pen("exit", 1, Qt.PenStyle.DashLine), name="in sample (look-ahead)")
        first = int(wf.trading_start[0]) if len(wf.trading_start) else 0
        if first > 0:
            line = pg.InfiniteLine(first, angle=90, pen=pg.mkPen((150, 150, 150), style=Qt.PenStyle.DotLine))
            self.equity_plot.addItem(line)
        self.dd_plot.plot(t, wf.oos_drawdown, pen=pen("short"), name="out of sample")
        self.dd_plot.plot(t, wf.is_drawdown, pen=pen("exit", 1, Qt.PenStyle.DashLine), name="in sample")
        cols = window_columns(wf, dates)
        self.window_table.setColumnCount(len(cols))
        self.window_table.setHorizontalHeaderLabels(list(cols))
        fill_table(self.window_table, cols, tuple(cols))
