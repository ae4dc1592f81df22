//! Kalman-filter hedge ratio (forward filter only: no smoothing, no look-ahead).
//!
//! Model (the usual "dynamic hedge ratio" regression, e.g. Chan 2013, ch. 3):
//! * state `θ_t = [β_t, α_t]` follows a random walk, `θ_t = θ_{t−1} + w_t`,
//!   `w_t ~ N(0, V_w)`, `V_w = δ/(1 − δ)·I₂`;
//! * observation `y_t = β_t·x_t + α_t + v_t`, `v_t ~ N(0, V_e)` (`observation_var`).
//! * Start: `θ = 0`, `P = 0` (so the first prior covariance is `V_w`).
//! * Step t: `R = P + V_w`; `ŷ = F θ` with `F = [x_t, 1]`; `Q = F R Fᵀ + V_e`;
//!   `e = y_t − ŷ`; `K = R Fᵀ / Q`; `θ ← θ + K e`; `P ← R − K F R`.
//! * Output per t: `hedge_ratio[t]`, `intercept[t]` = the filtered state θ_{t|t} (data up to and
//!   including t); `spread[t] = e_t` (the one-step prediction error, from θ_{t|t−1}: data up to
//!   t − 1 only) and `spread_std[t] = sqrt(Q_t)`; `e_t / sqrt(Q_t)` is the z-score a forward
//!   trading rule uses.

use crate::error::{check, CoreError, CoreResult};
use crate::num::pz;

#[derive(Debug, Clone, PartialEq)]
pub struct KalmanHedge {
    pub hedge_ratio: Vec<f64>,
    pub intercept: Vec<f64>,
    pub spread: Vec<f64>,
    pub spread_std: Vec<f64>,
}

/// Validates the filter's parameters.
pub fn check_params(delta: f64, observation_var: f64) -> CoreResult<()> {
    if !(delta.is_finite() && delta > 0.0 && delta < 1.0) {
        return Err(CoreError::invalid(format!(
            "delta must be in (0, 1), got {delta}"
        )));
    }
    check::positive("observation_var", observation_var)
}

/// The filter state, advanced one observation at a time (used by the walk-forward too).
#[derive(Debug, Clone, Copy)]
pub struct KalmanState {
    theta: [f64; 2],
    p: [[f64; 2]; 2],
    vw: f64,
    ve: f64,
}

/// One step's output: (β_{t|t}, α_{t|t}, e_t, sqrt(Q_t)).
pub type KalmanStep = (f64, f64, f64, f64);

impl KalmanState {
    pub fn new(delta: f64, observation_var: f64) -> CoreResult<Self> {
        check_params(delta, observation_var)?;
        Ok(KalmanState {
            theta: [0.0, 0.0],
            p: [[0.0; 2]; 2],
            vw: delta / (1.0 - delta),
            ve: observation_var,
        })
    }

    /// The prior hedge ratio and intercept θ_{t|t−1} (before seeing observation t).
    pub fn state(&self) -> (f64, f64) {
        (self.theta[0], self.theta[1])
    }

    #[inline]
    pub fn step(&mut self, y: f64, x: f64) -> KalmanStep {
        let mut r = self.p;
        r[0][0] += self.vw;
        r[1][1] += self.vw;
        let f = [x, 1.0];
        let yhat = f[0] * self.theta[0] + f[1] * self.theta[1];
        // R Fᵀ
        let rf = [
            r[0][0] * f[0] + r[0][1] * f[1],
            r[1][0] * f[0] + r[1][1] * f[1],
        ];
        let q = f[0] * rf[0] + f[1] * rf[1] + self.ve;
        let e = y - yhat;
        let k = [rf[0] / q, rf[1] / q];
        self.theta[0] += k[0] * e;
        self.theta[1] += k[1] * e;
        // F R (row) = (R Fᵀ)ᵀ since R is symmetric
        for a in 0..2 {
            for b in 0..2 {
                self.p[a][b] = r[a][b] - k[a] * rf[b];
            }
        }
        // keep P exactly symmetric
        let off = 0.5 * (self.p[0][1] + self.p[1][0]);
        self.p[0][1] = off;
        self.p[1][0] = off;
        (self.theta[0], self.theta[1], e, q.sqrt())
    }
}

/// Forward Kalman filter of `y` on `x` (see the module documentation).
pub fn kalman_hedge(
    y: &[f64],
    x: &[f64],
    delta: f64,
    observation_var: f64,
) -> CoreResult<KalmanHedge> {
    check::finite("y", y)?;
    check::finite("x", x)?;
    if y.len() != x.len() {
        return Err(CoreError::invalid(format!(
            "y and x must have the same length, got {} and {}",
            y.len(),
            x.len()
        )));
    }
    let mut st = KalmanState::new(delta, observation_var)?;
    let n = y.len();
    let _budget = crate::limits::reserve(&crate::limits::kalman(n))?;
    let mut out = KalmanHedge {
        hedge_ratio: crate::limits::zeroed(n, "the hedge ratios")?,
        intercept: crate::limits::zeroed(n, "the intercepts")?,
        spread: crate::limits::zeroed(n, "the spread")?,
        spread_std: crate::limits::zeroed(n, "the spread's standard deviation")?,
    };
    for t in 0..n {
        if t % 65536 == 0 {
            crate::limits::poll()?;
        }
        let (b, a, e, s) = st.step(y[t], x[t]);
        out.hedge_ratio[t] = pz(b);
        out.intercept[t] = pz(a);
        out.spread[t] = pz(e);
        out.spread_std[t] = pz(s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converges_to_a_fixed_relation_and_validates() {
        let x: Vec<f64> = (0..2000)
            .map(|t| 50.0 + 10.0 * ((t as f64) * 0.01).sin())
            .collect();
        let y: Vec<f64> = x.iter().map(|v| 1.5 * v + 3.0).collect();
        let r = kalman_hedge(&y, &x, 1e-4, 1e-3).unwrap();
        let fit = r.hedge_ratio[1999] * x[1999] + r.intercept[1999];
        assert!((fit - y[1999]).abs() < 0.05, "{fit}");
        assert!(r.spread[1999].abs() < 0.05);
        assert!(r.spread_std.iter().all(|s| *s > 0.0));
        assert!(kalman_hedge(&y, &x, 1.0, 1e-3)
            .unwrap_err()
            .to_string()
            .contains("delta"));
        assert!(kalman_hedge(&y, &x[..5], 1e-4, 1e-3)
            .unwrap_err()
            .to_string()
            .contains("same length"));
        assert!(kalman_hedge(&y, &x, 1e-4, 0.0)
            .unwrap_err()
            .to_string()
            .contains("observation_var"));
    }
}
