//! Staying awake between calls (issue 16, small calls).
//!
//! This VM's idle CPUs halt (no guest halt-polling): a runtime thread asleep in epoll_wait is
//! woken by an inter-processor interrupt, which costs the sender CPU time and the call
//! latency. A client that calls in a loop (a backtest sweep, the benchmark, a script) sends its
//! next request a few tens of microseconds after our answer, so after a small `hftlab.v1.HftLab`
//! call (one computed inline, `service::compute`) ends and none is left in progress, one runtime
//! task keeps the I/O driver polling (each
//! `yield_now` makes the worker look at the sockets without waiting) for `--spin-us`
//! microseconds. A request arriving meanwhile is read at once; when the window passes, the
//! worker sleeps as before. While any call is in progress the task does not run, so it never
//! competes with a computation. Measured on this VM: a 50-asset max Sharpe call 350 → 180 µs,
//! an echo of 16 values 130 → 36 µs (with the client's own polling, grpc_client.rs).
//!
//! Only with one I/O thread (the default): with several, the worker that sleeps in epoll_wait
//! holds the I/O driver and the polling task could not look at the sockets.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static ACTIVE: AtomicUsize = AtomicUsize::new(0);
/// A small call ran since the last polling window (see `small_call`).
static SMALL: AtomicBool = AtomicBool::new(false);
/// Polls made (for the tests).
static POLLS: AtomicUsize = AtomicUsize::new(0);
static ENDED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// An `hftlab.v1.HftLab` call in progress, live streams excepted (held by its log record until
/// the response ends).
pub struct Call(());

impl Call {
    pub fn begin() -> Call {
        ACTIVE.fetch_add(1, Ordering::SeqCst);
        Call(())
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if ACTIVE.fetch_sub(1, Ordering::SeqCst) == 1 && SMALL.swap(false, Ordering::SeqCst) {
            ENDED.notify_one();
        }
    }
}

/// The call in progress is small (computed inline in well under a millisecond): when it ends,
/// the sockets are polled for the next one. After a large call they are not: its time dwarfs a
/// wake-up, and the polling would take a CPU from the client while it writes its next large
/// request (measured: +0.2–0.5 ms on a 1M-price mean reversion).
pub fn small_call() {
    SMALL.store(true, Ordering::SeqCst);
}

/// HftLab calls in progress, live streams excepted (service::compute runs a small one inline
/// only when it is alone).
pub fn in_progress() -> usize {
    ACTIVE.load(Ordering::SeqCst)
}

/// The polling task: after the last call in progress ends, polls for `window` unless a call
/// starts meanwhile.
/// Polling happens only while a CPU is spare (spare_cpu.rs): with every CPU busy, a polling
/// thread would wait for another process's time slice before it saw the request.
pub async fn run(window: Duration) {
    run_with(window, crate::spare_cpu::spare_cpu).await
}

async fn run_with(window: Duration, spare_cpu: fn() -> bool) {
    loop {
        ENDED.notified().await;
        if !spare_cpu() {
            continue;
        }
        let mut last = Instant::now();
        let until = last + window;
        while ACTIVE.load(Ordering::Relaxed) == 0 && last < until {
            POLLS.fetch_add(1, Ordering::Relaxed);
            std::thread::yield_now(); // a runnable thread on this CPU goes first
            tokio::task::yield_now().await;
            let now = Instant::now();
            if now - last > crate::spare_cpu::PREEMPTED {
                break; // this thread was preempted: the CPUs are busy, sleep
            }
            last = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn polls_during(d: Duration) -> usize {
        let before = POLLS.load(Ordering::SeqCst);
        let t0 = Instant::now();
        while t0.elapsed() < d {
            tokio::task::yield_now().await;
        }
        POLLS.load(Ordering::SeqCst) - before
    }

    #[tokio::test(flavor = "current_thread")]
    async fn polls_only_between_calls_and_only_for_the_window() {
        let task = tokio::spawn(run_with(Duration::from_millis(30), || true));
        tokio::task::yield_now().await;
        assert_eq!(
            polls_during(Duration::from_millis(5)).await,
            0,
            "idle before any call"
        );
        drop(Call::begin()); // a large call ended: no polling
        assert_eq!(
            polls_during(Duration::from_millis(5)).await,
            0,
            "polled after a large call"
        );
        let call = Call::begin();
        small_call();
        drop(call); // a small call ended: the task polls
        assert!(polls_during(Duration::from_millis(5)).await > 0);
        let call = Call::begin(); // a call in progress: it stops
        tokio::task::yield_now().await;
        assert_eq!(
            polls_during(Duration::from_millis(5)).await,
            0,
            "polled during a call"
        );
        small_call();
        drop(call);
        assert!(polls_during(Duration::from_millis(5)).await > 0);
        tokio::time::sleep(Duration::from_millis(40)).await; // the window passes
        assert_eq!(
            polls_during(Duration::from_millis(5)).await,
            0,
            "polled after the window"
        );
        task.abort();
        // with no spare CPU (every CPU busy), a small call's end starts no polling
        let task = tokio::spawn(run_with(Duration::from_millis(30), || false));
        tokio::task::yield_now().await;
        let call = Call::begin();
        small_call();
        drop(call);
        assert_eq!(
            polls_during(Duration::from_millis(5)).await,
            0,
            "polled with no spare CPU"
        );
        task.abort();
    }
}
