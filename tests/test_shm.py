"""Shared-memory arrays for a grpcd on the same host (issue 16) and the fastwire codec.

- The shared-memory path, the message path and PyO3 give bit-identical results and the same
  error texts.
- Nothing is left in grpcd's directory, and no descriptor stays open in grpcd, after calls, after
  a kill -9 of the client and after a kill -9 of grpcd.
- Refused where it must be: --no-shm, TLS (test_security), an unsafe directory, a symbolic link
  or a name outside the rules, a forged reference without a segment.
"""

from __future__ import annotations

import dataclasses
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
from hft_lab._proto.hftlab.v1 import hftlab_pb2 as pb
from hft_lab.backends import BackendUnavailable, fastwire, shm, wire
from hft_lab.backends.grpc_backend import GrpcBackend
from hft_lab.backends.server import find_grpcd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_faults import stopped

N_SHM = 40_000  # 320 kB of prices: above GrpcBackend.SHM_MIN_BYTES


class Server:
    def __init__(self, *args: str):
        self.proc = subprocess.Popen(
            [str(find_grpcd()), "--port", "0", *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.PIPE
        )
        self.port = json.loads(self.proc.stdout.readline())["port"]
        self.address = f"127.0.0.1:{self.port}"

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def shm_dir(tmp_path):
    return str(tmp_path / "shm")


@pytest.fixture
def server(shm_dir):
    s = Server("--shm-dir", shm_dir)
    yield s
    s.stop()


def backends(address: str) -> tuple[GrpcBackend, GrpcBackend]:
    """(shared memory, message) backends to the same grpcd."""
    a = GrpcBackend(address=address)
    b = GrpcBackend(address=address)
    b._shm = (address, None)  # negotiated: no shared memory
    return a, b


def uses_shm(arr: np.ndarray) -> bool:
    """True if the array is a view of a mapped result segment."""
    import mmap

    base = arr
    while base is not None:
        if isinstance(base, mmap.mmap):
            return True
        base = getattr(base, "base", getattr(base, "obj", None))
    return False


def same(a, b) -> None:
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and x.shape == y.shape, f.name
            assert x.tobytes() == y.tobytes(), f.name  # bit-identical, NaN and -0.0 included
        else:
            assert x == y or (x != x and y != y), f.name


def prices(n: int, seed: int = 0) -> np.ndarray:
    return 100 + np.random.default_rng(seed).standard_normal(n).cumsum() * 0.1


def test_directory_is_private_and_offered(server, shm_dir):
    st_ = os.lstat(shm_dir)
    assert st_.st_mode & 0o777 == 0o700 and st_.st_uid == os.geteuid()
    info = GrpcBackend(address=server.address)._unary("GetInfo", pb.InfoRequest(), pb.InfoResponse)
    assert info.shm_dir == shm_dir and info.uid == os.geteuid()


def test_every_operation_is_bit_identical_on_both_paths_and_pyo3(server, shm_dir, pyo3_backend):
    a, b = backends(server.address)
    p = prices(N_SHM)
    r_shm, r_msg, r_py = (x.calculate_mean_reversion(p, lookback=30) for x in (a, b, pyo3_backend))
    assert a._shm[1] is not None and uses_shm(r_shm.zscore) and not uses_shm(r_msg.zscore)
    r_shm.zscore[0] = r_shm.zscore[0]  # result arrays are ordinary writable arrays
    same(r_shm, r_msg)
    same(r_shm, r_py)
    pos = np.sign(np.sin(np.arange(N_SHM) / 50.0))
    for f in (
        lambda x: x.fit_ou(p),
        lambda x: x.backtest(p, pos, cost_bps=1.0),
        lambda x: x.backtest(p - 100, pos, units="pnl", notional=np.abs(p)),
    ):
        same(f(a), f(b))
        same(f(a), f(pyo3_backend))
    m = np.abs(100 + np.random.default_rng(1).standard_normal((4_000, 12)).cumsum(0))
    for method in ("max_sharpe", "min_variance", "risk_parity"):
        same(a.optimize_portfolio(m, method=method), b.optimize_portfolio(m, method=method))
        same(a.optimize_portfolio(m, method=method), pyo3_backend.optimize_portfolio(m, method=method))
    same(a.calculate_sparse_portfolio(m, method="lasso", target=0), b.calculate_sparse_portfolio(m, method="lasso", target=0))
    same(a.sparse_lambda_path(m, target=0, n_lambdas=5), pyo3_backend.sparse_lambda_path(m, target=0, n_lambdas=5))
    a.close()
    assert os.listdir(shm_dir) == []


def errors(fn, *bs) -> list[tuple[str, str]]:
    out = []
    for b in bs:
        try:
            fn(b)
            out.append(("ok", ""))
        except Exception as e:  # noqa: BLE001 - the type and text are what is compared
            out.append((type(e).__name__, str(e)))
    return out


def test_errors_are_the_same_on_both_paths_and_pyo3(server, shm_dir, pyo3_backend):
    a, b = backends(server.address)
    p = prices(N_SHM)
    bad = p.copy()
    bad[12345] = np.nan
    neg = p.copy()
    neg[7] = -1.0
    cases = [
        lambda x: x.calculate_mean_reversion(bad, lookback=20),
        lambda x: x.calculate_mean_reversion(p, lookback=N_SHM + 1),
        lambda x: x.calculate_mean_reversion(p, lookback=20, threshold=-1.0),
        lambda x: x.backtest(neg, np.zeros(N_SHM)),
        lambda x: x.backtest(p, np.zeros(N_SHM - 1)),
        lambda x: x.optimize_portfolio(np.c_[p, bad], method="max_sharpe"),
    ]
    for case in cases:
        got = errors(case, a, b, pyo3_backend)
        assert got[0][0] != "ok" and got[0] == got[1] == got[2], got
    a.close()
    assert os.listdir(shm_dir) == []


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(min_value=N_SHM - 64, max_value=N_SHM + 64),
    lookback=st.integers(min_value=2, max_value=200),
    nan_at=st.one_of(st.none(), st.integers(min_value=0, max_value=N_SHM - 65)),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_shm_and_message_paths_agree(server, n, lookback, nan_at, seed):
    a, b = backends(server.address)
    x = prices(n, seed) * 10 ** (seed % 7 - 3)
    if nan_at is not None:
        x[nan_at] = np.nan
    ea, eb = errors(lambda be: be.calculate_mean_reversion(x, lookback=lookback), a, b)
    assert ea == eb
    if ea[0] == "ok":
        same(a.calculate_mean_reversion(x, lookback=lookback), b.calculate_mean_reversion(x, lookback=lookback))
    a.close()


def test_files_are_reused_then_removed_and_no_descriptor_leaks(server, shm_dir):
    a, _ = backends(server.address)
    p = prices(N_SHM)
    a.calculate_mean_reversion(p)  # negotiate, warm up
    fds = server.fds()
    kept = a.calculate_mean_reversion(p)  # its arrays keep the first slot busy
    for _ in range(4):
        a.calculate_mean_reversion(p)
    names = os.listdir(shm_dir)
    assert 0 < len(names) <= 2 * shm.Pool.MAX
    assert all(n.startswith(f"{os.getpid()}-") for n in names)
    assert server.fds() == fds  # grpcd closed every segment it opened
    a.close()
    assert os.listdir(shm_dir) == []
    assert float(kept.zscore[-1]) == float(kept.zscore[-1])  # results outlive the files


CLIENT = textwrap.dedent(
    """
    import sys, numpy as np
    from hft_lab.backends.grpc_backend import GrpcBackend
    b = GrpcBackend(address=sys.argv[1])
    x = 100 + np.random.default_rng(0).standard_normal(2_000_000).cumsum() * 0.1
    b.calculate_mean_reversion(x[:50_000])
    print("ready", flush=True)
    while True:
        b.calculate_mean_reversion(x)
    """
)


def test_kill_9_of_the_client_leaves_nothing(server, shm_dir):
    baseline = server.fds()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    c = subprocess.Popen([sys.executable, "-c", CLIENT, server.address], stdout=subprocess.PIPE, env=env)
    try:
        assert c.stdout.readline().strip() == b"ready"
        time.sleep(0.3)  # in the middle of a 2M-price call (writing, computing or reading)
    finally:
        c.send_signal(signal.SIGKILL)
        c.wait(10)
    dead = f"{c.pid}-"
    # grpcd removes a dead client's files after each shared-memory call (and every 30 s)
    a, _ = backends(server.address)
    deadline = time.monotonic() + 20

    def left() -> bool:  # its files, or grpcd's kept mappings of them (their tmpfs pages)
        return any(n.startswith(dead) for n in os.listdir(shm_dir) + sorted(mapped_files(server, shm_dir)))

    while left() and time.monotonic() < deadline:
        a.calculate_mean_reversion(prices(N_SHM))
        time.sleep(0.1)
    assert not left()
    a.close()
    assert os.listdir(shm_dir) == []
    deadline = time.monotonic() + 15  # the killed client's call may still be finishing
    while server.fds() > baseline and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.fds() <= baseline  # no segment (or connection) descriptor left in grpcd


def test_kill_9_of_grpcd_mid_call_leaves_nothing(server, shm_dir):
    a, _ = backends(server.address)
    a.calculate_mean_reversion(prices(N_SHM))  # negotiated
    os.kill(server.proc.pid, signal.SIGSTOP)  # the next call hangs until grpcd is killed
    stopped(server.proc.pid)
    import threading

    out: list = []
    t = threading.Thread(target=lambda: out.append(errors(lambda be: be.calculate_mean_reversion(prices(300_000)), a)))
    t.start()
    want = 300_000 * 8
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(
        n.endswith(".in") and os.path.getsize(os.path.join(shm_dir, n)) == want for n in os.listdir(shm_dir)
    ):
        time.sleep(0.02)
    time.sleep(0.2)  # the request is on its way
    os.kill(server.proc.pid, signal.SIGKILL)
    t.join(30)
    assert out and out[0][0][0] == BackendUnavailable.__name__, out
    assert os.listdir(shm_dir) == []
    a.close()


def test_no_shm_server_offers_none_and_refuses_segments(tmp_path, pyo3_backend):
    s = Server("--no-shm", "--shm-dir", str(tmp_path / "d"))
    try:
        b = GrpcBackend(address=s.address)
        assert b._unary("GetInfo", pb.InfoRequest(), pb.InfoResponse).shm_dir == ""
        p = prices(N_SHM)
        same(b.calculate_mean_reversion(p), pyo3_backend.calculate_mean_reversion(p))
        assert b._shm == (s.address, None)
        ch = grpc.insecure_channel(s.address)
        call = ch.unary_unary("/hftlab.v1.HftLab/Echo")
        name = f"{os.getpid()}-{'0' * 32}"
        with pytest.raises(grpc.RpcError) as e:
            call(b"", metadata=(("x-hftlab-shm", f"in={name}.in;len=0;out={name}.out"),), timeout=10)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "shared-memory" in e.value.details()
        ch.close()
    finally:
        s.stop()


def test_forged_segments_are_refused(server, shm_dir):
    GrpcBackend(address=server.address)._unary("GetInfo", pb.InfoRequest(), pb.InfoResponse)
    ch = grpc.insecure_channel(server.address)
    echo = ch.unary_unary("/hftlab.v1.HftLab/Echo")
    mr = ch.unary_unary("/hftlab.v1.HftLab/MeanReversion")
    name = f"{os.getpid()}-{'a' * 32}"

    def refused(meta: str, call=echo, body=b"") -> str:
        with pytest.raises(grpc.RpcError) as e:
            call(body, metadata=(("x-hftlab-shm", meta),), timeout=10)
        return f"{e.value.code().name}: {e.value.details()}"

    assert "malformed" in refused(f"in=../../etc/passwd;len=0;out={name}.out")
    os.symlink("/etc/passwd", os.path.join(shm_dir, f"{name}.in"))
    open(os.path.join(shm_dir, f"{name}.out"), "wb").close()
    assert refused(f"in={name}.in;len=0;out={name}.out").startswith("FAILED_PRECONDITION: shared-memory arrays: cannot open")
    os.unlink(os.path.join(shm_dir, f"{name}.in"))
    with open(os.path.join(shm_dir, f"{name}.in"), "wb") as f:
        f.write(b"\0" * 16)
    assert "16 bytes, 8 were declared" in refused(f"in={name}.in;len=8;out={name}.out")
    # a reference beyond the segment, and one in a call without segments
    req = fastwire.shm_field_bytes(1, "vector", (4,), 8, 32) + pb.MeanReversionRequest(lookback=2).SerializeToString()
    assert "not whole float64 values inside the 16-byte segment" in refused(f"in={name}.in;len=16;out={name}.out", mr, req)
    with pytest.raises(grpc.RpcError) as e:
        mr(req, timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "without a shared-memory segment" in e.value.details()
    ch.close()


def test_unsafe_directories_are_not_used(tmp_path):
    d = tmp_path / "d"
    d.mkdir(mode=0o700)
    assert shm.usable_dir(str(d), os.geteuid()) == str(d)
    assert shm.usable_dir(str(d), os.geteuid() + 1) is None  # grpcd runs as another user
    os.chmod(d, 0o755)
    assert shm.usable_dir(str(d), os.geteuid()) is None  # others could read the arrays
    os.chmod(d, 0o700)
    (tmp_path / "link").symlink_to(d)
    assert shm.usable_dir(str(tmp_path / "link"), os.geteuid()) is None
    assert shm.usable_dir("", os.geteuid()) is None
    assert shm.usable_dir(str(tmp_path / "missing"), os.geteuid()) is None


# ---- fastwire: the same bytes and values as protobuf ----

floats = st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), max_size=40)


