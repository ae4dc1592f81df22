//! Thin PyO3 bindings over `rustcore`: convert inputs (NumPy arrays are borrowed, not copied),
//! release the GIL for the whole computation, convert outputs (moved into NumPy arrays, no copy),
//! map errors (`InvalidInput`/`Numerical` -> ValueError, `Cancelled` -> hft_lab._rustcore.Cancelled).
//! No algorithm logic lives here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use numpy::{
    IntoPyArray, PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2,
    PyUntypedArrayMethods,
};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use rustcore::backtest as bt;
use rustcore::hmm;
use rustcore::hmm_mv;
use rustcore::ou;
use rustcore::portfolio;
use rustcore::rolling::{self, MeanReversionBuffers, MeanReversionState, SignalParams};
use rustcore::sparse;
use rustcore::CoreError;

/// A result struct's fields as a Python dict, by field name: `values` are converted as they are
/// (numbers, strings, booleans), `arrays` (`Vec<f64>`) are moved into NumPy arrays without a copy;
/// the optional `shaped` (`field => [dims]`: a `Vec<f64>` moved into an array of that shape) and
/// `indices` (`Vec<usize>` fields, as int64 arrays) sections follow, in that order.
/// Fields under another key, or built from several fields, are added by hand after the macro.
macro_rules! to_dict {
    ($py:expr, $r:ident; values: [$($v:ident),* $(,)?]; arrays: [$($a:ident),* $(,)?]
     $(; shaped: [$($s:ident => [$($dim:expr),+ $(,)?]),* $(,)?])?
     $(; indices: [$($i:ident),* $(,)?])?) => {{
        let d = PyDict::new($py);
        $( d.set_item(stringify!($v), $r.$v)?; )*
        $( d.set_item(stringify!($a), $r.$a.into_pyarray($py))?; )*
        $($( d.set_item(stringify!($s), $r.$s.into_pyarray($py).reshape([$($dim),+])?)?; )*)?
        $($( d.set_item(
            stringify!($i),
            $r.$i.iter().map(|&v| v as i64).collect::<Vec<i64>>().into_pyarray($py),
        )?; )*)?
        d
    }};
}

// issue 17: the pairs workflow's bindings
mod pairs;
// issue 16: the gRPC backend's unary transport
mod grpc_client;

create_exception!(
    _rustcore,
    Cancelled,
    PyException,
    "The computation was cancelled by the user."
);
create_exception!(
    _rustcore,
    NumericalError,
    PyValueError,
    "The input was valid but the computation failed numerically (no convergence, singular matrix)."
);
create_exception!(
    _rustcore,
    ResourceLimitExceeded,
    PyValueError,
    "The request needs more memory than the budget (HFT_LAB_MEMORY_LIMIT) allows."
);

/// A flag another thread (the GUI's Cancel button) can set while a call runs with the GIL released.
#[pyclass(module = "hft_lab._rustcore", frozen)]
#[derive(Default)]
struct CancelToken {
    flag: Arc<AtomicBool>,
}

#[pymethods]
impl CancelToken {
    #[new]
    fn new() -> Self {
        Self::default()
    }
    fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }
    fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

fn to_py_err(e: CoreError) -> PyErr {
    match e {
        CoreError::Cancelled => Cancelled::new_err(e.to_string()),
        CoreError::InvalidInput(m) => PyValueError::new_err(m),
        CoreError::Numerical(m) => NumericalError::new_err(m),
        CoreError::ResourceExhausted(m) => ResourceLimitExceeded::new_err(m),
    }
}

/// The one helper every binding uses: run `f` with the GIL released, turn a panic into a
/// RuntimeError (nothing unwinds across the FFI boundary) and map the core's errors.
fn detach<T: Send>(py: Python<'_>, f: impl FnOnce() -> Result<T, CoreError> + Send) -> PyResult<T> {
    detach_cancel(py, None, f)
}

/// `detach` with the call's cancel flag installed for the core's deep loops (`limits::poll`).
fn detach_cancel<T: Send>(
    py: Python<'_>,
    cancel: Option<Arc<AtomicBool>>,
    f: impl FnOnce() -> Result<T, CoreError> + Send,
) -> PyResult<T> {
    let out = py.detach(|| {
        rustcore::limits::with_cancel(cancel, || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        })
    });
    match out {
        Ok(r) => r.map_err(to_py_err),
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(PyRuntimeError::new_err(format!(
                "internal error in rustcore: {msg}"
            )))
        }
    }
}

