//! Pairs scan: Engle-Granger cointegration of every pair of a universe, exactly as statsmodels'
//! `coint(y0, y1, trend="c")`, with Benjamini-Hochberg q-values, half-life, Hurst exponent and
//! return correlation, filters and a ranking. Parallel over pairs (rayon), cancellable, with
//! progress and partial results, and shardable (any range of the canonical pair order can be
//! scanned alone; the shards' raw rows, concatenated in order, finalise to the same result).
//!
//! Conventions:
//! * **Canonical pair order.** Pairs `(i, j)`, `i < j`, in the order (0,1), (0,2), …, (0,n−1),
//!   (1,2), …: pair number `k` ↔ `(i, j)` by [`pair_at`] / [`pair_number`]. The scan of the range
//!   `[start, end)` of that order is [`scan_range`]; [`finalize`] turns the raw rows of all
//!   tested pairs (in any order: they are sorted by pair number first) into the result.
//! * **Direction.** For the pair `(i, j)` the dependent series is asset `i` and the regressor
//!   asset `j`: `coint(prices[:, i], prices[:, j])`, i.e. the spread is `p_i − β·p_j − α`.
//! * **Engle-Granger** (statsmodels `coint`, `trend="c"`): OLS of `p_i` on `[p_j, 1]` (hedge
//!   ratio β, intercept α); the ADF test of the residuals *without* a constant
//!   (`adfuller(resid, regression="n", maxlag, autolag)`); when the OLS R² is at least
//!   `1 − 100·sqrt(eps)` the series are (almost) perfectly collinear and the statistic is −∞
//!   (p-value 0), as statsmodels does. Lags: `autolag` none → `max_lag` lags (statsmodels'
//!   default `ceil(12·(n/100)^¼)` capped at `n/2 − 1` when `max_lag` is None); aic / bic / t-stat
//!   as statsmodels' `_autolag` (all lags fitted on the same sample, ties to the fewest lags,
//!   then the chosen lag refitted on its own sample).
//! * **p-value**: MacKinnon (1994) `mackinnonp(stat, "c", N=2)` with statsmodels' tables; the
//!   critical values (1 %, 5 %, 10 %) are `mackinnoncrit(N=2, "c", nobs=n−1)` (the same for all
//!   pairs of a universe).
//! * **q-value**: Benjamini-Hochberg over every pair tested (`m` = pairs whose p-value is defined):
//!   `q_(r) = min_{s ≥ r} min(1, p_(s)·m/s)` (statsmodels `multipletests(method="fdr_bh")`).
//!   Ties of p are ranked by pair number.
//! * **half-life** of the spread: AR(1) with a constant, `e_t = c + φ·e_{t−1}`, by OLS;
//!   [`crate::num::ar1_half_life`]`(φ)` (+∞ when not mean reverting).
//! * **Hurst**: the rescaled-range (R/S) exponent of the spread's first differences,
//!   [`crate::ou::hurst_rs`] (the OU tab's estimator; NaN when undefined or fewer than 18
//!   differences). It is not a filter and costs ~10× the rest of a pair, so it is computed in
//!   [`finalize`] for the rows reported only (raw shard rows carry NaN).
//! * **correlation**: Pearson correlation of the two assets' simple returns `p_t/p_{t−1} − 1`
//!   (prices must be positive); NaN (undefined, dropped by `min_correlation`) when an asset's
//!   returns are constant to rounding (rms spread ≤ 64·eps·max(1, |r|): a deterministic accrual).
//! * A pair whose ADF regression is singular gets NaN statistic and p-value, is left out of the
//!   q-values (`m`) and of the ranking, and is counted in `n_failed`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use rayon::prelude::*;

use crate::adf::{householder, Autolag};
use crate::error::{check, CoreError, CoreResult};
use crate::num::{ar1_half_life, pz};

/// `sqrt(np.finfo(float).eps)`, statsmodels' `SQRTEPS`.
const SQRTEPS: f64 = 1.490_116_119_384_765_6e-8;

/// Pairs per parallel chunk: progress, partial results and cancel checks happen between chunks.
pub const CHUNK: usize = 512;

// ---------------------------------------------------------------------------------------------
// MacKinnon p-values and critical values (statsmodels.tsa.adfvalues), N = 2, regression "c".

const TAU_MAX_C2: f64 = 0.92;
const TAU_MIN_C2: f64 = -18.86;
const TAU_STAR_C2: f64 = -2.62;

