//! The whole Gram matrix of the centred prices in one pass (a SYRK: the upper triangle only), for
//! designs with few assets, where every entry costs less than the lazily computed rows (their
//! GEMMs pack all the prices again on every call and compute a batch of rows at a time).
//!
//! The prices are read once, row-major, in blocks of `KC` rows: each block is centred (by the
//! column means of the validation's sums) into a small zero-padded buffer that stays in cache,
//! and the upper-triangle tiles of `DᵀD` are accumulated from it by a register-tiled kernel
//! (AVX-512 or AVX2 + FMA when the CPU has them, chosen at run time; portable otherwise). Large
//! products are split by rows into two halves summed on two threads; the split depends only on
//! the sizes, so the result is deterministic.

/// Rows of prices per block (the block's centred copy, `KC × ld` values, stays in L2).
const KC: usize = 128;
/// Products (n · p²) from which the rows are split over two threads.
const SPLIT_WORK: usize = 1 << 21;

/// The padded row length of the centred blocks and of the accumulator (`p` rounded up to 8,
/// plus 8: room for the widest tile of every kernel; the padding columns stay zero).
fn padded(p: usize) -> usize {
    p.div_ceil(8) * 8 + 8
}

#[derive(Clone, Copy)]
enum Isa {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Portable,
}

fn isa() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Isa::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Isa::Avx2;
        }
    }
    Isa::Portable
}

/// `acc[i*ld + j] += Σ_t d[t*ld + i] · d[t*ld + j]` for the tiles of the upper triangle
/// (`d`: `kc` centred rows of `ld` values, columns `p..ld` zero).
fn block_products(isa: Isa, d: &[f64], kc: usize, ld: usize, p: usize, acc: &mut [f64]) {
    assert!(ld.is_multiple_of(8) && p + 8 <= ld && d.len() >= kc * ld && acc.len() >= ld * ld);
    match isa {
        // SAFETY: the CPU has the features the kernels are compiled for (`isa()`); the assert
        // above keeps every access inside the slices (tiles never pass column or row `ld`).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { tiles_avx512(d, kc, ld, p, acc) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { tiles_avx2(d, kc, ld, p, acc) },
        Isa::Portable => tiles_portable(d, kc, ld, p, acc),
    }
}

/// 8 × 16 tiles (16 zmm accumulators) from the diagonal on, the last one of a row 8 wide when
/// at most 8 columns remain.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tiles_avx512(d: &[f64], kc: usize, ld: usize, p: usize, acc: &mut [f64]) {
    use std::arch::x86_64::*;
    let mut i0 = 0;
    while i0 < p {
        let mut j0 = i0;
        while j0 < p {
            let wide = p - j0 > 8;
            let mut c = [_mm512_setzero_pd(); 16];
            let mut r = d.as_ptr();
            if wide {
                for _ in 0..kc {
                    // SAFETY: i0 + 8 <= ld, j0 + 16 <= ld (ld >= p rounded up to 8, + 8), and r
                    // walks the kc rows of d.
                    let b0 = _mm512_loadu_pd(r.add(j0));
                    let b1 = _mm512_loadu_pd(r.add(j0 + 8));
                    for a in 0..8 {
                        let s = _mm512_set1_pd(*r.add(i0 + a));
                        c[2 * a] = _mm512_fmadd_pd(s, b0, c[2 * a]);
                        c[2 * a + 1] = _mm512_fmadd_pd(s, b1, c[2 * a + 1]);
                    }
                    r = r.add(ld);
                }
            } else {
                for _ in 0..kc {
                    // SAFETY: as above, j0 + 8 <= ld.
                    let b0 = _mm512_loadu_pd(r.add(j0));
                    for a in 0..8 {
                        let s = _mm512_set1_pd(*r.add(i0 + a));
                        c[2 * a] = _mm512_fmadd_pd(s, b0, c[2 * a]);
                    }
                    r = r.add(ld);
                }
            }
            for a in 0..8 {
                let o = acc.as_mut_ptr().add((i0 + a) * ld + j0);
                _mm512_storeu_pd(o, _mm512_add_pd(_mm512_loadu_pd(o), c[2 * a]));
                if wide {
                    let o = o.add(8);
                    _mm512_storeu_pd(o, _mm512_add_pd(_mm512_loadu_pd(o), c[2 * a + 1]));
                }
            }
            j0 += if wide { 16 } else { 8 };
        }
        i0 += 8;
    }
}