/// Runs `f` with the GIL released, handing it the core's progress hook built from an optional
/// cancel token and an optional Python callable `progress(done, value) -> bool | None` (False
/// cancels). The compute thread never touches the GIL: a progress report appends to a queue (a
/// mutex held for a push) that a delivering thread drains while the computation runs, calling
/// Python for every pending event under ONE acquisition of the GIL. Events still pending when the
/// computation ends are delivered by the calling thread once it has the GIL back (which it needs
/// anyway), so the end of a run never waits for extra GIL hand-offs. (Re-acquiring the GIL per
/// event cost up to a 5 ms switch interval each while another thread ran Python, e.g. the GUI
/// thread: 30 HMM iterations cost 25 ms more than the run.) Every event is delivered, in order,
/// before this returns; a False from the callable stops the computation at its next progress
/// point (and makes the call Cancelled, even if the computation had finished).
fn detach_progress<T: Send>(
    py: Python<'_>,
    cancel: Option<Arc<AtomicBool>>,
    callback: Option<Py<PyAny>>,
    f: impl FnOnce(&mut dyn FnMut(usize, f64) -> bool) -> Result<T, CoreError> + Send,
) -> PyResult<T> {
    let Some(cb) = callback else {
        let flag = cancel.clone();
        let mut hook =
            move |_: usize, _: f64| !cancel.as_ref().is_some_and(|c| c.load(Ordering::SeqCst));
        return detach_cancel(py, flag, || f(&mut hook));
    };
    // false when the callable returned False or raised (its exception is printed)
    fn deliver(py: Python<'_>, cb: &Py<PyAny>, i: usize, v: f64) -> bool {
        match cb.call1(py, (i, v)) {
            Ok(r) => !r.bind(py).is(&*pyo3::types::PyBool::new(py, false)),
            Err(e) => {
                e.print(py);
                false
            }
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let queue = Arc::new(ProgressQueue::<(usize, f64)>::default());
    let cb_d = cb.clone_ref(py);
    let mut handed_back: Option<Py<PyAny>> = None;
    let r = detach_cancel(py, cancel.clone(), || {
        let (stop_d, queue_d) = (stop.clone(), queue.clone());
        let deliverer = std::thread::spawn(move || {
            while let Some(batch) = queue_d.take() {
                if stop_d.load(Ordering::SeqCst) {
                    continue; // the computation is stopping
                }
                let keep =
                    Python::attach(|py| batch.into_iter().all(|(i, v)| deliver(py, &cb_d, i, v)));
                if !keep {
                    stop_d.store(true, Ordering::SeqCst);
                }
            }
            cb_d // dropped by the caller, with the GIL
        });
        // closes the queue also if `f` panics, so the deliverer never waits for ever
        struct Close<'a>(&'a ProgressQueue<(usize, f64)>);
        impl Drop for Close<'_> {
            fn drop(&mut self) {
                self.0.close();
            }
        }
        let closing = Close(&queue);
        let r = {
            let mut hook = |i: usize, v: f64| {
                if stop.load(Ordering::SeqCst)
                    || cancel.as_ref().is_some_and(|c| c.load(Ordering::SeqCst))
                {
                    return false;
                }
                queue.push((i, v));
                true
            };
            f(&mut hook)
        };
        drop(closing);
        handed_back = deliverer.join().ok();
        r
    });
    // the events the deliverer did not take, here with the GIL held again
    if !stop.load(Ordering::SeqCst) {
        for (i, v) in queue.rest() {
            if !deliver(py, &cb, i, v) {
                stop.store(true, Ordering::SeqCst);
                break;
            }
        }
    }
    drop(handed_back);
    drop(cb);
    if stop.load(Ordering::SeqCst) {
        // the callable said stop: cancelled, even if the computation finished before it was read
        return Err(to_py_err(CoreError::Cancelled));
    }
    r
}

/// Progress events from the compute thread to the delivering thread (see detach_progress): the
/// compute side pushes, the delivering side takes every pending event at once.
struct ProgressQueue<E> {
    state: std::sync::Mutex<(Vec<E>, bool)>, // (pending events, closed)
    ready: std::sync::Condvar,
}

impl<E> Default for ProgressQueue<E> {
    fn default() -> Self {
        ProgressQueue {
            state: std::sync::Mutex::new((Vec::new(), false)),
            ready: std::sync::Condvar::new(),
        }
    }
}

