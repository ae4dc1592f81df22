//! Shared-memory arrays for a client on the same host (issue 16): the arrays of a unary call move
//! through two files in a private directory (0700, owned by grpcd's uid, on tmpfs) instead of
//! the HTTP/2 stream; the protobuf messages carry offsets (`ShmRef`). See hftlab.proto.
//!
//! - Offered only when grpcd listens on loopback without TLS (and not `--no-shm`), and accepted
//!   only from a loopback peer on a plain connection (the guard checks it): never for a remote or
//!   TLS connection.
//! - The guard opens the call's files before the handler runs (names checked, O_NOFOLLOW,
//!   regular files of our uid with one link, the input's size as declared and within the message
//!   limit, counted in the request-memory budget); the descriptors are closed when the call ends.
//!   They are opened relative to the directory, opened once at start after its checks. An input
//!   whose mapping is kept from a previous call (below) is not opened at all: the same checks are
//!   made on its name (fstatat, not following a symbolic link) and it must be the very file the
//!   mapping is of (issue 16: opening, checking and closing the files was a 50-asset portfolio's
//!   main file-system cost).
//! - The client owns the files and reuses them from call to call (their tmpfs pages are then
//!   already allocated: a fresh page costs ~2 µs to fault in here); it removes them when it is
//!   done or finds grpcd gone. Files whose pid (in the name) is dead are removed by grpcd after
//!   shared-memory calls (at most every 200 ms), every 30 s and at start, so a kill -9 of the client leaves nothing.
//! - The segments are reached through a task-local (`SEGMENTS`), set by the guard around the
//!   handler (and carried into the blocking pool by service::blocking), so the conversions in
//!   convert.rs read/write them without the handlers knowing.
//! - Bulk calls (issue 16): a handler may read its input in place (`values`, a read-only mapping)
//!   and have the core write its outputs straight into the result segment (`out_buf`): no heap
//!   buffer, no zeroing, no copy on this side (MeanReversion does both).
//! - The mappings of both files are kept from call to call (mapcache.rs), keyed by the file's
//!   identity: the next call on the same files finds their pages mapped in already.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use tonic::Status;

use crate::log;
use crate::pb::ShmRef;

pub const HEADER: &str = "x-hftlab-shm";
/// Result arrays smaller than this stay in the message (a file write costs more than it saves).
pub const MIN_OUT_BYTES: usize = 32 << 10;
const ALIGN: u64 = 64;

static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
/// The private directory, opened once at start (after its checks): the segments are opened
/// relative to it (issue 16: no walk of the whole path, through the /dev/shm mount, per call;
/// and a directory put in its place later is never used).
static DIR_FD: OnceLock<Option<File>> = OnceLock::new();

fn euid() -> u32 {
    static EUID: OnceLock<u32> = OnceLock::new();
    // SAFETY: geteuid has no preconditions (grpcd never changes its uid)
    *EUID.get_or_init(|| unsafe { libc::geteuid() })
}

/// The private directory, if shared memory is offered.
pub fn dir() -> Option<&'static Path> {
    DIR.get().and_then(|d| d.as_deref())
}

pub fn uid() -> u32 {
    euid()
}

/// Sets the directory up (once, at start): `dir` or the default `/dev/shm/hftlab-<uid>`,
/// created 0700 if missing; an existing one must be a real directory of our uid with no group or
/// other permissions. On any problem shared memory is simply not offered (logged).
pub fn init(enabled: bool, dir: Option<&str>) {
    let chosen = if enabled {
        let path = PathBuf::from(
            dir.map(str::to_string)
                .unwrap_or_else(|| format!("/dev/shm/hftlab-{}", euid())),
        );
        match prepare(&path).and_then(|()| open_dir(&path)) {
            Ok(f) => {
                let _ = DIR_FD.set(Some(f));
                Some(path)
            }
            Err(e) => {
                log::warn(
                    "shared-memory arrays disabled",
                    &[("dir", &path.display().to_string()), ("why", &e)],
                );
                None
            }
        }
    } else {
        None
    };
    if let Some(p) = &chosen {
        log::info(
            "shared-memory arrays offered",
            &[("dir", &p.display().to_string())],
        );
    }
    let _ = DIR.set(chosen);
    sweep();
}

