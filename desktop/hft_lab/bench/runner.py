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
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


class BenchCancelled(Exception):
    """The benchmark was cancelled (between cells or between calls)."""


def _is_cancelled(cancel) -> bool:
    if cancel is None:
        return False
    if hasattr(cancel, "cancelled"):
        return bool(cancel.cancelled)
    if hasattr(cancel, "is_set"):
        return cancel.is_set()
    return bool(cancel())


def _check_cancel(cancel) -> None:
    if _is_cancelled(cancel):
        raise BenchCancelled("benchmark cancelled")


# ---------------------------------------------------------------------------------------------
# timing primitives
# ---------------------------------------------------------------------------------------------


@dataclass
class Measurement:
    op: str
    size: str
    backend: str
    calls: int  # successful timed calls
    failures: int
    p50_us: float
    p95_us: float
    p99_us: float
    mean_us: float
    ops_per_s: float
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _warm(fn, warmup: int, max_seconds: float, cancel=None) -> None:
    deadline = time.perf_counter() + max_seconds
    for _ in range(warmup):
        _check_cancel(cancel)
        try:
            fn()
        except Exception:
            pass
        if time.perf_counter() > deadline:
            break


def timeit(
    fn: Callable[[], Any],
    op: str,
    size: str,
    backend: str,
    calls: int = 100,
    warmup: int = 5,
    max_seconds: float = 20.0,
    note: str = "",
    min_calls: int = 5,
    warmup_seconds: float = 1.0,
    cancel=None,
) -> Measurement:
    """Warm up, then time up to `calls` calls one by one (stop when `max_seconds` is used and at
    least `min_calls` succeeded). Failures are counted, never timed."""
    _warm(fn, warmup, warmup_seconds, cancel)
    times: list[int] = []
    failures = 0
    deadline = time.perf_counter() + max_seconds
    for _ in range(calls):
        _check_cancel(cancel)
        t0 = time.perf_counter_ns()
        try:
            fn()
        except BenchCancelled:
            raise
        except Exception:
            failures += 1
        else:
            times.append(time.perf_counter_ns() - t0)
        if time.perf_counter() > deadline and len(times) >= min_calls:
            break
        if time.perf_counter() > deadline + 5 * max_seconds + 10:  # everything fails: do not loop forever
            break
    if not times:
        return Measurement(op, size, backend, 0, failures, *(float("nan"),) * 4, 0.0, note)
    us = np.asarray(times, dtype=np.float64) / 1e3
    p50, p95, p99 = np.percentile(us, [50, 95, 99])
    return Measurement(
        op,
        size,
        backend,
        len(times),
        failures,
        float(p50),
        float(p95),
        float(p99),
        float(us.mean()),
        1e6 / float(us.mean()),
        note,
    )


def throughput(fn: Callable[[], Any], concurrency: int, calls: int, max_seconds: float, cancel=None) -> dict:
    """ops/s with `concurrency` threads calling `fn` at once: up to `calls` calls in total (at least
    one per thread), stopping when the time budget is used. Failures are counted, not as ops."""
    c = max(1, int(concurrency))
    total = max(int(calls), c)
    tickets = itertools.count()
    lock = threading.Lock()
    ok = [0]
    failed = [0]
    start = threading.Barrier(c + 1)
    deadline = [0.0]

    def worker():
        start.wait()
        first = True
        while True:
            if _is_cancelled(cancel):
                return
            if not first and time.perf_counter() > deadline[0]:
                return
            first = False
            with lock:
                if next(tickets) >= total:
                    return
            try:
                fn()
            except Exception:
                with lock:
                    failed[0] += 1
            else:
                with lock:
                    ok[0] += 1

    with ThreadPoolExecutor(max_workers=c, thread_name_prefix="bench") as ex:
        futs = [ex.submit(worker) for _ in range(c)]
        deadline[0] = time.perf_counter() + max_seconds
        start.wait()
        t0 = time.perf_counter()
        for f in futs:
            f.result()
        el = time.perf_counter() - t0
    _check_cancel(cancel)
    return {"concurrency": c, "calls": ok[0], "failures": failed[0], "seconds": el, "ops_per_s": ok[0] / el if el > 0 else 0.0}


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------

FAMILIES = ("echo", "mean_reversion", "portfolio", "hmm", "sparse", "hmm_mv")

DEFAULT_SIZES = {
    "echo": ["16", "100k", "1M"],
    "mean_reversion": ["1k", "100k", "1M"],
    "portfolio": ["20", "50", "500"],
    "hmm": ["10k", "100k"],
    "sparse": ["500x20", "2000x100", "10000x500"],
    "hmm_mv": ["100k"],
}
QUICK_SIZES = {
    "echo": ["16"],
    "mean_reversion": ["1k"],
    "portfolio": ["20"],
    "hmm": ["10k"],
    "sparse": ["500x20"],
    "hmm_mv": ["1k"],
}
SIZE_HELP = {
    "echo": "values (float64)",
    "mean_reversion": "prices",
    "portfolio": "assets (or TxN: observations x assets; default T = max(500, 2N))",
    "hmm": "observations (x n_states)",
    "sparse": "TxN: observations x assets (lasso of asset 0 on the others)",
    "hmm_mv": "observations (x 3 features x n_states)",
}


@dataclass
class BenchConfig:
    operations: list[str] = field(default_factory=lambda: list(FAMILIES))
    sizes: dict[str, list[str]] = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_SIZES.items()})
    backends: list[str] = field(default_factory=lambda: ["pyo3", "grpc"])
    calls: int = 1000  # at most, per cell; the time budget usually stops fast cells earlier
    min_calls: int = 5
    warmup: int = 3
    cell_seconds: float = 2.0  # time budget of a timed cell (once min_calls succeeded)
    concurrency: list[int] = field(default_factory=lambda: [1, 2, 4])
    concurrency_seconds: float = 1.0  # per concurrency level
    references: bool = True
    reference_min_calls: int = 3
    sections: list[str] = field(default_factory=lambda: ["transport", "stream"])  # extra (CLI) sections
    quick: bool = False
    hmm_states: int = 3
    hmm_iterations: int = 20
    sparse_lambda: float = 10.0
    sparse_tolerance: float = 1e-4
    sparse_max_iterations: int = 10_000
    seed: int = 42

    @classmethod
    def full(cls, **kw) -> BenchConfig:
        return cls(**kw)

    @classmethod
    def quick_config(cls, **kw) -> BenchConfig:
        base = dict(
            sizes={k: list(v) for k, v in QUICK_SIZES.items()},
            calls=300,
            min_calls=3,
            warmup=2,
            cell_seconds=0.25,
            concurrency=[1, 2],
            concurrency_seconds=0.2,
            reference_min_calls=2,
            quick=True,
            hmm_iterations=10,
        )
        base.update(kw)
        return cls(**base)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> BenchConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# ---------------------------------------------------------------------------------------------
# sizes
# ---------------------------------------------------------------------------------------------

_SUFFIX = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}


def parse_count(s: str) -> int:
    """'16', '1k', '100k', '1M', '1.5M', '1_000' -> int."""
    t = str(s).strip().lower().replace("_", "").replace(",", "")
    if not t:
        raise ValueError("empty size")
    mult = 1
    if t[-1] in _SUFFIX:
        mult = _SUFFIX[t[-1]]
        t = t[:-1]
    try:
        v = float(t) * mult
    except ValueError:
        raise ValueError(f"size {s!r} is not a number like 16, 1k, 100k or 1M") from None
    if v < 1 or v != int(v):
        raise ValueError(f"size {s!r} must be a positive whole number")
    return int(v)