impl<E> ProgressQueue<E> {
    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<E>, bool)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, e: E) {
        let mut s = self.lock();
        s.0.push(e);
        if s.0.len() == 1 {
            self.ready.notify_one(); // the deliverer may be waiting for the first event
        }
    }

    fn close(&self) {
        self.lock().1 = true;
        self.ready.notify_one();
    }

    /// Every pending event, waiting for one; None once closed (what is left then is `rest`).
    fn take(&self) -> Option<Vec<E>> {
        let mut s = self.lock();
        loop {
            if s.1 {
                return None;
            }
            if !s.0.is_empty() {
                return Some(std::mem::take(&mut s.0));
            }
            s = self.ready.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The events nobody took.
    fn rest(&self) -> Vec<E> {
        std::mem::take(&mut self.lock().0)
    }
}

fn slice<'a>(name: &str, a: &'a PyReadonlyArray1<'_, f64>) -> PyResult<&'a [f64]> {
    a.as_slice().map_err(|_| {
        PyValueError::new_err(format!("{name} must be a contiguous 1-D float64 array"))
    })
}

fn signal_params(entry: f64, exit: f64, stop: Option<f64>) -> SignalParams {
    SignalParams { entry, exit, stop }
}

/// Rolling mean/std/z-score and hysteresis signals. Returns a dict of NumPy arrays: the series
/// named in `outputs` (names among mean, std, zscore, signals, positions; None = all five, keys
/// rolling_mean, rolling_std, zscore, signals, positions), plus entries and exits. Series not
/// asked for are not computed into memory at all.
#[pyfunction]
#[pyo3(signature = (prices, lookback, threshold, exit_threshold=0.0, stop_threshold=None, cancel=None, progress=None, outputs=None))]
// The arguments are the Python API's keyword arguments (mirrored by the gRPC request).
#[allow(clippy::too_many_arguments)]
fn mean_reversion<'py>(
    py: Python<'py>,
    prices: PyReadonlyArray1<'py, f64>,
    lookback: usize,
    threshold: f64,
    exit_threshold: f64,
    stop_threshold: Option<f64>,
    cancel: Option<PyRef<'py, CancelToken>>,
    progress: Option<Py<PyAny>>,
    outputs: Option<Vec<String>>,
) -> PyResult<Bound<'py, PyDict>> {
    let x = slice("prices", &prices)?;
    let cancel = cancel.map(|c| c.flag.clone());
    let params = signal_params(threshold, exit_threshold, stop_threshold);
    let sel = rolling::Outputs::parse(outputs.as_deref().unwrap_or(&[])).map_err(to_py_err)?;
    // Outputs are NumPy arrays from the start (NumPy asks the kernel for huge pages on large
    // allocations, which saves most of the page-fault cost of fresh memory); the core fills them
    // with the GIL released.
    let n = x.len();
    // The core's budget check for this call, made here because the outputs are allocated here
    // (same need, same message as the core's mean_reversion on gRPC).
    let _budget = if (2..=n).contains(&lookback) {
        Some(
            rustcore::limits::reserve(&rustcore::limits::mean_reversion_selected(
                n,
                lookback,
                &sel.names(),
            ))
            .map_err(to_py_err)?,
        )
    } else {
        None
    };
    // SAFETY: uninitialised (np.empty, which can reuse freed memory without faulting it in again);
    // mean_reversion_into writes every element before anything reads them, or the arrays are
    // dropped unread when it returns an error.
    let f64s = |on: bool| on.then(|| unsafe { PyArray1::<f64>::new(py, n, false) });
    let i8s = |on: bool| on.then(|| unsafe { PyArray1::<i8>::new(py, n, false) });
    let (mean, std, z, sig, pos) = (
        f64s(sel.mean),
        f64s(sel.std),
        f64s(sel.zscore),
        i8s(sel.signals),
        i8s(sel.positions),
    );
    let (entries, exits) = {
        // SAFETY: the arrays were just created here, are contiguous and not shared with anyone yet.
        let bufs = unsafe {
            MeanReversionBuffers {
                rolling_mean: mean.as_ref().map(|a| a.as_slice_mut()).transpose()?,
                rolling_std: std.as_ref().map(|a| a.as_slice_mut()).transpose()?,
                zscore: z.as_ref().map(|a| a.as_slice_mut()).transpose()?,
                signals: sig.as_ref().map(|a| a.as_slice_mut()).transpose()?,
                positions: pos.as_ref().map(|a| a.as_slice_mut()).transpose()?,
            }
        };
        detach_progress(py, cancel, progress, |hook| {
            rolling::mean_reversion_into(x, lookback, params, bufs, hook)
        })?
    };
    let d = PyDict::new(py);
    if let Some(a) = mean {
        d.set_item("rolling_mean", a)?;
    }
    if let Some(a) = std {
        d.set_item("rolling_std", a)?;
    }
    if let Some(a) = z {
        d.set_item("zscore", a)?;
    }
    if let Some(a) = sig {
        d.set_item("signals", a)?;
    }
    if let Some(a) = pos {
        d.set_item("positions", a)?;
    }
    let idx = |v: Vec<usize>| v.into_iter().map(|i| i as i64).collect::<Vec<i64>>();
    d.set_item("entries", idx(entries).into_pyarray(py))?;
    d.set_item("exits", idx(exits).into_pyarray(py))?;
    Ok(d)
}

/// Live mode: an incremental, stateful mean-reversion engine, O(1) per tick. Feeding a series
/// tick by tick (or in chunks) gives bit-identical results to `mean_reversion` on the whole series.
#[pyclass(module = "hft_lab._rustcore")]
struct MeanReversionStream {
    state: MeanReversionState,
    /// The window's bytes stay reserved in the memory budget while the stream lives.
    _window: rustcore::limits::Reservation,
}

#[pymethods]
impl MeanReversionStream {
    #[new]
    #[pyo3(signature = (lookback, threshold, exit_threshold=0.0, stop_threshold=None))]
    fn new(
        lookback: usize,
        threshold: f64,
        exit_threshold: f64,
        stop_threshold: Option<f64>,
    ) -> PyResult<Self> {
        let state = MeanReversionState::new(
            lookback,
            signal_params(threshold, exit_threshold, stop_threshold),
        )
        .map_err(to_py_err)?;
        let window =
            rustcore::limits::reserve(&rustcore::limits::stream(lookback)).map_err(to_py_err)?;
        Ok(MeanReversionStream {
            state,
            _window: window,
        })
    }

    /// One tick: returns (mean, std, zscore, signal, position).
    fn push(&mut self, price: f64) -> PyResult<(f64, f64, f64, i8, i8)> {
        let t = self.state.push(price).map_err(to_py_err)?;
        Ok((t.mean, t.std, t.zscore, t.signal, t.position))
    }

    /// A batch of ticks: returns a dict of arrays, one entry per tick.
    fn push_many<'py>(
        &mut self,
        py: Python<'py>,
        prices: PyReadonlyArray1<'py, f64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let x = slice("prices", &prices)?;
        let state = &mut self.state;
        let b = detach(py, || {
            let _budget = rustcore::limits::reserve(&rustcore::limits::stream_batch(x.len()))?;
            state.push_many(x)
        })?;
        Ok(to_dict!(py, b; values: [];
            arrays: [rolling_mean, rolling_std, zscore, signals, positions]))
    }

    #[getter]
    fn ticks(&self) -> u64 {
        self.state.ticks()
    }
}

