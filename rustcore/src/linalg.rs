//! The crate's one small dense linear-algebra module (used by `portfolio` and `sparse`): dot /
//! axpy kernels, Gram matrix, blocked Cholesky, triangular inverse and solves, congruence and
//! the symmetric eigen-decomposition. All matrices are row-major `Vec<f64>`; the heavy products
//! go through nalgebra's `gemm`, which dispatches to `matrixmultiply` (runtime AVX/FMA
//! detection); the eigen-decomposition is nalgebra's `SymmetricEigen`.

#![allow(clippy::neg_cmp_op_on_partial_ord, clippy::needless_range_loop)]

use crate::error::{CoreError, CoreResult};
use nalgebra::{DMatrix, Dyn, MatrixView, MatrixViewMut, SymmetricEigen};

type View<'a> = MatrixView<'a, f64, Dyn, Dyn, Dyn, Dyn>;
type ViewMut<'a> = MatrixViewMut<'a, f64, Dyn, Dyn, Dyn, Dyn>;

/// Block size of the blocked factorisations (the inner kernels are plain loops).
const NB: usize = 48;

/// Dot product with 8 independent accumulators (vectorises without fast-math).
#[inline]
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut s = [0.0f64; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            s[i] += x[i] * y[i];
        }
    }
    let mut tail = 0.0;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])) + tail
}

/// `y += alpha * x`
#[inline]
pub(crate) fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// A strided read-only matrix description (element (i, j) at `off + i*rs + j*cs`).
#[derive(Clone, Copy)]
struct Strided<'a> {
    data: &'a [f64],
    off: usize,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> Strided<'a> {
    fn view(&self) -> View<'a> {
        let d = &self.data[self.off..];
        View::from_slice_with_strides(d, self.rows, self.cols, self.rs, self.cs)
    }
}

/// `c[c_off + i*ldc + j] = beta*c + alpha * (A B)[i][j]` for a row-major destination block.
fn gemm_into(
    c: &mut [f64],
    c_off: usize,
    ldc: usize,
    alpha: f64,
    a: Strided<'_>,
    b: Strided<'_>,
    beta: f64,
) {
    if a.rows == 0 || b.cols == 0 {
        return;
    }
    if a.cols == 0 {
        if beta != 1.0 {
            for i in 0..a.rows {
                for v in &mut c[c_off + i * ldc..c_off + i * ldc + b.cols] {
                    *v *= beta;
                }
            }
        }
        return;
    }
    if a.rows <= 5 || a.cols <= 5 || b.cols <= 5 {
        // nalgebra's small-matrix fallback (gemv per column) mis-handles general row strides,
        // and matrixmultiply is only used above 5 in every dimension: do tiny products here.
        for i in 0..a.rows {
            for jc in 0..b.cols {
                let mut s = 0.0;
                for k in 0..a.cols {
                    s += a.data[a.off + i * a.rs + k * a.cs] * b.data[b.off + k * b.rs + jc * b.cs];
                }
                let dst = &mut c[c_off + i * ldc + jc];
                *dst = if beta == 0.0 {
                    alpha * s
                } else {
                    beta * *dst + alpha * s
                };
            }
        }
        return;
    }
    let av = a.view();
    let bv = b.view();
    let mut cv = ViewMut::from_slice_with_strides_mut(&mut c[c_off..], a.rows, b.cols, ldc, 1);
    cv.gemm(alpha, &av, &bv, beta);
}

/// Gram matrix `X'X` of a row-major `t x n` matrix, returned as a full symmetric row-major
/// `n x n` matrix. Only the upper block triangle is computed (by blocks), then mirrored.
pub(crate) fn gram(x: &[f64], t: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; n * n];
    let nb = if n <= 160 { n } else { 128 };
    let mut i0 = 0;
    while i0 < n {
        if crate::limits::cancelled() {
            break; // the caller polls and reports Cancelled (c is then incomplete and discarded)
        }
        let ni = nb.min(n - i0);
        // A = rows i0..i0+ni of X' (X' is n x t: (i,k) at k*n + i)
        let a = Strided {
            data: x,
            off: i0,
            rows: ni,
            cols: t,
            rs: 1,
            cs: n,
        };
        // B = X[:, i0..n]  (t x (n-i0)), one gemm for the whole block row (upper trapezoid)
        let b = Strided {
            data: x,
            off: i0,
            rows: t,
            cols: n - i0,
            rs: n,
            cs: 1,
        };
        gemm_into(&mut c, i0 * n + i0, n, 1.0, a, b, 0.0);
        i0 += ni;
    }
    for i in 0..n {
        for j in 0..i {
            c[i * n + j] = c[j * n + i];
        }
    }
    c
}

// ---- issue 16: small Gram matrices (portfolio moments) ----

/// Largest padded data matrix (bytes) [`gram_padded`] handles: the whole matrix is streamed once
/// per 4 output rows, so it must stay in the L2 cache; larger inputs go to [`gram`].
pub(crate) const GRAM_PADDED_MAX_BYTES: usize = 512 << 10;

/// Column count of the padded layout [`gram_padded`] expects: `n` rounded up to a multiple of 8.
pub(crate) fn padded_cols(n: usize) -> usize {
    n.div_ceil(8) * 8
}