def human(n: int) -> str:
    for suf, m in (("M", 1_000_000), ("k", 1_000)):
        if n >= m and n % m == 0:
            return f"{n // m}{suf}"
    return str(n)


def parse_size(family: str, spec: str) -> tuple[int, ...]:
    s = str(spec).strip().lower().replace("×", "x").replace(" ", "")
    if family in ("portfolio", "sparse"):
        if "x" in s:
            a, b = s.split("x", 1)
            t, n = parse_count(a), parse_count(b)
        elif family == "portfolio":
            n = parse_count(s)
            t = max(500, 2 * n)
        else:
            raise ValueError(f"sparse size {spec!r} must be TxN (observations x assets), e.g. 10000x500")
        if n < 2:
            raise ValueError(f"{family} size {spec!r} needs at least 2 assets")
        if t < 10:
            raise ValueError(f"{family} size {spec!r} needs at least 10 observations")
        return (t, n)
    n = parse_count(s)
    if family in ("hmm", "hmm_mv") and n < 100:
        raise ValueError(f"hmm size {spec!r}: at least 100 observations")
    if family == "mean_reversion" and n < 30:
        raise ValueError(f"mean_reversion size {spec!r}: at least 30 prices (lookback 20)")
    return (n,)


def parse_sizes(family: str, text: str | Iterable[str]) -> list[str]:
    """'1k, 100k 1M' -> ['1k', '100k', '1M'] (validated)."""
    items = text.replace(";", ",").replace(" ", ",").split(",") if isinstance(text, str) else list(text)
    out = [i.strip() for i in items if str(i).strip()]
    for i in out:
        parse_size(family, i)
    if not out:
        raise ValueError(f"{family}: no size given")
    return out


def parse_int_list(text: str, name: str = "concurrency") -> list[int]:
    items = [i for i in text.replace(";", ",").replace(" ", ",").split(",") if i.strip()]
    try:
        out = [int(i) for i in items]
    except ValueError:
        raise ValueError(f"{name} must be a list of whole numbers like 1, 2, 4; got {text!r}") from None
    if not out or any(v < 1 or v > 256 for v in out):
        raise ValueError(f"{name} values must be between 1 and 256; got {text!r}")
    return sorted(set(out))


# ---------------------------------------------------------------------------------------------
# inputs (seeded; cached because a 100k-observation HMM series takes a second to generate)
# ---------------------------------------------------------------------------------------------


def factor_prices(n_assets: int, n_obs: int, seed: int) -> np.ndarray:
    """Seeded 5-factor model prices (time x assets): well-conditioned covariance, positive drifts."""
    rng = np.random.default_rng(seed)
    betas = rng.normal(0.0, 1.0, (n_assets, 5))
    factors = rng.normal(0.0003, 0.01, (n_obs, 5))
    idio = rng.normal(0.0, 0.01, (n_obs, n_assets)) * rng.uniform(0.5, 2.0, n_assets)
    alpha = rng.normal(0.0004, 0.0003, n_assets)
    r = alpha + 0.3 * factors @ betas.T + idio
    return 100.0 * np.exp(np.cumsum(r, axis=0))


def sparse_prices(n_obs: int, n_assets: int, seed: int = 0) -> np.ndarray:
    """Seeded price levels (time x assets): random walks with a market factor; asset 0 and every
    10th asset are cointegrated with 3 others (plus AR(1) noise)."""
    rng = np.random.default_rng(seed)
    m = rng.normal(0, 1, n_obs)
    beta = rng.uniform(0.2, 1.0, n_assets)
    p = 100 + np.cumsum(m[:, None] * beta[None, :] + rng.normal(0, 1, (n_obs, n_assets)), axis=0)
    pool = np.array([i for i in range(n_assets) if i % 10 != 0])
    targets = list(range(0, n_assets, 10)) if len(pool) else []
    # AR(1) noise e[t] = 0.8 e[t-1] + z[t] for all cointegrated columns at once (no scipy needed)
    z = rng.normal(0, 2, (n_obs, len(targets)))
    e = np.empty_like(z)
    if len(targets):
        e[0] = z[0]
        for t in range(1, n_obs):
            e[t] = 0.8 * e[t - 1] + z[t]
    for i, j in enumerate(targets):
        others = rng.choice(pool, min(3, len(pool)), replace=False)
        c = rng.uniform(0.3, 1.0, len(others))
        p[:, j] = 20 + p[:, others] @ c + e[:, i]
    return np.ascontiguousarray(p)


@functools.lru_cache(maxsize=12)
def _input(family: str, dims: tuple, seed: int, n_states: int):
    import zlib

    rng = np.random.default_rng(seed + zlib.crc32(repr((family,) + tuple(dims)).encode()) % 1000)
    if family == "echo":
        return rng.normal(size=dims[0])
    if family == "mean_reversion":
        return 100 + np.cumsum(rng.normal(0, 1, dims[0]))
    if family == "portfolio":
        t, n = dims
        return factor_prices(n, t, seed=n)
    if family == "hmm":
        from hft_lab.data import regime_switching_returns

        x, _ = regime_switching_returns(dims[0], seed=7)
        k = n_states
        q = np.quantile(x, np.linspace(0, 1, k + 1))
        means = np.array([x[(x >= q[i]) & (x <= q[i + 1])].mean() for i in range(k)])
        trans = np.full((k, k), 0.1 / max(k - 1, 1))
        np.fill_diagonal(trans, 0.9 if k > 1 else 1.0)
        init = dict(start_prob=np.full(k, 1 / k), transmat=trans, means=means, variances=np.full(k, x.var()))
        return x, init
    if family == "sparse":
        t, n = dims
        return sparse_prices(t, n, seed=1)
    if family == "hmm_mv":
        return (dims[0],)  # the series depends on the covariance type: see _hmm_mv_input
    raise ValueError(family)


@dataclass
class Payload:
    family: str
    dims: tuple
    label: str
    values: int  # float64 values sent to the backend
    data: Any
    cfg: BenchConfig


# ---------------------------------------------------------------------------------------------
# operations and references
# ---------------------------------------------------------------------------------------------


@dataclass
class Reference:
    name: str
    note: str
    modules: tuple[str, ...]  # importable => available
    make: Callable[[Payload, RunContext], Callable[[], Any]]  # the timed call
    accuracy: Callable[[Any, Any, Payload], str] | None = None  # (ref output, Rust result, payload) -> text
    extra: Callable[[Any], dict] | None = None  # figures taken from the untimed output
    needs_python_child: bool = False  # runs `python -m …` (impossible in a frozen app)

    def available(self) -> bool:
        import importlib.util

        if self.needs_python_child and getattr(sys, "frozen", False):
            return False
        try:
            return all(importlib.util.find_spec(m) is not None for m in self.modules)
        except (ImportError, ValueError):
            return False


@dataclass
class Operation:
    name: str
    family: str
    unit: str
    call: Callable[[Any, Payload], Any]  # (backend, payload) -> result
    references: list[Reference] = field(default_factory=list)
    per_iteration: bool = False  # speedups per EM iteration (HMM)

    def label(self, dims: tuple) -> str:
        if self.family in ("portfolio",):
            return f"{dims[1]} assets" if dims[0] == max(500, 2 * dims[1]) else f"{dims[0]}x{dims[1]}"
        if self.family == "sparse":
            return f"{dims[0]}x{dims[1]}"
        return f"{human(dims[0])} {self.unit}"

    def payload(self, spec: str, cfg: BenchConfig) -> Payload:
        dims = parse_size(self.family, spec)
        data = _input(self.family, dims, cfg.seed, cfg.hmm_states)
        values = int(np.prod(dims))
        return Payload(self.family, dims, self.label(dims), values, data, cfg)