/// Ornstein-Uhlenbeck fit by AR(1) OLS, with standard errors and the R/S Hurst exponent.
#[pyfunction]
#[pyo3(signature = (series, dt=1.0, bars_per_day=1.0, cancel=None))]
fn fit_ou<'py>(
    py: Python<'py>,
    series: PyReadonlyArray1<'py, f64>,
    dt: f64,
    bars_per_day: f64,
    cancel: Option<PyRef<'py, CancelToken>>,
) -> PyResult<Bound<'py, PyDict>> {
    let x = slice("series", &series)?;
    let flag = cancel.map(|c| c.flag.clone());
    let f = detach_cancel(py, flag, || {
        ou::fit_ou(x, &ou::OuConfig { dt, bars_per_day })
    })?;
    Ok(to_dict!(py, f;
        values: [a, b, kappa, theta, sigma, half_life_bars, half_life_days, se_a, se_b, se_kappa,
            se_half_life, r_squared, r_squared_delta, residual_std, mean_reverting, hurst, n];
        arrays: []))
}

/// Backtest of a positions series (held from close t-1 to close t) with costs in bps of turnover.
#[pyfunction]
#[pyo3(signature = (prices, positions, cost_bps=0.0, periods_per_year=252.0, units="returns", notional=None, cancel=None))]
#[allow(clippy::too_many_arguments)]
fn backtest<'py>(
    py: Python<'py>,
    prices: PyReadonlyArray1<'py, f64>,
    positions: PyReadonlyArray1<'py, f64>,
    cost_bps: f64,
    periods_per_year: f64,
    units: &str,
    notional: Option<PyReadonlyArray1<'py, f64>>,
    cancel: Option<PyRef<'py, CancelToken>>,
) -> PyResult<Bound<'py, PyDict>> {
    let p = slice("prices", &prices)?;
    let q = slice("positions", &positions)?;
    let n = match &notional {
        Some(a) => Some(slice("notional", a)?),
        None => None,
    };
    let units = units.to_string();
    let flag = cancel.map(|c| c.flag.clone());
    let r = detach_cancel(py, flag, || {
        bt::backtest_units(
            p,
            q,
            &units,
            n,
            &bt::BacktestConfig {
                cost_bps,
                periods_per_year,
            },
        )
    })?;
    let i64s = |v: Vec<usize>| v.into_iter().map(|i| i as i64).collect::<Vec<i64>>();
    let (entries, exits) = (i64s(r.trade_entries), i64s(r.trade_exits));
    let directions: Vec<i64> = r.trade_directions.into_iter().map(i64::from).collect();
    let d = to_dict!(py, r;
        values: [total_return, annual_return, annual_volatility, sharpe, sortino, max_drawdown,
            n_trades, win_rate, avg_holding_bars];
        arrays: [equity, returns, drawdown, trade_pnls]);
    d.set_item("units", if units == "pnl" { "pnl" } else { "returns" })?;
    d.set_item("trade_entries", entries.into_pyarray(py))?;
    d.set_item("trade_exits", exits.into_pyarray(py))?;
    d.set_item("trade_directions", directions.into_pyarray(py))?;
    Ok(d)
}

/// `init` of `run_hmm`: (start_prob, transmat flattened row-major, means, variances).
type HmmInitTuple = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);

/// Gaussian HMM by Baum-Welch (scaled forward-backward), posteriors and Viterbi, states sorted by mean.
/// `init` = (start_prob, transmat flattened row-major, means, variances) or None.
/// `progress(iteration, log_likelihood)` is called once per EM iteration (False cancels).
#[pyfunction]
#[pyo3(signature = (observations, n_states=3, max_iterations=100, tolerance=1e-6, n_restarts=None, seed=0, init=None, cancel=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn run_hmm<'py>(
    py: Python<'py>,
    observations: PyReadonlyArray1<'py, f64>,
    n_states: usize,
    max_iterations: usize,
    tolerance: f64,
    n_restarts: Option<usize>,
    seed: u64,
    init: Option<HmmInitTuple>,
    cancel: Option<PyRef<'py, CancelToken>>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let x = slice("observations", &observations)?;
    let config = hmm::HmmConfig {
        n_states,
        max_iterations,
        tolerance,
        n_restarts,
        seed,
        init: init.map(|(start_prob, transmat, means, variances)| hmm::HmmInit {
            start_prob,
            transmat,
            means,
            variances,
        }),
    };
    let r = detach_progress(py, cancel.map(|c| c.flag.clone()), progress, |hook| {
        hmm::run_hmm(x, &config, hook)
    })?;
    let (k, t) = (r.n_states, r.viterbi_path.len());
    Ok(to_dict!(py, r;
        values: [n_states, log_likelihood, iterations, converged, aic, bic];
        arrays: [means, variances, stds, start_probabilities, log_likelihood_history];
        shaped: [transition_matrix => [k, k], posteriors => [t, k], filtered => [t, k]];
        indices: [viterbi_path]))
}

// ---------------------------------------------------------------- multivariate HMM, filter,
// walk-forward, online filter (the `hmm` helper's block)

/// A model as flat vectors: (n_states, n_features, covariance_type, start_prob, transmat
/// K*K, means K*D, covars K*D*D).
type MvModelTuple = (usize, usize, String, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);

fn mv_model(m: MvModelTuple) -> Result<hmm_mv::Model, CoreError> {
    let (k, d, ct, start, trans, means, covars) = m;
    hmm_mv::Model::new(
        k,
        d,
        hmm_mv::CovarianceType::parse(&ct)?,
        &start,
        &trans,
        &means,
        &covars,
    )
}

