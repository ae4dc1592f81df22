//! Sparse mean-reverting portfolio discovery.
//!
//! From a price matrix (time x assets, row-major) find a small basket of assets whose value
//! mean-reverts. Four methods share one result type ([`SparseResult`]):
//!
//! * **Lasso** ([`SparseMethod::Lasso`]): regress a target asset's price on the other assets'
//!   prices with an L1 penalty, so that only a few hedges get a nonzero coefficient. The objective
//!   is exactly scikit-learn's `Lasso` (and `ElasticNet` with `l1_ratio = 1`):
//!   `1/(2n)·‖y − ȳ − (X − X̄)β‖² + λ·‖β‖₁`, intercept unpenalised (X and y are centred).
//!   The basket is `+1` on the target and `−β_j` on each hedge `j`, so the spread
//!   `basket · prices_t = y_t − Σ β_j x_{t,j}` equals the regression intercept plus the residual.
//! * **Elastic net** ([`SparseMethod::ElasticNet`]): the same regression with scikit-learn's
//!   `ElasticNet` objective `1/(2n)·RSS + λ·α·‖β‖₁ + ½·λ·(1−α)·‖β‖²` (α = L1 ratio in [0, 1]).
//!   The L2 part keeps groups of correlated hedges together instead of picking one at random.
//! * **Box-Tiao** ([`SparseMethod::BoxTiao`]): the least predictable linear combination of *all*
//!   assets, from a VAR(1) fitted on demeaned prices (not sparse; the dense benchmark).
//! * **Greedy** ([`SparseMethod::Greedy`]): d'Aspremont's (2011) greedy search for the least
//!   predictable basket with exactly `k` assets (the sparse version of Box-Tiao).
//!
//! Every result carries the spread series, its Ornstein-Uhlenbeck half-life and its ADF statistic
//! (constant, no lags) with Engle-Granger critical values (MacKinnon 2010).
//!
//! The regression solver is coordinate descent with covariance (Gram) updates (Friedman, Hastie &
//! Tibshirani 2010, "glmnet"): `Xᵀr` is maintained instead of the residual, so one coordinate
//! update costs O(working set) instead of O(T). Gram entries `x_jᵀx_k` of the centred prices are
//! computed lazily and cached (shared by all targets of one call): only the working-set entries
//! of an asset whose coefficient changes, and full rows (four at a time, one pass over the data)
//! for the nonzero coefficients when the duality gap is checked. Sweeps run over a working set
//! (nonzeros ∪ sequential strong set, extended by KKT checks); convergence is certified by
//! scikit-learn's duality gap (`gap ≤ tolerance · ‖y − ȳ‖²` in units of `n ×` objective),
//! checked when the largest coordinate change is `≤ tolerance ·` the largest coefficient — the
//! stopping rule and the `tolerance` parameter mean exactly what they mean in scikit-learn.
//! A single-λ fit follows a short geometric λ path from λ_max (ratio 0.7) with warm starts; the
//! λ path function warm-starts each λ from the previous one.

// Index loops mirror the textbook algorithms (tred2/tql2, Cholesky); `!(x > y)` deliberately
// treats NaN as failure.
#![allow(clippy::needless_range_loop, clippy::neg_cmp_op_on_partial_ord)]

use crate::adf::{adf, Autolag};
use crate::error::{check, CoreError, CoreResult};
use crate::num::{pz, pz_all};

/// Fewest price observations (rows) accepted by every method.
pub const MIN_OBSERVATIONS: usize = 10;
/// Most lambdas a path may have (each is a full fit; the result holds a weight row per lambda).
pub const MAX_PATH_LAMBDAS: usize = 1000;

/// Ratio between consecutive λ of the internal warm-start path of a single fit.
const PATH_RATIO: f64 = 0.7;

/// Which sparse-basket method to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SparseMethod {
    /// Lasso: regress the target asset's price on all other assets' prices minimising
    /// scikit-learn's `1/(2n)·‖y − ȳ − (X − X̄)β‖² + λ‖β‖₁` (unpenalised intercept). The L1 penalty
    /// sets most hedge ratios β_j exactly to zero; the basket is +1 target, −β_j hedges, and its
    /// value is the regression residual plus the intercept — a cointegrating spread when the
    /// target is cointegrated with the selected hedges. Larger λ → fewer hedges.
    Lasso,
    /// Elastic net: the same regression with scikit-learn's `ElasticNet` objective
    /// `1/(2n)·RSS + λ·α·‖β‖₁ + ½·λ·(1−α)·‖β‖²` (α = L1 ratio in [0, 1]; α = 1 is the lasso,
    /// α = 0 ridge). The L2 part spreads the hedge over groups of correlated assets instead of
    /// picking one of them arbitrarily, and stabilises the fit on collinear prices.
    ElasticNet,
    /// Box-Tiao canonical decomposition (Box & Tiao 1977, as used by d'Aspremont 2011): fit a
    /// VAR(1) `x_t = Aᵀx_{t−1} + e_t` on demeaned prices by least squares and return the basket
    /// y of *all* assets whose value is least predictable from its past, i.e. minimising the
    /// predictability `ν(y) = yᵀAᵀΓ0A y / yᵀΓ0 y`. With `Γ0 = Σ x_{t−1}x_{t−1}ᵀ/(T−1)`,
    /// `Γ1 = Σ x_{t−1}x_tᵀ/(T−1)` and `A = Γ0⁻¹Γ1` this is the eigenvector of the smallest
    /// eigenvalue of `Γ0⁻¹ Γ1ᵀ Γ0⁻¹ Γ1` (solved as the symmetric generalized problem
    /// `Γ1ᵀΓ0⁻¹Γ1 y = ν Γ0 y`). Weights have unit L2 norm, largest |w| positive. Not sparse.
    BoxTiao,
    /// Greedy sparse Box-Tiao (d'Aspremont 2011, section 3.1): the same predictability matrices,
    /// but the basket may hold only `k` assets. Start from the single least predictable asset
    /// (`argmin M_ii/Γ0_ii`, `M = Γ1ᵀΓ0⁻¹Γ1`); then repeatedly add the asset whose inclusion gives
    /// the smallest generalized eigenvalue of the sub-blocks `(M_JJ, Γ0_JJ)`, until |J| = k; the
    /// basket is the Box-Tiao solution on J. A cheap, usually near-optimal answer to the NP-hard
    /// cardinality-constrained problem.
    Greedy,
}

impl SparseMethod {
    /// Parse the user-facing name: "lasso", "elastic_net", "box_tiao" or "greedy"
    /// (case-insensitive; "elasticnet", "elastic-net", "box-tiao", "boxtiao" also accepted).
    pub fn from_name(name: &str) -> CoreResult<SparseMethod> {
        match name.trim().to_ascii_lowercase().as_str() {
            "lasso" => Ok(SparseMethod::Lasso),
            "elastic_net" | "elasticnet" | "elastic-net" | "enet" => Ok(SparseMethod::ElasticNet),
            "box_tiao" | "boxtiao" | "box-tiao" => Ok(SparseMethod::BoxTiao),
            "greedy" => Ok(SparseMethod::Greedy),
            _ => Err(CoreError::invalid(format!(
                "method must be one of \"lasso\", \"elastic_net\", \"box_tiao\", \"greedy\", got \"{name}\""
            ))),
        }
    }

    /// The canonical name ("lasso", "elastic_net", "box_tiao", "greedy").
    pub fn name(self) -> &'static str {
        match self {
            SparseMethod::Lasso => "lasso",
            SparseMethod::ElasticNet => "elastic_net",
            SparseMethod::BoxTiao => "box_tiao",
            SparseMethod::Greedy => "greedy",
        }
    }
}

/// Parameters of [`sparse_portfolio`].
#[derive(Debug, Clone, PartialEq)]
pub struct SparseConfig {
    pub method: SparseMethod,
    /// λ (scikit-learn's `alpha`): overall penalty strength, >= 0. Lasso / elastic net only.
    pub lambda: f64,
    /// L1 ratio in [0, 1] (scikit-learn's `l1_ratio`). Elastic net only; lasso uses 1.
    pub alpha: f64,
    /// Target asset (column index) for lasso / elastic net. `None`: every asset is tried as the
    /// target and the one whose spread has the most negative ADF statistic is kept.
    pub target: Option<usize>,
    /// Basket cardinality for greedy (2 <= k <= number of assets). Required for greedy.
    pub k: Option<usize>,
    /// Maximum number of coordinate-descent sweeps of the fit at `lambda` (per target; the
    /// internal warm-start fits at larger λ get max(max_iterations / 10, 100) each). Lasso /
    /// elastic net. Not converging is an error (`Numerical`), except with `target: None`, where
    /// such targets are skipped (error only if none converges).
    pub max_iterations: usize,
    /// scikit-learn's `tol`: stop when the duality gap <= tolerance · ‖y − ȳ‖² / n (objective units).
    pub tolerance: f64,
    /// Lagged differences in the spread's ADF regression: `Autolag::None` = 0 lags (the default);
    /// AIC / BIC / t-stat choose them as statsmodels' `adfuller(spread, autolag=…)` does
    /// (see [`crate::adf`]). The statistic chosen also ranks the targets when `target` is `None`.
    pub adf_autolag: Autolag,
}

impl Default for SparseConfig {
    fn default() -> Self {
        SparseConfig {
            method: SparseMethod::Lasso,
            lambda: 0.1,
            alpha: 0.5,
            target: None,
            k: None,
            max_iterations: 10_000,
            tolerance: 1e-4,
            adf_autolag: Autolag::None,
        }
    }
}

/// A sparse basket and the statistics of its spread.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseResult {
    /// Canonical method name ("lasso", "elastic_net", "box_tiao", "greedy").
    pub method: String,
    /// Basket weights (N). Lasso / elastic net: 1 on the target and −β_j on hedge j (so the
    /// hedge coefficients are `-weights[j]`). Box-Tiao / greedy: unit L2 norm, largest |w| positive.
    pub weights: Vec<f64>,
    /// Target column for lasso / elastic net; `None` for Box-Tiao and greedy.
    pub target_index: Option<usize>,
    /// Lasso / elastic net: the regression intercept `ȳ − Σ β_j x̄_j` (scikit-learn's
    /// `intercept_`), i.e. the mean of the spread. Box-Tiao / greedy: the mean of the spread.
    pub intercept: f64,
    /// Number of nonzero basket weights (the target counts as one).
    pub nonzero: usize,
    /// Spread series `s_t = Σ_j weights[j] · prices[t, j]` (T values, intercept not removed).
    pub spread: Vec<f64>,
    /// Ornstein-Uhlenbeck half-life of the spread in observations (see [`ar1_mean_reversion`]);
    /// `f64::INFINITY` when the spread does not mean-revert (AR(1) slope b >= 0).
    pub half_life: f64,
    /// ADF statistic of the spread (regression with constant and `adf_lag` lagged differences).
    pub adf_statistic: f64,
    /// Lagged differences used by the ADF regression (0 unless `adf_autolag` chose more).
    pub adf_lag: usize,
    /// Engle-Granger critical values at 1 %, 5 %, 10 % for `nonzero` variables
    /// (see [`engle_granger_critical_values`]).
    pub adf_critical_values: Vec<f64>,
    /// Lasso / elastic net: scikit-learn's objective at the solution. Box-Tiao / greedy: the
    /// predictability ν = var(predicted part) / var(spread) of the basket (smaller = more
    /// mean-reverting).
    pub objective: f64,
    /// Lasso / elastic net: coordinate-descent sweeps of the reported target's fit, including its
    /// warm-start path. Greedy: greedy steps (k − 1). Box-Tiao: 0 (direct method).
    pub iterations: usize,
}

impl SparseResult {
    /// Signed zeros to +0.0 (both transports bit-identical; proto3 drops −0.0).
    fn no_neg_zero(mut self) -> Self {
        for v in [
            &mut self.weights,
            &mut self.spread,
            &mut self.adf_critical_values,
        ] {
            pz_all(v);
        }
        for v in [
            &mut self.intercept,
            &mut self.half_life,
            &mut self.adf_statistic,
            &mut self.objective,
        ] {
            *v = pz(*v);
        }
        self
    }
}

/// Parameters of [`sparse_lambda_path`].
#[derive(Debug, Clone, PartialEq)]
pub struct LambdaPathConfig {
    /// Target asset (column index).
    pub target: usize,
    /// λ values to fit. `None`: `n_lambdas` values log-spaced from λ_max (the smallest λ with
    /// an all-zero β) down to `eps · λ_max`.
    pub lambdas: Option<Vec<f64>>,
    pub n_lambdas: usize,
    /// Ratio λ_min / λ_max of the automatic grid (scikit-learn's `eps`, default 1e-3).
    pub eps: f64,
    /// L1 ratio in [0, 1] (1 = lasso). Must be > 0 when `lambdas` is `None`.
    pub alpha: f64,
    /// Maximum coordinate-descent sweeps per λ.
    pub max_iterations: usize,
    /// scikit-learn's `tol`, per λ.
    pub tolerance: f64,
}

impl Default for LambdaPathConfig {
    fn default() -> Self {
        LambdaPathConfig {
            target: 0,
            lambdas: None,
            n_lambdas: 20,
            eps: 1e-3,
            alpha: 1.0,
            max_iterations: 10_000,
            tolerance: 1e-4,
        }
    }
}