@settings(max_examples=40, deadline=None)
@given(
    prices_=floats, names=st.lists(st.text(max_size=5), max_size=3), rows=st.integers(0, 5), lookback=st.integers(0, 2**32 - 1)
)
def test_fastwire_encodes_what_protobuf_parses(prices_, names, rows, lookback):
    v = np.array(prices_, dtype=np.float64)
    raw = fastwire.encode(pb.MeanReversionRequest(lookback=lookback), dict(prices=v))
    back = pb.MeanReversionRequest.FromString(raw)
    assert back.lookback == lookback and back.prices.data == v.tobytes()
    cols = len(prices_) // rows if rows else 0
    m = v[: rows * cols].reshape(rows, cols)
    raw = fastwire.encode(pb.PortfolioRequest(method="x", asset_names=names), dict(prices=m))
    back = pb.PortfolioRequest.FromString(raw)
    assert (back.prices.rows, back.prices.cols, back.prices.data) == (rows, cols, m.tobytes()) and list(back.asset_names) == names


def walk(raw: bytes, cls):
    """fastwire's field walker (decode() uses it for large messages and shared-memory references)."""
    return fastwire._decode(raw, 0, len(raw), cls)


@settings(max_examples=40, deadline=None)
@given(a=floats, b=floats, sig=st.binary(max_size=20), entries=st.lists(st.integers(0, 2**32 - 1), max_size=10))
def test_fastwire_decodes_what_protobuf_writes(a, b, sig, entries):
    va, vb = np.array(a, dtype=np.float64), np.array(b, dtype=np.float64)
    msg = pb.MeanReversionResponse(
        rolling_mean=pb.Vector(data=va.tobytes()), zscore=pb.Vector(data=vb.tobytes()), signals=sig, entries=entries
    )
    r = walk(msg.SerializeToString(), pb.MeanReversionResponse)
    assert r.rolling_mean.tobytes() == va.tobytes() and r.zscore.tobytes() == vb.tobytes()
    assert wire.arr(r.rolling_std).size == 0 and bytes(r.signals) == sig and list(r.entries) == entries
    k = len(a) // 3
    upd = pb.HmmUpdate(result=pb.HmmResponse(posteriors=pb.Matrix(rows=k, cols=3, data=va[: 3 * k].tobytes()), aic=1.5))
    d = walk(upd.SerializeToString(), pb.HmmUpdate)
    assert d.WhichOneof("kind") == "result" and d.result.aic == 1.5
    assert d.result.posteriors.shape == (k, 3) and d.result.posteriors.tobytes() == va[: 3 * k].tobytes()
    prog = walk(pb.HmmUpdate(progress=pb.HmmProgress(iteration=3)).SerializeToString(), pb.HmmUpdate)
    assert prog.WhichOneof("kind") == "progress" and prog.progress.iteration == 3
    # small messages take protobuf's parser by default: the same values through wire.fields
    plain = wire.fields(fastwire.decode(msg.SerializeToString(), pb.MeanReversionResponse))
    walked = wire.fields(r)
    assert all(np.asarray(plain[k]).tobytes() == np.asarray(walked[k]).tobytes() for k in ("rolling_mean", "zscore", "entries"))
    # a small reply to a shared-memory call without references in it: protobuf's parser too
    if len(msg.SerializeToString()) < fastwire.SMALL:
        assert isinstance(fastwire.decode(msg.SerializeToString(), pb.MeanReversionResponse, shm=True), pb.MeanReversionResponse)