/// A model's items (the keys differ from `Model`'s field names where they follow hmmlearn's).
fn model_dict(py: Python<'_>, m: hmm_mv::Model) -> PyResult<Bound<'_, PyDict>> {
    let (k, f) = (m.n_states, m.n_features);
    let (ct, start, trans) = (m.covariance_type.name(), m.start_prob, m.transmat);
    let d = to_dict!(py, m; values: [n_states, n_features]; arrays: [];
        shaped: [means => [k, f], covars => [k, f, f]]);
    d.set_item("covariance_type", ct)?;
    d.set_item("start_probabilities", start.into_pyarray(py))?;
    d.set_item("transition_matrix", trans.into_pyarray(py).reshape([k, k])?)?;
    Ok(d)
}

/// Multivariate Gaussian HMM (T x D observations, covariance_type "diag" | "full").
/// `init` = (start_prob, transmat K*K, means K*D, covars K*D*D) or None.
#[pyfunction]
#[pyo3(signature = (observations, n_states=3, covariance_type="full", max_iterations=100, tolerance=1e-6, n_restarts=None, seed=0, init=None, cancel=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn run_hmm_mv<'py>(
    py: Python<'py>,
    observations: PyReadonlyArray2<'py, f64>,
    n_states: usize,
    covariance_type: &str,
    max_iterations: usize,
    tolerance: f64,
    n_restarts: Option<usize>,
    seed: u64,
    init: Option<HmmInitTuple>,
    cancel: Option<PyRef<'py, CancelToken>>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let (x, n, dim) = slice2("observations", &observations)?;
    let mut config = hmm_mv::MvConfig::from_options(
        n_states,
        covariance_type,
        max_iterations,
        tolerance,
        n_restarts,
        seed,
    )
    .map_err(to_py_err)?;
    config.init = init.map(|(start_prob, transmat, means, covars)| hmm_mv::MvInit {
        start_prob,
        transmat,
        means,
        covars,
    });
    let r = detach_progress(py, cancel.map(|c| c.flag.clone()), progress, |hook| {
        hmm_mv::run_hmm_mv(x, n, dim, &config, hook)
    })?;
    let k = r.model.n_states;
    let d = model_dict(py, r.model)?;
    let fit = to_dict!(py, r;
        values: [log_likelihood, iterations, converged, n_parameters, aic, bic];
        arrays: [log_likelihood_history];
        shaped: [posteriors => [n, k], filtered => [n, k]];
        indices: [viterbi_path]);
    d.update(fit.as_mapping())?;
    Ok(d)
}

/// Forward filter with fixed parameters: (filtered T x K, log_likelihood).
#[pyfunction]
#[pyo3(signature = (model, observations, cancel=None))]
fn hmm_filter<'py>(
    py: Python<'py>,
    model: MvModelTuple,
    observations: PyReadonlyArray2<'py, f64>,
    cancel: Option<PyRef<'py, CancelToken>>,
) -> PyResult<(Bound<'py, PyAny>, f64)> {
    let (x, n, dim) = slice2("observations", &observations)?;
    let flag = cancel.map(|c| c.flag.clone());
    let (f, ll, k) = detach_cancel(py, flag, || {
        let m = mv_model(model)?;
        if m.n_features != dim {
            return Err(CoreError::invalid(format!(
                "observations have {dim} features but the model has {}",
                m.n_features
            )));
        }
        let (f, ll) = hmm_mv::filter(&m, x, n)?;
        Ok((f, ll, m.n_states))
    })?;
    Ok((f.into_pyarray(py).reshape([n, k])?.into_any(), ll))
}

/// Walk-forward regimes: fit on each formation window, filter the next `step` rows.
#[pyfunction]
#[pyo3(signature = (observations, formation, step, n_states=3, covariance_type="full", max_iterations=100, tolerance=1e-6, n_restarts=None, seed=0, cancel=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn hmm_walk_forward<'py>(
    py: Python<'py>,
    observations: PyReadonlyArray2<'py, f64>,
    formation: usize,
    step: usize,
    n_states: usize,
    covariance_type: &str,
    max_iterations: usize,
    tolerance: f64,
    n_restarts: Option<usize>,
    seed: u64,
    cancel: Option<PyRef<'py, CancelToken>>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let (x, n, dim) = slice2("observations", &observations)?;
    let config = hmm_mv::MvConfig::from_options(
        n_states,
        covariance_type,
        max_iterations,
        tolerance,
        n_restarts,
        seed,
    )
    .map_err(to_py_err)?;
    let r = detach_progress(py, cancel.map(|c| c.flag.clone()), progress, |hook| {
        hmm_mv::walk_forward(x, n, dim, &config, formation, step, &mut |w, total| {
            hook(w, total as f64) // (windows done, number of windows), as over gRPC
        })
    })?;
    let k = n_states;
    let oos = r.regimes.len();
    let w = r.models.len();
    let mut means = Vec::with_capacity(w * k * dim);
    let mut covars = Vec::with_capacity(w * k * dim * dim);
    let mut trans = Vec::with_capacity(w * k * k);
    let mut start = Vec::with_capacity(w * k);
    for m in r.models {
        means.extend(m.means);
        covars.extend(m.covars);
        trans.extend(m.transmat);
        start.extend(m.start_prob);
    }
    // the windows' models stacked along a first axis (one array per parameter)
    let d = to_dict!(py, r; values: [start_index]; arrays: [window_log_likelihoods];
        shaped: [filtered => [oos, k]];
        indices: [regimes, window_starts]);
    d.set_item("window_means", means.into_pyarray(py).reshape([w, k, dim])?)?;
    d.set_item(
        "window_covars",
        covars.into_pyarray(py).reshape([w, k, dim, dim])?,
    )?;
    d.set_item(
        "window_transition_matrices",
        trans.into_pyarray(py).reshape([w, k, k])?,
    )?;
    d.set_item(
        "window_start_probabilities",
        start.into_pyarray(py).reshape([w, k])?,
    )?;
    Ok(d)
}

