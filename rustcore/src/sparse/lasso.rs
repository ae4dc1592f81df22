//! Lasso / elastic net: coordinate descent with covariance (Gram) updates.

#![allow(clippy::needless_range_loop, clippy::neg_cmp_op_on_partial_ord)]

use super::spread::{ar1_mean_reversion, engle_granger_critical_values, spread_adf};
use super::{SparseConfig, SparseResult, PATH_RATIO};
use crate::error::{CoreError, CoreResult};
use crate::linalg::{axpy, dot, dot4};

/// Centred design (all assets) with a lazily filled, cached Gram matrix.
pub(super) struct Design {
    pub(super) n: usize,
    pub(super) p: usize,
    pub(super) means: Vec<f64>,
    /// Centred columns, column-major: column j is `xc[j*n .. (j+1)*n]`.
    pub(super) xc: Vec<f64>,
    /// `gram[k*p + j] = <xc_k, xc_j>`, valid iff `known[k*p + j]` (kept symmetric: an entry is
    /// computed once, stored at (k, j) and (j, k), and never changes afterwards).
    pub(super) gram: Vec<f64>,
    pub(super) known: Vec<bool>,
    /// Row k is completely known.
    pub(super) full: Vec<bool>,
    /// Row k is known on the working set of version `row_version[k]`.
    pub(super) row_version: Vec<u64>,
    pub(super) diag: Vec<f64>,
    /// Version of the current working set (see `row_version`).
    pub(super) version: u64,
}

pub(super) struct FitOutcome {
    pub(super) iterations: usize,
    /// Final duality gap in objective units (gap / n).
    pub(super) gap: f64,
    /// Tolerance on the gap in objective units (tol · ‖y − ȳ‖² / n).
    pub(super) tol: f64,
    pub(super) converged: bool,
}

impl FitOutcome {
    pub(super) fn require_converged(&self, lambda: f64, max_iter: usize) -> CoreResult<()> {
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

pub(super) struct Basket {
    pub(super) weights: Vec<f64>,
    pub(super) spread: Vec<f64>,
    pub(super) intercept: f64,
    pub(super) nonzero: usize,
    pub(super) objective: f64,
}

impl Design {
    pub(super) fn new(prices: &[f64], rows: usize, cols: usize) -> CoreResult<Design> {
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

    pub(super) fn col(&self, j: usize) -> &[f64] {
        &self.xc[j * self.n..(j + 1) * self.n]
    }

    /// Make Gram rows `ks` completely known. Missing entries are computed four rows at a time
    /// (each data column is streamed once per four rows).
    pub(super) fn ensure_full(&mut self, ks: &[usize]) {
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
    pub(super) fn set(&mut self, k: usize, j: usize, v: f64) {
        let p = self.p;
        if !self.known[k * p + j] {
            self.gram[k * p + j] = v;
            self.gram[j * p + k] = v;
            self.known[k * p + j] = true;
            self.known[j * p + k] = true;
        }
    }

    /// Make the entries (k, i), i ∈ `idx`, of Gram row k known.
    pub(super) fn ensure_entries(&mut self, k: usize, idx: &[usize]) {
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

    pub(super) fn ensure1(&mut self, k: usize) {
        if !self.full[k] {
            self.ensure_full(&[k]);
        }
    }

    pub(super) fn row(&self, k: usize) -> &[f64] {
        &self.gram[k * self.p..(k + 1) * self.p]
    }

    /// scikit-learn's alpha_max: max_j |x_jᵀ y| / (n · l1_ratio).
    pub(super) fn lambda_max(&mut self, target: usize, alpha: f64) -> f64 {
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
    pub(super) fn fit(
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
    pub(super) fn fit_single(
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
    pub(super) fn basket(
        &self,
        prices: &[f64],
        target: usize,
        w: &[f64],
        lambda: f64,
        alpha: f64,
    ) -> Basket {
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
pub(super) fn primal_on(
    work: &[usize],
    w: &[f64],
    q: &[f64],
    qw: &[f64],
    yy: f64,
    l1: f64,
    l2: f64,
) -> f64 {
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
pub(super) fn gap_gram(
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

pub(super) fn regression_basket(
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
