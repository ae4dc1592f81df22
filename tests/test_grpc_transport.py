"""The gRPC transport round 2 (issue 16 small calls, issue 15 dedupe): GetInfo lists every RPC and
algorithm, grpcd's --log-level, small calls run inline with the same results, errors and panic
containment as on the blocking pool, and both live streams behave alike through the shared code."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from hft_lab._proto.hftlab.v1 import hftlab_pb2 as pb
from hft_lab.backends import BackendConfig
from hft_lab.backends.grpc_backend import GrpcBackend
from hft_lab.backends.server import find_grpcd
from test_security import Grpcd


def _served_rpcs() -> set[str]:
    return {f"{s.full_name}/{m.name}" for s in pb.DESCRIPTOR.services_by_name.values() for m in s.methods}


def test_get_info_lists_every_rpc_and_algorithm(grpc_backend):
    info = grpc_backend.info()
    assert set(info.rpcs) == _served_rpcs() and len(info.rpcs) == len(set(info.rpcs))
    algos = info.algorithms
    assert len(algos) == len(set(algos)), algos
    for want in (
        # last round's operations (issue 15/17/20)
        "scan_pairs",
        "johansen",
        "kalman_hedge",
        "walk_forward",
        "hmm_mv",
        "hmm_filter",
        "hmm_walk_forward",
        "hmm_filter_stream",
        "estimate_moments",
        "ledoit_wolf",
        # and the first ones
        "mean_reversion",
        "mean_reversion_stream",
        "portfolio",
        "hmm",
        "sparse",
        "sparse_lambda_path",
    ):
        assert want in algos, want
    raw = grpc_backend._unary("GetInfo", pb.InfoRequest(), pb.InfoResponse)
    # shared memory is a feature on offer exactly when grpcd names its directory
    assert ("shared_memory" in info.features) == bool(raw.shm_dir)


def test_get_info_without_shared_memory():
    s = Grpcd("--no-shm")
    b = GrpcBackend(BackendConfig(quick_timeout_s=5), address=s.address)
    try:
        info = b.info()
        assert "shared_memory" not in info.features
        assert set(info.rpcs) == _served_rpcs()
    finally:
        b.close()
        s.stop()


def test_log_level_info_drops_the_per_call_lines_but_not_failures():
    s = Grpcd("--log-level", "info")
    b = GrpcBackend(BackendConfig(quick_timeout_s=5), address=s.address)
    try:
        b.echo([1.0, 2.0])
        with pytest.raises(ValueError):
            b.calculate_mean_reversion([1.0, float("nan"), 3.0], lookback=2)
    finally:
        b.close()
        logs = s.stop()
    assert not [r for r in logs if r.get("level") == "DEBUG"]
    rpcs = {(r["rpc"], r["code"]) for r in logs if r.get("msg") == "rpc"}
    assert ("MeanReversion", "InvalidArgument") in rpcs and ("Echo", "Ok") not in rpcs


def test_bad_log_level_is_refused():
    p = subprocess.run([str(find_grpcd()), "--port", "0", "--log-level", "loud"], capture_output=True, timeout=30)
    assert p.returncode == 2
    assert b"--log-level must be debug, info, warn or error, got 'loud'" in p.stderr


def test_small_and_large_calls_agree_with_pyo3(backends, rng):
    """Below 256 KB the portfolio runs inline on grpcd's async worker, above it on the blocking
    pool: both identical to PyO3, and the same error text for bad input."""
    for n_obs, n_assets in ((120, 8), (700, 50)):  # 7.5 KB and 280 KB of prices
        p = 100 * np.exp(np.cumsum(rng.normal(3e-4, 0.01, (n_obs, n_assets)), axis=0))
        a = backends["pyo3"].optimize_portfolio(p, method="max_sharpe")
        b = backends["grpc"].optimize_portfolio(p, method="max_sharpe")
        np.testing.assert_array_equal(a.weights, b.weights)
        assert (a.sharpe, a.volatility, a.iterations) == (b.sharpe, b.volatility, b.iterations)
        bad = p.copy()
        bad[3, 1] = np.nan
        errs = []
        for be in (backends["pyo3"], backends["grpc"]):
            with pytest.raises(ValueError) as e:
                be.optimize_portfolio(bad, method="max_sharpe")
            errs.append(str(e.value))
        assert errs[0] == errs[1]


def test_live_streams_share_one_protocol(backends):
    """Both live clients (mean reversion, HMM filter) through the shared bidi code: a bad setup
    raises at open, a rejected batch raises and the stream goes on, same as PyO3."""
    for name, be in backends.items():
        with pytest.raises(ValueError) as e:
            be.mean_reversion_stream(lookback=0)
        mr_err = str(e.value)
        with be.mean_reversion_stream(lookback=3) as s:
            first = s.push_many([1.0, 2.0, 3.0])
            with pytest.raises(ValueError):
                s.push_many([float("nan")])
            nxt = s.push_many([4.0])
            assert nxt.first_tick == first.first_tick + 3, name
        if name == "pyo3":
            pyo3_err = mr_err
        else:
            assert mr_err == pyo3_err


def test_progress_in_order_while_another_thread_runs_python(backend):
    """Progress events are batched under one GIL acquisition (PyO3) or streamed (gRPC): with a
    Python thread busy meanwhile (the GUI thread), every EM iteration still arrives, in order,
    with the history's values; a False from the last events still cancels."""
    import threading

    from hft_lab.backends.errors import Cancelled
    from hft_lab.data import regime_switching_returns

    x, _ = regime_switching_returns(2000, seed=7)
    stop = threading.Event()

    def busy():
        while not stop.is_set():
            sum(range(1000))

    t = threading.Thread(target=busy, daemon=True)
    t.start()
    try:
        seen: list = []
        r = backend.run_hmm(
            x, n_states=3, max_iterations=30, tolerance=0.0, n_restarts=0, seed=1, progress=lambda i, ll: seen.append((i, ll))
        )
        assert [i for i, _ in seen] == list(range(1, r.iterations + 1)) and r.iterations == 30
        np.testing.assert_array_equal([ll for _, ll in seen], r.log_likelihood_history)
        with pytest.raises(Cancelled):
            backend.run_hmm(x, n_states=3, max_iterations=30, tolerance=0.0, n_restarts=0, seed=1, progress=lambda i, ll: i < 29)
    finally:
        stop.set()
        t.join()


@pytest.mark.parametrize("module,cls", [("pyo3_backend", "Pyo3Backend"), ("grpc_backend", "GrpcBackend")])
def test_each_backend_applies_the_allocator_settings_once(module, cls):
    """Both backends (not only gRPC) keep large arrays on the heap (alloc.py), so a PyO3-only
    process gets the same speed as the benchmark's; HFT_LAB_MALLOPT=0 leaves malloc alone."""
    import sys

    code = (
        "from hft_lab.backends import alloc\n"
        f"from hft_lab.backends.{module} import {cls}\n"
        "import ctypes; calls = []\n"
        "real = ctypes.CDLL('libc.so.6').mallopt\n"
        "class Libc:\n"
        "    def mallopt(self, p, v): calls.append((p, v)); return real(p, v)\n"
        "ctypes.CDLL = lambda name: Libc()\n"
        "assert not alloc._TUNED\n"
        f"{cls}(); {cls}()\n"
        "print(sorted(calls))\n"
    )
    for env, want in (({}, "[(-3, 8388608), (-1, 67108864)]"), ({"HFT_LAB_MALLOPT": "0"}, "[]")):
        import os

        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == want
