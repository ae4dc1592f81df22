//! AR(1) / ADF statistics of a basket's spread and the Engle-Granger critical values.

use super::Ar1Stats;
use crate::adf::{adf, Autolag};
use crate::error::{check, CoreError, CoreResult};

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
/// A series constant to rounding (rms variation ≤ 1e-14 of its level) gives `b = 0`,
/// `adf_statistic = −∞` and `half_life = 0` (perfect reversion, as statsmodels' `coint` reports
/// −∞ for a perfect fit). A series constant except its last value is refused (the regression has
/// no information about `b`), as `fit_ou` refuses it.
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
        // The lagged values s[..T-1] are constant to rounding. If the last value is too, the
        // whole spread is (a perfect hedge: documented −∞ / 0); if only the last value moves,
        // the regression has no information about b: refuse, as `fit_ou` does.
        let tf = t as f64;
        let mean = series.iter().sum::<f64>() / tf;
        let sall: f64 = series.iter().map(|v| (v - mean) * (v - mean)).sum();
        if !(sall == 0.0 || sall <= 1e-28 * (mean * mean * tf)) {
            return Err(CoreError::invalid(
                "the spread is constant except its last value: the AR(1) / ADF regression is singular",
            ));
        }
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
/// statsmodels' lag selection. A perfectly fitting (e.g. constant) spread keeps the AR(1) ±∞; a
/// spread too short for the lag search, or whose lagged regression is singular (differences that
/// are exactly periodic or collinear, where statsmodels' pseudo-inverse would report an arbitrary
/// solution), keeps the 0-lag statistic with lag 0.
pub(super) fn spread_adf(
    spread: &[f64],
    st: &Ar1Stats,
    autolag: Autolag,
) -> CoreResult<(f64, usize)> {
    if autolag == Autolag::None || !st.adf_statistic.is_finite() {
        return Ok((st.adf_statistic, 0));
    }
    match adf(spread, None, autolag) {
        Ok(r) => Ok((r.statistic, r.used_lag)),
        Err(CoreError::InvalidInput(_)) => Ok((st.adf_statistic, 0)),
        Err(e) => Err(e),
    }
}

pub(super) fn half_life_from_b(b: f64) -> f64 {
    crate::num::ar1_half_life(1.0 + b)
}

/// MacKinnon (2010) response-surface coefficients for the Engle-Granger / ADF test with a
/// constant ("c"), N = 1 … 12 variables, rows 1 %, 5 %, 10 %: crit = b0 + b1/T + b2/T² + b3/T³.
/// (Same table as statsmodels `adfvalues.tau_c_2010`.)
pub(super) const TAU_C_2010: [[[f64; 4]; 3]; 12] = [
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
