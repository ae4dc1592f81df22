"""Mean Reversion tab's computation: z-score/signals, OU fit, backtest (Qt-free)."""

from __future__ import annotations

import numpy as np

from .context import TaskContext, check


def analyse(
    backend,
    prices,
    lookback,
    threshold,
    exit_threshold,
    stop_threshold,
    cost_bps,
    periods_per_year,
    bars_per_day,
    ctx: TaskContext | None = None,
    spread=False,
    notional=None,
):
    """The tab's whole computation on one backend: z-score/signals, OU fit, backtest.

    Prices (all positive) are backtested in returns; a spread (spread=True, or any series with a
    value ≤ 0, e.g. a basket's value that crosses zero) in P&L units of the spread, with costs on
    the traded notional (`notional` per bar, default |spread|)."""
    mr = backend.calculate_mean_reversion(
        prices,
        lookback=lookback,
        threshold=threshold,
        exit_threshold=exit_threshold,
        stop_threshold=stop_threshold,
        cancel=ctx,
    )
    check(ctx)
    ou = backend.fit_ou(prices, dt=1.0, bars_per_day=bars_per_day)
    pnl = spread or not bool(np.all(prices > 0))
    bt = backend.backtest(
        prices,
        mr.positions,
        cost_bps=cost_bps,
        periods_per_year=periods_per_year,
        units="pnl" if pnl else "returns",
        notional=notional if pnl else None,
    )
    return {"mr": mr, "ou": ou, "bt": bt}
