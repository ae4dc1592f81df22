"""Gaussian HMM (Baum-Welch EM): hmmlearn from the same start, regime recovery, invariants, cancel,
bad input, both backends identical.

hmmlearn is made plain maximum likelihood: covars_prior=0 (its default 1e-2 is a prior on the
variances); init_params="" so nothing is re-initialised (min_covar is only used by GaussianHMM's
own covariance *initialisation*, hence has no role once init_params excludes "c"); the default
startprob_prior = transmat_prior = 1 add nothing. Its ConvergenceMonitor stops when
history[-1] - history[-2] < tol, after the M-step of that iteration, which the core reproduces,
so iteration counts must be equal.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings

import numpy as np
import pytest
from hft_lab.backends import Cancelled

# ---------------------------------------------------------------- data and references


def log_returns(prices) -> np.ndarray:
    return np.diff(np.log(np.asarray(prices, dtype=float)))


def three_regimes(n=3000, seed=42):
    """Sticky 3-state chain, means (-1, 0, 1.5), stds (0.5, 0.3, 0.6)."""
    rng = np.random.default_rng(seed)
    means, sds = np.array([-1.0, 0.0, 1.5]), np.array([0.5, 0.3, 0.6])
    a = np.array([[0.95, 0.03, 0.02], [0.03, 0.95, 0.02], [0.02, 0.03, 0.95]])
    s = np.empty(n, dtype=np.int64)
    s[0] = 0
    for t in range(1, n):
        s[t] = rng.choice(3, p=a[s[t - 1]])
    return means[s] + sds[s] * rng.normal(size=n), s, means, sds


def quantile_init(x, k):
    """The core's documented deterministic initialisation, written out."""
    srt, n = np.sort(x), len(x)
    tm = np.full((k, k), 0.1 / (k - 1) if k > 1 else 1.0)
    np.fill_diagonal(tm, 0.9)
    return dict(
        start_prob=np.full(k, 1.0 / k),
        transmat=tm,
        means=np.array([srt[j * n // k : (j + 1) * n // k].mean() for j in range(k)]),
        variances=np.full(k, x.var()),
    )


@functools.cache
def _hmmlearn_fit(key, k, max_iter, tol, impl):
    from hmmlearn.hmm import GaussianHMM

    x = _DATA[key]
    init = quantile_init(x, k)
    m = GaussianHMM(
        k,
        covariance_type="diag",
        covars_prior=0,
        init_params="",
        params="stmc",
        tol=tol,
        n_iter=max_iter,
        implementation=impl,
    )
    m.startprob_ = init["start_prob"].copy()
    m.transmat_ = init["transmat"].copy()
    m.means_ = init["means"].reshape(k, 1).copy()
    m.covars_ = init["variances"].reshape(k, 1).copy()
    X = x.reshape(-1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(X)
    order = np.argsort(m.means_[:, 0], kind="stable")
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    return dict(
        iterations=m.monitor_.iter,
        history=np.array(m.monitor_.history),
        ll=m.score(X),
        means=m.means_[order, 0],
        variances=m.covars_[order, 0, 0],
        transmat=m.transmat_[np.ix_(order, order)],
        start=m.startprob_[order],
        posteriors=m.predict_proba(X)[:, order],
        viterbi=rank[m.predict(X)],
    )


_DATA: dict[str, np.ndarray] = {}


@pytest.fixture(scope="module")
def sp500_returns(sp500_index):
    x = log_returns(sp500_index.to_numpy())
    _DATA["sp500"] = x
    return x


@pytest.fixture(scope="module")
def synthetic():
    x, s, means, sds = three_regimes()
    _DATA["synthetic"] = x
    return x, s, means, sds


def check_against_hmmlearn(r, ref, k, n):
    assert r.n_states == k
    assert r.iterations == ref["iterations"] == len(r.log_likelihood_history)
    assert r.converged
    np.testing.assert_allclose(r.log_likelihood, ref["ll"], rtol=1e-6)
    np.testing.assert_allclose(r.log_likelihood_history, ref["history"], rtol=1e-6)
    np.testing.assert_allclose(r.means, ref["means"], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(r.variances, ref["variances"], rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(r.stds, np.sqrt(ref["variances"]), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(r.transition_matrix, ref["transmat"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(r.start_probabilities, ref["start"], rtol=1e-5, atol=1e-5)
    assert r.posteriors.shape == (n, k)
    np.testing.assert_allclose(r.posteriors, ref["posteriors"], atol=1e-5)
    assert r.viterbi_path.dtype == np.int64 and r.viterbi_path.shape == (n,)
    np.testing.assert_array_equal(r.viterbi_path, ref["viterbi"])


def check_invariants(r, n):
    k = r.n_states
    h = np.asarray(r.log_likelihood_history)
    assert len(h) == r.iterations >= 1
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h).max()), "EM log-likelihood decreased"
    assert r.log_likelihood >= h[-1] - 1e-9 * abs(h[-1])
    assert np.all(np.diff(r.means) >= 0), "states must be sorted by mean"
    np.testing.assert_array_equal(r.stds, np.sqrt(r.variances))
    np.testing.assert_allclose(r.transition_matrix.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(r.start_probabilities.sum(), 1.0, atol=1e-12)
    np.testing.assert_allclose(r.posteriors.sum(axis=1), 1.0, atol=1e-12)
    assert r.posteriors.shape == (n, k) and r.viterbi_path.shape == (n,)
    assert r.viterbi_path.min() >= 0 and r.viterbi_path.max() < k
    p = k * k + 2 * k - 1  # (K-1) start + K(K-1) transitions + K means + K variances
    np.testing.assert_allclose(r.aic, 2 * p - 2 * r.log_likelihood, rtol=1e-12)
    np.testing.assert_allclose(r.bic, p * np.log(n) - 2 * r.log_likelihood, rtol=1e-12)


# ---------------------------------------------------------------- agreement with hmmlearn


@pytest.mark.parametrize("impl", ["log", "scaling"])
@pytest.mark.parametrize("k", [2, 3])
def test_matches_hmmlearn_on_sp500_returns(backend, sp500_returns, k, impl):
    x = sp500_returns
    ref = _hmmlearn_fit("sp500", k, 500, 1e-6, impl)
    r = backend.run_hmm(x, n_states=k, max_iterations=500, tolerance=1e-6, init=quantile_init(x, k))
    check_against_hmmlearn(r, ref, k, len(x))
    check_invariants(r, len(x))


def test_matches_hmmlearn_and_recovers_synthetic_regimes(backend, synthetic):
    x, states, true_means, true_sds = synthetic
    ref = _hmmlearn_fit("synthetic", 3, 500, 1e-6, "log")
    r = backend.run_hmm(x, n_states=3, max_iterations=500, tolerance=1e-6, init=quantile_init(x, 3))
    check_against_hmmlearn(r, ref, 3, len(x))
    check_invariants(r, len(x))
    np.testing.assert_allclose(r.means, true_means, atol=0.1)
    np.testing.assert_allclose(r.stds, true_sds, atol=0.1)
    assert np.mean(r.viterbi_path == states) > 0.95
    assert np.mean(r.posteriors.argmax(axis=1) == states) > 0.95
    assert np.all(np.diag(r.transition_matrix) > 0.9)


def test_iteration_cap_matches_hmmlearn(backend, sp500_returns):
    x = sp500_returns
    ref = _hmmlearn_fit("sp500", 3, 7, 1e-6, "log")
    r = backend.run_hmm(x, n_states=3, max_iterations=7, tolerance=1e-6, init=quantile_init(x, 3))
    assert r.iterations == ref["iterations"] == 7
    assert not r.converged
    np.testing.assert_allclose(r.log_likelihood_history, ref["history"], rtol=1e-9)
    np.testing.assert_allclose(r.log_likelihood, ref["ll"], rtol=1e-9)
    np.testing.assert_allclose(r.means, ref["means"], rtol=1e-7)
    np.testing.assert_array_equal(r.viterbi_path, ref["viterbi"])


def test_default_initialisation_is_the_documented_one(backend, sp500_returns):
    x = sp500_returns
    a = backend.run_hmm(x, n_states=3, max_iterations=300, tolerance=1e-6, n_restarts=0)
    b = backend.run_hmm(x, n_states=3, max_iterations=300, tolerance=1e-6, init=quantile_init(x, 3))
    assert a.iterations == b.iterations
    np.testing.assert_allclose(a.log_likelihood, b.log_likelihood, rtol=1e-12)
    np.testing.assert_allclose(a.means, b.means, rtol=1e-10)
    np.testing.assert_array_equal(a.viterbi_path, b.viterbi_path)


# ---------------------------------------------------------------- invariants and options


def test_log_likelihood_history_never_decreases(backend, sp500_returns):
    # tolerance=0: run until the likelihood stops increasing (or the cap).
    r = backend.run_hmm(sp500_returns, n_states=4, max_iterations=150, tolerance=0.0)
    check_invariants(r, len(sp500_returns))
    assert r.iterations > 20


def test_state_order_of_the_init_does_not_matter(backend, synthetic):
    x = synthetic[0]
    init = quantile_init(x, 3)
    perm = np.array([2, 0, 1])
    shuffled = dict(
        start_prob=init["start_prob"][perm],
        transmat=init["transmat"][np.ix_(perm, perm)],
        means=init["means"][perm],
        variances=init["variances"][perm],
    )
    a = backend.run_hmm(x, n_states=3, init=init)
    b = backend.run_hmm(x, n_states=3, init=shuffled)
    assert a.iterations == b.iterations
    np.testing.assert_allclose(b.means, a.means, rtol=1e-10)
    np.testing.assert_allclose(b.transition_matrix, a.transition_matrix, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b.posteriors, a.posteriors, atol=1e-9)
    np.testing.assert_array_equal(b.viterbi_path, a.viterbi_path)


def test_restarts_are_seeded_and_never_worse(backend, synthetic):
    x = synthetic[0]
    base = backend.run_hmm(x, n_states=3, n_restarts=0)
    a = backend.run_hmm(x, n_states=3, n_restarts=3, seed=7)
    b = backend.run_hmm(x, n_states=3, n_restarts=3, seed=7)
    assert a.log_likelihood >= base.log_likelihood
    np.testing.assert_array_equal(a.means, b.means)
    np.testing.assert_array_equal(a.log_likelihood_history, b.log_likelihood_history)
    np.testing.assert_array_equal(a.viterbi_path, b.viterbi_path)


def test_progress_reports_every_iteration(backend, sp500_returns):
    seen = []
    r = backend.run_hmm(sp500_returns, n_states=2, n_restarts=0, progress=lambda i, ll: seen.append((i, ll)))
    its = [i for i, _ in seen]
    assert its == sorted(its) and its[0] == 1 and its[-1] == r.iterations
    for i, ll in seen:
        assert ll == r.log_likelihood_history[i - 1]


def test_progress_returning_false_cancels(backend, synthetic):
    seen = []

    def progress(i, ll):
        seen.append(i)
        return i < 3

    with pytest.raises(Cancelled):
        backend.run_hmm(synthetic[0], n_states=3, max_iterations=500, tolerance=0.0, progress=progress)
    assert seen[:3] == [1, 2, 3]


def test_in_process_cancel_stops_at_once(backends, synthetic):
    seen = []
    with pytest.raises(Cancelled):
        backends["pyo3"].run_hmm(
            synthetic[0],
            n_states=3,
            max_iterations=500,
            tolerance=0.0,
            progress=lambda i, ll: seen.append(i) or i < 3,
        )
    assert seen == [1, 2, 3]


@pytest.mark.parametrize("n_restarts", [0, 1])
def test_long_series_bit_identical_on_both_backends_and_close_to_hmmlearn(backends, n_restarts):
    # >= 16384 observations: a single run's E-steps, and the final E-step / Viterbi / filter,
    # use two threads in the core; the numbers must not depend on that (nor on the process).
    x = three_regimes(40_000, seed=11)[0]
    k, iters = 3, 6
    init = quantile_init(x, k) if n_restarts == 0 else None
    rs = {
        name: b.run_hmm(x, n_states=k, max_iterations=iters, tolerance=0.0, n_restarts=n_restarts, init=init)
        for name, b in backends.items()
    }
    a, b = rs["pyo3"], rs["grpc"]
    for f in dataclasses.fields(a):
        u, v = getattr(a, f.name), getattr(b, f.name)
        if isinstance(u, (float, int, bool)):
            assert np.asarray(u).tobytes() == np.asarray(v).tobytes(), f.name
        elif u is not None and np.asarray(u).dtype.kind in "fiu":
            assert np.ascontiguousarray(u).tobytes() == np.ascontiguousarray(v).tobytes(), f.name
    check_invariants(a, len(x))
    if n_restarts == 0:
        _DATA["long"] = x
        ref = _hmmlearn_fit("long", k, iters, 0.0, "scaling")
        assert a.iterations == ref["iterations"] == iters
        np.testing.assert_allclose(a.log_likelihood_history, ref["history"], rtol=1e-12)
        np.testing.assert_allclose(a.log_likelihood, ref["ll"], rtol=1e-12)
        np.testing.assert_allclose(a.means, ref["means"], rtol=1e-10)
        np.testing.assert_allclose(a.variances, ref["variances"], rtol=1e-10)
        np.testing.assert_allclose(a.transition_matrix, ref["transmat"], rtol=1e-10)
        np.testing.assert_allclose(a.posteriors, ref["posteriors"], atol=1e-10)
        np.testing.assert_array_equal(a.viterbi_path, ref["viterbi"])


def test_heavy_outliers_do_not_underflow(backend, synthetic):
    # hmmlearn's implementation="scaling" raises "forward pass failed with underflow" here.
    x = synthetic[0][:2000].copy()
    x[100], x[1500] = 1e4, -3e3
    r = backend.run_hmm(x, n_states=3)
    assert np.isfinite(r.log_likelihood)
    check_invariants(r, len(x))


# ---------------------------------------------------------------- bad input


def _init2(**over):
    d = dict(start_prob=[0.5, 0.5], transmat=[[0.9, 0.1], [0.2, 0.8]], means=[-0.01, 0.01], variances=[1e-4, 2e-4])
    d.update(over)
    return {k: np.asarray(v, dtype=float) for k, v in d.items()}


_X = np.random.default_rng(3).normal(0, 0.01, 100)


@pytest.mark.parametrize(
    "obs, kwargs, message",
    [
        (np.array([]), {}, "observations is empty"),
        (np.r_[_X[:10], np.nan, _X[11:]], {}, "observations contains NaN at index 10"),
        (np.r_[_X[:5], np.inf, _X[6:]], {}, "observations contains an infinite value"),
        (np.full(100, 3.0), {}, r"observations have \(near-\)zero variance"),
        (np.full(300, 1e9 + 0.3), {}, r"observations have \(near-\)zero variance"),
        (np.where(np.arange(300) % 7 == 0, 1e9, 1e9 + 1.2e-7), {}, r"observations have \(near-\)zero variance"),
        (_X[:9], {"n_states": 1}, "observations are too short"),
        (_X, {"n_states": 0}, "n_states must be between 1 and 10"),
        (_X, {"n_states": 11}, "n_states must be between 1 and 10"),
        (_X, {"max_iterations": 0}, "max_iterations must be at least 1"),
        (_X, {"tolerance": -1e-3}, "tolerance must be a finite number >= 0"),
        (_X, {"tolerance": float("nan")}, "tolerance must be a finite number >= 0"),
        (_X, {"n_states": 2, "init": _init2(start_prob=[1.0])}, "init start_prob must have 2 values"),
        (_X, {"n_states": 2, "init": _init2(start_prob=[0.7, 0.7])}, "init start_prob must sum to 1"),
        (_X, {"n_states": 2, "init": _init2(transmat=[[0.9, 0.1], [0.5, 0.6]])}, "init transmat row 1 must sum to 1"),
        (_X, {"n_states": 2, "init": _init2(variances=[1e-4, -1.0])}, "init variances must be positive"),
        (_X, {"n_states": 2, "init": _init2(means=[0.0, np.nan])}, "init means contains NaN"),
        # A chain that cannot leave a state that cannot produce the data.
        (
            _X,
            {
                "n_states": 2,
                "init": _init2(
                    start_prob=[1.0, 0.0], transmat=[[1.0, 0.0], [0.0, 1.0]], means=[10.0, 0.0], variances=[1e-6, 1e-4]
                ),
            },
            "zero probability",
        ),
    ],
)
def test_bad_input(backend, obs, kwargs, message):
    with pytest.raises(ValueError, match=message):
        backend.run_hmm(obs, **kwargs)


# ---------------------------------------------------------------- transports


def test_backends_give_identical_results(backends, sp500_returns):
    kw = dict(n_states=3, max_iterations=200, tolerance=1e-7, n_restarts=2, seed=11)
    a = backends["pyo3"].run_hmm(sp500_returns, **kw)
    b = backends["grpc"].run_hmm(sp500_returns, **kw)
    for f in (
        "means",
        "variances",
        "stds",
        "transition_matrix",
        "start_probabilities",
        "log_likelihood_history",
        "posteriors",
        "viterbi_path",
    ):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    for f in ("log_likelihood", "iterations", "converged", "aic", "bic", "n_states"):
        assert getattr(a, f) == getattr(b, f), f