/// `X'X` (full symmetric row-major `n x n`) of the first `n` columns of a row-major `t x np`
/// matrix whose padding columns `n..np` are zero (`np` = [`padded_cols`]`(n)`). A register-blocked
/// kernel (a tile of output rows x columns held in registers while the rows of X stream by)
/// computes the upper triangle only, with fused multiply-adds where the CPU has them: 8 x 16
/// tiles with AVX-512, 4 x 8 with AVX2 + FMA (the same fused multiply-adds in the same order, so
/// the two give the same bits); each entry is the sum over rows in row order. For inputs up to
/// [`GRAM_PADDED_MAX_BYTES`] (small portfolios) it is ~2x (AVX2) to ~4x (AVX-512) faster than
/// the general gemm path, which packs and computes the full square.
pub(crate) fn gram_padded(x: &[f64], t: usize, np: usize, n: usize) -> Vec<f64> {
    assert!(
        np.is_multiple_of(8) && np >= n && x.len() == t * np,
        "gram_padded: bad layout"
    );
    let mut u = vec![0.0; np * np];
    syrk_upper_with(SyrkKernel::detect(), x, t, np, n, &mut u);
    mirror_upper(&u, np, n)
}

/// The kernels of [`gram_padded`].
#[derive(Clone, Copy, Debug, PartialEq)]
enum SyrkKernel {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    Portable,
}

impl SyrkKernel {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return SyrkKernel::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return SyrkKernel::Avx2Fma;
            }
        }
        SyrkKernel::Portable
    }
}

/// u[i][j] (i < n, j >= i, rounded out to the kernel's tiles) = sum_r x[r][i] x[r][j].
fn syrk_upper_with(k: SyrkKernel, x: &[f64], t: usize, np: usize, n: usize, u: &mut [f64]) {
    assert!(np.is_multiple_of(8) && np >= n && x.len() >= t * np && u.len() >= np * np);
    match k {
        // SAFETY: `detect` chose a kernel whose features the CPU has (the tests call them only
        // when it has them); the assert keeps every tile inside x and u (see the kernels).
        #[cfg(target_arch = "x86_64")]
        SyrkKernel::Avx512 => unsafe { syrk_upper_avx512(x, t, np, n, u) },
        #[cfg(target_arch = "x86_64")]
        SyrkKernel::Avx2Fma => unsafe { syrk_upper_fma(x, t, np, n, u) },
        SyrkKernel::Portable => syrk_upper(x, t, np, n, u),
    }
}

/// 8 x 16 tiles (16 zmm accumulators) from the diagonal on; the last tile of a row is 8 wide
/// when fewer than 16 padded columns remain.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn syrk_upper_avx512(x: &[f64], t: usize, np: usize, n: usize, u: &mut [f64]) {
    use std::arch::x86_64::*;
    let mut i0 = 0;
    while i0 < n {
        if cancelled() {
            return; // the caller polls and reports Cancelled
        }
        let mut j0 = i0;
        while j0 < n {
            let wide = np - j0 >= 16;
            let mut a = [_mm512_setzero_pd(); 16];
            let mut p = x.as_ptr();
            if wide {
                for _ in 0..t {
                    // SAFETY: i0 + 8 <= np and j0 + 16 <= np (np, i0 and j0 are multiples of
                    // 8), and p walks the t rows of x (x.len() >= t * np).
                    let b0 = _mm512_loadu_pd(p.add(j0));
                    let b1 = _mm512_loadu_pd(p.add(j0 + 8));
                    for r in 0..8 {
                        let s = _mm512_set1_pd(*p.add(i0 + r));
                        a[2 * r] = _mm512_fmadd_pd(s, b0, a[2 * r]);
                        a[2 * r + 1] = _mm512_fmadd_pd(s, b1, a[2 * r + 1]);
                    }
                    p = p.add(np);
                }
            } else {
                for _ in 0..t {
                    // SAFETY: as above, j0 + 8 <= np.
                    let b0 = _mm512_loadu_pd(p.add(j0));
                    for r in 0..8 {
                        let s = _mm512_set1_pd(*p.add(i0 + r));
                        a[2 * r] = _mm512_fmadd_pd(s, b0, a[2 * r]);
                    }
                    p = p.add(np);
                }
            }
            for r in 0..8 {
                let o = u.as_mut_ptr().add((i0 + r) * np + j0);
                _mm512_storeu_pd(o, a[2 * r]);
                if wide {
                    _mm512_storeu_pd(o.add(8), a[2 * r + 1]);
                }
            }
            j0 += if wide { 16 } else { 8 };
        }
        i0 += 8;
    }
}

