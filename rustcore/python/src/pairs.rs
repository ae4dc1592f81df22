//! Bindings of the pairs workflow (issue 17): scan (whole, shard, finalise), Johansen, Kalman
//! hedge, walk-forward. Thin: convert, call the core with the GIL released, convert back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use numpy::{IntoPyArray, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use rustcore::adf::Autolag;
use rustcore::pairs::{self, PairStats, ScanConfig};
use rustcore::CoreError;

use super::{detach, detach_cancel, detach_progress, slice, slice2, CancelToken};
use rustcore::walkforward::{self as wf, Selection};

type ChunkMsg = (usize, usize, Vec<PairStats>);

/// Column arrays (NumPy, no copy) of a slice of row structs into the dict `d`, by field name:
/// `ints` (usize fields, as int64) and `floats` (f64 fields).
macro_rules! columns {
    ($py:expr, $d:expr, $rows:expr; ints: [$($i:ident),* $(,)?]; floats: [$($f:ident),* $(,)?]) => {{
        $( $d.set_item(stringify!($i), $rows.iter().map(|r| r.$i as i64).collect::<Vec<i64>>().into_pyarray($py))?; )*
        $( $d.set_item(stringify!($f), $rows.iter().map(|r| r.$f).collect::<Vec<f64>>().into_pyarray($py))?; )*
    }};
}

/// Rows as a dict of NumPy arrays (i, j, hedge_ratio, intercept, statistic, pvalue, qvalue,
/// half_life, hurst, correlation, used_lag).
fn rows_dict<'py>(py: Python<'py>, rows: &[PairStats]) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    columns!(py, d, rows;
        ints: [i, j, used_lag];
        floats: [hedge_ratio, intercept, statistic, pvalue, qvalue, half_life, hurst, correlation]);
    Ok(d)
}

/// Runs a scan with the GIL released. The core's chunk hook never waits for the GIL: chunks go
/// through a channel to a delivering thread that calls `progress(done, total)` and
/// `partial(rows_dict)` (either returning False cancels). Every chunk is delivered, in order,
/// before this returns.
fn detach_scan<T: Send>(
    py: Python<'_>,
    cancel: Option<Arc<AtomicBool>>,
    progress: Option<Py<PyAny>>,
    partial: Option<Py<PyAny>>,
    f: impl FnOnce(&mut dyn FnMut(usize, usize, &[PairStats]) -> bool) -> Result<T, CoreError> + Send,
) -> PyResult<T> {
    if progress.is_none() && partial.is_none() {
        let c = cancel.clone();
        return detach_cancel(py, cancel, move || {
            f(&mut |_, _, _| !c.as_ref().is_some_and(|c| c.load(Ordering::SeqCst)))
        });
    }
    let want_rows = partial.is_some();
    detach_cancel(py, cancel.clone(), move || {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel::<ChunkMsg>();
        let stop_d = stop.clone();
        let deliverer = std::thread::spawn(move || {
            for (done, total, rows) in rx {
                if stop_d.load(Ordering::SeqCst) {
                    continue;
                }
                let keep = Python::attach(|py| {
                    let is_false =
                        |r: &Py<PyAny>| r.bind(py).is(&*pyo3::types::PyBool::new(py, false));
                    if let Some(cb) = &progress {
                        match cb.call1(py, (done, total)) {
                            Ok(r) if is_false(&r) => return false,
                            Ok(_) => {}
                            Err(e) => {
                                e.print(py);
                                return false;
                            }
                        }
                    }
                    if let Some(cb) = &partial {
                        let d = match rows_dict(py, &rows) {
                            Ok(d) => d,
                            Err(e) => {
                                e.print(py);
                                return false;
                            }
                        };
                        match cb.call1(py, (d,)) {
                            Ok(r) if is_false(&r) => return false,
                            Ok(_) => {}
                            Err(e) => {
                                e.print(py);
                                return false;
                            }
                        }
                    }
                    true
                });
                if !keep {
                    stop_d.store(true, Ordering::SeqCst);
                }
            }
            Python::attach(|_py| {
                drop(progress);
                drop(partial);
            });
        });
        let r = {
            let mut hook = |done: usize, total: usize, rows: &[PairStats]| {
                if stop.load(Ordering::SeqCst)
                    || cancel.as_ref().is_some_and(|c| c.load(Ordering::SeqCst))
                {
                    return false;
                }
                let rows = if want_rows { rows.to_vec() } else { Vec::new() };
                let _ = tx.send((done, total, rows));
                true
            };
            f(&mut hook)
        };
        drop(tx);
        let _ = deliverer.join();
        if stop.load(Ordering::SeqCst) {
            return Err(CoreError::Cancelled);
        }
        r
    })
}

