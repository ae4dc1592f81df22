"""Sparse mean-reverting baskets: lasso / elastic net against scikit-learn, Box-Tiao and the
d'Aspremont greedy search against SciPy's generalized eigensolver, the spread statistics against
statsmodels, the lambda path, bad input, both backends identical.

Conventions (what the core computes, so the references below compute the same):
- lasso / elastic_net regress the target column y on the other columns X with exactly
  scikit-learn's ElasticNet objective 1/(2n)*||y - X b - c||^2 + lambda*alpha*||b||_1
  + 0.5*lambda*(1-alpha)*||b||^2 (fit_intercept=True; alpha is scikit-learn's l1_ratio, lasso
  uses 1) and the same duality-gap stopping rule (`tolerance` is scikit-learn's `tol`).
  The basket is +1 on the target and -b on the hedges: the hedge coefficients are
  `-weights[others]`. `intercept` is scikit-learn's `intercept_` (= the mean of the spread).
  The references are fitted at tol=1e-12; coefficients are compared with rtol=1e-8 plus
  atol=1e-8*max|b| (near-zero coefficients are compared absolutely, relative to the largest).
- spread = prices @ weights (intercept not removed); adf_statistic, adf_lag = statsmodels
  adfuller(spread, regression="c", autolag="AIC")[0, 2] (the default adf_autolag, adfuller's
  default; "none" is adfuller(spread, maxlag=0, autolag=None)); half_life = -ln 2 / ln(1 + b)
  with b the slope of diff(s) on s[:-1] (with constant), inf when b >= 0; critical values =
  statsmodels mackinnoncrit(N=min(nonzero, 12), regression="c", nobs=T-1) (as in coint).
- box_tiao: with x = prices - column means, Z0 = x[:-1], Z1 = x[1:], G0 = Z0'Z0/(T-1),
  G1 = Z0'Z1/(T-1), M = G1' G0^-1 G1: weights = eigenvector of the smallest eigenvalue of
  M w = nu G0 w (scipy.linalg.eigh(M, G0)), unit L2 norm, largest |w| positive; objective = nu.
- greedy: start with argmin_i M_ii/G0_ii, add the asset minimising the smallest generalized
  eigenvalue of the (M, G0) sub-blocks until k assets; then Box-Tiao on that subset.
- sparse_lambda_path: lambdas default to n_lambdas values np.geomspace(lmax, 1e-3*lmax) with
  lmax = max|Xc'yc|/(n*alpha) (scikit-learn's alpha grid); nonzero counts the target too.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
import scipy.linalg as sla
from scipy.signal import lfilter

TIGHT = dict(tolerance=1e-12, max_iterations=1_000_000)
COEF_RTOL = 1e-8


# ---------------------------------------------------------------- data and references


def coint_prices(n_obs, n_assets, seed, return_hedges=False):
    """Seeded random walks with a market factor; every 10th asset (0, 10, ...) is 20 + a positive
    combination of 3 other assets + AR(1) noise (phi = 0.8), i.e. cointegrated with them."""
    rng = np.random.default_rng(seed)
    m = rng.normal(0.0, 1.0, n_obs)
    beta = rng.uniform(0.2, 1.0, n_assets)
    p = 100.0 + np.cumsum(m[:, None] * beta + rng.normal(0.0, 1.0, (n_obs, n_assets)), axis=0)
    pool = [i for i in range(n_assets) if i % 10 != 0]
    hedges = {}
    for j in range(0, n_assets, 10):
        others = rng.choice(pool, 3, replace=False)
        c = rng.uniform(0.3, 1.0, 3)
        e = lfilter([1.0], [1.0, -0.8], rng.normal(0.0, 2.0, n_obs))
        p[:, j] = 20.0 + p[:, others] @ c + e
        hedges[j] = sorted(int(o) for o in others)
    return (p, hedges) if return_hedges else p


_DATA: dict[str, np.ndarray] = {}


def data(key, sp500=None):
    if key not in _DATA:
        if key == "sp500":
            _DATA[key] = np.asarray(sp500, dtype=float)
        elif key == "synth50":
            _DATA[key] = coint_prices(1000, 50, seed=1)
        elif key == "synth500":
            _DATA[key] = coint_prices(10000, 500, seed=2)
        elif key == "tall":  # more observations than one block of the core's Gram products (2^16)
            _DATA[key] = coint_prices(70_000, 11, seed=3)
        elif key == "screen":  # many assets, few selected: the working set discards most of them
            _DATA[key] = coint_prices(1500, 120, seed=4)
    return _DATA[key]


@functools.cache
def sk_fit(key, target, lam, l1_ratio):
    from sklearn.linear_model import ElasticNet

    p = _DATA[key]
    y, x = p[:, target], np.delete(p, target, axis=1)
    m = ElasticNet(alpha=lam, l1_ratio=l1_ratio, tol=1e-12, max_iter=1_000_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the reference must converge
        m.fit(x, y)
    return m.coef_.copy(), float(m.intercept_)


def sk_objective(p, target, coef, intercept, lam, a):
    y, x = p[:, target], np.delete(p, target, axis=1)
    r = y - x @ coef - intercept
    return r @ r / (2 * len(y)) + lam * a * np.abs(coef).sum() + 0.5 * lam * (1 - a) * coef @ coef


def adf_ref(spread, autolag="aic"):
    """(statistic, lag) of statsmodels' adfuller with adf_autolag's meaning."""
    from statsmodels.tsa.stattools import adfuller

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        if autolag == "none":
            return adfuller(spread, maxlag=0, autolag=None, regression="c")[0], 0
        stat, _, lag, _, _, _ = adfuller(spread, regression="c", autolag={"aic": "AIC", "bic": "BIC"}.get(autolag, autolag))
        return stat, lag


def half_life_ref(spread):
    b = np.polyfit(spread[:-1], np.diff(spread), 1)[0]
    return np.inf if not (-1 < b < 0) else -np.log(2) / np.log(1 + b)


def crit_ref(nonzero, n_obs):
    from statsmodels.tsa.adfvalues import mackinnoncrit

    return mackinnoncrit(N=min(nonzero, 12), regression="c", nobs=n_obs - 1)


def predictability(p):
    x = p - p.mean(axis=0)
    z0, z1 = x[:-1], x[1:]
    g0 = z0.T @ z0 / len(z0)
    g1 = z0.T @ z1 / len(z0)
    m = g1.T @ np.linalg.solve(g0, g1)
    return (m + m.T) / 2, g0


def unit_sign(w):
    w = w / np.linalg.norm(w)
    return w * np.sign(w[np.argmax(np.abs(w))])


def box_tiao_ref(p):
    m, g0 = predictability(p)
    vals, vecs = sla.eigh(m, g0)
    return vals[0], unit_sign(vecs[:, 0])


def greedy_ref(p, k):
    m, g0 = predictability(p)
    n = p.shape[1]
    support = [int(np.argmin(np.diag(m) / np.diag(g0)))]
    while len(support) < k:
        scores = []
        for i in range(n):
            if i in support:
                scores.append(np.inf)
                continue
            s = support + [i]
            scores.append(sla.eigh(m[np.ix_(s, s)], g0[np.ix_(s, s)], eigvals_only=True)[0])
        support.append(int(np.argmin(scores)))
    vals, vecs = sla.eigh(m[np.ix_(support, support)], g0[np.ix_(support, support)])
    w = np.zeros(n)
    w[support] = vecs[:, 0]
    return vals[0], unit_sign(w), sorted(support)


def assert_spread_stats(res, p):
    """The reported spread statistics are those of the reported weights (statsmodels / numpy)."""
    w = np.asarray(res.weights)
    spread = np.asarray(res.spread)
    np.testing.assert_allclose(spread, p @ w, rtol=1e-12, atol=1e-9 * np.abs(p).max())
    assert res.nonzero == int(np.count_nonzero(w))
    stat, lag = adf_ref(spread)
    assert (res.adf_statistic, res.adf_lag) == (pytest.approx(stat, rel=1e-9), lag)
    assert res.half_life == pytest.approx(half_life_ref(spread), rel=1e-8)
    np.testing.assert_allclose(res.adf_critical_values, crit_ref(res.nonzero, len(p)), rtol=1e-12)


def assert_matches_sklearn(res, key, target, lam, a):
    p = _DATA[key]
    coef, intercept = sk_fit(key, target, lam, a)
    w = np.asarray(res.weights)
    assert w[target] == 1.0
    beta = -np.delete(w, target)
    scale = np.abs(coef).max()
    np.testing.assert_allclose(beta, coef, rtol=COEF_RTOL, atol=COEF_RTOL * scale)
    np.testing.assert_array_equal(beta != 0, coef != 0)  # same support
    assert res.nonzero == 1 + int(np.count_nonzero(coef))
    x_means = np.delete(p, target, axis=1).mean(axis=0)
    assert res.intercept == pytest.approx(intercept, abs=COEF_RTOL * (abs(p[:, target].mean()) + np.abs(coef * x_means).sum()))
    assert res.objective == pytest.approx(sk_objective(p, target, coef, intercept, lam, a), rel=COEF_RTOL)
    assert res.target_index == target
    assert isinstance(res.iterations, int) and res.iterations >= 1
    assert_spread_stats(res, p)


# ---------------------------------------------------------------- lasso / elastic net vs scikit-learn


@pytest.mark.parametrize(
    "method,target,lam,alpha",
    [
        ("lasso", 0, 10.0, 1.0),
        ("elastic_net", 0, 10.0, 0.5),
        ("elastic_net", 5, 1.0, 0.5),
        ("lasso", 5, 1.0, 1.0),
    ],
)
def test_sp500_stocks_match_sklearn(backend, sp500_stocks, method, target, lam, alpha):
    data("sp500", sp500_stocks)
    res = backend.calculate_sparse_portfolio(
        sp500_stocks, method=method, lambda_param=lam, alpha=0.3 if method == "lasso" else alpha, target=target, **TIGHT
    )
    assert res.method == method
    assert tuple(res.asset_names) == tuple(sp500_stocks.columns)
    assert_matches_sklearn(res, "sp500", target, lam, alpha)


@pytest.mark.parametrize(
    "method,target,lam,alpha",
    [
        ("lasso", 0, 1.0, 1.0),
        ("lasso", 3, 10.0, 1.0),
        ("elastic_net", 0, 10.0, 0.1),
        ("elastic_net", 3, 0.1, 0.5),
        ("elastic_net", 0, 1.0, 0.0),  # pure ridge penalty (scikit-learn's formulation-B gap)
    ],
)
def test_synthetic_50_assets_match_sklearn(backend, method, target, lam, alpha):
    p = data("synth50")
    res = backend.calculate_sparse_portfolio(p, method=method, lambda_param=lam, alpha=alpha, target=target, **TIGHT)
    assert len(res.asset_names) == 50
    assert_matches_sklearn(res, "synth50", target, lam, alpha)


@pytest.mark.slow
def test_synthetic_500_assets_match_sklearn(backend):
    """10000 x 500 (40 MB of prices): scikit-learn needs ~2-6 s for this fit at tol=1e-12."""
    p = data("synth500")
    res = backend.calculate_sparse_portfolio(p, method="lasso", lambda_param=10.0, target=0, **TIGHT)
    assert_matches_sklearn(res, "synth500", 0, 10.0, 1.0)
    # asset 0 was built from 3 others + stationary noise: those hedges are selected
    assert res.adf_statistic < res.adf_critical_values[0]


@pytest.mark.parametrize("method,lam,alpha", [("lasso", 1.0, 1.0), ("elastic_net", 10.0, 0.5)])
def test_tall_data_over_several_gram_blocks_match_sklearn(backend, method, lam, alpha):
    """70,000 observations: more observations than one block of 2^16 (the former blocking of the Gram products)."""
    p = data("tall")
    res = backend.calculate_sparse_portfolio(p, method=method, lambda_param=lam, alpha=alpha, target=0, **TIGHT)
    coef, intercept = sk_fit("tall", 0, lam, alpha)
    beta = -np.delete(np.asarray(res.weights), 0)
    np.testing.assert_allclose(beta, coef, rtol=COEF_RTOL, atol=COEF_RTOL * np.abs(coef).max())
    np.testing.assert_array_equal(beta != 0, coef != 0)
    assert res.intercept == pytest.approx(intercept, rel=1e-8, abs=1e-8)
    assert res.objective == pytest.approx(sk_objective(p, 0, coef, intercept, lam, alpha), rel=COEF_RTOL)


def test_working_set_discarding_most_assets_matches_sklearn(backend):
    """120 assets of which a handful get a nonzero hedge: the fit sweeps a working set (strong
    rule candidates, grown by KKT violators) and computes Gram rows only for the columns it
    touches (read in place from the prices); the discarded assets must really be zero at
    scikit-learn's optimum, and the kept ones equal to it."""
    p = data("screen")
    res = backend.calculate_sparse_portfolio(p, method="lasso", lambda_param=10.0, target=0, **TIGHT)
    assert 2 <= res.nonzero <= p.shape[1] // 4
    assert_matches_sklearn(res, "screen", 0, 10.0, 1.0)