/// Opens the directory `prepare` checked, and checks what was opened (the same checks: a real
/// directory of our uid, 0700 or stricter; O_NOFOLLOW: not a symbolic link put in its place).
fn open_dir(path: &Path) -> Result<File, String> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| format!("cannot open it: {e}"))?;
    let m = f.metadata().map_err(|e| format!("cannot stat it: {e}"))?;
    if !m.file_type().is_dir() || m.uid() != euid() || m.mode() & 0o077 != 0 {
        return Err("it changed while it was being checked".into());
    }
    Ok(f)
}

fn dir_fd() -> Option<i32> {
    use std::os::fd::AsRawFd;
    DIR_FD.get().and_then(|d| d.as_ref()).map(|f| f.as_raw_fd())
}

fn prepare(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create it: {e}")),
    }
    let m = std::fs::symlink_metadata(path).map_err(|e| format!("cannot stat it: {e}"))?;
    if !m.file_type().is_dir() {
        return Err("it is not a directory (or is a symbolic link)".into());
    }
    if m.uid() != euid() {
        return Err(format!(
            "it belongs to uid {}, not to us ({})",
            m.uid(),
            euid()
        ));
    }
    if m.mode() & 0o077 != 0 {
        return Err(format!(
            "its permissions are {:o}: group or others may use it (must be 0700)",
            m.mode() & 0o777
        ));
    }
    Ok(())
}

/// `<pid>-<32 lowercase hex>.<ext>`: the only names accepted (no path, no dots elsewhere).
fn valid_name(name: &str, ext: &str) -> Option<u32> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    let (pid, token) = stem.split_once('-')?;
    if pid.is_empty()
        || pid.len() > 10
        || !pid.bytes().all(|b| b.is_ascii_digit())
        || token.len() != 32
        || !token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    pid.parse().ok()
}

fn pid_alive(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    let r = unsafe { libc::kill(pid as i32, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// `sweep`, unless one ran less than `SWEEP_EVERY_MS` ago: after each shared-memory call (reading
/// the directory and probing each file's pid twice per call cost a 50-asset portfolio more than
/// its arrays' copy).
pub fn sweep_soon() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST_MS: AtomicU64 = AtomicU64::new(0);
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    let now = START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
        + 1;
    let last = LAST_MS.load(Ordering::Relaxed);
    if last != 0 && now.saturating_sub(last) < SWEEP_EVERY_MS {
        return;
    }
    if LAST_MS
        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok()
    {
        sweep();
    }
}

const SWEEP_EVERY_MS: u64 = 200;

/// Removes the segment files of processes that no longer exist (a client killed between creating
/// its files and the server opening them). Returns how many were removed.
pub fn sweep() -> usize {
    let Some(d) = dir() else { return 0 };
    let Ok(entries) = std::fs::read_dir(d) else {
        return 0;
    };
    use std::os::unix::fs::DirEntryExt;
    let mut removed = 0;
    let mut present = Vec::new(); // inodes of the segment files still there
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let pid = valid_name(name, "in").or_else(|| valid_name(name, "out"));
        if let Some(pid) = pid {
            if !pid_alive(pid) && std::fs::remove_file(e.path()).is_ok() {
                removed += 1;
            } else {
                present.push(e.ino());
            }
        }
    }
    // the kept mappings of files that are gone (a slot closed, a dead client's files removed)
    // are unmapped, so their tmpfs pages are freed
    if let Ok(m) = std::fs::metadata(d) {
        crate::mapcache::retain_present(m.dev(), &present);
    }
    if removed > 0 {
        log::info(
            "removed stale shared-memory segments",
            &[("count", &removed.to_string())],
        );
    }
    removed
}

/// The parsed `x-hftlab-shm` header.
pub struct Request {
    input: String,
    input_len: u64,
    output: String,
}

impl Request {
    pub fn input_len(&self) -> u64 {
        self.input_len
    }
}

fn precondition(msg: impl Into<String>) -> Status {
    Status::failed_precondition(format!("shared-memory arrays: {}", msg.into()))
}

pub fn parse_header(v: &str) -> Result<Request, Status> {
    let mut input = None;
    let mut len = None;
    let mut output = None;
    for part in v.split(';') {
        match part.split_once('=') {
            Some(("in", n)) => input = Some(n.to_string()),
            Some(("len", n)) => len = n.parse::<u64>().ok(),
            Some(("out", n)) => output = Some(n.to_string()),
            _ => return Err(precondition(format!("malformed {HEADER} metadata"))),
        }
    }
    match (input, len, output) {
        (Some(i), Some(l), Some(o)) if valid_name(&i, "in").is_some() && valid_name(&o, "out").is_some() => {
            Ok(Request {
                input: i,
                input_len: l,
                output: o,
            })
        }
        _ => Err(precondition(format!(
            "malformed {HEADER} metadata (expected in=<pid>-<hex>.in;len=<bytes>;out=<pid>-<hex>.out)"
        ))),
    }
}

/// The open segments of one call. With an arena (arena.rs) the core's large result arrays are
/// allocated in the result file's mapping and sent without a copy.
pub struct Segments {
    /// None when the input's kept mapping was found without opening the file (`open`)
    input: Option<File>,
    input_len: u64,
    /// (device, inode) of the input file, and its mapping once a handler asked for it
    input_id: (u64, u64),
    input_map: Mutex<Option<crate::mapcache::Kept>>,
    output: Mutex<(File, u64)>,
    arena: Mutex<Option<Box<crate::arena::Arena>>>,
}

impl Drop for Segments {
    fn drop(&mut self) {
        if let Some(a) = self.arena.get_mut().ok().and_then(|a| a.take()) {
            a.close();
        }
        if let Some(k) = self.input_map.get_mut().ok().and_then(|m| m.take()) {
            crate::mapcache::put(k); // for the next call on this file
        }
        sweep_soon(); // e.g. the files of a client killed while this call ran
    }
}

impl Segments {
    /// The base address of a read-only mapping of the whole input file (kept from the previous
    /// call on it when possible, else mapped and populated now).
    fn input_base(&self) -> Result<usize, Status> {
        let mut g = self
            .input_map
            .lock()
            .map_err(|_| Status::internal("shared-memory segment lock poisoned"))?;
        if let Some(k) = g.as_ref() {
            return Ok(k.base);
        }
        let len = (self.input_len as usize).div_ceil(4096) * 4096;
        let (dev, ino) = self.input_id;
        let k = match crate::mapcache::take(dev, ino, false, len) {
            Some(k) => k,
            None => {
                use std::os::fd::AsRawFd;
                let Some(input) = self.input.as_ref() else {
                    // (`open` took the kept mapping already when it did not open the file)
                    return Err(Status::internal("the shared-memory segment is not open"));
                };
                // SAFETY: a read-only shared mapping of our open file; checked for failure below.
                let p = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        len,
                        libc::PROT_READ,
                        libc::MAP_SHARED | libc::MAP_POPULATE,
                        input.as_raw_fd(),
                        0,
                    )
                };
                if p == libc::MAP_FAILED {
                    return Err(Status::internal(format!(
                        "mapping the shared-memory segment failed: {}",
                        std::io::Error::last_os_error()
                    )));
                }
                crate::mapcache::Kept::new(dev, ino, false, p as usize, len, len)
            }
        };
        let base = k.base;
        *g = Some(k);
        Ok(base)
    }
}

