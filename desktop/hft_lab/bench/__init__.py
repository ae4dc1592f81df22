"""Benchmark runner shared by the Benchmark tab and the CLI (`python -m hft_lab bench`, `make bench`)."""

from .runner import Measurement, run_suite, timeit

__all__ = ["Measurement", "run_suite", "timeit"]
