"""Issue 13, property-based gaps: the public API against independent references on hostile scales.

* HMM (1-D) through `run_hmm` from a given start against a plain NumPy Baum-Welch written from
  the documented algorithm (log-space forward-backward, maximum-likelihood M-step, variance floor
  1e-6 x var(x)): whatever kernels the core uses inside (blocks, lanes, lazy scaling), the EM
  iterates must be those. Levels and scales from 1e-6 to 1e9, lengths that are not multiples of
  any block, K from 1 to 5, a state that starts far from the data.
* Lasso / elastic net on just over one Gram block (2^16 observations) against scikit-learn, at
  column scales from 1e-6 to 1e9 (few columns, so each example is fast).
* Rolling z-score on the two-thread batch path (n >= 200,000) and the streaming path: bit-identical
  to each other on both backends, and sampled windows exact against fractions.Fraction.
"""

from __future__ import annotations

import warnings
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp

# ---------------------------------------------------------------- HMM against a NumPy Baum-Welch


def numpy_baum_welch(x, start, trans, means, var, iters):
    """`iters` EM iterations from the given start (the core's documented algorithm, plain ML with
    the variance floor); returns the history of log-likelihoods (before each M-step) and the
    parameters after the last M-step, with the log-likelihood and posteriors under them."""
    floor = 1e-6 * x.var()
    lt = np.log(trans)
    hist = []

    def e_step(start, lt, means, var):
        le = -0.5 * (np.log(2 * np.pi * var)[None, :] + (x[:, None] - means[None, :]) ** 2 / var[None, :])
        n, k = le.shape
        la, lb = np.empty((n, k)), np.zeros((n, k))
        with np.errstate(divide="ignore"):
            la[0] = np.log(start) + le[0]
        for t in range(1, n):
            la[t] = logsumexp(la[t - 1][:, None] + lt, axis=0) + le[t]
        for t in range(n - 2, -1, -1):
            lb[t] = logsumexp(lt + (le[t + 1] + lb[t + 1])[None, :], axis=1)
        ll = logsumexp(la[-1])
        g = np.exp(la + lb - ll)
        xi = np.exp(la[:-1, :, None] + lt[None] + (le[1:] + lb[1:])[:, None, :] - ll).sum(axis=0)
        return ll, g, xi

    for _ in range(iters):
        ll, g, xi = e_step(start, lt, means, var)
        hist.append(ll)
        start = g[0] / g[0].sum()
        rows = xi.sum(axis=1, keepdims=True)
        trans = np.where(rows > 0, xi / np.where(rows > 0, rows, 1), np.exp(lt))
        with np.errstate(divide="ignore"):
            lt = np.log(trans)
        w = g.sum(axis=0)
        means = (g * x[:, None]).sum(axis=0) / w
        var = np.maximum((g * (x[:, None] - means[None, :]) ** 2).sum(axis=0) / w, floor)
    ll, g, _ = e_step(start, lt, means, var)
    return dict(history=np.array(hist), start=start, trans=np.exp(lt), means=means, var=var, ll=ll, post=g)


