"""The Rust client of the gRPC backend (issue 16, small calls): unary and server-streaming calls
without a cancel token go through `_rustcore.GrpcUnaryClient` (tonic) instead of grpcio. The same
bytes, results, errors and texts either way; TLS stays on grpcio; a server that went away and came
back on the same address is reached again; HFT_LAB_GRPC_CLIENT=grpcio turns it off."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from hft_lab.backends import BackendConfig
from hft_lab.backends.errors import BackendUnavailable, NumericalError
from hft_lab.backends.grpc_backend import GrpcBackend
from hft_lab.backends.server import find_grpcd
from test_faults import stopped
from test_security import Grpcd


def _pair(address: str, monkeypatch, **cfg) -> tuple[GrpcBackend, GrpcBackend]:
    """(backend on the Rust client, backend on grpcio) to the same server."""
    fast = GrpcBackend(BackendConfig(**cfg), address=address)
    fast.info()
    assert fast._fast is not None, "the Rust client was not used"
    monkeypatch.setenv("HFT_LAB_GRPC_CLIENT", "grpcio")
    slow = GrpcBackend(BackendConfig(**cfg), address=address)
    slow.info()
    assert slow._fast is None
    return fast, slow


def _same(a, b) -> None:
    for k, v in vars(a).items():
        w = getattr(b, k)
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(v, w, err_msg=k)
        else:
            assert v == w or (v != v and w != w), k


@pytest.mark.parametrize("shm", ["1", "0"])
def test_rust_and_grpcio_clients_give_the_same_results_and_errors(monkeypatch, shm):
    monkeypatch.setenv("HFT_LAB_SHM", shm)
    s = Grpcd()
    try:
        fast, slow = _pair(s.address, monkeypatch)
        rng = np.random.default_rng(3)
        prices = 100 + rng.normal(size=50_000).cumsum() * 0.1  # 400 KB: the shared-memory size class
        assets = 100 * np.exp(np.cumsum(0.01 * rng.standard_normal((500, 50)), axis=0))
        for name, call in (
            ("mean reversion", lambda b: b.calculate_mean_reversion(prices, lookback=20)),
            ("mean reversion small", lambda b: b.calculate_mean_reversion(prices[:300], lookback=20)),
            ("max sharpe", lambda b: b.optimize_portfolio(assets, method="max_sharpe")),
            ("min variance", lambda b: b.optimize_portfolio(assets[:, :20], method="min_variance")),
            ("ou", lambda b: b.fit_ou(prices[:2000])),
            ("sparse", lambda b: b.calculate_sparse_portfolio(assets[:, :10], method="lasso", lambda_param=0.01)),
        ):
            _same(call(fast), call(slow))
        for b in (fast, slow):
            assert np.array_equal(b.echo(np.arange(16.0)), np.arange(16.0))
        # bad input: INVALID_ARGUMENT -> ValueError, word for word the same
        texts = []
        for b in (fast, slow):
            with pytest.raises(ValueError) as e:
                b.calculate_mean_reversion(prices[:300], lookback=500)
            texts.append(str(e.value))
        assert texts[0] == texts[1] and "lookback" in texts[0]
        # the core's numerical failures keep their kind (trailing metadata) on both clients
        flat = np.full((200, 3), 100.0)
        kinds = []
        for b in (fast, slow):
            with pytest.raises(ValueError) as e:
                b.optimize_portfolio(flat, method="min_variance")
            kinds.append((type(e.value), str(e.value)))
        assert kinds[0] == kinds[1]
        fast.close()
        slow.close()
    finally:
        s.stop()


def test_the_rust_client_refuses_an_oversized_request_like_grpcio(monkeypatch):
    s = Grpcd("--max-message-mb", "1")
    try:
        fast, slow = _pair(s.address, monkeypatch, max_message_mb=1)
        big = np.random.default_rng(0).normal(size=200_000).cumsum()
        monkeypatch.setenv("HFT_LAB_SHM", "0")
        for b in (fast, slow):
            with pytest.raises(ValueError, match="message too large for the 1 MiB gRPC limit"):
                b._mean_reversion(big, 5, 2.0, 0.0, None, None)
            assert b.info().max_message_bytes == 1 << 20  # and the connection still works
    finally:
        s.stop()


def test_the_rust_client_reconnects_to_a_server_restarted_on_the_same_port():
    s = Grpcd()
    port = s.port
    b = GrpcBackend(BackendConfig(quick_timeout_s=5), address=s.address)
    x = 100 + np.random.default_rng(1).normal(size=500).cumsum()
    want = b.calculate_mean_reversion(x, lookback=10).zscore
    client = b._fast
    assert client is not None
    # grpcd's graceful shutdown waits for the client to answer its PING: the idle client does
    # (it is not killed after stop()'s 10 s grace period)
    s.stop()
    assert s.proc.returncode == 0, s.proc.returncode
    with pytest.raises(BackendUnavailable):
        b.calculate_mean_reversion(x, lookback=10)
    proc = subprocess.Popen([str(find_grpcd()), "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert json.loads(proc.stdout.readline())["port"] == port
        # the same client object: its broken connection is replaced on the next call
        np.testing.assert_array_equal(b.calculate_mean_reversion(x, lookback=10).zscore, want)
        assert b._fast is client
    finally:
        proc.terminate()
        proc.wait(10)
        b.close()


def test_tls_calls_stay_on_grpcio():
    b = GrpcBackend(BackendConfig(tls=True, grpc_host="127.0.0.1", grpc_port=1))
    assert b._fast_client("127.0.0.1:1") is None and b.client_name == "grpcio"


def test_numerical_error_kind_survives_the_rust_client(monkeypatch):
    """grpcd marks the core's numerical failures with trailing metadata; the Rust client carries it."""
    from hft_lab.backends.grpc_backend import _FastRpcError, map_rpc_error

    e = map_rpc_error(_FastRpcError(3, "singular", "numerical"), "x:1", 1)
    assert isinstance(e, NumericalError) and str(e) == "singular"
    e = map_rpc_error(_FastRpcError(3, "bad", None), "x:1", 1)
    assert type(e) is ValueError


