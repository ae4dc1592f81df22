//! Gaussian hidden Markov models on `T x D` observations (several features at once), the
//! forward filter (what was knowable at each date), an online filter, and a walk-forward regime
//! run.
//!
//! # Model
//! `K` hidden states; state `k` emits `N(mean_k, covar_k)` in `D` dimensions, with
//! `covariance_type` "diag" (diagonal `covar_k`) or "full" (any symmetric positive definite
//! `covar_k`). Start probabilities and the transition matrix as in [`crate::hmm`].
//!
//! # Fit (Baum-Welch EM, maximum likelihood, no priors)
//! * Every feature is standardised internally (`z = (x - mean_d) / sd_d`); both covariance
//!   types are equivariant under this map, so it changes nothing but the conditioning.
//! * **E-step**: forward-backward with Rabiner scaling (`alpha_t` normalised by its sum `c_t`;
//!   `LL = sum_t (m_t + ln c_t)`, `m_t` the largest log density of step `t`, taken out of the
//!   emission probabilities before `exp`). The backward pass is fused with the sufficient
//!   statistics (posterior mass, first and second moments centred on the current means,
//!   expected transitions).
//! * **M-step**: start = posterior at t = 0, transitions = expected counts normalised per row,
//!   means and covariances = posterior-weighted moments (hmmlearn's `GaussianHMM` with
//!   `covars_prior = 0` and the default `startprob_prior = transmat_prior = 1`). A state with zero
//!   posterior mass keeps its parameters; a transition row with no expected transitions too.
//! * **Covariance floor** (relative to the data's scale): in standardised units every variance
//!   is kept `>= COVARIANCE_FLOOR` (i.e. `1e-6` times the data's variance of that feature);
//!   a full covariance whose Cholesky factorisation fails or has a squared pivot below the floor
//!   gets `COVARIANCE_FLOOR` added to its diagonal (repeatedly, doubling, until it is SPD). The
//!   floor does not bind on real data (then the fit is plain maximum likelihood).
//! * Convergence exactly like [`crate::hmm`] (hmmlearn's `ConvergenceMonitor`).
//!
//! # Initialisation
//! * **Deterministic start (run 0)**: the standardised rows are projected on their first
//!   principal component (power iteration on the correlation matrix), sorted, and cut into `K`
//!   equal-count buckets; state `k` gets the mean of bucket `k`, every state the pooled
//!   covariance (the correlation matrix; its diagonal for "diag"), sticky transitions (0.9 on the
//!   diagonal) and uniform start probabilities. With `D = 1` this is the 1-D quantile start.
//! * **Restarts** (`n_restarts`, default [`crate::hmm::DEFAULT_RESTARTS`] when no explicit
//!   `init` is given, else 0): k-means++ seeding (D² sampling with splitmix64 seeded by `seed`
//!   and the run number) refined by Lloyd iterations (at most 30, until no label changes); state `k` gets its cluster's mean and
//!   covariance (the pooled one for clusters smaller than `2 (D + 1)`), transitions from the
//!   cluster label sequence (counts + 1, normalised), uniform start. Runs are independent and
//!   run in parallel; the highest final log-likelihood wins (the lowest run number on a tie), so
//!   the result does not depend on the number of threads. The default start then polishes the
//!   best run exactly like [`crate::hmm`] (up to `POLISH_FACTOR * max_iterations` in all).
//!
//! # Output
//! States sorted by the mean of feature 0, ascending. Filtered probabilities
//! `P(state_t | x_1..x_t)` (computed by [`filter`] under the returned parameters, bit-identical
//! to [`OnlineFilter`]), smoothed posteriors `P(state_t | x_1..x_T)`, the Viterbi path; free
//! parameters `p = (K - 1) + K (K - 1) + K D + K D` ("diag") or `+ K D (D + 1) / 2` ("full");
//! `AIC = 2p - 2 LL`, `BIC = p ln(T) - 2 LL`.

#![allow(
    clippy::needless_range_loop,
    clippy::too_many_arguments,
    clippy::type_complexity
)]

use crate::error::{check, CoreError, CoreResult};
use crate::hmm::{
    self, exp_nonpositive, exponent, pow2, SplitMix64, INIT_SUM_TOLERANCE, MAX_STATES,
    MIN_OBSERVATIONS_PER_STATE,
};
use crate::num::{pz, pz_all};

/// Largest number of features accepted.
pub const MAX_FEATURES: usize = 64;
/// Variance floor in standardised units (relative to each feature's variance).
pub const COVARIANCE_FLOOR: f64 = 1e-6;
const LN_2PI: f64 = 1.837_877_066_409_345_5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CovarianceType {
    Diag,
    Full,
}

impl CovarianceType {
    pub fn parse(s: &str) -> CoreResult<Self> {
        match s {
            "diag" => Ok(CovarianceType::Diag),
            "full" => Ok(CovarianceType::Full),
            _ => Err(CoreError::invalid(format!(
                "covariance_type must be \"diag\" or \"full\", got {s:?}"
            ))),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            CovarianceType::Diag => "diag",
            CovarianceType::Full => "full",
        }
    }
}

/// Explicit initial parameters, in the units of the observations.
#[derive(Debug, Clone, PartialEq)]
pub struct MvInit {
    /// `K`.
    pub start_prob: Vec<f64>,
    /// `K x K` row-major.
    pub transmat: Vec<f64>,
    /// `K x D` row-major.
    pub means: Vec<f64>,
    /// `K x D x D` (full matrices; for "diag" the off-diagonal entries must be 0).
    pub covars: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MvConfig {
    pub n_states: usize,
    pub max_iterations: usize,
    pub tolerance: f64,
    /// `None`: [`hmm::DEFAULT_RESTARTS`] without `init`, 0 with it.
    pub n_restarts: Option<usize>,
    pub seed: u64,
    pub covariance_type: CovarianceType,
    pub init: Option<MvInit>,
}

impl Default for MvConfig {
    fn default() -> Self {
        MvConfig {
            n_states: 3,
            max_iterations: 100,
            tolerance: 1e-6,
            n_restarts: None,
            seed: 0,
            covariance_type: CovarianceType::Full,
            init: None,
        }
    }
}

impl MvConfig {
    /// The configuration as both transports receive it (PyO3 arguments, gRPC request fields):
    /// the covariance type parsed here, so both give the same error text; no `init`.
    pub fn from_options(
        n_states: usize,
        covariance_type: &str,
        max_iterations: usize,
        tolerance: f64,
        n_restarts: Option<usize>,
        seed: u64,
    ) -> CoreResult<Self> {
        Ok(MvConfig {
            n_states,
            max_iterations,
            tolerance,
            n_restarts,
            seed,
            covariance_type: CovarianceType::parse(covariance_type)?,
            init: None,
        })
    }
}

/// A Gaussian HMM's parameters in the units of the observations.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub n_states: usize,
    pub n_features: usize,
    pub covariance_type: CovarianceType,
    pub start_prob: Vec<f64>,
    pub transmat: Vec<f64>,
    /// `K x D`.
    pub means: Vec<f64>,
    /// `K x D x D` full matrices (diagonal ones for "diag").
    pub covars: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MvResult {
    pub model: Model,
    pub log_likelihood: f64,
    pub log_likelihood_history: Vec<f64>,
    pub iterations: usize,
    pub converged: bool,
    /// `T x K` smoothed `P(state_t | x_1..x_T)`.
    pub posteriors: Vec<f64>,
    /// `T x K` filtered `P(state_t | x_1..x_t)`.
    pub filtered: Vec<f64>,
    pub viterbi_path: Vec<usize>,
    pub n_parameters: usize,
    pub aic: f64,
    pub bic: f64,
}

/// Free parameters of a model.
pub fn n_parameters(k: usize, d: usize, ct: CovarianceType) -> usize {
    let cov = match ct {
        CovarianceType::Diag => k * d,
        CovarianceType::Full => k * d * (d + 1) / 2,
    };
    (k - 1) + k * (k - 1) + k * d + cov
}

// ------------------------------------------------------------------ small dense helpers

/// In-place lower Cholesky factor of the `d x d` matrix `a` (row-major; the upper triangle is
/// zeroed). Returns the smallest squared pivot relative to the diagonal entry, or `None` if the
/// matrix is not positive definite.
fn cholesky(a: &mut [f64], d: usize) -> Option<f64> {
    let mut worst = f64::INFINITY;
    for j in 0..d {
        let mut s = a[j * d + j];
        for p in 0..j {
            s -= a[j * d + p] * a[j * d + p];
        }
        let diag = a[j * d + j];
        if !(s > 0.0 && s.is_finite()) {
            return None;
        }
        worst = worst.min(s / diag);
        let l = s.sqrt();
        a[j * d + j] = l;
        for i in j + 1..d {
            let mut s = a[i * d + j];
            for p in 0..j {
                s -= a[i * d + p] * a[j * d + p];
            }
            a[i * d + j] = s / l;
        }
        for i in 0..j {
            a[i * d + j] = 0.0;
        }
    }
    Some(worst)
}

/// Prepared Gaussian log densities of `K` states (Cholesky factors computed once).
#[derive(Debug, Clone)]
struct Emission {
    k: usize,
    d: usize,
    diag: bool,
    means: Vec<f64>,
    /// full: K lower Cholesky factors (D x D); diag: K x D inverse standard deviations.
    fac: Vec<f64>,
    cst: Vec<f64>,
}

impl Emission {
    /// `Err(state)` when that state's covariance is not positive definite.
    fn new(
        means: &[f64],
        covars: &[f64],
        k: usize,
        d: usize,
        ct: CovarianceType,
    ) -> Result<Self, usize> {
        let diag = ct == CovarianceType::Diag;
        let mut fac = vec![0.0; if diag { k * d } else { k * d * d }];
        let mut cst = vec![0.0; k];
        for j in 0..k {
            let c = &covars[j * d * d..(j + 1) * d * d];
            let mut logdet = 0.0;
            if diag {
                for a in 0..d {
                    let v = c[a * d + a];
                    if !(v > 0.0 && v.is_finite()) {
                        return Err(j);
                    }
                    fac[j * d + a] = 1.0 / v.sqrt();
                    logdet += v.ln();
                }
            } else {
                let l = &mut fac[j * d * d..(j + 1) * d * d];
                l.copy_from_slice(c);
                if cholesky(l, d).is_none() {
                    return Err(j);
                }
                for a in 0..d {
                    logdet += 2.0 * l[a * d + a].ln();
                }
            }
            cst[j] = -0.5 * (d as f64 * LN_2PI + logdet);
        }
        Ok(Emission {
            k,
            d,
            diag,
            means: means.to_vec(),
            fac,
            cst,
        })
    }

