"""The benchmark (hft_lab.bench.runner): the matrix; extra sections: transport encodings, live stream."""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .config import DEFAULT_SIZES, FAMILIES, BenchConfig, parse_sizes
from .machine import RunContext
from .model import Cell, ProgressEvent, Suite, _cell_line, _unit_time
from .operations import Operation, Reference, operations_for
from .parity import check_parity
from .timing import BenchCancelled, Measurement, _check_cancel, throughput, timeit

# ---------------------------------------------------------------------------------------------
# the matrix
# ---------------------------------------------------------------------------------------------


def plan(cfg: BenchConfig) -> list[tuple[Operation, str]]:
    """(operation, size spec) pairs the configuration asks for (sizes validated)."""
    out = []
    for op in operations_for(cfg.operations):
        for spec in parse_sizes(op.family, cfg.sizes.get(op.family, DEFAULT_SIZES[op.family])):
            out.append((op, spec))
    return out


def _reference_list(op: Operation, cfg: BenchConfig) -> list[Reference]:
    return [r for r in op.references if r.available()] if cfg.references else []


def count_cells(cfg: BenchConfig, backend_names: Iterable[str]) -> int:
    nb = len(list(backend_names))
    return sum(nb + len(_reference_list(op, cfg)) for op, _ in plan(cfg))


def _fill_speedups(group: list[Cell], per_iteration: bool) -> None:
    """For each measured backend cell: other column's p50 / this p50 (per EM iteration for HMM).
    Nothing is derived from a cell whose parity FAILED."""
    for c in group:
        if c.kind != "backend" or not c.valid:
            continue
        for o in group:
            if o is c or not o.valid:
                continue
            c.speedup[o.backend] = _unit_time(o, per_iteration) / _unit_time(c, per_iteration)


def run_matrix(
    cfg: BenchConfig,
    backends: dict,
    suite: Suite,
    progress: Callable[[ProgressEvent], None] | None = None,
    cancel=None,
    ctx: RunContext | None = None,
) -> Suite:
    """Measure every (operation, size) on every backend and reference; cells are appended to
    `suite.cells` as they finish (so a cancelled run keeps what it measured)."""
    own_ctx = ctx is None
    ctx = ctx or RunContext()
    pairs = plan(cfg)
    total = sum(len(backends) + len(_reference_list(op, cfg)) for op, _ in pairs)
    done = [0]

    def emit(cell: Cell, msg: str = "") -> None:
        done[0] += 1
        suite.cells.append(cell)
        if progress:
            progress(ProgressEvent(done[0], total, cell, None, msg or _cell_line(cell)))

    try:
        for op, spec in pairs:
            _check_cancel(cancel)
            payload = op.payload(spec, cfg)
            base: dict[str, Any] = dict(
                op=op.name, family=op.family, size=payload.label, dims=payload.dims, payload_values=payload.values
            )
            par = check_parity(op, backends, payload)
            if par.status == "FAILED":
                print(f"!!! PARITY FAILED for {op.name} {payload.label}: {par.detail}", file=sys.stderr)
            group: list[Cell] = []
            for name, b in backends.items():
                _check_cancel(cancel)
                cell = Cell(**base, backend=name, kind="backend", parity=par.status, parity_detail=par.detail)
                if name in par.unavailable:
                    cell.skipped = "not available"
                    cell.note = par.unavailable[name]
                    cell.parity = "n/a"
                    group.append(cell)
                    emit(cell)
                    continue
                fn: Callable[[], Any] = functools.partial(op.call, b, payload)
                m = timeit(
                    fn,
                    op.name,
                    payload.label,
                    name,
                    calls=cfg.calls,
                    warmup=cfg.warmup,
                    max_seconds=cfg.cell_seconds,
                    min_calls=cfg.min_calls,
                    cancel=cancel,
                )
                _fill_measurement(cell, m)
                if op.per_iteration and name in par.results:
                    cell.extra["iterations"] = int(getattr(par.results[name], "iterations", 0) or 0)
                for c in cfg.concurrency:
                    cell.throughput[int(c)] = throughput(fn, c, cfg.calls, cfg.concurrency_seconds, cancel)
                group.append(cell)
                emit(cell)
            rust = next((par.results[n] for n in par.results), None)
            for ref in _reference_list(op, cfg):
                _check_cancel(cancel)
                cell = Cell(**base, backend=ref.name, kind="reference", parity="n/a", note=ref.note)
                try:
                    fn = ref.make(payload, ctx)
                    out = fn()  # untimed: accuracy (and warm-up)
                except BenchCancelled:
                    raise
                except Exception as e:
                    cell.skipped = f"error: {type(e).__name__}: {e}"
                    group.append(cell)
                    emit(cell)
                    continue
                if ref.accuracy is not None and rust is not None:
                    try:
                        cell.accuracy = ref.accuracy(out, rust, payload)
                    except Exception as e:  # a result without the expected fields
                        cell.accuracy = f"not compared ({type(e).__name__}: {e})"
                if ref.extra is not None:
                    cell.extra.update(ref.extra(out))
                m = timeit(
                    fn,
                    op.name,
                    payload.label,
                    ref.name,
                    calls=cfg.calls,
                    warmup=0,
                    max_seconds=cfg.cell_seconds,
                    min_calls=cfg.reference_min_calls,
                    cancel=cancel,
                )
                _fill_measurement(cell, m)
                st = getattr(fn, "solve_times", None)
                if st:
                    cell.extra["solver_time_us_p50"] = float(np.nanmedian(st) * 1e6)
                group.append(cell)
                emit(cell)
            _fill_speedups(group, op.per_iteration)
    except BenchCancelled:
        suite.cancelled = True
    finally:
        if own_ctx:
            ctx.close()
    return suite