/// 4 x 8 tiles (8 ymm accumulators).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn syrk_upper_fma(x: &[f64], t: usize, np: usize, n: usize, u: &mut [f64]) {
    use std::arch::x86_64::*;
    let mut i0 = 0;
    while i0 < n {
        if cancelled() {
            return; // the caller polls and reports Cancelled
        }
        let mut j0 = i0 / 8 * 8;
        while j0 < n {
            let mut a = [_mm256_setzero_pd(); 8];
            let mut p = x.as_ptr();
            for _ in 0..t {
                // SAFETY: i0 + 4 <= np and j0 + 8 <= np (np is a multiple of 8, i0 of 4), and
                // p walks the t rows of x (x.len() >= t * np).
                let b0 = _mm256_loadu_pd(p.add(j0));
                let b1 = _mm256_loadu_pd(p.add(j0 + 4));
                for r in 0..4 {
                    let s = _mm256_broadcast_sd(&*p.add(i0 + r));
                    a[2 * r] = _mm256_fmadd_pd(s, b0, a[2 * r]);
                    a[2 * r + 1] = _mm256_fmadd_pd(s, b1, a[2 * r + 1]);
                }
                p = p.add(np);
            }
            for r in 0..4 {
                let o = (i0 + r) * np + j0;
                _mm256_storeu_pd(u.as_mut_ptr().add(o), a[2 * r]);
                _mm256_storeu_pd(u.as_mut_ptr().add(o + 4), a[2 * r + 1]);
            }
            j0 += 8;
        }
        i0 += 4;
    }
}

/// 4 x 8 tiles, plain multiply-add (the portable kernel).
fn syrk_upper(x: &[f64], t: usize, np: usize, n: usize, u: &mut [f64]) {
    let mut i0 = 0;
    while i0 < n {
        if cancelled() {
            return; // the caller polls and reports Cancelled
        }
        let mut j0 = i0 / 8 * 8;
        while j0 < n {
            let mut acc = [[0.0f64; 8]; 4];
            for row in x.chunks_exact(np).take(t) {
                let xi: &[f64; 4] = row[i0..i0 + 4].try_into().expect("4");
                let xj: &[f64; 8] = row[j0..j0 + 8].try_into().expect("8");
                for a in 0..4 {
                    for l in 0..8 {
                        acc[a][l] += xi[a] * xj[l];
                    }
                }
            }
            for a in 0..4 {
                let r = (i0 + a) * np + j0;
                u[r..r + 8].copy_from_slice(&acc[a]);
            }
            j0 += 8;
        }
        i0 += 4;
    }
}

fn mirror_upper(u: &[f64], np: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; n * n];
    for i in 0..n {
        for j in i..n {
            let v = u[i * np + j];
            c[i * n + j] = v;
            c[j * n + i] = v;
        }
    }
    c
}

fn cancelled() -> bool {
    crate::limits::cancelled()
}

/// In-place unblocked Cholesky of the `nb x nb` diagonal block at (k0, k0) of the row-major
/// `n`-wide matrix `a` (lower triangle). Returns the failing global index on a non-positive pivot.
fn chol_block(a: &mut [f64], n: usize, k0: usize, nb: usize, floor: &[f64]) -> Result<(), usize> {
    for i in k0..k0 + nb {
        for j in k0..=i {
            let (ri, rj) = (i * n, j * n);
            let s = a[ri + j] - dot(&a[ri + k0..ri + j], &a[rj + k0..rj + j]);
            if i == j {
                if !(s > floor[i]) || !s.is_finite() {
                    return Err(i);
                }
                a[ri + i] = s.sqrt();
            } else {
                a[ri + j] = s / a[rj + j];
            }
        }
    }
    Ok(())
}

/// The "row" [`cholesky`] / [`cholesky_rel`] report when they stopped because the call was
/// cancelled.
pub(crate) const CANCELLED_ROW: usize = usize::MAX;

/// Cholesky factor `L` (row-major, lower; the strict upper triangle is zeroed) of the symmetric
/// positive definite row-major `a` (only its lower triangle is read).
/// Err(i): the leading minor of order i+1 is not positive definite; Err([`CANCELLED_ROW`]):
/// cancelled.
pub(crate) fn cholesky(a: &[f64], n: usize) -> Result<Vec<f64>, usize> {
    cholesky_rel(a, n, 0.0)
}