def _max_abs(a, b) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    m = np.isfinite(a) & np.isfinite(b)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a[m] - b[m]))) if m.any() else 0.0


# -- echo


def _echo_call(b, p):
    return b.echo(p.data)


def _py_echo_make(p, ctx):
    from hft_lab._proto.hftlab.v1 import hftlab_pb2 as pb

    srv = ctx.python_echo()
    x = p.data

    def call():
        raw = srv.call(pb.EchoRequest(payload=x.tobytes()).SerializeToString(), timeout=60)
        return np.frombuffer(pb.EchoResponse.FromString(raw).payload, dtype="<f8").copy()

    return call


def _echo_acc(out, base, p):
    return "identical" if np.array_equal(out, base) else f"max |Δ| {_max_abs(out, base):.2g}"


# -- mean reversion


def _mr_call(b, p):
    return b.calculate_mean_reversion(p.data, lookback=20)


def _pandas_z_make(p, ctx):
    import pandas as pd

    s = pd.Series(p.data)

    def z():
        return ((s - s.rolling(20).mean()) / s.rolling(20).std()).to_numpy()

    return z


def _pandas_std_make(p, ctx):
    import pandas as pd

    s = pd.Series(p.data)
    return lambda: s.rolling(20).std().to_numpy()


# -- portfolio


def _moments(prices):
    r = prices[1:] / prices[:-1] - 1.0
    return r.mean(axis=0) * 252.0, np.cov(r, rowvar=False, ddof=1) * 252.0


def _pf_call(method):
    return lambda b, p: b.optimize_portfolio(p.data, method=method)


def _cvxpy_make(method):
    def make(p, ctx):
        import cvxpy as cp

        prices = p.data
        solve_times: list[float] = []

        def run():
            mu, sigma = _moments(prices)
            n = len(mu)
            if method == "min_variance":
                w = cp.Variable(n)
                prob = cp.Problem(cp.Minimize(cp.quad_form(w, cp.psd_wrap(sigma))), [cp.sum(w) == 1, w >= 0, w <= 1])
                prob.solve(solver="CLARABEL")
                wv = w.value
            else:  # max Sharpe by the standard homogenisation
                y, k = cp.Variable(n), cp.Variable()
                cons = [(mu - 0.02) @ y == 1, cp.sum(y) == k, y >= 0, y <= k, k >= 0]
                prob = cp.Problem(cp.Minimize(cp.quad_form(y, cp.psd_wrap(sigma))), cons)
                prob.solve(solver="CLARABEL")
                wv = y.value / k.value
            if prob.status != "optimal":
                raise RuntimeError(f"cvxpy status {prob.status}")
            solve_times.append(prob.solver_stats.solve_time or float("nan"))
            return wv

        run.solve_times = solve_times  # type: ignore[attr-defined]
        return run

    return make


def _pypfopt_make(method):
    def make(p, ctx):
        from pypfopt import EfficientFrontier

        prices = p.data

        def run():
            mu, sigma = _moments(prices)
            ef = EfficientFrontier(mu, sigma, weight_bounds=(0, 1), solver="CLARABEL")
            if method == "min_variance":
                ef.min_volatility()
            else:
                ef.max_sharpe(risk_free_rate=0.02)
            return np.asarray(ef.weights, dtype=np.float64)

        return run

    return make


def _w_acc(out, base, p):
    return f"max |Δw| {_max_abs(out, base.weights):.1e}"


# -- hmm


def _hmm_call(b, p):
    x, init = p.data
    cfg = p.cfg
    return b.run_hmm(x, n_states=cfg.hmm_states, max_iterations=cfg.hmm_iterations, tolerance=0.0, init=init)


