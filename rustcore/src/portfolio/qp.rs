//! Dense strictly convex QP solver: the dual active-set method of Goldfarb & Idnani (1983),
//! the algorithm of R's / Python's `quadprog`, specialised to the constraint shapes of portfolio
//! problems so that each step costs O(n) for the constraint algebra and O(n * free) for the
//! basis update (one Householder reflection per added constraint).
//!
//!   minimise ½ x'Gx   subject to   n_i'x = b_i (equalities),  n_i'x >= b_i (inequalities)
//!
//! with every constraint normal of the form  n = a·e_k + b·1 + c·m  (`m` one dense vector given
//! with the problem). The solver starts from the unconstrained minimum x = 0 and adds violated
//! constraints one at a time while keeping dual feasibility; it ends at the exact KKT point.
//! `G = L L'` is passed as `J0 = L^{-T}` (column-major, i.e. the row-major `L^{-1}`).

use crate::error::{CoreError, CoreResult};

use crate::linalg::{axpy, dot};

/// One linear constraint `(a·e_k + b·1 + c·m)' x  (= or >=)  rhs`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Con {
    /// index of the unit-vector part (`usize::MAX` = none)
    pub k: usize,
    pub a: f64,
    pub b: f64,
    pub c: f64,
    pub rhs: f64,
    pub eq: bool,
}

impl Con {
    pub fn bound_lower(k: usize, lo: f64) -> Self {
        Con {
            k,
            a: 1.0,
            b: 0.0,
            c: 0.0,
            rhs: lo,
            eq: false,
        }
    }
    pub fn bound_upper(k: usize, hi: f64) -> Self {
        Con {
            k,
            a: -1.0,
            b: 0.0,
            c: 0.0,
            rhs: -hi,
            eq: false,
        }
    }
}

/// Factor data shared by every QP with the same Hessian.
pub(crate) struct Factor {
    pub n: usize,
    /// J0 = L^{-T}, column-major (= row-major L^{-1}).
    pub j0: Vec<f64>,
    /// J0' 1
    pub j1: Vec<f64>,
}

impl Factor {
    pub fn new(linv: Vec<f64>, n: usize) -> Self {
        let j1 = (0..n)
            .map(|j| linv[j * n..(j + 1) * n].iter().sum())
            .collect();
        Factor { n, j0: linv, j1 }
    }
}

pub(crate) struct QpSolution {
    pub x: Vec<f64>,
    pub iterations: usize,
}

/// Progress callback adaptor: (global iteration, objective) -> keep going?
pub(crate) type Hook<'a> = &'a mut dyn FnMut(usize, f64) -> bool;

/// Solves the QP (see the module doc). Compiled twice (issue 16): with AVX2 where the CPU has it
/// (its vector loops 4 wide instead of 2; the same multiplications and additions in the same
/// order, no fused multiply-add, so the same bits either way).
pub(crate) fn solve(
    f: &Factor,
    m: &[f64],
    cons: &[Con],
    iter_base: usize,
    hook: Hook<'_>,
) -> CoreResult<QpSolution> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports the feature the function is compiled for.
            return unsafe { solve_avx2(f, m, cons, iter_base, hook) };
        }
    }
    solve_body(f, m, cons, iter_base, hook)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn solve_avx2(
    f: &Factor,
    m: &[f64],
    cons: &[Con],
    iter_base: usize,
    hook: Hook<'_>,
) -> CoreResult<QpSolution> {
    solve_body(f, m, cons, iter_base, hook)
}

