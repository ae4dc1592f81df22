"""Remote security and self-protection of grpcd (issue 14): TLS + bearer token, plaintext refused
off loopback, reflection opt-in, every RPC logged, concurrency limit / load shedding / memory
budget, and the client side (GRPC_TLS_CA, GRPC_TOKEN, GRPC_INSECURE, status-bar note)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from hft_lab._proto.hftlab.v1 import hftlab_pb2 as pb
from hft_lab.backends import BackendConfig, BackendType, BackendUnavailable
from hft_lab.backends.grpc_backend import GrpcBackend
from hft_lab.backends.router import BackendRouter
from hft_lab.backends.server import find_grpcd

TOKEN = "s3cret-token-for-tests-0123456789"


def wait_until(pred, timeout=10.0, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


class Grpcd:
    """grpcd run directly (not through the ServerManager), with its stderr collected."""

    def __init__(self, *args: str, env: dict | None = None):
        self.proc = subprocess.Popen(
            [str(find_grpcd()), "--port", "0", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read().decode()
            raise RuntimeError(f"grpcd did not start: {err}")
        self.listening = json.loads(line)
        self.port = self.listening["port"]
        self.address = f"127.0.0.1:{self.port}"
        self.logs: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for raw in iter(self.proc.stderr.readline, b""):
            try:
                self.logs.append(json.loads(raw))
            except ValueError:
                pass

    def stop(self) -> list[dict]:
        """SIGTERM, then the structured log lines it wrote."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)
        return self.logs


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 / localhost, made now with the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ],
        check=True,
        capture_output=True,
    )
    token = d / "token"
    token.write_text(TOKEN + "\n")
    return cert, key, token


@pytest.fixture(scope="module")
def secure_server(tls_files):
    cert, key, token = tls_files
    s = Grpcd("--tls-cert", str(cert), "--tls-key", str(key), "--token-file", str(token))
    yield s
    s.stop()


def secure_config(port: int, cert: Path, token: str | None = TOKEN, **kw) -> BackendConfig:
    return BackendConfig(
        backend_type=BackendType.GRPC,
        grpc_host="127.0.0.1",
        grpc_port=port,
        tls=True,
        tls_ca=str(cert),
        token=token,
        quick_timeout_s=5,
        call_timeout_s=30,
        **kw,
    )


# ---- TLS + token ----


def test_tls_with_the_right_token_gives_the_same_numbers_as_pyo3(secure_server, tls_files, pyo3_backend):
    assert secure_server.listening["tls"] is True and secure_server.listening["auth"] is True
    b = GrpcBackend(secure_config(secure_server.port, tls_files[0]))
    prices = 100 + np.random.default_rng(3).normal(size=500).cumsum()
    r = b.calculate_mean_reversion(prices, lookback=20)
    ref = pyo3_backend.calculate_mean_reversion(prices, lookback=20)
    np.testing.assert_array_equal(r.zscore, ref.zscore)
    assert b.info().server_version
    assert b.security_note()[0] == "tls" and "token" in b.security_note()[1]
    b.close()


@pytest.mark.parametrize(
    "token,message",
    [
        (None, "UNAUTHENTICATED.*missing bearer token.*authorization: Bearer"),
        ("wrong-token-wrong-token-wrong", "UNAUTHENTICATED.*invalid bearer token"),
        (TOKEN[:-1], "UNAUTHENTICATED.*invalid bearer token"),
    ],
)
def test_missing_or_wrong_token_is_unauthenticated(secure_server, tls_files, token, message):
    b = GrpcBackend(secure_config(secure_server.port, tls_files[0], token=token))
    with pytest.raises(PermissionError, match=message):
        b.calculate_mean_reversion(np.arange(50.0), lookback=5)
    with pytest.raises(PermissionError, match=message):
        b.info()
    # health stays open (it says only SERVING / NOT_SERVING): probes work without the token
    assert b.health() == "SERVING"
    b.close()


def test_plaintext_client_cannot_talk_to_the_tls_server(secure_server):
    b = GrpcBackend(BackendConfig(grpc_host="127.0.0.1", grpc_port=secure_server.port, token=TOKEN, quick_timeout_s=3))
    with pytest.raises(BackendUnavailable):
        b.info()
    b.close()


def test_tls_client_rejects_a_certificate_it_does_not_trust(secure_server, tmp_path):
    other = tmp_path / "other.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(tmp_path / "k.pem"),
            "-out",
            str(other),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ],
        check=True,
        capture_output=True,
    )
    b = GrpcBackend(secure_config(secure_server.port, other))
    with pytest.raises(BackendUnavailable):
        b.info()
    b.close()