def test_lambda_path_warm_starts_match_sklearn_on_many_assets(backend):
    """A decreasing lambda path on 120 assets (each fit warm-started from the previous one, the
    working set carried along) equals independent scikit-learn fits at every lambda."""
    p = data("screen")
    lambdas = [30.0, 10.0, 3.0]
    path = backend.sparse_lambda_path(p, target=0, lambdas=lambdas, alpha=1.0, **TIGHT)
    w = np.asarray(path.weights)
    for i, lam in enumerate(lambdas):
        coef, intercept = sk_fit("screen", 0, lam, 1.0)
        beta = -w[i, 1:]
        np.testing.assert_allclose(beta, coef, rtol=COEF_RTOL, atol=COEF_RTOL * np.abs(coef).max())
        np.testing.assert_array_equal(beta != 0, coef != 0)
        assert path.intercepts[i] == pytest.approx(intercept, rel=1e-9, abs=1e-9)
    assert list(path.nonzero) == sorted(path.nonzero)  # more hedges as lambda falls


def test_default_tolerance_is_sklearns(backend, sp500_stocks):
    """At scikit-learn's default tol=1e-4 the fit is within that duality gap of the optimum:
    its objective is within tol*||y - mean||^2/n of the tight one."""
    p = data("sp500", sp500_stocks)
    res = backend.calculate_sparse_portfolio(p, method="lasso", lambda_param=10.0, target=0)
    coef, intercept = sk_fit("sp500", 0, 10.0, 1.0)
    best = sk_objective(p, 0, coef, intercept, 10.0, 1.0)
    y = p[:, 0]
    assert best - 1e-9 * best <= res.objective <= best + 1e-4 * ((y - y.mean()) @ (y - y.mean())) / len(y)
    assert_spread_stats(res, p)