/// Per-λ summary of a regularisation path (all vectors have one entry per λ, in the order of
/// `lambdas`, i.e. the order the caller gave or decreasing for the automatic grid).
#[derive(Debug, Clone, PartialEq)]
pub struct LambdaPath {
    pub lambdas: Vec<f64>,
    /// Nonzero basket weights (the target counts as one).
    pub nonzero: Vec<usize>,
    /// Half-life of the spread (`f64::INFINITY` when not mean-reverting).
    pub half_life: Vec<f64>,
    pub adf_statistic: Vec<f64>,
    /// Basket weights, row-major L x N (row l: 1 on the target, −β on the hedges).
    pub weights: Vec<f64>,
    /// Regression intercept per λ.
    pub intercepts: Vec<f64>,
    /// Coordinate-descent sweeps per λ.
    pub iterations: Vec<usize>,
}

/// AR(1) mean-reversion statistics of a series, see [`ar1_mean_reversion`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ar1Stats {
    /// Slope b of `Δs_t = a + b·s_{t−1} + e_t`.
    pub b: f64,
    /// Intercept a.
    pub a: f64,
    /// `−ln 2 / ln(1 + b)` (observations); see [`ar1_mean_reversion`] for the edge cases.
    pub half_life: f64,
    /// t statistic of b (= ADF statistic with constant and no lagged differences).
    pub adf_statistic: f64,
}

impl Ar1Stats {
    fn no_neg_zero(self) -> Self {
        Ar1Stats {
            b: pz(self.b),
            a: pz(self.a),
            half_life: pz(self.half_life),
            adf_statistic: pz(self.adf_statistic),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Public entry points
// ---------------------------------------------------------------------------------------------

/// Find a sparse mean-reverting basket in `prices` (row-major, `rows` observations x `cols`
/// assets) with the method and parameters of `config`.
///
/// `on_progress(iteration, value)` is called once per coordinate-descent sweep (value: current
/// primal objective) or once per greedy step (value: predictability of the basket so far);
/// returning `false` stops the computation with [`CoreError::Cancelled`].
pub fn sparse_portfolio(
    prices: &[f64],
    rows: usize,
    cols: usize,
    config: &SparseConfig,
    on_progress: &mut dyn FnMut(usize, f64) -> bool,
) -> CoreResult<SparseResult> {
    validate_prices(prices, rows, cols)?;
    let _budget = crate::limits::reserve(&crate::limits::sparse(config.method.name(), rows, cols))?;
    match config.method {
        SparseMethod::Lasso | SparseMethod::ElasticNet => {
            let alpha = if config.method == SparseMethod::Lasso {
                1.0
            } else {
                config.alpha
            };
            validate_penalty("lambda", config.lambda, alpha)?;
            validate_solver(config.max_iterations, config.tolerance)?;
            if let Some(t) = config.target {
                if t >= cols {
                    return Err(CoreError::invalid(format!(
                        "target must be an asset index between 0 and {} (or None), got {t}",
                        cols - 1
                    )));
                }
            }
            regression_basket(prices, rows, cols, config, alpha, on_progress)
        }
        SparseMethod::BoxTiao => {
            let pm = PredictabilityMatrices::new(prices, rows, cols)?;
            if !on_progress(0, 0.0) {
                return Err(CoreError::Cancelled);
            }
            let all: Vec<usize> = (0..cols).collect();
            let (nu, w_sub) = pm.least_predictable(&all)?;
            finish_eigen_basket(
                prices,
                rows,
                cols,
                SparseMethod::BoxTiao,
                &all,
                &w_sub,
                nu,
                0,
                config.adf_autolag,
            )
        }
        SparseMethod::Greedy => {
            let k = match config.k {
                Some(k) => k,
                None => {
                    return Err(CoreError::invalid(format!(
                        "k (the basket cardinality) is required for method greedy: give 2 <= k <= {cols}"
                    )))
                }
            };
            if k < 2 || k > cols {
                return Err(CoreError::invalid(format!(
                    "k must be between 2 and the number of assets ({cols}), got {k}"
                )));
            }
            let pm = PredictabilityMatrices::new(prices, rows, cols)?;
            let support = pm.greedy_support(k, on_progress)?;
            let (nu, w_sub) = pm.least_predictable(&support)?;
            finish_eigen_basket(
                prices,
                rows,
                cols,
                SparseMethod::Greedy,
                &support,
                &w_sub,
                nu,
                k - 1,
                config.adf_autolag,
            )
        }
    }
}

/// Fit the lasso / elastic net of asset `config.target` on the other assets for every λ of a
/// path (warm starts, largest λ first) and report, per λ, the basket size, half-life and ADF
/// statistic so a user can choose λ.
///
/// `on_progress(iteration, objective)` is called once per coordinate-descent sweep (iteration
/// counted over the whole path).
pub fn sparse_lambda_path(
    prices: &[f64],
    rows: usize,
    cols: usize,
    config: &LambdaPathConfig,
    on_progress: &mut dyn FnMut(usize, f64) -> bool,
) -> CoreResult<LambdaPath> {
    validate_prices(prices, rows, cols)?;
    if !(config.alpha.is_finite() && (0.0..=1.0).contains(&config.alpha)) {
        return Err(CoreError::invalid(format!(
            "alpha (the L1 ratio) must be between 0 and 1, got {}",
            config.alpha
        )));
    }
    validate_solver(config.max_iterations, config.tolerance)?;
    let target = config.target;
    if target >= cols {
        return Err(CoreError::invalid(format!(
            "target must be an asset index between 0 and {}, got {target}",
            cols - 1
        )));
    }
    let n_lambdas = config
        .lambdas
        .as_ref()
        .map_or(config.n_lambdas, |l| l.len())
        .min(MAX_PATH_LAMBDAS);
    let _budget = crate::limits::reserve(&crate::limits::lambda_path(rows, cols, n_lambdas))?;
    let mut design = Design::new(prices, rows, cols)?;
    let lambdas: Vec<f64> = match &config.lambdas {
        Some(l) => {
            if l.is_empty() {
                return Err(CoreError::invalid("lambdas is empty"));
            }
            if l.len() > MAX_PATH_LAMBDAS {
                return Err(CoreError::invalid(format!(
                    "lambdas has {} values: at most {MAX_PATH_LAMBDAS} are allowed",
                    l.len()
                )));
            }
            for (i, &v) in l.iter().enumerate() {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(CoreError::invalid(format!(
                        "lambdas must be finite and >= 0, got {v} at index {i}"
                    )));
                }
            }
            l.clone()
        }
        None => {
            if config.n_lambdas == 0 || config.n_lambdas > MAX_PATH_LAMBDAS {
                return Err(CoreError::invalid(format!(
                    "n_lambdas must be between 1 and {MAX_PATH_LAMBDAS}, got {}",
                    config.n_lambdas
                )));
            }
            if !(config.eps.is_finite() && config.eps > 0.0 && config.eps <= 1.0) {
                return Err(CoreError::invalid(format!(
                    "eps (lambda_min / lambda_max) must be in (0, 1], got {}",
                    config.eps
                )));
            }
            if config.alpha == 0.0 {
                return Err(CoreError::invalid(
                    "alpha (the L1 ratio) must be > 0 to derive the lambdas from lambda_max \
                     (lambda_max is infinite for a pure ridge penalty): give lambdas explicitly",
                ));
            }
            let lmax = design.lambda_max(target, config.alpha);
            if !(lmax > 0.0) {
                return Err(CoreError::numerical(
                    "lambda_max is 0: the target is uncorrelated with every other asset",
                ));
            }
            log_grid(lmax, config.eps, config.n_lambdas)
        }
    };
    // Fit in decreasing order of λ for warm starts, report in the caller's order.
    let mut order: Vec<usize> = (0..lambdas.len()).collect();
    order.sort_by(|&a, &b| {
        lambdas[b]
            .partial_cmp(&lambdas[a])
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(&b))
    });
    let l_count = lambdas.len();
    let mut out = LambdaPath {
        lambdas: lambdas.clone(),
        nonzero: vec![0; l_count],
        half_life: vec![0.0; l_count],
        adf_statistic: vec![0.0; l_count],
        weights: vec![0.0; l_count * cols],
        intercepts: vec![0.0; l_count],
        iterations: vec![0; l_count],
    };
    let mut w = vec![0.0; cols];
    let mut counter = 0usize;
    let mut prev = if config.alpha > 0.0 {
        design.lambda_max(target, config.alpha)
    } else {
        f64::INFINITY
    };
    for &li in &order {
        let lam = lambdas[li];
        let fit = design.fit(
            target,
            lam,
            prev.max(lam),
            config.alpha,
            config.tolerance,
            config.max_iterations,
            &mut w,
            &mut counter,
            on_progress,
        )?;
        fit.require_converged(lam, config.max_iterations)?;
        let basket = design.basket(prices, target, &w, lam, config.alpha);
        let st = ar1_mean_reversion(&basket.spread)?;
        out.nonzero[li] = basket.nonzero;
        out.half_life[li] = st.half_life;
        out.adf_statistic[li] = st.adf_statistic;
        out.weights[li * cols..(li + 1) * cols].copy_from_slice(&basket.weights);
        out.intercepts[li] = basket.intercept;
        out.iterations[li] = fit.iterations;
        prev = lam;
    }
    for v in [
        &mut out.lambdas,
        &mut out.half_life,
        &mut out.adf_statistic,
        &mut out.weights,
        &mut out.intercepts,
    ] {
        pz_all(v); // signed zeros: +0.0
    }
    Ok(out)
}

/// AR(1) / Ornstein-Uhlenbeck statistics of a series s (at least 4 values): the OLS regression
/// `Δs_t = a + b·s_{t−1} + e_t` (t = 1 … T−1).
///
/// * `half_life = −ln 2 / ln(1 + b)` for −1 < b < 0; `f64::INFINITY` otherwise: b >= 0 (no mean
///   reversion) and b <= −1 (the deviation flips sign every step: not an OU process). The one
///   convention of [`crate::num::ar1_half_life`], shared with the OU fit (whose level slope is
///   1 + b).
/// * `adf_statistic = b / se(b)` with `se(b)² = RSS / (T − 3) / Σ(s_{t−1} − mean)²`: the
///   augmented Dickey-Fuller statistic with a constant and no lagged differences (statsmodels
///   `adfuller(s, maxlag=0, autolag=None, regression="c")[0]`).
///
/// A constant series gives `b = 0`, `adf_statistic = −∞` and `half_life = 0` (perfect
/// reversion, as statsmodels' `coint` reports −∞ for a perfect fit).
pub fn ar1_mean_reversion(series: &[f64]) -> CoreResult<Ar1Stats> {
    let t = series.len();
    if t < 4 {
        return Err(CoreError::invalid(format!(
            "the spread needs at least 4 observations for the AR(1) / ADF regression, got {t}"
        )));
    }
    check::finite("spread", series)?;
    let m = t - 1;
    let mf = m as f64;
    let (mut sx, mut sd) = (0.0, 0.0);
    for i in 0..m {
        sx += series[i];
        sd += series[i + 1] - series[i];
    }
    let (mx, md) = (sx / mf, sd / mf);
    let (mut sxx, mut sxd) = (0.0, 0.0);
    for i in 0..m {
        let x = series[i] - mx;
        let d = series[i + 1] - series[i] - md;
        sxx += x * x;
        sxd += x * d;
    }
    if sxx == 0.0 || sxx <= 1e-28 * (mx * mx * mf) {
        return Ok(Ar1Stats {
            b: 0.0,
            a: 0.0,
            half_life: 0.0,
            adf_statistic: f64::NEG_INFINITY,
        }
        .no_neg_zero());
    }
    let b = sxd / sxx;
    let a = md - b * mx;
    let mut rss = 0.0;
    for i in 0..m {
        let e = (series[i + 1] - series[i] - md) - b * (series[i] - mx);
        rss += e * e;
    }
    let se = (rss / (mf - 2.0) / sxx).sqrt();
    let adf = if se > 0.0 {
        b / se
    } else if b < 0.0 {
        f64::NEG_INFINITY
    } else if b > 0.0 {
        f64::INFINITY
    } else {
        0.0
    };
    Ok(Ar1Stats {
        b,
        a,
        half_life: half_life_from_b(b),
        adf_statistic: adf,
    }
    .no_neg_zero())
}

/// ADF statistic and lag count of a spread: the AR(1) statistic (0 lags) unless `autolag` asks for
/// statsmodels' lag selection. A perfectly fitting (e.g. constant) spread keeps the AR(1) ±∞.
fn spread_adf(spread: &[f64], st: &Ar1Stats, autolag: Autolag) -> CoreResult<(f64, usize)> {
    if autolag == Autolag::None || !st.adf_statistic.is_finite() {
        return Ok((st.adf_statistic, 0));
    }
    let r = adf(spread, None, autolag)?;
    Ok((r.statistic, r.used_lag))
}

fn half_life_from_b(b: f64) -> f64 {
    crate::num::ar1_half_life(1.0 + b)
}

/// MacKinnon (2010) response-surface coefficients for the Engle-Granger / ADF test with a
/// constant ("c"), N = 1 … 12 variables, rows 1 %, 5 %, 10 %: crit = b0 + b1/T + b2/T² + b3/T³.
/// (Same table as statsmodels `adfvalues.tau_c_2010`.)
const TAU_C_2010: [[[f64; 4]; 3]; 12] = [
    [
        [-3.43035, -6.5393, -16.786, -79.433],
        [-2.86154, -2.8903, -4.234, -40.040],
        [-2.56677, -1.5384, -2.809, 0.0],
    ],
    [
        [-3.89644, -10.9519, -33.527, 0.0],
        [-3.33613, -6.1101, -6.823, 0.0],
        [-3.04445, -4.2412, -2.720, 0.0],
    ],
    [
        [-4.29374, -14.4354, -33.195, 47.433],
        [-3.74066, -8.5632, -10.852, 27.982],
        [-3.45218, -6.2143, -3.718, 0.0],
    ],
    [
        [-4.64332, -18.1031, -37.972, 0.0],
        [-4.09600, -11.2349, -11.175, 0.0],
        [-3.81020, -8.3931, -4.137, 0.0],
    ],
    [
        [-4.95756, -21.8883, -45.142, 0.0],
        [-4.41519, -14.0405, -12.575, 0.0],
        [-4.13157, -10.7417, -3.784, 0.0],
    ],
    [
        [-5.24568, -25.6688, -57.737, 88.639],
        [-4.70693, -16.9178, -17.492, 60.007],
        [-4.42501, -13.1875, -5.104, 27.877],
    ],
    [
        [-5.51233, -29.5760, -69.398, 164.295],
        [-4.97684, -19.9021, -22.045, 110.761],
        [-4.69648, -15.7315, -5.104, 27.877],
    ],
    [
        [-5.76202, -33.5258, -82.189, 256.289],
        [-5.22924, -23.0023, -24.646, 144.479],
        [-4.95007, -18.3959, -7.344, 94.872],
    ],
    [
        [-5.99742, -37.6572, -87.365, 248.316],
        [-5.46697, -26.2057, -26.627, 176.382],
        [-5.18897, -21.1377, -9.484, 172.704],
    ],
    [
        [-6.22103, -41.7154, -102.680, 389.33],
        [-5.69244, -29.4521, -30.994, 251.016],
        [-5.41533, -24.0006, -7.514, 163.049],
    ],
    [
        [-6.43377, -46.0084, -106.809, 352.752],
        [-5.90714, -32.8336, -30.275, 249.994],
        [-5.63086, -26.9693, -4.083, 151.427],
    ],
    [
        [-6.63790, -50.2095, -124.156, 579.622],
        [-6.11279, -36.2681, -32.505, 314.802],
        [-5.83724, -29.9864, -2.686, 184.116],
    ],
];

/// Engle-Granger critical values (1 %, 5 %, 10 %) for a cointegrating regression with a constant
/// and `n_vars` variables (the number of assets in the basket, target included), from MacKinnon's
/// (2010) response surface at sample size `nobs`; equals statsmodels
/// `mackinnoncrit(N=n_vars, regression="c", nobs=nobs)`. The spread's functions use
/// `nobs = T − 1` like statsmodels' `coint`. MacKinnon tabulates N = 1 … 12 only: for
/// `n_vars > 12` the N = 12 values are returned (they are then too lenient), for 0 the N = 1 ones.
pub fn engle_granger_critical_values(n_vars: usize, nobs: usize) -> [f64; 3] {
    let n = n_vars.clamp(1, 12);
    let inv = 1.0 / nobs.max(1) as f64;
    let mut out = [0.0; 3];
    for (lvl, c) in TAU_C_2010[n - 1].iter().enumerate() {
        out[lvl] = c[0] + inv * (c[1] + inv * (c[2] + inv * c[3]));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

fn validate_prices(prices: &[f64], rows: usize, cols: usize) -> CoreResult<()> {
    check::finite_matrix("prices", prices, rows, cols)?;
    if cols < 2 {
        return Err(CoreError::invalid(format!(
            "prices must have at least 2 assets (columns), got {cols}"
        )));
    }
    if rows < MIN_OBSERVATIONS {
        return Err(CoreError::invalid(format!(
            "prices must have at least {MIN_OBSERVATIONS} observations (rows), got {rows}"
        )));
    }
    // Constant columns, then exactly duplicated columns.
    for j in 0..cols {
        let first = prices[j];
        if (1..rows).all(|t| prices[t * cols + j] == first) {
            return Err(CoreError::invalid(format!(
                "prices column {j} is constant: a constant price cannot be part of a basket; remove it"
            )));
        }
    }
    if let Some((j, k)) = first_duplicate_column(prices, rows, cols)? {
        return Err(CoreError::invalid(format!(
            "prices are collinear: columns {j} and {k} are exactly duplicated; remove one of them"
        )));
    }
    Ok(())
}

/// The first pair (j, k), j < k, of exactly equal columns (in the order of a double loop over j
/// then k), or None. O(rows · cols + cols · log cols) by hashing each column (the former pairwise
/// comparison was O(cols²) and never polled cancel: 60 000 columns took seconds).
fn first_duplicate_column(
    prices: &[f64],
    rows: usize,
    cols: usize,
) -> CoreResult<Option<(usize, usize)>> {
    // FNV-1a over the bit patterns, with -0.0 folded into 0.0 (they compare equal).
    let mut h = vec![0xcbf2_9ce4_8422_2325u64; cols];
    for t in 0..rows {
        if t % 4096 == 4095 {
            crate::limits::poll()?;
        }
        let r = &prices[t * cols..(t + 1) * cols];
        for (hj, &v) in h.iter_mut().zip(r) {
            let bits = if v == 0.0 { 0u64 } else { v.to_bits() };
            *hj = (*hj ^ bits).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    let mut order: Vec<usize> = (0..cols).collect();
    order.sort_unstable_by_key(|&j| (h[j], j));
    let same = |j: usize, k: usize| (0..rows).all(|t| prices[t * cols + j] == prices[t * cols + k]);
    let mut best: Option<(usize, usize)> = None;
    let mut i = 0;
    while i < order.len() {
        let mut e = i + 1;
        while e < order.len() && h[order[e]] == h[order[i]] {
            e += 1;
        }
        // a bucket of equal hashes (sorted by column): find its first truly equal pair
        let bucket = &order[i..e];
        'outer: for (a, &j) in bucket.iter().enumerate() {
            if best.is_some_and(|(bj, _)| bj <= j) {
                break;
            }
            crate::limits::poll()?;
            for &k in &bucket[a + 1..] {
                if same(j, k) {
                    best = Some((j, k));
                    break 'outer;
                }
            }
        }
        i = e;
    }
    Ok(best)
}

fn validate_penalty(name: &str, lambda: f64, alpha: f64) -> CoreResult<()> {
    if !(lambda.is_finite() && lambda >= 0.0) {
        return Err(CoreError::invalid(format!(
            "{name} must be a finite number >= 0, got {lambda}"
        )));
    }
    if !(alpha.is_finite() && (0.0..=1.0).contains(&alpha)) {
        return Err(CoreError::invalid(format!(
            "alpha (the L1 ratio) must be between 0 and 1, got {alpha}"
        )));
    }
    Ok(())
}

fn validate_solver(max_iterations: usize, tolerance: f64) -> CoreResult<()> {
    if max_iterations == 0 {
        return Err(CoreError::invalid(
            "max_iterations must be at least 1, got 0",
        ));
    }
    check::positive("tolerance", tolerance)
}

fn log_grid(lmax: f64, eps: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![lmax];
    }
    let (hi, lo) = (lmax.log10(), (lmax * eps).log10());
    (0..n)
        .map(|i| {
            if i == 0 {
                lmax
            } else {
                10f64.powf(hi + (lo - hi) * i as f64 / (n - 1) as f64)
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Lasso / elastic net: coordinate descent with covariance updates
// ---------------------------------------------------------------------------------------------

/// Dot product with 8 independent accumulators (vectorises without fast-math).
#[inline]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut s = [0.0f64; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            s[i] += x[i] * y[i];
        }
    }
    let mut tail = 0.0;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])) + tail
}

/// 4 dot products sharing the streamed vector `b` (`a0..a3 · b`).
#[inline]
fn dot4(a: [&[f64]; 4], b: &[f64]) -> [f64; 4] {
    let n = b.len();
    let mut s = [[0.0f64; 4]; 4];
    let full = n / 4 * 4;
    let mut i = 0;
    while i < full {
        let bb = &b[i..i + 4];
        for c in 0..4 {
            let aa = &a[c][i..i + 4];
            for l in 0..4 {
                s[c][l] += aa[l] * bb[l];
            }
        }
        i += 4;
    }
    let mut out = [0.0; 4];
    for c in 0..4 {
        let mut tail = 0.0;
        for j in full..n {
            tail += a[c][j] * b[j];
        }
        out[c] = ((s[c][0] + s[c][2]) + (s[c][1] + s[c][3])) + tail;
    }
    out
}

#[inline]
fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// Centred design (all assets) with a lazily filled, cached Gram matrix.
struct Design {
    n: usize,
    p: usize,
    means: Vec<f64>,
    /// Centred columns, column-major: column j is `xc[j*n .. (j+1)*n]`.
    xc: Vec<f64>,
    /// `gram[k*p + j] = <xc_k, xc_j>`, valid iff `known[k*p + j]` (kept symmetric: an entry is
    /// computed once, stored at (k, j) and (j, k), and never changes afterwards).
    gram: Vec<f64>,
    known: Vec<bool>,
    /// Row k is completely known.
    full: Vec<bool>,
    /// Row k is known on the working set of version `row_version[k]`.
    row_version: Vec<u64>,
    diag: Vec<f64>,
    /// Version of the current working set (see `row_version`).
    version: u64,
}

struct FitOutcome {
    iterations: usize,
    /// Final duality gap in objective units (gap / n).
    gap: f64,
    /// Tolerance on the gap in objective units (tol · ‖y − ȳ‖² / n).
    tol: f64,
    converged: bool,
}

impl FitOutcome {
    fn require_converged(&self, lambda: f64, max_iter: usize) -> CoreResult<()> {
        if self.converged {
            return Ok(());
        }
        Err(CoreError::numerical(format!(
            "coordinate descent did not converge in {max_iter} iterations (lambda = {lambda}, \
             duality gap {:.3e} > tolerance {:.3e}): increase max_iterations, tolerance or lambda",
            self.gap, self.tol
        )))
    }
}

struct Basket {
    weights: Vec<f64>,
    spread: Vec<f64>,
    intercept: f64,
    nonzero: usize,
    objective: f64,
}

impl Design {
    fn new(prices: &[f64], rows: usize, cols: usize) -> CoreResult<Design> {
        let (n, p) = (rows, cols);
        let mut means = vec![0.0; p];
        for t in 0..n {
            let r = &prices[t * p..(t + 1) * p];
            for j in 0..p {
                means[j] += r[j];
            }
        }
        for m in means.iter_mut() {
            *m /= n as f64;
        }
        let mut xc = crate::limits::zeroed(n * p, "the centred prices")?;
        for t in 0..n {
            let r = &prices[t * p..(t + 1) * p];
            for j in 0..p {
                xc[j * n + t] = r[j] - means[j];
            }
        }
        crate::limits::poll()?;
        // Refine the means once (two-pass correction) so that the columns sum to ~0.
        for j in 0..p {
            let col = &mut xc[j * n..(j + 1) * n];
            let c = col.iter().sum::<f64>() / n as f64;
            if c != 0.0 {
                means[j] += c;
                for v in col.iter_mut() {
                    *v -= c;
                }
            }
        }
        let diag: Vec<f64> = (0..p)
            .map(|j| {
                let c = &xc[j * n..(j + 1) * n];
                dot(c, c)
            })
            .collect();
        let mut gram = crate::limits::zeroed(p * p, "the Gram matrix")?;
        let mut known = crate::limits::zeroed_of::<bool>(p * p, "the Gram matrix")?;
        for j in 0..p {
            gram[j * p + j] = diag[j];
            known[j * p + j] = true;
        }
        Ok(Design {
            n,
            p,
            means,
            xc,
            gram,
            known,
            full: vec![false; p],
            row_version: vec![0; p],
            diag,
            version: 0,
        })
    }