def test_fastwire_rejects_malformed_messages():
    good = pb.MeanReversionResponse(zscore=pb.Vector(data=b"\0" * 16)).SerializeToString()
    for bad in (good[:-1], b"\x1a\x05\x0a\x03abc", b"\x08", b"\x0f"):
        with pytest.raises(ValueError):
            walk(bad, pb.MeanReversionResponse)


# ---- issue 16 (bulk): outputs written straight into the result segment, mapped slots reused ----


def test_outputs_in_the_segment_are_bit_identical_for_every_selection(server, shm_dir, pyo3_backend):
    a, b = backends(server.address)
    p = prices(N_SHM, seed=3)
    for outs in (None, ("zscore", "positions"), ("signals",), ("mean", "std"), ("positions",)):
        r_shm, r_msg, r_py = (x.calculate_mean_reversion(p, lookback=25, outputs=outs) for x in (a, b, pyo3_backend))
        same(r_shm, r_msg)
        same(r_shm, r_py)
        for f in ("rolling_mean", "rolling_std", "zscore", "signals", "positions", "entries", "exits"):
            v = getattr(r_shm, f)
            assert v is None or (uses_shm(v) and not uses_shm(getattr(r_msg, f))), (outs, f)
        assert r_shm.entries.size > 0 and r_shm.entries.dtype == np.int64
        del r_shm
    # no entries at all (a threshold never reached): empty index arrays, as on PyO3
    r_shm, r_py = (x.calculate_mean_reversion(p, threshold=50.0) for x in (a, pyo3_backend))
    assert r_shm.entries.size == 0
    same(r_shm, r_py)
    a.close()
    assert os.listdir(shm_dir) == []


