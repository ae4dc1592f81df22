"""Benchmark tab: both backends (and the reference libraries) on a matrix of operations x payload
sizes, measured by hft_lab.bench.runner on a worker thread.

Left: what to measure (operations, editable sizes, backends, calls, time budget, concurrency list,
references), Run / Cancel (cancel stops between calls; the partial results stay), progress per
finished cell. Right: p50 latency bars (log axis), latency vs payload size (log-log), throughput vs
concurrent callers, the table of every figure, and a summary (machine, targets, parity). Parity
failures (the backends gave different answers) are shown in red everywhere: such timings compare
nothing. Export: CSV, JSON, PNG.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from hft_lab.bench import runner as br
from hft_lab.ui.plots import LogAxis, make_plot
from hft_lab.ui.views.base import AnalysisView, ExportError
from hft_lab.ui.widgets import side_panel, status_label
from hft_lab.ui.worker import TaskOutcome, TaskRunner

log = logging.getLogger("hft_lab.ui.benchmark")

FAMILY_LABELS = {
    "echo": "Echo (transport only)",
    "mean_reversion": "Mean reversion (rolling z)",
    "portfolio": "Portfolio (max Sharpe, min variance)",
    "hmm": "HMM (Baum-Welch, 3 states)",
    "sparse": "Sparse basket (lasso)",
}
SHORT_OP = {
    "echo": "echo",
    "mean_reversion": "mean rev.",
    "portfolio:max_sharpe": "max Sharpe",
    "portfolio:min_variance": "min var.",
    "hmm": "HMM",
    "sparse:lasso": "lasso",
}
BACKEND_COLORS = {"pyo3": (31, 119, 180), "grpc": (255, 127, 14)}
# what the user reads for each column (the runner's ids stay in CSV/JSON exports)
DISPLAY_NAMES = {
    "pyo3": "PyO3 (in-process)",
    "grpc": "gRPC (grpcd)",
    "python-grpcio": "Python grpcio server",
    "pandas": "pandas z-score",
    "pandas-rolling-std": "pandas rolling().std()",
    "cvxpy+clarabel": "cvxpy + Clarabel",
    "pyportfolioopt": "PyPortfolioOpt",
    "hmmlearn-log": "hmmlearn (log)",
    "hmmlearn-scaling": "hmmlearn (scaling)",
    "sklearn": "scikit-learn Lasso",
    "sklearn-gram": "scikit-learn Lasso (Gram)",
    "grpc-bytes": "gRPC bytes",
    "grpc-packed": "gRPC packed doubles",
}


def display_name(name: str) -> str:
    return DISPLAY_NAMES.get(name, name)


def short_time(us: float) -> str:
    """A bar label: 3 significant digits with a unit (1.6 µs, 226 µs, 8.14 ms, 202 ms, 1.85 s)."""
    for scale, unit in ((1e6, "s"), (1e3, "ms"), (1.0, "µs")):
        if us >= scale:
            v = us / scale
            return f"{v:.3g} {unit}" if v < 1000 else f"{v:,.0f} {unit}"
    return f"{us * 1e3:.3g} ns"


def legend_html(names, color) -> str:
    return "&nbsp;&nbsp; ".join(
        f"<span style='white-space:nowrap'><span style='color:rgb{color(n)}; font-size:14pt'>&#9632;</span>"
        f"&nbsp;{display_name(n).replace('-', '&#8209;').replace(' ', '&nbsp;')}</span>"
        for n in names
    )


REF_PALETTE = [
    (44, 160, 44),
    (148, 103, 189),
    (140, 86, 75),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
    (227, 119, 194),
    (214, 39, 40),
    (0, 110, 110),
    (200, 150, 0),
    (90, 90, 160),
    (160, 60, 100),
]
# one fixed colour per reference library (stable from run to run)
REF_COLORS = {
    name: REF_PALETTE[i % len(REF_PALETTE)]
    for i, name in enumerate(dict.fromkeys(r.name for op in br.OPERATIONS.values() for r in op.references))
}
TABLE_COLUMNS = [
    "operation",
    "size",
    "backend",
    "parity",
    "calls",
    "failures",
    "p50",
    "p95",
    "p99",
    "speedup",
    "ops/s (1 caller)",
    "ops/s @ C callers",
    "accuracy vs Rust",
    "note",
]
RED = QColor(198, 40, 40)


def _us_label(exp: int) -> str:
    v = 10.0**exp
    if v >= 1e6:
        return f"{v / 1e6:g} s"
    if v >= 1e3:
        return f"{v / 1e3:g} ms"
    if v >= 1:
        return f"{v:g} µs"
    return f"{v * 1e3:g} ns"


class BenchmarkView(AnalysisView):
    """On the AnalysisView lifecycle (start, cancel, stale results dropped, status line), with its
    own panel: a real progress bar (cells done), the suite's own CSV/JSON formats and a PNG."""

    cell_added = Signal(object)  # Cell (GUI thread, once per finished cell)
    # result_shown: TaskOutcome of a finished run (GUI thread)
    TASK_NAME = "benchmark"

    def __init__(self, runner: TaskRunner, parent=None):
        super().__init__(runner, None, parent)
        self.suite: br.Suite | None = None  # the results shown (partial while running / after a cancel)
        self._alive: set[int] = set()  # tasks whose worker function has not returned yet
        self._ref_colors: dict[str, tuple] = {}
        self._preset = br.BenchConfig.full()  # what the widgets do not show (HMM iterations, lasso λ, …)
        self._loading = False
        self._build()
        self.set_config(br.BenchConfig.full())
        runner.exited.connect(self._on_exited)

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        ops = QGroupBox("Operations and payload sizes")
        og = QGridLayout(ops)
        self.op_checks: dict[str, QCheckBox] = {}
        self.size_edits: dict[str, QLineEdit] = {}
        for i, fam in enumerate(br.FAMILIES):
            cb = QCheckBox(FAMILY_LABELS[fam])
            ed = QLineEdit()
            ed.setToolTip(f"comma-separated sizes: {br.SIZE_HELP[fam]}")
            ed.setPlaceholderText(br.SIZE_HELP[fam])
            cb.toggled.connect(ed.setEnabled)
            ed.textEdited.connect(self._update_estimate)
            cb.toggled.connect(self._update_estimate)
            og.addWidget(cb, 2 * i, 0)
            og.addWidget(ed, 2 * i + 1, 0)
            self.op_checks[fam] = cb
            self.size_edits[fam] = ed

        timing = QGroupBox("Measurement")
        tf = QFormLayout(timing)
        brow = QHBoxLayout()
        self.backend_checks = {"pyo3": QCheckBox("PyO3"), "grpc": QCheckBox("gRPC")}
        for cb in self.backend_checks.values():
            brow.addWidget(cb)
            cb.toggled.connect(self._update_estimate)
        tf.addRow("Backends", brow)
        self.calls = QSpinBox()
        self.calls.setRange(1, 1_000_000)
        self.calls.setToolTip("timed calls per cell at most (the time budget stops slow cells earlier, after the minimum)")
        self.min_calls = QSpinBox()
        self.min_calls.setRange(1, 10_000)
        self.cell_seconds = QDoubleSpinBox()
        self.cell_seconds.setRange(0.01, 600.0)
        self.cell_seconds.setDecimals(2)
        self.cell_seconds.setSuffix(" s")
        self.cell_seconds.setToolTip("time budget of a timed cell (per backend and per reference)")
        self.concurrency = QLineEdit()
        self.concurrency.setToolTip("concurrent callers to measure, e.g. 1, 2, 4 (threads calling at once)")
        self.conc_seconds = QDoubleSpinBox()
        self.conc_seconds.setRange(0.01, 600.0)
        self.conc_seconds.setDecimals(2)
        self.conc_seconds.setSuffix(" s")
        self.references = QCheckBox("reference libraries (when installed)")
        self.references.setToolTip("pandas, cvxpy+Clarabel, PyPortfolioOpt, hmmlearn, scikit-learn, a plain Python grpcio server")
        tf.addRow("Calls per cell (max)", self.calls)
        tf.addRow("Calls per cell (min)", self.min_calls)
        tf.addRow("Time per cell", self.cell_seconds)
        tf.addRow("Concurrent callers", self.concurrency)
        tf.addRow("Time per level", self.conc_seconds)
        tf.addRow(self.references)
        presets = QHBoxLayout()
        self.quick_button = QPushButton("Quick preset")
        self.full_button = QPushButton("Full preset")
        self.quick_button.clicked.connect(lambda: self.set_config(br.BenchConfig.quick_config()))
        self.full_button.clicked.connect(lambda: self.set_config(br.BenchConfig.full()))
        presets.addWidget(self.quick_button)
        presets.addWidget(self.full_button)
        tf.addRow(presets)

        self.run_button = QPushButton("Run")
        self.run_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("")  # "%v / %m cells" once a run starts (not "0 / 1 cells" before)
        self.estimate = QLabel("")
        self.estimate.setWordWrap(True)
        self.status = status_label()  # wraps, selectable, at most 6 lines (the full text in its tooltip)

        export = QGroupBox("Export")
        eb = QHBoxLayout(export)
        self.csv_button = QPushButton("CSV…")
        self.json_button = QPushButton("JSON…")
        self.png_button = QPushButton("PNG…")
        for b in (self.csv_button, self.json_button, self.png_button):
            b.setEnabled(False)
            eb.addWidget(b)
        self.csv_button.clicked.connect(lambda: self.export_dialog("csv"))
        self.json_button.clicked.connect(lambda: self.export_dialog("json"))
        self.png_button.clicked.connect(lambda: self.export_dialog("png"))

        left_w = side_panel([ops, timing], [buttons, self.progress, self.estimate, self.status, export], width=360)
        self.left_panel = left_w

        # --- charts
        self.bar_plot = make_plot("p50 latency per operation and backend (log scale; lower is faster)", "p50 latency")
        self.bar_plot.getPlotItem().showGrid(x=False, y=True, alpha=0.25)
        self.bar_plot.table_provider = self._bar_table
        self.bar_tier = QComboBox()
        self.bar_tier.addItems(["smallest size", "middle size", "largest size"])
        self.bar_tier.setCurrentIndex(2)
        self.bar_tier.currentIndexChanged.connect(self._draw_bars)
        self.bar_legend = QLabel("")
        self.bar_legend.setWordWrap(True)
        bar_page = self._page(self.bar_plot, QLabel("Size of each operation:"), self.bar_tier, self.bar_legend)

        self.size_plot = make_plot(
            "p50 latency vs payload size (log-log)",
            "p50 latency (µs)",
            legend=False,
            axisItems={"left": LogAxis("left"), "bottom": LogAxis("bottom")},
        )
        self.size_plot.getPlotItem().setLabel("bottom", "payload (float64 values sent)")
        self.size_plot.getPlotItem().setLogMode(x=True, y=True)
        self.size_op = QComboBox()
        self.size_op.currentIndexChanged.connect(self._draw_sizes)
        self.size_legend = QLabel("")
        self.size_legend.setWordWrap(True)
        size_page = self._page(self.size_plot, QLabel("Operation:"), self.size_op, self.size_legend)

        self.conc_plot = make_plot(
            "Throughput vs concurrent callers (log scale)", "calls per second", legend=False, axisItems={"left": LogAxis("left")}
        )
        self.conc_plot.getPlotItem().setLabel("bottom", "concurrent callers (threads)")
        self.conc_plot.getPlotItem().setLogMode(x=False, y=True)
        self.conc_cell = QComboBox()
        self.conc_cell.currentIndexChanged.connect(self._draw_concurrency)
        self.conc_legend = QLabel("")
        self.conc_legend.setWordWrap(True)
        conc_page = self._page(self.conc_plot, QLabel("Operation and size:"), self.conc_cell, self.conc_legend)

        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(TABLE_COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)

        self.summary = QPlainTextEdit()
        self.summary.setReadOnly(True)
        self.summary.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        f = self.summary.font()
        f.setFamily("DejaVu Sans Mono")
        f.setStyleHint(f.StyleHint.Monospace)
        self.summary.setFont(f)

        self.plot_tabs = QTabWidget()
        self.plot_tabs.addTab(bar_page, "Latency (p50)")
        self.plot_tabs.addTab(size_page, "Latency vs size")
        self.plot_tabs.addTab(conc_page, "Throughput vs concurrency")
        self.plot_tabs.addTab(self.table, "Table")
        self.plot_tabs.addTab(self.summary, "Machine && targets")

        self.set_main(self.plot_tabs)

        self.run_button.clicked.connect(lambda: self.run())
        self.cancel_button.clicked.connect(self.cancel)

    @staticmethod
    def _page(plot, label, combo, legend=None) -> QWidget:
        w = QWidget()
        v = QVBoxLayout(w)
        v.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(label)
        row.addWidget(combo)
        row.addStretch(1)
        v.addLayout(row)
        if legend is not None:
            v.addWidget(legend)
        v.addWidget(plot, 1)
        return w

    # ------------------------------------------------------------------ configuration
    def set_config(self, cfg: br.BenchConfig) -> None:
        self._preset = cfg
        self._loading = True
        for fam in br.FAMILIES:
            self.op_checks[fam].setChecked(fam in cfg.operations)
            self.size_edits[fam].setText(", ".join(cfg.sizes.get(fam, br.DEFAULT_SIZES[fam])))
            self.size_edits[fam].setEnabled(fam in cfg.operations)
        for name, cb in self.backend_checks.items():
            cb.setChecked(name in cfg.backends)
        self.calls.setValue(cfg.calls)
        self.min_calls.setValue(cfg.min_calls)
        self.cell_seconds.setValue(cfg.cell_seconds)
        self.concurrency.setText(", ".join(str(c) for c in cfg.concurrency))
        self.conc_seconds.setValue(cfg.concurrency_seconds)
        self.references.setChecked(cfg.references)
        self._loading = False
        self._update_estimate()

    def config(self) -> br.BenchConfig:
        """The configuration from the widgets (ValueError with a readable message if invalid)."""
        ops = [f for f in br.FAMILIES if self.op_checks[f].isChecked()]
        if not ops:
            raise ValueError("choose at least one operation")
        sizes = dict(self._preset.sizes)
        for fam in br.FAMILIES:
            if fam in ops:
                try:
                    sizes[fam] = br.parse_sizes(fam, self.size_edits[fam].text())
                except ValueError as e:
                    raise ValueError(f"{FAMILY_LABELS[fam]}: {e}") from None
        backends = [b for b, cb in self.backend_checks.items() if cb.isChecked()]
        if not backends:
            raise ValueError("choose at least one backend")
        conc = br.parse_int_list(self.concurrency.text(), "concurrent callers")
        return dataclasses.replace(
            self._preset,
            operations=ops,
            sizes=sizes,
            backends=backends,
            calls=self.calls.value(),
            min_calls=min(self.min_calls.value(), self.calls.value()),
            reference_min_calls=min(self._preset.reference_min_calls, self.calls.value()),
            cell_seconds=self.cell_seconds.value(),
            concurrency=conc,
            concurrency_seconds=self.conc_seconds.value(),
            references=self.references.isChecked(),
            sections=[],  # the stream/transport sections are in the CLI (`make bench`)
        )

    def _update_estimate(self, *_) -> None:
        if self._loading:
            return
        try:
            cfg = self.config()
            n = sum(len(cfg.backends) + (len(op.references) if cfg.references else 0) for op, _ in br.plan(cfg))
            self.estimate.setText(f"{n} cells (at most; references that are not installed are left out).")
            self.estimate.setStyleSheet("")
        except ValueError as e:
            self.estimate.setText(str(e))
            self.estimate.setStyleSheet(f"color: {RED.name()}")

    # ------------------------------------------------------------------ run / cancel
    def run(self) -> int | None:
        """Start a run with the configuration in the widgets (nothing starts if it is invalid)."""
        if self._alive:
            self.set_status("The previous run is still stopping; try again in a moment.")
            return None
        try:
            cfg = self.config()
        except ValueError as e:
            self.set_status(f"Cannot run: {e}", error=True)
            return None
        router = self.runner.router
        notes = []
        if "grpc" in cfg.backends:
            try:
                state = router.grpc_state()
            except Exception as e:  # pragma: no cover - defensive
                state = f"unknown ({e})"
            if state != "serving":
                notes.append(f"gRPC backend is {state}: its cells will say 'not available'")
        if "pyo3" in cfg.backends and not router.pyo3.is_available():
            notes.append("the PyO3 extension is not built: its cells will say 'not available'")
        self.suite = br.Suite(config=cfg.to_dict())
        self._ref_colors = {}
        self._clear_views()
        self.progress.setRange(0, max(1, br.count_cells(cfg, cfg.backends)))
        self.progress.setValue(0)
        self.progress.setFormat("%v / %m cells")
        backends = {"pyo3": router.pyo3, "grpc": router.grpc}
        backends = {k: v for k, v in backends.items() if k in cfg.backends}

        def benchmark(_resolved_backend, ctx):
            return br.run_suite(config=cfg, backends=backends, cancel=ctx, progress=ctx.partial)

        tid = self.start(benchmark, done=self._show_result, status="Running… " + " ".join(n + "." for n in notes))
        self._alive.add(tid)
        self.update_buttons()
        return tid

    def on_cancelled(self) -> None:
        n = len(self.suite.cells) if self.suite else 0
        self.set_status(f"Cancelled after {n} cells (the partial results stay; the current call finishes in the background).")
        if self.suite is not None:
            self.suite.cancelled = True
            self._show_summary()

    def show_busy(self, busy: bool) -> None:
        pass  # the progress bar counts cells (on_partial)

    def update_buttons(self) -> None:
        busy = self.running
        self.run_button.setEnabled(not busy and not self._alive)
        self.cancel_button.setEnabled(busy)
        has = bool(self.suite and self.suite.cells)
        for b in (self.csv_button, self.json_button, self.png_button):
            b.setEnabled(has)

    def _on_exited(self, tid: int) -> None:
        self._alive.discard(tid)
        self.update_buttons()

    def on_partial(self, ev) -> None:
        """One progress event of the running suite (a finished cell, the machine, a message)."""
        if self.suite is None:
            return
        if ev.machine:
            self.suite.machine = ev.machine
        if ev.cell is not None:
            self.suite.cells.append(ev.cell)
            self.progress.setMaximum(max(ev.total, 1))
            self.progress.setValue(ev.done)
            self._append_row(ev.cell)
            self._refresh_choices()
            self._draw_all()
            c = ev.cell
            if c.parity == "FAILED" and c.kind == "backend":
                self.status.setStyleSheet(f"color: {RED.name()}; font-weight: bold")
                self.status.setText(f"PARITY FAILED on {c.op} {c.size}: {c.parity_detail}")
            elif not self.status.styleSheet():
                self.status.setText(f"[{ev.done}/{ev.total}] {br._cell_line(c)}")
            self.cell_added.emit(c)
            self.update_buttons()
        elif ev.message and not self.status.styleSheet():
            self.status.setText(ev.message)

    def _show_result(self, out: TaskOutcome) -> None:
        suite: br.Suite = out.value
        self.show_suite(suite)
        fails = suite.parity_failures
        skipped = sum(1 for c in suite.cells if c.skipped)
        if fails:
            self.status.setStyleSheet(f"color: {RED.name()}; font-weight: bold")
            where = "; ".join(sorted({f"{c.op} {c.size}" for c in fails}))
            self.status.setText(f"PARITY FAILED (the backends gave different answers; those timings compare nothing): {where}")
        else:
            extra = f", {skipped} skipped (see the table)" if skipped else ""
            self.set_status(
                f"Done in {suite.seconds:.1f} s: {len(suite.cells)} cells{extra}; every backend pair gave identical results."
            )

    # ------------------------------------------------------------------ showing results
    def show_suite(self, suite: br.Suite) -> None:
        """Show a finished (or loaded) suite: table, charts, summary."""
        self.suite = suite
        self._clear_views()
        for c in suite.cells:
            self._append_row(c)
        self.progress.setMaximum(max(1, len(suite.cells)))
        self.progress.setValue(len(suite.cells))
        self._refresh_choices()
        self._draw_all()
        self._show_summary()
        self.update_buttons()

    def _clear_views(self) -> None:
        self.table.setRowCount(0)
        for p in (self.bar_plot, self.size_plot, self.conc_plot):
            p.clear()
        self.size_op.blockSignals(True)
        self.size_op.clear()
        self.size_op.blockSignals(False)
        self.conc_cell.blockSignals(True)
        self.conc_cell.clear()
        self.conc_cell.blockSignals(False)
        self.summary.setPlainText("")
        self.size_legend.setText("")
        self.conc_legend.setText("")

    def _append_row(self, c: br.Cell) -> None:
        r = self.table.rowCount()
        self.table.insertRow(r)
        if c.skipped:
            vals = [
                c.op,
                c.size,
                display_name(c.backend),
                c.parity,
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                f"skipped: {c.skipped}" + (f" ({c.note})" if c.note else ""),
            ]
        else:
            tail = c.note
            if "iterations" in c.extra:
                tail = f"{c.extra['iterations']} iterations; {tail}" if tail else f"{c.extra['iterations']} iterations"
            if "solver_time_us_p50" in c.extra:
                tail += f"; Clarabel solve alone p50 {br.fmt_us(c.extra['solver_time_us_p50'])}"
            if c.parity == "FAILED":
                tail = f"PARITY FAILED: {c.parity_detail}"
            vals = [
                c.op,
                c.size,
                display_name(c.backend),
                c.parity,
                f"{c.calls:,}",
                f"{c.failures:,}",
                br.fmt_us(c.p50_us),
                br.fmt_us(c.p95_us),
                br.fmt_us(c.p99_us),
                br.speedup_text(c),
                br.fmt_rate(c.ops_per_s),
                br.throughput_text(c),
                c.accuracy,
                tail,
            ]
        for j, v in enumerate(vals):
            it = QTableWidgetItem(str(v))
            if j in (4, 5, 6, 7, 8, 10):
                it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if c.parity == "FAILED":
                it.setForeground(QBrush(RED))
                f = it.font()
                f.setBold(True)
                it.setFont(f)
            elif c.skipped:
                it.setForeground(QBrush(QColor(120, 120, 120)))
            if j == 5 and c.failures:
                it.setForeground(QBrush(RED))
            self.table.setItem(r, j, it)
        if r < 3 or r % 10 == 0:
            self._fit_columns()

    def _fit_columns(self) -> None:
        """Every column wide enough for its content (the table scrolls sideways), except the
        note, which is capped so the figures before it stay in view."""
        self.table.resizeColumnsToContents()
        note = self.table.columnCount() - 1
        self.table.setColumnWidth(note, min(self.table.columnWidth(note), 420))

    def _measured(self) -> list[br.Cell]:
        return [c for c in (self.suite.cells if self.suite else []) if c.ok]

    def _refresh_choices(self) -> None:
        cells = self._measured()
        ops = list(dict.fromkeys(c.op for c in cells))
        if [self.size_op.itemText(i) for i in range(self.size_op.count())] != ops:
            cur = self.size_op.currentText()
            self.size_op.blockSignals(True)
            self.size_op.clear()
            self.size_op.addItems(ops)
            if cur in ops:
                self.size_op.setCurrentText(cur)
            self.size_op.blockSignals(False)
        keys = list(dict.fromkeys(f"{c.op} · {c.size}" for c in cells if c.throughput))
        if [self.conc_cell.itemText(i) for i in range(self.conc_cell.count())] != keys:
            cur = self.conc_cell.currentText()
            self.conc_cell.blockSignals(True)
            self.conc_cell.clear()
            self.conc_cell.addItems(keys)
            if cur in keys:
                self.conc_cell.setCurrentText(cur)
            self.conc_cell.blockSignals(False)

    def _color(self, name: str) -> tuple:
        if name in BACKEND_COLORS:
            return BACKEND_COLORS[name]
        if name in REF_COLORS:
            return REF_COLORS[name]
        if name not in self._ref_colors:
            self._ref_colors[name] = REF_PALETTE[(len(REF_COLORS) + len(self._ref_colors)) % len(REF_PALETTE)]
        return self._ref_colors[name]

    def _draw_all(self) -> None:
        self._draw_bars()
        self._draw_sizes()
        self._draw_concurrency()

    def _draw_bars(self, *_) -> None:
        """Grouped bars: one group per operation (at the chosen size tier), one bar per column,
        log axis drawn by hand (bars go from a floor to log10(p50)), value written above each bar."""
        plot = self.bar_plot.getPlotItem()
        plot.clear()
        self.bar_legend.setText("")
        cells = self._measured()
        if not cells:
            return
        tier = self.bar_tier.currentIndex()
        groups: list[tuple[str, str, list[br.Cell]]] = []
        for op in dict.fromkeys(c.op for c in cells):
            sizes = list(dict.fromkeys(c.size for c in cells if c.op == op))
            size = sizes[0] if tier == 0 else sizes[-1] if tier == 2 else sizes[(len(sizes) - 1) // 2]
            g = [c for c in cells if c.op == op and c.size == size and math.isfinite(c.p50_us) and c.p50_us > 0]
            if g:
                groups.append((op, size, g))
        if not groups:
            return
        values = [c.p50_us for _, _, g in groups for c in g]
        lo = math.floor(math.log10(min(values))) - 0.3
        hi = math.log10(max(values))
        w = 0.84 / max(len(g) for _, _, g in groups)
        per_col: dict[str, list[tuple[float, float, bool]]] = {}
        labels = len(values) <= 48
        for i, (_op, _size, g) in enumerate(groups):
            for j, c in enumerate(g):
                x = i + (j - (len(g) - 1) / 2) * w
                top = math.log10(c.p50_us)
                per_col.setdefault(c.backend, []).append((x, top, c.parity == "FAILED"))
                if labels:
                    t = pg.TextItem(
                        short_time(c.p50_us), color=(RED if c.parity == "FAILED" else (40, 40, 40)), anchor=(0, 0.5), angle=90
                    )
                    f = t.textItem.font()
                    f.setPointSizeF(7.5)
                    t.setFont(f)
                    t.setPos(x, top)
                    plot.addItem(t)
        for name, bars in per_col.items():
            xs = np.array([b[0] for b in bars])
            tops = np.array([b[1] for b in bars])
            col = self._color(name)
            pens = [pg.mkPen(RED, width=3) if b[2] else pg.mkPen(60, 60, 60) for b in bars]
            plot.addItem(
                pg.BarGraphItem(
                    x=xs, y0=np.full(len(xs), lo), y1=tops, width=w * 0.9, brush=pg.mkBrush(*col), pens=pens, name=name
                )
            )
        plot.getAxis("bottom").setTicks([[(i, f"{SHORT_OP.get(op, op)} {size}") for i, (op, size, _) in enumerate(groups)], []])
        plot.getAxis("left").setTicks([[(k, _us_label(k)) for k in range(int(math.floor(lo)), int(math.ceil(hi + 1)) + 1)], []])
        # room above the tallest bar for its (vertical) value label, whatever the plot's height
        vb_h = max(plot.vb.height(), 120.0)
        label_px = 62.0
        span = hi - lo
        head = span * label_px / max(vb_h - label_px, 40.0) if labels else 0.2
        plot.setYRange(lo, hi + max(head, 0.2), padding=0)
        plot.setXRange(-0.6, len(groups) - 0.4, padding=0)
        legend = plot.legend
        if legend is not None:
            legend.clear()
            legend.setVisible(False)
        self.bar_legend.setText(legend_html(per_col, self._color))

    def _bar_table(self):
        """What the latency bars show, as a table (the bars are drawn on a hand-made log axis)."""
        import pandas as pd

        cells = self._measured()
        if not cells:
            return None
        rows = [
            {
                "operation": c.op,
                "size": c.size,
                "backend": display_name(c.backend),
                "id": c.backend,
                "p50_us": c.p50_us,
                "p95_us": c.p95_us,
                "p99_us": c.p99_us,
                "parity": c.parity,
            }
            for c in cells
        ]
        return pd.DataFrame(rows).set_index(["operation", "size"])

    def _draw_sizes(self, *_) -> None:
        plot = self.size_plot.getPlotItem()
        plot.clear()
        op = self.size_op.currentText()
        cells = [c for c in self._measured() if c.op == op and math.isfinite(c.p50_us)]
        for name in dict.fromkeys(c.backend for c in cells):
            pts = sorted((c.payload_values, c.p50_us) for c in cells if c.backend == name)
            xs = np.array([p[0] for p in pts], dtype=float)
            ys = np.array([p[1] for p in pts], dtype=float)
            col = self._color(name)
            style = Qt.PenStyle.SolidLine if name in BACKEND_COLORS else Qt.PenStyle.DashLine
            plot.plot(
                xs,
                ys,
                pen=pg.mkPen(col, width=2, style=style),
                symbol="o",
                symbolSize=7,
                symbolBrush=pg.mkBrush(*col),
                symbolPen=pg.mkPen(col),
                name=display_name(name),
            )
        self.size_legend.setText(legend_html(dict.fromkeys(c.backend for c in cells), self._color))

    def _draw_concurrency(self, *_) -> None:
        plot = self.conc_plot.getPlotItem()
        plot.clear()
        key = self.conc_cell.currentText()
        cells = [c for c in self._measured() if f"{c.op} · {c.size}" == key and c.throughput]
        conc_values: set[int] = set()
        for c in cells:
            ks = sorted(int(k) for k in c.throughput)
            conc_values.update(ks)
            ys = np.array([c.throughput[k]["ops_per_s"] for k in ks], dtype=float)
            col = self._color(c.backend)
            plot.plot(
                np.array(ks, dtype=float),
                ys,
                pen=pg.mkPen(col, width=2),
                symbol="o",
                symbolSize=7,
                symbolBrush=pg.mkBrush(*col),
                symbolPen=pg.mkPen(col),
                name=display_name(c.backend),
            )
        self.conc_legend.setText(legend_html(dict.fromkeys(c.backend for c in cells), self._color))
        if conc_values:
            plot.getAxis("bottom").setTicks([[(k, str(k)) for k in sorted(conc_values)], []])

    def _show_summary(self) -> None:
        s = self.suite
        if s is None:
            return
        br.derive(s)
        lines = []
        if s.machine:
            lines.append(br.describe_machine(s.machine))
        else:
            lines.append(br.describe_machine(br.machine()))
        lines.append("")
        if s.cancelled:
            lines.append("CANCELLED: partial results.")
        fails = s.parity_failures
        if fails:
            lines.append("PARITY FAILED (the backends gave different answers; those timings compare nothing):")
            for c in fails:
                lines.append(f"  {c.op} {c.size} {c.backend}: {c.parity_detail}")
        else:
            checked = sum(1 for c in s.cells if c.kind == "backend" and c.parity == "ok")
            lines.append(
                f"Parity: {checked} backend cells checked, all identical."
                if checked
                else "Parity: nothing checked (one backend only?)."
            )
        skipped = [c for c in s.cells if c.skipped]
        if skipped:
            lines.append("Skipped (never faked):")
            for c in skipped:
                lines.append(f"  {c.op} {c.size} {c.backend}: {c.skipped}")
        lines.append("")
        ts = br.target_status(s)
        if ts:
            lines.append("Targets (from this run):")
            for t in ts:
                if t["status"] in ("INVALID", "SKIPPED"):
                    lines.append(f"  {t['status']} {t['label']}: {t['why']}")
                else:
                    lines.append(f"  {t['status']:<7} {t['label']}: {t['value']:,.2f} (target {t['op']} {t['target']:,g})")
        else:
            lines.append(
                "No target applies to these sizes "
                "(they are checked at 1k/1M prices, 50/500 assets, 100k HMM observations, 10000x500 lasso)."
            )
        lines.append("")
        lines.append(
            "Method: parity check first; warm-up; calls timed one by one (perf_counter_ns); failures counted, never timed;"
        )
        lines.append("throughput with C threads calling at once; speedup = other p50 / this p50 (per EM iteration for HMM).")
        self.summary.setPlainText("\n".join(lines))

    # ------------------------------------------------------------------ export
    def _require(self) -> br.Suite:
        if self.suite is None or not self.suite.cells:
            raise ExportError("no result to export: run the benchmark first")
        return self.suite

    def session_items(self) -> list:
        return []  # the suite has its own formats (below), not a result dataclass

    def export_csv(self, path) -> Path:  # type: ignore[override]
        p = Path(path)
        p.write_text(br.to_csv(self._require()), encoding="utf-8")
        return p

    def export_json(self, path) -> Path:
        s = self._require()
        if not s.machine:
            s.machine = br.machine()
        p = Path(path)
        p.write_text(br.to_json(s), encoding="utf-8")
        return p

    def export_png(self, path) -> Path:
        """The chart (or table) currently shown, as a PNG."""
        self._require()
        p = Path(path)
        w = self.plot_tabs.currentWidget()
        if not w.grab().save(str(p), "PNG"):
            raise OSError(f"could not write {p}")
        return p

    def export_dialog(self, kind: str) -> None:
        from hft_lab.ui.files import save_file_name

        if self.suite is None or not self.suite.cells:
            return
        up = kind.upper()
        path = save_file_name(self, "Export benchmark", f"benchmark.{kind}", f"{up} files (*.{kind})")
        if not path:
            return
        try:
            {"csv": self.export_csv, "json": self.export_json, "png": self.export_png}[kind](path)
        except (OSError, ValueError) as e:
            self.set_status(f"Export failed: {e}", error=True)
            return
        self.set_status(f"Saved {path}.")
