//! Whether a CPU is free for polling a socket instead of sleeping (issue 16, small calls).
//!
//! Polling only pays when nothing else wants the CPU: a polling thread is never woken, so it does
//! not get the scheduler's wake-up preference, and with another busy process on its CPU it waits
//! for that process's time slice (measured: a 50-asset portfolio call 0.3 → 4 ms with two busy
//! processes on this 2-CPU VM). So grpcd (awake.rs) and the desktop app's gRPC client
//! (rustcore/python/src/grpc_client.rs, which includes this file) poll only when the threads
//! runnable right now (the 4th field of /proc/loadavg, "running/total", the caller included)
//! are no more than the CPUs, and stop when a pause between two polls shows they were
//! preempted.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;
use std::time::Duration;

/// A gap this long between two polls means the poller was preempted: it stops.
pub const PREEMPTED: Duration = Duration::from_micros(200);

fn cpus() -> usize {
    static CPUS: OnceLock<usize> = OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The running count of /proc/loadavg's text ("0.52 0.58 0.59 2/380 12345"), if well-formed.
pub fn running(loadavg: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(loadavg).ok()?;
    let field = text.split_ascii_whitespace().nth(3)?;
    field.split_once('/')?.0.parse().ok()
}

/// True when at least two CPUs exist and the runnable threads (the caller included) do not
/// outnumber them. False when /proc/loadavg cannot be read (polling is then never used).
pub fn spare_cpu() -> bool {
    static LOADAVG: OnceLock<Option<File>> = OnceLock::new();
    let cpus = cpus();
    if cpus < 2 {
        return false;
    }
    let Some(f) = LOADAVG.get_or_init(|| File::open("/proc/loadavg").ok()) else {
        return false;
    };
    let mut buf = [0u8; 128];
    match f.read_at(&mut buf, 0) {
        Ok(n) => running(&buf[..n]).is_some_and(|r| r <= cpus),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_running_count() {
        assert_eq!(running(b"0.52 0.58 0.59 2/380 12345\n"), Some(2));
        assert_eq!(running(b"1.00 1.00 1.00 17/1024 1\n"), Some(17));
        assert_eq!(running(b"0.52 0.58 0.59\n"), None);
        assert_eq!(running(b"0.52 0.58 0.59 x/380 1\n"), None);
        assert_eq!(running(b""), None);
        // this machine's file parses (the caller itself is running)
        let text = std::fs::read("/proc/loadavg").unwrap();
        assert!(running(&text).unwrap() >= 1);
    }

    #[test]
    fn a_busy_machine_has_no_spare_cpu() {
        let cpus = cpus();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let burners: Vec<_> = (0..cpus + 1)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        // cpus + 1 spinning threads and this one: more runnable threads than CPUs
        let seen = (0..20).filter(|_| spare_cpu()).count();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for b in burners {
            b.join().unwrap();
        }
        assert_eq!(seen, 0, "a spare CPU was reported while every CPU was busy");
    }
}
