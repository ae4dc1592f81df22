"""NumericalError(ValueError): callers can tell a numerical failure (valid input, the computation
did not converge / a matrix is singular) from bad input, on both backends, with the same text."""

from __future__ import annotations

import numpy as np
import pytest
from hft_lab.backends import NumericalError


def _raised(backends, call):
    out = []
    for b in backends.values():
        with pytest.raises(ValueError) as e:
            call(b)
        out.append(e.value)
    return out


def test_non_convergence_is_a_numerical_error(backends, sp500_stocks):
    p = sp500_stocks.to_numpy()[:400, :6]
    errs = _raised(
        backends,
        lambda b: b.calculate_sparse_portfolio(p, method="lasso", lambda_param=1e-3, target=0, max_iterations=1, tolerance=1e-12),
    )
    assert all(type(e) is NumericalError for e in errs)
    assert "coordinate descent did not converge" in str(errs[0])
    assert str(errs[0]) == str(errs[1])


def test_singular_covariance_is_a_numerical_error(backends, sp500_stocks):
    q = sp500_stocks.to_numpy()[:300, :3]
    # a 4th asset whose log returns are the mean of the first two: the covariance is singular
    lin = np.column_stack([q, np.exp(np.log(q[:, 0]) * 0.5 + np.log(q[:, 1]) * 0.5)])
    errs = _raised(backends, lambda b: b.optimize_portfolio(lin, method="min_variance", parameters={"returns": "log"}))
    assert all(type(e) is NumericalError for e in errs), errs
    assert str(errs[0]) == str(errs[1])


def test_bad_input_is_not_a_numerical_error(backends, sp500_stocks):
    p = sp500_stocks.to_numpy()[:100, :4]
    errs = _raised(backends, lambda b: b.calculate_sparse_portfolio(p, method="lasso", lambda_param=-1.0, target=0))
    assert all(type(e) is ValueError for e in errs)
    assert str(errs[0]) == str(errs[1]) == "lambda must be a finite number >= 0, got -1"