tokio::task_local! {
    pub static SEGMENTS: Arc<Segments>;
}

/// The segment file `name` (a checked plain name) in the private directory, as a C string.
fn c_name(name: &str) -> Result<std::ffi::CString, Status> {
    std::ffi::CString::new(name).map_err(|_| precondition(format!("bad segment name {name}")))
}

/// A private regular file of our uid with one link (`open_checked`'s conditions on what it opened).
fn private_file(mode: u32, uid: u32, nlink: u64) -> bool {
    mode & libc::S_IFMT == libc::S_IFREG && uid == euid() && nlink <= 1
}

fn open_checked(name: &str, write: bool) -> Result<(File, std::fs::Metadata), Status> {
    use std::os::fd::FromRawFd;
    let Some(dfd) = dir_fd() else {
        return Err(precondition("this grpcd does not offer them"));
    };
    let c = c_name(name)?;
    let flags = if write { libc::O_RDWR } else { libc::O_RDONLY };
    // SAFETY: openat with a NUL-terminated name relative to our open directory
    let fd = unsafe { libc::openat(dfd, c.as_ptr(), flags | libc::O_NOFOLLOW | libc::O_CLOEXEC) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(precondition(format!("cannot open the segment {name}: {e}")));
    }
    // SAFETY: a descriptor we just opened and own
    let f = unsafe { File::from_raw_fd(fd) };
    let m = f
        .metadata()
        .map_err(|e| precondition(format!("cannot stat the segment {name}: {e}")))?;
    if !private_file(m.mode(), m.uid(), m.nlink()) {
        return Err(precondition(format!(
            "the segment {name} is not a private regular file of uid {}",
            euid()
        )));
    }
    Ok((f, m))
}

