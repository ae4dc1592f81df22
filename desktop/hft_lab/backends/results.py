"""Result dataclasses: the same types, with the same NumPy arrays, from both backends."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np


def _as_dict(obj) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, tuple):
            v = list(v)
        elif isinstance(v, float) and not np.isfinite(v):
            v = None if np.isnan(v) else ("inf" if v > 0 else "-inf")
        out[f.name] = v
    return out


class _Result:
    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (arrays as lists, NaN as None)."""
        return _as_dict(self)


@dataclass(frozen=True, eq=False)
class MeanReversionResult(_Result):
    """Rolling z-score and signals. Arrays have one entry per bar; the first lookback-1 of the
    statistics are NaN. signals[t] is the target position decided at the close of bar t;
    positions[t] = signals[t-1] is the position held during bar t (no look-ahead)."""

    lookback: int
    threshold: float
    exit_threshold: float
    stop_threshold: float | None
    # a series not asked for (calculate_mean_reversion(outputs=...)) is None
    rolling_mean: np.ndarray | None
    rolling_std: np.ndarray | None
    zscore: np.ndarray | None
    signals: np.ndarray | None  # int8
    positions: np.ndarray | None  # int8
    entries: np.ndarray  # int64 bar indices
    exits: np.ndarray  # int64 bar indices
    # the series computed, names among mean, std, zscore, signals, positions
    outputs: tuple[str, ...] = ("mean", "std", "zscore", "signals", "positions")

    def _series(self, name: str) -> np.ndarray:
        v = getattr(self, name)
        if v is None:
            raise ValueError(f"the bands need mean and std: ask for them in outputs= (computed: {', '.join(self.outputs)})")
        return v

    @property
    def upper_band(self) -> np.ndarray:
        return self._series("rolling_mean") + self.threshold * self._series("rolling_std")

    @property
    def lower_band(self) -> np.ndarray:
        return self._series("rolling_mean") - self.threshold * self._series("rolling_std")


@dataclass(frozen=True, eq=False)
class StreamTicks(_Result):
    """Per-tick output of live mode for one batch of ticks."""

    first_tick: int
    rolling_mean: np.ndarray
    rolling_std: np.ndarray
    zscore: np.ndarray
    signals: np.ndarray
    positions: np.ndarray


@dataclass(frozen=True, eq=False)
class ServerInfo(_Result):
    backend: str
    server_version: str
    core_version: str
    algorithms: tuple[str, ...] = field(default_factory=tuple)
    max_message_bytes: int = 0
    pid: int = 0
    # gRPC only: every RPC served ("hftlab.v1.HftLab/OptimizePortfolio", …) and the optional
    # transport features on offer ("shared_memory")
    rpcs: tuple[str, ...] = field(default_factory=tuple)
    features: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True, eq=False)
class OuFit(_Result):
    """Ornstein-Uhlenbeck fit by AR(1) OLS x[t+1] = a + b x[t] + e (see rustcore/src/ou.rs for the
    conventions). half_life_* are +inf and mean_reverting False when b <= 0 or b >= 1. hurst is the
    classic R/S exponent of the increments."""

    a: float
    b: float
    kappa: float
    theta: float
    sigma: float
    half_life_bars: float
    half_life_days: float
    se_a: float
    se_b: float
    se_kappa: float
    se_half_life: float
    r_squared: float  # R² of the level regression x[t+1] = a + b x[t] (near 1 for any persistent series)
    residual_std: float
    mean_reverting: bool
    hurst: float
    n: int
    r_squared_delta: float  # R² of the same fit on the increments: Δx[t+1] = a + (b-1) x[t]


@dataclass(frozen=True, eq=False)
class BacktestResult(_Result):
    """Backtest of positions held from close t-1 to close t, costs in bps of turnover.
    max_drawdown is a positive fraction; trades are closed round trips (a flip closes one and opens one)."""

    equity: np.ndarray
    returns: np.ndarray
    drawdown: np.ndarray
    total_return: float
    annual_return: float
    annual_volatility: float
    sharpe: float
    sortino: float
    max_drawdown: float
    n_trades: int
    win_rate: float
    avg_holding_bars: float
    trade_entries: np.ndarray
    trade_exits: np.ndarray
    trade_directions: np.ndarray
    trade_pnls: np.ndarray
    units: str = "returns"  # "pnl": equity, drawdown, returns, total_return and trade_pnls in spread units


