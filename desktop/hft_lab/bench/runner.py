"""Timing primitives and the benchmark suite.

Method: each case is warmed up, then timed call by call with perf_counter_ns; we report
p50/p95/p99 and ops/s of one caller. A call that raises counts as a failure and is not timed as a
success. Ratios compare figures measured in the same run (these machines are noisy).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np


@dataclass
class Measurement:
    op: str
    size: str
    backend: str
    calls: int
    failures: int
    p50_us: float
    p95_us: float
    p99_us: float
    mean_us: float
    ops_per_s: float
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def timeit(
    fn: Callable[[], Any],
    op: str,
    size: str,
    backend: str,
    calls: int = 100,
    warmup: int = 5,
    max_seconds: float = 20.0,
    note: str = "",
) -> Measurement:
    for _ in range(warmup):
        try:
            fn()
        except Exception:
            pass
    times: list[int] = []
    failures = 0
    deadline = time.perf_counter() + max_seconds
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        try:
            fn()
        except Exception:
            failures += 1
        else:
            times.append(time.perf_counter_ns() - t0)
        if time.perf_counter() > deadline and len(times) >= 5:
            break
    if not times:
        return Measurement(op, size, backend, 0, failures, *(float("nan"),) * 4, 0.0, note)
    us = np.asarray(times, dtype=np.float64) / 1e3
    p50, p95, p99 = np.percentile(us, [50, 95, 99])
    return Measurement(op, size, backend, len(times), failures, p50, p95, p99, float(us.mean()), 1e6 / float(us.mean()), note)


def machine() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(), "cores": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import hft_lab

        info["hft_lab"] = hft_lab.__version__
    except Exception:
        pass
    for mod in ("numpy", "pandas", "grpc"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:
            pass
    return info


class PythonEchoServer:
    """The plain grpcio echo server in a child process."""

    def __enter__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hft_lab.bench.echo_server"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        port = int(self.proc.stdout.readline())
        import grpc

        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(self.channel).result(timeout=10)
        self.call = self.channel.unary_unary("/bench.Echo/Echo")  # raw bytes in, raw bytes out
        return self

    def __exit__(self, *exc):
        self.channel.close()
        self.proc.stdin.close()
        self.proc.wait(5)


@dataclass
class Suite:
    results: list[Measurement] = field(default_factory=list)
    derived: dict = field(default_factory=dict)
    encoding: dict = field(default_factory=dict)

    def add(self, m: Measurement, progress=None) -> Measurement:
        self.results.append(m)
        if progress:
            progress(m)
        return m

    def find(self, op, size, backend) -> Measurement | None:
        for m in self.results:
            if (m.op, m.size, m.backend) == (op, size, backend):
                return m
        return None


def _encoding_costs(n: int = 1_000_000, repeat: int = 5) -> dict:
    """Build+serialize and parse costs in Python of 1M float64 as packed `repeated double` vs `bytes`."""
    from hft_lab._proto.hftlab.v1 import hftlab_pb2 as pb

    x = np.random.default_rng(0).normal(size=n)

    def best(fn):
        ts = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return min(ts) * 1e3

    packed = pb.EchoRequest(values=x).SerializeToString()
    raw = pb.EchoRequest(payload=x.tobytes()).SerializeToString()
    return {
        "values": n,
        "packed_serialize_ms": best(lambda: pb.EchoRequest(values=x).SerializeToString()),
        "packed_parse_ms": best(lambda: np.asarray(pb.EchoRequest.FromString(packed).values)),
        "bytes_serialize_ms": best(lambda: pb.EchoRequest(payload=x.tobytes()).SerializeToString()),
        "bytes_parse_ms": best(lambda: np.frombuffer(pb.EchoRequest.FromString(raw).payload, dtype="<f8").copy()),
    }


def _bench_mean_reversion(suite, backends, quick, progress, rng):
    import pandas as pd

    sizes = {"1k": 1_000, "1M": 1_000_000}
    calls_for = {"1k": 2000 if not quick else 300, "1M": 30 if not quick else 8}
    for label, n in sizes.items():
        x = 100 + np.cumsum(rng.normal(0, 1, n))
        calls = calls_for[label]
        ref = backends["pyo3"].calculate_mean_reversion(x, lookback=20)
        for name, b in backends.items():
            r = b.calculate_mean_reversion(x, lookback=20)
            same = np.array_equal(r.zscore, ref.zscore, equal_nan=True) and np.array_equal(r.signals, ref.signals)
            if not same:
                raise AssertionError(f"{name} and pyo3 disagree on mean_reversion {label}: benchmark aborted")
            suite.add(timeit(lambda: b.calculate_mean_reversion(x, lookback=20), "mean_reversion", label, name, calls), progress)
        s = pd.Series(x)

        def pandas_ref():
            m = s.rolling(20).mean()
            sd = s.rolling(20).std()
            return (s - m) / sd

        suite.add(timeit(pandas_ref, "mean_reversion", label, "pandas", calls, note="rolling mean+std, z"), progress)
        suite.add(timeit(lambda: s.rolling(20).std(), "rolling_std", label, "pandas", calls, note="rolling().std() alone"), progress)
    d = suite.derived
    d["pyo3_1M_speedup_vs_pandas_rolling_std"] = _ratio(suite.find("rolling_std", "1M", "pandas"), suite.find("mean_reversion", "1M", "pyo3"))
    d["pyo3_1M_speedup_vs_pandas_zscore"] = _ratio(suite.find("mean_reversion", "1M", "pandas"), suite.find("mean_reversion", "1M", "pyo3"))
    d["grpc_1M_over_pyo3_1M"] = _ratio(suite.find("mean_reversion", "1M", "grpc"), suite.find("mean_reversion", "1M", "pyo3"))
    d["pyo3_1k_p50_us"] = suite.find("mean_reversion", "1k", "pyo3").p50_us


def _bench_transport(suite, backends, quick, progress, rng):
    """Small echo on grpcd vs a plain Python grpcio server (same payload, same client); 1M values
    with both array encodings."""
    from hft_lab._proto.hftlab.v1 import hftlab_pb2 as pb

    grpc_b = backends["grpc"]
    small = np.arange(16, dtype=np.float64)
    n_small = 300 if quick else 3000
    suite.add(timeit(lambda: grpc_b.echo(small), "echo", "16 values", "grpc", n_small), progress)
    suite.add(timeit(lambda: backends["pyo3"].echo(small), "echo", "16 values", "pyo3", n_small), progress)
    req = pb.EchoRequest(payload=small.tobytes()).SerializeToString()
    with PythonEchoServer() as py_echo:
        suite.add(timeit(lambda: py_echo.call(req, timeout=5), "echo", "16 values", "python-grpcio", n_small, note="plain grpcio server, separate process"), progress)
    big = rng.normal(size=1_000_000)
    n_big = 5 if quick else 20
    suite.add(timeit(lambda: grpc_b.echo(big), "echo", "1M values", "grpc", n_big, note="bytes encoding"), progress)
    suite.add(timeit(lambda: grpc_b.echo_packed(big), "echo_packed", "1M values", "grpc", n_big, note="repeated double encoding"), progress)
    suite.derived["grpcd_echo_p50_over_python_grpcio_echo_p50"] = _ratio(suite.find("echo", "16 values", "grpc"), suite.find("echo", "16 values", "python-grpcio"))
    suite.encoding = _encoding_costs()


def _bench_stream(suite, backends, quick, progress, rng):
    """Live mode throughput: ticks/s through the stream per backend, batched and one tick at a time."""
    x = 100 + np.cumsum(rng.normal(0, 1, 1_000_000 if not quick else 200_000))
    d = suite.derived
    for name, b in backends.items():
        # arrays of ticks (batches of 1000)
        with b.mean_reversion_stream(lookback=20, threshold=2.0) as s:
            t0 = time.perf_counter()
            for i in range(0, len(x), 1000):
                s.push_many(x[i : i + 1000])
            el = time.perf_counter() - t0
        d[f"{name}_stream_ticks_per_s_batch1000"] = len(x) / el
        # one tick per call
        n1 = 20_000 if name == "pyo3" else 3_000
        with b.mean_reversion_stream(lookback=20, threshold=2.0) as s:
            m = timeit(lambda it=iter(x): s.push(next(it)), "stream_one_tick", "1 tick", name, n1, warmup=0)
        suite.add(m, progress)
        d[f"{name}_stream_ticks_per_s_one_per_call"] = m.ops_per_s
    # the raw PyO3 incremental object (no dataclass wrapping), fed whole arrays
    from hft_lab import _rustcore

    raw = _rustcore.MeanReversionStream(20, 2.0)
    t0 = time.perf_counter()
    raw.push_many(x)
    d["pyo3_raw_stream_ticks_per_s_one_array"] = len(x) / (time.perf_counter() - t0)
    raw = _rustcore.MeanReversionStream(20, 2.0)
    m = timeit(lambda it=iter(x): raw.push(next(it)), "stream_one_tick", "1 tick", "pyo3-raw", 20_000, warmup=0, note="_rustcore.MeanReversionStream.push")
    suite.add(m, progress)


def _bench_hmm(suite, backends, quick, progress, rng):
    """Baum-Welch per EM iteration at 100k observations x 3 states vs hmmlearn (same data, init, iterations)."""
    from hft_lab.data import regime_switching_returns

    n = 100_000
    x, _ = regime_switching_returns(n, seed=7)
    k, iters = 3, (10 if quick else 20)
    q = np.quantile(x, np.linspace(0, 1, k + 1))
    means = np.array([x[(x >= q[i]) & (x <= q[i + 1])].mean() for i in range(k)])
    trans = np.full((k, k), 0.1 / (k - 1))
    np.fill_diagonal(trans, 0.9)
    init = dict(start_prob=np.full(k, 1 / k), transmat=trans, means=means, variances=np.full(k, x.var()))
    d = suite.derived
    per_iter = {}
    for name, b in backends.items():
        r = b.run_hmm(x, n_states=k, max_iterations=iters, tolerance=0.0, init=init)
        m = timeit(lambda: b.run_hmm(x, n_states=k, max_iterations=iters, tolerance=0.0, init=init), "hmm", f"100k x3, {r.iterations} it", name, 3 if quick else 5, warmup=1)
        suite.add(m, progress)
        per_iter[name] = m.p50_us / r.iterations
    try:
        from hmmlearn.hmm import GaussianHMM
    except ImportError:
        return
    X = x.reshape(-1, 1)
    for impl in ("log", "scaling"):
        def fit():
            h = GaussianHMM(k, covariance_type="diag", n_iter=iters, tol=0.0, covars_prior=0.0, init_params="", params="stmc", implementation=impl)
            h.startprob_ = init["start_prob"]
            h.transmat_ = init["transmat"]
            h.means_ = init["means"].reshape(-1, 1)
            h.covars_ = init["variances"].reshape(-1, 1)
            h.fit(X)
            return h.monitor_.iter

        its = fit()
        m = timeit(fit, "hmm", f"100k x3, {its} it", f"hmmlearn-{impl}", 2 if quick else 3, warmup=0)
        suite.add(m, progress)
        per_iter[f"hmmlearn-{impl}"] = m.p50_us / its
    for name in backends:
        d[f"hmm_{name}_speedup_vs_hmmlearn_log_per_iter"] = per_iter["hmmlearn-log"] / per_iter[name]
        d[f"hmm_{name}_speedup_vs_hmmlearn_scaling_per_iter"] = per_iter["hmmlearn-scaling"] / per_iter[name]


SECTIONS = {
    "mean_reversion": _bench_mean_reversion,
    "transport": _bench_transport,
    "stream": _bench_stream,
    "hmm": _bench_hmm,
}


def _ratio(a, b):
    return (a.p50_us / b.p50_us) if a and b else float("nan")


def run_suite(quick: bool = False, progress: Callable[[Measurement], None] | None = None, only=None) -> Suite:
    """Run the benchmark sections (all, or those named in `only`) on both backends in one run."""
    from hft_lab.backends import BackendConfig
    from hft_lab.backends.grpc_backend import GrpcBackend
    from hft_lab.backends.pyo3_backend import Pyo3Backend
    from hft_lab.backends.server import ServerManager

    suite = Suite()
    rng = np.random.default_rng(42)
    with ServerManager(BackendConfig()) as mgr:
        grpc_b = GrpcBackend(address=mgr.address)
        backends = {"pyo3": Pyo3Backend(), "grpc": grpc_b}
        for name, fn in SECTIONS.items():
            if only and name not in only:
                continue
            fn(suite, backends, quick, progress, rng)
        grpc_b.close()
    return suite


TARGETS = [
    ("pyo3_1k_p50_us", "<=", 20.0, "PyO3 1k-price call p50 (µs)"),
    ("grpc_stream_ticks_per_s_batch1000", ">=", 50_000, "gRPC live stream, batches of 1000 (ticks/s)"),
    ("pyo3_stream_ticks_per_s_batch1000", ">=", 1_000_000, "PyO3 incremental object, arrays of 1000 ticks (ticks/s)"),
    ("hmm_pyo3_speedup_vs_hmmlearn_log_per_iter", ">=", 10.0, "HMM PyO3 per EM iteration vs hmmlearn default (×)"),
    ("hmm_pyo3_speedup_vs_hmmlearn_scaling_per_iter", ">=", 3.0, "HMM PyO3 per EM iteration vs hmmlearn scaling (×)"),
    ("hmm_grpc_speedup_vs_hmmlearn_log_per_iter", ">=", 10.0, "HMM gRPC per EM iteration vs hmmlearn default (×)"),
    ("hmm_grpc_speedup_vs_hmmlearn_scaling_per_iter", ">=", 3.0, "HMM gRPC per EM iteration vs hmmlearn scaling (×)"),
    ("pyo3_1M_speedup_vs_pandas_rolling_std", ">=", 5.0, "PyO3 1M vs pandas rolling().std() (×)"),
    ("grpcd_echo_p50_over_python_grpcio_echo_p50", "<", 1.0, "grpcd small call p50 / Python grpcio echo p50"),
    ("grpc_1M_over_pyo3_1M", "<=", 3.0, "gRPC 1M end-to-end / PyO3 1M"),
]


def format_table(suite: Suite) -> str:
    lines = [f"{'op':<16}{'size':<18}{'backend':<15}{'calls':>6}{'fail':>5}{'p50 µs':>12}{'p95 µs':>12}{'p99 µs':>12}{'ops/s':>11}  note"]
    for m in suite.results:
        lines.append(
            f"{m.op:<16}{m.size:<18}{m.backend:<15}{m.calls:>6}{m.failures:>5}{m.p50_us:>12.1f}{m.p95_us:>12.1f}{m.p99_us:>12.1f}{m.ops_per_s:>11.1f}  {m.note}"
        )
    lines.append("")
    lines.append("targets:")
    for key, op, target, label in TARGETS:
        v = suite.derived.get(key)
        if v is None:
            continue
        ok = {"<=": v <= target, ">=": v >= target, "<": v < target}[op]
        lines.append(f"  {'MET   ' if ok else 'MISSED'} {label}: {v:,.2f} (target {op} {target:,g})")
    others = {k: v for k, v in suite.derived.items() if k not in {t[0] for t in TARGETS}}
    for k, v in others.items():
        lines.append(f"         {k}: {v:,.2f}")
    e = suite.encoding
    if e:
        lines.append("")
        lines.append(
            f"array encoding, 1M float64 in Python: packed repeated double serialize {e['packed_serialize_ms']:.1f} ms / parse "
            f"{e['packed_parse_ms']:.1f} ms; bytes serialize {e['bytes_serialize_ms']:.1f} ms / parse {e['bytes_parse_ms']:.1f} ms"
        )
    return "\n".join(lines)


def to_json(suite: Suite) -> str:
    return json.dumps(
        {
            "machine": machine(),
            "results": [m.to_dict() for m in suite.results],
            "derived": suite.derived,
            "encoding": suite.encoding,
        },
        indent=2,
        default=float,
    )
