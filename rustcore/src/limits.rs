//! Resource limits shared by both transports: a memory budget with a cost model per operation,
//! fallible allocation, and a cancel flag that deep loops poll.
//!
//! * **Cost model.** One function per operation estimates, from the request's sizes only, the
//!   memory the core will allocate (working arrays and results). The core's entry points call
//!   [`reserve`] with that estimate *before* allocating anything large; a request beyond the budget
//!   fails with [`CoreError::ResourceExhausted`] naming the need, e.g. "this lasso needs ~28.8 GB
//!   for a 60000 × 60000 Gram matrix (10 × 60000 prices); the memory limit is 12.0 GB".
//! * **Budget.** Process-wide, shared by the calls running at the same time: a reservation holds
//!   its bytes until it is dropped, so two concurrent calls cannot together exceed the limit. The
//!   core never reads the environment: the adapters pass the limit in with [`set_memory_limit`]
//!   (PyO3: `HFT_LAB_MEMORY_LIMIT`; grpcd: `--memory-limit` or the same variable; default half of
//!   the RAM, see [`default_limit`]).
//! * **Fallible allocation.** [`zeroed`] uses `try_reserve_exact`, so a failed allocation is an
//!   error, never an abort of the process.
//! * **Cancellation.** [`with_cancel`] installs a cancel flag for the current thread; loops that can
//!   run for more than a few milliseconds without reaching a progress hook call [`poll`].

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::{CoreError, CoreResult};

/// The environment variable both adapters read for the memory budget.
pub const ENV_VAR: &str = "HFT_LAB_MEMORY_LIMIT";
/// Default budget as a fraction of the machine's RAM.
pub const DEFAULT_FRACTION: f64 = 0.5;
/// Budget used when no adapter set one (the core's own tests): 4 GiB.
pub const FALLBACK_LIMIT: u64 = 4 << 30;

static LIMIT: AtomicU64 = AtomicU64::new(FALLBACK_LIMIT);
static IN_USE: AtomicU64 = AtomicU64::new(0);

/// Sets the process-wide memory budget in bytes (at least 1 MiB).
pub fn set_memory_limit(bytes: u64) {
    LIMIT.store(bytes.max(1 << 20), Ordering::SeqCst);
}

/// The current memory budget in bytes.
pub fn memory_limit() -> u64 {
    LIMIT.load(Ordering::SeqCst)
}

/// Bytes currently reserved by running calls.
pub fn in_use() -> u64 {
    IN_USE.load(Ordering::SeqCst)
}

/// Default budget for a machine with `total_ram` bytes: [`DEFAULT_FRACTION`] of it.
pub fn default_limit(total_ram: Option<u64>) -> u64 {
    match total_ram {
        Some(t) if t > 0 => (t as f64 * DEFAULT_FRACTION) as u64,
        _ => FALLBACK_LIMIT,
    }
}

/// `MemTotal` of a `/proc/meminfo` text, in bytes (the adapters read the file, the core parses).
pub fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// Parses a budget: a byte count ("1073741824"), a size with a binary unit ("512M", "8G",
/// "8GiB", "1.5T"; K/M/G/T are powers of 1024, an optional trailing "B"/"iB" is accepted), or a
/// percentage of `total_ram` ("50%").
pub fn parse_size(text: &str, total_ram: Option<u64>) -> Result<u64, String> {
    let s = text.trim();
    let bad = || {
        format!(
            "memory limit must be a size like 8G, 512M, 1073741824 or 50% (of the RAM), got '{text}'"
        )
    };
    if s.is_empty() {
        return Err(bad());
    }
    let bytes = if let Some(p) = s.strip_suffix('%') {
        let pct: f64 = p.trim().parse().map_err(|_| bad())?;
        if !(pct > 0.0 && pct <= 100.0) {
            return Err(format!(
                "memory limit percentage must be in (0, 100], got '{text}'"
            ));
        }
        let total = total_ram.ok_or_else(|| {
            format!("memory limit '{text}': the RAM size is unknown, give a size")
        })?;
        total as f64 * pct / 100.0
    } else {
        let upper = s.to_ascii_uppercase();
        let num_end = upper
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == 'E' || c == '+' || c == '-'))
            .unwrap_or(upper.len());
        // "1E9" is a number, but "1EB" would not be: only treat E as part of the number when digits follow
        let (num, unit) = upper.split_at(num_end);
        let value: f64 = num.parse().map_err(|_| bad())?;
        let unit = unit.trim();
        let unit = unit
            .strip_suffix("IB")
            .or_else(|| unit.strip_suffix('B'))
            .unwrap_or(unit);
        let mult: f64 = match unit {
            "" => 1.0,
            "K" => 1024.0,
            "M" => 1024.0 * 1024.0,
            "G" => 1024.0 * 1024.0 * 1024.0,
            "T" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
            _ => return Err(bad()),
        };
        value * mult
    };
    if !(bytes.is_finite() && bytes >= (1u64 << 20) as f64) {
        return Err(format!("memory limit must be at least 1 MiB, got '{text}'"));
    }
    Ok(if bytes >= u64::MAX as f64 {
        u64::MAX
    } else {
        bytes as u64
    })
}

