//! Johansen cointegration rank test, exactly as statsmodels' `coint_johansen(endog, det_order,
//! k_ar_diff)` (statsmodels.tsa.vector_ar.vecm):
//! * `det_order` −1 (no deterministic terms), 0 (constant), 1 (linear trend): the levels are
//!   detrended with a polynomial of that order in `linspace(−1, 1, n)`; the differences, lagged
//!   differences and lagged levels are demeaned when `det_order ≥ 0`.
//! * `Δx_t` and the level `x_{t−k}` (statsmodels' `endog[1 : n − k]`) are regressed on the
//!   `k_ar_diff` lagged differences (least squares), giving the residuals `R0`, `Rk`;
//!   `S_kk = RkᵀRk/T`, `S_k0 = RkᵀR0/T`, `S_00 = R0ᵀR0/T`.
//! * The eigenvalues `λ` of `S_kk⁻¹ S_k0 S_00⁻¹ S_0k` (descending) are found as the symmetric
//!   problem `L⁻¹ S_k0 S_00⁻¹ S_0k L⁻ᵀ` with `S_kk = L Lᵀ`; the eigenvectors `v = L⁻ᵀ w` are
//!   normalised so that `vᵀ S_kk v = 1` (statsmodels' normalisation). Sign: each column's first
//!   entry is made ≥ 0 (statsmodels flips the whole matrix by the sign of its first entry and
//!   leaves the other columns' signs to LAPACK: column 0 agrees exactly, the others up to sign).
//! * trace statistic `−T Σ_{k ≥ r} ln(1 − λ_k)`, max-eigenvalue statistic `−T ln(1 − λ_r)`;
//!   critical values (90 %, 95 %, 99 %) from MacKinnon, Haug & Michelis (1996) as statsmodels'
//!   `c_sjt` / `c_sja` (NaN beyond 12 variables).
//! * **Collinearity** (one rule, relative to the data's scale, the pairs scan's and statsmodels
//!   `coint`'s threshold): when a series of `S_kk` (levels) or `S_00` (differences) is explained
//!   by the previous ones up to `1 − R² ≤ 100·sqrt(eps)` (a Cholesky pivot `L_ii² ≤ 100·sqrt(eps)·S_ii`)
//!   the test is refused with a numerical error naming the collinear series: beyond that the
//!   eigenvalues are rounding noise (measured: off by up to 1e3 against statsmodels, outside
//!   [0, 1], NaN statistics). The eigenvalues are squared canonical correlations, clamped to
//!   [0, 1]; an eigenvalue of 1 (the differences exactly explained by the levels) has +∞
//!   statistics.

use nalgebra::DMatrix;

use crate::error::{check, CoreError, CoreResult};
use crate::num::pz;

#[derive(Debug, Clone, PartialEq)]
pub struct JohansenResult {
    pub n_vars: usize,
    /// Rows of the residual regressions (statsmodels' `rkt.shape[0]`).
    pub nobs: usize,
    pub eigenvalues: Vec<f64>,
    /// n × n, row-major; column r is the r-th eigenvector.
    pub eigenvectors: Vec<f64>,
    pub trace_stat: Vec<f64>,
    /// n × 3, row-major (90 %, 95 %, 99 %).
    pub trace_crit: Vec<f64>,
    pub max_eig_stat: Vec<f64>,
    pub max_eig_crit: Vec<f64>,
}