/// [`cholesky`] that also fails (Err(i)) when the i-th pivot is not above `rel · a_ii`, i.e. the
/// matrix is singular to working precision relative to its diagonal.
pub(crate) fn cholesky_rel(a: &[f64], n: usize, rel: f64) -> Result<Vec<f64>, usize> {
    let floor: Vec<f64> = (0..n).map(|i| rel * a[i * n + i]).collect();
    let mut l = a.to_vec();
    let mut k0 = 0;
    while k0 < n {
        if crate::limits::cancelled() {
            return Err(CANCELLED_ROW); // the caller polls and reports Cancelled
        }
        let kb = NB.min(n - k0);
        let k1 = k0 + kb;
        chol_block(&mut l, n, k0, kb, &floor)?;
        // panel: rows k1..n, columns k0..k1:  L_ik = A_ik L_kk^{-T}
        for i in k1..n {
            let ri = i * n;
            for j in k0..k1 {
                let rj = j * n;
                let s = l[ri + j] - dot(&l[ri + k0..ri + j], &l[rj + k0..rj + j]);
                l[ri + j] = s / l[rj + j];
            }
        }
        // trailing update of the lower part: A[i, k1..=i] -= L[i, k0..k1] L[k1..=i, k0..k1]'
        if k1 < n {
            let mut i0 = k1;
            let rb = 2 * NB;
            while i0 < n {
                let ni = rb.min(n - i0);
                let ncols = i0 + ni - k1; // columns k1 .. i0+ni (covers the lower trapezoid)
                let (head, tail) = l.split_at_mut(i0 * n);
                // P_i = L[i0..i0+ni, k0..k1] lives in `tail`; P_j = L[k1..i0+ni, k0..k1] spans both.
                // Copy the small panel rows to keep the borrows simple (ncols x kb values).
                let mut pj = vec![0.0; ncols * kb];
                for (r, row) in (k1..i0 + ni).enumerate() {
                    let src = if row < i0 {
                        &head[row * n + k0..row * n + k1]
                    } else {
                        let o = (row - i0) * n;
                        &tail[o + k0..o + k1]
                    };
                    pj[r * kb..(r + 1) * kb].copy_from_slice(src);
                }
                let mut pi = vec![0.0; ni * kb];
                for r in 0..ni {
                    let o = r * n;
                    pi[r * kb..(r + 1) * kb].copy_from_slice(&tail[o + k0..o + k1]);
                }
                let a = Strided {
                    data: &pi,
                    off: 0,
                    rows: ni,
                    cols: kb,
                    rs: kb,
                    cs: 1,
                };
                let b = Strided {
                    data: &pj,
                    off: 0,
                    rows: kb,
                    cols: ncols,
                    rs: 1,
                    cs: kb,
                };
                gemm_into(tail, k1, n, -1.0, a, b, 1.0);
                let _ = head;
                i0 += ni;
            }
        }
        k0 = k1;
    }
    for i in 0..n {
        for v in &mut l[i * n + i + 1..(i + 1) * n] {
            *v = 0.0;
        }
    }
    Ok(l)
}

// ---- issue 16: small factorisations (a 50-asset portfolio) ----

/// Largest order factored by [`cholesky_upper_small`] and inverted by [`lower_inverse`] in one
/// block (or by [`inverse_from_upper`]).
/// Below it the blocked algorithms spend their time in short dot products (each pivot row of the
/// left-looking Cholesky is a latency-bound chain of dot -> divide -> dot) and in tiny products.
pub(crate) const SMALL_FACTOR_MAX: usize = 128;

/// [`cholesky_rel`] for small matrices (n <= [`SMALL_FACTOR_MAX`]): the same contract (the lower
/// triangle of `a` is read; Err(i) when the i-th pivot is not above `rel · a_ii` or not finite;
/// L row-major with the strict upper triangle zero). See [`cholesky_upper_small`] (which the
/// portfolio uses directly).
#[cfg(test)]
pub(crate) fn cholesky_small(a: &[f64], n: usize, rel: f64) -> Result<Vec<f64>, usize> {
    cholesky_upper_small(a, n, rel).map(|u| transpose(&u, n))
}

/// The Cholesky factor of a small matrix as U = L' (row-major upper, strict lower triangle
/// zero), [`cholesky_small`]'s contract otherwise. Each entry is a_ij minus u_0i u_0j, minus
/// u_1i u_1j, and so on (subtracted in that order, then divided by the pivot), as a
/// right-looking factorisation on U computes it; here row i of U is computed at once from rows 0..i with a
/// block of the row held in registers (vectorised, AVX2 where the CPU has it: the same
/// operations, so the same bits either way). The sums run in another order than the blocked
/// left-looking algorithm's, so the factor differs from it by rounding.
pub(crate) fn cholesky_upper_small(a: &[f64], n: usize, rel: f64) -> Result<Vec<f64>, usize> {
    assert!(n <= SMALL_FACTOR_MAX && a.len() >= n * n);
    let mut u = vec![0.0; n * n];
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports the feature the function is compiled for.
            unsafe { chol_rows_avx2(a, n, rel, &mut u) }?;
            return Ok(u);
        }
    }
    chol_rows(a, n, rel, &mut u)?;
    Ok(u)
}

