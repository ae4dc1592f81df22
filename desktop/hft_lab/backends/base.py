"""The one Python interface both backends implement.

Public methods live here: they normalise inputs (any array-like -> contiguous float64 with the
right number of dimensions), call the transport-specific `_op` (which returns a dict of arrays), and
wrap the dict in the result dataclass. So validation, defaults and result types cannot drift
between the PyO3 and the gRPC backend.
"""

from __future__ import annotations

import abc
import functools
import numbers
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from .config import BackendConfig, BackendType
from .errors import (
    Cancelled,  # noqa: F401  (re-exported for callers)
    InputTypeError,
    ResourceLimitExceeded,
)
from .results import (
    AssetMoments,
    BacktestResult,
    HmmFilterResult,
    HmmModel,
    HmmMvResult,
    HmmResult,
    HmmWalkForward,
    LambdaPath,
    LedoitWolfResult,
    MeanReversionResult,
    OuFit,
    PortfolioResult,
    ServerInfo,
    SparseResult,
    StreamTicks,
)

ProgressFn = Callable[[int, float], "bool | None"]


class CancelToken:
    """Set from any thread (e.g. the GUI's Cancel button) to stop a running call.

    The PyO3 backend hands the underlying Rust flag to the core, which polls it; the gRPC backend
    registers a callback that cancels the in-flight RPC (the server's drop guard then stops the core).
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], Any]] = []
        try:
            import hft_lab._rustcore as _rustcore

            self.rust = _rustcore.CancelToken()
        except ImportError:  # pragma: no cover - the extension is always built by make
            self.rust = None

    def cancel(self) -> None:
        with self._lock:
            self._event.set()
            if self.rust is not None:
                self.rust.cancel()
            callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            cb()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def add_callback(self, cb: Callable[[], Any]) -> None:
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(cb)
                return
        cb()


# ---- strict input conversion: the one place both backends take their arguments through ----
# Accepted: array-likes of real numbers (int, unsigned, float dtypes) with the right number of
# dimensions. Refused with an error naming the argument: None, scalars where an array is expected,
# strings, bytes, booleans, complex numbers, object/ragged arrays, datetimes.

_NUMERIC_KINDS = "iuf"


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def as_array(name: str, x: Any, ndim: int | None) -> np.ndarray:
    """A contiguous float64 copy/view of `x`, which must hold real numbers (and have `ndim`
    dimensions unless None)."""
    want = "an array" if ndim is None else ("a 1-D array" if ndim == 1 else "a 2-D array (time x assets)")
    if x is None:
        raise InputTypeError(f"{name} is None: give {want} of numbers")
    if isinstance(x, (str, bytes, bytearray)):
        raise InputTypeError(f"{name} must be {want} of numbers, got a {type(x).__name__} {_short(x)}")
    if isinstance(x, dict) or isinstance(x, (set, frozenset)):
        raise InputTypeError(f"{name} must be {want} of numbers, got a {type(x).__name__}")
    try:
        a = np.asarray(x)
    except (ValueError, TypeError) as e:  # ragged nested lists
        raise InputTypeError(f"{name} must be {want} of numbers (a regular, non-ragged shape): {e}") from None
    if a.dtype.kind not in _NUMERIC_KINDS:
        what = {
            "b": "booleans",
            "c": "complex numbers",
            "O": "Python objects (None, strings or mixed types?)",
            "U": "strings",
            "S": "bytes",
            "M": "datetimes",
            "m": "timedeltas",
            "V": "structured records",
        }.get(a.dtype.kind, f"dtype {a.dtype}")
        raise InputTypeError(f"{name} must hold real numbers, got {what} (dtype {a.dtype})")
    if ndim is not None and a.ndim != ndim:
        if a.ndim == 0:
            raise InputTypeError(f"{name} must be {want}, got the scalar {_short(x)}")
        raise ValueError(f"{name} must be {want}, got shape {a.shape}")
    return np.ascontiguousarray(a, dtype=np.float64)


def as_vector(name: str, x: Any) -> np.ndarray:
    return as_array(name, x, 1)


def as_matrix(name: str, x: Any) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """2-D float64 (time x assets); a pandas DataFrame also gives the asset names."""
    names = None
    if hasattr(x, "columns") and hasattr(x, "to_numpy"):
        names = tuple(str(c) for c in x.columns)
        try:
            x = x.to_numpy()
        except (TypeError, ValueError) as e:
            raise InputTypeError(f"{name} must hold real numbers: {e}") from None
    return as_array(name, x, 2), names


@functools.lru_cache(maxsize=64)
def default_asset_names(n: int) -> tuple[str, ...]:
    """("asset 0", "asset 1", ...): the names of unnamed columns (cached: building 50 strings cost
    ~5 µs of a 50-asset portfolio call)."""
    return tuple(f"asset {i}" for i in range(n))


@functools.lru_cache(maxsize=1)
def _default_max_message_mb() -> int:
    """The default message limit (building a BackendConfig on every call cost ~5 µs of a 1k-price call)."""
    return BackendConfig().max_message_mb


def _is_real_scalar(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def nonneg_int(name: str, v: Any) -> int:
    if not _is_real_scalar(v):
        raise InputTypeError(f"{name} must be an integer, got {type(v).__name__} {_short(v)}")
    try:
        i = int(v)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} must be an integer, got {_short(v)}") from None
    if i != v or i < 0 or i > 2**31 - 1:
        raise ValueError(f"{name} must be a non-negative integer below 2^31, got {_short(v)}")
    return i


def real(name: str, v: Any) -> float:
    if not _is_real_scalar(v):
        raise InputTypeError(f"{name} must be a real number, got {type(v).__name__} {_short(v)}")
    return float(v)


class _Default:
    """The default of an argument whose default value is written once, in rustcore: the
    transports then pass None (PyO3) / leave the field unset (gRPC). An explicit None is still
    invalid input (InputTypeError), as before."""

    def __repr__(self) -> str:
        return "<rustcore default>"


DEFAULT: Any = _Default()


def _opt(check: Callable[[str, Any], Any], name: str, v: Any) -> Any:
    """None when not given (the core's default applies), else the checked value."""
    return None if v is DEFAULT else check(name, v)


def text(name: str, v: Any) -> str:
    if not isinstance(v, str):
        raise InputTypeError(f"{name} must be a string, got {type(v).__name__} {_short(v)}")
    return v


# ---- mean reversion: which series to compute (outputs=) ----
MEAN_REVERSION_OUTPUTS = ("mean", "std", "zscore", "signals", "positions")
# output name -> MeanReversionResult field, and bytes per price on the wire
_MR_FIELDS = {"mean": "rolling_mean", "std": "rolling_std", "zscore": "zscore", "signals": "signals", "positions": "positions"}
_MR_BYTES = {"mean": 8, "std": 8, "zscore": 8, "signals": 1, "positions": 1}


_F64 = np.dtype(np.float64)
_I31 = 2**31 - 1


def _is_f64_vector(x: Any) -> bool:
    """True for what as_vector would return unchanged: a C-contiguous 1-D float64 ndarray."""
    return type(x) is np.ndarray and x.dtype == _F64 and x.ndim == 1 and x.flags.c_contiguous


def output_names(v: Any) -> tuple[str, ...] | None:
    """`outputs=` of calculate_mean_reversion: None (all five), one name, or a list of names.
    Unknown names are left to the core, so both backends report them with the same text."""
    if v is None:
        return None
    if isinstance(v, str):
        v = (v,)
    if isinstance(v, (bytes, dict)) or not hasattr(v, "__iter__"):
        raise InputTypeError(
            f"outputs must be a list of names among {', '.join(MEAN_REVERSION_OUTPUTS)}, got {type(v).__name__} {_short(v)}"
        )
    names = tuple(v)
    for n in names:
        if not isinstance(n, str):
            raise InputTypeError(f"outputs must be names (strings), got {type(n).__name__} {_short(n)}")
    if not names:
        raise ValueError(f"outputs must name at least one of {', '.join(MEAN_REVERSION_OUTPUTS)} (or be None for all)")
    return names


# ---- the message limit both backends apply (size parity) ----
# gRPC cannot carry a message beyond max_message_mb (512 MiB by default) in either direction;
# rather than letting the PyO3 backend accept what the gRPC backend cannot, both refuse such a
# request up front with the same message (README: "Limits").

_MB = 1_000_000


def check_message_size(limit_bytes: int, op: str, request_values: int, result_bytes: int, what: str) -> None:
    req = 8 * int(request_values)
    for kind, size in (("request", req), ("result", int(result_bytes))):
        if size > limit_bytes:
            raise ResourceLimitExceeded(
                f"this {op} {kind} would be ~{size / _MB:.1f} MB ({what}), beyond the "
                f"{limit_bytes >> 20} MiB message limit both backends apply (max_message_mb): "
                "split the data into smaller parts"
            )


class MeanReversionStream(abc.ABC):
    """Live mode: feed ticks, get z-score/signal/position per tick (O(1) per tick)."""

    @abc.abstractmethod
    def push_many(self, prices: Any) -> StreamTicks: ...

    def push(self, price: float) -> StreamTicks:
        return self.push_many(np.array([real("price", price)], dtype=np.float64))

    def _batch(self, prices: Any) -> np.ndarray:
        """The strict conversion and size check every implementation's push_many starts with."""
        p = as_vector("prices", prices)
        limit = getattr(self, "max_message_bytes", BackendConfig().max_message_mb << 20)
        check_message_size(limit, "live batch", p.size, 26 * p.size, f"{p.size} ticks")
        return p

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class HmmOnlineFilter(abc.ABC):
    """Live regime filter (see Backend.hmm_online_filter)."""

    n_features: int = 1

    @abc.abstractmethod
    def _update(self, rows: np.ndarray) -> np.ndarray: ...

    def update(self, rows: Any) -> np.ndarray:
        """Filter one row (1-D, D values) or a batch (m x D): returns m x K probabilities."""
        a = as_array("observations", rows, None)
        if a.ndim == 1 and self.n_features > 1:
            a = a.reshape(1, -1)
        elif a.ndim == 1:
            a = a.reshape(-1, 1)
        if a.ndim != 2:
            raise ValueError(f"observations must be one row or a 2-D batch (rows x features), got shape {a.shape}")
        return self._update(np.ascontiguousarray(a))

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Backend(abc.ABC):
    """Interface of a compute backend. Inputs are NumPy arrays (or array-likes); outputs are frozen
    dataclasses of NumPy arrays, identical from both backends."""

    backend_type: BackendType
    name: str

    # ---- transport-specific primitives (return dicts of arrays) ----
    @abc.abstractmethod
    def is_available(self) -> bool: ...

    @abc.abstractmethod
    def _info(self) -> dict: ...

    @abc.abstractmethod
    def _echo(self, values: np.ndarray) -> np.ndarray: ...

    @abc.abstractmethod
    def _mean_reversion(self, prices, lookback, threshold, exit_threshold, stop_threshold, cancel, outputs=None) -> dict: ...

    @abc.abstractmethod
    def _stream(self, lookback, threshold, exit_threshold, stop_threshold) -> MeanReversionStream: ...

    @abc.abstractmethod
    def _fit_ou(self, series, dt, bars_per_day, cancel=None) -> dict: ...

    @abc.abstractmethod
    def _backtest(self, prices, positions, cost_bps, periods_per_year, units, notional, cancel=None) -> dict: ...

    @abc.abstractmethod
    def _run_hmm(self, observations, n_states, max_iterations, tolerance, n_restarts, seed, init, progress, cancel) -> dict: ...

    @abc.abstractmethod
    def _optimize_portfolio(self, prices, method, params, asset_names, cancel) -> dict: ...

    @abc.abstractmethod
    def _sparse_portfolio(
        self, prices, method, lambda_param, alpha, target, k, max_iterations, tolerance, asset_names, cancel, adf_autolag=None
    ) -> dict: ...

    @abc.abstractmethod
    def _sparse_lambda_path(
        self, prices, target, lambdas, n_lambdas, alpha, tolerance, max_iterations, cancel, adf_autolag=None
    ) -> dict: ...

    # asset moments and Ledoit-Wolf (issue 15); not abstract, so a Backend without them still works
    def _estimate_moments(self, prices, returns, annualization, covariance, cancel) -> dict:
        raise NotImplementedError(f"{self.name} does not provide estimate_moments")

    def _ledoit_wolf(self, data, cancel) -> dict:
        raise NotImplementedError(f"{self.name} does not provide ledoit_wolf")

    def close(self) -> None:
        pass

    @property
    def max_message_bytes(self) -> int:
        """The message limit both backends apply (see check_message_size)."""
        cfg = getattr(self, "config", None)
        mb = cfg.max_message_mb if isinstance(cfg, BackendConfig) else _default_max_message_mb()
        return mb << 20

    def _check_size(self, op: str, request_values: int, result_bytes: int, what: str) -> None:
        check_message_size(self.max_message_bytes, op, request_values, result_bytes, what)

    # ---- public API ----
    def info(self) -> ServerInfo:
        d = self._info()
        return ServerInfo(backend=self.name, **d)

    def echo(self, values: Any) -> np.ndarray:
        v = as_vector("values", values)
        self._check_size("echo", v.size, 8 * v.size, f"{v.size} values")
        return self._echo(v)

    def calculate_mean_reversion(
        self,
        prices: Any,
        lookback: int = 20,
        threshold: float = 2.0,
        exit_threshold: float = 0.0,
        stop_threshold: float | None = None,
        cancel: CancelToken | None = None,
        outputs: Any = None,
    ) -> MeanReversionResult:
        """Rolling z-score and signals. `outputs`: the series to compute and return, names among
        "mean", "std", "zscore", "signals", "positions" (None = all five); the result's other
        series are None and cost neither memory nor transfer. Entries and exits always come back."""
        # (issue 16: the common argument types take a fast path with the same outcome as the full
        # checks; a 1k-price call spent more time here than in the core)
        p = prices if _is_f64_vector(prices) else as_vector("prices", prices)
        lb = lookback if type(lookback) is int and 0 <= lookback <= _I31 else nonneg_int("lookback", lookback)
        th = threshold if type(threshold) is float else real("threshold", threshold)
        ex = exit_threshold if type(exit_threshold) is float else real("exit_threshold", exit_threshold)
        st = None if stop_threshold is None else real("stop_threshold", stop_threshold)
        outs = None if outputs is None else output_names(outputs)
        per = 26 if outs is None else sum(_MR_BYTES.get(o, 0) for o in set(outs))
        n = p.size
        if max(8, per) * n > self.max_message_bytes:
            self._check_size("mean reversion", n, per * n, f"{n} prices, {per} bytes each")
        d = self._mean_reversion(p, lb, th, ex, st, cancel, outputs=outs)
        chosen = MEAN_REVERSION_OUTPUTS if outs is None else tuple(o for o in MEAN_REVERSION_OUTPUTS if o in outs)
        # the frozen dataclass filled in one step (its generated __init__ sets each of the 12
        # fields through object.__setattr__: ~3 µs of a 1k-price call); same object, same fields
        r = object.__new__(MeanReversionResult)
        r.__dict__.update(
            lookback=lb,
            threshold=th,
            exit_threshold=ex,
            stop_threshold=st,
            rolling_mean=d.get("rolling_mean"),
            rolling_std=d.get("rolling_std"),
            zscore=d.get("zscore"),
            signals=d.get("signals"),
            positions=d.get("positions"),
            entries=d["entries"],
            exits=d["exits"],
            outputs=chosen,
        )
        return r

    def mean_reversion_stream(
        self,
        lookback: int = 20,
        threshold: float = 2.0,
        exit_threshold: float = 0.0,
        stop_threshold: float | None = None,
    ) -> MeanReversionStream:
        lb = nonneg_int("lookback", lookback)
        st = None if stop_threshold is None else real("stop_threshold", stop_threshold)
        return self._stream(lb, real("threshold", threshold), real("exit_threshold", exit_threshold), st)

    def fit_ou(self, series: Any, dt: float = 1.0, bars_per_day: float = 1.0, cancel: CancelToken | None = None) -> OuFit:
        """Ornstein-Uhlenbeck fit (AR(1) OLS), half-life, standard errors, Hurst exponent (R/S)."""
        s = as_vector("series", series)
        self._check_size("OU fit", s.size, 0, f"{s.size} values")
        d = self._fit_ou(s, real("dt", dt), real("bars_per_day", bars_per_day), cancel=cancel)
        return OuFit(**d)

    def backtest(
        self,
        prices: Any,
        positions: Any,
        cost_bps: float = 0.0,
        periods_per_year: float = 252.0,
        cancel: CancelToken | None = None,
        units: str = "returns",
        notional: Any = None,
    ) -> BacktestResult:
        """Equity curve and statistics of `positions` (+1/0/-1, held from close t-1 to close t).

        units="returns" (default): positive prices, equity from 1.0 compounding p[t]/p[t-1]-1.
        units="pnl": any finite series such as a spread that crosses zero; P&L in the series'
        units (pnl = position x change of the spread), equity = cumulative P&L from 0, costs in bps
        of the traded notional (`notional` per bar, default |spread|)."""
        if not isinstance(units, str):
            raise TypeError(f"units must be a string, got {type(units).__name__}")
        p, q = as_vector("prices", prices), as_vector("positions", positions)
        self._check_size("backtest", p.size + q.size, 24 * p.size, f"{p.size} bars, 24 bytes each")
        d = self._backtest(
            p,
            q,
            real("cost_bps", cost_bps),
            real("periods_per_year", periods_per_year),
            units,
            None if notional is None else as_vector("notional", notional),
            cancel=cancel,
        )
        return BacktestResult(**d)

    def run_hmm(
        self,
        observations: Any,
        n_states: int = 3,
        max_iterations: int = 100,
        tolerance: float = 1e-6,
        n_restarts: int | None = None,
        seed: int = 0,
        init: dict | None = None,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ) -> HmmResult:
        """Gaussian HMM regime detection. `init`: dict(start_prob, transmat, means, variances) to
        start EM from given parameters; `progress(iteration, log_likelihood)` is called once per EM
        iteration (return False to cancel: raises Cancelled). `n_restarts=None` (default): the
        core's default start (quantile start + 16 seeded k-means++ restarts in parallel, the best
        run polished to convergence); with `init`, None means 0 restarts."""
        x = as_vector("observations", observations)
        init_t = None
        if init is not None:
            if not isinstance(init, dict):
                raise InputTypeError(f"init must be a dict (start_prob, transmat, means, variances), got {type(init).__name__}")
            missing = {"start_prob", "transmat", "means", "variances"} - set(init)
            if missing:
                raise ValueError(f"init is missing {', '.join(sorted(missing))}")
            init_t = tuple(as_array(f"init {k}", init[k], None).ravel() for k in ("start_prob", "transmat", "means", "variances"))
        k = nonneg_int("n_states", n_states)
        self._check_size("HMM", x.size, 9 * x.size * max(k, 1), f"{x.size} × {k} posteriors")
        d = self._run_hmm(
            x,
            k,
            nonneg_int("max_iterations", max_iterations),
            real("tolerance", tolerance),
            None if n_restarts is None else nonneg_int("n_restarts", n_restarts),
            nonneg_int("seed", seed),
            init_t,
            progress,
            cancel,
        )
        return HmmResult(**d)

    # ---- multivariate HMM, filter, walk-forward, live filter (hmm helper) ----
    def _run_hmm_mv(self, x, k, covariance_type, max_iterations, tolerance, n_restarts, seed, init, progress, cancel) -> dict:
        raise NotImplementedError

    def _hmm_filter(self, model: tuple, x: np.ndarray, cancel) -> dict:
        raise NotImplementedError

    def _hmm_walk_forward(
        self, x, formation, step, k, covariance_type, max_iterations, tolerance, n_restarts, seed, progress, cancel
    ) -> dict:
        raise NotImplementedError

    def _hmm_online_filter(self, model: tuple) -> HmmOnlineFilter:
        raise NotImplementedError

    @staticmethod
    def _hmm_observations(observations: Any) -> np.ndarray:
        """T x D float64 (a 1-D series is one feature)."""
        a = as_array("observations", observations, None)
        if a.ndim == 1:
            a = a.reshape(-1, 1)
        if a.ndim != 2:
            raise ValueError(f"observations must be a 1-D series or a 2-D array (time x features), got shape {a.shape}")
        return np.ascontiguousarray(a)

    @staticmethod
    def _hmm_model_tuple(model: Any) -> tuple:
        """(K, D, covariance_type, start K, transmat K*K, means K*D, covars K*D*D) from an HmmModel
        (or anything with its attributes: HmmResult / HmmMvResult give `.model`)."""
        if hasattr(model, "model") and not isinstance(model, HmmModel):
            model = model.model
        if not isinstance(model, HmmModel):
            raise InputTypeError(f"model must be an HmmModel (e.g. result.model), got {type(model).__name__}")
        k = nonneg_int("model n_states", model.n_states)
        d = nonneg_int("model n_features", model.n_features)
        ct = text("model covariance_type", model.covariance_type)
        return (
            k,
            d,
            ct,
            as_array("model start_probabilities", model.start_probabilities, None).ravel(),
            as_array("model transition_matrix", model.transition_matrix, None).ravel(),
            as_array("model means", model.means, None).ravel(),
            as_array("model covars", model.covars, None).ravel(),
        )

    def run_hmm_mv(
        self,
        observations: Any,
        n_states: int = 3,
        covariance_type: str = "full",
        max_iterations: int = 100,
        tolerance: float = 1e-6,
        n_restarts: int | None = None,
        seed: int = 0,
        init: dict | None = None,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ) -> HmmMvResult:
        """Gaussian HMM on T x D observations (several features), covariance_type "diag" or
        "full". `init`: dict(start_prob K, transmat K x K, means K x D, covars K x D x D)."""
        x = self._hmm_observations(observations)
        k = nonneg_int("n_states", n_states)
        init_t = None
        if init is not None:
            if not isinstance(init, dict):
                raise InputTypeError(f"init must be a dict (start_prob, transmat, means, covars), got {type(init).__name__}")
            missing = {"start_prob", "transmat", "means", "covars"} - set(init)
            if missing:
                raise ValueError(f"init is missing {', '.join(sorted(missing))}")
            init_t = tuple(as_array(f"init {n}", init[n], None).ravel() for n in ("start_prob", "transmat", "means", "covars"))
        n, dim = x.shape
        self._check_size("HMM", x.size, 8 * n * max(k, 1) * 2 + 8 * n, f"{n} × {k} posteriors and filtered probabilities")
        d = self._run_hmm_mv(
            x,
            k,
            text("covariance_type", covariance_type),
            nonneg_int("max_iterations", max_iterations),
            real("tolerance", tolerance),
            None if n_restarts is None else nonneg_int("n_restarts", n_restarts),
            nonneg_int("seed", seed),
            init_t,
            progress,
            cancel,
        )
        return HmmMvResult(**d)

    def hmm_filter(self, model: Any, observations: Any, cancel: CancelToken | None = None) -> HmmFilterResult:
        """Forward filter P(state_t | x_1..x_t) of `observations` under fixed parameters
        (`model`: an HmmModel, e.g. result.model)."""
        m = self._hmm_model_tuple(model)
        x = self._hmm_observations(observations)
        if m[1] != x.shape[1]:
            raise ValueError(f"observations have {x.shape[1]} features but the model has {m[1]}")
        self._check_size("HMM filter", x.size, 8 * x.shape[0] * max(m[0], 1), f"{x.shape[0]} × {m[0]} filtered probabilities")
        return HmmFilterResult(**self._hmm_filter(m, x, cancel))

    def hmm_walk_forward(
        self,
        observations: Any,
        formation: int,
        step: int,
        n_states: int = 3,
        covariance_type: str = "full",
        max_iterations: int = 100,
        tolerance: float = 1e-6,
        n_restarts: int | None = None,
        seed: int = 0,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ) -> HmmWalkForward:
        """Walk-forward regimes: fit on rows [s, s + formation), filter (fixed parameters, no
        refit, no smoothing) through [s + formation, s + formation + step), s += step; the
        stitched filtered path is out of sample. `progress(windows_done, n_windows)`."""
        x = self._hmm_observations(observations)
        k = nonneg_int("n_states", n_states)
        n = x.shape[0]
        self._check_size("HMM walk-forward", x.size, 16 * n * max(k, 1), f"{n} × {k} filtered probabilities")
        d = self._hmm_walk_forward(
            x,
            nonneg_int("formation", formation),
            nonneg_int("step", step),
            k,
            text("covariance_type", covariance_type),
            nonneg_int("max_iterations", max_iterations),
            real("tolerance", tolerance),
            None if n_restarts is None else nonneg_int("n_restarts", n_restarts),
            nonneg_int("seed", seed),
            progress,
            cancel,
        )
        return HmmWalkForward(**d)

    def hmm_online_filter(self, model: Any) -> HmmOnlineFilter:
        """Live regimes: an incremental forward filter with fixed parameters; `update(rows)`
        gives the rows' filtered probabilities, bit-identical to hmm_filter on all rows so far."""
        return self._hmm_online_filter(self._hmm_model_tuple(model))

    PORTFOLIO_PARAMETERS = {
        "returns": str,
        "annualization": float,
        "risk_free_rate": float,
        "covariance": str,
        "min_weight": float,
        "max_weight": float,
        "risk_budgets": list,
        "frontier_points": int,
    }

    def optimize_portfolio(
        self,
        prices: Any,
        method: str = "max_sharpe",
        parameters: dict | None = None,
        asset_names: list[str] | tuple[str, ...] | None = None,
        cancel: CancelToken | None = None,
    ) -> PortfolioResult:
        """Portfolio weights by `method` (min_variance, max_sharpe, risk_parity, equal_weight).
        `prices` is time x assets (a DataFrame's columns become the asset names). `parameters`:
        returns ("simple"/"log"), annualization (252), risk_free_rate (0.02, annual), covariance
        ("sample"/"ledoit_wolf"), min_weight (0), max_weight (1), risk_budgets (risk parity),
        frontier_points (0 = no frontier)."""
        p, names = as_matrix("prices", prices)
        if asset_names is not None:
            names = tuple(str(a) for a in asset_names)
        if names is None:
            names = default_asset_names(p.shape[1])
        if len(names) != p.shape[1]:
            raise ValueError(f"asset_names has {len(names)} names but prices has {p.shape[1]} columns")
        if parameters is not None and not isinstance(parameters, dict):
            raise InputTypeError(f"parameters must be a dict, got {type(parameters).__name__}")
        self._check_size("portfolio optimisation", p.size, 0, f"{p.shape[0]} × {p.shape[1]} prices")
        params = dict(parameters or {})
        unknown = sorted(set(params) - set(self.PORTFOLIO_PARAMETERS))
        if unknown:
            raise ValueError(
                f"unknown parameter {', '.join(repr(u) for u in unknown)}; known: {', '.join(self.PORTFOLIO_PARAMETERS)}"
            )
        clean: dict[str, Any] = {}
        for k, v in params.items():
            if v is None:
                continue
            if k == "risk_budgets":
                clean[k] = [float(b) for b in as_vector("risk_budgets", v)]
            elif k == "frontier_points":
                clean[k] = nonneg_int(k, v)
            elif self.PORTFOLIO_PARAMETERS[k] is float:
                clean[k] = real(k, v)
            else:
                clean[k] = text(k, v)
        d = self._optimize_portfolio(p, text("method", method), clean, names, cancel)
        d["asset_names"] = names
        return PortfolioResult(**d)

    @staticmethod
    def _names_and_target(p, names, asset_names, target):
        if asset_names is not None:
            names = tuple(str(a) for a in asset_names)
        if names is None:
            names = default_asset_names(p.shape[1])
        if len(names) != p.shape[1]:
            raise ValueError(f"asset_names has {len(names)} names but prices has {p.shape[1]} columns")
        if isinstance(target, str):
            if target not in names:
                raise ValueError(f"target '{target}' is not one of the assets")
            target = names.index(target)
        elif target is not None:
            target = nonneg_int("target", target)
        return names, target

    def calculate_sparse_portfolio(
        self,
        prices: Any,
        method: str = "lasso",
        lambda_param: float = DEFAULT,
        alpha: float = DEFAULT,
        target: int | str | None = None,
        k: int | None = None,
        max_iterations: int = DEFAULT,
        tolerance: float = DEFAULT,
        asset_names: list[str] | tuple[str, ...] | None = None,
        cancel: CancelToken | None = None,
        adf_autolag: str | None = None,
    ) -> SparseResult:
        """Find a small mean-reverting basket (methods: lasso, elastic_net, box_tiao, greedy).
        lasso/elastic_net regress the target's price on the others (target None: each asset in turn,
        keeping the most mean-reverting spread); alpha is the L1 ratio; k is greedy's basket size.
        Arguments not given take the core's default (written once, in rustcore's SparseConfig::default():
        lambda_param 0.1, alpha 0.5, max_iterations 10000, tolerance 1e-4).
        adf_autolag: lagged differences of the spread's ADF regression, chosen as statsmodels'
        adfuller does: None = the core's default "aic" (adfuller's default), "bic", "t-stat", or
        "none" (0 lags, the plain Dickey-Fuller t statistic); the lag used is adf_lag."""
        p, names = as_matrix("prices", prices)
        names, target = self._names_and_target(p, names, asset_names, target)
        self._check_size("sparse portfolio", p.size, 8 * p.shape[0], f"{p.shape[0]} × {p.shape[1]} prices")
        d = self._sparse_portfolio(
            p,
            text("method", method),
            _opt(real, "lambda_param", lambda_param),
            _opt(real, "alpha", alpha),
            target,
            None if k is None else nonneg_int("k", k),
            _opt(nonneg_int, "max_iterations", max_iterations),
            _opt(real, "tolerance", tolerance),
            names,
            cancel,
            None if adf_autolag is None else text("adf_autolag", adf_autolag),
        )
        d["asset_names"] = names
        return SparseResult(**d)

    def sparse_lambda_path(
        self,
        prices: Any,
        target: int | str = 0,
        lambdas: Any = None,
        n_lambdas: int = DEFAULT,
        alpha: float = DEFAULT,
        tolerance: float = DEFAULT,
        max_iterations: int = DEFAULT,
        asset_names: list[str] | tuple[str, ...] | None = None,
        cancel: CancelToken | None = None,
        adf_autolag: str | None = None,
    ) -> LambdaPath:
        """Sparsity, half-life and ADF statistic of the basket along a lambda path (lambdas None:
        n_lambdas values from lambda_max down to 1e-3 lambda_max). adf_autolag as in
        calculate_sparse_portfolio (None: AIC); the lag used per lambda is adf_lag. Arguments not given take
        the core's default (LambdaPathConfig::default(): n_lambdas 20, alpha 1, tolerance 1e-4,
        max_iterations 10000)."""
        p, names = as_matrix("prices", prices)
        names, target = self._names_and_target(p, names, asset_names, target)
        lam = None if lambdas is None else [float(v) for v in as_vector("lambdas", lambdas)]
        if lam is not None and not lam:
            raise ValueError("lambdas is empty: give at least one lambda, or None for the default path")
        # (more than the core's 1000 lambdas is the core's error, not a size error)
        n_l = min(len(lam) if lam is not None else (1 if n_lambdas is DEFAULT else nonneg_int("n_lambdas", n_lambdas)), 1000)
        self._check_size("lambda path", p.size, 8 * n_l * (p.shape[1] + 5), f"{n_l} lambdas × {p.shape[1]} assets")
        d = self._sparse_lambda_path(
            p,
            target,
            lam,
            _opt(nonneg_int, "n_lambdas", n_lambdas),
            _opt(real, "alpha", alpha),
            _opt(real, "tolerance", tolerance),
            _opt(nonneg_int, "max_iterations", max_iterations),
            cancel,
            None if adf_autolag is None else text("adf_autolag", adf_autolag),
        )
        d["asset_names"] = names
        return LambdaPath(**d)

    # ---- pairs workflow (issue 17) ----
    def _scan_pairs(self, prices, config, pair_range, cancel, progress, partial) -> dict:
        raise NotImplementedError

    def _johansen(self, prices, det_order, k_ar_diff) -> dict:
        raise NotImplementedError

    def _kalman_hedge(self, y, x, delta, observation_var) -> dict:
        raise NotImplementedError

    @staticmethod
    def _scan_config(
        trend,
        autolag,
        max_lag,
        max_pvalue=None,
        max_qvalue=None,
        min_half_life=None,
        max_half_life=None,
        min_correlation=None,
        top=None,
    ) -> dict:
        """The pairs scan's options, checked, as the keywords the backends pass on: one helper for
        scan_pairs, finalize_pair_scan, scan_pairs_shard and walk_forward's selection. A filter (or
        top) None means no filter and is left out, so a shard or walk_forward gets only what it takes."""
        filters = dict(
            max_pvalue=max_pvalue,
            max_qvalue=max_qvalue,
            min_half_life=min_half_life,
            max_half_life=max_half_life,
            min_correlation=min_correlation,
        )
        cfg: dict[str, Any] = {
            "trend": text("trend", trend),
            "autolag": text("autolag", "none" if autolag is None else autolag),
            "max_lag": None if max_lag is None else nonneg_int("max_lag", max_lag),
            **{k: real(k, v) for k, v in filters.items() if v is not None},
        }
        if top is not None:
            cfg["top"] = nonneg_int("top", top)
        return cfg

    @staticmethod
    def _asset_names(p, names, asset_names):
        if asset_names is not None:
            names = tuple(str(a) for a in asset_names)
        if names is None:
            names = default_asset_names(p.shape[1])
        if len(names) != p.shape[1]:
            raise ValueError(f"asset_names has {len(names)} names but prices has {p.shape[1]} columns")
        return names

    def scan_pairs(
        self,
        prices: Any,
        method: str = "engle_granger",
        trend: str = "c",
        autolag: str | None = None,
        max_lag: int | None = 0,
        max_pvalue: float | None = None,
        max_qvalue: float | None = None,
        min_half_life: float | None = None,
        max_half_life: float | None = None,
        min_correlation: float | None = None,
        top: int | None = None,
        asset_names: list[str] | tuple[str, ...] | None = None,
        cancel: CancelToken | None = None,
        progress: Callable[[int, int], bool | None] | None = None,
        partial: Callable[[dict], bool | None] | None = None,
    ):
        """Engle-Granger test of every pair of the universe `prices` (time x assets), exactly as
        statsmodels coint(prices[:, i], prices[:, j], trend="c", maxlag=max_lag, autolag=autolag)
        for i < j (autolag None: max_lag lags; max_lag None: statsmodels' default), with
        Benjamini-Hochberg q-values, half-life, Hurst (R/S) and return correlation; filtered,
        ranked by p-value, the best `top` kept. progress(done, total) after each chunk of pairs
        and partial(rows) with the chunk's raw rows (q-values NaN); either returning False cancels."""
        from .results import PairScanResult

        if text("method", method) != "engle_granger":
            raise ValueError(f"method must be 'engle_granger', got {method!r}")
        p, names = as_matrix("prices", prices)
        names = self._asset_names(p, names, asset_names)
        n = p.shape[1]
        self._check_size("pairs scan", p.size, 8 * (n * n + 12 * n * max(n - 1, 0) // 2), f"{n} assets")
        cfg = self._scan_config(
            trend, autolag, max_lag, max_pvalue, max_qvalue, min_half_life, max_half_life, min_correlation, top
        )
        d = self._scan_pairs(p, cfg, None, cancel, progress, partial)
        return PairScanResult(asset_names=names, **d)

    def scan_pairs_shard(
        self,
        prices: Any,
        start: int,
        end: int,
        trend: str = "c",
        autolag: str | None = None,
        max_lag: int | None = 0,
        cancel: CancelToken | None = None,
        progress: Callable[[int, int], bool | None] | None = None,
    ):
        """Raw rows of the pairs start..end (exclusive) of the canonical order (0,1), (0,2), ...,
        (0,n-1), (1,2), ... (see pair_count / pair_at): the unit a cluster executor distributes."""
        from .results import PairScanShard

        p, _ = as_matrix("prices", prices)
        a, b = nonneg_int("start", start), nonneg_int("end", end)
        self._check_size("pairs scan shard", p.size, 8 * 12 * max(b - a, 0), f"{max(b - a, 0)} pairs")
        cfg = self._scan_config(trend, autolag, max_lag)
        d = self._scan_pairs(p, cfg, (a, b), cancel, progress, None)
        return PairScanShard(start=a, end=b, **d)

    def finalize_pair_scan(
        self,
        prices: Any,
        shards: list,
        trend: str = "c",
        autolag: str | None = None,
        max_lag: int | None = 0,
        max_pvalue: float | None = None,
        max_qvalue: float | None = None,
        min_half_life: float | None = None,
        max_half_life: float | None = None,
        min_correlation: float | None = None,
        top: int | None = None,
        asset_names: list[str] | tuple[str, ...] | None = None,
    ):
        """Merge shards (PairScanShard, any order, no overlap) into the result scan_pairs gives
        for the same prices and options (bit for bit). Runs in-process (PyO3) on both backends:
        it is q-values, sorting and the Hurst exponent of the reported rows."""
        import hft_lab._rustcore as _rc

        from .results import PAIR_COLUMNS, PairScanResult

        p, names = as_matrix("prices", prices)
        names = self._asset_names(p, names, asset_names)
        cfg = self._scan_config(
            trend, autolag, max_lag, max_pvalue, max_qvalue, min_half_life, max_half_life, min_correlation, top
        )
        rows = {c: np.concatenate([np.asarray(getattr(s, c)) for s in shards]) if shards else np.zeros(0) for c in PAIR_COLUMNS}
        try:
            d = _rc.scan_pairs_finalize(rows, p, **cfg)
        except _rc.ResourceLimitExceeded as e:
            raise ResourceLimitExceeded(str(e)) from None
        return PairScanResult(asset_names=names, **d)

    def johansen(
        self,
        prices: Any,
        det_order: int = 0,
        k_ar_diff: int = 1,
        asset_names: list[str] | tuple[str, ...] | None = None,
    ):
        """Johansen cointegration rank test, as statsmodels coint_johansen(prices, det_order,
        k_ar_diff) (det_order -1: none, 0: constant, 1: linear trend)."""
        from .results import JohansenResult

        p, names = as_matrix("prices", prices)
        names = self._asset_names(p, names, asset_names)
        if not _is_real_scalar(det_order) or int(det_order) != det_order:
            raise InputTypeError(f"det_order must be an integer, got {type(det_order).__name__} {_short(det_order)}")
        det = int(det_order)
        if det not in (-1, 0, 1):
            raise ValueError(f"det_order must be -1 (none), 0 (constant) or 1 (linear trend), got {det}")
        k = nonneg_int("k_ar_diff", k_ar_diff)
        self._check_size("Johansen test", p.size, 8 * (p.shape[1] + 8) ** 2, f"{p.shape[1]} series")
        d = self._johansen(p, det, k)
        return JohansenResult(det_order=det, k_ar_diff=k, asset_names=names, **d)

    def kalman_hedge(self, y: Any, x: Any, delta: float = 1e-4, observation_var: float = 1e-3):
        """Time-varying hedge ratio and intercept of y on x by a forward Kalman filter (no
        smoothing, no look-ahead), the spread (one-step prediction error) and its std."""
        from .results import KalmanHedgeResult

        yv, xv = as_vector("y", y), as_vector("x", x)
        dl, ov = real("delta", delta), real("observation_var", observation_var)
        self._check_size("Kalman hedge", yv.size + xv.size, 32 * yv.size, f"{yv.size} observations")
        d = self._kalman_hedge(yv, xv, dl, ov)
        return KalmanHedgeResult(delta=dl, observation_var=ov, **d)

    # ---- asset moments and Ledoit-Wolf covariance (issue 15: algorithms only in the core) ----

    def estimate_moments(
        self,
        prices: Any,
        returns: str | None = None,
        annualization: float | None = None,
        covariance: str | None = None,
        asset_names: list[str] | tuple[str, ...] | None = None,
        cancel: CancelToken | None = None,
    ) -> AssetMoments:
        """Annualised mean returns and covariance of `prices` (time x assets), estimated exactly as
        optimize_portfolio estimates them (same checks, same errors). None = the core's default:
        returns "simple", annualization 252, covariance "sample" ("ledoit_wolf": scikit-learn's)."""
        p, names = as_matrix("prices", prices)
        if asset_names is not None:
            names = tuple(str(a) for a in asset_names)
        if names is None:
            names = default_asset_names(p.shape[1])
        if len(names) != p.shape[1]:
            raise ValueError(f"asset_names has {len(names)} names but prices has {p.shape[1]} columns")
        n = p.shape[1]
        self._check_size("asset moments", p.size, 8 * n * (n + 1), f"{p.shape[0]} × {n} prices")
        d = self._estimate_moments(
            p,
            None if returns is None else text("returns", returns),
            None if annualization is None else real("annualization", annualization),
            None if covariance is None else text("covariance", covariance),
            cancel,
        )
        d["asset_names"] = names
        return AssetMoments(**d)

    def ledoit_wolf(self, data: Any, cancel: CancelToken | None = None) -> LedoitWolfResult:
        """Ledoit-Wolf shrinkage covariance of `data` (samples x features), exactly
        sklearn.covariance.LedoitWolf().fit(data): location_, covariance_, shrinkage_."""
        x, _ = as_matrix("data", data)
        n = x.shape[1]
        self._check_size("Ledoit-Wolf covariance", x.size, 8 * n * (n + 1), f"{x.shape[0]} × {n} data")
        return LedoitWolfResult(**self._ledoit_wolf(x, cancel))

    def _walk_forward(self, prices, params, progress, cancel) -> dict:
        raise NotImplementedError

    def walk_forward(
        self,
        prices: Any,
        formation: int,
        trading: int,
        step: int | None = None,
        selection: dict | None = None,
        hedge: str = "ols",
        delta: float = 1e-4,
        observation_var: float = 1e-3,
        entry: float = 2.0,
        exit: float = 0.0,
        stop: float | None = None,
        cost_bps: float = 0.0,
        max_pairs: int = 5,
        asset_names: list[str] | tuple[str, ...] | None = None,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ):
        """Walk-forward validation (see WalkForwardResult). selection: the scan's options
        (trend, autolag, max_lag, max_pvalue [0.05], max_qvalue, min_half_life, max_half_life,
        min_correlation); the best max_pairs by p-value are traded. hedge "ols" (fixed at
        formation) or "kalman" (forward filter from the formation start). progress(window, fraction)."""
        from .results import WalkForwardResult

        p, names = as_matrix("prices", prices)
        names = self._asset_names(p, names, asset_names)
        if selection is not None and not isinstance(selection, dict):
            raise InputTypeError(f"selection must be a dict, got {type(selection).__name__}")
        sel = {"max_pvalue": 0.05, **(selection or {})}
        known = {"trend", "autolag", "max_lag", "max_pvalue", "max_qvalue", "min_half_life", "max_half_life", "min_correlation"}
        unknown = sorted(set(sel) - known)
        if unknown:
            raise ValueError(f"unknown selection option {', '.join(repr(u) for u in unknown)}; known: {', '.join(sorted(known))}")
        cfg = self._scan_config(sel.pop("trend", "c"), sel.pop("autolag", None), sel.pop("max_lag", 0), **sel)
        params = dict(
            formation=nonneg_int("formation", formation),
            trading=nonneg_int("trading", trading),
            step=None if step is None else nonneg_int("step", step),
            hedge=text("hedge", hedge),
            delta=real("delta", delta),
            observation_var=real("observation_var", observation_var),
            entry=real("entry", entry),
            exit=real("exit", exit),
            stop=None if stop is None else real("stop", stop),
            cost_bps=real("cost_bps", cost_bps),
            max_pairs=nonneg_int("max_pairs", max_pairs),
            **cfg,
        )
        self._check_size("walk-forward", p.size, 8 * 4 * p.shape[0], f"{p.shape[0]} bars")
        d = self._walk_forward(p, params, progress, cancel)
        return WalkForwardResult(asset_names=names, **d)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


# ---- canonical pair order of the pairs scan (issue 17), for executors that shard it ----


def pair_count(n_assets: int) -> int:
    """Number of pairs (i, j), i < j, of n_assets assets."""
    n = int(n_assets)
    return n * (n - 1) // 2 if n > 1 else 0


def pair_number(i: int, j: int, n_assets: int) -> int:
    """Position of the pair (i, j), i < j, in the canonical order (0,1), (0,2), ..., (1,2), ..."""
    return i * (2 * n_assets - i - 1) // 2 + (j - i - 1)


def pair_shards(n_assets: int, n_shards: int) -> list[tuple[int, int]]:
    """Contiguous (start, end) ranges of the canonical order, as equal as possible."""
    total = pair_count(n_assets)
    k = max(1, min(int(n_shards), max(total, 1)))
    return [(total * s // k, total * (s + 1) // k) for s in range(k)]
