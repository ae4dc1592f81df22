//! Augmented Dickey-Fuller test with a constant, lag length chosen like statsmodels' `adfuller`.
//!
//! Conventions (exactly statsmodels `adfuller(x, maxlag, regression="c", autolag)`):
//! * The regression is `Δx_t = α + γ·x_{t−1} + Σ_{i=1..p} φ_i·Δx_{t−i} + e_t`; the statistic is the
//!   t value of γ.
//! * `max_lag` `None`: `ceil(12·(n/100)^(1/4))`, capped at `n/2 − 2` (an error if that is
//!   negative); a given `max_lag` above `n/2 − 2` is an error.
//! * [`Autolag::Aic`] / [`Autolag::Bic`]: every lag 0..=max_lag is fitted on the SAME sample (the
//!   last `n − 1 − max_lag` differences) and the smallest information criterion wins (ties: the
//!   fewest lags); `aic = −2·llf + 2k`, `bic = −2·llf + ln(nobs)·k`, `k` regressors with the
//!   constant. [`Autolag::TStat`]: from `max_lag` down, the first lag whose last coefficient has
//!   |t| ≥ 1.6448536269514722 (0 if none). The chosen lag is then refitted on its own, longer
//!   sample (`n − 1 − lag` observations). [`Autolag::None`]: `lag = max_lag`.
//! * Least squares by Householder QR: the nested models of the lag search come from one
//!   factorisation of the largest one.

use crate::error::{check, CoreError, CoreResult};
use crate::linalg::{axpy, dot};
use crate::num::pz;

/// How the number of lagged differences is chosen. The default is [`Autolag::Aic`], statsmodels
/// `adfuller`'s default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Autolag {
    /// Use `max_lag` lags (for a basket's spread: 0 lags, the plain AR(1) / Dickey-Fuller test).
    None,
    #[default]
    Aic,
    Bic,
    TStat,
}

impl Autolag {
    /// Parse "none", "aic", "bic" or "t-stat" (case-insensitive; "tstat" also accepted). An empty
    /// string (an unset proto3 field) is the default, [`Autolag::Aic`].
    pub fn parse(s: &str) -> CoreResult<Self> {
        match s.to_ascii_lowercase().as_str() {
            "" => Ok(Autolag::default()),
            "none" => Ok(Autolag::None),
            "aic" => Ok(Autolag::Aic),
            "bic" => Ok(Autolag::Bic),
            "t-stat" | "tstat" => Ok(Autolag::TStat),
            _ => Err(CoreError::invalid(format!(
                "autolag must be one of none, aic, bic, t-stat, got {s:?}"
            ))),
        }
    }

