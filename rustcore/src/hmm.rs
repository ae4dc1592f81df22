//! Gaussian hidden Markov model on a 1-D series (regime detection), fitted by Baum-Welch EM.
//!
//! # Model
//! `K` hidden states; state `k` emits `N(mean_k, variance_k)`; the hidden chain starts in
//! state `k` with probability `start_k` and jumps `i -> j` with probability `transmat[i][j]`.
//!
//! # Algorithm
//! * **E-step**: scaled forward-backward (Rabiner). The forward pass normalises
//!   `alpha_t` by its sum `c_t`; the log-likelihood is `sum_t log c_t` (plus the per-step
//!   constant that was taken out of the emission probabilities to keep them from underflowing).
//!   For `K > 8` the backward pass is fused with the accumulation of the sufficient statistics
//!   (posterior mass, first and second moments, expected transitions), so neither `beta` nor
//!   the posteriors are stored during EM. For `K <= 8` a fixed-size kernel runs (state-major
//!   buffers): one vectorised pass computes the emission probabilities, the forward and the
//!   backward recursions run independently (the backward with its own power-of-two scale), then
//!   one vectorised pass accumulates the statistics with time in the vector lanes, each product
//!   brought back to the forward's scale by an exact power of two. Each phase splits in two; on
//!   series of at least 16384 steps the halves (and the two recursions) run on two threads when
//!   the fit is a single run (restarts already keep the cores busy), with the same operations
//!   in the same order as on one thread, so the result does not depend on the threads. Every
//!   term equals the generic path's bit for bit; only the order of the sums over time differs.
//! * **M-step**: maximum likelihood (no priors): start probabilities = posterior at t = 0,
//!   transitions = expected transition counts normalised per row, means and variances =
//!   posterior-weighted moments. Zero start / transition probabilities stay zero.
//! * **Variance floor**: every variance is kept `>= VARIANCE_FLOOR * var(observations)`
//!   (`1e-6` times the population variance of the data) so that a state cannot collapse onto
//!   a single observation. A state whose posterior mass is zero keeps its previous mean and
//!   variance; a transition row with no expected transitions keeps its previous values.
//! * Internally the series is standardised (`z = (x - mean) / std`); a Gaussian HMM is
//!   equivariant under this map, so this changes nothing but the conditioning. Every
//!   reported number is in the units of the input.
//!
//! # Convergence (exactly like hmmlearn's `ConvergenceMonitor`)
//! Iteration `i` runs one E-step (which gives the log-likelihood `LL_i` of the *current*
//! parameters, appended to `log_likelihood_history`), calls `on_progress`, runs the M-step,
//! and stops when `LL_i - LL_{i-1} < tolerance` (`converged = true`) or after
//! `max_iterations` iterations (`converged = false` unless the criterion was met on that last
//! iteration). The returned parameters are those after the last M-step, and
//! `log_likelihood`, `posteriors` and `viterbi_path` are computed under them (hmmlearn's
//! `score`, `predict_proba` and `predict`), so `log_likelihood >= ` the last history value.
//!
//! # Initialisation (the default start)
//! Run 0 is deterministic unless `HmmConfig::init` gives explicit parameters:
//! state `k` gets the mean of the `k`-th of `K` equal-count buckets of the sorted data
//! (quantile means), every state gets the data variance (pooled variance), the transition
//! matrix is sticky (`0.9` on the diagonal, `0.1 / (K - 1)` elsewhere), start probabilities are
//! uniform. `n_restarts` extra runs (default [`DEFAULT_RESTARTS`] = 16 when `n_restarts` is not
//! given and there is no explicit `init`; 0 with an explicit `init`) start from k-means++ seeds
//! (D² sampling, splitmix64 seeded with `HmmConfig::seed` and the run number, refined by 10
//! Lloyd iterations): means = cluster means, variances = cluster variances (the data variance
//! for clusters of fewer than 4 points), transitions from the cluster label sequence (counts + 1,
//! normalised), uniform start. One EM run alone can stop in a poor local optimum (VIX log
//! changes, K = 4: -4258.08 against -4255.53); with the 16 restarts and the polish below the default call reaches
//! hmmlearn's best of 10 random starts on the VIX and NASDAQ series of the tests.
//! The default start (neither `n_restarts` nor `init` given) then *polishes* the best run: EM
//! continues from where it stopped until the tolerance criterion is met or the run has done
//! [`POLISH_FACTOR`] × `max_iterations` iterations in all (EM crawls along flat ridges of the
//! likelihood: on VIX, K = 4, the best basin needs ~400 iterations to get within 1e-6 of its
//! optimum); `iterations` and `log_likelihood_history` report that whole run. With an explicit
//! `n_restarts` or `init`, `max_iterations` caps every run and nothing is polished.
//! The runs are independent and run in parallel (`std::thread::scope`, one thread per core);
//! the run with the highest final log-likelihood wins (the lowest run number on a tie), so the
//! result does not depend on the number of threads. With restarts, `on_progress` sees the
//! iterations of all runs as they complete (interleaved), numbered 1, 2, ... in that order.
//!
//! # Output
//! States are sorted by mean, ascending (means, variances, transition rows and columns, start
//! probabilities, posterior columns and Viterbi labels are relabelled consistently).
//!
//! # Information criteria
//! Free parameters `p = (K - 1) + K (K - 1) + K + K = K^2 + 2K - 1`
//! (start probabilities, transition rows, means, variances);
//! `AIC = 2p - 2 LL`, `BIC = p ln(T) - 2 LL` with `LL` the final log-likelihood and `T` the
//! number of observations.

// Index loops over the (small) state dimension read more clearly than iterator chains here.
#![allow(
    clippy::needless_range_loop,
    clippy::type_complexity,
    clippy::too_many_arguments
)]

use crate::error::{check, CoreError, CoreResult};
use crate::num::{pz, pz_all};