/// `m'` (row-major n x n).
pub(crate) fn transpose(m: &[f64], n: usize) -> Vec<f64> {
    let mut t = vec![0.0; n * n];
    for i in 0..n {
        for (k, v) in t[i * n..(i + 1) * n].iter_mut().enumerate() {
            *v = m[k * n + i];
        }
    }
    t
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn chol_rows_avx2(a: &[f64], n: usize, rel: f64, u: &mut [f64]) -> Result<(), usize> {
    chol_rows(a, n, rel, u)
}

/// The width of the next block of a row kept in registers when `rem` entries remain: 32, then
/// 16, 8, 4, 2, 1 (a fixed width keeps the block in registers, where a variable one went
/// through the stack).
#[inline(always)]
fn block_width(rem: usize) -> usize {
    match rem {
        32.. => 32,
        16.. => 16,
        8.. => 8,
        4.. => 4,
        2.. => 2,
        _ => 1,
    }
}

/// U (row-major upper, into the zeroed `u`) with U'U = A, row by row (see
/// [`cholesky_upper_small`]).
#[inline(always)]
fn chol_rows(a: &[f64], n: usize, rel: f64, u: &mut [f64]) -> Result<(), usize> {
    /// `acc[t] = a_{i, j0+t} - Σ_k u_ki u_{k, j0+t}` (k ascending).
    #[inline(always)]
    fn block<const W: usize>(
        a: &[f64],
        done: &[f64],
        n: usize,
        i: usize,
        j0: usize,
        out: &mut [f64],
    ) {
        let mut acc = [0.0f64; W];
        for (t, v) in acc.iter_mut().enumerate() {
            *v = a[(j0 + t) * n + i]; // a_ij from the lower triangle
        }
        for k in 0..i {
            let c = done[k * n + i];
            let uk: &[f64; W] = done[k * n + j0..k * n + j0 + W].try_into().expect("W");
            for t in 0..W {
                acc[t] -= c * uk[t];
            }
        }
        out[j0..j0 + W].copy_from_slice(&acc);
    }
    for i in 0..n {
        let (done, rest) = u.split_at_mut(i * n);
        let ri = &mut rest[..n];
        let mut j0 = i;
        while j0 < n {
            let w = block_width(n - j0);
            match w {
                32 => block::<32>(a, done, n, i, j0, ri),
                16 => block::<16>(a, done, n, i, j0, ri),
                8 => block::<8>(a, done, n, i, j0, ri),
                4 => block::<4>(a, done, n, i, j0, ri),
                2 => block::<2>(a, done, n, i, j0, ri),
                _ => block::<1>(a, done, n, i, j0, ri),
            }
            j0 += w;
        }
        let d = ri[i];
        if !(d > rel * a[i * n + i]) || !d.is_finite() {
            return Err(i);
        }
        let s = d.sqrt();
        ri[i] = s;
        for v in &mut ri[i + 1..] {
            *v /= s;
        }
    }
    Ok(())
}

/// L^{-1} (row-major lower) for L = U' given U (row-major upper, [`cholesky_upper_small`]), n <=
/// [`SMALL_FACTOR_MAX`]: [`lower_inverse`] of L with the same operations (so the same bits: row i
/// is `-(Σ_r l_ir m_r) / l_ii` summed over r in order, zero l_ir skipped), with a block of the
/// row held in registers (AVX2 where the CPU has it) instead of one axpy per r storing and
/// reloading the row.
pub(crate) fn inverse_from_upper(u: &[f64], n: usize) -> Vec<f64> {
    assert!(n <= SMALL_FACTOR_MAX && u.len() >= n * n);
    let mut m = vec![0.0; n * n];
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports the feature the function is compiled for.
            unsafe { inverse_rows_avx2(u, n, &mut m) };
            return m;
        }
    }
    inverse_rows(u, n, &mut m);
    m
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn inverse_rows_avx2(u: &[f64], n: usize, m: &mut [f64]) {
    inverse_rows(u, n, m)
}

#[inline(always)]
fn inverse_rows(u: &[f64], n: usize, m: &mut [f64]) {
    /// Entries e0..e0+W of row i: `-(Σ_r l_ir m_re) / l_ii` (r ascending, zero l_ir skipped).
    /// Rows r < e0 add nothing to them (m_re = 0 for e > r); for e0 <= r < e they add l_ir · 0
    /// to a +0 entry, which leaves it +0, as the axpy form (which stops at entry r) leaves it
    /// untouched.
    #[inline(always)]
    fn block<const W: usize>(
        u: &[f64],
        prev: &[f64],
        n: usize,
        i: usize,
        e0: usize,
        out: &mut [f64],
    ) {
        let mut acc = [0.0f64; W];
        for r in e0..i {
            let c = u[r * n + i]; // l_ir
            if c != 0.0 {
                let mr: &[f64; W] = prev[r * n + e0..r * n + e0 + W].try_into().expect("W");
                for t in 0..W {
                    acc[t] += c * mr[t];
                }
            }
        }
        let lii = u[i * n + i];
        for (d, v) in out[e0..e0 + W].iter_mut().zip(&acc) {
            *d = -*v / lii;
        }
    }
    for i in 0..n {
        let (prev, cur) = m.split_at_mut(i * n);
        let mut e0 = 0;
        while e0 < i {
            let w = block_width(i - e0);
            match w {
                32 => block::<32>(u, prev, n, i, e0, cur),
                16 => block::<16>(u, prev, n, i, e0, cur),
                8 => block::<8>(u, prev, n, i, e0, cur),
                4 => block::<4>(u, prev, n, i, e0, cur),
                2 => block::<2>(u, prev, n, i, e0, cur),
                _ => block::<1>(u, prev, n, i, e0, cur),
            }
            e0 += w;
        }
        cur[i] = 1.0 / u[i * n + i];
    }
}