/// Human-readable size in decimal units, as the error messages print it ("28.8 GB").
pub fn fmt_bytes(b: u64) -> String {
    let f = b as f64;
    if f >= 1e12 {
        format!("{:.1} TB", f / 1e12)
    } else if f >= 1e9 {
        format!("{:.1} GB", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.1} MB", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.1} kB", f / 1e3)
    } else {
        format!("{b} B")
    }
}

/// What an operation needs: an estimate in bytes and what dominates it (for the message).
#[derive(Debug, Clone, PartialEq)]
pub struct Need {
    pub op: &'static str,
    pub bytes: u64,
    pub what: String,
}

/// Saturating sum of products, in u128 so client-chosen sizes cannot overflow.
fn bytes(terms: &[(u128, u128)]) -> u64 {
    let mut s: u128 = 0;
    for &(a, b) in terms {
        s = s.saturating_add(a.saturating_mul(b));
    }
    u64::try_from(s).unwrap_or(u64::MAX)
}

const F64: u128 = 8;

/// Batch mean reversion: five result series per price (3 × f64 + 2 × i8), entry/exit indices
/// (at most one per price together), and the rolling window.
pub fn mean_reversion(n: usize, lookback: usize) -> Need {
    mean_reversion_selected(
        n,
        lookback,
        &["mean", "std", "zscore", "signals", "positions"],
    )
}

/// Batch mean reversion returning only the series named in `outputs` (names of
/// `rolling::Outputs`): 8 bytes per price for each of mean/std/zscore, 1 for signals/positions.
pub fn mean_reversion_selected(n: usize, lookback: usize, outputs: &[&str]) -> Need {
    let (n, w) = (n as u128, lookback as u128);
    let per: u128 = outputs
        .iter()
        .map(|o| {
            if matches!(*o, "signals" | "positions") {
                1
            } else {
                F64
            }
        })
        .sum();
    let what = if outputs.len() == 5 {
        format!("{n} prices (z-score, mean, std, signals, positions)")
    } else {
        format!("{n} prices ({})", outputs.join(", "))
    };
    Need {
        op: "mean reversion",
        bytes: bytes(&[(n, per), (n, F64), (w, F64)]),
        what,
    }
}

/// A live stream's state: the rolling window of `lookback` prices.
pub fn stream(lookback: usize) -> Need {
    let w = lookback as u128;
    Need {
        op: "live stream",
        bytes: bytes(&[(w, F64)]),
        what: format!("a {w}-price rolling window"),
    }
}

/// One batch of a live stream: five result series per tick.
pub fn stream_batch(n: usize) -> Need {
    let n = n as u128;
    Need {
        op: "live batch",
        bytes: bytes(&[(n, 3 * F64 + 2)]),
        what: format!("{n} ticks"),
    }
}

/// OU fit: the lagged regression, increments, the Hurst profile and window statistics.
pub fn ou(n: usize) -> Need {
    let n = n as u128;
    Need {
        op: "OU fit",
        bytes: bytes(&[(n, 4 * F64)]),
        what: format!("a {n}-value series"),
    }
}

