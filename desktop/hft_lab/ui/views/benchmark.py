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
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
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
    QTabWidget,
)

from hft_lab.bench import runner as br
from hft_lab.ui.plots import LogAxis, make_plot
from hft_lab.ui.views.base import AnalysisView, ExportError
from hft_lab.ui.views.benchmark_plots import (
    RED,
    TABLE_COLUMNS,
    BenchmarkPlots,
)
from hft_lab.ui.widgets import form_group, side_panel, spin, status_label
from hft_lab.ui.worker import TaskOutcome, TaskRunner

log = logging.getLogger("hft_lab.ui.benchmark")


def seconds_spin() -> QDoubleSpinBox:
    """A time budget in seconds (0.01 … 600 s)."""
    box = spin(QDoubleSpinBox(), 0.01, 600.0, 1.0, decimals=2)
    box.setSuffix(" s")
    return box


FAMILY_LABELS = {
    "echo": "Echo (transport only)",
    "mean_reversion": "Mean reversion (rolling z)",
    "portfolio": "Portfolio (max Sharpe, min variance)",
    "hmm": "HMM (Baum-Welch, 3 states)",
    "sparse": "Sparse basket (lasso)",
    "hmm_mv": "HMM on 3 features (diag, full)",
}


class BenchmarkView(BenchmarkPlots, AnalysisView):
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

        timing, tf = form_group("Measurement")
        brow = QHBoxLayout()
        self.backend_checks = {"pyo3": QCheckBox("PyO3"), "grpc": QCheckBox("gRPC")}
        for cb in self.backend_checks.values():
            brow.addWidget(cb)
            cb.toggled.connect(self._update_estimate)
        tf.addRow("Backends", brow)
        self.calls = spin(QSpinBox(), 1, 1_000_000, 1)
        self.calls.setToolTip("timed calls per cell at most (the time budget stops slow cells earlier, after the minimum)")
        self.min_calls = spin(QSpinBox(), 1, 10_000, 1)
        self.cell_seconds = seconds_spin()
        self.cell_seconds.setToolTip("time budget of a timed cell (per backend and per reference)")
        self.concurrency = QLineEdit()
        self.concurrency.setToolTip("concurrent callers to measure, e.g. 1, 2, 4 (threads calling at once)")
        self.conc_seconds = seconds_spin()
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
        bar_page, self.bar_legend = self._page(self.bar_plot, "Size of each operation:", self.bar_tier, self._draw_bars)

        self.size_plot = make_plot(
            "p50 latency vs payload size (log-log)",
            "p50 latency (µs)",
            legend=False,
            axisItems={"left": LogAxis("left"), "bottom": LogAxis("bottom")},
        )
        self.size_op = QComboBox()
        size_page, self.size_legend = self._page(
            self.size_plot, "Operation:", self.size_op, self._draw_sizes, x_label="payload (float64 values sent)", log_x=True
        )

        self.conc_plot = make_plot(
            "Throughput vs concurrent callers (log scale)", "calls per second", legend=False, axisItems={"left": LogAxis("left")}
        )
        self.conc_cell = QComboBox()
        conc_page, self.conc_legend = self._page(
            self.conc_plot, "Operation and size:", self.conc_cell, self._draw_concurrency, x_label="concurrent callers (threads)"
        )

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

        self.set_main(self.plot_tabs, hover=False)

        self.run_button.clicked.connect(lambda: self.run())
        self.cancel_button.clicked.connect(self.cancel)

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
