"""Regimes tab: Gaussian HMM regime detection on log returns. Price shaded by the Viterbi regime,
stacked posterior probabilities, regime table, transition matrix heat map, log-likelihood curve
drawn live (one point per EM iteration), fit statistics."""

from __future__ import annotations

import logging
import math
import threading

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QValidator
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from hft_lab.data import load_sample_prices
from hft_lab.ui.plots import make_plot, pen
from hft_lab.ui.widgets import StatsTable, fmt
from hft_lab.ui.worker import TaskOutcome, TaskRunner

log = logging.getLogger("hft_lab.ui.regimes")

SYNTHETIC = "Synthetic regime-switching series (3 regimes)"
EW_INDEX = "S&P 500 sample: equal-weight index (20 stocks)"
SAMPLE_PREFIX = "S&P 500 sample: "

# the regimes of hft_lab.data.regime_switching_returns (its defaults)
SYNTH_MEANS = (-0.002, 0.0005, 0.001)
SYNTH_STDS = (0.025, 0.01, 0.005)
SYNTH_STAY = 0.98

# low mean -> red, high mean -> green (same colours in every plot and table)
_RAMP = np.array([(214, 39, 40), (255, 127, 14), (212, 176, 0), (140, 191, 38), (44, 160, 44)], dtype=float)


def regime_colors(k: int) -> list[tuple[int, int, int]]:
    """One colour per state (states are sorted by mean, ascending)."""
    if k <= 1:
        return [(31, 119, 180)]
    pos = np.linspace(0.0, len(_RAMP) - 1, k)
    out = []
    for p in pos:
        i = min(int(p), len(_RAMP) - 2)
        c = _RAMP[i] + (p - i) * (_RAMP[i + 1] - _RAMP[i])
        out.append(tuple(int(round(v)) for v in c))
    return out


