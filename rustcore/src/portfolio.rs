//! Portfolio optimisation from a prices matrix (time x assets, row-major).
//!
//! Pipeline: prices -> returns (simple or log) -> annualised mean vector `mu` and covariance
//! `Sigma` (sample, ddof = 1, or sklearn's Ledoit-Wolf) -> one of
//! * `min_variance`: min w'Σw  s.t. 1'w = 1, min_weight <= w <= max_weight;
//! * `max_sharpe`: the homogenised problem min y'Σy s.t. (μ - rf)'y = 1, y_i >= min_weight·1'y,
//!   y_i <= max_weight·1'y, then w = y / 1'y (κ = 1'y is eliminated: it is always > 0 here);
//! * `risk_parity`: Spinu's convex problem min ½x'Σx - Σ b_i ln x_i by damped Newton, w = x / 1'x;
//! * `equal_weight`: w = 1/N;
//!
//! plus an optional efficient frontier. The quadratic programs are solved exactly (to rounding)
//! by a dense dual active-set method (Goldfarb-Idnani, `portfolio/qp.rs`) on the Cholesky factor
//! of Σ; the heavy matrix products use nalgebra's gemm (`crate::linalg`).

// `!(x > y)` comparisons are deliberate: they also catch NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord, clippy::needless_range_loop)]

use crate::error::{check, CoreError, CoreResult};
use crate::num::{pz, pz_all};

mod options;
mod qp;

pub use options::{CovarianceEstimator, PortfolioMethod, ReturnsKind};

use crate::linalg::{
    chol_solve, cholesky, cholesky_upper_small, dot, gram, gram_padded, inverse_from_upper,
    lower_inverse, matvec, padded_cols, transpose, GRAM_PADDED_MAX_BYTES, SMALL_FACTOR_MAX,
};
use qp::{Con, Factor};

/// Smallest eigenvalue / largest eigenvalue below which the covariance counts as singular.
pub const MIN_EIGEN_RATIO: f64 = 1e-10;
/// Largest number of frontier points.
pub const MAX_FRONTIER_POINTS: usize = 1000;

/// Parameters of [`optimize_portfolio`] (all but the method).
#[derive(Debug, Clone, PartialEq)]
pub struct PortfolioConfig {
    /// "simple" (p_t / p_{t-1} - 1) or "log" (ln(p_t / p_{t-1})).
    pub returns: ReturnsKind,
    /// Periods per year: mean x annualization, covariance x annualization.
    pub annualization: f64,
    /// Annual risk-free rate (used by the Sharpe ratio and by max_sharpe).
    pub risk_free_rate: f64,
    /// "sample" (ddof = 1) or "ledoit_wolf" (sklearn.covariance.LedoitWolf, ddof = 0 based).
    pub covariance: CovarianceEstimator,
    /// Lower bound of every weight (negative = short selling allowed).
    pub min_weight: f64,
    /// Upper bound of every weight.
    pub max_weight: f64,
    /// Risk budgets for risk_parity (length N, positive; normalised to sum 1).
    /// Empty = equal budgets. Ignored by the other methods.
    pub risk_budgets: Vec<f64>,
    /// Number of efficient-frontier points (0 = no frontier, otherwise 2..=1000).
    pub frontier_points: usize,
}

impl Default for PortfolioConfig {
    fn default() -> Self {
        PortfolioConfig {
            returns: ReturnsKind::Simple,
            annualization: 252.0,
            risk_free_rate: 0.02,
            covariance: CovarianceEstimator::Sample,
            min_weight: 0.0,
            max_weight: 1.0,
            risk_budgets: Vec::new(),
            frontier_points: 0,
        }
    }
}

/// Result of [`optimize_portfolio`]. Annual figures.
#[derive(Debug, Clone, PartialEq)]
pub struct PortfolioResult {
    pub method: String,
    /// Portfolio weights (sum 1).
    pub weights: Vec<f64>,
    /// μ'w
    pub expected_return: f64,
    /// sqrt(w'Σw)
    pub volatility: f64,
    /// (μ'w - risk_free_rate) / volatility
    pub sharpe: f64,
    /// w_i (Σw)_i / w'Σw (fractions summing to 1).
    pub risk_contributions: Vec<f64>,
    /// "Solved" on success ("Solved (equal weights forced by the bounds)" when the bounds leave one
    /// feasible portfolio).
    pub status: String,
    /// Active-set iterations (QP methods), Newton iterations (risk_parity), 0 (equal_weight).
    pub iterations: usize,
    /// Target returns of the frontier points, from the minimum-variance return to the largest
    /// return attainable within the bounds (empty if frontier_points = 0).
    pub frontier_returns: Vec<f64>,
    /// Minimum volatility at each frontier return.
    pub frontier_volatilities: Vec<f64>,
}

impl PortfolioResult {
    /// Signed zeros to +0.0 (both transports bit-identical; proto3 drops −0.0).
    fn no_neg_zero(mut self) -> Self {
        for v in [
            &mut self.weights,
            &mut self.risk_contributions,
            &mut self.frontier_returns,
            &mut self.frontier_volatilities,
        ] {
            pz_all(v);
        }
        for v in [
            &mut self.expected_return,
            &mut self.volatility,
            &mut self.sharpe,
        ] {
            *v = pz(*v);
        }
        self
    }
}