/// Inverse of a lower-triangular row-major `l` (result lower triangular, row-major). Blocked
/// (forward substitution inside blocks of `NB` rows, gemm for the rest) above
/// [`SMALL_FACTOR_MAX`]; one block (forward substitution only, AVX2 where the CPU has it: the same
/// operations, so the same bits) up to it.
pub(crate) fn lower_inverse(l: &[f64], n: usize) -> Vec<f64> {
    let mut m = vec![0.0; n * n];
    if n <= SMALL_FACTOR_MAX {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports the feature the function is compiled for.
                unsafe { forward_inverse_avx2(l, n, &mut m) };
                return m;
            }
        }
        forward_inverse_block(l, n, 0, n, &mut m);
        return m;
    }
    let mut i0 = 0;
    while i0 < n {
        if crate::limits::cancelled() {
            break; // the caller polls and reports Cancelled
        }
        let ib = NB.min(n - i0);
        let i1 = i0 + ib;
        let (done, rest) = m.split_at_mut(i0 * n);
        // T = L[i0..i1, 0..i0] * M[0..i0, 0..i0]   (ib x i0), written into the block row
        if i0 > 0 {
            let a = Strided {
                data: l,
                off: i0 * n,
                rows: ib,
                cols: i0,
                rs: n,
                cs: 1,
            };
            let b = Strided {
                data: done,
                off: 0,
                rows: i0,
                cols: i0,
                rs: n,
                cs: 1,
            };
            gemm_into(rest, 0, n, 1.0, a, b, 0.0);
        }
        forward_inverse_block(l, n, i0, i1, rest);
        i0 = i1;
    }
    m
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn forward_inverse_avx2(l: &[f64], n: usize, m: &mut [f64]) {
    forward_inverse_block(l, n, 0, n, m)
}

/// Forward substitution inside the block of rows i0..i1 of L^{-1}: L_II X = -T (columns 0..i0,
/// `rest` holding T = L[i0..i1, 0..i0] M[0..i0, 0..i0] there), L_II X = I (the block's columns).
/// `rest` is the inverse from row i0 on.
#[inline(always)]
fn forward_inverse_block(l: &[f64], n: usize, i0: usize, i1: usize, rest: &mut [f64]) {
    for i in i0..i1 {
        let ri = i * n;
        let lii = l[ri + i];
        let (prev, cur) = rest.split_at_mut((i - i0) * n);
        let row = &mut cur[..i];
        for r in i0..i {
            let c = l[ri + r];
            if c != 0.0 {
                let o = (r - i0) * n;
                axpy(c, &prev[o..o + r + 1], &mut row[..r + 1]);
            }
        }
        for v in row.iter_mut() {
            *v = -*v / lii;
        }
        cur[i] = 1.0 / lii;
    }
}

/// Solve `L y = b` (forward) then `L' x = y` (backward) in place: `x = (L L')^{-1} b`.
pub(crate) fn chol_solve(l: &[f64], n: usize, b: &mut [f64]) {
    forward_solve(l, n, b);
    back_solve_t(l, n, b);
}

/// `y = A x` for a full symmetric (or any) row-major `n x n` matrix.
pub(crate) fn matvec(a: &[f64], n: usize, x: &[f64], y: &mut [f64]) {
    for i in 0..n {
        y[i] = dot(&a[i * n..(i + 1) * n], x);
    }
}

/// x ← L⁻¹ x.
pub(crate) fn forward_solve(l: &[f64], n: usize, x: &mut [f64]) {
    for i in 0..n {
        let s = x[i] - dot(&l[i * n..i * n + i], &x[..i]);
        x[i] = s / l[i * n + i];
    }
}

/// x ← L⁻ᵀ x.
pub(crate) fn back_solve_t(l: &[f64], n: usize, x: &mut [f64]) {
    for i in (0..n).rev() {
        x[i] /= l[i * n + i];
        let xi = x[i];
        if xi != 0.0 {
            axpy(-xi, &l[i * n..i * n + i], &mut x[..i]);
        }
    }
}

/// B ← L⁻¹ B for a row-major n x m matrix B.
pub(crate) fn forward_solve_cols(l: &[f64], n: usize, b: &mut [f64], m: usize) {
    for i in 0..n {
        if crate::limits::cancelled() {
            return; // the caller polls right after and reports Cancelled
        }
        for k in 0..i {
            let lik = l[i * n + k];
            if lik != 0.0 {
                let (head, tail) = b.split_at_mut(i * m);
                axpy(-lik, &head[k * m..(k + 1) * m], &mut tail[..m]);
            }
        }
        let inv = 1.0 / l[i * n + i];
        for v in &mut b[i * m..(i + 1) * m] {
            *v *= inv;
        }
    }
}

/// C = L⁻¹ A L⁻ᵀ (symmetrised) for symmetric A.
pub(crate) fn congruence(l: &[f64], n: usize, a: &[f64]) -> Vec<f64> {
    let mut b = a.to_vec();
    forward_solve_cols(l, n, &mut b, n); // B = L⁻¹ A
                                         // C = (L⁻¹ Bᵀ)ᵀ ... Bᵀ = A L⁻ᵀ·... : C = L⁻¹ (L⁻¹ A)ᵀ since A symmetric.
    let mut bt = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            bt[j * n + i] = b[i * n + j];
        }
    }
    forward_solve_cols(l, n, &mut bt, n);
    for i in 0..n {
        for j in (i + 1)..n {
            let v = 0.5 * (bt[i * n + j] + bt[j * n + i]);
            bt[i * n + j] = v;
            bt[j * n + i] = v;
        }
    }
    bt
}