/// Backtest: equity, returns and drawdown per bar, and at most one trade per bar (4 values).
pub fn backtest(n: usize) -> Need {
    let n = n as u128;
    Need {
        op: "backtest",
        bytes: bytes(&[(n, 3 * F64), (n, 4 * F64)]),
        what: format!("{n} bars"),
    }
}

/// Portfolio optimisation: the returns matrix, ~8 covariance-sized matrices (covariance,
/// shrinkage, the QP's Hessian and factorisations) and the frontier.
pub fn portfolio(rows: usize, cols: usize, frontier_points: usize) -> Need {
    let (t, n, f) = (rows as u128, cols as u128, frontier_points as u128);
    Need {
        op: "portfolio optimisation",
        bytes: bytes(&[
            (t.saturating_mul(n), 2 * F64),
            (n.saturating_mul(n), 8 * F64),
            (f.saturating_add(1).saturating_mul(n), 4 * F64),
        ]),
        what: format!("{n} × {n} covariance matrices ({t} × {n} prices)"),
    }
}

/// Gaussian HMM: per concurrently running EM run (`workers`, see `hmm::workers`) a T × K
/// emission, forward and backward table; the result's posterior and filtered tables, the final E-step's
/// two tables, the T × K Viterbi back-pointers (1 byte), and the standardised series and
/// scaling factors.
pub fn hmm(n: usize, k: usize, workers: usize) -> Need {
    let (t, k, w) = (n as u128, k as u128, workers.max(1) as u128);
    let tables = 3u128.saturating_mul(w).saturating_add(4);
    Need {
        op: "HMM",
        bytes: bytes(&[(t.saturating_mul(k), tables * F64 + 1), (t, 4 * F64)]),
        what: format!("{t} × {k} forward-backward tables ({w} concurrent runs)"),
    }
}

// ---- multivariate HMM, filter, walk-forward (the `hmm` helper's block)

/// Multivariate Gaussian HMM: as [`hmm`] plus the standardised T × D observations (three times:
/// row by row, column by column for the E-step, and the copy kept by the result's filter pass).
pub fn hmm_mv(n: usize, k: usize, d: usize, workers: usize) -> Need {
    let (t, d128) = (n as u128, d as u128);
    let base = hmm(n, k, workers);
    Need {
        op: "HMM",
        bytes: base
            .bytes
            .saturating_add(bytes(&[(t.saturating_mul(d128), 3 * F64), (t, 2 * F64)])),
        what: format!(
            "{t} × {k} forward-backward tables, {t} × {d} observations ({} concurrent runs)",
            workers.max(1)
        ),
    }
}

/// HMM forward filter: the T × K filtered probabilities.
pub fn hmm_filter(n: usize, k: usize) -> Need {
    let (t, k) = (n as u128, k as u128);
    Need {
        op: "HMM filter",
        bytes: bytes(&[(t.saturating_mul(k), F64)]),
        what: format!("{t} × {k} filtered probabilities"),
    }
}

/// Walk-forward regimes: one fit on a formation window at a time, the out-of-sample filtered
/// probabilities and regimes, the filter buffer of one window, and the per-window models.
pub fn hmm_walk_forward(
    n: usize,
    k: usize,
    d: usize,
    formation: usize,
    windows: usize,
    workers: usize,
) -> Need {
    let fit = hmm_mv(formation, k, d, workers);
    let (t, k128, d128, w) = (n as u128, k as u128, d as u128, windows as u128);
    Need {
        op: "HMM walk-forward",
        bytes: fit.bytes.saturating_add(bytes(&[
            (t.saturating_mul(k128), 2 * F64 + 8),
            (
                w.saturating_mul(k128.saturating_mul(k128 + d128 + d128.saturating_mul(d128) + 1)),
                F64,
            ),
        ])),
        what: format!("{n} × {k} filtered probabilities, {windows} fitted windows"),
    }
}