/// Annualised moments estimated from prices.
#[derive(Debug, Clone, PartialEq)]
pub struct Moments {
    /// Annualised mean returns (N).
    pub mean: Vec<f64>,
    /// Annualised covariance, row-major N x N.
    pub covariance: Vec<f64>,
    /// Number of return observations (price rows - 1).
    pub observations: usize,
    /// Ledoit-Wolf shrinkage intensity (0 for the sample estimator).
    pub shrinkage: f64,
}

fn validate_config(config: &PortfolioConfig) -> CoreResult<()> {
    check::positive("annualization", config.annualization)?;
    if config.annualization > 1e8 {
        return Err(CoreError::invalid(format!(
            "annualization must be at most 1e8 periods per year, got {}",
            config.annualization
        )));
    }
    let rf = config.risk_free_rate;
    if !(rf.is_finite() && (-1.0..=1.0).contains(&rf)) {
        return Err(CoreError::invalid(format!(
            "risk_free_rate is an annual rate and must be between -1 and 1, got {rf}"
        )));
    }
    let (lo, hi) = (config.min_weight, config.max_weight);
    if !(lo.is_finite() && (-1.0..=1.0).contains(&lo)) {
        return Err(CoreError::invalid(format!(
            "min_weight must be between -1 and 1, got {lo}"
        )));
    }
    if !(hi.is_finite() && (0.0..=2.0).contains(&hi)) {
        return Err(CoreError::invalid(format!(
            "max_weight must be between 0 and 2, got {hi}"
        )));
    }
    if lo > hi {
        return Err(CoreError::invalid(format!(
            "min_weight ({lo}) must not exceed max_weight ({hi})"
        )));
    }
    if config.frontier_points == 1 || config.frontier_points > MAX_FRONTIER_POINTS {
        return Err(CoreError::invalid(format!(
            "frontier_points must be 0 (no frontier) or between 2 and {MAX_FRONTIER_POINTS}, got {}",
            config.frontier_points
        )));
    }
    Ok(())
}

/// Checks the prices matrix and the bounds against the number of assets (every check, in order:
/// the error names the first problem).
fn validate_prices(
    prices: &[f64],
    rows: usize,
    cols: usize,
    config: &PortfolioConfig,
) -> CoreResult<()> {
    check::finite_matrix("prices", prices, rows, cols)?;
    check_shape(rows, cols)?;
    if let Some(i) = prices.iter().position(|&p| p <= 0.0) {
        return Err(CoreError::invalid(format!(
            "prices must be strictly positive to compute {} returns; found {} at row {}, column {}",
            config.returns,
            prices[i],
            i / cols,
            i % cols
        )));
    }
    check_bounds(cols, config)
}

/// The checks of [`validate_prices`] that do not read the values (issue 16: the values are
/// checked by the returns pass, [`estimate`], which reads every price anyway: one pass over the
/// prices instead of two). An error here, or any other found before the returns pass, is
/// reported as [`validate_prices`] reports it ([`first_error`]): the same errors, in the same
/// precedence, as when every value was checked first.
fn validate_prices_shape(
    prices: &[f64],
    rows: usize,
    cols: usize,
    config: &PortfolioConfig,
) -> CoreResult<()> {
    let shaped = rows > 0 && cols > 0 && prices.len() == rows * cols;
    if shaped && check_shape(rows, cols).is_ok() && check_bounds(cols, config).is_ok() {
        return Ok(());
    }
    validate_prices(prices, rows, cols, config)?;
    unreachable!("validate_prices accepts prices the shape checks reject")
}

/// [`validate_prices`]'s error if it finds one (a price that is not finite and positive comes
/// first), else `e`: for an error found before the returns pass has checked the values.
fn first_error(
    prices: &[f64],
    rows: usize,
    cols: usize,
    config: &PortfolioConfig,
    e: CoreError,
) -> CoreError {
    validate_prices(prices, rows, cols, config)
        .err()
        .unwrap_or(e)
}

fn check_shape(rows: usize, cols: usize) -> CoreResult<()> {
    if cols < 2 {
        return Err(CoreError::invalid(
            "prices has a single asset (1 column): portfolio optimisation needs at least 2 assets",
        ));
    }
    let need = cols + 2;
    if rows < need {
        return Err(CoreError::invalid(format!(
            "prices has {rows} rows ({} returns) for {cols} assets: too few observations to estimate \
             the covariance; need at least {need} price rows (assets + 1 returns)",
            rows.saturating_sub(1)
        )));
    }
    Ok(())
}

fn check_bounds(cols: usize, config: &PortfolioConfig) -> CoreResult<()> {
    let n = cols as f64;
    let (lo, hi) = (config.min_weight, config.max_weight);
    if lo * n > 1.0 + 1e-12 {
        return Err(CoreError::invalid(format!(
            "infeasible bounds: min_weight ({lo}) x {cols} assets = {} > 1, weights cannot sum to 1",
            lo * n
        )));
    }
    if hi * n < 1.0 - 1e-12 {
        return Err(CoreError::invalid(format!(
            "infeasible bounds: max_weight ({hi}) x {cols} assets = {} < 1, weights cannot sum to 1",
            hi * n
        )));
    }
    Ok(())
}