def test_lasso_recovers_cointegrating_hedges(backend):
    """Asset 0 of synth50 = 20 + c . P[:, hedges] + AR(1) noise: the lasso keeps the 3 true
    hedges with negative basket weights and the spread is stationary."""
    p, hedges = coint_prices(1000, 50, seed=1, return_hedges=True)
    np.testing.assert_array_equal(p, data("synth50"))
    res = backend.calculate_sparse_portfolio(p, method="lasso", lambda_param=10.0, target=0, **TIGHT)
    w = np.asarray(res.weights)
    assert set(hedges[0]) <= set(np.flatnonzero(w).tolist())
    assert (w[hedges[0]] < 0).all()
    assert res.adf_statistic < res.adf_critical_values[0]
    assert 0 < res.half_life < 50


def test_automatic_target_is_most_negative_adf(backend, sp500_stocks):
    p = data("sp500", sp500_stocks)
    best = backend.calculate_sparse_portfolio(p, method="elastic_net", lambda_param=5.0, alpha=0.5, target=None)
    adfs = [
        backend.calculate_sparse_portfolio(p, method="elastic_net", lambda_param=5.0, alpha=0.5, target=t).adf_statistic
        for t in range(p.shape[1])
    ]
    assert best.target_index == int(np.argmin(adfs))
    assert best.adf_statistic == pytest.approx(min(adfs), rel=1e-9)
    assert_spread_stats(best, p)