#[inline(always)]
fn solve_body(
    f: &Factor,
    m: &[f64],
    cons: &[Con],
    iter_base: usize,
    hook: Hook<'_>,
) -> CoreResult<QpSolution> {
    let n = f.n;
    let mut j = f.j0.clone();
    let mut t1 = f.j1.clone();
    // tm = J' m
    let mut tm: Vec<f64> = (0..n).map(|c| dot(&j[c * n..(c + 1) * n], m)).collect();
    let msum: f64 = m.iter().sum();
    let mnorm2: f64 = m.iter().map(|v| v * v).sum();
    let norms: Vec<f64> = cons
        .iter()
        .map(|c| {
            let mut s = n as f64 * c.b * c.b + c.c * c.c * mnorm2 + 2.0 * c.b * c.c * msum;
            if c.k != usize::MAX {
                s += c.a * c.a + 2.0 * c.a * (c.b + c.c * m[c.k]);
            }
            s.max(0.0).sqrt()
        })
        .collect();

    let mut x = vec![0.0; n];
    let mut obj = 0.0;
    let mut active: Vec<usize> = Vec::new();
    let mut sign: Vec<f64> = Vec::new(); // +1, or -1 for an equality entered as -n'x >= -b
    let mut u: Vec<f64> = Vec::new(); // multipliers of the active constraints
    let mut rcols: Vec<Vec<f64>> = Vec::new(); // R, by columns (column q has q+1 entries)
    let mut is_active = vec![false; cons.len()];
    let mut skipped = vec![false; cons.len()]; // equalities implied by the active ones
    let mut d = vec![0.0; n];
    let mut wv = vec![0.0; n];
    let mut r: Vec<f64> = Vec::new();
    let mut iters = 0usize;
    let max_iters = 10 * (n + cons.len()) + 100;

    let value = |c: &Con, x: &[f64], sx: f64, mx: f64| -> f64 {
        let mut v = c.b * sx + c.c * mx;
        if c.k != usize::MAX {
            v += c.a * x[c.k];
        }
        v
    };

    loop {
        // ---- step 1: pick the constraint to add ------------------------------------------
        let sx: f64 = x.iter().sum();
        let mx = dot(m, &x);
        let xinf = x.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let mut pick: Option<(usize, f64)> = None;
        for (i, c) in cons.iter().enumerate() {
            if c.eq && !is_active[i] && !skipped[i] {
                let s = value(c, &x, sx, mx) - c.rhs;
                pick = Some((i, if s > 0.0 { -1.0 } else { 1.0 }));
                break;
            }
        }
        if pick.is_none() {
            let mut worst = 0.0;
            for (i, c) in cons.iter().enumerate() {
                if c.eq || is_active[i] || norms[i] == 0.0 {
                    continue;
                }
                let s = value(c, &x, sx, mx) - c.rhs;
                let tol = 1e-13 * (norms[i] * xinf + c.rhs.abs());
                if s < -tol {
                    let sn = s / norms[i];
                    if sn < worst {
                        worst = sn;
                        pick = Some((i, 1.0));
                    }
                }
            }
        }
        let Some((p, sp_sign)) = pick else {
            return Ok(QpSolution {
                x,
                iterations: iters,
            });
        };
        let cp = cons[p];
        let mut up = 0.0; // multiplier of p along the way

        // ---- step 2: move until p is satisfied (dropping blocking constraints) ------------
        loop {
            let q = active.len();
            // d = J' (sign * n_p)
            for col in 0..n {
                let mut v = cp.b * t1[col] + cp.c * tm[col];
                if cp.k != usize::MAX {
                    v += cp.a * j[col * n + cp.k];
                }
                d[col] = sp_sign * v;
            }
            let dnorm = d.iter().map(|v| v * v).sum::<f64>().sqrt();
            // Householder on d[q..] so that only d[q] is non-zero; apply to J[:, q..], t1, tm.
            let mut sigma = 0.0;
            if q < n {
                let tail = &d[q..];
                let alpha = tail.iter().map(|v| v * v).sum::<f64>().sqrt();
                sigma = alpha;
                if alpha > 1e-11 * dnorm && alpha > 0.0 {
                    let rest2: f64 = tail[1..].iter().map(|v| v * v).sum();
                    if rest2 > 0.0 {
                        // v = tail + sign(tail0) alpha e1 ; H = I - 2 v v' / v'v
                        let s0 = if tail[0] >= 0.0 { 1.0 } else { -1.0 };
                        let mut v: Vec<f64> = tail.to_vec();
                        v[0] += s0 * alpha;
                        let vtv = v[0] * v[0] + rest2;
                        let beta = 2.0 / vtv;
                        // w = J[:, q..] v
                        combine_columns(&j[q * n..], n, &v, &mut wv);
                        for (jj, &vj) in v.iter().enumerate() {
                            if vj != 0.0 {
                                let c = q + jj;
                                axpy(-beta * vj, &wv, &mut j[c * n..(c + 1) * n]);
                            }
                        }
                        for vec in [&mut t1, &mut tm] {
                            let sub = &mut vec[q..];
                            let s = beta * dot(&v, sub);
                            axpy(-s, &v, sub);
                        }
                        d[q] = -s0 * alpha;
                        for e in &mut d[q + 1..] {
                            *e = 0.0;
                        }
                    }
                } else {
                    sigma = 0.0;
                }
            }
            // r = R^{-1} d[..q]
            r.clear();
            r.extend_from_slice(&d[..q]);
            for col in (0..q).rev() {
                let rc = &rcols[col];
                r[col] /= rc[col];
                let rv = r[col];
                if rv != 0.0 {
                    axpy(-rv, &rc[..col], &mut r[..col]);
                }
            }
            // partial (dual) step length: blocking active inequality
            let mut t_part = f64::INFINITY;
            let mut drop_at = usize::MAX;
            for (pos, &ci) in active.iter().enumerate() {
                if !cons[ci].eq && r[pos] > 0.0 {
                    let t = u[pos] / r[pos];
                    if t < t_part {
                        t_part = t;
                        drop_at = pos;
                    }
                }
            }
            let sx: f64 = x.iter().sum();
            let mx = dot(m, &x);
            let sp = sp_sign * (value(&cp, &x, sx, mx) - cp.rhs);
            let t_full = if sigma > 0.0 {
                -sp / (sigma * sigma)
            } else {
                f64::INFINITY
            };

            if !t_full.is_finite() && !t_part.is_finite() {
                if cp.eq {
                    let scale =
                        norms[p] * x.iter().fold(0.0f64, |a, v| a.max(v.abs())) + cp.rhs.abs();
                    if sp.abs() <= 1e-10 * scale.max(1e-300) {
                        // implied by the active equalities: nothing to add
                        skipped[p] = true;
                        break;
                    }
                }
                return Err(CoreError::numerical(
                    "the weight constraints cannot all be satisfied (the optimisation problem is infeasible)",
                ));
            }
            iters += 1;
            if iters > max_iters {
                return Err(CoreError::numerical(format!(
                    "the quadratic program did not converge within {max_iters} active-set iterations"
                )));
            }
            if !t_full.is_finite() {
                // dependent constraint: pure dual step, then drop the blocking constraint
                for (pos, uv) in u.iter_mut().enumerate() {
                    *uv -= t_part * r[pos];
                }
                up += t_part;
                drop_constraint(
                    drop_at,
                    &mut active,
                    &mut sign,
                    &mut u,
                    &mut rcols,
                    &mut is_active,
                    &mut j,
                    &mut t1,
                    &mut tm,
                    n,
                );
                if !hook(iter_base + iters, obj) {
                    return Err(CoreError::Cancelled);
                }
                continue;
            }
            let t = t_full.min(t_part);
            // z = J[:, q] * d[q]
            let zq = d[q];
            let jq = &j[q * n..(q + 1) * n];
            axpy(t * zq, jq, &mut x);
            obj += t * sigma * sigma * (0.5 * t + up);
            for (pos, uv) in u.iter_mut().enumerate() {
                *uv -= t * r[pos];
            }
            up += t;
            if t_full <= t_part {
                // full step: p becomes active
                rcols.push(d[..=q].to_vec());
                active.push(p);
                sign.push(sp_sign);
                u.push(up);
                is_active[p] = true;
                if !hook(iter_base + iters, obj) {
                    return Err(CoreError::Cancelled);
                }
                break;
            }
            drop_constraint(
                drop_at,
                &mut active,
                &mut sign,
                &mut u,
                &mut rcols,
                &mut is_active,
                &mut j,
                &mut t1,
                &mut tm,
                n,
            );
            if !hook(iter_base + iters, obj) {
                return Err(CoreError::Cancelled);
            }
        }
    }
}

