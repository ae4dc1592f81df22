"""Server faults (issue 14): a hung grpcd is found by health checks and calls fall back to PyO3;
timeouts are retried on PyO3; a port held by something that is not grpcd is remembered as down;
a bad GRPCD_PATH is an error; start() from any thread; Ctrl+C does not kill grpcd alone;
SIGINT/SIGTERM quit the app cleanly."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from hft_lab.backends import BackendConfig, BackendType
from hft_lab.backends.grpc_backend import GrpcBackend
from hft_lab.backends.router import BackendRouter
from hft_lab.backends.server import GrpcdPathError, ServerManager, find_grpcd


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie still answers kill(0)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def stopped(pid: int, timeout: float = 5.0) -> None:
    """Waits until every thread of `pid` is stopped (state T): SIGSTOP lands asynchronously, and a
    grpcd polling its sockets after a small call (awake.rs) could still answer a call sent at once."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        states = []
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    states.append(f.read().rsplit(")", 1)[1].split()[0])
            except OSError:
                continue
        if states and all(s in ("T", "t") for s in states):
            return
        time.sleep(0.005)
    raise AssertionError(f"process {pid} did not stop")


def wait_until(pred, timeout=10.0, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def test_a_hung_server_is_marked_down_and_calls_fall_back_to_pyo3(pyo3_backend):
    router = BackendRouter(BackendConfig(backend_type=BackendType.GRPC))
    router.start()
    m = router.manager
    pid = m.pid
    prices = 100 + np.random.default_rng(7).normal(size=300).cumsum()
    try:
        assert m.state == "serving"
        os.kill(pid, signal.SIGSTOP)
        stopped(pid)
        t0 = time.monotonic()
        # a call that starts now goes to the hung server; it must not wait for its 600 s deadline
        out, res = router.call("calculate_mean_reversion", prices, lookback=10)
        waited = time.monotonic() - t0
        assert res.backend.backend_type == BackendType.PYO3 and res.fallback
        assert "went down" in res.note or "is down" in res.note
        np.testing.assert_array_equal(out.zscore, pyo3_backend.calculate_mean_reversion(prices, lookback=10).zscore)
        assert m.state == "down" and "does not answer health checks" in m.detail
        assert waited < 6, f"the hung server was found only after {waited:.1f} s"
        # while it is down, calls go straight to PyO3
        out, res = router.call("calculate_mean_reversion", prices, lookback=10)
        assert res.backend.backend_type == BackendType.PYO3
        os.kill(pid, signal.SIGCONT)
        assert wait_until(lambda: m.state == "serving", 10)
        assert m.pid == pid  # it came back by itself: no restart needed
        out, res = router.call("calculate_mean_reversion", prices, lookback=10)
        assert res.backend.backend_type == BackendType.GRPC and not res.fallback
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        router.stop()
    assert not alive(pid)


def test_a_stopped_server_is_killed_on_stop():
    m = ServerManager(BackendConfig())
    m.start()
    pid = m.pid
    os.kill(pid, signal.SIGSTOP)
    m.stop()
    assert wait_until(lambda: not alive(pid), 5)


def test_a_grpc_timeout_is_retried_on_pyo3(grpc_manager, pyo3_backend):
    port = int(grpc_manager.address.rsplit(":", 1)[1])
    router = BackendRouter(
        BackendConfig(backend_type=BackendType.GRPC, grpc_host="127.0.0.1", grpc_port=port, call_timeout_s=0.001)
    )
    try:
        x = np.random.default_rng(0).normal(size=2_000_000)
        out, res = router.call("calculate_mean_reversion", x, lookback=10)
        assert res.backend.backend_type == BackendType.PYO3 and res.fallback
        assert "deadline" in res.note
        np.testing.assert_array_equal(out.zscore, pyo3_backend.calculate_mean_reversion(x, lookback=10).zscore)
    finally:
        router.stop()


def test_a_port_held_by_something_else_is_remembered_as_down():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)  # accepts connections (kernel backlog) and never answers
    port = srv.getsockname()[1]
    router = BackendRouter(BackendConfig(backend_type=BackendType.GRPC, grpc_host="127.0.0.1", grpc_port=port))
    checks = []
    health = router.grpc.health

    def counting(timeout=1.0):
        checks.append(time.monotonic())
        return health(timeout=timeout)

    router.grpc.health = counting
    try:
        for _ in range(8):
            out, res = router.call("calculate_mean_reversion", np.arange(30.0) % 4, lookback=3)
            assert res.backend.backend_type == BackendType.PYO3 and res.fallback
        assert router.grpc_state() == "down"
        assert "does not answer gRPC health checks" in router.grpc_detail()
        # the monitor probed in the background with backoff; the 8 calls did not probe each time
        assert len(checks) <= 3, len(checks)
    finally:
        router.stop()
        srv.close()