    /// Log densities of row `x` under every state, into `out[..k]`; returns their maximum.
    #[inline]
    fn log_densities(&self, x: &[f64], out: &mut [f64], tmp: &mut [f64]) -> f64 {
        self.log_densities_k::<0>(x, out, tmp)
    }

    /// `log_densities` with the state count fixed at compile time (`K > 0`, equal to `self.k`)
    /// or read from `self` (`K = 0`): the same operations in the same order, so the same bits.
    #[inline(always)]
    fn log_densities_k<const K: usize>(&self, x: &[f64], out: &mut [f64], tmp: &mut [f64]) -> f64 {
        let (k, d) = (if K == 0 { self.k } else { K }, self.d);
        let mut m = f64::NEG_INFINITY;
        for j in 0..k {
            let mu = &self.means[j * d..(j + 1) * d];
            let mut q = 0.0;
            if self.diag {
                let isd = &self.fac[j * d..(j + 1) * d];
                for a in 0..d {
                    let y = (x[a] - mu[a]) * isd[a];
                    q += y * y;
                }
            } else {
                let l = &self.fac[j * d * d..(j + 1) * d * d];
                for a in 0..d {
                    let mut s = x[a] - mu[a];
                    for b in 0..a {
                        s -= l[a * d + b] * tmp[b];
                    }
                    let y = s / l[a * d + a];
                    tmp[a] = y;
                    q += y * y;
                }
            }
            let v = self.cst[j] - 0.5 * q;
            out[j] = v;
            m = if v > m { v } else { m };
        }
        m
    }
}

// ------------------------------------------------------------------ checks

fn check_obs(obs: &[f64], n: usize, d: usize) -> CoreResult<()> {
    if n == 0 || d == 0 {
        return Err(CoreError::invalid(format!(
            "observations is empty ({n} x {d})"
        )));
    }
    if d > MAX_FEATURES {
        return Err(CoreError::invalid(format!(
            "observations have {d} features, at most {MAX_FEATURES} are supported"
        )));
    }
    check::finite_matrix("observations", obs, n, d)
}

fn check_stochastic(name: &str, v: &[f64]) -> CoreResult<Vec<f64>> {
    if let Some(i) = v.iter().position(|&x| x < 0.0) {
        return Err(CoreError::invalid(format!(
            "{name} has a negative probability at index {i}"
        )));
    }
    let s: f64 = v.iter().sum();
    if (s - 1.0).abs() > INIT_SUM_TOLERANCE {
        return Err(CoreError::invalid(format!(
            "{name} must sum to 1, sums to {s}"
        )));
    }
    Ok(v.iter().map(|x| x / s).collect())
}

/// Check a model's shapes and values (`what` prefixes the messages, e.g. "init" or "model").
fn check_params(
    what: &str,
    k: usize,
    d: usize,
    ct: CovarianceType,
    start: &[f64],
    trans: &[f64],
    means: &[f64],
    covars: &[f64],
) -> CoreResult<(Vec<f64>, Vec<f64>)> {
    let len = |name: &str, v: &[f64], want: usize, shape: &str| -> CoreResult<()> {
        if v.len() != want {
            return Err(CoreError::invalid(format!(
                "{what} {name} must have {want} values ({shape}), got {}",
                v.len()
            )));
        }
        check::finite(&format!("{what} {name}"), v)
    };
    len("start_prob", start, k, "n_states")?;
    len("transmat", trans, k * k, "n_states x n_states")?;
    len("means", means, k * d, "n_states x n_features")?;
    len(
        "covars",
        covars,
        k * d * d,
        "n_states x n_features x n_features",
    )?;
    let start = check_stochastic(&format!("{what} start_prob"), start)?;
    let mut t = Vec::with_capacity(k * k);
    for i in 0..k {
        t.extend(check_stochastic(
            &format!("{what} transmat row {i}"),
            &trans[i * k..(i + 1) * k],
        )?);
    }
    for j in 0..k {
        let c = &covars[j * d * d..(j + 1) * d * d];
        for a in 0..d {
            for b in 0..d {
                let (x, y) = (c[a * d + b], c[b * d + a]);
                if ct == CovarianceType::Diag && a != b && x != 0.0 {
                    return Err(CoreError::invalid(format!(
                        "{what} covars of state {j} must be diagonal for covariance_type \"diag\" (entry ({a}, {b}) is {x})"
                    )));
                }
                if a < b && (x - y).abs() > 1e-12 * (x.abs() + y.abs()).max(f64::MIN_POSITIVE) {
                    return Err(CoreError::invalid(format!(
                        "{what} covars of state {j} must be symmetric (entries ({a}, {b}) and ({b}, {a}) differ)"
                    )));
                }
            }
        }
        let mut l = c.to_vec();
        if cholesky(&mut l, d).is_none() {
            return Err(CoreError::invalid(format!(
                "{what} covars of state {j} must be symmetric positive definite"
            )));
        }
    }
    Ok((start, t))
}

impl Model {
    /// A checked model (probabilities must sum to 1 within `INIT_SUM_TOLERANCE`).
    pub fn new(
        n_states: usize,
        n_features: usize,
        covariance_type: CovarianceType,
        start_prob: &[f64],
        transmat: &[f64],
        means: &[f64],
        covars: &[f64],
    ) -> CoreResult<Model> {
        if !(1..=MAX_STATES).contains(&n_states) {
            return Err(CoreError::invalid(format!(
                "model n_states must be between 1 and {MAX_STATES}, got {n_states}"
            )));
        }
        if !(1..=MAX_FEATURES).contains(&n_features) {
            return Err(CoreError::invalid(format!(
                "model n_features must be between 1 and {MAX_FEATURES}, got {n_features}"
            )));
        }
        // Checked, but kept as given (not renormalised): a fitted model passed back in filters
        // bit-identically to the fit's own filtered probabilities.
        check_params(
            "model",
            n_states,
            n_features,
            covariance_type,
            start_prob,
            transmat,
            means,
            covars,
        )?;
        Ok(Model {
            n_states,
            n_features,
            covariance_type,
            start_prob: start_prob.to_vec(),
            transmat: transmat.to_vec(),
            means: means.to_vec(),
            covars: covars.to_vec(),
        })
    }

