"""The benchmark: both backends (and the reference libraries) on a matrix of operations x payload
sizes, plus the transport and live-stream sections.

Method (the same for every cell):
- the input is generated once per (operation, size) from a fixed seed;
- **parity first**: the operation runs once on every backend and the results are compared field by
  field (np.array_equal, NaN == NaN). A difference marks the cells `parity: FAILED` and is reported
  loudly: a benchmark comparing different answers is worthless, so no speedup or target is derived
  from such a cell;
- warm-up (a few calls, at most ~1 s), then up to N calls timed one by one with perf_counter_ns
  (stopping early once the cell's time budget is used and at least `min_calls` succeeded):
  p50/p95/p99 and ops/s of one caller. A call that raises counts as a failure and is never timed
  as a success;
- throughput with C concurrent callers (ThreadPoolExecutor; the PyO3 backend releases the GIL, the
  gRPC client waits without it);
- the reference libraries (when installed) as further columns, timed the same way (one caller),
  with the largest difference from the Rust answer as an accuracy note;
- speedups compare p50s measured in the same run (these machines are noisy; the load average is
  recorded with the machine description).

Used by the CLI (`python -m hft_lab bench`, `make bench`) and by the Benchmark tab.

The package: `timing` (timeit, throughput), `config` (BenchConfig, sizes), `operations` (seeded
inputs, the operations and their reference libraries), `parity` (compare_results, check_parity),
`model` (Cell, Suite, ProgressEvent), `machine` (machine description, the Python echo server),
`matrix` (the operations x sizes matrix, transport and stream sections), `derive` (derived
figures, targets), `suite` (run_suite), `report` (table, JSON, CSV). Everything is importable from
`hft_lab.bench.runner` as before.
"""

from __future__ import annotations

from .config import (
    _SUFFIX,
    DEFAULT_SIZES,
    FAMILIES,
    QUICK_SIZES,
    SIZE_HELP,
    BenchConfig,
    human,
    parse_count,
    parse_int_list,
    parse_size,
    parse_sizes,
)
from .derive import TARGETS, _ratio_cells, derive, target_status
from .machine import _VERSIONS, PythonEchoServer, RunContext, describe_machine, machine
from .matrix import (
    PARTS,
    SECTIONS,
    _bench_stream,
    _bench_transport,
    _encoding_costs,
    _fill_measurement,
    _fill_speedups,
    _reference_list,
    count_cells,
    plan,
    run_matrix,
)
from .model import Cell, ProgressEvent, Suite, _cell_line, _unit_time, fmt_rate, fmt_us
from .operations import (
    OPERATIONS,
    Operation,
    Payload,
    Reference,
    _cvxpy_make,
    _echo_acc,
    _echo_call,
    _hmm_acc,
    _hmm_call,
    _hmm_extra,
    _hmmlearn_make,
    _input,
    _max_abs,
    _moments,
    _mr_call,
    _pandas_std_make,
    _pandas_z_make,
    _pf_call,
    _py_echo_make,
    _pypfopt_make,
    _register,
    _sk_extra,
    _sklearn_make,
    _sparse_acc,
    _sparse_call,
    _w_acc,
    factor_prices,
    operations_for,
    sparse_prices,
)
from .parity import NOT_AVAILABLE, Parity, _unavailable, check_parity, compare_results
from .report import CSV_COLUMNS, _clean, format_table, speedup_phrase, speedup_text, throughput_text, to_csv, to_dict, to_json
from .suite import _RUN_LOCK, _run, run_suite
from .timing import BenchCancelled, Measurement, _check_cancel, _is_cancelled, _warm, throughput, timeit

__all__ = [
    "BenchCancelled",
    "Measurement",
    "_check_cancel",
    "_is_cancelled",
    "_warm",
    "throughput",
    "timeit",
    "BenchConfig",
    "DEFAULT_SIZES",
    "FAMILIES",
    "QUICK_SIZES",
    "SIZE_HELP",
    "_SUFFIX",
    "human",
    "parse_count",
    "parse_int_list",
    "parse_size",
    "parse_sizes",
    "OPERATIONS",
    "Operation",
    "Payload",
    "Reference",
    "_cvxpy_make",
    "_echo_acc",
    "_echo_call",
    "_hmm_acc",
    "_hmm_call",
    "_hmm_extra",
    "_hmmlearn_make",
    "_input",
    "_max_abs",
    "_moments",
    "_mr_call",
    "_pandas_std_make",
    "_pandas_z_make",
    "_pf_call",
    "_py_echo_make",
    "_pypfopt_make",
    "_register",
    "_sk_extra",
    "_sklearn_make",
    "_sparse_acc",
    "_sparse_call",
    "_w_acc",
    "factor_prices",
    "operations_for",
    "sparse_prices",
    "NOT_AVAILABLE",
    "Parity",
    "_unavailable",
    "check_parity",
    "compare_results",
    "Cell",
    "ProgressEvent",
    "Suite",
    "_cell_line",
    "_unit_time",
    "fmt_rate",
    "fmt_us",
    "PythonEchoServer",
    "RunContext",
    "_VERSIONS",
    "describe_machine",
    "machine",
    "PARTS",
    "SECTIONS",
    "_bench_stream",
    "_bench_transport",
    "_encoding_costs",
    "_fill_measurement",
    "_fill_speedups",
    "_reference_list",
    "count_cells",
    "plan",
    "run_matrix",
    "TARGETS",
    "_ratio_cells",
    "derive",
    "target_status",
    "_RUN_LOCK",
    "_run",
    "run_suite",
    "CSV_COLUMNS",
    "_clean",
    "format_table",
    "speedup_phrase",
    "speedup_text",
    "throughput_text",
    "to_csv",
    "to_dict",
    "to_json",
]
