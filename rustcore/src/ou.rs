//! Ornstein–Uhlenbeck fit of a price / spread series, and the Hurst exponent.
//!
//! # Model and conventions
//! The continuous-time model is `dX = κ(θ − X) dt + σ dW`. Sampled every `dt` it is the AR(1)
//! `x[t+1] = a + b·x[t] + e[t]` with `b = exp(−κ·dt)`, `a = θ(1 − b)` and
//! `Var(e) = σ²(1 − b²)/(2κ)`. [`fit_ou`] estimates `a, b` by ordinary least squares of `x[1..]` on
//! `(1, x[..n−1])` (exactly `sm.OLS(x[1:], sm.add_constant(x[:-1]))`) and maps them back:
//!
//! * `dt` is the length of one bar in the time unit you want `κ` and `σ` in (default 1.0: per bar;
//!   e.g. `1/252` for daily bars and yearly units). `κ = −ln(b)/dt`, `θ = a/(1 − b)`,
//!   `σ = residual_std · sqrt(2κ/(1 − b²))` (so `σ²` is the variance per unit of time).
//! * `half_life_bars = ln 2 / (−ln b)` is in bars whatever `dt` is (it equals `ln2/κ / dt`;
//!   [`crate::num::ar1_half_life`], the convention shared with the sparse baskets);
//!   `half_life_days = half_life_bars / bars_per_day` (`bars_per_day` = 1 for daily bars,
//!   390 for 1-minute bars of a US session, …).
//! * `residual_std = sqrt(SSR/(m − 2))` with `m = n − 1` regression pairs (statsmodels' `scale`).
//!   `se_a`, `se_b` are the classical OLS standard errors with that variance (statsmodels' `bse`);
//!   `r_squared` is the centred R² of this LEVEL regression (statsmodels' `rsquared`; near 1 for
//!   any persistent series), `r_squared_delta` the centred R² of the same fit written on the
//!   increments, `Δx[t+1] = a + (b − 1)·x[t]` (statsmodels' `rsquared` of
//!   `OLS(diff(x), add_constant(x[:-1]))`; 1.0 when the residuals are all zero).
//! * Delta method: `se_kappa = se_b / (b·dt)`, `se_half_life = se_b · ln2 / (b·(ln b)²)` (in bars).
//! * `b ≤ 0` or `b ≥ 1` is not a mean-reverting OU: the fit is still returned with
//!   `mean_reverting = false`, `half_life_bars = half_life_days = se_half_life = +∞`, `sigma = NaN`
//!   (undefined), `kappa = −ln(b)/dt` and `se_kappa` when `b > 0` (so `κ ≤ 0` shows the explosive
//!   rate), NaN when `b ≤ 0`; `theta = a/(1 − b)` (±∞ if `b == 1` exactly). `a, b`, their standard
//!   errors, `r_squared` and `residual_std` are always the plain OLS numbers.
//! * `hurst` is the classic rescaled-range (R/S) Hurst exponent of the first differences of the
//!   series (see [`hurst_rs`]): ≈ 0.5 for a random walk, < 0.5 for mean reversion, > 0.5 for trends.
//!   It is NaN only when R/S is undefined (e.g. the increments are constant in every window).
//!   [`hurst_dfa`] (DFA-1) is provided separately and is not part of [`OuFit`].
//! * `n` is the number of points of the series (the regression uses `n − 1` pairs).
//! * A constant series (or one constant but for its first or last point), or one whose variation
//!   is at the rounding level of its values, is rejected with an error. Signed zeros in the result
//!   are normalised to +0.0 (so both transports agree bit for bit).

use crate::error::{check, CoreError, CoreResult};
use crate::num::{ar1_half_life, pz};

/// Fewest points [`fit_ou`] accepts (19 increments give at least two R/S window sizes).
pub const MIN_OU_POINTS: usize = 20;
/// Smallest window of the Hurst estimators.
pub const HURST_MIN_WINDOW: usize = 8;
/// Number of log-spaced window sizes tried (before removing duplicates after rounding).
pub const HURST_N_SIZES: usize = 20;