def test_plaintext_to_a_non_loopback_host_is_refused_and_calls_fall_back():
    cfg = BackendConfig(backend_type=BackendType.GRPC, grpc_host="10.255.255.1", grpc_port=50051)
    b = GrpcBackend(cfg)
    with pytest.raises(BackendUnavailable, match="refusing plaintext gRPC to 10.255.255.1.*GRPC_TLS_CA.*GRPC_INSECURE=1"):
        b.info()
    assert b.security_note()[0] == "refused"
    b.close()
    router = BackendRouter(cfg)
    try:
        assert router.security_note()[0] == "refused"
        out, res = router.call("calculate_mean_reversion", np.arange(40.0) % 6, lookback=5)
        assert res.backend.backend_type == BackendType.PYO3 and res.fallback
        assert "refusing plaintext" in router.grpc_detail()
    finally:
        router.stop()
    # GRPC_INSECURE=1 lifts the refusal (and the status bar says so)
    insecure = GrpcBackend(BackendConfig(grpc_host="10.255.255.1", grpc_port=50051, insecure=True))
    assert insecure.config.plaintext_refusal() is None
    assert insecure.security_note()[0] == "insecure"


def test_security_settings_from_the_environment(tls_files, tmp_path):
    cert, _, token_file = tls_files
    c = BackendConfig.from_env(
        {"GRPC_HOST": "gpu-box.lan", "GRPC_PORT": "50051", "GRPC_TLS_CA": str(cert), "GRPC_TOKEN_FILE": str(token_file)}
    )
    assert c.use_tls and c.tls_ca == str(cert) and c.token == TOKEN and c.plaintext_refusal() is None
    assert TOKEN not in repr(c)
    c = BackendConfig.from_env({"GRPC_HOST": "gpu-box.lan", "GRPC_PORT": "50051", "GRPC_TLS": "1", "GRPC_TOKEN": "abc"})
    assert c.use_tls and c.tls_ca is None and c.token == "abc"
    c = BackendConfig.from_env({"GRPC_HOST": "gpu-box.lan", "GRPC_PORT": "50051"})
    assert "refusing plaintext gRPC to gpu-box.lan" in c.plaintext_refusal()
    assert BackendConfig.from_env({"GRPC_HOST": "gpu-box.lan", "GRPC_INSECURE": "1"}).plaintext_refusal() is None
    assert BackendConfig.from_env({"GRPC_HOST": "127.0.0.2"}).plaintext_refusal() is None  # loopback
    with pytest.raises(ValueError, match="GRPC_TLS_CA must be a PEM certificate file"):
        BackendConfig.from_env({"GRPC_TLS_CA": str(tmp_path / "missing.pem")})
    with pytest.raises(ValueError, match="GRPC_TOKEN_FILE .* cannot be read"):
        BackendConfig.from_env({"GRPC_TOKEN_FILE": str(tmp_path / "missing")})
    # the grpcd the app spawns itself stays plaintext on loopback, without a token
    local = c.local()
    assert not local.use_tls and local.token is None


# ---- grpcd's own rules ----


@pytest.mark.parametrize(
    "args,message",
    [
        ([], "refusing to listen on 0.0.0.0 without TLS .*and a bearer token"),
        (["--tls-cert", "{cert}", "--tls-key", "{key}"], "refusing to listen on 0.0.0.0 without a bearer token"),
        (["--token-file", "{token}"], "refusing to listen on 0.0.0.0 without TLS"),
        (["--tls-cert", "{cert}"], "--tls-cert and --tls-key go together"),
        (["--tls-cert", "{token}", "--tls-key", "{key}"], "is not a PEM certificate"),
        (["--token-file", "{cert}"], "the token must be one word of at least 16 characters"),
    ],
)
def test_grpcd_refuses_a_non_loopback_bind_without_tls_and_token(tls_files, args, message):
    cert, key, token = tls_files
    args = [a.format(cert=cert, key=key, token=token) for a in args]
    p = subprocess.run([str(find_grpcd()), "--host", "0.0.0.0", "--port", "0", *args], capture_output=True, timeout=10)
    assert p.returncode == 1 and p.stdout == b""
    assert message.split(".*")[0] in p.stderr.decode()
    import re

    assert re.search(message, p.stderr.decode()), p.stderr.decode()


def test_grpcd_insecure_flag_allows_it_with_a_warning():
    s = Grpcd("--host", "0.0.0.0", "--insecure")
    logs = s.stop()
    assert s.listening["host"] == "0.0.0.0" and s.listening["tls"] is False
    assert any(r["level"] == "WARN" and r["msg"].startswith("INSECURE: listening on 0.0.0.0") for r in logs)


