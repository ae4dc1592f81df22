"""The tabs' computations, free of Qt: each takes a backend first (the router picks it), its
inputs, and a `TaskContext` as `ctx` (cancel, progress, partial results). Views start them
through the TaskRunner; tests and scripts call them directly.

Start-up (issue 16): the submodules are imported when first used (`from hft_lab.analysis import
fit_regimes` still works, through the module `__getattr__` below), so importing the package, or
`hft_lab.analysis.context` for the TaskRunner, does not import pandas with the regimes, portfolio
and sparse modules."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .context import TaskContext
    from .mean_reversion import analyse
    from .portfolio import SyntheticSelection, optimise
    from .regimes import (
        aligned_log_returns,
        build_features,
        equal_weight_index,
        fit_regimes,
        fit_regimes_mv,
        most_likely_differs,
        segments,
        walk_forward_regimes,
    )
    from .sparse import SyntheticPrices, adf_verdict, basket_formula, cut_period, find_basket, lambda_path, round_sig

# name -> the submodule that defines it
_WHERE = {
    "TaskContext": "context",
    "analyse": "mean_reversion",
    "SyntheticSelection": "portfolio",
    "optimise": "portfolio",
    "aligned_log_returns": "regimes",
    "build_features": "regimes",
    "equal_weight_index": "regimes",
    "fit_regimes": "regimes",
    "fit_regimes_mv": "regimes",
    "most_likely_differs": "regimes",
    "segments": "regimes",
    "walk_forward_regimes": "regimes",
    "SyntheticPrices": "sparse",
    "adf_verdict": "sparse",
    "basket_formula": "sparse",
    "cut_period": "sparse",
    "find_basket": "sparse",
    "lambda_path": "sparse",
    "round_sig": "sparse",
}

__all__ = [
    "TaskContext",
    "analyse",
    "SyntheticSelection",
    "optimise",
    "equal_weight_index",
    "fit_regimes",
    "fit_regimes_mv",
    "walk_forward_regimes",
    "build_features",
    "aligned_log_returns",
    "most_likely_differs",
    "segments",
    "SyntheticPrices",
    "adf_verdict",
    "basket_formula",
    "cut_period",
    "find_basket",
    "lambda_path",
    "round_sig",
]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{where}"), name)
    globals()[name] = value  # later lookups: a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
