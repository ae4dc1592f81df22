"""The benchmark (hft_lab.bench.runner): parity."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import BenchConfig
from .operations import OPERATIONS, Operation, Payload, _max_abs

# ---------------------------------------------------------------------------------------------
# parity
# ---------------------------------------------------------------------------------------------

NOT_AVAILABLE = (AttributeError, NotImplementedError)


def _unavailable(e: BaseException) -> bool:
    if isinstance(e, NOT_AVAILABLE):
        return True
    try:
        from hft_lab.backends.errors import BackendUnavailable

        return isinstance(e, BackendUnavailable)
    except ImportError:  # pragma: no cover
        return False


def compare_results(a: Any, b: Any, path: str = "") -> str | None:
    """None if `a` and `b` are identical (arrays bit for bit, NaN == NaN), else where they differ."""
    where = path or "result"
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        if type(a) is not type(b):
            return f"{where}: types differ ({type(a).__name__} vs {type(b).__name__})"
        for f in dataclasses.fields(a):
            d = compare_results(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}" if path else f.name)
            if d:
                return d
        return None
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        x, y = np.asarray(a), np.asarray(b)
        if x.shape != y.shape:
            return f"{where}: shapes differ {x.shape} vs {y.shape}"
        if x.dtype.kind in "fc" or y.dtype.kind in "fc":
            if np.array_equal(x, y, equal_nan=True):
                return None
            return (
                f"{where}: max |Δ| {_max_abs(x, y):.3g} "
                f"({int(np.sum(~((x == y) | (np.isnan(x) & np.isnan(y)))))} of {x.size} differ)"
            )
        return None if np.array_equal(x, y) else f"{where}: {int(np.sum(x != y))} of {x.size} entries differ"
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return f"{where}: keys differ"
        for k in a:
            d = compare_results(a[k], b[k], f"{where}[{k!r}]")
            if d:
                return d
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f"{where}: lengths differ {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = compare_results(x, y, f"{where}[{i}]")
            if d:
                return d
        return None
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return None
    try:
        same = a == b
        same = bool(same)
    except Exception:
        same = False
    return None if same else f"{where}: {a!r} vs {b!r}"


@dataclass
class Parity:
    status: str  # "ok" | "FAILED" | "error" | "unchecked"
    detail: str
    results: dict[str, Any]  # backend name -> result (for accuracy notes)
    unavailable: dict[str, str]  # backend name -> why
    errors: dict[str, str]


def check_parity(
    op: Operation | str, backends: dict, payload: Payload | None = None, size: str | None = None, cfg: BenchConfig | None = None
) -> Parity:
    """Run `op` once on every backend and compare the results field by field with the first
    available one. status: ok (identical), FAILED (they differ: `detail` says where), error (a
    backend raised), unchecked (fewer than two backends could run it)."""
    if isinstance(op, str):
        op = OPERATIONS[op]
    if payload is None:
        cfg = cfg or BenchConfig()
        payload = op.payload(size or cfg.sizes[op.family][0], cfg)
    results: dict[str, Any] = {}
    unavailable: dict[str, str] = {}
    errors: dict[str, str] = {}
    for name, b in backends.items():
        try:
            results[name] = op.call(b, payload)
        except Exception as e:
            if _unavailable(e):
                unavailable[name] = f"{type(e).__name__}: {e}"
            else:
                errors[name] = f"{type(e).__name__}: {e}"
    if errors:
        return Parity("error", "; ".join(f"{k}: {v}" for k, v in errors.items()), results, unavailable, errors)
    names = list(results)
    if len(names) < 2:
        why = ", ".join(f"{k} not available" for k in unavailable) or "only one backend"
        return Parity("unchecked", why, results, unavailable, errors)
    first = names[0]
    for other in names[1:]:
        d = compare_results(results[first], results[other])
        if d:
            return Parity("FAILED", f"{first} vs {other}: {d}", results, unavailable, errors)
    return Parity("ok", f"identical on {', '.join(names)}", results, unavailable, errors)