// Generated from statsmodels.tsa.coint_tables (MacKinnon, Haug, Michelis 1996), 90/95/99 %.
const EJCP0: [[f64; 3]; 12] = [
    [2.9762, 4.1296, 6.9406],
    [9.4748, 11.2246, 15.0923],
    [15.7175, 17.7961, 22.2519],
    [21.837, 24.1592, 29.0609],
    [27.916, 30.4428, 35.7359],
    [33.9271, 36.6301, 42.2333],
    [39.9085, 42.7679, 48.6606],
    [45.893, 48.8795, 55.0335],
    [51.8528, 54.9629, 61.3449],
    [57.7954, 61.0404, 67.6415],
    [63.7248, 67.0756, 73.8856],
    [69.6513, 73.0946, 80.0937],
];
const EJCP1: [[f64; 3]; 12] = [
    [2.7055, 3.8415, 6.6349],
    [12.2971, 14.2639, 18.52],
    [18.8928, 21.1314, 25.865],
    [25.1236, 27.5858, 32.7172],
    [31.2379, 33.8777, 39.3693],
    [37.2786, 40.0763, 45.8662],
    [43.2947, 46.2299, 52.3069],
    [49.2855, 52.3622, 58.6634],
    [55.2412, 58.4332, 64.996],
    [61.2041, 64.504, 71.2525],
    [67.1307, 70.5392, 77.4877],
    [73.0563, 76.5734, 83.7105],
];
const EJCP2: [[f64; 3]; 12] = [
    [2.7055, 3.8415, 6.6349],
    [15.0006, 17.1481, 21.7465],
    [21.8731, 24.2522, 29.2631],
    [28.2398, 30.8151, 36.193],
    [34.4202, 37.1646, 42.8612],
    [40.5244, 43.4183, 49.4095],
    [46.5583, 49.5875, 55.8171],
    [52.5858, 55.7302, 62.1741],
    [58.5316, 61.8051, 68.503],
    [64.5292, 67.904, 74.7434],
    [70.463, 73.9355, 81.0678],
    [76.4081, 79.9878, 87.2395],
];
const TJCP0: [[f64; 3]; 12] = [
    [2.9762, 4.1296, 6.9406],
    [10.4741, 12.3212, 16.364],
    [21.7781, 24.2761, 29.5147],
    [37.0339, 40.1749, 46.5716],
    [56.2839, 60.0627, 67.6367],
    [79.5329, 83.9383, 92.7136],
    [106.7351, 111.7797, 121.7375],
    [137.9954, 143.6691, 154.7977],
    [173.2292, 179.5199, 191.8122],
    [212.4721, 219.4051, 232.8291],
    [255.6732, 263.2603, 277.9962],
    [302.9054, 311.1288, 326.9716],
];
const TJCP1: [[f64; 3]; 12] = [
    [2.7055, 3.8415, 6.6349],
    [13.4294, 15.4943, 19.9349],
    [27.0669, 29.7961, 35.4628],
    [44.4929, 47.8545, 54.6815],
    [65.8202, 69.8189, 77.8202],
    [91.109, 95.7542, 104.9637],
    [120.3673, 125.6185, 135.9825],
    [153.6341, 159.529, 171.0905],
    [190.8714, 197.3772, 210.0366],
    [232.103, 239.2468, 253.2526],
    [277.374, 285.1402, 300.2821],
    [326.5354, 334.9795, 351.215],
];
const TJCP2: [[f64; 3]; 12] = [
    [2.7055, 3.8415, 6.6349],
    [16.1619, 18.3985, 23.1485],
    [32.0645, 35.0116, 41.0815],
    [51.6492, 55.2459, 62.5202],
    [75.1027, 79.3422, 87.7748],
    [102.4674, 107.3429, 116.9829],
    [133.7852, 139.278, 150.0778],
    [169.0618, 175.1584, 187.1891],
    [208.3582, 215.1268, 228.2226],
    [251.6293, 259.0267, 273.3838],
    [298.8836, 306.8988, 322.4264],
    [350.1125, 358.719, 375.3203],
];

fn crit(
    table_m1: &[[f64; 3]; 12],
    t0: &[[f64; 3]; 12],
    t1: &[[f64; 3]; 12],
    n: usize,
    p: i32,
) -> [f64; 3] {
    if !(1..=12).contains(&n) {
        return [f64::NAN; 3];
    }
    match p {
        -1 => table_m1[n - 1],
        0 => t0[n - 1],
        _ => t1[n - 1],
    }
}

/// Residuals of the least-squares regression of the columns of `y` on those of `x` (x may have
/// no columns: y itself).
fn resid(y: &DMatrix<f64>, x: &DMatrix<f64>) -> CoreResult<DMatrix<f64>> {
    if x.ncols() == 0 {
        return Ok(y.clone());
    }
    let svd = x.clone().svd(true, true);
    let max_sv = svd.singular_values.max();
    let eps = 1e-15 * max_sv * (x.nrows().max(x.ncols()) as f64);
    let b = svd
        .solve(y, eps)
        .map_err(|e| CoreError::numerical(format!("Johansen: least squares failed: {e}")))?;
    Ok(y - x * b)
}

/// statsmodels' `detrend(y, order)`: residuals on `vander(linspace(−1, 1, n), order + 1)`.
/// `100·sqrt(eps)`: statsmodels `coint`'s collinearity threshold on `1 − R²` (as the pairs scan).
const COLLINEAR: f64 = 100.0 * 1.490_116_119_384_765_6e-8;