/// The input's mapping kept from a previous call, found without opening the file (issue 16:
/// the open, its checks and the close were most of a small call's file-system work): the name,
/// not followed if it is a symbolic link, must be a private regular file of our uid with one
/// link, readable by us, exactly as long as declared, and the very file (device, inode) the
/// kept mapping is of. A kept mapping holds its inode, so that number cannot have been given to
/// another file meanwhile. Otherwise None: the file is opened and checked as before.
#[allow(clippy::unnecessary_cast)] // st_nlink is not u64 on every target
fn kept_input(req: &Request) -> Option<(crate::mapcache::Kept, (u64, u64))> {
    let dfd = dir_fd()?;
    let c = c_name(&req.input).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstatat with a NUL-terminated name relative to our open directory, into `st`
    let r = unsafe { libc::fstatat(dfd, c.as_ptr(), st.as_mut_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    if r != 0 {
        return None;
    }
    // SAFETY: fstatat succeeded: it filled `st`
    let st = unsafe { st.assume_init() };
    if !private_file(st.st_mode, st.st_uid, st.st_nlink as u64)
        || st.st_mode & libc::S_IRUSR == 0
        || st.st_size < 0
        || st.st_size as u64 != req.input_len
    {
        return None;
    }
    let id = (st.st_dev, st.st_ino);
    let len = (req.input_len as usize).div_ceil(4096) * 4096;
    crate::mapcache::take(id.0, id.1, false, len).map(|k| (k, id))
}

/// Opens the call's segments (the client owns the names and removes them; the server removes
/// those of dead clients); the input must be exactly as long as declared.
/// `arena_bytes`: the virtual size of the result arena (nothing is committed until used).
pub fn open(req: &Request, arena_bytes: usize) -> Result<Segments, Status> {
    if dir().is_none() {
        return Err(precondition("this grpcd does not offer them"));
    }
    sweep_soon();
    let (input, input_id, input_map, size) = match kept_input(req) {
        Some((k, id)) => (None, id, Some(k), req.input_len),
        None => {
            let (input, in_meta) = open_checked(&req.input, false)?;
            (
                Some(input),
                (in_meta.dev(), in_meta.ino()),
                None,
                in_meta.len(),
            )
        }
    };
    let opened = open_checked(&req.output, true).and_then(|out| {
        if size != req.input_len {
            return Err(precondition(format!(
                "the segment {} has {size} bytes, {} were declared",
                req.input, req.input_len
            )));
        }
        Ok(out)
    });
    let (output, out_meta) = match opened {
        Ok(v) => v,
        Err(e) => {
            if let Some(k) = input_map {
                crate::mapcache::put(k); // still the file's mapping, for its next call
            }
            return Err(e);
        }
    };
    use std::os::fd::AsRawFd;
    // the client may reuse its files from call to call: their pages are already allocated
    let reused = out_meta.len() as usize;
    let arena = crate::arena::Arena::new(
        output.as_raw_fd(),
        arena_bytes,
        reused,
        Some((out_meta.dev(), out_meta.ino())),
    );
    Ok(Segments {
        input,
        input_len: req.input_len,
        input_id,
        input_map: Mutex::new(input_map),
        output: Mutex::new((output, 0)),
        arena: Mutex::new(arena),
    })
}

/// The values `r` points to in the current call's input segment, copied into a Vec.
pub fn read(r: &ShmRef, name: &str) -> Result<Vec<f64>, Status> {
    let m = map(r, name)?;
    let n = m.len();
    let mut out: Vec<f64> = Vec::new();
    out.try_reserve_exact(n).map_err(|_| {
        crate::convert::status(rustcore::CoreError::ResourceExhausted(format!(
            "out of memory: cannot allocate {} for {name}",
            rustcore::limits::fmt_bytes(r.length)
        )))
    })?;
    out.extend_from_slice(&m);
    #[cfg(not(target_endian = "little"))]
    for v in out.iter_mut() {
        *v = f64::from_le_bytes(v.to_ne_bytes());
    }
    Ok(out)
}

/// Values in the call's input segment, read in place through its read-only mapping (issue 16,
/// bulk: the core reads the client's prices without copying them into the heap).
pub struct Mapped {
    _seg: Option<Arc<Segments>>, // keeps the mapping alive (it is given back when they drop)
    values: *const f64,
    n: usize,
}

// SAFETY: a read-only view of a mapping that lives as long as `_seg`; nothing writes through it.
unsafe impl Send for Mapped {}
unsafe impl Sync for Mapped {}

impl std::ops::Deref for Mapped {
    type Target = [f64];
    fn deref(&self) -> &[f64] {
        if self.n == 0 {
            return &[];
        }
        // SAFETY: `values` points to `n` aligned f64s inside the mapping, alive as long as self
        unsafe { std::slice::from_raw_parts(self.values, self.n) }
    }
}

/// A request's float64 array: mapped in place when it came through shared memory, else decoded
/// from the message into the heap (convert::vector).
pub enum Values {
    Heap(Vec<f64>),
    Mapped(Mapped),
}

impl std::ops::Deref for Values {
    type Target = [f64];
    fn deref(&self) -> &[f64] {
        match self {
            Values::Heap(v) => v,
            Values::Mapped(m) => m,
        }
    }
}

/// The array of a Vector field, read in place when it is in the shared-memory segment (same
/// checks and errors as convert::vector).
pub fn values(v: &Option<crate::pb::Vector>, name: &str) -> Result<Values, Status> {
    match v {
        Some(crate::pb::Vector { shm: Some(r), .. }) if cfg!(target_endian = "little") => {
            map(r, name).map(Values::Mapped)
        }
        _ => crate::convert::vector(v, name).map(Values::Heap),
    }
}

/// A Matrix field's values, read in place when they are in the shared-memory segment (same
/// checks and errors as convert::matrix): (values, rows, cols).
pub fn matrix_values(
    m: &Option<crate::pb::Matrix>,
    name: &str,
) -> Result<(Values, usize, usize), Status> {
    match m {
        Some(crate::pb::Matrix {
            shm: Some(r),
            rows,
            cols,
            ..
        }) if cfg!(target_endian = "little") => {
            let data = map(r, name)?;
            let (rows, cols) = (*rows as usize, *cols as usize);
            crate::convert::check_shape(data.len(), rows, cols, name)?;
            Ok((Values::Mapped(data), rows, cols))
        }
        _ => crate::convert::matrix(m, name).map(|(d, r, c)| (Values::Heap(d), r, c)),
    }
}

/// Maps the values `r` points to in the current call's input segment (checked: inside the
/// segment, whole and aligned float64 values).
pub fn map(r: &ShmRef, name: &str) -> Result<Mapped, Status> {
    let seg = SEGMENTS.try_with(|s| s.clone()).map_err(|_| {
        Status::invalid_argument(format!(
            "{name}: a shared-memory reference in a call without a shared-memory segment"
        ))
    })?;
    let end = r.offset.checked_add(r.length);
    if end.is_none_or(|e| e > seg.input_len) || !r.length.is_multiple_of(8) {
        return Err(Status::invalid_argument(format!(
            "{name}: bytes {}..+{} are not whole float64 values inside the {}-byte segment",
            r.offset, r.length, seg.input_len
        )));
    }
    let n = (r.length / 8) as usize;
    if n == 0 {
        return Ok(Mapped {
            _seg: None,
            values: std::ptr::null(),
            n: 0,
        });
    }
    // The file's pages exist already: no zeroing and no read() path. The offset is 64-byte
    // aligned by the client, the mapping page-aligned.
    if !r.offset.is_multiple_of(std::mem::align_of::<f64>() as u64) {
        return Err(Status::invalid_argument(format!(
            "{name}: offset {} is not a multiple of 8",
            r.offset
        )));
    }
    let base = seg
        .input_base()
        .map_err(|e| Status::new(e.code(), format!("{name}: {}", e.message())))?;
    Ok(Mapped {
        // SAFETY: offset + length <= input_len (checked above) <= the mapping's length
        values: (base + r.offset as usize) as *const f64,
        n,
        _seg: Some(seg),
    })
}

/// Puts `v` into the current call's result segment: no copy when the core allocated it in the
/// arena, else copied in. None (send it in the message) when there is no segment, the array is
/// small, or the write fails (e.g. tmpfs full).
pub fn write(v: &[f64]) -> Option<ShmRef> {
    let bytes = std::mem::size_of_val(v);
    if bytes < MIN_OUT_BYTES || cfg!(not(target_endian = "little")) {
        return None;
    }
    let seg = SEGMENTS.try_with(|s| s.clone()).ok()?;
    // SAFETY: viewing initialised f64s as bytes.
    let raw = unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, bytes) };
    if let Some(arena) = seg.arena.lock().ok()?.as_ref() {
        if let Some(offset) = arena.export(raw) {
            return Some(ShmRef {
                offset,
                length: bytes as u64,
            });
        }
        let (offset, dst) = arena.take(bytes)?;
        // SAFETY: `dst` is `bytes` writable bytes of the arena's mapping, reserved for us
        unsafe { std::ptr::copy_nonoverlapping(raw.as_ptr(), dst, bytes) };
        return Some(ShmRef {
            offset: offset as u64,
            length: bytes as u64,
        });
    }
    let mut g = seg.output.lock().ok()?;
    let offset = g.1.div_ceil(ALIGN) * ALIGN;
    match g.0.write_all_at(raw, offset) {
        Ok(()) => {
            g.1 = offset + bytes as u64;
            Some(ShmRef {
                offset,
                length: bytes as u64,
            })
        }
        Err(e) => {
            log::warn(
                "shared-memory result write failed; sending it in the message",
                &[("error", &e.to_string())],
            );
            None
        }
    }
}