def _hmmlearn_make(impl):
    def make(p, ctx):
        import warnings

        from hmmlearn.hmm import GaussianHMM

        x, init = p.data
        X = x.reshape(-1, 1)
        k, iters = p.cfg.hmm_states, p.cfg.hmm_iterations

        def fit():
            h = GaussianHMM(
                k,
                covariance_type="diag",
                n_iter=iters,
                tol=0.0,
                covars_prior=0.0,
                init_params="",
                params="stmc",
                implementation=impl,
            )
            h.startprob_ = init["start_prob"]
            h.transmat_ = init["transmat"]
            h.means_ = init["means"].reshape(-1, 1)
            h.covars_ = init["variances"].reshape(-1, 1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                h.fit(X)
            return h

        return fit

    return make


def _hmm_acc(h, base, p):
    order = np.argsort(h.means_.ravel())
    return (
        f"max |Δmean| {_max_abs(h.means_.ravel()[order], base.means):.1e}, "
        f"max |Δvar| {_max_abs(h.covars_.ravel()[order], base.variances):.1e}"
    )


def _hmm_extra(h):
    return {"iterations": int(h.monitor_.iter)}


# -- multivariate HMM (3 features x n_states, diag and full; the `hmm` helper's block)


@functools.lru_cache(maxsize=4)
def _hmm_mv_input(n: int, k: int, ct: str):
    """Seeded 3-feature regime-switching returns and a fixed start (bucket means along feature 0,
    the data covariance, sticky transitions)."""
    rng = np.random.default_rng(11)
    mu = np.array([[-0.002, -0.001, 0.0], [0.0, 0.0005, 0.0], [0.001, 0.002, 0.001]])[: max(k, 1)]
    sd = np.array([0.02, 0.008, 0.012])[: max(k, 1)]
    s = np.zeros(n, dtype=np.int64)
    u = rng.random(n)
    for t in range(1, n):
        s[t] = s[t - 1] if u[t] > 0.02 else rng.integers(len(mu))
    mix = np.array([[1.0, 0.0, 0.0], [0.5, 0.8, 0.0], [0.3, 0.2, 0.9]])
    x = mu[s] + (rng.normal(size=(n, 3)) @ mix.T) * sd[s, None]
    order = np.argsort(x[:, 0], kind="stable")
    means = np.array([x[order[j * n // k : (j + 1) * n // k]].mean(axis=0) for j in range(k)])
    cov = np.cov(x.T, bias=True)
    if ct == "diag":
        cov = np.diag(np.diag(cov))
    trans = np.full((k, k), 0.1 / max(k - 1, 1))
    np.fill_diagonal(trans, 0.9 if k > 1 else 1.0)
    init = dict(start_prob=np.full(k, 1 / k), transmat=trans, means=means, covars=np.repeat(cov[None], k, axis=0))
    return np.ascontiguousarray(x), init


def _hmm_mv_call(ct):
    def call(b, p):
        x, init = _hmm_mv_input(p.data[0], p.cfg.hmm_states, ct)
        return b.run_hmm_mv(
            x, n_states=p.cfg.hmm_states, covariance_type=ct, max_iterations=p.cfg.hmm_iterations, tolerance=0.0, init=init
        )

    return call


def _hmmlearn_mv_make(ct, impl):
    def make(p, ctx):
        import warnings

        from hmmlearn.hmm import GaussianHMM

        x, init = _hmm_mv_input(p.data[0], p.cfg.hmm_states, ct)
        k, iters = p.cfg.hmm_states, p.cfg.hmm_iterations

        def fit():
            h = GaussianHMM(
                k, covariance_type=ct, n_iter=iters, tol=0.0, covars_prior=0.0, init_params="", params="stmc", implementation=impl
            )
            h.startprob_ = init["start_prob"]
            h.transmat_ = init["transmat"]
            h.means_ = init["means"]
            h.covars_ = np.array([np.diag(c) for c in init["covars"]]) if ct == "diag" else init["covars"]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                h.fit(x)
            return h

        return fit

    return make


def _hmm_mv_acc(h, base, p):
    order = np.argsort(h.means_[:, 0])
    cov = h.covars_[order]
    rel = abs(h.score(_hmm_mv_input(p.data[0], p.cfg.hmm_states, base.covariance_type)[0]) - base.log_likelihood)
    return (
        f"max |Δmean| {_max_abs(h.means_[order], base.means):.1e}, "
        f"max |Δcov| {_max_abs(cov, base.covars):.1e}, |ΔLL|/|LL| {rel / abs(base.log_likelihood):.1e}"
    )


# -- sparse


def _sparse_call(b, p):
    cfg = p.cfg
    fn = b.calculate_sparse_portfolio  # AttributeError => "not available"
    return fn(
        p.data,
        method="lasso",
        lambda_param=cfg.sparse_lambda,
        target=0,
        max_iterations=cfg.sparse_max_iterations,
        tolerance=cfg.sparse_tolerance,
    )


def _sklearn_make(precompute):
    def make(p, ctx):
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import Lasso

        prices = p.data
        cfg = p.cfg

        def fit():
            m = Lasso(
                alpha=cfg.sparse_lambda,
                tol=cfg.sparse_tolerance,
                max_iter=cfg.sparse_max_iterations,
                fit_intercept=True,
                precompute=precompute,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("error", ConvergenceWarning)  # not converged = failed call, like the core
                m.fit(prices[:, 1:], prices[:, 0])
            return m

        return fit

    return make


def _sparse_acc(m, base, p):
    w = np.asarray(getattr(base, "weights"), dtype=np.float64)
    beta = -w[1:]
    txt = f"max |Δβ| {_max_abs(m.coef_, beta):.1e}"
    icpt = getattr(base, "intercept", None)
    if icpt is not None:
        txt += f", |Δintercept| {abs(float(m.intercept_) - float(icpt)):.1e}"
    return txt + f", nonzero {int(np.sum(m.coef_ != 0))} vs {int(np.sum(beta != 0))}"


def _sk_extra(m):
    return {"iterations": int(m.n_iter_)}


OPERATIONS: dict[str, Operation] = {}


def _register(op: Operation) -> None:
    OPERATIONS[op.name] = op


_register(
    Operation(
        "echo",
        "echo",
        "values",
        _echo_call,
        [
            Reference(
                "python-grpcio",
                "plain Python grpcio echo server (separate process), same bytes encoding",
                ("grpc",),
                _py_echo_make,
                _echo_acc,
                needs_python_child=True,
            )
        ],
    )
)
_register(
    Operation(
        "mean_reversion",
        "mean_reversion",
        "prices",
        _mr_call,
        [
            Reference(
                "pandas",
                "rolling(20) mean+std -> z",
                ("pandas",),
                _pandas_z_make,
                lambda o, b, p: f"max |Δz| {_max_abs(o, b.zscore):.1e}",
            ),
            Reference(
                "pandas-rolling-std",
                "rolling(20).std() alone",
                ("pandas",),
                _pandas_std_make,
                lambda o, b, p: f"max |Δstd| {_max_abs(o, b.rolling_std):.1e}",
            ),
        ],
    )
)
for _m in ("max_sharpe", "min_variance"):
    _register(
        Operation(
            f"portfolio:{_m}",
            "portfolio",
            "assets",
            _pf_call(_m),
            [
                Reference(
                    "cvxpy+clarabel",
                    "numpy mu/Sigma + cvxpy build + Clarabel (default tolerances)",
                    ("cvxpy", "clarabel"),
                    _cvxpy_make(_m),
                    _w_acc,
                ),
                Reference(
                    "pyportfolioopt",
                    "EfficientFrontier(mu, Sigma, solver=CLARABEL)",
                    ("pypfopt", "cvxpy", "clarabel"),
                    _pypfopt_make(_m),
                    _w_acc,
                ),
            ],
        )
    )
_register(
    Operation(
        "hmm",
        "hmm",
        "obs",
        _hmm_call,
        [
            Reference(
                f"hmmlearn-{impl}",
                f"GaussianHMM implementation={impl!r}, covars_prior=0, same init, fixed iterations",
                ("hmmlearn",),
                _hmmlearn_make(impl),
                _hmm_acc,
                _hmm_extra,
            )
            for impl in ("log", "scaling")
        ],
        per_iteration=True,
    )
)
for _ct in ("diag", "full"):
    _register(
        Operation(
            f"hmm_mv:{_ct}",
            "hmm_mv",
            "obs",
            _hmm_mv_call(_ct),
            [
                Reference(
                    f"hmmlearn-{impl}",
                    f"GaussianHMM(covariance_type={_ct!r}, implementation={impl!r}), covars_prior=0, same init, fixed iterations",
                    ("hmmlearn",),
                    _hmmlearn_mv_make(_ct, impl),
                    _hmm_mv_acc,
                    _hmm_extra,
                )
                for impl in ("log", "scaling")
            ],
            per_iteration=True,
        )
    )
_register(
    Operation(
        "sparse:lasso",
        "sparse",
        "",
        _sparse_call,
        [
            Reference(
                "sklearn",
                "Lasso(alpha=λ, tol, max_iter), fit_intercept=True (default precompute=False)",
                ("sklearn",),
                _sklearn_make(False),
                _sparse_acc,
                _sk_extra,
            ),
            Reference(
                "sklearn-gram",
                "the same with precompute=True (Gram matrix, like the core)",
                ("sklearn",),
                _sklearn_make(True),
                _sparse_acc,
                _sk_extra,
            ),
        ],
    )
)


def operations_for(families: Iterable[str]) -> list[Operation]:
    fams = list(families)
    unknown = [f for f in fams if f not in FAMILIES and f not in OPERATIONS]
    if unknown:
        raise ValueError(f"unknown operation {', '.join(unknown)}; known: {', '.join(FAMILIES)}")
    return [op for op in OPERATIONS.values() if op.family in fams or op.name in fams]


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


# ---------------------------------------------------------------------------------------------
# machine description
# ---------------------------------------------------------------------------------------------

_VERSIONS = (
    ("numpy", "numpy"),
    ("pandas", "pandas"),
    ("grpcio", "grpcio"),
    ("scipy", "scipy"),
    ("cvxpy", "cvxpy"),
    ("clarabel", "clarabel"),
    ("hmmlearn", "hmmlearn"),
    ("scikit-learn", "scikit-learn"),
    ("pyportfolioopt", "pyportfolioopt"),
    ("PySide6", "PySide6-Essentials"),
    ("pyqtgraph", "pyqtgraph"),
)


def machine(backends: dict | None = None) -> dict:
    from importlib import metadata

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cores": os.cpu_count(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if "cpu" not in info:
        info["cpu"] = platform.processor() or platform.machine()
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            info["memory_gb"] = round(kb / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        info["load_average"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        pass
    try:
        import hft_lab

        info["hft_lab"] = hft_lab.__version__
    except Exception:
        pass
    versions = {}
    for label, dist in _VERSIONS:
        try:
            versions[label] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    info["versions"] = versions
    for name, b in (backends or {}).items():
        try:
            si = b.info()
            info[f"{name}_core"] = si.core_version
            if name == "grpc":
                info["grpcd"] = si.server_version
        except Exception as e:
            info[f"{name}_core"] = f"unavailable ({type(e).__name__})"
    return info


def describe_machine(info: dict) -> str:
    v = info.get("versions", {})
    la = info.get("load_average")
    parts = [
        f"CPU: {info.get('cpu', '?')}, {info.get('cores', '?')} logical cores, {info.get('memory_gb', '?')} GB RAM",
        f"OS: {info.get('platform', '?')}; Python {info.get('python', '?')}; hft_lab {info.get('hft_lab', '?')}"
        + (f", core {info['pyo3_core']}" if "pyo3_core" in info else "")
        + (f", grpcd {info['grpcd']}" if "grpcd" in info else ""),
        "versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
    ]
    if la:
        end = info.get("load_average_end")
        parts.append(
            f"load average at start {la[0]:.2f}"
            + (f", at end {end[0]:.2f}" if end else "")
            + f" (on {info.get('cores', '?')} cores)"
        )
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# the Python grpcio echo server (reference for the echo operation)
# ---------------------------------------------------------------------------------------------


class PythonEchoServer:
    """The plain grpcio echo server in a child process (exits when our end of its stdin closes)."""

    def __enter__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hft_lab.bench.echo_server"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        try:
            port = int(self.proc.stdout.readline())
            import grpc

            self.channel = grpc.insecure_channel(
                f"127.0.0.1:{port}",
                options=[("grpc.max_send_message_length", 512 << 20), ("grpc.max_receive_message_length", 512 << 20)],
            )
            grpc.channel_ready_future(self.channel).result(timeout=10)
        except Exception:
            self.proc.kill()
            self.proc.wait(5)
            raise
        self.call = self.channel.unary_unary("/bench.Echo/Echo")  # raw bytes in, raw bytes out
        return self

    def __exit__(self, *exc):
        self.channel.close()
        self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class RunContext:
    """Things a run starts lazily and stops at the end (the Python echo server)."""

    def __init__(self):
        self._echo: PythonEchoServer | None = None

    def python_echo(self) -> PythonEchoServer:
        if self._echo is None:
            self._echo = PythonEchoServer().__enter__()
        return self._echo

    def close(self) -> None:
        if self._echo is not None:
            self._echo.__exit__(None, None, None)
            self._echo = None


# ---------------------------------------------------------------------------------------------
# the matrix
# ---------------------------------------------------------------------------------------------


def plan(cfg: BenchConfig) -> list[tuple[Operation, str]]:
    """(operation, size spec) pairs the configuration asks for (sizes validated)."""
    out = []
    for op in operations_for(cfg.operations):
        for spec in parse_sizes(op.family, cfg.sizes.get(op.family, DEFAULT_SIZES[op.family])):
            out.append((op, spec))
    return out


def _reference_list(op: Operation, cfg: BenchConfig) -> list[Reference]:
    return [r for r in op.references if r.available()] if cfg.references else []


def count_cells(cfg: BenchConfig, backend_names: Iterable[str]) -> int:
    nb = len(list(backend_names))
    return sum(nb + len(_reference_list(op, cfg)) for op, _ in plan(cfg))


def _unit_time(c: Cell, per_iteration: bool) -> float:
    if per_iteration and c.extra.get("iterations"):
        return c.p50_us / c.extra["iterations"]
    return c.p50_us


def _fill_speedups(group: list[Cell], per_iteration: bool) -> None:
    """For each measured backend cell: other column's p50 / this p50 (per EM iteration for HMM).
    Nothing is derived from a cell whose parity FAILED."""
    for c in group:
        if c.kind != "backend" or not c.valid:
            continue
        for o in group:
            if o is c or not o.valid:
                continue
            c.speedup[o.backend] = _unit_time(o, per_iteration) / _unit_time(c, per_iteration)


def run_matrix(
    cfg: BenchConfig,
    backends: dict,
    suite: Suite,
    progress: Callable[[ProgressEvent], None] | None = None,
    cancel=None,
    ctx: RunContext | None = None,
) -> Suite:
    """Measure every (operation, size) on every backend and reference; cells are appended to
    `suite.cells` as they finish (so a cancelled run keeps what it measured)."""
    own_ctx = ctx is None
    ctx = ctx or RunContext()
    pairs = plan(cfg)
    total = sum(len(backends) + len(_reference_list(op, cfg)) for op, _ in pairs)
    done = [0]

    def emit(cell: Cell, msg: str = "") -> None:
        done[0] += 1
        suite.cells.append(cell)
        if progress:
            progress(ProgressEvent(done[0], total, cell, None, msg or _cell_line(cell)))

    try:
        for op, spec in pairs:
            _check_cancel(cancel)
            payload = op.payload(spec, cfg)
            base = dict(op=op.name, family=op.family, size=payload.label, dims=payload.dims, payload_values=payload.values)
            par = check_parity(op, backends, payload)
            if par.status == "FAILED":
                print(f"!!! PARITY FAILED for {op.name} {payload.label}: {par.detail}", file=sys.stderr)
            group: list[Cell] = []
            for name, b in backends.items():
                _check_cancel(cancel)
                cell = Cell(**base, backend=name, kind="backend", parity=par.status, parity_detail=par.detail)
                if name in par.unavailable:
                    cell.skipped = "not available"
                    cell.note = par.unavailable[name]
                    cell.parity = "n/a"
                    group.append(cell)
                    emit(cell)
                    continue
                fn = functools.partial(op.call, b, payload)
                m = timeit(
                    fn,
                    op.name,
                    payload.label,
                    name,
                    calls=cfg.calls,
                    warmup=cfg.warmup,
                    max_seconds=cfg.cell_seconds,
                    min_calls=cfg.min_calls,
                    cancel=cancel,
                )
                _fill_measurement(cell, m)
                if op.per_iteration and name in par.results:
                    cell.extra["iterations"] = int(getattr(par.results[name], "iterations", 0) or 0)
                for c in cfg.concurrency:
                    cell.throughput[int(c)] = throughput(fn, c, cfg.calls, cfg.concurrency_seconds, cancel)
                group.append(cell)
                emit(cell)
            rust = next((par.results[n] for n in par.results), None)
            for ref in _reference_list(op, cfg):
                _check_cancel(cancel)
                cell = Cell(**base, backend=ref.name, kind="reference", parity="n/a", note=ref.note)
                try:
                    fn = ref.make(payload, ctx)
                    out = fn()  # untimed: accuracy (and warm-up)
                except BenchCancelled:
                    raise
                except Exception as e:
                    cell.skipped = f"error: {type(e).__name__}: {e}"
                    group.append(cell)
                    emit(cell)
                    continue
                if ref.accuracy is not None and rust is not None:
                    try:
                        cell.accuracy = ref.accuracy(out, rust, payload)
                    except Exception as e:  # a result without the expected fields
                        cell.accuracy = f"not compared ({type(e).__name__}: {e})"
                if ref.extra is not None:
                    cell.extra.update(ref.extra(out))
                m = timeit(
                    fn,
                    op.name,
                    payload.label,
                    ref.name,
                    calls=cfg.calls,
                    warmup=0,
                    max_seconds=cfg.cell_seconds,
                    min_calls=cfg.reference_min_calls,
                    cancel=cancel,
                )
                _fill_measurement(cell, m)
                st = getattr(fn, "solve_times", None)
                if st:
                    cell.extra["solver_time_us_p50"] = float(np.nanmedian(st) * 1e6)
                group.append(cell)
                emit(cell)
            _fill_speedups(group, op.per_iteration)
    except BenchCancelled:
        suite.cancelled = True
    finally:
        if own_ctx:
            ctx.close()
    return suite


def _fill_measurement(cell: Cell, m: Measurement) -> None:
    cell.calls, cell.failures = m.calls, m.failures
    cell.p50_us, cell.p95_us, cell.p99_us, cell.mean_us, cell.ops_per_s = m.p50_us, m.p95_us, m.p99_us, m.mean_us, m.ops_per_s
    if m.calls == 0:
        cell.note = (cell.note + "; " if cell.note else "") + f"every call failed ({m.failures})"


# ---------------------------------------------------------------------------------------------
# extra sections: transport encodings, live stream
# ---------------------------------------------------------------------------------------------


def _encoding_costs(n: int = 1_000_000, repeat: int = 5) -> dict:
    """Build+serialize and parse costs in Python of 1M float64 as packed `repeated double` vs `bytes`."""
    from hft_lab._proto.hftlab.v1 import hftlab_pb2 as pb

    x = np.random.default_rng(0).normal(size=n)

    def best(fn):
        ts = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return min(ts) * 1e3

    packed = pb.EchoRequest(values=x).SerializeToString()
    raw = pb.EchoRequest(payload=x.tobytes()).SerializeToString()
    return {
        "values": n,
        "packed_serialize_ms": best(lambda: pb.EchoRequest(values=x).SerializeToString()),
        "packed_parse_ms": best(lambda: np.asarray(pb.EchoRequest.FromString(packed).values)),
        "bytes_serialize_ms": best(lambda: pb.EchoRequest(payload=x.tobytes()).SerializeToString()),
        "bytes_parse_ms": best(lambda: np.frombuffer(pb.EchoRequest.FromString(raw).payload, dtype="<f8").copy()),
    }


def _bench_transport(suite, backends, cfg, progress, rng, cancel=None):
    """The two array encodings end to end through grpcd (1M values), and their Python costs.
    (Small-call latency against a plain Python grpcio server is the echo operation's reference.)"""
    grpc_b = backends.get("grpc")
    if grpc_b is None or not hasattr(grpc_b, "echo_packed"):
        return
    big = rng.normal(size=1_000_000)
    n_big = 5 if cfg.quick else 20
    suite.add(
        timeit(
            lambda: grpc_b.echo(big), "echo", "1M values", "grpc-bytes", n_big, warmup=2, note="bytes encoding", cancel=cancel
        ),
        progress,
    )
    suite.add(
        timeit(
            lambda: grpc_b.echo_packed(big),
            "echo_packed",
            "1M values",
            "grpc-packed",
            n_big,
            warmup=2,
            note="repeated double encoding",
            cancel=cancel,
        ),
        progress,
    )
    suite.encoding = _encoding_costs()


def _bench_stream(suite, backends, cfg, progress, rng, cancel=None):
    """Live mode throughput: ticks/s through the stream per backend, batched and one tick at a time."""
    x = 100 + np.cumsum(rng.normal(0, 1, 1_000_000 if not cfg.quick else 200_000))
    d = suite.derived
    for name, b in backends.items():
        _check_cancel(cancel)
        if not hasattr(b, "mean_reversion_stream"):
            continue
        # arrays of ticks (batches of 1000)
        with b.mean_reversion_stream(lookback=20, threshold=2.0) as s:
            t0 = time.perf_counter()
            for i in range(0, len(x), 1000):
                s.push_many(x[i : i + 1000])
            el = time.perf_counter() - t0
        d[f"{name}_stream_ticks_per_s_batch1000"] = len(x) / el
        # one tick per call
        n1 = 20_000 if name == "pyo3" else 3_000
        if cfg.quick:
            n1 //= 4
        with b.mean_reversion_stream(lookback=20, threshold=2.0) as s:
            m = timeit(lambda it=iter(x): s.push(next(it)), "stream_one_tick", "1 tick", name, n1, warmup=0, cancel=cancel)
        suite.add(m, progress)
        d[f"{name}_stream_ticks_per_s_one_per_call"] = m.ops_per_s
    # the raw PyO3 incremental object (no dataclass wrapping), fed whole arrays
    if "pyo3" in backends:
        from hft_lab import _rustcore

        raw = _rustcore.MeanReversionStream(20, 2.0)
        t0 = time.perf_counter()
        raw.push_many(x)
        d["pyo3_raw_stream_ticks_per_s_one_array"] = len(x) / (time.perf_counter() - t0)
        raw = _rustcore.MeanReversionStream(20, 2.0)
        m = timeit(
            lambda it=iter(x): raw.push(next(it)),
            "stream_one_tick",
            "1 tick",
            "pyo3-raw",
            20_000 if not cfg.quick else 5_000,
            warmup=0,
            note="_rustcore.MeanReversionStream.push",
            cancel=cancel,
        )
        suite.add(m, progress)


SECTIONS = {
    "transport": _bench_transport,
    "stream": _bench_stream,
}
PARTS = tuple(FAMILIES) + tuple(SECTIONS)  # what --only accepts


# ---------------------------------------------------------------------------------------------
# derived figures and targets
# ---------------------------------------------------------------------------------------------


def _ratio_cells(suite: Suite, key: str, num: Cell | None, den: Cell | None, num_unit: bool = False) -> None:
    """derived[key] = num p50 / den p50, only from cells measured with parity not FAILED."""
    if num is None or den is None:
        return
    for c in (num, den):
        if c.parity == "FAILED":
            suite.invalid[key] = f"parity FAILED for {c.op} {c.size}"
            return
        if not c.ok:
            suite.invalid[key] = f"{c.backend} {c.op} {c.size}: {c.skipped or 'no successful call'}"
            return
    if num_unit:
        suite.derived[key] = _unit_time(num, True) / _unit_time(den, True)
    else:
        suite.derived[key] = num.p50_us / den.p50_us


def derive(suite: Suite) -> None:
    """The figures the README quotes and the targets check (from cells of this run)."""
    d = suite.derived
    cell = suite.cell
    mr1k, mr1m = (1000,), (1_000_000,)
    c = cell("mean_reversion", mr1k, "pyo3")
    if c is not None:
        if c.parity == "FAILED":
            suite.invalid["pyo3_1k_p50_us"] = "parity FAILED for mean_reversion 1k"
        elif c.ok:
            d["pyo3_1k_p50_us"] = c.p50_us
        else:
            suite.invalid["pyo3_1k_p50_us"] = f"pyo3 mean_reversion 1k: {c.skipped or 'no successful call'}"
    _ratio_cells(
        suite,
        "pyo3_1M_speedup_vs_pandas_rolling_std",
        cell("mean_reversion", mr1m, "pandas-rolling-std"),
        cell("mean_reversion", mr1m, "pyo3"),
    )
    _ratio_cells(
        suite, "pyo3_1M_speedup_vs_pandas_zscore", cell("mean_reversion", mr1m, "pandas"), cell("mean_reversion", mr1m, "pyo3")
    )
    _ratio_cells(suite, "grpc_1M_over_pyo3_1M", cell("mean_reversion", mr1m, "grpc"), cell("mean_reversion", mr1m, "pyo3"))
    _ratio_cells(
        suite, "grpcd_echo_p50_over_python_grpcio_echo_p50", cell("echo", (16,), "grpc"), cell("echo", (16,), "python-grpcio")
    )
    _ratio_cells(suite, "echo_1M_grpc_over_pyo3", cell("echo", mr1m, "grpc"), cell("echo", mr1m, "pyo3"))
    # HMM per EM iteration at 100k observations
    for b in ("pyo3", "grpc"):
        for impl in ("log", "scaling"):
            _ratio_cells(
                suite,
                f"hmm_{b}_speedup_vs_hmmlearn_{impl}_per_iter",
                cell("hmm", (100_000,), f"hmmlearn-{impl}"),
                cell("hmm", (100_000,), b),
                num_unit=True,
            )
    # portfolio vs cvxpy + Clarabel
    for n in (20, 50, 500):
        dims = (max(500, 2 * n), n)
        for m in ("max_sharpe", "min_variance"):
            for b in ("pyo3", "grpc"):
                _ratio_cells(
                    suite,
                    f"portfolio_{m}_{b}_speedup_vs_cvxpy_{n}",
                    cell(f"portfolio:{m}", dims, "cvxpy+clarabel"),
                    cell(f"portfolio:{m}", dims, b),
                )
    # sparse vs scikit-learn at 10000x500
    for b in ("pyo3", "grpc"):
        _ratio_cells(
            suite,
            f"sparse_{b}_speedup_vs_sklearn_10000x500",
            cell("sparse:lasso", (10000, 500), "sklearn"),
            cell("sparse:lasso", (10000, 500), b),
        )
        _ratio_cells(
            suite,
            f"sparse_{b}_speedup_vs_sklearn_gram_10000x500",
            cell("sparse:lasso", (10000, 500), "sklearn-gram"),
            cell("sparse:lasso", (10000, 500), b),
        )
    for k in list(suite.invalid):
        if k in d:
            del suite.invalid[k]


TARGETS = [
    ("pyo3_1k_p50_us", "<=", 20.0, "PyO3 1k-price call p50 (µs)"),
    ("grpc_stream_ticks_per_s_batch1000", ">=", 50_000, "gRPC live stream, batches of 1000 (ticks/s)"),
    ("pyo3_stream_ticks_per_s_batch1000", ">=", 1_000_000, "PyO3 incremental object, arrays of 1000 ticks (ticks/s)"),
    ("hmm_pyo3_speedup_vs_hmmlearn_log_per_iter", ">=", 10.0, "HMM PyO3 per EM iteration vs hmmlearn default (×)"),
    ("hmm_pyo3_speedup_vs_hmmlearn_scaling_per_iter", ">=", 3.0, "HMM PyO3 per EM iteration vs hmmlearn scaling (×)"),
    ("hmm_grpc_speedup_vs_hmmlearn_log_per_iter", ">=", 10.0, "HMM gRPC per EM iteration vs hmmlearn default (×)"),
    ("hmm_grpc_speedup_vs_hmmlearn_scaling_per_iter", ">=", 3.0, "HMM gRPC per EM iteration vs hmmlearn scaling (×)"),
    ("pyo3_1M_speedup_vs_pandas_rolling_std", ">=", 5.0, "PyO3 1M vs pandas rolling().std() (×)"),
    ("grpcd_echo_p50_over_python_grpcio_echo_p50", "<", 1.0, "grpcd small call p50 / Python grpcio echo p50"),
    ("grpc_1M_over_pyo3_1M", "<=", 3.0, "gRPC 1M end-to-end / PyO3 1M"),
]
for _n, _t in ((50, 20.0), (500, 5.0)):
    for _m in ("max_sharpe", "min_variance"):
        for _b, _bl in (("pyo3", "PyO3"), ("grpc", "gRPC")):
            TARGETS.append(
                (
                    f"portfolio_{_m}_{_b}_speedup_vs_cvxpy_{_n}",
                    ">=",
                    _t,
                    f"Portfolio {_m} {_bl} vs cvxpy+Clarabel, {_n} assets (×)",
                )
            )
for _b, _bl in (("pyo3", "PyO3"), ("grpc", "gRPC")):
    TARGETS.append(
        (f"sparse_{_b}_speedup_vs_sklearn_10000x500", ">=", 1.5, f"Sparse lasso {_bl} vs scikit-learn Lasso, 10000x500 (×)")
    )


def target_status(suite: Suite) -> list[dict]:
    out = []
    for key, op, target, label in TARGETS:
        v = suite.derived.get(key)
        if v is None:
            if key in suite.invalid:
                why = suite.invalid[key]
                status = "INVALID" if why.startswith("parity FAILED") else "SKIPPED"
                out.append(dict(key=key, label=label, op=op, target=target, value=None, status=status, why=why))
            continue
        ok = {"<=": v <= target, ">=": v >= target, "<": v < target}[op]
        out.append(dict(key=key, label=label, op=op, target=target, value=v, status="MET" if ok else "MISSED"))
    return out


# ---------------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------------

_RUN_LOCK = threading.Lock()  # two benchmarks in one process would time each other


def run_suite(
    quick: bool = False,
    progress: Callable[[ProgressEvent], None] | None = None,
    only: Iterable[str] | None = None,
    config: BenchConfig | None = None,
    backends: dict | None = None,
    cancel=None,
) -> Suite:
    """Run the matrix and the extra sections. `backends`: {"pyo3": ..., "grpc": ...} (default:
    the PyO3 backend and a grpcd started for the run). `only`: families / sections to run.
    Cancelling (between calls) returns what was measured, with `suite.cancelled` set."""
    cfg = config or (BenchConfig.quick_config() if quick else BenchConfig.full())
    if only:
        only = list(only)
        unknown = [o for o in only if o not in PARTS]
        if unknown:
            raise ValueError(f"unknown section {', '.join(unknown)}; known: {', '.join(PARTS)}")
        ops = [o for o in only if o in FAMILIES]
        if "transport" in only and "echo" not in ops:
            ops.insert(0, "echo")  # the transport comparison (grpcd vs a Python grpcio server) is the echo operation
        cfg = dataclasses.replace(cfg, operations=ops, sections=[o for o in only if o in SECTIONS])
    plan(cfg)  # validate the sizes before starting anything
    if not _RUN_LOCK.acquire(blocking=False):
        if progress:
            progress(ProgressEvent(0, 0, None, None, "waiting for the previous benchmark run to stop…"))
        while not _RUN_LOCK.acquire(timeout=0.2):
            if _is_cancelled(cancel):
                s = Suite(config=cfg.to_dict(), cancelled=True)
                return s
    try:
        if backends is not None:
            return _run(
                cfg, {k: v for k, v in backends.items() if k in cfg.backends or k not in ("pyo3", "grpc")}, progress, cancel
            )
        from hft_lab.backends import BackendConfig
        from hft_lab.backends.grpc_backend import GrpcBackend
        from hft_lab.backends.pyo3_backend import Pyo3Backend
        from hft_lab.backends.server import ServerManager

        bs: dict = {}
        if "pyo3" in cfg.backends:
            bs["pyo3"] = Pyo3Backend()
        if "grpc" in cfg.backends:
            with ServerManager(BackendConfig()) as mgr:
                grpc_b = GrpcBackend(address=mgr.address)
                bs["grpc"] = grpc_b
                try:
                    return _run(cfg, bs, progress, cancel)
                finally:
                    grpc_b.close()
        return _run(cfg, bs, progress, cancel)
    finally:
        _RUN_LOCK.release()


def _run(cfg: BenchConfig, backends: dict, progress, cancel) -> Suite:
    t0 = time.perf_counter()
    suite = Suite(config=cfg.to_dict())
    suite.machine = machine(backends)
    if progress:
        progress(ProgressEvent(0, count_cells(cfg, backends), None, None, "measuring…", machine=dict(suite.machine)))
    rng = np.random.default_rng(cfg.seed)
    ctx = RunContext()
    try:
        run_matrix(cfg, backends, suite, progress, cancel, ctx)
        for name in cfg.sections:
            if suite.cancelled or _is_cancelled(cancel):
                suite.cancelled = True
                break
            try:
                SECTIONS[name](suite, backends, cfg, progress, rng, cancel)
            except BenchCancelled:
                suite.cancelled = True
                break
    finally:
        ctx.close()
    derive(suite)
    try:
        suite.machine["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        pass
    suite.seconds = time.perf_counter() - t0
    return suite


# ---------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------


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


def speedup_phrase(ratio: float, other: str) -> str:
    """other p50 / this p50 -> '3.2× faster than other' / '3.2× slower than other'."""
    if not math.isfinite(ratio) or ratio <= 0:
        return f"n/a vs {other}"
    if ratio >= 1:
        return f"{ratio:.3g}× faster than {other}"
    return f"{1 / ratio:.3g}× slower than {other}"


def speedup_text(c: Cell) -> str:
    return ", ".join(speedup_phrase(v, k) for k, v in c.speedup.items())


def throughput_text(c: Cell) -> str:
    return " ".join(
        f"{k}:{fmt_rate(v['ops_per_s'])}" + (f"({v['failures']}f)" if v.get("failures") else "")
        for k, v in sorted(c.throughput.items())
    )


def format_table(suite: Suite) -> str:
    lines = []
    if suite.machine:
        lines.append(describe_machine(suite.machine))
        lines.append("")
    if suite.cancelled:
        lines.append("*** CANCELLED: partial results ***")
    head = (
        ""
        if not suite.cells
        else f"{'op':<24}{'size':<16}{'backend':<19}{'parity':<10}"
        f"{'calls':>6}{'fail':>5}{'p50':>11}{'p95':>11}{'p99':>11}{'ops/s':>9}  {'ops/s @ C callers':<28}"
        f"  speedup / accuracy / note"
    )
    if head:
        lines.append(head)
        lines.append("-" * len(head))
    prev = None
    for c in suite.cells:
        if prev is not None and (c.op, c.size) != prev:
            lines.append("")
        prev = (c.op, c.size)
        if c.skipped:
            lines.append(
                f"{c.op:<24}{c.size:<16}{c.backend:<19}{c.parity:<10}  skipped: {c.skipped}" + (f"  ({c.note})" if c.note else "")
            )
            continue
        tail = "; ".join(t for t in (speedup_text(c), c.accuracy, c.note) if t)
        if "iterations" in c.extra:
            tail = f"{c.extra['iterations']} it; " + tail
        lines.append(
            f"{c.op:<24}{c.size:<16}{c.backend:<19}{c.parity:<10}{c.calls:>6}{c.failures:>5}{fmt_us(c.p50_us):>11}{fmt_us(c.p95_us):>11}"
            f"{fmt_us(c.p99_us):>11}{fmt_rate(c.ops_per_s):>9}  {throughput_text(c):<28}  {tail}"
        )
    fails = suite.parity_failures
    if fails:
        lines.append("")
        lines.append("!" * 100)
        lines.append("!!! PARITY FAILED: the backends give DIFFERENT answers; those timings compare nothing:")
        seen = set()
        for c in fails:
            if (c.op, c.size) not in seen:
                seen.add((c.op, c.size))
                lines.append(f"!!!   {c.op} {c.size}: {c.parity_detail}")
        lines.append("!" * 100)
    if suite.results:
        lines.append("")
        lines.append(
            f"{'op':<24}{'size':<16}{'backend':<19}{'calls':>6}{'fail':>5}{'p50':>11}{'p95':>11}{'p99':>11}{'ops/s':>9}  note"
        )
        for m in suite.results:
            lines.append(
                f"{m.op:<24}{m.size:<16}{m.backend:<19}{m.calls:>6}{m.failures:>5}{fmt_us(m.p50_us):>11}"
                f"{fmt_us(m.p95_us):>11}{fmt_us(m.p99_us):>11}{fmt_rate(m.ops_per_s):>9}  {m.note}"
            )
    lines.append("")
    lines.append("targets:")
    for t in target_status(suite):
        if t["status"] in ("INVALID", "SKIPPED"):
            lines.append(f"  {t['status']} {t['label']}: {t['why']}")
        else:
            lines.append(f"  {t['status']:<7} {t['label']}: {t['value']:,.2f} (target {t['op']} {t['target']:,g})")
    others = {k: v for k, v in suite.derived.items() if k not in {t[0] for t in TARGETS}}
    for k, v in others.items():
        lines.append(f"          {k}: {v:,.2f}")
    e = suite.encoding
    if e:
        lines.append("")
        lines.append(
            f"array encoding, 1M float64 in Python: packed repeated double serialize {e['packed_serialize_ms']:.1f} ms / parse "
            f"{e['packed_parse_ms']:.1f} ms; "
            f"bytes serialize {e['bytes_serialize_ms']:.1f} ms / parse {e['bytes_parse_ms']:.1f} ms"
        )
    lines.append("")
    lines.append(f"total {suite.seconds:.1f} s")
    return "\n".join(lines)


def _clean(o):
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, (np.floating,)):
        return _clean(float(o))
    if isinstance(o, (np.integer,)):
        return int(o)
    return o


def to_dict(suite: Suite) -> dict:
    return _clean(
        {
            "machine": suite.machine or machine(),
            "config": suite.config,
            "cells": [c.to_dict() for c in suite.cells],
            "results": [m.to_dict() for m in suite.all_measurements()],
            "derived": suite.derived,
            "targets": target_status(suite),
            "parity_failures": [
                dict(op=c.op, size=c.size, backend=c.backend, detail=c.parity_detail) for c in suite.parity_failures
            ],
            "encoding": suite.encoding,
            "cancelled": suite.cancelled,
            "seconds": suite.seconds,
        }
    )


def to_json(suite: Suite) -> str:
    """Machine-readable form (NaN/inf become null: strict JSON)."""
    return json.dumps(to_dict(suite), indent=2, allow_nan=False)


CSV_COLUMNS = [
    "op",
    "size",
    "payload_values",
    "backend",
    "kind",
    "parity",
    "skipped",
    "calls",
    "failures",
    "p50_us",
    "p95_us",
    "p99_us",
    "mean_us",
    "ops_per_s",
    "throughput",
    "speedup",
    "accuracy",
    "note",
]


def to_csv(suite: Suite) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for c in suite.cells:
        w.writerow(
            [
                c.op,
                c.size,
                c.payload_values,
                c.backend,
                c.kind,
                c.parity,
                c.skipped,
                c.calls,
                c.failures,
                *(f"{v:.3f}" if math.isfinite(v) else "" for v in (c.p50_us, c.p95_us, c.p99_us, c.mean_us, c.ops_per_s)),
                " ".join(f"{k}:{v['ops_per_s']:.3f}" for k, v in sorted(c.throughput.items())),
                " ".join(f"{k}:{v:.4g}" for k, v in c.speedup.items()),
                c.accuracy,
                c.note,
            ]
        )
    return buf.getvalue()
