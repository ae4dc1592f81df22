"""Mean Reversion tab: the price/z-score plots with bands and trades, equity and drawdown, the
statistics table and the hover readout."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from hft_lab.ui.plots import BarAxis, LabPlot, date_of, pen
from hft_lab.ui.widgets import StatsTable, fmt, pct


class MeanReversionPlots:
    """Part of MeanReversionView (mixed in): see mean_reversion.py."""

    # the view's state and widgets this part draws on (MeanReversionView.__init__ / _build make them)
    MAX_MARKERS: int
    MAX_FILL_POINTS: int
    result: Any
    ou: Any
    bt: Any
    prices: np.ndarray
    dates: np.ndarray | None
    is_spread: bool
    stats: StatsTable
    axes: list[BarAxis]
    price_plot: LabPlot
    z_plot: LabPlot
    equity_plot: LabPlot
    dd_plot: LabPlot

    def _fill_stats(self) -> None:
        ou, bt = self.ou, self.bt
        rows = [
            ("OU κ (per bar)", ou.kappa),
            ("OU θ", ou.theta),
            ("OU σ", ou.sigma),
            ("half-life (bars)", ou.half_life_bars),
            ("half-life (days)", ou.half_life_days),
            ("± s.e. half-life", ou.se_half_life),
            ("AR(1) b ± s.e.", f"{fmt(ou.b)} ± {fmt(ou.se_b, 3)}"),
            ("R² (levels)", ou.r_squared),
            ("R² (increments)", ou.r_squared_delta),
            ("mean-reverting", ou.mean_reverting),
            ("Hurst (R/S)", ou.hurst),
        ]
        if bt is None:
            rows.append(("backtest", "not run"))
        else:
            # a spread's backtest is P&L in spread units (returns need positive prices)
            pnl = getattr(bt, "units", "returns") == "pnl"
            amount = (lambda v: v) if pnl else pct
            what = "P&L" if pnl else "return"
            if pnl:
                rows.append(("backtest units", "P&L in spread units (a spread: returns need positive prices)"))
            rows += [
                (f"total {what}", amount(bt.total_return)),
                (f"annual {what}", amount(bt.annual_return)),
                ("annual P&L volatility" if pnl else "annual volatility", amount(bt.annual_volatility)),
                ("Sharpe", bt.sharpe),
                ("Sortino", bt.sortino),
                ("max drawdown (spread units)" if pnl else "max drawdown", amount(bt.max_drawdown)),
                ("trades (closed)", int(bt.n_trades)),
                ("win rate", pct(bt.win_rate, 1)),
                ("avg holding (bars)", bt.avg_holding_bars),
            ]
        self.stats.set_rows(rows)

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
        zp.plot(idx[w], r.zscore[w], pen=pen("z"), **fast)
        self._z_levels(zp, r.threshold, r.exit_threshold, r.stop_threshold)

    @staticmethod
    def _z_levels(zp, threshold, exit_threshold, stop_threshold) -> None:
        for level in (threshold, -threshold):
            zp.addLine(y=level, pen=pen("threshold", 1, Qt.PenStyle.DashLine))
        if exit_threshold != 0:
            zp.addLine(y=exit_threshold, pen=pen("exit", 1, Qt.PenStyle.DotLine))
            zp.addLine(y=-exit_threshold, pen=pen("exit", 1, Qt.PenStyle.DotLine))
        zp.addLine(y=0, pen=pen("exit", 1, Qt.PenStyle.DotLine))
        if stop_threshold is not None:
            for s in (stop_threshold, -stop_threshold):
                zp.addLine(y=s, pen=pen("short", 1, Qt.PenStyle.DashDotLine))

    def _draw_performance(self, bt) -> None:
        self.equity_plot.clear()
        self.dd_plot.clear()
        if bt is None:
            return
        idx = np.arange(len(bt.equity), dtype=np.float64)
        pnl = getattr(bt, "units", "returns") == "pnl"
        self.equity_plot.plot(
            idx, bt.equity, pen=pen("mean", 1.5), name="cumulative P&L" if pnl else "equity", skipFiniteCheck=True
        )
        self.dd_plot.plot(
            idx,
            -bt.drawdown if np.all(bt.drawdown >= 0) else bt.drawdown,
            pen=pen("short"),
            name="drawdown",
            fillLevel=0,
            brush=pg.mkBrush(214, 39, 40, 60),
            skipFiniteCheck=True,
        )

    def _markers(self, plot, r, x) -> bool:
        """Entry/exit markers; False (and none drawn) when there are too many to draw quickly."""
        if max(len(r.entries), len(r.exits)) > self.MAX_MARKERS:
            return False
        e = r.entries
        if len(e):
            sig = r.signals[e]
            longs, shorts = e[sig > 0], e[sig < 0]
            plot.addItem(
                pg.ScatterPlotItem(longs, x[longs], symbol="t1", size=9, brush=pg.mkBrush(44, 160, 44), name="long entry")
            )
            plot.addItem(
                pg.ScatterPlotItem(shorts, x[shorts], symbol="t", size=9, brush=pg.mkBrush(214, 39, 40), name="short entry")
            )
        if len(r.exits):
            ex = r.exits
            plot.addItem(pg.ScatterPlotItem(ex, x[ex], symbol="x", size=8, brush=pg.mkBrush(60, 60, 60), name="exit"))
        return True

    # ---- hover readout ----
    def readout(self, i: int) -> str:
        if self.prices is None or not 0 <= i < len(self.prices):
            return " "
        d = date_of(self.dates, i, self.axes[0].intraday)
        parts = ([d] if d else []) + [f"bar {i:,}", f"{'spread' if self.is_spread else 'price'} {fmt(float(self.prices[i]))}"]
        r = self.result
        if r is not None and i < len(r.zscore):
            parts += [
                f"mean {fmt(float(r.rolling_mean[i]))}",
                f"std {fmt(float(r.rolling_std[i]))}",
                f"z {fmt(float(r.zscore[i]), 4)}",
                f"position {int(r.positions[i]):+d}",
            ]
        if self.bt is not None and i < len(self.bt.equity):
            parts += [f"equity {fmt(float(self.bt.equity[i]), 6)}", f"drawdown {fmt(float(self.bt.drawdown[i]), 4)}"]
        return "   ".join(parts)
