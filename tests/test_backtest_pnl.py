"""Backtest in P&L units (a spread that crosses zero): a plain NumPy re-implementation, both
backends identical, clear errors."""

from __future__ import annotations

import numpy as np
import pytest


def reference_pnl(s, q, cost_bps, notional=None):
    c = cost_bps / 1e4
    n = np.abs(s) if notional is None else notional
    pnl = np.empty(len(s))
    pnl[0] = -c * abs(q[0]) * n[0]
    pnl[1:] = q[1:] * np.diff(s) - c * np.abs(np.diff(q)) * n[:-1]
    eq = np.cumsum(pnl)
    dd = eq - np.maximum(np.maximum.accumulate(eq), 0.0)
    return pnl, eq, dd


@pytest.mark.parametrize("with_notional", [False, True])
def test_spread_backtest_matches_numpy(backend, rng, with_notional):
    s = np.cumsum(rng.normal(0, 1, 3000)) * 0.1  # crosses zero many times
    assert (s < 0).any() and (s > 0).any()
    mr = backend.calculate_mean_reversion(s, lookback=30, threshold=1.5)
    notional = np.abs(s) + 50.0 if with_notional else None
    r = backend.backtest(s, mr.positions, cost_bps=5.0, units="pnl", notional=notional)
    pnl, eq, dd = reference_pnl(s, mr.positions.astype(float), 5.0, notional)
    assert r.units == "pnl"
    np.testing.assert_allclose(r.returns, pnl, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.equity, eq, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(r.drawdown, dd, rtol=1e-12, atol=1e-9)
    assert r.total_return == pytest.approx(eq[-1], rel=1e-12, abs=1e-9)
    assert r.max_drawdown == pytest.approx(-dd.min(), rel=1e-12, abs=1e-12)
    p = pnl[1:]
    assert r.sharpe == pytest.approx(p.mean() / p.std(ddof=1) * np.sqrt(252), rel=1e-10)
    assert r.n_trades == len(r.trade_pnls) > 0


def test_spread_backtest_same_on_both_backends(backends, rng):
    s = np.cumsum(rng.normal(0, 1, 2000)) - 5
    q = np.sign(np.sin(np.arange(2000) / 37.0))
    q[0] = 0
    a = backends["pyo3"].backtest(s, q, cost_bps=2.0, units="pnl")
    b = backends["grpc"].backtest(s, q, cost_bps=2.0, units="pnl")
    assert a.units == b.units == "pnl"
    for f in ("equity", "returns", "drawdown", "trade_pnls"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    assert (a.total_return, a.sharpe, a.max_drawdown) == (b.total_return, b.sharpe, b.max_drawdown)
    r = backends["grpc"].backtest(np.abs(s) + 1, q)
    assert r.units == "returns"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(units="dollars"), 'units must be "returns" or "pnl"'),
        (dict(units="pnl", notional=np.ones(5)), "notional has length 5"),
        (dict(units="pnl", notional=-np.ones(100)), "notional must be non-negative"),
        (dict(notional=np.ones(100)), "notional is only used"),
    ],
)
def test_spread_backtest_errors(backend, kwargs, message):
    s = np.linspace(-1, 1, 100)
    q = np.zeros(100)
    with pytest.raises(ValueError, match=message):
        backend.backtest(s, q, **kwargs)


def test_returns_backtest_still_refuses_a_spread(backend):
    s = np.linspace(-1, 1, 100)
    with pytest.raises(ValueError, match="prices must be positive"):
        backend.backtest(s, np.zeros(100))
