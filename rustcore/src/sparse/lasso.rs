//! Lasso / elastic net: coordinate descent with covariance (Gram) updates.

#![allow(clippy::needless_range_loop, clippy::neg_cmp_op_on_partial_ord)]

use super::spread::{ar1_mean_reversion, engle_granger_critical_values, spread_adf};
use super::{SparseConfig, SparseResult, PATH_RATIO};
use crate::error::{CoreError, CoreResult};
use crate::linalg::axpy;

/// The design (all assets) read in place from the caller's row-major prices (never copied or
/// transposed), with its column means and a lazily filled, cached Gram matrix of the centred
/// columns.
pub(super) struct Design<'a> {
    pub(super) n: usize,
    pub(super) p: usize,
    /// The prices, row-major: `x[t*p + j]`.
    x: &'a [f64],
    /// Column means (two-pass refined: the centred columns sum to ~0).
    pub(super) means: Vec<f64>,
    /// `gram[k*p + j] = <xc_k, xc_j>` (xc: centred columns), valid iff `known[k*p + j]` (kept
    /// symmetric: an entry is computed once, stored at (k, j) and (j, k), and never changes
    /// afterwards).
    pub(super) gram: Vec<f64>,
    pub(super) known: Vec<bool>,
    /// Row k is completely known.
    pub(super) full: Vec<bool>,
    pub(super) diag: Vec<f64>,
    /// Centred columns gathered so far (column-major, `n` values each, in order of gathering):
    /// column j is `cache[slot[j]*n ..]` when `slot[j] != usize::MAX`. Only the columns the
    /// fit touches (working sets, Gram rows) are gathered, each once.
    cache: Vec<f64>,
    slot: Vec<usize>,
}

/// Most assets for which the whole Gram matrix is computed at once (measured: 1.7× faster than
/// the lazy rows at 2000 × 200 and 10000 × 300, 1.2× at 10000 × 400, 1.3× slower at 10000 × 500).
const DENSE_MAX_COLS: usize = 384;
/// Most Gram rows computed by one GEMM (the gathered columns hold `MAX_BATCH · n` values).
const MAX_BATCH: usize = 32;
/// When full Gram rows must be computed (a pass over all the data), rows likely needed later
/// (working-set members) are computed in the same pass up to this many rows in all.
const PREFETCH_ROWS: usize = 32;
/// Smallest growth of the working set (strong-rule candidates at the start of a fit, KKT
/// violators at each check); it at least doubles otherwise.
const WS_GROW: usize = 10;

/// Largest working-set Gram block (values) copied contiguously for the sweeps.
const COMPACT_MAX: usize = 1 << 20;
/// Largest gathered copy of working-set columns (values); above it full rows are used.
const GATHER_MAX: usize = 1 << 22;

/// Whether the whole Gram matrix is computed at once: its n·p²/2 products cost less than the
/// lazy path's batches of `PREFETCH_ROWS` full rows (n·p each, plus packing) for p up to about
/// `DENSE_MAX_COLS` (measured), whatever the number of rows (both costs grow with it).
pub(super) fn dense_gram(cols: usize) -> bool {
    cols <= DENSE_MAX_COLS
}

/// `c = beta·c + a·b` for `a` (`m x k`, strides `rsa`, `csa`), `b` (`k x n`, strides `rsb`, `csb`)
/// and `c` (`m x n` row-major, row stride `ldc`): matrixmultiply's GEMM (runtime AVX-512/FMA),
/// any size.
#[allow(clippy::too_many_arguments)]
fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f64],
    rsa: usize,
    csa: usize,
    b: &[f64],
    rsb: usize,
    csb: usize,
    beta: f64,
    c: &mut [f64],
    ldc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(k == 0 || (m - 1) * rsa + (k - 1) * csa < a.len());
    assert!(k == 0 || (k - 1) * rsb + (n - 1) * csb < b.len());
    assert!((m - 1) * ldc + n <= c.len());
    // SAFETY: the three asserts keep every element the GEMM touches inside its slice.
    unsafe {
        matrixmultiply::dgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            ldc as isize,
            1,
        );
    }
}

/// Sum with 8 independent accumulators (a plain iterator sum is latency-bound).
fn sum8(x: &[f64]) -> f64 {
    let mut s = [0.0f64; 8];
    let c = x.chunks_exact(8);
    let tail: f64 = c.remainder().iter().sum();
    for v in c {
        for i in 0..8 {
            s[i] += v[i];
        }
    }
    ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])) + tail
}