/// Standard normal CDF, accurate to ~1e-15 (erf series for |z/√2| < 1.5, the continued fraction
/// of erfc beyond, so small tail probabilities keep their relative accuracy).
pub fn norm_cdf(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    let x = z / std::f64::consts::SQRT_2;
    if x.abs() < 1.5 {
        // erf(x) = 2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1))
        let x2 = x * x;
        let mut term = x;
        let mut sum = x;
        let mut n = 0.0;
        loop {
            n += 1.0;
            term *= -x2 / n;
            let add = term / (2.0 * n + 1.0);
            sum += add;
            if add.abs() < 1e-17 * sum.abs().max(1e-300) {
                break;
            }
            if n > 200.0 {
                break;
            }
        }
        let erf = sum * std::f64::consts::FRAC_2_SQRT_PI;
        0.5 * (1.0 + erf)
    } else {
        // erfc(|x|) by the continued fraction (modified Lentz), then reflect
        let a = x.abs();
        let erfc = erfc_cf(a);
        if x > 0.0 {
            1.0 - 0.5 * erfc
        } else {
            0.5 * erfc
        }
    }
}

/// erfc(x) for x ≥ 1.5: exp(−x²)/sqrt(π) · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))).
fn erfc_cf(x: f64) -> f64 {
    if x > 27.3 {
        return 0.0;
    }
    let tiny = 1e-300;
    // f = x + K_{k>=1} (k/2) / x
    let mut f = x;
    let mut c = x;
    let mut d = 0.0;
    for k in 1..5000 {
        let ak = k as f64 / 2.0;
        d = x + ak * d;
        if d.abs() < tiny {
            d = tiny;
        }
        c = x + ak / c;
        if c.abs() < tiny {
            c = tiny;
        }
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-x * x).exp() / (f * std::f64::consts::PI.sqrt())
}

/// statsmodels `mackinnonp(stat, regression="c", N=2)`: MacKinnon's (1994) approximate
/// asymptotic p-value of the Engle-Granger statistic of two series.
pub fn mackinnon_p_eg2(stat: f64) -> f64 {
    if stat.is_nan() {
        return f64::NAN;
    }
    if stat > TAU_MAX_C2 {
        return 1.0;
    }
    if stat < TAU_MIN_C2 {
        return 0.0;
    }
    // coefficients lowest order first, scaled as statsmodels (small_scaling, large_scaling)
    let poly = if stat <= TAU_STAR_C2 {
        let c = [2.92 * 1.0, 1.5012 * 1.0, 3.9796 * 1e-2];
        (c[2] * stat + c[1]) * stat + c[0]
    } else {
        let c = [2.1945 * 1.0, 0.64695 * 1.0, -2.9198 * 1e-1, -4.2377 * 1e-2];
        ((c[3] * stat + c[2]) * stat + c[1]) * stat + c[0]
    };
    pz(norm_cdf(poly))
}

/// statsmodels `mackinnoncrit(N=2, regression="c", nobs)`: the 1 %, 5 %, 10 % critical values
/// (MacKinnon 2010).
pub fn mackinnon_crit_eg2(nobs: f64) -> [f64; 3] {
    const T: [[f64; 4]; 3] = [
        [-3.89644, -10.9519, -33.527, 0.0],
        [-3.33613, -6.1101, -6.823, 0.0],
        [-3.04445, -4.2412, -2.720, 0.0],
    ];
    let x = 1.0 / nobs;
    let mut out = [0.0; 3];
    for (o, c) in out.iter_mut().zip(T.iter()) {
        // numpy polyval with the coefficients highest order first: Horner
        *o = ((c[3] * x + c[2]) * x + c[1]) * x + c[0];
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Canonical pair order.

/// Number of pairs of `n` assets.
pub fn pair_count(n: usize) -> usize {
    n * n.saturating_sub(1) / 2
}

/// Pair number of `(i, j)`, `i < j < n`, in the canonical order.
pub fn pair_number(i: usize, j: usize, n: usize) -> usize {
    // pairs before row i: sum_{r<i} (n-1-r) = i*(2n-i-1)/2
    i * (2 * n - i - 1) / 2 + (j - i - 1)
}

/// `(i, j)` of pair number `k` (`k < pair_count(n)`).
pub fn pair_at(k: usize, n: usize) -> (usize, usize) {
    // solve for the row by a float guess, corrected exactly
    let nf = n as f64;
    let kf = k as f64;
    let disc = (2.0 * nf - 1.0) * (2.0 * nf - 1.0) - 8.0 * kf;
    let mut i = (((2.0 * nf - 1.0) - disc.max(0.0).sqrt()) / 2.0).floor() as usize;
    i = i.min(n.saturating_sub(2));
    while i > 0 && pair_number(i, i + 1, n) > k {
        i -= 1;
    }
    while i + 2 < n && pair_number(i + 1, i + 2, n) <= k {
        i += 1;
    }
    let j = k - pair_number(i, i + 1, n) + i + 1;
    (i, j)
}

// ---------------------------------------------------------------------------------------------
// Configuration and results.

/// Options of a scan (the statistics) and of its ranking (filters, top).
#[derive(Debug, Clone, PartialEq)]
pub struct ScanConfig {
    /// Only "c" (a constant in the cointegrating regression) is supported.
    pub trend: String,
    pub autolag: Autolag,
    /// Lags of the ADF regression (`autolag` none) or the largest considered; None: statsmodels'
    /// default `ceil(12·(n/100)^¼)` capped at `n/2 − 1`.
    pub max_lag: Option<usize>,
    pub max_pvalue: Option<f64>,
    pub max_qvalue: Option<f64>,
    pub min_half_life: Option<f64>,
    pub max_half_life: Option<f64>,
    pub min_correlation: Option<f64>,
    /// Keep the best `top` rows (by p-value) after the filters.
    pub top: Option<usize>,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            trend: "c".into(),
            autolag: Autolag::None,
            max_lag: Some(0),
            max_pvalue: None,
            max_qvalue: None,
            min_half_life: None,
            max_half_life: None,
            min_correlation: None,
            top: None,
        }
    }
}