@st.composite
def regime_series(draw):
    k_true = draw(st.integers(1, 3))
    n = draw(st.integers(40, 160))
    scale = 10.0 ** draw(st.integers(-6, 9))
    offset = scale * draw(st.sampled_from([0.0, 1.0, -50.0, 1e3]))
    r = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    states = np.cumsum(r.random(n) < 0.05) % k_true
    mu = np.array([0.0, 3.0, -2.0])[:k_true]
    sd = np.array([1.0, 0.5, 2.0])[:k_true]
    x = offset + scale * (mu[states] + sd[states] * r.standard_normal(n))
    k = draw(st.integers(1, min(5, n // 10)))
    # a start from the data's quantiles, one state shifted far away (an empty state for EM)
    srt = np.sort(x)
    means = np.array([srt[j * n // k : (j + 1) * n // k].mean() for j in range(k)])
    if k > 1 and draw(st.booleans()):
        means[-1] = x.max() + 20 * x.std()
    trans = r.uniform(0.1, 1.0, (k, k)) + 5 * np.eye(k)
    trans /= trans.sum(axis=1, keepdims=True)
    start = r.uniform(0.2, 1.0, k)
    start /= start.sum()
    var = x.var() * r.uniform(0.3, 2.0, k)
    iters = draw(st.integers(1, 4))
    return x, dict(start_prob=start, transmat=trans, means=means, variances=var), iters


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=regime_series())
def test_hmm_em_iterates_match_a_numpy_reference_on_hostile_scales(backends, case):
    x, init, iters = case
    # tolerance 0: EM stops early only if the log-likelihood goes down (to rounding)
    res = [b.run_hmm(x, n_states=len(init["means"]), max_iterations=iters, tolerance=0.0, init=init) for b in backends.values()]
    a, g = res
    ref = numpy_baum_welch(x, init["start_prob"], init["transmat"], init["means"], init["variances"], a.iterations)
    for f in ("means", "variances", "transition_matrix", "start_probabilities", "posteriors", "log_likelihood_history"):
        assert getattr(a, f).tobytes() == getattr(g, f).tobytes(), f
    assert np.float64(a.log_likelihood).tobytes() == np.float64(g.log_likelihood).tobytes()
    assert 1 <= a.iterations <= iters and len(a.log_likelihood_history) == a.iterations
    # the core sorts states by mean: sort the reference the same way (stable)
    o = np.argsort(ref["means"], kind="stable")
    sc = x.std()
    n = len(x)
    # log-likelihoods: relative to n (a per-observation error), in the units' log
    np.testing.assert_allclose(a.log_likelihood_history, ref["history"], rtol=0, atol=1e-9 * n)
    assert abs(a.log_likelihood - ref["ll"]) <= 1e-9 * n
    np.testing.assert_allclose(a.means, ref["means"][o], rtol=0, atol=1e-9 * sc)
    np.testing.assert_allclose(a.variances, ref["var"][o], rtol=1e-8, atol=1e-12 * sc * sc)
    np.testing.assert_allclose(a.transition_matrix, ref["trans"][np.ix_(o, o)], rtol=0, atol=1e-9)
    np.testing.assert_allclose(a.start_probabilities, ref["start"][o], rtol=0, atol=1e-9)
    np.testing.assert_allclose(a.posteriors, ref["post"][:, o], rtol=0, atol=1e-9)
    assert np.isfinite(a.aic) and np.isfinite(a.bic)


# ---------------------------------------------------------------- lasso over two Gram blocks vs scikit-learn

BLOCK = 1 << 16


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    extra=st.integers(1, 3000),
    cols=st.integers(2, 4),
    scales=st.lists(st.integers(-6, 9), min_size=4, max_size=4),
    frac=st.sampled_from([0.01, 0.1, 0.5]),
    l1=st.sampled_from([1.0, 0.5]),
    seed=st.integers(0, 2**32 - 1),
)
def test_lasso_over_the_gram_block_boundary_matches_sklearn_on_hostile_scales(backends, extra, cols, scales, frac, l1, seed):
    from sklearn.linear_model import ElasticNet

    n = BLOCK + extra
    r = np.random.default_rng(seed)
    s = 10.0 ** np.array(scales[:cols], dtype=float)
    z = np.cumsum(r.standard_normal((n, cols)), axis=0)
    z[:, 0] = 0.7 * z[:, 1] + r.standard_normal(n)  # the target is cointegrated with asset 1
    p = 10 * s * (50 + z / np.sqrt(n))  # positive, levels near 500 x scale
    y, X = p[:, 0], p[:, 1:]
    yc, Xc = y - y.mean(), X - X.mean(axis=0)
    lam = frac * np.abs(Xc.T @ yc).max() / (n * l1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = ElasticNet(alpha=lam, l1_ratio=l1, tol=1e-12, max_iter=1_000_000, selection="cyclic").fit(X, y)
    method = "lasso" if l1 == 1.0 else "elastic_net"
    res = [
        b.calculate_sparse_portfolio(
            p, method=method, lambda_param=lam, alpha=l1, target=0, tolerance=1e-12, max_iterations=1_000_000, adf_autolag="none"
        )
        for b in backends.values()
    ]
    assert res[0].weights.tobytes() == res[1].weights.tobytes()
    beta = -np.delete(res[0].weights, 0)
    # coefficients relative to the scale they multiply: |Δβ_j|·||x_j|| against ||y||
    err = np.abs(beta - m.coef_) * np.linalg.norm(Xc, axis=0) / np.linalg.norm(yc)
    assert err.max() <= 1e-7, (err, beta, m.coef_)
    np.testing.assert_array_equal(beta != 0, m.coef_ != 0)
    assert abs(res[0].intercept - m.intercept_) <= 1e-7 * (abs(y).max())


# ---------------------------------------------------------------- rolling: the two-thread batch path

TWO_THREADS = 200_000


def exact_window(x, t, w):
    f = [Fraction(float(v)) for v in x[t - w + 1 : t + 1]]
    m = sum(f, Fraction(0)) / w
    var = sum(((v - m) ** 2 for v in f), Fraction(0)) / (w - 1)
    if var == 0:
        return float(m), 0.0, 0.0
    with localcontext() as ctx:
        ctx.prec = 40
        dec = lambda q: Decimal(q.numerator) / Decimal(q.denominator)  # noqa: E731
        sd = dec(var).sqrt()
        return float(m), float(sd), float(dec(f[-1] - m) / sd)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    level=st.integers(-6, 9),
    rel_noise=st.integers(-9, -2),
    jump=st.integers(0, 9),
    p_flat=st.floats(0.0, 0.9),
    w=st.sampled_from([2, 3, 20, 257, 1000]),
    seed=st.integers(0, 2**32 - 1),
)
def test_two_thread_batch_equals_the_stream_and_is_exact_on_both_backends(backends, level, rel_noise, jump, p_flat, w, seed):
    r = np.random.default_rng(seed)
    n = TWO_THREADS + int(r.integers(0, 5000))
    lv = 10.0**level
    noise = lv * 10.0**rel_noise
    steps = noise * (r.random(n) - 0.5)
    steps[r.random(n) < p_flat] = 0.0  # flat runs
    jumps = r.random(n) < 1e-4
    steps[jumps] = noise * 10.0**jump * np.sign(r.random(jumps.sum()) - 0.5)
    x = lv + np.cumsum(steps)
    kw = dict(lookback=w, threshold=1.5, exit_threshold=0.25, stop_threshold=3.0)
    res = [b.calculate_mean_reversion(x, **kw) for b in backends.values()]
    with backends["grpc"].mean_reversion_stream(**kw) as s:
        ticks = [s.push_many(x[a : a + 70_001]) for a in range(0, n, 70_001)]
    for f in ("rolling_mean", "rolling_std", "zscore", "signals", "positions"):
        stream = np.concatenate([getattr(t, f) for t in ticks])
        for rr in res:
            assert getattr(rr, f).tobytes() == stream.astype(getattr(rr, f).dtype).tobytes(), f
    a = res[0]
    # sampled windows, exact: either side of the split, around every jump, and at random
    mid = n // 2
    pick = set(range(mid - 3, mid + 3)) | set(r.integers(w - 1, n, 25).tolist())
    for j in np.flatnonzero(jumps)[:6]:
        pick |= {j, j + 1, j + w - 1, j + w}
    for t in sorted(v for v in pick if w - 1 <= v < n):
        m, sd, z = exact_window(x, t, w)
        if sd == 0.0:
            assert a.rolling_std[t] == 0.0 and a.zscore[t] == 0.0, t
        else:
            assert abs(a.rolling_std[t] - sd) <= 1e-12 * sd, (t, a.rolling_std[t], sd)
            assert abs(a.zscore[t] - z) <= 1e-9 * max(1.0, abs(z)), (t, a.zscore[t], z)


# ---------------------------------------------------------------- regressions: holes the sweep found


def test_johansen_refuses_levels_collinear_to_rounding_at_any_scale(backends):
    """Sweep find: three series near 1e-6 moving by 1e-9 of their level, det_order -1: the levels
    are collinear to rounding, and the eigenvalues came out as (1.21, 0.08, -2.03) with a NaN
    trace statistic. Now one rule relative to the data (1 - R^2 <= 100 sqrt(eps), statsmodels
    coint's threshold): a NumericalError with the same text on both backends, at every scale."""
    from hft_lab.backends import NumericalError

    z = np.exp(np.cumsum(1e-9 * np.random.default_rng(5).standard_normal((60, 3)), axis=0))
    for scale in (1e-6, 1.0, 1e9):
        msgs = set()
        for b in backends.values():
            with pytest.raises(NumericalError, match=r"Johansen: the levels are (\(nearly\) )?collinear") as e:
                b.johansen(z * scale, det_order=-1, k_ar_diff=0)
            msgs.add(str(e.value))
        assert len(msgs) == 1


def test_backtest_ruin_floors_equity_at_zero(backends):
    """Sweep find: a short whose price triples loses 200 % of the capital; equity went to -1 and
    then to -1.5 after the short's 50 % GAIN (a negative equity compounding). Ruin is absorbing:
    equity 0 for good, drawdown -1, the trade's pnl -100 %."""
    p = np.array([1.0, 1.0, 3.0, 3.0, 1.5, 2.0])
    q = np.array([0.0, -1.0, -1.0, -1.0, -1.0, 0.0])
    for b in backends.values():
        r = b.backtest(p, q)
        assert r.returns[2] == -2.0
        np.testing.assert_array_equal(r.equity, [1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
        assert not np.signbit(r.equity).any()
        np.testing.assert_array_equal(r.drawdown, [0.0, 0.0, -1.0, -1.0, -1.0, -1.0])
        assert r.max_drawdown == 1.0 and r.total_return == -1.0 and r.annual_return == -1.0
        np.testing.assert_array_equal(r.trade_pnls, [-1.0])


def test_walk_forward_ruin_floors_equity_at_zero(backends):
    """Sweep find (walk-forward): a leg jumping 20x against an open pair position gave a bar
    return of about -950 % and a NEGATIVE out-of-sample equity (-4.55). Now the equity stops at 0
    for good and the window's pnl at -100 %, as in the backtest."""
    r = np.random.default_rng(3)
    n, f = 45, 30
    x = 100 + np.cumsum(r.standard_normal(n))
    y = x + 0.1 * r.standard_normal(n)
    y[f + 3] = x[f + 3] + 5.0  # z far above the entry: short the spread at this close
    y[f + 4] = 20 * x[f + 4]  # ... and y jumps 20x during the next bar
    p = np.c_[y, x]
    out = [b.walk_forward(p, f, 10, selection={"max_pvalue": 1.0}, entry=2.0, exit=0.0) for b in backends.values()]
    a = out[0]
    assert a.oos_equity.tobytes() == out[1].oos_equity.tobytes()
    assert a.trades[0] >= 1
    assert (a.oos_equity >= 0).all() and not np.signbit(a.oos_equity).any()
    k = np.flatnonzero(a.oos_equity == 0)
    assert k.size and k[0] == f + 4 and (a.oos_equity[k[0] :] == 0).all()
    assert a.oos_drawdown.min() == -1.0 and a.pnl[0] == -1.0


def test_pairs_correlation_of_a_deterministic_accrual_is_undefined(backends):
    """Probe find: an asset growing at a constant rate (2^(t/4), a cash-like accrual) has returns
    equal up to rounding; their 'correlation' with anything was rounding noise (-0.135, 0.131,
    0.149). Now NaN (undefined), dropped by min_correlation; the other pairs are unchanged."""
    r = np.random.default_rng(1)
    x = 100 * np.exp(np.cumsum(0.01 * r.standard_normal(60)))
    y = 50 * np.exp(np.cumsum(0.01 * r.standard_normal(60)))
    for accrual in (2.0 ** (np.arange(60) / 4), 1e9 * 1.0001 ** np.arange(60)):
        p = np.c_[x, accrual, y]
        out = [b.scan_pairs(p) for b in backends.values()]
        assert out[0].correlation.tobytes() == out[1].correlation.tobytes()
        s = out[0]
        for i, j, c in zip(s.i, s.j, s.correlation):
            if 1 in (i, j):
                assert np.isnan(c), (i, j, c)
            else:
                rx, ry = np.diff(x) / x[:-1], np.diff(y) / y[:-1]
                assert abs(c - np.corrcoef(rx, ry)[0, 1]) <= 1e-12
        assert 1 not in backends["pyo3"].scan_pairs(p, min_correlation=-1.0).i
        assert 1 not in backends["pyo3"].scan_pairs(p, min_correlation=-1.0).j


# ---------------------------------------------------------------- one AR(1) half-life convention


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(seed=st.integers(0, 2**32 - 1), phi=st.sampled_from([-0.6, -0.05, 0.3, 0.9, 0.99, 1.0, 1.02]), level=st.integers(-6, 9))
def test_one_half_life_convention_in_ou_sparse_and_pairs(backends, seed, phi, level):
    """The OU fit, the sparse basket and the pairs scan report the same AR(1) half-life of the
    same spread (-ln 2 / ln phi for 0 < phi < 1, +inf otherwise, negative phi included), on both
    backends, at any price level."""
    r = np.random.default_rng(seed)
    n = 120
    lv = 10.0**level
    x = lv * np.exp(np.cumsum(0.01 * r.standard_normal(n)))
    e = np.zeros(n)
    for t in range(1, n):
        e[t] = phi * e[t - 1] + r.standard_normal()
    y = 0.8 * x + lv * (1.0 + 0.01 * e / (1 + np.abs(e).max()))
    p = np.c_[y, x]
    for b in backends.values():
        sp = b.calculate_sparse_portfolio(p, method="lasso", lambda_param=1e-12 * lv * lv, target=0)
        ou = b.fit_ou(sp.spread)
        sc = b.scan_pairs(p)
        pair_spread = y - sc.hedge_ratio[0] * x - sc.intercept[0]
        ou_pair = b.fit_ou(pair_spread)
        for got, want in ((sp.half_life, ou.half_life_bars), (sc.half_life[0], ou_pair.half_life_bars)):
            if np.isinf(want):
                assert got == np.inf, (got, want, ou.b)
            else:
                assert abs(got - want) <= 1e-7 * want, (got, want)
        assert (ou.b <= 0 or ou.b >= 1) == (ou.half_life_bars == np.inf)


def test_hurst_skips_straight_segments_at_any_level(backends):
    """Probe find: a straight segment (a linear interpolation over a gap, or equal steps) has
    increments equal up to rounding, and R/S read that rounding as noise (a garbage R/S per chunk,
    pulled into the exponent). Now such chunks are skipped, as flat ones are: the exponent of a
    series whose middle is a straight line equals the one computed without those chunks."""
    from test_ou_backtest import ref_hurst_rs

    r = np.random.default_rng(8)
    for level in (1e-6, 100.0, 1e9):
        x = level * (1 + 0.01 * np.cumsum(r.standard_normal(200)))
        x[40:160] = np.linspace(x[40], x[40] + 0.3 * level, 120)  # interpolated: equal steps to rounding
        d = np.diff(x)
        fits = [b.fit_ou(x) for b in backends.values()]
        assert np.float64(fits[0].hurst).tobytes() == np.float64(fits[1].hurst).tobytes()
        want = ref_hurst_rs(d, np.abs(x).max())
        assert abs(fits[0].hurst - want) <= 1e-10, (level, fits[0].hurst, want)