    fn emission(&self) -> CoreResult<Emission> {
        Emission::new(
            &self.means,
            &self.covars,
            self.n_states,
            self.n_features,
            self.covariance_type,
        )
        .map_err(|j| {
            CoreError::invalid(format!(
                "model covars of state {j} must be symmetric positive definite"
            ))
        })
    }
}

// ------------------------------------------------------------------ the filter

fn zero_probability(t: usize) -> CoreError {
    CoreError::numerical(format!(
        "observation {t} has zero probability under the model's parameters"
    ))
}

/// One step of the forward filter: `prev` (the filtered probabilities at t - 1, or `None` at
/// t = 0) → `out` (at t). Returns the log-likelihood increment `ln p(x_t | x_1..x_{t-1})` if
/// `LL` (else 0: the fit's filtered probabilities need none, one `ln` per step less). `K > 0`
/// fixes the state count at compile time (equal to `em.k`: loops the compiler unrolls; `K = 0`
/// reads it): the probabilities are the same operations in the same order either way, so the
/// same bits (100k steps x 3 states 3.8 -> 2.5 ms). The one code path of [`filter`], the fits'
/// filtered probabilities, the walk-forward and [`OnlineFilter`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn filter_step<const K: usize, const LL: bool>(
    em: &Emission,
    start: &[f64],
    trans: &[f64],
    prev: Option<&[f64]>,
    x: &[f64],
    out: &mut [f64],
    tmp: &mut [f64],
    t: usize,
) -> CoreResult<f64> {
    let k = if K == 0 { em.k } else { K };
    let (logb, rest) = tmp.split_at_mut(k);
    let (pred, rest) = rest.split_at_mut(k);
    let m = em.log_densities_k::<K>(x, logb, rest);
    match prev {
        None => out[..k].copy_from_slice(&start[..k]),
        Some(p) => {
            for j in 0..k {
                out[j] = p[0] * trans[j];
            }
            for i in 1..k {
                let pi = p[i];
                let row = &trans[i * k..(i + 1) * k];
                for j in 0..k {
                    out[j] += pi * row[j];
                }
            }
        }
    }
    let mut c = 0.0;
    for j in 0..k {
        let v = out[j] * exp_nonpositive(logb[j] - m);
        pred[j] = out[j]; // kept for the log-space fallback below
        out[j] = v;
        c += v;
    }
    if !(c > 0.0 && c.is_finite()) {
        // The step's mass underflowed (an observation far out in the tail of the states the
        // chain can be in): redo it in log space. Only a true zero is an error.
        for j in 0..k {
            logb[j] += pred[j].ln();
        }
        let mut mm = f64::NEG_INFINITY;
        for &v in logb.iter() {
            mm = mm.max(v);
        }
        if !mm.is_finite() {
            return Err(zero_probability(t));
        }
        let mut c2 = 0.0;
        for j in 0..k {
            let v = exp_nonpositive(logb[j] - mm);
            out[j] = v;
            c2 += v;
        }
        for v in out[..k].iter_mut() {
            *v = pz(*v / c2);
        }
        return Ok(if LL { mm + c2.ln() } else { 0.0 });
    }
    for v in out[..k].iter_mut() {
        *v = pz(*v / c);
    }
    Ok(if LL { m + c.ln() } else { 0.0 })
}

/// Filtered probabilities `P(state_t | x_1..x_t)` (`n x K`, row-major) of `obs` (`n x D`)
/// under fixed parameters, and the log-likelihood `ln p(x_1..x_n)`.
pub fn filter(model: &Model, obs: &[f64], n: usize) -> CoreResult<(Vec<f64>, f64)> {
    let (out, ll) = filter_table::<true>(model, obs, n)?;
    Ok((out, pz(ll)))
}

/// Filtered probabilities only (no log-likelihood): the fit's filtered output, the same bits as
/// [`filter`]'s.
pub(crate) fn filter_probabilities(model: &Model, obs: &[f64], n: usize) -> CoreResult<Vec<f64>> {
    Ok(filter_table::<false>(model, obs, n)?.0)
}

fn filter_table<const LL: bool>(
    model: &Model,
    obs: &[f64],
    n: usize,
) -> CoreResult<(Vec<f64>, f64)> {
    let d = model.n_features;
    check_obs(obs, n, d)?;
    let k = model.n_states;
    let _budget = crate::limits::reserve(&crate::limits::hmm_filter(n, k))?;
    let em = model.emission()?;
    let mut out = crate::limits::zeroed(n * k, "the filtered probabilities")?;
    let ll = filter_rows::<LL>(&em, &model.start_prob, &model.transmat, obs, &mut out)?;
    Ok((out, ll))
}

/// The filter over the rows of `obs` into `out` (the log-likelihood if `LL`, else 0), with the
/// state count fixed at compile time for K = 2..=4 (see [`filter_step`]).
fn filter_rows<const LL: bool>(
    em: &Emission,
    start: &[f64],
    trans: &[f64],
    obs: &[f64],
    out: &mut [f64],
) -> CoreResult<f64> {
    match em.k {
        2 => filter_into_k::<2, LL>(em, start, trans, obs, out),
        3 => filter_into_k::<3, LL>(em, start, trans, obs, out),
        4 => filter_into_k::<4, LL>(em, start, trans, obs, out),
        _ => filter_into_k::<0, LL>(em, start, trans, obs, out),
    }
}

fn filter_into_k<const K: usize, const LL: bool>(
    em: &Emission,
    start: &[f64],
    trans: &[f64],
    obs: &[f64],
    out: &mut [f64],
) -> CoreResult<f64> {
    let (k, d) = (if K == 0 { em.k } else { K }, em.d);
    let n = obs.len() / d;
    let mut tmp = vec![0.0; 2 * k + d];
    let mut ll = 0.0;
    for t in 0..n {
        if t & 0x3FFF == 0x3FFF {
            crate::limits::poll()?;
        }
        let (done, cur) = out.split_at_mut(t * k);
        let prev = if t == 0 {
            None
        } else {
            Some(&done[(t - 1) * k..])
        };
        ll += filter_step::<K, LL>(
            em,
            start,
            trans,
            prev,
            &obs[t * d..(t + 1) * d],
            &mut cur[..k],
            &mut tmp,
            t,
        )?;
    }
    Ok(ll)
}

/// The forward filter one observation at a time, with fixed parameters: bit-identical to
/// [`filter`] on the concatenated observations.
#[derive(Debug, Clone)]
pub struct OnlineFilter {
    model: Model,
    em: Emission,
    prev: Vec<f64>,
    tmp: Vec<f64>,
    t: usize,
    ll: f64,
}

impl OnlineFilter {
    pub fn new(model: Model) -> CoreResult<Self> {
        let em = model.emission()?;
        let k = model.n_states;
        let d = model.n_features;
        Ok(OnlineFilter {
            model,
            em,
            prev: vec![0.0; k],
            tmp: vec![0.0; 2 * k + d],
            t: 0,
            ll: 0.0,
        })
    }
    pub fn model(&self) -> &Model {
        &self.model
    }
    /// Observations seen so far.
    pub fn count(&self) -> usize {
        self.t
    }
    /// Log-likelihood of the observations seen so far.
    pub fn log_likelihood(&self) -> f64 {
        pz(self.ll)
    }
    /// Filter `rows` (`m x D` row-major) and append their filtered probabilities (`m x K`) to
    /// `out`. On an error (a non-finite value, a zero-probability observation) nothing is
    /// consumed.
    pub fn update(&mut self, rows: &[f64], out: &mut Vec<f64>) -> CoreResult<()> {
        let (k, d) = (self.model.n_states, self.model.n_features);
        if !rows.len().is_multiple_of(d) {
            return Err(CoreError::invalid(format!(
                "observations must have {d} values per row (n_features), got {} values",
                rows.len()
            )));
        }
        if let Some(i) = rows.iter().position(|v| !v.is_finite()) {
            return Err(CoreError::invalid(format!(
                "observations contains {} at row {}, column {}",
                if rows[i].is_nan() {
                    "NaN"
                } else {
                    "an infinite value"
                },
                self.t + i / d,
                i % d
            )));
        }
        let m = rows.len() / d;
        let base = out.len();
        out.try_reserve(m * k)
            .map_err(|_| CoreError::ResourceExhausted("the filtered probabilities".into()))?;
        let (mut prev, mut t, mut ll) = (self.prev.clone(), self.t, self.ll);
        let mut cur = vec![0.0; k];
        for r in 0..m {
            let p = if t == 0 { None } else { Some(&prev[..]) };
            match filter_step::<0, true>(
                &self.em,
                &self.model.start_prob,
                &self.model.transmat,
                p,
                &rows[r * d..(r + 1) * d],
                &mut cur,
                &mut self.tmp,
                t,
            ) {
                Ok(inc) => ll += inc,
                Err(e) => {
                    out.truncate(base);
                    return Err(e);
                }
            }
            out.extend_from_slice(&cur);
            std::mem::swap(&mut prev, &mut cur);
            t += 1;
        }
        self.prev = prev;
        self.t = t;
        self.ll = ll;
        Ok(())
    }
}

