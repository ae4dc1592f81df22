"""The tabs' computations, free of Qt: each takes a backend first (the router picks it), its
inputs, and a `TaskContext` as `ctx` (cancel, progress, partial results). Views start them
through the TaskRunner; tests and scripts call them directly."""

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
