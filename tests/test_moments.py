"""Asset moments and the Ledoit-Wolf covariance, computed once in rustcore and exposed through both
transports (Backend.estimate_moments / Backend.ledoit_wolf): against NumPy and scikit-learn's
LedoitWolf on real prices and on generated data, both backends bit-identical, same errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.covariance import LedoitWolf


def _returns(p, kind):
    return np.log(p[1:] / p[:-1]) if kind == "log" else p[1:] / p[:-1] - 1.0


def _close(a, b, rtol):
    a, b = np.asarray(a), np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())


@pytest.mark.parametrize("rows,cols", [(8313, 20), (60, 20), (400, 7)])
def test_ledoit_wolf_matches_sklearn_on_real_returns(backends, sp500_stocks, rows, cols):
    p = sp500_stocks.to_numpy()[-rows:, :cols]
    r = _returns(p, "log")
    ref = LedoitWolf().fit(r)
    out = {k: b.ledoit_wolf(r) for k, b in backends.items()}
    a = out["pyo3"]
    assert a.covariance.shape == (cols, cols)
    _close(a.location, ref.location_, 1e-12)
    _close(a.covariance, ref.covariance_, 1e-11)
    assert a.shrinkage == pytest.approx(ref.shrinkage_, rel=1e-10)
    for f in ("location", "covariance"):
        np.testing.assert_array_equal(getattr(a, f), getattr(out["grpc"], f))
    assert a.shrinkage == out["grpc"].shrinkage


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.integers(2, 40),
    cols=st.integers(1, 8),
    scale=st.sampled_from([1e-6, 1e-2, 1.0, 1e3, 1e6]),
    seed=st.integers(0, 2**32 - 1),
)
def test_ledoit_wolf_property_vs_sklearn(backends, rows, cols, scale, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, cols)) * scale * rng.uniform(0.1, 10, cols) + rng.uniform(-5, 5, cols) * scale
    ref = LedoitWolf().fit(x)
    a = backends["pyo3"].ledoit_wolf(x)
    b = backends["grpc"].ledoit_wolf(x)
    np.testing.assert_array_equal(a.covariance, b.covariance)
    assert a.shrinkage == b.shrinkage
    assert -1e-12 <= a.shrinkage <= 1.0  # scikit-learn's formula can round to -2e-16 on tiny data
    _close(a.location, ref.location_, 1e-12)
    _close(a.covariance, ref.covariance_, 1e-9)
    assert a.shrinkage == pytest.approx(ref.shrinkage_, rel=1e-8, abs=1e-12)


@pytest.mark.parametrize("returns", ["simple", "log"])
@pytest.mark.parametrize("covariance", ["sample", "ledoit_wolf"])
def test_estimate_moments_match_numpy_and_sklearn(backends, sp500_stocks, returns, covariance):
    p = sp500_stocks.iloc[-2000:, :12]
    ann = 52.0
    r = _returns(p.to_numpy(), returns)
    out = {k: b.estimate_moments(p, returns=returns, annualization=ann, covariance=covariance) for k, b in backends.items()}
    a = out["pyo3"]
    assert a.asset_names == tuple(p.columns)
    assert a.observations == len(r)
    _close(a.mean, r.mean(axis=0) * ann, 1e-12)
    if covariance == "sample":
        _close(a.covariance, np.cov(r, rowvar=False) * ann, 1e-11)
        assert a.shrinkage == 0.0
    else:
        ref = LedoitWolf().fit(r)
        _close(a.covariance, ref.covariance_ * ann, 1e-11)
        assert a.shrinkage == pytest.approx(ref.shrinkage_, rel=1e-10)
    _close(a.volatilities, np.sqrt(np.diag(a.covariance)), 1e-15)
    for f in ("mean", "covariance"):
        np.testing.assert_array_equal(getattr(a, f), getattr(out["grpc"], f))
    assert (a.observations, a.shrinkage) == (out["grpc"].observations, out["grpc"].shrinkage)


def test_estimate_moments_defaults_are_the_optimisers(backends, sp500_stocks):
    """None = the core's defaults (simple returns, 252, sample): the same as giving them."""
    p = sp500_stocks.iloc[-300:, :5]
    for b in backends.values():
        d = b.estimate_moments(p)
        e = b.estimate_moments(p, returns="simple", annualization=252.0, covariance="sample")
        np.testing.assert_array_equal(d.covariance, e.covariance)
        np.testing.assert_array_equal(d.mean, e.mean)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda b, p: b.estimate_moments(p, returns="pct"), 'returns must be one of "simple", "log", got "pct"'),
        (lambda b, p: b.estimate_moments(p, covariance="oas"), 'covariance must be one of "sample", "ledoit_wolf", got "oas"'),
        (lambda b, p: b.estimate_moments(p, returns="Simple"), 'returns must be one of "simple", "log", got "Simple"'),
        (lambda b, p: b.estimate_moments(p, covariance=""), 'covariance must be one of "sample", "ledoit_wolf", got ""'),
        (lambda b, p: b.estimate_moments(p, annualization=0.0), "annualization"),
        (lambda b, p: b.estimate_moments(-p), "prices must be strictly positive"),
        (lambda b, p: b.estimate_moments(p[:3]), "too few observations"),
        (lambda b, p: b.ledoit_wolf(p[:1]), "the Ledoit-Wolf covariance needs at least 2 samples"),
        (lambda b, p: b.ledoit_wolf(np.where(p > p.mean(), np.nan, p)), "data"),
    ],
)
def test_bad_input_same_error_on_both_backends(backends, sp500_stocks, call, match):
    p = sp500_stocks.to_numpy()[-50:, :4]
    msgs = []
    for b in backends.values():
        with pytest.raises(ValueError, match=match) as e:
            call(b, p)
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1]