/// 4 × 12 tiles (12 ymm accumulators).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tiles_avx2(d: &[f64], kc: usize, ld: usize, p: usize, acc: &mut [f64]) {
    use std::arch::x86_64::*;
    let mut i0 = 0;
    while i0 < p {
        let mut j0 = i0 / 4 * 4;
        while j0 < p {
            // the last tile of a row may be 4 or 8 wide (ld is a multiple of 8, not of 12)
            let w = (ld - j0).min(12) / 4;
            let mut c = [_mm256_setzero_pd(); 12];
            let mut r = d.as_ptr();
            for _ in 0..kc {
                // SAFETY: i0 + 4 <= ld and j0 + 4w <= ld, and r walks the kc rows of d.
                let b = [
                    _mm256_loadu_pd(r.add(j0)),
                    if w > 1 {
                        _mm256_loadu_pd(r.add(j0 + 4))
                    } else {
                        _mm256_setzero_pd()
                    },
                    if w > 2 {
                        _mm256_loadu_pd(r.add(j0 + 8))
                    } else {
                        _mm256_setzero_pd()
                    },
                ];
                for a in 0..4 {
                    let s = _mm256_broadcast_sd(&*r.add(i0 + a));
                    for v in 0..3 {
                        c[3 * a + v] = _mm256_fmadd_pd(s, b[v], c[3 * a + v]);
                    }
                }
                r = r.add(ld);
            }
            for a in 0..4 {
                for v in 0..w {
                    let o = acc.as_mut_ptr().add((i0 + a) * ld + j0 + 4 * v);
                    _mm256_storeu_pd(o, _mm256_add_pd(_mm256_loadu_pd(o), c[3 * a + v]));
                }
            }
            j0 += 12;
        }
        i0 += 4;
    }
}

/// 4 × 4 tiles, plain multiply-add.
fn tiles_portable(d: &[f64], kc: usize, ld: usize, p: usize, acc: &mut [f64]) {
    let mut i0 = 0;
    while i0 < p {
        let mut j0 = i0;
        while j0 < p {
            let mut c = [[0.0f64; 4]; 4];
            for row in d[..kc * ld].chunks_exact(ld) {
                let a: &[f64; 4] = row[i0..i0 + 4].try_into().unwrap();
                let b: &[f64; 4] = row[j0..j0 + 4].try_into().unwrap();
                for x in 0..4 {
                    for y in 0..4 {
                        c[x][y] += a[x] * b[y];
                    }
                }
            }
            for x in 0..4 {
                for y in 0..4 {
                    acc[(i0 + x) * ld + j0 + y] += c[x][y];
                }
            }
            j0 += 4;
        }
        i0 += 4;
    }
}

/// `DᵀD` (upper triangle valid, `ld × ld`) and the column sums of `D` for the rows `t0..t1`,
/// `D = prices − shift`.
fn half(
    isa: Isa,
    prices: &[f64],
    p: usize,
    rows: std::ops::Range<usize>,
    shift: &[f64],
) -> crate::error::CoreResult<(Vec<f64>, Vec<f64>)> {
    let ld = padded(p);
    let mut buf = vec![0.0; KC * ld];
    let mut acc = vec![0.0; ld * ld];
    let mut s1 = vec![0.0; p];
    let mut t0 = rows.start;
    while t0 < rows.end {
        let t1 = (t0 + KC).min(rows.end);
        for (src, dst) in prices[t0 * p..t1 * p]
            .chunks_exact(p)
            .zip(buf.chunks_exact_mut(ld))
        {
            for (((d, &x), &m), s) in dst.iter_mut().zip(src).zip(shift).zip(s1.iter_mut()) {
                let v = x - m;
                *d = v;
                *s += v;
            }
        }
        block_products(isa, &buf, t1 - t0, ld, p, &mut acc);
        crate::limits::poll()?;
        t0 = t1;
    }
    Ok((acc, s1))
}

/// The Gram matrix of the prices (`n × p`, row-major) centred by their column means, `p × p`
/// (symmetric, computed from the upper triangle), the means, and its diagonal. `sums` are the
/// column sums: the data are centred by `sums / n` while being read, and the products corrected
/// by the exact two-pass term (`Σ(d_i − c_i)(d_j − c_j) = Σd_i·d_j − n·c_i·c_j`, `c = Σd / n`),
/// so that the result is that of the columns centred by their refined means.
pub(super) fn centred_gram(
    prices: &[f64],
    n: usize,
    p: usize,
    sums: &[f64],
) -> crate::error::CoreResult<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    centred_gram_with(isa(), prices, n, p, sums)
}