/// Annualised mean and covariance of the returns of `prices` (time x assets, row-major).
///
/// Conventions: returns r_t = p_t/p_{t-1} - 1 ("simple") or ln(p_t/p_{t-1}) ("log");
/// mean = column mean x annualization; "sample" covariance = X'X/(T-1) x annualization with X the
/// demeaned returns (pandas/numpy ddof = 1); "ledoit_wolf" = sklearn.covariance.LedoitWolf().fit
/// on the returns (shrinkage of the MLE covariance X'X/T, ddof = 0) x annualization.
pub fn estimate_moments(
    prices: &[f64],
    rows: usize,
    cols: usize,
    config: &PortfolioConfig,
) -> CoreResult<Moments> {
    validate_config(config)?;
    validate_prices_shape(prices, rows, cols, config)?;
    let _budget = crate::limits::reserve(&crate::limits::portfolio(rows, cols, 0))
        .map_err(|e| first_error(prices, rows, cols, config, e))?;
    let mut m = estimate(prices, rows, cols, config)?;
    crate::limits::poll()?;
    pz_all(&mut m.mean);
    pz_all(&mut m.covariance);
    m.shrinkage = pz(m.shrinkage);
    Ok(m)
}

/// The moments of prices that passed [`validate_prices_shape`]. The values are checked (finite
/// and positive) as the returns are computed: a bad one gives [`validate_prices`]'s error.
fn estimate(
    prices: &[f64],
    rows: usize,
    n: usize,
    config: &PortfolioConfig,
) -> CoreResult<Moments> {
    let t = rows - 1;
    let log = config.returns == ReturnsKind::Log;
    // Small problems (a 50-asset portfolio) use the padded layout of `gram_padded` (row stride a
    // multiple of 8, zero padding); larger ones the general gemm path (stride n).
    let np = padded_cols(n);
    let padded = t.saturating_mul(np).saturating_mul(8) <= GRAM_PADDED_MAX_BYTES;
    let stride = if padded { np } else { n };
    let mut x = Vec::with_capacity(t * stride);
    let mut mean = vec![0.0; n];
    if !returns_and_sums(prices, t, n, stride, log, &mut x, &mut mean) {
        let e = CoreError::invalid("prices must be finite and strictly positive");
        return Err(first_error(prices, rows, n, config, e));
    }
    let tf = t as f64;
    for m in mean.iter_mut() {
        *m /= tf;
    }
    for r in 0..t {
        for (v, m) in x[r * stride..r * stride + n].iter_mut().zip(&mean) {
            *v -= m;
        }
    }
    let mut c = if padded {
        gram_padded(&x, t, stride, n)
    } else {
        gram(&x, t, n)
    };
    let ann = config.annualization;
    let mut shrinkage = 0.0;
    if config.covariance == CovarianceEstimator::LedoitWolf {
        let mu;
        (shrinkage, mu) = lw_shrinkage(&x, t, n, stride, &c);
        let scale = (1.0 - shrinkage) / tf * ann;
        for v in c.iter_mut() {
            *v *= scale;
        }
        for i in 0..n {
            c[i * n + i] += shrinkage * mu * ann;
        }
    } else {
        let scale = ann / (tf - 1.0);
        for v in c.iter_mut() {
            *v *= scale;
        }
    }
    for m in mean.iter_mut() {
        *m *= ann;
    }
    Ok(Moments {
        mean,
        covariance: c,
        observations: t,
        shrinkage,
    })
}

/// Returns of `prices` (t + 1 rows x n) appended to the empty `x` as t rows of `stride` values
/// (columns n.. zero; nothing is zeroed beforehand), and their column sums (row order) into
/// `sums`. Also checks every price (issue 16: one pass over the prices, not a validation pass and
/// a returns pass): false if one is not finite and positive (the returns are then meaningless).
/// Compiled twice: with AVX2 where the CPU has it (4 divisions at once; IEEE division, so the
/// values are the same either way).
fn returns_and_sums(
    prices: &[f64],
    t: usize,
    n: usize,
    stride: usize,
    log: bool,
    x: &mut Vec<f64>,
    sums: &mut [f64],
) -> bool {
    x.clear();
    x.reserve_exact(t * stride);
    assert!(stride >= n && prices.len() >= (t + 1) * n && sums.len() >= n);
    #[cfg(target_arch = "x86_64")]
    {
        if !log && std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports the feature the function is compiled for.
            return unsafe { returns_avx2(prices, t, n, stride, x, sums) };
        }
    }
    returns_body(prices, t, n, stride, log, x, sums)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn returns_avx2(
    prices: &[f64],
    t: usize,
    n: usize,
    stride: usize,
    x: &mut Vec<f64>,
    sums: &mut [f64],
) -> bool {
    returns_body(prices, t, n, stride, false, x, sums)
}

/// Finite and > 0 (NaN fails both comparisons).
#[inline(always)]
fn finite_positive(v: f64) -> bool {
    (v > 0.0) & (v <= f64::MAX)
}