def test_lambda_above_lambda_max_selects_nothing(backend, sp500_stocks):
    p = data("sp500", sp500_stocks)
    y, x = p[:, 2], np.delete(p, 2, axis=1)
    lmax = np.abs((x - x.mean(0)).T @ (y - y.mean())).max() / len(y)
    res = backend.calculate_sparse_portfolio(p, method="lasso", lambda_param=lmax * 1.0001, target=2)
    expected = np.zeros(p.shape[1])
    expected[2] = 1.0
    np.testing.assert_array_equal(res.weights, expected)
    assert res.nonzero == 1
    assert res.intercept == pytest.approx(y.mean(), rel=1e-12)
    res = backend.calculate_sparse_portfolio(p, method="lasso", lambda_param=lmax * 0.98, target=2)
    assert res.nonzero == 2


# ---------------------------------------------------------------- Box-Tiao and greedy vs SciPy


@pytest.mark.parametrize("key", ["sp500", "synth50"])
def test_box_tiao_matches_scipy(backend, sp500_stocks, key):
    p = data(key, sp500_stocks)
    res = backend.calculate_sparse_portfolio(p, method="box_tiao")
    nu, w = box_tiao_ref(p)
    assert res.method == "box_tiao"
    assert res.target_index == -1
    np.testing.assert_allclose(res.weights, w, rtol=0, atol=1e-9)
    assert res.objective == pytest.approx(nu, rel=1e-9)
    assert np.linalg.norm(res.weights) == pytest.approx(1.0, abs=1e-12)
    assert res.intercept == pytest.approx(np.mean(res.spread), rel=1e-12, abs=1e-12)
    assert_spread_stats(res, p)