/// One tested pair (a row of the scan).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairStats {
    /// Dependent asset (column of the prices).
    pub i: usize,
    /// Regressor asset.
    pub j: usize,
    pub hedge_ratio: f64,
    pub intercept: f64,
    /// Engle-Granger ADF statistic (−∞ for collinear series, NaN if the regression failed).
    pub statistic: f64,
    pub pvalue: f64,
    /// Benjamini-Hochberg q-value (NaN in raw shard rows, set by [`finalize`]).
    pub qvalue: f64,
    pub half_life: f64,
    pub hurst: f64,
    pub correlation: f64,
    pub used_lag: usize,
}

/// The result of a scan.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanResult {
    /// The rows that pass the filters, best first (p-value, then statistic, then pair number).
    pub rows: Vec<PairStats>,
    pub n_assets: usize,
    /// Pairs tested (with a defined p-value: the `m` of the q-values).
    pub n_tested: usize,
    /// Pairs whose ADF regression failed (singular).
    pub n_failed: usize,
    /// Rows that passed the filters before `top` was applied.
    pub n_passed: usize,
    /// `mackinnoncrit(N=2, "c", nobs=n−1)`: 1 %, 5 %, 10 %.
    pub critical_values: [f64; 3],
    /// n_assets × n_assets p-values of every tested pair (symmetric, NaN on the diagonal and
    /// for pairs not tested), row-major.
    pub pvalue_matrix: Vec<f64>,
}

// ---------------------------------------------------------------------------------------------
// Validation and the prepared universe.

/// Fewest observations a scan accepts.
pub const MIN_OBS: usize = 20;

/// Checks the config against a universe of `rows` observations; returns the lag bound.
fn check_config(cfg: &ScanConfig, rows: usize) -> CoreResult<usize> {
    if cfg.trend != "c" {
        return Err(CoreError::invalid(format!(
            "trend must be \"c\" (a constant in the cointegrating regression), got {:?}",
            cfg.trend
        )));
    }
    let cap = (rows / 2) as i64 - 1;
    let max_lag = match cfg.max_lag {
        None => {
            let m = (12.0 * (rows as f64 / 100.0).powf(0.25)).ceil() as i64;
            m.min(cap).max(0) as usize
        }
        Some(m) if (m as i64) > cap => {
            return Err(CoreError::invalid(format!(
                "max_lag must be at most n/2 − 1 = {cap} for {rows} observations, got {m}"
            )))
        }
        Some(m) => m,
    };
    let prob = |name: &str, v: Option<f64>| -> CoreResult<()> {
        if let Some(v) = v {
            if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                return Err(CoreError::invalid(format!(
                    "{name} must be in [0, 1], got {v}"
                )));
            }
        }
        Ok(())
    };
    prob("max_pvalue", cfg.max_pvalue)?;
    prob("max_qvalue", cfg.max_qvalue)?;
    for (name, v) in [
        ("min_half_life", cfg.min_half_life),
        ("max_half_life", cfg.max_half_life),
    ] {
        if let Some(v) = v {
            if v.is_nan() || v < 0.0 {
                return Err(CoreError::invalid(format!(
                    "{name} must be a non-negative number, got {v}"
                )));
            }
        }
    }
    if let (Some(lo), Some(hi)) = (cfg.min_half_life, cfg.max_half_life) {
        if lo > hi {
            return Err(CoreError::invalid(format!(
                "min_half_life {lo} is above max_half_life {hi}"
            )));
        }
    }
    if let Some(c) = cfg.min_correlation {
        if !(c.is_finite() && (-1.0..=1.0).contains(&c)) {
            return Err(CoreError::invalid(format!(
                "min_correlation must be in [-1, 1], got {c}"
            )));
        }
    }
    if cfg.top == Some(0) {
        return Err(CoreError::invalid(
            "top must be at least 1 (or None for every row)",
        ));
    }
    Ok(max_lag)
}