/// The scan's keyword options (issue 15: declared once instead of in every binding's signature).
const SCAN_OPTIONS: [&str; 3] = ["trend", "autolag", "max_lag"];
const FILTER_OPTIONS: [&str; 5] = [
    "max_pvalue",
    "max_qvalue",
    "min_half_life",
    "max_half_life",
    "min_correlation",
];

/// The scan's options for every binding that takes them (scan_pairs, scan_pairs_range,
/// scan_pairs_finalize, walk_forward): `**options` parsed once, here, over `base` (the value of
/// an option not given). A given None is the core's default for trend / autolag and "no filter"
/// for the rest (max_lag None: statsmodels' default lag). `allowed`: the options this binding
/// takes; any other is a TypeError, as for an unknown keyword argument.
fn config(
    func: &str,
    options: Option<&Bound<'_, PyDict>>,
    allowed: &[&[&str]],
    base: ScanConfig,
) -> PyResult<ScanConfig> {
    let Some(o) = options else {
        return Ok(base);
    };
    for key in o.keys() {
        let key: String = key.extract()?;
        if !allowed.iter().any(|set| set.contains(&key.as_str())) {
            return Err(PyTypeError::new_err(format!(
                "{func}() got an unexpected keyword argument '{key}'"
            )));
        }
    }
    // Some(value or None) when given, None when not
    macro_rules! given {
        ($key:ident: $t:ty) => {
            match o.get_item(stringify!($key))? {
                Some(v) => Some(v.extract::<Option<$t>>().map_err(|e| {
                    PyTypeError::new_err(format!("argument '{}': {e}", stringify!($key)))
                })?),
                None => None,
            }
        };
    }
    let d = ScanConfig::default();
    Ok(ScanConfig {
        trend: given!(trend: String).map_or(base.trend, |t| t.unwrap_or(d.trend)),
        autolag: match given!(autolag: String) {
            Some(Some(a)) => Autolag::parse(&a).map_err(super::to_py_err)?,
            Some(None) => d.autolag,
            None => base.autolag,
        },
        max_lag: given!(max_lag: usize).unwrap_or(base.max_lag),
        max_pvalue: given!(max_pvalue: f64).unwrap_or(base.max_pvalue),
        max_qvalue: given!(max_qvalue: f64).unwrap_or(base.max_qvalue),
        min_half_life: given!(min_half_life: f64).unwrap_or(base.min_half_life),
        max_half_life: given!(max_half_life: f64).unwrap_or(base.max_half_life),
        min_correlation: given!(min_correlation: f64).unwrap_or(base.min_correlation),
        top: given!(top: usize).unwrap_or(base.top),
    })
}

fn result_dict<'py>(py: Python<'py>, r: pairs::ScanResult) -> PyResult<Bound<'py, PyDict>> {
    let d = rows_dict(py, &r.rows)?;
    let n = r.n_assets;
    d.set_item(
        "critical_values",
        r.critical_values.to_vec().into_pyarray(py),
    )?;
    d.set_item(
        "pvalue_matrix",
        r.pvalue_matrix.into_pyarray(py).reshape([n, n])?,
    )?;
    let values = to_dict!(py, r; values: [n_assets, n_tested, n_failed, n_passed]; arrays: []);
    d.update(values.as_mapping())?;
    Ok(d)
}

/// Engle-Granger scan of every pair (statsmodels `coint`), q-values, filters, ranking.
/// `progress(done, total)` after each chunk of pairs; `partial(rows)` with each chunk's raw rows
/// (q-values NaN); either returning False cancels.
/// Options (keywords, see `config`): trend, autolag, max_lag (default 0), max_pvalue,
/// max_qvalue, min_half_life, max_half_life, min_correlation, top.
#[pyfunction]
#[pyo3(signature = (prices, cancel=None, progress=None, partial=None, **options))]
fn scan_pairs<'py>(
    py: Python<'py>,
    prices: PyReadonlyArray2<'py, f64>,
    cancel: Option<PyRef<'py, CancelToken>>,
    progress: Option<Py<PyAny>>,
    partial: Option<Py<PyAny>>,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let (x, rows, cols) = slice2("prices", &prices)?;
    let all: &[&[&str]] = &[&SCAN_OPTIONS, &FILTER_OPTIONS, &["top"]];
    let cfg = config("scan_pairs", options, all, ScanConfig::default())?;
    let r = detach_scan(
        py,
        cancel.map(|c| c.flag.clone()),
        progress,
        partial,
        |hook| pairs::scan_pairs(x, rows, cols, &cfg, hook),
    )?;
    result_dict(py, r)
}