/// Cholesky factor of the covariance `s` of the `what` (named `name`), refused when a series is
/// (nearly) a linear combination of the others: `1 − R²` of series `i` on the series before it,
/// `L_ii² / s_ii`, at most [`COLLINEAR`].
fn collinearity_checked(
    s: DMatrix<f64>,
    what: &str,
    name: &str,
) -> CoreResult<nalgebra::Cholesky<f64, nalgebra::Dyn>> {
    let diag: Vec<f64> = (0..s.nrows()).map(|i| s[(i, i)]).collect();
    let singular = || {
        CoreError::numerical(format!(
            "Johansen: the {what} are collinear ({name} is singular)"
        ))
    };
    let ch = s.cholesky().ok_or_else(singular)?;
    let l = ch.l_dirty();
    for (i, &d) in diag.iter().enumerate() {
        let piv = l[(i, i)] * l[(i, i)];
        if d.is_nan() || d <= 0.0 || piv <= COLLINEAR * d {
            return Err(CoreError::numerical(format!(
                "Johansen: the {what} are (nearly) collinear: series {i} is a linear combination of the series before it up to 1 - R² = {:.1e} (at most {COLLINEAR:.1e} is refused: the test would be rounding noise)",
                if d > 0.0 { piv / d } else { 0.0 }
            )));
        }
    }
    Ok(ch)
}

fn detrend(y: &DMatrix<f64>, order: i32) -> CoreResult<DMatrix<f64>> {
    if order < 0 || y.ncols() == 0 {
        return Ok(y.clone());
    }
    let n = y.nrows();
    let k = order as usize + 1;
    let mut v = DMatrix::<f64>::zeros(n, k);
    for r in 0..n {
        // numpy linspace(-1, 1, n): start + r*step, the last point exactly 1
        let t = if n == 1 {
            -1.0
        } else if r == n - 1 {
            1.0
        } else {
            -1.0 + r as f64 * (2.0 / (n - 1) as f64)
        };
        for c in 0..k {
            v[(r, c)] = t.powi((k - 1 - c) as i32);
        }
    }
    if order == 0 {
        // the mean, exactly as OLS on a constant
        let mut out = y.clone();
        for mut col in out.column_iter_mut() {
            let m = col.sum() / n as f64;
            col.add_scalar_mut(-m);
        }
        return Ok(out);
    }
    resid(y, &v)
}