/// Validates a universe (row-major `rows × cols`, time × assets).
pub fn check_universe(prices: &[f64], rows: usize, cols: usize) -> CoreResult<()> {
    check::finite_matrix("prices", prices, rows, cols)?;
    if cols < 2 {
        return Err(CoreError::invalid(format!(
            "prices must have at least 2 assets (columns) for a pairs scan, got {cols}"
        )));
    }
    if rows < MIN_OBS {
        return Err(CoreError::invalid(format!(
            "prices must have at least {MIN_OBS} observations (rows) for a pairs scan, got {rows}"
        )));
    }
    if let Some(k) = prices.iter().position(|&v| v <= 0.0) {
        return Err(CoreError::invalid(format!(
            "prices must be positive (returns are computed): row {}, column {} is {}",
            k / cols,
            k % cols,
            prices[k]
        )));
    }
    for c in 0..cols {
        let first = prices[c];
        if (1..rows).all(|r| prices[r * cols + c] == first) {
            return Err(CoreError::invalid(format!(
                "prices column {c} is constant: it cannot be part of a pair"
            )));
        }
    }
    Ok(())
}

/// Column-major, centred copies of the prices and the standardised returns.
struct Universe {
    rows: usize,
    /// `p − mean(p)` per column.
    centred: Vec<f64>,
    mean: Vec<f64>,
    /// Σ (p − mean)² per column.
    sxx: Vec<f64>,
    /// centred simple returns divided by their norm (rows − 1 per column).
    zret: Vec<f64>,
}

impl Universe {
    fn new(prices: &[f64], rows: usize, cols: usize) -> CoreResult<Self> {
        let mut centred = crate::limits::zeroed(rows * cols, "the centred prices")?;
        let mut zret = crate::limits::zeroed((rows - 1) * cols, "the returns")?;
        let mut mean = vec![0.0; cols];
        let mut sxx = vec![0.0; cols];
        for c in 0..cols {
            let col = &mut centred[c * rows..(c + 1) * rows];
            for (r, v) in col.iter_mut().enumerate() {
                *v = prices[r * cols + c];
            }
            let m = col.iter().sum::<f64>() / rows as f64;
            mean[c] = m;
            let mut s = 0.0;
            for v in col.iter_mut() {
                *v -= m;
                s += *v * *v;
            }
            sxx[c] = s;
            let ret = &mut zret[c * (rows - 1)..(c + 1) * (rows - 1)];
            for r in 1..rows {
                ret[r - 1] = prices[r * cols + c] / prices[(r - 1) * cols + c] - 1.0;
            }
            let rm = ret.iter().sum::<f64>() / (rows - 1) as f64;
            let big = ret.iter().fold(1.0f64, |a, v| a.max(v.abs()));
            let mut ss = 0.0;
            for v in ret.iter_mut() {
                *v -= rm;
                ss += *v * *v;
            }
            // returns constant to rounding (a deterministic accrual such as 2^(t/4)): each return
            // p_t/p_{t-1} - 1 carries a rounding error of about eps·max(1, |r|), so their spread
            // is noise and the correlation undefined: NaN (the min_correlation filter drops it)
            let tiny = (rows - 1) as f64 * (64.0 * f64::EPSILON * big).powi(2);
            let norm = if ss > tiny { ss.sqrt() } else { 0.0 };
            for v in ret.iter_mut() {
                *v = if norm > 0.0 { *v / norm } else { f64::NAN };
            }
        }
        Ok(Universe {
            rows,
            centred,
            mean,
            sxx,
            zret,
        })
    }
    fn col(&self, c: usize) -> &[f64] {
        &self.centred[c * self.rows..(c + 1) * self.rows]
    }
    fn ret(&self, c: usize) -> &[f64] {
        &self.zret[c * (self.rows - 1)..(c + 1) * (self.rows - 1)]
    }
}

// ---------------------------------------------------------------------------------------------
// The ADF test without a constant (statsmodels adfuller(regression="n")).