/// Eigen-decomposition of a symmetric matrix (row-major n x n; nalgebra's `SymmetricEigen`:
/// Householder tridiagonalisation and implicit symmetric QR). Returns the eigenvalues in
/// ascending order and the eigenvectors column-major (vector e is `v[e*n .. (e+1)*n]`).
pub(crate) fn symmetric_eigen(a: &[f64], n: usize) -> CoreResult<(Vec<f64>, Vec<f64>)> {
    if n == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    crate::limits::poll()?;
    let m = DMatrix::from_row_slice(n, n, a);
    let eig = SymmetricEigen::try_new(m, f64::EPSILON, 1000 * n.max(10))
        .ok_or_else(|| CoreError::numerical("symmetric eigenvalue solver did not converge"))?;
    crate::limits::poll()?;
    let d = eig.eigenvalues.as_slice();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&x, &y| d[x].partial_cmp(&d[y]).unwrap_or(std::cmp::Ordering::Equal));
    let vals: Vec<f64> = order.iter().map(|&i| d[i]).collect();
    let v = eig.eigenvectors.as_slice(); // column-major
    let mut vecs = vec![0.0; n * n];
    for (dst, &src) in order.iter().enumerate() {
        vecs[dst * n..(dst + 1) * n].copy_from_slice(&v[src * n..(src + 1) * n]);
    }
    if vals.iter().chain(vecs.iter()).any(|x| !x.is_finite()) {
        return Err(CoreError::numerical(
            "symmetric eigenvalue solver produced non-finite values",
        ));
    }
    Ok((vals, vecs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spd(n: usize, seed: u64) -> Vec<f64> {
        // B B' + n I with a small LCG
        let mut r = crate::num::uniform(seed);
        let b: Vec<f64> = (0..n * n).map(|_| r()).collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = dot(&b[i * n..(i + 1) * n], &b[j * n..(j + 1) * n])
                    + if i == j { 1.0 } else { 0.0 };
            }
        }
        a
    }

    #[test]
    fn gram_matches_naive() {
        for &(t, n) in &[(7usize, 3usize), (300, 170), (50, 5), (9, 50), (400, 200)] {
            let x: Vec<f64> = (0..t * n)
                .map(|k| ((k * 37 % 101) as f64 - 50.0) / 7.0)
                .collect();
            let g = gram(&x, t, n);
            for i in 0..n {
                for j in 0..n {
                    let mut s = 0.0;
                    for k in 0..t {
                        s += x[k * n + i] * x[k * n + j];
                    }
                    assert!(
                        (g[i * n + j] - s).abs() <= 1e-9 * (1.0 + s.abs()),
                        "{t}x{n} ({i},{j})"
                    );
                }
            }
        }
    }

    #[test]
    fn cholesky_inverse_and_solve() {
        for &n in &[1usize, 3, 47, 48, 49, 50, 53, 130, 200] {
            let a = spd(n, n as u64 + 1);
            let l = cholesky(&a, n).unwrap();
            // L L' == A
            for i in 0..n {
                for j in 0..=i {
                    let s = dot(&l[i * n..i * n + n], &l[j * n..j * n + n]);
                    assert!((s - a[i * n + j]).abs() < 1e-10 * (1.0 + a[i * n + j].abs()));
                }
            }
            let m = lower_inverse(&l, n);
            for i in 0..n {
                for j in 0..n {
                    let mut s = 0.0;
                    for k in 0..n {
                        s += m[i * n + k] * l[k * n + j];
                    }
                    let e = if i == j { 1.0 } else { 0.0 };
                    assert!((s - e).abs() < 1e-10, "n={n} ({i},{j}) {s}");
                }
            }
            let xs: Vec<f64> = (0..n).map(|i| i as f64 - 1.5).collect();
            let mut b = vec![0.0; n];
            matvec(&a, n, &xs, &mut b);
            chol_solve(&l, n, &mut b);
            for i in 0..n {
                assert!((b[i] - xs[i]).abs() < 1e-9);
            }
        }
    }

    /// Every kernel of `gram_padded` the CPU has against a naive sum; the fused kernels
    /// (AVX-512 and AVX2 + FMA) give the same bits as a row-order chain of fused multiply-adds.
    #[test]
    fn gram_padded_kernels_agree() {
        let mut kernels = vec![SyrkKernel::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                kernels.push(SyrkKernel::Avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                kernels.push(SyrkKernel::Avx2Fma);
            }
        }
        let mut r = crate::num::uniform(7);
        for &(t, n) in &[
            (1usize, 1usize),
            (3, 2),
            (9, 7),
            (10, 8),
            (33, 9),
            (50, 15),
            (40, 16),
            (64, 17),
            (499, 50),
            (120, 63),
            (200, 64),
            (130, 65),
            (700, 100),
        ] {
            let np = padded_cols(n);
            let mut x = vec![0.0; t * np];
            for row in x.chunks_exact_mut(np) {
                for v in &mut row[..n] {
                    *v = r() * 1e-2;
                }
            }
            let mut fused: Option<Vec<f64>> = None;
            for &k in &kernels {
                let mut u = vec![f64::NAN; np * np];
                syrk_upper_with(k, &x, t, np, n, &mut u);
                let c = mirror_upper(&u, np, n);
                for i in 0..n {
                    for j in 0..n {
                        let (mut e, mut f) = (0.0f64, 0.0f64);
                        for row in x.chunks_exact(np) {
                            e += row[i] * row[j];
                            f = row[i].mul_add(row[j], f);
                        }
                        let g = c[i * n + j];
                        assert!(
                            (g - e).abs() <= 1e-13 * (1.0 + e.abs()),
                            "{k:?} {t}x{n} ({i},{j})"
                        );
                        if k != SyrkKernel::Portable {
                            assert_eq!(g.to_bits(), f.to_bits(), "{k:?} {t}x{n} ({i},{j})");
                        }
                    }
                }
                if k != SyrkKernel::Portable {
                    if let Some(prev) = &fused {
                        assert_eq!(prev, &c, "{k:?} {t}x{n}");
                    }
                    fused = Some(c);
                }
            }
            assert_eq!(gram_padded(&x, t, np, n).len(), n * n);
        }
    }

    /// The right-looking Cholesky on the upper triangle (the reference of `chol_rows`).
    fn right_looking_upper(u: &mut [f64], n: usize) {
        for k in 0..n {
            let (head, tail) = u.split_at_mut((k + 1) * n);
            let rk = &mut head[k * n..(k + 1) * n];
            let s = rk[k].sqrt();
            rk[k] = s;
            for v in &mut rk[k + 1..] {
                *v /= s;
            }
            for i in k + 1..n {
                let c = rk[i];
                let o = (i - k - 1) * n;
                for (x, y) in tail[o + i..o + n].iter_mut().zip(&rk[i..]) {
                    *x -= c * y;
                }
            }
        }
    }

    #[test]
    fn small_cholesky_agrees_with_the_blocked_one() {
        for &n in &[1usize, 2, 3, 7, 8, 47, 48, 49, 50, 53, 100, 127, 128] {
            let mut a = spd(n, n as u64 + 11);
            // the upper triangle is not read
            for i in 0..n {
                for j in i + 1..n {
                    a[i * n + j] = f64::NAN;
                }
            }
            let big = cholesky_rel(&a, n, 0.0).unwrap();
            let small = cholesky_small(&a, n, 0.0).unwrap();
            for i in 0..n {
                for j in 0..n {
                    let (x, y) = (big[i * n + j], small[i * n + j]);
                    if j > i {
                        assert_eq!(y.to_bits(), 0.0f64.to_bits());
                    } else {
                        assert!(
                            (x - y).abs() <= 1e-12 * (1.0 + x.abs()),
                            "n={n} ({i},{j}) {x} {y}"
                        );
                    }
                }
            }
            // bits: the row-blocked factor is the right-looking one on U, its inverse the
            // axpy-form forward substitution on L, with and without AVX2
            let u = cholesky_upper_small(&a, n, 0.0).unwrap();
            assert_eq!(transpose(&u, n), small);
            let mut r = vec![0.0; n * n];
            for i in 0..n {
                for k in 0..=i {
                    r[k * n + i] = a[i * n + k];
                }
            }
            right_looking_upper(&mut r, n);
            assert_eq!(r, u, "n={n}");
            let mut m1 = vec![0.0; n * n];
            forward_inverse_block(&small, n, 0, n, &mut m1);
            let m2 = inverse_from_upper(&u, n);
            let bits = |x: &[f64]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&m1), bits(&m2), "n={n}");
            assert_eq!(bits(&m1), bits(&lower_inverse(&small, n)), "n={n}");
            let mut u2 = vec![0.0; n * n];
            chol_rows(&a, n, 0.0, &mut u2).unwrap();
            assert_eq!(u2, u, "n={n}: the portable build gives the same bits");
            let mut m3 = vec![0.0; n * n];
            inverse_rows(&u, n, &mut m3);
            assert_eq!(bits(&m3), bits(&m2), "n={n}");
        }
        // a pivot at or below the relative floor, a NaN, an indefinite matrix: the same Err(i)
        let mut a = spd(6, 3);
        for (i, v) in [(0usize, f64::NAN), (0, -1.0), (0, 0.0)] {
            let mut b = a.clone();
            b[i * 6 + i] = v;
            assert_eq!(cholesky_small(&b, 6, 0.0), Err(i));
            assert_eq!(cholesky_rel(&b, 6, 0.0), Err(i));
        }
        // row 3 a copy of row 2 (and column): singular at pivot 3
        for j in 0..6 {
            a[3 * 6 + j] = a[2 * 6 + j];
        }
        for i in 0..6 {
            a[i * 6 + 3] = a[i * 6 + 2];
        }
        a[3 * 6 + 3] = a[2 * 6 + 2];
        assert_eq!(cholesky_small(&a, 6, 1e-10), Err(3));
        assert_eq!(cholesky_rel(&a, 6, 1e-10), Err(3));
    }

    #[test]
    fn cholesky_rejects_indefinite() {
        let a = vec![1.0, 2.0, 2.0, 1.0];
        assert_eq!(cholesky(&a, 2), Err(1));
    }
}
