"""Sweep tab: a mean-reversion parameter grid (lookback × entry × exit × stop × cost), in sample
and out of sample, run in-process, on the app's gRPC server or on a Ray cluster; a heat map
(e.g. out-of-sample Sharpe over lookback × entry) and a sortable table, exportable."""

from __future__ import annotations

import logging

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QLabel,
    QLineEdit,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from hft_lab.analysis.sweep import EXECUTORS, sweep
from hft_lab.cluster import COLUMNS
from hft_lab.cluster.sweep import PARAMS
from hft_lab.data import load_sample_prices
from hft_lab.data.export import SessionItem
from hft_lab.ui.plots import make_plot
from hft_lab.ui.views.base import AnalysisView, Param, Refused, note, refusable, via
from hft_lab.ui.views.sharded import ShardedRun
from hft_lab.ui.widgets import form_group, set_combo_items, spin
from hft_lab.ui.worker import TaskOutcome, TaskRunner

log = logging.getLogger("hft_lab.ui.sweep")

HEAT_METRICS = {
    "oos_sharpe": "Out-of-sample Sharpe",
    "is_sharpe": "In-sample Sharpe",
    "oos_total_return": "Out-of-sample total return",
    "oos_max_drawdown": "Out-of-sample max drawdown",
}
MAX_TABLE_ROWS = 20_000  # the table shows the first rows; the export has them all