/// ADF statistic and used lag of `x` without deterministic terms. `max_lag` is already checked.
/// Errors only when a regression is singular.
pub fn adf_no_constant(x: &[f64], max_lag: usize, autolag: Autolag) -> CoreResult<(f64, usize)> {
    let n = x.len();
    let dx: Vec<f64> = x.windows(2).map(|w| w[1] - w[0]).collect();
    if max_lag == 0 {
        return Ok((adf0(x, &dx)?, 0));
    }
    let used = if autolag == Autolag::None {
        max_lag
    } else {
        let nobs = dx.len() - max_lag;
        let k = max_lag + 1;
        if nobs <= k {
            return Err(CoreError::invalid(format!(
                "series is too short for the ADF test with {max_lag} lags: {n} points"
            )));
        }
        // columns [level, lag 1..=max_lag] on the common sample
        let mut a = vec![0.0; nobs * k];
        let first = dx.len() - nobs;
        for r in 0..nobs {
            let i = first + r;
            a[r] = x[i];
            for l in 1..=max_lag {
                a[l * nobs + r] = dx[i - l];
            }
        }
        let mut y = dx[first..].to_vec();
        let rdiag = householder(&mut a, nobs, k, &mut y)?;
        let tail: f64 = y[k..].iter().map(|v| v * v).sum();
        let nf = nobs as f64;
        let ssr = |kk: usize| tail + y[kk..k].iter().map(|v| v * v).sum::<f64>();
        let llf = |s: f64| -nf / 2.0 * ((2.0 * std::f64::consts::PI).ln() + (s / nf).ln() + 1.0);
        match autolag {
            Autolag::Aic | Autolag::Bic => {
                let pen = if autolag == Autolag::Aic {
                    2.0
                } else {
                    nf.ln()
                };
                let mut best = (f64::INFINITY, 1usize);
                for kk in 1..=k {
                    let ic = -2.0 * llf(ssr(kk)) + pen * kk as f64;
                    if ic < best.0 {
                        best = (ic, kk);
                    }
                }
                best.1 - 1
            }
            _ => {
                let stop = 1.6448536269514722;
                let mut chosen = 0usize;
                for kk in (1..=k).rev() {
                    let s2 = ssr(kk) / (nf - kk as f64);
                    let t = (y[kk - 1] / rdiag[kk - 1]).abs() * rdiag[kk - 1].abs() / s2.sqrt();
                    chosen = kk - 1;
                    if t >= stop {
                        break;
                    }
                }
                chosen
            }
        }
    };
    if used == 0 {
        return Ok((adf0(x, &dx)?, 0));
    }
    // final regression on its own sample: columns [lags 1..=used, level], t of the level
    let nobs = dx.len() - used;
    let k = used + 1;
    if nobs <= k {
        return Err(CoreError::invalid(format!(
            "series is too short for the ADF test with {used} lags: {n} points"
        )));
    }
    let first = dx.len() - nobs;
    let mut a = vec![0.0; nobs * k];
    for r in 0..nobs {
        let i = first + r;
        for l in 1..=used {
            a[(l - 1) * nobs + r] = dx[i - l];
        }
        a[used * nobs + r] = x[i];
    }
    let mut y = dx[first..].to_vec();
    let rdiag = householder(&mut a, nobs, k, &mut y)?;
    let ssr: f64 = y[k..].iter().map(|v| v * v).sum();
    let s = (ssr / (nobs - k) as f64).sqrt();
    let stat = (y[k - 1] / rdiag[k - 1]) / (s / rdiag[k - 1].abs());
    Ok((stat, used))
}

/// Lag-0 ADF without a constant: `Δx_t = γ·x_{t−1} + e_t`, t value of γ.
fn adf0(x: &[f64], dx: &[f64]) -> CoreResult<f64> {
    let lag = &x[..x.len() - 1];
    let sxx: f64 = lag.iter().map(|v| v * v).sum();
    let sxy: f64 = lag.iter().zip(dx).map(|(a, b)| a * b).sum();
    if sxx.is_nan() || sxx <= 0.0 {
        return Err(CoreError::invalid(
            "the ADF regression is singular (the series or its differences are constant or collinear)",
        ));
    }
    let g = sxy / sxx;
    let ssr: f64 = lag
        .iter()
        .zip(dx)
        .map(|(a, b)| {
            let e = b - g * a;
            e * e
        })
        .sum();
    let nobs = dx.len();
    let s2 = ssr / (nobs - 1) as f64;
    Ok(g / (s2 / sxx).sqrt())
}

/// Half-life of `e` from the AR(1) `e_t = c + φ e_{t−1}` fitted by OLS.
fn half_life(e: &[f64]) -> f64 {
    let n = e.len() - 1;
    let (x, y) = (&e[..n], &e[1..]);
    let mx = x.iter().sum::<f64>() / n as f64;
    let my = y.iter().sum::<f64>() / n as f64;
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxx += (a - mx) * (a - mx);
        sxy += (a - mx) * (b - my);
    }
    if sxx.is_nan() || sxx <= 0.0 {
        return f64::INFINITY;
    }
    ar1_half_life(sxy / sxx)
}

/// The statistics of one pair; `spread` is a work buffer of `rows` values.
fn pair_stats(
    u: &Universe,
    i: usize,
    j: usize,
    max_lag: usize,
    autolag: Autolag,
    spread: &mut Vec<f64>,
) -> PairStats {
    let (y, x) = (u.col(i), u.col(j));
    let sxy: f64 = y.iter().zip(x).map(|(a, b)| a * b).sum();
    let beta = sxy / u.sxx[j];
    let alpha = u.mean[i] - beta * u.mean[j];
    spread.clear();
    spread.extend(y.iter().zip(x).map(|(a, b)| a - beta * b));
    let ssr: f64 = spread.iter().map(|v| v * v).sum();
    let rsq = 1.0 - ssr / u.sxx[i];
    let (statistic, used_lag) = if rsq < 1.0 - 100.0 * SQRTEPS {
        match adf_no_constant(spread, max_lag, autolag) {
            Ok(r) => r,
            Err(_) => (f64::NAN, max_lag),
        }
    } else {
        (f64::NEG_INFINITY, 0)
    };
    let hl = half_life(spread);
    let (ri, rj) = (u.ret(i), u.ret(j));
    let corr: f64 = ri.iter().zip(rj).map(|(a, b)| a * b).sum();
    PairStats {
        i,
        j,
        hedge_ratio: pz(beta),
        intercept: pz(alpha),
        statistic: pz(statistic),
        pvalue: mackinnon_p_eg2(statistic),
        qvalue: f64::NAN,
        half_life: pz(hl),
        hurst: f64::NAN,
        correlation: pz(corr.clamp(-1.0, 1.0)),
        used_lag,
    }
}