    /// The canonical name ("none", "aic", "bic", "t-stat").
    pub fn name(self) -> &'static str {
        match self {
            Autolag::None => "none",
            Autolag::Aic => "aic",
            Autolag::Bic => "bic",
            Autolag::TStat => "t-stat",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdfResult {
    /// t statistic of the lagged level.
    pub statistic: f64,
    /// Number of lagged differences used.
    pub used_lag: usize,
    /// Observations of the final regression.
    pub nobs: usize,
    /// The largest lag considered.
    pub max_lag: usize,
    /// Best information criterion (AIC/BIC) or the deciding |t| (t-stat); NaN with `Autolag::None`.
    pub ic_best: f64,
}

/// Householder QR of the column-major `nobs × k` matrix `a` (overwritten), applied to `y`.
/// Returns the diagonal of R; `y` becomes Qᵀy. Errors if a column is (numerically) dependent.
pub(crate) fn householder(
    a: &mut [f64],
    nobs: usize,
    k: usize,
    y: &mut [f64],
) -> CoreResult<Vec<f64>> {
    let mut rdiag = vec![0.0; k];
    for j in 0..k {
        let (head, tail) = a.split_at_mut((j + 1) * nobs);
        let col = &mut head[j * nobs..];
        // dot/axpy with independent accumulators (the iterator sums were latency-bound)
        let norm = dot(&col[j..], &col[j..]).sqrt();
        let scale = dot(col, col).sqrt();
        // Not `norm <= …`: a NaN norm or scale must also be rejected.
        if norm.partial_cmp(&(1e-13 * scale)) != Some(std::cmp::Ordering::Greater) {
            return Err(CoreError::invalid(
                "the ADF regression is singular (the series or its differences are constant or collinear)",
            ));
        }
        let alpha = if col[j] > 0.0 { -norm } else { norm };
        col[j] -= alpha; // v = x − α e₁, stored in col[j..]
        let vnorm2 = dot(&col[j..], &col[j..]);
        let apply = |w: &mut [f64]| {
            let f = 2.0 * dot(&col[j..], &w[j..]) / vnorm2;
            axpy(-f, &col[j..], &mut w[j..]);
        };
        for c in tail.chunks_exact_mut(nobs) {
            apply(c);
        }
        apply(y);
        rdiag[j] = alpha;
    }
    Ok(rdiag)
}

/// The design of the regression with `lags` lagged differences on the last `nobs` differences:
/// columns [constant, lagged differences 1..=lags, (level)] in column-major order.
fn design(
    x: &[f64],
    dx: &[f64],
    lags: usize,
    nobs: usize,
    level_last: bool,
) -> (Vec<f64>, Vec<f64>) {
    let n1 = dx.len();
    let first = n1 - nobs; // index in dx of the first regression row
    let k = lags + 2;
    let mut a = vec![0.0; nobs * k];
    a[..nobs].fill(1.0);
    let lvl = if level_last { k - 1 } else { 1 };
    for r in 0..nobs {
        let i = first + r;
        a[lvl * nobs + r] = x[i];
        for l in 1..=lags {
            let c = if level_last { l } else { l + 1 };
            a[c * nobs + r] = dx[i - l];
        }
    }
    (a, dx[first..].to_vec())
}

/// ADF statistic of `x` with a constant (see the module documentation).
pub fn adf(x: &[f64], max_lag: Option<usize>, autolag: Autolag) -> CoreResult<AdfResult> {
    check::finite("series", x)?;
    let n = x.len();
    let cap = (n / 2) as i64 - 2;
    let max_lag = match max_lag {
        None => {
            let m = (12.0 * (n as f64 / 100.0).powf(0.25)).ceil() as i64;
            let m = m.min(cap);
            if m < 0 {
                return Err(CoreError::invalid(format!(
                    "series is too short for the ADF test: {n} points"
                )));
            }
            m as usize
        }
        Some(m) if (m as i64) > cap => {
            return Err(CoreError::invalid(format!(
                "max_lag must be at most n/2 − 2 = {cap} for a series of {n} points, got {m}"
            )))
        }
        Some(m) => m,
    };
    let dx: Vec<f64> = x.windows(2).map(|w| w[1] - w[0]).collect();
    let (used_lag, ic_best) = if autolag == Autolag::None {
        (max_lag, f64::NAN)
    } else {
        // one QR of [const, level, lags 1..=max_lag] on the common sample; prefix models nested
        let nobs = dx.len() - max_lag;
        let k = max_lag + 2;
        if nobs <= k {
            return Err(CoreError::invalid(format!(
                "series is too short for the ADF test with {max_lag} lags: {n} points"
            )));
        }
        let (mut a, mut y) = design(x, &dx, max_lag, nobs, false);
        let rdiag = householder(&mut a, nobs, k, &mut y)?;
        let tail_ssr: f64 = y[k..].iter().map(|v| v * v).sum();
        let nf = nobs as f64;
        // ssr of the model with the first kk columns: Σ_{i>=kk} (Qᵀy)_i²
        let ssr = |kk: usize| tail_ssr + y[kk..k].iter().map(|v| v * v).sum::<f64>();
        let llf = |s: f64| -nf / 2.0 * ((2.0 * std::f64::consts::PI).ln() + (s / nf).ln() + 1.0);
        match autolag {
            Autolag::Aic | Autolag::Bic => {
                let mut best = (f64::INFINITY, 0usize);
                for kk in 2..=k {
                    let pen = if autolag == Autolag::Aic {
                        2.0
                    } else {
                        nf.ln()
                    };
                    let ic = -2.0 * llf(ssr(kk)) + pen * kk as f64;
                    if ic < best.0 {
                        best = (ic, kk);
                    }
                }
                (best.1 - 2, best.0)
            }
            _ => {
                // t value of the last column of the prefix model with kk columns
                let stop = 1.6448536269514722;
                let mut chosen = (0usize, 0.0);
                for kk in (2..=k).rev() {
                    let s2 = ssr(kk) / (nf - kk as f64);
                    let t = (y[kk - 1] / rdiag[kk - 1]).abs() * rdiag[kk - 1].abs() / s2.sqrt();
                    chosen = (kk - 2, t);
                    if t >= stop {
                        break;
                    }
                }
                chosen
            }
        }
    };
    // final regression with the chosen lag on its own sample: level last, t of its coefficient
    let nobs = dx.len() - used_lag;
    let k = used_lag + 2;
    if nobs <= k {
        return Err(CoreError::invalid(format!(
            "series is too short for the ADF test with {used_lag} lags: {n} points"
        )));
    }
    let (mut a, mut y) = design(x, &dx, used_lag, nobs, true);
    let rdiag = householder(&mut a, nobs, k, &mut y)?;
    let ssr: f64 = y[k..].iter().map(|v| v * v).sum();
    let s = (ssr / (nobs - k) as f64).sqrt();
    // coefficient of the last column = y[k−1]/R[k−1,k−1]; its standard error = s/|R[k−1,k−1]|
    let statistic = (y[k - 1] / rdiag[k - 1]) / (s / rdiag[k - 1].abs());
    Ok(AdfResult {
        statistic: pz(statistic),
        used_lag,
        nobs,
        max_lag,
        ic_best: pz(ic_best),
    })
}
