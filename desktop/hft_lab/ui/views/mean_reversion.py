"""Mean Reversion tab: rolling z-score with bands, thresholds and entry/exit markers."""

from __future__ import annotations

import logging

import numpy as np
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
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from hft_lab.data import load_sample_prices, ou_series
from hft_lab.ui.plots import make_plot, pen
from hft_lab.ui.worker import TaskOutcome, TaskRunner

log = logging.getLogger("hft_lab.ui.mean_reversion")

SYNTHETIC = "Synthetic OU series"


class MeanReversionView(QWidget):
    result_shown = Signal(object)  # the TaskOutcome that was drawn (GUI thread)

    def __init__(self, runner: TaskRunner, parent=None):
        super().__init__(parent)
        self.runner = runner
        self.prices: np.ndarray | None = None
        self.result = None
        self.markers_hidden = False
        self._task: int | None = None
        self._build()
        runner.finished.connect(self._on_finished)
        self._load_series()

    # ---- layout ----
    def _build(self) -> None:
        controls = QGroupBox("Parameters")
        form = QFormLayout(controls)
        self.source = QComboBox()
        self.source.addItem(SYNTHETIC)
        try:
            for a in load_sample_prices().assets:
                self.source.addItem(f"S&P 500 sample: {a}")
        except OSError as e:
            log.warning("sample data unavailable: %s", e)
        self.n_points = QSpinBox()
        self.n_points.setRange(100, 50_000_000)
        self.n_points.setValue(5000)
        self.n_points.setSingleStep(1000)
        self.seed = QSpinBox()
        self.seed.setRange(0, 1_000_000)
        self.lookback = QSpinBox()
        self.lookback.setRange(2, 100_000)
        self.lookback.setValue(20)
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.01, 100.0)
        self.threshold.setValue(2.0)
        self.threshold.setSingleStep(0.1)
        self.exit_threshold = QDoubleSpinBox()
        self.exit_threshold.setRange(-100.0, 100.0)
        self.exit_threshold.setValue(0.0)
        self.exit_threshold.setSingleStep(0.1)
        self.use_stop = QCheckBox("stop at |z| >")
        self.stop = QDoubleSpinBox()
        self.stop.setRange(0.02, 1000.0)
        self.stop.setValue(4.0)
        self.stop.setEnabled(False)
        self.use_stop.toggled.connect(self.stop.setEnabled)
        stop_row = QHBoxLayout()
        stop_row.addWidget(self.use_stop)
        stop_row.addWidget(self.stop)
        form.addRow("Prices", self.source)
        form.addRow("Synthetic points", self.n_points)
        form.addRow("Synthetic seed", self.seed)
        form.addRow("Lookback (bars)", self.lookback)
        form.addRow("Entry threshold (z)", self.threshold)
        form.addRow("Exit level (z)", self.exit_threshold)
        form.addRow(stop_row)

        self.run_button = QPushButton("Run")
        self.run_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setTextVisible(False)
        self.status = QLabel("Ready.")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)

        left = QVBoxLayout()
        left.addWidget(controls)
        left.addLayout(buttons)
        left.addWidget(self.progress)
        left.addWidget(self.status)
        left.addStretch(1)
        left_w = QWidget()
        left_w.setLayout(left)
        left_w.setMaximumWidth(360)

        self.price_plot = make_plot("Price, rolling mean ± k·std", "price")
        self.z_plot = make_plot("z-score", "z")
        self.z_plot.setXLink(self.price_plot)
        plots = QSplitter(Qt.Vertical)
        plots.addWidget(self.price_plot)
        plots.addWidget(self.z_plot)
        plots.setSizes([600, 300])

        lay = QHBoxLayout(self)
        lay.addWidget(left_w)
        lay.addWidget(plots, 1)

        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.source.currentIndexChanged.connect(self._load_series)
        self.n_points.valueChanged.connect(self._load_series)
        self.seed.valueChanged.connect(self._load_series)
        self.runner.busy_changed.connect(self._set_busy)

    # ---- data ----
    def _load_series(self) -> None:
        text = self.source.currentText()
        synthetic = text == SYNTHETIC
        self.n_points.setEnabled(synthetic)
        self.seed.setEnabled(synthetic)
        if synthetic:
            self.prices = ou_series(self.n_points.value(), kappa=0.05, theta=100.0, sigma=1.0, seed=self.seed.value())
        else:
            ticker = text.split(": ", 1)[1]
            self.prices = load_sample_prices().prices[ticker].dropna().to_numpy(dtype=np.float64)
        self.set_prices(self.prices)

    def set_prices(self, prices: np.ndarray) -> None:
        """Show a new series (previous results are cleared, since they belong to other data)."""
        self.prices = np.asarray(prices, dtype=np.float64)
        self.result = None
        self.price_plot.clear()
        self.z_plot.clear()
        idx = np.arange(len(self.prices), dtype=np.float64)
        self.price_plot.plot(idx, self.prices, pen=pen("price"), name="price", skipFiniteCheck=True)
        self.status.setText(f"{len(self.prices):,} prices loaded.")

    # ---- run ----
    def params(self) -> dict:
        return dict(
            lookback=self.lookback.value(),
            threshold=self.threshold.value(),
            exit_threshold=self.exit_threshold.value(),
            stop_threshold=self.stop.value() if self.use_stop.isChecked() else None,
        )

    def run(self) -> int:
        self.status.setText("Running…")
        self._task = self.runner.start("calculate_mean_reversion", self.prices, **self.params())
        return self._task

    def cancel(self) -> None:
        if self.runner.busy:
            self.runner.cancel()
            self.status.setText("Cancelled.")
        self._task = None

    def _set_busy(self, busy: bool) -> None:
        self.run_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        self.progress.setRange(0, 0 if busy else 1)

    def _on_finished(self, out: TaskOutcome) -> None:
        if out.task_id != self._task:
            return
        self._task = None
        via = f" on {out.backend_name}" if out.backend_name else ""
        note = f" ({out.note})" if out.note else ""
        if not out.ok:
            if out.cancelled:
                self.status.setText("Cancelled.")
            else:
                self.status.setText(f"Error{via}: {out.value}{note}")
                log.warning("mean reversion failed: %s", out.value)
            self.result_shown.emit(out)
            return
        self.result = out.value
        self._draw(out.value)
        n_trades = len(out.value.entries)
        hidden = f" (markers not drawn: more than {self.MAX_MARKERS:,})" if self.markers_hidden else ""
        self.status.setText(
            f"Computed{via} in {out.seconds * 1e3:.1f} ms{note}: {len(self.prices):,} bars, {n_trades:,} entries{hidden}."
        )
        self.result_shown.emit(out)

    MAX_MARKERS = 3000  # per kind; more would cost the GUI thread ~0.3 s per million points
    MAX_FILL_POINTS = 200_000

    def _draw(self, r) -> None:
        """Draw on the GUI thread, kept short: explicit x arrays, the NaN warm-up sliced off (so
        pyqtgraph skips its finite check), no band fill or trade markers on huge series."""
        x = self.prices
        idx = np.arange(len(x), dtype=np.float64)
        w = slice(r.lookback - 1, None)
        fast = dict(skipFiniteCheck=True)
        self.price_plot.clear()
        self.z_plot.clear()
        pp = self.price_plot.getPlotItem()
        pp.plot(idx, x, pen=pen("price"), name="price", **fast)
        pp.plot(idx[w], r.rolling_mean[w], pen=pen("mean", 1.5), name=f"mean ({r.lookback})", **fast)
        upper = pp.plot(idx[w], r.upper_band[w], pen=pen("band"), name=f"±{r.threshold:g}·std", **fast)
        lower = pp.plot(idx[w], r.lower_band[w], pen=pen("band"), **fast)
        if len(x) <= self.MAX_FILL_POINTS:
            pp.addItem(pg.FillBetweenItem(upper, lower, brush=pg.mkBrush(31, 119, 180, 30)))
        self.markers_hidden = not self._markers(pp, r, x)
        zp = self.z_plot.getPlotItem()
        zp.plot(idx[w], r.zscore[w], pen=pen("z"), name="z", **fast)
        for level in (r.threshold, -r.threshold):
            zp.addLine(y=level, pen=pen("threshold", 1, Qt.DashLine))
        if r.exit_threshold != 0:
            zp.addLine(y=r.exit_threshold, pen=pen("exit", 1, Qt.DotLine))
            zp.addLine(y=-r.exit_threshold, pen=pen("exit", 1, Qt.DotLine))
        zp.addLine(y=0, pen=pen("exit", 1, Qt.DotLine))
        if r.stop_threshold is not None:
            for s in (r.stop_threshold, -r.stop_threshold):
                zp.addLine(y=s, pen=pen("short", 1, Qt.DashDotLine))

    def _markers(self, plot, r, x) -> bool:
        """Entry/exit markers; False (and none drawn) when there are too many to draw quickly."""
        if max(len(r.entries), len(r.exits)) > self.MAX_MARKERS:
            return False
        e = r.entries
        if len(e):
            sig = r.signals[e]
            longs, shorts = e[sig > 0], e[sig < 0]
            plot.addItem(pg.ScatterPlotItem(longs, x[longs], symbol="t1", size=9, brush=pg.mkBrush(44, 160, 44), name="long entry"))
            plot.addItem(pg.ScatterPlotItem(shorts, x[shorts], symbol="t", size=9, brush=pg.mkBrush(214, 39, 40), name="short entry"))
        if len(r.exits):
            ex = r.exits
            plot.addItem(pg.ScatterPlotItem(ex, x[ex], symbol="x", size=8, brush=pg.mkBrush(60, 60, 60), name="exit"))
        return True
