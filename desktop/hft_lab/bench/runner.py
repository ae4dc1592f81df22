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


def run_suite(quick: bool = False, progress: Callable[[Measurement], None] | None = None, sizes=None) -> Suite:
    """The foundation suite: mean reversion at 1k and 1M prices on both backends vs pandas, small-call
    transport cost vs a plain Python grpcio echo server, and the array encoding measured."""
    import pandas as pd

    from hft_lab.backends import BackendConfig
    from hft_lab.backends.grpc_backend import GrpcBackend
    from hft_lab.backends.pyo3_backend import Pyo3Backend
    from hft_lab.backends.server import ServerManager

    suite = Suite()
    sizes = sizes or {"1k": 1_000, "1M": 1_000_000}
    calls_for = {"1k": 2000 if not quick else 300, "1M": 30 if not quick else 8}
    with ServerManager(BackendConfig()) as mgr:
        grpc_b = GrpcBackend(address=mgr.address)
        backends = {"pyo3": Pyo3Backend(), "grpc": grpc_b}
        rng = np.random.default_rng(42)
        for label, n in sizes.items():
            x = 100 + np.cumsum(rng.normal(0, 1, n))
            calls = calls_for.get(label, 30)
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

        # transport: small echo on grpcd vs a plain Python grpcio server (same payload, same client)
        small = np.arange(16, dtype=np.float64)
        payload = small.tobytes()
        n_small = 300 if quick else 3000
        suite.add(timeit(lambda: grpc_b.echo(small), "echo", "16 values", "grpc", n_small), progress)
        suite.add(timeit(lambda: backends["pyo3"].echo(small), "echo", "16 values", "pyo3", n_small), progress)
        from hft_lab._proto.hftlab.v1 import hftlab_pb2 as pb

        req = pb.EchoRequest(payload=payload).SerializeToString()
        with PythonEchoServer() as py_echo:
            suite.add(timeit(lambda: py_echo.call(req, timeout=5), "echo", "16 values", "python-grpcio", n_small, note="plain grpcio server, separate process"), progress)
        big = rng.normal(size=1_000_000)
        n_big = 5 if quick else 20
        suite.add(timeit(lambda: grpc_b.echo(big), "echo", "1M values", "grpc", n_big, note="bytes encoding"), progress)
        suite.add(timeit(lambda: grpc_b.echo_packed(big), "echo_packed", "1M values", "grpc", n_big, note="repeated double encoding"), progress)
        grpc_b.close()

    suite.encoding = _encoding_costs()
    d = suite.derived

    def ratio(a, b):
        return (a.p50_us / b.p50_us) if a and b else float("nan")

    if "1M" in sizes:
        d["pyo3_1M_speedup_vs_pandas_rolling_std"] = ratio(suite.find("rolling_std", "1M", "pandas"), suite.find("mean_reversion", "1M", "pyo3"))
        d["pyo3_1M_speedup_vs_pandas_zscore"] = ratio(suite.find("mean_reversion", "1M", "pandas"), suite.find("mean_reversion", "1M", "pyo3"))
        d["grpc_1M_over_pyo3_1M"] = ratio(suite.find("mean_reversion", "1M", "grpc"), suite.find("mean_reversion", "1M", "pyo3"))
    if "1k" in sizes:
        d["pyo3_1k_p50_us"] = suite.find("mean_reversion", "1k", "pyo3").p50_us
    d["grpcd_echo_p50_over_python_grpcio_echo_p50"] = ratio(suite.find("echo", "16 values", "grpc"), suite.find("echo", "16 values", "python-grpcio"))
    return suite


TARGETS = [
    ("pyo3_1k_p50_us", "<=", 20.0, "PyO3 1k-price call p50 (µs)"),
    ("pyo3_1M_speedup_vs_pandas_rolling_std", ">=", 5.0, "PyO3 1M vs pandas rolling().std() (×)"),
    ("grpcd_echo_p50_over_python_grpcio_echo_p50", "<", 1.0, "grpcd small call p50 / Python grpcio echo p50"),
    ("grpc_1M_over_pyo3_1M", "<=", 3.0, "gRPC 1M end-to-end / PyO3 1M"),
]


def format_table(suite: Suite) -> str:
    lines = [f"{'op':<16}{'size':<11}{'backend':<15}{'calls':>6}{'fail':>5}{'p50 µs':>12}{'p95 µs':>12}{'p99 µs':>12}{'ops/s':>11}  note"]
    for m in suite.results:
        lines.append(
            f"{m.op:<16}{m.size:<11}{m.backend:<15}{m.calls:>6}{m.failures:>5}{m.p50_us:>12.1f}{m.p95_us:>12.1f}{m.p99_us:>12.1f}{m.ops_per_s:>11.1f}  {m.note}"
        )
    lines.append("")
    lines.append("targets:")
    for key, op, target, label in TARGETS:
        v = suite.derived.get(key)
        if v is None:
            continue
        ok = {"<=": v <= target, ">=": v >= target, "<": v < target}[op]
        lines.append(f"  {'MET ' if ok else 'MISSED'} {label}: {v:.2f} (target {op} {target:g})")
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
