"""The benchmark (hft_lab.bench.runner): inputs (seeded; cached because a 100k-observation HMM series
takes a second to generate); operations and references."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import FAMILIES, BenchConfig, human, parse_size
from .machine import RunContext

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


def _grpcio_client_echo_make(p, ctx):
    b = ctx.grpcio_backend()
    x = p.data
    return lambda: b.echo(x)


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
            ),
            Reference(
                "grpcio-client",
                "our grpcd reached with grpcio's blocking call instead of the Rust unary client",
                ("grpc",),
                _grpcio_client_echo_make,
                _echo_acc,
            ),
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
# the same call asking only for the z-score and the positions (outputs=): the other three series
# are neither computed into memory nor sent; the pandas columns of "mean_reversion" are its
# references in the same run (derived: pyo3_1M_zpos_speedup_vs_pandas_rolling_std)
_register(
    Operation(
        "mean_reversion:z+positions",
        "mean_reversion",
        "prices",
        lambda b, p: b.calculate_mean_reversion(p.data, lookback=20, outputs=["zscore", "positions"]),
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


# -- lasso like-for-like (issue 16, lasso helper): the default call above also computes the
# spread's ADF with the AIC lag search (up to ~38 lagged differences), which scikit-learn does
# not; this cell asks for adf_autolag="none" (spread + AR(1) t statistic only), i.e. the same
# regression work as scikit-learn's fit.
def _sparse_fit_call(b, p):
    cfg = p.cfg
    return b.calculate_sparse_portfolio(
        p.data,
        method="lasso",
        lambda_param=cfg.sparse_lambda,
        target=0,
        max_iterations=cfg.sparse_max_iterations,
        tolerance=cfg.sparse_tolerance,
        adf_autolag="none",
    )


_register(
    Operation(
        "sparse:lasso-fit",
        "sparse",
        "",
        _sparse_fit_call,
        [
            Reference(
                "sklearn-gram",
                "Lasso(precompute=True): the like-for-like reference (our call without the ADF lag search)",
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
