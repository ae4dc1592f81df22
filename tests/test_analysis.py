"""The tabs' Qt-free computations (hft_lab.analysis) and their TaskContext, called directly on both
backends: progress reaches the caller, a cancelled context stops the work with Cancelled, and the
results are the backends' own (the same call without a context gives the same numbers)."""

from __future__ import annotations

import numpy as np
import pytest
from hft_lab.analysis import TaskContext, analyse, find_basket, fit_regimes, optimise
from hft_lab.analysis.portfolio import SyntheticSelection
from hft_lab.backends import Cancelled
from hft_lab.data import ou_series, regime_switching_returns
from hft_lab.data.synthetic import synthetic_universe
from hypothesis import example, given, settings
from hypothesis import strategies as st


def test_context_forwards_progress_and_partial_results_and_reports_cancel():
    seen: list = []
    parts: list = []
    ctx = TaskContext(on_progress=seen.append, on_partial=parts.append)
    assert ctx.progress((1, -2.5)) is True and seen == [(1, -2.5)]
    ctx.partial("cell")
    assert parts == ["cell"]
    ctx.check()  # not cancelled: nothing happens
    ctx.cancel()
    assert ctx.cancelled and ctx.progress((2, -2.0)) is False and seen[-1] == (2, -2.0)
    with pytest.raises(Cancelled):
        ctx.check()
    # without callbacks it is a plain cancel token
    bare = TaskContext()
    assert bare.progress("x") is True
    bare.partial("ignored")


def test_fit_regimes_reports_every_em_iteration(backend):
    obs, _ = regime_switching_returns(600, seed=3)
    seen: list = []
    r = fit_regimes(backend, obs, 2, 50, 1e-6, 0, 0, ctx=TaskContext(on_progress=seen.append))
    assert [it for it, _ in seen] == list(range(1, r.iterations + 1))
    np.testing.assert_array_equal([ll for _, ll in seen], r.log_likelihood_history)
    direct = backend.run_hmm(obs, n_states=2, max_iterations=50, tolerance=1e-6, n_restarts=0, seed=0)
    np.testing.assert_array_equal(direct.viterbi_path, r.viterbi_path)
    assert direct.log_likelihood == r.log_likelihood


def test_a_cancelled_context_stops_each_task(backend):
    ctx = TaskContext()
    ctx.cancel()
    prices = ou_series(500, seed=1)
    with pytest.raises(Cancelled):
        analyse(backend, prices, 20, 2.0, 0.0, None, 1.0, 252.0, 1.0, ctx=ctx)
    with pytest.raises(Cancelled):
        optimise(backend, SyntheticSelection(3, 300, 0, ["SYN01", "SYN02"]), "min_variance", {}, ctx=ctx)
    obs, _ = regime_switching_returns(400, seed=1)
    with pytest.raises(Cancelled):
        fit_regimes(backend, obs, 2, 50, 0.0, 0, 0, ctx=ctx)


def test_tasks_give_the_backend_results(backend):
    prices = ou_series(800, seed=2)
    out = analyse(backend, prices, 20, 2.0, 0.0, None, 1.0, 252.0, 1.0, ctx=TaskContext())
    direct = backend.calculate_mean_reversion(prices, lookback=20, threshold=2.0, exit_threshold=0.0)
    np.testing.assert_array_equal(out["mr"].zscore, direct.zscore)
    assert out["bt"].units == "returns"
    frame = synthetic_universe(4, 400, seed=5)
    res = optimise(backend, frame, "min_variance", {"frontier_points": 0})
    np.testing.assert_array_equal(res["result"].weights, backend.optimize_portfolio(frame, method="min_variance").weights)
    basket = find_basket(backend, frame, "greedy", {"k": 2})
    assert basket["frame"] is frame and basket["result"].nonzero == 2


# ---------------------------------------------------------------------------------------------
# Regimes tab: features, the walk-forward task's progress
# ---------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    t=st.integers(min_value=2, max_value=60),
    n=st.integers(min_value=1, max_value=3),
    kinds=st.sets(st.sampled_from(["returns", "abs_returns", "rolling_vol"]), min_size=1),
    window=st.integers(min_value=2, max_value=70),
    seed=st.integers(min_value=0, max_value=1000),
)
@example(t=51, n=1, kinds={"rolling_vol"}, window=3, seed=604)
@example(t=51, n=2, kinds={"rolling_vol"}, window=3, seed=604)
@example(t=51, n=3, kinds={"rolling_vol"}, window=3, seed=604)
def test_build_features_columns_offset_and_errors(t, n, kinds, window, seed):
    from hft_lab.analysis.regimes import build_features

    r = np.random.default_rng(seed).normal(0.0, 0.02, (t, n))
    names = [f"A{j}" for j in range(n)]
    if "rolling_vol" in kinds and window > t:
        with pytest.raises(ValueError, match="volatility window must be between 2 and the number of returns"):
            build_features(r, names, kinds, window)
        return
    x, cols, offset = build_features(r, names, kinds, window)
    want_offset = window - 1 if "rolling_vol" in kinds else 0
    assert offset == want_offset and x.shape == (t - offset, n * len(kinds)) and len(cols) == x.shape[1]
    assert np.isfinite(x).all() and x.flags.c_contiguous
    j = 0
    for kind in ("returns", "abs_returns", "rolling_vol"):  # the documented column order
        if kind not in kinds:
            continue
        block = x[:, j : j + n]
        if kind == "returns":
            np.testing.assert_array_equal(block, r[offset:])
            assert cols[j] == "A0 r"
        elif kind == "abs_returns":
            np.testing.assert_array_equal(block, np.abs(r[offset:]))
            assert cols[j] == "A0 |r|"
        else:  # row i: the sample std (ddof=1) of returns offset+i-window+1 .. offset+i
            i = len(block) - 1
            np.testing.assert_allclose(block[i], r[offset + i - window + 1 : offset + i + 1].std(axis=0, ddof=1), rtol=1e-9)
            # every row against NumPy's two-pass std of its window (not pandas' running sums, which
            # drift by more than 1e-12 relative: seed 604, t 51, window 3 was 1.7e-12 off the exact value)
            two_pass = np.lib.stride_tricks.sliding_window_view(r, window, axis=0).std(axis=-1, ddof=1)
            np.testing.assert_allclose(block, two_pass, rtol=1e-12)
            assert cols[j] == f"A0 vol{window}"
        j += n