/// Sparse baskets: the centred design (rows × cols), the cols × cols Gram matrix with its
/// "known" flags (lasso / elastic net), plus ~7 cols × cols matrices for box_tiao / greedy
/// (Γ0, Γ1, Cholesky factor, whitened Γ1, its transpose, M, eigenvectors).
pub fn sparse(method: &'static str, rows: usize, cols: usize) -> Need {
    let (t, p) = (rows as u128, cols as u128);
    let pp = p.saturating_mul(p);
    let extra = if method == "lasso" || method == "elastic_net" {
        0
    } else {
        7 * F64
    };
    Need {
        op: method,
        bytes: bytes(&[
            (t.saturating_mul(p), F64),
            (pp, F64 + 1 + extra),
            (t, 2 * F64),
            (p, 6 * F64),
        ]),
        what: format!("a {p} × {p} Gram matrix ({t} × {p} prices)"),
    }
}

/// Lambda path: the lasso's design and Gram matrix plus one row of weights per lambda.
pub fn lambda_path(rows: usize, cols: usize, n_lambdas: usize) -> Need {
    let mut need = sparse("lasso", rows, cols);
    let extra = bytes(&[((n_lambdas as u128).saturating_mul(cols as u128), F64)]);
    need.op = "lambda path";
    need.bytes = need.bytes.saturating_add(extra);
    need
}

/// Echo: one copy of the payload.
pub fn echo(n_bytes: usize) -> Need {
    Need {
        op: "echo",
        bytes: n_bytes as u64,
        what: format!("a {}-byte payload", n_bytes),
    }
}

// ---- pairs (issue 17) ----

/// Pairs scan: a column-major centred copy of the prices and of the returns, one row of
/// statistics per pair of the range, the n × n p-value matrix, and per-worker spread buffers.
pub fn pairs_scan(rows: usize, cols: usize, pairs: usize) -> Need {
    let (t, n, p) = (rows as u128, cols as u128, pairs as u128);
    Need {
        op: "pairs scan",
        bytes: bytes(&[
            (t.saturating_mul(n), 2 * F64),
            (p, 12 * F64),
            (n.saturating_mul(n), F64),
            (t, 64 * F64),
        ]),
        what: format!("{p} pairs of {n} assets × {t} observations"),
    }
}

/// Johansen: the detrended levels, differences and lagged differences, the residual matrices.
pub fn johansen(rows: usize, cols: usize, k_ar_diff: usize) -> Need {
    let (t, n, k) = (rows as u128, cols as u128, k_ar_diff as u128);
    let width = n.saturating_mul(k.saturating_add(4));
    Need {
        op: "Johansen test",
        bytes: bytes(&[(t.saturating_mul(width), 2 * F64)]),
        what: format!("{t} × {width} lagged differences"),
    }
}

/// Kalman hedge: six series of the observations' length.
pub fn kalman(n: usize) -> Need {
    let n = n as u128;
    Need {
        op: "Kalman hedge",
        bytes: bytes(&[(n, 8 * F64)]),
        what: format!("{n} observations"),
    }
}

/// Walk-forward: a scan per formation window (the largest one dominates), the equity curves,
/// and per-window rows.
pub fn walk_forward(rows: usize, cols: usize, formation: usize) -> Need {
    let mut need = pairs_scan(formation, cols, cols * cols.saturating_sub(1) / 2);
    need.op = "walk-forward";
    need.bytes = need.bytes.saturating_add(bytes(&[
        ((rows as u128).saturating_mul(cols as u128), 2 * F64),
        (rows as u128, 8 * F64),
    ]));
    need
}

/// The calling thread's cancel flag (see [`with_cancel`]), to hand to worker threads.
pub fn current_cancel() -> Option<Arc<AtomicBool>> {
    CANCEL.with(|c| c.borrow().clone())
}