// ---------------------------------------------------------------------------------------------
// Scans.

/// Checks a shard `[start, end)` of the canonical order of `cols` assets.
pub fn check_range(start: usize, end: usize, cols: usize) -> CoreResult<()> {
    let total = pair_count(cols);
    if start > end || end > total {
        return Err(CoreError::invalid(format!(
            "pair range [{start}, {end}) is not within the {total} pairs of {cols} assets"
        )));
    }
    Ok(())
}

/// Raw rows (q-values NaN) of the pairs `start..end` of the canonical order, in that order.
/// `on_chunk(done, total, rows)` is called on the calling thread after every chunk of
/// [`CHUNK`] pairs with the chunk's rows; returning false cancels. The cancel flag of the
/// calling thread ([`crate::limits::with_cancel`]) is polled by every worker.
pub fn scan_range(
    prices: &[f64],
    rows: usize,
    cols: usize,
    cfg: &ScanConfig,
    start: usize,
    end: usize,
    on_chunk: &mut dyn FnMut(usize, usize, &[PairStats]) -> bool,
) -> CoreResult<Vec<PairStats>> {
    check_universe(prices, rows, cols)?;
    let max_lag = check_config(cfg, rows)?;
    check_range(start, end, cols)?;
    let _budget = crate::limits::reserve(&crate::limits::pairs_scan(rows, cols, end - start))?;
    let u = Universe::new(prices, rows, cols)?;
    let mut out: Vec<PairStats> = Vec::new();
    out.try_reserve_exact(end - start).map_err(|_| {
        CoreError::ResourceExhausted("out of memory: cannot allocate the scan's rows".into())
    })?;
    let flag = crate::limits::current_cancel();
    let stop = AtomicBool::new(false);
    let cancelled = |f: &Option<Arc<AtomicBool>>| {
        stop.load(Ordering::Relaxed) || f.as_ref().is_some_and(|f| f.load(Ordering::Relaxed))
    };
    let total = end - start;
    let done = AtomicUsize::new(0);
    let mut k = start;
    while k < end {
        let hi = (k + CHUNK).min(end);
        let chunk: Vec<PairStats> = (k..hi)
            .into_par_iter()
            .map_init(
                || Vec::with_capacity(rows),
                |buf, p| {
                    if cancelled(&flag) {
                        return None;
                    }
                    let (i, j) = pair_at(p, cols);
                    Some(pair_stats(&u, i, j, max_lag, cfg.autolag, buf))
                },
            )
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default();
        if cancelled(&flag) || chunk.len() != hi - k {
            return Err(CoreError::Cancelled);
        }
        let d = done.fetch_add(hi - k, Ordering::Relaxed) + (hi - k);
        if !on_chunk(d, total, &chunk) {
            stop.store(true, Ordering::Relaxed);
            return Err(CoreError::Cancelled);
        }
        out.extend_from_slice(&chunk);
        k = hi;
    }
    Ok(out)
}

/// Benjamini-Hochberg q-values of `p` (NaN stays NaN and is not counted), ties ranked by index.
pub fn bh_qvalues(p: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..p.len()).filter(|&k| !p[k].is_nan()).collect();
    idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]).then(a.cmp(&b)));
    let m = idx.len() as f64;
    let mut q = vec![f64::NAN; p.len()];
    let mut running = f64::INFINITY;
    for (r, &k) in idx.iter().enumerate().rev() {
        let v = (p[k] * m / (r + 1) as f64).min(1.0);
        running = running.min(v);
        q[k] = pz(running);
    }
    q
}

/// R/S Hurst exponent of the spread `p_i − β·p_j − α` of a row.
fn row_hurst(prices: &[f64], rows: usize, cols: usize, r: &PairStats) -> f64 {
    let s: Vec<f64> = (0..rows)
        .map(|t| prices[t * cols + r.i] - r.hedge_ratio * prices[t * cols + r.j] - r.intercept)
        .collect();
    let incr: Vec<f64> = s.windows(2).map(|w| w[1] - w[0]).collect();
    // the spread's rounding level: that of the prices it is computed from
    let level = (0..rows).fold(0.0f64, |a, t| {
        a.max(prices[t * cols + r.i].abs() + (r.hedge_ratio * prices[t * cols + r.j]).abs())
    }) + r.intercept.abs();
    crate::ou::hurst_rs_at(&incr, level).unwrap_or(f64::NAN)
}

