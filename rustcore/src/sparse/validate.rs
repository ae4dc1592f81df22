//! Input checks shared by the sparse methods, and the automatic λ grid.

#![allow(clippy::neg_cmp_op_on_partial_ord)]

use super::MIN_OBSERVATIONS;
use crate::error::{check, CoreError, CoreResult};

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/// Check the prices; returns the column sums (computed in the same pass over the data, so that
/// the lasso's design needs one pass less).
pub(super) fn validate_prices(prices: &[f64], rows: usize, cols: usize) -> CoreResult<Vec<f64>> {
    if rows == 0 || cols == 0 || prices.len() != rows * cols {
        // the shape error (empty, or values that do not match the shape)
        check::finite_matrix("prices", prices, rows, cols)?;
        return Err(CoreError::invalid("prices do not match their shape"));
    }
    // One pass over the data: column hashes (duplicate search), the finiteness check and the
    // column sums.
    let (h, finite, sums) = column_hashes(prices, rows, cols)?;
    if !finite {
        // names the first non-finite value
        check::finite_matrix("prices", prices, rows, cols)?;
    }
    if cols < 2 {
        return Err(CoreError::invalid(format!(
            "prices must have at least 2 assets (columns), got {cols}"
        )));
    }
    if rows < MIN_OBSERVATIONS {
        return Err(CoreError::invalid(format!(
            "prices must have at least {MIN_OBSERVATIONS} observations (rows), got {rows}"
        )));
    }
    // Constant columns, then exactly duplicated columns.
    for j in 0..cols {
        let first = prices[j];
        if (1..rows).all(|t| prices[t * cols + j] == first) {
            return Err(CoreError::invalid(format!(
                "prices column {j} is constant: a constant price cannot be part of a basket; remove it"
            )));
        }
    }
    if let Some((j, k)) = duplicate_from_hashes(prices, rows, cols, &h)? {
        return Err(CoreError::invalid(format!(
            "prices are collinear: columns {j} and {k} are exactly duplicated; remove one of them"
        )));
    }
    Ok(sums)
}

/// The first pair (j, k), j < k, of exactly equal columns (in the order of a double loop over j
/// then k), or None. O(rows · cols + cols · log cols) by hashing each column (the former pairwise
/// comparison was O(cols²) and never polled cancel: 60 000 columns took seconds).
#[cfg(test)]
pub(super) fn first_duplicate_column(
    prices: &[f64],
    rows: usize,
    cols: usize,
) -> CoreResult<Option<(usize, usize)>> {
    let (h, _, _) = column_hashes(prices, rows, cols)?;
    duplicate_from_hashes(prices, rows, cols, &h)
}

/// A fingerprint of each column (equal columns have equal fingerprints: the same operations on
/// the same values; -0.0 and 0.0 give the same), whether every value is finite, and the column
/// sums. The fingerprint is the bits of two floating sums, `Σ x_t` and `Σ c_t·x_t` with
/// pseudo-random weights `c_t ∈ [1, 2)`: one pass, vectorised across columns (the former
/// 64-bit FNV multiply chain per value was not). Columns with equal fingerprints are compared
/// value by value, so a collision costs only time.
fn column_hashes(
    prices: &[f64],
    rows: usize,
    cols: usize,
) -> CoreResult<(Vec<u64>, bool, Vec<f64>)> {
    let mut sums = vec![0.0f64; cols];
    let mut wsum = vec![0.0f64; cols];
    for t in 0..rows {
        if t % 4096 == 4095 {
            crate::limits::poll()?;
        }
        let c = 1.0
            + ((t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
        let r = &prices[t * cols..(t + 1) * cols];
        for ((sj, wj), &v) in sums.iter_mut().zip(wsum.iter_mut()).zip(r) {
            *sj += v;
            *wj += c * v;
        }
    }
    // a NaN or ±∞ makes its column's sums non-finite (a finite overflow too: then the exact
    // check below finds no culprit and the data is accepted as before)
    let finite = sums.iter().chain(&wsum).all(|v| v.is_finite());
    let finite = finite || check::finite_matrix("prices", prices, rows, cols).is_ok();
    let h = sums
        .iter()
        .zip(&wsum)
        .map(|(&a, &b)| {
            let (a, b) = (a + 0.0, b + 0.0); // -0.0 → 0.0
            a.to_bits() ^ b.to_bits().rotate_left(29)
        })
        .collect();
    Ok((h, finite, sums))
}

/// The first exactly duplicated pair of columns among those with equal hashes `h`.
fn duplicate_from_hashes(
    prices: &[f64],
    rows: usize,
    cols: usize,
    h: &[u64],
) -> CoreResult<Option<(usize, usize)>> {
    let mut order: Vec<usize> = (0..cols).collect();
    order.sort_unstable_by_key(|&j| (h[j], j));
    let same = |j: usize, k: usize| (0..rows).all(|t| prices[t * cols + j] == prices[t * cols + k]);
    let mut best: Option<(usize, usize)> = None;
    let mut i = 0;
    while i < order.len() {
        let mut e = i + 1;
        while e < order.len() && h[order[e]] == h[order[i]] {
            e += 1;
        }
        // a bucket of equal hashes (sorted by column): find its first truly equal pair
        let bucket = &order[i..e];
        'outer: for (a, &j) in bucket.iter().enumerate() {
            if best.is_some_and(|(bj, _)| bj <= j) {
                break;
            }
            crate::limits::poll()?;
            for &k in &bucket[a + 1..] {
                if same(j, k) {
                    best = Some((j, k));
                    break 'outer;
                }
            }
        }
        i = e;
    }
    Ok(best)
}

pub(super) fn validate_penalty(name: &str, lambda: f64, alpha: f64) -> CoreResult<()> {
    if !(lambda.is_finite() && lambda >= 0.0) {
        return Err(CoreError::invalid(format!(
            "{name} must be a finite number >= 0, got {lambda}"
        )));
    }
    if !(alpha.is_finite() && (0.0..=1.0).contains(&alpha)) {
        return Err(CoreError::invalid(format!(
            "alpha (the L1 ratio) must be between 0 and 1, got {alpha}"
        )));
    }
    Ok(())
}

pub(super) fn validate_solver(max_iterations: usize, tolerance: f64) -> CoreResult<()> {
    if max_iterations == 0 {
        return Err(CoreError::invalid(
            "max_iterations must be at least 1, got 0",
        ));
    }
    check::positive("tolerance", tolerance)
}

pub(super) fn log_grid(lmax: f64, eps: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![lmax];
    }
    let (hi, lo) = (lmax.log10(), (lmax * eps).log10());
    (0..n)
        .map(|i| {
            if i == 0 {
                lmax
            } else {
                10f64.powf(hi + (lo - hi) * i as f64 / (n - 1) as f64)
            }
        })
        .collect()
}