@dataclass(frozen=True, eq=False)
class HmmResult(_Result):
    """Gaussian HMM fitted by Baum-Welch. States are sorted by mean (ascending). log_likelihood is
    the log-likelihood of the data under the returned parameters; log_likelihood_history has one
    entry per EM iteration (E-step of that iteration). posteriors are smoothed state probabilities
    (T x K); viterbi_path the most likely state sequence. AIC/BIC count K-1 start, K(K-1)
    transition, K mean and K variance parameters."""

    n_states: int
    means: np.ndarray
    variances: np.ndarray
    stds: np.ndarray
    transition_matrix: np.ndarray
    start_probabilities: np.ndarray
    log_likelihood: float
    log_likelihood_history: np.ndarray
    iterations: int
    converged: bool
    posteriors: np.ndarray
    viterbi_path: np.ndarray
    aic: float
    bic: float
    # T x K P(state_t | observations up to t): no look-ahead (empty in a result read back from a
    # document exported before filtered probabilities existed)
    filtered: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    @property
    def expected_durations(self) -> np.ndarray:
        """Expected stay in each state, in bars: 1 / (1 - p_ii)."""
        p = np.diag(self.transition_matrix)
        with np.errstate(divide="ignore"):
            return 1.0 / (1.0 - p)

    @property
    def model(self) -> HmmModel:
        """The fitted parameters as a one-feature model (for hmm_filter / hmm_online_filter)."""
        k = self.n_states
        return HmmModel(
            n_states=k,
            n_features=1,
            covariance_type="diag",
            start_probabilities=self.start_probabilities,
            transition_matrix=self.transition_matrix,
            means=self.means.reshape(k, 1),
            covars=self.variances.reshape(k, 1, 1),
        )


# ---- multivariate HMM, filter, walk-forward (hmm helper) ----


@dataclass(frozen=True, eq=False)
class HmmModel(_Result):
    """Gaussian HMM parameters in the units of the observations: means K x D, covars K x D x D
    (diagonal matrices for covariance_type "diag")."""

    n_states: int
    n_features: int
    covariance_type: str
    start_probabilities: np.ndarray
    transition_matrix: np.ndarray
    means: np.ndarray
    covars: np.ndarray


@dataclass(frozen=True, eq=False)
class HmmMvResult(_Result):
    """Multivariate Gaussian HMM fitted by Baum-Welch. States sorted by the mean of feature 0.
    filtered = P(state_t | x_1..x_t) (what was knowable at t); posteriors = smoothed
    P(state_t | x_1..x_T). n_parameters: (K-1) + K(K-1) + KD + KD (diag) or KD(D+1)/2 (full)."""

    n_states: int
    n_features: int
    covariance_type: str
    start_probabilities: np.ndarray
    transition_matrix: np.ndarray
    means: np.ndarray
    covars: np.ndarray
    log_likelihood: float
    log_likelihood_history: np.ndarray
    iterations: int
    converged: bool
    posteriors: np.ndarray
    filtered: np.ndarray
    viterbi_path: np.ndarray
    n_parameters: int
    aic: float
    bic: float

    @property
    def model(self) -> HmmModel:
        return HmmModel(
            n_states=self.n_states,
            n_features=self.n_features,
            covariance_type=self.covariance_type,
            start_probabilities=self.start_probabilities,
            transition_matrix=self.transition_matrix,
            means=self.means,
            covars=self.covars,
        )


@dataclass(frozen=True, eq=False)
class HmmFilterResult(_Result):
    """Forward filter under fixed parameters: filtered T x K, log-likelihood of the rows."""

    filtered: np.ndarray
    log_likelihood: float


@dataclass(frozen=True, eq=False)
class HmmWalkForward(_Result):
    """Walk-forward regimes: each window fits on `formation` rows and filters the next `step`
    rows with those parameters; filtered/regimes cover rows start_index..T-1, out of sample."""

    start_index: int
    filtered: np.ndarray  # (T - formation) x K
    regimes: np.ndarray  # int64, argmax of filtered
    window_starts: np.ndarray  # int64
    window_log_likelihoods: np.ndarray
    window_means: np.ndarray  # W x K x D
    window_covars: np.ndarray  # W x K x D x D
    window_transition_matrices: np.ndarray  # W x K x K
    window_start_probabilities: np.ndarray  # W x K


