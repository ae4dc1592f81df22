"""The benchmark (hft_lab.bench.runner): results."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from .timing import Measurement

# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------


@dataclass
class Cell:
    op: str
    family: str
    size: str  # label
    dims: tuple
    payload_values: int
    backend: str
    kind: str  # "backend" | "reference"
    parity: str = ""
    parity_detail: str = ""
    skipped: str = ""  # reason when not measured
    calls: int = 0
    failures: int = 0
    p50_us: float = float("nan")
    p95_us: float = float("nan")
    p99_us: float = float("nan")
    mean_us: float = float("nan")
    ops_per_s: float = 0.0
    throughput: dict = field(default_factory=dict)  # {concurrency: {ops_per_s, calls, failures, seconds}}
    speedup: dict = field(default_factory=dict)  # {other column: other p50 / this p50}
    accuracy: str = ""
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.skipped and self.calls > 0

    @property
    def valid(self) -> bool:
        """Measured, and its answer was not shown to differ from the other backend's."""
        return self.ok and self.parity != "FAILED"

    def measurement(self) -> Measurement:
        return Measurement(
            self.op,
            self.size,
            self.backend,
            self.calls,
            self.failures,
            self.p50_us,
            self.p95_us,
            self.p99_us,
            self.mean_us,
            self.ops_per_s,
            self.note,
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["dims"] = list(self.dims)
        d["throughput"] = {str(k): v for k, v in self.throughput.items()}
        return d


@dataclass
class Suite:
    cells: list[Cell] = field(default_factory=list)
    results: list[Measurement] = field(default_factory=list)  # extra sections (stream, transport)
    derived: dict = field(default_factory=dict)
    encoding: dict = field(default_factory=dict)
    machine: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    invalid: dict = field(default_factory=dict)  # derived key -> why it could not be computed honestly
    cancelled: bool = False
    seconds: float = 0.0

    def add(self, m: Measurement, progress=None) -> Measurement:
        self.results.append(m)
        if progress:
            progress(ProgressEvent(0, 0, None, m, f"{m.op} {m.size} {m.backend}: p50 {m.p50_us:.1f} µs"))
        return m

    def find(self, op, size, backend) -> Measurement | None:
        for c in self.cells:
            if (c.op, c.size, c.backend) == (op, size, backend) and c.ok:
                return c.measurement()
        for m in self.results:
            if (m.op, m.size, m.backend) == (op, size, backend):
                return m
        return None

    def cell(self, op: str, dims: tuple, backend: str) -> Cell | None:
        for c in self.cells:
            if c.op == op and tuple(c.dims) == tuple(dims) and c.backend == backend:
                return c
        return None

    @property
    def parity_failures(self) -> list[Cell]:
        return [c for c in self.cells if c.parity == "FAILED" and c.kind == "backend"]

    def all_measurements(self) -> list[Measurement]:
        return [c.measurement() for c in self.cells if c.ok] + list(self.results)


@dataclass
class ProgressEvent:
    done: int
    total: int
    cell: Cell | None
    measurement: Measurement | None
    message: str
    machine: dict | None = None  # sent once, before the first cell


def fmt_us(v: float) -> str:
    if v is None or not math.isfinite(v):
        return "n/a"
    if v >= 1e6:
        return f"{v / 1e6:.2f} s"
    if v >= 1e3:
        return f"{v / 1e3:.2f} ms"
    return f"{v:.1f} µs"


def fmt_rate(v: float) -> str:
    if v is None or not math.isfinite(v) or v <= 0:
        return "n/a"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _cell_line(c: Cell) -> str:
    if c.skipped:
        return f"{c.op} {c.size} {c.backend}: skipped: {c.skipped}"
    return f"{c.op} {c.size} {c.backend}: p50 {fmt_us(c.p50_us)} ({c.calls} calls, {c.failures} failed)" + (
        f"  !!! parity {c.parity}" if c.parity == "FAILED" else ""
    )


def _unit_time(c: Cell, per_iteration: bool) -> float:
    if per_iteration and c.extra.get("iterations"):
        return c.p50_us / c.extra["iterations"]
    return c.p50_us
