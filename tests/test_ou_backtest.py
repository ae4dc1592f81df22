"""Ornstein-Uhlenbeck fit (vs statsmodels OLS) and the backtest (vs a plain NumPy re-implementation).

Conventions under test (rustcore/src/ou.rs and rustcore/src/backtest.rs document them):
* fit_ou: AR(1) OLS x[t+1] = a + b x[t] + e, kappa = -ln(b)/dt, theta = a/(1-b),
  sigma = residual_std * sqrt(2 kappa / (1 - b^2)), half_life_bars = ln2 / -ln(b),
  half_life_days = half_life_bars / bars_per_day, delta-method standard errors,
  residual_std = sqrt(SSR / (n - 3)) (statsmodels' scale), hurst = classic R/S of the increments.
* backtest: positions[t] is held from close t-1 to close t (already shifted), positions[-1] = 0,
  returns[t] = positions[t] * (p[t]/p[t-1] - 1) - cost_bps/1e4 * |positions[t] - positions[t-1]|,
  returns[0] = -c |positions[0]|; statistics over returns[1:]; max_drawdown positive;
  only closed trades are listed; trade pnl = prod(1 + d * bar return) - 1 - 2c.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import statsmodels.api as sm

LN2 = np.log(2.0)

OU_FIELDS = (
    "a",
    "b",
    "kappa",
    "theta",
    "sigma",
    "half_life_bars",
    "half_life_days",
    "se_a",
    "se_b",
    "se_kappa",
    "se_half_life",
    "r_squared",
    "residual_std",
    "mean_reverting",
    "hurst",
    "n",
    "r_squared_delta",
)
BT_FIELDS = (
    "equity",
    "returns",
    "drawdown",
    "total_return",
    "annual_return",
    "annual_volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "n_trades",
    "win_rate",
    "avg_holding_bars",
    "trade_entries",
    "trade_exits",
    "trade_directions",
    "trade_pnls",
)


# --------------------------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------------------------
def hurst_sizes(max_size, k=20, min_size=8):
    """20 log-spaced window sizes from 8 to max_size, floor(v + 0.5), unique."""
    lo, hi = np.log(min_size), np.log(max_size)
    v = np.exp(lo + np.arange(k) / (k - 1) * (hi - lo))
    return np.unique(np.floor(v + 0.5).astype(np.int64))


def ref_hurst_rs(d, level=0.0):
    """Classic R/S: non-overlapping chunks from the start, mean of R/S per size, slope of logs.
    Chunks of constant increments (std at most 64 eps max(level, |c|): rounding, where level is
    the magnitude of the series the increments come from) are skipped."""
    d = np.asarray(d, float)
    m = len(d)
    xs, ys = [], []
    for s in hurst_sizes(m // 2):
        k = m // s
        c = d[: k * s].reshape(k, s)
        dev = c - c.mean(axis=1, keepdims=True)
        y = np.cumsum(dev, axis=1)
        r = y.max(axis=1) - y.min(axis=1)
        sd = np.sqrt((dev**2).mean(axis=1))
        ok = sd > 64 * np.finfo(float).eps * np.maximum(level, np.abs(c).max(axis=1))
        if ok.any():
            xs.append(np.log(s))
            ys.append(np.log((r[ok] / sd[ok]).mean()))
    if len(xs) < 2:
        return np.nan
    return np.polyfit(xs, ys, 1)[0]


def ref_ou(x, dt=1.0, bars_per_day=1.0):
    x = np.asarray(x, float)
    res = sm.OLS(x[1:], sm.add_constant(x[:-1])).fit()
    a, b = res.params
    se_a, se_b = res.bse
    res_d = sm.OLS(np.diff(x), sm.add_constant(x[:-1])).fit()
    out = dict(
        a=a,
        b=b,
        se_a=se_a,
        se_b=se_b,
        r_squared=res.rsquared,
        r_squared_delta=res_d.rsquared,
        residual_std=np.sqrt(res.scale),
        n=len(x),
        mean_reverting=bool(0 < b < 1),
        hurst=ref_hurst_rs(np.diff(x), np.abs(x).max()),
    )
    if 0 < b < 1:
        kappa = -np.log(b) / dt
        out.update(
            theta=a / (1 - b),
            kappa=kappa,
            se_kappa=se_b / (b * dt),
            sigma=np.sqrt(res.scale) * np.sqrt(2 * kappa / (1 - b * b)),
            half_life_bars=LN2 / -np.log(b),
            half_life_days=LN2 / -np.log(b) / bars_per_day,
            se_half_life=se_b * LN2 / (b * np.log(b) ** 2),
        )
    return out


def ref_backtest(prices, positions, cost_bps=0.0, periods_per_year=252):
    """Plain NumPy re-implementation of the documented backtest."""
    p = np.asarray(prices, float)
    q = np.asarray(positions, float)
    c = cost_bps / 1e4
    prev = np.concatenate([[0.0], q[:-1]])
    pr = np.concatenate([[0.0], p[1:] / p[:-1] - 1.0])
    r = q * pr - c * np.abs(q - prev)
    eq = np.cumprod(1.0 + r)
    dd = eq / np.maximum.accumulate(np.maximum(eq, 1.0)) - 1.0
    rs = r[1:]
    n = len(rs)
    mean, std = rs.mean(), rs.std(ddof=1)
    down = np.sqrt((np.minimum(rs, 0.0) ** 2).mean())
    sq = np.sqrt(periods_per_year)

    def ratio(a, b):
        return a / b if b > 0 else (0.0 if a == 0 else np.sign(a) * np.inf)

    entries, exits, dirs, pnls = [], [], [], []
    start = 0
    for t in range(1, len(q) + 1):
        if t == len(q) or q[t] != q[start]:
            if q[start] != 0 and t < len(q):  # run start..t-1, closed at the close of bar t-1
                e, x, d = max(start - 1, 0), t - 1, q[start]
                pnls.append(np.prod(1.0 + d * pr[e + 1 : x + 1]) - 1.0 - 2 * c)
                entries.append(e)
                exits.append(x)
                dirs.append(int(d))
            start = t
    pnls = np.array(pnls, float)
    hold = np.array(exits) - np.array(entries)
    return dict(
        equity=eq,
        returns=r,
        drawdown=dd,
        total_return=eq[-1] - 1.0,
        annual_return=eq[-1] ** (periods_per_year / n) - 1.0 if eq[-1] > 0 else -1.0,
        annual_volatility=std * sq,
        sharpe=ratio(mean, std) * sq,
        sortino=ratio(mean, down) * sq,
        max_drawdown=0.0 - dd.min(),
        n_trades=len(pnls),
        win_rate=float((pnls > 0).mean()) if len(pnls) else 0.0,
        avg_holding_bars=float(hold.mean()) if len(pnls) else 0.0,
        trade_entries=np.array(entries, np.int64),
        trade_exits=np.array(exits, np.int64),
        trade_directions=np.array(dirs, np.int64),
        trade_pnls=pnls,
    )


def ou_path(n, b, theta, sd, seed):
    rng = np.random.default_rng(seed)
    e = rng.normal(0.0, sd, n)
    x = np.empty(n)
    x[0] = theta
    for t in range(1, n):
        x[t] = theta + b * (x[t - 1] - theta) + e[t]
    return x


def shifted_zscore_positions(x, lookback=20, entry=1.0):
    """Simple mean-reversion positions: short above +entry, long below -entry, shifted one bar."""
    w = np.lib.stride_tricks.sliding_window_view(x, lookback)
    z = np.zeros_like(x)
    z[lookback - 1 :] = (x[lookback - 1 :] - w.mean(axis=1)) / w.std(axis=1, ddof=1)
    sig = np.where(z > entry, -1.0, np.where(z < -entry, 1.0, 0.0))
    return np.concatenate([[0.0], sig[:-1]])


def assert_ou_matches(fit, ref, rtol=1e-8):
    assert fit.n == ref["n"]
    assert bool(fit.mean_reverting) == ref["mean_reverting"]
    for k, v in ref.items():
        if k in ("n", "mean_reverting"):
            continue
        np.testing.assert_allclose(getattr(fit, k), v, rtol=rtol, atol=0, err_msg=k)


def assert_bt_matches(bt, ref, rtol=1e-12):
    for k in ("n_trades", "trade_entries", "trade_exits", "trade_directions"):
        np.testing.assert_array_equal(np.asarray(getattr(bt, k)), ref[k], err_msg=k)
    for k in (
        "equity",
        "returns",
        "drawdown",
        "total_return",
        "annual_return",
        "annual_volatility",
        "sharpe",
        "sortino",
        "max_drawdown",
        "win_rate",
        "avg_holding_bars",
        "trade_pnls",
    ):
        np.testing.assert_allclose(getattr(bt, k), ref[k], rtol=rtol, atol=1e-15, err_msg=k)


# --------------------------------------------------------------------------------------------
# fit_ou
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ou_series(sp500_stocks):
    lp = np.log(sp500_stocks[["KO", "PEP"]].to_numpy())
    beta = np.polyfit(lp[:, 1], lp[:, 0], 1)[0]
    return {
        "short_ou_20": ou_path(20, 0.7, 0.0, 1.0, seed=1),
        "ou_2000": ou_path(2000, np.exp(-0.05), 100.0, 0.5, seed=2),
        "ou_b_099": ou_path(20_000, 0.99, 50.0, 1.0, seed=3),
        "random_walk": 100.0 + np.cumsum(np.random.default_rng(4).normal(size=5000)),
        "ko_pep_log_spread": lp[:, 0] - beta * lp[:, 1],
    }


@pytest.mark.parametrize("dt,bars_per_day", [(1.0, 1.0), (1 / 252, 390.0)])
@pytest.mark.parametrize("case", ["short_ou_20", "ou_2000", "ou_b_099", "random_walk", "ko_pep_log_spread"])
def test_fit_ou_matches_statsmodels(backend, ou_series, case, dt, bars_per_day):
    x = ou_series[case]
    fit = backend.fit_ou(x, dt=dt, bars_per_day=bars_per_day)
    ref = ref_ou(x, dt, bars_per_day)
    assert ref["mean_reverting"]  # all these cases have 0 < b < 1
    assert_ou_matches(fit, ref)
    assert isinstance(fit.n, (int, np.integer)) and fit.n == len(x)


def test_fit_ou_on_real_index_level(backend, sp500_index):
    x = sp500_index.to_numpy()
    fit = backend.fit_ou(x)
    ref = ref_ou(x)
    assert_ou_matches(fit, ref)
    assert 0.35 < fit.hurst < 0.65  # a price index is close to a random walk


def test_fit_ou_recovers_simulated_parameters(backend):
    kappa, theta, sd = 0.05, 100.0, 0.5
    b = np.exp(-kappa)
    x = ou_path(20_000, b, theta, sd, seed=7)
    fit = backend.fit_ou(x)
    assert fit.mean_reverting
    assert abs(fit.kappa - kappa) < 4 * fit.se_kappa
    assert abs(fit.half_life_bars - LN2 / kappa) < 4 * fit.se_half_life
    assert abs(fit.theta - theta) < 0.5
    sigma_true = sd * np.sqrt(2 * kappa / (1 - b * b))  # Var(e) = sigma^2 (1 - b^2) / (2 kappa)
    assert abs(fit.sigma / sigma_true - 1) < 0.03
    assert fit.hurst < 0.45  # OU increments are anti-persistent
    # Units: dt in years scales kappa and sigma^2 by 252, leaves the half-life in bars unchanged.
    fy = backend.fit_ou(x, dt=1 / 252, bars_per_day=6.5)
    np.testing.assert_allclose(fy.kappa, 252 * fit.kappa, rtol=1e-12)
    np.testing.assert_allclose(fy.sigma, np.sqrt(252) * fit.sigma, rtol=1e-12)
    np.testing.assert_allclose(fy.half_life_bars, fit.half_life_bars, rtol=1e-12)
    np.testing.assert_allclose(fy.half_life_days, fit.half_life_bars / 6.5, rtol=1e-12)
    np.testing.assert_allclose(fy.se_half_life, fit.se_half_life, rtol=1e-12)


def test_delta_method_standard_errors(backend):
    x = ou_path(3000, 0.93, 1.0, 0.1, seed=8)
    fit = backend.fit_ou(x)
    h = 1e-6
    hl = lambda b: LN2 / -np.log(b)  # noqa: E731
    kap = lambda b: -np.log(b)  # noqa: E731
    np.testing.assert_allclose(fit.se_half_life, fit.se_b * abs(hl(fit.b + h) - hl(fit.b - h)) / (2 * h), rtol=1e-6)
    np.testing.assert_allclose(fit.se_kappa, fit.se_b * abs(kap(fit.b + h) - kap(fit.b - h)) / (2 * h), rtol=1e-6)


def test_hurst_is_classic_rs_of_increments(backend):
    rng = np.random.default_rng(9)
    walk = np.cumsum(rng.normal(size=4096))
    fit = backend.fit_ou(walk)
    np.testing.assert_allclose(fit.hurst, ref_hurst_rs(np.diff(walk), np.abs(walk).max()), rtol=1e-10)
    assert 0.45 < fit.hurst < 0.65  # white-noise increments (classic R/S is biased slightly up)
    trend = np.cumsum(np.cumsum(rng.normal(size=4096)))  # persistent increments
    assert backend.fit_ou(trend).hurst > 0.8


def test_not_mean_reverting_is_flagged_not_an_error(backend):
    rng = np.random.default_rng(10)
    explosive = 1.02 ** np.arange(60) + 0.01 * rng.normal(size=60)
    f = backend.fit_ou(explosive)
    ref = ref_ou(explosive)
    assert f.b > 1 and not f.mean_reverting
    assert f.half_life_bars == np.inf and f.half_life_days == np.inf and f.se_half_life == np.inf
    assert f.kappa < 0 and np.isnan(f.sigma)
    for k in ("a", "b", "se_a", "se_b", "r_squared", "residual_std", "hurst"):
        np.testing.assert_allclose(getattr(f, k), ref[k], rtol=1e-8, err_msg=k)
    np.testing.assert_allclose(f.theta, f.a / (1 - f.b), rtol=1e-12)
    alternating = np.where(np.arange(50) % 2 == 0, 1.0, -1.0) + 0.1 * rng.normal(size=50)
    g = backend.fit_ou(alternating)
    assert g.b < 0 and not g.mean_reverting and g.half_life_bars == np.inf and np.isnan(g.kappa)
    # A straight line: b == 1, increments constant so R/S is undefined -> NaN, not an error.
    line = backend.fit_ou(np.arange(40.0))
    assert not line.mean_reverting and np.isnan(line.hurst)


@pytest.mark.parametrize(
    "series,kwargs,message",
    [
        (np.arange(19.0), {}, "series must have at least 20 points"),
        (np.r_[np.arange(10.0), np.nan, np.arange(10.0)], {}, "series contains NaN at index 10"),
        (np.r_[np.arange(10.0), np.inf, np.arange(10.0)], {}, "series contains an infinite value"),
        (np.full(30, 3.0), {}, "series is constant"),
        (np.full(30, 1e9 + 0.3), {}, "series is constant"),  # the plain mean is off by rounding here
        (np.where(np.arange(40) % 3 == 0, 1e9, 1e9 + 1.2e-7), {}, "series is nearly constant"),
        (np.r_[1.0, np.full(30, 3.0)], {}, "series is constant after its first point"),
        (np.sin(np.arange(30.0)), {"dt": 0.0}, "dt must be a positive finite number"),
        (np.sin(np.arange(30.0)), {"bars_per_day": -1.0}, "bars_per_day must be a positive finite number"),
        (np.array([], float), {}, "series is empty"),
    ],
)
def test_fit_ou_errors(backend, series, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        backend.fit_ou(series, **kwargs)


# --------------------------------------------------------------------------------------------
# backtest
# --------------------------------------------------------------------------------------------
def test_backtest_five_bars_by_hand(backend):
    p = np.array([100.0, 110.0, 99.0, 99.0, 108.9])
    q = np.array([0, 1, -1, -1, 0], dtype=np.int8)
    bt = backend.backtest(p, q, cost_bps=10.0, periods_per_year=252)
    c = 0.001
    # bar 1: long +10% and opens (c); bar 2: flip to short earns +10% and costs 2c;
    # bar 3: flat price; bar 4: closes the short (c), its +10% move is not earned.
    r = np.array([0.0, 0.1 - c, 0.1 - 2 * c, 0.0, -c])
    np.testing.assert_allclose(bt.returns, r, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(bt.equity, np.cumprod(1 + r), rtol=1e-13)
    np.testing.assert_allclose(bt.total_return, np.prod(1 + r) - 1, rtol=1e-13)
    np.testing.assert_allclose(bt.drawdown, [0, 0, 0, 0, -c], atol=1e-15)
    np.testing.assert_allclose(bt.max_drawdown, c, rtol=1e-12)
    assert bt.n_trades == 2
    np.testing.assert_array_equal(bt.trade_entries, [0, 1])  # long bought at p[0], short sold at p[1]
    np.testing.assert_array_equal(bt.trade_exits, [1, 3])  # long sold at p[1], short covered at p[3]
    np.testing.assert_array_equal(bt.trade_directions, [1, -1])
    np.testing.assert_allclose(bt.trade_pnls, [0.1 - 2 * c, 0.1 - 2 * c], rtol=1e-13)
    assert bt.win_rate == 1.0 and bt.avg_holding_bars == 1.5
    rs = r[1:]
    np.testing.assert_allclose(bt.sharpe, rs.mean() / rs.std(ddof=1) * np.sqrt(252), rtol=1e-12)
    np.testing.assert_allclose(bt.annual_volatility, rs.std(ddof=1) * np.sqrt(252), rtol=1e-12)
    np.testing.assert_allclose(bt.sortino, rs.mean() / np.sqrt(c**2 / 4) * np.sqrt(252), rtol=1e-12)
    np.testing.assert_allclose(bt.annual_return, np.prod(1 + r) ** (252 / 4) - 1, rtol=1e-12)
    assert_bt_matches(bt, ref_backtest(p, q, 10.0, 252))


@pytest.mark.parametrize("cost_bps", [0.0, 5.0])
def test_backtest_matches_numpy_on_seeded_ou(backend, cost_bps):
    x = ou_path(5000, 0.95, 0.0, 1.0, seed=11)
    prices = 100.0 * np.exp(0.01 * x)
    pos = shifted_zscore_positions(prices)
    assert 50 < np.count_nonzero(np.diff(pos)) < 2000
    bt = backend.backtest(prices, pos, cost_bps=cost_bps, periods_per_year=252)
    ref = ref_backtest(prices, pos, cost_bps, 252)
    assert_bt_matches(bt, ref)
    assert bt.n_trades > 20 and bt.sharpe > 0  # mean reversion pays on OU prices before costs
    for k in BT_FIELDS:
        assert hasattr(bt, k)
    assert bt.equity.shape == bt.returns.shape == bt.drawdown.shape == prices.shape


def test_backtest_random_positions_and_real_prices(backend, sp500_stocks):
    rng = np.random.default_rng(12)
    p = sp500_stocks["AAPL"].to_numpy()[:3000]
    q = rng.integers(-1, 2, size=len(p)).astype(float)  # includes positions[0] != 0
    for cost, ppy in [(0.0, 252), (3.0, 252 * 390)]:
        assert_bt_matches(backend.backtest(p, q, cost_bps=cost, periods_per_year=ppy), ref_backtest(p, q, cost, ppy))


def test_costs_are_charged_per_unit_of_position_change(backend):
    rng = np.random.default_rng(13)
    p = 50 * np.exp(np.cumsum(0.01 * rng.normal(size=400)))
    q = np.concatenate([[0.0], rng.choice([-1.0, 0.0, 1.0], size=399)])
    free = backend.backtest(p, q, cost_bps=0.0)
    paid = backend.backtest(p, q, cost_bps=7.0)
    turnover = np.abs(np.diff(np.concatenate([[0.0], q])))
    np.testing.assert_allclose(free.returns - paid.returns, 7e-4 * turnover, rtol=1e-12, atol=1e-17)
    assert turnover.max() == 2  # the series contains flips, charged twice
    np.testing.assert_allclose(free.trade_pnls - paid.trade_pnls, 2 * 7e-4, rtol=1e-9)
    assert paid.total_return < free.total_return
    # Buy and hold from bar 0 pays one entry cost at p[0].
    bh = backend.backtest(p, np.ones_like(p), cost_bps=7.0)
    np.testing.assert_allclose(bh.equity[-1], (1 - 7e-4) * p[-1] / p[0], rtol=1e-12)
    assert bh.n_trades == 0 and bh.win_rate == 0.0 and bh.avg_holding_bars == 0.0  # never closed


def test_no_look_ahead(backend):
    # positions[t] earns bar t's return (close t-1 -> close t): it must be decided at close t-1.
    p = np.array([100.0, 100.0, 150.0, 150.0, 150.0])
    late = backend.backtest(p, np.array([0, 0, 0, 1, 1.0]))  # signal from bar 2's close, shifted
    assert late.total_return == 0.0 and np.all(late.returns == 0.0)
    early = backend.backtest(p, np.array([0, 0, 1, 1, 1.0]))  # decided at close 1, before the jump
    np.testing.assert_allclose(early.total_return, 0.5, rtol=1e-15)
    # A "signal" that knows bar t's own move wins every bar; the properly shifted one does not.
    rng = np.random.default_rng(14)
    px = 100 * np.exp(np.cumsum(0.01 * rng.normal(size=2000)))
    move = np.sign(np.diff(px, prepend=px[0]))
    cheat = backend.backtest(px, move)
    honest = backend.backtest(px, np.concatenate([[0.0], move[:-1]]))
    assert np.all(cheat.returns[1:] >= 0) and cheat.sharpe > 10
    assert abs(honest.sharpe) < 2.5
    assert_bt_matches(honest, ref_backtest(px, np.concatenate([[0.0], move[:-1]])))


def test_backtest_of_mean_reversion_positions(backend):
    # The lead's mean-reversion positions (int8, already shifted) go straight into the backtest.
    x = ou_path(3000, 0.97, 0.0, 1.0, seed=15)
    prices = 100.0 * np.exp(0.01 * x)
    mr = backend.calculate_mean_reversion(prices, lookback=30, threshold=1.5)
    bt = backend.backtest(prices, mr.positions, cost_bps=1.0)
    assert_bt_matches(bt, ref_backtest(prices, mr.positions.astype(float), 1.0, 252))
    assert bt.n_trades > 0


def test_trades_and_open_position(backend):
    p = np.array([10.0, 11.0, 12.0, 9.0, 9.5, 10.0])
    q = np.array([-1, -1, 0, 1, 1, 1.0])  # short from bar 0, closed at close 1; long still open
    bt = backend.backtest(p, q)
    np.testing.assert_array_equal(bt.trade_entries, [0])
    np.testing.assert_array_equal(bt.trade_exits, [1])
    np.testing.assert_array_equal(bt.trade_directions, [-1])
    np.testing.assert_allclose(bt.trade_pnls, [-0.1], rtol=1e-14)
    assert bt.n_trades == 1 and bt.win_rate == 0.0 and bt.avg_holding_bars == 1.0
    assert bt.trade_entries.dtype.kind == "i" and bt.trade_directions.dtype.kind == "i"
    flat = backend.backtest(p, np.zeros_like(p))
    assert flat.sharpe == 0.0 and flat.sortino == 0.0 and flat.max_drawdown == 0.0
    np.testing.assert_array_equal(flat.equity, np.ones_like(p))
    assert flat.trade_pnls.shape == (0,)


@pytest.mark.parametrize(
    "prices,positions,kwargs,message",
    [
        (np.arange(1.0, 6.0), np.zeros(4), {}, "positions has length 4 but prices has length 5"),
        (np.array([1.0, np.nan, 2.0]), np.zeros(3), {}, "prices contains NaN at index 1"),
        (np.array([1.0, 2.0, 3.0]), np.array([0.0, np.nan, 0.0]), {}, "positions contains NaN at index 1"),
        (np.array([1.0, 0.0, 3.0]), np.zeros(3), {}, "prices must be positive, got 0 at index 1"),
        (np.array([1.0, -2.0, 3.0]), np.zeros(3), {}, "prices must be positive"),
        (np.arange(1.0, 4.0), np.array([0.0, 0.5, 0.0]), {}, "positions must be -1, 0 or 1, got 0.5 at index 1"),
        (np.arange(1.0, 4.0), np.array([0.0, 2.0, 0.0]), {}, "positions must be -1, 0 or 1, got 2 at index 1"),
        (np.arange(1.0, 4.0), np.zeros(3), {"cost_bps": -1.0}, "cost_bps must be a non-negative finite number"),
        (np.arange(1.0, 4.0), np.zeros(3), {"periods_per_year": 0}, "periods_per_year must be a positive"),
        (np.array([1.0, 2.0]), np.zeros(2), {}, "prices must have at least 3 bars"),
        (np.array([], float), np.array([], float), {}, "prices is empty"),
    ],
)
def test_backtest_errors(backend, prices, positions, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        backend.backtest(prices, positions, **kwargs)


# --------------------------------------------------------------------------------------------
# parity
# --------------------------------------------------------------------------------------------
def test_backends_give_identical_results(backends, ou_series):
    x = ou_series["ou_2000"]
    fits = {k: b.fit_ou(x, dt=1 / 252, bars_per_day=2.0) for k, b in backends.items()}
    for f in OU_FIELDS:
        np.testing.assert_array_equal(getattr(fits["pyo3"], f), getattr(fits["grpc"], f), err_msg=f)
    nr = np.arange(40.0) ** 1.5  # not mean-reverting: inf / NaN fields must survive both transports
    fits = {k: b.fit_ou(nr) for k, b in backends.items()}
    for f in OU_FIELDS:
        np.testing.assert_array_equal(getattr(fits["pyo3"], f), getattr(fits["grpc"], f), err_msg=f)
    prices = 100.0 * np.exp(0.01 * x / x.std())
    pos = shifted_zscore_positions(prices)
    bts = {k: b.backtest(prices, pos, cost_bps=2.5, periods_per_year=252) for k, b in backends.items()}
    for f in BT_FIELDS:
        np.testing.assert_array_equal(getattr(bts["pyo3"], f), getattr(bts["grpc"], f), err_msg=f)


def test_signed_zeros_are_normalised_on_both_backends(backends):
    """A straight line has b == 1 exactly, so kappa = -ln(1) = -0.0 before normalisation; proto3
    does not send -0.0, so the core returns +0.0 and both transports agree bit for bit."""
    line = np.arange(40.0)
    fits = {k: b.fit_ou(line) for k, b in backends.items()}
    for f in fits.values():
        assert f.b == 1.0 and f.kappa == 0.0 and not np.signbit(f.kappa)
    for f in OU_FIELDS:
        a, b = np.asarray(getattr(fits["pyo3"], f), dtype=float), np.asarray(getattr(fits["grpc"], f), dtype=float)
        assert a.tobytes() == b.tobytes(), f
