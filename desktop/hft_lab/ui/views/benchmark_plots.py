"""Benchmark tab: the charts (p50 bars, latency vs size, throughput vs concurrency), the table of every
figure and the summary."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from hft_lab.bench import runner as br
from hft_lab.ui.plots import LabPlot
from hft_lab.ui.widgets import set_combo_items

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


# the reference libraries' colours (RGB hex), one per reference in order of appearance
_PALETTE_HEX = "2ca02c 9467bd 8c564b 7f7f7f bcbd22 17becf e377c2 d62728 006e6e c89600 5a5aa0 a03c64"
REF_PALETTE = [tuple(bytes.fromhex(h)) for h in _PALETTE_HEX.split()]


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


class BenchmarkPlots:
    """Part of BenchmarkView (mixed in): see benchmark.py."""

    # the view's state and widgets this part draws on (BenchmarkView.__init__ / _build make them)
    suite: br.Suite | None
    _ref_colors: dict[str, tuple]
    table: QTableWidget
    summary: QPlainTextEdit
    bar_plot: LabPlot
    size_plot: LabPlot
    conc_plot: LabPlot
    bar_tier: QComboBox
    size_op: QComboBox
    conc_cell: QComboBox
    bar_legend: QLabel
    size_legend: QLabel
    conc_legend: QLabel

    @staticmethod
    def _page(plot, label: str, combo, on_change, x_label: str | None = None, log_x: bool | None = None):
        """(a chart page: `label` and `combo` (whose changes call `on_change`) above a wrapping
        legend line and `plot`, the legend label). x_label: the plot's bottom label; log_x: the
        plot's log mode (x as given, y logarithmic; None leaves it as it is)."""
        if x_label is not None:
            plot.getPlotItem().setLabel("bottom", x_label)
        if log_x is not None:
            plot.getPlotItem().setLogMode(x=log_x, y=True)
        combo.currentIndexChanged.connect(on_change)
        legend = QLabel("")
        legend.setWordWrap(True)
        w = QWidget()
        v = QVBoxLayout(w)
        v.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(QLabel(label))
        row.addWidget(combo)
        row.addStretch(1)
        v.addLayout(row)
        v.addWidget(legend)
        v.addWidget(plot, 1)
        return w, legend

    def _clear_views(self) -> None:
        self.table.setRowCount(0)
        for p in (self.bar_plot, self.size_plot, self.conc_plot):
            p.clear()
        for combo in (self.size_op, self.conc_cell):
            set_combo_items(combo, [])
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
        set_combo_items(self.size_op, list(dict.fromkeys(c.op for c in cells)))
        set_combo_items(self.conc_cell, list(dict.fromkeys(f"{c.op} · {c.size}" for c in cells if c.throughput)))

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