fn centred_gram_with(
    isa: Isa,
    prices: &[f64],
    n: usize,
    p: usize,
    sums: &[f64],
) -> crate::error::CoreResult<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let nf = n as f64;
    let m0: Vec<f64> = sums[..p].iter().map(|s| s / nf).collect();
    let (acc, s1) = if n >= 2 * KC && n * p * p >= SPLIT_WORK {
        let h = n / 2;
        let (a, b) = rayon::join(
            || half(isa, prices, p, 0..h, &m0),
            || half(isa, prices, p, h..n, &m0),
        );
        let (mut a, b) = (a?, b?);
        for (x, y) in a.0.iter_mut().zip(&b.0) {
            *x += y;
        }
        for (x, y) in a.1.iter_mut().zip(&b.1) {
            *x += y;
        }
        a
    } else {
        half(isa, prices, p, 0..n, &m0)?
    };
    let ld = padded(p);
    let c: Vec<f64> = s1.iter().map(|s| s / nf).collect();
    let means: Vec<f64> = m0.iter().zip(&c).map(|(m, c)| m + c).collect();
    let mut gram = crate::limits::zeroed(p * p, "the Gram matrix")?;
    let mut diag = vec![0.0; p];
    for i in 0..p {
        diag[i] = (acc[i * ld + i] - nf * c[i] * c[i]).max(0.0);
        gram[i * p + i] = diag[i];
        for j in i + 1..p {
            let v = acc[i * ld + j] - nf * c[i] * c[j];
            gram[i * p + j] = v;
            gram[j * p + i] = v;
        }
    }
    Ok((gram, means, diag))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every kernel this CPU can run.
    fn kernels() -> Vec<Isa> {
        let mut v = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                v.push(Isa::Avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                v.push(Isa::Avx2);
            }
        }
        v
    }

    /// The textbook two-pass centred Gram matrix and the bound of its difference to ours: a few
    /// ulps of `Σ|a|·|b|` (a = x_i − m_i, b = x_j − m_j) for the products' rounding, plus what
    /// a change of the means within their rounding δ = 4 ulp(m) does to the sum,
    /// `n·δ_i·δ_j + δ_i·|Σb| + δ_j·|Σa|` (the centred values are only defined to δ).
    fn reference(x: &[f64], n: usize, p: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut m = vec![0.0; p];
        for j in 0..p {
            m[j] = (0..n).map(|t| x[t * p + j]).sum::<f64>() / n as f64;
            let c = (0..n).map(|t| x[t * p + j] - m[j]).sum::<f64>() / n as f64;
            m[j] += c;
        }
        let delta: Vec<f64> = m.iter().map(|v| 4.0 * f64::EPSILON * v.abs()).collect();
        let sa: Vec<f64> = (0..p)
            .map(|j| (0..n).map(|t| x[t * p + j] - m[j]).sum::<f64>().abs())
            .collect();
        let (mut g, mut bound) = (vec![0.0; p * p], vec![0.0; p * p]);
        for i in 0..p {
            for j in 0..p {
                let mut abs = 0.0;
                for t in 0..n {
                    let (a, b) = (x[t * p + i] - m[i], x[t * p + j] - m[j]);
                    g[i * p + j] += a * b;
                    abs += (a * b).abs();
                }
                bound[i * p + j] = 1e-12 * abs
                    + 4.0 * (n as f64 * delta[i] * delta[j] + delta[i] * sa[j] + delta[j] * sa[i]);
            }
        }
        (g, bound, m)
    }

    fn check(x: &[f64], n: usize, p: usize) -> Result<(), TestCaseError> {
        let sums: Vec<f64> = (0..p).map(|j| (0..n).map(|t| x[t * p + j]).sum()).collect();
        let (g0, bound, m0) = reference(x, n, p);
        for isa in kernels() {
            let (g, m, d) = centred_gram_with(isa, x, n, p, &sums).unwrap();
            for i in 0..p {
                prop_assert_eq!(g[i * p + i], d[i]);
                let tol_m = 1e-14 * (m0[i].abs() + 1.0);
                prop_assert!(
                    (m[i] - m0[i]).abs() <= tol_m,
                    "mean {}: {} vs {}",
                    i,
                    m[i],
                    m0[i]
                );
                for j in 0..p {
                    // symmetric by construction, and within rounding of the reference
                    prop_assert_eq!(g[i * p + j].to_bits(), g[j * p + i].to_bits());
                    let err = (g[i * p + j] - g0[i * p + j]).abs();
                    let tol = bound[i * p + j] + 1e-300;
                    prop_assert!(
                        err <= tol,
                        "({}, {}) n {} p {}: {} vs {}",
                        i,
                        j,
                        n,
                        p,
                        g[i * p + j],
                        g0[i * p + j]
                    );
                }
            }
        }
        Ok(())
    }

    #[test]
    fn every_kernel_matches_the_two_pass_reference_on_every_shape() {
        // shapes around the tile widths (4, 8, 12, 16), the block (KC) and the two-thread split
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        for &(n, p) in &[
            (1, 1),
            (2, 3),
            (7, 5),
            (10, 8),
            (13, 9),
            (20, 12),
            (31, 16),
            (40, 17),
            (129, 23),
            (257, 33),
            (300, 40),
            (700, 60),
            (1030, 47),
        ] {
            let x: Vec<f64> = (0..n * p).map(|_| 100.0 + 10.0 * next()).collect();
            check(&x, n, p).unwrap();
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Levels far from zero with small variations (the centring must happen before the
        /// products: `XᵀX − n·μμᵀ` would lose every digit here).
        #[test]
        fn accurate_on_large_levels(n in 1usize..300, p in 1usize..30, level in -1e9f64..1e9,
                                    spread in 1e-6f64..10.0, seed in any::<u64>()) {
            let mut s = seed | 1;
            let x: Vec<f64> = (0..n * p).map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                level + spread * ((s >> 11) as f64 / (1u64 << 53) as f64 - 0.5)
            }).collect();
            check(&x, n, p)?;
        }
    }
}