/// The result from the raw rows of every tested pair (any order; sorted by pair number here)
/// and the universe they came from: q-values, filters, ranking, top, p-value matrix, and the
/// Hurst exponent of the rows reported.
pub fn finalize(
    mut raw: Vec<PairStats>,
    prices: &[f64],
    rows: usize,
    cols: usize,
    cfg: &ScanConfig,
) -> CoreResult<ScanResult> {
    check::finite_matrix("prices", prices, rows, cols)?;
    if rows < MIN_OBS || cols < 2 {
        return Err(CoreError::invalid(format!(
            "a pairs scan needs at least {MIN_OBS} observations and 2 assets, got {rows} × {cols}"
        )));
    }
    check_config(cfg, rows)?;
    for r in &raw {
        if r.i >= r.j || r.j >= cols {
            return Err(CoreError::invalid(format!(
                "pair ({}, {}) is not a pair of {cols} assets with i < j",
                r.i, r.j
            )));
        }
    }
    raw.sort_by_key(|r| pair_number(r.i, r.j, cols));
    if raw.windows(2).any(|w| (w[0].i, w[0].j) == (w[1].i, w[1].j)) {
        return Err(CoreError::invalid(
            "the scan's rows contain the same pair twice (overlapping shards?)",
        ));
    }
    let p: Vec<f64> = raw.iter().map(|r| r.pvalue).collect();
    let q = bh_qvalues(&p);
    let mut matrix = vec![f64::NAN; cols * cols];
    for (r, &qv) in raw.iter_mut().zip(&q) {
        r.qvalue = qv;
        matrix[r.i * cols + r.j] = r.pvalue;
        matrix[r.j * cols + r.i] = r.pvalue;
    }
    let n_failed = raw.iter().filter(|r| r.pvalue.is_nan()).count();
    let n_tested = raw.len() - n_failed;
    let mut kept: Vec<PairStats> = raw
        .into_iter()
        .filter(|r| {
            !r.pvalue.is_nan()
                && cfg.max_pvalue.is_none_or(|m| r.pvalue <= m)
                && cfg.max_qvalue.is_none_or(|m| r.qvalue <= m)
                && cfg.min_half_life.is_none_or(|m| r.half_life >= m)
                && cfg.max_half_life.is_none_or(|m| r.half_life <= m)
                && cfg.min_correlation.is_none_or(|m| r.correlation >= m)
        })
        .collect();
    kept.sort_by(|a, b| {
        a.pvalue
            .total_cmp(&b.pvalue)
            .then(a.statistic.total_cmp(&b.statistic))
            .then(pair_number(a.i, a.j, cols).cmp(&pair_number(b.i, b.j, cols)))
    });
    let n_passed = kept.len();
    if let Some(t) = cfg.top {
        kept.truncate(t);
    }
    let flag = crate::limits::current_cancel();
    let hursts: Vec<Option<f64>> = kept
        .par_iter()
        .map(|r| {
            if flag.as_ref().is_some_and(|f| f.load(Ordering::Relaxed)) {
                None
            } else {
                Some(pz(row_hurst(prices, rows, cols, r)))
            }
        })
        .collect();
    for (r, h) in kept.iter_mut().zip(hursts) {
        r.hurst = h.ok_or(CoreError::Cancelled)?;
    }
    Ok(ScanResult {
        rows: kept,
        n_assets: cols,
        n_tested,
        n_failed,
        n_passed,
        critical_values: mackinnon_crit_eg2((rows - 1) as f64),
        pvalue_matrix: matrix,
    })
}