// ------------------------------------------------------------------ the fit

/// Parameters in standardised units (covariances always as full D x D matrices).
#[derive(Debug, Clone)]
struct Params {
    start: Vec<f64>,
    trans: Vec<f64>,
    means: Vec<f64>,
    covars: Vec<f64>,
}

struct Work {
    emis: Vec<f64>,
    alpha: Vec<f64>,
    inv_c: Vec<f64>,
    start: Vec<f64>,
    trans: Vec<f64>,
    s0: Vec<f64>,
    s1: Vec<f64>,
    s2: Vec<f64>,
}

impl Work {
    fn new(n: usize, k: usize, d: usize) -> CoreResult<Self> {
        Ok(Work {
            emis: crate::limits::zeroed(n * k, "the HMM emission table")?,
            alpha: crate::limits::zeroed(n * k, "the HMM forward table")?,
            inv_c: crate::limits::zeroed(n, "the HMM scaling factors")?,
            start: vec![0.0; k],
            trans: vec![0.0; k * k],
            s0: vec![0.0; k],
            s1: vec![0.0; k * d],
            s2: vec![0.0; k * d * d],
        })
    }
}

/// Validate a fit's inputs; returns (per-feature mean, per-feature sd).
fn check_fit(obs: &[f64], n: usize, d: usize, cfg: &MvConfig) -> CoreResult<(Vec<f64>, Vec<f64>)> {
    check_obs(obs, n, d)?;
    let k = cfg.n_states;
    hmm::check_config(n, k, cfg.max_iterations, cfg.tolerance, cfg.n_restarts)?;
    if cfg.covariance_type == CovarianceType::Full && n <= d {
        return Err(CoreError::invalid(format!(
            "observations are too short for full covariances: {n} rows for {d} features (need more rows than features)"
        )));
    }
    let mut mean = vec![0.0; d];
    let mut sd = vec![0.0; d];
    for a in 0..d {
        let col = || (0..n).map(|t| obs[t * d + a]);
        let m0 = col().sum::<f64>() / n as f64;
        let m = m0 + col().map(|x| x - m0).sum::<f64>() / n as f64;
        let var = col().map(|x| (x - m) * (x - m)).sum::<f64>() / n as f64;
        if !(m.is_finite() && var.is_finite()) {
            return Err(CoreError::invalid(format!(
                "observations column {a} is too large in magnitude (its mean or variance overflows)"
            )));
        }
        let scale = col().fold(0.0f64, |s, x| s.max(x.abs()));
        let first = obs[a];
        if var <= (64.0 * f64::EPSILON * scale).powi(2) || col().all(|x| x == first) {
            return Err(CoreError::invalid(format!(
                "observations column {a} has (near-)zero variance (variance {var:e} for values of magnitude {scale:e}): a constant feature cannot separate regimes"
            )));
        }
        mean[a] = m;
        sd[a] = var.sqrt();
    }
    Ok((mean, sd))
}

fn standardise(obs: &[f64], n: usize, d: usize, mean: &[f64], sd: &[f64]) -> CoreResult<Vec<f64>> {
    let mut z = crate::limits::zeroed(n * d, "the standardised observations")?;
    for t in 0..n {
        for a in 0..d {
            z[t * d + a] = (obs[t * d + a] - mean[a]) / sd[a];
        }
    }
    Ok(z)
}

/// Correlation matrix of standardised data (`d x d`).
fn correlation(z: &[f64], n: usize, d: usize) -> Vec<f64> {
    let mut r = vec![0.0; d * d];
    for t in 0..n {
        let row = &z[t * d..(t + 1) * d];
        for a in 0..d {
            for b in 0..=a {
                r[a * d + b] += row[a] * row[b];
            }
        }
    }
    for a in 0..d {
        for b in 0..=a {
            let v = r[a * d + b] / n as f64;
            r[a * d + b] = v;
            r[b * d + a] = v;
        }
    }
    r
}

/// Fit a multivariate Gaussian HMM to `obs` (`n x d` row-major). See the module documentation.
pub fn run_hmm_mv(
    obs: &[f64],
    n: usize,
    d: usize,
    cfg: &MvConfig,
    on_progress: &mut dyn FnMut(usize, f64) -> bool,
) -> CoreResult<MvResult> {
    let (mean, sd) = check_fit(obs, n, d, cfg)?;
    let k = cfg.n_states;
    let ct = cfg.covariance_type;
    let explicit = match &cfg.init {
        Some(i) => {
            let (start, trans) = check_params(
                "init",
                k,
                d,
                ct,
                &i.start_prob,
                &i.transmat,
                &i.means,
                &i.covars,
            )?;
            let means: Vec<f64> = (0..k * d)
                .map(|x| (i.means[x] - mean[x % d]) / sd[x % d])
                .collect();
            let mut covars = i.covars.clone();
            for j in 0..k {
                for a in 0..d {
                    for b in 0..d {
                        covars[j * d * d + a * d + b] /= sd[a] * sd[b];
                    }
                }
            }
            Some(Params {
                start,
                trans,
                means,
                covars,
            })
        }
        None => None,
    };
    let restarts = cfg.n_restarts.unwrap_or(if cfg.init.is_some() {
        0
    } else {
        hmm::DEFAULT_RESTARTS
    });
    let workers = hmm::workers(restarts + 1);
    let _budget = crate::limits::reserve(&crate::limits::hmm_mv(n, k, d, workers))?;
    let z = standardise(obs, n, d, &mean, &sd)?;
    // The same, column by column (the E-step's kernels run along time).
    let mut zt = crate::limits::zeroed(n * d, "the standardised observations")?;
    for (t, row) in z.chunks_exact(d).enumerate() {
        for (a, &v) in row.iter().enumerate() {
            zt[a * n + t] = v;
        }
    }
    let corr = correlation(&z, n, d);
    if ct == CovarianceType::Full {
        let mut l = corr.clone();
        if cholesky(&mut l, d).is_none_or(|w| w < 1e-10) {
            return Err(CoreError::invalid(
                "observations are (near-)collinear: a feature is a linear combination of the others (their covariance matrix is singular); drop it or use covariance_type \"diag\"",
            ));
        }
    }
    let ll_offset = -(n as f64) * sd.iter().map(|s| s.ln()).sum::<f64>();

    let run = |r: usize,
               progress: &mut dyn FnMut(f64) -> bool|
     -> CoreResult<((Params, Vec<f64>, bool), f64)> {
        let p0 = if r == 0 {
            match &explicit {
                Some(p) => p.clone(),
                None => deterministic_start(&z, n, d, k, ct, &corr),
            }
        } else {
            kmeanspp_start(&z, n, d, k, ct, &corr, cfg.seed, r)
        };
        let mut work = Work::new(n, k, d)?;
        let (p, history, converged) = em(
            &z,
            &zt,
            d,
            p0,
            cfg,
            ll_offset,
            &mut work,
            progress,
            Vec::with_capacity(cfg.max_iterations.min(10_000)),
            cfg.max_iterations,
        )?;
        // The final log-likelihood only ranks the runs: one run alone needs no extra E-step.
        let final_ll = if restarts == 0 {
            0.0
        } else {
            e_step(&z, &zt, d, &p, ct, &mut work, None)? + ll_offset
        };
        Ok(((p, history, converged), final_ll))
    };
    let ((p, history, converged), mut counter) =
        hmm::best_of_runs(restarts + 1, workers, &run, on_progress)?;
    // The default start polishes the winner (see `crate::hmm`).
    let (p, history, converged) = if cfg.n_restarts.is_none() && cfg.init.is_none() && !converged {
        let mut work = Work::new(n, k, d)?;
        em(
            &z,
            &zt,
            d,
            p,
            cfg,
            ll_offset,
            &mut work,
            &mut |ll| {
                counter += 1;
                on_progress(counter, ll)
            },
            history,
            cfg.max_iterations.saturating_mul(hmm::POLISH_FACTOR),
        )?
    } else {
        (p, history, converged)
    };

    // Sort states by the mean of feature 0 and go back to the units of the data.
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| p.means[a * d].total_cmp(&p.means[b * d]));
    let mut means = vec![0.0; k * d];
    let mut covars = vec![0.0; k * d * d];
    let mut start_prob = vec![0.0; k];
    let mut transmat = vec![0.0; k * k];
    for (r, &o) in order.iter().enumerate() {
        start_prob[r] = p.start[o];
        for a in 0..d {
            means[r * d + a] = mean[a] + sd[a] * p.means[o * d + a];
            for b in 0..d {
                let v = p.covars[o * d * d + a * d + b];
                covars[r * d * d + a * d + b] = if ct == CovarianceType::Diag && a != b {
                    0.0
                } else {
                    v * sd[a] * sd[b]
                };
            }
        }
        for (s, &o2) in order.iter().enumerate() {
            transmat[r * k + s] = p.trans[o * k + o2];
        }
    }
    for v in [&mut means, &mut covars, &mut start_prob, &mut transmat] {
        pz_all(v);
    }
    let model = Model {
        n_states: k,
        n_features: d,
        covariance_type: ct,
        start_prob,
        transmat,
        means,
        covars,
    };
    // LL, posteriors and Viterbi under the returned parameters (standardised, sorted).
    let ps = Params {
        start: model.start_prob.clone(),
        trans: model.transmat.clone(),
        means: (0..k * d)
            .map(|x| (model.means[x] - mean[x % d]) / sd[x % d])
            .collect(),
        covars: (0..k * d * d)
            .map(|x| {
                let (a, b) = ((x / d) % d, x % d);
                model.covars[x] / (sd[a] * sd[b])
            })
            .collect(),
    };
    let mut posteriors = crate::limits::zeroed(n * k, "the HMM posteriors")?;
    let ll = {
        let mut work = Work::new(n, k, d)?;
        e_step(&z, &zt, d, &ps, ct, &mut work, Some(&mut posteriors))? + ll_offset
    };
    let viterbi_path = viterbi(&z, n, d, &ps, ct)?;
    drop(z);
    drop(zt);
    let em = model.emission()?;
    let mut filtered = crate::limits::zeroed(n * k, "the filtered probabilities")?;
    filter_rows::<false>(&em, &model.start_prob, &model.transmat, obs, &mut filtered)?;
    pz_all(&mut posteriors);
    let mut history = history;
    pz_all(&mut history);
    let np = n_parameters(k, d, ct);
    Ok(MvResult {
        model,
        log_likelihood: pz(ll),
        iterations: history.len(),
        log_likelihood_history: history,
        converged,
        posteriors,
        filtered,
        viterbi_path,
        n_parameters: np,
        aic: pz(2.0 * np as f64 - 2.0 * ll),
        bic: pz(np as f64 * (n as f64).ln() - 2.0 * ll),
    })
}