/// Live regimes: the forward filter one batch of rows at a time, with fixed parameters;
/// bit-identical to `hmm_filter` on the concatenated rows.
#[pyclass(module = "hft_lab._rustcore")]
struct HmmOnlineFilter {
    f: hmm_mv::OnlineFilter,
}

#[pymethods]
impl HmmOnlineFilter {
    #[new]
    fn new(model: MvModelTuple) -> PyResult<Self> {
        let m = mv_model(model).map_err(to_py_err)?;
        Ok(HmmOnlineFilter {
            f: hmm_mv::OnlineFilter::new(m).map_err(to_py_err)?,
        })
    }

    /// Filter `rows` (m x D): returns their filtered probabilities (m x K).
    fn update<'py>(
        &mut self,
        py: Python<'py>,
        rows: PyReadonlyArray2<'py, f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (x, m, dim) = slice2("observations", &rows)?;
        let want = self.f.model().n_features;
        if dim != want {
            return Err(PyValueError::new_err(format!(
                "observations have {dim} features but the model has {want}"
            )));
        }
        let k = self.f.model().n_states;
        let f = &mut self.f;
        let out = detach(py, || {
            let _budget = rustcore::limits::reserve(&rustcore::limits::hmm_filter(m, k))?;
            let mut out = Vec::new();
            f.update(x, &mut out)?;
            Ok(out)
        })?;
        Ok(out.into_pyarray(py).reshape([m, k])?.into_any())
    }

    #[getter]
    fn count(&self) -> usize {
        self.f.count()
    }

    #[getter]
    fn log_likelihood(&self) -> f64 {
        self.f.log_likelihood()
    }
}

fn slice2<'a>(name: &str, a: &'a PyReadonlyArray2<'_, f64>) -> PyResult<(&'a [f64], usize, usize)> {
    let shape = a.shape();
    let (rows, cols) = (shape[0], shape[1]);
    let s = a.as_slice().map_err(|_| {
        PyValueError::new_err(format!("{name} must be a C-contiguous 2-D float64 array"))
    })?;
    Ok((s, rows, cols))
}

/// Portfolio optimisation (min_variance, max_sharpe, risk_parity, equal_weight) and the efficient frontier.
/// Every None takes the core's default (`PortfolioConfig::default()`: simple returns, 252 periods,
/// risk-free 0.02, sample covariance, weights in [0, 1], no budgets, no frontier), written once, in
/// rustcore.
#[pyfunction]
#[pyo3(signature = (prices, method, returns=None, annualization=None, risk_free_rate=None, covariance=None, min_weight=None, max_weight=None, risk_budgets=None, frontier_points=None, cancel=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn optimize_portfolio<'py>(
    py: Python<'py>,
    prices: PyReadonlyArray2<'py, f64>,
    method: &str,
    returns: Option<&str>,
    annualization: Option<f64>,
    risk_free_rate: Option<f64>,
    covariance: Option<&str>,
    min_weight: Option<f64>,
    max_weight: Option<f64>,
    risk_budgets: Option<Vec<f64>>,
    frontier_points: Option<usize>,
    cancel: Option<PyRef<'py, CancelToken>>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let (x, rows, cols) = slice2("prices", &prices)?;
    let method = portfolio::PortfolioMethod::parse(method).map_err(to_py_err)?;
    let d = portfolio::PortfolioConfig::default();
    let config = portfolio::PortfolioConfig {
        risk_free_rate: risk_free_rate.unwrap_or(d.risk_free_rate),
        min_weight: min_weight.unwrap_or(d.min_weight),
        max_weight: max_weight.unwrap_or(d.max_weight),
        risk_budgets: risk_budgets.unwrap_or(d.risk_budgets),
        frontier_points: frontier_points.unwrap_or(d.frontier_points),
        ..moments_config(returns, annualization, covariance)?
    };
    let r = detach_progress(py, cancel.map(|c| c.flag.clone()), progress, |hook| {
        portfolio::optimize_portfolio(x, rows, cols, method, &config, hook)
    })?;
    Ok(to_dict!(py, r;
        values: [method, expected_return, volatility, sharpe, status, iterations];
        arrays: [weights, risk_contributions, frontier_returns, frontier_volatilities]))
}

/// Sparse mean-reverting basket: lasso / elastic_net (sklearn's objective), box_tiao, greedy.
/// Every None takes the core's default (`SparseConfig::default()`: lambda 0.1, alpha 0.5,
/// 10 000 sweeps, tolerance 1e-4, ADF lag by AIC), written once, in rustcore.
#[pyfunction]
#[pyo3(signature = (prices, method="lasso", lambda_param=None, alpha=None, target=None, k=None, max_iterations=None, tolerance=None, cancel=None, progress=None, adf_autolag=None))]
#[allow(clippy::too_many_arguments)]
fn sparse_portfolio<'py>(
    py: Python<'py>,
    prices: PyReadonlyArray2<'py, f64>,
    method: &str,
    lambda_param: Option<f64>,
    alpha: Option<f64>,
    target: Option<usize>,
    k: Option<usize>,
    max_iterations: Option<usize>,
    tolerance: Option<f64>,
    cancel: Option<PyRef<'py, CancelToken>>,
    progress: Option<Py<PyAny>>,
    adf_autolag: Option<&str>,
) -> PyResult<Bound<'py, PyDict>> {
    let (x, rows, cols) = slice2("prices", &prices)?;
    let d = sparse::SparseConfig::default();
    let config = sparse::SparseConfig {
        adf_autolag: autolag(adf_autolag)?,
        method: sparse::SparseMethod::from_name(method).map_err(to_py_err)?,
        lambda: lambda_param.unwrap_or(d.lambda),
        alpha: alpha.unwrap_or(d.alpha),
        target,
        k,
        max_iterations: max_iterations.unwrap_or(d.max_iterations),
        tolerance: tolerance.unwrap_or(d.tolerance),
    };
    let r = detach_progress(py, cancel.map(|c| c.flag.clone()), progress, |hook| {
        sparse::sparse_portfolio(x, rows, cols, &config, hook)
    })?;
    let target_index = r.target_index.map(|t| t as i64).unwrap_or(-1);
    let d = to_dict!(py, r;
        values: [method, intercept, nonzero, half_life, adf_statistic, adf_lag, objective, iterations];
        arrays: [weights, spread, adf_critical_values]);
    d.set_item("target_index", target_index)?;
    Ok(d)
}

