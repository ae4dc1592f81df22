"""The Rust core in-process, through the PyO3 extension `hft_lab._rustcore` (GIL released)."""

from __future__ import annotations

import functools

from .alloc import tune_malloc
from .base import Backend, HmmOnlineFilter, MeanReversionStream
from .config import BackendType
from .errors import BackendUnavailable, Cancelled, NumericalError, ResourceLimitExceeded
from .results import StreamTicks

try:
    import hft_lab._rustcore as _rc

    _IMPORT_ERROR: Exception | None = None
except ImportError as e:  # pragma: no cover - only when the extension was not built
    _rc = None
    _IMPORT_ERROR = e
except ValueError as e:  # an invalid HFT_LAB_MEMORY_LIMIT: the backend is unavailable, saying why
    _rc = None
    _IMPORT_ERROR = e


def _core():
    if _rc is None:
        if isinstance(_IMPORT_ERROR, ValueError):
            raise BackendUnavailable(f"the PyO3 extension hft_lab._rustcore could not load: {_IMPORT_ERROR}")
        raise BackendUnavailable(f"the PyO3 extension hft_lab._rustcore is not built ({_IMPORT_ERROR}); run 'make build'")
    return _rc


def translate_cancel(fn):
    """The extension raises its own Cancelled and ResourceLimitExceeded; callers see
    hft_lab.backends.errors' classes from both backends."""

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except Exception as e:
            if _rc is not None and isinstance(e, _rc.Cancelled):
                raise Cancelled(str(e)) from None
            if _rc is not None and isinstance(e, _rc.ResourceLimitExceeded):
                raise ResourceLimitExceeded(str(e)) from None
            if _rc is not None and isinstance(e, getattr(_rc, "NumericalError", ())):
                raise NumericalError(str(e)) from None
            raise

    return wrapper


class _Pyo3Stream(MeanReversionStream):
    @translate_cancel
    def __init__(self, lookback, threshold, exit_threshold, stop_threshold):
        self._s = _core().MeanReversionStream(lookback, threshold, exit_threshold, stop_threshold)

    @translate_cancel
    def push_many(self, prices) -> StreamTicks:
        p = self._batch(prices)
        first = self._s.ticks
        return StreamTicks(first_tick=first, **self._s.push_many(p))


class _Pyo3HmmFilter(HmmOnlineFilter):
    @translate_cancel
    def __init__(self, model):
        self.n_features = model[1]
        self._f = _core().HmmOnlineFilter(model)

    @translate_cancel
    def _update(self, rows):
        return self._f.update(rows)

    @property
    def count(self) -> int:
        return self._f.count

    @property
    def log_likelihood(self) -> float:
        return self._f.log_likelihood