/// `w = Σ_jj v[jj] · cols[jj]` over the columns (`n` values each, contiguous) with `v[jj] != 0`,
/// each entry summed in column order from 0: the same operations as zeroing `w` and adding the
/// columns one axpy at a time, but a block of `w` stays in registers while the columns stream by
/// (the axpy form stored and reloaded every entry of `w` once per column: issue 16).
#[inline(always)]
fn combine_columns(cols: &[f64], n: usize, v: &[f64], w: &mut [f64]) {
    // a fixed width keeps the block in registers (a variable one went through the stack)
    #[inline(always)]
    fn block<const W: usize>(cols: &[f64], n: usize, v: &[f64], e0: usize, w: &mut [f64]) {
        let mut acc = [0.0f64; W];
        for (jj, &vj) in v.iter().enumerate() {
            if vj != 0.0 {
                let c: &[f64; W] = cols[jj * n + e0..jj * n + e0 + W].try_into().expect("W");
                for t in 0..W {
                    acc[t] += vj * c[t];
                }
            }
        }
        w[e0..e0 + W].copy_from_slice(&acc);
    }
    let mut e0 = 0;
    while e0 < n {
        let width = match n - e0 {
            16.. => 16,
            8.. => 8,
            4.. => 4,
            2.. => 2,
            _ => 1,
        };
        match width {
            16 => block::<16>(cols, n, v, e0, w),
            8 => block::<8>(cols, n, v, e0, w),
            4 => block::<4>(cols, n, v, e0, w),
            2 => block::<2>(cols, n, v, e0, w),
            _ => block::<1>(cols, n, v, e0, w),
        }
        e0 += width;
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn drop_constraint(
    pos: usize,
    active: &mut Vec<usize>,
    sign: &mut Vec<f64>,
    u: &mut Vec<f64>,
    rcols: &mut Vec<Vec<f64>>,
    is_active: &mut [bool],
    j: &mut [f64],
    t1: &mut [f64],
    tm: &mut [f64],
    n: usize,
) {
    is_active[active[pos]] = false;
    active.remove(pos);
    sign.remove(pos);
    u.remove(pos);
    rcols.remove(pos);
    let q = active.len();
    // columns pos..q now have one sub-diagonal entry: restore triangularity with Givens
    for col in pos..q {
        let (a, b) = (rcols[col][col], rcols[col][col + 1]);
        let h = a.hypot(b);
        let (c, s) = if h == 0.0 { (1.0, 0.0) } else { (a / h, b / h) };
        for rc in rcols[col..q].iter_mut() {
            let (ra, rb) = (rc[col], rc[col + 1]);
            rc[col] = c * ra + s * rb;
            rc[col + 1] = -s * ra + c * rb;
        }
        rcols[col].truncate(col + 1);
        // same rotation on columns col, col+1 of J and on t1, tm
        let (left, right) = j.split_at_mut((col + 1) * n);
        let ja = &mut left[col * n..];
        let jb = &mut right[..n];
        for (va, vb) in ja.iter_mut().zip(jb.iter_mut()) {
            let (pa, pb) = (*va, *vb);
            *va = c * pa + s * pb;
            *vb = -s * pa + c * pb;
        }
        for vec in [&mut *t1, &mut *tm] {
            let (pa, pb) = (vec[col], vec[col + 1]);
            vec[col] = c * pa + s * pb;
            vec[col + 1] = -s * pa + c * pb;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// combine_columns gives the bits of the axpy form it replaced (zeroed w, one axpy per
    /// column with a non-zero coefficient, in column order), for every block remainder.
    #[test]
    fn combine_columns_is_the_axpy_sequence() {
        let mut r = crate::num::uniform(11);
        for n in [1usize, 2, 15, 16, 17, 31, 32, 50, 64, 101] {
            for k in [1usize, 3, n] {
                let cols: Vec<f64> = (0..k * n).map(|_| r() * 1e3).collect();
                let v: Vec<f64> = (0..k).map(|i| if i % 3 == 1 { 0.0 } else { r() }).collect();
                let mut want = vec![0.0; n];
                for (jj, &vj) in v.iter().enumerate() {
                    if vj != 0.0 {
                        axpy(vj, &cols[jj * n..(jj + 1) * n], &mut want);
                    }
                }
                let mut got = vec![f64::NAN; n];
                combine_columns(&cols, n, &v, &mut got);
                let bits = |x: &[f64]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "n={n} k={k}");
            }
        }
    }
}