    fn col(&self, j: usize) -> &[f64] {
        &self.xc[j * self.n..(j + 1) * self.n]
    }

    /// Make Gram rows `ks` completely known. Missing entries are computed four rows at a time
    /// (each data column is streamed once per four rows).
    fn ensure_full(&mut self, ks: &[usize]) {
        let mut todo: Vec<usize> = ks.iter().copied().filter(|&k| !self.full[k]).collect();
        todo.sort_unstable();
        todo.dedup();
        let p = self.p;
        for chunk in todo.chunks(4) {
            if chunk.len() == 4 {
                for j in 0..p {
                    if chunk.iter().all(|&k| self.known[k * p + j]) {
                        continue;
                    }
                    let a = [
                        self.col(chunk[0]),
                        self.col(chunk[1]),
                        self.col(chunk[2]),
                        self.col(chunk[3]),
                    ];
                    let d = dot4(a, self.col(j));
                    for (c, &k) in chunk.iter().enumerate() {
                        self.set(k, j, d[c]);
                    }
                }
            } else {
                for &k in chunk {
                    for j in 0..p {
                        if !self.known[k * p + j] {
                            let d = dot(self.col(k), self.col(j));
                            self.set(k, j, d);
                        }
                    }
                }
            }
            for &k in chunk {
                self.full[k] = true;
            }
        }
    }