@pytest.mark.parametrize("key,k", [("sp500", 2), ("sp500", 3), ("sp500", 5), ("synth50", 4)])
def test_greedy_matches_reference(backend, sp500_stocks, key, k):
    p = data(key, sp500_stocks)
    res = backend.calculate_sparse_portfolio(p, method="greedy", k=k)
    nu, w, support = greedy_ref(p, k)
    assert res.method == "greedy"
    assert res.nonzero == k
    assert sorted(np.flatnonzero(res.weights).tolist()) == support
    np.testing.assert_allclose(res.weights, w, rtol=0, atol=1e-9)
    assert res.objective == pytest.approx(nu, rel=1e-9)
    assert_spread_stats(res, p)
    # a cardinality constraint cannot beat the unconstrained Box-Tiao basket
    assert res.objective >= box_tiao_ref(p)[0] - 1e-12


def test_greedy_with_all_assets_is_box_tiao(backend):
    p = data("synth50")[:, :8]
    g = backend.calculate_sparse_portfolio(p, method="greedy", k=8)
    b = backend.calculate_sparse_portfolio(p, method="box_tiao")
    np.testing.assert_allclose(g.weights, b.weights, rtol=0, atol=1e-9)
    assert g.objective == pytest.approx(b.objective, rel=1e-9)


# ---------------------------------------------------------------- lambda path


