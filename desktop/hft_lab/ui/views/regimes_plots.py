"""Regimes tab: the price shaded by regime, the stacked smoothed or filtered probabilities (with the
bars where their most likely regimes differ marked), the regime table, the transition heat map, the
log-likelihood curve, the fit statistics and the hover readout."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QTableWidgetItem,
)

from hft_lab.analysis.regimes import most_likely_differs, segments
from hft_lab.data.synthetic import SYNTH_MEANS
from hft_lab.ui.plots import date_of, pen
from hft_lab.ui.views.regimes_state import RegimesState
from hft_lab.ui.widgets import fmt

# low mean -> red, high mean -> green (same colours in every plot and table)
_RAMP = np.array([(214, 39, 40), (255, 127, 14), (212, 176, 0), (140, 191, 38), (44, 160, 44)], dtype=float)


def regime_colors(k: int) -> list[tuple[int, int, int]]:
    """One colour per state (states are sorted by mean, ascending)."""
    if k <= 1:
        return [(31, 119, 180)]
    pos = np.linspace(0.0, len(_RAMP) - 1, k)
    out: list[tuple[int, int, int]] = []
    for p in pos:
        i = min(int(p), len(_RAMP) - 2)
        c = _RAMP[i] + (p - i) * (_RAMP[i + 1] - _RAMP[i])
        red, green, blue = (int(round(v)) for v in c)
        out.append((red, green, blue))
    return out


def _cell_text(item: QTableWidgetItem | None) -> str:
    """A table cell's text, stripped ("" for a cell that holds no item)."""
    return item.text().strip() if item is not None else ""