    /// Store a Gram entry (both triangles) unless it is already known.
    #[inline]
    fn set(&mut self, k: usize, j: usize, v: f64) {
        let p = self.p;
        if !self.known[k * p + j] {
            self.gram[k * p + j] = v;
            self.gram[j * p + k] = v;
            self.known[k * p + j] = true;
            self.known[j * p + k] = true;
        }
    }

    /// Make the entries (k, i), i ∈ `idx`, of Gram row k known.
    fn ensure_entries(&mut self, k: usize, idx: &[usize]) {
        if self.full[k] {
            return;
        }
        let p = self.p;
        for &i in idx {
            if !self.known[k * p + i] {
                let d = dot(self.col(k), self.col(i));
                self.set(k, i, d);
            }
        }
    }

    fn ensure1(&mut self, k: usize) {
        if !self.full[k] {
            self.ensure_full(&[k]);
        }
    }

    fn row(&self, k: usize) -> &[f64] {
        &self.gram[k * self.p..(k + 1) * self.p]
    }

    /// scikit-learn's alpha_max: max_j |x_jᵀ y| / (n · l1_ratio).
    fn lambda_max(&mut self, target: usize, alpha: f64) -> f64 {
        self.ensure1(target);
        let q = self.row(target);
        let mut m = 0.0f64;
        for j in 0..self.p {
            if j != target {
                m = m.max(q[j].abs());
            }
        }
        m / (self.n as f64 * alpha)
    }

    /// Coordinate descent for target `target`, in scikit-learn's internal units:
    /// P(w) = ½‖y − Xw‖² + l1‖w‖₁ + ½ l2‖w‖², l1 = nλα, l2 = nλ(1−α). `w` (length p, entry
    /// `target` ignored and kept 0) is the warm start and receives the solution.
    ///
    /// Active-set iterations (glmnet's strong-set strategy): cyclic sweeps run over the working
    /// set = current nonzeros ∪ the sequential strong set `{j : |x_jᵀr| ≥ α·n·(2λ − λ_prev)}`
    /// (Tibshirani et al. 2012; `λ_prev` = the λ of the warm start, or λ_max). After a sweep in
    /// which the largest relative coordinate change is below `tol` (scikit-learn's trigger),
    /// `Xᵀr` is refreshed for all assets from the full Gram rows of the nonzero coefficients, the
    /// global duality gap is checked (stop if `gap ≤ tol·‖y − ȳ‖²`, exactly scikit-learn's rule),
    /// and every asset outside the working set violating the KKT condition `|x_jᵀr| ≤ α·n·λ`
    /// joins it.
    #[allow(clippy::too_many_arguments)]
    fn fit(
        &mut self,
        target: usize,
        lambda: f64,
        lambda_prev: f64,
        alpha: f64,
        tol: f64,
        max_iter: usize,
        w: &mut [f64],
        counter: &mut usize,
        on_progress: &mut dyn FnMut(usize, f64) -> bool,
    ) -> CoreResult<FitOutcome> {
        let p = self.p;
        let nf = self.n as f64;
        let l1 = lambda * alpha * nf;
        let l2 = lambda * (1.0 - alpha) * nf;
        w[target] = 0.0;
        self.ensure1(target);
        let q: Vec<f64> = self.row(target).to_vec();
        let yy = q[target];
        let tol_s = tol * yy;
        let d_w_tol = tol;

        // Xᵀ(Xw) for every asset, from the full Gram rows of the nonzero coefficients (computed
        // in batches of four when missing).
        let recompute_qw = |design: &mut Design, w: &[f64], qw: &mut [f64]| {
            let nz: Vec<usize> = (0..p).filter(|&k| w[k] != 0.0).collect();
            design.ensure_full(&nz);
            qw.iter_mut().for_each(|v| *v = 0.0);
            for &k in &nz {
                axpy(w[k], design.row(k), qw);
            }
        };
        let mut qw = vec![0.0; p];
        recompute_qw(self, w, &mut qw);

        let features: Vec<usize> = (0..p)
            .filter(|&j| j != target && self.diag[j] > 0.0)
            .collect();
        // Working set: nonzeros ∪ sequential strong set.
        let strong_thr = if alpha > 0.0 {
            alpha * nf * (2.0 * lambda - lambda_prev)
        } else {
            f64::NEG_INFINITY
        };
        let mut in_work = vec![false; p];
        let mut work: Vec<usize> = Vec::with_capacity(p);
        for &j in &features {
            if w[j] != 0.0 || (q[j] - qw[j]).abs() >= strong_thr {
                in_work[j] = true;
                work.push(j);
            }
        }
        self.version += 1;
        let mut gap = f64::INFINITY;
        for it in 0..max_iter {
            let mut w_max = 0.0f64;
            let mut d_w_max = 0.0f64;
            for wi in 0..work.len() {
                let j = work[wi];
                let gjj = self.diag[j];
                let wj = w[j];
                let tmp = q[j] - qw[j] + wj * gjj;
                let new = if tmp.abs() > l1 {
                    (tmp - l1.copysign(tmp)) / (gjj + l2)
                } else {
                    0.0
                };
                if new != wj {
                    // Only the working-set entries of row j are needed here.
                    if self.row_version[j] != self.version {
                        self.ensure_entries(j, &work);
                        self.row_version[j] = self.version;
                    }
                    // Xᵀr is maintained on the working set only (refreshed in full below).
                    let d = new - wj;
                    let row = &self.gram[j * p..(j + 1) * p];
                    for &i in &work {
                        qw[i] += d * row[i];
                    }
                    w[j] = new;
                }
                d_w_max = d_w_max.max((new - wj).abs());
                w_max = w_max.max(new.abs());
            }
            *counter += 1;
            let converged_sweep = w_max == 0.0 || d_w_max <= d_w_tol * w_max;
            // Like scikit-learn: the gap is checked when the largest coordinate change is small.
            if converged_sweep || it + 1 == max_iter {
                // Refresh Xᵀr for every asset, then the global duality gap.
                recompute_qw(self, w, &mut qw);
                let (g, primal) = gap_gram(&features, w, &q, &qw, yy, l1, l2);
                gap = g;
                if !on_progress(*counter, primal / nf) {
                    return Err(CoreError::Cancelled);
                }
                if gap <= tol_s {
                    return Ok(FitOutcome {
                        iterations: it + 1,
                        gap: gap / nf,
                        tol: tol_s / nf,
                        converged: true,
                    });
                }
                // KKT check outside the working set: violators join it.
                let before = work.len();
                for &j in &features {
                    if !in_work[j] && (q[j] - qw[j]).abs() > l1 {
                        in_work[j] = true;
                        work.push(j);
                    }
                }
                if work.len() > before {
                    work.sort_unstable();
                    self.version += 1;
                }
            } else {
                let primal = primal_on(&work, w, &q, &qw, yy, l1, l2);
                if !on_progress(*counter, primal / nf) {
                    return Err(CoreError::Cancelled);
                }
            }
        }
        Ok(FitOutcome {
            iterations: max_iter,
            gap: gap / nf,
            tol: tol_s / nf,
            converged: false,
        })
    }

    /// Fit at one λ from a zero start by following a short geometric λ path from λ_max down to
    /// λ (ratio 0.7; intermediate fits to tolerance max(tol, 1e-4) within max(max_iter / 10,
    /// 100) sweeps — they only provide warm starts). Returns the total sweeps.
    #[allow(clippy::too_many_arguments)]
    fn fit_single(
        &mut self,
        target: usize,
        lambda: f64,
        alpha: f64,
        tol: f64,
        max_iter: usize,
        w: &mut [f64],
        counter: &mut usize,
        on_progress: &mut dyn FnMut(usize, f64) -> bool,
    ) -> CoreResult<FitOutcome> {
        w.iter_mut().for_each(|v| *v = 0.0);
        if alpha == 0.0 {
            return self.fit(
                target,
                lambda,
                f64::INFINITY,
                alpha,
                tol,
                max_iter,
                w,
                counter,
                on_progress,
            );
        }
        let lmax = self.lambda_max(target, alpha);
        if !(lambda < lmax) {
            return self.fit(
                target,
                lambda,
                lambda,
                alpha,
                tol,
                max_iter,
                w,
                counter,
                on_progress,
            );
        }
        let mut total = 0usize;
        let mut prev = lmax;
        let floor = if lambda > 0.0 { lambda } else { lmax * 1e-4 };
        let steps = ((lmax / floor).ln() / PATH_RATIO.recip().ln())
            .ceil()
            .max(1.0) as usize;
        let mid_tol = tol.max(1e-4);
        let mid_iter = (max_iter / 10).max(100).min(max_iter);
        for s in 1..steps {
            let lam = lmax * PATH_RATIO.powi(s as i32);
            // Intermediate fits only provide warm starts: not converging there is harmless.
            let out = self.fit(
                target,
                lam,
                prev,
                alpha,
                mid_tol,
                mid_iter,
                w,
                counter,
                on_progress,
            )?;
            total += out.iterations;
            prev = lam;
        }
        let out = self.fit(
            target,
            lambda,
            prev,
            alpha,
            tol,
            max_iter,
            w,
            counter,
            on_progress,
        )?;
        Ok(FitOutcome {
            iterations: total + out.iterations,
            ..out
        })
    }