fn em(
    z: &[f64],
    zt: &[f64],
    d: usize,
    mut p: Params,
    cfg: &MvConfig,
    ll_offset: f64,
    work: &mut Work,
    progress: &mut dyn FnMut(f64) -> bool,
    mut history: Vec<f64>,
    cap: usize,
) -> CoreResult<(Params, Vec<f64>, bool)> {
    let mut converged = false;
    while history.len() < cap {
        let ll = e_step(z, zt, d, &p, cfg.covariance_type, work, None)? + ll_offset;
        history.push(ll);
        if !progress(ll) {
            return Err(CoreError::Cancelled);
        }
        m_step(&mut p, d, cfg.covariance_type, work);
        let h = history.len();
        if h >= 2 && history[h - 1] - history[h - 2] < cfg.tolerance {
            converged = true;
            break;
        }
    }
    Ok((p, history, converged))
}

/// Floor a covariance (standardised units) in place so that it is SPD with squared pivots
/// relative to the diagonal `>= COVARIANCE_FLOOR` (full) / variances `>= COVARIANCE_FLOOR`.
fn floor_covariance(c: &mut [f64], d: usize, ct: CovarianceType) {
    match ct {
        CovarianceType::Diag => {
            for a in 0..d {
                let v = &mut c[a * d + a];
                *v = v.max(COVARIANCE_FLOOR);
            }
        }
        CovarianceType::Full => {
            let mut add = COVARIANCE_FLOOR;
            for _ in 0..80 {
                let mut l = c.to_vec();
                let ok = cholesky(&mut l, d).is_some_and(|w| w >= COVARIANCE_FLOOR)
                    && (0..d).all(|a| c[a * d + a] >= COVARIANCE_FLOOR);
                if ok {
                    return;
                }
                for a in 0..d {
                    c[a * d + a] += add;
                }
                add *= 2.0;
            }
        }
    }
}

/// The M-step of the start and transition probabilities, shared by the 1-D HMM (`hmm.rs`) and
/// this one: `start` becomes the expected start counts normalised to sum 1 and each of the `k`
/// rows of `trans` (k x k, row-major) its row of expected transition counts normalised likewise.
/// A count vector whose sum is zero or not finite leaves its probabilities as they were.
pub(crate) fn normalise_start_trans(
    start: &mut [f64],
    trans: &mut [f64],
    start_counts: &[f64],
    trans_counts: &[f64],
) {
    let k = start.len();
    let ssum: f64 = start_counts.iter().sum();
    if ssum > 0.0 && ssum.is_finite() {
        for (dst, &s) in start.iter_mut().zip(start_counts) {
            *dst = s / ssum;
        }
    }
    for i in 0..k {
        let row = &trans_counts[i * k..(i + 1) * k];
        let r: f64 = row.iter().sum();
        if r > 0.0 && r.is_finite() {
            for (dst, &x) in trans[i * k..(i + 1) * k].iter_mut().zip(row) {
                *dst = x / r;
            }
        }
    }
}

fn m_step(p: &mut Params, d: usize, ct: CovarianceType, w: &Work) {
    let k = p.start.len();
    normalise_start_trans(&mut p.start, &mut p.trans, &w.start, &w.trans);
    for j in 0..k {
        let s0 = w.s0[j];
        if s0.is_nan() || s0 <= 0.0 {
            continue;
        }
        let dm: Vec<f64> = (0..d).map(|a| w.s1[j * d + a] / s0).collect();
        let mut c = vec![0.0; d * d];
        for a in 0..d {
            for b in 0..=a {
                if ct == CovarianceType::Diag && a != b {
                    continue;
                }
                let v = w.s2[j * d * d + a * d + b] / s0 - dm[a] * dm[b];
                c[a * d + b] = v;
                c[b * d + a] = v;
            }
        }
        if !(dm.iter().all(|v| v.is_finite()) && c.iter().all(|v| v.is_finite())) {
            continue;
        }
        floor_covariance(&mut c, d, ct);
        for a in 0..d {
            p.means[j * d + a] += dm[a];
        }
        p.covars[j * d * d..(j + 1) * d * d].copy_from_slice(&c);
    }
}

/// Rows per block of the emission and statistics kernels (vectorised across time).
const BLOCK: usize = 256;
/// Partial sums per statistic in the statistics kernel (summed pairwise at the end of a block).
const LANES: usize = 4;

/// One E-step in standardised units: the log-likelihood (without the units offset); leaves the
/// sufficient statistics in `w`, writes the smoothed posteriors if asked. Kernels with the
/// number of states known at compile time for K <= 8.
fn e_step(
    z: &[f64],
    zt: &[f64],
    d: usize,
    p: &Params,
    ct: CovarianceType,
    w: &mut Work,
    post: Option<&mut [f64]>,
) -> CoreResult<f64> {
    match p.start.len() {
        1 => hmm::with_simd(move || e_step_impl::<1>(z, zt, d, p, ct, w, post)),
        2 => hmm::with_simd(move || e_step_impl::<2>(z, zt, d, p, ct, w, post)),
        3 => hmm::with_simd(move || e_step_impl::<3>(z, zt, d, p, ct, w, post)),
        4 => hmm::with_simd(move || e_step_impl::<4>(z, zt, d, p, ct, w, post)),
        5 => hmm::with_simd(move || e_step_impl::<5>(z, zt, d, p, ct, w, post)),
        6 => hmm::with_simd(move || e_step_impl::<6>(z, zt, d, p, ct, w, post)),
        7 => hmm::with_simd(move || e_step_impl::<7>(z, zt, d, p, ct, w, post)),
        8 => hmm::with_simd(move || e_step_impl::<8>(z, zt, d, p, ct, w, post)),
        _ => hmm::with_simd(move || e_step_impl::<0>(z, zt, d, p, ct, w, post)),
    }
}

/// Scratch buffers of the block kernels (`BLOCK` entries per feature / state).
struct BlockBufs {
    /// D x BLOCK: whitened residuals (emission) / centred residuals (statistics).
    yb: Vec<f64>,
    /// D x BLOCK: posterior-weighted residuals (statistics).
    gd: Vec<f64>,
    /// K x BLOCK: log densities (emission) / unnormalised posteriors (statistics).
    kb: Vec<f64>,
}

impl BlockBufs {
    fn new(k: usize, d: usize) -> Self {
        BlockBufs {
            yb: vec![0.0; d * BLOCK],
            gd: vec![0.0; d * BLOCK],
            kb: vec![0.0; k * BLOCK],
        }
    }
}

