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


# ---- property-based: hostile spreads (flat runs, jumps, scales 1e-6 .. 1e9) against exact arithmetic ----
from fractions import Fraction  # noqa: E402

from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def hostile_spread(draw):
    n = draw(st.integers(3, 120))
    scale = 10.0 ** draw(st.integers(-6, 9))
    level = draw(st.sampled_from([0.0, 1.0, -1.0, 100.0])) * scale
    steps = []
    while len(steps) < n:
        kind = draw(st.sampled_from(["flat", "noise", "jump"]))
        k = draw(st.integers(1, 30))
        if kind == "flat":
            steps += [0.0] * k
        elif kind == "noise":
            steps += [draw(st.floats(-1.0, 1.0)) * scale * 1e-3 for _ in range(min(k, 5))]
        else:
            steps.append(draw(st.sampled_from([1.0, -1.0])) * scale * 10.0 ** draw(st.integers(0, 9)) * 1e-3)
    s = level + np.cumsum(np.array(steps[:n]))
    q = np.array(draw(st.lists(st.sampled_from([-1.0, 0.0, 1.0]), min_size=n, max_size=n)))
    cost = draw(st.sampled_from([0.0, 0.5, 10.0, 250.0]))
    return s, q, cost


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(hostile_spread())
@example(case=(np.full(3, 2.22507386e-312), np.full(3, -1.0), 0.5))  # subnormal spread (CI, 2026-12-02)
def test_pnl_backtest_on_hostile_spreads_matches_exact_arithmetic(backends, case):
    s, q, cost = case
    a = backends["pyo3"].backtest(s, q, cost_bps=cost, units="pnl")
    b = backends["grpc"].backtest(s, q, cost_bps=cost, units="pnl")
    for f in ("equity", "returns", "drawdown", "trade_pnls"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    c = Fraction(cost) / 10_000
    S = [Fraction(v) for v in s]
    Q = [Fraction(v) for v in q]
    exact = [-c * abs(Q[0]) * abs(S[0])] + [
        Q[t] * (S[t] - S[t - 1]) - c * abs(Q[t] - Q[t - 1]) * abs(S[t - 1]) for t in range(1, len(S))
    ]
    mag = max(abs(v) for v in s) or 1.0
    for got, want in zip(a.returns, exact):
        # one subtraction and a few products: a few ulps of the spread's magnitude, plus the
        # absolute rounding of results in the subnormal range (the standard model's η, at most
        # 2^-1075 per operation: a 2.2e-312 spread's cost of -1.1e-316 is correctly rounded, yet
        # 8·eps·mag alone underflowed to 0); the bound is computed exactly, not in floats
        bound = 8 * Fraction(np.finfo(float).eps) * Fraction(mag) * (1 + c) + 4 * Fraction(1, 2**1075)
        assert abs(Fraction(got) - want) <= bound, (got, float(want))
    assert np.all(a.drawdown <= 0) and a.max_drawdown >= 0
    assert np.all(np.signbit(a.returns) == (a.returns < 0))  # no -0.0 anywhere
