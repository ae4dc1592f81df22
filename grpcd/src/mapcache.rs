//! Mappings of the clients' shared-memory files kept from call to call (issue 16, bulk).
//!
//! Mapping a segment file for every call and unmapping it afterwards cost grpcd more than the
//! copies it saved: for a 1M-price mean reversion (8 MB in, 24 MB out) the page-table work
//! (populating the fresh mapping, tearing it down again) was ~45% of grpcd's time. A client
//! reuses its two files from call to call (shm.py), so their mappings are kept here and the next
//! call on the same file finds its pages already mapped.
//!
//! - An entry is keyed by the file's identity (device, inode) as `fstat` gives it on the
//!   descriptor the call opened after its checks (shm::open), or, for an input found here
//!   without opening it, as `fstatat` gives it on the name after the same checks: a file
//!   replaced under the same name is a different inode and gets a new mapping. A kept mapping
//!   holds a reference to its inode, so the inode (and its number) cannot be recycled while the
//!   entry exists.
//! - An entry is taken out while a call uses it and put back when the call (or the last result
//!   block in it, arena.rs) is done: two calls never share a kept mapping.
//! - A mapping is used only within the file's current size (checked on each call as before); a
//!   kept input mapping longer than a file that has shrunk is fine (the part past the end is
//!   never read), one that is too short is replaced.
//! - Entries whose file is gone from the directory (the client closed its slot or was killed and
//!   shm::sweep removed its files) are unmapped by shm::sweep, which runs after
//!   shared-memory calls (at most every 200 ms) and every 30 s, so their tmpfs pages are freed. At most `MAX` entries are
//!   kept (the least recently used goes first).
//!
//! `put` runs inside the global allocator (an arena's last block freed, arena.rs): it neither
//! allocates nor panics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Two files for each of a few clients' slots (shm.py keeps up to 3 per client).
pub const MAX: usize = 16;

/// One kept mapping: `len` bytes at `base` of the file (`dev`, `ino`), MAP_SHARED, writable or
/// read-only. `ready`: the first `ready` bytes are known to be mapped in (their page-table
/// entries exist), so a call need not populate them again.
#[derive(Clone, Copy, Debug)]
pub struct Kept {
    pub dev: u64,
    pub ino: u64,
    pub writable: bool,
    pub base: usize,
    pub len: usize,
    pub ready: usize,
    stamp: u64,
}

impl Kept {
    pub fn new(dev: u64, ino: u64, writable: bool, base: usize, len: usize, ready: usize) -> Self {
        Kept {
            dev,
            ino,
            writable,
            base,
            len,
            ready,
            stamp: 0,
        }
    }

    fn unmap(&self) {
        // SAFETY: the entry owns its mapping; nobody else refers to it once it is unmapped here
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
    }
}

static KEPT: Mutex<[Option<Kept>; MAX]> = Mutex::new([None; MAX]);
static CLOCK: AtomicU64 = AtomicU64::new(1);

/// The kept mapping of this file, taken out of the cache (None: map it anew). A kept mapping
/// shorter than `min_len` is unmapped and None returned.
pub fn take(dev: u64, ino: u64, writable: bool, min_len: usize) -> Option<Kept> {
    let found = {
        let mut g = KEPT.lock().ok()?;
        let slot = g.iter_mut().find(|e| {
            e.as_ref()
                .is_some_and(|k| k.dev == dev && k.ino == ino && k.writable == writable)
        })?;
        slot.take()?
    };
    if found.len < min_len {
        found.unmap();
        return None;
    }
    Some(found)
}

/// Gives a mapping back to the cache (unmapped at once when the cache is poisoned).
pub fn put(mut k: Kept) {
    k.stamp = CLOCK.fetch_add(1, Ordering::Relaxed);
    let evicted = match KEPT.lock() {
        Ok(mut g) => {
            // the same file kept twice (two calls on it at once): keep one
            if let Some(e) = g.iter_mut().find(|e| {
                e.as_ref()
                    .is_some_and(|o| o.dev == k.dev && o.ino == k.ino && o.writable == k.writable)
            }) {
                e.replace(k)
            } else if let Some(e) = g.iter_mut().find(|e| e.is_none()) {
                *e = Some(k);
                None
            } else {
                let oldest = g
                    .iter_mut()
                    .min_by_key(|e| e.as_ref().map_or(0, |o| o.stamp))
                    .expect("MAX > 0");
                oldest.replace(k)
            }
        }
        Err(_) => Some(k),
    };
    if let Some(old) = evicted {
        old.unmap();
    }
}

/// Unmaps the entries on device `dev` whose inode is not in `present` (their file is gone).
pub fn retain_present(dev: u64, present: &[u64]) -> usize {
    let mut gone: Vec<Kept> = Vec::new();
    if let Ok(mut g) = KEPT.lock() {
        for e in g.iter_mut() {
            if e.is_some_and(|k| k.dev == dev && !present.contains(&k.ino)) {
                gone.extend(e.take());
            }
        }
    }
    for k in &gone {
        k.unmap();
    }
    gone.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(len: usize) -> usize {
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        p as usize
    }

    // one test touches the process-wide cache (tests run in parallel threads): all cases here,
    // on a device number no real file has
    #[test]
    fn entries_are_taken_once_replaced_when_short_and_dropped_when_their_file_is_gone() {
        let dev = u64::MAX - 7;
        let a = Kept::new(dev, 1, false, map(8192), 8192, 8192);
        put(a);
        assert!(take(dev, 1, true, 0).is_none(), "read-only is not writable");
        let got = take(dev, 1, false, 4096).expect("kept");
        assert_eq!((got.base, got.len, got.ready), (a.base, 8192, 8192));
        assert!(take(dev, 1, false, 0).is_none(), "taken out while in use");
        put(got);
        assert!(take(dev, 1, false, 16384).is_none(), "too short: unmapped");
        assert!(take(dev, 1, false, 0).is_none(), "and gone");
        // the same file put twice keeps one entry
        put(Kept::new(dev, 2, true, map(4096), 4096, 0));
        put(Kept::new(dev, 2, true, map(4096), 4096, 0));
        put(Kept::new(dev, 3, true, map(4096), 4096, 0));
        let on_dev = || {
            KEPT.lock()
                .unwrap()
                .iter()
                .flatten()
                .filter(|k| k.dev == dev)
                .count()
        };
        assert_eq!(on_dev(), 2);
        assert_eq!(retain_present(dev, &[3]), 1);
        assert!(take(dev, 2, true, 0).is_none());
        assert!(take(dev, 3, true, 0).is_some_and(|k| {
            k.unmap();
            true
        }));
        assert_eq!(on_dev(), 0);
        // more files than MAX: the oldest go
        for ino in 10..10 + MAX as u64 + 3 {
            put(Kept::new(dev, ino, false, map(4096), 4096, 0));
        }
        assert!(on_dev() <= MAX);
        assert!(take(dev, 10, false, 0).is_none(), "the oldest was evicted");
        let n = on_dev();
        assert_eq!(retain_present(dev, &[]), n);
        assert_eq!(on_dev(), 0);
    }
}