/// Lasso / elastic-net path over lambdas: sparsity, half-life and ADF statistic per lambda.
/// Every None takes the core's default (`LambdaPathConfig::default()`).
#[pyfunction]
#[pyo3(signature = (prices, target=0, lambdas=None, n_lambdas=None, alpha=None, tolerance=None, max_iterations=None, cancel=None, progress=None, adf_autolag=None))]
#[allow(clippy::too_many_arguments)]
fn sparse_lambda_path<'py>(
    py: Python<'py>,
    prices: PyReadonlyArray2<'py, f64>,
    target: usize,
    lambdas: Option<Vec<f64>>,
    n_lambdas: Option<usize>,
    alpha: Option<f64>,
    tolerance: Option<f64>,
    max_iterations: Option<usize>,
    cancel: Option<PyRef<'py, CancelToken>>,
    progress: Option<Py<PyAny>>,
    adf_autolag: Option<&str>,
) -> PyResult<Bound<'py, PyDict>> {
    let (x, rows, cols) = slice2("prices", &prices)?;
    let d = sparse::LambdaPathConfig::default();
    let config = sparse::LambdaPathConfig {
        adf_autolag: autolag(adf_autolag)?,
        target,
        lambdas,
        n_lambdas: n_lambdas.unwrap_or(d.n_lambdas),
        alpha: alpha.unwrap_or(d.alpha),
        tolerance: tolerance.unwrap_or(d.tolerance),
        max_iterations: max_iterations.unwrap_or(d.max_iterations),
        ..d
    };
    let r = detach_progress(py, cancel.map(|c| c.flag.clone()), progress, |hook| {
        sparse::sparse_lambda_path(x, rows, cols, &config, hook)
    })?;
    let l = r.lambdas.len();
    let i64s = |v: &[usize]| v.iter().map(|&v| v as i64).collect::<Vec<i64>>();
    let (nonzero, iterations, adf_lag) = (i64s(&r.nonzero), i64s(&r.iterations), i64s(&r.adf_lag));
    let weights = r.weights.into_pyarray(py).reshape([l, cols])?;
    let d = to_dict!(py, r; values: []; arrays: [lambdas, half_life, adf_statistic, intercepts]);
    d.set_item("weights", weights)?;
    d.set_item("nonzero", nonzero.into_pyarray(py))?;
    d.set_item("iterations", iterations.into_pyarray(py))?;
    d.set_item("adf_lag", adf_lag.into_pyarray(py))?;
    Ok(d)
}

/// The spread ADF's lag selection: None is the core's default (AIC, as statsmodels' adfuller).
fn autolag(name: Option<&str>) -> PyResult<rustcore::adf::Autolag> {
    name.map_or(Ok(rustcore::adf::Autolag::default()), |s| {
        rustcore::adf::Autolag::parse(s).map_err(to_py_err)
    })
}

// ---- asset moments and Ledoit-Wolf covariance (issue 15) ----

/// Annualised mean returns and covariance of `prices` (time x assets), as the portfolio
/// optimiser estimates them. None: the core's default (returns "simple", annualization 252,
/// covariance "sample").
#[pyfunction]
#[pyo3(signature = (prices, returns=None, annualization=None, covariance=None, cancel=None))]
fn estimate_moments<'py>(
    py: Python<'py>,
    prices: PyReadonlyArray2<'py, f64>,
    returns: Option<&str>,
    annualization: Option<f64>,
    covariance: Option<&str>,
    cancel: Option<PyRef<'py, CancelToken>>,
) -> PyResult<Bound<'py, PyDict>> {
    let (x, rows, cols) = slice2("prices", &prices)?;
    let config = moments_config(returns, annualization, covariance)?;
    let r = detach_cancel(py, cancel.map(|c| c.flag.clone()), || {
        portfolio::estimate_moments(x, rows, cols, &config)
    })?;
    let covariance = r.covariance.into_pyarray(py).reshape([cols, cols])?;
    let d = to_dict!(py, r; values: [observations, shrinkage]; arrays: [mean]);
    d.set_item("covariance", covariance)?;
    Ok(d)
}

/// The estimation options shared by `optimize_portfolio` and `estimate_moments`: None takes
/// `PortfolioConfig::default()`; returns / covariance are parsed once, here, into the core's enums
/// (the same error text as grpcd's `portfolio_config`).
fn moments_config(
    returns: Option<&str>,
    annualization: Option<f64>,
    covariance: Option<&str>,
) -> PyResult<portfolio::PortfolioConfig> {
    let d = portfolio::PortfolioConfig::default();
    Ok(portfolio::PortfolioConfig {
        returns: returns
            .map_or(Ok(d.returns), portfolio::ReturnsKind::parse)
            .map_err(to_py_err)?,
        annualization: annualization.unwrap_or(d.annualization),
        covariance: covariance
            .map_or(Ok(d.covariance), portfolio::CovarianceEstimator::parse)
            .map_err(to_py_err)?,
        ..d
    })
}