/// Bytes held by a running call; released when dropped.
#[derive(Debug)]
#[must_use = "the reservation is released when dropped"]
pub struct Reservation {
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        IN_USE.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

/// Checks `need` against the budget (what is left of it after the calls already running) and
/// holds its bytes until the returned reservation is dropped.
pub fn reserve(need: &Need) -> CoreResult<Reservation> {
    let limit = memory_limit();
    if need.bytes > limit {
        return Err(CoreError::ResourceExhausted(format!(
            "this {} needs ~{} for {}; the memory limit is {} (HFT_LAB_MEMORY_LIMIT or grpcd --memory-limit)",
            need.op,
            fmt_bytes(need.bytes),
            need.what,
            fmt_bytes(limit)
        )));
    }
    let mut cur = IN_USE.load(Ordering::SeqCst);
    loop {
        let total = cur.saturating_add(need.bytes);
        if total > limit {
            return Err(CoreError::ResourceExhausted(format!(
                "this {} needs ~{} for {}; the memory limit is {} and {} is held by other running calls: retry when they finish",
                need.op,
                fmt_bytes(need.bytes),
                need.what,
                fmt_bytes(limit),
                fmt_bytes(cur)
            )));
        }
        match IN_USE.compare_exchange_weak(cur, total, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return Ok(Reservation { bytes: need.bytes }),
            Err(now) => cur = now,
        }
    }
}

/// A vector of `n` copies of `value`, allocated fallibly: an allocation failure is a
/// `ResourceExhausted` error naming `what`, never an abort.
pub fn filled<T: Clone>(n: usize, value: T, what: &str) -> CoreResult<Vec<T>> {
    let mut v: Vec<T> = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        CoreError::ResourceExhausted(format!(
            "out of memory: cannot allocate {} for {what}",
            fmt_bytes((n as u64).saturating_mul(std::mem::size_of::<T>() as u64))
        ))
    })?;
    v.resize(n, value);
    Ok(v)
}

/// Types whose all-zero bit pattern is the value zero / false.
///
/// # Safety
/// Implement only for types for which every zero byte pattern is a valid value.
pub unsafe trait ZeroBits: Copy {}
unsafe impl ZeroBits for f64 {}
unsafe impl ZeroBits for i8 {}
unsafe impl ZeroBits for u8 {}
unsafe impl ZeroBits for bool {}
unsafe impl ZeroBits for usize {}
unsafe impl ZeroBits for u64 {}

/// `n` zeros, allocated fallibly with `alloc_zeroed` (like `vec![0.0; n]`: the kernel's zero pages
/// are only touched when written, so a large, sparsely used table costs only what is used), but
/// a failed allocation is a `ResourceExhausted` error naming `what`, never an abort.
pub fn zeroed_of<T: ZeroBits>(n: usize, what: &str) -> CoreResult<Vec<T>> {
    let fail = || {
        CoreError::ResourceExhausted(format!(
            "out of memory: cannot allocate {} for {what}",
            fmt_bytes((n as u64).saturating_mul(std::mem::size_of::<T>() as u64))
        ))
    };
    if n == 0 || std::mem::size_of::<T>() == 0 {
        return Ok(Vec::new());
    }
    let layout = std::alloc::Layout::array::<T>(n).map_err(|_| fail())?;
    // SAFETY: the layout has a non-zero size; a null pointer is handled; T is valid as all zeros
    // (ZeroBits), so the n elements are initialised; the Vec takes ownership with the same layout
    // (capacity n, the global allocator).
    unsafe {
        let ptr = std::alloc::alloc_zeroed(layout) as *mut T;
        if ptr.is_null() {
            return Err(fail());
        }
        Ok(Vec::from_raw_parts(ptr, n, n))
    }
}

/// `zeroed_of::<f64>`.
pub fn zeroed(n: usize, what: &str) -> CoreResult<Vec<f64>> {
    zeroed_of(n, what)
}

thread_local! {
    static CANCEL: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// Runs `f` with `flag` as this thread's cancel flag (restored afterwards, also on panic).
pub fn with_cancel<T>(flag: Option<Arc<AtomicBool>>, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<Arc<AtomicBool>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            CANCEL.with(|c| *c.borrow_mut() = prev);
        }
    }
    let prev = CANCEL.with(|c| std::mem::replace(&mut *c.borrow_mut(), flag));
    let _restore = Restore(prev);
    f()
}

/// Whether this thread's cancel flag (see [`with_cancel`]) is set.
#[inline]
pub fn cancelled() -> bool {
    CANCEL.with(|c| {
        c.borrow()
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
    })
}

