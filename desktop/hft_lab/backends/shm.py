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


class OutSegment:
    """The mapped result file; `array(ref)` gives a (writable) view of it."""

    def __init__(self, fd: int, extent: int):
        # map only what the results use (never beyond the file: that would fault)
        size = min(extent, os.fstat(fd).st_size)
        self.map = None
        if size:
            flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
            self.map = mmap.mmap(fd, size, flags=flags, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        self.size = size

    def array(self, ref: fastwire.ShmRef) -> np.ndarray:
        if self.map is None or ref.offset + ref.length > self.size or ref.length % 8:
            raise fastwire.WireError(
                f"malformed response: bytes {ref.offset}..+{ref.length} are not inside the {self.size}-byte result segment"
            )
        a = np.frombuffer(self.map, dtype=_F64, count=ref.length // 8, offset=ref.offset)
        return a.reshape(ref.shape)


class Slot:
    """A pair of files (`.in` for the request's arrays, `.out` for the results) reused from call to
    call while the previous call's result arrays are gone (their tmpfs pages stay allocated, which
    saves a page fault per 4 KiB on both sides)."""

    def __init__(self, directory: str, pooled: bool = True):
        token = f"{os.getpid()}-{secrets.token_hex(16)}"
        self.in_name, self.out_name = f"{token}.in", f"{token}.out"
        self.in_path = os.path.join(directory, self.in_name)
        self.out_path = os.path.join(directory, self.out_name)
        self.in_fd = self.out_fd = -1
        self.length = 0
        self.map: mmap.mmap | None = None
        self.pooled = pooled
        self.in_use = False
        try:
            self.in_fd = _create(self.in_path)
            self.out_fd = _create(self.out_path)
        except BaseException:
            self.remove()
            raise

    def busy(self) -> bool:
        """True while result arrays of the previous call (views of its mapping) are alive."""
        if self.map is None:
            return False
        try:
            self.map.close()
        except BufferError:
            return True
        self.map = None
        return False

    def body(self, msg, arrays: dict) -> bytes:
        kinds = fastwire.kinds(type(msg))
        parts = [msg.SerializeToString()]
        off = 0
        for name, a in arrays.items():
            if a is None:
                continue
            num, kind = kinds[name]
            a = np.ascontiguousarray(a, dtype=_F64)
            off = -(-off // ALIGN) * ALIGN
            if a.nbytes:
                view = memoryview(a).cast("B")  # type: ignore[arg-type]
                done = 0
                while done < a.nbytes:  # pwrite may write less than asked
                    done += os.pwrite(self.in_fd, view[done:], off + done)
            parts.append(fastwire.shm_field_bytes(num, kind, a.shape, off, a.nbytes))
            off += a.nbytes
        if os.fstat(self.in_fd).st_size != off:
            os.ftruncate(self.in_fd, off)
        self.length = off
        return b"".join(parts)

    @property
    def metadata(self) -> tuple:
        return ((HEADER, f"in={self.in_name};len={self.length};out={self.out_name}"),)

    def finish(self, parsed):
        if isinstance(parsed, fastwire.Parsed):
            extent = parsed.pending_extent()
            if extent:
                seg = OutSegment(self.out_fd, extent)
                parsed.resolve(seg)
                self.map = seg.map
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