def _fill_measurement(cell: Cell, m: Measurement) -> None:
    cell.calls, cell.failures = m.calls, m.failures
    cell.p50_us, cell.p95_us, cell.p99_us, cell.mean_us, cell.ops_per_s = m.p50_us, m.p95_us, m.p99_us, m.mean_us, m.ops_per_s
    if m.calls == 0:
        cell.note = (cell.note + "; " if cell.note else "") + f"every call failed ({m.failures})"


# ---------------------------------------------------------------------------------------------
# extra sections: transport encodings, live stream
# ---------------------------------------------------------------------------------------------


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


def _bench_transport(suite, backends, cfg, progress, rng, cancel=None):
    """The two array encodings end to end through grpcd (1M values), and their Python costs.
    (Small-call latency against a plain Python grpcio server is the echo operation's reference.)"""
    grpc_b = backends.get("grpc")
    if grpc_b is None or not hasattr(grpc_b, "echo_packed"):
        return
    big = rng.normal(size=1_000_000)
    n_big = 5 if cfg.quick else 20
    suite.add(
        timeit(
            lambda: grpc_b.echo(big), "echo", "1M values", "grpc-bytes", n_big, warmup=2, note="bytes encoding", cancel=cancel
        ),
        progress,
    )
    suite.add(
        timeit(
            lambda: grpc_b.echo_packed(big),
            "echo_packed",
            "1M values",
            "grpc-packed",
            n_big,
            warmup=2,
            note="repeated double encoding",
            cancel=cancel,
        ),
        progress,
    )
    suite.encoding = _encoding_costs()


def _bench_stream(suite, backends, cfg, progress, rng, cancel=None):
    """Live mode throughput: ticks/s through the stream per backend, batched and one tick at a time."""
    x = 100 + np.cumsum(rng.normal(0, 1, 1_000_000 if not cfg.quick else 200_000))
    d = suite.derived
    for name, b in backends.items():
        _check_cancel(cancel)
        if not hasattr(b, "mean_reversion_stream"):
            continue
        # arrays of ticks (batches of 1000)
        with b.mean_reversion_stream(lookback=20, threshold=2.0) as s:
            t0 = time.perf_counter()
            for i in range(0, len(x), 1000):
                s.push_many(x[i : i + 1000])
            el = time.perf_counter() - t0
        d[f"{name}_stream_ticks_per_s_batch1000"] = len(x) / el
        # one tick per call
        n1 = 20_000 if name == "pyo3" else 3_000
        if cfg.quick:
            n1 //= 4
        with b.mean_reversion_stream(lookback=20, threshold=2.0) as s:
            m = timeit(lambda it=iter(x): s.push(next(it)), "stream_one_tick", "1 tick", name, n1, warmup=0, cancel=cancel)
        suite.add(m, progress)
        d[f"{name}_stream_ticks_per_s_one_per_call"] = m.ops_per_s
    # the raw PyO3 incremental object (no dataclass wrapping), fed whole arrays
    if "pyo3" in backends:
        from hft_lab import _rustcore

        raw = _rustcore.MeanReversionStream(20, 2.0)
        t0 = time.perf_counter()
        raw.push_many(x)
        d["pyo3_raw_stream_ticks_per_s_one_array"] = len(x) / (time.perf_counter() - t0)
        raw = _rustcore.MeanReversionStream(20, 2.0)
        m = timeit(
            lambda it=iter(x): raw.push(next(it)),
            "stream_one_tick",
            "1 tick",
            "pyo3-raw",
            20_000 if not cfg.quick else 5_000,
            warmup=0,
            note="_rustcore.MeanReversionStream.push",
            cancel=cancel,
        )
        suite.add(m, progress)


SECTIONS = {
    "transport": _bench_transport,
    "stream": _bench_stream,
}
PARTS = tuple(FAMILIES) + tuple(SECTIONS)  # what --only accepts