/// Scaled emission probabilities of rows `t0..t0 + nb` into `emis` (each row divided by its
/// largest entry); returns the sum of the per-row log maxima. The same operations, in the same
/// order, as [`Emission::log_densities`] row by row, but vectorised across the block's rows.
#[inline(always)]
fn emission_block(
    em: &Emission,
    zc: &[f64],
    n: usize,
    t0: usize,
    bb: &mut BlockBufs,
    nb: usize,
    emis: &mut [f64],
) -> f64 {
    let (k, d) = (em.k, em.d);
    let col = |a: usize| &zc[a * n + t0..a * n + t0 + nb];
    for j in 0..k {
        let mu = &em.means[j * d..(j + 1) * d];
        let q = &mut bb.kb[j * BLOCK..j * BLOCK + nb];
        q.fill(0.0);
        if em.diag {
            let isd = &em.fac[j * d..(j + 1) * d];
            for a in 0..d {
                let (m, s) = (mu[a], isd[a]);
                for (qv, &x) in q.iter_mut().zip(col(a)) {
                    let y = (x - m) * s;
                    *qv += y * y;
                }
            }
        } else {
            let l = &em.fac[j * d * d..(j + 1) * d * d];
            for a in 0..d {
                let (done, rest) = bb.yb.split_at_mut(a * BLOCK);
                let ya = &mut rest[..nb];
                let m = mu[a];
                for (y, &x) in ya.iter_mut().zip(col(a)) {
                    *y = x - m;
                }
                for b in 0..a {
                    let lab = l[a * d + b];
                    for (y, &yb) in ya.iter_mut().zip(&done[b * BLOCK..b * BLOCK + nb]) {
                        *y -= lab * yb;
                    }
                }
                let laa = l[a * d + a];
                for (y, qv) in ya.iter_mut().zip(q.iter_mut()) {
                    let v = *y / laa;
                    *y = v;
                    *qv += v * v;
                }
            }
        }
        let c = em.cst[j];
        for qv in q.iter_mut() {
            *qv = c - 0.5 * *qv;
        }
    }
    let mut ll = 0.0;
    for (tt, row) in emis.chunks_exact_mut(k).enumerate().take(nb) {
        let mut m = f64::NEG_INFINITY;
        for j in 0..k {
            let v = bb.kb[j * BLOCK + tt];
            row[j] = v;
            m = if v > m { v } else { m };
        }
        for v in row.iter_mut() {
            *v -= m;
        }
        ll += m;
    }
    hmm::exp_nonpositive_slice(&mut emis[..nb * k]);
    ll
}