class RegimesPlots(RegimesState):
    """Part of RegimesView (mixed in): see regimes.py."""

    PROB_TOP = 1.12  # the probability plot's y range: 0..1, then the strip of differing bars
    DIFF_RGBA = (40, 40, 40, 230)

    def _draw(self, r) -> None:
        """Kept short on the GUI thread: one image for the regime shading (one pixel per bar,
        downsampled to the screen by pyqtgraph), one image for the probabilities of the visible range,
        small tables."""
        colors = regime_colors(r.n_states)
        self._draw_prices(r, colors)
        self._draw_posteriors(r, colors)
        self._fill_regime_table()
        self._draw_transitions(r, colors)
        self._draw_ll(r)
        self._fill_stats(r)
        self.enable_export()

    # ---- what is shown: smoothed or filtered (or the live filter so far) ----
    @property
    def filtered_view(self) -> bool:
        return self.show_filtered.isChecked() or self.live_probs is not None

    def shown_probs(self) -> np.ndarray:
        """The probabilities on show (rows x K): the live filter's rows so far, or the result's
        filtered (knowable at the time) or smoothed probabilities."""
        if self.live_probs is not None:
            return self.live_probs
        r = self.result
        f = np.asarray(r.filtered)
        return f if self.show_filtered.isChecked() and f.size else np.asarray(r.posteriors)

    def shown_path(self) -> np.ndarray:
        """The regime path on show: Viterbi (smoothed view) or the most likely filtered regime."""
        if not self.filtered_view:
            return np.asarray(self.result.viterbi_path, dtype=np.intp)
        return self.shown_probs().argmax(axis=1).astype(np.intp)

    def differs(self) -> np.ndarray:
        """Per row: the most likely regime of the filtered probabilities is not the smoothed one."""
        r = self.result
        return most_likely_differs(r.posteriors, r.filtered) if r is not None else np.zeros(0, dtype=bool)

    def _prob_view_changed(self, *_) -> None:
        if self.replaying:
            return
        self.live_probs = None
        if self.result is not None:
            colors = regime_colors(self.result.n_states)
            self._draw_prices(self.result, colors)
            self._draw_posteriors(self.result, colors)
            self._fill_stats(self.result)

    def _prob_titles(self) -> None:
        live = self.live_probs is not None
        if live:
            pt = "Price, shaded by the most likely regime of the live filter"
            qt = "Live filtered P(regime | data up to t), stacked: what was knowable at the time"
        elif self.show_filtered.isChecked():
            pt = "Price, shaded by the most likely filtered regime (knowable at the time)"
            qt = "Filtered P(regime | data up to t), stacked: what was knowable at the time"
        else:
            pt = "Price, shaded by the most likely regime (Viterbi, uses the whole sample)"
            qt = "Smoothed P(regime | all data), stacked: uses data after t"
        self.price_plot.getPlotItem().setTitle(pt)
        self.post_plot.getPlotItem().setTitle(qt + "   ▮ top strip: filtered ≠ smoothed regime")

    def _draw_prices(self, r, colors) -> None:
        assert self.prices is not None, "a result is drawn over the prices it was fitted on"
        pi = self.price_plot.getPlotItem()
        pi.clear()
        pi.legend.clear()
        path = self.shown_path()
        self.segments = segments(path)
        lut = np.array([(*c, self.SHADE_ALPHA) for c in colors], dtype=np.uint8)
        self._shade = None
        if len(path):
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
        self._prob_titles()
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
        n = self._shade.image.shape[1]
        self._shade.setRect(QRectF(0.5 + self.result_offset, y0, float(n), y1 - y0))

    def _draw_posteriors(self, r, colors) -> None:
        pp = self.post_plot.getPlotItem()
        pp.clear()
        self._post_lut = np.array([(*c, 200) for c in colors], dtype=np.uint8)
        self._post_img = pg.ImageItem(axisOrder="row-major")
        pp.addItem(self._post_img)
        d = self.differs()
        self._diff_img = None
        if len(d):
            rgba = np.zeros((1, len(d), 4), dtype=np.uint8)
            rgba[0, d] = self.DIFF_RGBA
            self._diff_img = pg.ImageItem(rgba, axisOrder="row-major")
            self._diff_img.setRect(QRectF(0.5 + self.result_offset, 1.025, float(len(d)), self.PROB_TOP - 1.03))
            pp.addItem(self._diff_img)
        n, t = int(d.sum()), len(d)
        if t:
            self.diff_label.setText(
                f"The most likely regime of the filtered probabilities differs from the smoothed one on {n:,} of "
                f"{t:,} bars ({n / t:.1%}; dark marks in the top strip): smoothing uses data that came later."
            )
        pp.setYRange(0.0, self.PROB_TOP, padding=0.0)
        self._render_posteriors()

    def posterior_columns(self, first: int, last: int, bins: int) -> tuple[np.ndarray, np.ndarray]:
        """Posteriors of returns first..last-1 averaged over `bins` near-equal bins (bin means of
        probabilities still sum to 1); gives (bin edges, cumulative probabilities bins x K)."""
        post = self.shown_probs()
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
        t = len(self.shown_probs())
        vb = self.post_plot.getPlotItem().vb
        (x0, x1), _ = vb.viewRange()
        x0, x1 = x0 - self.result_offset, x1 - self.result_offset
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
        h = int(np.clip(vb.height() / self.PROB_TOP, 32, 400))
        yc = (np.arange(h) + 0.5) / h
        state = (yc[:, None, None] > cum[None, :, :-1]).sum(axis=2)  # rows = y (0 at the bottom)
        img.setImage(self._post_lut[state], autoLevels=False)
        img.setRect(QRectF(first + 0.5 + self.result_offset, 0.0, float(edges[-1] - edges[0]), 1.0))

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
        with np.errstate(divide="ignore"):  # a state that is never left stays forever
            dur = 1.0 / (1.0 - np.diag(np.asarray(r.transition_matrix, dtype=np.float64)))
        names = self.result_features or ["r"]
        one = len(names) == 1
        means = np.asarray(r.means, dtype=np.float64).reshape(r.n_states, -1)
        if one and hasattr(r, "stds"):
            stds = np.asarray(r.stds, dtype=np.float64).reshape(r.n_states, 1)
        else:
            stds = np.sqrt(
                np.stack([np.diag(np.atleast_2d(c)) for c in np.asarray(r.covars).reshape(r.n_states, len(names), -1)])
            )
        ann = ann if one else 0.0
        cols = [("regime", "states are sorted by the mean of the first feature")]
        if one:
            cols += [("mean/bar", "mean of the feature per bar"), ("std/bar", "standard deviation of the feature per bar")]
        else:
            for n in names:
                cols += [(f"mean {n}", f"mean of {n}"), (f"std {n}", f"standard deviation of {n}")]
        if ann > 0:
            cols += [("ann. mean", f"mean × {ann:g}"), ("ann. vol", f"std × √{ann:g}")]
        cols += [
            ("duration", "expected stay in bars: 1 / (1 − p_ii)"),
            ("time", "share of bars in this regime on the Viterbi path"),
            ("avg P", "mean smoothed probability of this regime"),
        ]
        t.clear()
        t.setColumnCount(len(cols))
        for j, (name, tip) in enumerate(cols):
            h = QTableWidgetItem(name)
            h.setToolTip(tip)
            t.setHorizontalHeaderItem(j, h)
        t.setRowCount(r.n_states)
        for k in range(r.n_states):
            vals: list[str] = []
            for mu, sd in zip(means[k], stds[k]):
                vals += [f"{mu:.3%}", f"{sd:.3%}"]
            if ann > 0:
                mu, sd = float(means[k, 0]), float(stds[k, 0])
                vals += [f"{mu * ann:.2%}", f"{sd * math.sqrt(ann):.2%}"]
            vals += [fmt(float(dur[k]), 4), f"{share[k]:.1%}", f"{mean_post[k]:.1%}"]
            head = QTableWidgetItem(f"  {k + 1}  ")
            head.setBackground(QBrush(QColor(*colors[k])))
            head.setForeground(QBrush(QColor("white")))
            head.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            t.setItem(k, 0, head)
            for j, v in enumerate(vals, start=1):
                it = QTableWidgetItem(v)
                it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
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
        vstarts = segments(path)[0]
        runs = np.diff(np.r_[vstarts, len(path)])
        names = self.result_features or ["r"]
        d = self.differs()
        rows: list[tuple[str, object]] = [
            ("observations", f"{len(path):,} log returns" if names == ["r"] else f"{len(path):,} rows"),
            ("features", ", ".join(names)),
        ]
        if len(names) > 1:
            rows.append(("covariance", str(r.covariance_type)))
        rows += [
            ("regimes", int(r.n_states)),
            ("log-likelihood", f"{float(r.log_likelihood):.10g}"),
            ("AIC", f"{float(r.aic):.10g}"),
            ("BIC", f"{float(r.bic):.10g}"),
        ]
        if hasattr(r, "n_parameters"):
            rows.append(("free parameters", int(r.n_parameters)))
        rows += [("EM iterations", int(r.iterations)), ("converged", bool(r.converged))]
        if self.total_iterations > r.iterations:
            rows.append(("EM iterations, all runs", int(self.total_iterations)))
        rows += [
            ("regime switches (Viterbi)", max(len(vstarts) - 1, 0)),
            ("longest run (bars)", int(runs.max()) if len(runs) else 0),
            ("filtered ≠ smoothed regime (bars)", f"{int(d.sum()):,} ({d.mean():.1%})" if len(d) else "n/a"),
        ]
        ts = self.true_states
        if (
            ts is not None
            and self.prices is not None
            and len(ts) == len(self.prices) - 1
            and r.n_states == len(SYNTH_MEANS)
            and names[0] == "r"
        ):
            # the true regimes are also ordered by mean, so labels compare directly
            rows.append(("agrees with true regime", f"{np.mean(path == ts[self.result_offset :]):.1%}"))
        rows += [("backend", self.result_backend), ("time", f"{self.result_seconds * 1e3:,.1f} ms")]
        self.stats.set_rows(rows)

    def regime_table_rows(self) -> list[list[str]]:
        t = self.regime_table
        return [[_cell_text(t.item(i, j)) for j in range(t.columnCount())] for i in range(t.rowCount())]

    # ---- hover readout ----
    def readout_head(self, bar: int) -> list[str] | None:
        """Bar number, date and price of a hover readout; None off the series."""
        if self.prices is None or not 0 <= bar < len(self.prices):
            return None
        d = date_of(self.dates, bar, self.intraday)
        return [f"bar {bar:,}", *([d] if d else []), f"price {fmt(float(self.prices[bar]))}"]

    def readout(self, bar: int) -> str:
        parts = self.readout_head(bar)
        if parts is None:
            return " "
        if bar >= 1 and self.observations is not None:
            parts.append(f"log return {float(self.observations[bar - 1]):+.5f}")
            r = self.result
            i = bar - 1 - self.result_offset
            probs_all = self.shown_probs() if r is not None else None
            if r is not None and probs_all is not None and 0 <= i < len(probs_all):
                path = self.shown_path()
                s = int(path[i])
                starts, ends, _ = self.segments
                j = int(np.searchsorted(starts, i, side="right")) - 1
                o = self.result_offset
                probs = "  ".join(f"{p:.2f}" for p in np.asarray(probs_all[i]))
                kind = "filtered" if self.filtered_view else "smoothed"
                parts += [f"regime {s + 1} (bars {starts[j] + 1 + o:,}–{ends[j] + o:,})", f"P = [{probs}] ({kind})"]
                if len(self.differs()) > i and self.differs()[i]:
                    parts.append("filtered ≠ smoothed")
        return "   ".join(parts)

    def _posterior_table(self):
        """The probabilities: one row per result row, smoothed and filtered columns per regime."""
        if self.result is None:
            return None
        post = np.asarray(self.result.posteriors)
        cols = {f"P(regime {k + 1})": post[:, k] for k in range(post.shape[1])}
        filt = np.asarray(self.result.filtered)
        if filt.shape == post.shape:
            cols.update({f"filtered P(regime {k + 1})": filt[:, k] for k in range(post.shape[1])})
        idx = self.result_index()
        df = pd.DataFrame(cols, index=idx)
        df.index.name = "date" if isinstance(idx, pd.DatetimeIndex) else "bar"
        return df

    def _clear_results(self) -> None:
        self.result = None
        self.live_probs = None
        self.result_offset = 0
        self.result_features, self.result_x = [], None
        self.total_iterations = 0
        self._shade = None
        self._post_img = self._diff_img = None
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
        self.diff_label.setText(" ")
        self.result_params, self._result_inputs = {}, dict
        self._clear_walk()
        self.enable_export(False)
        self._describe_features()
        self.update_buttons()