/// Largest number of hidden states accepted (`n_states` is also bounded by observations / 10).
pub const MAX_STATES: usize = 50;
/// At least this many observations per hidden state (`n_states <= observations / 10`).
pub const MIN_OBSERVATIONS_PER_STATE: usize = 10;
/// Largest number of extra random restarts accepted.
pub const MAX_RESTARTS: usize = 1000;
/// Variance floor relative to the (population) variance of the observations.
pub const VARIANCE_FLOOR: f64 = 1e-6;
/// Tolerance on the sums of `init.start_prob` and of each row of `init.transmat` (they are
/// then renormalised exactly).
pub const INIT_SUM_TOLERANCE: f64 = 1e-6;
/// Extra k-means++ restarts of the default start (when `n_restarts` is not given and there is no
/// explicit `init`).
pub const DEFAULT_RESTARTS: usize = 16;
/// The default start continues its best run up to this many times `max_iterations` in all.
pub const POLISH_FACTOR: usize = 10;

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// Explicit initial parameters (in the units of the observations). They replace the
/// deterministic initialisation of run 0 (needed to reproduce another implementation from
/// the same start).
#[derive(Debug, Clone, PartialEq)]
pub struct HmmInit {
    /// `K` start probabilities, non-negative, summing to 1.
    pub start_prob: Vec<f64>,
    /// `K x K` row-major transition matrix, non-negative, each row summing to 1.
    pub transmat: Vec<f64>,
    /// `K` means.
    pub means: Vec<f64>,
    /// `K` strictly positive variances.
    pub variances: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HmmConfig {
    /// Number of hidden states `K`, `1 <= K <= min(MAX_STATES, observations / 10)`.
    pub n_states: usize,
    /// Maximum number of EM iterations per run (>= 1).
    pub max_iterations: usize,
    /// Stop when the log-likelihood gains less than this between two iterations (>= 0,
    /// absolute, in log-likelihood units; 0 runs until the likelihood stops increasing).
    pub tolerance: f64,
    /// Extra runs from seeded k-means++ starting points (`Some(0)` = only run 0; `None` =
    /// [`DEFAULT_RESTARTS`] without `init`, 0 with it).
    pub n_restarts: Option<usize>,
    /// Seed of the random restarts.
    pub seed: u64,
    /// Explicit initial parameters for run 0 (instead of the deterministic initialisation).
    pub init: Option<HmmInit>,
}

impl Default for HmmConfig {
    fn default() -> Self {
        HmmConfig {
            n_states: 3,
            max_iterations: 100,
            tolerance: 1e-6,
            n_restarts: None,
            seed: 0,
            init: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HmmResult {
    /// `K`.
    pub n_states: usize,
    /// `K` state means, ascending.
    pub means: Vec<f64>,
    /// `K` state variances.
    pub variances: Vec<f64>,
    /// `K` state standard deviations (`sqrt(variances)`).
    pub stds: Vec<f64>,
    /// `K x K` row-major transition matrix (row = from, column = to).
    pub transition_matrix: Vec<f64>,
    /// `K` start probabilities.
    pub start_probabilities: Vec<f64>,
    /// Log-likelihood of the observations under the returned parameters.
    pub log_likelihood: f64,
    /// Log-likelihood computed in each E-step (one per iteration, of the parameters at the
    /// start of that iteration) of the winning run.
    pub log_likelihood_history: Vec<f64>,
    /// EM iterations of the winning run (= `log_likelihood_history.len()`).
    pub iterations: usize,
    /// Whether the winning run stopped on the tolerance criterion (false if it hit
    /// `max_iterations`).
    pub converged: bool,
    /// `T x K` row-major smoothed state probabilities `P(state_t = k | all observations)`.
    pub posteriors: Vec<f64>,
    /// `T x K` row-major filtered state probabilities `P(state_t = k | observations 0..=t)`
    /// (no look-ahead; [`crate::hmm_mv::filter`] under the returned parameters, bit-identical
    /// to [`crate::hmm_mv::OnlineFilter`]).
    pub filtered: Vec<f64>,
    /// `T` most likely state sequence (Viterbi, in log space).
    pub viterbi_path: Vec<usize>,
    /// Akaike information criterion `2p - 2 LL`, `p = K^2 + 2K - 1`.
    pub aic: f64,
    /// Bayesian information criterion `p ln(T) - 2 LL`.
    pub bic: f64,
}

/// Fit a Gaussian HMM to `observations` by Baum-Welch EM (see the module documentation).
///
/// `on_progress(iteration, log_likelihood)` is called once per EM iteration (after its
/// E-step); `iteration` counts from 1 and keeps counting across restarts. Returning `false`
/// stops the fit with `Err(CoreError::Cancelled)`.
pub fn run_hmm(
    observations: &[f64],
    config: &HmmConfig,
    on_progress: &mut dyn FnMut(usize, f64) -> bool,
) -> CoreResult<HmmResult> {
    check::finite("observations", observations)?;
    let n = observations.len();
    let k = config.n_states;
    check_config(
        n,
        k,
        config.max_iterations,
        config.tolerance,
        config.n_restarts,
    )?;
    let restarts = config.n_restarts.unwrap_or(if config.init.is_some() {
        0
    } else {
        DEFAULT_RESTARTS
    });
    let n_workers = workers(restarts + 1);

    let _budget = crate::limits::reserve(&crate::limits::hmm(n, k, n_workers))?;
    // Standardise (corrected two-pass mean and population variance).
    let mean0 = observations.iter().sum::<f64>() / n as f64;
    let mean = mean0 + observations.iter().map(|&x| x - mean0).sum::<f64>() / n as f64;
    let var = observations
        .iter()
        .map(|&x| (x - mean) * (x - mean))
        .sum::<f64>()
        / n as f64;
    if !(mean.is_finite() && var.is_finite()) {
        return Err(CoreError::invalid(
            "observations are too large in magnitude (their mean or variance overflows)",
        ));
    }
    // zero, or at the rounding level of the values' magnitude (a constant series leaves ~1e-36
    // after rounding): relative to the data's scale, not to 0
    let scale = observations.iter().fold(0.0f64, |a, &x| a.max(x.abs()));
    if var <= (64.0 * f64::EPSILON * scale).powi(2)
        || observations.iter().all(|&x| x == observations[0])
    {
        return Err(CoreError::invalid(format!(
            "observations have (near-)zero variance (variance {var:e} for values of magnitude {scale:e}): there are no regimes to detect"
        )));
    }
    let sd = var.sqrt();
    let inv_sd = 1.0 / sd;
    let z: Vec<f64> = observations.iter().map(|&x| (x - mean) * inv_sd).collect();
    let ll_offset = -(n as f64) * sd.ln();

    let explicit = match &config.init {
        Some(init) => Some(explicit_params(init, k, mean, sd)?),
        None => None,
    };

    // The work tables of a finished run, taken by the next run, the polish and the final E-step
    // (allocating and zeroing them anew cost ~0.4 ms at 100k x 3 on the final phase's longer
    // thread). A run takes them before it allocates, so no more tables are alive at once than
    // before (one per running run).
    let spare: std::sync::Mutex<Option<Work>> = std::sync::Mutex::new(None);
    let run = |r: usize,
               progress: &mut dyn FnMut(f64) -> bool|
     -> CoreResult<((Params, Vec<f64>, bool), f64)> {
        let p0 = if r == 0 {
            match &explicit {
                Some(p) => p.clone(),
                None => deterministic_params(&z, k),
            }
        } else {
            kmeanspp_params(&z, k, config.seed, r)
        };
        let mut work = take_or_new(&spare, n, k)?;
        work.threads = n_workers == 1; // parallel runs already keep the cores busy
        let (p, history, converged) = em(
            &z,
            p0,
            config,
            ll_offset,
            &mut work,
            progress,
            Vec::with_capacity(config.max_iterations.min(10_000)),
            config.max_iterations,
        )?;
        // The final log-likelihood only ranks the runs: one run alone needs no extra E-step.
        let final_ll = if restarts == 0 {
            0.0
        } else {
            e_step(&z, &p, &mut work, None)? + ll_offset
        };
        if let Ok(mut slot) = spare.lock() {
            *slot = Some(work);
        }
        Ok(((p, history, converged), final_ll))
    };
    let ((p, history, converged), mut counter) =
        best_of_runs(restarts + 1, n_workers, &run, on_progress)?;
    // The default start polishes the winner: EM continues until the tolerance criterion or
    // POLISH_FACTOR * max_iterations iterations in all (EM crawls along flat ridges: VIX, K = 4,
    // needs ~400 iterations to get within 1e-6 of its optimum).
    let (p, history, converged) =
        if config.n_restarts.is_none() && config.init.is_none() && !converged {
            let mut work = take_or_new(&spare, n, k)?;
            let out = em(
                &z,
                p,
                config,
                ll_offset,
                &mut work,
                &mut |ll| {
                    counter += 1;
                    on_progress(counter, ll)
                },
                history,
                config.max_iterations.saturating_mul(POLISH_FACTOR),
            )?;
            if let Ok(mut slot) = spare.lock() {
                *slot = Some(work);
            }
            out
        } else {
            (p, history, converged)
        };
    // Sort states by mean, ascending, and go back to the units of the data.
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| p.means[a].total_cmp(&p.means[b]));
    let mut rank = vec![0usize; k];
    for (r, &o) in order.iter().enumerate() {
        rank[o] = r;
    }
    let mut means: Vec<f64> = order.iter().map(|&o| mean + sd * p.means[o]).collect();
    let variances: Vec<f64> = order.iter().map(|&o| var * p.vars[o]).collect();
    let stds: Vec<f64> = variances.iter().map(|v| v.sqrt()).collect();
    let mut start_probabilities: Vec<f64> = order.iter().map(|&o| p.start[o]).collect();
    let mut transition_matrix = vec![0.0; k * k];
    for r in 0..k {
        for s in 0..k {
            transition_matrix[r * k + s] = p.trans[order[r] * k + order[s]];
        }
    }
    let mut history = history;
    for v in [
        &mut means,
        &mut transition_matrix,
        &mut start_probabilities,
        &mut history,
    ] {
        pz_all(v); // signed zeros: +0.0 (both transports bit-identical)
    }
    // Filtered probabilities: the one forward filter (D = 1) under the returned parameters.
    let model = crate::hmm_mv::Model {
        n_states: k,
        n_features: 1,
        covariance_type: crate::hmm_mv::CovarianceType::Diag,
        start_prob: start_probabilities.clone(),
        transmat: transition_matrix.clone(),
        means: means.clone(),
        covars: variances.clone(),
    };
    // The final E-step (posteriors) and Viterbi path, and the filter: independent, on two
    // threads for a long series (errors reported in that order either way).
    let mut best_post = crate::limits::zeroed(n * k, "the HMM posteriors")?;
    let (smoothed, filtered) = par2(
        n >= PARALLEL_MIN_STEPS,
        || -> CoreResult<(f64, Vec<u8>)> {
            let mut work = take_or_new(&spare, n, k)?;
            let ll = e_step(&z, &p, &mut work, Some(&mut best_post))? + ll_offset;
            drop(work);
            Ok((ll, viterbi(&z, &p)?))
        },
        || crate::hmm_mv::filter_probabilities(&model, observations, n),
    );
    let (ll, path) = smoothed?;
    let filtered = filtered?;
    let mut posteriors = best_post;
    if order.iter().enumerate().any(|(r, &o)| r != o) {
        let mut tmp = [0.0; MAX_STATES];
        for row in posteriors.chunks_exact_mut(k) {
            tmp[..k].copy_from_slice(row);
            for r in 0..k {
                row[r] = tmp[order[r]];
            }
        }
    }
    pz_all(&mut posteriors);
    let viterbi_path: Vec<usize> = path.iter().map(|&s| rank[s as usize]).collect();
    drop(z);
    let n_params = (k * k + 2 * k - 1) as f64;
    Ok(HmmResult {
        n_states: k,
        means,
        variances,
        stds,
        transition_matrix,
        start_probabilities,
        log_likelihood: pz(ll),
        iterations: history.len(),
        log_likelihood_history: history,
        converged,
        posteriors,
        filtered,
        viterbi_path,
        aic: pz(2.0 * n_params - 2.0 * ll),
        bic: pz(n_params * (n as f64).ln() - 2.0 * ll),
    })
}

/// The checks shared by every HMM fit ([`run_hmm`] and [`crate::hmm_mv::run_hmm_mv`]): series
/// length, number of states, iterations, tolerance and restarts (same messages for both).
pub(crate) fn check_config(
    n: usize,
    k: usize,
    max_iterations: usize,
    tolerance: f64,
    n_restarts: Option<usize>,
) -> CoreResult<()> {
    let min_len = MIN_OBSERVATIONS_PER_STATE;
    if n < min_len {
        return Err(CoreError::invalid(format!(
            "observations are too short: a hidden Markov model needs at least {min_len} observations \
             ({min_len} per state), got {n}"
        )));
    }
    let max_k = (n / min_len).min(MAX_STATES);
    if k < 1 || k > max_k {
        return Err(CoreError::invalid(format!(
            "n_states must be between 1 and {max_k} (observations / {min_len}, at most {MAX_STATES}), got {k}"
        )));
    }
    if max_iterations < 1 {
        return Err(CoreError::invalid(format!(
            "max_iterations must be at least 1, got {max_iterations}"
        )));
    }
    if !(tolerance.is_finite() && tolerance >= 0.0) {
        return Err(CoreError::invalid(format!(
            "tolerance must be a finite number >= 0, got {tolerance}"
        )));
    }
    if let Some(r) = n_restarts.filter(|&r| r > MAX_RESTARTS) {
        return Err(CoreError::invalid(format!(
            "n_restarts must be at most {MAX_RESTARTS}, got {r}"
        )));
    }
    Ok(())
}

/// Parameters in standardised units.
#[derive(Debug, Clone)]
struct Params {
    start: Vec<f64>,
    trans: Vec<f64>,
    means: Vec<f64>,
    vars: Vec<f64>,
}

/// Buffers reused by every E-step.
struct Work {
    /// T x K emission probabilities, each row divided by its largest entry.
    emis: Vec<f64>,
    /// T x K scaled forward variables (rows sum to 1).
    alpha: Vec<f64>,
    /// T power-of-two rescaling factors of the forward pass (1 almost everywhere).
    fscale: Vec<f64>,
    /// Sufficient statistics of the last E-step.
    start: Vec<f64>,
    trans: Vec<f64>,
    s0: Vec<f64>,
    /// `sum_t gamma_tk (z_t - mean_k)` (centred on the current mean, for accuracy).
    s1: Vec<f64>,
    /// `sum_t gamma_tk (z_t - mean_k)^2`.
    s2: Vec<f64>,
    /// T x K backward variables of the fixed-K E-step (allocated on its first use).
    beta: Vec<f64>,
    /// T log2 scales of the backward variables (and scratch of the emission pass).
    bshift: Vec<f64>,
    /// Whether an E-step of a long series may use two threads (not when runs already do).
    threads: bool,
}

impl Work {
    fn new(n: usize, k: usize) -> CoreResult<Self> {
        Ok(Work {
            emis: crate::limits::zeroed(n * k, "the HMM emission table")?,
            alpha: crate::limits::zeroed(n * k, "the HMM forward table")?,
            fscale: vec![1.0; n],
            start: vec![0.0; k],
            trans: vec![0.0; k * k],
            s0: vec![0.0; k],
            s1: vec![0.0; k],
            s2: vec![0.0; k],
            beta: Vec::new(),
            bshift: Vec::new(),
            threads: true,
        })
    }
}

/// The spare work tables (see `run_hmm`) or new ones. Every E-step overwrites the tables it
/// reads, so used tables give the same bits as new ones.
fn take_or_new(spare: &std::sync::Mutex<Option<Work>>, n: usize, k: usize) -> CoreResult<Work> {
    match spare.lock().ok().and_then(|mut s| s.take()) {
        Some(mut w) => {
            w.threads = true;
            Ok(w)
        }
        None => Work::new(n, k),
    }
}

fn em(
    z: &[f64],
    mut p: Params,
    config: &HmmConfig,
    ll_offset: f64,
    work: &mut Work,
    on_progress: &mut dyn FnMut(f64) -> bool,
    mut history: Vec<f64>,
    cap: usize,
) -> CoreResult<(Params, Vec<f64>, bool)> {
    let mut converged = false;
    while history.len() < cap {
        let ll = e_step(z, &p, work, None)? + ll_offset;
        history.push(ll);
        if !on_progress(ll) {
            return Err(CoreError::Cancelled);
        }
        m_step(&mut p, work);
        let h = history.len();
        if h >= 2 && history[h - 1] - history[h - 2] < config.tolerance {
            converged = true;
            break;
        }
    }
    Ok((p, history, converged))
}

fn m_step(p: &mut Params, w: &Work) {
    let k = p.means.len();
    crate::hmm_mv::normalise_start_trans(&mut p.start, &mut p.trans, &w.start, &w.trans);
    for j in 0..k {
        let s0 = w.s0[j];
        if s0 > 0.0 {
            let dm = w.s1[j] / s0;
            let v = w.s2[j] / s0 - dm * dm;
            if dm.is_finite() && v.is_finite() {
                p.means[j] += dm;
                p.vars[j] = v.max(VARIANCE_FLOOR);
            }
        }
    }
}

/// Number of states (the generic E-step; K <= 8 runs the fixed-size `e_step_soa`).
pub(crate) trait Dim: Copy {
    fn k(self) -> usize;
}
#[derive(Clone, Copy)]
pub(crate) struct Dynamic(pub(crate) usize);
impl Dim for Dynamic {
    #[inline(always)]
    fn k(self) -> usize {
        self.0
    }
}

/// One E-step: returns the log-likelihood of the standardised series under `p` and leaves the
/// sufficient statistics in `w`; writes the (normalised) posteriors if asked.
fn e_step(z: &[f64], p: &Params, w: &mut Work, post: Option<&mut [f64]>) -> CoreResult<f64> {
    match p.means.len() {
        1 => e_step_soa::<1>(z, p, w, post),
        2 => e_step_soa::<2>(z, p, w, post),
        3 => e_step_soa::<3>(z, p, w, post),
        4 => e_step_soa::<4>(z, p, w, post),
        5 => e_step_soa::<5>(z, p, w, post),
        6 => e_step_soa::<6>(z, p, w, post),
        7 => e_step_soa::<7>(z, p, w, post),
        8 => e_step_soa::<8>(z, p, w, post),
        k => with_simd(move || e_step_impl(Dynamic(k), z, p, w, post)),
    }
}

/// The end of both E-steps: a finite log-likelihood and finite sufficient statistics. The backward
/// pass can overflow (∞·0 = NaN) when a step's mass is tiny and a state is unreachable (zero
/// transitions into it) while the forward pass stays finite: that is refused here, instead of
/// handing NaN statistics to the M-step.
fn check_e_step(ll: f64, w: &Work) -> CoreResult<f64> {
    if !ll.is_finite() {
        return Err(CoreError::numerical(
            "the log-likelihood is not finite (numerical breakdown)",
        ));
    }
    let k = w.s0.len();
    let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
    if !(finite(&w.start[..k])
        && finite(&w.trans[..k * k])
        && finite(&w.s0)
        && finite(&w.s1)
        && finite(&w.s2))
    {
        return Err(CoreError::numerical(
            "the expected state statistics are not finite (an observation is almost impossible \
             under the current parameters; check zero entries in init start_prob / transmat)",
        ));
    }
    Ok(ll)
}

fn zero_probability(t: usize) -> CoreError {
    CoreError::numerical(format!(
        "observation {t} has zero probability under the current parameters \
         (check zero entries in init start_prob / transmat)"
    ))
}

/// Rescale threshold of the forward pass: when the forward vector sums to less than this, it
/// is multiplied by a power of two that brings its sum into [1, 2).
const RESCALE_BELOW: f64 = 7.888_609_052_210_118e-31; // 2^-100
/// Smallest one-step probability mass the forward pass accepts (2^-1000, about 1e-301).
const MIN_STEP_MASS: f64 = 9.332_636_185_032_189e-302; // 2^-1000

/// `2^e` for `-1022 <= e <= 1023`.
#[inline]
pub(crate) fn pow2(e: i64) -> f64 {
    f64::from_bits(((e + 1023) as u64) << 52)
}

/// `e` such that `c * 2^-e` lies in [1, 2), for a positive normal `c`.
#[inline]
pub(crate) fn exponent(c: f64) -> i64 {
    ((c.to_bits() >> 52) & 0x7ff) as i64 - 1023
}

/// The lazy power-of-two rescale of a forward (or backward) step whose vector sums to `c`:
/// `None` while `c >= 2^-100` (the common case, also `c = +inf`), else the exact power of two
/// that brings the sum into [1, 2), with `shift` (log2 of the running scale) updated; a mass
/// below 2^-1000, zero or NaN is [`zero_probability`] at `t`.
#[inline(always)]
fn rescale(c: f64, t: usize, shift: &mut i64) -> CoreResult<Option<f64>> {
    if c >= RESCALE_BELOW {
        return Ok(None);
    }
    if !(c >= MIN_STEP_MASS && c.is_finite()) {
        return Err(zero_probability(t));
    }
    let e = exponent(c);
    *shift -= e;
    Ok(Some(pow2(-e)))
}

/// E-step with lazily scaled forward-backward.
///
/// Textbook scaling divides `alpha_t` by its sum at every step, which puts a division on the
/// loop-carried dependency chain. Here the forward variables are left unnormalised and only
/// multiplied by an exact power of two `f_t` when their sum drops below 2^-100 (about every
/// hundred steps), so `alpha^_t = alpha_t * F_t` with `F_t = prod_{u<=t} f_u` known exactly
/// (`log F = ln 2 * total shift`) and the log-likelihood costs one logarithm:
/// `LL = sum_t m_t + ln Z - ln F_{T-1}`, `Z = sum_i alpha^_{T-1}(i)`, where `m_t` is the
/// per-step constant taken out of the emission probabilities. The backward variables
/// `beta^_t = beta_t F_{T-1} / F_t` obey `beta^_t = f_{t+1} A (b_{t+1} * beta^_{t+1})`, so
/// `alpha^_t * beta^_t = Z * gamma_t` and the expected transitions are
/// `Z * xi_t(i, j) = alpha^_t(i) A_ij b_{t+1}(j) beta^_{t+1}(j) f_{t+1}`. The common factor `Z`
/// cancels in the M-step; the reported posteriors are normalised per row.
#[inline(always)]
fn e_step_impl<D: Dim>(
    d: D,
    z: &[f64],
    p: &Params,
    w: &mut Work,
    mut post: Option<&mut [f64]>,
) -> CoreResult<f64> {
    let k = d.k();
    let n = z.len();
    let mut mu = [0.0; MAX_STATES];
    let mut cst = [0.0; MAX_STATES];
    let mut hiv = [0.0; MAX_STATES];
    for j in 0..k {
        mu[j] = p.means[j];
        cst[j] = -0.5 * (LN_2PI + p.vars[j].ln());
        hiv[j] = 0.5 / p.vars[j];
    }
    let a = &p.trans[..k * k];
    let emis = &mut w.emis[..n * k];
    let alpha = &mut w.alpha[..n * k];
    let fscale = &mut w.fscale[..n];

    // Emission probabilities, each row scaled by exp(-max log density) (so its largest entry
    // is 1 and nothing underflows for the most likely state). Log densities first, then one
    // flat, vectorisable exp pass.
    let mut ll = 0.0;
    for (row, &x) in emis.chunks_exact_mut(k).zip(z) {
        let row = &mut row[..k];
        let mut m = f64::NEG_INFINITY;
        for j in 0..k {
            let dd = x - mu[j];
            let v = cst[j] - hiv[j] * dd * dd;
            row[j] = v;
            m = if v > m { v } else { m };
        }
        for v in row.iter_mut() {
            *v -= m;
        }
        ll += m;
    }
    crate::limits::poll()?;
    exp_nonpositive_slice(emis);
    crate::limits::poll()?;

    // Forward pass.
    let mut prev = [0.0; MAX_STATES];
    let mut pred = [0.0; MAX_STATES];
    let mut shift: i64 = 0; // log2 F_t
    for t in 0..n {
        if t & 0x3FFF == 0x3FFF {
            crate::limits::poll()?; // one E-step of 500k x 50 states takes ~1 s
        }
        let bt = &emis[t * k..(t + 1) * k];
        if t == 0 {
            pred[..k].copy_from_slice(&p.start[..k]);
        } else {
            let a0 = &a[..k];
            for j in 0..k {
                pred[j] = prev[0] * a0[j];
            }
            for i in 1..k {
                let ai = prev[i];
                let row = &a[i * k..(i + 1) * k];
                for j in 0..k {
                    pred[j] += ai * row[j];
                }
            }
        }
        let mut c = 0.0;
        for j in 0..k {
            let v = pred[j] * bt[j];
            prev[j] = v;
            c += v;
        }
        let mut f = 1.0;
        if let Some(r) = rescale(c, t, &mut shift)? {
            f = r;
            for v in prev[..k].iter_mut() {
                *v *= f;
            }
        }
        fscale[t] = f;
        alpha[t * k..(t + 1) * k].copy_from_slice(&prev[..k]);
    }
    let zsum: f64 = prev[..k].iter().sum();
    if !(zsum > 0.0 && zsum.is_finite()) {
        return Err(zero_probability(n - 1));
    }
    ll += zsum.ln() - shift as f64 * std::f64::consts::LN_2;

    // Backward pass fused with the sufficient statistics (all scaled by Z).
    let mut s0 = [0.0; MAX_STATES];
    let mut s1 = [0.0; MAX_STATES];
    let mut s2 = [0.0; MAX_STATES];
    let xi = &mut w.trans[..k * k];
    xi.fill(0.0);
    let mut beta = [1.0; MAX_STATES];
    let mut wv = [0.0; MAX_STATES];
    let mut g = [0.0; MAX_STATES];
    {
        let t = n - 1;
        let al = &alpha[t * k..(t + 1) * k];
        let x = z[t];
        for j in 0..k {
            let gj = al[j];
            g[j] = gj;
            let dd = x - mu[j];
            s0[j] += gj;
            s1[j] += gj * dd;
            s2[j] += gj * dd * dd;
        }
        if let Some(post) = post.as_deref_mut() {
            write_posterior(&mut post[t * k..(t + 1) * k], &g[..k]);
        }
    }
    for t in (0..n - 1).rev() {
        if t & 0x3FFF == 0 {
            crate::limits::poll()?;
        }
        let b1 = &emis[(t + 1) * k..(t + 2) * k];
        for j in 0..k {
            wv[j] = b1[j] * beta[j];
        }
        let f = fscale[t + 1];
        if f != 1.0 {
            for v in wv[..k].iter_mut() {
                *v *= f;
            }
        }
        let al = &alpha[t * k..(t + 1) * k];
        let x = z[t];
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
            let gi = ai * s;
            g[i] = gi;
            let dd = x - mu[i];
            let gd = gi * dd;
            s0[i] += gi;
            s1[i] += gd;
            s2[i] += gd * dd;
        }
        if let Some(post) = post.as_deref_mut() {
            write_posterior(&mut post[t * k..(t + 1) * k], &g[..k]);
        }
    }
    for i in 0..k {
        for j in 0..k {
            xi[i * k + j] *= a[i * k + j];
        }
    }
    w.start[..k].copy_from_slice(&g[..k]);
    w.s0[..k].copy_from_slice(&s0[..k]);
    w.s1[..k].copy_from_slice(&s1[..k]);
    w.s2[..k].copy_from_slice(&s2[..k]);
    check_e_step(ll, w)
}

// ---------------------------------------------------------------------------------------------
// Fixed-K E-step (K <= 8; more states run the generic `e_step_impl`): struct-of-arrays buffers, vectorised emission pass,
// backward pass in blocks with the sufficient statistics accumulated across time in lanes.
// ---------------------------------------------------------------------------------------------

/// Time steps per block of the backward pass (and lanes of the statistics accumulators).
const LANES: usize = 4;

/// Emission pass of the fixed-K kernel, state-major (`e[j * n + t]`): `m_t = max_j ln b_j(z_t)`
/// into `mbuf`, then `e[j * n + t] = exp(ln b_j(z_t) - m_t)` one state at a time (a flat loop
/// over time, vectorised). Returns `sum_t m_t` (summed in `LANES` interleaved partial sums).
#[inline(always)]
fn soa_emission<const K: usize>(
    z: &[f64],
    mu: &[f64; K],
    cst: &[f64; K],
    hiv: &[f64; K],
    e: &mut [f64],
    mbuf: &mut [f64],
) -> f64 {
    let n = z.len();
    soa_emission_rows::<K>(z, mu, cst, hiv, split_rows::<K>(e, n, n).0, mbuf)
}

/// The emission pass of [`e_step_soa_body`] (`z, means, constants, 1 / (2 variances), e, m`).
type EmissionFn<const K: usize> =
    fn(&[f64], &[f64; K], &[f64; K], &[f64; K], &mut [f64], &mut [f64]) -> f64;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn soa_emission_avx2<const K: usize>(
    z: &[f64],
    mu: &[f64; K],
    cst: &[f64; K],
    hiv: &[f64; K],
    e: &mut [f64],
    mbuf: &mut [f64],
) -> f64 {
    soa_emission::<K>(z, mu, cst, hiv, e, mbuf)
}

/// The fixed-K E-step of one thread, used when [`e_step_soa_body`] meets hostile parameters:
/// the same model, lazily scaled forward-backward and sufficient statistics as
/// [`e_step_impl`] (see there), with
/// * state-major buffers (`e[j * n + t]`, `alpha[j * n + t]`), the emission probabilities
///   computed by one vectorised pass (AVX2 when the CPU has it, chosen at run time; the same
///   IEEE operations, no fused multiply-add, so bit-identical either way);
/// * a backward pass that only runs the recursion `w_{t+1} = f_{t+1} b_{t+1} * beta^_{t+1}`,
///   `beta^_t = A w_{t+1}` (storing `w_{t+1}` over `b_{t+1}`) in blocks of [`LANES`] steps, and
///   after each block accumulates the statistics of those steps with time in the vector lanes:
///   `gamma_t = alpha^_t * (A w_{t+1})` (recomputed with the same operations, so equal to the
///   recursion's `beta^_t` bit for bit), `sum gamma (z - mean)`, `sum gamma (z - mean)^2`
///   and `sum_t alpha^_t(i) w_{t+1}(j)`. Only the order of the summations over time differs
///   from [`e_step_impl`] (partial sums per lane, then added), i.e. rounding-level differences.
#[inline(always)]
fn e_step_soa_fused<const K: usize>(
    z: &[f64],
    p: &Params,
    w: &mut Work,
    post: Option<&mut [f64]>,
    emission: EmissionFn<K>,
) -> CoreResult<f64> {
    let n = z.len();
    let mut mu = [0.0; K];
    let mut cst = [0.0; K];
    let mut hiv = [0.0; K];
    let mut a = [[0.0; K]; K];
    for j in 0..K {
        mu[j] = p.means[j];
        cst[j] = -0.5 * (LN_2PI + p.vars[j].ln());
        hiv[j] = 0.5 / p.vars[j];
        for i in 0..K {
            a[i][j] = p.trans[i * K + j];
        }
    }
    let mut ll = emission(z, &mu, &cst, &hiv, &mut w.emis, &mut w.fscale);
    crate::limits::poll()?;
    let e = &mut w.emis[..K * n];
    let al = &mut w.alpha[..K * n];
    let fscale = &mut w.fscale[..n];

    // Forward pass (the same operations as `e_step_impl`), keeping each step's rescale factor.
    let mut fw = Forward {
        prev: [0.0; K],
        shift: 0,
    };
    for t in 0..n {
        if t & 0x3FFF == 0x3FFF {
            crate::limits::poll()?;
        }
        fscale[t] = fw.step(t, &p.start, &a, e, n, al)?;
    }
    ll += fw.finish(n)?.0;

    // Backward recursion in blocks of LANES steps, statistics of each block right after it.
    let mut s0 = [[0.0f64; LANES]; K];
    let mut s1 = [[0.0f64; LANES]; K];
    let mut s2 = [[0.0f64; LANES]; K];
    let mut xi = [[[0.0f64; LANES]; K]; K];
    {
        // t = n - 1: gamma = alpha (beta = 1)
        let t = n - 1;
        let x = z[t];
        for i in 0..K {
            let g = al[i * n + t];
            let dd = x - mu[i];
            let gd = g * dd;
            s0[i][0] += g;
            s1[i][0] += gd;
            s2[i][0] += gd * dd;
        }
    }
    let mut beta = [1.0; K];
    let mut hi = n - 1; // the statistics of every t >= hi are done
    let mut blocks = 0usize;
    while hi > 0 {
        blocks += 1;
        if blocks & 0xFFF == 0 {
            crate::limits::poll()?;
        }
        let lo = hi.saturating_sub(LANES);
        for t in (lo..hi).rev() {
            let f = fscale[t + 1];
            let mut wv = [0.0; K];
            for j in 0..K {
                wv[j] = e[j * n + t + 1] * beta[j];
            }
            if f != 1.0 {
                for v in wv.iter_mut() {
                    *v *= f;
                }
            }
            for j in 0..K {
                e[j * n + t + 1] = wv[j];
            }
            for i in 0..K {
                let mut s = 0.0;
                for j in 0..K {
                    s += a[i][j] * wv[j];
                }
                beta[i] = s;
            }
        }
        if hi - lo == LANES {
            let x: &[f64; LANES] = z[lo..lo + LANES].try_into().expect("LANES values");
            let mut alv = [[0.0; LANES]; K];
            let mut wvv = [[0.0; LANES]; K];
            for i in 0..K {
                alv[i] = al[i * n + lo..i * n + lo + LANES]
                    .try_into()
                    .expect("LANES values");
                wvv[i] = e[i * n + lo + 1..i * n + lo + 1 + LANES]
                    .try_into()
                    .expect("LANES values");
            }
            for i in 0..K {
                for l in 0..LANES {
                    let mut s = 0.0;
                    for j in 0..K {
                        s += a[i][j] * wvv[j][l];
                    }
                    let g = alv[i][l] * s;
                    let dd = x[l] - mu[i];
                    let gd = g * dd;
                    s0[i][l] += g;
                    s1[i][l] += gd;
                    s2[i][l] += gd * dd;
                }
                for j in 0..K {
                    for l in 0..LANES {
                        xi[i][j][l] += alv[i][l] * wvv[j][l];
                    }
                }
            }
        } else {
            for t in lo..hi {
                let x = z[t];
                for i in 0..K {
                    let mut s = 0.0;
                    for j in 0..K {
                        s += a[i][j] * e[j * n + t + 1];
                    }
                    let ai = al[i * n + t];
                    let g = ai * s;
                    let dd = x - mu[i];
                    let gd = g * dd;
                    s0[i][0] += g;
                    s1[i][0] += gd;
                    s2[i][0] += gd * dd;
                    for j in 0..K {
                        xi[i][j][0] += ai * e[j * n + t + 1];
                    }
                }
            }
        }
        hi = lo;
    }
    let lanes = |v: &[f64; LANES]| {
        let mut s = 0.0;
        for l in 0..LANES {
            s += v[l];
        }
        s
    };
    for i in 0..K {
        w.start[i] = al[i * n] * beta[i];
        w.s0[i] = lanes(&s0[i]);
        w.s1[i] = lanes(&s1[i]);
        w.s2[i] = lanes(&s2[i]);
        for j in 0..K {
            w.trans[i * K + j] = lanes(&xi[i][j]) * a[i][j];
        }
    }
    if let Some(post) = post {
        // gamma_t = alpha^_t * (A w_{t+1}), normalised per row (the same values as above).
        let mut g = [0.0; K];
        for t in 0..n {
            for i in 0..K {
                let b = if t + 1 < n {
                    let mut s = 0.0;
                    for j in 0..K {
                        s += a[i][j] * e[j * n + t + 1];
                    }
                    s
                } else {
                    1.0
                };
                g[i] = al[i * n + t] * b;
            }
            write_posterior(&mut post[t * K..(t + 1) * K], &g);
        }
    }
    check_e_step(ll, w)
}

/// Series shorter than this run the split E-step on one thread (two threads cost a few tens of
/// microseconds to hand work to; an E-step of 16k steps x 3 states takes ~0.4 ms).
const PARALLEL_MIN_STEPS: usize = 16_384;

/// `2^d` for an integer `d` held in an `f64`, `-1022 <= d <= 1023` (branch-free, vectorises:
/// `d + 2^52 + 1023` puts `d + 1023` in the low mantissa bits, shifted into the exponent).
#[inline(always)]
fn pow2_f(d: f64) -> f64 {
    const BIAS: f64 = 4_503_599_627_371_519.0; // 2^52 + 1023
    f64::from_bits((d + BIAS).to_bits() << 52)
}

/// A job for the E-step's helper thread.
type HelperJob = Box<dyn FnOnce() + Send>;

/// Hands `job` to the E-step's helper thread (one per process, started on first use, blocked
/// in `recv` when idle, so it costs nothing between E-steps). Without a helper (it could not be
/// started) the job is dropped, and [`par2`] then runs the work itself.
fn offer_to_helper(job: HelperJob) {
    use std::sync::mpsc::{channel, Sender};
    use std::sync::OnceLock;
    static HELPER: OnceLock<Option<Sender<HelperJob>>> = OnceLock::new();
    let tx = HELPER.get_or_init(|| {
        let (tx, rx) = channel::<HelperJob>();
        std::thread::Builder::new()
            .name("hmm-e-step".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job();
                }
            })
            .ok()
            .map(|_| tx)
    });
    if let Some(tx) = tx {
        let _ = tx.send(job);
    }
}