#[inline(always)]
fn returns_body(
    prices: &[f64],
    t: usize,
    n: usize,
    stride: usize,
    log: bool,
    x: &mut Vec<f64>,
    sums: &mut [f64],
) -> bool {
    let sums = &mut sums[..n];
    let mut ok = prices[..n]
        .iter()
        .fold(true, |ok, &v| ok & finite_positive(v));
    for r in 0..t {
        let p0 = &prices[r * n..(r + 1) * n];
        let p1 = &prices[(r + 1) * n..(r + 2) * n];
        // the capacity holds t * stride values (returns_and_sums reserved them)
        let out = &mut x.spare_capacity_mut()[..stride];
        let mut good = true;
        if log {
            for j in 0..n {
                good &= finite_positive(p1[j]);
                out[j].write((p1[j] / p0[j]).ln());
            }
        } else {
            for j in 0..n {
                good &= finite_positive(p1[j]);
                out[j].write(p1[j] / p0[j] - 1.0);
            }
        }
        for v in &mut out[n..] {
            v.write(0.0);
        }
        // SAFETY: the `stride` values past the end were all written just above, within the
        // capacity.
        unsafe { x.set_len(x.len() + stride) };
        let row = &x[r * stride..r * stride + n];
        for (m, v) in sums.iter_mut().zip(row) {
            *m += v;
        }
        ok &= good;
    }
    ok
}

/// sklearn.covariance.ledoit_wolf_shrinkage of the demeaned row-major `t x n` data `x` (row
/// stride `stride` >= n) whose Gram matrix `X'X` is `c`: returns (shrinkage, μ) with
/// μ = trace(X'X/t)/n, the shrinkage target's variance.
fn lw_shrinkage(x: &[f64], t: usize, n: usize, stride: usize, c: &[f64]) -> (f64, f64) {
    let (tf, nf) = (t as f64, n as f64);
    let trace_sum: f64 = (0..n).map(|i| c[i * n + i]).sum::<f64>() / tf; // sum(emp_cov_trace)
    let mu = trace_sum / nf;
    if n == 1 {
        return (0.0, mu); // scikit-learn: one feature, no shrinkage (delta is 0 up to rounding)
    }
    let beta_: f64 = (0..t)
        .map(|r| {
            let s: f64 = x[r * stride..r * stride + n].iter().map(|v| v * v).sum();
            s * s
        })
        .sum();
    let delta_: f64 = c.iter().map(|v| v * v).sum::<f64>() / (tf * tf);
    let beta = (beta_ / tf - delta_) / (nf * tf);
    let delta = (delta_ - 2.0 * mu * trace_sum + nf * mu * mu) / nf;
    let beta = beta.min(delta);
    let shrinkage = if beta == 0.0 || delta <= 0.0 {
        0.0
    } else {
        beta / delta
    };
    (shrinkage, mu)
}

/// Ledoit-Wolf covariance of a data matrix, see [`ledoit_wolf`].
#[derive(Debug, Clone, PartialEq)]
pub struct LedoitWolf {
    /// Column means (scikit-learn's `location_`), N.
    pub location: Vec<f64>,
    /// Shrunk covariance `(1 − s)·S + s·μ·I` (S = X'X/T of the demeaned data, ddof = 0;
    /// μ = trace(S)/N), row-major N x N (scikit-learn's `covariance_`).
    pub covariance: Vec<f64>,
    /// Shrinkage intensity s in [0, 1] (scikit-learn's `shrinkage_`).
    pub shrinkage: f64,
}

/// Ledoit-Wolf shrinkage covariance of `data` (row-major, `rows` samples x `cols` features):
/// exactly `sklearn.covariance.LedoitWolf().fit(data)` (assume_centered=False): the data are
/// demeaned, S = X'X / rows, and the shrinkage is `ledoit_wolf_shrinkage`'s. One feature gives
/// shrinkage 0 (as scikit-learn). At least 2 samples, finite values.
pub fn ledoit_wolf(data: &[f64], rows: usize, cols: usize) -> CoreResult<LedoitWolf> {
    check::finite_matrix("data", data, rows, cols)?;
    if cols == 0 {
        return Err(CoreError::invalid("data has no columns (features)"));
    }
    if rows < 2 {
        return Err(CoreError::invalid(format!(
            "data has {rows} row(s): the Ledoit-Wolf covariance needs at least 2 samples"
        )));
    }
    let _budget = crate::limits::reserve(&crate::limits::Need {
        op: "Ledoit-Wolf covariance",
        bytes: (rows as u64)
            .saturating_mul(cols as u64)
            .saturating_add((cols as u64).saturating_mul(cols as u64))
            .saturating_mul(16),
        what: format!("{cols} × {cols} covariance ({rows} × {cols} data)"),
    })?;
    let (t, n) = (rows, cols);
    let tf = t as f64;
    let mut location = vec![0.0; n];
    for r in 0..t {
        for (m, v) in location.iter_mut().zip(&data[r * n..(r + 1) * n]) {
            *m += v;
        }
    }
    for m in location.iter_mut() {
        *m /= tf;
    }
    let mut x = data.to_vec();
    for r in 0..t {
        for (v, m) in x[r * n..(r + 1) * n].iter_mut().zip(&location) {
            *v -= m;
        }
    }
    crate::limits::poll()?;
    let mut c = gram(&x, t, n);
    crate::limits::poll()?;
    let (shrinkage, mu) = lw_shrinkage(&x, t, n, n, &c);
    let scale = (1.0 - shrinkage) / tf;
    for v in c.iter_mut() {
        *v *= scale;
    }
    for i in 0..n {
        c[i * n + i] += shrinkage * mu;
    }
    let mut out = LedoitWolf {
        location,
        covariance: c,
        shrinkage: pz(shrinkage),
    };
    pz_all(&mut out.location);
    pz_all(&mut out.covariance);
    Ok(out)
}

