"""The benchmark (hft_lab.bench.runner): running."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterable

import numpy as np

from .config import FAMILIES, BenchConfig
from .derive import derive
from .machine import RunContext, machine
from .matrix import PARTS, SECTIONS, count_cells, plan, run_matrix
from .model import ProgressEvent, Suite
from .timing import BenchCancelled, _is_cancelled

# ---------------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------------

_RUN_LOCK = threading.Lock()  # two benchmarks in one process would time each other


def run_suite(
    quick: bool = False,
    progress: Callable[[ProgressEvent], None] | None = None,
    only: Iterable[str] | None = None,
    config: BenchConfig | None = None,
    backends: dict | None = None,
    cancel=None,
) -> Suite:
    """Run the matrix and the extra sections. `backends`: {"pyo3": ..., "grpc": ...} (default:
    the PyO3 backend and a grpcd started for the run). `only`: families / sections to run.
    Cancelling (between calls) returns what was measured, with `suite.cancelled` set."""
    cfg = config or (BenchConfig.quick_config() if quick else BenchConfig.full())
    if only:
        only = list(only)
        unknown = [o for o in only if o not in PARTS]
        if unknown:
            raise ValueError(f"unknown section {', '.join(unknown)}; known: {', '.join(PARTS)}")
        ops = [o for o in only if o in FAMILIES]
        if "transport" in only and "echo" not in ops:
            ops.insert(0, "echo")  # the transport comparison (grpcd vs a Python grpcio server) is the echo operation
        cfg = dataclasses.replace(cfg, operations=ops, sections=[o for o in only if o in SECTIONS])
    plan(cfg)  # validate the sizes before starting anything
    if not _RUN_LOCK.acquire(blocking=False):
        if progress:
            progress(ProgressEvent(0, 0, None, None, "waiting for the previous benchmark run to stop…"))
        while not _RUN_LOCK.acquire(timeout=0.2):
            if _is_cancelled(cancel):
                s = Suite(config=cfg.to_dict(), cancelled=True)
                return s
    try:
        if backends is not None:
            return _run(
                cfg, {k: v for k, v in backends.items() if k in cfg.backends or k not in ("pyo3", "grpc")}, progress, cancel
            )
        from hft_lab.backends import BackendConfig
        from hft_lab.backends.grpc_backend import GrpcBackend
        from hft_lab.backends.pyo3_backend import Pyo3Backend
        from hft_lab.backends.server import ServerManager

        bs: dict = {}
        if "pyo3" in cfg.backends:
            bs["pyo3"] = Pyo3Backend()
        if "grpc" in cfg.backends:
            with ServerManager(BackendConfig()) as mgr:
                grpc_b = GrpcBackend(address=mgr.address)
                bs["grpc"] = grpc_b
                try:
                    return _run(cfg, bs, progress, cancel)
                finally:
                    grpc_b.close()
        return _run(cfg, bs, progress, cancel)
    finally:
        _RUN_LOCK.release()


def _run(cfg: BenchConfig, backends: dict, progress, cancel) -> Suite:
    t0 = time.perf_counter()
    suite = Suite(config=cfg.to_dict())
    suite.machine = machine(backends)
    if progress:
        progress(ProgressEvent(0, count_cells(cfg, backends), None, None, "measuring…", machine=dict(suite.machine)))
    rng = np.random.default_rng(cfg.seed)
    ctx = RunContext(backends["grpc"].address if "grpc" in backends else None)
    try:
        run_matrix(cfg, backends, suite, progress, cancel, ctx)
        for name in cfg.sections:
            if suite.cancelled or _is_cancelled(cancel):
                suite.cancelled = True
                break
            try:
                SECTIONS[name](suite, backends, cfg, progress, rng, cancel)
            except BenchCancelled:
                suite.cancelled = True
                break
    finally:
        ctx.close()
    derive(suite)
    try:
        suite.machine["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        pass
    suite.seconds = time.perf_counter() - t0
    return suite