/// Runs `f` with the caller's segments (if any) as the current ones: for the blocking pool.
/// With an arena, the core's large allocations on this thread go into the result segment.
pub fn carry<T>(seg: Option<Arc<Segments>>, f: impl FnOnce() -> T) -> T {
    match seg {
        Some(s) => {
            let arena = s
                .arena
                .lock()
                .ok()
                .and_then(|a| a.as_ref().map(|a| &**a as *const crate::arena::Arena));
            SEGMENTS.sync_scope(s, || match arena {
                // SAFETY: the arena lives as long as the segments, which this scope holds
                Some(a) => unsafe { &*a }.enter(f),
                None => f(),
            })
        }
        None => f(),
    }
}

/// Space for `n` values in the current call's result segment that the core writes straight into
/// (issue 16, bulk: no heap buffer, no zeroing, no copy; the pages are committed in one call).
/// None when the call has no result arena or it is full: the caller then uses the heap.
pub struct OutBuf<T> {
    _seg: Arc<Segments>, // keeps the arena (and so the mapping) alive
    ptr: *mut T,
    n: usize,
    pub shm: ShmRef,
}

// SAFETY: the buffer is a region of the arena reserved for this value alone.
unsafe impl<T: Send> Send for OutBuf<T> {}

impl<T> std::ops::Deref for OutBuf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `n` values of the MAP_SHARED mapping, reserved for us by Arena::take
        unsafe { std::slice::from_raw_parts(self.ptr, self.n) }
    }
}