/// sklearn.covariance.LedoitWolf().fit(data): location, shrunk covariance, shrinkage.
#[pyfunction]
#[pyo3(signature = (data, cancel=None))]
fn ledoit_wolf<'py>(
    py: Python<'py>,
    data: PyReadonlyArray2<'py, f64>,
    cancel: Option<PyRef<'py, CancelToken>>,
) -> PyResult<Bound<'py, PyDict>> {
    let (x, rows, cols) = slice2("data", &data)?;
    let r = detach_cancel(py, cancel.map(|c| c.flag.clone()), || {
        portfolio::ledoit_wolf(x, rows, cols)
    })?;
    let covariance = r.covariance.into_pyarray(py).reshape([cols, cols])?;
    let d = to_dict!(py, r; values: [shrinkage]; arrays: [location]);
    d.set_item("covariance", covariance)?;
    Ok(d)
}

/// Round-trip a float64 array (transport cost baseline for the benchmark).
#[pyfunction]
fn echo<'py>(
    py: Python<'py>,
    values: PyReadonlyArray1<'py, f64>,
) -> PyResult<Bound<'py, numpy::PyArray1<f64>>> {
    let _budget =
        rustcore::limits::reserve(&rustcore::limits::echo(values.len() * 8)).map_err(to_py_err)?;
    Ok(values.as_array().to_owned().into_pyarray(py))
}

fn total_ram() -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| rustcore::limits::parse_meminfo(&t))
}

/// The memory budget in bytes (HFT_LAB_MEMORY_LIMIT at import, default half the RAM).
#[pyfunction]
fn memory_limit() -> u64 {
    rustcore::limits::memory_limit()
}

/// Bytes reserved by the calls running now.
#[pyfunction]
fn memory_in_use() -> u64 {
    rustcore::limits::in_use()
}

/// Sets the memory budget: a size string ("8G", "512M", "50%") or a number of bytes; None
/// re-reads HFT_LAB_MEMORY_LIMIT (default: half the RAM). Returns the budget in bytes.
#[pyfunction]
#[pyo3(signature = (limit=None))]
fn set_memory_limit(limit: Option<&Bound<'_, PyAny>>) -> PyResult<u64> {
    let bytes = match limit {
        None => limit_from_env()?,
        Some(v) => {
            let text: String = match v.extract::<u64>() {
                Ok(b) => b.to_string(),
                Err(_) => v.extract::<String>().map_err(|_| {
                    PyValueError::new_err(format!(
                        "memory limit must be a size string or a number of bytes, got {v}"
                    ))
                })?,
            };
            rustcore::limits::parse_size(&text, total_ram()).map_err(PyValueError::new_err)?
        }
    };
    rustcore::limits::set_memory_limit(bytes);
    Ok(rustcore::limits::memory_limit())
}

fn limit_from_env() -> PyResult<u64> {
    match std::env::var(rustcore::limits::ENV_VAR) {
        Ok(v) if !v.trim().is_empty() => rustcore::limits::parse_size(&v, total_ram())
            .map_err(|e| PyValueError::new_err(format!("{}: {e}", rustcore::limits::ENV_VAR))),
        _ => Ok(rustcore::limits::default_limit(total_ram())),
    }
}

#[pymodule]
fn _rustcore(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", rustcore::VERSION)?;
    m.add("Cancelled", m.py().get_type::<Cancelled>())?;
    m.add("NumericalError", m.py().get_type::<NumericalError>())?;
    m.add(
        "ResourceLimitExceeded",
        m.py().get_type::<ResourceLimitExceeded>(),
    )?;
    // The memory budget, from HFT_LAB_MEMORY_LIMIT (default half the RAM). An invalid value
    // fails the import with a message naming the variable (a silent default would hide it).
    rustcore::limits::set_memory_limit(limit_from_env()?);
    m.add_function(wrap_pyfunction!(memory_limit, m)?)?;
    m.add_function(wrap_pyfunction!(memory_in_use, m)?)?;
    m.add_function(wrap_pyfunction!(set_memory_limit, m)?)?;
    grpc_client::register(m)?;
    m.add_class::<CancelToken>()?;
    m.add_class::<MeanReversionStream>()?;
    m.add_function(wrap_pyfunction!(mean_reversion, m)?)?;
    m.add_function(wrap_pyfunction!(echo, m)?)?;
    m.add_function(wrap_pyfunction!(fit_ou, m)?)?;
    m.add_function(wrap_pyfunction!(backtest, m)?)?;
    m.add_function(wrap_pyfunction!(run_hmm, m)?)?;
    m.add_function(wrap_pyfunction!(run_hmm_mv, m)?)?;
    m.add_function(wrap_pyfunction!(hmm_filter, m)?)?;
    m.add_function(wrap_pyfunction!(hmm_walk_forward, m)?)?;
    m.add_class::<HmmOnlineFilter>()?;
    m.add_function(wrap_pyfunction!(optimize_portfolio, m)?)?;
    m.add_function(wrap_pyfunction!(sparse_portfolio, m)?)?;
    m.add_function(wrap_pyfunction!(sparse_lambda_path, m)?)?;
    pairs::register(m)?; // issue 17

    m.add_function(wrap_pyfunction!(estimate_moments, m)?)?;
    m.add_function(wrap_pyfunction!(ledoit_wolf, m)?)?;
    Ok(())
}
