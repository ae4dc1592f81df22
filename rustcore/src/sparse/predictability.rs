//! Box-Tiao and greedy search: VAR(1) predictability of a basket.

#![allow(clippy::needless_range_loop, clippy::neg_cmp_op_on_partial_ord)]

use super::lasso::centred_columns;
use super::spread::{ar1_mean_reversion, engle_granger_critical_values, spread_adf};
use super::{SparseMethod, SparseResult};
use crate::adf::Autolag;
use crate::error::{CoreError, CoreResult};
use crate::linalg::{
    back_solve_t, cholesky_rel, congruence, dot, forward_solve, forward_solve_cols,
    symmetric_eigen, CANCELLED_ROW,
};

// ---------------------------------------------------------------------------------------------
// Box-Tiao and greedy search (predictability)
// ---------------------------------------------------------------------------------------------

/// VAR(1) predictability matrices of demeaned prices x_t (column means over all T rows removed):
/// with the T−1 lagged pairs, `Γ0 = Σ x_{t−1} x_{t−1}ᵀ / (T−1)`, `Γ1 = Σ x_{t−1} x_tᵀ / (T−1)`,
/// the least-squares VAR(1) `x_t = Aᵀ x_{t−1} + e_t` has `A = Γ0⁻¹ Γ1`, and the predictability of
/// a basket y is `ν(y) = yᵀ AᵀΓ0A y / yᵀ Γ0 y = yᵀ M y / yᵀ Γ0 y` with `M = Γ1ᵀ Γ0⁻¹ Γ1`.
pub(super) struct PredictabilityMatrices {
    pub(super) p: usize,
    /// Γ0, row-major p x p.
    pub(super) g0: Vec<f64>,
    /// M = Γ1ᵀ Γ0⁻¹ Γ1, row-major p x p (symmetric).
    pub(super) m: Vec<f64>,
}

impl PredictabilityMatrices {
    pub(super) fn new(
        prices: &[f64],
        rows: usize,
        cols: usize,
    ) -> CoreResult<PredictabilityMatrices> {
        let (n, p) = (rows, cols);
        if n < p + 2 {
            return Err(CoreError::invalid(format!(
                "box_tiao and greedy need more observations than assets to fit the VAR(1): \
                 got {n} rows for {p} assets (need at least {})",
                p + 2
            )));
        }
        let (_, xc) = centred_columns(prices, rows, cols)?;
        let nl = n - 1;
        let scale = 1.0 / nl as f64;
        let (mut g0, mut g1) = lagged_cross_products(&xc, n, p)?;
        for v in g0.iter_mut().chain(g1.iter_mut()) {
            *v *= scale;
        }
        let l = cholesky_rel(&g0, p, 1e-11).map_err(|k| {
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

    pub(super) fn sub(&self, mat: &[f64], idx: &[usize]) -> Vec<f64> {
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
    pub(super) fn least_predictable(&self, idx: &[usize]) -> CoreResult<(f64, Vec<f64>)> {
        let s = idx.len();
        let g0 = self.sub(&self.g0, idx);
        let m = self.sub(&self.m, idx);
        let l = cholesky_rel(&g0, s, 1e-11).map_err(|k| {
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
    pub(super) fn greedy_support(
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
            let l = cholesky_rel(&g0, s, 1e-11).map_err(|kk| {
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
pub(super) fn lagged_cross_products(
    xc: &[f64],
    n: usize,
    p: usize,
) -> CoreResult<(Vec<f64>, Vec<f64>)> {
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
pub(super) fn tile4x4(a: [&[f64]; 4], b: [&[f64]; 4], len: usize) -> [[f64; 4]; 4] {
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
pub(super) fn bordered_min_eigenvalue(d: &[f64], z2: &[f64], gamma: f64) -> f64 {
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

#[allow(clippy::too_many_arguments)]
pub(super) fn finish_eigen_basket(
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
