//! Zero-copy results for shared-memory calls: while the core computes a call that has a result
//! segment (shm.rs), its large allocations (>= `MIN_BYTES`, i.e. the result arrays) are placed in
//! that segment's mapping instead of the heap. `to_vector` then finds the array already inside
//! the segment and sends only its offset: the 24 MB of a 1M-price mean reversion are not copied.
//!
//! - The arena is a bump allocator over a sparse tmpfs file mapped MAP_SHARED (nothing is
//!   committed until written); it is active only on the thread that runs the call's computation
//!   (`enter`), so nothing else ever lands in it. When it is full, allocations go to the heap.
//!   The file is grown to the arena's size at its first use, not before (a call that never uses
//!   it, e.g. a portfolio's, makes no ftruncate calls).
//! - Freed blocks that were not exported as results are given back to tmpfs (hole punch);
//!   exported blocks stay: the client maps them after the response.
//! - The mapping is released when the call's segments are dropped and no block in it is still
//!   alive; if a block outlives the call, the mapping stays until that block is freed. Released
//!   means kept for the next call on the same file (mapcache.rs: its pages stay mapped, so the
//!   next call neither faults them in nor tears the page tables down), or unmapped for an arena
//!   without a file identity.
//!
//! Every other allocation goes straight to the system allocator (one size check and, for large
//! blocks only, a look-up in the few active arenas).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Only blocks at least this large go to the arena (result arrays; not the small stuff).
pub const MIN_BYTES: usize = 1 << 20;
const SLOTS: usize = 64;
const PAGE: usize = 4096;
const MADV_POPULATE_WRITE: libc::c_int = 23;

pub struct Arena {
    base: usize,
    cap: usize,
    fd: i32,
    used: AtomicUsize,
    dirty: usize,
    live: AtomicUsize,
    exported: Mutex<Vec<(usize, usize)>>, // (offset, len) of blocks sent as results
    slot: usize,
    /// (device, inode) of the result file: the mapping is kept for its next call (mapcache.rs)
    file: Option<(u64, u64)>,
    /// the first `ready` bytes of the mapping are mapped in already (kept from a previous call)
    ready: usize,
    /// a hole was punched in this call (those pages are no longer mapped in)
    punched: AtomicBool,
    /// the file's length after the call (close), up to which the pages are mapped in
    closed_len: AtomicUsize,
    /// the result file's length when the call began (`reused`)
    start_len: usize,
    /// the file is extended to `cap` only when the arena is first used (issue 16: most small
    /// calls never use it, and growing the file and trimming it back cost two ftruncate calls):
    /// UNEXTENDED, EXTENDING, EXTENDED or EXTEND_FAILED
    extended: AtomicU8,
}

const UNEXTENDED: u8 = 0;
const EXTENDING: u8 = 1;
const EXTENDED: u8 = 2;
const EXTEND_FAILED: u8 = 3;

// active arenas by slot: base address (0 = free) and end, for dealloc's "is it ours?" test
static BASES: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static ENDS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static ARENAS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS]; // *const Arena

thread_local! {
    static CURRENT: Cell<usize> = const { Cell::new(0) };
}

