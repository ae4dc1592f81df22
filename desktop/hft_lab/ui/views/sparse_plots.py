"""Sparse Portfolio tab: weights and spread plots, the λ path plots, the summary and statistics, the
ADF verdict, and the hover readouts."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QDoubleSpinBox, QLabel

from hft_lab.analysis.sparse import (
    adf_verdict,
    basket_formula,
)
from hft_lab.ui.plots import LabPlot, LogAxis, pen
from hft_lab.ui.views.base import ViewMixin
from hft_lab.ui.views.portfolio_plots import NamesAxis
from hft_lab.ui.widgets import StatsTable, fmt
from hft_lab.ui.worker import TaskOutcome

METHODS = [
    (
        "Lasso",
        "lasso",
        "L1-penalised regression of the target's price on the other assets (scikit-learn's Lasso). "
        "Basket = +1 target − β·hedges; a larger λ keeps fewer hedges.",
    ),
    (
        "Elastic net",
        "elastic_net",
        "L1 + L2 penalised regression (α = share of L1): like the lasso, but correlated hedges are "
        "shared instead of one being dropped.",
    ),
    (
        "Box-Tiao",
        "box_tiao",
        "The least predictable combination of all assets under a VAR(1) model (Box-Tiao canonical "
        "decomposition): the fastest mean reversion, but not sparse.",
    ),
    (
        "Greedy (d'Aspremont)",
        "greedy",
        "d'Aspremont's greedy search: adds one asset at a time to find the least predictable basket of exactly k assets.",
    ),
]


METHOD_LABEL = {m: label for label, m, _ in METHODS}


METHOD_HELP = {m: text for _, m, text in METHODS}


METHOD_SHORT = {"lasso": "lasso", "elastic_net": "elastic net", "box_tiao": "Box-Tiao", "greedy": "greedy"}


REGRESSION = ("lasso", "elastic_net")


TARGET_COLOR = (70, 70, 70)


LONG_COLOR = (31, 119, 180)


SHORT_COLOR = (214, 39, 40)


GOOD, WEAK, BAD = "#2e7d32", "#b58900", "#c62828"


SLIDER_STEPS_PER_DECADE = 24


SLIDER_DECADES = (-4, 8)  # λ from 1e-4 to 1e8 on the slider (the spin box goes further)


def verdict_color(verdict: str) -> str:
    if verdict.startswith("cointegrated"):
        return GOOD
    return WEAK if verdict.startswith("weak") else BAD


class LogSpinBox(QDoubleSpinBox):
    """A spin box for numbers spanning decades (λ, tolerances): shows 6 significant digits (1e-06,
    4437.9), accepts typed numbers like 2.5e-3, and the arrows step on a 1-2-5 (or 1-10) grid."""

    def __init__(self, minimum: float, maximum: float, smallest: float, mantissas=(1.0, 2.0, 5.0), parent=None):
        super().__init__(parent)
        self.setDecimals(15)
        self.setRange(minimum, maximum)
        self.smallest = smallest  # the first step up from 0
        self.mantissas = tuple(mantissas)
        self.setKeyboardTracking(False)

    def textFromValue(self, v: float) -> str:
        return "0" if v == 0 else f"{v:.6g}"

    def valueFromText(self, text: str) -> float:
        try:
            return float(text.strip().replace(",", ""))
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):
        t = text.strip().replace(",", "")
        try:
            v = float(t)
        except ValueError:
            ok = t == "" or t.lower().endswith(("e", "e-", "e+", ".", "-"))
            return (QValidator.State.Intermediate if ok else QValidator.State.Invalid), text, pos
        ok = self.minimum() <= v <= self.maximum() and math.isfinite(v)
        return (QValidator.State.Acceptable if ok else QValidator.State.Intermediate), text, pos

    def _grid(self, i: int) -> float:
        m = len(self.mantissas)
        return self.mantissas[i % m] * 10.0 ** (i // m)

    def _floor_index(self, v: float) -> int:
        m = len(self.mantissas)
        i = (int(math.floor(math.log10(v))) - 1) * m
        while self._grid(i + 1) <= v * (1 + 1e-9):
            i += 1
        return i

    def stepBy(self, steps: int) -> None:
        v = self.value()
        if v <= 0:
            if steps > 0:
                self.setValue(max(self.smallest, self.minimum()))
            return
        i = self._floor_index(v)
        on_grid = abs(self._grid(i) - v) <= 1e-9 * v
        j = i + steps if (on_grid or steps > 0) else i + steps + 1
        new = self._grid(j)
        if new < self.smallest * (1 - 1e-9):
            new = self.minimum() if self.minimum() < self.smallest else self.smallest
        self.setValue(min(max(new, self.minimum()), self.maximum()))


def _pg_plot(title: str, left: str, bottom: str = "", axis=None, log_y: bool = False) -> LabPlot:
    axes = {}
    if axis is not None:
        axes["bottom"] = axis
    if log_y:
        axes["left"] = LogAxis("left")
    w = LabPlot(title, axisItems=axes or None, legend=False)
    p = w.getPlotItem()
    p.showGrid(x=not isinstance(axis, NamesAxis), y=True, alpha=0.2)
    p.setLabel("left", left)
    if bottom:
        p.setLabel("bottom", bottom)
    p.layout.setContentsMargins(0, 0, 14, 0)
    return w


class SparsePlots(ViewMixin):
    """Part of SparseView (mixed in): see sparse.py."""

    # the view's state and widgets this part draws on (SparseView.__init__ / _build make them)
    outcome: TaskOutcome | None
    run_frame: pd.DataFrame | None
    run_params: dict
    run_inputs: dict
    path: Any
    path_params: dict
    weights_plot: LabPlot
    weights_axis: NamesAxis
    spread_plot: LabPlot
    nonzero_plot: LabPlot
    half_life_plot: LabPlot
    path_info: QLabel
    summary: QLabel
    stats: StatsTable
    lam: LogSpinBox
    _spread_dated: bool
    spread_levels: tuple[float, float, float] | None
    _spread_x: np.ndarray | None

    if TYPE_CHECKING:  # the λ path part's

        def _lam_changed(self, v: float) -> None: ...
        def _nonzero_clicked(self, item, points, ev=None) -> None: ...
        def _half_life_clicked(self, item, points, ev=None) -> None: ...

    def verdict_tries(self) -> tuple[int, bool]:
        """(number of fits the shown basket is the best of, whether the combination was searched)."""
        r, p = self.result, self.run_params or {}
        if r.method in REGRESSION:
            return (len(r.weights) if p.get("target") is None else 1), False
        return 1, True

    def verdict(self) -> str:
        r = self.result
        tries, search = self.verdict_tries()
        return adf_verdict(r.adf_statistic, r.adf_critical_values, tries=tries, search=search)

    @staticmethod
    def _half_life_text(h: float) -> str:
        return "∞ (does not mean-revert)" if math.isinf(h) else f"{fmt(h, 4)} bars"

    # ---- drawing (GUI thread: one bar per selected asset, one curve of T points) ----
    def _draw(self) -> None:
        r = self.result
        w = np.asarray(r.weights, dtype=np.float64)
        sel = np.flatnonzero(w)
        names = [r.asset_names[i] for i in sel]
        x = np.arange(len(sel), dtype=np.float64)
        h = w[sel]
        brushes = [
            pg.mkBrush(*(TARGET_COLOR if i == r.target_index else LONG_COLOR if v > 0 else SHORT_COLOR)) for i, v in zip(sel, h)
        ]
        wp = self.weights_plot.getPlotItem()
        wp.clear()
        self.weights_axis.set_names(names)
        self.weights_bars = pg.BarGraphItem(x=x, height=h, width=0.6, brushes=brushes, pen=pg.mkPen(None))
        wp.addItem(self.weights_bars)
        wp.addLine(y=0, pen=pg.mkPen(120, 120, 120))
        wp.setXRange(-0.6, max(len(sel), 1) - 0.4, padding=0)
        wp.enableAutoRange(axis="y")
        if r.target_index >= 0:
            wp.setTitle(f"Weights ({r.asset_names[r.target_index]} = 1, hedges −β)")
        else:
            wp.setTitle("Weights (unit length)")

        s = np.asarray(r.spread, dtype=np.float64)
        if self.run_frame is None:
            return
        idx = self.run_frame.index
        dated = isinstance(idx, pd.DatetimeIndex)
        sp = self.spread_plot.getPlotItem()
        sp.clear()
        if dated != self._spread_dated:
            self.date_axis = pg.DateAxisItem(orientation="bottom", utcOffset=0) if dated else pg.AxisItem("bottom")
            sp.setAxisItems({"bottom": self.date_axis})
            self._spread_dated = dated
        sp.setLabel("bottom", "" if dated else "bar")
        # seconds since 1970 for the date axis, whatever the index's unit (pandas 2 may use µs)
        xs = idx.to_numpy().astype("datetime64[ns]").astype(np.int64) / 1e9 if dated else np.asarray(idx, dtype=np.float64)
        self._spread_x = np.asarray(xs, dtype=np.float64)
        mean, sd = float(np.mean(s)), float(np.std(s))
        self.spread_levels = (mean, mean - 2 * sd, mean + 2 * sd)
        # no legend box (it would hide part of the spread): the title names the lines
        self.spread_curve = sp.plot(self._spread_x, s, pen=pen("price"), skipFiniteCheck=True)
        sp.addItem(pg.InfiniteLine(pos=mean, angle=0, pen=pen("mean", 1.5), label=None))
        for level in self.spread_levels[1:]:
            sp.addItem(pg.InfiniteLine(pos=level, angle=0, pen=pen("threshold", 1, Qt.PenStyle.DashLine)))
        sp.setTitle(
            f"Spread (basket value) with <span style='color:#1f77b4'>its mean {fmt(mean, 4)}</span> and "
            f"<span style='color:#d62728'>±2σ (σ = {fmt(sd, 4)})</span>"
        )
        sp.autoRange()
        self.summary.setText(self._summary_html())

    def _summary_html(self) -> str:
        r = self.result
        verdict = self.verdict()
        cv = r.adf_critical_values
        return (
            f"<b>{r.nonzero}-asset basket</b> ({METHOD_SHORT.get(r.method, r.method)}): "
            f"{basket_formula(r.asset_names, r.weights, r.target_index)} "
            f"&nbsp;·&nbsp; half-life {self._half_life_text(r.half_life)}"
            f" &nbsp;·&nbsp; ADF {fmt(r.adf_statistic, 4)} vs {fmt(float(cv[1]), 4)} (5%): "
            f"<b><span style='color:{verdict_color(verdict)}'>{verdict}</span></b>"
        )

    def _fill_stats(self) -> None:
        r, out, p = self.result, self.outcome, self.run_params
        if r is None or out is None:
            return
        n = len(r.weights)
        rows: list[tuple[str, object]] = [("method", METHOD_LABEL.get(r.method, r.method))]
        if r.method in REGRESSION:
            chosen = "" if p.get("target") is not None else " (auto)"
            rows.append(("target", f"{r.asset_names[r.target_index]}{chosen}"))
            rows.append(("λ", float(p["lambda_param"])))
            if r.method == "elastic_net":
                rows.append(("α (L1 ratio)", float(p["alpha"])))
        elif r.method == "greedy":
            rows.append(("k", int(p["k"])))
        rows.append(("assets in basket", f"{r.nonzero} of {n}"))
        rows.append(("half-life (bars)", float(r.half_life)))
        rows.append(("ADF statistic", float(r.adf_statistic)))
        rows.append(("ADF verdict", self.verdict()))
        tries, search = self.verdict_tries()
        if tries > 1:
            rows.append(("targets tried", tries))
        for level, cv in zip(("1%", "5%", "10%"), r.adf_critical_values):
            rows.append((f"  critical value {level}", float(cv)))
        w = np.asarray(r.weights)
        sel = sorted((int(i) for i in np.flatnonzero(w)), key=lambda i: (i != r.target_index, -abs(w[i])))
        limit = 40
        for i in sel[:limit]:
            rows.append((f"weight {r.asset_names[i]}", float(w[i])))
        if len(sel) > limit:
            rows.append(("weight …", f"{len(sel) - limit} more (see the CSV export)"))
        if r.method in REGRESSION:
            rows.append(("intercept (spread mean)", float(r.intercept)))
        rows.append(("objective", float(r.objective)))
        rows.append(("iterations", int(r.iterations)))
        rows.append(("observations", int(len(r.spread))))
        rows.append(("period", self.run_inputs.get("period", "")))
        rows.append(("backend", out.backend_name + (f" ({out.note})" if out.note else "")))
        rows.append(("time", f"{out.seconds * 1e3:.1f} ms"))
        self.stats.set_rows(rows)
        self.stats.setToolTip(
            "ADF: Engle-Granger critical values (MacKinnon) for the number of assets in the basket. The weights "
            "were fitted on these same prices, so the test is in-sample: check the basket on later data."
        )

    def _draw_path(self) -> None:
        lp, pp = self.path, self.path_params
        lam = np.asarray(lp.lambdas, dtype=np.float64)
        nz = np.asarray(lp.nonzero, dtype=np.float64)
        hl = np.asarray(lp.half_life, dtype=np.float64)
        for p in (self.nonzero_plot, self.half_life_plot):
            for item in list(p.getPlotItem().listDataItems()):
                p.getPlotItem().removeItem(item)
        sym = dict(symbol="o", symbolSize=8, symbolPen=pg.mkPen(31, 119, 180), symbolBrush=pg.mkBrush(255, 255, 255))
        self.path_nonzero_item = self.nonzero_plot.plot(lam, nz, pen=pen("mean", 1.5), **sym)
        self.path_nonzero_item.sigPointsClicked.connect(self._nonzero_clicked)
        ok = np.isfinite(hl) & (hl > 0)
        self._hl_index = np.flatnonzero(ok)
        self.path_half_life_item = self.half_life_plot.plot(lam[ok], hl[ok], pen=pen("mean", 1.5), **sym)
        self.path_half_life_item.sigPointsClicked.connect(self._half_life_clicked)
        for p in (self.nonzero_plot, self.half_life_plot):
            p.getPlotItem().autoRange()
        self.nonzero_plot.getPlotItem().setYRange(0, max(nz.max(), 1) + 0.5, padding=0.05)
        name = METHOD_LABEL[pp["method"]] + (f", α = {pp['alpha']:g}" if pp["method"] == "elastic_net" else "")
        missing = len(lam) - len(self._hl_index)
        gap = f" {missing} λ values give a spread that does not mean-revert (no half-life)." if missing else ""
        self.path_info.setText(
            f"λ path for target <b>{pp['target']}</b> ({name}), {len(lam)} values from {fmt(float(lam.max()), 4)} "
            f"down to {fmt(float(lam.min()), 4)}. Click a point to use its λ; the dashed line is the current λ.{gap}"
        )
        self._lam_changed(self.lam.value())

    # ---- hover ----
    def _spread_readout(self, xv: float) -> str | None:
        if self.result is None or self._spread_x is None or self.run_frame is None or self.spread_levels is None:
            return None
        i = int(np.clip(np.searchsorted(self._spread_x, xv), 0, len(self._spread_x) - 1))
        if i > 0 and abs(self._spread_x[i - 1] - xv) < abs(self._spread_x[i] - xv):
            i -= 1
        idx = self.run_frame.index
        when = f"{idx[i]:%Y-%m-%d}" if isinstance(idx, pd.DatetimeIndex) else f"bar {idx[i]:,}"
        s = float(self.result.spread[i])
        mean, lo, hi = self.spread_levels
        sd = (hi - mean) / 2
        z = (s - mean) / sd if sd > 0 else float("nan")
        return f"{when}   spread {fmt(s, 6)}   (spread − mean)/σ = {fmt(z, 3)}"

    def _weights_readout(self, x: float) -> str | None:
        r = self.result
        if r is None:
            return None
        names = self.weights_axis.names
        i = int(round(x))
        if not 0 <= i < len(names):
            return None
        j = r.asset_names.index(names[i])
        role = " (target)" if j == r.target_index else ""
        return f"{names[i]}{role}   weight {fmt(float(r.weights[j]), 6)}"

    def _path_readout(self, xv: float) -> str | None:
        lp = self.path  # xv is log10(λ)
        if lp is None:
            return None
        i = int(np.argmin(np.abs(np.log10(np.asarray(lp.lambdas)) - xv)))
        return (
            f"λ {fmt(float(lp.lambdas[i]), 6)}   assets {int(lp.nonzero[i])}   half-life "
            f"{self._half_life_text(float(lp.half_life[i]))}   ADF {fmt(float(lp.adf_statistic[i]), 4)}"
        )