/// One shard: the raw rows (q-values NaN) of pairs `start..end` of the canonical order
/// (0,1), (0,2), …, (1,2), … Shards concatenated in any order finalise (scan_pairs_finalize)
/// to exactly the result of scan_pairs.
/// Options: trend, autolag, max_lag (default 0).
#[pyfunction]
#[pyo3(signature = (prices, start, end, cancel=None, progress=None, partial=None, **options))]
#[allow(clippy::too_many_arguments)]
fn scan_pairs_range<'py>(
    py: Python<'py>,
    prices: PyReadonlyArray2<'py, f64>,
    start: usize,
    end: usize,
    cancel: Option<PyRef<'py, CancelToken>>,
    progress: Option<Py<PyAny>>,
    partial: Option<Py<PyAny>>,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let (x, rows, cols) = slice2("prices", &prices)?;
    let cfg = config(
        "scan_pairs_range",
        options,
        &[&SCAN_OPTIONS],
        ScanConfig::default(),
    )?;
    let r = detach_scan(
        py,
        cancel.map(|c| c.flag.clone()),
        progress,
        partial,
        |hook| pairs::scan_range(x, rows, cols, &cfg, start, end, hook),
    )?;
    rows_dict(py, &r)
}

fn col<'a>(d: &'a Bound<'_, PyDict>, name: &str) -> PyResult<Bound<'a, PyAny>> {
    d.get_item(name)?
        .ok_or_else(|| PyValueError::new_err(format!("rows is missing the column '{name}'")))
}

/// The result from the raw rows of every shard (a dict of arrays like scan_pairs_range's,
/// concatenated) and the same prices: q-values over all of them, filters, ranking, top,
/// p-value matrix, Hurst exponents of the rows reported.
/// Options: those of scan_pairs.
#[pyfunction]
#[pyo3(signature = (rows, prices, **options))]
fn scan_pairs_finalize<'py>(
    py: Python<'py>,
    rows: Bound<'py, PyDict>,
    prices: PyReadonlyArray2<'py, f64>,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let all: &[&[&str]] = &[&SCAN_OPTIONS, &FILTER_OPTIONS, &["top"]];
    let cfg = config("scan_pairs_finalize", options, all, ScanConfig::default())?;
    let ints = |name: &str| -> PyResult<Vec<i64>> { col(&rows, name)?.extract() };
    let flts = |name: &str| -> PyResult<Vec<f64>> { col(&rows, name)?.extract() };
    let (i, j, lag) = (ints("i")?, ints("j")?, ints("used_lag")?);
    let f: Vec<Vec<f64>> = [
        "hedge_ratio",
        "intercept",
        "statistic",
        "pvalue",
        "half_life",
        "hurst",
        "correlation",
    ]
    .iter()
    .map(|n| flts(n))
    .collect::<PyResult<_>>()?;
    let n = i.len();
    if j.len() != n || lag.len() != n || f.iter().any(|c| c.len() != n) {
        return Err(PyValueError::new_err(
            "rows: the columns have different lengths",
        ));
    }
    let mut raw = Vec::with_capacity(n);
    for k in 0..n {
        if i[k] < 0 || j[k] < 0 || lag[k] < 0 {
            return Err(PyValueError::new_err("rows: negative pair index or lag"));
        }
        raw.push(PairStats {
            i: i[k] as usize,
            j: j[k] as usize,
            hedge_ratio: f[0][k],
            intercept: f[1][k],
            statistic: f[2][k],
            pvalue: f[3][k],
            qvalue: f64::NAN,
            half_life: f[4][k],
            hurst: f[5][k],
            correlation: f[6][k],
            used_lag: lag[k] as usize,
        });
    }
    let (x, n_obs, n_assets) = slice2("prices", &prices)?;
    let r = detach_cancel(py, None, move || {
        pairs::finalize(raw, x, n_obs, n_assets, &cfg)
    })?;
    result_dict(py, r)
}