@dataclass(frozen=True, eq=False)
class PortfolioResult(_Result):
    """Optimised weights (sum 1) with annualised expected return, volatility and Sharpe (after the
    risk-free rate); risk_contributions are fractions of the portfolio variance (sum 1); the
    efficient frontier is empty unless frontier_points was asked for."""

    method: str
    weights: np.ndarray
    asset_names: tuple[str, ...]
    expected_return: float
    volatility: float
    sharpe: float
    risk_contributions: np.ndarray
    status: str
    iterations: int
    frontier_returns: np.ndarray
    frontier_volatilities: np.ndarray


@dataclass(frozen=True, eq=False)
class SparseResult(_Result):
    """A sparse mean-reverting basket. For lasso/elastic_net: weight 1 on the target and -beta on
    the selected hedges (sklearn's objective, unpenalised intercept); for box_tiao/greedy: unit-norm
    weights of the least predictable combination (target_index -1). spread = prices @ weights;
    half_life is inf when the spread does not mean-revert; a spread that is constant to rounding
    (rms variation <= 1e-14 of its level: a perfect hedge) gives half_life 0 and adf_statistic -inf,
    as statsmodels' coint reports -inf for a perfect fit; adf_critical_values are Engle-Granger
    1%, 5%, 10% values for `nonzero` variables."""

    method: str
    weights: np.ndarray
    asset_names: tuple[str, ...]
    target_index: int
    intercept: float
    nonzero: int
    spread: np.ndarray
    half_life: float
    adf_statistic: float
    adf_critical_values: np.ndarray
    objective: float
    iterations: int
    adf_lag: int  # lagged differences in the ADF regression (chosen by adf_autolag; 0 with "none")

    @property
    def selected(self) -> tuple[str, ...]:
        return tuple(n for n, w in zip(self.asset_names, self.weights) if w != 0)


@dataclass(frozen=True, eq=False)
class LambdaPath(_Result):
    """Lasso/elastic-net path: per lambda, the basket's sparsity, half-life and ADF statistic
    (and its weights: one row per lambda). As in SparseResult, a basket whose spread is constant to
    rounding has half_life 0 and adf_statistic -inf."""

    lambdas: np.ndarray
    nonzero: np.ndarray
    half_life: np.ndarray
    adf_statistic: np.ndarray
    weights: np.ndarray
    intercepts: np.ndarray
    iterations: np.ndarray
    asset_names: tuple[str, ...] = ()
    # lagged differences used by each lambda's ADF regression (chosen by adf_autolag)
    adf_lag: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


# ---- asset moments and Ledoit-Wolf covariance (issue 15: algorithms only in the core) ----


@dataclass(frozen=True, eq=False)
class AssetMoments(_Result):
    """Annualised moments of the assets' returns, estimated exactly as the portfolio optimiser does:
    mean = column mean of the returns x annualization; covariance = sample (ddof 1) or scikit-learn's
    Ledoit-Wolf (ddof 0, shrunk) x annualization; shrinkage is 0 for the sample covariance."""

    mean: np.ndarray
    covariance: np.ndarray
    observations: int
    shrinkage: float
    asset_names: tuple[str, ...] = ()

    @property
    def volatilities(self) -> np.ndarray:
        """Annualised volatility of each asset held alone: sqrt(diag(covariance))."""
        return np.sqrt(np.diag(self.covariance))


@dataclass(frozen=True, eq=False)
class LedoitWolfResult(_Result):
    """sklearn.covariance.LedoitWolf().fit(data): location_ (column means), covariance_ (the shrunk
    covariance (1 - s) S + s mu I, S = ddof-0 covariance, mu = trace(S)/n) and shrinkage_ (s)."""

    location: np.ndarray
    covariance: np.ndarray
    shrinkage: float


# ---- pairs workflow (issue 17) ----

PAIR_COLUMNS = (
    "i",
    "j",
    "hedge_ratio",
    "intercept",
    "statistic",
    "pvalue",
    "qvalue",
    "half_life",
    "hurst",
    "correlation",
    "used_lag",
)