def test_tls_and_token_on_a_non_loopback_bind_are_accepted(tls_files):
    cert, key, token = tls_files
    s = Grpcd("--host", "0.0.0.0", "--tls-cert", str(cert), "--tls-key", str(key), "--token-file", str(token))
    try:
        b = GrpcBackend(secure_config(s.port, cert))
        assert b.info().pid == s.proc.pid
        b.close()
    finally:
        logs = s.stop()
    assert not any(r["msg"].startswith("INSECURE") for r in logs)


def _list_services(address: str) -> bytes:
    ch = grpc.insecure_channel(address)
    try:
        call = ch.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        # ServerReflectionRequest { list_services = "" } (field 7, string)
        return next(iter(call(iter([b"\x3a\x00"]), timeout=5)))
    finally:
        ch.close()


def test_reflection_is_off_by_default_and_on_with_the_flag():
    s = Grpcd()
    try:
        with pytest.raises(grpc.RpcError) as e:
            _list_services(s.address)
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        s.stop()
    s = Grpcd("--reflection")
    try:
        assert b"hftlab.v1.HftLab" in _list_services(s.address)
    finally:
        s.stop()


# ---- every RPC is logged ----


def test_every_rpc_is_logged_with_its_code_and_time():
    s = Grpcd()
    b = GrpcBackend(BackendConfig(quick_timeout_s=5), address=s.address)
    try:
        b.info()
        b.echo([1.0, 2.0])
        with pytest.raises(ValueError):
            b.calculate_mean_reversion([1.0, float("nan"), 3.0], lookback=2)
        stream = b.mean_reversion_stream(lookback=3)
        stream.push_many([1.0, 2.0])
        with pytest.raises(ValueError):
            stream.push_many([float("nan")])
        stream.close()
        assert b.health() == "SERVING"
    finally:
        b.close()
        logs = s.stop()
    rpcs = [r for r in logs if r.get("msg") == "rpc"]
    seen = {(r["rpc"], r["code"]) for r in rpcs}
    for want in [
        ("GetInfo", "Ok"),
        ("Echo", "Ok"),
        ("MeanReversion", "InvalidArgument"),
        ("grpc.health.v1.Health/Check", "Ok"),
    ]:
        assert want in seen, (want, seen)
    # a rejected batch no longer ends the stream (it recovers, as on PyO3): the call is logged when
    # the client closes it, and the rejected batch on its own line
    assert any(r == "StreamMeanReversion" for r, _ in seen), seen
    assert any(r.get("msg") == "stream batch rejected" and "NaN" in str(r.get("error", "")) for r in logs), logs
    assert all(float(r["ms"]) >= 0 and r["peer"].startswith("127.0.0.1:") for r in rpcs)
    bad = next(r for r in rpcs if r["rpc"] == "MeanReversion")
    assert bad["level"] == "WARN" and "NaN" in bad["error"] and int(bad["req_bytes"]) > 0
    ok = next(r for r in rpcs if r["rpc"] == "Echo")
    assert ok["level"] == "DEBUG"


def test_unauthenticated_calls_are_logged_with_the_peer(tls_files):
    cert, key, token = tls_files
    s = Grpcd("--tls-cert", str(cert), "--tls-key", str(key), "--token-file", str(token))
    b = GrpcBackend(secure_config(s.port, cert, token="not-the-token-not-the-token"))
    with pytest.raises(PermissionError):
        b.info()
    b.close()
    logs = s.stop()
    r = next(r for r in logs if r.get("msg") == "rpc" and r["rpc"] == "GetInfo")
    assert r["code"] == "Unauthenticated" and r["level"] == "WARN" and r["peer"].startswith("127.0.0.1:")
    assert TOKEN not in json.dumps(logs)


# ---- limits: concurrency, load shedding, memory budget ----


def _hold_a_slot(address: str):
    """A long RunHmm (tolerance 0, many iterations) whose first progress message proves it runs."""
    ch = grpc.insecure_channel(address)
    call = ch.unary_stream(
        "/hftlab.v1.HftLab/RunHmm",
        request_serializer=pb.HmmRequest.SerializeToString,
        response_deserializer=pb.HmmUpdate.FromString,
    )
    obs = np.random.default_rng(1).normal(size=20_000)
    it = call(
        pb.HmmRequest(
            observations=pb.Vector(data=obs.astype("<f8").tobytes()), n_states=4, max_iterations=1_000_000, tolerance=0.0
        ),
        timeout=60,
    )
    first = next(it)
    assert first.WhichOneof("kind") == "progress"
    return ch, it


