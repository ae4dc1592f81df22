"""Sweep tab's computation (Qt-free): a mean-reversion parameter grid, in and out of sample, on the
executor the user chose (in-process, the app's gRPC server, or a Ray cluster)."""

from __future__ import annotations

from typing import Any

from hft_lab.cluster import GrpcExecutor, InProcessExecutor, RayExecutor, grid_from_text, ray_available, run_sweep
from hft_lab.cluster.executors import Executor

from .context import TaskContext

EXECUTORS = {
    "inprocess": "In-process (PyO3)",
    "grpc": "gRPC server (the app's)",
    "ray": "Ray cluster",
}


def executor_for(kind: str, backend, address: str = "", max_retries: int = 3) -> Executor:
    """The executor of the user's choice; `backend` is the one the app's router picked."""
    if kind == "inprocess":
        return InProcessExecutor()
    if kind == "grpc":
        from hft_lab.backends.grpc_backend import GrpcBackend

        if not isinstance(backend, GrpcBackend):
            raise ValueError(
                "the gRPC executor runs on the app's gRPC server, but the backend in use is "
                f"{backend.name}: choose gRPC in the toolbar's Backend box (or the in-process executor)"
            )
        return GrpcExecutor(backend)
    if kind == "ray":
        ok, why = ray_available()
        if not ok:
            raise ValueError(why)
        return RayExecutor(address.strip() or None, max_retries=max_retries)
    raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {kind!r}")


def sweep(
    backend,
    prices,
    grid: dict[str, str],
    executor: str,
    address: str = "",
    shards: int = 0,
    oos_fraction: float = 0.3,
    periods_per_year: float = 252.0,
    ctx: TaskContext | None = None,
) -> Any:
    """Parse the grid fields, run the sweep on the executor, report (done, total) shards as progress."""
    g = grid_from_text(**grid)
    ex = executor_for(executor, backend, address)
    progress = (lambda done, total: ctx.progress((done, total))) if ctx is not None else None
    return run_sweep(
        prices,
        g,
        ex,
        oos_fraction=oos_fraction,
        periods_per_year=periods_per_year,
        shards=shards or None,
        progress=progress,
        cancel=ctx,
    )
