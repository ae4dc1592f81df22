"""Scale-out: sharded scans and parameter sweeps on an executor (in-process, gRPC or a Ray cluster),
with results identical to the in-process run."""

from .executors import (
    EXECUTOR_KINDS,
    Executor,
    GrpcExecutor,
    InProcessExecutor,
    RayExecutor,
    RunReport,
    ShardInfo,
    make_executor,
    ray_available,
)
from .scan import ScanRun, run_scan
from .sweep import COLUMNS, ParameterGrid, SweepResult, grid_from_text, run_sweep, shard_ranges

__all__ = [
    "COLUMNS",
    "EXECUTOR_KINDS",
    "Executor",
    "GrpcExecutor",
    "InProcessExecutor",
    "ParameterGrid",
    "RayExecutor",
    "RunReport",
    "ScanRun",
    "ShardInfo",
    "SweepResult",
    "grid_from_text",
    "make_executor",
    "ray_available",
    "run_scan",
    "run_sweep",
    "shard_ranges",
]