/// `sum_l acc[l]`, pairwise.
#[inline(always)]
fn lane_sum(acc: [f64; LANES]) -> f64 {
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

/// `sum_t x_t` over the block (element `t` goes to partial sum `t % LANES`).
#[inline(always)]
fn block_sum(x: &[f64]) -> f64 {
    let mut acc = [0.0; LANES];
    let cx = x.chunks_exact(LANES);
    let rx = cx.remainder();
    for c in cx {
        for l in 0..LANES {
            acc[l] += c[l];
        }
    }
    for (l, &v) in rx.iter().enumerate() {
        acc[l] += v;
    }
    lane_sum(acc)
}

/// `sum_t x_t y_t` over the block.
#[inline(always)]
fn block_dot(x: &[f64], y: &[f64]) -> f64 {
    let mut acc = [0.0; LANES];
    let (cx, cy) = (x.chunks_exact(LANES), y.chunks_exact(LANES));
    let (rx, ry) = (cx.remainder(), cy.remainder());
    for (cx, cy) in cx.zip(cy) {
        for l in 0..LANES {
            acc[l] += cx[l] * cy[l];
        }
    }
    for (l, (&a, &b)) in rx.iter().zip(ry).enumerate() {
        acc[l] += a * b;
    }
    lane_sum(acc)
}

/// Adds the block's sufficient statistics (posterior mass, first and second moments centred on
/// the current means) to `s0`, `s1`, `s2`; `bb.kb` holds the block's unnormalised posteriors
/// (rows `t0..t0 + nbp` of the transposed observations `zc`).
#[inline(always)]
fn stats_block(
    k: usize,
    d: usize,
    full: bool,
    means: &[f64],
    zc: &[f64],
    n: usize,
    t0: usize,
    bb: &mut BlockBufs,
    nbp: usize,
    s0: &mut [f64],
    s1: &mut [f64],
    s2: &mut [f64],
) {
    for i in 0..k {
        let g = &bb.kb[i * BLOCK..i * BLOCK + nbp];
        s0[i] += block_sum(g);
        let mu = &means[i * d..(i + 1) * d];
        for a in 0..d {
            let m = mu[a];
            let dx = &mut bb.yb[a * BLOCK..a * BLOCK + nbp];
            let gd = &mut bb.gd[a * BLOCK..a * BLOCK + nbp];
            for (((y, gv), &x), &gi) in dx
                .iter_mut()
                .zip(gd.iter_mut())
                .zip(&zc[a * n + t0..a * n + t0 + nbp])
                .zip(g)
            {
                let v = x - m;
                *y = v;
                *gv = gi * v;
            }
            s1[i * d + a] += block_sum(gd);
        }
        let s2i = &mut s2[i * d * d..(i + 1) * d * d];
        for a in 0..d {
            let gd = &bb.gd[a * BLOCK..a * BLOCK + nbp];
            if full {
                for b in 0..=a {
                    s2i[a * d + b] += block_dot(gd, &bb.yb[b * BLOCK..b * BLOCK + nbp]);
                }
            } else {
                s2i[a * d + a] += block_dot(gd, &bb.yb[a * BLOCK..a * BLOCK + nbp]);
            }
        }
    }
}

/// `K` states known at compile time (`K = 0`: any number, read from `p`). Inlined into
/// [`hmm::with_simd`]'s AVX2 variant.
#[inline(always)]
fn e_step_impl<const K: usize>(
    z: &[f64],
    zt: &[f64],
    d: usize,
    p: &Params,
    ct: CovarianceType,
    w: &mut Work,
    mut post: Option<&mut [f64]>,
) -> CoreResult<f64> {
    let k = if K == 0 { p.start.len() } else { K };
    let n = z.len() / d;
    let em = Emission::new(&p.means, &p.covars, k, d, ct).map_err(|j| {
        CoreError::numerical(format!(
            "the covariance of state {j} is not positive definite (numerical breakdown)"
        ))
    })?;
    let a = &p.trans[..k * k];
    let emis = &mut w.emis[..n * k];
    let alpha = &mut w.alpha[..n * k];
    let inv_c = &mut w.inv_c[..n];
    let mut bb = BlockBufs::new(k, d);
    let n_blocks = n.div_ceil(BLOCK);

    // Emission probabilities, block by block (vectorised across the block's rows).
    let mut ll = 0.0;
    for blk in 0..n_blocks {
        let t0 = blk * BLOCK;
        let nb = BLOCK.min(n - t0);
        let rows = &mut emis[t0 * k..(t0 + nb) * k];
        ll += emission_block(&em, zt, n, t0, &mut bb, nb, rows);
        if blk & 63 == 63 {
            crate::limits::poll()?;
        }
    }
    crate::limits::poll()?;

    // Forward pass, normalised at every step; the product of the c_t kept as mantissa * 2^shift.
    let mut prev = [0.0; MAX_STATES];
    let mut acc = 1.0f64;
    let mut shift: i64 = 0;
    for t in 0..n {
        if t & 0x3FFF == 0x3FFF {
            crate::limits::poll()?;
        }
        let bt = &emis[t * k..(t + 1) * k];
        let mut cur = [0.0; MAX_STATES];
        if t == 0 {
            cur[..k].copy_from_slice(&p.start[..k]);
        } else {
            for j in 0..k {
                cur[j] = prev[0] * a[j];
            }
            for i in 1..k {
                let pi = prev[i];
                let row = &a[i * k..(i + 1) * k];
                for j in 0..k {
                    cur[j] += pi * row[j];
                }
            }
        }
        let mut c = 0.0;
        for j in 0..k {
            let v = cur[j] * bt[j];
            cur[j] = v;
            c += v;
        }
        if !(c > 0.0 && c.is_finite()) {
            return Err(zero_probability(t));
        }
        let ic = 1.0 / c;
        inv_c[t] = ic;
        for j in 0..k {
            prev[j] = cur[j] * ic;
        }
        alpha[t * k..(t + 1) * k].copy_from_slice(&prev[..k]);
        acc *= c;
        if acc < 7.888_609_052_210_118e-31 {
            let e = exponent(acc);
            shift += e;
            acc *= pow2(-e);
        }
    }
    ll += acc.ln() + shift as f64 * std::f64::consts::LN_2;

    // Backward pass; the sufficient statistics block by block from the block's posteriors.
    let full = ct == CovarianceType::Full;
    let s0 = &mut w.s0;
    let s1 = &mut w.s1;
    let s2 = &mut w.s2;
    s0.fill(0.0);
    s1.fill(0.0);
    s2.fill(0.0);
    let xi = &mut w.trans[..k * k];
    xi.fill(0.0);
    let mut beta = [1.0; MAX_STATES];
    let mut wv = [0.0; MAX_STATES];
    let mut g = [0.0; MAX_STATES];
    for blk in (0..n_blocks).rev() {
        let t0 = blk * BLOCK;
        let nb = BLOCK.min(n - t0);
        crate::limits::poll()?;
        for t in (t0..t0 + nb).rev() {
            if t == n - 1 {
                g[..k].copy_from_slice(&alpha[t * k..(t + 1) * k]);
            } else {
                let b1 = &emis[(t + 1) * k..(t + 2) * k];
                let ic = inv_c[t + 1];
                for j in 0..k {
                    wv[j] = b1[j] * beta[j] * ic;
                }
                let al = &alpha[t * k..(t + 1) * k];
                for i in 0..k {
                    let row = &a[i * k..(i + 1) * k];
                    let xr = &mut xi[i * k..(i + 1) * k];
                    let ai = al[i];
                    let mut s = 0.0;
                    for j in 0..k {
                        s += row[j] * wv[j];
                        xr[j] += ai * wv[j];
                    }
                    beta[i] = s;
                    g[i] = ai * s;
                }
            }
            let tt = t - t0;
            for j in 0..k {
                bb.kb[j * BLOCK + tt] = g[j];
            }
            if let Some(post) = post.as_deref_mut() {
                write_posterior(&mut post[t * k..(t + 1) * k], &g[..k]);
            }
        }
        stats_block(k, d, full, &p.means, zt, n, t0, &mut bb, nb, s0, s1, s2);
    }
    for i in 0..k {
        for j in 0..k {
            xi[i * k + j] *= a[i * k + j];
        }
    }
    if full {
        for i in 0..k {
            for a in 0..d {
                for b in 0..a {
                    s2[i * d * d + b * d + a] = s2[i * d * d + a * d + b];
                }
            }
        }
    }
    w.start[..k].copy_from_slice(&g[..k]);
    if !ll.is_finite() {
        return Err(CoreError::numerical(
            "the log-likelihood is not finite (numerical breakdown)",
        ));
    }
    Ok(ll)
}

#[inline(always)]
fn write_posterior(dst: &mut [f64], g: &[f64]) {
    let s: f64 = g.iter().sum();
    let inv = 1.0 / s;
    for (dd, &v) in dst.iter_mut().zip(g) {
        *dd = v * inv;
    }
}

/// Most likely state sequence (log space; ties go to the lower state index, like hmmlearn).
fn viterbi(
    z: &[f64],
    n: usize,
    d: usize,
    p: &Params,
    ct: CovarianceType,
) -> CoreResult<Vec<usize>> {
    let k = p.start.len();
    let em = Emission::new(&p.means, &p.covars, k, d, ct).map_err(|j| {
        CoreError::numerical(format!(
            "the covariance of state {j} is not positive definite (numerical breakdown)"
        ))
    })?;
    let log_a: Vec<f64> = p.trans.iter().map(|&v| v.ln()).collect();
    let mut back = crate::limits::zeroed_of::<u8>(n * k, "the Viterbi back-pointers")?;
    let mut delta = vec![0.0; k];
    let mut next = vec![0.0; k];
    let mut lb = vec![0.0; k];
    let mut tmp = vec![0.0; d];
    em.log_densities(&z[..d], &mut lb, &mut tmp);
    for j in 0..k {
        delta[j] = p.start[j].ln() + lb[j];
    }
    for t in 1..n {
        if t & 0x3FFF == 0 {
            crate::limits::poll()?;
        }
        em.log_densities(&z[t * d..(t + 1) * d], &mut lb, &mut tmp);
        for j in 0..k {
            let mut best = f64::NEG_INFINITY;
            let mut arg = 0usize;
            for i in 0..k {
                let v = delta[i] + log_a[i * k + j];
                if v > best {
                    best = v;
                    arg = i;
                }
            }
            next[j] = best + lb[j];
            back[t * k + j] = arg as u8;
        }
        std::mem::swap(&mut delta, &mut next);
    }
    let mut path = vec![0usize; n];
    let mut s = 0usize;
    for j in 1..k {
        if delta[j] > delta[s] {
            s = j;
        }
    }
    path[n - 1] = s;
    for t in (1..n).rev() {
        s = back[t * k + s] as usize;
        path[t - 1] = s;
    }
    Ok(path)
}

// ------------------------------------------------------------------ starts

/// Top eigenvector of a symmetric PSD `d x d` matrix by power iteration (deterministic).
fn top_eigenvector(r: &[f64], d: usize) -> Vec<f64> {
    let mut v = vec![1.0 / (d as f64).sqrt(); d];
    for it in 0..200 {
        let mut w = vec![0.0; d];
        for a in 0..d {
            for b in 0..d {
                w[a] += r[a * d + b] * v[b];
            }
        }
        let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm.is_nan() || norm <= 0.0 {
            // the start was orthogonal to everything: restart from e_{it}
            v = vec![0.0; d];
            v[it % d] = 1.0;
            continue;
        }
        let done = w.iter().zip(&v).all(|(a, b)| (a / norm - b).abs() < 1e-12);
        v = w.iter().map(|x| x / norm).collect();
        if done {
            break;
        }
    }
    // fixed sign: the largest component positive
    let imax = (0..d)
        .max_by(|&a, &b| v[a].abs().total_cmp(&v[b].abs()))
        .unwrap_or(0);
    if v[imax] < 0.0 {
        v.iter_mut().for_each(|x| *x = -*x);
    }
    v
}

fn pooled(corr: &[f64], d: usize, ct: CovarianceType) -> Vec<f64> {
    let mut c = corr.to_vec();
    if ct == CovarianceType::Diag {
        for a in 0..d {
            for b in 0..d {
                if a != b {
                    c[a * d + b] = 0.0;
                }
            }
        }
    }
    c
}

fn deterministic_start(
    z: &[f64],
    n: usize,
    d: usize,
    k: usize,
    ct: CovarianceType,
    corr: &[f64],
) -> Params {
    let v = top_eigenvector(corr, d);
    let mut proj: Vec<(f64, usize)> = (0..n)
        .map(|t| ((0..d).map(|a| z[t * d + a] * v[a]).sum::<f64>(), t))
        .collect();
    proj.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut means = vec![0.0; k * d];
    for j in 0..k {
        let bucket = &proj[j * n / k..(j + 1) * n / k];
        for &(_, t) in bucket {
            for a in 0..d {
                means[j * d + a] += z[t * d + a];
            }
        }
        for a in 0..d {
            means[j * d + a] /= bucket.len() as f64;
        }
    }
    let c = pooled(corr, d, ct);
    Params {
        start: vec![1.0 / k as f64; k],
        trans: sticky(k),
        means,
        covars: (0..k).flat_map(|_| c.iter().copied()).collect(),
    }
}

fn sticky(k: usize) -> Vec<f64> {
    if k == 1 {
        return vec![1.0];
    }
    let off = 0.1 / (k - 1) as f64;
    let mut t = vec![off; k * k];
    for i in 0..k {
        t[i * k + i] = 0.9;
    }
    t
}

fn sqdist(x: &[f64], c: &[f64]) -> f64 {
    x.iter().zip(c).map(|(a, b)| (a - b) * (a - b)).sum()
}

/// k-means++ seeding + 10 Lloyd iterations on the standardised rows, seeded by (seed, run).
/// Also used by the 1-D fit (`d = 1`).
pub(crate) fn kmeanspp_start_raw(
    z: &[f64],
    n: usize,
    d: usize,
    k: usize,
    seed: u64,
    run: usize,
) -> (Vec<f64>, Vec<usize>) {
    let mut rng = SplitMix64(seed ^ (run as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
    rng.next_u64();
    let mut cent = vec![0.0; k * d];
    let first = rng.below(n);
    cent[..d].copy_from_slice(&z[first * d..(first + 1) * d]);
    let mut dist: Vec<f64> = (0..n)
        .map(|t| sqdist(&z[t * d..(t + 1) * d], &cent[..d]))
        .collect();
    for j in 1..k {
        let total: f64 = dist.iter().sum();
        let pick = if total > 0.0 {
            let mut u = rng.next_f64() * total;
            let mut pick = n - 1;
            for (t, &w) in dist.iter().enumerate() {
                if u < w {
                    pick = t;
                    break;
                }
                u -= w;
            }
            pick
        } else {
            rng.below(n)
        };
        cent[j * d..(j + 1) * d].copy_from_slice(&z[pick * d..(pick + 1) * d]);
        for t in 0..n {
            let dd = sqdist(&z[t * d..(t + 1) * d], &cent[j * d..(j + 1) * d]);
            if dd < dist[t] {
                dist[t] = dd;
            }
        }
    }
    let mut label = vec![usize::MAX; n];
    for _ in 0..30 {
        let mut changed = false;
        for t in 0..n {
            let x = &z[t * d..(t + 1) * d];
            let mut best = (f64::INFINITY, 0);
            for j in 0..k {
                let dd = sqdist(x, &cent[j * d..(j + 1) * d]);
                if dd < best.0 {
                    best = (dd, j);
                }
            }
            if label[t] != best.1 {
                changed = true;
                label[t] = best.1;
            }
        }
        if !changed {
            break;
        }
        let mut sum = vec![0.0; k * d];
        let mut cnt = vec![0usize; k];
        for t in 0..n {
            cnt[label[t]] += 1;
            for a in 0..d {
                sum[label[t] * d + a] += z[t * d + a];
            }
        }
        for j in 0..k {
            if cnt[j] > 0 {
                for a in 0..d {
                    cent[j * d + a] = sum[j * d + a] / cnt[j] as f64;
                }
            }
        }
    }
    (cent, label)
}

/// The best (lowest within-cluster sum of squares) of `n_init` k-means++ runs, like
/// scikit-learn's `KMeans(n_init=n_init)` that hmmlearn's initialisation uses.
pub(crate) fn kmeans_best_of(
    z: &[f64],
    n: usize,
    d: usize,
    k: usize,
    seed: u64,
    run: usize,
    n_init: usize,
) -> (Vec<f64>, Vec<usize>) {
    let mut best: Option<(f64, Vec<f64>, Vec<usize>)> = None;
    for i in 0..n_init.max(1) {
        let (c, l) = kmeanspp_start_raw(z, n, d, k, seed, run * 1000 + i);
        let inertia: f64 = (0..n)
            .map(|t| sqdist(&z[t * d..(t + 1) * d], &c[l[t] * d..(l[t] + 1) * d]))
            .sum();
        if best.as_ref().is_none_or(|b| inertia < b.0) {
            best = Some((inertia, c, l));
        }
    }
    let (_, c, l) = best.expect("n_init >= 1");
    (c, l)
}

/// Transitions from a label sequence: counts + 1, normalised per row.
pub(crate) fn label_transitions(label: &[usize], k: usize) -> Vec<f64> {
    let mut t = vec![1.0; k * k];
    for w in label.windows(2) {
        t[w[0] * k + w[1]] += 1.0;
    }
    for i in 0..k {
        let s: f64 = t[i * k..(i + 1) * k].iter().sum();
        for v in t[i * k..(i + 1) * k].iter_mut() {
            *v /= s;
        }
    }
    t
}

fn kmeanspp_start(
    z: &[f64],
    n: usize,
    d: usize,
    k: usize,
    ct: CovarianceType,
    corr: &[f64],
    seed: u64,
    run: usize,
) -> Params {
    let (cent, label) = kmeanspp_start_raw(z, n, d, k, seed, run);
    let pool = pooled(corr, d, ct);
    let mut covars = vec![0.0; k * d * d];
    for j in 0..k {
        let members: Vec<usize> = (0..n).filter(|&t| label[t] == j).collect();
        let c = &mut covars[j * d * d..(j + 1) * d * d];
        if members.len() < 2 * (d + 1) {
            c.copy_from_slice(&pool);
        } else {
            let mu = &cent[j * d..(j + 1) * d];
            for &t in &members {
                for a in 0..d {
                    for b in 0..d {
                        c[a * d + b] += (z[t * d + a] - mu[a]) * (z[t * d + b] - mu[b]);
                    }
                }
            }
            for v in c.iter_mut() {
                *v /= members.len() as f64;
            }
            if ct == CovarianceType::Diag {
                for a in 0..d {
                    for b in 0..d {
                        if a != b {
                            c[a * d + b] = 0.0;
                        }
                    }
                }
            }
            floor_covariance(c, d, ct);
        }
    }
    Params {
        start: vec![1.0 / k as f64; k],
        trans: label_transitions(&label, k),
        means: cent,
        covars,
    }
}

// ------------------------------------------------------------------ walk-forward

#[derive(Debug, Clone, PartialEq)]
pub struct WalkForwardResult {
    /// Index of the first out-of-sample observation (= `formation`).
    pub start_index: usize,
    /// `(T - formation) x K` filtered probabilities, out of sample, stitched.
    pub filtered: Vec<f64>,
    /// `T - formation` most probable filtered state.
    pub regimes: Vec<usize>,
    /// First observation of each formation window.
    pub window_starts: Vec<usize>,
    /// The model fitted on each formation window (states sorted by the mean of feature 0).
    pub models: Vec<Model>,
    /// Log-likelihood of each fit on its formation window.
    pub window_log_likelihoods: Vec<f64>,
}

/// Walk-forward regimes: fit on `obs[s .. s + formation]`, then run the forward filter with
/// those fixed parameters from `s` through `s + formation + step` and keep the filtered
/// probabilities of the last `step` rows (out of sample: they use data up to their own date
/// only); `s += step`. The out-of-sample rows cover `formation .. T`.
pub fn walk_forward(
    obs: &[f64],
    n: usize,
    d: usize,
    cfg: &MvConfig,
    formation: usize,
    step: usize,
    on_progress: &mut dyn FnMut(usize, usize) -> bool,
) -> CoreResult<WalkForwardResult> {
    check_obs(obs, n, d)?;
    if step < 1 {
        return Err(CoreError::invalid(format!(
            "step must be at least 1, got {step}"
        )));
    }
    if formation >= n {
        return Err(CoreError::invalid(format!(
            "formation must be shorter than the observations ({n} rows), got {formation}"
        )));
    }
    let k = cfg.n_states;
    if formation < MIN_OBSERVATIONS_PER_STATE * k.max(1) {
        return Err(CoreError::invalid(format!(
            "formation must be at least {} rows ({MIN_OBSERVATIONS_PER_STATE} per state), got {formation}",
            MIN_OBSERVATIONS_PER_STATE * k.max(1)
        )));
    }
    // Validate the rest of the configuration on the first window before allocating.
    let windows = (n - formation).div_ceil(step);
    let workers = hmm::workers(cfg.n_restarts.unwrap_or(hmm::DEFAULT_RESTARTS) + 1);
    let _budget = crate::limits::reserve(&crate::limits::hmm_walk_forward(
        n, k, d, formation, windows, workers,
    ))?;
    let oos = n - formation;
    let mut filtered = crate::limits::zeroed(oos * k, "the walk-forward filtered probabilities")?;
    let mut models = Vec::with_capacity(windows);
    let mut window_starts = Vec::with_capacity(windows);
    let mut lls = Vec::with_capacity(windows);
    let mut buf = Vec::new();
    for w in 0..windows {
        let s = w * step;
        let end_fit = s + formation;
        let end = (end_fit + step).min(n);
        let r = run_hmm_mv(&obs[s * d..end_fit * d], formation, d, cfg, &mut |_, _| {
            !crate::limits::cancelled()
        })
        .map_err(|e| match e {
            CoreError::Numerical(m) => CoreError::Numerical(format!(
                "walk-forward window {w} (rows {s}..{end_fit}): {m}"
            )),
            CoreError::InvalidInput(m) if w > 0 => CoreError::InvalidInput(format!(
                "walk-forward window {w} (rows {s}..{end_fit}): {m}"
            )),
            e => e,
        })?;
        let em = r.model.emission()?;
        buf.resize((end - s) * k, 0.0);
        filter_rows::<false>(
            &em,
            &r.model.start_prob,
            &r.model.transmat,
            &obs[s * d..end * d],
            &mut buf,
        )?;
        let off = (end_fit - formation) * k;
        filtered[off..off + (end - end_fit) * k].copy_from_slice(&buf[formation * k..]);
        window_starts.push(s);
        lls.push(r.log_likelihood);
        models.push(r.model);
        if !on_progress(w + 1, windows) {
            return Err(CoreError::Cancelled);
        }
    }
    let regimes = filtered
        .chunks_exact(k)
        .map(|row| {
            let mut b = 0;
            for j in 1..k {
                if row[j] > row[b] {
                    b = j;
                }
            }
            b
        })
        .collect();
    Ok(WalkForwardResult {
        start_index: formation,
        filtered,
        regimes,
        window_starts,
        models,
        window_log_likelihoods: lls,
    })
}