/// Scan of every pair of the universe (see the module documentation).
pub fn scan_pairs(
    prices: &[f64],
    rows: usize,
    cols: usize,
    cfg: &ScanConfig,
    on_chunk: &mut dyn FnMut(usize, usize, &[PairStats]) -> bool,
) -> CoreResult<ScanResult> {
    check_universe(prices, rows, cols)?;
    check_config(cfg, rows)?;
    let raw = scan_range(prices, rows, cols, cfg, 0, pair_count(cols), on_chunk)?;
    finalize(raw, prices, rows, cols, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pair_order_round_trips() {
        for n in 2..40 {
            let mut k = 0;
            for i in 0..n {
                for j in i + 1..n {
                    assert_eq!(pair_number(i, j, n), k);
                    assert_eq!(pair_at(k, n), (i, j), "n {n} k {k}");
                    k += 1;
                }
            }
            assert_eq!(k, pair_count(n));
        }
        let n = 5000;
        for k in [0, 1, 4998, 4999, 12_497_499, pair_count(n) - 1] {
            let (i, j) = pair_at(k, n);
            assert_eq!(pair_number(i, j, n), k);
        }
    }

    #[test]
    fn normal_cdf_known_values() {
        assert!((norm_cdf(0.0) - 0.5).abs() < 1e-16);
        assert!((norm_cdf(1.959963984540054) - 0.975).abs() < 1e-15);
        assert!((norm_cdf(-3.090232306167813) - 0.001).abs() < 1e-17);
        assert!((norm_cdf(-1.0) - 0.15865525393145707).abs() < 1e-16);
        assert!((norm_cdf(2.0) - 0.9772498680518208).abs() < 1e-15);
        assert!((norm_cdf(-5.0) - 2.866515718791939e-07).abs() < 1e-20);
        assert!((norm_cdf(4.0) - 0.9999683287581669).abs() < 1e-15);
    }

    #[test]
    fn bh_matches_hand_computation() {
        let q = bh_qvalues(&[0.01, 0.04, 0.03, f64::NAN, 0.5]);
        // m = 4: sorted 0.01, 0.03, 0.04, 0.5 -> 0.04, 0.0533, 0.0533, 0.5
        assert!((q[0] - 0.04).abs() < 1e-15);
        assert!((q[2] - 0.04 * 4.0 / 3.0).abs() < 1e-15);
        assert!((q[1] - 0.04 * 4.0 / 3.0).abs() < 1e-15);
        assert!(q[3].is_nan());
        assert!((q[4] - 0.5).abs() < 1e-15);
    }

    fn universe(rows: usize, cols: usize, seed: u64) -> Vec<f64> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let mut rnd = move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        };
        let mut p = vec![0.0; rows * cols];
        let mut level = vec![100.0; cols];
        for r in 0..rows {
            for c in 0..cols {
                level[c] += rnd();
                p[r * cols + c] = level[c];
            }
        }
        p
    }

    #[test]
    fn shards_merge_to_the_whole_scan() {
        let (rows, cols) = (120, 9);
        let p = universe(rows, cols, 3);
        let cfg = ScanConfig {
            autolag: Autolag::Aic,
            max_lag: None,
            top: Some(10),
            ..Default::default()
        };
        let whole = scan_pairs(&p, rows, cols, &cfg, &mut |_, _, _| true).unwrap();
        let mut raw = Vec::new();
        for (a, b) in [(20, 36), (0, 7), (7, 20)] {
            raw.extend(scan_range(&p, rows, cols, &cfg, a, b, &mut |_, _, _| true).unwrap());
        }
        let merged = finalize(raw, &p, rows, cols, &cfg).unwrap();
        assert_eq!(whole.rows, merged.rows);
        let bits = |m: &[f64]| m.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&whole.pvalue_matrix), bits(&merged.pvalue_matrix));
        assert_eq!(
            (whole.n_tested, whole.n_passed),
            (merged.n_tested, merged.n_passed)
        );
        assert_eq!(whole.n_tested, 36);
        assert_eq!(whole.rows.len(), 10);
    }

    #[test]
    fn errors_name_the_problem() {
        let p = universe(30, 3, 1);
        let e = scan_pairs(
            &p,
            30,
            3,
            &ScanConfig {
                trend: "ct".into(),
                ..Default::default()
            },
            &mut |_, _, _| true,
        );
        assert!(e.unwrap_err().to_string().contains("trend"));
        let e = scan_range(&p, 30, 3, &ScanConfig::default(), 2, 9, &mut |_, _, _| true);
        assert!(e.unwrap_err().to_string().contains("pair range"));
        let mut q = p.clone();
        q[4] = -1.0;
        let e = scan_pairs(&q, 30, 3, &ScanConfig::default(), &mut |_, _, _| true);
        assert!(e.unwrap_err().to_string().contains("positive"));
        let e = scan_pairs(
            &p,
            30,
            3,
            &ScanConfig {
                max_lag: Some(15),
                ..Default::default()
            },
            &mut |_, _, _| true,
        );
        assert!(e.unwrap_err().to_string().contains("max_lag"));
        // cancel from the chunk hook
        let e = scan_pairs(&p, 30, 3, &ScanConfig::default(), &mut |_, _, _| false);
        assert_eq!(e.unwrap_err(), CoreError::Cancelled);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn pvalues_are_probabilities_and_q_at_least_p(seed in 0u64..1000, cols in 2usize..6) {
            let rows = 60;
            let p = universe(rows, cols, seed);
            let r = scan_pairs(&p, rows, cols, &ScanConfig::default(), &mut |_, _, _| true).unwrap();
            prop_assert_eq!(r.n_tested + r.n_failed, pair_count(cols));
            for row in &r.rows {
                prop_assert!((0.0..=1.0).contains(&row.pvalue));
                prop_assert!(row.qvalue >= row.pvalue - 1e-15);
                prop_assert!(row.qvalue <= 1.0);
            }
        }
    }
}
