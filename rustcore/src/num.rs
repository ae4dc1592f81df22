//! Numeric conventions shared by every algorithm: signed zeros and the AR(1) half-life.

/// `v` with a negative zero turned into +0.0 (every other value unchanged, NaN stays NaN).
///
/// proto3 does not send a zero double, so a −0.0 from the core would reach gRPC clients as +0.0
/// while the PyO3 binding returns it as is: every result field goes through this (or
/// [`pz_all`]) so that both transports agree bit for bit.
#[inline(always)]
pub fn pz(v: f64) -> f64 {
    v + 0.0
}

/// [`pz`] on every element.
pub fn pz_all(v: &mut [f64]) {
    for x in v.iter_mut() {
        *x += 0.0;
    }
}

/// Half-life, in observations, of a deviation following the AR(1) `p_t = c + φ·p_{t−1} + e_t`
/// (equivalently `Δp_t = a + b·p_{t−1} + e_t` with `b = φ − 1`): `−ln 2 / ln φ` when `0 < φ < 1`
/// (the deviation decays monotonically: mean reversion), `+∞` otherwise: `φ ≥ 1` (`b ≥ 0`: no mean
/// reversion) and `φ ≤ 0` (`b ≤ −1`: the deviation flips sign every step, not an
/// Ornstein-Uhlenbeck process). The one convention of the OU fit and of the sparse baskets.
pub fn ar1_half_life(phi: f64) -> f64 {
    if phi > 0.0 && phi < 1.0 {
        -std::f64::consts::LN_2 / phi.ln()
    } else {
        f64::INFINITY
    }
}

/// Seeded uniform draws on [-0.5, 0.5) for the tests (a 64-bit LCG's top 53 bits).
#[cfg(test)]
pub(crate) fn uniform(mut s: u64) -> impl FnMut() -> f64 {
    move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_zeros_and_half_life() {
        assert_eq!(pz(-0.0).to_bits(), 0.0f64.to_bits());
        assert_eq!(pz(-1.5), -1.5);
        assert!(pz(f64::NAN).is_nan());
        let mut v = [-0.0, 2.0, -0.0];
        pz_all(&mut v);
        assert!(v.iter().all(|x| !x.is_sign_negative()));
        assert!((ar1_half_life(0.5) - 1.0).abs() < 1e-15);
        assert!((ar1_half_life(0.9) - std::f64::consts::LN_2 / -(0.9f64.ln())).abs() < 1e-12);
        for phi in [1.0, 1.2, 0.0, -0.5, -1.0, f64::NAN] {
            assert_eq!(ar1_half_life(phi), f64::INFINITY, "phi {phi}");
        }
    }
}
