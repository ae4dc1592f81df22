"""Hostile input on both backends: a bad-input matrix over every operation (clear errors, the same
text from both backends, no crash, no silently accepted garbage), the memory budget, live streams
that recover after a rejected batch, property-based checks, and a short protobuf fuzz of grpcd."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hft_lab.backends import BackendConfig
from hft_lab.backends.errors import InputTypeError, ResourceLimitExceeded
from hft_lab.backends.grpc_backend import GrpcBackend
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------------------------
# valid baselines
# ---------------------------------------------------------------------------------------------
_g = np.random.default_rng(14)
PRICES = 100 + _g.standard_normal(300).cumsum()
POSITIONS = np.sign(np.sin(np.arange(300) / 7.0)).astype(float)
MATRIX = 100 * np.exp(np.cumsum(0.01 * _g.standard_normal((200, 4)), axis=0))
OBS = np.concatenate([_g.normal(-1, 0.3, 150), _g.normal(1, 0.3, 150)])

# hostile values by kind of argument
BAD_VECTORS = {
    "None": None,
    "float scalar": 3.0,
    "0-d array": np.array(3.0),
    "numpy scalar": np.float64(2.5),
    "string": "1,2,3",
    "numeric strings": np.array(["1", "2", "3"] * 20),
    "bytes": b"\x00\x01",
    "complex": (PRICES + 1j),
    "object with None": [1.0, None, 3.0] * 20,
    "booleans": np.ones(50, dtype=bool),
    "dict": {"a": 1},
    "ragged": [[1.0], [1.0, 2.0]],
    "2-D": np.ones((30, 2)),
    "empty": np.array([]),
    "NaN": np.r_[PRICES[:10], np.nan, PRICES[11:]],
    "inf": np.r_[PRICES[:10], np.inf, PRICES[11:]],
    "datetimes": np.arange(50).astype("datetime64[D]"),
}
BAD_MATRICES = {
    "None": None,
    "scalar": 5.0,
    "1-D": PRICES,
    "3-D": np.ones((10, 4, 2)),
    "complex": MATRIX + 0j,
    "strings": MATRIX.astype(str),
    "object": np.array([[1.0, None]] * 50, dtype=object),
    "empty": np.empty((0, 0)),
    "NaN": np.where(np.arange(MATRIX.size).reshape(MATRIX.shape) == 17, np.nan, MATRIX),
    "single column": MATRIX[:, :1],
    "duplicated column": np.c_[MATRIX, MATRIX[:, 1]],
    "constant column": np.c_[MATRIX, np.full(len(MATRIX), 5.0)],
    "too few rows": MATRIX[:3],
}
BAD_REALS = {"None": None, "string": "2.0", "complex": 1 + 1j, "NaN": math.nan, "inf": math.inf, "list": [1.0], "bool": True}
BAD_INTS = {
    "None": None,
    "negative": -1,
    "fraction": 1.5,
    "string": "5",
    "bool": True,
    "huge": 2**40,
    "NaN": math.nan,
    "complex": 2j,
}
BAD_STRINGS = {"None": None, "int": 5, "unknown": "nope", "empty": ""}


def _no_none(d):
    return {k: v for k, v in d.items() if v is not None}


def _cases():
    """(case id, function of a backend) — every case is invalid input and must raise."""
    cases = []

    def add(op, arg, label, fn):
        cases.append((f"{op}/{arg}={label}", fn))

    # echo
    for lab, v in BAD_VECTORS.items():
        if lab in ("NaN", "inf", "empty"):
            continue  # echo is a transport baseline: any float64 array is fine
        add("echo", "values", lab, lambda b, v=v: b.echo(v))
    # mean reversion
    mr = dict(prices=PRICES, lookback=20, threshold=2.0, exit_threshold=0.0, stop_threshold=None)
    for lab, v in BAD_VECTORS.items():
        add("mean_reversion", "prices", lab, lambda b, v=v: b.calculate_mean_reversion(**{**mr, "prices": v}))
    for lab, v in {**BAD_INTS, "one": 1, "longer than prices": 301}.items():
        add("mean_reversion", "lookback", lab, lambda b, v=v: b.calculate_mean_reversion(**{**mr, "lookback": v}))
    for arg, extra in (
        ("threshold", {"zero": 0.0}),
        ("exit_threshold", {"above entry": 5.0}),
        ("stop_threshold", {"below entry": 1.0}),
    ):
        bad = {**BAD_REALS, **extra}
        if arg == "stop_threshold":
            bad = _no_none(bad)
        for lab, v in bad.items():
            add("mean_reversion", arg, lab, lambda b, a=arg, v=v: b.calculate_mean_reversion(**{**mr, a: v}))
    # live streams: constructor arguments, then batches and single ticks
    for lab, v in {**BAD_INTS, "one": 1, "2^31-1 (over the budget)": 2**31 - 1}.items():
        add("stream", "lookback", lab, lambda b, v=v: b.mean_reversion_stream(lookback=v))
    for lab, v in {**BAD_REALS, "zero": 0.0}.items():
        add("stream", "threshold", lab, lambda b, v=v: b.mean_reversion_stream(lookback=5, threshold=v))
    for lab, v in BAD_VECTORS.items():
        if lab == "empty":
            continue  # an empty batch is a valid no-op
        add("stream.push_many", "prices", lab, lambda b, v=v: _push(b, v))
    for lab, v in BAD_REALS.items():
        add("stream.push", "price", lab, lambda b, v=v: _push_one(b, v))
    # OU
    for lab, v in BAD_VECTORS.items():
        add("fit_ou", "series", lab, lambda b, v=v: b.fit_ou(v))
    for arg in ("dt", "bars_per_day"):
        for lab, v in {**BAD_REALS, "negative": -1.0}.items():
            add("fit_ou", arg, lab, lambda b, a=arg, v=v: b.fit_ou(PRICES, **{a: v}))
    # backtest
    for arg in ("prices", "positions"):
        for lab, v in BAD_VECTORS.items():
            kw = dict(prices=PRICES, positions=POSITIONS)
            kw[arg] = v
            add("backtest", arg, lab, lambda b, kw=kw: b.backtest(**kw))
    add("backtest", "positions", "length mismatch", lambda b: b.backtest(PRICES, POSITIONS[:-1]))
    add("backtest", "positions", "0.5", lambda b: b.backtest(PRICES, np.full(300, 0.5)))
    add("backtest", "prices", "negative", lambda b: b.backtest(-PRICES, POSITIONS))
    for arg in ("cost_bps", "periods_per_year"):
        for lab, v in {**BAD_REALS, "negative": -1.0}.items():
            add("backtest", arg, lab, lambda b, a=arg, v=v: b.backtest(PRICES, POSITIONS, **{a: v}))
    # HMM
    for lab, v in BAD_VECTORS.items():
        add("run_hmm", "observations", lab, lambda b, v=v: b.run_hmm(v, n_states=2))
    for arg, extra in (
        ("n_states", {"zero": 0, "too many": 1000}),
        ("max_iterations", {"zero": 0}),
        ("n_restarts", {"too many": 10**6}),
        ("seed", {}),
    ):
        # n_restarts=None is the documented default start (quantile start + seeded restarts)
        bad = _no_none(BAD_INTS) if arg == "n_restarts" else BAD_INTS
        for lab, v in {**bad, **extra}.items():
            add("run_hmm", arg, lab, lambda b, a=arg, v=v: b.run_hmm(OBS, **{"n_states": 2, a: v}))
    for lab, v in {**_no_none(BAD_REALS), "negative": -1.0}.items():
        add("run_hmm", "tolerance", lab, lambda b, v=v: b.run_hmm(OBS, n_states=2, tolerance=v))
    good_init = dict(start_prob=[0.5, 0.5], transmat=[[0.9, 0.1], [0.1, 0.9]], means=[-1.0, 1.0], variances=[0.1, 0.1])
    for lab, init in {
        "string": "abc",
        "missing key": {"start_prob": [0.5, 0.5]},
        "wrong length": {**good_init, "means": [0.0]},
        "NaN": {**good_init, "variances": [math.nan, 1.0]},
        "None entry": {**good_init, "transmat": None},
        "string entry": {**good_init, "means": "ab"},
        "not summing to 1": {**good_init, "start_prob": [0.5, 0.6]},
    }.items():
        add("run_hmm", "init", lab, lambda b, i=init: b.run_hmm(OBS, n_states=2, init=i))
    # portfolio
    for lab, v in {**BAD_MATRICES, "negative": -MATRIX}.items():
        if lab in ("duplicated column", "constant column"):
            continue  # valid for a portfolio (the optimiser copes)
        add("optimize_portfolio", "prices", lab, lambda b, v=v: b.optimize_portfolio(v, "min_variance"))
    for lab, v in BAD_STRINGS.items():
        add("optimize_portfolio", "method", lab, lambda b, v=v: b.optimize_portfolio(MATRIX, v))
    for lab, params in {
        "not a dict": [1, 2],
        "unknown key": {"nope": 1},
        "min_weight string": {"min_weight": "a"},
        "max_weight NaN": {"max_weight": math.nan},
        "returns int": {"returns": 5},
        "covariance unknown": {"covariance": "x"},
        "frontier_points 1": {"frontier_points": 1},
        "frontier_points huge": {"frontier_points": 2**40},
        "risk_budgets string": {"risk_budgets": "abc"},
        "risk_budgets scalar": {"risk_budgets": 1.0},
        "risk_budgets negative": {"risk_budgets": [1, -1, 1, 1]},
        "infeasible bounds": {"min_weight": 0.5},
    }.items():
        method = "risk_parity" if "risk_budgets" in lab else "min_variance"
        add("optimize_portfolio", "parameters", lab, lambda b, p=params, m=method: b.optimize_portfolio(MATRIX, m, p))
    add(
        "optimize_portfolio",
        "asset_names",
        "wrong count",
        lambda b: b.optimize_portfolio(MATRIX, "min_variance", asset_names=["a"]),
    )
    # sparse
    for lab, v in BAD_MATRICES.items():
        add("sparse", "prices", lab, lambda b, v=v: b.calculate_sparse_portfolio(v, target=0))
    for lab, v in BAD_STRINGS.items():
        add("sparse", "method", lab, lambda b, v=v: b.calculate_sparse_portfolio(MATRIX, v, target=0))
    for arg, extra in (("lambda_param", {"negative": -1.0}), ("alpha", {"above 1": 1.5}), ("tolerance", {"zero": 0.0})):
        for lab, v in {**BAD_REALS, **extra}.items():
            add("sparse", arg, lab, lambda b, a=arg, v=v: b.calculate_sparse_portfolio(MATRIX, "elastic_net", target=0, **{a: v}))
    for arg, extra in (
        ("target", {"out of range": 99, "unknown name": "zzz"}),
        ("k", {"one": 1, "too big": 9}),
        ("max_iterations", {"zero": 0}),
    ):
        bad = {**BAD_INTS, **extra}
        if arg in ("target", "k"):
            bad = _no_none(bad)
        method = "greedy" if arg == "k" else "lasso"
        for lab, v in bad.items():
            kw = {"target": 0, "k": 2, arg: v}
            add("sparse", arg, lab, lambda b, kw=kw, m=method: b.calculate_sparse_portfolio(MATRIX, m, **kw))
    # lambda path
    for lab, v in BAD_MATRICES.items():
        add("lambda_path", "prices", lab, lambda b, v=v: b.sparse_lambda_path(v))
    for lab, v in {
        "string": "abc",
        "scalar": 0.1,
        "NaN": [math.nan],
        "negative": [-1.0],
        "empty": [],
        "complex": [1j],
        "None inside": [0.1, None],
        "too many": np.full(1001, 0.1),
    }.items():
        add("lambda_path", "lambdas", lab, lambda b, v=v: b.sparse_lambda_path(MATRIX, lambdas=v))
    for arg, extra in (
        ("target", {"out of range": 99}),
        ("n_lambdas", {"zero": 0, "too many": 1001}),
        ("max_iterations", {"zero": 0}),
    ):
        bad = _no_none(BAD_INTS) if arg == "target" else BAD_INTS
        for lab, v in {**bad, **extra}.items():
            add("lambda_path", arg, lab, lambda b, a=arg, v=v: b.sparse_lambda_path(MATRIX, **{a: v}))
    for arg, extra in (("alpha", {"above 1": 1.5, "zero (no lambda_max)": 0.0}), ("tolerance", {"zero": 0.0})):
        for lab, v in {**BAD_REALS, **extra}.items():
            add("lambda_path", arg, lab, lambda b, a=arg, v=v: b.sparse_lambda_path(MATRIX, **{a: v}))
    return cases


def _push(b, v):
    with b.mean_reversion_stream(lookback=5) as s:
        s.push_many(PRICES[:20])
        try:
            s.push_many(v)
        finally:
            # the stream goes on after a rejected batch, from where it was
            r = s.push_many(PRICES[20:30])
            assert r.first_tick == 20 and np.isfinite(r.zscore).all()


def _push_one(b, v):
    with b.mean_reversion_stream(lookback=5) as s:
        s.push_many(PRICES[:20])
        try:
            s.push(v)
        finally:
            r = s.push(PRICES[20])
            assert r.first_tick == 20


CASES = _cases()


def _outcome(b, fn):
    try:
        fn(b)
    except (ValueError, TypeError) as e:
        return type(e).__name__, str(e)
    return "accepted", ""


@pytest.fixture(scope="module")
def matrix_outcomes(backends):
    grpc = backends["grpc"]
    pid = grpc.info().pid
    out = {name: {cid: _outcome(b, fn) for cid, fn in CASES} for name, b in backends.items()}
    out["grpc_pid_before"] = pid
    return out


def test_matrix_every_bad_input_is_a_clear_error_on_both_backends(matrix_outcomes):
    for name in ("pyo3", "grpc"):
        res = matrix_outcomes[name]
        accepted = [cid for cid, (kind, _) in res.items() if kind == "accepted"]
        assert not accepted, f"{name} silently accepted: {accepted}"
        vague = [cid for cid, (_, msg) in res.items() if len(msg) < 8]
        assert not vague, f"{name}: errors without a useful message: {vague}"
    assert len(CASES) > 300


def test_matrix_errors_are_identical_on_both_backends(matrix_outcomes):
    diff = {
        cid: (matrix_outcomes["pyo3"][cid], matrix_outcomes["grpc"][cid])
        for cid, _ in CASES
        if matrix_outcomes["pyo3"][cid] != matrix_outcomes["grpc"][cid]
    }
    assert not diff, diff


def test_matrix_leaves_the_server_up(matrix_outcomes, grpc_backend):
    assert grpc_backend.health() == "SERVING"
    assert grpc_backend.info().pid == matrix_outcomes["grpc_pid_before"]  # not restarted: never crashed


def test_type_errors_name_the_argument(backend):
    with pytest.raises(TypeError, match="values is None"):
        backend.echo(None)
    with pytest.raises(InputTypeError, match="prices must hold real numbers, got complex"):
        backend.calculate_mean_reversion(PRICES + 1j)
    with pytest.raises(ValueError, match="lookback must be an integer, got str"):
        backend.calculate_mean_reversion(PRICES, lookback="20")
    with pytest.raises(ValueError, match=r"prices must be a 1-D array, got shape \(2, 3\)"):
        with backend.mean_reversion_stream(5) as s:
            s.push_many(np.ones((2, 3)))
    # integers are real numbers: accepted and converted
    assert backend.echo(np.arange(5)).dtype == np.float64


# ---------------------------------------------------------------------------------------------
# memory budget
# ---------------------------------------------------------------------------------------------
WIDE = 100 + np.random.default_rng(3).standard_normal((10, 60000)).cumsum(0)  # 4.8 MB


@pytest.mark.parametrize("call", ["sparse", "path", "stream"])
def test_budget_errors_name_the_need_with_the_same_text(backends, call):
    fns = {
        "sparse": lambda b: b.calculate_sparse_portfolio(WIDE, target=0),
        "path": lambda b: b.sparse_lambda_path(WIDE),
        "stream": lambda b: b.mean_reversion_stream(lookback=2**31 - 1),
    }
    msgs = {}
    for name, b in backends.items():
        with pytest.raises(ResourceLimitExceeded) as e:
            fns[call](b)
        msgs[name] = str(e.value)
    assert msgs["pyo3"] == msgs["grpc"]
    what = {
        "sparse": "this lasso needs ~32.4 GB for a 60000 × 60000 Gram matrix (10 × 60000 prices)",
        "path": "this lambda path needs ~32.4 GB for a 60000 × 60000 Gram matrix",
        "stream": "this live stream needs ~17.2 GB for a 2147483647-price rolling window",
    }[call]
    assert msgs["pyo3"].startswith(what), msgs["pyo3"]
    assert "the memory limit is" in msgs["pyo3"]
    assert backends["grpc"].health() == "SERVING"


def test_budget_is_configurable_on_both_backends(tmp_path):
    """HFT_LAB_MEMORY_LIMIT for the PyO3 backend (here via set_memory_limit, which re-reads it)
    and grpcd's --memory-limit: a 64 MiB budget refuses an HMM that needs ~100 MB, both alike."""
    from hft_lab import _rustcore
    from hft_lab.backends.pyo3_backend import Pyo3Backend

    obs = np.random.default_rng(0).standard_normal(300_000)
    old = _rustcore.memory_limit()
    try:
        assert _rustcore.set_memory_limit("64M") == 64 << 20
        with pytest.raises(ResourceLimitExceeded, match="the memory limit is 67.1 MB") as e1:
            Pyo3Backend().run_hmm(obs, n_states=10, max_iterations=1)
        with pytest.raises(ValueError, match="memory limit must be a size like 8G"):
            _rustcore.set_memory_limit("lots")
    finally:
        _rustcore.set_memory_limit(old)
    proc = subprocess.Popen(
        [str(ROOT / "target/release/grpcd"), "--port", "0", "--memory-limit", "64M"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        import json

        port = json.loads(proc.stdout.readline())["port"]
        g = GrpcBackend(BackendConfig(call_timeout_s=60), address=f"127.0.0.1:{port}")
        with pytest.raises(ResourceLimitExceeded) as e2:
            g.run_hmm(obs, n_states=10, max_iterations=1)
        assert str(e2.value) == str(e1.value)
        assert "this HMM needs ~" in str(e2.value) and "300000 × 10 forward-backward tables" in str(e2.value)
        # a small request still works on the same server
        assert g.run_hmm(OBS, n_states=2, max_iterations=5).means.shape == (2,)
        g.close()
    finally:
        proc.terminate()
        proc.wait(10)
    bad = subprocess.run(
        [str(ROOT / "target/release/grpcd"), "--memory-limit", "lots"], capture_output=True, text=True, timeout=10
    )
    assert bad.returncode == 2 and "--memory-limit" in bad.stderr


def test_invalid_memory_variable_makes_pyo3_unavailable_with_the_reason():
    code = (
        "from hft_lab.backends.pyo3_backend import Pyo3Backend\n"
        "b = Pyo3Backend(); print(b.is_available())\n"
        "try:\n    b.echo([1.0])\nexcept Exception as e:\n    print(type(e).__name__, e)\n"
    )
    env = {**__import__("os").environ, "HFT_LAB_MEMORY_LIMIT": "lots"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert "False" in r.stdout and "HFT_LAB_MEMORY_LIMIT" in r.stdout, r.stdout + r.stderr


def test_size_parity_both_backends_refuse_results_beyond_the_message_limit(pyo3_backend, grpc_manager):
    """Both backends apply the same message limit (1 MiB here, 512 MiB by default) and refuse with
    the same text before any work (21M prices -> 546 MB result at the default limit)."""
    from hft_lab.backends.pyo3_backend import Pyo3Backend

    cfg = BackendConfig(max_message_mb=1)
    g = GrpcBackend(cfg, address=lambda: grpc_manager.address)
    p = Pyo3Backend()
    p.config = cfg
    x = 100 + np.random.default_rng(0).standard_normal(60_000).cumsum()  # 480 kB in, 1.56 MB out
    msgs = []
    for b in (p, g):
        with pytest.raises(ResourceLimitExceeded) as e:
            b.calculate_mean_reversion(x)
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1]
    assert msgs[0].startswith("this mean reversion result would be ~1.6 MB (60000 prices, 26 bytes each), beyond the 1 MiB")
    assert g.calculate_mean_reversion(x[:30_000]).zscore.shape == (30_000,)
    g.close()


# ---------------------------------------------------------------------------------------------
# streams recover after a rejected batch; undecodable protobuf
# ---------------------------------------------------------------------------------------------
def test_streams_recover_after_a_rejected_batch(backend):
    ref = backend.calculate_mean_reversion(PRICES[:40], lookback=5)
    with backend.mean_reversion_stream(lookback=5) as s:
        a = s.push_many(PRICES[:20])
        for bad in ([1.0, 2.0, 3.0, np.nan], [np.inf]):
            with pytest.raises(ValueError, match="ticks contains"):
                s.push_many(bad)
        b = s.push_many(PRICES[20:40])
    assert b.first_tick == 20
    np.testing.assert_array_equal(np.r_[a.zscore, b.zscore], ref.zscore)


def test_undecodable_protobuf_is_invalid_argument(grpc_manager):
    import grpc

    with grpc.insecure_channel(grpc_manager.address) as ch:
        for rpc in ("MeanReversion", "SparsePortfolio", "Echo"):
            call = ch.unary_unary(f"/hftlab.v1.HftLab/{rpc}", request_serializer=lambda b: b, response_deserializer=lambda b: b)
            with pytest.raises(grpc.RpcError) as e:
                call(b"\x0a\xff\xff\xff\xff\x0f", timeout=5)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (rpc, e.value.details())
            assert "is not a valid" in e.value.details() and "protobuf message" in e.value.details()


# ---------------------------------------------------------------------------------------------
# property-based
# ---------------------------------------------------------------------------------------------
_dtypes = st.sampled_from([np.float64, np.float32, np.int64, np.uint8, np.complex128, np.bool_, object, "U3"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_array_is_either_the_same_result_or_the_same_error(backends, data):
    """Random shapes and dtypes, floats with NaN/inf: both backends agree exactly (same arrays or
    the same error text), nothing crashes, and non-real input is always refused."""
    dtype = data.draw(_dtypes)
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=40))
    if dtype in (np.float64, np.float32):
        w = 32 if dtype == np.float32 else 64
        elems = st.one_of(st.floats(-1e6, 1e6, width=w), st.sampled_from([math.nan, math.inf, -math.inf]))
        x = data.draw(hnp.arrays(dtype, shape, elements=elems))
    elif dtype is object:
        x = np.array(
            data.draw(st.lists(st.one_of(st.none(), st.floats(0, 1), st.text(max_size=2)), min_size=1, max_size=20)), dtype=object
        )
    else:  # built from a drawn seed: hypothesis' own element strategies are slow for these dtypes
        g = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
        v = 100 + g.standard_normal(shape).cumsum(axis=-1) if len(shape) else np.float64(g.standard_normal())
        x = (
            (v + 1j * v)
            if dtype == np.complex128
            else (np.asarray(v) > 100)
            if dtype == np.bool_
            else np.asarray(v).astype(dtype)
        )
    lookback = data.draw(st.integers(2, 12))
    results = {}
    for name, b in backends.items():
        try:
            r = b.calculate_mean_reversion(x, lookback=lookback)
            results[name] = ("ok", r.zscore.tobytes(), r.signals.tobytes(), tuple(r.entries))
        except (ValueError, TypeError) as e:
            results[name] = (type(e).__name__, str(e))
    assert results["pyo3"] == results["grpc"]
    real = np.asarray(x).dtype.kind in "iuf"
    if not real:
        assert results["pyo3"][0] == "InputTypeError"
    if results["pyo3"][0] == "ok":
        assert np.asarray(x).ndim == 1 and np.isfinite(np.asarray(x, dtype=float)).all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batches=st.lists(
        st.lists(st.one_of(st.floats(90, 110), st.just(math.nan), st.just(math.inf)), max_size=8), min_size=1, max_size=8
    )
)
def test_stream_batches_property(backends, batches):
    """Any sequence of good and bad batches: bad ones are refused with the same text, good ones
    continue the stream; both backends give the same ticks as the batch call on the good data."""
    outs = {}
    for name, b in backends.items():
        got, errors = [], []
        with b.mean_reversion_stream(lookback=3) as s:
            for batch in batches:
                try:
                    got.append(s.push_many(batch).zscore)
                except ValueError as e:
                    errors.append(str(e))
        outs[name] = (np.concatenate(got).tobytes() if got else b"", errors)
        good = [x for batch in batches if all(math.isfinite(v) for v in batch) for x in batch]
        assert len(errors) == sum(1 for batch in batches if not all(math.isfinite(v) for v in batch))
        assert len(outs[name][0]) == 8 * len(good)
    assert outs["pyo3"] == outs["grpc"]


# ---------------------------------------------------------------------------------------------
# fuzz (the 60 s version is `make fuzz`)
# ---------------------------------------------------------------------------------------------
def test_short_protobuf_fuzz_gives_no_crash():
    sys.path.insert(0, str(ROOT / "tools"))
    import fuzz_grpc

    s = fuzz_grpc.run(seconds=4, seed=20261201, memory_limit="1G", log=lambda *_: None)
    assert s["requests"] > 200
    assert s["crashes"] == 0, s["crash_details"]
    assert s["internal_errors"] == 0, s["internal_details"]
    assert s["healthy_after"]
    assert set(s["per_rpc"]) == {m.name for m in fuzz_grpc.SERVICE.methods}


def test_a_cancelled_token_stops_ou_and_backtest_on_both_backends(backend):
    from hft_lab.backends import Cancelled, CancelToken

    tok = CancelToken()
    tok.cancel()
    with pytest.raises(Cancelled):
        backend.fit_ou(PRICES, cancel=tok)
    with pytest.raises(Cancelled):
        backend.backtest(PRICES, POSITIONS, cancel=tok)
    assert backend.fit_ou(PRICES).n == 300  # without the token it runs


def test_stream_windows_stay_reserved_while_the_streams_live():
    """Two streams with 40 MB windows under a 64 MiB budget: the second is refused while the first
    lives (same text on both backends), and accepted once the first is closed."""
    import json
    import time

    from hft_lab import _rustcore
    from hft_lab.backends.pyo3_backend import Pyo3Backend

    lb = 5_000_000
    old = _rustcore.memory_limit()
    proc = subprocess.Popen(
        [str(ROOT / "target/release/grpcd"), "--port", "0", "--memory-limit", "64M"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        _rustcore.set_memory_limit("64M")
        port = json.loads(proc.stdout.readline())["port"]
        g = GrpcBackend(BackendConfig(call_timeout_s=30), address=f"127.0.0.1:{port}")
        msgs = []
        for b in (Pyo3Backend(), g):
            first = b.mean_reversion_stream(lookback=lb)
            with pytest.raises(ResourceLimitExceeded) as e:
                b.mean_reversion_stream(lookback=lb)
            msgs.append(str(e.value))
            first.close()
            del first
            for _ in range(100):  # the server releases the window when it sees the call end
                try:
                    b.mean_reversion_stream(lookback=lb).close()
                    break
                except ResourceLimitExceeded:
                    time.sleep(0.02)
            else:
                pytest.fail(f"{b.name}: the window was not released after close()")
        assert msgs[0] == msgs[1]
        assert (
            "this live stream needs ~40.0 MB for a 5000000-price rolling window; "
            "the memory limit is 67.1 MB and 40.0 MB is held by other running calls" in msgs[0]
        )
        g.close()
    finally:
        _rustcore.set_memory_limit(old)
        proc.terminate()
        proc.wait(10)