/// Zero-variance check, Cholesky and eigenvalue-ratio check. Returns the Cholesky factor L and,
/// if `want_inverse`, L^{-1} (row-major).
fn factor_covariance(
    sigma: &[f64],
    n: usize,
    config: &PortfolioConfig,
    want_inverse: bool,
) -> CoreResult<(Vec<f64>, Option<Vec<f64>>)> {
    let hint = if config.covariance == CovarianceEstimator::Sample {
        "; try covariance=\"ledoit_wolf\" (shrinkage makes it well conditioned), or remove the redundant assets"
    } else {
        "; remove the redundant assets"
    };
    // small: U = L' (row-major upper), from which L^{-1} comes directly (issue 16)
    let small = n <= SMALL_FACTOR_MAX;
    let factored = if small {
        cholesky_upper_small(sigma, n, 0.0)
    } else {
        cholesky(sigma, n)
    };
    crate::limits::poll()?; // the blocked Cholesky stops early when cancelled
    let (l, u) = match factored {
        Ok(f) if small => (transpose(&f, n), Some(f)),
        Ok(l) => (l, None),
        Err(i) => {
            return Err(CoreError::numerical(format!(
                "the covariance matrix is singular (not positive definite at asset column {i}): \
                 some assets are collinear{hint}"
            )))
        }
    };
    // issue 16: with L^{-1} at hand (the QP methods need it anyway), a certain lower bound of
    // the ratio costs O(N^2): λmin = 1/‖L^{-1}‖₂² >= 1/‖L^{-1}‖_F² and λmax <= trace(Σ). When it
    // clears the threshold (with a factor 2 for rounding), the iterative estimate below (which
    // errs toward larger ratios) would pass too, so it is skipped.
    let linv = if want_inverse {
        let m = match &u {
            Some(u) => inverse_from_upper(u, n), // the bits of lower_inverse(&l, n)
            None => lower_inverse(&l, n),
        };
        crate::limits::poll()?; // lower_inverse (O(N³)) stops early when cancelled
        let fro2: f64 = m.iter().map(|v| v * v).sum();
        let trace: f64 = (0..n).map(|i| sigma[i * n + i]).sum();
        let bound = 1.0 / (fro2 * trace);
        if bound >= 2.0 * MIN_EIGEN_RATIO && bound.is_finite() {
            return Ok((l, Some(m)));
        }
        Some(m)
    } else {
        None
    };
    // largest eigenvalue: power iteration; smallest: inverse iteration (both Rayleigh quotients)
    let mut v: Vec<f64> = (0..n)
        .map(|i| 1.0 + 0.37 * ((i * 7919 % 101) as f64 / 101.0))
        .collect();
    let mut w = vec![0.0; n];
    let mut lmax = 0.0;
    // Only the order of magnitude matters: both estimates err on the safe side (the power
    // iteration's Rayleigh quotient is <= λmax, the inverse iteration's 1/RQ is >= λmin).
    for _ in 0..25 {
        let nv = dot(&v, &v).sqrt();
        v.iter_mut().for_each(|e| *e /= nv);
        matvec(sigma, n, &v, &mut w);
        let rq = dot(&v, &w);
        std::mem::swap(&mut v, &mut w);
        if (rq - lmax).abs() <= 1e-2 * rq {
            lmax = rq;
            break;
        }
        lmax = rq;
    }
    let mut v: Vec<f64> = (0..n)
        .map(|i| (((i * 104729 + 17) % 211) as f64 / 211.0) - 0.5)
        .collect();
    let mut inv_rq = 0.0;
    for _ in 0..25 {
        let nv = dot(&v, &v).sqrt();
        v.iter_mut().for_each(|e| *e /= nv);
        let mut y = v.clone();
        chol_solve(&l, n, &mut y);
        let rq = dot(&v, &y); // Rayleigh quotient of Σ^{-1}
        v = y;
        if (rq - inv_rq).abs() <= 1e-2 * rq {
            inv_rq = rq;
            break;
        }
        inv_rq = rq;
    }
    let lmin = 1.0 / inv_rq;
    let ratio = lmin / lmax;
    if !(ratio >= MIN_EIGEN_RATIO) {
        return Err(CoreError::numerical(format!(
            "the covariance matrix is nearly singular (smallest/largest eigenvalue ratio {ratio:.1e} < {MIN_EIGEN_RATIO:.0e}): \
             some assets are (almost) collinear{hint}"
        )));
    }
    Ok((l, linv))
}

