"""Portfolio tab: the plots (weights, risk contributions, efficient frontier with non-overlapping
labels), the result tables and the hover readout."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import QLabel, QTableWidget, QTableWidgetItem

from hft_lab.ui.plots import LabPlot, pen
from hft_lab.ui.views.base import ViewMixin
from hft_lab.ui.widgets import StatsTable, fmt, pct
from hft_lab.ui.worker import TaskOutcome

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


POSITIVE = (31, 119, 180)


NEGATIVE = (214, 39, 40)


RISK = (255, 127, 14)


PORTFOLIO = (214, 39, 40)


MAX_ASSET_LABELS = 40  # more text labels on the frontier plot would be unreadable (tooltips remain)


# label positions tried in turn: right of the point, left, above, below (TextItem anchors)
LABEL_ANCHORS = [(-0.12, 0.5), (1.12, 0.5), (0.5, 1.15), (0.5, -0.15)]


# further positions for the largest holdings' labels: the four diagonals
DIAGONAL_ANCHORS = [(-0.05, 1.1), (1.05, 1.1), (-0.05, -0.1), (1.05, -0.1)]


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


def _plot(title: str, bottom: pg.AxisItem, left: pg.AxisItem, left_label: str, bottom_label: str = "") -> LabPlot:
    w = LabPlot(title, axisItems={"bottom": bottom, "left": left}, legend=False)
    p = w.getPlotItem()
    p.showGrid(x=not isinstance(bottom, NamesAxis), y=True, alpha=0.2)
    p.setLabel("left", left_label)
    if bottom_label:
        p.setLabel("bottom", bottom_label)
    p.layout.setContentsMargins(0, 0, 14, 0)  # room for the last x tick label
    return w


class PortfolioPlots(ViewMixin):
    """Part of PortfolioView (mixed in): see portfolio.py."""

    # the view's state and widgets this part draws on (PortfolioView.__init__ / _build make them)
    outcome: TaskOutcome | None
    asset_returns: np.ndarray | None
    asset_volatilities: np.ndarray | None
    run_inputs: dict | None
    frontier_plot: LabPlot
    frontier_legend: QLabel
    weights_plot: LabPlot
    risk_plot: LabPlot
    weights_axis: NamesAxis
    risk_axis: NamesAxis
    results: QTableWidget
    stats: StatsTable
    _label_font: QFont

    # ---- drawing (GUI thread; at most a few hundred items) ----
    def _shown(self) -> tuple[Any, dict, TaskOutcome]:
        """(result, its inputs, its outcome) of the result on show: drawing needs all three."""
        if self.result is None or self.run_inputs is None or self.outcome is None:
            raise LookupError("no portfolio result on show")
        return self.result, self.run_inputs, self.outcome

    def _draw(self) -> None:
        r, inp, _ = self._shown()
        names = list(r.asset_names)
        n = len(names)
        x = np.arange(n, dtype=np.float64)
        w = np.asarray(r.weights, dtype=np.float64)
        rc = np.asarray(r.risk_contributions, dtype=np.float64)

        def bars(plot, axis, values, color):
            """One bar per asset (negative ones red) on a cleared plot with a zero line."""
            pi = plot.getPlotItem()
            pi.clear()
            axis.set_names(names)
            brushes = [pg.mkBrush(*(color if v >= 0 else NEGATIVE)) for v in values]
            item = pg.BarGraphItem(x=x, height=values, width=0.7, brushes=brushes, pen=pg.mkPen(None))
            pi.addItem(item)
            pi.addLine(y=0, pen=pg.mkPen(120, 120, 120))
            return pi, item

        wp, self.weights_bars = bars(self.weights_plot, self.weights_axis, w, POSITIVE)
        rp, self.risk_bars = bars(self.risk_plot, self.risk_axis, rc, RISK)
        self.budget_marks = None
        if r.method == "risk_parity":
            b = np.asarray(inp["parameters"].get("risk_budgets") or np.ones(n), dtype=np.float64)
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
        r, inp, _ = self._shown()
        fp = self.frontier_plot.getPlotItem()
        fp.clear()
        names = list(r.asset_names)
        mean, vol = self.asset_returns, self.asset_volatilities
        if mean is None or vol is None:
            raise LookupError("the assets' own moments are missing")
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
        rf = inp["parameters"]["risk_free_rate"]
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
        xs: list[Any] = [vol, fv, [r.volatility]] + ([[0.0]] if self.cml_curve is not None else [])
        ys: list[Any] = [mean, fr, [r.expected_return]] + ([[rf]] if self.cml_curve is not None else [])
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
        r, inp, out = self._shown()
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
            ("backend", out.backend_name),
            ("time", f"{out.seconds * 1e3:.1f} ms"),
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
        mean, vol = self.asset_returns, self.asset_volatilities
        if mean is not None and vol is not None:
            parts += [
                f"alone: return {pct(float(mean[i]))}",
                f"volatility {pct(float(vol[i]))}",
            ]
        return "   ".join(parts)
