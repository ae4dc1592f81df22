"""Shared-memory arrays for a grpcd on the same host (the client side of grpcd/src/shm.rs).

The arrays of a unary call go through two files in grpcd's private directory instead of the
HTTP/2 stream: the request's arrays are written into `<pid>-<hex>.in`, `<pid>-<hex>.out`
receives the large result arrays (grpcd's core allocates them there), and the messages carry
offsets (`ShmRef`). The result file is mapped here and the result arrays are views of it.
The files are reused by the next call once the previous results are gone (their pages stay
allocated), and removed when the backend closes, at exit, or when a call fails (e.g. grpcd was
killed); grpcd removes the files of a client that died (kill -9).

Used only when all of these hold (else the arrays travel in the message, with identical results
and errors):
- the connection is plain loopback (not TLS, not a remote host),
- grpcd offers it (GetInfo: shm_dir, uid) and runs as our uid,
- the directory is a real directory owned by us with no group/other permissions,
- HFT_LAB_SHM is not "0".
"""

from __future__ import annotations

import atexit
import mmap
import os
import secrets
import stat
import threading
import weakref

import numpy as np

from . import fastwire

HEADER = "x-hftlab-shm"
ALIGN = 64
_F64 = np.dtype("<f8")


def usable_dir(shm_dir: str, server_uid: int) -> str | None:
    """`shm_dir` if it is safe to use from this process, else None."""
    if os.environ.get("HFT_LAB_SHM", "1") == "0" or not shm_dir or not hasattr(os, "geteuid"):
        return None
    uid = os.geteuid()
    if server_uid != uid:
        return None
    try:
        st = os.lstat(shm_dir)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o077:
        return None
    return shm_dir


def _create(path: str) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)  # Linux >= 5.14
MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)


def _populate(m: mmap.mmap, length: int, advice: int) -> None:
    """Fault `length` bytes of `m` in with one call (already-mapped pages cost nothing)."""
    try:
        m.madvise(advice, 0, length)
    except (OSError, ValueError, AttributeError):
        pass  # an older kernel: the pages fault in when touched


class OutSegment:
    """The call's part of the result file: `array(ref)` gives a (writable) view of it. Every
    array is a view of one per-call base array (`base`), so the slot knows, through a weak
    reference to it, when the call's last result array is gone."""

    def __init__(self, m: mmap.mmap | None, size: int):
        self.size = size
        self.base = None if m is None else np.frombuffer(m, dtype=np.uint8, count=size)

    def array(self, ref: fastwire.ShmRef) -> np.ndarray:
        dtype = np.dtype(ref.dtype)
        if self.base is None or ref.offset + ref.length > self.size or ref.length % dtype.itemsize:
            raise fastwire.WireError(
                f"malformed response: bytes {ref.offset}..+{ref.length} are not inside the {self.size}-byte result segment"
            )
        return self.base[ref.offset : ref.offset + ref.length].view(dtype).reshape(ref.shape)