/// Largest expected return attainable within the bounds (greedy fill of the best assets), the
/// corresponding weights and, when the best face is not a single point (tied returns), the tied group.
fn max_return_portfolio(mu: &[f64], lo: f64, hi: f64) -> (Vec<f64>, f64, Vec<usize>) {
    let n = mu.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| {
        mu[b]
            .partial_cmp(&mu[a])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut w = vec![lo; n];
    let mut budget = 1.0 - lo * n as f64;
    let mut marginal = order[0];
    for &i in &order {
        if budget <= 0.0 {
            break;
        }
        let add = (hi - lo).min(budget);
        w[i] += add;
        budget -= add;
        marginal = i;
    }
    let ret = dot(mu, &w);
    let scale = mu.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let group: Vec<usize> = (0..n)
        .filter(|&i| (mu[i] - mu[marginal]).abs() <= 1e-12 * scale)
        .collect();
    let g = group.len() as f64;
    let gsum: f64 = group.iter().map(|&i| w[i]).sum();
    let free = group.len() > 1 && gsum > g * lo + 1e-12 && gsum < g * hi - 1e-12;
    (w, ret, if free { group } else { Vec::new() })
}

struct Stats {
    ret: f64,
    vol: f64,
    sharpe: f64,
    rc: Vec<f64>,
}

fn stats(w: &[f64], mu: &[f64], sigma: &[f64], rf: f64) -> CoreResult<Stats> {
    let n = w.len();
    let mut sw = vec![0.0; n];
    matvec(sigma, n, w, &mut sw);
    let var = dot(w, &sw);
    if !(var > 0.0 && var.is_finite()) {
        return Err(CoreError::numerical(format!(
            "the portfolio variance is {var}: cannot compute volatility and Sharpe ratio"
        )));
    }
    let ret = dot(mu, w);
    let vol = var.sqrt();
    let rc = w.iter().zip(&sw).map(|(a, b)| a * b / var).collect();
    Ok(Stats {
        ret,
        vol,
        sharpe: (ret - rf) / vol,
        rc,
    })
}

/// Constraints of "1'w = 1 and the bounds" (upper bounds only where they can bind).
fn budget_and_bounds(n: usize, lo: f64, hi: f64) -> Vec<Con> {
    let mut cons = vec![Con {
        k: usize::MAX,
        a: 0.0,
        b: 1.0,
        c: 0.0,
        rhs: 1.0,
        eq: true,
    }];
    cons.extend((0..n).map(|k| Con::bound_lower(k, lo)));
    if upper_binds(n, lo, hi) {
        cons.extend((0..n).map(|k| Con::bound_upper(k, hi)));
    }
    cons
}

/// w_i <= hi is implied by 1'w = 1 and w >= lo unless hi < 1 - (n-1) lo.
fn upper_binds(n: usize, lo: f64, hi: f64) -> bool {
    hi < 1.0 - (n as f64 - 1.0) * lo - 1e-15
}

/// The QP's weights put on their bounds where rounding left them just off, then Σw = 1 again.
fn snap_to_bounds(w: &mut [f64], lo: f64, hi: f64) {
    for v in w.iter_mut() {
        // within 1e-13 of a bound: on it; outside a bound by rounding only (max Sharpe divides
        // the homogenised solution by its sum, which can turn a -1e-17 into a -3e-13): clamped,
        // so that a long-only portfolio never shows a negative weight
        if (*v - lo).abs() <= 1e-13 || (*v < lo && lo - *v <= 1e-11) {
            *v = lo;
        } else if (*v - hi).abs() <= 1e-13 || (*v > hi && *v - hi <= 1e-11) {
            *v = hi;
        }
    }
    restore_budget(w, lo, hi);
}

/// Σw = 1 again after the snap and the QP's own rounding (up to ~1e-11 off on a near-singular
/// covariance: 2 assets, 3 returns gave w = [0, 1 - 7.3e-12]): the residual goes to the weight
/// furthest inside its bounds, if it stays inside them.
fn restore_budget(w: &mut [f64], lo: f64, hi: f64) {
    let r = 1.0 - w.iter().sum::<f64>();
    if r == 0.0 || r.abs() > 1e-9 {
        return;
    }
    let room = |v: f64| (v - lo).min(hi - v);
    let best = (0..w.len())
        .filter(|&i| w[i] > lo && w[i] < hi)
        .max_by(|&a, &b| room(w[a]).total_cmp(&room(w[b])));
    if let Some(i) = best {
        let v = w[i] + r;
        if v >= lo && v <= hi {
            w[i] = v;
        }
    }
}

/// The normalised risk budgets of risk_parity (empty for the other methods), checked.
fn risk_budgets(
    method: PortfolioMethod,
    n: usize,
    config: &PortfolioConfig,
) -> CoreResult<Vec<f64>> {
    let (lo, hi) = (config.min_weight, config.max_weight);
    if method != PortfolioMethod::RiskParity {
        return Ok(Vec::new());
    }
    if lo != 0.0 || hi < 1.0 {
        return Err(CoreError::invalid(format!(
            "risk_parity supports only long-only, unconstrained weights (min_weight = 0, max_weight >= 1), \
             got min_weight = {lo}, max_weight = {hi}"
        )));
    }
    if config.risk_budgets.is_empty() {
        return Ok(vec![1.0 / n as f64; n]);
    }
    if config.risk_budgets.len() != n {
        return Err(CoreError::invalid(format!(
            "risk_budgets has {} values but there are {n} assets",
            config.risk_budgets.len()
        )));
    }
    check::finite("risk_budgets", &config.risk_budgets)?;
    if let Some(i) = config.risk_budgets.iter().position(|&b| b <= 0.0) {
        return Err(CoreError::invalid(format!(
            "risk_budgets must be positive, got {} at index {i}",
            config.risk_budgets[i]
        )));
    }
    let s: f64 = config.risk_budgets.iter().sum();
    Ok(config.risk_budgets.iter().map(|b| b / s).collect())
}

/// Optimise a portfolio of the `cols` assets whose prices are the row-major `rows x cols` matrix.
///
/// `method`: see [`PortfolioMethod`]. `on_progress(iteration, objective)` is called once per
/// solver iteration (active-set step or Newton step, counted across the frontier solves too);
/// returning false stops with `CoreError::Cancelled`.
pub fn optimize_portfolio(
    prices: &[f64],
    rows: usize,
    cols: usize,
    method: PortfolioMethod,
    config: &PortfolioConfig,
    on_progress: &mut dyn FnMut(usize, f64) -> bool,
) -> CoreResult<PortfolioResult> {
    use PortfolioMethod::{EqualWeight, MaxSharpe, MinVariance, RiskParity};
    validate_config(config)?;
    // the values are checked by `estimate` (one pass over the prices); an error found before it
    // goes through `first_error`, so a bad price is still reported first
    validate_prices_shape(prices, rows, cols, config)?;
    let _budget = crate::limits::reserve(&crate::limits::portfolio(
        rows,
        cols,
        config.frontier_points,
    ))
    .map_err(|e| first_error(prices, rows, cols, config, e))?;
    let n = cols;
    let (lo, hi, rf) = (config.min_weight, config.max_weight, config.risk_free_rate);
    let budgets =
        risk_budgets(method, n, config).map_err(|e| first_error(prices, rows, cols, config, e))?;

    let mom = estimate(prices, rows, n, config)?;
    crate::limits::poll()?; // the covariance (O(T·N²)) stops early when cancelled
    let (mu, sigma) = (&mom.mean, &mom.covariance);
    if let Some(i) = (0..n).find(|&i| !(sigma[i * n + i] > 1e-300)) {
        return Err(CoreError::invalid(format!(
            "the prices of asset column {i} never change (zero variance): remove that asset"
        )));
    }
    let forced_equal = (lo * n as f64 - 1.0).abs() <= 1e-12 || (hi * n as f64 - 1.0).abs() <= 1e-12;
    let need_factor = method != EqualWeight || config.frontier_points > 0;
    let want_inverse = method == MinVariance || method == MaxSharpe || config.frontier_points > 0;
    let factor = if need_factor {
        let (_l, linv) = factor_covariance(sigma, n, config, want_inverse)?;
        linv.map(|m| Factor::new(m, n))
    } else {
        None
    };

    let mut iter_total = 0usize;
    let mut status = "Solved".to_string();
    let mut min_var_w: Option<Vec<f64>> = None;
    let (weights, iterations) = match method {
        EqualWeight => (vec![1.0 / n as f64; n], 0),
        _ if forced_equal && method != RiskParity => {
            status = "Solved (equal weights forced by the bounds)".to_string();
            (vec![1.0 / n as f64; n], 0)
        }
        MinVariance => {
            let f = factor.as_ref().expect("factor");
            let cons = budget_and_bounds(n, lo, hi);
            let sol = qp::solve(f, mu, &cons, 0, on_progress)?;
            iter_total += sol.iterations;
            let mut w = sol.x;
            snap_to_bounds(&mut w, lo, hi);
            min_var_w = Some(w.clone());
            (w, sol.iterations)
        }
        MaxSharpe => {
            let (_, rmax, _) = max_return_portfolio(mu, lo, hi);
            if !(rmax - rf > 1e-12 * rmax.abs().max(rf.abs()).max(1e-300)) {
                return Err(CoreError::numerical(format!(
                    "max_sharpe needs a portfolio whose expected return is above risk_free_rate ({rf}); \
                     the best attainable within the weight bounds is {rmax:.6} (no asset's expected return \
                     is above risk_free_rate)"
                )));
            }
            let f = factor.as_ref().expect("factor");
            let m: Vec<f64> = mu.iter().map(|v| v - rf).collect();
            let mut cons = vec![Con {
                k: usize::MAX,
                a: 0.0,
                b: 0.0,
                c: 1.0,
                rhs: 1.0,
                eq: true,
            }];
            cons.extend((0..n).map(|k| Con {
                k,
                a: 1.0,
                b: -lo,
                c: 0.0,
                rhs: 0.0,
                eq: false,
            }));
            if upper_binds(n, lo, hi) {
                cons.extend((0..n).map(|k| Con {
                    k,
                    a: -1.0,
                    b: hi,
                    c: 0.0,
                    rhs: 0.0,
                    eq: false,
                }));
            }
            let sol = qp::solve(f, &m, &cons, 0, on_progress)?;
            iter_total += sol.iterations;
            let kappa: f64 = sol.x.iter().sum();
            if !(kappa > 0.0) {
                return Err(CoreError::numerical(
                    "max_sharpe: the homogenised problem returned a zero portfolio",
                ));
            }
            let mut w: Vec<f64> = sol.x.iter().map(|v| v / kappa).collect();
            snap_to_bounds(&mut w, lo, hi);
            (w, sol.iterations)
        }
        RiskParity => {
            let (x, it) = risk_parity(sigma, n, &budgets, on_progress)?;
            iter_total += it;
            let s: f64 = x.iter().sum();
            (x.iter().map(|v| v / s).collect(), it)
        }
    };
    let st = stats(&weights, mu, sigma, rf)?;

    let mut frontier_returns = Vec::new();
    let mut frontier_volatilities = Vec::new();
    if config.frontier_points > 0 {
        let f = factor.as_ref().expect("factor");
        let wmv = match min_var_w {
            Some(w) => w,
            None if forced_equal => vec![1.0 / n as f64; n],
            None => {
                let sol = qp::solve(
                    f,
                    mu,
                    &budget_and_bounds(n, lo, hi),
                    iter_total,
                    on_progress,
                )?;
                iter_total += sol.iterations;
                sol.x
            }
        };
        let rmv = dot(mu, &wmv);
        let (wmax, rmax, ties) = max_return_portfolio(mu, lo, hi);
        let k = config.frontier_points;
        let span = rmax - rmv;
        let degenerate = forced_equal || !(span > 1e-12 * rmax.abs().max(rmv.abs()).max(1e-300));
        for p in 0..k {
            let target = if degenerate {
                rmv
            } else {
                rmv + span * p as f64 / (k - 1) as f64
            };
            let w = if degenerate || p == 0 {
                wmv.clone()
            } else if p == k - 1 {
                if ties.is_empty() {
                    wmax.clone()
                } else {
                    // best face has tied returns: min variance over it
                    let mut cons = vec![Con {
                        k: usize::MAX,
                        a: 0.0,
                        b: 1.0,
                        c: 0.0,
                        rhs: 1.0,
                        eq: true,
                    }];
                    for i in 0..n {
                        if !ties.contains(&i) {
                            cons.push(Con {
                                k: i,
                                a: 1.0,
                                b: 0.0,
                                c: 0.0,
                                rhs: wmax[i],
                                eq: true,
                            });
                        }
                    }
                    for &i in &ties {
                        cons.push(Con::bound_lower(i, lo));
                        cons.push(Con::bound_upper(i, hi));
                    }
                    let sol = qp::solve(f, mu, &cons, iter_total, on_progress)?;
                    iter_total += sol.iterations;
                    sol.x
                }
            } else {
                let mut cons = budget_and_bounds(n, lo, hi);
                cons.insert(
                    1,
                    Con {
                        k: usize::MAX,
                        a: 0.0,
                        b: 0.0,
                        c: 1.0,
                        rhs: target,
                        eq: true,
                    },
                );
                let sol = qp::solve(f, mu, &cons, iter_total, on_progress)?;
                iter_total += sol.iterations;
                sol.x
            };
            let mut sw = vec![0.0; n];
            matvec(sigma, n, &w, &mut sw);
            frontier_returns.push(if degenerate || p == 0 || p == k - 1 {
                dot(mu, &w)
            } else {
                target
            });
            frontier_volatilities.push(dot(&w, &sw).max(0.0).sqrt());
        }
    }

    Ok(PortfolioResult {
        method: method.name().to_string(),
        weights,
        expected_return: st.ret,
        volatility: st.vol,
        sharpe: st.sharpe,
        risk_contributions: st.rc,
        status,
        iterations,
        frontier_returns,
        frontier_volatilities,
    }
    .no_neg_zero())
}

/// Spinu (2013): x* = argmin ½x'Σx - Σ b_i ln x_i (x > 0) satisfies x_i (Σx)_i = b_i; damped
/// Newton (the objective is self-concordant). Returns (x, iterations).
fn risk_parity(
    sigma: &[f64],
    n: usize,
    b: &[f64],
    hook: &mut dyn FnMut(usize, f64) -> bool,
) -> CoreResult<(Vec<f64>, usize)> {
    let mut x: Vec<f64> = (0..n).map(|i| b[i] / sigma[i * n + i].sqrt()).collect();
    let mut sx = vec![0.0; n];
    matvec(sigma, n, &x, &mut sx);
    let c = 1.0 / dot(&x, &sx).sqrt();
    x.iter_mut().for_each(|v| *v *= c);
    let mut h = vec![0.0; n * n];
    let mut g = vec![0.0; n];
    const MAX_IT: usize = 100;
    for it in 0..=MAX_IT {
        matvec(sigma, n, &x, &mut sx);
        let mut err = 0.0f64;
        for i in 0..n {
            g[i] = sx[i] - b[i] / x[i];
            err = err.max((x[i] * sx[i] - b[i]).abs());
        }
        let obj = 0.5 * dot(&x, &sx) - (0..n).map(|i| b[i] * x[i].ln()).sum::<f64>();
        if err <= 1e-14 {
            return Ok((x, it));
        }
        if it == MAX_IT {
            return Err(CoreError::numerical(format!(
                "risk_parity did not converge in {MAX_IT} Newton iterations (largest risk-budget error {err:.1e})"
            )));
        }
        h.copy_from_slice(sigma);
        for i in 0..n {
            h[i * n + i] += b[i] / (x[i] * x[i]);
        }
        let lh = cholesky(&h, n);
        crate::limits::poll()?;
        let lh = lh.map_err(|_| {
            CoreError::numerical(
                "risk_parity: the Newton system is not positive definite (covariance singular?)",
            )
        })?;
        let mut dx: Vec<f64> = g.iter().map(|v| -v).collect();
        chol_solve(&lh, n, &mut dx);
        let lam2 = -dot(&g, &dx);
        if !(lam2 > 1e-32) {
            // at the rounding floor: accept if the budgets are met to 1e-11
            if err <= 1e-11 {
                return Ok((x, it));
            }
            return Err(CoreError::numerical(format!(
                "risk_parity stalled with a risk-budget error of {err:.1e}"
            )));
        }
        let lam = lam2.sqrt();
        let step = if lam > 0.25 { 1.0 / (1.0 + lam) } else { 1.0 };
        for i in 0..n {
            x[i] += step * dx[i];
            if !(x[i] > 0.0) {
                return Err(CoreError::numerical(
                    "risk_parity: Newton step left the positive orthant",
                ));
            }
        }
        if !hook(it + 1, obj) {
            return Err(CoreError::Cancelled);
        }
    }
    unreachable!()
}

#[cfg(test)]
mod tests;