def synthetic_regime_returns(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Same numbers as hft_lab.data.regime_switching_returns(n, seed=seed) (same random stream),
    ~15x faster (the chain's uniforms are drawn at once), so a large series does not stall the
    GUI thread."""
    rng = np.random.default_rng(seed)
    k = len(SYNTH_MEANS)
    trans = np.full((k, k), (1 - SYNTH_STAY) / (k - 1))
    np.fill_diagonal(trans, SYNTH_STAY)
    states = np.zeros(n, dtype=np.int64)
    if n > 1:
        u = rng.random(n - 1)  # Generator.choice(k, p=row) draws exactly one uniform per call
        cdf = trans.cumsum(axis=1)
        cdf /= cdf[:, -1:]
        nxt = [cdf[s].searchsorted(u, side="right").tolist() for s in range(k)]
        path = [0] * n
        s = 0
        for t in range(1, n):
            s = nxt[s][t - 1]
            path[t] = s
        states[:] = path
    r = rng.normal(np.asarray(SYNTH_MEANS)[states], np.asarray(SYNTH_STDS)[states])
    return r, states


def fit_regimes(backend, observations, n_states, max_iterations, tolerance, n_restarts, seed, report=None, cancel=None):
    """The tab's computation (on the worker thread): one Gaussian HMM fit with per-iteration
    progress. `report(iteration, log_likelihood)` forwards progress to the GUI thread."""

    def progress(it, ll):
        if report is not None:
            report(it, ll)
        return not (cancel is not None and cancel.cancelled)

    return backend.run_hmm(
        observations,
        n_states=n_states,
        max_iterations=max_iterations,
        tolerance=tolerance,
        n_restarts=n_restarts,
        seed=seed,
        progress=progress,
        cancel=cancel,
    )


def segments(path: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Consecutive runs of the same state: (starts, ends (exclusive), states)."""
    path = np.asarray(path)
    if len(path) == 0:
        e = np.empty(0, dtype=np.int64)
        return e, e, e
    change = np.flatnonzero(path[1:] != path[:-1]) + 1
    starts = np.r_[0, change]
    ends = np.r_[change, len(path)]
    return starts, ends, path[starts]


class _ProgressReporter:
    """Progress callback for the worker thread. The task id is known only when runner.start()
    has returned, so the first call waits (microseconds) for the GUI thread to bind it."""

    def __init__(self, runner: TaskRunner):
        self.runner = runner
        self.task_id: int | None = None
        self._bound = threading.Event()

    def bind(self, task_id: int) -> None:
        self.task_id = task_id
        self._bound.set()

    def __call__(self, it, ll) -> None:
        if self._bound.wait(10.0):
            self.runner.report_progress(self.task_id, (int(it), float(ll)))


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
            return (QValidator.Intermediate if ok else QValidator.Invalid), text, pos
        return (QValidator.Acceptable if self.minimum() <= v <= self.maximum() else QValidator.Intermediate), text, pos

    def stepBy(self, steps: int) -> None:
        v = self.value()
        if v == 0.0:
            v = 1e-12 if steps > 0 else 0.0
            steps -= 1 if steps > 0 else 0
        self.setValue(min(self.maximum(), v * 10.0**steps) if v else 0.0)


class BarAxis(pg.AxisItem):
    """Bottom axis in bars that shows dates when the series has them."""

    def __init__(self, *a, **kw):
        super().__init__("bottom", *a, **kw)
        self.dates: np.ndarray | None = None

    def tickStrings(self, values, scale, spacing):
        if self.dates is None or len(self.dates) == 0:
            return super().tickStrings(values, scale, spacing)
        unit = "Y" if spacing >= 500 else ("M" if spacing >= 40 else "D")
        out = []
        for v in values:
            i = int(round(v))
            out.append(str(self.dates[i].astype(f"datetime64[{unit}]")) if 0 <= i < len(self.dates) else "")
        return out


class PriceAxis(pg.AxisItem):
    """Left axis whose log-mode labels read as prices (250, 1,000) rather than 2.5·10²."""

    def __init__(self, *a, **kw):
        super().__init__("left", *a, **kw)

    def logTickStrings(self, values, scale, spacing):
        out = []
        for v in values:
            x = 10.0 ** v * scale
            out.append(f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}")
        return out


def _date_of(dates, i: int) -> str:
    return str(dates[i].astype("datetime64[D]")) if dates is not None and 0 <= i < len(dates) else ""


class RegimesView(QWidget):
    result_shown = Signal(object)  # the TaskOutcome that was drawn or reported (GUI thread)
    progress_shown = Signal(int, float)  # every EM iteration received from the running task

    SHADE_ALPHA = 55
    LIVE_REFRESH_MS = 50

    def __init__(self, runner: TaskRunner, parent=None):
        super().__init__(parent)
        self.runner = runner
        self.prices: np.ndarray | None = None
        self.observations: np.ndarray | None = None  # log returns of self.prices
        self.dates: np.ndarray | None = None
        self.true_states: np.ndarray | None = None  # synthetic series only (state of each return)
        self.result = None  # HmmResult of the last run on the current series
        self.result_seconds = 0.0
        self.result_backend = ""
        self.total_iterations = 0  # EM iterations of the last run including restarts
        self.live_iterations: list[int] = []
        self.live_ll: list[float] = []
        self._task: int | None = None
        self._reporter: _ProgressReporter | None = None
        self._run_params: dict = {}
        self._shade: pg.ImageItem | None = None
        self.segments = segments(np.empty(0, dtype=np.int64))  # Viterbi runs: (starts, ends, states)
        self._post_img: pg.ImageItem | None = None
        self._post_lut = np.zeros((1, 4), dtype=np.uint8)
        self._build()
        runner.finished.connect(self._on_finished)
        runner.progress.connect(self._on_progress)
        self._load_series()

    # ---- layout ----
    def _build(self) -> None:
        data = QGroupBox("Data")
        df = QFormLayout(data)
        self.source = QComboBox()
        self.source.addItem(SYNTHETIC)
        try:
            assets = load_sample_prices().assets
            self.source.addItem(EW_INDEX)
            for a in assets:
                self.source.addItem(SAMPLE_PREFIX + a)
        except OSError as e:
            log.warning("sample data unavailable: %s", e)
        self.n_points = QSpinBox()
        self.n_points.setRange(100, 1_000_000)
        self.n_points.setValue(3000)
        self.n_points.setSingleStep(1000)
        self.n_points.setGroupSeparatorShown(True)
        self.n_points.setKeyboardTracking(False)
        self.data_seed = QSpinBox()
        self.data_seed.setRange(0, 1_000_000)
        self.data_seed.setKeyboardTracking(False)
        self.ann = QDoubleSpinBox()
        self.ann.setRange(0.0, 10_000_000.0)
        self.ann.setDecimals(1)
        self.ann.setValue(252.0)
        self.ann.setSpecialValueText("off")
        self.ann.setToolTip("Bars per year, for the annualised mean and volatility in the regime table (0 = off)")
        obs = QLabel("Observations: log returns  r_t = ln(p_t / p_t−1)")
        obs.setStyleSheet("color: #555")
        df.addRow(QLabel("Prices"))
        df.addRow(self.source)
        df.addRow("Synthetic returns", self.n_points)
        df.addRow("Synthetic seed", self.data_seed)
        df.addRow("Annualisation (bars/yr)", self.ann)
        self.log_scale = QCheckBox("Log price axis")
        self.log_scale.setChecked(True)
        df.addRow(self.log_scale)
        df.addRow(obs)

        model = QGroupBox("Gaussian HMM (Baum-Welch EM)")
        mf = QFormLayout(model)
        self.n_states = QSpinBox()
        self.n_states.setRange(1, 10)
        self.n_states.setValue(3)
        self.max_iterations = QSpinBox()
        self.max_iterations.setRange(1, 1_000_000)
        self.max_iterations.setValue(1000)
        self.tolerance = SciSpinBox()
        self.tolerance.setValue(1e-6)
        self.tolerance.setToolTip("EM stops when the log-likelihood gains less than this in one iteration (0: never)")
        self.n_restarts = QSpinBox()
        self.n_restarts.setRange(0, 1000)
        self.n_restarts.setToolTip("Extra EM runs from seeded random starts; the best log-likelihood wins")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2_147_483_647)
        mf.addRow("Regimes (states)", self.n_states)
        mf.addRow("Max iterations", self.max_iterations)
        mf.addRow("Tolerance (ΔLL)", self.tolerance)
        mf.addRow("Random restarts", self.n_restarts)
        mf.addRow("Restart seed", self.seed)

        self.run_button = QPushButton("Run")
        self.run_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 1)
        self.busy_bar.setTextVisible(False)
        self.status = QLabel("Ready.")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.stats = StatsTable()

        left = QVBoxLayout()
        left.addWidget(data)
        left.addWidget(model)
        left.addLayout(buttons)
        left.addWidget(self.busy_bar)
        left.addWidget(self.status)
        left.addStretch(1)
        left_inner = QWidget()
        left_inner.setLayout(left)
        left_w = QScrollArea()
        left_w.setWidget(left_inner)
        left_w.setWidgetResizable(True)
        left_w.setFrameShape(QFrame.NoFrame)
        left_w.setMinimumWidth(330)
        left_w.setMaximumWidth(400)

        # price shaded by regime, posteriors below (x-linked)
        self.price_plot = make_plot("Price, shaded by the most likely regime (Viterbi)", "price")
        self.axis = BarAxis()
        self.price_plot.getPlotItem().setAxisItems({"bottom": self.axis, "left": PriceAxis()})
        self.price_plot.getPlotItem().setLabel("left", "price")
        self.price_plot.getPlotItem().legend.setBrush(pg.mkBrush(255, 255, 255, 210))
        self.post_plot = make_plot("Posterior regime probabilities (stacked)", "P(regime)")
        self.post_axis = BarAxis()
        pp = self.post_plot.getPlotItem()
        pp.setAxisItems({"bottom": self.post_axis})
        pp.setXLink(self.price_plot.getPlotItem())
        pp.setYRange(0.0, 1.0, padding=0.02)
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

        # regime table, transition heat map, log-likelihood curve
        self.regime_table = QTableWidget(0, 0)
        self.regime_table.verticalHeader().setVisible(False)
        self.regime_table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.regime_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.regime_table.setSelectionMode(QAbstractItemView.NoSelection)
        self.regime_table.verticalHeader().setDefaultSectionSize(22)
        self.heat = pg.PlotWidget(title="Transitions")
        hp = self.heat.getPlotItem()
        hp.setLabel("left", "from")
        hp.setLabel("bottom", "to")
        hp.invertY(True)
        hp.setMouseEnabled(x=False, y=False)
        hp.hideButtons()
        hp.setMenuEnabled(False)
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
        bottom = QSplitter(Qt.Horizontal)
        bottom.addWidget(self.table_tabs)
        bottom.addWidget(self.heat)
        bottom.addWidget(self.ll_plot)
        bottom.setStretchFactor(0, 5)
        bottom.setStretchFactor(1, 2)
        bottom.setStretchFactor(2, 2)
        bottom.setSizes([560, 220, 240])
        right = QSplitter(Qt.Vertical)
        right.addWidget(self.price_plot)
        right.addWidget(self.post_plot)
        right.addWidget(bottom)
        right.setSizes([420, 190, 240])
        self.hover = QLabel(" ")
        self.hover.setTextInteractionFlags(Qt.TextSelectableByMouse)
        right_box = QVBoxLayout()
        right_box.addWidget(right, 1)
        right_box.addWidget(self.hover)
        right_w = QWidget()
        right_w.setLayout(right_box)

        lay = QHBoxLayout(self)
        lay.addWidget(left_w)
        lay.addWidget(right_w, 1)

        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.source.currentIndexChanged.connect(self._load_series)
        self.n_points.valueChanged.connect(self._load_series)
        self.data_seed.valueChanged.connect(self._load_series)
        self.ann.valueChanged.connect(self._fill_regime_table)
        self.log_scale.toggled.connect(self._set_log_scale)
        self.runner.busy_changed.connect(self._set_busy)
        self._mouse = pg.SignalProxy(self.price_plot.scene().sigMouseMoved, rateLimit=30, slot=self._on_mouse)
        self._mouse_p = pg.SignalProxy(self.post_plot.scene().sigMouseMoved, rateLimit=30, slot=self._on_mouse_post)

    # ---- data ----
    def _load_series(self) -> None:
        text = self.source.currentText()
        synthetic = text == SYNTHETIC
        self.n_points.setEnabled(synthetic)
        self.data_seed.setEnabled(synthetic)
        try:
            if synthetic:
                r, states = synthetic_regime_returns(self.n_points.value(), seed=self.data_seed.value())
                prices = 100.0 * np.exp(np.r_[0.0, np.cumsum(r)])
                self.set_prices(prices, true_states=states, label="synthetic regime-switching prices")
            elif text == EW_INDEX:
                df = load_sample_prices().prices
                simple = df.pct_change().iloc[1:].mean(axis=1).to_numpy()  # rebalanced daily to equal weights
                prices = 100.0 * np.r_[1.0, np.cumprod(1.0 + simple)]
                self.set_prices(prices, dates=df.index.to_numpy(), label="equal-weight index (20 stocks, daily rebalanced)")
            else:
                ticker = text[len(SAMPLE_PREFIX):]
                s = load_sample_prices().prices[ticker].dropna()
                self.set_prices(s.to_numpy(dtype=np.float64), dates=s.index.to_numpy(), label=ticker)
        except (OSError, KeyError, ValueError) as e:
            log.warning("could not load %s: %s", text, e)
            self.status.setText(f"Error loading {text}: {e}")

    def set_prices(self, prices, dates=None, true_states=None, label: str = "prices") -> None:
        """Show a new series; observations are its log returns. Earlier results are cleared
        (they belong to other data) and a running fit is cancelled."""
        if self.runner.busy and self._task is not None:
            self.cancel()
        prices = np.asarray(prices, dtype=np.float64).ravel()
        self.prices = prices
        self.dates = None if dates is None else np.asarray(dates).astype("datetime64[D]")
        self.true_states = None if true_states is None else np.asarray(true_states)
        self.axis.dates = self.post_axis.dates = self.dates
        self._clear_results()
        pi = self.price_plot.getPlotItem()
        pi.clear()
        idx = np.arange(len(prices), dtype=np.float64)
        bad = ~np.isfinite(prices) | (prices <= 0)
        if bad.any():
            self.observations = None
            i = int(np.flatnonzero(bad)[0])
            self.status.setText(
                f"Cannot use these prices: log returns need finite positive prices (bar {i:,} is {prices[i]:g})."
            )
        elif len(prices) < 2:
            self.observations = None
            self.status.setText("Cannot use these prices: at least two are needed for one log return.")
        else:
            self.observations = np.diff(np.log(prices))
            span = f", {_date_of(self.dates, 0)} … {_date_of(self.dates, len(prices) - 1)}" if self.dates is not None else ""
            self.status.setText(f"{label}: {len(prices):,} prices{span} → {len(self.observations):,} log returns.")
        if not bad.all():
            pi.plot(idx, np.where(bad, np.nan, prices), pen=pen("price"), skipFiniteCheck=not bad.any(), connect="finite")
        self.hover.setText(" ")

    def _clear_results(self) -> None:
        self.result = None
        self.total_iterations = 0
        self._shade = None
        self._post_img = None
        self.segments = segments(np.empty(0, dtype=np.int64))
        self.post_plot.getPlotItem().clear()
        self.price_plot.getPlotItem().legend.clear()
        self.regime_table.clear()
        self.regime_table.setRowCount(0)
        self.regime_table.setColumnCount(0)
        self._empty_heat()
        self.ll_plot.getPlotItem().clear()
        self._ll_curve = None
        self.stats.set_rows([])

    # ---- run ----
    def params(self) -> dict:
        return dict(
            n_states=self.n_states.value(),
            max_iterations=self.max_iterations.value(),
            tolerance=self.tolerance.value(),
            n_restarts=self.n_restarts.value(),
            seed=self.seed.value(),
        )

    def run(self) -> int | None:
        if self.observations is None:
            self.status.setText("No usable data: choose a price series first.")
            return None
        self._reporter = _ProgressReporter(self.runner)
        self.live_iterations, self.live_ll = [], []
        self._live_timer.stop()
        self._run_params = self.params()
        self._task = self.runner.start(fit_regimes, self.observations, report=self._reporter, **self._run_params)
        self._reporter.bind(self._task)
        self._show_live_curve()
        self.status.setText(f"Running EM on {len(self.observations):,} log returns…")
        return self._task

    def cancel(self) -> None:
        if self.runner.busy and self._task is not None:
            self.runner.cancel()
            self._live_timer.stop()
            self.status.setText("Cancelled.")
            self._draw_ll(self.result)  # back to the curve of the result on show (if any)
        self._task = None

    def _set_busy(self, busy: bool) -> None:
        self.run_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        self.busy_bar.setRange(0, 0 if busy else 1)

    # ---- live progress ----
    def _show_live_curve(self) -> None:
        lp = self.ll_plot.getPlotItem()
        lp.clear()
        lp.setTitle("Log-likelihood (running)")
        self._ll_curve = lp.plot([], [], pen=pen("mean", 1.5), symbol="o", symbolSize=4,
                                 symbolBrush=pg.mkBrush(31, 119, 180), symbolPen=None)

    def _on_progress(self, payload) -> None:
        if self._task is None or self._task != self.runner.current_id:
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
        if self._task is None or not self.live_iterations or self._ll_curve is None:
            return
        n = len(self.live_iterations)
        x = np.asarray(self.live_iterations, dtype=np.float64)
        y = np.asarray(self.live_ll)
        if n > 300:
            self._ll_curve.setSymbol(None)
        self._ll_curve.setData(x, y)
        self.status.setText(f"Running EM on {len(self.observations):,} log returns: iteration {self.live_iterations[-1]:,}, "
                            f"log-likelihood {self.live_ll[-1]:,.4f}")

    # ---- result ----
    def _on_finished(self, out: TaskOutcome) -> None:
        if out.task_id != self._task:
            return
        self._task = None
        self._live_timer.stop()
        via = f" on {out.backend_name}" if out.backend_name else ""
        note = f" ({out.note})" if out.note else ""
        if not out.ok:
            if out.cancelled:
                self.status.setText("Cancelled.")
            else:
                self.status.setText(f"Error{via}: {out.value}{note}")
                log.warning("HMM fit failed: %s", out.value)
            self._draw_ll(self.result)
            self.result_shown.emit(out)
            return
        r = out.value
        self.result = r
        self.result_seconds = out.seconds
        self.result_backend = out.backend_name
        self.total_iterations = self.live_iterations[-1] if self.live_iterations else r.iterations
        self._draw(r)
        conv = "converged" if r.converged else f"NOT converged after {r.iterations:,} iterations (raise max iterations or tolerance)"
        n_runs = self._run_params["n_restarts"] + 1
        restarts = f", best of {n_runs} runs" if n_runs > 1 else ""
        self.status.setText(
            f"Fitted{via} in {out.seconds * 1e3:,.1f} ms{note}: {r.n_states} regimes on {len(r.viterbi_path):,} log returns, "
            f"{r.iterations:,} EM iterations{restarts}, {conv}. Log-likelihood {r.log_likelihood:,.2f}, "
            f"BIC {r.bic:,.2f}."
        )
        self.result_shown.emit(out)

    def _draw(self, r) -> None:
        """Kept short on the GUI thread: one image for the regime shading (one pixel per bar,
        downsampled to the screen by pyqtgraph), one image for the posteriors of the visible range,
        small tables."""
        colors = regime_colors(r.n_states)
        self._draw_prices(r, colors)
        self._draw_posteriors(r, colors)
        self._fill_regime_table()
        self._draw_transitions(r, colors)
        self._draw_ll(r)
        self._fill_stats(r)

    def _draw_prices(self, r, colors) -> None:
        pi = self.price_plot.getPlotItem()
        pi.clear()
        pi.legend.clear()
        path = np.asarray(r.viterbi_path, dtype=np.intp)
        self.segments = segments(path)
        lut = np.array([(*c, self.SHADE_ALPHA) for c in colors], dtype=np.uint8)
        img = pg.ImageItem(lut[path][None, :, :], axisOrder="row-major")
        img.setAutoDownsample(True)
        img.setZValue(-100)
        pi.addItem(img, ignoreBounds=True)
        self._shade = img
        idx = np.arange(len(self.prices), dtype=np.float64)
        pi.plot(idx, self.prices, pen=pen("price"), skipFiniteCheck=True)
        share = np.bincount(path, minlength=r.n_states) / max(len(path), 1)
        pi.legend.setColumnCount(1 if r.n_states <= 5 else 2)
        for k, c in enumerate(colors):
            sample = pg.ScatterPlotItem(symbol="s", size=11, pen=pg.mkPen(*c), brush=pg.mkBrush(*c, 150))
            pi.legend.addItem(sample, f"regime {k + 1}  ({share[k]:.0%} of bars)")
        self._fit_shading()

    def _set_log_scale(self, on: bool) -> None:
        pi = self.price_plot.getPlotItem()
        pi.setLogMode(y=on)
        pi.enableAutoRange(y=True)
        self._fit_shading()

    def _fit_shading(self, *_) -> None:
        """The shading spans the visible y range; pixel i (the return from bar i to bar i+1) is
        centred on bar i+1, where the posteriors and the hover readout put it."""
        if self._shade is None or self.result is None:
            return
        y0, y1 = self.price_plot.getPlotItem().vb.viewRange()[1]
        self._shade.setRect(QRectF(0.5, y0, float(len(self.result.viterbi_path)), y1 - y0))

    def _draw_posteriors(self, r, colors) -> None:
        pp = self.post_plot.getPlotItem()
        pp.clear()
        self._post_lut = np.array([(*c, 200) for c in colors], dtype=np.uint8)
        self._post_img = pg.ImageItem(axisOrder="row-major")
        pp.addItem(self._post_img)
        pp.setYRange(0.0, 1.0, padding=0.02)
        self._render_posteriors()

    def posterior_columns(self, first: int, last: int, bins: int) -> tuple[np.ndarray, np.ndarray]:
        """Posteriors of returns first..last-1 averaged over `bins` near-equal bins (bin means of
        probabilities still sum to 1); gives (bin edges, cumulative probabilities bins x K)."""
        post = np.asarray(self.result.posteriors)
        edges = np.unique(np.linspace(first, last, bins + 1).round().astype(np.int64))
        sums = np.add.reduceat(post[first:last], edges[:-1] - first, axis=0)
        means = sums / np.diff(edges)[:, None]
        return edges, np.cumsum(means, axis=1)

    def _render_posteriors(self) -> None:
        """The stacked posteriors as an image (a jagged stacked area of thousands of points takes
        Qt ~0.5 s per fill to paint): one column per bar when zoomed in, bin means of the visible
        range (plus a margin for panning) when zoomed out; re-rendered when the view changes."""
        r, img = self.result, self._post_img
        if r is None or img is None:
            return
        t = len(r.viterbi_path)
        vb = self.post_plot.getPlotItem().vb
        (x0, x1), _ = vb.viewRange()
        span = max(x1 - x0, 1.0)
        # return i is drawn centred on bar i + 1, i.e. over [i + 0.5, i + 1.5]
        first = int(np.clip(math.floor(x0 - span / 2 - 1.5), 0, t))
        last = int(np.clip(math.ceil(x1 + span / 2), 0, t))
        if last <= first:
            img.clear()
            return
        px = max(int(vb.width()), 100)
        bins = min(last - first, 2 * px * (last - first) // max(int(span), 1) + 1, 20_000)
        edges, cum = self.posterior_columns(first, last, bins)
        h = int(np.clip(vb.height(), 32, 400))
        yc = (np.arange(h) + 0.5) / h
        state = (yc[:, None, None] > cum[None, :, :-1]).sum(axis=2)  # rows = y (0 at the bottom)
        img.setImage(self._post_lut[state], autoLevels=False)
        img.setRect(QRectF(first + 0.5, 0.0, float(edges[-1] - edges[0]), 1.0))

    def _fill_regime_table(self, *_) -> None:
        r = self.result
        t = self.regime_table
        if r is None:
            return
        ann = self.ann.value()
        colors = regime_colors(r.n_states)
        path = np.asarray(r.viterbi_path)
        share = np.bincount(path, minlength=r.n_states) / max(len(path), 1)
        mean_post = np.asarray(r.posteriors).mean(axis=0)
        dur = r.expected_durations
        cols = [("regime", "states are sorted by mean return"), ("mean/bar", "mean log return per bar"),
                ("std/bar", "standard deviation of the log return per bar")]
        if ann > 0:
            cols += [("ann. mean", f"mean × {ann:g}"), ("ann. vol", f"std × √{ann:g}")]
        cols += [("duration", "expected stay in bars: 1 / (1 − p_ii)"),
                 ("time", "share of bars in this regime on the Viterbi path"),
                 ("avg P", "mean posterior probability of this regime")]
        t.clear()
        t.setColumnCount(len(cols))
        for j, (name, tip) in enumerate(cols):
            h = QTableWidgetItem(name)
            h.setToolTip(tip)
            t.setHorizontalHeaderItem(j, h)
        t.setRowCount(r.n_states)
        for k in range(r.n_states):
            mu, sd = float(r.means[k]), float(r.stds[k])
            vals: list[str] = [f"{mu:.3%}", f"{sd:.3%}"]
            if ann > 0:
                vals += [f"{mu * ann:.2%}", f"{sd * math.sqrt(ann):.2%}"]
            vals += [fmt(float(dur[k]), 4), f"{share[k]:.1%}", f"{mean_post[k]:.1%}"]
            head = QTableWidgetItem(f"  {k + 1}  ")
            head.setBackground(QBrush(QColor(*colors[k])))
            head.setForeground(QBrush(QColor("white")))
            head.setTextAlignment(Qt.AlignCenter)
            t.setItem(k, 0, head)
            for j, v in enumerate(vals, start=1):
                it = QTableWidgetItem(v)
                it.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                t.setItem(k, j, it)

    def _empty_heat(self) -> None:
        hp = self.heat.getPlotItem()
        hp.clear()
        for ax in ("left", "bottom"):
            hp.getAxis(ax).setTicks([[]])
        hint = pg.TextItem("run a fit", color=(140, 140, 140), anchor=(0.5, 0.5))
        hint.setPos(0.5, 0.5)
        hp.addItem(hint)
        hp.setXRange(0, 1, padding=0)
        hp.setYRange(0, 1, padding=0)

    @staticmethod
    def heat_label(p: float, k: int) -> str:
        """Cell text: 3 decimals up to 4 states, 2 up to 6, then compact (.72; blank below .005)."""
        if k <= 4:
            return f"{p:.3f}"
        if k <= 6:
            return f"{p:.2f}"
        if p < 0.005:
            return ""
        return "1" if p >= 0.995 else f"{p:.2f}"[1:]

    def _draw_transitions(self, r, colors) -> None:
        hp = self.heat.getPlotItem()
        hp.clear()
        k = r.n_states
        tm = np.asarray(r.transition_matrix, dtype=np.float64)
        img = pg.ImageItem(tm, axisOrder="row-major")
        cmap = pg.ColorMap([0.0, 1.0], [(255, 255, 255), (8, 69, 148)])
        img.setLookupTable(cmap.getLookupTable(nPts=256))
        img.setLevels((0.0, 1.0))
        img.setRect(QRectF(0, 0, k, k))
        hp.addItem(img)
        size = 10 if k <= 4 else (8 if k <= 6 else 7)
        for i in range(k):
            for j in range(k):
                p = tm[i, j]
                ti = pg.TextItem(self.heat_label(p, k), color="w" if p > 0.55 else "k", anchor=(0.5, 0.5))
                ti.setFont(pg.QtGui.QFont(self.font().family(), size))
                ti.setPos(j + 0.5, i + 0.5)
                hp.addItem(ti)
        ticks = [[(i + 0.5, str(i + 1)) for i in range(k)]]
        hp.getAxis("bottom").setTicks(ticks)
        hp.getAxis("left").setTicks(ticks)
        hp.setXRange(0, k, padding=0)
        hp.setYRange(0, k, padding=0)

    def _draw_ll(self, r) -> None:
        lp = self.ll_plot.getPlotItem()
        lp.clear()
        self._ll_curve = None
        if r is None:
            lp.setTitle("Log-likelihood")
            return
        h = np.asarray(r.log_likelihood_history, dtype=np.float64)
        x = np.arange(1, len(h) + 1, dtype=np.float64)
        sym = dict(symbol="o", symbolSize=4, symbolBrush=pg.mkBrush(31, 119, 180), symbolPen=None) if len(h) <= 300 else {}
        self._ll_curve = lp.plot(x, h, pen=pen("mean", 1.5), name="log-likelihood", **sym)
        lp.setTitle("Log-likelihood (best run)" if self.total_iterations > r.iterations else "Log-likelihood")
        lp.enableAutoRange()

    def _fill_stats(self, r) -> None:
        path = np.asarray(r.viterbi_path)
        starts, ends, _ = self.segments
        runs = ends - starts
        rows = [
            ("observations", f"{len(path):,} log returns"),
            ("regimes", int(r.n_states)),
            ("log-likelihood", float(r.log_likelihood)),
            ("AIC", float(r.aic)),
            ("BIC", float(r.bic)),
            ("EM iterations", int(r.iterations)),
            ("converged", bool(r.converged)),
        ]
        if self.total_iterations > r.iterations:
            rows.append(("EM iterations, all runs", int(self.total_iterations)))
        rows += [("regime switches (Viterbi)", max(len(starts) - 1, 0)),
                 ("longest run (bars)", int(runs.max()) if len(runs) else 0)]
        ts = self.true_states
        if ts is not None and len(ts) == len(self.prices) - 1 and r.n_states == len(SYNTH_MEANS):
            # the true regimes are also ordered by mean, so labels compare directly
            rows.append(("agrees with true regime", f"{np.mean(path == ts):.1%}"))
        rows += [("backend", self.result_backend), ("time", f"{self.result_seconds * 1e3:,.1f} ms")]
        self.stats.set_rows(rows)

    def regime_table_rows(self) -> list[list[str]]:
        t = self.regime_table
        return [[t.item(i, j).text().strip() for j in range(t.columnCount())] for i in range(t.rowCount())]

    # ---- hover readout ----
    def readout(self, bar: int) -> str:
        if self.prices is None or not 0 <= bar < len(self.prices):
            return " "
        parts = [f"bar {bar:,}"]
        d = _date_of(self.dates, bar)
        if d:
            parts.append(d)
        parts.append(f"price {fmt(float(self.prices[bar]))}")
        if bar >= 1 and self.observations is not None:
            parts.append(f"log return {float(self.observations[bar - 1]):+.5f}")
            r = self.result
            if r is not None:
                s = int(r.viterbi_path[bar - 1])
                starts, ends, _ = self.segments
                j = int(np.searchsorted(starts, bar - 1, side="right")) - 1
                probs = "  ".join(f"{p:.2f}" for p in np.asarray(r.posteriors[bar - 1]))
                parts += [f"regime {s + 1} (bars {starts[j] + 1:,}–{ends[j]:,})", f"P = [{probs}]"]
        return "   ".join(parts)

    def _hover_at(self, plot, pos) -> None:
        vb = plot.getPlotItem().vb
        if plot.sceneBoundingRect().contains(pos):
            self.hover.setText(self.readout(int(round(vb.mapSceneToView(pos).x()))))

    def _on_mouse(self, ev) -> None:
        self._hover_at(self.price_plot, ev[0])

    def _on_mouse_post(self, ev) -> None:
        self._hover_at(self.post_plot, ev[0])
