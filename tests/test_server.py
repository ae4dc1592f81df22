"""grpcd lifecycle: spawn, health, restart after kill -9, no orphan when the parent dies,
clear errors for bad host/port, fallback to PyO3 while gRPC is down, contained panics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hft_lab.backends import BackendConfig, BackendType, BackendUnavailable
from hft_lab.backends.grpc_backend import GrpcBackend
from hft_lab.backends.router import BackendRouter
from hft_lab.backends.server import ServerManager, find_grpcd


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): look at its state
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_until(pred, timeout=10.0, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def test_spawn_reports_serving_and_answers(grpc_manager, grpc_backend):
    assert grpc_manager.state == "serving"
    ch = grpc.insecure_channel(grpc_manager.address)
    r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service="hftlab.v1.HftLab"), timeout=2)
    assert r.status == health_pb2.HealthCheckResponse.SERVING
    ch.close()
    info = grpc_backend.info()
    assert info.pid == grpc_manager.pid and info.max_message_bytes == 512 << 20
    assert "mean_reversion" in info.algorithms


def test_grpcd_stops_gracefully_on_a_sigterm_right_after_the_listening_line():
    """The handlers are installed before the port is printed: a SIGTERM sent the moment the app
    reads the line (no call made yet) is a graceful stop, not the default action (exit -15)."""
    for _ in range(5):
        p = subprocess.Popen([str(find_grpcd()), "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert json.loads(p.stdout.readline())["event"] == "listening"
            p.send_signal(signal.SIGTERM)
            assert p.wait(10) == 0
            assert b"SIGTERM received" in p.stderr.read()
        finally:
            p.kill()


def test_grpcd_prints_port_and_stops_gracefully_on_sigterm():
    p = subprocess.Popen([str(find_grpcd()), "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = json.loads(p.stdout.readline())
        assert line["event"] == "listening" and line["port"] > 0 and line["pid"] == p.pid
        b = GrpcBackend(address=f"127.0.0.1:{line['port']}")
        assert wait_until(b.is_available, 5)
        b.close()
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0
        assert b"SIGTERM received" in p.stderr.read()
    finally:
        p.kill()


def test_kill_9_is_restarted_and_calls_succeed_again():
    m = ServerManager(BackendConfig(), health_interval_s=0.2)
    m.start()
    try:
        b = GrpcBackend(address=lambda: m.address)
        old = m.pid
        os.kill(old, signal.SIGKILL)
        assert wait_until(lambda: m.state != "serving", 5)
        assert wait_until(lambda: m.state == "serving" and m.pid != old, 15), m.state
        assert m.restarts == 1
        r = b.calculate_mean_reversion(np.arange(100.0) % 7, lookback=5)
        assert r.zscore.shape == (100,)
        b.close()
    finally:
        m.stop()
    assert not alive(old)


PARENT = textwrap.dedent(
    """
    import sys, time
    from hft_lab.backends import BackendConfig
    from hft_lab.backends.server import ServerManager
    m = ServerManager(BackendConfig())
    m.start()
    print(m.pid, flush=True)
    time.sleep(120)
    """
)


def test_no_grpcd_left_when_the_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE)
    try:
        child = int(parent.stdout.readline())
        assert alive(child)
        parent.kill()
        parent.wait()
        assert wait_until(lambda: not alive(child), 10), "grpcd outlived its parent"
    finally:
        parent.kill()


def test_bad_host_gives_a_clear_error():
    m = ServerManager(BackendConfig(grpc_host="not-an-ip"))
    with pytest.raises(BackendUnavailable, match="grpcd failed to start on not-an-ip"):
        m.start()
    assert m.state == "failed"
    m.stop()


def test_unreachable_server_gives_a_clear_error():
    b = GrpcBackend(BackendConfig(grpc_host="127.0.0.1", grpc_port=1, call_timeout_s=5))
    assert not b.is_available()
    with pytest.raises(BackendUnavailable, match="grpcd at 127.0.0.1:1 is unavailable"):
        b.calculate_mean_reversion([1.0, 2.0, 3.0], lookback=2)
    b.close()


@pytest.mark.parametrize(
    "env,message",
    [
        ({"GRPC_PORT": "abc"}, "GRPC_PORT must be a port number from 1 to 65535, got 'abc'"),
        ({"GRPC_PORT": "70000"}, "GRPC_PORT must be a port number from 1 to 65535, got 70000"),
        ({"BACKEND_TYPE": "cuda"}, "unknown backend type 'cuda'"),
    ],
)
def test_bad_environment_is_a_clear_error(env, message):
    with pytest.raises(ValueError, match=message):
        BackendConfig.from_env(env)


def test_config_from_env():
    c = BackendConfig.from_env({"BACKEND_TYPE": "legacy", "GRPC_HOST": "10.0.0.5", "GRPC_PORT": "50051"})
    assert c.backend_type == BackendType.PYO3 and c.grpc_host == "10.0.0.5" and c.grpc_port == 50051
    assert not c.spawn_local_server
    assert BackendConfig.from_env({}).spawn_local_server


def test_remote_server_via_host_and_port(grpc_manager):
    port = int(grpc_manager.address.rsplit(":", 1)[1])
    r = BackendRouter(BackendConfig(backend_type=BackendType.GRPC, grpc_host="127.0.0.1", grpc_port=port))
    assert r.manager is None
    res = r.resolve()
    assert res.backend.backend_type == BackendType.GRPC and not res.fallback
    r.stop()


def test_fallback_to_pyo3_while_grpc_is_down_and_back():
    changes = []
    router = BackendRouter(BackendConfig(backend_type=BackendType.GRPC), on_change=lambda: changes.append(1))
    router.start()
    try:
        res = router.resolve()
        assert res.backend.backend_type == BackendType.GRPC and not res.fallback
        router.manager.stop()
        res = router.resolve()
        assert res.backend.backend_type == BackendType.PYO3 and res.fallback
        assert "is down" in res.note and router.fallback_note
        out, res = router.call("calculate_mean_reversion", np.arange(50.0) % 5, lookback=5)
        assert res.fallback and out.zscore.shape == (50,)
        router.manager.start()
        res = router.resolve()
        assert res.backend.backend_type == BackendType.GRPC and not res.fallback
        assert router.fallback_note is None
        assert changes
    finally:
        router.stop()


def test_a_panicking_handler_is_internal_and_the_server_keeps_serving(grpc_backend):
    from hft_lab._proto.hftlab.v1 import hftlab_pb2 as pb

    with pytest.raises(RuntimeError, match="INTERNAL.*handler panicked; the server is still serving"):
        grpc_backend._unary("Echo", pb.EchoRequest(payload=b"panic"), pb.EchoResponse)
    assert grpc_backend.is_available()
    np.testing.assert_array_equal(grpc_backend.echo([1.0, 2.0]), [1.0, 2.0])


def test_deadline_is_enforced(grpc_manager):
    b = GrpcBackend(BackendConfig(call_timeout_s=0.001), address=grpc_manager.address)
    with pytest.raises(TimeoutError, match="did not answer before the deadline"):
        b.calculate_mean_reversion(np.random.default_rng(0).normal(size=2_000_000), lookback=10)
    b.close()


def test_messages_over_the_limit_get_a_clear_error():
    """Both sides enforce the configured limit (512 MiB by default; 1 MiB here to keep it small)."""
    cfg = BackendConfig(max_message_mb=1)
    with ServerManager(cfg) as m:
        b = GrpcBackend(cfg, address=m.address)
        ok = b.calculate_mean_reversion(np.random.default_rng(0).normal(size=10_000).cumsum(), lookback=5)
        assert ok.zscore.shape == (10_000,)
        big = np.random.default_rng(0).normal(size=200_000).cumsum()
        # the public API refuses up front, with the text the PyO3 backend gives for the same limit
        with pytest.raises(ValueError, match="beyond the 1 MiB message limit both backends apply"):
            b.calculate_mean_reversion(big, lookback=5)
        # and the transport still enforces it as a backstop
        with pytest.raises(ValueError, match="message too large for the 1 MiB gRPC limit"):
            b._mean_reversion(big, 5, 2.0, 0.0, None, None)
        # the server is still fine afterwards
        assert b.is_available()
        b.close()