/// Runs `a` and `b`, on two threads when `par`: `a` here, `b` offered to a helper thread. If no
/// helper has started `b` by the time `a` is done, this thread takes it back and runs it itself,
/// so a busy machine costs no wait for a thread to wake up (at worst the two run one after the
/// other, as without `par`). Whoever runs `b` sees this thread's cancel flag. The results do not
/// depend on which thread ran what. A panic in either is resumed here once both are finished.
fn par2<A, B, RA, RB>(par: bool, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA,
    B: FnOnce() -> RB + Send,
    RB: Send,
{
    use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicU8, Ordering};
    if !par {
        return (a(), b());
    }
    const OFFERED: u8 = 0;
    const HELPER: u8 = 1;
    const DONE: u8 = 2;
    const TAKEN_BACK: u8 = 3;
    struct Slot<F, R> {
        job: Option<F>,
        result: Option<std::thread::Result<R>>,
    }
    /// Runs the job of the `Slot<F, R>` at `p` (once).
    unsafe fn run_slot<F: FnOnce() -> R, R>(p: *mut ()) {
        // SAFETY: `p` points to a live `Slot<F, R>` that nobody else touches meanwhile (the
        // state machine below gives it to exactly one runner, and `par2` waits for it).
        let slot = unsafe { &mut *(p as *mut Slot<F, R>) };
        if let Some(job) = slot.job.take() {
            slot.result = Some(catch_unwind(AssertUnwindSafe(job)));
        }
    }
    struct Offer {
        state: AtomicU8,
        slot: *mut (),
        run: unsafe fn(*mut ()),
        /// The thread waiting (parked) for DONE, if it stopped spinning.
        waiter: std::sync::Mutex<Option<std::thread::Thread>>,
    }
    // SAFETY: `slot` is only dereferenced by the thread that moved `state` from OFFERED.
    unsafe impl Send for Offer {}
    unsafe impl Sync for Offer {}

    let flag = crate::limits::current_cancel();
    let job = move || crate::limits::with_cancel(flag, b);
    let mut slot = Slot {
        job: Some(job),
        result: None,
    };
    /// `run_slot` for the job's (unnameable) closure type.
    fn runner_for<F: FnOnce() -> R, R>(_: &Option<F>) -> unsafe fn(*mut ()) {
        run_slot::<F, R>
    }
    let run = runner_for(&slot.job);
    let slot_ptr = std::ptr::addr_of_mut!(slot) as *mut ();
    let offer = std::sync::Arc::new(Offer {
        state: AtomicU8::new(OFFERED),
        slot: slot_ptr,
        run,
        waiter: std::sync::Mutex::new(None),
    });
    let helper = offer.clone();
    offer_to_helper(Box::new(move || {
        if helper
            .state
            .compare_exchange(OFFERED, HELPER, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            // SAFETY: this thread owns the slot until it stores DONE; `par2` waits for that.
            unsafe { (helper.run)(helper.slot) };
            helper.state.store(DONE, Ordering::Release);
            let waiter = helper
                .waiter
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(t) = waiter {
                t.unpark();
            }
        }
    }));
    let ra = catch_unwind(AssertUnwindSafe(a));
    if offer
        .state
        .compare_exchange(OFFERED, TAKEN_BACK, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
    {
        // SAFETY: taken back before any worker started it: this thread owns the slot.
        unsafe { (offer.run)(offer.slot) };
    } else {
        // the helper is running it: wait, briefly spinning, then parked (the helper unparks
        // this thread after DONE; a wake-up that comes first makes `park` return at once)
        let mut spins = 0u32;
        while offer.state.load(Ordering::Acquire) != DONE && spins < 2000 {
            std::hint::spin_loop();
            spins += 1;
        }
        if offer.state.load(Ordering::Acquire) != DONE {
            *offer.waiter.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::thread::current());
            while offer.state.load(Ordering::Acquire) != DONE {
                std::thread::park();
            }
        }
    }
    let rb = slot.result.take().expect("the offered job ran");
    match (ra, rb) {
        (Ok(x), Ok(y)) => (x, y),
        (Err(p), _) | (_, Err(p)) => resume_unwind(p),
    }
}

/// The `K` rows of a state-major `K x n` buffer, each split at time `h`.
fn split_rows<const K: usize>(
    buf: &mut [f64],
    n: usize,
    h: usize,
) -> ([&mut [f64]; K], [&mut [f64]; K]) {
    let mut lo: [&mut [f64]; K] = std::array::from_fn(|_| &mut [][..]);
    let mut hi: [&mut [f64]; K] = std::array::from_fn(|_| &mut [][..]);
    for (j, row) in buf[..K * n].chunks_exact_mut(n).enumerate() {
        let (a, b) = row.split_at_mut(h);
        lo[j] = a;
        hi[j] = b;
    }
    (lo, hi)
}

/// Emission pass over a stretch of time: `rows[j][u] = exp(ln b_j(z[u]) - m_u)`,
/// `m_u = max_j ln b_j(z[u])` (kept in `mbuf`); returns `sum_u m_u` in [`LANES`] interleaved
/// partial sums.
#[inline(always)]
fn soa_emission_rows<const K: usize>(
    z: &[f64],
    mu: &[f64; K],
    cst: &[f64; K],
    hiv: &[f64; K],
    rows: [&mut [f64]; K],
    mbuf: &mut [f64],
) -> f64 {
    let n = z.len();
    let mbuf = &mut mbuf[..n];
    for (m, &x) in mbuf.iter_mut().zip(z) {
        let mut mx = f64::NEG_INFINITY;
        for j in 0..K {
            let dd = x - mu[j];
            let v = cst[j] - hiv[j] * dd * dd;
            mx = if v > mx { v } else { mx };
        }
        *m = mx;
    }
    let mut acc = [0.0f64; LANES];
    let mut it = mbuf.chunks_exact(LANES);
    for c in &mut it {
        for l in 0..LANES {
            acc[l] += c[l];
        }
    }
    let mut ll = 0.0;
    for l in 0..LANES {
        ll += acc[l];
    }
    for &v in it.remainder() {
        ll += v;
    }
    for (j, row) in rows.into_iter().enumerate() {
        let (m_j, c_j, h_j) = (mu[j], cst[j], hiv[j]);
        for ((d, &x), &m) in row[..n].iter_mut().zip(z).zip(mbuf.iter()) {
            let dd = x - m_j;
            *d = exp_nonpositive((c_j - h_j * dd * dd) - m);
        }
    }
    ll
}