def test_a_reused_slot_gives_right_results_for_other_sizes(server, shm_dir, pyo3_backend):
    a, _ = backends(server.address)
    for n in (N_SHM, 3 * N_SHM, N_SHM // 2 + 7, 2 * N_SHM + 1, N_SHM):  # grows, shrinks, grows
        p = prices(n, seed=n)
        r, ref = a.calculate_mean_reversion(p, lookback=40), pyo3_backend.calculate_mean_reversion(p, lookback=40)
        same(r, ref)
        del r  # frees the slot: the next call reuses the same files and mappings
    assert len(a._shm[1]._slots) == 1
    a.close()
    assert os.listdir(shm_dir) == []


def test_a_slot_is_not_reused_while_any_result_view_lives(server, shm_dir, pyo3_backend):
    a, _ = backends(server.address)
    p, q = prices(N_SHM, seed=1), prices(N_SHM, seed=2)
    kept = a.calculate_mean_reversion(p).positions[100:200]  # a slice of one int8 series only
    want = pyo3_backend.calculate_mean_reversion(p).positions[100:200].copy()
    for _ in range(3):
        a.calculate_mean_reversion(q)  # another slot, reused from call to call
    assert kept.tobytes() == want.tobytes()
    pool = a._shm[1]
    assert len(pool._slots) == 2 and pool._slots[0].busy() and not pool._slots[1].busy()
    del kept
    assert not pool._slots[0].busy()
    a.close()
    assert os.listdir(shm_dir) == []


def test_concurrent_calls_never_share_a_slot(server, shm_dir, pyo3_backend):
    import threading

    a, _ = backends(server.address)
    inputs = [prices(N_SHM + 100 * i, seed=i) for i in range(2)]
    refs = [pyo3_backend.calculate_mean_reversion(x, lookback=20) for x in inputs]
    bad: list = []
    held: list = []

    def work(i: int) -> None:
        for _ in range(6):
            r = a.calculate_mean_reversion(inputs[i], lookback=20)
            try:
                same(r, refs[i])
            except AssertionError as e:
                bad.append(e)
            held.append((i, r.zscore))  # keeps the slot busy: no other call may write into it

    ts = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not bad
    assert len(held) == 12
    for i, z in held:  # every kept result is still its own call's
        assert z.tobytes() == refs[i].zscore.tobytes()
    a.close()
    assert os.listdir(shm_dir) == []


# ---- issue 16 (bulk): grpcd keeps its mappings of a slot's files from call to call ----


def mapped_files(server: Server, shm_dir: str) -> set[str]:
    """Names of the files in `shm_dir` that grpcd has mapped (" (deleted)" once unlinked)."""
    out = set()
    with open(f"/proc/{server.proc.pid}/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith(shm_dir + "/"):
                out.add(parts[5].strip()[len(shm_dir) + 1 :].removesuffix(" (deleted)"))
    return out


def test_mappings_are_kept_between_calls_and_dropped_when_the_files_go(server, shm_dir, pyo3_backend):
    a, _ = backends(server.address)
    p = prices(N_SHM)
    r = a.calculate_mean_reversion(p)
    slot = a._shm[1]._slots[0]
    del r
    # kept after the call: the next call on the same files finds them mapped
    assert mapped_files(server, shm_dir) == {slot.in_name, slot.out_name}
    for n in (N_SHM, 2 * N_SHM, N_SHM):
        q = prices(n, seed=n)
        same(a.calculate_mean_reversion(q, lookback=30), pyo3_backend.calculate_mean_reversion(q, lookback=30))
        pos = np.sign(np.sin(np.arange(n) / 40.0))
        same(a.backtest(q, pos, cost_bps=2.0), pyo3_backend.backtest(q, pos, cost_bps=2.0))  # results in the arena
    assert mapped_files(server, shm_dir) == {slot.in_name, slot.out_name}
    a.close()  # the files are removed: grpcd unmaps them at its next sweep (after shm calls)
    other, _ = backends(server.address)
    other.calculate_mean_reversion(p)
    other_slot = other._shm[1]._slots[0]
    deadline = time.monotonic() + 10
    while mapped_files(server, shm_dir) != {other_slot.in_name, other_slot.out_name} and time.monotonic() < deadline:
        time.sleep(0.25)  # sweeps run at most every 200 ms
        other.calculate_mean_reversion(p)
    assert mapped_files(server, shm_dir) == {other_slot.in_name, other_slot.out_name}
    other.close()
    assert os.listdir(shm_dir) == []


def test_a_file_replaced_under_the_same_name_is_mapped_anew(server, shm_dir, pyo3_backend):
    a, _ = backends(server.address)
    p, q = prices(N_SHM, seed=5), prices(N_SHM, seed=6)
    same(a.calculate_mean_reversion(p), pyo3_backend.calculate_mean_reversion(p))
    slot = a._shm[1]._slots[0]
    old = (os.fstat(slot.in_fd).st_ino, os.fstat(slot.out_fd).st_ino)
    # new files (new inodes) under the same names, as a client that re-created them would have
    for attr, path in (("in_fd", slot.in_path), ("out_fd", slot.out_path)):
        os.unlink(path)
        os.close(getattr(slot, attr))
        setattr(slot, attr, shm._create(path))
    for m in (slot.in_map, slot.out_map):
        if m is not None:
            m.close()
    slot.in_map = slot.out_map = None
    slot.in_ready = slot.out_ready = 0
    assert (os.fstat(slot.in_fd).st_ino, os.fstat(slot.out_fd).st_ino) != old
    for x in (q, p, q):
        same(a.calculate_mean_reversion(x, lookback=33), pyo3_backend.calculate_mean_reversion(x, lookback=33))
    assert a._shm[1]._slots == [slot]
    a.close()
    assert os.listdir(shm_dir) == []


# ---- issue 16 (small calls): a 50-asset portfolio's prices (200 kB) go through shared memory ----


def test_a_50_asset_portfolio_goes_through_shared_memory_bit_identically(server, shm_dir, pyo3_backend):
    from hft_lab.bench.runner.operations import factor_prices

    a, b = backends(server.address)
    m = factor_prices(50, 500, seed=50)
    assert GrpcBackend.SHM_MIN_BYTES <= m.nbytes < 256 << 10  # the size this path was lowered for
    seen: list = []
    orig = a._invoke
    a._invoke = lambda *args, **kw: seen.append(args[4] if len(args) > 4 else kw.get("metadata")) or orig(*args, **kw)
    for method in ("max_sharpe", "min_variance", "risk_parity", "equal_weight"):
        r_shm, r_msg, r_py = (x.optimize_portfolio(m, method=method) for x in (a, b, pyo3_backend))
        same(r_shm, r_msg)
        same(r_shm, r_py)
    same(a.estimate_moments(m, covariance="ledoit_wolf"), pyo3_backend.estimate_moments(m, covariance="ledoit_wolf"))
    same(a.ledoit_wolf(m), b.ledoit_wolf(m))
    # GetInfo (the negotiation), then every call through the segment
    assert len(seen) == 7 and seen[0] is None and all(md and md[0][0] == shm.HEADER for md in seen[1:]), seen
    assert len(a._shm[1]._slots) == 1  # one slot, reused by every call
    # errors: the same type and text on the shared-memory path, the message path and PyO3
    bad = m.copy()
    bad[123, 7] = np.nan
    neg = m.copy()
    neg[5, 3] = -2.0
    for case in (
        lambda x: x.optimize_portfolio(bad, method="max_sharpe"),
        lambda x: x.optimize_portfolio(neg, method="min_variance"),
        lambda x: x.optimize_portfolio(m, method="max_sharpe", parameters=dict(min_weight=0.5)),
        lambda x: x.optimize_portfolio(m, method="no_such_method"),
        lambda x: x.estimate_moments(bad),
    ):
        got = errors(case, a, b, pyo3_backend)
        assert got[0][0] != "ok" and got[0] == got[1] == got[2], got
    same(a.optimize_portfolio(m, method="max_sharpe"), pyo3_backend.optimize_portfolio(m, method="max_sharpe"))  # after errors
    a.close()
    assert os.listdir(shm_dir) == []


def test_a_forged_matrix_shape_is_refused_alike_on_both_paths(server, shm_dir):
    """A Matrix whose rows x cols does not match its values: the same INVALID_ARGUMENT text
    whether the values came in the message or through the segment."""
    a, b = backends(server.address)
    m = 100 + np.random.default_rng(2).standard_normal((400, 50)).cumsum(0) * 0.1
    req = pb.PortfolioRequest(method="max_sharpe")
    pool = a._shm_pool(dict(prices=m))
    slot = pool.acquire()
    try:
        body = slot.body(req, dict(prices=m))
        forged = body.replace(fastwire.varint(400), fastwire.varint(399), 1)  # rows 400 -> 399
        assert forged != body
        method = a._method("OptimizePortfolio", pb.PortfolioRequest, pb.PortfolioResponse, raw=True)
        got_shm = errors(lambda _: a._invoke(method, forged, 10, None, slot.metadata), a)
    finally:
        pool.release(slot, True)
    msg_body = fastwire.encode(req, dict(prices=m)).replace(fastwire.varint(400), fastwire.varint(399), 1)
    got_msg = errors(lambda _: b._invoke(method, msg_body, 10, None), b)
    assert got_shm == got_msg and "prices has 20000 values but its shape is 399 x 50" in got_shm[0][1], (got_shm, got_msg)
    a.close()


def test_a_kept_mapping_is_used_only_for_the_same_private_file(server, shm_dir, pyo3_backend):
    """grpcd finds an input's kept mapping without opening the file (issue 16), through the same
    checks on the name: a hard link, a symbolic link, a wrong size or another file under the name
    is refused or mapped anew exactly as when the file was opened."""
    a, _ = backends(server.address)
    p = prices(N_SHM, seed=3)
    same(a.calculate_mean_reversion(p), pyo3_backend.calculate_mean_reversion(p))
    slot = a._shm[1]._slots[0]
    assert slot.in_name in mapped_files(server, shm_dir)  # kept: the next call takes the fast path
    size = os.path.getsize(slot.in_path)
    ch = grpc.insecure_channel(server.address)
    echo = ch.unary_unary("/hftlab.v1.HftLab/Echo")

    def call(length: int = size) -> str:
        try:
            echo(b"", metadata=((shm.HEADER, f"in={slot.in_name};len={length};out={slot.out_name}"),), timeout=10)
            return "ok"
        except grpc.RpcError as e:
            return f"{e.code().name}: {e.details()}"

    assert call() == "ok"
    assert f"has {size} bytes, {size + 8} were declared" in call(size + 8)
    other = os.path.join(shm_dir, "link")
    os.link(slot.in_path, other)  # two links: not private
    assert "is not a private regular file" in call()
    os.unlink(other)
    assert call() == "ok"
    real = os.path.join(shm_dir, "real")
    os.rename(slot.in_path, real)  # the kept file is now reached through a symbolic link
    os.symlink(real, slot.in_path)
    assert call().startswith("FAILED_PRECONDITION: shared-memory arrays: cannot open")
    os.unlink(slot.in_path)
    os.rename(real, slot.in_path)
    assert call() == "ok"
    ch.close()
    q = prices(N_SHM, seed=4)
    same(a.calculate_mean_reversion(q), pyo3_backend.calculate_mean_reversion(q))
    a.close()
    assert os.listdir(shm_dir) == []
