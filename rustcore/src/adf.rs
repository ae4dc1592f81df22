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
        // the nested models [const, level, lags 1..=l] on the common sample: from the Gram
        // matrix of the lag design when that is well conditioned and the choice is not a
        // near-tie, else (and with the same result otherwise) from one QR of the largest model
        let nobs = dx.len() - max_lag;
        let k = max_lag + 2;
        if nobs <= k {
            return Err(CoreError::invalid(format!(
                "series is too short for the ADF test with {max_lag} lags: {n} points"
            )));
        }
        match gram_lag_search(x, &dx, max_lag, nobs, autolag) {
            Some(r) => r,
            None => qr_lag_search(x, &dx, max_lag, nobs, autolag)?,
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

/// Lag choice (lag, best criterion) from one Householder QR of the largest model
/// `[const, level, lags 1..=max_lag]` on the common sample (prefix models are nested).
fn qr_lag_search(
    x: &[f64],
    dx: &[f64],
    max_lag: usize,
    nobs: usize,
    autolag: Autolag,
) -> CoreResult<(usize, f64)> {
    // one QR of [const, level, lags 1..=max_lag] on the common sample; prefix models nested
    let k = max_lag + 2;
    let (mut a, mut y) = design(x, dx, max_lag, nobs, false);
    let rdiag = householder(&mut a, nobs, k, &mut y)?;
    let tail_ssr: f64 = y[k..].iter().map(|v| v * v).sum();
    let nf = nobs as f64;
    // ssr of the model with the first kk columns: Σ_{i>=kk} (Qᵀy)_i²
    let ssr = |kk: usize| tail_ssr + y[kk..k].iter().map(|v| v * v).sum::<f64>();
    let llf = |s: f64| -nf / 2.0 * ((2.0 * std::f64::consts::PI).ln() + (s / nf).ln() + 1.0);
    Ok(match autolag {
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
    })
}

/// The lag search of [`qr_lag_search`] from the Gram matrix of the centred lag design (the
/// constant projected out): the lagged differences are shifts of one series, so their cross
/// products are sliding sums (`O(nobs · max_lag)` for the whole matrix instead of a QR's
/// `O(nobs · max_lag²)`); one Cholesky factorisation of `[level, lags]` then gives every nested
/// model's SSR (`‖y‖² − ‖L⁻¹Xᵀy‖²` over the prefix). `None` (use the QR) when a pivot shows near
/// collinearity, an SSR is not clearly positive, or the decision is within the rounding of the
/// normal equations (a near-tie of the criterion, or a |t| near the 1.645 threshold), so the
/// chosen lag is the QR's.
#[allow(clippy::neg_cmp_op_on_partial_ord)] // `!(a > b)` also rejects NaN
fn gram_lag_search(
    x: &[f64],
    dx: &[f64],
    max_lag: usize,
    nobs: usize,
    autolag: Autolag,
) -> Option<(usize, f64)> {
    let l = max_lag;
    let first = l; // index in dx of the first regression row
    let sum = |v: &[f64]| v.iter().sum::<f64>();
    // the differences shifted by their mean (the centred Gram does not change; window means
    // become small, so centring by subtraction loses nothing)
    let mu = sum(dx) / dx.len() as f64;
    let d: Vec<f64> = dx.iter().map(|v| v - mu).collect();
    let mut xs: Vec<f64> = x[first..first + nobs].to_vec();
    let mx = sum(&xs) / nobs as f64;
    xs.iter_mut().for_each(|v| *v -= mx);
    let sxs = sum(&xs);
    let nf = nobs as f64;
    // window of lag j: d[first − j .. first − j + nobs]; its mean
    let mut wm = vec![0.0; l + 1];
    wm[0] = sum(&d[first..first + nobs]);
    for j in 1..=l {
        wm[j] = wm[j - 1] + d[first - j] - d[first - j + nobs];
    }
    wm.iter_mut().for_each(|v| *v /= nf);
    // raw[j][j + e] = Σ_i d[i]·d[i − e] over the window of lag j (sliding from j = 0)
    let m = l + 1;
    let mut raw = vec![0.0; m * m];
    for e in 0..=l {
        raw[e] = dot(&d[first..first + nobs], &d[first - e..first - e + nobs]);
    }
    for j in 1..=l {
        for e in 0..=(l - j) {
            let add = d[first - j] * d[first - j - e];
            let sub = d[first - j + nobs] * d[first - j - e + nobs];
            raw[j * m + j + e] = raw[(j - 1) * m + j - 1 + e] + add - sub;
        }
    }
    // A = centred Gram of [level, lag 1, …, lag l]; b = Aᵀy (y = lag 0); yy = ‖y − ȳ‖²
    let cg = |a: usize, b: usize| {
        let (a, b) = if a <= b { (a, b) } else { (b, a) };
        raw[a * m + b] - nf * wm[a] * wm[b]
    };
    let mut a = vec![0.0; m * m];
    let mut b = vec![0.0; m];
    a[0] = dot(&xs, &xs);
    b[0] = dot(&xs, &d[first..first + nobs]) - wm[0] * sxs;
    for j in 1..=l {
        let lx = dot(&xs, &d[first - j..first - j + nobs]) - wm[j] * sxs;
        a[j] = lx;
        a[j * m] = lx;
        b[j] = cg(0, j);
        for i in 1..=l {
            a[j * m + i] = cg(i, j);
        }
    }
    let yy = cg(0, 0);
    // Cholesky A = LLᵀ (row-major lower), z = L⁻¹b
    let mut lo = vec![0.0; m * m];
    let mut z = vec![0.0; m];
    let mut min_ratio = 1.0f64;
    for i in 0..m {
        for j in 0..=i {
            let mut s = a[i * m + j];
            for q in 0..j {
                s -= lo[i * m + q] * lo[j * m + q];
            }
            if i == j {
                let ratio = s / a[i * m + i];
                if !(ratio > 1e-8) {
                    return None;
                }
                min_ratio = min_ratio.min(ratio);
                lo[i * m + i] = s.sqrt();
            } else {
                lo[i * m + j] = s / lo[j * m + j];
            }
        }
        let mut s = b[i];
        for q in 0..i {
            s -= lo[i * m + q] * z[q];
        }
        z[i] = s / lo[i * m + i];
    }
    // ssr[s] = SSR of the model with the first s regressors (s = 1: level only)
    let mut ssr = vec![0.0; m + 1];
    ssr[0] = yy;
    for i in 0..m {
        ssr[i + 1] = ssr[i] - z[i] * z[i];
    }
    let ssr_min = ssr[m];
    if !(ssr_min > 1e-6 * yy) || !yy.is_finite() {
        return None;
    }
    // relative rounding of an SSR through the normal equations, with a wide safety factor
    let err = 1e-11 * (yy / ssr_min) / min_ratio;
    let llf = |s: f64| -nf / 2.0 * ((2.0 * std::f64::consts::PI).ln() + (s / nf).ln() + 1.0);
    match autolag {
        Autolag::Aic | Autolag::Bic => {
            let pen = if autolag == Autolag::Aic {
                2.0
            } else {
                nf.ln()
            };
            let ic: Vec<f64> = (1..=m)
                .map(|s| -2.0 * llf(ssr[s]) + pen * (s + 1) as f64)
                .collect();
            let mut best = 0;
            for (i, &v) in ic.iter().enumerate() {
                if v < ic[best] {
                    best = i;
                }
            }
            let margin = 4.0 * nf * err;
            if ic
                .iter()
                .enumerate()
                .any(|(i, &v)| i != best && v - ic[best] <= margin)
            {
                return None;
            }
            Some((best, ic[best]))
        }
        _ => {
            let stop = 1.6448536269514722;
            let mut chosen = (0usize, 0.0);
            for s in (1..=m).rev() {
                let s2 = ssr[s] / (nf - (s + 1) as f64);
                let t = z[s - 1].abs() / s2.sqrt();
                if (t - stop).abs() <= 4.0 * err * stop.max(t) {
                    return None;
                }
                chosen = (s - 1, t);
                if t >= stop {
                    break;
                }
            }
            Some(chosen)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeded AR(2) / random-walk series of length n (a small LCG + Box-Muller).
    fn series(n: usize, seed: u64, phi1: f64, phi2: f64, level: f64) -> Vec<f64> {
        let mut s = seed
            .wrapping_mul(2862933555777941757)
            .wrapping_add(3037000493);
        let mut u = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let mut e = (0.0, 0.0);
        let mut x = Vec::with_capacity(n);
        let mut lvl = level;
        for _ in 0..n {
            let z = (-2.0 * u().ln()).sqrt() * (2.0 * std::f64::consts::PI * u()).cos();
            let v = phi1 * e.0 + phi2 * e.1 + z;
            e = (v, e.0);
            lvl += 0.01 * z;
            x.push(lvl + v);
        }
        x
    }

    /// The Gram lag search (sliding cross products + Cholesky) chooses the QR's lag on every
    /// series it does not hand back to the QR, with the same criterion to rounding, and it
    /// handles (does not hand back) the typical well-conditioned series.
    #[test]
    fn gram_lag_search_agrees_with_qr() {
        let mut handled = 0;
        let mut total = 0;
        for seed in 0..60u64 {
            let n = [60, 300, 2000][seed as usize % 3];
            let (phi1, phi2) =
                [(0.5, 0.2), (-0.3, 0.0), (0.9, -0.5), (0.0, 0.0)][seed as usize % 4];
            let level = [0.0, 100.0, 1e4][seed as usize % 3];
            let x = series(n, seed, phi1, phi2, level);
            let dx: Vec<f64> = x.windows(2).map(|w| w[1] - w[0]).collect();
            let max_lag = (12.0 * (n as f64 / 100.0).powf(0.25)).ceil() as usize;
            let max_lag = max_lag.min(n / 2 - 2);
            let nobs = dx.len() - max_lag;
            for autolag in [Autolag::Aic, Autolag::Bic, Autolag::TStat] {
                total += 1;
                let q = qr_lag_search(&x, &dx, max_lag, nobs, autolag).unwrap();
                if let Some(g) = gram_lag_search(&x, &dx, max_lag, nobs, autolag) {
                    handled += 1;
                    assert_eq!(g.0, q.0, "seed {seed} n {n} {autolag:?}");
                    let tol = 1e-9 * q.1.abs().max(1.0);
                    assert!(
                        (g.1 - q.1).abs() <= tol,
                        "seed {seed} {autolag:?}: {g:?} vs {q:?}"
                    );
                }
            }
        }
        assert!(
            handled * 10 >= total * 9,
            "only {handled} of {total} handled by the Gram path"
        );
    }

    /// Exactly periodic differences make the lagged regression singular: the Gram path hands
    /// it back, and the QR's error (the spread's fallback to 0 lags) is kept.
    #[test]
    fn singular_lag_design_is_left_to_the_qr() {
        let x: Vec<f64> = (0..200)
            .map(|t| [0.0, 1.0, 3.0, 2.0][t % 4] + t as f64)
            .collect();
        let dx: Vec<f64> = x.windows(2).map(|w| w[1] - w[0]).collect();
        let max_lag = 14;
        let nobs = dx.len() - max_lag;
        assert!(gram_lag_search(&x, &dx, max_lag, nobs, Autolag::Aic).is_none());
        assert!(adf(&x, None, Autolag::Aic).is_err());
    }
}
