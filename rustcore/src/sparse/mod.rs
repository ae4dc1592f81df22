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
//! (constant; lagged differences chosen by AIC as statsmodels' `adfuller` does by default, or by
//! BIC / t-stat, or none; the lag used is reported) with Engle-Granger critical values
//! (MacKinnon 2010).
//!
//! The regression solver is coordinate descent with covariance (Gram) updates (Friedman, Hastie &
//! Tibshirani 2010, "glmnet"): `Xᵀr` is maintained instead of the residual, so one coordinate
//! update costs O(working set) instead of O(T). The prices are read in place (row-major, never
//! copied or transposed): the column sums come from the validation's pass. With few assets (at
//! most 384) one more pass computes the whole Gram matrix of the centred prices (`gram`: the
//! upper triangle, blocks of rows centred into a cache-resident buffer, a register-tiled
//! AVX-512 / AVX2 kernel, two threads for large products); such a design does not depend on the
//! target and serves every target of an automatic choice. With more assets, one more pass gives
//! the centring, the diagonal and `Xᵀy`, and other Gram entries `x_jᵀx_k` of the centred prices
//! are computed lazily and cached (per target), by GEMM (matrixmultiply, runtime AVX-512/FMA): the
//! block of the working set when it grows (from the centred columns the fit touches, gathered
//! once), and full rows (the GEMM reading the prices in place, the means corrected after;
//! batched, with likely-needed rows prefetched in the same pass, on two threads for large
//! products) for the nonzero coefficients when the duality gap is checked. Sweeps run over the
//! working set's Gram block copied contiguously, over a working set
//! (nonzeros ∪ the strongest strong-rule candidates, extended by the strongest KKT violators,
//! at least doubling); convergence is certified by
//! scikit-learn's duality gap (`gap ≤ tolerance · ‖y − ȳ‖²` in units of `n ×` objective),
//! checked when the largest coordinate change is `≤ tolerance ·` the largest coefficient — the
//! stopping rule and the `tolerance` parameter mean exactly what they mean in scikit-learn. The
//! sweeps are accelerated by Anderson extrapolation (Bertrand & Massias 2021: every 6 sweeps,
//! the affine combination of the last iterates kept when it lowers the objective), which cuts
//! the sweeps 2.5-3× on correlated prices (1024 → 402 at 2000 × 100, λ = 10).
//! A single-λ fit follows a short geometric λ path from λ_max (ratio 0.7) with warm starts; the
//! λ path function warm-starts each λ from the previous one.

//!
//! Modules: [`lasso`] (coordinate descent), `gram` (the dense Gram matrix), [`predictability`]
//! (Box-Tiao and greedy),
//! [`spread`] (AR(1) / ADF statistics of a basket's spread, Engle-Granger critical values),
//! `validate` (input checks). The ADF regression with lag selection is [`crate::adf`].

// Index loops mirror the textbook algorithms (tred2/tql2, Cholesky); `!(x > y)` deliberately
// treats NaN as failure.
#![allow(clippy::needless_range_loop, clippy::neg_cmp_op_on_partial_ord)]

mod gram;
mod lasso;
mod predictability;
mod spread;
mod validate;

use crate::adf::Autolag;
use crate::error::{CoreError, CoreResult};
use crate::num::{pz, pz_all};

use lasso::{regression_basket, Design};
use predictability::{finish_eigen_basket, PredictabilityMatrices};
use spread::spread_adf;
pub use spread::{ar1_mean_reversion, engle_granger_critical_values};
use validate::{log_grid, validate_penalty, validate_prices, validate_solver};

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
    /// Lagged differences in the spread's ADF regression: AIC (the default, as statsmodels'
    /// `adfuller`), BIC or t-stat choose them as `adfuller(spread, autolag=…)` does with its default
    /// `maxlag` (see [`crate::adf`]); `Autolag::None` = 0 lags (the plain Dickey-Fuller / AR(1)
    /// t statistic). The statistic also ranks the targets when `target` is `None`. A spread whose
    /// lagged regression is singular (exactly periodic differences) or too short for the lag
    /// search keeps the 0-lag statistic and reports `adf_lag` 0.
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
            adf_autolag: Autolag::default(),
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
    /// ADF statistic of the spread (regression with constant and `adf_lag` lagged differences,
    /// `adf_lag` chosen by `adf_autolag`, AIC by default as statsmodels' `adfuller`).
    pub adf_statistic: f64,
    /// Lagged differences used by the ADF regression (chosen by `adf_autolag`; 0 with `None`).
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
    /// Lag selection of each spread's ADF regression, as [`SparseConfig::adf_autolag`].
    pub adf_autolag: Autolag,
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
            adf_autolag: Autolag::default(),
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
    /// ADF statistic of the spread (with `adf_lag` lagged differences).
    pub adf_statistic: Vec<f64>,
    /// Lagged differences used by each ADF regression (chosen by `adf_autolag`).
    pub adf_lag: Vec<usize>,
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
    let sums = validate_prices(prices, rows, cols)?;
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
            regression_basket(prices, rows, cols, &sums, config, alpha, on_progress)
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
    let sums = validate_prices(prices, rows, cols)?;
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
    let mut design = Design::new(prices, rows, cols, &sums, Some(target))?;
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
        adf_lag: vec![0; l_count],
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
        let basket = design.basket(target, &w, lam, config.alpha);
        let st = ar1_mean_reversion(&basket.spread)?;
        let (adf_statistic, adf_lag) = spread_adf(&basket.spread, &st, config.adf_autolag)?;
        out.nonzero[li] = basket.nonzero;
        out.half_life[li] = st.half_life;
        out.adf_statistic[li] = adf_statistic;
        out.adf_lag[li] = adf_lag;
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

#[cfg(test)]
mod tests;
