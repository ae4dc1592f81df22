"""Bulk arrays on the gRPC wire without copying them through protobuf objects.

Measured (issue 16): for 1M float64 values the Python client, not grpcd, was the cost of a bulk
call: `pb.Vector(data=a.tobytes())` in a request, `SerializeToString`, `FromString` and
`r.field.data` each copy the 8 MB (into freshly mapped pages), and `np.frombuffer(...).copy()`
once more. Here the wire format (the same bytes protobuf would produce) is written and read
directly:

- `encode(msg, arrays)`: the small fields of `msg` through protobuf, then each array as its
  top-level `Vector`/`Matrix` field, joined straight from the NumPy buffer (one copy).
- `decode(raw, cls)`: walks the response's fields; every `Vector`/`Matrix` (also inside nested
  messages such as `HmmUpdate.result`) becomes a float64 array copied once out of the received
  bytes; the rest is parsed by protobuf. A `Vector`/`Matrix` whose `shm` reference is set (the
  shared-memory transport, see shm.py) is left pending and resolved by the caller.

The result is a `Parsed` proxy: attribute access gives the arrays for those fields and the
protobuf message's values otherwise, so `wire.arr`, `wire.matrix` and `wire.fields` work on it.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

_F64 = np.dtype("<f8")
VECTOR = "hftlab.v1.Vector"
MATRIX = "hftlab.v1.Matrix"
SHMREF = "hftlab.v1.ShmRef"
# the values of a top-level ShmRef field: int8 unless listed here (MeanReversionResponse)
SHM_REF_DTYPES = {"entries_shm": np.dtype("<i8"), "exits_shm": np.dtype("<i8")}


class WireError(ValueError):
    pass


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _read_varint(b, i: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if i >= end:
            raise WireError("malformed message: truncated varint")
        x = b[i]
        i += 1
        result |= (x & 0x7F) << shift
        if x < 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise WireError("malformed message: varint too long")


def _fields(b, start: int, end: int):
    """(field number, wire type, field start, value start, value end) of each field in b[start:end]."""
    i = start
    while i < end:
        fstart = i
        key, i = _read_varint(b, i, end)
        num, wt = key >> 3, key & 7
        if wt == 0:
            vs = i
            _, i = _read_varint(b, i, end)
            yield num, wt, fstart, vs, i
            continue
        if wt == 1:
            vs, i = i, i + 8
        elif wt == 5:
            vs, i = i, i + 4
        elif wt == 2:
            n, vs = _read_varint(b, i, end)
            i = vs + n
        else:
            raise WireError(f"malformed message: wire type {wt}")
        if i > end:
            raise WireError("malformed message: field beyond the end")
        yield num, wt, fstart, vs, i


@functools.cache
def _plan(desc) -> dict:
    """field number -> ("vector" | "matrix" | "nested", name, nested descriptor) for the fields
    decode() handles itself; fields not listed go to protobuf."""
    out = {}
    for f in desc.fields:
        mt = f.message_type
        if f.type == f.TYPE_BYTES and not f.is_repeated:
            out[f.number] = ("bytes", f.name, None)
            continue
        if mt is None or f.is_repeated:
            continue
        if mt.full_name == SHMREF:  # issue 16 (bulk): int8 values in the result segment
            out[f.number] = ("shmref", f.name, None)
        elif mt.full_name == VECTOR:
            out[f.number] = ("vector", f.name, None)
        elif mt.full_name == MATRIX:
            out[f.number] = ("matrix", f.name, None)
        elif _has_arrays(mt):
            out[f.number] = ("nested", f.name, mt)
    return out


@functools.cache
def _has_arrays(desc, _seen=()) -> bool:
    for f in desc.fields:
        mt = f.message_type
        if mt is None or f.is_repeated or mt in _seen:
            continue
        if mt.full_name in (VECTOR, MATRIX) or _has_arrays(mt, _seen + (desc,)):
            return True
    return False


class ShmRef:
    """A pending array in a shared-memory segment: `offset`/`length` bytes of `dtype` (float64, or
    int8 for a top-level ShmRef field such as MeanReversionResponse.signals_shm), reshaped to `shape`."""

    __slots__ = ("offset", "length", "shape", "dtype")

    def __init__(self, offset: int, length: int, shape, dtype=_F64):
        self.offset, self.length, self.shape, self.dtype = offset, length, shape, dtype


class Parsed:
    """A decoded message: arrays (and nested Parsed) by field name, the rest from protobuf."""

    __slots__ = ("_msg", "_arrays")

    def __init__(self, msg, arrays: dict):
        self._msg = msg
        self._arrays = arrays

    def __getattr__(self, name):
        a = self._arrays
        if name in a:
            return a[name]
        return getattr(self._msg, name)

    def resolve(self, segment) -> None:
        """Turn pending ShmRefs into arrays read from `segment` (shm.OutSegment)."""
        for k, v in self._arrays.items():
            if isinstance(v, ShmRef):
                self._arrays[k] = segment.array(v)
            elif isinstance(v, Parsed):
                v.resolve(segment)

    def pending_extent(self) -> int:
        """The end of the furthest pending shared-memory array (0: none pending)."""
        end = 0
        for v in self._arrays.values():
            if isinstance(v, ShmRef):
                end = max(end, v.offset + v.length)
            elif isinstance(v, Parsed):
                end = max(end, v.pending_extent())
        return end

    def has_pending(self) -> bool:
        return any(isinstance(v, ShmRef) or (isinstance(v, Parsed) and v.has_pending()) for v in self._arrays.values())


def _shm_ref(b, s: int, e: int) -> tuple[int, int]:
    """(offset, length) of a ShmRef message in b[s:e]."""
    off = ln = 0
    for n2, w2, _f2, s2, e2 in _fields(b, s, e):
        if w2 == 0 and n2 in (1, 2):
            v, _ = _read_varint(b, s2, e2)
            if n2 == 1:
                off = v
            else:
                ln = v
    return off, ln


def _array_field(b, vs: int, ve: int, kind: str):
    """A Vector/Matrix value in b[vs:ve] -> ndarray or ShmRef."""
    rows = cols = 0
    data = None
    shm = None
    data_no, shm_no = (1, 15) if kind == "vector" else (3, 15)
    for num, wt, _fs, s, e in _fields(b, vs, ve):
        if num == data_no and wt == 2:
            data = (s, e)
        elif num == shm_no and wt == 2:
            shm = _shm_ref(b, s, e)
        elif kind == "matrix" and wt == 0 and num in (1, 2):
            v, _ = _read_varint(b, s, e)
            if num == 1:
                rows = v
            else:
                cols = v
    if shm is not None and shm[1] > 0:
        n = shm[1] // 8
        if kind == "matrix" and rows * cols != n:
            raise WireError(f"malformed message: a {rows} x {cols} matrix with {n} values")
        return ShmRef(shm[0], shm[1], (rows, cols) if kind == "matrix" else (n,))
    a: np.ndarray
    if data is None:
        a = np.empty(0, dtype=np.float64)
    else:
        s, e = data
        if (e - s) % 8:
            raise WireError(f"malformed message: {e - s} bytes is not a whole number of float64 values")
        a = np.frombuffer(b, dtype=_F64, count=(e - s) // 8, offset=s).astype(np.float64, copy=True)
    if kind == "matrix":
        if rows * cols != a.size:
            raise WireError(f"malformed message: a {rows} x {cols} matrix with {a.size} values")
        a = a.reshape(rows, cols)
    return a


def _decode(b, start: int, end: int, cls) -> Parsed:
    plan = _plan(cls.DESCRIPTOR)
    small = []
    arrays: dict[str, Any] = {}
    for num, wt, fs, vs, ve in _fields(b, start, end):
        p = plan.get(num)
        if p is None or wt != 2:
            small.append(b[fs:ve])
            continue
        kind, name, nested = p
        if kind == "bytes":  # a read-only view of the received bytes (np.frombuffer copies it once)
            arrays[name] = memoryview(b)[vs:ve]
            continue
        if kind == "shmref":  # int8 (or int64) values in the result segment (resolved by the caller)
            off, ln = _shm_ref(b, vs, ve)
            dt = SHM_REF_DTYPES.get(name, np.dtype(np.int8))
            arrays[name] = ShmRef(off, ln, (ln // dt.itemsize,), dt) if ln else np.empty(0, dtype=dt)
            continue
        # keep the field's presence (HasField / WhichOneof) with an empty value
        small.append(b[fs : vs - _varint_len(ve - vs)] + b"\x00")
        if kind == "nested":
            arrays[name] = _decode(b, vs, ve, _message_class(cls, name))
        else:
            arrays[name] = _array_field(b, vs, ve, kind)
    msg = cls.FromString(b"".join(small))
    return Parsed(msg, arrays)


def _varint_len(n: int) -> int:
    k = 1
    while n >= 0x80:
        n >>= 7
        k += 1
    return k


@functools.cache
def _message_class(cls, field_name):
    return type(getattr(cls(), field_name))


# Below this size protobuf's C parser is faster than walking the fields in Python (a 50-asset
# portfolio response: 1 µs against 100+ µs), and there is little to copy.
SMALL = 64 << 10


def _has_shm(msg) -> bool:
    """True if a Vector/Matrix (top level or nested, as decode() walks them) or a top-level ShmRef
    field of the parsed message `msg` points into a shared-memory segment."""
    for kind, name, _nested in _plan(msg.DESCRIPTOR).values():
        if kind == "bytes" or not msg.HasField(name):
            continue
        v = getattr(msg, name)
        if kind == "shmref" or (kind == "nested" and _has_shm(v)) or (kind in ("vector", "matrix") and v.HasField("shm")):
            return True
    return False


def decode(raw: bytes, cls, shm: bool = False):
    """A Parsed proxy (arrays decoded here), or for a small message without shared-memory
    references simply the protobuf message (`shm`: the call used shared memory, so a small
    message may hold references: protobuf parses it and it is walked only if it does)."""
    if len(raw) < SMALL:
        if not shm:
            return cls.FromString(raw)
        try:
            msg = cls.FromString(raw)
        except DecodeError:
            msg = None  # malformed: the walker below says where (WireError, as for a large one)
        if msg is not None and not _has_shm(msg):
            return msg  # e.g. a 50-asset portfolio whose prices went through shared memory
    return _decode(raw, 0, len(raw), cls)


def deserializer(cls):
    return functools.partial(decode, cls=cls)


def array_field_bytes(field_number: int, kind: str, a: np.ndarray) -> list:
    """The wire bytes of a top-level Vector/Matrix field holding `a` (list of parts, no copy)."""
    a = np.ascontiguousarray(a, dtype=_F64)
    nbytes = a.nbytes
    if kind == "vector":
        head = b"\x0a" + varint(nbytes) if nbytes else b""
    else:
        rows, cols = a.shape
        head = b""
        if rows:
            head += b"\x08" + varint(rows)
        if cols:
            head += b"\x10" + varint(cols)
        if nbytes:
            head += b"\x1a" + varint(nbytes)
    tag = varint((field_number << 3) | 2)
    parts: list[Any] = [tag + varint(len(head) + nbytes) + head]
    if nbytes:
        parts.append(memoryview(a).cast("B"))  # type: ignore[arg-type]
    return parts


def shm_field_bytes(field_number: int, kind: str, shape, offset: int, length: int) -> bytes:
    """A top-level Vector/Matrix field that points into the request's shared-memory segment."""
    ref = b""
    if offset:
        ref += b"\x08" + varint(offset)
    if length:
        ref += b"\x10" + varint(length)
    shm_tag = b"\x7a"  # field 15, length-delimited, in both Vector and Matrix
    if kind == "vector":
        head = shm_tag + varint(len(ref)) + ref
    else:
        rows, cols = shape
        head = b""
        if rows:
            head += b"\x08" + varint(rows)
        if cols:
            head += b"\x10" + varint(cols)
        head += shm_tag + varint(len(ref)) + ref
    return varint((field_number << 3) | 2) + varint(len(head)) + head


def kinds(cls) -> dict:
    """field name -> (number, "vector" | "matrix") of the top-level array fields of `cls`."""
    return {name: (num, kind) for num, (kind, name, _n) in _plan(cls.DESCRIPTOR).items() if kind in ("vector", "matrix")}


def encode(msg, arrays: dict | None) -> bytes:
    """`msg` serialised, plus the arrays as its Vector/Matrix fields (the arrays must not also be
    set in `msg`)."""
    small = msg.SerializeToString()
    if not arrays:
        return small
    k = kinds(type(msg))
    parts = [small]
    for name, a in arrays.items():
        if a is None:
            continue
        num, kind = k[name]
        parts += array_field_bytes(num, kind, a)
    return b"".join(parts)