impl Arena {
    /// Maps `cap` bytes of the result file `fd` as an arena; None if no slot is free or the
    /// mapping fails (the call then simply copies its results). The file is made `cap` long when
    /// the arena is first used (`extend`), not here: until then nothing past its end is touched.
    /// `reused`: bytes at the start of the file that hold a previous call's data (the client
    /// reuses its files); zeroed allocations there are cleared.
    /// `file`: the file's (device, inode): its mapping is taken from, and given back to, the
    /// mappings kept from call to call (mapcache.rs); None: mapped for this arena alone.
    pub fn new(fd: i32, cap: usize, reused: usize, file: Option<(u64, u64)>) -> Option<Box<Arena>> {
        let cap = cap / PAGE * PAGE;
        if cap == 0 {
            return None;
        }
        let kept = file.and_then(|(dev, ino)| crate::mapcache::take(dev, ino, true, cap));
        let (p, ready) = match kept {
            // the kept pages up to the file's length after the previous call are still mapped in
            Some(k) => (k.base as *mut libc::c_void, k.ready.min(reused)),
            None => (
                unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        cap,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_SHARED | libc::MAP_NORESERVE,
                        fd,
                        0,
                    )
                },
                0,
            ),
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        let base = p as usize;
        for slot in 0..SLOTS {
            if ARENAS[slot]
                .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                let a = Box::new(Arena {
                    base,
                    cap,
                    fd,
                    used: AtomicUsize::new(0),
                    dirty: reused,
                    live: AtomicUsize::new(1), // the call's own reference, dropped by close()
                    exported: Mutex::new(Vec::new()),
                    slot,
                    file,
                    ready,
                    punched: AtomicBool::new(false),
                    closed_len: AtomicUsize::new(0),
                    start_len: reused,
                    extended: AtomicU8::new(UNEXTENDED),
                });
                ENDS[slot].store(base + cap, Ordering::SeqCst);
                BASES[slot].store(base, Ordering::SeqCst);
                ARENAS[slot].store(&*a as *const Arena as usize, Ordering::SeqCst);
                return Some(a);
            }
        }
        match file {
            Some((dev, ino)) => {
                crate::mapcache::put(crate::mapcache::Kept::new(dev, ino, true, base, cap, ready))
            }
            None => unsafe {
                libc::munmap(p, cap);
            },
        }
        None
    }

    /// Makes the file `cap` long (once, at the arena's first use; a mapping past the file's end
    /// must not be touched). False if that failed: the arena is then not used (the heap, or the
    /// result in the message). Runs inside the global allocator: no allocation, no panic.
    fn extend(&self) -> bool {
        loop {
            match self.extended.compare_exchange(
                UNEXTENDED,
                EXTENDING,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => {
                    // SAFETY: a plain system call on the call's open result file
                    let ok = unsafe { libc::ftruncate(self.fd, self.cap as libc::off_t) } == 0;
                    let state = if ok { EXTENDED } else { EXTEND_FAILED };
                    self.extended.store(state, Ordering::SeqCst);
                    return ok;
                }
                Err(EXTENDING) => std::hint::spin_loop(), // another thread is extending it
                Err(state) => return state == EXTENDED,
            }
        }
    }

    /// Commits `len` bytes at `p` (inside the mapping) in one call rather than one page fault
    /// per 4 KiB (a tmpfs fault costs ~2 µs here); nothing to do for the part kept mapped in from
    /// a previous call. Harmless if the kernel lacks it (< 5.14): the pages fault in on write.
    pub fn populate(&self, p: *mut u8, len: usize) {
        let start = p as usize;
        if start + len <= self.base + self.ready && !self.punched.load(Ordering::Relaxed) {
            return;
        }
        let page = start / PAGE * PAGE;
        unsafe {
            libc::madvise(
                page as *mut libc::c_void,
                start + len - page,
                MADV_POPULATE_WRITE,
            )
        };
    }

    /// Runs `f` with this arena as the current thread's (large allocations land in it).
    pub fn enter<T>(&self, f: impl FnOnce() -> T) -> T {
        struct Reset(usize);
        impl Drop for Reset {
            fn drop(&mut self) {
                CURRENT.with(|c| c.set(self.0));
            }
        }
        let _reset = Reset(CURRENT.with(|c| c.replace(self as *const Arena as usize)));
        f()
    }

    /// If `bytes` lies inside this arena: its offset in the result file, and it is kept as a
    /// result (not given back when freed).
    pub fn export(&self, bytes: &[u8]) -> Option<u64> {
        let p = bytes.as_ptr() as usize;
        if bytes.is_empty()
            || p < self.base
            || p + bytes.len() > self.base + self.used.load(Ordering::SeqCst)
        {
            return None;
        }
        let off = p - self.base;
        self.exported.lock().ok()?.push((off, bytes.len()));
        Some(off as u64)
    }

    /// Bytes of the result file in use (the client maps up to here).
    pub fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    /// `len` bytes at the end of the used part (not an allocation: for results copied in).
    pub fn take(&self, len: usize) -> Option<(usize, *mut u8)> {
        if !self.extend() {
            return None;
        }
        let mut cur = self.used.load(Ordering::SeqCst);
        loop {
            let start = cur.div_ceil(64) * 64;
            let end = start.checked_add(len).filter(|&e| e <= self.cap)?;
            match self
                .used
                .compare_exchange(cur, end, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => {
                    self.exported.lock().ok()?.push((start, len));
                    return Some((start, (self.base + start) as *mut u8));
                }
                Err(now) => cur = now,
            }
        }
    }

    fn alloc(&self, layout: Layout) -> *mut u8 {
        // page-aligned, whole pages: a freed block's hole punch never touches a neighbour
        let align = layout.align().max(PAGE);
        let size = layout.size().div_ceil(PAGE) * PAGE;
        if !self.extend() {
            return std::ptr::null_mut();
        }
        let mut cur = self.used.load(Ordering::SeqCst);
        loop {
            let start = cur.div_ceil(align) * align;
            let end = match start.checked_add(size) {
                Some(e) if e <= self.cap => e,
                _ => return std::ptr::null_mut(),
            };
            match self
                .used
                .compare_exchange(cur, end, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => {
                    self.live.fetch_add(1, Ordering::SeqCst);
                    let p = (self.base + start) as *mut u8;
                    self.populate(p, size);
                    return p;
                }
                Err(now) => cur = now,
            }
        }
    }

    fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let off = ptr as usize - self.base;
        let size = layout.size().div_ceil(PAGE) * PAGE;
        let kept = self
            .exported
            .lock()
            .map(|e| e.iter().any(|&(o, l)| o < off + size && off < o + l))
            .unwrap_or(true);
        if !kept {
            // give the pages back to tmpfs (the range reads as zeros afterwards)
            self.punched.store(true, Ordering::Relaxed);
            unsafe {
                libc::fallocate(
                    self.fd,
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    off as libc::off_t,
                    size as libc::off_t,
                )
            };
        }
        self.release();
    }

    /// Drops one reference (a block or the call's own); the last one unmaps and frees the arena.
    fn release(&self) {
        if self.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            // SAFETY: no block and no call refers to the arena any more: we are the only user
            unsafe { Self::destroy(self as *const Arena as *mut Arena) };
        }
    }

    unsafe fn destroy(a: *mut Arena) {
        let (base, cap, slot, file) = unsafe { ((*a).base, (*a).cap, (*a).slot, (*a).file) };
        BASES[slot].store(0, Ordering::SeqCst);
        ENDS[slot].store(0, Ordering::SeqCst);
        match file {
            Some((dev, ino)) => {
                // every page up to the file's final length was written in this call or kept
                // mapped from the previous one, unless a hole was punched
                let ready = if unsafe { (*a).punched.load(Ordering::SeqCst) } {
                    0
                } else {
                    unsafe { (*a).closed_len.load(Ordering::SeqCst) }
                };
                crate::mapcache::put(crate::mapcache::Kept::new(dev, ino, true, base, cap, ready));
            }
            None => unsafe {
                libc::munmap(base as *mut libc::c_void, cap);
            },
        }
        drop(unsafe { Box::from_raw(a) });
        ARENAS[slot].store(0, Ordering::SeqCst); // the slot is free again
    }

    /// The call is over: trim the file to what is used; the mapping goes when the last block
    /// in it is freed (at once if none is alive).
    pub fn close(self: Box<Self>) {
        let used = self.used().div_ceil(PAGE).saturating_mul(PAGE);
        // unused and never extended: the file is still as long as it was, which is the length
        // to trim to when that is 0 (nothing used in a fresh file: no system call at all)
        if self.extended.load(Ordering::SeqCst) != UNEXTENDED || self.start_len != used {
            unsafe { libc::ftruncate(self.fd, used as libc::off_t) };
        }
        self.closed_len.store(used, Ordering::SeqCst);
        let a = Box::into_raw(self);
        // SAFETY: `a` is valid until its last reference is released
        unsafe { (*a).release() };
    }
}