class SweepView(ShardedRun, AnalysisView):
    TASK_NAME = "parameter sweep"
    EXPORT_NAME = "sweep"
    CSV_TIP = "One CSV table: the parameters and the in-sample / out-of-sample metrics of every grid point"

    def __init__(self, runner: TaskRunner, store=None, parent=None):
        super().__init__(runner, store, parent)
        self.prices: np.ndarray | None = None
        self._last: TaskOutcome | None = None
        self._build()
        self._fill_assets()

    # ---- layout ----
    def _build(self) -> None:
        data, df = form_group("Data")
        self.asset = QComboBox()
        df.addRow("Series", self.asset)

        grid, gf = form_group("Grid (lists a, b, c or ranges start:stop:step)")
        self.lookback = QLineEdit("10:60:10")
        self.entry = QLineEdit("1.0:2.5:0.5")
        self.exit = QLineEdit("0, 0.5")
        self.stop = QLineEdit("none")
        self.stop.setToolTip("Stop levels |z|; 'none' for no stop")
        self.cost = QLineEdit("0, 5")
        self.oos = spin(QDoubleSpinBox(), 0.0, 0.9, 0.3, step=0.05)
        self.oos.setToolTip("Fraction of the bars at the end kept out of sample (0: in-sample only)")
        self.periods = spin(QDoubleSpinBox(), 1.0, 10_000_000.0, 252.0)
        self.declare(
            gf,
            Param("lookback", self.lookback, "Lookback (bars)", read=self.lookback.text, in_params=False),
            Param("entry", self.entry, "Entry (z)", read=self.entry.text, in_params=False),
            Param("exit", self.exit, "Exit (z)", read=self.exit.text, in_params=False),
            Param("stop", self.stop, "Stop (z)", read=self.stop.text, in_params=False),
            Param("cost_bps", self.cost, "Cost (bps)", read=self.cost.text, in_params=False),
            Param("oos_fraction", self.oos, "Out of sample"),
            Param("periods_per_year", self.periods, "Bars per year", setting="periods"),
        )
        self.grid_size = QLabel("")
        gf.addRow(self.grid_size)

        exe, ef = form_group("Executor")
        self.declare_executor(ef, EXECUTORS, "the grid is")

        self.build_panel([data, grid, exe])
        self.add_shard_progress()

        self.heat_metric = QComboBox()
        for k, label in HEAT_METRICS.items():
            self.heat_metric.addItem(label, k)
        # the heat map's axes carry the parameter values as ticks
        self.heat = make_plot("Out-of-sample Sharpe", "entry (z)", legend=False, empty_text="Run a sweep to see its heat map.")
        self.heat.export_name = "sweep_heatmap"
        self.heat.getPlotItem().setLabel("bottom", "lookback (bars)")
        self.heat_img: pg.ImageItem | None = None
        heat_w = QWidget()
        hl = QVBoxLayout(heat_w)
        hl.addWidget(self.heat_metric)
        hl.addWidget(self.heat, 1)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSortingEnabled(True)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.best_label = QLabel("")
        self.best_label.setWordWrap(True)
        self.best_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result_tabs = QTabWidget()
        self.result_tabs.addTab(heat_w, "Heat map")
        self.result_tabs.addTab(self.table, "Table")
        right = QVBoxLayout()
        right.addWidget(self.result_tabs, 1)
        right.addWidget(self.best_label)
        right_w = QWidget()
        right_w.setLayout(right)
        self.set_main(right_w)

        for w in (self.lookback, self.entry, self.exit, self.stop, self.cost):
            w.textChanged.connect(self._update_grid_size)
        self.heat_metric.currentIndexChanged.connect(self._draw_heat)
        self.asset.currentIndexChanged.connect(self._load_series)
        if self.store is not None:
            self.store.changed.connect(self._fill_assets)
        self._update_grid_size()
        self.enable_export(False)

    # ---- data ----
    def _frame(self):
        return self.store.selected_prices() if self.store is not None else load_sample_prices().prices

    def _fill_assets(self) -> None:
        names: list[str] = []
        try:
            names = [str(a) for a in self._frame().columns]
        except (OSError, ValueError) as e:
            log.warning("dataset unavailable: %s", e)
        set_combo_items(self.asset, names)
        self._load_series()

    def _load_series(self) -> None:
        name = self.asset.currentText()
        if not name:
            self.prices = None
            return
        s = self._frame()[name].dropna()
        self.prices = np.ascontiguousarray(s.to_numpy(dtype=np.float64))

    def grid_text(self) -> dict[str, str]:
        return {
            "lookback": self.lookback.text(),
            "entry": self.entry.text(),
            "exit": self.exit.text(),
            "stop": self.stop.text(),
            "cost_bps": self.cost.text(),
        }

    def _update_grid_size(self) -> None:
        from hft_lab.cluster import grid_from_text

        try:
            n = len(grid_from_text(**self.grid_text()))
            self.grid_size.setText(f"{n:,} grid points")
            self.grid_size.setStyleSheet("")
        except ValueError as e:
            self.grid_size.setText(str(e))
            self.grid_size.setStyleSheet("color: #c62828;")

    # ---- run ----
    @refusable
    def run(self) -> int | None:
        if self.prices is None or self.prices.size == 0:
            raise Refused("No series to sweep.")
        p = self.params()
        executor = self.executor_args(p)
        return self.start(
            sweep,
            self.prices,
            self.grid_text(),
            **executor,
            oos_fraction=p["oos_fraction"],
            periods_per_year=p["periods_per_year"],
            done=self._done,
            status=f"Sweeping on {self.executor.currentText()}…",
        )

    def on_progress(self, payload) -> None:
        self.show_shard_progress(*payload)

    def _done(self, out: TaskOutcome) -> None:
        self.hide_progress()
        res = out.value
        self.result = res
        self._last = out
        self._fill_table()
        self._draw_heat()
        b = res.best("is_sharpe")
        if b >= 0:
            row = dict(zip(COLUMNS, res.table()[b]))
            stop = "none" if np.isnan(row["stop"]) else f"{row['stop']:g}"
            self.best_label.setText(
                f"Best in sample: lookback {int(row['lookback'])}, entry {row['entry']:g}, exit {row['exit']:g}, "
                f"stop {stop}, cost {row['cost_bps']:g} bps → IS Sharpe {row['is_sharpe']:.3f}, "
                f"out of sample Sharpe {row['oos_sharpe']:.3f}, total return {row['oos_total_return']:.2%}"
            )
        rep = res.report
        where = f", {len(rep.nodes)} node(s)" if rep is not None and res.executor == "ray" else ""
        secs = f" in {rep.wall_seconds:.2f} s" if rep is not None else ""
        on = via(out) if res.executor == "grpc" else f" on {self.executor.currentText()}"
        self.set_status(f"{len(res):,} grid points, {rep.shards if rep else 0} shards{where}{secs}{on}{note(out)}.")
        self.enable_export(True)

    def _fill_table(self) -> None:
        res = self.result
        t = res.table()
        n = min(len(t), MAX_TABLE_ROWS)
        self.table.setSortingEnabled(False)
        self.table.clearContents()
        self.table.setRowCount(n)
        for i in range(n):
            for j, v in enumerate(t[i]):
                it = QTableWidgetItem()
                if np.isnan(v):
                    it.setData(Qt.ItemDataRole.DisplayRole, "")
                elif COLUMNS[j] in ("lookback", "is_n_trades", "oos_n_trades"):
                    it.setData(Qt.ItemDataRole.DisplayRole, int(v))
                else:
                    it.setData(Qt.ItemDataRole.DisplayRole, float(f"{v:.6g}"))
                it.setToolTip(repr(float(v)))
                self.table.setItem(i, j, it)
        self.table.setSortingEnabled(True)
        self.table.resizeColumnsToContents()

    def _draw_heat(self) -> None:
        res = self.result
        hp = self.heat.getPlotItem()
        hp.clear()
        if res is None:
            return
        metric = self.heat_metric.currentData()
        xs, ys, z = res.heatmap(metric, "lookback", "entry", "max")
        self.heat_values = (xs, ys, z)
        finite = z[np.isfinite(z)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if hi <= lo:
            hi = lo + 1.0
        img = pg.ImageItem(np.where(np.isfinite(z), z, lo), axisOrder="row-major")
        img.setRect(QRectF(0, 0, xs.size, ys.size))
        hp.addItem(img)
        self.heat_img = img
        cmap = pg.colormap.get("viridis")
        img.setLookupTable(cmap.getLookupTable(nPts=256))
        img.setLevels((lo, hi))
        hp.getAxis("bottom").setTicks([[(i + 0.5, f"{int(x)}") for i, x in enumerate(xs)]])
        left = hp.getAxis("left")
        left.setTicks([[(i + 0.5, f"{y:g}") for i, y in enumerate(ys)]])
        hp.setXRange(0, xs.size, padding=0)
        hp.setYRange(0, ys.size, padding=0)
        hp.setTitle(f"{HEAT_METRICS[metric]} over lookback × entry (best over exit, stop, cost); dark {lo:.3g} → bright {hi:.3g}")
        if z.size <= 400:
            for i in range(xs.size):
                for j in range(ys.size):
                    v = z[j, i]
                    bright = np.isfinite(v) and (v - lo) / (hi - lo) > 0.6
                    ti = pg.TextItem("" if not np.isfinite(v) else f"{v:.2f}", color="k" if bright else "w", anchor=(0.5, 0.5))
                    ti.setPos(i + 0.5, j + 0.5)
                    hp.addItem(ti)

    # ---- export ----
    def session_items(self) -> list[SessionItem]:
        if self.result is None:
            return []
        params = dict(self.params())
        params.update(self.grid_text())
        return [
            SessionItem(
                "sweep",
                self.result.export_fields(),
                parameters=params,
                inputs={"series": self.asset.currentText(), "n": int(self.result.n_bars)},
                backend=self._last.backend_name if self._last is not None else "",
                plots={"heatmap": self.heat},
            )
        ]

    PARAMS = PARAMS  # the grid's parameter names (lookback, entry, exit, stop, cost_bps)