/// The Johansen test of the row-major `rows × cols` levels (see the module documentation).
pub fn johansen(
    prices: &[f64],
    rows: usize,
    cols: usize,
    det_order: i32,
    k_ar_diff: usize,
) -> CoreResult<JohansenResult> {
    check::finite_matrix("prices", prices, rows, cols)?;
    if !(-1..=1).contains(&det_order) {
        return Err(CoreError::invalid(format!(
            "det_order must be -1 (none), 0 (constant) or 1 (linear trend), got {det_order}"
        )));
    }
    let params = cols
        .saturating_mul(k_ar_diff)
        .saturating_add(cols)
        .saturating_add(2);
    if rows < 2 || rows - 1 <= k_ar_diff || rows - 1 - k_ar_diff <= params {
        return Err(CoreError::invalid(format!(
            "prices has too few observations for a Johansen test of {cols} series with k_ar_diff = {k_ar_diff}: {rows} rows, need more than {}",
            params.saturating_add(k_ar_diff).saturating_add(1)
        )));
    }
    let _budget = crate::limits::reserve(&crate::limits::johansen(rows, cols, k_ar_diff))?;
    let x = DMatrix::from_row_slice(rows, cols, prices);
    let f = if det_order > -1 { 0 } else { -1 };
    let x = detrend(&x, det_order)?;
    let dx = DMatrix::from_fn(rows - 1, cols, |r, c| x[(r + 1, c)] - x[(r, c)]);
    let t = rows - 1 - k_ar_diff;
    // z: lagged differences, rows k..rows-2 of dx, columns [lag 1 (all vars), lag 2, ...]
    let z = DMatrix::from_fn(t, cols * k_ar_diff, |r, c| {
        let lag = c / cols + 1;
        dx[(r + k_ar_diff - lag, c % cols)]
    });
    crate::limits::poll()?;
    let z = detrend(&z, f)?;
    let d0 = detrend(&dx.rows(k_ar_diff, t).into_owned(), f)?;
    let r0t = resid(&d0, &z)?;
    let lx = detrend(&x.rows(1, t).into_owned(), f)?;
    let rkt = resid(&lx, &z)?;
    crate::limits::poll()?;
    let tf = t as f64;
    let skk = rkt.transpose() * &rkt / tf;
    let sk0 = rkt.transpose() * &r0t / tf;
    let s00 = r0t.transpose() * &r0t / tf;
    let s00_chol = collinearity_checked(s00, "differences", "S00")?;
    let s00_inv = s00_chol.inverse();
    let sig = &sk0 * s00_inv * sk0.transpose();
    let l = collinearity_checked(skk, "levels", "Skk")?.l();
    let linv = l.clone().try_inverse().ok_or_else(|| {
        CoreError::numerical("Johansen: the levels are collinear (Skk is singular)")
    })?;
    let mut c = &linv * sig * linv.transpose();
    c = (&c + c.transpose()) * 0.5;
    let eig = c.symmetric_eigen();
    let mut order: Vec<usize> = (0..cols).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
    let v_all = linv.transpose() * &eig.eigenvectors;
    let n = cols;
    let mut eigenvalues = vec![0.0; n];
    let mut eigenvectors = vec![0.0; n * n];
    for (r, &k) in order.iter().enumerate() {
        // squared canonical correlations: in [0, 1] (rounding can leave them just outside)
        eigenvalues[r] = eig.eigenvalues[k].clamp(0.0, 1.0);
        let col = v_all.column(k);
        let first = col.iter().copied().find(|v| *v != 0.0).unwrap_or(1.0);
        let s = if first < 0.0 { -1.0 } else { 1.0 };
        for i in 0..n {
            eigenvectors[i * n + r] = pz(s * col[i]);
        }
    }
    let mut trace_stat = vec![0.0; n];
    let mut max_eig_stat = vec![0.0; n];
    let mut trace_crit = vec![0.0; n * 3];
    let mut max_eig_crit = vec![0.0; n * 3];
    for i in 0..n {
        trace_stat[i] = pz(-tf * eigenvalues[i..].iter().map(|a| (1.0 - a).ln()).sum::<f64>());
        max_eig_stat[i] = pz(-tf * (1.0 - eigenvalues[i]).ln());
        let ct = crit(&TJCP0, &TJCP1, &TJCP2, n - i, det_order);
        let cm = crit(&EJCP0, &EJCP1, &EJCP2, n - i, det_order);
        trace_crit[i * 3..i * 3 + 3].copy_from_slice(&ct);
        max_eig_crit[i * 3..i * 3 + 3].copy_from_slice(&cm);
    }
    for v in eigenvalues.iter_mut() {
        *v = pz(*v);
    }
    Ok(JohansenResult {
        n_vars: n,
        nobs: t,
        eigenvalues,
        eigenvectors,
        trace_stat,
        trace_crit,
        max_eig_stat,
        max_eig_crit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::num::uniform;

    #[test]
    fn finds_one_relation_and_validates() {
        let mut rnd = uniform(11);
        let n = 500;
        let mut p = vec![0.0; n * 2];
        let mut w = 0.0;
        for t in 0..n {
            w += rnd();
            p[t * 2] = w + 0.3 * rnd();
            p[t * 2 + 1] = 0.5 * w + 0.3 * rnd();
        }
        let r = johansen(&p, n, 2, 0, 1).unwrap();
        assert!(r.trace_stat[0] > r.trace_crit[2], "{:?}", r.trace_stat);
        assert!(r.trace_stat[1] < r.trace_crit[4]);
        assert!(r.eigenvalues[0] >= r.eigenvalues[1]);
        assert!(johansen(&p, n, 2, 2, 1)
            .unwrap_err()
            .to_string()
            .contains("det_order"));
        assert!(johansen(&p[..10], 5, 2, 0, 1)
            .unwrap_err()
            .to_string()
            .contains("too few"));
    }

    #[test]
    fn nearly_collinear_levels_are_refused_relative_to_their_scale() {
        // issue 13 sweep: three series near 1e-6 moving by 1e-9 of their level, no deterministic
        // terms: the levels are collinear to rounding; the eigenvalues came out as 1.2, 0.08,
        // -2.0 (NaN trace statistic). The same shape at any scale gives the same refusal.
        let mut rnd = uniform(5);
        let n = 60;
        let mut z = vec![0.0; n * 3];
        for c in 0..3 {
            let mut v = 0.0;
            for t in 0..n {
                v += 1e-9 * rnd();
                z[t * 3 + c] = v.exp();
            }
        }
        for scale in [1e-6, 1.0, 1e9] {
            let p: Vec<f64> = z.iter().map(|v| v * scale).collect();
            let e = johansen(&p, n, 3, -1, 0).unwrap_err().to_string();
            assert!(
                e.contains("the levels are") && e.contains("collinear"),
                "{e}"
            );
            // with a constant the levels are demeaned: no longer collinear, a valid test
            let r = johansen(&p, n, 3, 0, 0).unwrap();
            assert!(r.eigenvalues.iter().all(|l| (0.0..1.0).contains(l)));
            assert!(r.trace_stat.iter().all(|t| t.is_finite() && *t >= 0.0));
        }
    }
}