/// Runs `f` with no arena on this thread: its large allocations go to the heap (issue 16, bulk:
/// for a handler that places its results in the segment itself with shm::out_buf, so that the
/// core's temporaries are not given tmpfs pages that are punched out again when freed).
pub fn outside<T>(f: impl FnOnce() -> T) -> T {
    struct Reset(usize);
    impl Drop for Reset {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.0));
        }
    }
    let _reset = Reset(CURRENT.with(|c| c.replace(0)));
    f()
}

fn owner(ptr: *mut u8) -> Option<&'static Arena> {
    let p = ptr as usize;
    for i in 0..SLOTS {
        let b = BASES[i].load(Ordering::Acquire);
        if b != 0 && p >= b && p < ENDS[i].load(Ordering::Acquire) {
            let a = ARENAS[i].load(Ordering::Acquire);
            if a > 1 {
                // SAFETY: a registered arena stays allocated (leaked) while its range is registered
                return Some(unsafe { &*(a as *const Arena) });
            }
        }
    }
    None
}

pub struct ArenaAlloc;

unsafe impl GlobalAlloc for ArenaAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= MIN_BYTES {
            let cur = CURRENT.with(|c| c.get());
            if cur != 0 {
                // SAFETY: CURRENT is set only inside Arena::enter, while the arena is alive
                let p = unsafe { &*(cur as *const Arena) }.alloc(layout);
                if !p.is_null() {
                    return p;
                }
            }
        }
        unsafe { System.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= MIN_BYTES {
            let cur = CURRENT.with(|c| c.get());
            if cur != 0 {
                // arena pages are zero unless the client's previous call left data there
                let a = unsafe { &*(cur as *const Arena) };
                let p = a.alloc(layout);
                if !p.is_null() {
                    let start = p as usize - a.base;
                    if start < a.dirty {
                        let n = layout.size().min(a.dirty - start);
                        unsafe { std::ptr::write_bytes(p, 0, n) };
                    }
                    return p;
                }
            }
        }
        unsafe { System.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() >= MIN_BYTES {
            if let Some(a) = owner(ptr) {
                a.dealloc(ptr, layout);
                return;
            }
        }
        unsafe { System.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let from_arena = layout.size() >= MIN_BYTES && owner(ptr).is_some();
        let to_arena = new_size >= MIN_BYTES && CURRENT.with(|c| c.get()) != 0;
        if !from_arena && !to_arena {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: the caller guarantees new_size and the alignment form a valid layout
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let p = unsafe { self.alloc(new_layout) };
        if !p.is_null() {
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, p, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;

    fn temp_file() -> std::fs::File {
        // one name per call: the tests run in parallel threads of one process
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "grpcd-arena-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }

    #[test]
    fn large_allocations_land_in_the_arena_and_survive_as_results() {
        let mut f = temp_file();
        let a = Arena::new(f.as_raw_fd(), 64 << 20, 0, None).expect("arena");
        let inside = |p: *const f64| (p as usize) >= a.base && (p as usize) < a.base + a.cap;
        let small: Vec<f64> = a.enter(|| vec![1.0; 16]); // below MIN_BYTES: the heap
        assert!(!inside(small.as_ptr()));
        let (result, grown) = a.enter(|| {
            let r: Vec<f64> = (0..300_000).map(|i| i as f64 * 0.5).collect();
            let tmp = vec![7.0f64; 200_000]; // a temporary, given back when dropped
            drop(tmp);
            let mut g: Vec<f64> = Vec::with_capacity(140_000);
            for i in 0..300_000 {
                g.push(i as f64); // grows (realloc) inside the arena
            }
            (r, g)
        });
        assert!(inside(result.as_ptr()) && inside(grown.as_ptr()));
        let outside: Vec<f64> = vec![0.0; 300_000]; // not entered: the heap
        assert!(!inside(outside.as_ptr()));
        // SAFETY: viewing f64s as bytes
        let bytes =
            unsafe { std::slice::from_raw_parts(result.as_ptr() as *const u8, result.len() * 8) };
        let off = a.export(bytes).expect("inside") as usize;
        assert!(a.export(&[0u8; 8]).is_none());
        drop(result); // exported: its pages stay
        drop(grown);
        a.close();
        let mut back = Vec::new();
        f.read_to_end(&mut back).unwrap();
        let got: Vec<f64> = back[off..off + 300_000 * 8]
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert!(got.iter().enumerate().all(|(i, &v)| v == i as f64 * 0.5));
        drop(small);
        drop(outside);
    }

    #[test]
    fn outside_sends_large_allocations_to_the_heap_and_restores_the_arena() {
        let f = temp_file();
        let a = Arena::new(f.as_raw_fd(), 16 << 20, 0, None).expect("arena");
        let inside = |p: *const f64| (p as usize) >= a.base && (p as usize) < a.base + a.cap;
        let (heap, again) = a.enter(|| {
            let heap: Vec<f64> = outside(|| vec![1.0; 300_000]);
            (heap, vec![2.0f64; 300_000]) // the arena is current again after `outside`
        });
        assert!(!inside(heap.as_ptr()) && inside(again.as_ptr()));
        assert!(heap.iter().all(|&v| v == 1.0) && again.iter().all(|&v| v == 2.0));
        drop(again);
        drop(heap);
        a.close();
    }
}