def test_lambda_path_matches_sklearn(backend):
    p = data("synth50")
    path = backend.sparse_lambda_path(p, target=3, lambdas=None, n_lambdas=6, alpha=1.0, **TIGHT)
    y, x = p[:, 3], np.delete(p, 3, axis=1)
    lmax = np.abs((x - x.mean(0)).T @ (y - y.mean())).max() / len(y)
    np.testing.assert_allclose(path.lambdas, np.geomspace(lmax, 1e-3 * lmax, 6), rtol=1e-12)
    assert path.nonzero.dtype == np.int64
    assert path.nonzero[0] == 1
    for i, lam in enumerate(path.lambdas):
        coef, intercept = sk_fit("synth50", 3, float(lam), 1.0)
        assert path.nonzero[i] == 1 + np.count_nonzero(coef)
        w = np.zeros(p.shape[1])
        w[3] = 1.0
        w[np.arange(p.shape[1]) != 3] = -coef
        spread = p @ w
        stat, lag = adf_ref(spread)
        assert path.adf_statistic[i] == pytest.approx(stat, rel=1e-7)
        assert path.adf_lag[i] == lag
        assert path.half_life[i] == pytest.approx(half_life_ref(spread), rel=1e-7)


def test_lambda_path_explicit_lambdas_keep_their_order(backend, sp500_stocks):
    p = data("sp500", sp500_stocks)
    lambdas = [1.0, 50.0, 10.0]
    path = backend.sparse_lambda_path(p, target=0, lambdas=lambdas, alpha=0.5, **TIGHT)
    np.testing.assert_array_equal(path.lambdas, lambdas)
    for i, lam in enumerate(lambdas):
        single = backend.calculate_sparse_portfolio(p, method="elastic_net", lambda_param=lam, alpha=0.5, target=0, **TIGHT)
        assert path.nonzero[i] == single.nonzero
        assert path.adf_statistic[i] == pytest.approx(single.adf_statistic, rel=1e-7)
        assert path.adf_lag[i] == single.adf_lag
        assert path.half_life[i] == pytest.approx(single.half_life, rel=1e-7)
    assert path.nonzero[1] <= path.nonzero[2] <= path.nonzero[0]


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(method="lasso", lambda_param=-0.1), "lambda must be a finite number >= 0"),
        (dict(method="lasso", lambda_param=float("nan")), "lambda must be a finite number >= 0"),
        (dict(method="elastic_net", alpha=1.5), r"alpha \(the L1 ratio\) must be between 0 and 1"),
        (dict(method="elastic_net", alpha=-0.01), r"alpha \(the L1 ratio\) must be between 0 and 1"),
        (dict(method="lasso", target=20), "target must be an asset index between 0 and 19"),
        (dict(method="lasso", tolerance=0.0), "tolerance must be a positive finite number"),
        (dict(method="greedy"), r"k \(the basket cardinality\) is required"),
        (dict(method="greedy", k=1), r"k must be between 2 and the number of assets \(20\), got 1"),
        (dict(method="greedy", k=21), r"k must be between 2 and the number of assets \(20\), got 21"),
        (dict(method="pca"), "method must be one of"),
    ],
)
def test_bad_parameters(backend, sp500_stocks, kwargs, match):
    p = data("sp500", sp500_stocks)[:300]
    with pytest.raises(ValueError, match=match):
        backend.calculate_sparse_portfolio(p, **kwargs)


def test_bad_prices(backend):
    p = data("synth50")[:200, :6].copy()
    with pytest.raises(ValueError, match="at least 2 assets"):
        backend.calculate_sparse_portfolio(p[:, :1], method="lasso")
    with pytest.raises(ValueError, match="at least 10 observations"):
        backend.calculate_sparse_portfolio(p[:5], method="lasso")
    bad = p.copy()
    bad[7, 2] = np.nan
    with pytest.raises(ValueError, match="prices contains NaN at row 7, column 2"):
        backend.calculate_sparse_portfolio(bad, method="lasso")
    bad[7, 2] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        backend.calculate_sparse_portfolio(bad, method="box_tiao")
    dup = p.copy()
    dup[:, 4] = dup[:, 1]
    for method in ("lasso", "box_tiao"):
        with pytest.raises(ValueError, match="columns 1 and 4 are exactly duplicated"):
            backend.calculate_sparse_portfolio(dup, method=method)
    const = p.copy()
    const[:, 3] = 42.0
    with pytest.raises(ValueError, match="column 3 is constant"):
        backend.calculate_sparse_portfolio(const, method="lasso")
    lin = p.copy()
    lin[:, 5] = 2.0 * lin[:, 1] - 0.5 * lin[:, 2]
    for kw in (dict(method="box_tiao"), dict(method="greedy", k=6)):
        with pytest.raises(ValueError, match="prices are collinear"):
            backend.calculate_sparse_portfolio(lin, **kw)
    wide = data("synth50")[:12, :12]
    with pytest.raises(ValueError, match=r"need at least 14"):
        backend.calculate_sparse_portfolio(wide, method="box_tiao")