impl<T> std::ops::DerefMut for OutBuf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in deref; the region is ours alone
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.n) }
    }
}

/// `T` must be a plain number type (every bit pattern valid: the file's bytes are whatever the
/// previous call left there, or zeros).
pub fn out_buf<T: Copy>(n: usize) -> Option<OutBuf<T>> {
    if n == 0 || cfg!(not(target_endian = "little")) {
        return None;
    }
    let bytes = n.checked_mul(std::mem::size_of::<T>())?;
    let seg = current()?;
    let (offset, ptr) = {
        let g = seg.arena.lock().ok()?;
        let a = g.as_ref()?;
        let (offset, ptr) = a.take(bytes)?;
        // commit the pages in one call (unless kept mapped in from the previous call)
        a.populate(ptr, bytes);
        (offset, ptr)
    };
    Some(OutBuf {
        _seg: seg,
        ptr: ptr as *mut T,
        n,
        shm: ShmRef {
            offset: offset as u64,
            length: bytes as u64,
        },
    })
}

pub fn current() -> Option<Arc<Segments>> {
    SEGMENTS.try_with(|s| s.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_segment_names_are_accepted() {
        let ok = "123-0123456789abcdef0123456789abcdef";
        assert_eq!(valid_name(&format!("{ok}.in"), "in"), Some(123));
        assert_eq!(valid_name(&format!("{ok}.out"), "out"), Some(123));
        for bad in [
            format!("../{ok}.in"),
            format!("{ok}.out"),
            format!("x{ok}.in"),
            "123-0123456789ABCDEF0123456789abcdef.in".to_string(),
            "-0123456789abcdef0123456789abcdef.in".to_string(),
            "123-0123456789abcdef0123456789abcde.in".to_string(),
            format!("{ok}.in/"),
        ] {
            assert_eq!(valid_name(&bad, "in"), None, "{bad}");
        }
        assert!(parse_header(&format!("in={ok}.in;len=8;out={ok}.out")).is_ok());
        for bad in [
            format!("in=/etc/passwd;len=8;out={ok}.out"),
            format!("in={ok}.in;len=x;out={ok}.out"),
            format!("in={ok}.in;out={ok}.out"),
            "garbage".to_string(),
        ] {
            let e = parse_header(&bad).err().expect(&bad);
            assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        }
    }
}