def test_build_features_refuses_no_or_unknown_features_and_differs_counts():
    from hft_lab.analysis.regimes import build_features, most_likely_differs

    r = np.zeros((10, 1))
    for bad in ([], ["returns", "squared"]):
        with pytest.raises(ValueError, match="choose at least one feature"):
            build_features(r, [""], bad)
    assert build_features(r, [""], ["abs_returns", "returns"])[1] == ["r", "|r|"]  # order is fixed
    s = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8]])
    f = np.array([[0.6, 0.4], [0.7, 0.3], [0.1, 0.9]])
    assert most_likely_differs(s, f).tolist() == [False, True, False]
    assert most_likely_differs(s, np.zeros((0, 0))).tolist() == [False, False, False]  # an old document


def test_walk_forward_task_reports_windows(backend):
    from hft_lab.analysis.regimes import walk_forward_regimes

    x, _ = regime_switching_returns(700, seed=2)
    seen: list = []
    kw = dict(n_states=2, covariance_type="diag", max_iterations=30, tolerance=1e-6, n_restarts=0, seed=0)
    w = walk_forward_regimes(backend, x, 400, 150, **kw, ctx=TaskContext(on_progress=seen.append))
    direct = backend.hmm_walk_forward(x, formation=400, step=150, **kw)
    np.testing.assert_array_equal(w.filtered, direct.filtered)
    assert seen and seen[-1] == ("windows", 2, 2) and all(p[0] == "windows" for p in seen)


def test_rolling_vol_feature_is_the_cores_exact_rolling_std():
    """The volatility feature comes from the core's exact rolling statistics: a window of equal
    returns (a price that did not move) is exactly 0, and every window agrees with exact rational
    arithmetic (pandas' running sums leave rounding residue there)."""
    from fractions import Fraction

    from hft_lab.analysis.regimes import build_features

    rng = np.random.default_rng(7)
    r = np.concatenate([rng.normal(0.0, 0.02, 50), np.zeros(30), 1e-9 + rng.normal(0.0, 1e-12, 20)]) + 0.0
    w = 10
    x, cols, offset = build_features(r, [""], ["rolling_vol"], w)
    assert cols == [f"vol{w}"] and offset == w - 1
    vol = x[:, 0]
    flat = [i for i in range(len(vol)) if np.all(r[i : i + w] == r[i])]
    assert flat and all(vol[i] == 0.0 for i in flat)
    for i in range(0, len(vol), 7):
        win = [Fraction(v) for v in r[i : i + w]]
        m = sum(win) / w
        var = sum((v - m) ** 2 for v in win) / (w - 1)
        exact = float(var) ** 0.5
        assert abs(vol[i] - exact) <= 1e-12 * exact, (i, vol[i], exact)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=3, max_value=200),
    window=st.integers(min_value=2, max_value=40),
    scale_exp=st.integers(min_value=-9, max_value=3),
    flats=st.lists(st.tuples(st.integers(0, 199), st.integers(2, 60)), max_size=4),
    jumps=st.lists(st.tuples(st.integers(0, 199), st.sampled_from([1.0, 1e3, 1e6, 1e9])), max_size=3),
    seed=st.integers(min_value=0, max_value=10_000),
)
@example(n=3, window=2, scale_exp=0, flats=[(0, 3)], jumps=[], seed=0)  # constant returns (CI found it)
def test_rolling_vol_feature_on_hostile_returns_matches_exact_arithmetic(n, window, scale_exp, flats, jumps, seed):
    """Flat runs (equal returns), jumps of 1..1e9 times the noise, scales 1e-9..1e3: every window
    of the volatility feature agrees with exact rational arithmetic, flat windows exactly 0."""
    from fractions import Fraction

    from hft_lab.analysis.regimes import build_features

    window = min(window, n)
    scale = 10.0**scale_exp
    r = np.random.default_rng(seed).normal(0.0, scale, n)
    for a, length in flats:
        r[a : a + length] = r[min(a, n - 1)]
    for a, k in jumps:
        r[a % n] += k * scale
    x, _, offset = build_features(r, [""], ["rolling_vol"], window)
    vol = x[:, 0]
    assert offset == window - 1 and len(vol) == n - offset
    for i in range(len(vol)):
        win = r[i : i + window]
        if np.all(win == win[0]):
            assert vol[i] == 0.0, i
            continue
        if i % 5:
            continue
        q = [Fraction(v) for v in win]
        m = sum(q) / window
        exact = float(sum((v - m) ** 2 for v in q) / (window - 1)) ** 0.5
        assert abs(vol[i] - exact) <= 1e-12 * exact, (i, vol[i], exact)