@pytest.mark.parametrize("kind", ["is not executable", "does not exist", "is not a file"])
def test_a_bad_grpcd_path_is_an_error_not_replaced(tmp_path, monkeypatch, kind):
    p = tmp_path / "grpcd"
    if kind == "is not executable":
        p.write_bytes(find_grpcd().read_bytes()[:64])
        p.chmod(0o644)
    elif kind == "is not a file":
        p.mkdir()
    monkeypatch.setenv("GRPCD_PATH", str(p))
    with pytest.raises(GrpcdPathError, match=re.escape(f"GRPCD_PATH '{p}' {kind}")):
        find_grpcd()
    m = ServerManager(BackendConfig.from_env())
    with pytest.raises(GrpcdPathError):
        m.start()
    assert m.state == "failed" and kind in m.detail
    m.stop()
    # the router logs it, reports it and falls back to PyO3
    router = BackendRouter(BackendConfig.from_env())
    router.start()
    try:
        assert router.grpc_state() == "failed" and kind in router.grpc_detail()
    finally:
        router.stop()


def test_start_from_a_worker_thread_survives_the_thread():
    m = ServerManager(BackendConfig())
    t = threading.Thread(target=m.start)
    t.start()
    t.join(30)
    try:
        assert m.state == "serving"
        pid = m.pid
        time.sleep(0.5)  # PDEATHSIG would have fired when the worker exited
        assert alive(pid) and m.state == "serving"
        b = GrpcBackend(address=m.address)
        assert b.health() == "SERVING"
        b.close()
        # its own process group: a terminal's Ctrl+C does not reach it
        assert os.getpgid(pid) != os.getpgid(0)
    finally:
        m.stop()


PARENT = textwrap.dedent(
    """
    import signal, time
    from hft_lab.backends import BackendConfig
    from hft_lab.backends.server import ServerManager
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # like an app that handles Ctrl+C itself
    m = ServerManager(BackendConfig())
    m.start()
    print(m.pid, flush=True)
    time.sleep(120)
    """
)


def test_ctrl_c_in_the_terminal_does_not_kill_grpcd_alone():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, start_new_session=True)
    try:
        child = int(parent.stdout.readline())
        os.killpg(parent.pid, signal.SIGINT)  # what the terminal sends to its foreground group
        time.sleep(0.5)
        assert alive(child), "grpcd died on the terminal's SIGINT"
        parent.kill()
        parent.wait()
        assert wait_until(lambda: not alive(child), 10), "grpcd outlived its parent"
    finally:
        parent.kill()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigint_and_sigterm_quit_the_app_cleanly(tmp_path, sig):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path), HOME=str(tmp_path), BACKEND_TYPE="grpc")
    env.pop("GRPC_HOST", None)
    env.pop("GRPC_PORT", None)
    app = subprocess.Popen([sys.executable, "-m", "hft_lab"], stderr=subprocess.PIPE, env=env, text=True, start_new_session=True)
    pid = None
    try:
        deadline = time.monotonic() + 60
        lines = []
        while time.monotonic() < deadline:
            line = app.stderr.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"grpcd serving: pid (\d+)", line)
            if m:
                pid = int(m.group(1))
                break
        assert pid, "".join(lines)
        app.send_signal(sig)  # before or after the event loop starts: both must quit
        _, rest = app.communicate(timeout=20)
        assert app.returncode == 0, rest
        assert f"{signal.Signals(sig).name} received: quitting" in rest
        assert wait_until(lambda: not alive(pid), 10), "grpcd outlived the app"
    finally:
        app.kill()


@pytest.mark.parametrize("details", ["Timeout expired", "Timeout%20expired"])
def test_a_deadline_passed_on_the_server_side_is_a_timeout(details):
    """tonic answers CANCELLED "Timeout expired" when the grpc-timeout passes on its side first; its
    grpc-message can reach grpcio still percent-encoded. Either way it is a timeout (retried on
    PyO3 by the router), not a user's Cancel."""
    import grpc
    from hft_lab.backends.grpc_backend import map_rpc_error

    class _Err(grpc.RpcError):
        def code(self):
            return grpc.StatusCode.CANCELLED

        def details(self):
            return details

        def trailing_metadata(self):
            return ()

    assert isinstance(map_rpc_error(_Err(), "127.0.0.1:1", 4), TimeoutError)