def test_load_shedding_when_every_slot_is_busy_and_fallback_to_pyo3():
    s = Grpcd("--max-concurrent", "1", "--max-queue", "0")
    ch, held = _hold_a_slot(s.address)
    router = BackendRouter(BackendConfig(backend_type=BackendType.GRPC, grpc_host="127.0.0.1", grpc_port=s.port))
    try:
        b = GrpcBackend(BackendConfig(quick_timeout_s=5), address=s.address)
        with pytest.raises(
            BackendUnavailable,
            match=r"grpcd is overloaded: 1 calls running and 0 waiting "
            r"\(--max-concurrent 1, --max-queue 0\); try again later",
        ):
            b.info()
        # health still answers under load (it is not limited)
        assert b.health() == "SERVING"
        # the router retries a shed call on PyO3 (deterministic results)
        out, res = router.call("calculate_mean_reversion", np.arange(60.0) % 7, lookback=5)
        assert res.backend.backend_type == BackendType.PYO3 and res.fallback and "overloaded" in res.note
        held.cancel()
        assert wait_until(lambda: _info_ok(b), 10), "the slot was not freed when the held call was cancelled"
        b.close()
    finally:
        router.stop()
        ch.close()
        logs = s.stop()
    shed = [r for r in logs if r.get("msg") == "rpc" and r["rpc"] == "GetInfo" and r["code"] == "Unavailable"]
    assert shed and "overloaded" in shed[0]["error"]


def _info_ok(b) -> bool:
    try:
        b.info()
        return True
    except BackendUnavailable:
        return False


def test_a_waiting_call_is_served_when_the_slot_frees_and_the_queue_bound_sheds_the_rest():
    s = Grpcd("--max-concurrent", "1", "--max-queue", "1")
    ch, held = _hold_a_slot(s.address)
    b = GrpcBackend(BackendConfig(quick_timeout_s=30), address=s.address)
    try:
        waiting: dict = {}
        t = threading.Thread(target=lambda: waiting.setdefault("info", b.info()))
        t.start()
        assert wait_until(lambda: any(r.get("msg") == "rpc queued" for r in s.logs), 10)
        # the queue (1) is full: the next call is shed at once
        with pytest.raises(BackendUnavailable, match=r"1 calls running and 1 waiting"):
            b._unary("GetInfo", pb.InfoRequest(), pb.InfoResponse, timeout=5)
        assert t.is_alive()  # still queued behind the held call
        held.cancel()
        t.join(20)
        assert waiting["info"].server_version  # served once the slot was free
    finally:
        b.close()
        ch.close()
        s.stop()


def test_a_queued_call_ends_at_its_deadline_as_a_timeout():
    s = Grpcd("--max-concurrent", "1", "--max-queue", "4")
    ch, held = _hold_a_slot(s.address)
    b = GrpcBackend(BackendConfig(), address=s.address)
    try:
        with pytest.raises(TimeoutError, match="did not answer before the deadline"):
            b._unary("GetInfo", pb.InfoRequest(), pb.InfoResponse, timeout=0.3)
    finally:
        held.cancel()
        b.close()
        ch.close()
        s.stop()


def test_a_request_beyond_the_memory_budget_is_resource_exhausted():
    s = Grpcd("--memory-budget-mb", "1")
    b = GrpcBackend(BackendConfig(quick_timeout_s=5), address=s.address)
    try:
        np.testing.assert_array_equal(b.echo(np.arange(1000.0)), np.arange(1000.0))  # 8 kB: fits
        with pytest.raises(
            ValueError,
            match=r"this Echo request is 1\.0 MiB; handling it needs ~4\.0 MiB of server "
            r"memory \(4x the request\), more than grpcd's request-memory budget of "
            r"1\.0 MiB \(--memory-budget-mb\)",
        ):
            b.echo(np.zeros(131_072))
        assert b.health() == "SERVING"
        np.testing.assert_array_equal(b.echo([5.0]), [5.0])  # permits were given back
    finally:
        b.close()
        s.stop()