/// State of the forward recursion of the split E-step: `alpha^_t` (lazily scaled, see
/// [`e_step_impl`]) and `log2 F_t`.
struct Forward<const K: usize> {
    prev: [f64; K],
    shift: i64,
}

impl<const K: usize> Forward<K> {
    /// Step `t`: `alpha^_t` into `al` (state-major); returns the step's rescale factor (1 when
    /// none), and `self.shift` is `log2 F_t` after it.
    #[inline(always)]
    fn step(
        &mut self,
        t: usize,
        start: &[f64],
        a: &[[f64; K]; K],
        e: &[f64],
        n: usize,
        al: &mut [f64],
    ) -> CoreResult<f64> {
        let mut pred = [0.0; K];
        if t == 0 {
            pred.copy_from_slice(&start[..K]);
        } else {
            for j in 0..K {
                pred[j] = self.prev[0] * a[0][j];
            }
            for i in 1..K {
                for j in 0..K {
                    pred[j] += self.prev[i] * a[i][j];
                }
            }
        }
        let mut c = 0.0;
        for j in 0..K {
            let v = pred[j] * e[j * n + t];
            self.prev[j] = v;
            c += v;
        }
        let mut factor = 1.0;
        if let Some(f) = rescale(c, t, &mut self.shift)? {
            factor = f;
            for v in self.prev.iter_mut() {
                *v *= f;
            }
        }
        for j in 0..K {
            al[j * n + t] = self.prev[j];
        }
        Ok(factor)
    }

    /// The forward's part of the log-likelihood, `ln Z - ln F_{T-1}`, and `log2 F_{T-1}`.
    fn finish(&self, n: usize) -> CoreResult<(f64, i64)> {
        let zsum: f64 = self.prev.iter().sum();
        if !(zsum > 0.0 && zsum.is_finite()) {
            return Err(zero_probability(n - 1));
        }
        Ok((
            zsum.ln() - self.shift as f64 * std::f64::consts::LN_2,
            self.shift,
        ))
    }
}

/// State of the backward recursion of the split E-step, with its own lazy power-of-two scale:
/// `beta~_{T-1} = 1`, `beta~_t = A (b_{t+1} * beta~_{t+1})` times `2^-e` when its sum drops
/// below 2^-100.
struct Backward<const K: usize> {
    beta: [f64; K],
    shift: i64,
}

impl<const K: usize> Backward<K> {
    /// Step `t < T - 1`: `beta~_t` into `bt`, `log2` of its running scale into `bsh[t]`. `false`
    /// when the sum became zero, tiny (< 2^-1000) or not finite (hostile parameters; the caller
    /// then runs [`e_step_soa_fused`]).
    #[inline(always)]
    fn step(
        &mut self,
        t: usize,
        a: &[[f64; K]; K],
        e: &[f64],
        n: usize,
        bt: &mut [f64],
        bsh: &mut [f64],
    ) -> bool {
        let mut wv = [0.0; K];
        for j in 0..K {
            wv[j] = e[j * n + t + 1] * self.beta[j];
        }
        let mut c = 0.0;
        for i in 0..K {
            let mut s = a[i][0] * wv[0];
            for j in 1..K {
                s += a[i][j] * wv[j];
            }
            self.beta[i] = s;
            c += s;
        }
        match rescale(c, t, &mut self.shift) {
            Ok(None) => {}
            Ok(Some(f)) => {
                for v in self.beta.iter_mut() {
                    *v *= f;
                }
            }
            Err(_) => return false,
        }
        bsh[t] = self.shift as f64;
        for j in 0..K {
            bt[j * n + t] = self.beta[j];
        }
        true
    }
}

/// The forward recursion over the whole series: `(ln Z - ln F_{T-1}, log2 F_{T-1})`.
#[inline(always)]
fn soa_forward<const K: usize>(
    start: &[f64],
    a: &[[f64; K]; K],
    e: &[f64],
    n: usize,
    al: &mut [f64],
    fsh: &mut [f64],
) -> CoreResult<(f64, i64)> {
    let (al, e, fsh) = (&mut al[..K * n], &e[..K * n], &mut fsh[..n]);
    let mut f = Forward {
        prev: [0.0; K],
        shift: 0,
    };
    for t in 0..n {
        if t & 0x3FFF == 0x3FFF {
            crate::limits::poll()?;
        }
        f.step(t, start, a, e, n, al)?;
        fsh[t] = f.shift as f64;
    }
    f.finish(n)
}

