"""Regimes tab: the walk-forward run (backend.hmm_walk_forward through
hft_lab.analysis.regimes.walk_forward_regimes). Each window is fitted on `formation` rows and its
parameters filter (no refit, no smoothing) the next `step` rows; the stitched filtered regime path
is out of sample. Shown: the price shaded by the out-of-sample regime (the first formation window
greyed), the stacked out-of-sample filtered probabilities, and one table row per window."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QGroupBox,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from hft_lab.analysis.regimes import walk_forward_regimes
from hft_lab.data.export import SessionItem
from hft_lab.ui.plots import BarAxis, LabPlot, PriceAxis, date_of, make_plot, pen
from hft_lab.ui.views.base import Param, note, refusable, via
from hft_lab.ui.views.regimes_plots import regime_colors
from hft_lab.ui.views.regimes_state import RegimesState
from hft_lab.ui.widgets import fmt, spin

WF_COLUMNS = ("window", "fitted on", "out of sample", "fit log-lik.", "OOS bars", "OOS switches", "OOS regime shares")
MAX_PROB_COLUMNS = 4000  # the probability image's columns (bin means beyond)


class RegimesWalk(RegimesState):
    """Part of RegimesView (mixed in): see regimes.py."""

    wf_price_plot: LabPlot | None  # None until the walk-forward page is first shown
    wf_result: Any
    wf_offset: int
    wf_names: list[str]
    wf_params: dict[str, Any]
    wf_backend: str
    _wf_inputs: Callable[[], dict]
    _wf_pending: dict[str, Any]

    def _build_walk_group(self) -> QGroupBox:
        box = QGroupBox("Walk-forward (out of sample)")
        f = QFormLayout(box)
        self.wf_formation = spin(QSpinBox(), 10, 10_000_000, 1000, step=250)
        self.wf_formation.setToolTip("Rows each window is fitted on")
        self.wf_step = spin(QSpinBox(), 1, 10_000_000, 250, step=50)
        self.wf_step.setToolTip("Rows each window's parameters filter out of sample before the next refit")
        self.declare(
            f,
            Param("wf_formation", self.wf_formation, "Formation (rows)", in_params=False),
            Param("wf_step", self.wf_step, "Step (rows)", in_params=False),
        )
        self.wf_button = QPushButton("Run walk-forward")
        self.wf_button.setToolTip(
            "Fit on the formation window, filter the next step with those parameters, move on: the stitched "
            "filtered regimes are out of sample (features, model and covariance as above)"
        )
        self.wf_button.clicked.connect(lambda: self.run_walk_forward())
        f.addRow(self.wf_button)
        return box

    def _build_walk_view(self) -> QWidget:
        """The walk-forward page: an empty container; its plots are made when it is first shown or
        a walk-forward result arrives (they cost start-up time otherwise)."""
        self.wf_page = QWidget()
        self._wf_layout = lay = QVBoxLayout(self.wf_page)
        lay.setContentsMargins(0, 0, 0, 0)
        self.wf_label = QLabel("Press “Run walk-forward” (left panel): the regimes shown here are all out of sample.")
        self.wf_label.setWordWrap(True)
        lay.addWidget(self.wf_label)
        self.wf_price_plot = None
        self._wf_shade: pg.ImageItem | None = None
        return self.wf_page

    def ensure_walk_view(self, *_) -> None:
        if self.wf_price_plot is not None:
            return
        self.wf_axis = BarAxis()
        self.wf_price_plot = plot = make_plot("Price, shaded by the out-of-sample filtered regime", "price")
        plot.getPlotItem().setAxisItems({"bottom": self.wf_axis, "left": PriceAxis()})
        plot.getPlotItem().setLogMode(y=self.log_scale.isChecked())
        plot.getPlotItem().legend.setBrush(pg.mkBrush(255, 255, 255, 210))
        self.wf_prob_axis = BarAxis()
        self.wf_prob_plot = make_plot("Out-of-sample filtered P(regime), stacked", "P(regime)")
        wp = self.wf_prob_plot.getPlotItem()
        wp.setAxisItems({"bottom": self.wf_prob_axis})
        wp.setXLink(plot.getPlotItem())
        wp.setYRange(0.0, 1.0, padding=0.02)
        wp.setMouseEnabled(x=True, y=False)
        wp.legend.setVisible(False)
        self.wf_table = QTableWidget(0, len(WF_COLUMNS))
        self.wf_table.setHorizontalHeaderLabels(list(WF_COLUMNS))
        self.wf_table.verticalHeader().setVisible(False)
        self.wf_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.wf_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.wf_table.horizontalHeader().setStretchLastSection(True)
        self.wf_table.verticalHeader().setDefaultSectionSize(22)
        plot.getPlotItem().vb.sigYRangeChanged.connect(self._fit_wf_shading)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(plot)
        split.addWidget(self.wf_prob_plot)
        split.addWidget(self.wf_table)
        split.setSizes([380, 200, 220])
        self._wf_layout.addWidget(split, 1)
        self.track_hover(plot, lambda x: self.wf_readout(int(round(x))))
        self.log_scale.toggled.connect(lambda on: plot.getPlotItem().setLogMode(y=on))
        self._draw_wf_price()

    def _wf_plot(self) -> LabPlot:
        """The walk-forward price plot (its page has been built: ensure_walk_view)."""
        assert self.wf_price_plot is not None, "the walk-forward page is not built yet"
        return self.wf_price_plot

    def _draw_wf_price(self) -> None:
        """The price line of the series on show (the page's plots exist)."""
        self.wf_axis.dates = self.wf_prob_axis.dates = self.dates
        pi = self._wf_plot().getPlotItem()
        pi.clear()
        self._wf_shade = None
        pi.legend.clear()
        if self.prices is None:
            return
        bad = ~np.isfinite(self.prices) | (self.prices <= 0)
        if not bad.all():
            idx = np.arange(len(self.prices), dtype=np.float64)
            pi.plot(idx, np.where(bad, np.nan, self.prices), pen=pen("price"), connect="finite")

    # ---- run ----
    @refusable
    def run_walk_forward(self) -> int | None:
        x, names, offset = self.features_for("run the walk-forward")
        self.stop_replay()
        p = dict(self.params(), covariance_type=self.covariance.currentData())
        p.update(formation=self.wf_formation.value(), step=self.wf_step.value())
        inputs = self._series_inputs
        desc = self.feature_description(names, offset)
        self._wf_pending = {"params": p, "inputs": lambda: dict(inputs(), observations=desc), "offset": offset, "names": names}
        return self.start(
            walk_forward_regimes,
            x,
            **p,
            done=self._show_walk,
            status=f"Walk-forward on {len(x):,} rows × {x.shape[1]} feature{'s' * (x.shape[1] > 1)}…",
        )

    def wf_progress(self, done: int, total: int) -> None:
        of = f" of {total:,}" if total > 0 else ""
        self.set_status(f"Walk-forward: window {done:,}{of} fitted and filtered…")

    def in_sample_agreement(self) -> float | None:
        """Share of the out-of-sample rows whose regime is the full-sample fit's Viterbi regime (None
        without a full-sample fit on the same features and regime count)."""
        r, w = self.result, self.wf_result
        if r is None or w is None or self.result_features != self.wf_names or self.result_offset != self.wf_offset:
            return None
        if r.n_states != w.filtered.shape[1] or len(r.viterbi_path) != w.start_index + len(w.regimes):
            return None
        return float(np.mean(np.asarray(r.viterbi_path)[w.start_index :] == w.regimes))

    def _show_walk(self, out) -> None:
        w = out.value
        pend = self._wf_pending
        self.wf_result, self.wf_offset, self.wf_names = w, int(pend["offset"]), list(pend["names"])
        self.wf_params, self._wf_inputs, self.wf_backend = pend["params"], pend["inputs"], out.backend_name
        self._draw_walk(w)
        self.view_tabs.setCurrentIndex(1)
        k = w.filtered.shape[1] if w.filtered.ndim == 2 else 0
        n = len(w.regimes)
        switches = int(np.count_nonzero(np.diff(w.regimes))) if n > 1 else 0
        self.set_status(
            f"Walk-forward{via(out)} in {out.seconds * 1e3:,.1f} ms{note(out)}: {len(w.window_starts):,} windows, "
            f"{n:,} out-of-sample rows, {k} regimes, {switches:,} regime switches out of sample."
        )
        self.enable_export()

    # ---- drawing ----
    def _clear_walk(self) -> None:
        self.wf_result = None
        self._wf_shade = None
        if self.wf_price_plot is None:
            return
        self.wf_prob_plot.getPlotItem().clear()
        self.wf_table.setRowCount(0)
        self._draw_wf_price()

    def wf_first_bar(self) -> int:
        """The bar at the end of the first out-of-sample return."""
        return self.wf_offset + int(self.wf_result.start_index) + 1

    def _draw_walk(self, w) -> None:
        self.ensure_walk_view()
        self._clear_walk()
        self.wf_result = w
        k = int(w.filtered.shape[1])
        colors = regime_colors(k)
        pi = self._wf_plot().getPlotItem()
        path = np.asarray(w.regimes, dtype=np.intp)
        lut = np.array([(*c, self.SHADE_ALPHA) for c in colors], dtype=np.uint8)
        if len(path):
            self._wf_shade = pg.ImageItem(lut[path][None, :, :], axisOrder="row-major")
            self._wf_shade.setAutoDownsample(True)
            self._wf_shade.setZValue(-100)
            pi.addItem(self._wf_shade, ignoreBounds=True)
        first = self.wf_first_bar()
        region = pg.LinearRegionItem((0, first - 0.5), movable=False, brush=pg.mkBrush(120, 120, 120, 40), pen=pg.mkPen(None))
        region.setZValue(-90)
        pi.addItem(region, ignoreBounds=True)
        share = np.bincount(path, minlength=k) / max(len(path), 1)
        for j, c in enumerate(colors):
            sample = pg.ScatterPlotItem(symbol="s", size=11, pen=pg.mkPen(*c), brush=pg.mkBrush(*c, 150))
            pi.legend.addItem(sample, f"regime {j + 1}  ({share[j]:.0%} of out-of-sample bars)")
        pi.legend.addItem(pg.ScatterPlotItem(symbol="s", size=11, brush=pg.mkBrush(120, 120, 120, 90)), "first formation window")
        self._fit_wf_shading()
        self._draw_wf_probs(w, colors)
        self._fill_wf_table(w)
        self.wf_label.setText(
            "Out of sample: each window is fitted on the formation rows before it, then its parameters filter the "
            "next step rows (no refit, no smoothing), so every regime shown was knowable at the time. "
            f"Features: {', '.join(self.wf_names)}; formation {self.wf_params['formation']:,}, step {self.wf_params['step']:,}."
        )
        agree = self.in_sample_agreement()
        if agree is not None:
            self.wf_label.setText(
                self.wf_label.text() + f" The full-sample fit's Viterbi regime (which uses the whole sample) is the "
                f"same on {agree:.1%} of these rows (regimes are numbered by the mean of the first feature in every fit)."
            )

    def _fit_wf_shading(self, *_) -> None:
        if self._wf_shade is None or self.wf_result is None:
            return
        y0, y1 = self._wf_plot().getPlotItem().vb.viewRange()[1]
        self._wf_shade.setRect(QRectF(self.wf_first_bar() - 0.5, y0, float(len(self.wf_result.regimes)), y1 - y0))

    def _draw_wf_probs(self, w, colors) -> None:
        """The stacked out-of-sample filtered probabilities as one image (bin means when there are
        more rows than MAX_PROB_COLUMNS)."""
        wp = self.wf_prob_plot.getPlotItem()
        f = np.asarray(w.filtered, dtype=np.float64)
        t = len(f)
        if t == 0:
            return
        edges = np.unique(np.linspace(0, t, min(t, MAX_PROB_COLUMNS) + 1).round().astype(np.int64))
        means = np.add.reduceat(f, edges[:-1], axis=0) / np.diff(edges)[:, None]
        cum = np.cumsum(means, axis=1)
        h = 200
        yc = (np.arange(h) + 0.5) / h
        state = (yc[:, None, None] > cum[None, :, :-1]).sum(axis=2)
        lut = np.array([(*c, 200) for c in colors], dtype=np.uint8)
        img = pg.ImageItem(lut[state], axisOrder="row-major")
        img.setRect(QRectF(self.wf_first_bar() - 0.5, 0.0, float(t), 1.0))
        wp.addItem(img)
        wp.setYRange(0.0, 1.0, padding=0.02)

    def _bar_text(self, row: int) -> str:
        """The date (or bar number) at the end of feature row `row`."""
        bar = self.wf_offset + row + 1
        return date_of(self.dates, bar, self.intraday) or f"bar {bar:,}"

    def wf_windows(self, w=None) -> list[tuple[int, int, int, int]]:
        """Per window: (fit start, fit end, out-of-sample start, out-of-sample end) in feature rows
        (ends exclusive)."""
        w = self.wf_result if w is None else w
        f, n = int(self.wf_params["formation"]), int(w.start_index) + len(w.regimes)
        out = []
        for s in np.asarray(w.window_starts, dtype=np.int64):
            s = int(s)
            out.append((s, s + f, s + f, min(s + f + int(self.wf_params["step"]), n)))
        return out

    def _fill_wf_table(self, w) -> None:
        t = self.wf_table
        wins = self.wf_windows(w)
        t.setRowCount(len(wins))
        k = w.filtered.shape[1]
        for i, (a, b, c, d) in enumerate(wins):
            reg = np.asarray(w.regimes[c - w.start_index : d - w.start_index])
            share = np.bincount(reg, minlength=k) / max(len(reg), 1)
            vals = [
                str(i + 1),
                f"{self._bar_text(a)} … {self._bar_text(b - 1)}",
                f"{self._bar_text(c)} … {self._bar_text(d - 1)}" if d > c else "—",
                fmt(float(w.window_log_likelihoods[i]), 8),
                f"{d - c:,}",
                f"{int(np.count_nonzero(np.diff(reg))):,}" if len(reg) > 1 else "0",
                "  ".join(f"{j + 1}: {p:.0%}" for j, p in enumerate(share)),
            ]
            for j, v in enumerate(vals):
                it = QTableWidgetItem(v)
                if j in (0, 3, 4, 5):
                    it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                t.setItem(i, j, it)

    def wf_table_rows(self) -> list[list[str]]:
        if self.wf_price_plot is None:
            return []
        t = self.wf_table

        def cell(i: int, j: int) -> str:
            it = t.item(i, j)
            return it.text() if it is not None else ""

        return [[cell(i, j) for j in range(t.columnCount())] for i in range(t.rowCount())]

    def wf_readout(self, bar: int) -> str:
        parts = self.readout_head(bar)
        if parts is None:
            return " "
        w = self.wf_result
        if w is not None:
            i = bar - self.wf_first_bar()
            if 0 <= i < len(w.regimes):
                probs = "  ".join(f"{p:.2f}" for p in w.filtered[i])
                win = int(np.searchsorted(np.asarray(w.window_starts) + self.wf_params["formation"], i + w.start_index, "right"))
                parts += [f"out-of-sample regime {int(w.regimes[i]) + 1} (window {win})", f"P filtered = [{probs}]"]
            elif i < 0:
                parts.append("first formation window (no out-of-sample regime)")
        return "   ".join(parts)

    # ---- export ----
    def walk_index(self):
        w = self.wf_result
        first = self.wf_first_bar()
        if self.dates is not None:
            return pd.DatetimeIndex(self.dates[first : first + len(w.regimes)])
        return pd.RangeIndex(first, first + len(w.regimes))

    def walk_item(self) -> SessionItem | None:
        if self.wf_result is None:
            return None
        return SessionItem(
            "regimes_walk_forward",
            self.wf_result,
            parameters=dict(self.wf_params),
            inputs=dict(self._wf_inputs()),
            backend=self.wf_backend,
            plots={"price": self.wf_price_plot, "probabilities": self.wf_prob_plot},
            index=self.walk_index(),
        )