    /// Build the basket (weights, spread, intercept, objective) of a fitted target.
    fn basket(&self, prices: &[f64], target: usize, w: &[f64], lambda: f64, alpha: f64) -> Basket {
        let (n, p) = (self.n, self.p);
        let mut weights = vec![0.0; p];
        let mut intercept = self.means[target];
        let mut l1n = 0.0;
        let mut l2n = 0.0;
        let mut nonzero = 1;
        for j in 0..p {
            if j == target {
                weights[j] = 1.0;
            } else if w[j] != 0.0 {
                weights[j] = -w[j];
                intercept -= w[j] * self.means[j];
                l1n += w[j].abs();
                l2n += w[j] * w[j];
                nonzero += 1;
            }
        }
        let support: Vec<usize> = (0..p).filter(|&j| weights[j] != 0.0).collect();
        let mut spread = vec![0.0; n];
        for (t, s) in spread.iter_mut().enumerate() {
            let r = &prices[t * p..(t + 1) * p];
            let mut acc = 0.0;
            for &j in &support {
                acc += weights[j] * r[j];
            }
            *s = acc;
        }
        // RSS from the centred residual (accurate even for a near-perfect fit).
        let mut resid = self.col(target).to_vec();
        for &j in &support {
            if j != target {
                axpy(-w[j], self.col(j), &mut resid);
            }
        }
        let rss = dot(&resid, &resid);
        let objective =
            rss / (2.0 * n as f64) + lambda * alpha * l1n + 0.5 * lambda * (1.0 - alpha) * l2n;
        Basket {
            weights,
            spread,
            intercept,
            nonzero,
            objective,
        }
    }
}

/// Primal objective (n-scaled) from the quantities of the working set (w is zero elsewhere).
fn primal_on(work: &[usize], w: &[f64], q: &[f64], qw: &[f64], yy: f64, l1: f64, l2: f64) -> f64 {
    let (mut ww, mut qdw, mut wqw, mut wl1) = (0.0, 0.0, 0.0, 0.0);
    for &j in work {
        let wj = w[j];
        ww += wj * wj;
        qdw += q[j] * wj;
        wqw += wj * qw[j];
        wl1 += wj.abs();
    }
    0.5 * (yy + wqw - 2.0 * qdw + l2 * ww) + l1 * wl1
}

/// scikit-learn's duality gap (`gap_enet_gram`) over the feature set; returns (gap, primal).
fn gap_gram(
    features: &[usize],
    w: &[f64],
    q: &[f64],
    qw: &[f64],
    yy: f64,
    l1: f64,
    l2: f64,
) -> (f64, f64) {
    let (mut ww, mut qdw, mut wqw, mut wl1) = (0.0, 0.0, 0.0, 0.0);
    let mut dual_norm = 0.0f64;
    let mut xta2 = 0.0;
    for &j in features {
        let wj = w[j];
        ww += wj * wj;
        qdw += q[j] * wj;
        wqw += wj * qw[j];
        wl1 += wj.abs();
        if l1 > 0.0 {
            dual_norm = dual_norm.max((q[j] - qw[j] - l2 * wj).abs());
        } else {
            let x = q[j] - qw[j];
            xta2 += x * x;
        }
    }
    let r_norm2 = yy + wqw - 2.0 * qdw;
    let ry = yy - qdw;
    let primal = 0.5 * (r_norm2 + l2 * ww) + l1 * wl1;
    if l1 == 0.0 {
        if l2 == 0.0 {
            return (xta2, primal);
        }
        let gap = r_norm2 + 0.5 * l2 * ww - ry + xta2 / (2.0 * l2);
        return (gap, primal);
    }
    let scale = if dual_norm > l1 { l1 / dual_norm } else { 1.0 };
    let dual = -0.5 * scale * scale * (r_norm2 + l2 * ww) + scale * ry;
    (primal - dual, primal)
}

fn regression_basket(
    prices: &[f64],
    rows: usize,
    cols: usize,
    config: &SparseConfig,
    alpha: f64,
    on_progress: &mut dyn FnMut(usize, f64) -> bool,
) -> CoreResult<SparseResult> {
    let mut design = Design::new(prices, rows, cols)?;
    let targets: Vec<usize> = match config.target {
        Some(t) => vec![t],
        None => (0..cols).collect(),
    };
    let mut counter = 0usize;
    let mut best: Option<(SparseResult, f64)> = None;
    let mut first_failure: Option<(usize, CoreError)> = None;
    for &t in &targets {
        let mut w = vec![0.0; cols];
        let fit = design.fit_single(
            t,
            config.lambda,
            alpha,
            config.tolerance,
            config.max_iterations,
            &mut w,
            &mut counter,
            on_progress,
        )?;
        if let Err(e) = fit.require_converged(config.lambda, config.max_iterations) {
            if config.target.is_some() {
                return Err(e);
            }
            // Automatic target choice: a target whose fit does not converge is skipped.
            if first_failure.is_none() {
                first_failure = Some((t, e));
            }
            continue;
        }
        let b = design.basket(prices, t, &w, config.lambda, alpha);
        let st = ar1_mean_reversion(&b.spread)?;
        let (adf_statistic, adf_lag) = spread_adf(&b.spread, &st, config.adf_autolag)?;
        let better = match &best {
            None => true,
            Some((_, adf)) => adf_statistic < *adf,
        };
        if better {
            let res = SparseResult {
                method: config.method.name().to_string(),
                weights: b.weights,
                target_index: Some(t),
                intercept: b.intercept,
                nonzero: b.nonzero,
                spread: b.spread,
                half_life: st.half_life,
                adf_statistic,
                adf_lag,
                adf_critical_values: engle_granger_critical_values(b.nonzero, rows - 1).to_vec(),
                objective: b.objective,
                iterations: fit.iterations,
            }
            .no_neg_zero();
            best = Some((res, adf_statistic));
        }
    }
    match best {
        Some((res, _)) => Ok(res),
        None => {
            let msg = match first_failure {
                Some((t, e)) => {
                    format!("no target asset converged (first failure, target {t}: {e})")
                }
                None => "no target asset could be fitted".to_string(),
            };
            Err(CoreError::numerical(msg))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Box-Tiao and greedy search (predictability)
// ---------------------------------------------------------------------------------------------

/// VAR(1) predictability matrices of demeaned prices x_t (column means over all T rows removed):
/// with the T−1 lagged pairs, `Γ0 = Σ x_{t−1} x_{t−1}ᵀ / (T−1)`, `Γ1 = Σ x_{t−1} x_tᵀ / (T−1)`,
/// the least-squares VAR(1) `x_t = Aᵀ x_{t−1} + e_t` has `A = Γ0⁻¹ Γ1`, and the predictability of
/// a basket y is `ν(y) = yᵀ AᵀΓ0A y / yᵀ Γ0 y = yᵀ M y / yᵀ Γ0 y` with `M = Γ1ᵀ Γ0⁻¹ Γ1`.
struct PredictabilityMatrices {
    p: usize,
    /// Γ0, row-major p x p.
    g0: Vec<f64>,
    /// M = Γ1ᵀ Γ0⁻¹ Γ1, row-major p x p (symmetric).
    m: Vec<f64>,
}

impl PredictabilityMatrices {
    fn new(prices: &[f64], rows: usize, cols: usize) -> CoreResult<PredictabilityMatrices> {
        let (n, p) = (rows, cols);
        if n < p + 2 {
            return Err(CoreError::invalid(format!(
                "box_tiao and greedy need more observations than assets to fit the VAR(1): \
                 got {n} rows for {p} assets (need at least {})",
                p + 2
            )));
        }
        let design = Design::new(prices, rows, cols)?;
        let nl = n - 1;
        let scale = 1.0 / nl as f64;
        let (mut g0, mut g1) = lagged_cross_products(&design.xc, n, p)?;
        for v in g0.iter_mut().chain(g1.iter_mut()) {
            *v *= scale;
        }
        let l = cholesky(&g0, p).map_err(|k| {
            if k == CANCELLED_ROW {
                return CoreError::Cancelled;
            }
            CoreError::numerical(format!(
                "prices are collinear: the lag-0 covariance Γ0 is singular (asset {k} is, up to \
                 rounding, a linear combination of the assets before it); remove redundant assets"
            ))
        })?;
        // W = L⁻¹ Γ1  →  M = WᵀW (symmetric positive semi-definite by construction).
        let mut wm = g1.clone();
        forward_solve_cols(&l, p, &mut wm, p);
        crate::limits::poll()?;
        let mut wt = vec![0.0; p * p];
        for r in 0..p {
            for i in 0..p {
                wt[i * p + r] = wm[r * p + i];
            }
        }
        let mut m = vec![0.0; p * p];
        for i in 0..p {
            crate::limits::poll()?;
            for j in i..p {
                let s = dot(&wt[i * p..(i + 1) * p], &wt[j * p..(j + 1) * p]);
                m[i * p + j] = s;
                m[j * p + i] = s;
            }
        }
        Ok(PredictabilityMatrices { p, g0, m })
    }

    fn sub(&self, mat: &[f64], idx: &[usize]) -> Vec<f64> {
        let s = idx.len();
        let mut out = vec![0.0; s * s];
        for (a, &i) in idx.iter().enumerate() {
            for (b, &j) in idx.iter().enumerate() {
                out[a * s + b] = mat[i * self.p + j];
            }
        }
        out
    }

    /// Box-Tiao on the assets `idx`: the eigenvector of the smallest eigenvalue ν of the
    /// generalized symmetric problem `M_JJ y = ν Γ0_JJ y`, solved as `C = L⁻¹ M_JJ L⁻ᵀ`
    /// (`Γ0_JJ = LLᵀ`), `C z = ν z`, `y = L⁻ᵀ z`. Returns (ν, y) with `‖y‖₂ = 1` and its
    /// largest-|y| entry positive.
    fn least_predictable(&self, idx: &[usize]) -> CoreResult<(f64, Vec<f64>)> {
        let s = idx.len();
        let g0 = self.sub(&self.g0, idx);
        let m = self.sub(&self.m, idx);
        let l = cholesky(&g0, s).map_err(|k| {
            if k == CANCELLED_ROW {
                return CoreError::Cancelled;
            }
            CoreError::numerical(format!(
                "prices are collinear: Γ0 restricted to the basket is singular at asset {}",
                idx[k]
            ))
        })?;
        let c = congruence(&l, s, &m);
        crate::limits::poll()?;
        let (vals, vecs) = symmetric_eigen(&c, s)?;
        // Smallest eigenvalue is first (ascending order); vecs column-major.
        let mut y = vecs[0..s].to_vec();
        back_solve_t(&l, s, &mut y);
        let norm = y.iter().map(|v| v * v).sum::<f64>().sqrt();
        if !(norm > 0.0 && norm.is_finite()) {
            return Err(CoreError::numerical(
                "Box-Tiao eigenvector is degenerate (zero or non-finite)",
            ));
        }
        let mut imax = 0;
        for i in 0..s {
            if y[i].abs() > y[imax].abs() {
                imax = i;
            }
        }
        let sgn = if y[imax] < 0.0 { -1.0 } else { 1.0 };
        for v in y.iter_mut() {
            *v *= sgn / norm;
        }
        Ok((vals[0].max(0.0), y))
    }

    /// d'Aspremont (2011) greedy support search: start with the asset of smallest
    /// `M_ii / Γ0_ii`; then repeatedly add the asset i that minimises the smallest generalized
    /// eigenvalue `λ_min(M_{J∪i}, Γ0_{J∪i})`, until |J| = k. Each candidate is scored in
    /// O(|J|²) from the eigen-decomposition of the current subset (the new matrix is the current
    /// one bordered by one row/column; its smallest eigenvalue is the root of the secular
    /// equation below the current smallest eigenvalue, found by bisection). Ties go to the
    /// lower index. Returns the support in the order it was built.
    fn greedy_support(
        &self,
        k: usize,
        on_progress: &mut dyn FnMut(usize, f64) -> bool,
    ) -> CoreResult<Vec<usize>> {
        let p = self.p;
        let mut first = 0;
        let mut best = f64::INFINITY;
        for i in 0..p {
            let v = self.m[i * p + i] / self.g0[i * p + i];
            if v < best {
                best = v;
                first = i;
            }
        }
        let mut support = vec![first];
        let mut in_support = vec![false; p];
        in_support[first] = true;
        if !on_progress(0, best) {
            return Err(CoreError::Cancelled);
        }
        for step in 1..k {
            let s = support.len();
            let g0 = self.sub(&self.g0, &support);
            let mjj = self.sub(&self.m, &support);
            let l = cholesky(&g0, s).map_err(|kk| {
                if kk == CANCELLED_ROW {
                    return CoreError::Cancelled;
                }
                CoreError::numerical(format!(
                    "prices are collinear: Γ0 restricted to the basket is singular at asset {}",
                    support[kk]
                ))
            })?;
            let c = congruence(&l, s, &mjj);
            crate::limits::poll()?;
            let (d, q) = symmetric_eigen(&c, s)?; // ascending, q column-major
            let mut best_i = usize::MAX;
            let mut best_v = f64::INFINITY;
            let mut u = vec![0.0; s];
            let mut cvec = vec![0.0; s];
            for i in 0..p {
                if in_support[i] {
                    continue;
                }
                if i % 64 == 0 {
                    crate::limits::poll()?; // O(p · s²) per greedy step
                }
                // u = Γ0_JJ⁻¹ Γ0_Ji  (via L), dd² = Γ0_ii − Γ0_iJ u.
                for (a, &j) in support.iter().enumerate() {
                    u[a] = self.g0[j * p + i];
                }
                forward_solve(&l, s, &mut u); // u ← L⁻¹ Γ0_Ji  (this is the new Cholesky row)
                let lnorm2: f64 = u.iter().map(|v| v * v).sum();
                let dd2 = self.g0[i * p + i] - lnorm2;
                if !(dd2 > 1e-12 * self.g0[i * p + i]) {
                    continue; // asset i is (numerically) in the span of the support
                }
                let dd = dd2.sqrt();
                back_solve_t(&l, s, &mut u); // u ← L⁻ᵀ L⁻¹ Γ0_Ji = Γ0_JJ⁻¹ Γ0_Ji
                                             // c = L⁻¹ (M_Ji − M_JJ u) / dd ; γ = (M_ii − 2 uᵀM_Ji + uᵀM_JJ u)/dd²
                let mut um_ji = 0.0;
                let mut umu = 0.0;
                for a in 0..s {
                    let mut acc = 0.0;
                    for b in 0..s {
                        acc += mjj[a * s + b] * u[b];
                    }
                    let mji = self.m[support[a] * p + i];
                    um_ji += u[a] * mji;
                    umu += u[a] * acc;
                    cvec[a] = (mji - acc) / dd;
                }
                forward_solve(&l, s, &mut cvec);
                let gamma = (self.m[i * p + i] - 2.0 * um_ji + umu) / dd2;
                // z = Qᵀ c
                let mut z2 = vec![0.0; s];
                for e in 0..s {
                    let col = &q[e * s..(e + 1) * s];
                    let z = dot(col, &cvec);
                    z2[e] = z * z;
                }
                let v = bordered_min_eigenvalue(&d, &z2, gamma);
                if v < best_v {
                    best_v = v;
                    best_i = i;
                }
            }
            if best_i == usize::MAX {
                return Err(CoreError::numerical(format!(
                    "prices are collinear: no asset can be added to the greedy basket at size {s} \
                     without making Γ0 singular"
                )));
            }
            support.push(best_i);
            in_support[best_i] = true;
            if !on_progress(step, best_v) {
                return Err(CoreError::Cancelled);
            }
        }
        Ok(support)
    }
}

/// `Σ_{t<n−1} x_t x_tᵀ` (symmetric) and `Σ_{t<n−1} x_t x_{t+1}ᵀ` for column-major data `xc`
/// (p columns of length n), cache-blocked: row blocks of `TB` observations, 4 x 4 column tiles.
fn lagged_cross_products(xc: &[f64], n: usize, p: usize) -> CoreResult<(Vec<f64>, Vec<f64>)> {
    const TB: usize = 512;
    let nl = n - 1;
    let mut g0 = vec![0.0; p * p];
    let mut g1 = vec![0.0; p * p];
    let col =
        |j: usize, start: usize, len: usize| -> &[f64] { &xc[j * n + start..j * n + start + len] };
    let mut tb = 0;
    while tb < nl {
        let len = TB.min(nl - tb);
        let mut i0 = 0;
        while i0 < p {
            crate::limits::poll()?;
            let ni = 4.min(p - i0);
            let mut j0 = 0;
            while j0 < p {
                let nj = 4.min(p - j0);
                if ni == 4 && nj == 4 {
                    let a = [
                        col(i0, tb, len),
                        col(i0 + 1, tb, len),
                        col(i0 + 2, tb, len),
                        col(i0 + 3, tb, len),
                    ];
                    if j0 + 3 >= i0 {
                        let b = [
                            col(j0, tb, len),
                            col(j0 + 1, tb, len),
                            col(j0 + 2, tb, len),
                            col(j0 + 3, tb, len),
                        ];
                        let r = tile4x4(a, b, len);
                        for ii in 0..4 {
                            for jj in 0..4 {
                                g0[(i0 + ii) * p + j0 + jj] += r[ii][jj];
                            }
                        }
                    }
                    let b1 = [
                        col(j0, tb + 1, len),
                        col(j0 + 1, tb + 1, len),
                        col(j0 + 2, tb + 1, len),
                        col(j0 + 3, tb + 1, len),
                    ];
                    let r = tile4x4(a, b1, len);
                    for ii in 0..4 {
                        for jj in 0..4 {
                            g1[(i0 + ii) * p + j0 + jj] += r[ii][jj];
                        }
                    }
                } else {
                    for i in i0..i0 + ni {
                        for j in j0..j0 + nj {
                            if j + 3 >= i0 {
                                g0[i * p + j] += dot(col(i, tb, len), col(j, tb, len));
                            }
                            g1[i * p + j] += dot(col(i, tb, len), col(j, tb + 1, len));
                        }
                    }
                }
                j0 += 4;
            }
            i0 += 4;
        }
        tb += len;
    }
    // Symmetrise Γ0 from its upper part (tiles with j ≥ i were all computed).
    for i in 0..p {
        for j in 0..i {
            g0[i * p + j] = g0[j * p + i];
        }
    }
    Ok((g0, g1))
}

/// 4 x 4 block of dot products `a_i · b_j` over `len` values (two lanes per accumulator).
#[inline(always)]
fn tile4x4(a: [&[f64]; 4], b: [&[f64]; 4], len: usize) -> [[f64; 4]; 4] {
    let a = [&a[0][..len], &a[1][..len], &a[2][..len], &a[3][..len]];
    let b = [&b[0][..len], &b[1][..len], &b[2][..len], &b[3][..len]];
    let mut acc = [[[0.0f64; 2]; 4]; 4];
    let half = len / 2 * 2;
    let mut t = 0;
    while t < half {
        let bv = [
            [b[0][t], b[0][t + 1]],
            [b[1][t], b[1][t + 1]],
            [b[2][t], b[2][t + 1]],
            [b[3][t], b[3][t + 1]],
        ];
        for i in 0..4 {
            let av = [a[i][t], a[i][t + 1]];
            for j in 0..4 {
                acc[i][j][0] += av[0] * bv[j][0];
                acc[i][j][1] += av[1] * bv[j][1];
            }
        }
        t += 2;
    }
    let mut out = [[0.0; 4]; 4];
    for i in 0..4 {
        for j in 0..4 {
            let mut s = acc[i][j][0] + acc[i][j][1];
            for tt in half..len {
                s += a[i][tt] * b[j][tt];
            }
            out[i][j] = s;
        }
    }
    out
}

/// Smallest eigenvalue of the bordered symmetric matrix `[[diag(d), z], [zᵀ, γ]]` given the
/// squared components `z2 = z²` and `d` ascending: the root below `min(d₀, γ)` of the secular
/// function `f(λ) = γ − λ − Σ z²_e / (d_e − λ)` (decreasing on (−∞, d₀)), by bisection.
fn bordered_min_eigenvalue(d: &[f64], z2: &[f64], gamma: f64) -> f64 {
    let znorm = z2.iter().sum::<f64>().sqrt();
    let d0 = d.first().copied().unwrap_or(f64::INFINITY);
    let hi0 = d0.min(gamma);
    let mut lo = hi0 - znorm - 1e-300;
    let mut hi = hi0;
    let f = |lam: f64| -> f64 {
        let mut s = gamma - lam;
        for (de, ze) in d.iter().zip(z2) {
            let den = de - lam;
            if den <= 0.0 {
                return if *ze > 0.0 { f64::NEG_INFINITY } else { s };
            }
            s -= ze / den;
        }
        s
    };
    // f(lo) >= 0 by Weyl's bound; f(hi) <= 0 by interlacing.
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if f(mid) > 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

// ---------------------------------------------------------------------------------------------
// Small dense linear algebra (row-major)
// ---------------------------------------------------------------------------------------------

/// Cholesky factor L (row-major lower triangle) of a symmetric positive definite matrix.
/// Err(k): the k-th pivot is not positive relative to the diagonal (1e-11 · a_kk), i.e. the
/// matrix is singular to working precision.
/// The "row" [`cholesky`] reports when it stopped because the call was cancelled.
const CANCELLED_ROW: usize = usize::MAX;

fn cholesky(a: &[f64], n: usize) -> Result<Vec<f64>, usize> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        if crate::limits::cancelled() {
            return Err(CANCELLED_ROW);
        }
        for j in 0..=i {
            let s = a[i * n + j] - dot(&l[i * n..i * n + j], &l[j * n..j * n + j]);
            if i == j {
                if !(s > 1e-11 * a[i * n + i]) || !s.is_finite() {
                    return Err(i);
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    Ok(l)
}

/// x ← L⁻¹ x.
fn forward_solve(l: &[f64], n: usize, x: &mut [f64]) {
    for i in 0..n {
        let s = x[i] - dot(&l[i * n..i * n + i], &x[..i]);
        x[i] = s / l[i * n + i];
    }
}

/// x ← L⁻ᵀ x.
fn back_solve_t(l: &[f64], n: usize, x: &mut [f64]) {
    for i in (0..n).rev() {
        let mut s = x[i];
        for k in (i + 1)..n {
            s -= l[k * n + i] * x[k];
        }
        x[i] = s / l[i * n + i];
    }
}

/// B ← L⁻¹ B for a row-major n x m matrix B.
fn forward_solve_cols(l: &[f64], n: usize, b: &mut [f64], m: usize) {
    for i in 0..n {
        if crate::limits::cancelled() {
            return; // the caller polls right after and reports Cancelled
        }
        for k in 0..i {
            let lik = l[i * n + k];
            if lik != 0.0 {
                let (head, tail) = b.split_at_mut(i * m);
                axpy(-lik, &head[k * m..(k + 1) * m], &mut tail[..m]);
            }
        }
        let inv = 1.0 / l[i * n + i];
        for v in &mut b[i * m..(i + 1) * m] {
            *v *= inv;
        }
    }
}

/// C = L⁻¹ A L⁻ᵀ (symmetrised) for symmetric A.
fn congruence(l: &[f64], n: usize, a: &[f64]) -> Vec<f64> {
    let mut b = a.to_vec();
    forward_solve_cols(l, n, &mut b, n); // B = L⁻¹ A
                                         // C = (L⁻¹ Bᵀ)ᵀ ... Bᵀ = A L⁻ᵀ·... : C = L⁻¹ (L⁻¹ A)ᵀ since A symmetric.
    let mut bt = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            bt[j * n + i] = b[i * n + j];
        }
    }
    forward_solve_cols(l, n, &mut bt, n);
    for i in 0..n {
        for j in (i + 1)..n {
            let v = 0.5 * (bt[i * n + j] + bt[j * n + i]);
            bt[i * n + j] = v;
            bt[j * n + i] = v;
        }
    }
    bt
}

/// Eigen-decomposition of a symmetric matrix (row-major n x n) by Householder tridiagonalisation
/// and the implicit QL algorithm (tred2 / tql2, as in EISPACK / JAMA). Returns the eigenvalues
/// in ascending order and the eigenvectors column-major (vector e is `v[e*n .. (e+1)*n]`).
fn symmetric_eigen(a: &[f64], n: usize) -> CoreResult<(Vec<f64>, Vec<f64>)> {
    // Work with V column-major: V[r][c] = v[c*n + r].
    let mut v = vec![0.0; n * n];
    for r in 0..n {
        for c in 0..n {
            v[c * n + r] = a[r * n + c];
        }
    }
    let mut d = vec![0.0; n];
    let mut e = vec![0.0; n];
    macro_rules! vv {
        ($r:expr, $c:expr) => {
            v[($c) * n + ($r)]
        };
    }
    if n == 1 {
        return Ok((vec![a[0]], vec![1.0]));
    }
    // tred2
    for j in 0..n {
        d[j] = vv!(n - 1, j);
    }
    for i in (1..n).rev() {
        crate::limits::poll()?;
        let mut scale = 0.0;
        let mut h = 0.0;
        for k in 0..i {
            scale += d[k].abs();
        }
        if scale == 0.0 {
            e[i] = d[i - 1];
            for j in 0..i {
                d[j] = vv!(i - 1, j);
                vv!(i, j) = 0.0;
                vv!(j, i) = 0.0;
            }
        } else {
            for k in 0..i {
                d[k] /= scale;
                h += d[k] * d[k];
            }
            let mut f = d[i - 1];
            let mut g = h.sqrt();
            if f > 0.0 {
                g = -g;
            }
            e[i] = scale * g;
            h -= f * g;
            d[i - 1] = f - g;
            for j in 0..i {
                e[j] = 0.0;
            }
            for j in 0..i {
                f = d[j];
                vv!(j, i) = f;
                g = e[j] + vv!(j, j) * f;
                for k in (j + 1)..i {
                    g += vv!(k, j) * d[k];
                    e[k] += vv!(k, j) * f;
                }
                e[j] = g;
            }
            f = 0.0;
            for j in 0..i {
                e[j] /= h;
                f += e[j] * d[j];
            }
            let hh = f / (h + h);
            for j in 0..i {
                e[j] -= hh * d[j];
            }
            for j in 0..i {
                f = d[j];
                g = e[j];
                for k in j..i {
                    vv!(k, j) -= f * e[k] + g * d[k];
                }
                d[j] = vv!(i - 1, j);
                vv!(i, j) = 0.0;
            }
        }
        d[i] = h;
    }
    for i in 0..(n - 1) {
        vv!(n - 1, i) = vv!(i, i);
        vv!(i, i) = 1.0;
        let h = d[i + 1];
        if h != 0.0 {
            for k in 0..=i {
                d[k] = vv!(k, i + 1) / h;
            }
            for j in 0..=i {
                let mut g = 0.0;
                for k in 0..=i {
                    g += vv!(k, i + 1) * vv!(k, j);
                }
                for k in 0..=i {
                    vv!(k, j) -= g * d[k];
                }
            }
        }
        for k in 0..=i {
            vv!(k, i + 1) = 0.0;
        }
    }
    for j in 0..n {
        d[j] = vv!(n - 1, j);
        vv!(n - 1, j) = 0.0;
    }
    vv!(n - 1, n - 1) = 1.0;
    e[0] = 0.0;

    // tql2
    for i in 1..n {
        e[i - 1] = e[i];
    }
    e[n - 1] = 0.0;
    let mut f = 0.0f64;
    let mut tst1 = 0.0f64;
    let eps = f64::EPSILON;
    for l in 0..n {
        crate::limits::poll()?;
        tst1 = tst1.max(d[l].abs() + e[l].abs());
        let mut m = l;
        while m < n - 1 {
            if e[m].abs() <= eps * tst1 {
                break;
            }
            m += 1;
        }
        if m > l {
            let mut iter = 0;
            loop {
                iter += 1;
                if iter > 60 {
                    return Err(CoreError::numerical(
                        "symmetric eigenvalue solver (QL) did not converge",
                    ));
                }
                let mut g = d[l];
                let mut p = (d[l + 1] - g) / (2.0 * e[l]);
                let mut r = p.hypot(1.0);
                if p < 0.0 {
                    r = -r;
                }
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                let dl1 = d[l + 1];
                let mut h = g - d[l];
                for i in (l + 2)..n {
                    d[i] -= h;
                }
                f += h;
                p = d[m];
                let mut c = 1.0;
                let mut c2 = c;
                let mut c3 = c;
                let el1 = e[l + 1];
                let mut s = 0.0;
                let mut s2 = 0.0;
                for i in (l..m).rev() {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    g = c * e[i];
                    h = c * p;
                    r = p.hypot(e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);
                    let (lo, hi) = v.split_at_mut((i + 1) * n);
                    let col_i = &mut lo[i * n..];
                    let col_i1 = &mut hi[..n];
                    for k in 0..n {
                        let hk = col_i1[k];
                        col_i1[k] = s * col_i[k] + c * hk;
                        col_i[k] = c * col_i[k] - s * hk;
                    }
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;
                if !(e[l].abs() > eps * tst1) {
                    break;
                }
            }
        }
        d[l] += f;
        e[l] = 0.0;
    }
    // Sort ascending.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| d[a].partial_cmp(&d[b]).unwrap_or(std::cmp::Ordering::Equal));
    let vals: Vec<f64> = order.iter().map(|&i| d[i]).collect();
    let mut vecs = vec![0.0; n * n];
    for (dst, &src) in order.iter().enumerate() {
        vecs[dst * n..(dst + 1) * n].copy_from_slice(&v[src * n..(src + 1) * n]);
    }
    if vals.iter().any(|x| !x.is_finite()) {
        return Err(CoreError::numerical(
            "symmetric eigenvalue solver produced non-finite values",
        ));
    }
    Ok((vals, vecs))
}

#[allow(clippy::too_many_arguments)]
fn finish_eigen_basket(
    prices: &[f64],
    rows: usize,
    cols: usize,
    method: SparseMethod,
    idx: &[usize],
    w_sub: &[f64],
    nu: f64,
    iterations: usize,
    adf_autolag: Autolag,
) -> CoreResult<SparseResult> {
    let mut weights = vec![0.0; cols];
    for (a, &j) in idx.iter().enumerate() {
        weights[j] = w_sub[a];
    }
    let support: Vec<usize> = (0..cols).filter(|&j| weights[j] != 0.0).collect();
    let mut spread = vec![0.0; rows];
    for (t, s) in spread.iter_mut().enumerate() {
        let r = &prices[t * cols..(t + 1) * cols];
        *s = support.iter().map(|&j| weights[j] * r[j]).sum();
    }
    let intercept = spread.iter().sum::<f64>() / rows as f64;
    let st = ar1_mean_reversion(&spread)?;
    let (adf_statistic, adf_lag) = spread_adf(&spread, &st, adf_autolag)?;
    let nonzero = support.len();
    Ok(SparseResult {
        method: method.name().to_string(),
        weights,
        target_index: None,
        intercept,
        nonzero,
        spread,
        half_life: st.half_life,
        adf_statistic,
        adf_lag,
        adf_critical_values: engle_granger_critical_values(nonzero, rows - 1).to_vec(),
        objective: nu,
        iterations,
    }
    .no_neg_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_progress() -> impl FnMut(usize, f64) -> bool {
        |_, _| true
    }

    /// Deterministic xorshift + Box-Muller normals.
    struct Rng(u64);
    impl Rng {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }
        fn normal(&mut self) -> f64 {
            let (u, v) = (self.uniform(), self.uniform());
            (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
        }
    }

    /// T x N random-walk prices; asset 0 = 0.6·asset 1 + 0.4·asset 2 + AR(1) noise (cointegrated).
    fn synthetic(t: usize, n: usize, seed: u64) -> Vec<f64> {
        let mut rng = Rng(seed);
        let mut p = vec![0.0; t * n];
        let mut e = 0.0;
        for j in 0..n {
            p[j] = 100.0;
        }
        for i in 1..t {
            let m = rng.normal();
            for j in 0..n {
                p[i * n + j] = p[(i - 1) * n + j] + 0.5 * m + rng.normal();
            }
        }
        for i in 0..t {
            e = 0.7 * e + rng.normal();
            p[i * n] = 20.0 + 0.6 * p[i * n + 1] + 0.4 * p[i * n + 2] + e;
        }
        p
    }

    /// 12 x 3 prices: column 0 = 100 + 2·x1 + 0.5·x2, with x1, x2 centred and orthogonal,
    /// x_jᵀx_j / n = 1. Columns 1, 2 are 50 + x1, 50 + x2.
    fn orthogonal() -> Vec<f64> {
        let x1 = [
            1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0,
        ];
        let x2 = [
            1.0, 1.0, -1.0, -1.0, 1.0, 1.0, -1.0, -1.0, 1.0, 1.0, -1.0, -1.0,
        ];
        let mut p = Vec::new();
        for i in 0..12 {
            p.extend_from_slice(&[
                100.0 + 2.0 * x1[i] + 0.5 * x2[i],
                50.0 + x1[i],
                50.0 + x2[i],
            ]);
        }
        p
    }

    fn lasso(lambda: f64, target: Option<usize>) -> SparseConfig {
        SparseConfig {
            method: SparseMethod::Lasso,
            lambda,
            target,
            tolerance: 1e-12,
            max_iterations: 100_000,
            ..Default::default()
        }
    }

    fn assert_close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{a} vs {b}");
    }

    fn err_msg(r: CoreResult<impl std::fmt::Debug>) -> String {
        match r {
            Err(CoreError::InvalidInput(m)) | Err(CoreError::Numerical(m)) => m,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn method_names() {
        for m in [
            SparseMethod::Lasso,
            SparseMethod::ElasticNet,
            SparseMethod::BoxTiao,
            SparseMethod::Greedy,
        ] {
            assert_eq!(SparseMethod::from_name(m.name()).unwrap(), m);
        }
        assert_eq!(
            SparseMethod::from_name("Elastic-Net").unwrap(),
            SparseMethod::ElasticNet
        );
        assert!(err_msg(SparseMethod::from_name("pca")).contains("method must be one of"));
    }

    #[test]
    fn lasso_orthogonal_design_is_soft_thresholding() {
        let p = orthogonal();
        // λ = 0.2: β = (2 − 0.2, 0.5 − 0.2) = (1.8, 0.3).
        let r = sparse_portfolio(&p, 12, 3, &lasso(0.2, Some(0)), &mut no_progress()).unwrap();
        assert_eq!(r.method, "lasso");
        assert_eq!(r.target_index, Some(0));
        assert_close(r.weights[0], 1.0, 0.0);
        assert_close(r.weights[1], -1.8, 1e-10);
        assert_close(r.weights[2], -0.3, 1e-10);
        assert_eq!(r.nonzero, 3);
        assert_close(r.intercept, 100.0 - 50.0 * 1.8 - 50.0 * 0.3, 1e-10);
        // Residual = 0.2·x1 + 0.2·x2 → RSS/(2n) = 0.04; penalty 0.2·2.1 = 0.42.
        assert_close(r.objective, 0.04 + 0.42, 1e-10);
        // Spread = basket · prices, its mean is the intercept.
        let mean = r.spread.iter().sum::<f64>() / 12.0;
        assert_close(mean, r.intercept, 1e-10);
        assert_close(r.spread[0], p[0] - 1.8 * p[1] - 0.3 * p[2], 1e-12);
        // λ = 1: the second hedge drops out; β1 = 1.
        let r = sparse_portfolio(&p, 12, 3, &lasso(1.0, Some(0)), &mut no_progress()).unwrap();
        assert_close(r.weights[1], -1.0, 1e-10);
        assert_eq!(r.weights[2], 0.0);
        assert_eq!(r.nonzero, 2);
        // Elastic net λ = 1, α = 0.5: β = S(c, 0.5) / (1 + 0.5) = (1, 0).
        let cfg = SparseConfig {
            method: SparseMethod::ElasticNet,
            alpha: 0.5,
            ..lasso(1.0, Some(0))
        };
        let r = sparse_portfolio(&p, 12, 3, &cfg, &mut no_progress()).unwrap();
        assert_eq!(r.method, "elastic_net");
        assert_close(r.weights[1], -1.0, 1e-10);
        assert_eq!(r.weights[2], 0.0);
        // λ above λ_max = 2: nothing selected, half-life and ADF of the target itself.
        let r = sparse_portfolio(&p, 12, 3, &lasso(5.0, Some(0)), &mut no_progress()).unwrap();
        assert_eq!(r.nonzero, 1);
        assert_eq!(r.weights, vec![1.0, 0.0, 0.0]);
        assert_eq!(r.iterations, 1, "one sweep certifies β = 0");
        let st = ar1_mean_reversion(&p.iter().step_by(3).copied().collect::<Vec<_>>()).unwrap();
        assert_eq!(r.adf_statistic, st.adf_statistic);
    }

    #[test]
    fn ar1_exact_geometric_decay() {
        // s_t = 0.5 s_{t-1}: Δs = −0.5 s_{t−1} exactly → b = −0.5, half-life 1, ADF −∞.
        let s: Vec<f64> = (0..20).map(|i| 0.5f64.powi(i)).collect();
        let st = ar1_mean_reversion(&s).unwrap();
        assert_close(st.b, -0.5, 1e-12);
        assert_close(st.half_life, 1.0, 1e-10);
        assert!(st.adf_statistic < -1e6);
        // A trending series does not mean-revert.
        let s: Vec<f64> = (0..20).map(|i| (i as f64).powi(2)).collect();
        assert_eq!(ar1_mean_reversion(&s).unwrap().half_life, f64::INFINITY);
        // A constant series: perfect reversion.
        let st = ar1_mean_reversion(&[3.0; 10]).unwrap();
        assert_eq!(st.adf_statistic, f64::NEG_INFINITY);
        assert_eq!(st.half_life, 0.0);
        assert!(err_msg(ar1_mean_reversion(&[1.0, 2.0, 3.0])).contains("at least 4"));
        assert!(err_msg(ar1_mean_reversion(&[1.0, 2.0, f64::NAN, 3.0])).contains("NaN"));
    }

    #[test]
    fn ar1_statistic_by_hand() {
        // s = [0, 2, 1, 3, 2]: x = s[..4], d = [2, −1, 2, −1]; x̄ = 1.5, d̄ = 0.5,
        // Sxx = 5, Sxd = Σ(x−x̄)(d−d̄) = (−1.5)(1.5)+(0.5)(−1.5)+(−0.5)(1.5)+(1.5)(−1.5) = −6
        // b = −1.2; residuals e = (d−d̄) − b(x−x̄) = [−0.3, −0.9, 0.9, 0.3]; RSS = 1.8;
        // se = sqrt(1.8 / 2 / 5) = sqrt(0.18); t = −1.2 / sqrt(0.18).
        let st = ar1_mean_reversion(&[0.0, 2.0, 1.0, 3.0, 2.0]).unwrap();
        assert_close(st.b, -1.2, 1e-12);
        assert_close(st.a, 0.5 + 1.2 * 1.5, 1e-12);
        assert_close(st.adf_statistic, -1.2 / 0.18f64.sqrt(), 1e-12);
        // b <= −1 (the deviation flips sign every step): no OU half-life, as in the OU fit.
        assert_eq!(st.half_life, f64::INFINITY);
        assert_eq!(half_life_from_b(-1.0), f64::INFINITY);
        assert_eq!(half_life_from_b(-2.5), f64::INFINITY);
        assert_eq!(half_life_from_b(0.0), f64::INFINITY);
        assert_close(half_life_from_b(-0.5), 1.0, 1e-12);
    }

    #[test]
    fn critical_values_match_mackinnon_table() {
        let c = engle_granger_critical_values(1, usize::MAX);
        assert_close(c[0], -3.43035, 1e-12);
        let c = engle_granger_critical_values(2, 100);
        assert_close(c[0], -3.89644 - 10.9519 / 100.0 - 33.527 / 1e4, 1e-12);
        assert_close(c[1], -3.33613 - 6.1101 / 100.0 - 6.823 / 1e4, 1e-12);
        assert_close(c[2], -3.04445 - 4.2412 / 100.0 - 2.720 / 1e4, 1e-12);
        assert_eq!(
            engle_granger_critical_values(40, 500),
            engle_granger_critical_values(12, 500)
        );
        assert!(c[0] < c[1] && c[1] < c[2]);
    }

    #[test]
    fn lasso_finds_the_cointegrating_pair_and_kkt_holds() {
        let (t, n) = (800, 6);
        let p = synthetic(t, n, 7);
        let r = sparse_portfolio(&p, t, n, &lasso(0.5, Some(0)), &mut no_progress()).unwrap();
        assert!(
            r.weights[1] < -0.3 && r.weights[2] < -0.2,
            "{:?}",
            r.weights
        );
        assert!(
            r.adf_statistic < r.adf_critical_values[0],
            "spread should be stationary"
        );
        assert!(r.half_life.is_finite() && r.half_life > 0.0);
        assert_eq!(
            r.adf_critical_values,
            engle_granger_critical_values(r.nonzero, t - 1).to_vec()
        );
        // KKT conditions of 1/(2n)‖r‖² + λ‖β‖₁ on the centred data.
        let mut means = vec![0.0; n];
        for i in 0..t {
            for j in 0..n {
                means[j] += p[i * n + j] / t as f64;
            }
        }
        let resid: Vec<f64> = (0..t).map(|i| r.spread[i] - r.intercept).collect();
        for j in 1..n {
            let g: f64 = (0..t)
                .map(|i| (p[i * n + j] - means[j]) * resid[i])
                .sum::<f64>()
                / t as f64;
            if r.weights[j] != 0.0 {
                // x_jᵀr/n = λ·sign(β_j) and β_j = −w_j.
                assert_close(g, 0.5 * (-r.weights[j]).signum(), 1e-6);
            } else {
                assert!(g.abs() <= 0.5 + 1e-6);
            }
        }
    }

    #[test]
    fn automatic_target_is_the_most_mean_reverting() {
        let (t, n) = (400, 5);
        let p = synthetic(t, n, 11);
        let best = sparse_portfolio(&p, t, n, &lasso(0.3, None), &mut no_progress()).unwrap();
        let mut adfs = vec![];
        for tg in 0..n {
            let r = sparse_portfolio(&p, t, n, &lasso(0.3, Some(tg)), &mut no_progress()).unwrap();
            adfs.push(r.adf_statistic);
        }
        let argmin = (0..n)
            .min_by(|&a, &b| adfs[a].partial_cmp(&adfs[b]).unwrap())
            .unwrap();
        assert_eq!(best.target_index, Some(argmin));
        assert_eq!(best.adf_statistic, adfs[argmin]);
    }

    #[test]
    fn lambda_path_matches_single_fits() {
        let (t, n) = (500, 8);
        let p = synthetic(t, n, 3);
        let cfg = LambdaPathConfig {
            target: 0,
            n_lambdas: 8,
            tolerance: 1e-12,
            max_iterations: 100_000,
            ..Default::default()
        };
        let path = sparse_lambda_path(&p, t, n, &cfg, &mut no_progress()).unwrap();
        assert_eq!(path.lambdas.len(), 8);
        assert_eq!(path.nonzero[0], 1, "λ_max selects nothing");
        assert!(path.lambdas.windows(2).all(|w| w[0] > w[1]));
        assert_close(path.lambdas[7], path.lambdas[0] * 1e-3, 1e-12);
        for (l, &lam) in path.lambdas.iter().enumerate() {
            let r = sparse_portfolio(&p, t, n, &lasso(lam, Some(0)), &mut no_progress()).unwrap();
            assert_eq!(r.nonzero, path.nonzero[l]);
            assert_close(r.adf_statistic, path.adf_statistic[l], 1e-7);
            for j in 0..n {
                assert!((r.weights[j] - path.weights[l * n + j]).abs() < 1e-8);
            }
        }
        // User λ in any order are reported in that order.
        let lams = vec![0.01, 1.0, 0.1];
        let cfg2 = LambdaPathConfig {
            lambdas: Some(lams.clone()),
            ..cfg.clone()
        };
        let p2 = sparse_lambda_path(&p, t, n, &cfg2, &mut no_progress()).unwrap();
        assert_eq!(p2.lambdas, lams);
        assert!(p2.nonzero[1] <= p2.nonzero[2] && p2.nonzero[2] <= p2.nonzero[0]);
    }

    #[test]
    fn symmetric_eigen_small_cases() {
        let (v, q) = symmetric_eigen(&[2.0, 1.0, 1.0, 2.0], 2).unwrap();
        assert_close(v[0], 1.0, 1e-14);
        assert_close(v[1], 3.0, 1e-14);
        assert_close(q[0].abs(), 0.5f64.sqrt(), 1e-14);
        let mut rng = Rng(5);
        let n = 9;
        let b: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = b[i * n + j] + b[j * n + i];
            }
        }
        let (vals, vecs) = symmetric_eigen(&a, n).unwrap();
        for e in 0..n {
            let v = &vecs[e * n..(e + 1) * n];
            for i in 0..n {
                let av: f64 = (0..n).map(|k| a[i * n + k] * v[k]).sum();
                assert!((av - vals[e] * v[i]).abs() < 1e-12);
            }
            // Orthonormal.
            assert_close(dot(v, v), 1.0, 1e-13);
        }
        assert!(vals.windows(2).all(|w| w[0] <= w[1]));
        // The secular-equation minimum equals the direct one for a bordered matrix.
        let d = [0.5, 1.0, 2.0];
        let z = [0.3, -0.2, 0.7];
        let gamma = 1.5;
        let mut m = vec![0.0; 16];
        for i in 0..3 {
            m[i * 4 + i] = d[i];
            m[i * 4 + 3] = z[i];
            m[3 * 4 + i] = z[i];
        }
        m[15] = gamma;
        let (direct, _) = symmetric_eigen(&m, 4).unwrap();
        let z2: Vec<f64> = z.iter().map(|v| v * v).collect();
        assert_close(bordered_min_eigenvalue(&d, &z2, gamma), direct[0], 1e-13);
    }

    #[test]
    fn box_tiao_invariants_and_greedy() {
        let (t, n) = (600, 6);
        let p = synthetic(t, n, 21);
        let cfg = SparseConfig {
            method: SparseMethod::BoxTiao,
            ..Default::default()
        };
        let bt = sparse_portfolio(&p, t, n, &cfg, &mut no_progress()).unwrap();
        assert_eq!(bt.target_index, None);
        assert_close(bt.weights.iter().map(|w| w * w).sum::<f64>(), 1.0, 1e-12);
        let imax = (0..n)
            .max_by(|&a, &b| {
                bt.weights[a]
                    .abs()
                    .partial_cmp(&bt.weights[b].abs())
                    .unwrap()
            })
            .unwrap();
        assert!(bt.weights[imax] > 0.0);
        let pm = PredictabilityMatrices::new(&p, t, n).unwrap();
        let rq = |w: &[f64]| {
            let (mut num, mut den) = (0.0, 0.0);
            for i in 0..n {
                for j in 0..n {
                    num += w[i] * pm.m[i * n + j] * w[j];
                    den += w[i] * pm.g0[i * n + j] * w[j];
                }
            }
            num / den
        };
        assert_close(rq(&bt.weights), bt.objective, 1e-10);
        for i in 0..n {
            assert!(bt.objective <= pm.m[i * n + i] / pm.g0[i * n + i] + 1e-12);
        }
        assert_close(
            bt.intercept,
            bt.spread.iter().sum::<f64>() / t as f64,
            1e-12,
        );
        // Greedy: k nonzeros, no better than Box-Tiao, equal to it at k = N.
        let mut steps = vec![];
        for k in 2..=n {
            let cfg = SparseConfig {
                method: SparseMethod::Greedy,
                k: Some(k),
                ..Default::default()
            };
            let g = sparse_portfolio(&p, t, n, &cfg, &mut |i, v| {
                steps.push((i, v));
                true
            })
            .unwrap();
            assert_eq!(g.nonzero, k);
            assert_eq!(g.iterations, k - 1);
            assert!(g.objective >= bt.objective - 1e-12);
            assert_close(rq(&g.weights), g.objective, 1e-10);
            if k == n {
                assert_close(g.objective, bt.objective, 1e-10);
                for j in 0..n {
                    assert!((g.weights[j] - bt.weights[j]).abs() < 1e-8);
                }
            }
        }
        assert!(!steps.is_empty());
    }

    #[test]
    fn input_errors() {
        let p = synthetic(50, 4, 1);
        let run = |cfg: &SparseConfig| sparse_portfolio(&p, 50, 4, cfg, &mut no_progress());
        let en = |lambda: f64, alpha: f64| SparseConfig {
            method: SparseMethod::ElasticNet,
            lambda,
            alpha,
            ..Default::default()
        };
        assert!(err_msg(run(&en(-0.1, 0.5))).contains("lambda must be a finite number >= 0"));
        assert!(err_msg(run(&en(f64::NAN, 0.5))).contains("lambda must be a finite number >= 0"));
        assert!(
            err_msg(run(&en(0.1, 1.5))).contains("alpha (the L1 ratio) must be between 0 and 1")
        );
        assert!(
            err_msg(run(&en(0.1, -0.1))).contains("alpha (the L1 ratio) must be between 0 and 1")
        );
        // Lasso ignores alpha.
        assert!(run(&SparseConfig {
            alpha: 7.0,
            lambda: 0.5,
            ..Default::default()
        })
        .is_ok());
        assert!(err_msg(run(&SparseConfig {
            target: Some(4),
            ..Default::default()
        }))
        .contains("target must be an asset index between 0 and 3"));
        assert!(err_msg(run(&SparseConfig {
            tolerance: 0.0,
            ..Default::default()
        }))
        .contains("tolerance"));
        assert!(err_msg(run(&SparseConfig {
            max_iterations: 0,
            ..Default::default()
        }))
        .contains("max_iterations"));
        let greedy = |k: Option<usize>| SparseConfig {
            method: SparseMethod::Greedy,
            k,
            ..Default::default()
        };
        assert!(err_msg(run(&greedy(None))).contains("k (the basket cardinality) is required"));
        assert!(err_msg(run(&greedy(Some(1))))
            .contains("k must be between 2 and the number of assets (4), got 1"));
        assert!(err_msg(run(&greedy(Some(5))))
            .contains("k must be between 2 and the number of assets (4), got 5"));
        // Shape and values.
        let one: Vec<f64> = (0..50).map(|i| i as f64).collect();
        assert!(err_msg(sparse_portfolio(
            &one,
            50,
            1,
            &SparseConfig::default(),
            &mut no_progress()
        ))
        .contains("at least 2 assets"));
        assert!(err_msg(sparse_portfolio(
            &p[..16],
            4,
            4,
            &SparseConfig::default(),
            &mut no_progress()
        ))
        .contains("at least 10 observations"));
        let mut bad = p.clone();
        bad[9] = f64::NAN;
        assert!(err_msg(sparse_portfolio(
            &bad,
            50,
            4,
            &SparseConfig::default(),
            &mut no_progress()
        ))
        .contains("prices contains NaN at row 2, column 1"));
        bad[9] = f64::INFINITY;
        assert!(err_msg(sparse_portfolio(
            &bad,
            50,
            4,
            &SparseConfig::default(),
            &mut no_progress()
        ))
        .contains("infinite"));
        assert!(err_msg(sparse_portfolio(
            &p[..199],
            50,
            4,
            &SparseConfig::default(),
            &mut no_progress()
        ))
        .contains("has 199 values"));
        // Duplicated and constant columns.
        let mut dup = p.clone();
        for i in 0..50 {
            dup[i * 4 + 3] = dup[i * 4 + 1];
        }
        assert!(err_msg(sparse_portfolio(
            &dup,
            50,
            4,
            &SparseConfig::default(),
            &mut no_progress()
        ))
        .contains("columns 1 and 3 are exactly duplicated"));
        let mut cst = p.clone();
        for i in 0..50 {
            cst[i * 4 + 2] = 5.0;
        }
        assert!(err_msg(sparse_portfolio(
            &cst,
            50,
            4,
            &SparseConfig::default(),
            &mut no_progress()
        ))
        .contains("column 2 is constant"));
        // Exact linear combination: singular Γ0 for Box-Tiao / greedy.
        let mut lin = p.clone();
        for i in 0..50 {
            lin[i * 4 + 3] = 2.0 * lin[i * 4 + 1] - 0.5 * lin[i * 4 + 2];
        }
        let bt = SparseConfig {
            method: SparseMethod::BoxTiao,
            ..Default::default()
        };
        let m = err_msg(sparse_portfolio(&lin, 50, 4, &bt, &mut no_progress()));
        assert!(m.contains("collinear") && m.contains("singular"), "{m}");
        let m = err_msg(sparse_portfolio(
            &lin,
            50,
            4,
            &greedy(Some(4)),
            &mut no_progress(),
        ));
        assert!(m.contains("collinear"), "{m}");
        // Too few observations for the VAR.
        let wide = synthetic(12, 11, 2);
        assert!(
            err_msg(sparse_portfolio(&wide, 12, 11, &bt, &mut no_progress()))
                .contains("need at least 13")
        );
        // Non-convergence is reported.
        let cfg = SparseConfig {
            lambda: 1e-4,
            max_iterations: 1,
            tolerance: 1e-12,
            target: Some(0),
            ..Default::default()
        };
        let e = sparse_portfolio(&p, 50, 4, &cfg, &mut no_progress());
        assert!(
            matches!(e, Err(CoreError::Numerical(ref m)) if m.contains("did not converge in 1 iterations"))
        );
    }

    #[test]
    fn path_errors() {
        let p = synthetic(50, 4, 1);
        let run = |cfg: &LambdaPathConfig| sparse_lambda_path(&p, 50, 4, cfg, &mut no_progress());
        let d = LambdaPathConfig::default();
        assert!(err_msg(run(&LambdaPathConfig {
            target: 9,
            ..d.clone()
        }))
        .contains("target must be an asset index between 0 and 3, got 9"));
        assert!(err_msg(run(&LambdaPathConfig {
            lambdas: Some(vec![]),
            ..d.clone()
        }))
        .contains("lambdas is empty"));
        assert!(err_msg(run(&LambdaPathConfig {
            lambdas: Some(vec![0.1, -1.0]),
            ..d.clone()
        }))
        .contains("lambdas must be finite and >= 0, got -1 at index 1"));
        assert!(err_msg(run(&LambdaPathConfig {
            n_lambdas: 0,
            ..d.clone()
        }))
        .contains("n_lambdas must be between 1 and 1000, got 0"));
        assert!(err_msg(run(&LambdaPathConfig {
            alpha: 0.0,
            ..d.clone()
        }))
        .contains("give lambdas explicitly"));
        assert!(err_msg(run(&LambdaPathConfig {
            alpha: 2.0,
            ..d.clone()
        }))
        .contains("alpha (the L1 ratio) must be between 0 and 1"));
        assert!(run(&LambdaPathConfig {
            alpha: 0.0,
            lambdas: Some(vec![1.0, 0.1]),
            ..d.clone()
        })
        .is_ok());
    }

    #[test]
    fn cancellation() {
        let p = synthetic(200, 5, 4);
        let mut calls = 0;
        let r = sparse_portfolio(&p, 200, 5, &lasso(0.01, Some(0)), &mut |_, _| {
            calls += 1;
            calls < 3
        });
        assert_eq!(r, Err(CoreError::Cancelled));
        let g = SparseConfig {
            method: SparseMethod::Greedy,
            k: Some(3),
            ..Default::default()
        };
        assert_eq!(
            sparse_portfolio(&p, 200, 5, &g, &mut |_, _| false),
            Err(CoreError::Cancelled)
        );
        let cfg = LambdaPathConfig::default();
        assert_eq!(
            sparse_lambda_path(&p, 200, 5, &cfg, &mut |_, _| false),
            Err(CoreError::Cancelled)
        );
    }

    /// Property (600 random cases): the hashing duplicate finder agrees with the naive O(cols²)
    /// double loop it replaced, including the reported pair, with planted duplicates, -0.0/0.0
    /// and columns equal on all but one row.
    #[test]
    fn duplicate_finder_matches_the_naive_double_loop() {
        fn naive(p: &[f64], rows: usize, cols: usize) -> Option<(usize, usize)> {
            for j in 0..cols {
                for k in (j + 1)..cols {
                    if (0..rows).all(|t| p[t * cols + j] == p[t * cols + k]) {
                        return Some((j, k));
                    }
                }
            }
            None
        }
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |m: u64| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s % m
        };
        for _ in 0..600 {
            let rows = 1 + next(6) as usize;
            let cols = 1 + next(12) as usize;
            // few distinct values, so accidental duplicates happen too
            let mut p: Vec<f64> = (0..rows * cols)
                .map(|_| [0.0, -0.0, 1.0, 2.5][next(4) as usize])
                .collect();
            for _ in 0..next(3) {
                let (a, b) = (next(cols as u64) as usize, next(cols as u64) as usize);
                for t in 0..rows {
                    p[t * cols + b] = p[t * cols + a];
                }
                if next(2) == 0 {
                    let t = next(rows as u64) as usize;
                    p[t * cols + b] += 1.0; // equal on all but one row
                }
            }
            assert_eq!(
                first_duplicate_column(&p, rows, cols).unwrap(),
                naive(&p, rows, cols),
                "{rows}x{cols} {p:?}"
            );
        }
    }
}