/// The backward recursion over the whole series; `Ok(false)` as [`Backward::step`].
#[inline(always)]
fn soa_backward<const K: usize>(
    a: &[[f64; K]; K],
    e: &[f64],
    n: usize,
    bt: &mut [f64],
    bsh: &mut [f64],
) -> CoreResult<bool> {
    let (bt, e, bsh) = (&mut bt[..K * n], &e[..K * n], &mut bsh[..n]);
    let mut b = Backward {
        beta: [1.0; K],
        shift: 0,
    };
    bsh[n - 1] = 0.0;
    for j in 0..K {
        bt[j * n + n - 1] = 1.0;
    }
    for t in (0..n - 1).rev() {
        if t & 0x3FFF == 0 {
            crate::limits::poll()?;
        }
        if !b.step(t, a, e, n, bt, bsh) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Both recursions on one thread, interleaved step by step (forward `t`, backward `T - 2 - t`):
/// two independent dependency chains overlap in the core. The same operations as
/// [`soa_forward`] and [`soa_backward`], so the same results; a forward error comes first.
#[inline(always)]
fn soa_forward_backward<const K: usize>(
    start: &[f64],
    a: &[[f64; K]; K],
    e: &[f64],
    n: usize,
    (al, fsh): (&mut [f64], &mut [f64]),
    (bt, bsh): (&mut [f64], &mut [f64]),
) -> (CoreResult<(f64, i64)>, CoreResult<bool>) {
    let (al, e, fsh) = (&mut al[..K * n], &e[..K * n], &mut fsh[..n]);
    let (bt, bsh) = (&mut bt[..K * n], &mut bsh[..n]);
    let mut f = Forward {
        prev: [0.0; K],
        shift: 0,
    };
    let mut b = Backward {
        beta: [1.0; K],
        shift: 0,
    };
    bsh[n - 1] = 0.0;
    for j in 0..K {
        bt[j * n + n - 1] = 1.0;
    }
    let mut back_ok = true;
    for t in 0..n {
        if t & 0x3FFF == 0x3FFF {
            if let Err(e) = crate::limits::poll() {
                return (Err(e), Ok(false));
            }
        }
        if let Err(err) = f.step(t, start, a, e, n, al) {
            return (Err(err), Ok(false));
        }
        fsh[t] = f.shift as f64;
        if back_ok && t + 1 < n {
            back_ok = b.step(n - 2 - t, a, e, n, bt, bsh);
        }
    }
    (f.finish(n), Ok(back_ok))
}

/// Sufficient statistics of the steps `lo..hi` (`hi < T`), time in [`LANES`] lanes.
struct SoaStats<const K: usize> {
    s0: [[f64; LANES]; K],
    s1: [[f64; LANES]; K],
    s2: [[f64; LANES]; K],
    /// `sum_t alpha^_t(i) b_{t+1}(j) beta~_{t+1}(j)` (times `A_ij` at the end).
    xi: [[[f64; LANES]; K]; K],
}

/// Statistics of the split E-step over `lo..hi` (`hi <= T - 1`; the last step has no
/// transition and is added by the caller). Every product `alpha^_t * beta~_t` carries the scale
/// `2^(fsh[t] + bsh[t])`; it is brought to the common scale `2^top` (`top = log2 F_{T-1}`) by
/// the exact factor `2^(top - fsh[t] - bsh[t])`, so each term equals, bit for bit, the one of
/// [`e_step_soa_fused`] (whose backward variables use the forward's scale). `None` when a
/// factor falls outside the range of `f64` (hostile parameters: the caller runs the fused
/// kernel, whose backward variables would overflow there). `post` (rows `lo..hi`, optional)
/// gets the normalised posteriors.
#[inline(always)]
fn soa_stats<const K: usize>(
    x: &[f64],
    mu: &[f64; K],
    n: usize,
    (al, bt, e): (&[f64], &[f64], &[f64]),
    (fsh, bsh): (&[f64], &[f64]),
    top: f64,
    (lo, hi): (usize, usize),
    mut post: Option<&mut [f64]>,
) -> CoreResult<Option<SoaStats<K>>> {
    let mut st = SoaStats {
        s0: [[0.0; LANES]; K],
        s1: [[0.0; LANES]; K],
        s2: [[0.0; LANES]; K],
        xi: [[[0.0; LANES]; K]; K],
    };
    // the exponents of the scale factors: running min / max per lane, checked at the end
    let mut dmin = [0.0f64; LANES];
    let mut dmax = [0.0f64; LANES];
    let mut t0 = lo;
    let mut blocks = 0usize;
    while t0 + LANES <= hi {
        blocks += 1;
        if blocks & 0xFFF == 0 {
            crate::limits::poll()?;
        }
        let arr = |v: &[f64], at: usize| -> [f64; LANES] {
            v[at..at + LANES].try_into().expect("LANES values")
        };
        let (fs, bs, bs1, xs) = (arr(fsh, t0), arr(bsh, t0), arr(bsh, t0 + 1), arr(x, t0));
        let mut fg = [0.0; LANES];
        let mut fx = [0.0; LANES];
        for l in 0..LANES {
            let dg = (top - fs[l]) - bs[l];
            let dx = (top - fs[l]) - bs1[l];
            let lo_ = if dg < dx { dg } else { dx };
            let hi_ = if dg < dx { dx } else { dg };
            dmin[l] = if lo_ < dmin[l] { lo_ } else { dmin[l] };
            dmax[l] = if hi_ > dmax[l] { hi_ } else { dmax[l] };
            fg[l] = pow2_f(dg);
            fx[l] = pow2_f(dx);
        }
        let mut alv = [[0.0; LANES]; K];
        let mut gv = [[0.0; LANES]; K];
        let mut wvv = [[0.0; LANES]; K];
        for i in 0..K {
            alv[i] = arr(al, i * n + t0);
            let b = arr(bt, i * n + t0);
            let b1 = arr(bt, i * n + t0 + 1);
            let e1 = arr(e, i * n + t0 + 1);
            for l in 0..LANES {
                gv[i][l] = (alv[i][l] * b[l]) * fg[l];
                wvv[i][l] = e1[l] * b1[l];
            }
        }
        for i in 0..K {
            for l in 0..LANES {
                let g = gv[i][l];
                let dd = xs[l] - mu[i];
                let gd = g * dd;
                st.s0[i][l] += g;
                st.s1[i][l] += gd;
                st.s2[i][l] += gd * dd;
            }
            for j in 0..K {
                for l in 0..LANES {
                    st.xi[i][j][l] += (alv[i][l] * wvv[j][l]) * fx[l];
                }
            }
        }
        if let Some(post) = post.as_deref_mut() {
            for l in 0..LANES {
                let t = t0 + l;
                let g: [f64; K] = std::array::from_fn(|i| gv[i][l]);
                write_posterior(&mut post[(t - lo) * K..(t - lo + 1) * K], &g);
            }
        }
        t0 += LANES;
    }
    // the last few steps, into lane 0
    for t in t0..hi {
        let dg = (top - fsh[t]) - bsh[t];
        let dx = (top - fsh[t]) - bsh[t + 1];
        dmin[0] = dmin[0].min(dg).min(dx);
        dmax[0] = dmax[0].max(dg).max(dx);
        let (fg, fx) = (pow2_f(dg), pow2_f(dx));
        let mut g = [0.0; K];
        for i in 0..K {
            let ai = al[i * n + t];
            g[i] = (ai * bt[i * n + t]) * fg;
            let dd = x[t] - mu[i];
            let gd = g[i] * dd;
            st.s0[i][0] += g[i];
            st.s1[i][0] += gd;
            st.s2[i][0] += gd * dd;
            for j in 0..K {
                let wv = e[j * n + t + 1] * bt[j * n + t + 1];
                st.xi[i][j][0] += (ai * wv) * fx;
            }
        }
        if let Some(post) = post.as_deref_mut() {
            write_posterior(&mut post[(t - lo) * K..(t - lo + 1) * K], &g);
        }
    }
    let ok = dmin.iter().all(|&d| d >= -1022.0) && dmax.iter().all(|&d| d <= 1023.0);
    Ok(if ok { Some(st) } else { None })
}

/// The fixed-K E-step (K <= 8): the same model, lazily scaled forward-backward and sufficient
/// statistics as [`e_step_impl`] (see there), in three phases that each split in two and run
/// on two threads for long series (rayon; one after the other otherwise, with the same
/// operations in the same order, so the result does not depend on the threads):
/// 1. emission probabilities of the first and second half of the series (state-major
///    `e[j * n + t]`, one vectorised pass per state; AVX2 when the CPU has it, chosen at run
///    time, same IEEE operations, no fused multiply-add, so bit-identical either way);
/// 2. the forward recursion ([`soa_forward`]) and the backward recursion ([`soa_backward`],
///    with its own power-of-two scale so that it does not wait for the forward's);
/// 3. the statistics of each half ([`soa_stats`], time in vector lanes), each product brought
///    back to the forward's scale by an exact power of two.
///
/// Each term of the statistics is bit-identical to the one of [`e_step_impl`] / the fused
/// kernel; only the order of the sums over time differs (rounding level). When the backward
/// sum or a scale factor leaves the range of `f64` (hostile parameters), the E-step is redone by
/// [`e_step_soa_fused`] (one thread), so such cases behave as before.
fn e_step_soa_body<const K: usize>(
    z: &[f64],
    p: &Params,
    w: &mut Work,
    post: Option<&mut [f64]>,
    fns: SoaFns<K>,
) -> CoreResult<f64> {
    let n = z.len();
    let mut mu = [0.0; K];
    let mut cst = [0.0; K];
    let mut hiv = [0.0; K];
    let mut a = [[0.0; K]; K];
    for j in 0..K {
        mu[j] = p.means[j];
        cst[j] = -0.5 * (LN_2PI + p.vars[j].ln());
        hiv[j] = 0.5 / p.vars[j];
        for i in 0..K {
            a[i][j] = p.trans[i * K + j];
        }
    }
    if w.beta.len() < K * n {
        w.beta = crate::limits::zeroed(K * n, "the HMM backward table")?;
        w.bshift = vec![0.0; n];
    }
    let par = w.threads && n >= PARALLEL_MIN_STEPS;
    let h = n / 2;

    // 1. emission probabilities, two halves
    let (ell, elh) = {
        let (rl, rh) = split_rows::<K>(&mut w.emis, n, h);
        let (ml, mh) = w.bshift[..n].split_at_mut(h);
        let (zl, zh) = z.split_at(h);
        let (mu, cst, hiv) = (&mu, &cst, &hiv);
        par2(
            par,
            move || (fns.rows)(zl, mu, cst, hiv, rl, ml),
            move || (fns.rows)(zh, mu, cst, hiv, rh, mh),
        )
    };
    crate::limits::poll()?;

    // 2. forward and backward recursions
    let (fw, bw) = {
        let e = &w.emis[..K * n];
        let (al, fsh) = (&mut w.alpha, &mut w.fscale);
        let (bt, bsh) = (&mut w.beta, &mut w.bshift);
        let (a, start) = (&a, &p.start[..]);
        if par {
            // this thread runs the backward recursion (the longer one), the helper the forward
            let (b, f) = par2(
                true,
                move || (fns.backward)(a, e, n, bt, bsh),
                move || (fns.forward)(start, a, e, n, al, fsh),
            );
            (f, b)
        } else {
            (fns.both)(start, a, e, n, (al, fsh), (bt, bsh))
        }
    };
    let (fll, top) = fw?;
    if !bw? {
        return (fns.fused)(z, p, w, post);
    }
    let ll = (ell + elh) + fll;

    // 3. statistics of the steps 0..h and h..n-1; the last step (beta = 1) separately
    let mut post = post;
    let top = top as f64;
    let (sl, sh) = {
        let bufs = (&w.alpha[..K * n], &w.beta[..K * n], &w.emis[..K * n]);
        let shifts = (&w.fscale[..n], &w.bshift[..n]);
        let mu = &mu;
        let (pl, ph) = match post.as_deref_mut() {
            Some(post) => {
                let (pl, ph) = post[..(n - 1) * K].split_at_mut(h * K);
                (Some(pl), Some(ph))
            }
            None => (None, None),
        };
        par2(
            par,
            move || (fns.stats)(z, mu, n, bufs, shifts, top, (0, h), pl),
            move || (fns.stats)(z, mu, n, bufs, shifts, top, (h, n - 1), ph),
        )
    };
    let (sl, sh) = match (sl?, sh?) {
        (Some(sl), Some(sh)) => (sl, sh),
        _ => return (fns.fused)(z, p, w, post),
    };
    let lanes = |v: &[f64; LANES]| {
        let mut s = 0.0;
        for l in 0..LANES {
            s += v[l];
        }
        s
    };
    let (al, bt) = (&w.alpha[..K * n], &w.beta[..K * n]);
    let f0 = pow2_f((top - w.fscale[0]) - w.bshift[0]);
    let x = z[n - 1];
    let mut g = [0.0; K];
    for i in 0..K {
        // t = n - 1: gamma = alpha^ (beta~ = 1 and the factor is 2^0)
        let gl = al[i * n + n - 1];
        g[i] = gl;
        let dd = x - mu[i];
        let gd = gl * dd;
        w.start[i] = (al[i * n] * bt[i * n]) * f0;
        w.s0[i] = (lanes(&sl.s0[i]) + lanes(&sh.s0[i])) + gl;
        w.s1[i] = (lanes(&sl.s1[i]) + lanes(&sh.s1[i])) + gd;
        w.s2[i] = (lanes(&sl.s2[i]) + lanes(&sh.s2[i])) + gd * dd;
        for j in 0..K {
            w.trans[i * K + j] = (lanes(&sl.xi[i][j]) + lanes(&sh.xi[i][j])) * a[i][j];
        }
    }
    if let Some(post) = post {
        write_posterior(&mut post[(n - 1) * K..n * K], &g);
    }
    check_e_step(ll, w)
}

/// The emission pass of [`e_step_soa_body`] over a stretch of time (`z, means, constants,
/// 1 / (2 variances), rows, m`).
type EmissionRowsFn<const K: usize> =
    fn(&[f64], &[f64; K], &[f64; K], &[f64; K], [&mut [f64]; K], &mut [f64]) -> f64;
/// [`soa_stats`].
type StatsFn<const K: usize> = fn(
    &[f64],
    &[f64; K],
    usize,
    (&[f64], &[f64], &[f64]),
    (&[f64], &[f64]),
    f64,
    (usize, usize),
    Option<&mut [f64]>,
) -> CoreResult<Option<SoaStats<K>>>;
/// [`soa_forward`].
type ForwardFn<const K: usize> =
    fn(&[f64], &[[f64; K]; K], &[f64], usize, &mut [f64], &mut [f64]) -> CoreResult<(f64, i64)>;
/// [`soa_backward`].
type BackwardFn<const K: usize> =
    fn(&[[f64; K]; K], &[f64], usize, &mut [f64], &mut [f64]) -> CoreResult<bool>;
/// [`soa_forward_backward`].
type BothFn<const K: usize> = fn(
    &[f64],
    &[[f64; K]; K],
    &[f64],
    usize,
    (&mut [f64], &mut [f64]),
    (&mut [f64], &mut [f64]),
) -> (CoreResult<(f64, i64)>, CoreResult<bool>);
/// [`e_step_soa_fused`] with its emission pass.
type FusedFn<const K: usize> =
    fn(&[f64], &Params, &mut Work, Option<&mut [f64]>) -> CoreResult<f64>;

/// The vectorised parts of the fixed-K E-step, compiled for the best vector extension the CPU
/// has (chosen at run time: AVX2 or the baseline; the same IEEE operations, no fused
/// multiply-add, so bit-identical either way). Function pointers, because the threads of the
/// E-step run them (a closure does not inherit its function's target features).
#[derive(Clone, Copy)]
struct SoaFns<const K: usize> {
    rows: EmissionRowsFn<K>,
    stats: StatsFn<K>,
    fused: FusedFn<K>,
    forward: ForwardFn<K>,
    backward: BackwardFn<K>,
    both: BothFn<K>,
}

impl<const K: usize> SoaFns<K> {
    /// The baseline build (no target feature).
    fn plain() -> Self {
        SoaFns {
            rows: soa_emission_rows::<K>,
            stats: soa_stats::<K>,
            fused: |z, p, w, post| e_step_soa_fused::<K>(z, p, w, post, soa_emission::<K>),
            forward: soa_forward::<K>,
            backward: soa_backward::<K>,
            both: soa_forward_backward::<K>,
        }
    }

    fn best() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY (every call below): the CPU supports AVX2 (checked just above).
                return SoaFns {
                    rows: |z, mu, c, h, r, m| unsafe {
                        soa_emission_rows_avx2::<K>(z, mu, c, h, r, m)
                    },
                    stats: |z, mu, n, b, s, top, r, post| unsafe {
                        soa_stats_avx2::<K>(z, mu, n, b, s, top, r, post)
                    },
                    fused: |z, p, w, post| unsafe { e_step_soa_fused_avx2::<K>(z, p, w, post) },
                    forward: |s, a, e, n, al, f| unsafe {
                        soa_forward_avx2::<K>(s, a, e, n, al, f)
                    },
                    backward: |a, e, n, bt, b| unsafe { soa_backward_avx2::<K>(a, e, n, bt, b) },
                    both: |s, a, e, n, f, b| unsafe {
                        soa_forward_backward_avx2::<K>(s, a, e, n, f, b)
                    },
                };
            }
        }
        Self::plain()
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn soa_emission_rows_avx2<const K: usize>(
    z: &[f64],
    mu: &[f64; K],
    cst: &[f64; K],
    hiv: &[f64; K],
    rows: [&mut [f64]; K],
    mbuf: &mut [f64],
) -> f64 {
    soa_emission_rows::<K>(z, mu, cst, hiv, rows, mbuf)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn soa_stats_avx2<const K: usize>(
    x: &[f64],
    mu: &[f64; K],
    n: usize,
    bufs: (&[f64], &[f64], &[f64]),
    shifts: (&[f64], &[f64]),
    top: f64,
    range: (usize, usize),
    post: Option<&mut [f64]>,
) -> CoreResult<Option<SoaStats<K>>> {
    soa_stats::<K>(x, mu, n, bufs, shifts, top, range, post)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn soa_forward_avx2<const K: usize>(
    start: &[f64],
    a: &[[f64; K]; K],
    e: &[f64],
    n: usize,
    al: &mut [f64],
    fsh: &mut [f64],
) -> CoreResult<(f64, i64)> {
    soa_forward::<K>(start, a, e, n, al, fsh)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn soa_backward_avx2<const K: usize>(
    a: &[[f64; K]; K],
    e: &[f64],
    n: usize,
    bt: &mut [f64],
    bsh: &mut [f64],
) -> CoreResult<bool> {
    soa_backward::<K>(a, e, n, bt, bsh)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn soa_forward_backward_avx2<const K: usize>(
    start: &[f64],
    a: &[[f64; K]; K],
    e: &[f64],
    n: usize,
    f: (&mut [f64], &mut [f64]),
    b: (&mut [f64], &mut [f64]),
) -> (CoreResult<(f64, i64)>, CoreResult<bool>) {
    soa_forward_backward::<K>(start, a, e, n, f, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn e_step_soa_fused_avx2<const K: usize>(
    z: &[f64],
    p: &Params,
    w: &mut Work,
    post: Option<&mut [f64]>,
) -> CoreResult<f64> {
    let emission: EmissionFn<K> =
        |z, mu, c, h, e, m| unsafe { soa_emission_avx2::<K>(z, mu, c, h, e, m) };
    e_step_soa_fused::<K>(z, p, w, post, emission)
}

/// The fixed-K E-step ([`e_step_soa_body`]) for `K = p.means.len()`.
fn e_step_soa<const K: usize>(
    z: &[f64],
    p: &Params,
    w: &mut Work,
    post: Option<&mut [f64]>,
) -> CoreResult<f64> {
    e_step_soa_body::<K>(z, p, w, post, SoaFns::<K>::best())
}

#[inline(always)]
fn write_posterior(dst: &mut [f64], g: &[f64]) {
    let s: f64 = g.iter().sum();
    let inv = 1.0 / s;
    for (d, &v) in dst.iter_mut().zip(g) {
        *d = v * inv;
    }
}

/// Runs `body` compiled for AVX2 when the CPU has it (`body` and what it inlines: the E-step
/// kernels are `#[inline(always)]`). Same IEEE operations either way (Rust never fuses a
/// multiply and an add on its own), so the results are bit-identical with or without AVX2.
#[inline(always)]
pub(crate) fn with_simd<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<R>(body: impl FnOnce() -> R) -> R {
            body()
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { avx2(body) };
        }
    }
    body()
}

/// [`exp_nonpositive`] over a whole buffer, in place. On x86-64 CPUs with AVX2 the same code is
/// compiled for 4-lane vectors (chosen at run time); the operations are the same IEEE ones
/// (no fused multiply-add), so the results are bit-identical either way.
pub(crate) fn exp_nonpositive_slice(v: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { exp_slice_avx2(v) };
            return;
        }
    }
    exp_slice_body(v)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn exp_slice_avx2(v: &mut [f64]) {
    exp_slice_body(v)
}

#[inline(always)]
fn exp_slice_body(v: &mut [f64]) {
    for x in v.iter_mut() {
        *x = exp_nonpositive(*x);
    }
}

/// `exp(x)` for `x <= 0` (the scaled emission probabilities), branch-free so that the loop
/// over a whole buffer vectorises: Cody-Waite reduction `x = n ln2 + r`, `|r| <= ln2 / 2`,
/// degree-13 Taylor polynomial (truncation error < 1e-17, Estrin evaluation), `2^n` built from the exponent
/// bits. Accurate to a couple of ulp; returns 0 below -708 (where exp is subnormal).
#[inline(always)]
pub(crate) fn exp_nonpositive(x: f64) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    const LN2_HI: f64 = 0.693_147_180_369_123_8; // 0x1.62e42fee00000p-1
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    const ROUND: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52: adding it rounds to an integer
    const BIAS: f64 = 4_503_599_627_371_519.0; // 2^52 + 1023
    let xc = if x < -708.0 { -708.0 } else { x };
    let n = (xc * LOG2E + ROUND) - ROUND;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    // Estrin's scheme: a shallow dependency tree, so independent elements overlap well.
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let p01 = 1.0 + r;
    let p23 = 0.5 + r * (1.0 / 6.0);
    let p45 = 1.0 / 24.0 + r * (1.0 / 120.0);
    let p67 = 1.0 / 720.0 + r * (1.0 / 5_040.0);
    let p89 = 1.0 / 40_320.0 + r * (1.0 / 362_880.0);
    let p1011 = 1.0 / 3_628_800.0 + r * (1.0 / 39_916_800.0);
    let p1213 = 1.0 / 479_001_600.0 + r * (1.0 / 6_227_020_800.0);
    let q0 = p01 + p23 * r2;
    let q1 = p45 + p67 * r2;
    let q2 = p89 + p1011 * r2;
    let s0 = q0 + q1 * r4;
    let s1 = q2 + p1213 * r4;
    let p = s0 + s1 * r8;
    // n + 1023 in 1..=1023 sits in the low mantissa bits of BIAS + n; shift it into the exponent.
    let scale = f64::from_bits((n + BIAS).to_bits() << 52);
    if x < -708.0 {
        0.0
    } else {
        p * scale
    }
}

/// Most likely state sequence under `p` (log space; ties go to the lower state index).
fn viterbi(z: &[f64], p: &Params) -> CoreResult<Vec<u8>> {
    match p.means.len() {
        2 => viterbi_k::<2>(z, p),
        3 => viterbi_k::<3>(z, p),
        4 => viterbi_k::<4>(z, p),
        _ => viterbi_k::<0>(z, p),
    }
}

/// The Viterbi path with the state count fixed at compile time (`K > 0`, equal to the model's;
/// `K = 0` reads it): unrolled loops and a branch-free arg-max (the first of equal maxima, as
/// `v > best` in order), the same operations in the same order, so the same path (issue 16:
/// a fit of 100k x 3 with one iteration 5.5 -> 4.9 ms, the final phase being the longer part).
fn viterbi_k<const K: usize>(z: &[f64], p: &Params) -> CoreResult<Vec<u8>> {
    let k = if K == 0 { p.means.len() } else { K };
    let n = z.len();
    let log_a: Vec<f64> = p.trans.iter().map(|&v| v.ln()).collect();
    let mut cst = [0.0; MAX_STATES];
    let mut hiv = [0.0; MAX_STATES];
    for j in 0..k {
        cst[j] = -0.5 * (LN_2PI + p.vars[j].ln());
        hiv[j] = 0.5 / p.vars[j];
    }
    let log_b = |x: f64, j: usize| {
        let dd = x - p.means[j];
        cst[j] - hiv[j] * dd * dd
    };
    let mut back = vec![0u8; n * k];
    let mut delta = [0.0; MAX_STATES];
    let mut next = [0.0; MAX_STATES];
    for j in 0..k {
        delta[j] = p.start[j].ln() + log_b(z[0], j);
    }
    for t in 1..n {
        if t & 0x3FFF == 0 {
            crate::limits::poll()?;
        }
        let bk = &mut back[t * k..(t + 1) * k];
        let x = z[t];
        for j in 0..k {
            let mut best = f64::NEG_INFINITY;
            let mut arg = 0u8;
            for i in 0..k {
                let v = delta[i] + log_a[i * k + j];
                let better = v > best;
                best = if better { v } else { best };
                arg = if better { i as u8 } else { arg };
            }
            next[j] = best + log_b(x, j);
            bk[j] = arg;
        }
        delta[..k].copy_from_slice(&next[..k]);
    }
    let mut path = vec![0u8; n];
    let mut s = 0usize;
    for j in 1..k {
        if delta[j] > delta[s] {
            s = j;
        }
    }
    path[n - 1] = s as u8;
    for t in (1..n).rev() {
        s = back[t * k + s] as usize;
        path[t - 1] = s as u8;
    }
    Ok(path)
}

fn deterministic_params(z: &[f64], k: usize) -> Params {
    let n = z.len();
    let mut sorted = z.to_vec();
    sorted.sort_unstable_by(|a, b| a.total_cmp(b));
    let means = (0..k)
        .map(|j| {
            let bucket = &sorted[j * n / k..(j + 1) * n / k];
            bucket.iter().sum::<f64>() / bucket.len() as f64
        })
        .collect();
    Params {
        start: vec![1.0 / k as f64; k],
        trans: sticky(k, 0.9),
        means,
        vars: vec![1.0; k],
    }
}

/// Restart `run` (>= 1): k-means++ seeds refined by Lloyd iterations (see the module docs).
fn kmeanspp_params(z: &[f64], k: usize, seed: u64, run: usize) -> Params {
    let n = z.len();
    let (means, label) = if run % 2 == 1 {
        crate::hmm_mv::kmeans_best_of(z, n, 1, k, seed, run, 10)
    } else {
        crate::hmm_mv::kmeanspp_start_raw(z, n, 1, k, seed, run)
    };
    let mut vars = vec![1.0; k];
    if run % 2 == 1 {
        // hmmlearn's random start: k-means means, the data variance, Dirichlet(1/K) start
        // probabilities and transition rows.
        let mut rng =
            SplitMix64(seed ^ (run as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5DEE_CE66);
        let start = dirichlet(k, &mut rng);
        let trans = (0..k).flat_map(|_| dirichlet(k, &mut rng)).collect();
        return Params {
            start,
            trans,
            means,
            vars,
        };
    }
    for (j, v) in vars.iter_mut().enumerate() {
        let (mut c, mut s) = (0usize, 0.0);
        for t in 0..n {
            if label[t] == j {
                c += 1;
                s += (z[t] - means[j]) * (z[t] - means[j]);
            }
        }
        if c >= 4 {
            *v = (s / c as f64).max(VARIANCE_FLOOR);
        }
    }
    Params {
        start: vec![1.0 / k as f64; k],
        trans: crate::hmm_mv::label_transitions(&label, k),
        means,
        vars,
    }
}

/// A standard normal variate (Box-Muller).
fn normal(rng: &mut SplitMix64) -> f64 {
    let u1 = 1.0 - rng.next_f64();
    let u2 = rng.next_f64();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Gamma(shape, 1) variate (Marsaglia-Tsang; shape < 1 by the boost `G(a+1) U^(1/a)`).
fn gamma(shape: f64, rng: &mut SplitMix64) -> f64 {
    if shape < 1.0 {
        let u = 1.0 - rng.next_f64();
        return gamma(shape + 1.0, rng) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = normal(rng);
        let v = 1.0 + c * x;
        if v <= 0.0 {
            continue;
        }
        let v = v * v * v;
        let u = 1.0 - rng.next_f64();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// A Dirichlet(1/K, ..., 1/K) draw (hmmlearn's random start probabilities / transition rows).
fn dirichlet(k: usize, rng: &mut SplitMix64) -> Vec<f64> {
    loop {
        let g: Vec<f64> = (0..k).map(|_| gamma(1.0 / k as f64, rng)).collect();
        let s: f64 = g.iter().sum();
        if s > 0.0 && s.is_finite() {
            return g.iter().map(|x| x / s).collect();
        }
    }
}

/// Threads for `runs` independent EM runs: one per core, at most one per run.
pub(crate) fn workers(runs: usize) -> usize {
    let avail = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    runs.min(avail).max(1)
}

type RunFn<'a, R> = dyn Fn(usize, &mut dyn FnMut(f64) -> bool) -> CoreResult<(R, f64)> + Sync + 'a;

/// Run `run(0..runs)` (each returns its result and final log-likelihood) on `workers` threads
/// and keep the best (highest log-likelihood, lowest run number on a tie). `on_progress`
/// (called on this thread) sees every EM iteration of every run, numbered from 1. A restart
/// (run >= 1) that breaks down numerically just loses; run 0's errors are returned.
pub(crate) fn best_of_runs<R: Send>(
    runs: usize,
    workers: usize,
    run: &RunFn<'_, R>,
    on_progress: &mut dyn FnMut(usize, f64) -> bool,
) -> CoreResult<(R, usize)> {
    let mut counter = 0usize;
    let mut results: Vec<Option<CoreResult<(R, f64)>>> = (0..runs).map(|_| None).collect();
    if workers <= 1 || runs <= 1 {
        for (r, slot) in results.iter_mut().enumerate() {
            let res = run(r, &mut |ll| {
                counter += 1;
                on_progress(counter, ll)
            });
            if matches!(res, Err(CoreError::Cancelled)) {
                return Err(CoreError::Cancelled);
            }
            *slot = Some(res);
        }
    } else {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::{mpsc, Arc, Mutex};
        let next = AtomicUsize::new(0);
        let abort = Arc::new(AtomicBool::new(false));
        let parent = crate::limits::current_cancel();
        let slots: Vec<Mutex<Option<CoreResult<(R, f64)>>>> =
            (0..runs).map(|_| Mutex::new(None)).collect();
        let (tx, rx) = mpsc::channel::<f64>();
        let mut cancelled = false;
        std::thread::scope(|sc| {
            for _ in 0..workers {
                let tx = tx.clone();
                let (next, abort, slots) = (&next, abort.clone(), &slots);
                sc.spawn(move || {
                    crate::limits::with_cancel(Some(abort.clone()), || loop {
                        let r = next.fetch_add(1, Ordering::Relaxed);
                        if r >= runs || abort.load(Ordering::Relaxed) {
                            break;
                        }
                        let res = run(r, &mut |ll| {
                            let _ = tx.send(ll);
                            !abort.load(Ordering::Relaxed)
                        });
                        if let Ok(mut s) = slots[r].lock() {
                            *s = Some(res);
                        }
                    })
                });
            }
            drop(tx);
            loop {
                match rx.recv_timeout(std::time::Duration::from_millis(20)) {
                    Ok(ll) => {
                        if !cancelled {
                            counter += 1;
                            if !on_progress(counter, ll) {
                                cancelled = true;
                                abort.store(true, Ordering::Relaxed);
                            }
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
                if parent.as_ref().is_some_and(|f| f.load(Ordering::Relaxed)) {
                    cancelled = true;
                    abort.store(true, Ordering::Relaxed);
                }
            }
        });
        if cancelled {
            return Err(CoreError::Cancelled);
        }
        for (slot, m) in results.iter_mut().zip(slots) {
            *slot = m.into_inner().ok().flatten();
        }
    }
    let mut best: Option<(R, f64)> = None;
    for (r, res) in results.into_iter().enumerate() {
        match res {
            Some(Ok((v, ll))) => {
                if best.as_ref().is_none_or(|b| ll > b.1) {
                    best = Some((v, ll));
                }
            }
            Some(Err(CoreError::Numerical(_))) if r > 0 => {}
            Some(Err(e)) => return Err(e),
            None => return Err(CoreError::Cancelled),
        }
    }
    best.map(|b| (b.0, counter))
        .ok_or_else(|| CoreError::numerical("no EM run succeeded"))
}

fn sticky(k: usize, diag: f64) -> Vec<f64> {
    if k == 1 {
        return vec![1.0];
    }
    let off = (1.0 - diag) / (k - 1) as f64;
    let mut t = vec![off; k * k];
    for i in 0..k {
        t[i * k + i] = diag;
    }
    t
}

/// Check explicit initial parameters and convert them to standardised units.
fn explicit_params(init: &HmmInit, k: usize, mean: f64, sd: f64) -> CoreResult<Params> {
    let len = |name: &str, v: &[f64], want: usize, what: &str| -> CoreResult<()> {
        if v.len() != want {
            return Err(CoreError::invalid(format!(
                "init {name} must have {want} values ({what}), got {}",
                v.len()
            )));
        }
        check::finite(&format!("init {name}"), v)
    };
    len("start_prob", &init.start_prob, k, "n_states")?;
    len("transmat", &init.transmat, k * k, "n_states x n_states")?;
    len("means", &init.means, k, "n_states")?;
    len("variances", &init.variances, k, "n_states")?;
    let stochastic = |name: &str, v: &[f64]| -> CoreResult<Vec<f64>> {
        if let Some(i) = v.iter().position(|&x| x < 0.0) {
            return Err(CoreError::invalid(format!(
                "init {name} has a negative probability at index {i}"
            )));
        }
        let s: f64 = v.iter().sum();
        if (s - 1.0).abs() > INIT_SUM_TOLERANCE {
            return Err(CoreError::invalid(format!(
                "init {name} must sum to 1, sums to {s}"
            )));
        }
        Ok(v.iter().map(|x| x / s).collect())
    };
    let start = stochastic("start_prob", &init.start_prob)?;
    let mut trans = Vec::with_capacity(k * k);
    for i in 0..k {
        trans.extend(stochastic(
            &format!("transmat row {i}"),
            &init.transmat[i * k..(i + 1) * k],
        )?);
    }
    if let Some(i) = init.variances.iter().position(|&v| v <= 0.0) {
        return Err(CoreError::invalid(format!(
            "init variances must be positive, got {} at index {i}",
            init.variances[i]
        )));
    }
    let means = init.means.iter().map(|&m| (m - mean) / sd).collect();
    let vars = init.variances.iter().map(|&v| v / (sd * sd)).collect();
    Ok(Params {
        start,
        trans,
        means,
        vars,
    })
}

/// splitmix64 (Steele, Lea, Flood 2014): small, fast, good enough for random restarts.
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }
    /// Uniform in [0, 1).
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Uniform in 0..n (n > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((self.next_f64() * n as f64) as usize).min(n - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normals(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = SplitMix64(seed);
        (0..n)
            .map(|_| {
                let u1 = 1.0 - rng.next_f64();
                let u2 = rng.next_f64();
                (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
            })
            .collect()
    }

    /// Three regimes (means -1, 0, 1.5; sds 0.5, 0.3, 0.6), sticky chain. Returns (x, states).
    fn three_regimes(n: usize, seed: u64) -> (Vec<f64>, Vec<usize>) {
        let mu = [-1.0, 0.0, 1.5];
        let sd = [0.5, 0.3, 0.6];
        let noise = normals(n, seed);
        let mut rng = SplitMix64(seed ^ 0xABCD);
        let mut s = 0usize;
        let mut states = Vec::with_capacity(n);
        let mut x = Vec::with_capacity(n);
        for e in noise {
            if rng.next_f64() < 0.03 {
                s = (s + 1 + rng.below(2)) % 3;
            }
            states.push(s);
            x.push(mu[s] + sd[s] * e);
        }
        (x, states)
    }

    fn fit(x: &[f64], cfg: &HmmConfig) -> CoreResult<HmmResult> {
        run_hmm(x, cfg, &mut |_, _| true)
    }

    fn cfg(k: usize) -> HmmConfig {
        HmmConfig {
            n_states: k,
            n_restarts: Some(0),
            ..HmmConfig::default()
        }
    }

    /// The shared config checks give the same message from both fits.
    #[test]
    fn config_errors_are_the_same_for_both_fits() {
        use crate::hmm_mv::{run_hmm_mv, MvConfig};
        let (x, _) = three_regimes(200, 3);
        let cases: [(usize, usize, f64, Option<usize>, &str); 6] = [
            (0, 10, 1e-6, None, "n_states must be between 1 and 20"),
            (21, 10, 1e-6, None, "n_states must be between 1 and 20"),
            (3, 0, 1e-6, None, "max_iterations must be at least 1, got 0"),
            (
                3,
                10,
                f64::NAN,
                None,
                "tolerance must be a finite number >= 0",
            ),
            (3, 10, -1.0, None, "tolerance must be a finite number >= 0"),
            (
                3,
                10,
                1e-6,
                Some(MAX_RESTARTS + 1),
                "n_restarts must be at most",
            ),
        ];
        for (k, it, tol, restarts, want) in cases {
            let c = HmmConfig {
                n_states: k,
                max_iterations: it,
                tolerance: tol,
                n_restarts: restarts,
                ..HmmConfig::default()
            };
            let mc = MvConfig {
                n_states: k,
                max_iterations: it,
                tolerance: tol,
                n_restarts: restarts,
                ..MvConfig::default()
            };
            let a = fit(&x, &c).unwrap_err().to_string();
            let b = run_hmm_mv(&x, x.len(), 1, &mc, &mut |_, _| true)
                .unwrap_err()
                .to_string();
            assert_eq!(a, b);
            assert!(a.contains(want), "{a}");
        }
        let short = &x[..9];
        let a = fit(short, &cfg(1)).unwrap_err().to_string();
        let b = run_hmm_mv(short, 9, 1, &MvConfig::default(), &mut |_, _| true)
            .unwrap_err()
            .to_string();
        assert_eq!(a, b);
        assert!(a.contains("observations are too short"), "{a}");
    }

    /// The multivariate kernels (blocks of 256 rows, 4 partial sums, fixed K <= 8, any K above)
    /// on one feature agree with the 1-D fit from the same start, for lengths that are not
    /// multiples of the block or of the lanes.
    #[test]
    fn one_feature_multivariate_fit_matches_the_1d_fit() {
        use crate::hmm_mv::{run_hmm_mv, CovarianceType, MvConfig, MvInit};
        for (n, k) in [(1037usize, 2usize), (601, 3), (997, 9)] {
            let (x, _) = three_regimes(n, n as u64);
            let means: Vec<f64> = (0..k).map(|j| -1.5 + 3.0 * j as f64 / k as f64).collect();
            let start = vec![1.0 / k as f64; k];
            let trans = sticky(k, 0.8);
            let vars = vec![0.5; k];
            let c = HmmConfig {
                n_states: k,
                max_iterations: 15,
                tolerance: 0.0,
                n_restarts: Some(0),
                seed: 0,
                init: Some(HmmInit {
                    start_prob: start.clone(),
                    transmat: trans.clone(),
                    means: means.clone(),
                    variances: vars.clone(),
                }),
            };
            let mc = MvConfig {
                n_states: k,
                max_iterations: 15,
                tolerance: 0.0,
                n_restarts: Some(0),
                seed: 0,
                covariance_type: CovarianceType::Diag,
                init: Some(MvInit {
                    start_prob: start,
                    transmat: trans,
                    means,
                    covars: vars,
                }),
            };
            let a = fit(&x, &c).unwrap();
            let b = run_hmm_mv(&x, n, 1, &mc, &mut |_, _| true).unwrap();
            assert_eq!(
                a.log_likelihood_history.len(),
                b.log_likelihood_history.len()
            );
            for (u, v) in a
                .log_likelihood_history
                .iter()
                .zip(&b.log_likelihood_history)
            {
                assert!((u - v).abs() <= 1e-12 * u.abs(), "n {n} K {k}: {u} vs {v}");
            }
            assert!((a.log_likelihood - b.log_likelihood).abs() <= 1e-12 * a.log_likelihood.abs());
            for (u, v) in a.means.iter().zip(&b.model.means) {
                assert!((u - v).abs() <= 1e-9, "n {n} K {k}: mean {u} vs {v}");
            }
            assert_eq!(a.viterbi_path, b.viterbi_path);
        }
    }

    fn invalid_msg(r: CoreResult<HmmResult>) -> String {
        match r {
            Err(CoreError::InvalidInput(m)) => m,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    fn ln_normal(x: f64, m: f64, v: f64) -> f64 {
        -0.5 * ((2.0 * std::f64::consts::PI * v).ln() + (x - m) * (x - m) / v)
    }

    /// Unscaled textbook forward-backward (fine for short series): (LL, posteriors T x K,
    /// expected transitions K x K).
    fn naive_fb(x: &[f64], init: &HmmInit) -> (f64, Vec<f64>, Vec<f64>) {
        let k = init.means.len();
        let n = x.len();
        let b = |t: usize, j: usize| ln_normal(x[t], init.means[j], init.variances[j]).exp();
        let mut al = vec![0.0; n * k];
        let mut be = vec![1.0; n * k];
        for j in 0..k {
            al[j] = init.start_prob[j] * b(0, j);
        }
        for t in 1..n {
            for j in 0..k {
                al[t * k + j] = (0..k)
                    .map(|i| al[(t - 1) * k + i] * init.transmat[i * k + j])
                    .sum::<f64>()
                    * b(t, j);
            }
        }
        for t in (0..n - 1).rev() {
            for i in 0..k {
                be[t * k + i] = (0..k)
                    .map(|j| init.transmat[i * k + j] * b(t + 1, j) * be[(t + 1) * k + j])
                    .sum::<f64>();
            }
        }
        let p: f64 = al[(n - 1) * k..].iter().sum();
        let post: Vec<f64> = al.iter().zip(&be).map(|(a, b)| a * b / p).collect();
        let mut xi = vec![0.0; k * k];
        for t in 0..n - 1 {
            for i in 0..k {
                for j in 0..k {
                    xi[i * k + j] += al[t * k + i]
                        * init.transmat[i * k + j]
                        * b(t + 1, j)
                        * be[(t + 1) * k + j]
                        / p;
                }
            }
        }
        (p.ln(), post, xi)
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
    }

    fn small_init() -> HmmInit {
        HmmInit {
            start_prob: vec![0.6, 0.4],
            transmat: vec![0.8, 0.2, 0.3, 0.7],
            means: vec![-0.5, 1.0],
            variances: vec![0.5, 1.5],
        }
    }

    #[test]
    fn exp_matches_std() {
        let mut worst: f64 = 0.0;
        let mut x = 0.0f64;
        while x > -708.0 {
            let e = x.exp();
            worst = worst.max(((exp_nonpositive(x) - e) / e).abs());
            x -= 0.0137;
        }
        assert!(worst < 6e-16, "worst relative error {worst}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-709.0), 0.0);
        assert_eq!(exp_nonpositive(f64::NEG_INFINITY), 0.0);
    }

    #[test]
    fn power_of_two_helpers() {
        assert_eq!(pow2(0), 1.0);
        assert_eq!(pow2(-100), RESCALE_BELOW);
        assert_eq!(pow2(-1000), MIN_STEP_MASS);
        assert_eq!(pow2(1023), 2f64.powi(1023));
        assert_eq!(exponent(1.0), 0);
        assert_eq!(exponent(1.5e-40), -133);
        assert_eq!(exponent(0.75), -1);
    }

    #[test]
    fn one_state_is_the_gaussian_fit() {
        let x: Vec<f64> = normals(200, 1).iter().map(|v| 3.0 + 2.0 * v).collect();
        let r = fit(&x, &cfg(1)).unwrap();
        let n = x.len() as f64;
        let m = x.iter().sum::<f64>() / n;
        let v = x.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / n;
        assert!(close(r.means[0], m, 1e-13));
        assert!(close(r.variances[0], v, 1e-12));
        let ll = -0.5 * n * ((2.0 * std::f64::consts::PI * v).ln() + 1.0);
        assert!(
            close(r.log_likelihood, ll, 1e-12),
            "{} vs {ll}",
            r.log_likelihood
        );
        // Already optimal at the start: the second iteration gains nothing.
        assert_eq!(r.iterations, 2);
        assert!(r.converged);
        assert_eq!(r.transition_matrix, vec![1.0]);
        assert_eq!(r.start_probabilities, vec![1.0]);
        assert!(r.posteriors.iter().all(|&p| p == 1.0));
        assert!(r.viterbi_path.iter().all(|&s| s == 0));
        // p = K^2 + 2K - 1 = 2
        assert!(close(r.aic, 4.0 - 2.0 * ll, 1e-12));
        assert!(close(r.bic, 2.0 * n.ln() - 2.0 * ll, 1e-12));
    }

    #[test]
    fn e_step_and_m_step_match_textbook_formulas() {
        let x: Vec<f64> = normals(30, 7).iter().map(|v| 0.3 + v).collect();
        let init = small_init();
        let (ll0, post, xi) = naive_fb(&x, &init);
        let c = HmmConfig {
            n_states: 2,
            max_iterations: 1,
            tolerance: 0.0,
            init: Some(init.clone()),
            ..cfg(2)
        };
        let r = fit(&x, &c).unwrap();
        assert_eq!(r.iterations, 1);
        assert!(!r.converged);
        assert!(
            close(r.log_likelihood_history[0], ll0, 1e-12),
            "{} vs {ll0}",
            r.log_likelihood_history[0]
        );
        // One M-step from the textbook posteriors.
        let k = 2;
        let mut means = vec![0.0; k];
        let mut vars = vec![0.0; k];
        for j in 0..k {
            let g: f64 = (0..x.len()).map(|t| post[t * k + j]).sum();
            means[j] = (0..x.len()).map(|t| post[t * k + j] * x[t]).sum::<f64>() / g;
            vars[j] = (0..x.len())
                .map(|t| post[t * k + j] * (x[t] - means[j]).powi(2))
                .sum::<f64>()
                / g;
        }
        let order: Vec<usize> = if means[0] <= means[1] {
            vec![0, 1]
        } else {
            vec![1, 0]
        };
        for r_ in 0..k {
            let o = order[r_];
            assert!(close(r.means[r_], means[o], 1e-11));
            assert!(close(r.variances[r_], vars[o], 1e-11));
            assert!(close(r.start_probabilities[r_], post[o], 1e-11));
            let row: f64 = (0..k).map(|j| xi[o * k + j]).sum();
            for s in 0..k {
                assert!(close(
                    r.transition_matrix[r_ * k + s],
                    xi[o * k + order[s]] / row,
                    1e-11
                ));
            }
        }
        // Final LL and posteriors are those of the returned parameters.
        let ret = HmmInit {
            start_prob: r.start_probabilities.clone(),
            transmat: r.transition_matrix.clone(),
            means: r.means.clone(),
            variances: r.variances.clone(),
        };
        let (ll1, post1, _) = naive_fb(&x, &ret);
        assert!(close(r.log_likelihood, ll1, 1e-12));
        for (a, b) in r.posteriors.iter().zip(&post1) {
            assert!((a - b).abs() < 1e-12);
        }
        assert!(r.log_likelihood >= r.log_likelihood_history[0]);
    }

    #[test]
    fn viterbi_matches_brute_force() {
        let x: Vec<f64> = normals(20, 11)
            .iter()
            .enumerate()
            .map(|(t, v)| v + if t % 7 < 3 { 1.2 } else { 0.0 })
            .collect();
        let init = small_init();
        let c = HmmConfig {
            n_states: 2,
            max_iterations: 1,
            tolerance: 0.0,
            init: Some(init),
            ..cfg(2)
        };
        let r = fit(&x, &c).unwrap();
        let (n, k) = (x.len(), 2);
        let mut best = (f64::NEG_INFINITY, 0u32);
        for mask in 0u32..(1 << n) {
            let s = |t: usize| ((mask >> t) & 1) as usize;
            let mut lp = r.start_probabilities[s(0)].ln()
                + ln_normal(x[0], r.means[s(0)], r.variances[s(0)]);
            for t in 1..n {
                lp += r.transition_matrix[s(t - 1) * k + s(t)].ln()
                    + ln_normal(x[t], r.means[s(t)], r.variances[s(t)]);
            }
            if lp > best.0 {
                best = (lp, mask);
            }
        }
        let want: Vec<usize> = (0..n).map(|t| ((best.1 >> t) & 1) as usize).collect();
        assert_eq!(r.viterbi_path, want);
    }

    #[test]
    fn likelihood_never_decreases_and_matches_progress() {
        let (x, _) = three_regimes(3000, 5);
        let c = HmmConfig {
            n_states: 3,
            max_iterations: 60,
            tolerance: 0.0,
            ..cfg(3)
        };
        let mut seen = Vec::new();
        let r = run_hmm(&x, &c, &mut |i, ll| {
            seen.push((i, ll));
            true
        })
        .unwrap();
        assert_eq!(seen.len(), r.iterations);
        for (i, (it, ll)) in seen.iter().enumerate() {
            assert_eq!(*it, i + 1);
            assert_eq!(*ll, r.log_likelihood_history[i]);
        }
        let h = &r.log_likelihood_history;
        for w in h.windows(2) {
            assert!(
                w[1] - w[0] >= -1e-10 * w[0].abs(),
                "LL decreased: {} -> {}",
                w[0],
                w[1]
            );
        }
        assert!(r.log_likelihood >= h[h.len() - 1] - 1e-10 * h[0].abs());
    }

    #[test]
    fn recovers_synthetic_regimes() {
        let (x, states) = three_regimes(4000, 21);
        let r = fit(&x, &cfg(3)).unwrap();
        assert!(r.converged);
        for (m, want) in r.means.iter().zip([-1.0, 0.0, 1.5]) {
            assert!((m - want).abs() < 0.1, "means {:?}", r.means);
        }
        for (s, want) in r.stds.iter().zip([0.5, 0.3, 0.6]) {
            assert!((s - want).abs() < 0.1, "stds {:?}", r.stds);
        }
        let right = r
            .viterbi_path
            .iter()
            .zip(&states)
            .filter(|(a, b)| a == b)
            .count();
        assert!(
            right as f64 > 0.95 * x.len() as f64,
            "{right} of {}",
            x.len()
        );
        let k = 3;
        for row in r.posteriors.chunks_exact(k) {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        for row in r.transition_matrix.chunks_exact(k) {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            assert!(row.iter().all(|&p| (0.0..=1.0).contains(&p)));
        }
        assert!((r.start_probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(r.means.windows(2).all(|w| w[0] <= w[1]));
        for (s, v) in r.stds.iter().zip(&r.variances) {
            assert_eq!(*s, v.sqrt());
        }
    }

    #[test]
    fn state_order_of_the_init_does_not_matter() {
        let (x, _) = three_regimes(1500, 3);
        let a = HmmInit {
            start_prob: vec![0.2, 0.3, 0.5],
            transmat: vec![0.9, 0.06, 0.04, 0.05, 0.9, 0.05, 0.02, 0.08, 0.9],
            means: vec![-0.8, 0.1, 1.2],
            variances: vec![0.3, 0.2, 0.5],
        };
        // Same model with states listed in the order 2, 0, 1.
        let perm = [2usize, 0, 1];
        let b = HmmInit {
            start_prob: perm.iter().map(|&p| a.start_prob[p]).collect(),
            transmat: perm
                .iter()
                .flat_map(|&i| perm.iter().map(move |&j| (i, j)))
                .map(|(i, j)| a.transmat[i * 3 + j])
                .collect(),
            means: perm.iter().map(|&p| a.means[p]).collect(),
            variances: perm.iter().map(|&p| a.variances[p]).collect(),
        };
        let ra = fit(
            &x,
            &HmmConfig {
                init: Some(a),
                ..cfg(3)
            },
        )
        .unwrap();
        let rb = fit(
            &x,
            &HmmConfig {
                init: Some(b),
                ..cfg(3)
            },
        )
        .unwrap();
        assert_eq!(ra.iterations, rb.iterations);
        assert_eq!(ra.viterbi_path, rb.viterbi_path);
        let pairs = [
            (&ra.means, &rb.means),
            (&ra.variances, &rb.variances),
            (&ra.transition_matrix, &rb.transition_matrix),
            (&ra.start_probabilities, &rb.start_probabilities),
            (&ra.posteriors, &rb.posteriors),
        ];
        for (u, v) in pairs {
            for (p, q) in u.iter().zip(v.iter()) {
                assert!((p - q).abs() < 1e-10 * (1.0 + p.abs()), "{p} vs {q}");
            }
        }
        assert!(close(ra.log_likelihood, rb.log_likelihood, 1e-13));
    }

    #[test]
    fn explicit_init_equal_to_the_default_gives_the_same_fit() {
        let (x, _) = three_regimes(1200, 8);
        let n = x.len();
        let mut s = x.clone();
        s.sort_by(|a, b| a.total_cmp(b));
        let var = {
            let m = x.iter().sum::<f64>() / n as f64;
            x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n as f64
        };
        let init = HmmInit {
            start_prob: vec![1.0 / 3.0; 3],
            transmat: vec![0.9, 0.05, 0.05, 0.05, 0.9, 0.05, 0.05, 0.05, 0.9],
            means: (0..3)
                .map(|j| s[j * n / 3..(j + 1) * n / 3].iter().sum::<f64>() / (n / 3) as f64)
                .collect(),
            variances: vec![var; 3],
        };
        let r0 = fit(&x, &cfg(3)).unwrap();
        let r1 = fit(
            &x,
            &HmmConfig {
                init: Some(init),
                ..cfg(3)
            },
        )
        .unwrap();
        assert_eq!(r0.iterations, r1.iterations);
        assert!(close(r0.log_likelihood, r1.log_likelihood, 1e-13));
        for (a, b) in r0.means.iter().zip(&r1.means) {
            assert!(close(*a, *b, 1e-12));
        }
    }

    #[test]
    fn restarts_are_seeded_and_never_worse() {
        let (x, _) = three_regimes(1500, 13);
        let base = fit(&x, &cfg(3)).unwrap();
        let c = HmmConfig {
            n_restarts: Some(4),
            seed: 99,
            ..cfg(3)
        };
        let mut calls = 0usize;
        let mut last_it = 0usize;
        let r1 = run_hmm(&x, &c, &mut |it, _| {
            calls += 1;
            last_it = it;
            true
        })
        .unwrap();
        let r2 = fit(&x, &c).unwrap();
        assert_eq!(r1, r2);
        assert!(r1.log_likelihood >= base.log_likelihood);
        assert_eq!(calls, last_it);
        assert!(
            calls > r1.iterations,
            "progress counts iterations across restarts"
        );
        let r3 = fit(
            &x,
            &HmmConfig {
                seed: 100,
                ..c.clone()
            },
        )
        .unwrap();
        assert!(r3.log_likelihood >= base.log_likelihood);
    }

    #[test]
    fn cancel_stops_within_one_iteration() {
        let (x, _) = three_regimes(2000, 2);
        let mut calls = 0usize;
        let c = HmmConfig {
            tolerance: 0.0,
            max_iterations: 1000,
            n_restarts: Some(2),
            ..cfg(3)
        };
        let r = run_hmm(&x, &c, &mut |it, _| {
            calls += 1;
            it < 3
        });
        assert_eq!(r, Err(CoreError::Cancelled));
        assert_eq!(calls, 3);
    }

    #[test]
    fn variance_floor_keeps_collapsing_states_finite() {
        // Half the data is exactly zero: one state wants variance 0.
        let mut x = normals(400, 4);
        for v in x.iter_mut().take(200) {
            *v = 0.0;
        }
        let n = x.len() as f64;
        let m = x.iter().sum::<f64>() / n;
        let var = x.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / n;
        let r = fit(
            &x,
            &HmmConfig {
                max_iterations: 500,
                ..cfg(2)
            },
        )
        .unwrap();
        assert!(r.log_likelihood.is_finite());
        assert!(r
            .variances
            .iter()
            .all(|&v| v >= VARIANCE_FLOOR * var * (1.0 - 1e-12)));
        assert!(
            r.variances.iter().any(|&v| v <= 2.0 * VARIANCE_FLOOR * var),
            "{:?}",
            r.variances
        );
        for w in r.log_likelihood_history.windows(2) {
            assert!(w[1] >= w[0] - 1e-9 * w[0].abs());
        }
    }

    #[test]
    fn outliers_do_not_underflow() {
        let (mut x, _) = three_regimes(1000, 6);
        x[10] = 1e6;
        x[500] = -1e5;
        let r = fit(&x, &cfg(3)).unwrap();
        assert!(r.log_likelihood.is_finite());
        assert!(r.posteriors.iter().all(|p| p.is_finite()));
    }

    #[test]
    fn zero_probability_is_a_numerical_error() {
        let x = normals(100, 9);
        let init = HmmInit {
            start_prob: vec![1.0, 0.0],
            transmat: vec![1.0, 0.0, 0.0, 1.0],
            means: vec![1e3, 0.0],
            variances: vec![1e-4, 1.0],
        };
        match fit(
            &x,
            &HmmConfig {
                init: Some(init),
                ..cfg(2)
            },
        ) {
            Err(CoreError::Numerical(m)) => assert!(m.contains("zero probability"), "{m}"),
            other => panic!("expected Numerical, got {other:?}"),
        }
    }

    #[test]
    fn bad_input_is_rejected_with_named_parameters() {
        let x = normals(100, 1);
        assert!(invalid_msg(fit(&[], &cfg(1))).contains("observations is empty"));
        let mut y = x.clone();
        y[5] = f64::NAN;
        assert!(invalid_msg(fit(&y, &cfg(2))).contains("observations contains NaN at index 5"));
        y[5] = f64::INFINITY;
        assert!(invalid_msg(fit(&y, &cfg(2))).contains("observations contains an infinite value"));
        assert!(invalid_msg(fit(&[2.5; 50], &cfg(2)))
            .contains("observations have (near-)zero variance"));
        // constant near 1e9: the plain two-pass variance leaves rounding (~1e-36), not 0
        assert!(invalid_msg(fit(&[1e9 + 0.3; 500], &cfg(3)))
            .contains("observations have (near-)zero variance"));
        let wiggle: Vec<f64> = (0..500)
            .map(|i| if i % 7 == 0 { 1e9 } else { 1e9 + 1.2e-7 })
            .collect();
        assert!(
            invalid_msg(fit(&wiggle, &cfg(2))).contains("observations have (near-)zero variance")
        );
        assert!(invalid_msg(fit(&x[..9], &cfg(1))).contains("observations are too short"));
        assert!(invalid_msg(fit(&x, &cfg(0))).contains("n_states must be between 1 and 10"));
        assert!(invalid_msg(fit(&x, &cfg(11))).contains("n_states must be between 1 and 10"));
        let big = normals(10_000, 1);
        assert!(invalid_msg(fit(&big, &cfg(51))).contains("n_states must be between 1 and 50"));
        assert!(invalid_msg(fit(
            &x,
            &HmmConfig {
                max_iterations: 0,
                ..cfg(2)
            }
        ))
        .contains("max_iterations"));
        for tol in [-1e-9, f64::NAN, f64::INFINITY] {
            assert!(invalid_msg(fit(
                &x,
                &HmmConfig {
                    tolerance: tol,
                    ..cfg(2)
                }
            ))
            .contains("tolerance"));
        }
        assert!(invalid_msg(fit(
            &x,
            &HmmConfig {
                n_restarts: Some(MAX_RESTARTS + 1),
                ..cfg(2)
            }
        ))
        .contains("n_restarts"));
        assert!(invalid_msg(fit(
            &[1e300, -1e300, 1e300, -1e300, 1e300, -1e300, 1e300, -1e300, 1e300, -1e300],
            &cfg(1)
        ))
        .contains("too large"));

        let with = |f: &dyn Fn(&mut HmmInit)| {
            let mut init = small_init();
            f(&mut init);
            invalid_msg(fit(
                &x,
                &HmmConfig {
                    init: Some(init),
                    ..cfg(2)
                },
            ))
        };
        assert!(with(&|i| i.start_prob = vec![1.0]).contains("init start_prob must have 2 values"));
        assert!(with(&|i| i.transmat.pop().map(|_| ()).unwrap())
            .contains("init transmat must have 4 values"));
        assert!(with(&|i| i.means.push(0.0)).contains("init means must have 2 values"));
        assert!(with(&|i| i.variances = vec![]).contains("init variances must have 2 values"));
        assert!(with(&|i| i.means[1] = f64::NAN).contains("init means contains NaN"));
        assert!(with(&|i| i.start_prob = vec![1.2, -0.2])
            .contains("init start_prob has a negative probability"));
        assert!(with(&|i| i.start_prob = vec![0.5, 0.6]).contains("init start_prob must sum to 1"));
        assert!(with(&|i| i.transmat = vec![0.5, 0.5, 0.5, 0.6])
            .contains("init transmat row 1 must sum to 1"));
        assert!(with(&|i| i.variances[0] = 0.0).contains("init variances must be positive"));
    }

    #[test]
    fn general_k_path_agrees_with_itself_and_is_sane() {
        // K = 9 goes through the run-time-K code path (K <= 8: the fixed-size kernel).
        let (x, _) = three_regimes(3000, 17);
        let r = fit(
            &x,
            &HmmConfig {
                max_iterations: 40,
                tolerance: 0.0,
                ..cfg(9)
            },
        )
        .unwrap();
        for w in r.log_likelihood_history.windows(2) {
            assert!(w[1] >= w[0] - 1e-10 * w[0].abs());
        }
        assert!(r.viterbi_path.iter().all(|&s| s < 9));
        for row in r.posteriors.chunks_exact(9) {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        assert!(r.means.windows(2).all(|w| w[0] <= w[1]));
    }

    // ---- the fixed-K kernel (e_step_soa) against the generic scalar E-step (e_step_impl)

    use proptest::prelude::*;

    /// Everything one E-step produces: (LL, start, trans, s0, s1, s2, posteriors) or the error.
    type EOut = Result<
        (
            f64,
            Vec<f64>,
            Vec<f64>,
            Vec<f64>,
            Vec<f64>,
            Vec<f64>,
            Vec<f64>,
        ),
        String,
    >;

    fn run_e(z: &[f64], p: &Params, generic: bool) -> EOut {
        let (n, k) = (z.len(), p.means.len());
        let mut w = Work::new(n, k).unwrap();
        let mut post = vec![0.0; n * k];
        let r = if generic {
            e_step_impl(Dynamic(k), z, p, &mut w, Some(&mut post))
        } else {
            e_step(z, p, &mut w, Some(&mut post))
        };
        r.map(|ll| {
            (
                ll,
                w.start.clone(),
                w.trans.clone(),
                w.s0.clone(),
                w.s1.clone(),
                w.s2.clone(),
                post,
            )
        })
        .map_err(|e| e.to_string())
    }

    #[test]
    fn used_work_tables_give_the_same_bits_as_new_ones() {
        // run_hmm hands a run's tables to the next run, the polish and the final E-step
        for (n, k) in [(500, 2), (20_000, 3), (40_000, 4), (3_000, 6)] {
            let mut r = crate::num::uniform(n as u64 + k as u64);
            let z: Vec<f64> = (0..n)
                .map(|t| r() + if (t / 97) % 2 == 0 { -1.0 } else { 1.5 })
                .collect();
            let other = deterministic_params(&z, k);
            let p = kmeanspp_params(&z, k, 7, 1);
            let mut used = Work::new(n, k).unwrap();
            e_step(&z, &other, &mut used, None).unwrap(); // dirty every table
            let mut post_used = vec![0.0; n * k];
            let ll_used = e_step(&z, &p, &mut used, Some(&mut post_used)).unwrap();
            let mut fresh = Work::new(n, k).unwrap();
            let mut post_fresh = vec![0.0; n * k];
            let ll_fresh = e_step(&z, &p, &mut fresh, Some(&mut post_fresh)).unwrap();
            assert_eq!(ll_used.to_bits(), ll_fresh.to_bits(), "n {n} k {k}");
            assert!(post_used
                .iter()
                .zip(&post_fresh)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
            for (a, b) in [
                (&used.start, &fresh.start),
                (&used.trans, &fresh.trans),
                (&used.s0, &fresh.s0),
                (&used.s1, &fresh.s1),
                (&used.s2, &fresh.s2),
            ] {
                assert!(
                    a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "n {n} k {k}"
                );
            }
        }
    }

    /// Fixed-K kernel through the plain (no target feature) emission pass, for bit-identity.
    fn run_plain<const K: usize>(z: &[f64], p: &Params) -> EOut {
        let mut w = Work::new(z.len(), K).unwrap();
        let mut post = vec![0.0; z.len() * K];
        e_step_soa_body::<K>(z, p, &mut w, Some(&mut post), SoaFns::<K>::plain())
            .map(|ll| (ll, w.start, w.trans, w.s0, w.s1, w.s2, post))
            .map_err(|e| e.to_string())
    }

    fn run_plain_k(z: &[f64], p: &Params) -> EOut {
        match p.means.len() {
            1 => run_plain::<1>(z, p),
            2 => run_plain::<2>(z, p),
            3 => run_plain::<3>(z, p),
            4 => run_plain::<4>(z, p),
            5 => run_plain::<5>(z, p),
            6 => run_plain::<6>(z, p),
            7 => run_plain::<7>(z, p),
            8 => run_plain::<8>(z, p),
            k => panic!("no fixed kernel for K = {k}"),
        }
    }

    /// Agreement of two E-step outputs: LL to 1e-12 relative; statistics to 1e-12 of their
    /// own scale (the sums are all of non-negative terms except s1, whose scale is sum |.|).
    fn assert_agree(a: &EOut, b: &EOut, z: &[f64], p: &Params) {
        let (a, b) = match (a, b) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(x), Err(y)) => return assert_eq!(x, y),
            _ => panic!(
                "one path failed: {:?} vs {:?}",
                a.as_ref().err(),
                b.as_ref().err()
            ),
        };
        let tol = 1e-12;
        assert!(
            (a.0 - b.0).abs() <= tol * a.0.abs().max(1.0),
            "LL {} vs {}",
            a.0,
            b.0
        );
        let mass: f64 = b.3.iter().sum();
        let dmax = z
            .iter()
            .flat_map(|&x| p.means.iter().map(move |&m| (x - m).abs()))
            .fold(0.0f64, f64::max);
        let close = |u: &[f64], v: &[f64], scale: f64, what: &str| {
            for (x, y) in u.iter().zip(v) {
                assert!(
                    (x - y).abs() <= tol * scale,
                    "{what}: {x} vs {y} (scale {scale})"
                );
            }
        };
        close(&a.1, &b.1, b.1.iter().sum(), "start");
        close(&a.2, &b.2, b.2.iter().sum(), "trans");
        close(&a.3, &b.3, mass, "s0");
        close(&a.4, &b.4, mass * dmax, "s1");
        close(&a.5, &b.5, mass * dmax * dmax, "s2");
        close(&a.6, &b.6, 1.0, "posteriors");
    }

    /// Hostile parameter sets: variances from tiny (the floor) to huge, a state far away from
    /// every observation (near-zero occupancy), zero transitions, skewed start.
    fn params_strategy(k: usize) -> impl Strategy<Value = Params> {
        (
            prop::collection::vec(-3.0f64..3.0, k),
            prop::collection::vec(-6.0f64..3.0, k),
            prop::collection::vec(0.0f64..1.0, k * k),
            prop::collection::vec(0.01f64..1.0, k),
            0usize..4,
        )
            .prop_map(move |(means, lv, raw, st, mode)| {
                let mut means = means;
                let mut vars: Vec<f64> = lv.iter().map(|l| 10f64.powf(*l)).collect();
                let mut trans = raw;
                match mode {
                    1 => means[0] = 40.0,              // a state no observation is near
                    2 => vars[k - 1] = VARIANCE_FLOOR, // a collapsed state
                    3 => {
                        // sparse rows: zero a few entries (the diagonal is kept)
                        for i in 0..k {
                            for j in 0..k {
                                if i != j && trans[i * k + j] < 0.4 {
                                    trans[i * k + j] = 0.0;
                                }
                            }
                        }
                    }
                    _ => {}
                }
                for i in 0..k {
                    trans[i * k + i] += 0.05;
                    let r: f64 = trans[i * k..(i + 1) * k].iter().sum();
                    trans[i * k..(i + 1) * k].iter_mut().for_each(|v| *v /= r);
                }
                let ss: f64 = st.iter().sum();
                Params {
                    start: st.iter().map(|v| v / ss).collect(),
                    trans,
                    means,
                    vars,
                }
            })
    }

    /// Standardised-looking data with outliers and flat runs.
    fn data_strategy() -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec(
            prop_oneof![
                6 => -3.0f64..3.0,
                1 => -30.0f64..30.0,
                1 => Just(0.25f64),
            ],
            10..140,
        )
    }

    /// Found by the proptest in a fresh-clone CI: absorbing states, a state unreachable after t = 0
    /// and tiny variances. The forward pass stays finite but the backward pass overflowed to NaN
    /// statistics; both kernels now refuse it with the same numerical error.
    #[test]
    fn unreachable_state_with_tiny_variance_is_a_numerical_error_not_nan() {
        let p = Params {
            start: vec![0.33333333333333337; 3],
            trans: vec![
                1.0,
                0.0,
                0.0,
                0.0,
                1.0,
                0.0,
                0.9301027105663683,
                0.0,
                0.06989728943363162,
            ],
            means: vec![2.034330645071744, 0.0, -2.7115263095122484],
            vars: vec![
                0.028976616719689905,
                0.0010017448521242485,
                6.670291023593906e-5,
            ],
        };
        let mut z = vec![0.0; 10];
        z[1] = -2.733295213227122;
        z[2] = -2.6747187621612083;
        let fast = run_e(&z, &p, false);
        let generic = run_e(&z, &p, true);
        for r in [&fast, &generic] {
            match r {
                Ok(o) => assert!(o
                    .1
                    .iter()
                    .chain(&o.3)
                    .chain(&o.4)
                    .chain(&o.5)
                    .all(|v| v.is_finite())),
                Err(e) => assert!(
                    e.contains("not finite") || e.contains("zero probability"),
                    "{e}"
                ),
            }
        }
        assert_agree(&fast, &generic, &z, &p);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(160))]

        #[test]
        fn fixed_k_kernel_matches_the_generic_e_step(
            (p, z) in (1usize..=8).prop_flat_map(|k| (params_strategy(k), data_strategy()))
        ) {
            let fast = run_e(&z, &p, false);
            let generic = run_e(&z, &p, true);
            assert_agree(&fast, &generic, &z, &p);
            // the vectorised dispatch and the plain build of the same kernel: bit-identical
            let plain = run_plain_k(&z, &p);
            match (&fast, &plain) {
                (Ok(a), Ok(b)) => {
                    prop_assert_eq!(a.0.to_bits(), b.0.to_bits());
                    for (u, v) in [(&a.1, &b.1), (&a.2, &b.2), (&a.3, &b.3), (&a.4, &b.4), (&a.5, &b.5), (&a.6, &b.6)] {
                        prop_assert!(u.iter().zip(v.iter()).all(|(x, y)| x.to_bits() == y.to_bits()));
                    }
                }
                (Err(x), Err(y)) => prop_assert_eq!(x, y),
                _ => prop_assert!(false, "one build failed"),
            }
        }

        #[test]
        fn vectorised_exp_is_within_a_few_ulp_of_std(
            v in prop::collection::vec(prop_oneof![-745.0f64..0.0, -1.0f64..0.0, -1e-300f64..0.0], 1..64)
        ) {
            let mut w = v.clone();
            exp_nonpositive_slice(&mut w);
            for (&x, &y) in v.iter().zip(&w) {
                prop_assert_eq!(y.to_bits(), exp_nonpositive(x).to_bits());
                let e = x.exp();
                if x >= -708.0 {
                    prop_assert!(((y - e) / e).abs() < 6e-16, "exp({}) = {} vs {}", x, y, e);
                } else {
                    prop_assert_eq!(y, 0.0);
                }
            }
        }
    }

    /// The fixed-K E-step with or without its second thread: bit-identical (the same
    /// operations in the same order), and within rounding of the one-thread fused kernel (the
    /// same terms, summed over time in another order) and of the generic E-step.
    #[test]
    fn split_e_step_is_bit_identical_on_one_or_two_threads() {
        for (n, k, seed) in [
            (PARALLEL_MIN_STEPS + 4097, 3usize, 3u64),
            (40_003, 5, 4),
            (PARALLEL_MIN_STEPS, 1, 6),
        ] {
            let (x, _) = three_regimes(n, seed);
            let z: Vec<f64> = x.iter().map(|v| v * 1.3 + 0.1).collect();
            let p = deterministic_params(&z, k);
            let run = |threads: bool| -> EOut {
                let mut w = Work::new(n, k).unwrap();
                w.threads = threads;
                let mut post = vec![0.0; n * k];
                e_step(&z, &p, &mut w, Some(&mut post))
                    .map(|ll| (ll, w.start, w.trans, w.s0, w.s1, w.s2, post))
                    .map_err(|e| e.to_string())
            };
            let (one, two) = (run(false), run(true));
            let (a, b) = (one.as_ref().unwrap(), two.as_ref().unwrap());
            assert_eq!(a.0.to_bits(), b.0.to_bits());
            for (u, v) in [
                (&a.1, &b.1),
                (&a.2, &b.2),
                (&a.3, &b.3),
                (&a.4, &b.4),
                (&a.5, &b.5),
                (&a.6, &b.6),
            ] {
                assert!(u
                    .iter()
                    .zip(v.iter())
                    .all(|(x, y)| x.to_bits() == y.to_bits()));
            }
            assert_agree(&two, &run_e(&z, &p, true), &z, &p);
            let fused: EOut = {
                let mut w = Work::new(n, k).unwrap();
                let mut post = vec![0.0; n * k];
                let r = match k {
                    1 => e_step_soa_fused::<1>(&z, &p, &mut w, Some(&mut post), soa_emission::<1>),
                    3 => e_step_soa_fused::<3>(&z, &p, &mut w, Some(&mut post), soa_emission::<3>),
                    5 => e_step_soa_fused::<5>(&z, &p, &mut w, Some(&mut post), soa_emission::<5>),
                    _ => unreachable!(),
                };
                r.map(|ll| (ll, w.start, w.trans, w.s0, w.s1, w.s2, post))
                    .map_err(|e| e.to_string())
            };
            assert_agree(&two, &fused, &z, &p);
            // the M-step is invariant to the common power-of-two scale of the statistics: the
            // posteriors (normalised per step) are equal to the fused kernel's bit for bit
            let (f, b) = (fused.unwrap(), two.unwrap());
            assert!(f
                .6
                .iter()
                .zip(&b.6)
                .all(|(x, y)| x.to_bits() == y.to_bits()));
        }
    }

    /// A cancelled E-step on two threads stops with `Cancelled` (both threads poll the flag).
    #[test]
    fn split_e_step_on_two_threads_can_be_cancelled() {
        let n = 4 * PARALLEL_MIN_STEPS;
        let (z, _) = three_regimes(n, 9);
        let p = deterministic_params(&z, 3);
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let mut w = Work::new(n, 3).unwrap();
        let r = crate::limits::with_cancel(Some(flag), || e_step(&z, &p, &mut w, None));
        assert!(matches!(r, Err(CoreError::Cancelled)), "{r:?}");
        // and the same work runs to the end when not cancelled
        assert!(e_step(&z, &p, &mut w, None).unwrap().is_finite());
    }

    #[test]
    fn fixed_k_kernel_handles_long_series_and_rescaling() {
        // long enough for many power-of-two rescalings and every block/remainder split
        for (n, k) in [(4099usize, 3usize), (1001, 8), (517, 1), (10, 2)] {
            let (x, _) = three_regimes(n, 5);
            let z: Vec<f64> = x.iter().map(|v| v * 1.7 - 0.2).collect();
            let p = deterministic_params(&z, k);
            assert_agree(&run_e(&z, &p, false), &run_e(&z, &p, true), &z, &p);
        }
    }
}
