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
