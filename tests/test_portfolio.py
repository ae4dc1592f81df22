"""Portfolio optimisation: cvxpy + Clarabel on the same mu / Sigma, risk-parity budgets, the
efficient frontier, bad input, both backends identical.

Conventions (the test computes mu / Sigma itself the same way the core does):
- returns: simple r_t = p_t / p_{t-1} - 1 (pandas pct_change) or log r_t = ln(p_t / p_{t-1});
- mu = mean(returns) * annualization; Sigma = sample covariance with ddof=1 (pandas .cov(),
  np.cov) * annualization, or sklearn.covariance.LedoitWolf().fit(returns).covariance_ *
  annualization (sklearn shrinks the MLE covariance, ddof=0);
- Sharpe = (mu'w - risk_free_rate) / sqrt(w'Sigma w), all annual (defaults 252 and 0.02).
The references are solved by cvxpy with solver="CLARABEL" at tight tolerances (1e-12: at its
1e-8 defaults the 500-asset max-Sharpe weights are only ~1e-5 accurate). Max Sharpe uses the
standard homogenisation min y'Sy s.t. (mu-rf)'y = 1, sum y = k, lo k <= y <= hi k, k >= 0.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

CLARABEL_TIGHT = dict(tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12, max_iter=500)
W_ATOL = 1e-4  # weights, absolute
REL = 1e-6  # volatility and Sharpe, relative


# ---------------------------------------------------------------- data and references


def factor_prices(n_assets, n_obs, seed):
    """Seeded 5-factor model: well-conditioned covariance, positive drifts (mu > rf for most)."""
    rng = np.random.default_rng(seed)
    betas = rng.normal(0.0, 1.0, (n_assets, 5))
    factors = rng.normal(0.0003, 0.01, (n_obs, 5))
    idio = rng.normal(0.0, 0.01, (n_obs, n_assets)) * rng.uniform(0.5, 2.0, n_assets)
    alpha = rng.normal(0.0004, 0.0003, n_assets)
    r = alpha + 0.3 * factors @ betas.T + idio
    return 100.0 * np.exp(np.cumsum(r, axis=0))


_DATA: dict[str, np.ndarray] = {}


def data(key, sp500=None):
    if key not in _DATA:
        if key == "sp500":
            _DATA[key] = np.asarray(sp500, dtype=float)
        elif key == "synth50":
            _DATA[key] = factor_prices(50, 400, seed=50)
        elif key == "synth500":
            _DATA[key] = factor_prices(500, 800, seed=500)  # T > N; 3.2 MB of prices
    return _DATA[key]


def moments(prices, returns="simple", annualization=252.0, covariance="sample"):
    p = np.asarray(prices, dtype=float)
    r = np.log(p[1:] / p[:-1]) if returns == "log" else p[1:] / p[:-1] - 1.0
    mu = r.mean(axis=0) * annualization
    if covariance == "ledoit_wolf":
        from sklearn.covariance import LedoitWolf

        sigma = LedoitWolf().fit(r).covariance_ * annualization
    else:
        sigma = np.cov(r, rowvar=False, ddof=1) * annualization
    return mu, sigma


def _solve(problem):
    problem.solve(solver="CLARABEL", **CLARABEL_TIGHT)
    assert problem.status == "optimal", problem.status


def cvx_min_variance(mu, sigma, lo, hi, target=None):
    import cvxpy as cp

    w = cp.Variable(len(mu))
    cons = [cp.sum(w) == 1, w >= lo, w <= hi]
    if target is not None:
        cons.append(mu @ w == target)
    _solve(cp.Problem(cp.Minimize(cp.quad_form(w, cp.psd_wrap(sigma))), cons))
    return w.value


def cvx_max_sharpe(mu, sigma, rf, lo, hi):
    import cvxpy as cp

    y, k = cp.Variable(len(mu)), cp.Variable()
    cons = [(mu - rf) @ y == 1, cp.sum(y) == k, y >= lo * k, y <= hi * k, k >= 0]
    _solve(cp.Problem(cp.Minimize(cp.quad_form(y, cp.psd_wrap(sigma))), cons))
    return y.value / k.value


def cvx_risk_parity(sigma, budgets):
    import cvxpy as cp

    x = cp.Variable(len(budgets))
    _solve(cp.Problem(cp.Minimize(0.5 * cp.quad_form(x, cp.psd_wrap(sigma)) - budgets @ cp.log(x))))
    return x.value / x.value.sum()


@functools.cache
def reference(key, method, returns="simple", covariance="sample", lo=0.0, hi=1.0, rf=0.02):
    mu, sigma = moments(_DATA[key], returns, 252.0, covariance)
    if method == "min_variance":
        w = cvx_min_variance(mu, sigma, lo, hi)
    elif method == "max_sharpe":
        w = cvx_max_sharpe(mu, sigma, rf, lo, hi)
    else:
        w = cvx_risk_parity(sigma, np.full(len(mu), 1.0 / len(mu)))
    return w, mu, sigma


def stats(w, mu, sigma, rf=0.02):
    vol = float(np.sqrt(w @ sigma @ w))
    return float(mu @ w), vol, (float(mu @ w) - rf) / vol


def assert_matches(res, w_ref, mu, sigma, rf=0.02):
    w = np.asarray(res.weights)
    np.testing.assert_allclose(w, w_ref, rtol=0, atol=W_ATOL)
    ret, vol, sharpe = stats(w_ref, mu, sigma, rf)
    assert res.volatility == pytest.approx(vol, rel=REL)
    assert res.sharpe == pytest.approx(sharpe, rel=REL)
    assert res.expected_return == pytest.approx(ret, rel=REL, abs=1e-12)
    # the reported figures are those of the reported weights
    own = stats(w, mu, sigma, rf)
    assert res.expected_return == pytest.approx(own[0], rel=1e-10, abs=1e-14)
    assert res.volatility == pytest.approx(own[1], rel=1e-10)
    assert res.sharpe == pytest.approx(own[2], rel=1e-9, abs=1e-12)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    rc = np.asarray(res.risk_contributions)
    np.testing.assert_allclose(rc, w * (sigma @ w) / (w @ sigma @ w), rtol=0, atol=1e-10)
    assert rc.sum() == pytest.approx(1.0, abs=1e-12)
    assert res.status == "Solved"
    assert isinstance(res.iterations, int) and res.iterations >= 0


# ---------------------------------------------------------------- agreement with cvxpy


@pytest.mark.parametrize(
    "method,params",
    [
        ("min_variance", {}),
        ("max_sharpe", {}),
        ("max_sharpe", {"min_weight": 0.02, "max_weight": 0.15}),
        ("min_variance", {"min_weight": 0.02, "max_weight": 0.15}),
        ("max_sharpe", {"min_weight": -0.1, "max_weight": 0.5}),
        ("max_sharpe", {"returns": "log", "covariance": "ledoit_wolf"}),
        ("min_variance", {"covariance": "ledoit_wolf"}),
    ],
)
def test_sp500_stocks_match_cvxpy(backend, sp500_stocks, method, params):
    data("sp500", sp500_stocks)
    res = backend.optimize_portfolio(sp500_stocks, method=method, parameters=params)
    key = dict(
        returns=params.get("returns", "simple"),
        covariance=params.get("covariance", "sample"),
        lo=params.get("min_weight", 0.0),
        hi=params.get("max_weight", 1.0),
    )
    w_ref, mu, sigma = reference("sp500", method, **key)
    assert res.method == method
    assert tuple(res.asset_names) == tuple(sp500_stocks.columns)
    assert_matches(res, w_ref, mu, sigma)
    w = np.asarray(res.weights)
    assert w.min() >= key["lo"] - 1e-12 and w.max() <= key["hi"] + 1e-12


@pytest.mark.parametrize(
    "method,params",
    [
        ("min_variance", {}),
        ("max_sharpe", {}),
        ("max_sharpe", {"max_weight": 0.05}),
        ("min_variance", {"min_weight": 0.005, "max_weight": 0.04}),
        ("max_sharpe", {"covariance": "ledoit_wolf", "risk_free_rate": 0.05}),
    ],
)
def test_synthetic_50_assets_match_cvxpy(backend, method, params):
    prices = data("synth50")
    res = backend.optimize_portfolio(prices, method=method, parameters=params)
    w_ref, mu, sigma = reference(
        "synth50",
        method,
        covariance=params.get("covariance", "sample"),
        lo=params.get("min_weight", 0.0),
        hi=params.get("max_weight", 1.0),
        rf=params.get("risk_free_rate", 0.02),
    )
    assert len(res.asset_names) == 50
    assert_matches(res, w_ref, mu, sigma, rf=params.get("risk_free_rate", 0.02))


@pytest.mark.parametrize("method", ["min_variance", "max_sharpe"])
def test_synthetic_500_assets_match_cvxpy(backend, method):
    prices = data("synth500")
    res = backend.optimize_portfolio(prices, method=method)
    w_ref, mu, sigma = reference("synth500", method)
    assert_matches(res, w_ref, mu, sigma)


# ---------------------------------------------------------------- risk parity and equal weight


def test_risk_parity_equal_risk_contributions(backend, sp500_stocks):
    data("sp500", sp500_stocks)
    res = backend.optimize_portfolio(sp500_stocks, method="risk_parity")
    n = sp500_stocks.shape[1]
    np.testing.assert_allclose(res.risk_contributions, np.full(n, 1.0 / n), rtol=0, atol=1e-6)
    w_ref, mu, sigma = reference("sp500", "risk_parity")
    np.testing.assert_allclose(res.weights, w_ref, rtol=0, atol=W_ATOL)
    w = np.asarray(res.weights)
    rc = w * (sigma @ w) / (w @ sigma @ w)  # recomputed from our own mu/Sigma
    np.testing.assert_allclose(rc, np.full(n, 1.0 / n), rtol=0, atol=1e-6)
    assert np.all(w > 0) and w.sum() == pytest.approx(1.0, abs=1e-12)
    assert res.volatility == pytest.approx(np.sqrt(w @ sigma @ w), rel=1e-10)
    assert res.status == "Solved" and res.iterations > 0


@pytest.mark.parametrize("key", ["synth50", "synth500"])
def test_risk_parity_budgets(backend, key):
    prices = data(key)
    n = prices.shape[1]
    budgets = np.arange(1, n + 1, dtype=float)
    res = backend.optimize_portfolio(prices, method="risk_parity", parameters={"risk_budgets": list(budgets)})
    _, sigma = moments(prices)
    w = np.asarray(res.weights)
    rc = w * (sigma @ w) / (w @ sigma @ w)
    np.testing.assert_allclose(rc, budgets / budgets.sum(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(res.risk_contributions, budgets / budgets.sum(), rtol=0, atol=1e-6)


def test_equal_weight(backend, sp500_stocks):
    res = backend.optimize_portfolio(sp500_stocks, method="equal_weight", parameters={"returns": "log"})
    n = sp500_stocks.shape[1]
    np.testing.assert_array_equal(res.weights, np.full(n, 1.0 / n))
    mu, sigma = moments(sp500_stocks, returns="log")
    ret, vol, sharpe = stats(np.full(n, 1.0 / n), mu, sigma)
    assert (res.expected_return, res.volatility, res.sharpe) == pytest.approx((ret, vol, sharpe), rel=1e-10)
    assert res.iterations == 0


def test_ndarray_input_with_asset_names(backend):
    prices = data("synth50")[:, :4]
    names = ("AAA", "BBB", "CCC", "DDD")
    res = backend.optimize_portfolio(prices, method="min_variance", asset_names=names)
    assert tuple(res.asset_names) == names
    frame = backend.optimize_portfolio(pd.DataFrame(prices, columns=list(names)), method="min_variance")
    np.testing.assert_array_equal(res.weights, frame.weights)
    assert tuple(frame.asset_names) == names


# ---------------------------------------------------------------- efficient frontier


def test_frontier_matches_cvxpy(backend, sp500_stocks):
    data("sp500", sp500_stocks)
    res = backend.optimize_portfolio(sp500_stocks, method="max_sharpe", parameters={"frontier_points": 8})
    fr, fv = np.asarray(res.frontier_returns), np.asarray(res.frontier_volatilities)
    assert fr.shape == fv.shape == (8,)
    mu, sigma = moments(sp500_stocks)
    # from the min-variance portfolio ...
    mv = backend.optimize_portfolio(sp500_stocks, method="min_variance")
    assert fr[0] == pytest.approx(mv.expected_return, rel=1e-10)
    assert fv[0] == pytest.approx(mv.volatility, rel=1e-10)
    # ... to the largest attainable return (long-only, max_weight 1: the best single asset)
    best = int(np.argmax(mu))
    assert fr[-1] == pytest.approx(mu[best], rel=1e-10)
    assert fv[-1] == pytest.approx(np.sqrt(sigma[best, best]), rel=1e-10)
    np.testing.assert_allclose(np.diff(fr), (fr[-1] - fr[0]) / 7, rtol=1e-9)
    for k in range(1, 7):
        w = cvx_min_variance(mu, sigma, 0.0, 1.0, target=fr[k])
        assert fv[k] == pytest.approx(np.sqrt(w @ sigma @ w), rel=REL), k
    assert np.all(np.diff(fv) > 0)
    # no frontier point beats the max-Sharpe portfolio
    assert res.sharpe >= np.max((fr - 0.02) / fv) - 1e-9


def test_frontier_with_bounds(backend):
    prices = data("synth50")
    params = {"frontier_points": 5, "max_weight": 0.1}
    res = backend.optimize_portfolio(prices, method="min_variance", parameters=params)
    mu, sigma = moments(prices)
    top = np.sort(mu)[::-1]
    assert res.frontier_returns[-1] == pytest.approx(0.1 * top[:10].sum(), rel=1e-10)
    assert res.frontier_returns[0] == pytest.approx(res.expected_return, rel=1e-10)
    for k in range(1, 4):
        w = cvx_min_variance(mu, sigma, 0.0, 0.1, target=res.frontier_returns[k])
        assert res.frontier_volatilities[k] == pytest.approx(np.sqrt(w @ sigma @ w), rel=REL)


def test_no_frontier_by_default(backend):
    res = backend.optimize_portfolio(data("synth50"), method="equal_weight")
    assert len(res.frontier_returns) == 0 and len(res.frontier_volatilities) == 0


# ---------------------------------------------------------------- bad input


def _prices(n_assets=5, n_obs=60):
    return factor_prices(n_assets, n_obs, seed=7)


@pytest.mark.parametrize(
    "prices,method,params,match",
    [
        (_prices(), "markowitz", {}, r"method must be one of.*min_variance.*max_sharpe.*risk_parity.*equal_weight"),
        (_prices(1), "min_variance", {}, "single asset"),
        (_prices(5, 6), "min_variance", {}, "too few observations"),
        (_prices(), "min_variance", {"returns": "pct"}, "returns must be one of"),
        (_prices(), "min_variance", {"covariance": "oas"}, "covariance must be one of"),
        (_prices(), "min_variance", {"min_weight": 0.3}, "infeasible bounds"),
        (_prices(), "min_variance", {"max_weight": 0.1}, "infeasible bounds"),
        (_prices(), "min_variance", {"min_weight": 0.15, "max_weight": 0.1}, "must not exceed"),
        (_prices(), "min_variance", {"annualization": 0}, "annualization"),
        (_prices(), "min_variance", {"annualization": -252}, "annualization"),
        (_prices(), "min_variance", {"risk_free_rate": 5.0}, "risk_free_rate"),
        (_prices(), "min_variance", {"max_weight": 50.0}, "max_weight"),
        (_prices(), "min_variance", {"frontier_points": 1}, "frontier_points"),
        (_prices(), "risk_parity", {"max_weight": 0.5}, "long-only"),
        (_prices(), "risk_parity", {"risk_budgets": [1, 1, 1]}, "risk_budgets has 3 values but there are 5 assets"),
        (_prices(), "risk_parity", {"risk_budgets": [1, 1, -1, 1, 1]}, "risk_budgets must be positive"),
    ],
)
def test_bad_input(backend, prices, method, params, match):
    with pytest.raises(ValueError, match=match):
        backend.optimize_portfolio(prices, method=method, parameters=params)


def test_non_finite_and_non_positive_prices(backend):
    p = _prices()
    for bad, match in [(np.nan, "NaN at row 3, column 2"), (np.inf, "infinite value at row 3, column 2")]:
        q = p.copy()
        q[3, 2] = bad
        with pytest.raises(ValueError, match=match):
            backend.optimize_portfolio(q, method="min_variance")
    q = p.copy()
    q[3, 2] = 0.0
    with pytest.raises(ValueError, match=r"strictly positive to compute log returns.*row 3, column 2"):
        backend.optimize_portfolio(q, method="min_variance", parameters={"returns": "log"})
    q[3, 2] = -5.0
    with pytest.raises(ValueError, match="strictly positive"):
        backend.optimize_portfolio(q, method="equal_weight")


def test_singular_covariance_suggests_ledoit_wolf(backend, sp500_stocks):
    p = sp500_stocks.iloc[:500, :5].copy()
    p["DUP"] = 2.0 * p.iloc[:, 1]  # collinear with asset 1
    for method in ["min_variance", "max_sharpe", "risk_parity"]:
        with pytest.raises(ValueError, match=r"singular.*ledoit_wolf"):
            backend.optimize_portfolio(p, method=method)
    res = backend.optimize_portfolio(p, method="min_variance", parameters={"covariance": "ledoit_wolf"})
    mu, sigma = moments(p, covariance="ledoit_wolf")
    assert_matches(res, cvx_min_variance(mu, sigma, 0.0, 1.0), mu, sigma)


def test_constant_asset_and_no_excess_return(backend):
    p = _prices()
    q = p.copy()
    q[:, 2] = 42.0
    with pytest.raises(ValueError, match="asset column 2 never change"):
        backend.optimize_portfolio(q, method="min_variance")
    falling = p * np.exp(-0.002 * np.arange(p.shape[0]))[:, None]  # every mu well below rf
    with pytest.raises(ValueError, match="above risk_free_rate"):
        backend.optimize_portfolio(falling, method="max_sharpe")
    assert backend.optimize_portfolio(falling, method="min_variance").status == "Solved"


def test_unknown_parameter_is_rejected(backend):
    with pytest.raises(ValueError, match="max_weigth"):
        backend.optimize_portfolio(_prices(), method="min_variance", parameters={"max_weigth": 0.5})


# ---------------------------------------------------------------- both backends identical


def test_backends_identical(backends, sp500_stocks):
    params = {"frontier_points": 6, "max_weight": 0.2, "covariance": "ledoit_wolf"}
    for method in ["max_sharpe", "min_variance"]:
        a = backends["pyo3"].optimize_portfolio(sp500_stocks, method=method, parameters=params)
        b = backends["grpc"].optimize_portfolio(sp500_stocks, method=method, parameters=params)
        for field in ["weights", "risk_contributions", "frontier_returns", "frontier_volatilities"]:
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
        assert (a.expected_return, a.volatility, a.sharpe) == (b.expected_return, b.volatility, b.sharpe)
        assert (a.status, a.iterations, a.method, tuple(a.asset_names)) == (
            b.status,
            b.iterations,
            b.method,
            tuple(b.asset_names),
        )
    rp = [be.optimize_portfolio(data("synth50"), method="risk_parity") for be in backends.values()]
    np.testing.assert_array_equal(rp[0].weights, rp[1].weights)


# ---------------------------------------------------------------- named options (issue 15)

METHODS_TEXT = '"min_variance", "max_sharpe", "risk_parity", "equal_weight"'


@pytest.mark.parametrize(
    "method,params,text",
    [
        ("markowitz", {}, f'method must be one of {METHODS_TEXT}, got "markowitz"'),
        ("Max_Sharpe", {}, f'method must be one of {METHODS_TEXT}, got "Max_Sharpe"'),
        ("", {}, f'method must be one of {METHODS_TEXT}, got ""'),
        ("min_variance", {"returns": "pct"}, 'returns must be one of "simple", "log", got "pct"'),
        ("max_sharpe", {"returns": ""}, 'returns must be one of "simple", "log", got ""'),
        ("risk_parity", {"covariance": "oas"}, 'covariance must be one of "sample", "ledoit_wolf", got "oas"'),
        # the method is parsed first, then the estimation options
        ("markowitz", {"covariance": "oas"}, f'method must be one of {METHODS_TEXT}, got "markowitz"'),
    ],
)
def test_named_option_errors_list_the_valid_names_on_both_backends(backends, method, params, text):
    """One parse per option, in the core: the whole message, the same over PyO3 and gRPC."""
    for b in backends.values():
        with pytest.raises(ValueError) as e:
            b.optimize_portfolio(_prices(), method=method, parameters=params)
        assert str(e.value) == text, b.name


def test_every_named_option_is_accepted_on_both_backends(backends):
    """Each valid name of each option reaches the core (results identical over both transports)."""
    p = _prices()
    for method in ("min_variance", "max_sharpe", "risk_parity", "equal_weight"):
        for returns in ("simple", "log"):
            for cov in ("sample", "ledoit_wolf"):
                params = {"returns": returns, "covariance": cov}
                a, g = (b.optimize_portfolio(p, method=method, parameters=params) for b in backends.values())
                assert a.method == g.method == method
                np.testing.assert_array_equal(a.weights, g.weights)