/// `Err(Cancelled)` when this thread's cancel flag (see [`with_cancel`]) is set.
#[inline]
pub fn poll() -> CoreResult<()> {
    CANCEL.with(|c| match &*c.borrow() {
        Some(f) if f.load(Ordering::Relaxed) => Err(CoreError::Cancelled),
        _ => Ok(()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        let ram = Some(16u64 << 30);
        assert_eq!(parse_size("8G", ram).unwrap(), 8 << 30);
        assert_eq!(parse_size("8GiB", ram).unwrap(), 8 << 30);
        assert_eq!(parse_size("512m", ram).unwrap(), 512 << 20);
        assert_eq!(parse_size("1073741824", ram).unwrap(), 1 << 30);
        assert_eq!(parse_size("1e9", ram).unwrap(), 1_000_000_000);
        assert_eq!(parse_size("50%", ram).unwrap(), 8 << 30);
        assert_eq!(parse_size(" 1.5G ", ram).unwrap(), 3 << 29);
        for bad in ["", "x", "8X", "-1G", "0", "150%", "0%", "12", "NaN", "inf"] {
            assert!(parse_size(bad, ram).is_err(), "{bad}");
        }
        assert!(parse_size("50%", None).is_err());
    }

    #[test]
    fn meminfo_parses() {
        let t = "MemTotal:       24522300 kB\nMemFree:        1 kB\n";
        assert_eq!(parse_meminfo(t), Some(24522300 * 1024));
        assert_eq!(parse_meminfo("nothing"), None);
        assert_eq!(default_limit(Some(16 << 30)), 8 << 30);
        assert_eq!(default_limit(None), FALLBACK_LIMIT);
    }

    #[test]
    fn the_issue_example_and_overflow() {
        let n = sparse("lasso", 10, 60000);
        assert!(
            n.bytes > 28_800_000_000 && n.bytes < 33_000_000_000,
            "{}",
            n.bytes
        );
        assert_eq!(fmt_bytes(28_804_800_000), "28.8 GB");
        // client-chosen sizes saturate instead of overflowing
        assert_eq!(sparse("box_tiao", usize::MAX, usize::MAX).bytes, u64::MAX);
        assert_eq!(stream(u32::MAX as usize).bytes, 8 * u32::MAX as u64);
    }

    #[test]
    fn fallible_allocation_is_an_error() {
        let e = zeroed(usize::MAX / 8, "a test").unwrap_err();
        assert!(
            matches!(e, CoreError::ResourceExhausted(ref m) if m.contains("out of memory")),
            "{e:?}"
        );
        assert_eq!(filled(3, 1u8, "x").unwrap(), vec![1, 1, 1]);
        assert!(zeroed_of::<bool>(usize::MAX / 2, "a test").is_err());
        let z = zeroed_of::<i8>(1000, "x").unwrap();
        assert!(z.len() == 1000 && z.iter().all(|&v| v == 0));
        assert!(zeroed(0, "x").unwrap().is_empty());
    }

    #[test]
    fn cancel_flag_is_scoped() {
        let f = Arc::new(AtomicBool::new(true));
        assert!(poll().is_ok());
        assert_eq!(
            with_cancel(Some(f.clone()), poll),
            Err(CoreError::Cancelled)
        );
        assert!(poll().is_ok());
        f.store(false, Ordering::SeqCst);
        assert!(with_cancel(Some(f), poll).is_ok());
    }

    fn noop() -> impl FnMut(usize, f64) -> bool {
        |_, _| true
    }

    /// Prices with `cols` distinct, non-constant, non-duplicated columns.
    fn prices(rows: usize, cols: usize) -> Vec<f64> {
        let mut v = Vec::with_capacity(rows * cols);
        let mut s = 12345u64;
        for _ in 0..rows * cols {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            v.push(100.0 + (s >> 11) as f64 / (1u64 << 53) as f64);
        }
        v
    }

    #[test]
    fn wide_sparse_requests_are_refused_before_allocating() {
        // the issue's case: 10 x 60000 prices would need a 60000 x 60000 Gram matrix (28.8 GB)
        let (rows, cols) = (10, 60000);
        let p = prices(rows, cols);
        let cfg = crate::sparse::SparseConfig {
            target: Some(0),
            ..Default::default()
        };
        let e = crate::sparse::sparse_portfolio(&p, rows, cols, &cfg, &mut noop()).unwrap_err();
        match e {
            CoreError::ResourceExhausted(m) => {
                assert!(m.starts_with("this lasso needs ~3"), "{m}");
                assert!(
                    m.contains(
                        "for a 60000 × 60000 Gram matrix (10 × 60000 prices); the memory limit is"
                    ),
                    "{m}"
                );
            }
            other => panic!("{other:?}"),
        }
        let lp = crate::sparse::LambdaPathConfig::default();
        let e = crate::sparse::sparse_lambda_path(&p, rows, cols, &lp, &mut noop()).unwrap_err();
        assert!(
            matches!(e, CoreError::ResourceExhausted(ref m) if m.starts_with("this lambda path needs")),
            "{e:?}"
        );
    }

    #[test]
    fn huge_lookbacks_are_an_error_not_an_abort() {
        use crate::rolling::{MeanReversionState, SignalParams};
        for lb in [u32::MAX as usize, (1usize << 31) - 1] {
            let e = MeanReversionState::new(lb, SignalParams::default()).unwrap_err();
            assert!(
                matches!(e, CoreError::ResourceExhausted(ref m) if m.contains("rolling window")),
                "{e:?}"
            );
        }
        // bad parameters are reported before anything is allocated
        let bad = SignalParams {
            entry: -1.0,
            ..SignalParams::default()
        };
        assert!(matches!(
            MeanReversionState::new(u32::MAX as usize, bad),
            Err(CoreError::InvalidInput(_))
        ));
    }

    #[test]
    fn deep_loops_poll_the_cancel_flag() {
        let (rows, cols) = (400, 300);
        let p = prices(rows, cols);
        let flag = Arc::new(AtomicBool::new(true));
        for method in [
            crate::sparse::SparseMethod::BoxTiao,
            crate::sparse::SparseMethod::Lasso,
        ] {
            let cfg = crate::sparse::SparseConfig {
                method,
                target: Some(0),
                k: Some(3),
                ..Default::default()
            };
            let r = with_cancel(Some(flag.clone()), || {
                crate::sparse::sparse_portfolio(&p, rows, cols, &cfg, &mut noop())
            });
            assert_eq!(r.unwrap_err(), CoreError::Cancelled, "{method:?}");
        }
    }

    #[test]
    fn portfolio_stages_poll_the_cancel_flag() {
        let (rows, cols) = (300, 200);
        let p: Vec<f64> = prices(rows, cols);
        let flag = Arc::new(AtomicBool::new(true));
        use crate::portfolio::PortfolioMethod::{EqualWeight, MinVariance, RiskParity};
        for method in [MinVariance, RiskParity, EqualWeight] {
            let cfg = crate::portfolio::PortfolioConfig {
                frontier_points: 3,
                ..Default::default()
            };
            let r = with_cancel(Some(flag.clone()), || {
                crate::portfolio::optimize_portfolio(&p, rows, cols, method, &cfg, &mut noop())
            });
            assert_eq!(r.unwrap_err(), CoreError::Cancelled, "{method}");
        }
    }

    #[test]
    fn duplicate_columns_are_found_by_hashing() {
        let (rows, cols) = (30, 2000);
        let mut p = prices(rows, cols);
        for t in 0..rows {
            p[t * cols + 1500] = p[t * cols + 700];
            p[t * cols + 1999] = p[t * cols + 700];
            p[t * cols + 900] = p[t * cols + 1200];
        }
        let cfg = crate::sparse::SparseConfig {
            target: Some(0),
            ..Default::default()
        };
        let e = crate::sparse::sparse_portfolio(&p, rows, cols, &cfg, &mut noop()).unwrap_err();
        assert_eq!(
            e,
            CoreError::invalid("prices are collinear: columns 700 and 1500 are exactly duplicated; remove one of them")
        );
    }
}