#[derive(Debug, Clone, PartialEq)]
pub struct OuConfig {
    /// Length of one bar in the time unit of `kappa` and `sigma` (1.0 = per bar).
    pub dt: f64,
    /// Bars per day, only used for `half_life_days` (1.0 for daily bars).
    pub bars_per_day: f64,
}

impl Default for OuConfig {
    fn default() -> Self {
        OuConfig {
            dt: 1.0,
            bars_per_day: 1.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OuFit {
    /// AR(1) intercept.
    pub a: f64,
    /// AR(1) slope.
    pub b: f64,
    /// Mean-reversion speed per unit of time (`−ln b / dt`).
    pub kappa: f64,
    /// Long-run mean (`a / (1 − b)`).
    pub theta: f64,
    /// Continuous-time volatility per sqrt(unit of time).
    pub sigma: f64,
    pub half_life_bars: f64,
    pub half_life_days: f64,
    pub se_a: f64,
    pub se_b: f64,
    pub se_kappa: f64,
    /// Delta-method standard error of `half_life_bars` (in bars).
    pub se_half_life: f64,
    /// R² of the LEVEL regression `x[t+1] = a + b·x[t]` (statsmodels' `rsquared` of that OLS):
    /// close to 1 for any persistent series, so it says little about mean reversion.
    pub r_squared: f64,
    /// R² of the equivalent INCREMENT regression `Δx[t+1] = a + (b − 1)·x[t]` (same fit, same
    /// residuals, centred on the increments): how much of the next move the level explains.
    /// 1.0 when the residuals are all zero.
    pub r_squared_delta: f64,
    /// `sqrt(SSR / (n − 3))`, i.e. the residual standard deviation with `m − 2` degrees of freedom.
    pub residual_std: f64,
    /// `0 < b < 1`.
    pub mean_reverting: bool,
    /// R/S Hurst exponent of the first differences (NaN if undefined).
    pub hurst: f64,
    /// Number of points of the series.
    pub n: usize,
}

/// Fit an Ornstein–Uhlenbeck process to `series` by AR(1) OLS (see the module documentation).
pub fn fit_ou(series: &[f64], config: &OuConfig) -> CoreResult<OuFit> {
    check::finite("series", series)?;
    check::positive("dt", config.dt)?;
    check::positive("bars_per_day", config.bars_per_day)?;
    let n = series.len();
    if n < MIN_OU_POINTS {
        return Err(CoreError::invalid(format!(
            "series must have at least {MIN_OU_POINTS} points for an OU fit, got {n}"
        )));
    }
    let _budget = crate::limits::reserve(&crate::limits::ou(n))?;
    let x = &series[..n - 1];
    let y = &series[1..];
    let m = (n - 1) as f64;
    if x.iter().all(|&v| v == x[0]) {
        return Err(CoreError::invalid(
            "series is constant (except possibly its last point): the AR(1) regression is singular",
        ));
    }
    if y.iter().all(|&v| v == y[0]) {
        return Err(CoreError::invalid(
            "series is constant after its first point: the AR(1) regression is degenerate",
        ));
    }

    // corrected two-pass means (the plain mean of equal values near 1e9 is off by rounding)
    let mean = |v: &[f64]| {
        let m0 = v.iter().sum::<f64>() / m;
        m0 + v.iter().map(|&t| t - m0).sum::<f64>() / m
    };
    let (mx, my) = (mean(x), mean(y));
    let (mut sxx, mut sxy, mut syy, mut sdd) = (0.0, 0.0, 0.0, 0.0);
    for (&xi, &yi) in x.iter().zip(y) {
        let dx = xi - mx;
        let dy = yi - my;
        sxx += dx * dx;
        sxy += dx * dy;
        syy += dy * dy;
        sdd += (dy - dx) * (dy - dx); // increments about their mean (my − mx)
    }
    // variation at the rounding level of the values: the regression means nothing
    let scale = series.iter().fold(0.0f64, |a, &v| a.max(v.abs()));
    let tiny = m * (64.0 * f64::EPSILON * scale).powi(2);
    if sxx <= tiny || syy <= tiny {
        return Err(CoreError::invalid(format!(
            "series is nearly constant: its variation is at the rounding level of its values (about {scale:e}), the AR(1) regression is degenerate"
        )));
    }
    let b = sxy / sxx;
    let a = my - b * mx;
    let mut ssr = 0.0;
    for (&xi, &yi) in x.iter().zip(y) {
        let e = yi - a - b * xi;
        ssr += e * e;
    }
    let s2 = ssr / (m - 2.0);
    let se_b = (s2 / sxx).sqrt();
    let se_a = (s2 * (1.0 / m + mx * mx / sxx)).sqrt();
    let r_squared = 1.0 - ssr / syy;
    let r_squared_delta = if ssr > 0.0 { 1.0 - ssr / sdd } else { 1.0 };
    let residual_std = s2.sqrt();

    let dt = config.dt;
    let ln2 = std::f64::consts::LN_2;
    let mean_reverting = b > 0.0 && b < 1.0;
    let theta = a / (1.0 - b);
    let (kappa, se_kappa) = if b > 0.0 {
        (-b.ln() / dt, se_b / (b * dt))
    } else {
        (f64::NAN, f64::NAN)
    };
    let (sigma, half_life_bars, se_half_life) = if mean_reverting {
        let lnb = b.ln();
        let sigma = residual_std * (2.0 * kappa / (1.0 - b * b)).sqrt();
        (sigma, ar1_half_life(b), se_b * ln2 / (b * lnb * lnb))
    } else {
        (f64::NAN, f64::INFINITY, f64::INFINITY)
    };
    let half_life_days = half_life_bars / config.bars_per_day;

    let increments: Vec<f64> = series.windows(2).map(|w| w[1] - w[0]).collect();
    crate::limits::poll()?;
    let level = series.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let hurst = hurst_rs_at(&increments, level).unwrap_or(f64::NAN);
    crate::limits::poll()?; // hurst_rs stops early (NaN) when cancelled: report Cancelled

    Ok(OuFit {
        a: pz(a),
        b: pz(b),
        kappa: pz(kappa),
        theta: pz(theta),
        sigma: pz(sigma),
        half_life_bars: pz(half_life_bars),
        half_life_days: pz(half_life_days),
        se_a: pz(se_a),
        se_b: pz(se_b),
        se_kappa: pz(se_kappa),
        se_half_life: pz(se_half_life),
        r_squared: pz(r_squared),
        r_squared_delta: pz(r_squared_delta),
        residual_std: pz(residual_std),
        mean_reverting,
        hurst: pz(hurst),
        n,
    })
}

/// Window sizes of the Hurst estimators: `HURST_N_SIZES` log-spaced values from
/// `HURST_MIN_WINDOW` to `max_size`, `floor(v + 0.5)`, duplicates removed (ascending).
/// `v_i = exp(ln 8 + i/(K−1)·(ln max_size − ln 8))`, `i = 0..K−1`.
pub fn hurst_window_sizes(max_size: usize) -> Vec<usize> {
    let lo = (HURST_MIN_WINDOW as f64).ln();
    let hi = (max_size as f64).ln();
    let k = HURST_N_SIZES;
    let mut sizes: Vec<usize> = Vec::with_capacity(k);
    for i in 0..k {
        let v = (lo + (i as f64) / ((k - 1) as f64) * (hi - lo)).exp();
        let s = (v + 0.5).floor() as usize;
        if sizes.last() != Some(&s) {
            sizes.push(s);
        }
    }
    sizes
}

/// Slope of the OLS line through `(xs, ys)`.
fn ols_slope(xs: &[f64], ys: &[f64]) -> f64 {
    let k = xs.len() as f64;
    let mx = xs.iter().sum::<f64>() / k;
    let my = ys.iter().sum::<f64>() / k;
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for (&x, &y) in xs.iter().zip(ys) {
        sxx += (x - mx) * (x - mx);
        sxy += (x - mx) * (y - my);
    }
    sxy / sxx
}

fn check_hurst_input(increments: &[f64], divisor: usize) -> CoreResult<Vec<usize>> {
    check::finite("increments", increments)?;
    let m = increments.len();
    let need = divisor * (HURST_MIN_WINDOW + 1);
    if m < need {
        return Err(CoreError::invalid(format!(
            "increments must have at least {need} values for the Hurst exponent, got {m}"
        )));
    }
    Ok(hurst_window_sizes(m / divisor))
}

/// Classic rescaled-range (R/S) Hurst exponent of `increments` (pass the first differences of a
/// price or spread; white noise gives ≈ 0.5 plus the usual small-sample upward bias, no Anis–Lloyd
/// correction).
///
/// For each window size `s` of [`hurst_window_sizes`]`(m / 2)` (from 8 to `m/2`, `m` = number of
/// increments) the series is cut from its start into `floor(m/s)` non-overlapping chunks (the
/// remainder is dropped). In each chunk: `Y = cumsum(c − mean(c))`, `R = max(Y) − min(Y)`,
/// `S = population std of c` (ddof 0); chunks with constant increments are skipped (`S` at most
/// the rounding of their mean, `S ≤ 64·eps·max|c|`: a flat run or a straight segment). `RS(s)` is the mean of
/// `R/S` over the chunks; sizes with no usable chunk are skipped. The result is the OLS slope of
/// `ln RS(s)` on `ln s`.
///
/// Errors: fewer than 18 increments, non-finite values, or fewer than two usable sizes (Numerical).
pub fn hurst_rs(increments: &[f64]) -> CoreResult<f64> {
    hurst_rs_at(increments, 0.0)
}

/// [`hurst_rs`] of the first differences of a series whose values reach `level` in magnitude:
/// a difference carries a rounding error of about eps·`level`, so a chunk whose increments vary
/// by no more than that (`S ≤ 64·eps·max(level, max|c|)`: a flat run, or a straight segment
/// such as a linear interpolation over a gap, at any price level) is skipped, not read as noise.
pub fn hurst_rs_at(increments: &[f64], level: f64) -> CoreResult<f64> {
    let sizes = check_hurst_input(increments, 2)?;
    let mut lx = Vec::with_capacity(sizes.len());
    let mut ly = Vec::with_capacity(sizes.len());
    for &s in &sizes {
        crate::limits::poll()?; // one O(n) pass per window size
        let chunks = increments.len() / s;
        let mut sum_rs = 0.0;
        let mut used = 0usize;
        for c in increments[..chunks * s].chunks_exact(s) {
            let mean = c.iter().sum::<f64>() / s as f64;
            let mut cum = 0.0;
            let (mut ymax, mut ymin) = (f64::NEG_INFINITY, f64::INFINITY);
            let mut ss = 0.0;
            let mut big = level.abs();
            for &v in c {
                let d = v - mean;
                cum += d;
                ss += d * d;
                ymax = ymax.max(cum);
                ymin = ymin.min(cum);
                big = big.max(v.abs());
            }
            let sd = (ss / s as f64).sqrt();
            // constant increments (a flat run, or a straight segment such as a linear
            // interpolation over a gap) leave only the rounding of their mean: skipped too
            if sd > 64.0 * f64::EPSILON * big {
                sum_rs += (ymax - ymin) / sd;
                used += 1;
            }
        }
        if used > 0 {
            let rs = sum_rs / used as f64;
            if rs > 0.0 {
                lx.push((s as f64).ln());
                ly.push(rs.ln());
            }
        }
    }
    if lx.len() < 2 {
        return Err(CoreError::numerical(
            "increments: R/S is undefined (constant within the windows) for all but fewer than two window sizes",
        ));
    }
    Ok(ols_slope(&lx, &ly))
}

/// Detrended fluctuation analysis (DFA-1) exponent of `increments` (first differences of a price
/// or spread; white noise gives ≈ 0.5).
///
/// Profile `Y[k] = Σ_{i≤k} (x_i − mean(x))`. For each window size `s` of
/// [`hurst_window_sizes`]`(m / 4)` (8 to `m/4`) the profile is cut from its start into
/// `floor(m/s)` non-overlapping segments; in each a least-squares line in the local index is
/// removed and the mean squared residual taken; `F(s) = sqrt(mean over segments)`. Sizes with
/// `F(s) == 0` are skipped. The result is the OLS slope of `ln F(s)` on `ln s`.
///
/// Errors: fewer than 36 increments, non-finite values, or fewer than two usable sizes (Numerical).
pub fn hurst_dfa(increments: &[f64]) -> CoreResult<f64> {
    let sizes = check_hurst_input(increments, 4)?;
    let m = increments.len();
    let mean = increments.iter().sum::<f64>() / m as f64;
    let mut profile = Vec::with_capacity(m);
    let mut cum = 0.0;
    for &v in increments {
        cum += v - mean;
        profile.push(cum);
    }
    let mut lx = Vec::with_capacity(sizes.len());
    let mut ly = Vec::with_capacity(sizes.len());
    for &s in &sizes {
        crate::limits::poll()?;
        let segs = m / s;
        let sf = s as f64;
        let jbar = (sf - 1.0) / 2.0;
        let sjj = sf * (sf * sf - 1.0) / 12.0;
        let mut total = 0.0;
        for seg in profile[..segs * s].chunks_exact(s) {
            let ybar = seg.iter().sum::<f64>() / sf;
            let mut sjy = 0.0;
            for (j, &v) in seg.iter().enumerate() {
                sjy += (j as f64 - jbar) * (v - ybar);
            }
            let slope = sjy / sjj;
            let mut ss = 0.0;
            for (j, &v) in seg.iter().enumerate() {
                let r = v - ybar - slope * (j as f64 - jbar);
                ss += r * r;
            }
            total += ss / sf;
        }
        let f = (total / segs as f64).sqrt();
        if f > 0.0 {
            lx.push(sf.ln());
            ly.push(f.ln());
        }
    }
    if lx.len() < 2 {
        return Err(CoreError::numerical(
            "increments: the DFA fluctuation is zero for all but fewer than two window sizes",
        ));
    }
    Ok(ols_slope(&lx, &ly))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small deterministic generator (SplitMix64 + Box–Muller) so tests need no dependency.
    struct Rng(u64);
    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
            z ^ (z >> 31)
        }
        fn uniform(&mut self) -> f64 {
            ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }
        fn normal(&mut self) -> f64 {
            let u1 = self.uniform();
            let u2 = self.uniform();
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        }
    }

    fn ou_path(n: usize, b: f64, theta: f64, sd: f64, seed: u64) -> Vec<f64> {
        let mut rng = Rng(seed);
        let mut x = vec![theta; n];
        for t in 1..n {
            x[t] = theta + b * (x[t - 1] - theta) + sd * rng.normal();
        }
        x
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn hand_checked_ols() {
        // x = 0..20 with alternating +-1 noise around a line; compare against closed-form sums.
        let s: Vec<f64> = (0..20)
            .map(|i| (i as f64) * 0.5 + if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let fit = fit_ou(&s, &OuConfig::default()).unwrap();
        let x = &s[..19];
        let y = &s[1..];
        let m = 19.0;
        let mx: f64 = x.iter().sum::<f64>() / m;
        let my: f64 = y.iter().sum::<f64>() / m;
        let sxx: f64 = x.iter().map(|v| (v - mx) * (v - mx)).sum();
        let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
        let b = sxy / sxx;
        assert!(close(fit.b, b, 1e-14));
        assert!(close(fit.a, my - b * mx, 1e-14));
        assert_eq!(fit.n, 20);
    }

    #[test]
    fn exact_ar1_recovers_parameters() {
        // Noise-free decay towards theta = 5 with b = 0.8 plus a tiny alternating perturbation.
        let mut s = vec![0.0; 40];
        for t in 1..40 {
            s[t] = 5.0 * (1.0 - 0.8) + 0.8 * s[t - 1];
        }
        let fit = fit_ou(
            &s,
            &OuConfig {
                dt: 0.5,
                bars_per_day: 2.0,
            },
        )
        .unwrap();
        assert!(close(fit.b, 0.8, 1e-12));
        assert!(close(fit.theta, 5.0, 1e-10));
        assert!(close(fit.kappa, -(0.8f64).ln() / 0.5, 1e-10));
        let hl = std::f64::consts::LN_2 / -(0.8f64).ln();
        assert!(close(fit.half_life_bars, hl, 1e-10));
        assert!(close(fit.half_life_days, hl / 2.0, 1e-10));
        assert!(fit.mean_reverting);
        assert!(fit.r_squared > 1.0 - 1e-12);
    }

    #[test]
    fn simulated_ou_parameters_are_close() {
        let b = (-0.05f64).exp();
        let x = ou_path(20_000, b, 100.0, 0.5, 7);
        let fit = fit_ou(&x, &OuConfig::default()).unwrap();
        assert!(
            (fit.kappa - 0.05).abs() < 4.0 * fit.se_kappa + 0.005,
            "kappa {}",
            fit.kappa
        );
        assert!((fit.theta - 100.0).abs() < 0.5);
        // sigma: Var(e) = sigma^2 (1-b^2)/(2 kappa) => sigma = 0.5 * sqrt(2*0.05/(1-b^2))
        let sig = 0.5 * (2.0 * 0.05 / (1.0 - b * b)).sqrt();
        assert!((fit.sigma / sig - 1.0).abs() < 0.05);
        assert!(
            (fit.half_life_bars - std::f64::consts::LN_2 / 0.05).abs()
                < 4.0 * fit.se_half_life + 0.5
        );
        assert!(fit.hurst < 0.5, "hurst of OU increments {}", fit.hurst);
        // delta method identities
        assert!(close(fit.se_kappa, fit.se_b / fit.b, 1e-14));
    }

    #[test]
    fn random_walk_is_not_mean_reverting_or_b_near_one() {
        let mut rng = Rng(3);
        let mut x = vec![100.0; 5000];
        for t in 1..5000 {
            x[t] = x[t - 1] + rng.normal();
        }
        let fit = fit_ou(&x, &OuConfig::default()).unwrap();
        assert!(fit.b > 0.98);
        assert!((fit.hurst - 0.5).abs() < 0.12, "hurst {}", fit.hurst);
        let h = hurst_dfa(&x.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>()).unwrap();
        assert!((h - 0.5).abs() < 0.12, "dfa {}", h);
    }

    #[test]
    fn explosive_series_flags_not_mean_reverting() {
        let s: Vec<f64> = (0..30)
            .map(|i| 1.1f64.powi(i) + if i % 2 == 0 { 0.01 } else { 0.0 })
            .collect();
        let fit = fit_ou(&s, &OuConfig::default()).unwrap();
        assert!(fit.b > 1.0);
        assert!(!fit.mean_reverting);
        assert_eq!(fit.half_life_bars, f64::INFINITY);
        assert_eq!(fit.half_life_days, f64::INFINITY);
        assert_eq!(fit.se_half_life, f64::INFINITY);
        assert!(fit.kappa < 0.0);
        assert!(fit.sigma.is_nan());
    }

    #[test]
    fn alternating_series_b_negative() {
        let mut rng = Rng(11);
        let s: Vec<f64> = (0..50)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 } + 0.1 * rng.normal())
            .collect();
        let fit = fit_ou(&s, &OuConfig::default()).unwrap();
        assert!(fit.b < 0.0);
        assert!(!fit.mean_reverting);
        assert!(fit.kappa.is_nan());
        assert_eq!(fit.half_life_bars, f64::INFINITY);
    }

    #[test]
    fn linear_series_has_nan_hurst_and_b_one() {
        let s: Vec<f64> = (0..30).map(|i| i as f64).collect();
        let fit = fit_ou(&s, &OuConfig::default()).unwrap();
        assert!(close(fit.b, 1.0, 1e-12));
        assert!(!fit.mean_reverting);
        assert!(fit.hurst.is_nan());
    }

    #[test]
    fn errors() {
        let cfg = OuConfig::default();
        let e = fit_ou(&[1.0; 5], &cfg).unwrap_err();
        assert!(
            matches!(e, CoreError::InvalidInput(ref m) if m.contains("at least 20")),
            "{e}"
        );
        let mut s: Vec<f64> = (0..30).map(|i| (i as f64).sin()).collect();
        s[4] = f64::NAN;
        let e = fit_ou(&s, &cfg).unwrap_err();
        assert!(e.to_string().contains("NaN at index 4"), "{e}");
        let e = fit_ou(&[3.0; 30], &cfg).unwrap_err();
        assert!(e.to_string().contains("constant"), "{e}");
        let mut s = vec![3.0; 30];
        s[0] = 1.0;
        let e = fit_ou(&s, &cfg).unwrap_err();
        assert!(e.to_string().contains("constant"), "{e}");
        let s: Vec<f64> = (0..30).map(|i| (i as f64).sin()).collect();
        let e = fit_ou(
            &s,
            &OuConfig {
                dt: 0.0,
                bars_per_day: 1.0,
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("dt"), "{e}");
        let e = fit_ou(
            &s,
            &OuConfig {
                dt: 1.0,
                bars_per_day: f64::NAN,
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("bars_per_day"), "{e}");
        assert!(fit_ou(&[], &cfg).unwrap_err().to_string().contains("empty"));
        assert!(hurst_rs(&[1.0; 10])
            .unwrap_err()
            .to_string()
            .contains("at least 18"));
        assert!(hurst_dfa(&[1.0; 20])
            .unwrap_err()
            .to_string()
            .contains("at least 36"));
        assert!(matches!(
            hurst_rs(&[1.0; 100]),
            Err(CoreError::Numerical(_))
        ));
        assert!(matches!(
            hurst_dfa(&[1.0; 100]),
            Err(CoreError::Numerical(_))
        ));
    }

    #[test]
    fn window_sizes() {
        assert_eq!(hurst_window_sizes(9), vec![8, 9]);
        let s = hurst_window_sizes(1000);
        assert_eq!(s[0], 8);
        assert_eq!(*s.last().unwrap(), 1000);
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(s.len(), 20);
    }

    #[test]
    fn hurst_of_white_noise_and_of_anti_persistent() {
        let mut rng = Rng(5);
        let w: Vec<f64> = (0..8192).map(|_| rng.normal()).collect();
        let h = hurst_rs(&w).unwrap();
        assert!(h > 0.45 && h < 0.65, "R/S of white noise {h}");
        // Differenced white noise is strongly anti-persistent.
        let d: Vec<f64> = w.windows(2).map(|p| p[1] - p[0]).collect();
        assert!(hurst_rs(&d).unwrap() < 0.3);
        assert!(hurst_dfa(&d).unwrap() < 0.3);
        // Invariance to affine transforms.
        let w2: Vec<f64> = w.iter().map(|v| 3.0 * v + 7.0).collect();
        assert!(close(hurst_rs(&w2).unwrap(), h, 1e-12));
    }

    #[test]
    fn constant_and_nearly_constant_series_are_rejected_and_zeros_are_positive() {
        let cfg = OuConfig::default();
        for v in [100.1, 1e9 + 0.3, -7.77e-5, 0.1 + 0.2] {
            let e = fit_ou(&[v; 50], &cfg).unwrap_err().to_string();
            assert!(e.contains("constant"), "{v}: {e}");
        }
        // one-ulp wiggles around 1e9: variation at the rounding level
        let x: Vec<f64> = (0..60)
            .map(|i| if i % 3 == 0 { 1e9 } else { 1e9 + 1.2e-7 })
            .collect();
        let e = fit_ou(&x, &cfg).unwrap_err().to_string();
        assert!(e.contains("nearly constant"), "{e}");
        // a straight line: b = 1 exactly, kappa = -ln(1) = -0.0 before normalisation
        let line: Vec<f64> = (0..40).map(|i| i as f64).collect();
        let fit = fit_ou(&line, &cfg).unwrap();
        assert_eq!(fit.b, 1.0);
        assert_eq!(fit.kappa.to_bits(), 0.0f64.to_bits());
        assert_eq!(fit.half_life_bars, f64::INFINITY);
    }
}