/// Johansen cointegration test (statsmodels coint_johansen).
#[pyfunction]
#[pyo3(signature = (prices, det_order=0, k_ar_diff=1))]
fn johansen<'py>(
    py: Python<'py>,
    prices: PyReadonlyArray2<'py, f64>,
    det_order: i32,
    k_ar_diff: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let (x, rows, cols) = slice2("prices", &prices)?;
    let r = detach(py, || {
        rustcore::johansen::johansen(x, rows, cols, det_order, k_ar_diff)
    })?;
    let n = r.n_vars;
    let d = PyDict::new(py);
    d.set_item("nobs", r.nobs)?;
    d.set_item("eigenvalues", r.eigenvalues.into_pyarray(py))?;
    d.set_item(
        "eigenvectors",
        r.eigenvectors.into_pyarray(py).reshape([n, n])?,
    )?;
    d.set_item("trace_stat", r.trace_stat.into_pyarray(py))?;
    d.set_item("trace_crit", r.trace_crit.into_pyarray(py).reshape([n, 3])?)?;
    d.set_item("max_eig_stat", r.max_eig_stat.into_pyarray(py))?;
    d.set_item(
        "max_eig_crit",
        r.max_eig_crit.into_pyarray(py).reshape([n, 3])?,
    )?;
    Ok(d)
}

/// Forward Kalman-filter hedge ratio of y on x.
#[pyfunction]
#[pyo3(signature = (y, x, delta=1e-4, observation_var=1e-3))]
fn kalman_hedge<'py>(
    py: Python<'py>,
    y: PyReadonlyArray1<'py, f64>,
    x: PyReadonlyArray1<'py, f64>,
    delta: f64,
    observation_var: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let (ys, xs) = (slice("y", &y)?, slice("x", &x)?);
    let r = detach(py, || {
        rustcore::kalman::kalman_hedge(ys, xs, delta, observation_var)
    })?;
    Ok(to_dict!(py, r; values: []; arrays: [hedge_ratio, intercept, spread, spread_std]))
}

fn selections_dict<'py>(py: Python<'py>, s: &[Selection]) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    columns!(py, d, s;
        ints: [window, i, j];
        floats: [pvalue, hedge_ratio, intercept, spread_mean, spread_std]);
    Ok(d)
}

/// Walk-forward of a pairs rule (selection on formation windows only); see rustcore::walkforward.
/// Selection options (keywords): those of scan_pairs but top (an option not given: no filter;
/// the Backend's max_pvalue default, 0.05, is applied in Python, in `Backend.walk_forward`).
#[pyfunction]
#[pyo3(signature = (prices, formation, trading, step=None, hedge="ols", delta=1e-4, observation_var=1e-3, entry=2.0, exit=0.0, stop=None, cost_bps=0.0, max_pairs=5, cancel=None, progress=None, **selection))]
#[allow(clippy::too_many_arguments)]
fn walk_forward<'py>(
    py: Python<'py>,
    prices: PyReadonlyArray2<'py, f64>,
    formation: usize,
    trading: usize,
    step: Option<usize>,
    hedge: &str,
    delta: f64,
    observation_var: f64,
    entry: f64,
    exit: f64,
    stop: Option<f64>,
    cost_bps: f64,
    max_pairs: usize,
    cancel: Option<PyRef<'py, CancelToken>>,
    progress: Option<Py<PyAny>>,
    selection: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let (x, rows, cols) = slice2("prices", &prices)?;
    let cfg = wf::WalkForwardConfig {
        formation,
        trading,
        step,
        selection: config(
            "walk_forward",
            selection,
            &[&SCAN_OPTIONS, &FILTER_OPTIONS],
            ScanConfig::default(),
        )?,
        max_pairs,
        hedge: wf::Hedge::parse(hedge, delta, observation_var).map_err(super::to_py_err)?,
        signal: rustcore::rolling::SignalParams { entry, exit, stop },
        cost_bps,
    };
    let r = detach_progress(py, cancel.map(|c| c.flag.clone()), progress, |hook| {
        wf::walk_forward(x, rows, cols, &cfg, hook)
    })?;
    let d = to_dict!(py, r; values: []; arrays: [oos_equity, oos_drawdown, is_equity, is_drawdown]);
    columns!(py, d, r.windows;
        ints: [formation_start, trading_start, trading_end, n_pairs, trades];
        floats: [pnl, turnover, costs]);
    d.set_item("selections", selections_dict(py, &r.selections)?)?;
    d.set_item("is_selections", selections_dict(py, &r.is_selections)?)?;
    Ok(d)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(walk_forward, m)?)?;
    m.add_function(wrap_pyfunction!(johansen, m)?)?;
    m.add_function(wrap_pyfunction!(kalman_hedge, m)?)?;
    m.add_function(wrap_pyfunction!(scan_pairs, m)?)?;
    m.add_function(wrap_pyfunction!(scan_pairs_range, m)?)?;
    m.add_function(wrap_pyfunction!(scan_pairs_finalize, m)?)?;
    Ok(())
}