/// Column means of the row-major prices and the centred columns, column-major (column j is
/// `xc[j*n .. (j+1)*n]`), each column's mean refined once (two-pass correction, so that the
/// column sums to ~0). Used by Box-Tiao / greedy (the lasso reads the prices in place).
pub(super) fn centred_columns(
    prices: &[f64],
    rows: usize,
    cols: usize,
) -> CoreResult<(Vec<f64>, Vec<f64>)> {
    let (n, p) = (rows, cols);
    let mut means = vec![0.0; p];
    let mut xc = crate::limits::zeroed(n * p, "the centred prices")?;
    // Transpose the raw prices in blocks of TB rows (their pages stay in the TLB and their
    // lines in cache) and strips of 8 columns (each row's strip is one cache line, read
    // once; the 8 column slices are written sequentially).
    const TB: usize = 64;
    let mut t0 = 0;
    while t0 < n {
        let t1 = (t0 + TB).min(n);
        let mut j0 = 0;
        while j0 + 8 <= p {
            let strip = &mut xc[j0 * n..(j0 + 8) * n];
            let (c01, c27) = strip.split_at_mut(2 * n);
            let (c0, c1) = c01.split_at_mut(n);
            let (c23, c47) = c27.split_at_mut(2 * n);
            let (c2, c3) = c23.split_at_mut(n);
            let (c45, c67) = c47.split_at_mut(2 * n);
            let (c4, c5) = c45.split_at_mut(n);
            let (c6, c7) = c67.split_at_mut(n);
            for t in t0..t1 {
                let r: &[f64; 8] = prices[t * p + j0..t * p + j0 + 8].try_into().unwrap();
                c0[t] = r[0];
                c1[t] = r[1];
                c2[t] = r[2];
                c3[t] = r[3];
                c4[t] = r[4];
                c5[t] = r[5];
                c6[t] = r[6];
                c7[t] = r[7];
            }
            j0 += 8;
        }
        for j in j0..p {
            let col = &mut xc[j * n + t0..j * n + t1];
            for (v, t) in col.iter_mut().zip(t0..t1) {
                *v = prices[t * p + j];
            }
        }
        t0 = t1;
    }
    crate::limits::poll()?;
    for (j, col) in xc.chunks_exact_mut(n).enumerate() {
        let m = &mut means[j];
        *m = sum8(col) / n as f64;
        let m0 = *m;
        for v in col.iter_mut() {
            *v -= m0;
        }
        let c = sum8(col) / n as f64;
        if c != 0.0 {
            *m += c;
            for v in col.iter_mut() {
                *v -= c;
            }
        }
    }
    Ok((means, xc))
}

/// Rows per poll of the cancel flag in the passes over the prices.
const POLL_ROWS: usize = 4096;

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

