"""Issue 13 sweep: every Backend operation on hostile-but-valid inputs (flat runs, jumps from 1 to
1e9 times the noise, levels from 1e-6 to 1e9) on both backends. Each call either fails with a
clear ValueError or returns a result with no NaN/inf in any field, except where the field
documents it (rolling warm-up, OU half-lives/sigma/kappa of a non-mean-reverting fit, Hurst when
R/S is undefined, backtest Sharpe/Sortino with a zero denominator, sparse half-lives, and the
-inf ADF statistic of a basket whose spread is constant to rounding)."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

LEVELS = [1e-6, 1e-3, 1.0, 100.0, 1e6, 1e9]
NOISE = [1e-9, 1e-6, 1e-3, 1e-2]
JUMPS = [1.0, 1e3, 1e6, 1e9]


@st.composite
def hostile(draw, n_min=30, n_max=90, cols=1):
    """Positive series: level * exp(cumulative log moves) with flat runs (exactly equal values)
    and jumps (capped at a factor e^3 so values stay in range)."""
    n = draw(st.integers(n_min, n_max))
    level = draw(st.sampled_from(LEVELS))
    noise = draw(st.sampled_from(NOISE))
    seed = draw(st.integers(0, 2**32 - 1))
    r = np.random.default_rng(seed)
    inc = noise * r.standard_normal((n, cols))
    for _ in range(draw(st.integers(0, 3))):  # flat runs
        a = draw(st.integers(0, n - 1))
        inc[a : a + draw(st.integers(2, 25))] = 0.0
    for _ in range(draw(st.integers(0, 2))):  # jumps
        j = draw(st.integers(1, n - 1))
        inc[j] = np.clip(draw(st.sampled_from(JUMPS)) * noise * draw(st.sampled_from([-1.0, 1.0])), -3.0, 3.0)
    x = level * np.exp(np.cumsum(inc, axis=0))
    return x[:, 0] if cols == 1 else x


SWEEP = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def nonfinite(result, allowed=()):
    """Names of fields holding NaN/inf (arrays: any element), minus the allowed ones."""
    bad = []
    for f in dataclasses.fields(result):
        if f.name in allowed:
            continue
        v = getattr(result, f.name)
        if isinstance(v, (float, np.floating)) and not np.isfinite(v):
            bad.append(f"{f.name}={v}")
        elif isinstance(v, np.ndarray) and v.dtype.kind == "f" and not np.isfinite(v).all():
            bad.append(f"{f.name}[{int(np.argmax(~np.isfinite(v)))}]")
    return bad


def call(fn, *a, **kw):
    """The result, or None when the input is refused with a clear ValueError (same text on both)."""
    try:
        return fn(*a, **kw)
    except ValueError as e:
        assert str(e), "an error without a message"
        return None


def both(backends, op, *a, **kw):
    out = [call(getattr(b, op), *a, **kw) for b in backends.values()]
    assert (out[0] is None) == (out[1] is None), f"{op}: one backend refused, the other did not"
    return out


@SWEEP
@given(x=hostile(), lb=st.integers(2, 25))
def test_mean_reversion_and_ou(backends, x, lb):
    for r in both(backends, "calculate_mean_reversion", x, lookback=min(lb, len(x)), threshold=1.5):
        if r is not None:
            w = r.lookback
            assert nonfinite(r, ("rolling_mean", "rolling_std", "zscore")) == []
            for a in (r.rolling_mean, r.rolling_std, r.zscore):
                assert np.isnan(a[: w - 1]).all() and np.isfinite(a[w - 1 :]).all(), a
    for r in both(backends, "fit_ou", x):
        if r is not None:
            allowed = {"hurst"}  # NaN only when R/S is undefined
            if not r.mean_reverting:
                allowed |= {"half_life_bars", "half_life_days", "se_half_life", "sigma", "theta"}
                if r.b <= 0:
                    allowed |= {"kappa", "se_kappa"}
            else:
                assert np.isfinite(r.hurst) or np.ptp(np.diff(x)) == 0
            assert nonfinite(r, allowed) == [], r


@SWEEP
@given(x=hostile(), seed=st.integers(0, 1000))
def test_backtest_both_units(backends, x, seed):
    pos = np.random.default_rng(seed).integers(-1, 2, len(x)).astype(float)
    for units in ("returns", "pnl"):
        for r in both(backends, "backtest", x, pos, cost_bps=1.0, units=units):
            if r is not None:
                # Sharpe and Sortino are ±inf when their denominator is 0 and the mean is not
                assert nonfinite(r, ("sharpe", "sortino")) == [], (units, r)
                for v in (r.sharpe, r.sortino):
                    assert not np.isnan(v)


@SWEEP
@given(p=hostile(n_min=40, n_max=80, cols=4))
def test_portfolio_all_methods_and_frontier(backends, p):
    for method in ("min_variance", "max_sharpe", "risk_parity", "equal_weight"):
        # a risk-free rate below any attainable return, so max_sharpe is feasible on most draws
        params = {"frontier_points": 4, "risk_free_rate": -1.0}
        for r in both(backends, "optimize_portfolio", p, method=method, parameters=params):
            if r is not None:
                assert nonfinite(r) == [], (method, r)


@SWEEP
@given(x=hostile(n_min=60, n_max=120))
def test_hmm(backends, x):
    obs = np.diff(np.log(x))
    for r in both(backends, "run_hmm", obs, n_states=2, max_iterations=15):
        if r is not None:
            assert nonfinite(r) == [], r


@SWEEP
@given(p=hostile(n_min=40, n_max=80, cols=4))
def test_sparse_all_methods_and_path(backends, p):
    # Documented exception: a spread constant to rounding (a perfect hedge, rms variation <= 1e-14
    # of its level) has half_life 0 and adf_statistic -inf, as statsmodels' coint gives -inf.
    for method in ("lasso", "elastic_net", "box_tiao", "greedy"):
        kw = {"k": 2} if method == "greedy" else {}
        for r in both(backends, "calculate_sparse_portfolio", p, method=method, lambda_param=0.01, **kw):
            if r is not None:
                assert not np.isnan(r.half_life)
                if r.adf_statistic == -np.inf:
                    s = r.spread
                    assert r.half_life == 0.0, (method, r)
                    assert np.ptp(s) <= 1e-12 * np.abs(s).max(), (method, "-inf ADF on a varying spread", r)
                    assert nonfinite(r, ("half_life", "adf_statistic")) == [], (method, r)
                else:
                    assert nonfinite(r, ("half_life",)) == [], (method, r)
    for r in both(backends, "sparse_lambda_path", p, n_lambdas=4):
        if r is not None:
            assert nonfinite(r, ("half_life", "adf_statistic")) == [], r
            assert not np.isnan(r.half_life).any()
            assert not np.isnan(r.adf_statistic).any() and not (r.adf_statistic == np.inf).any(), r
            perfect = r.adf_statistic == -np.inf
            assert (r.half_life[perfect] == 0.0).all(), r
            for w, c in zip(r.weights[perfect], r.intercepts[perfect]):
                s = p @ w
                assert np.ptp(s) <= 1e-12 * np.abs(s).max(), ("-inf ADF on a varying spread", r)
