"""Benchmark runner shared by the Benchmark tab and the CLI (`python -m hft_lab bench`, `make bench`)."""

from .runner import BenchConfig, Cell, Measurement, Suite, check_parity, compare_results, run_suite, timeit

__all__ = ["BenchConfig", "Cell", "Measurement", "Suite", "check_parity", "compare_results", "run_suite", "timeit"]