class Slot:
    """A pair of files (`.in` for the request's arrays, `.out` for the results) reused from call to
    call while the previous call's result arrays are gone (their tmpfs pages stay allocated, which
    saves a page fault per 4 KiB on both sides). Both files stay mapped here from call to call
    (issue 16, bulk: no mmap/munmap and no page-table set-up per call); the request's arrays are
    copied into the `.in` mapping, the results are views of the `.out` mapping. The part of each
    mapping already faulted in is remembered (`in_ready`, `out_ready`): only pages beyond it are
    populated (walking 8 000 mapped pages again cost ~40% of a 1M-price call's client time).
    Pages dropped meanwhile (grpcd trims the `.out` file after each call, or punches a hole)
    simply fault in again when touched."""

    def __init__(self, directory: str, pooled: bool = True):
        token = f"{os.getpid()}-{secrets.token_hex(16)}"
        self.in_name, self.out_name = f"{token}.in", f"{token}.out"
        self.in_path = os.path.join(directory, self.in_name)
        self.out_path = os.path.join(directory, self.out_name)
        self.in_fd = self.out_fd = -1
        self.length = 0
        self.in_map: mmap.mmap | None = None
        self.out_map: mmap.mmap | None = None
        self.in_ready = self.out_ready = 0  # bytes of each mapping known to be faulted in
        self._live: weakref.ref | None = None  # the previous call's OutSegment.base
        self.pooled = pooled
        self.in_use = False
        try:
            self.in_fd = _create(self.in_path)
            self.out_fd = _create(self.out_path)
        except BaseException:
            self.remove()
            raise

    def busy(self) -> bool:
        """True while result arrays of the previous call (views of the `.out` mapping) are alive."""
        return self._live is not None and self._live() is not None

    @staticmethod
    def _remap(old: mmap.mmap | None, fd: int, size: int) -> mmap.mmap:
        if old is not None and len(old) >= size:
            return old
        if old is not None:
            try:
                old.close()
            except BufferError:
                pass  # still viewed somewhere: it goes with its last view
        return mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)

    def body(self, msg, arrays: dict) -> bytes:
        kinds = fastwire.kinds(type(msg))
        parts = [msg.SerializeToString()]
        placed = []
        off = 0
        for name, a in arrays.items():
            if a is None:
                continue
            num, kind = kinds[name]
            a = np.asarray(a)
            off = -(-off // ALIGN) * ALIGN
            placed.append((off, a))
            nbytes = a.size * 8
            shape = a.shape if kind == "matrix" else (a.size,)
            parts.append(fastwire.shm_field_bytes(num, kind, shape, off, nbytes))
            off += nbytes
        if os.fstat(self.in_fd).st_size != off:
            os.ftruncate(self.in_fd, off)
            self.in_ready = min(self.in_ready, off)  # pages past the end are gone
        if off:
            # a larger mapping (from a larger call) is kept: only the first `off` bytes are touched
            m = self._remap(self.in_map, self.in_fd, off)
            if m is not self.in_map:
                self.in_map, self.in_ready = m, 0
            if off > self.in_ready:
                _populate(m, off, MADV_POPULATE_WRITE)
                self.in_ready = off
            for o, a in placed:
                if a.size:
                    dst = np.frombuffer(self.in_map, dtype=_F64, count=a.size, offset=o).reshape(a.shape)
                    np.copyto(dst, a, casting="unsafe")  # converted to little-endian float64 on the way
                    del dst
        self.length = off
        return b"".join(parts)

    @property
    def metadata(self) -> tuple:
        return ((HEADER, f"in={self.in_name};len={self.length};out={self.out_name}"),)

    def finish(self, parsed):
        if isinstance(parsed, fastwire.Parsed):
            extent = parsed.pending_extent()
            if extent:
                # views only inside the file as it is now (never past its end: that would fault)
                file_size = os.fstat(self.out_fd).st_size
                size = min(extent, file_size)
                # grpcd trims the file after each call: the pages past its end are gone
                self.out_ready = min(self.out_ready, file_size)
                m = None
                if size:
                    m = self._remap(self.out_map, self.out_fd, size)
                    if m is not self.out_map:
                        self.out_map, self.out_ready = m, 0
                    if size > self.out_ready:
                        _populate(m, size, MADV_POPULATE_READ)
                        self.out_ready = size
                seg = OutSegment(m, size)
                parsed.resolve(seg)
                self._live = None if seg.base is None else weakref.ref(seg.base)
        return parsed

    def remove(self) -> None:
        for path in (self.in_path, self.out_path):
            try:
                os.unlink(path)
            except OSError:
                pass
        for fd in (self.in_fd, self.out_fd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.in_fd = self.out_fd = -1
        for m in (self.in_map, self.out_map):
            if m is not None:
                try:
                    m.close()
                except BufferError:
                    pass  # result arrays still view it: it goes with the last of them
        self.in_map = self.out_map = None


class Pool:
    """The slots of one backend for one grpcd directory (a few, for concurrent callers)."""

    MAX = 3

    def __init__(self, directory: str):
        self.directory = directory
        self._slots: list[Slot] = []
        self._lock = threading.Lock()
        self._closed = False
        atexit.register(self.close)

    def acquire(self) -> Slot:
        with self._lock:
            for s in self._slots:
                if not s.in_use and not s.busy():
                    s.in_use = True
                    return s
            pooled = len(self._slots) < self.MAX and not self._closed
        s = Slot(self.directory, pooled=pooled)
        s.in_use = True
        if pooled:
            with self._lock:
                self._slots.append(s)
        return s

    def release(self, slot: Slot, ok: bool) -> None:
        """After a call; a slot whose call failed (or that is not pooled) is removed."""
        with self._lock:
            slot.in_use = False
            if ok and slot.pooled and not self._closed:
                return
            if slot in self._slots:
                self._slots.remove(slot)
        slot.remove()

    def close(self) -> None:
        """Removes every file (result arrays already mapped stay valid)."""
        with self._lock:
            self._closed = True
            slots, self._slots = self._slots, []
        for s in slots:
            s.remove()