def test_server_streams_on_the_rust_client_match_grpcio(monkeypatch):
    """RunHmm (a server stream) without a cancel token goes through the Rust client: the same
    result, the same progress, the same errors; a progress callback returning False cancels."""
    from hft_lab.backends.errors import Cancelled

    s = Grpcd()
    try:
        fast, slow = _pair(s.address, monkeypatch)
        rng = np.random.default_rng(5)
        z = rng.integers(0, 2, 3000)
        x = np.array([-1.0, 1.0])[z] + rng.normal(size=3000) * 0.5
        seen: dict[str, list] = {"fast": [], "slow": []}
        res = {}
        for key, b in (("fast", fast), ("slow", slow)):
            res[key] = b.run_hmm(
                x,
                n_states=2,
                max_iterations=15,
                tolerance=0.0,
                n_restarts=0,
                progress=lambda i, ll, k=key: seen[k].append((i, ll)),
            )
        _same(res["fast"], res["slow"])
        assert seen["fast"] == seen["slow"] and len(seen["fast"]) > 1
        for b in (fast, slow):
            with pytest.raises(ValueError) as e:
                b.run_hmm(x[:1], n_states=2)
            assert "observations" in str(e.value)
        with pytest.raises(Cancelled):
            fast.run_hmm(x, n_states=2, max_iterations=50, tolerance=0.0, n_restarts=0, progress=lambda i, ll: i < 3)
        # the connection is still fine afterwards
        _same(fast.run_hmm(x, n_states=2, max_iterations=15, tolerance=0.0, n_restarts=0), res["slow"])
        fast.close()
        slow.close()
    finally:
        s.stop()


def test_polled_small_calls_give_the_same_results_and_keep_their_deadline(monkeypatch):
    """Small calls grpcd computes inline are polled for (HFT_LAB_GRPC_SPIN_US, default 500 µs):
    the same results as sleeping for the answer; a server that does not answer still ends the
    call at its deadline (the polling gives way to sleeping, the deadline and abort still work)."""
    import os
    import signal
    import time

    rng = np.random.default_rng(16)
    prices = 100 * np.exp(np.cumsum(0.01 * rng.standard_normal((300, 12)), axis=0))
    s = Grpcd()
    try:
        polled = GrpcBackend(BackendConfig(call_timeout_s=0.5), address=s.address)
        monkeypatch.setenv("HFT_LAB_GRPC_SPIN_US", "0")
        sleeping = GrpcBackend(BackendConfig(call_timeout_s=0.5), address=s.address)
        for method in ("max_sharpe", "min_variance", "risk_parity"):
            _same(polled.optimize_portfolio(prices, method=method), sleeping.optimize_portfolio(prices, method=method))
        x = prices[:, 0]
        _same(polled.calculate_mean_reversion(x, lookback=20), sleeping.calculate_mean_reversion(x, lookback=20))
        os.kill(s.proc.pid, signal.SIGSTOP)
        stopped(s.proc.pid)  # SIGSTOP lands asynchronously: a polling grpcd could still answer
        try:
            t0 = time.monotonic()
            with pytest.raises(TimeoutError, match="did not answer before the deadline"):
                polled.optimize_portfolio(prices, method="max_sharpe")
            assert time.monotonic() - t0 < 3
        finally:
            os.kill(s.proc.pid, signal.SIGCONT)
        _same(polled.optimize_portfolio(prices, method="max_sharpe"), sleeping.optimize_portfolio(prices, method="max_sharpe"))
    finally:
        s.stop()


@pytest.mark.parametrize("flags", [("--io-threads", "3"), ("--spin-us", "0"), ("--spin-us", "100000")])
def test_grpcd_io_threads_and_polling_flags_change_no_result(flags):
    """--io-threads / --spin-us change how grpcd waits for requests, never an answer: concurrent
    small and large calls give the same results as on a default grpcd."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(17)
    prices = 100 * np.exp(np.cumsum(0.01 * rng.standard_normal((400, 30)), axis=0))
    walk = 100 + np.cumsum(rng.standard_normal(300_000)) * 0.01  # 2.4 MB: the blocking pool
    ref_s, s = Grpcd(), Grpcd(*flags)
    try:
        ref = GrpcBackend(address=ref_s.address)
        want_pf = ref.optimize_portfolio(prices, method="max_sharpe")
        want_mr = ref.calculate_mean_reversion(walk, lookback=50)
        b = GrpcBackend(address=s.address)
        with ThreadPoolExecutor(4) as ex:
            jobs = [ex.submit(b.optimize_portfolio, prices, method="max_sharpe") for _ in range(12)]
            jobs += [ex.submit(b.calculate_mean_reversion, walk, lookback=50) for _ in range(3)]
            for j in jobs[:12]:
                _same(j.result(), want_pf)
            for j in jobs[12:]:
                _same(j.result(), want_mr)
    finally:
        s.stop()
        ref_s.stop()