class Pyo3Backend(Backend):
    backend_type = BackendType.PYO3
    name = "PyO3 (in-process)"

    def __init__(self) -> None:
        tune_malloc()  # large outputs from the heap, not fresh mappings (alloc.py)

    def is_available(self) -> bool:
        return _rc is not None

    def _info(self) -> dict:
        rc = _core()
        return dict(server_version=rc.__version__, core_version=rc.__version__, algorithms=(), pid=0)

    @translate_cancel
    def _echo(self, values):
        return _core().echo(values)

    @translate_cancel
    def _mean_reversion(self, prices, lookback, threshold, exit_threshold, stop_threshold, cancel, outputs=None):
        return _core().mean_reversion(
            prices,
            lookback,
            threshold,
            exit_threshold,
            stop_threshold,
            cancel.rust if cancel else None,
            outputs=None if outputs is None else list(outputs),
        )

    @translate_cancel
    def _stream(self, lookback, threshold, exit_threshold, stop_threshold):
        return _Pyo3Stream(lookback, threshold, exit_threshold, stop_threshold)

    @translate_cancel
    def _fit_ou(self, series, dt, bars_per_day, cancel=None):
        return _core().fit_ou(series, dt, bars_per_day, cancel.rust if cancel else None)

    @translate_cancel
    def _backtest(self, prices, positions, cost_bps, periods_per_year, units, notional, cancel=None):
        return _core().backtest(prices, positions, cost_bps, periods_per_year, units, notional, cancel.rust if cancel else None)

    @translate_cancel
    def _run_hmm(self, observations, n_states, max_iterations, tolerance, n_restarts, seed, init, progress, cancel):
        init = None if init is None else tuple(list(a) for a in init)
        return _core().run_hmm(
            observations,
            n_states,
            max_iterations,
            tolerance,
            n_restarts,
            seed,
            init,
            cancel.rust if cancel else None,
            progress,
        )

    # ---- multivariate HMM, filter, walk-forward, live filter (hmm helper) ----
    @translate_cancel
    def _run_hmm_mv(self, x, k, covariance_type, max_iterations, tolerance, n_restarts, seed, init, progress, cancel):
        init = None if init is None else tuple(list(a) for a in init)
        return _core().run_hmm_mv(
            x, k, covariance_type, max_iterations, tolerance, n_restarts, seed, init, cancel.rust if cancel else None, progress
        )

    @translate_cancel
    def _hmm_filter(self, model, x, cancel):
        model = (*model[:3], *(list(a) for a in model[3:]))
        f, ll = _core().hmm_filter(model, x, cancel.rust if cancel else None)
        return dict(filtered=f, log_likelihood=ll)

    @translate_cancel
    def _hmm_walk_forward(
        self, x, formation, step, k, covariance_type, max_iterations, tolerance, n_restarts, seed, progress, cancel
    ):
        return _core().hmm_walk_forward(
            x,
            formation,
            step,
            k,
            covariance_type,
            max_iterations,
            tolerance,
            n_restarts,
            seed,
            cancel.rust if cancel else None,
            None if progress is None else (lambda w, total: progress(w, total)),
        )

    def _hmm_online_filter(self, model):
        return _Pyo3HmmFilter((*model[:3], *(list(a) for a in model[3:])))

    @translate_cancel
    def _optimize_portfolio(self, prices, method, params, asset_names, cancel):
        return _core().optimize_portfolio(prices, method, cancel=cancel.rust if cancel else None, **params)

    @translate_cancel
    def _sparse_portfolio(
        self, prices, method, lambda_param, alpha, target, k, max_iterations, tolerance, asset_names, cancel, adf_autolag=None
    ):
        return _core().sparse_portfolio(
            prices,
            method,
            lambda_param,
            alpha,
            target,
            k,
            max_iterations,
            tolerance,
            cancel.rust if cancel else None,
            adf_autolag=adf_autolag,
        )

    @translate_cancel
    def _sparse_lambda_path(self, prices, target, lambdas, n_lambdas, alpha, tolerance, max_iterations, cancel, adf_autolag=None):
        return _core().sparse_lambda_path(
            prices,
            target,
            lambdas,
            n_lambdas,
            alpha,
            tolerance,
            max_iterations,
            cancel.rust if cancel else None,
            adf_autolag=adf_autolag,
        )

    # ---- pairs workflow (issue 17) ----
    @translate_cancel
    def _scan_pairs(self, prices, config, pair_range, cancel, progress, partial):
        rc = _core()
        tok = cancel.rust if cancel else None
        if pair_range is None:
            return rc.scan_pairs(prices, cancel=tok, progress=progress, partial=partial, **config)
        return rc.scan_pairs_range(prices, pair_range[0], pair_range[1], cancel=tok, progress=progress, **config)

    @translate_cancel
    def _johansen(self, prices, det_order, k_ar_diff):
        return _core().johansen(prices, det_order, k_ar_diff)

    @translate_cancel
    def _kalman_hedge(self, y, x, delta, observation_var):
        return _core().kalman_hedge(y, x, delta, observation_var)

    # ---- asset moments and Ledoit-Wolf covariance (issue 15) ----
    @translate_cancel
    def _estimate_moments(self, prices, returns, annualization, covariance, cancel):
        return _core().estimate_moments(prices, returns, annualization, covariance, cancel.rust if cancel else None)

    @translate_cancel
    def _ledoit_wolf(self, data, cancel):
        return _core().ledoit_wolf(data, cancel.rust if cancel else None)

    @translate_cancel
    def _walk_forward(self, prices, params, progress, cancel):
        return _core().walk_forward(prices, cancel=cancel.rust if cancel else None, progress=progress, **params)
