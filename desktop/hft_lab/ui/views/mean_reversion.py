"""Mean Reversion tab: rolling z-score with bands and trades, OU fit and half-life, backtest with
equity and drawdown, summary statistics, hover readout, and live replay through the stream API."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTabWidget,
)

from hft_lab.analysis.mean_reversion import analyse
from hft_lab.data import load_sample_prices, ou_series
from hft_lab.data.export import SessionItem
from hft_lab.ui.first_paint import FirstPaint
from hft_lab.ui.plots import BarAxis, LabPlot, PercentAxis, make_plot, pen
from hft_lab.ui.views.base import AnalysisView, ExportError, Param, note, via
from hft_lab.ui.views.mean_reversion_plots import MeanReversionPlots
from hft_lab.ui.widgets import StatsTable, fmt, form_group, spin
from hft_lab.ui.worker import TaskOutcome, TaskRunner

log = logging.getLogger("hft_lab.ui.mean_reversion")

SYNTHETIC = "Synthetic OU series"


class MeanReversionView(MeanReversionPlots, AnalysisView):
    replay_state = Signal(str)  # "running" / "paused" / "stopped" / "finished" / "error: …"

    MAX_MARKERS = 3000  # per kind; more would cost the GUI thread ~0.3 s per million points
    MAX_FILL_POINTS = 200_000

    TASK_NAME = "mean reversion"
    EXPORT_NAME = "mean_reversion"
    CSV_TIP = "One CSV file: date (or bar), price, rolling mean/std, z-score, bands, signal, position, equity, drawdown"

    def __init__(self, runner: TaskRunner, store=None, parent=None):
        super().__init__(runner, store, parent)
        self._last_outcome: TaskOutcome | None = None
        self.prices: np.ndarray = np.empty(0)  # the series loaded (empty until one is)
        self.dates: np.ndarray | None = None  # datetime64 per bar, or None (bar numbers)
        self.is_spread = False  # a spread (P&L backtest) rather than prices
        self.notional: np.ndarray | None = None
        self.ou: Any = None  # OUFit of the shown result
        self.bt: Any = None  # BacktestResult of the shown result (None: not run)
        self.markers_hidden = False
        self._stream: Any = None  # the live replay's MeanReversionStream
        self._replay_pos = 0
        self._replay_buf: dict[str, list[np.ndarray]] = {}
        self._build()
        self._load_series()

    # ---- layout ----
    def _build(self) -> None:
        data, df = form_group("Data")
        self.source = QComboBox()
        self._fill_sources()
        self.n_points = spin(QSpinBox(), 100, 10_000_000, 2000, step=1000)
        self.seed = spin(QSpinBox(), 0, 1_000_000, 0)
        df.addRow("Prices", self.source)
        df.addRow("Synthetic points", self.n_points)
        df.addRow("Synthetic seed", self.seed)

        sig, form = form_group("Signals")
        self.lookback = spin(QSpinBox(), 2, 100_000, 20)
        self.threshold = spin(QDoubleSpinBox(), 0.01, 100.0, 2.0, step=0.1)
        self.exit_threshold = spin(QDoubleSpinBox(), -100.0, 100.0, 0.0, step=0.1)
        self.use_stop = QCheckBox("stop at |z| >")
        self.stop = spin(QDoubleSpinBox(), 0.02, 1000.0, 4.0)
        self.stop.setEnabled(False)
        self.use_stop.toggled.connect(self.stop.setEnabled)
        stop_row = QHBoxLayout()
        stop_row.addWidget(self.use_stop)
        stop_row.addWidget(self.stop)
        self.declare(
            form,
            Param("lookback", self.lookback, "Lookback (bars)"),
            Param("threshold", self.threshold, "Entry threshold (z)"),
            Param("exit_threshold", self.exit_threshold, "Exit level (z)"),
            Param("use_stop", self.use_stop, None, in_params=False),
            Param(
                "stop_threshold",
                self.stop,
                None,
                setting="stop",
                read=lambda: self.stop.value() if self.use_stop.isChecked() else None,
            ),
        )
        form.addRow(stop_row)

        btg, bf = form_group("Backtest / OU")
        self.cost_bps = spin(QDoubleSpinBox(), 0.0, 1000.0, 1.0)
        self.cost_bps.setSuffix(" bps")
        self.periods = spin(QDoubleSpinBox(), 1.0, 10_000_000.0, 252.0)
        self.bars_per_day = spin(QDoubleSpinBox(), 0.001, 1_000_000.0, 1.0)
        self.declare(
            bf,
            Param("cost_bps", self.cost_bps, "Cost per turnover"),
            Param("periods_per_year", self.periods, "Bars per year", setting="periods"),
            Param("bars_per_day", self.bars_per_day, "Bars per day"),
        )

        live, lf = form_group("Live replay (streaming)")
        self.replay_speed = spin(QSpinBox(), 1, 10_000_000, 2000)
        self.replay_speed.setSuffix(" ticks/s")
        self.replay_start = QPushButton("Start")
        self.replay_pause = QPushButton("Pause")
        self.replay_stop = QPushButton("Stop")
        self.replay_pause.setEnabled(False)
        self.replay_stop.setEnabled(False)
        rb = QHBoxLayout()
        for b in (self.replay_start, self.replay_pause, self.replay_stop):
            rb.addWidget(b)
        self.replay_label = QLabel("")
        self.replay_label.setWordWrap(True)
        self.declare(lf, Param("replay_speed", self.replay_speed, "Speed", in_params=False))
        lf.addRow(rb)
        lf.addRow(self.replay_label)

        self.stats = StatsTable()
        self.build_panel([data, sig, btg, live])

        self.axes = [BarAxis() for _ in range(2)]  # + the equity and drawdown plots' when they are made
        self.price_plot = make_plot(
            "Price, rolling mean ± k·std, trades", "price", axisItems={"bottom": self.axes[0]}, empty_text="No series loaded."
        )
        self.z_plot = make_plot("z-score", "z", axisItems={"bottom": self.axes[1]})
        self.z_plot.setXLink(self.price_plot)
        top = QSplitter(Qt.Orientation.Vertical)
        top.addWidget(self.price_plot)
        top.addWidget(self.z_plot)
        top.setSizes([600, 300])
        # the equity and drawdown plots are on the second page, not shown at start: they are made
        # when first needed (page shown, `self.equity_plot`, a result drawn), at the latest once
        # the view has painted (issue 16: start-up); see _performance_plots
        self._perf = QSplitter(Qt.Orientation.Vertical)
        self._perf_plots: tuple[LabPlot, LabPlot] | None = None
        self.plot_tabs = QTabWidget()
        self.plot_tabs.addTab(top, "Signals")
        self.plot_tabs.addTab(self._perf, "Equity && drawdown")
        self.plot_tabs.addTab(self.stats, "Statistics")
        self.set_main(self.plot_tabs)
        self.plot_tabs.currentChanged.connect(lambda i: self._performance_plots() if i == 1 else None)
        FirstPaint(self, self._performance_plots)

        self.source.currentIndexChanged.connect(self._load_series)
        self.n_points.valueChanged.connect(self._load_series)
        self.seed.valueChanged.connect(self._load_series)
        if self.store is not None:
            self.store.changed.connect(self._on_store_changed)
        self.replay_start.clicked.connect(self.start_replay)
        self.replay_speed.valueChanged.connect(self._rebase_replay)
        self.replay_pause.clicked.connect(self.pause_replay)
        self.replay_stop.clicked.connect(self.stop_replay)
        self._replay_timer = QTimer(self)
        self._replay_timer.setInterval(16)
        self._replay_timer.timeout.connect(self._replay_step)
        for plot in (self.price_plot, self.z_plot):
            self.track_hover(plot, lambda x: self.readout(int(round(x))))

    # ---- data ----
    ACTIVE = "Active dataset: "

    def use_series(self, name: str, data) -> None:
        """Load a series from another tab as a data source: an array, or a sparse basket's
        `spread_payload()` (spread, dates, notional), which is backtested in P&L units."""
        if isinstance(data, dict):
            values = np.asarray(data["spread"], dtype=np.float64)
            self._external = (f"Sent: {name}", values, data.get("dates"), data.get("notional"), True)
        else:
            self._external = (f"Sent: {name}", np.asarray(data, dtype=np.float64), None, None, False)
        self._fill_sources()
        self.source.setCurrentIndex(1)  # the sent series comes right after the synthetic entry
        self._load_series()

    def _fill_sources(self) -> None:
        """Synthetic OU, a series sent from another tab, then one entry per asset of the active
        dataset (or of the bundled sample)."""
        current = self.source.currentText()
        self.source.blockSignals(True)
        self.source.clear()
        self.source.addItem(SYNTHETIC)
        if getattr(self, "_external", None) is not None:
            self.source.addItem(self._external[0])
        try:
            if self.store is not None:
                for a in self.store.assets:  # the columns of selected_prices(), without building it
                    self.source.addItem(f"{self.ACTIVE}{a}")
            else:
                for a in load_sample_prices().assets:
                    self.source.addItem(f"S&P 500 sample: {a}")
        except (OSError, ValueError) as e:
            log.warning("dataset unavailable: %s", e)
        i = self.source.findText(current)
        if i < 0 and not current:  # first start: the dataset the status bar names, not synthetic data
            assets = [self.source.itemText(k) for k in range(self.source.count()) if self.source.itemText(k) != SYNTHETIC]
            i = self.source.findText(assets[0]) if assets else 0
        self.source.setCurrentIndex(max(i, 0))
        self.source.blockSignals(False)

    def _dataset_assets(self) -> list[str]:
        return [self.source.itemText(i) for i in range(self.source.count()) if self.source.itemText(i).startswith(self.ACTIVE)]

    def _on_store_changed(self) -> None:
        """A new active dataset: show it (the same asset when it is in it, else its first), so
        the series shown is always the data the status bar names."""
        before = self.source.currentText()
        self._fill_sources()
        assets = self._dataset_assets()
        if assets and self.source.currentText() not in assets:
            self.source.setCurrentIndex(self.source.findText(assets[0]))
        self._load_series()
        was = before[len(self.ACTIVE) :] if before.startswith(self.ACTIVE) else ""
        gone = f" ({was} is not in it)" if was and self.source.currentText() != before else ""
        self.set_status(f"Active dataset changed{gone}: {len(self.prices):,} prices loaded, previous result cleared.")

    def input_description(self) -> dict:
        text = self.source.currentText()
        if text == SYNTHETIC:
            return {
                "name": "synthetic OU",
                "generator": "hft_lab.data.ou_series",
                "n": self.n_points.value(),
                "kappa": 0.05,
                "theta": 100.0,
                "sigma": 1.0,
                "seed": self.seed.value(),
            }
        ext = getattr(self, "_external", None)
        if ext is not None and text == ext[0]:
            return {"name": ext[0], "n": len(ext[1]), "values": ext[1].tolist() if len(ext[1]) <= 10_000 else None}
        d = dict(self.store.inputs()) if self.store is not None else {"name": "S&P 500 sample"}
        d["series"] = text.split(": ", 1)[1]
        return d

    def _load_series(self) -> None:
        text = self.source.currentText()
        synthetic = text == SYNTHETIC
        self.n_points.setEnabled(synthetic)
        self.seed.setEnabled(synthetic)
        ext = getattr(self, "_external", None)
        dates, spread, notional = None, False, None
        if synthetic:
            prices = ou_series(self.n_points.value(), kappa=0.05, theta=100.0, sigma=1.0, seed=self.seed.value())
        elif ext is not None and text == ext[0]:
            _, prices, dates, notional, spread = ext
        else:
            ticker = text.split(": ", 1)[1]
            if self.store is not None:  # the asset without its missing values (no pandas at start-up)
                prices, dates = self.store.selected_series(ticker)
            else:
                col = load_sample_prices().prices[ticker].dropna()
                prices = col.to_numpy(dtype=np.float64)
                if np.issubdtype(col.index.dtype, np.datetime64):
                    dates = col.index.to_numpy()
        self.set_prices(prices, dates=dates, spread=spread, notional=notional)

    def set_prices(self, prices: np.ndarray, dates=None, spread: bool = False, notional=None) -> None:
        """Show a new series (previous results are cleared, since they belong to other data).
        dates: datetime64 per bar (the x axes show them); spread: backtest in P&L units."""
        self.stop_replay()
        self.prices = np.asarray(prices, dtype=np.float64)
        self.dates = dates if dates is not None and len(dates) == len(self.prices) else None
        self.is_spread = bool(spread) or not bool(np.all(self.prices > 0))
        self.notional = None if notional is None else np.asarray(notional, dtype=np.float64)
        for ax in self.axes:
            ax.dates = self.dates
        what = "spread" if self.is_spread else "price"
        self.price_plot.getPlotItem().setTitle(f"{what.capitalize()}, rolling mean ± k·std, trades")
        self.price_plot.getPlotItem().setLabel("left", what)
        self._label_performance()
        self.result = self.ou = self.bt = None
        self._last_outcome = None
        if hasattr(self, "export_csv_button"):
            self.export_csv_button.setEnabled(False)
            self.export_json_button.setEnabled(False)
        for p in (self.price_plot, self.z_plot, *(self._perf_plots or ())):
            p.clear()
        self.stats.set_rows([])
        idx = np.arange(len(self.prices), dtype=np.float64)
        self.price_plot.plot(
            idx, self.prices, pen=pen("price"), name="spread" if self.is_spread else "price", skipFiniteCheck=True
        )
        self.set_status(f"{len(self.prices):,} {'spread values' if self.is_spread else 'prices'} loaded.")

    # ---- the equity and drawdown plots, made when first needed ----
    @property
    def equity_plot(self) -> LabPlot:  # type: ignore[override]  # declared in MeanReversionPlots
        return self._performance_plots()[0]

    @property
    def dd_plot(self) -> LabPlot:  # type: ignore[override]  # declared in MeanReversionPlots
        return self._performance_plots()[1]

    def _performance_plots(self) -> tuple[LabPlot, LabPlot]:
        """The equity and drawdown plots, made on the first call: as they were when built with
        the view (x linked to the price plot, labelled for the series, the result drawn)."""
        if self._perf_plots is None:
            axes = [BarAxis(), BarAxis()]
            equity = make_plot("Equity (after costs)", "equity", axisItems={"bottom": axes[0]})
            dd = make_plot("Drawdown", "drawdown", axisItems={"bottom": axes[1], "left": PercentAxis("left")})
            for p in (equity, dd):
                p.setXLink(self.price_plot)
            self._perf.addWidget(equity)
            self._perf.addWidget(dd)
            for ax in axes:
                ax.dates = self.dates
            self.axes += axes
            self._perf_plots = (equity, dd)
            self._label_performance()
            if self.bt is not None:
                self._draw_performance(self.bt)
        return self._perf_plots

    def _label_performance(self) -> None:
        if self._perf_plots is None:
            return  # labelled when made
        equity, dd = self._perf_plots
        equity.getPlotItem().setTitle("Cumulative P&L (spread units, after costs)" if self.is_spread else "Equity (after costs)")
        equity.getPlotItem().setLabel("left", "P&L" if self.is_spread else "equity")
        dd.getPlotItem().setLabel("left", "drawdown (spread units)" if self.is_spread else "drawdown")
        dd.getPlotItem().getAxis("left").percent = not self.is_spread

    # ---- run ----
    SIGNAL_KEYS = ("lookback", "threshold", "exit_threshold", "stop_threshold")

    def signal_params(self) -> dict:
        """The parameters of the z-score and signals (the stream API's)."""
        p = self.params()
        return {k: p[k] for k in self.SIGNAL_KEYS}

    def run(self) -> int:
        self.stop_replay()
        return self.start(
            analyse,
            self.prices,
            spread=self.is_spread,
            notional=self.notional,
            **self.params(),
            done=self._show_result,
            status="Running…",
        )

    def _show_result(self, out: TaskOutcome) -> None:
        self.result, self.ou, self.bt = out.value["mr"], out.value["ou"], out.value["bt"]
        self._last_outcome = out
        self.enable_export()
        self._draw(self.result)
        self._draw_performance(self.bt)
        self._fill_stats()
        n_trades = len(self.result.entries)
        hidden = f" (markers not drawn: more than {self.MAX_MARKERS:,})" if self.markers_hidden else ""
        what = (
            "z-score, signals, OU fit and a backtest in P&L units of the spread (returns need positive prices)"
            if self.is_spread
            else "z-score, signals, OU fit and backtest"
        )
        self.set_status(
            f"Computed{via(out)} in {out.seconds * 1e3:.1f} ms{note(out)}: {len(self.prices):,} bars, "
            f"{n_trades:,} entries{hidden}; {what}."
        )

    # ---- live replay ----
    def start_replay(self) -> None:
        """Play the loaded series tick by tick through the chosen backend's stream API."""
        if self._stream is None:
            try:
                res = self.runner.router.resolve(wait=False)  # GUI thread: no health wait
                self._stream = res.backend.mean_reversion_stream(**self.signal_params())
                self._replay_backend = res.backend.name
            except Exception as e:
                self.replay_label.setText(f"Error: {e}")
                self.replay_state.emit(f"error: {e}")
                return
            self._replay_pos = 0
            self._replay_buf = {k: [] for k in ("rolling_mean", "rolling_std", "zscore", "positions")}
            self._replay_t0 = time.perf_counter()
            for p_ in (self.price_plot, self.z_plot):
                p_.clear()
            self._live_price = self.price_plot.plot(pen=pen("price"), name="price")
            self._live_mean = self.price_plot.plot(pen=pen("mean", 1.5), name="mean")
            self._live_up = self.price_plot.plot(pen=pen("band"))
            self._live_lo = self.price_plot.plot(pen=pen("band"))
            self._live_z = self.z_plot.plot(pen=pen("z"), name="z")
            pr = self.signal_params()
            self._z_levels(self.z_plot.getPlotItem(), pr["threshold"], pr["exit_threshold"], pr["stop_threshold"])
            self.plot_tabs.setCurrentIndex(0)
        self._replay_base_t, self._replay_base_pos = time.perf_counter(), self._replay_pos  # (re)start the clock
        self._replay_timer.start()
        self.replay_start.setEnabled(False)
        self.replay_pause.setEnabled(True)
        self.replay_stop.setEnabled(True)
        self.run_button.setEnabled(False)
        self.replay_state.emit("running")

    def _rebase_replay(self, *_) -> None:
        """A new speed applies from now on (the achieved rate is measured from here)."""
        if self._stream is not None:
            self._replay_base_t, self._replay_base_pos = time.perf_counter(), self._replay_pos

    def pause_replay(self) -> None:
        self._replay_timer.stop()
        self.replay_start.setEnabled(True)
        self.replay_start.setText("Resume")
        self.replay_pause.setEnabled(False)
        self.replay_state.emit("paused")

    def stop_replay(self, state: str = "stopped") -> None:
        if not hasattr(self, "_replay_timer"):
            return
        self._replay_timer.stop()
        if self._stream is not None:
            try:
                self._stream.close()
            except Exception:
                pass
            self._stream = None
            self.replay_state.emit(state)
        self.replay_start.setEnabled(True)
        self.replay_start.setText("Start")
        self.replay_pause.setEnabled(False)
        self.replay_stop.setEnabled(False)
        self.run_button.setEnabled(not self.runner.busy)

    def replay_series(self) -> dict[str, np.ndarray]:
        """What the replay has produced so far, concatenated."""
        return {k: (np.concatenate(v) if v else np.empty(0)) for k, v in self._replay_buf.items()}

    def _replay_step(self) -> None:
        """One frame: push every tick that is due at the requested speed since the replay (or the
        last resume) started, so the achieved rate follows the speed whatever the frame rate."""
        n = len(self.prices)
        now = time.perf_counter()
        due = self._replay_base_pos + int((now - self._replay_base_t) * self.replay_speed.value() + 1e-6)
        lo = self._replay_pos
        if due <= lo:
            return  # nothing due yet (slow speeds)
        hi = min(n, due)
        try:
            ticks = self._stream.push_many(self.prices[lo:hi])
        except Exception as e:
            self.replay_label.setText(f"Error: {e}")
            log.warning("live replay failed: %s", e)
            self.stop_replay(f"error: {e}")
            return
        for k in self._replay_buf:
            self._replay_buf[k].append(getattr(ticks, k))
        self._replay_pos = hi
        s = self.replay_series()
        idx = np.arange(hi, dtype=np.float64)
        k = self.threshold.value()
        self._live_price.setData(idx, self.prices[:hi], connect="finite")
        self._live_mean.setData(idx, s["rolling_mean"], connect="finite")
        self._live_up.setData(idx, s["rolling_mean"] + k * s["rolling_std"], connect="finite")
        self._live_lo.setData(idx, s["rolling_mean"] - k * s["rolling_std"], connect="finite")
        self._live_z.setData(idx, s["zscore"], connect="finite")
        played = hi - self._replay_base_pos
        rate = played / max(time.perf_counter() - self._replay_base_t, 1e-9)
        self.replay_rate = rate
        self.replay_label.setText(
            f"{hi:,}/{n:,} ticks via {self._replay_backend}: {rate:,.0f} ticks/s achieved "
            f"({self.replay_speed.value():,} requested), "
            f"z {fmt(float(ticks.zscore[-1]), 4)}, position {int(ticks.positions[-1]):+d}"
        )
        if hi >= n:
            self.stop_replay("finished")

    # ---- session and export ----
    def run_parameters(self) -> dict:
        return self.params()

    def session_items(self) -> list:
        if self.result is None or self._last_outcome is None:
            return []

        result = {"mean_reversion": self.result, "ou": self.ou}
        if self.bt is not None:
            result["backtest"] = self.bt
        return [
            SessionItem(
                "mean_reversion",
                result,
                self.run_parameters(),
                self.input_description(),
                backend=self._last_outcome.backend_name,
                plots={"signals": self.price_plot, "zscore": self.z_plot, "equity": self.equity_plot},
            )
        ]

    def result_table(self):
        """One row per bar: date (or bar), price (or spread), the rolling statistics, bands,
        signal, position, and the backtest's per-bar return (or P&L), equity and drawdown."""
        import pandas as pd

        r, bt = self.result, self.bt
        if r is None:
            raise ExportError("no result to export: run a computation first")
        cols: dict = {}
        if self.dates is not None:
            cols["date"] = self.dates
        cols["bar"] = np.arange(len(self.prices))
        cols["spread" if self.is_spread else "price"] = self.prices
        cols.update(
            rolling_mean=r.rolling_mean,
            rolling_std=r.rolling_std,
            zscore=r.zscore,
            upper_band=r.upper_band,
            lower_band=r.lower_band,
            signal=r.signals,
            position=r.positions,
        )
        if bt is not None:
            pnl = getattr(bt, "units", "returns") == "pnl"
            cols["pnl" if pnl else "return"] = bt.returns
            cols["cumulative_pnl" if pnl else "equity"] = bt.equity
            cols["drawdown"] = bt.drawdown
        return pd.DataFrame(cols)

    def export_csv(self, path) -> list:
        """One CSV file (see `result_table`); the OU fit and backtest statistics are in the JSON
        export and in File ▸ Export session."""
        from pathlib import Path

        df = self.result_table()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(
            path, index=False, float_format="%.17g", date_format="%Y-%m-%d %H:%M:%S" if self.axes[0].intraday else "%Y-%m-%d"
        )
        return [path]
