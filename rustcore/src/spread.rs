//! Keeping a helper thread off its parent's CPU (issue 16, measured on the 2-CPU VM).
//!
//! The rolling z-score splits a long series between the calling thread and one it spawns. On
//! this VM's kernel (which packs lightly loaded threads onto few CPUs) a new thread spawned by a
//! thread that has just woken up — grpcd's worker for every call, a Python caller after any
//! pause — is often queued on its parent's CPU while the other CPU idles, and the two halves
//! run one after the other: a 1M-price call took 5.1 ms after a 2 ms pause against 2.7 ms back
//! to back (median of 60, in-process).
//!
//! So the parent notes its CPU (`current_cpu`), yields once after the spawn (`let_run`) so a
//! child queued behind it gets to run, and the child, if it finds itself on that CPU, moves
//! away (`leave_cpu`: its affinity mask without that CPU, which migrates it at once, then the
//! full mask again). Only scheduling changes, never the arithmetic: the results are the same
//! bits. Elsewhere than Linux these do nothing.

/// The CPU this thread is running on (None if unknown).
pub fn current_cpu() -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sched_getcpu has no preconditions
        let c = unsafe { libc::sched_getcpu() };
        if c >= 0 {
            return Some(c as usize);
        }
    }
    None
}

/// Called by a freshly spawned helper thread: if it runs on `parent`'s CPU, move to another
/// CPU this thread may use. Returns true if it moved.
pub fn leave_cpu(parent: Option<usize>) -> bool {
    #[cfg(target_os = "linux")]
    {
        let Some(cpu) = parent else { return false };
        if current_cpu() != Some(cpu) || cpu >= libc::CPU_SETSIZE as usize {
            return false;
        }
        // SAFETY: cpu_set_t is plain data (all-zero is an empty set); the calls get a valid
        // pointer and its size, for this thread (pid 0)
        unsafe {
            let size = std::mem::size_of::<libc::cpu_set_t>();
            let mut all: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, size, &mut all) != 0 {
                return false;
            }
            let mut others = all;
            libc::CPU_CLR(cpu, &mut others);
            if libc::CPU_COUNT(&others) == 0 {
                return false;
            }
            let moved = libc::sched_setaffinity(0, size, &others) == 0;
            if moved {
                libc::sched_setaffinity(0, size, &all);
            }
            moved
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = parent;
        false
    }
}

/// Called by the parent right after spawning: lets a child queued on this CPU run (and move).
pub fn let_run() {
    std::thread::yield_now();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_on_its_parents_cpu_moves_away() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let Some(cpu) = current_cpu() else { return };
        let child = std::thread::spawn(move || {
            // put the child on the parent's CPU first (pinned, then the full mask again), so
            // leave_cpu has something to do; retried if the balancer moves it in between
            unsafe {
                let size = std::mem::size_of::<libc::cpu_set_t>();
                let mut all: libc::cpu_set_t = std::mem::zeroed();
                assert_eq!(libc::sched_getaffinity(0, size, &mut all), 0);
                let allowed = libc::CPU_COUNT(&all) as usize;
                let mut one: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut one);
                for _ in 0..100 {
                    assert_eq!(libc::sched_setaffinity(0, size, &one), 0);
                    assert_eq!(current_cpu(), Some(cpu));
                    libc::sched_setaffinity(0, size, &all);
                    if current_cpu() == Some(cpu) {
                        return (leave_cpu(Some(cpu)), current_cpu(), allowed);
                    }
                }
                panic!("could not keep the child on CPU {cpu}");
            }
        });
        let (moved, now, allowed) = child.join().unwrap();
        if cpus >= 2 && allowed >= 2 {
            assert!(moved, "the child stayed on its parent's CPU");
            assert_ne!(now, Some(cpu));
        } else {
            assert!(!moved);
        }
        // not on the parent's CPU: nothing to do
        assert!(!leave_cpu(current_cpu().map(|c| c + 1)));
        assert!(!leave_cpu(None));
    }
}