impl<'a> Design<'a> {
    /// The design with the diagonal (and, with `target`, Gram row `target`, `Xᵀy`) known, from
    /// the column `sums` (computed by the validation's pass) and one more pass over the prices,
    /// in place (row-major, vectorised across assets): per
    /// column `Σd`, `Σd²` and `Σd·d_y` with `d = x − mean₀`; the mean is refined by `Σd / n`
    /// (two-pass correction) and the diagonal and `Xᵀy` follow exactly from those sums
    /// (`Σ(d − c)² = Σd² − n·c²`, `Σ(d − c)(d_y − c_y) = Σd·d_y − n·c·c_y`).
    pub(super) fn with_target(
        prices: &'a [f64],
        rows: usize,
        cols: usize,
        sums: &[f64],
        target: Option<usize>,
    ) -> CoreResult<Design<'a>> {
        let (n, p) = (rows, cols);
        let nf = n as f64;
        let m0: Vec<f64> = sums[..p].iter().map(|s| s / nf).collect();
        let (mut s1, mut s2, mut sy) = (vec![0.0; p], vec![0.0; p], vec![0.0; p]);
        for (t, r) in prices[..n * p].chunks_exact(p).enumerate() {
            if t % POLL_ROWS == POLL_ROWS - 1 {
                crate::limits::poll()?;
            }
            let dy = target.map_or(0.0, |t| r[t] - m0[t]);
            let it = s1.iter_mut().zip(s2.iter_mut()).zip(sy.iter_mut());
            for (((a, b), c), (&v, &m)) in it.zip(r.iter().zip(&m0)) {
                let d = v - m;
                *a += d;
                *b += d * d;
                *c += d * dy;
            }
        }
        let c: Vec<f64> = s1.iter().map(|s| s / nf).collect();
        let means: Vec<f64> = m0.iter().zip(&c).map(|(m, c)| m + c).collect();
        let diag: Vec<f64> = (0..p)
            .map(|j| (s2[j] - nf * c[j] * c[j]).max(0.0))
            .collect();
        let mut gram = crate::limits::zeroed(p * p, "the Gram matrix")?;
        let mut known = crate::limits::zeroed_of::<bool>(p * p, "the Gram matrix")?;
        for j in 0..p {
            gram[j * p + j] = diag[j];
            known[j * p + j] = true;
        }
        let mut full = vec![false; p];
        if let Some(t) = target {
            for j in 0..p {
                let v = if j == t {
                    diag[j]
                } else {
                    sy[j] - nf * c[j] * c[t]
                };
                gram[t * p + j] = v;
                gram[j * p + t] = v;
                known[t * p + j] = true;
                known[j * p + t] = true;
            }
            full[t] = true;
        }
        Ok(Design {
            n,
            p,
            x: &prices[..n * p],
            means,
            gram,
            known,
            full,
            diag,
            cache: Vec::new(),
            slot: vec![usize::MAX; p],
        })
    }

    /// The design with every Gram entry known (`centred_gram`: one pass over the prices, the
    /// upper triangle only), for few assets (`dense_gram`).
    pub(super) fn dense(
        prices: &'a [f64],
        rows: usize,
        cols: usize,
        sums: &[f64],
    ) -> CoreResult<Design<'a>> {
        let (n, p) = (rows, cols);
        let (gram, means, diag) = super::gram::centred_gram(&prices[..n * p], n, p, sums)?;
        Ok(Design {
            n,
            p,
            x: &prices[..n * p],
            means,
            gram,
            // never read: every row is full
            known: Vec::new(),
            full: vec![true; p],
            diag,
            cache: Vec::new(),
            slot: vec![usize::MAX; p],
        })
    }

    /// The design of a lasso of `target` (any target with `None`): the whole Gram matrix at once
    /// for few assets (`dense_gram`), else rows computed lazily.
    pub(super) fn new(
        prices: &'a [f64],
        rows: usize,
        cols: usize,
        sums: &[f64],
        target: Option<usize>,
    ) -> CoreResult<Design<'a>> {
        if dense_gram(cols) {
            Design::dense(prices, rows, cols, sums)
        } else {
            Design::with_target(prices, rows, cols, sums, target)
        }
    }

    /// Whether the design does not depend on the target (its Gram matrix is complete).
    pub(super) fn is_dense(&self) -> bool {
        self.known.is_empty()
    }

    /// Gather the centred columns `js` not yet cached, in one row-major pass over the prices.
    fn gather(&mut self, js: &[usize]) {
        let (n, p) = (self.n, self.p);
        let mut new: Vec<usize> = js
            .iter()
            .copied()
            .filter(|&j| self.slot[j] == usize::MAX)
            .collect();
        new.sort_unstable();
        new.dedup();
        if new.is_empty() {
            return;
        }
        let base = self.cache.len() / n.max(1);
        for (i, &j) in new.iter().enumerate() {
            self.slot[j] = base + i;
        }
        self.cache.resize((base + new.len()) * n, 0.0);
        let dst = &mut self.cache[base * n..];
        let nm: Vec<f64> = new.iter().map(|&j| self.means[j]).collect();
        for (t, r) in self.x.chunks_exact(p).enumerate() {
            for (i, (&j, &m)) in new.iter().zip(&nm).enumerate() {
                dst[i * n + t] = r[j] - m;
            }
        }
    }

    /// The cached centred columns `js`, copied contiguously (`js.len() x n`, row-major).
    fn packed(&self, js: &[usize]) -> Vec<f64> {
        let n = self.n;
        let mut out = Vec::with_capacity(js.len() * n);
        for &j in js {
            let s = self.slot[j];
            out.extend_from_slice(&self.cache[s * n..(s + 1) * n]);
        }
        out
    }

    /// `dst[i*k + j] = <xc_rows[i], xc_cols[j]>` (row-major `rows.len() x k`), `cols = None`
    /// meaning all `p` columns. The rows' (and a subset's) centred columns come from the cache;
    /// against all columns the GEMM reads the prices in place (B = the row-major prices) and
    /// `means[j] · Σ_t a_it` is subtracted (`Σ a·xc_j = Σ a·x_j − m_j·Σ a`). A large product
    /// over all columns is split by columns into two GEMMs on two threads. The split depends
    /// only on the sizes, and an entry's value does not depend on which other rows or columns
    /// share its GEMM, so the results are deterministic.
    fn gram_products(&mut self, rows: &[usize], cols: Option<&[usize]>) -> Vec<f64> {
        let (n, p) = (self.n, self.p);
        let m = rows.len();
        match cols {
            Some(cs) => {
                let mut all = rows.to_vec();
                all.extend_from_slice(cs);
                self.gather(&all);
                let (a, b) = (self.packed(rows), self.packed(cs));
                let k = cs.len();
                let mut c = vec![0.0; m * k];
                gemm(m, n, k, &a, n, 1, &b, 1, n, 0.0, &mut c, k);
                c
            }
            None => {
                self.gather(rows);
                let a = self.packed(rows);
                let x = self.x;
                let split = p >= 16 && m * n * p >= (1 << 22);
                let p1 = if split { p / 2 } else { p };
                let p2 = p - p1;
                let mut c = vec![0.0; m * p];
                if split {
                    let mut c2 = vec![0.0; m * p2];
                    let cl = &mut c;
                    rayon::join(
                        || gemm(m, n, p1, &a, n, 1, x, p, 1, 0.0, cl, p),
                        || gemm(m, n, p2, &a, n, 1, &x[p1..], p, 1, 0.0, &mut c2, p2),
                    );
                    for i in 0..m {
                        c[i * p + p1..(i + 1) * p].copy_from_slice(&c2[i * p2..(i + 1) * p2]);
                    }
                } else {
                    gemm(m, n, p, &a, n, 1, x, p, 1, 0.0, &mut c, p);
                }
                for i in 0..m {
                    let s = sum8(&a[i * n..(i + 1) * n]);
                    if s != 0.0 {
                        for (v, mj) in c[i * p..(i + 1) * p].iter_mut().zip(&self.means) {
                            *v -= mj * s;
                        }
                    }
                }
                c
            }
        }
    }

    /// Make Gram rows `ks` completely known. Rows of `extra` (in priority order) are computed in
    /// the same pass over the data while the batch has room (up to `PREFETCH_ROWS`): a pass is
    /// memory-bound, so rows likely needed later cost little there and a separate pass later.
    /// Each batch is one GEMM against the prices read in place.
    pub(super) fn ensure_full(&mut self, ks: &[usize], extra: &[usize]) {
        let mut todo: Vec<usize> = ks.iter().copied().filter(|&k| !self.full[k]).collect();
        todo.sort_unstable();
        todo.dedup();
        if todo.is_empty() {
            return;
        }
        for &k in extra {
            if todo.len() >= PREFETCH_ROWS.max(ks.len()) {
                break;
            }
            if !self.full[k] && !todo.contains(&k) {
                todo.push(k);
            }
        }
        todo.sort_unstable();
        let p = self.p;
        for chunk in todo.chunks(MAX_BATCH) {
            let c = self.gram_products(chunk, None);
            for (ci, &k) in chunk.iter().enumerate() {
                for j in 0..p {
                    self.set(k, j, c[ci * p + j]);
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

    /// Make every entry of the block `work × work` known: the rows with a missing entry are
    /// computed together (one GEMM against the gathered working-set columns, or full rows when
    /// the working set is a large part of all columns).
    pub(super) fn ensure_block(&mut self, work: &[usize]) {
        let p = self.p;
        let rows: Vec<usize> = work
            .iter()
            .copied()
            .filter(|&k| !self.full[k] && work.iter().any(|&i| !self.known[k * p + i]))
            .collect();
        if rows.is_empty() {
            return;
        }
        let (n, kw) = (self.n, work.len());
        if 4 * kw >= p || kw * n > GATHER_MAX {
            self.ensure_full(&rows, &[]);
            return;
        }
        for chunk in rows.chunks(MAX_BATCH) {
            let c = self.gram_products(chunk, Some(work));
            for (ci, &k) in chunk.iter().enumerate() {
                for (wi, &i) in work.iter().enumerate() {
                    self.set(k, i, c[ci * kw + wi]);
                }
            }
        }
    }

    pub(super) fn ensure1(&mut self, k: usize) {
        if !self.full[k] {
            self.ensure_full(&[k], &[]);
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
    /// Active-set iterations: cyclic sweeps run over a working set = current nonzeros ∪ the
    /// strongest members of the sequential strong set `{j : |x_jᵀr| ≥ α·n·(2λ − λ_prev)}`
    /// (Tibshirani et al. 2012; `λ_prev` = the λ of the warm start, or λ_max), at most
    /// max(`WS_GROW`, nonzeros) of them, by decreasing |x_jᵀr|. The Gram block of the working set
    /// is computed up front (one GEMM), so a sweep touches only cached entries. After a sweep in
    /// which the largest relative coordinate change is below `tol` (scikit-learn's trigger),
    /// `Xᵀr` is refreshed for all assets from the full Gram rows of the nonzero coefficients, the
    /// global duality gap is checked (stop if `gap ≤ tol·‖y − ȳ‖²`, exactly scikit-learn's rule),
    /// and the strongest KKT violators `|x_jᵀr| > α·n·λ` outside the working set join it
    /// (max(`WS_GROW`, working-set size) of them: the set at least doubles until no asset
    /// violates the KKT conditions, so the certified solution is the global one). Between
    /// checks, every `AA_K + 1` sweeps an Anderson extrapolation of the working set's iterates
    /// replaces the iterate when it lowers the objective (see [`Anderson`]).
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

        // Xᵀ(Xw) for every asset, from the full Gram rows of the nonzero coefficients (missing
        // rows computed in one batch, with rows likely needed later prefetched: the rest of the
        // working set, then the other assets by decreasing |x_jᵀr| as of the last refresh).
        let recompute_qw = |design: &mut Design, w: &[f64], work: &[usize], qw: &mut [f64]| {
            let nz: Vec<usize> = (0..p).filter(|&k| w[k] != 0.0).collect();
            if nz.iter().any(|&k| !design.full[k]) {
                let mut extra: Vec<usize> = work.to_vec();
                let mut rest: Vec<usize> = (0..p)
                    .filter(|&j| {
                        j != target && w[j] == 0.0 && !design.full[j] && design.diag[j] > 0.0
                    })
                    .collect();
                rest.sort_by(|&a, &b| {
                    (q[b] - qw[b])
                        .abs()
                        .partial_cmp(&(q[a] - qw[a]).abs())
                        .unwrap_or(std::cmp::Ordering::Equal)
                        .then(a.cmp(&b))
                });
                rest.truncate(PREFETCH_ROWS);
                extra.extend(rest);
                design.ensure_full(&nz, &extra);
            }
            qw.iter_mut().for_each(|v| *v = 0.0);
            for &k in &nz {
                axpy(w[k], design.row(k), qw);
            }
        };
        let mut qw = vec![0.0; p];
        recompute_qw(self, w, &[], &mut qw);

        let features: Vec<usize> = (0..p)
            .filter(|&j| j != target && self.diag[j] > 0.0)
            .collect();
        // |x_jᵀr| decreasing, ties by index (deterministic).
        let by_strength = |v: &mut Vec<usize>, q: &[f64], qw: &[f64]| {
            v.sort_by(|&a, &b| {
                (q[b] - qw[b])
                    .abs()
                    .partial_cmp(&(q[a] - qw[a]).abs())
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then(a.cmp(&b))
            });
        };
        // Working set: nonzeros ∪ the strongest of the sequential strong set (all features for
        // a pure ridge penalty, where every coefficient is nonzero).
        let strong_thr = if alpha > 0.0 {
            alpha * nf * (2.0 * lambda - lambda_prev)
        } else {
            f64::NEG_INFINITY
        };
        let mut in_work = vec![false; p];
        let mut work: Vec<usize> = Vec::with_capacity(p);
        let mut cand: Vec<usize> = Vec::new();
        for &j in &features {
            if w[j] != 0.0 {
                in_work[j] = true;
                work.push(j);
            } else if (q[j] - qw[j]).abs() >= strong_thr {
                cand.push(j);
            }
        }
        if alpha > 0.0 {
            by_strength(&mut cand, &q, &qw);
            cand.truncate(WS_GROW.max(work.len()));
        }
        for &j in &cand {
            in_work[j] = true;
            work.push(j);
        }
        work.sort_unstable();
        self.ensure_block(&work);
        let mut gap = f64::INFINITY;
        // The working set's Gram block and Xᵀr, copied contiguously (`gc` kw × kw, `qc` kw) so
        // that a coordinate update is one contiguous axpy (the same operations on the same
        // values as the indexed form, which is kept for very large working sets).
        let (mut gc, mut qc): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
        let compact =
            |d: &Design, work: &[usize], qw: &[f64], gc: &mut Vec<f64>, qc: &mut Vec<f64>| {
                gc.clear();
                qc.clear();
                if work.len() * work.len() <= COMPACT_MAX {
                    for &j in work {
                        let row = &d.gram[j * p..(j + 1) * p];
                        gc.extend(work.iter().map(|&i| row[i]));
                    }
                    qc.extend(work.iter().map(|&i| qw[i]));
                }
            };
        compact(self, &work, &qw, &mut gc, &mut qc);
        let mut aa = Anderson::default();
        for it in 0..max_iter {
            let (w_max, d_w_max) = if !qc.is_empty() {
                let kw = work.len();
                let r = sweep(
                    &work,
                    w,
                    &q,
                    &self.diag,
                    l1,
                    l2,
                    &mut Block {
                        qc: &mut qc,
                        gc: &gc,
                        kw,
                    },
                );
                for (u, &i) in work.iter().enumerate() {
                    qw[i] = qc[u];
                }
                r
            } else {
                // Xᵀr is maintained on the working set only (refreshed in full below); the block
                // work × work is known.
                let rows = Rows {
                    qw: &mut qw,
                    gram: &self.gram,
                    p,
                    work: &work,
                };
                sweep(&work, w, &q, &self.diag, l1, l2, &mut { rows })
            };
            *counter += 1;
            let converged_sweep = w_max == 0.0 || d_w_max <= d_w_tol * w_max;
            if !converged_sweep && !qc.is_empty() && aa.step(&work, w, &q, l1, l2, &gc, &mut qc) {
                for (u, &i) in work.iter().enumerate() {
                    qw[i] = qc[u];
                }
            }
            // Like scikit-learn: the gap is checked when the largest coordinate change is small.
            if converged_sweep || it + 1 == max_iter {
                // Refresh Xᵀr for every asset, then the global duality gap.
                recompute_qw(self, w, &work, &mut qw);
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
                // KKT check outside the working set: the strongest violators join it.
                let mut viol: Vec<usize> = features
                    .iter()
                    .copied()
                    .filter(|&j| !in_work[j] && (q[j] - qw[j]).abs() > l1)
                    .collect();
                if !viol.is_empty() {
                    by_strength(&mut viol, &q, &qw);
                    viol.truncate(WS_GROW.max(work.len()));
                    for &j in &viol {
                        in_work[j] = true;
                        work.push(j);
                    }
                    work.sort_unstable();
                    self.ensure_block(&work);
                }
                compact(self, &work, &qw, &mut gc, &mut qc);
                aa.reset();
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
    pub(super) fn basket(&self, target: usize, w: &[f64], lambda: f64, alpha: f64) -> Basket {
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
        // One row-major pass: the spread from the raw prices, and the RSS from the centred
        // residual (accurate even for a near-perfect fit).
        let mut spread = vec![0.0; n];
        let mut rss = 0.0;
        for (s, r) in spread.iter_mut().zip(self.x.chunks_exact(p)) {
            let mut acc = 0.0;
            let mut res = 0.0;
            for &j in &support {
                acc += weights[j] * r[j];
                res += weights[j] * (r[j] - self.means[j]);
            }
            *s = acc;
            rss += res * res;
        }
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

/// `Xᵀ(Xw)` on the working set during a sweep: its entry for the working set's `wi`-th member,
/// and the update when that member's coefficient changes by `d`.
trait WorkXtx {
    fn get(&self, wi: usize) -> f64;
    fn add(&mut self, wi: usize, d: f64);
}

/// The working set's Gram block and `Xᵀ(Xw)` copied contiguously (`gc` kw × kw, `qc` kw): an
/// update is one contiguous axpy.
struct Block<'a> {
    qc: &'a mut [f64],
    gc: &'a [f64],
    kw: usize,
}

impl WorkXtx for Block<'_> {
    #[inline(always)]
    fn get(&self, wi: usize) -> f64 {
        self.qc[wi]
    }
    #[inline(always)]
    fn add(&mut self, wi: usize, d: f64) {
        let kw = self.kw;
        for (v, g) in self.qc.iter_mut().zip(&self.gc[wi * kw..(wi + 1) * kw]) {
            *v += d * g;
        }
    }
}

/// The same read in place from the full Gram rows and the full-length `Xᵀ(Xw)` (for working
/// sets too large to copy; the same operations on the same values).
struct Rows<'a> {
    qw: &'a mut [f64],
    gram: &'a [f64],
    p: usize,
    work: &'a [usize],
}

impl WorkXtx for Rows<'_> {
    #[inline(always)]
    fn get(&self, wi: usize) -> f64 {
        self.qw[self.work[wi]]
    }
    #[inline(always)]
    fn add(&mut self, wi: usize, d: f64) {
        let j = self.work[wi];
        let row = &self.gram[j * self.p..(j + 1) * self.p];
        for &i in self.work {
            self.qw[i] += d * row[i];
        }
    }
}

/// One cyclic coordinate-descent sweep over the working set (scikit-learn's Gram update:
/// soft-threshold of `x_jᵀr + w_j·G_jj`, then `Xᵀ(Xw)` updated by the coordinate's change).
/// Returns (max |w_j|, max |Δw_j|) over the sweep.
#[inline(always)]
fn sweep<X: WorkXtx>(
    work: &[usize],
    w: &mut [f64],
    q: &[f64],
    diag: &[f64],
    l1: f64,
    l2: f64,
    xtx: &mut X,
) -> (f64, f64) {
    let mut w_max = 0.0f64;
    let mut d_w_max = 0.0f64;
    for (wi, &j) in work.iter().enumerate() {
        let gjj = diag[j];
        let wj = w[j];
        let tmp = q[j] - xtx.get(wi) + wj * gjj;
        let new = if tmp.abs() > l1 {
            (tmp - l1.copysign(tmp)) / (gjj + l2)
        } else {
            0.0
        };
        if new != wj {
            xtx.add(wi, new - wj);
            w[j] = new;
        }
        d_w_max = d_w_max.max((new - wj).abs());
        w_max = w_max.max(new.abs());
    }
    (w_max, d_w_max)
}

/// Sweeps between Anderson extrapolations (the history holds `AA_K + 1` iterates).
const AA_K: usize = 5;

/// Anderson acceleration of the sweeps on a working set (Bertrand & Massias 2021, "Anderson
/// acceleration of coordinate descent"): after `AA_K + 1` sweeps, the affine combination
/// `Σ c_i w_i` of the last `AA_K` iterates that minimises the norm of the combined successive
/// differences (`c = z / Σz`, `UᵀU z = 1`) replaces the iterate when it has a lower objective.
/// Coordinate descent on correlated prices converges linearly with a rate close to 1; the
/// extrapolation removes most of that slow error. Stopping is unchanged (the duality gap).
#[derive(Default)]
struct Anderson {
    /// Iterates (working-set coefficients, `kw` each) since the last extrapolation.
    hist: Vec<f64>,
    count: usize,
}

impl Anderson {
    fn reset(&mut self) {
        self.count = 0;
    }

    /// Record the iterate after a sweep; every `AA_K + 1` iterates, try the extrapolation.
    /// Returns whether it replaced `w` (then `qc = G_WW·w_W` is recomputed from `gc`, the
    /// working set's Gram block).
    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        work: &[usize],
        w: &mut [f64],
        q: &[f64],
        l1: f64,
        l2: f64,
        gc: &[f64],
        qc: &mut [f64],
    ) -> bool {
        let kw = work.len();
        if self.count == 0 {
            self.hist.clear();
            self.hist.resize((AA_K + 1) * kw, 0.0);
        }
        let c = self.count;
        for (h, &j) in self.hist[c * kw..(c + 1) * kw].iter_mut().zip(work) {
            *h = w[j];
        }
        self.count += 1;
        if self.count <= AA_K {
            return false;
        }
        self.count = 0;
        // U = successive differences (AA_K x kw), M = U·Uᵀ
        let h = &self.hist;
        let mut m = [[0.0f64; AA_K]; AA_K];
        let diff = |i: usize, v: usize| h[(i + 1) * kw + v] - h[i * kw + v];
        for a in 0..AA_K {
            for b in a..AA_K {
                let mut s = 0.0;
                for v in 0..kw {
                    s += diff(a, v) * diff(b, v);
                }
                m[a][b] = s;
                m[b][a] = s;
            }
        }
        let Some(z) = solve_small(m, [1.0; AA_K]) else {
            return false;
        };
        let zs: f64 = z.iter().sum();
        if !(zs.is_finite() && zs != 0.0) {
            return false;
        }
        let mut we = vec![0.0; kw];
        for (i, zi) in z.iter().enumerate() {
            let ci = zi / zs;
            for (e, x) in we.iter_mut().zip(&h[(i + 1) * kw..(i + 2) * kw]) {
                *e += ci * x;
            }
        }
        if !we.iter().all(|v| v.is_finite()) {
            return false;
        }
        let mut ge = vec![0.0; kw];
        for (g, row) in ge.iter_mut().zip(gc.chunks_exact(kw)) {
            *g = crate::linalg::dot(row, &we);
        }
        // objective on the working set (w is zero elsewhere), without the constant ½yᵀy
        let obj = |wv: &dyn Fn(usize) -> f64, gv: &[f64]| {
            let mut o = 0.0;
            for (v, &j) in work.iter().enumerate() {
                let x = wv(v);
                o += x * (0.5 * gv[v] - q[j]) + l1 * x.abs() + 0.5 * l2 * x * x;
            }
            o
        };
        let cur = obj(&|v| w[work[v]], qc);
        let ext = obj(&|v| we[v], &ge);
        if !(ext < cur) {
            return false;
        }
        for (v, &j) in work.iter().enumerate() {
            w[j] = we[v];
        }
        qc.copy_from_slice(&ge);
        true
    }
}

/// Solve the small system `m·z = b` by Gaussian elimination with partial pivoting; `None` when a
/// pivot is zero or the solution is not finite.
fn solve_small(mut m: [[f64; AA_K]; AA_K], mut b: [f64; AA_K]) -> Option<[f64; AA_K]> {
    for c in 0..AA_K {
        let piv = (c..AA_K).max_by(|&x, &y| m[x][c].abs().total_cmp(&m[y][c].abs()))?;
        if m[piv][c] == 0.0 || !m[piv][c].is_finite() {
            return None;
        }
        m.swap(c, piv);
        b.swap(c, piv);
        for r in c + 1..AA_K {
            let f = m[r][c] / m[c][c];
            for k in c..AA_K {
                m[r][k] -= f * m[c][k];
            }
            b[r] -= f * b[c];
        }
    }
    let mut z = [0.0; AA_K];
    for c in (0..AA_K).rev() {
        let mut s = b[c];
        for k in c + 1..AA_K {
            s -= m[c][k] * z[k];
        }
        z[c] = s / m[c][c];
    }
    z.iter().all(|v| v.is_finite()).then_some(z)
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
    sums: &[f64],
    config: &SparseConfig,
    alpha: f64,
    on_progress: &mut dyn FnMut(usize, f64) -> bool,
) -> CoreResult<SparseResult> {
    let targets: Vec<usize> = match config.target {
        Some(t) => vec![t],
        None => (0..cols).collect(),
    };
    let mut counter = 0usize;
    let mut best: Option<(SparseResult, f64)> = None;
    let mut first_failure: Option<(usize, CoreError)> = None;
    // A design per target (the one a call with `target = t` builds), so that the automatic
    // choice reports exactly the numbers of that call; a dense design serves every target.
    let mut shared: Option<Design> = None;
    for &t in &targets {
        let mut own;
        let design = match &mut shared {
            Some(d) => d,
            None => {
                own = Design::new(prices, rows, cols, sums, Some(t))?;
                if own.is_dense() {
                    shared.insert(own)
                } else {
                    &mut own
                }
            }
        };
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
        let b = design.basket(t, &w, config.lambda, alpha);
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