def test_no_convergence_is_an_error(backend, sp500_stocks):
    p = data("sp500", sp500_stocks)
    with pytest.raises(ValueError, match="did not converge in 3 iterations"):
        backend.calculate_sparse_portfolio(p, method="lasso", lambda_param=0.01, target=0, max_iterations=3, tolerance=1e-12)


def test_lambda_path_bad_input(backend, sp500_stocks):
    p = data("sp500", sp500_stocks)[:300]
    with pytest.raises(ValueError, match="lambdas must be finite and >= 0"):
        backend.sparse_lambda_path(p, target=0, lambdas=[1.0, -1.0])
    with pytest.raises(ValueError, match="give lambdas explicitly"):
        backend.sparse_lambda_path(p, target=0, alpha=0.0)
    with pytest.raises(ValueError, match="target must be an asset index between 0 and 19"):
        backend.sparse_lambda_path(p, target=25)


# ---------------------------------------------------------------- both backends identical


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(method="elastic_net", lambda_param=2.0, alpha=0.5, target=None),
        dict(method="box_tiao"),
        dict(method="greedy", k=4),
    ],
)
def test_backends_identical(backends, sp500_stocks, kwargs):
    a = backends["pyo3"].calculate_sparse_portfolio(sp500_stocks, **kwargs)
    b = backends["grpc"].calculate_sparse_portfolio(sp500_stocks, **kwargs)
    for field in ("weights", "spread", "adf_critical_values"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    for field in (
        "method",
        "asset_names",
        "target_index",
        "intercept",
        "nonzero",
        "half_life",
        "adf_statistic",
        "objective",
        "iterations",
    ):
        assert getattr(a, field) == getattr(b, field), field
    pa = backends["pyo3"].sparse_lambda_path(sp500_stocks, target=1, n_lambdas=5)
    pb = backends["grpc"].sparse_lambda_path(sp500_stocks, target=1, n_lambdas=5)
    for field in ("lambdas", "nonzero", "half_life", "adf_statistic", "adf_lag"):
        np.testing.assert_array_equal(getattr(pa, field), getattr(pb, field))


def test_empty_lambda_list_is_an_error_on_both_backends(backends, sp500_stocks):
    for b in backends.values():
        with pytest.raises(ValueError, match="lambdas is empty"):
            b.sparse_lambda_path(sp500_stocks.iloc[:300], target=0, lambdas=[])


def test_target_by_name(backend, sp500_stocks):
    p = sp500_stocks.iloc[:500]
    by_name = backend.calculate_sparse_portfolio(p, method="lasso", lambda_param=1.0, target="KO")
    by_index = backend.calculate_sparse_portfolio(p, method="lasso", lambda_param=1.0, target=list(p.columns).index("KO"))
    np.testing.assert_array_equal(by_name.weights, by_index.weights)
    assert by_name.asset_names[by_name.target_index] == "KO"
    with pytest.raises(ValueError, match="target 'XYZ' is not one of the assets"):
        backend.calculate_sparse_portfolio(p, method="lasso", target="XYZ")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(n_lambdas=0), "n_lambdas must be between 1 and 1000, got 0"),
        (dict(n_lambdas=10**7), "n_lambdas must be between 1 and 1000, got 10000000"),
        (dict(lambdas=np.linspace(0.1, 1, 1001)), "lambdas has 1001 values: at most 1000 are allowed"),
    ],
)
def test_absurd_path_sizes_are_refused(backend, sp500_stocks, kwargs, match):
    with pytest.raises(ValueError, match=match):
        backend.sparse_lambda_path(sp500_stocks.iloc[:300], target=0, **kwargs)


