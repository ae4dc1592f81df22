"""Scan tab (issue 17, executor choice of issue 18): the statistical-arbitrage research workflow
on the active dataset — every pair of the chosen assets tested (Engle-Granger, statsmodels
`coint`), Benjamini-Hochberg q-values, a sortable ranking and a heat map of the p-values; filters
re-applied to the finished scan without running it again; one pair's spread with bands and its
OLS and Kalman hedge ratios, sent to Mean Reversion with its hedge ratio; and the walk-forward
(pairs chosen on each formation window only, traded on the next window with costs) against the
in-sample equity of the same rule. The scan runs on the app's backend, in-process, on the gRPC
server or on a Ray cluster (progress per finished shard, Cancel stops the remaining shards)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from hft_lab.analysis.pairs import EXECUTORS, pair_detail, refilter, scan, walk_forward
from hft_lab.ui.plots import date_of
from hft_lab.ui.views.base import AnalysisView, Param, Refused, note, refusable, via
from hft_lab.ui.views.scan_data import ScanData, asset_list
from hft_lab.ui.views.scan_plots import ScanPlots
from hft_lab.ui.views.sharded import ShardedRun
from hft_lab.ui.widgets import form_group, spin
from hft_lab.ui.worker import TaskOutcome, TaskRunner

log = logging.getLogger("hft_lab.ui.scan")


def optional(box, checked: bool, label: str) -> tuple[QCheckBox, QWidget]:
    """A check box that switches a spin box on (the value is used) or off (None)."""
    cb = QCheckBox(label)
    cb.setChecked(checked)
    box.setEnabled(checked)
    cb.toggled.connect(box.setEnabled)
    row = QWidget()
    lay = QHBoxLayout(row)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(cb)
    lay.addWidget(box, 1)
    return cb, row


class ScanView(ScanData, ScanPlots, ShardedRun, AnalysisView):
    send_spread = Signal(str, object)  # (name, payload): trade the pair in Mean Reversion
    detail_shown = Signal(object)  # TaskOutcome of a pair detail or a re-filter (GUI thread)

    TASK_NAME = "pairs scan"
    EXPORT_NAME = "pairs_scan"
    CSV_TIP = "CSV tables: the ranking, the p-value matrix, and the walk-forward (curves, windows, pairs chosen)"
    JSON_TIP = "The scan and the walk-forward results with their parameters and inputs"

    def __init__(self, runner: TaskRunner, store=None, parent=None):
        super().__init__(runner, store, parent)
        self.scan_result = None  # analysis.pairs.PairScan on show
        self.wf = None  # WalkForwardResult on show
        self.detail = None  # analysis.pairs.PairDetail on show
        self._last: TaskOutcome | None = None
        self._scan_dates: np.ndarray | None = None
        self._wf_dates: np.ndarray | None = None
        self._scan_pending: np.ndarray | None = None
        self._wf_pending: tuple = (None, {})
        self._wf_params: dict = {}
        self._wf_backend = ""
        # quick tasks (re-filter, a pair's Kalman hedge) run beside a long scan or walk-forward
        self.aux = TaskRunner(runner.router, self)
        self.aux.finished.connect(self._aux_finished)
        self._aux_done: dict[int, Callable[[TaskOutcome], None]] = {}
        self._build()
        self.fill_assets()

    # ---- layout ----
    def _build(self) -> None:
        uni = QGroupBox("Universe (active dataset)")
        ul = QVBoxLayout(uni)
        self.universe_label = QLabel("")
        self.universe_label.setWordWrap(True)
        self.assets = asset_list()
        all_b, none_b = QPushButton("All"), QPushButton("None")
        all_b.clicked.connect(lambda: self.set_checked(None, True))
        none_b.clicked.connect(lambda: self.set_checked(None, False))
        row = QHBoxLayout()
        row.addWidget(all_b)
        row.addWidget(none_b)
        ul.addWidget(self.universe_label)
        ul.addWidget(self.assets, 1)
        ul.addLayout(row)

        sg, sf = form_group("Scan")
        self.method = QComboBox()
        self.method.addItem("Engle-Granger (statsmodels coint)", "engle_granger")
        self.trend = QComboBox()
        self.trend.addItem("c (constant)", "c")
        self.autolag = QComboBox()
        for a in ("none", "aic", "bic", "t-stat"):
            self.autolag.addItem(a, a)
        self.max_lag = spin(QSpinBox(), -1, 1000, 0)
        self.max_lag.setSpecialValueText("default")
        self.max_lag.setToolTip("ADF lags (the maximum with autolag); default: statsmodels' 12·(n/100)^¼")
        self.declare(
            sf,
            Param("method", self.method, "Method", in_params=False),
            Param("trend", self.trend, "Trend"),
            Param("autolag", self.autolag, "Autolag"),
            Param("max_lag", self.max_lag, "Max lag", read=lambda: None if self.max_lag.value() < 0 else self.max_lag.value()),
        )

        fg, ff = form_group("Filters (applied without scanning again)")
        self.max_p = spin(QDoubleSpinBox(), 0.0, 1.0, 0.05, step=0.01, decimals=4)
        self.max_q = spin(QDoubleSpinBox(), 0.0, 1.0, 0.05, step=0.01, decimals=4)
        self.min_hl = spin(QDoubleSpinBox(), 0.0, 1e6, 1.0, decimals=2)
        self.max_hl = spin(QDoubleSpinBox(), 0.0, 1e6, 252.0, decimals=2)
        self.min_corr = spin(QDoubleSpinBox(), -1.0, 1.0, 0.5, step=0.05, decimals=3)
        self.top = spin(QSpinBox(), 0, 10_000_000, 100)
        self.top.setSpecialValueText("all")
        self.filter_checks = {}
        for key, box, on, label in (
            ("max_pvalue", self.max_p, True, "p ≤"),
            ("max_qvalue", self.max_q, False, "q ≤"),
            ("min_half_life", self.min_hl, False, "half-life ≥"),
            ("max_half_life", self.max_hl, False, "half-life ≤"),
            ("min_correlation", self.min_corr, False, "corr ≥"),
        ):
            cb, w = optional(box, on, label)
            self.filter_checks[key] = cb
            self.declare(ff, Param(f"use_{key}", cb, None, in_params=False), Param(key, box, None, in_params=False))
            ff.addRow(w)
            cb.toggled.connect(self._filters_changed)
            box.valueChanged.connect(self._filters_changed)
        self.declare(ff, Param("top", self.top, "Show the best", in_params=False))
        self.top.valueChanged.connect(self._filters_changed)

        eg, ef = form_group("Executor")
        self.declare_executor(ef, EXECUTORS, "the pairs are")

        pg_, pf = form_group("Pair")
        self.band = spin(QDoubleSpinBox(), 0.1, 100.0, 2.0, step=0.25)
        self.delta = spin(QDoubleSpinBox(), 1e-8, 0.5, 1e-4, decimals=8, step=1e-4)
        self.obs_var = spin(QDoubleSpinBox(), 1e-8, 1e6, 1e-3, decimals=8, step=1e-3)
        self.declare(
            pf,
            Param("band", self.band, "Bands (± z)", in_params=False),
            Param("delta", self.delta, "Kalman δ", in_params=False),
            Param("observation_var", self.obs_var, "Kalman obs. var", in_params=False),
        )

        wg, wf = form_group("Walk-forward")
        self.formation = spin(QSpinBox(), 10, 10_000_000, 504, step=21)
        self.trading = spin(QSpinBox(), 1, 10_000_000, 126, step=21)
        self.step = spin(QSpinBox(), 0, 10_000_000, 0, step=21)
        self.step.setSpecialValueText("= trading")
        self.entry = spin(QDoubleSpinBox(), 0.01, 100.0, 2.0, step=0.25)
        self.exit = spin(QDoubleSpinBox(), -100.0, 100.0, 0.0, step=0.25)
        self.stop = spin(QDoubleSpinBox(), 0.02, 1000.0, 4.0, step=0.5)
        stop_cb, stop_row = optional(self.stop, False, "stop |z| >")
        self.use_stop = stop_cb
        self.cost = spin(QDoubleSpinBox(), 0.0, 10_000.0, 5.0)
        self.cost.setSuffix(" bps")
        self.hedge = QComboBox()
        self.hedge.addItem("OLS (fixed at formation)", "ols")
        self.hedge.addItem("Kalman (forward filter)", "kalman")
        self.max_pairs = spin(QSpinBox(), 1, 10_000, 5)
        self.declare(
            wf,
            Param("formation", self.formation, "Formation (bars)", in_params=False),
            Param("trading", self.trading, "Trading (bars)", in_params=False),
            Param("step", self.step, "Step (bars)", in_params=False),
            Param("entry", self.entry, "Entry (z)", in_params=False),
            Param("exit", self.exit, "Exit (z)", in_params=False),
            Param("use_stop", stop_cb, None, in_params=False),
            Param("stop", self.stop, None, in_params=False),
            Param("cost_bps", self.cost, "Cost", in_params=False),
            Param("hedge", self.hedge, "Hedge", in_params=False),
            Param("max_pairs", self.max_pairs, "Pairs per window", in_params=False),
        )
        wf.addRow(stop_row)
        self.wf_button = QPushButton("Run walk-forward")
        self.wf_button.setToolTip(
            "Choose pairs on each formation window only (scan options and filters above), trade the next window"
        )
        wf.addRow(self.wf_button)

        self.build_panel([(uni, 1), sg, fg, eg, pg_, wg], width=370)
        self.run_button.setText("Run scan")
        self.add_shard_progress()
        self.set_main(self.build_results())

        self.wf_button.clicked.connect(lambda: self.run_walk_forward())
        self.trade_button.clicked.connect(self.trade)
        self.table.cellClicked.connect(self._pair_clicked)
        self.assets.itemChanged.connect(lambda _it: self.update_universe_label())
        if self.store is not None:
            self.store.changed.connect(self._on_store_changed)
        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(200)
        self._filter_timer.timeout.connect(self.apply_filters)
        self.track_hover(self.spread_plot, self._pair_readout)
        self.track_hover(self.equity_plot, self._wf_readout)
        self._heat_proxy = pg.SignalProxy(self.heat.scene().sigMouseMoved, rateLimit=30, slot=self._heat_moved)
        self.enable_export(False)

    def update_buttons(self) -> None:
        super().update_buttons()
        if hasattr(self, "wf_button"):
            self.wf_button.setEnabled(not self.running)

    # ---- data ----
    def _on_store_changed(self) -> None:
        """A new dataset or selection: new asset list; results of the old data are cleared."""
        had = self.scan_result is not None or self.wf is not None
        if self.running:
            self.abandon()
        self.fill_assets()
        self.clear_results()
        gone = "; the previous results were cleared (they belong to the old data)" if had else ""
        self.set_status(f"Active dataset changed: {self.store.describe()}{gone}. Press Run scan.")

    def clear_results(self) -> None:
        self.scan_result = self.wf = self.detail = None
        self.table.setRowCount(0)
        self.window_table.setRowCount(0)
        for p in (self.heat, self.spread_plot, self.kalman_plot, self.hedge_plot, self.equity_plot, self.dd_plot):
            p.clear()
        self.heat_img = None
        self.trade_button.setEnabled(False)
        self.pair_label.setText("Click a pair in the ranking table.")
        self.wf_label.setText("")
        self.enable_export(False)

    def filters(self) -> dict:
        f: dict = {k: (box.value() if self.filter_checks[k].isChecked() else None) for k, box in self._filter_boxes().items()}
        f["top"] = self.top.value() or None
        return f

    def _filter_boxes(self) -> dict:
        return {
            "max_pvalue": self.max_p,
            "max_qvalue": self.max_q,
            "min_half_life": self.min_hl,
            "max_half_life": self.max_hl,
            "min_correlation": self.min_corr,
        }

    # ---- scan ----
    def universe_or_refuse(self) -> tuple[np.ndarray, list[str], np.ndarray | None]:
        """The universe; `Refused` saying why there is none."""
        try:
            return self.universe()
        except (OSError, ValueError) as e:
            raise Refused(str(e)) from e

    @refusable
    def run(self) -> int | None:
        prices, names, dates = self.universe_or_refuse()
        p = self.params()
        executor = self.executor_args(p)
        self._scan_pending = dates  # the shown result keeps its own dates until this one arrives
        n = len(names)
        return self.start(
            scan,
            prices,
            names,
            trend=p["trend"],
            autolag=p["autolag"],
            max_lag=p["max_lag"],
            filters=self.filters(),
            **executor,
            done=self._scan_done,
            status=f"Scanning {n * (n - 1) // 2:,} pairs on {self.executor.currentText()}…",
        )

    def on_progress(self, payload) -> None:
        if isinstance(payload, tuple):  # the scan: (shards done, shards)
            self.show_shard_progress(*payload)
            return
        bar = self.progress_bar  # the walk-forward: the fraction of its windows done
        bar.setFormat("%p % of the windows")
        bar.setRange(0, 1000)
        bar.setValue(int(round(1000 * float(payload))))
        bar.setVisible(True)

    def _scan_done(self, out: TaskOutcome) -> None:
        self.hide_progress()
        self._last = out
        self.scan_result = out.value
        self._scan_dates = self._scan_pending
        self.detail = None
        self.trade_button.setEnabled(False)
        for p in (self.spread_plot, self.kalman_plot, self.hedge_plot):
            p.clear()
        self.pair_label.setText("Click a pair in the ranking table.")
        self.fill_ranking()
        self.draw_heat()
        self.result_tabs.setCurrentIndex(0)
        s = self.scan_result
        rep = s.report
        secs = f" in {rep.wall_seconds:.2f} s" if rep is not None else ""
        where = f", {len(rep.nodes)} node(s)" if rep is not None and s.executor == "ray" else ""
        on = via(out) if self.executor.currentData() == "backend" else f" on {self.executor.currentText()}"
        self.set_status(f"{self._summary()}; {s.shards} shard(s){where}{secs}{on}{note(out)}.")
        self.enable_export(True)

    def _summary(self) -> str:
        r = self.scan_result.result
        failed = f", {r.n_failed:,} failed" if r.n_failed else ""
        shown = f", the best {len(r):,} shown" if len(r) < r.n_passed else ""
        return f"{r.n_tested:,} pairs tested{failed}, {r.n_passed:,} pass the filters{shown}"

    def _filters_changed(self, *_) -> None:
        if self.scan_result is not None:
            self._filter_timer.start()

    def apply_filters(self) -> int | None:
        """Re-filter the scan on show (no new scan)."""
        if self.scan_result is None:
            return None
        tid = self.aux.start(refilter, self.scan_result, self.filters())
        self._aux_done = {tid: self._refiltered}
        return tid

    def _refiltered(self, out: TaskOutcome) -> None:
        self.scan_result = out.value
        self.fill_ranking()
        self.set_status(f"{self._summary()} (filters re-applied, no new scan).")

    def _aux_finished(self, out: TaskOutcome) -> None:
        done = self._aux_done.pop(out.task_id, None)
        if done is None:
            return
        if out.ok:
            done(out)
        else:
            self.show_failure(out)
        self.detail_shown.emit(out)

    # ---- one pair ----
    def _pair_clicked(self, row: int, _col: int = 0) -> None:
        self.show_pair(self.table_row_index(row))

    def show_pair(self, k: int) -> int | None:
        """Show result row `k` (0 = best): the spread, the Kalman hedge (backend.kalman_hedge)."""
        if self.scan_result is None:
            return None
        s = self.scan_result
        r = s.result
        i, j = int(r.i[k]), int(r.j[k])
        self.pair_label.setText(f"{r.asset_names[i]} / {r.asset_names[j]}: computing the Kalman hedge…")
        tid = self.aux.start(
            pair_detail,
            s.prices,
            s.asset_names,
            i,
            j,
            float(r.hedge_ratio[k]),
            float(r.intercept[k]),
            delta=self.delta.value(),
            observation_var=self.obs_var.value(),
        )
        self._aux_done = {tid: functools.partial(self._pair_done, k=k)}
        self.result_tabs.setCurrentIndex(1)
        return tid

    def _pair_done(self, out: TaskOutcome, k: int) -> None:
        d = out.value
        self.detail = d
        r = self.scan_result.result
        self.draw_pair(d, self.band.value(), self._scan_dates)
        self.pair_label.setText(
            f"<b>{d.name}</b>: p = {r.pvalue[k]:.4g}, q = {r.qvalue[k]:.4g}, half-life {r.half_life[k]:.4g} bars, "
            f"Hurst {r.hurst[k]:.3f}, return correlation {r.correlation[k]:.3f}; Kalman (δ {d.kalman.delta:g}){via(out)}"
        )
        self.trade_button.setEnabled(True)

    def trade(self) -> None:
        """Send the pair's spread (with its hedge ratio) to the Mean Reversion tab."""
        if self.detail is not None:
            self.send_spread.emit(self.detail.name, self.detail.trade_payload(self._scan_dates))

    def _pair_readout(self, x: float) -> str | None:
        d = self.detail
        t = int(round(x))
        if d is None or not 0 <= t < len(d.spread):
            return None
        when = f"bar {t}" if self._scan_dates is None else date_of(self._scan_dates, t)
        return f"{when}: spread {d.spread[t]:.4g}, Kalman spread {d.kalman.spread[t]:.4g}, Kalman β {d.kalman.hedge_ratio[t]:.4g}"

    def _heat_moved(self, ev) -> None:
        pos = ev[0]
        if self.heat.sceneBoundingRect().contains(pos):
            pt = self.heat.getPlotItem().vb.mapSceneToView(pos)
            text = self.heat_readout(pt.x(), pt.y())
            if text is not None:
                self.hover.setText(text)

    # ---- walk-forward ----
    def walk_forward_params(self) -> dict:
        return dict(
            formation=self.formation.value(),
            trading=self.trading.value(),
            step=self.step.value() or None,
            hedge=self.hedge.currentData(),
            delta=self.delta.value(),
            observation_var=self.obs_var.value(),
            entry=self.entry.value(),
            exit=self.exit.value(),
            stop=self.stop.value() if self.use_stop.isChecked() else None,
            cost_bps=self.cost.value(),
            max_pairs=self.max_pairs.value(),
        )

    def selection(self) -> dict:
        """The formation windows' pair choice: the scan options and the filters (not `top`)."""
        p = self.params()
        f = {k: v for k, v in self.filters().items() if k != "top" and v is not None}
        return {"trend": p["trend"], "autolag": p["autolag"], "max_lag": p["max_lag"], "max_pvalue": 1.0, **f}

    @refusable
    def run_walk_forward(self) -> int | None:
        prices, names, dates = self.universe_or_refuse()
        params = self.walk_forward_params()
        sel = self.selection()
        self._wf_pending = (dates, {**params, "selection": sel})
        self.on_progress(0.0)
        return self.start(
            walk_forward,
            prices,
            names,
            selection=sel,
            **params,
            done=self._wf_done,
            status=f"Walk-forward on {len(names)} assets…",
        )

    def _wf_done(self, out: TaskOutcome) -> None:
        self.hide_progress()
        self.wf = out.value
        self._wf_dates, self._wf_params = self._wf_pending
        self._wf_backend = out.backend_name
        self.draw_walk_forward(self.wf, self._wf_dates)
        self.result_tabs.setCurrentIndex(2)
        w = self.wf
        n = len(w.pnl)
        oos, is_ = float(w.oos_equity[-1]) - 1, float(w.is_equity[-1]) - 1
        self.wf_label.setText(
            f"{n} windows, {int(np.sum(w.trades))} trades, costs {float(np.sum(w.costs)):.4g}: out of sample "
            f"{oos:+.2%} (max drawdown {float(np.min(w.oos_drawdown)):.2%}) vs in sample {is_:+.2%} "
            f"(max drawdown {float(np.min(w.is_drawdown)):.2%})"
        )
        self.set_status(f"Walk-forward: {n} windows{via(out)}{note(out)} in {out.seconds:.2f} s.")
        self.enable_export(True)

    def _wf_readout(self, x: float) -> str | None:
        w = self.wf
        t = int(round(x))
        if w is None or not 0 <= t < len(w.oos_equity):
            return None
        return f"bar {t}: out of sample {w.oos_equity[t]:.4f} (dd {w.oos_drawdown[t]:.2%}), in sample {w.is_equity[t]:.4f}"