@dataclass(frozen=True, eq=False)
class PairScanShard(_Result):
    """Raw rows of the pairs start..end of the canonical order (0,1), (0,2), ..., (1,2), ...
    (q-values and Hurst NaN): shards of one universe, concatenated, finalise to the whole scan
    (Backend.finalize_pair_scan)."""

    start: int
    end: int
    i: np.ndarray
    j: np.ndarray
    hedge_ratio: np.ndarray
    intercept: np.ndarray
    statistic: np.ndarray
    pvalue: np.ndarray
    qvalue: np.ndarray
    half_life: np.ndarray
    hurst: np.ndarray
    correlation: np.ndarray
    used_lag: np.ndarray

    def rows(self) -> dict[str, np.ndarray]:
        return {c: getattr(self, c) for c in PAIR_COLUMNS}


@dataclass(frozen=True, eq=False)
class PairScanResult(_Result):
    """Engle-Granger scan of a universe (statsmodels coint(prices[:, i], prices[:, j],
    trend="c") per pair i < j: asset i is the dependent series, spread = p_i - hedge_ratio * p_j
    - intercept). Rows are the pairs passing the filters, best (smallest p-value) first; q-values
    are Benjamini-Hochberg over all n_tested pairs; pvalue_matrix holds every tested pair."""

    asset_names: tuple[str, ...]
    i: np.ndarray
    j: np.ndarray
    hedge_ratio: np.ndarray
    intercept: np.ndarray
    statistic: np.ndarray
    pvalue: np.ndarray
    qvalue: np.ndarray
    half_life: np.ndarray
    hurst: np.ndarray
    correlation: np.ndarray
    used_lag: np.ndarray
    n_assets: int
    n_tested: int
    n_failed: int
    n_passed: int
    critical_values: np.ndarray  # 1 %, 5 %, 10 %
    pvalue_matrix: np.ndarray

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return [(self.asset_names[a], self.asset_names[b]) for a, b in zip(self.i, self.j)]

    def __len__(self) -> int:
        return len(self.i)


@dataclass(frozen=True, eq=False)
class JohansenResult(_Result):
    """statsmodels coint_johansen: eigenvalues (descending), eigenvectors (columns, normalised
    v' Skk v = 1, first entry of each column >= 0), trace and max-eigenvalue statistics for
    rank 0..n-1 with their 90/95/99 % critical values."""

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    trace_stat: np.ndarray
    trace_crit: np.ndarray
    max_eig_stat: np.ndarray
    max_eig_crit: np.ndarray
    nobs: int
    det_order: int
    k_ar_diff: int
    asset_names: tuple[str, ...] = ()

    @property
    def rank_trace_95(self) -> int:
        """Cointegration rank by the trace test at 95 %."""
        r = 0
        while r < len(self.trace_stat) and self.trace_stat[r] > self.trace_crit[r, 1]:
            r += 1
        return r


@dataclass(frozen=True, eq=False)
class KalmanHedgeResult(_Result):
    """Forward Kalman filter of y on x: filtered hedge ratio and intercept (data up to t), the
    one-step prediction error (spread, data up to t-1) and its predicted standard deviation."""

    hedge_ratio: np.ndarray
    intercept: np.ndarray
    spread: np.ndarray
    spread_std: np.ndarray
    delta: float
    observation_var: float

    @property
    def zscore(self) -> np.ndarray:
        return self.spread / self.spread_std


@dataclass(frozen=True, eq=False)
class WalkForwardResult(_Result):
    """Walk-forward of a pairs rule: pairs chosen on each formation window only, traded on the
    next trading window with everything fixed at formation. oos_* are the stitched out-of-sample
    curves (1.0 before the first trading bar); is_* the same rule chosen and traded on the whole
    sample (look-ahead, for comparison). Per-window arrays: formation_start, trading_start,
    trading_end, n_pairs, trades, pnl (compounded return), turnover, costs. selections /
    is_selections: dicts of arrays (window, i, j, pvalue, hedge_ratio, intercept, spread_mean,
    spread_std)."""

    oos_equity: np.ndarray
    oos_drawdown: np.ndarray
    is_equity: np.ndarray
    is_drawdown: np.ndarray
    formation_start: np.ndarray
    trading_start: np.ndarray
    trading_end: np.ndarray
    n_pairs: np.ndarray
    trades: np.ndarray
    pnl: np.ndarray
    turnover: np.ndarray
    costs: np.ndarray
    selections: dict
    is_selections: dict
    asset_names: tuple[str, ...] = ()