@pytest.mark.parametrize(
    "autolag,method,extra",
    [("aic", "lasso", {"target": 0, "lambda_param": 0.5}), ("bic", "box_tiao", {}), ("t-stat", "greedy", {"k": 4})],
)
def test_adf_autolag_matches_statsmodels(backends, sp500_stocks, autolag, method, extra):
    """adf_autolag: the spread's ADF statistic and lag as statsmodels' adfuller(autolag=...) gives
    them (default maxlag, regression 'c'), identical on both backends; 'none' keeps 0 lags."""
    from statsmodels.tsa.stattools import adfuller

    p = sp500_stocks.to_numpy()[:1500, :8]
    res = {k: b.calculate_sparse_portfolio(p, method=method, adf_autolag=autolag, **extra) for k, b in backends.items()}
    r = res["pyo3"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # adfuller's return type is changing
        stat, _, lag, _, _, _ = adfuller(
            np.asarray(r.spread), regression="c", autolag={"aic": "AIC", "bic": "BIC"}.get(autolag, autolag)
        )
    assert r.adf_lag == lag
    assert r.adf_statistic == pytest.approx(stat, rel=1e-9)
    assert (r.adf_lag, r.adf_statistic) == (res["grpc"].adf_lag, res["grpc"].adf_statistic)
    plain = backends["pyo3"].calculate_sparse_portfolio(p, method=method, adf_autolag="none", **extra)
    stat0, _ = adf_ref(np.asarray(plain.spread), "none")
    assert plain.adf_lag == 0 and plain.adf_statistic == pytest.approx(stat0, rel=1e-9)
    # the default is AIC (statsmodels adfuller's default)
    default = backends["grpc"].calculate_sparse_portfolio(p, method=method, **extra)
    aic = backends["grpc"].calculate_sparse_portfolio(p, method=method, adf_autolag="aic", **extra)
    assert (default.adf_lag, default.adf_statistic) == (aic.adf_lag, aic.adf_statistic)


@pytest.mark.parametrize("autolag", [None, "bic", "t-stat", "none"])
def test_lambda_path_adf_autolag_matches_statsmodels(backends, sp500_stocks, autolag):
    """The lambda path's ADF uses the same lag selection as the single fit (None: AIC) and
    reports the lag used per lambda; statsmodels' adfuller on each lambda's spread agrees; both
    backends identical."""
    p = sp500_stocks.to_numpy()[:1200, :8]
    paths = {k: b.sparse_lambda_path(p, target=2, n_lambdas=4, adf_autolag=autolag) for k, b in backends.items()}
    a, b = paths["pyo3"], paths["grpc"]
    assert a.adf_lag.dtype == np.int64 and len(a.adf_lag) == 4
    for field in ("adf_statistic", "adf_lag", "weights"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    for i in range(4):
        stat, lag = adf_ref(p @ a.weights[i], autolag or "aic")
        assert a.adf_lag[i] == lag, i
        assert a.adf_statistic[i] == pytest.approx(stat, rel=1e-8), i
    if autolag in (None, "bic"):
        assert a.adf_lag.max() > 0  # real prices: the lag search does choose lags here


def test_adf_autolag_bad_name_is_the_same_error_on_both_backends(backends, sp500_stocks):
    p = sp500_stocks.to_numpy()[:300, :4]
    for b in backends.values():
        with pytest.raises(ValueError, match="autolag must be one of none, aic, bic, t-stat"):
            b.calculate_sparse_portfolio(p, method="box_tiao", adf_autolag="aicc")