def test_calls_queued_for_memory_do_not_starve_the_running_one_on_a_shared_connection():
    """Queued calls leave their bodies unread; on one HTTP/2 connection (grpcio shares it) they
    must not use up the connection's flow-control window and block the call that is running."""
    s = Grpcd("--memory-budget-mb", "200")
    b = GrpcBackend(BackendConfig(call_timeout_s=20), address=s.address)
    x = np.arange(5_000_000.0)  # 38 MiB (many flow-control windows): each call reserves 153 of 200 MiB
    out: list = []
    try:
        start = threading.Barrier(3)

        def call():
            start.wait()  # send together, so that two of them queue behind the first
            out.append(b.echo(x))

        ts = [threading.Thread(target=call) for _ in range(3)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(90)
        assert len(out) == 3
        for o in out:
            np.testing.assert_array_equal(o, x)
    finally:
        b.close()
        s.stop()


def test_live_streams_are_capped():
    s = Grpcd("--max-streams", "1")
    b = GrpcBackend(BackendConfig(quick_timeout_s=5), address=s.address)
    try:
        first = b.mean_reversion_stream(lookback=3)
        assert first.push_many([1.0, 2.0, 3.0]).zscore.shape == (3,)
        # the server acknowledges a stream's config when it opens: a refused stream fails right there
        with pytest.raises(BackendUnavailable, match=r"1 live streams are open \(the limit is --max-streams 1\)"):
            b.mean_reversion_stream(lookback=3)
        first.close()
        assert wait_until(lambda: _push_ok(b), 10)  # the closed stream gave its slot back
    finally:
        b.close()
        s.stop()


def _push_ok(b) -> bool:
    try:  # the server frees the closed stream's slot asynchronously: opening may still be refused
        st = b.mean_reversion_stream(lookback=2)
    except BackendUnavailable:
        return False
    try:
        st.push_many([1.0, 2.0])
        return True
    except BackendUnavailable:
        return False
    finally:
        st.close()


@pytest.mark.parametrize(
    "flag,value,message",
    [
        ("--max-concurrent", "0", "--max-concurrent must be a number from 1 to 4096, got '0'"),
        ("--memory-budget-mb", "x", "--memory-budget-mb must be a number from 1"),
        ("--max-streams", "-1", "--max-streams must be a number from 1"),
        ("--io-threads", "0", "--io-threads must be a number from 1 to 256, got '0'"),
        ("--spin-us", "1e9", "--spin-us must be a number from 0 to 100000, got '1e9'"),
        ("--spin-us", "-5", "--spin-us must be a number from 0 to 100000, got '-5'"),
    ],
)
def test_bad_limit_flags_are_clear_errors(flag, value, message):
    p = subprocess.run([str(find_grpcd()), flag, value], capture_output=True, timeout=10)
    assert p.returncode == 2 and message in p.stderr.decode()


# ---- the status bar ----


@pytest.mark.gui
def test_status_bar_shows_a_lock_for_tls_and_a_warning_when_insecure(qtbot, tmp_path, secure_server, tls_files):
    from hft_lab.ui.main_window import MainWindow
    from PySide6.QtCore import QSettings

    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    cases = [
        (secure_config(secure_server.port, tls_files[0]), "\N{LOCK} TLS", "TLS + token to 127.0.0.1"),
        (BackendConfig(grpc_host="10.255.255.1", grpc_port=50051, insecure=True), "insecure", "unencrypted"),
        (BackendConfig(grpc_host="10.255.255.1", grpc_port=50051), "insecure", "refusing plaintext"),
    ]
    for cfg, label, tooltip in cases:
        r = BackendRouter(cfg)
        w = MainWindow(r, settings)
        qtbot.addWidget(w)
        w.refresh_status()
        assert label in w.security_label.text() and tooltip in w.security_label.toolTip()
        w.close()
        r.stop()
    # the app's own grpcd (plaintext on loopback) shows nothing
    r = BackendRouter(BackendConfig(grpc_host="127.0.0.1", grpc_port=secure_server.port))
    assert r.security_note() is None
    r.stop()


def test_tls_server_offers_no_shared_memory(secure_server, tls_files, pyo3_backend):
    """Shared-memory arrays (issue 16) are for a plain loopback connection only: a TLS grpcd does
    not offer them and a TLS client does not ask; bulk results still match PyO3."""
    b = GrpcBackend(secure_config(secure_server.port, tls_files[0]))
    info = b._unary("GetInfo", pb.InfoRequest(), pb.InfoResponse)
    assert info.shm_dir == ""
    x = 100 + np.random.default_rng(3).standard_normal(50_000).cumsum() * 0.1
    r, r0 = b.calculate_mean_reversion(x), pyo3_backend.calculate_mean_reversion(x)
    assert r.zscore.tobytes() == r0.zscore.tobytes()
    assert b._shm is None or b._shm[1] is None  # no shared memory over TLS
    b.close()
