"""NumPy <-> protobuf conversions for the gRPC backend (little-endian float64 in `bytes`)."""

from __future__ import annotations

import functools

import numpy as np

from hft_lab._proto.hftlab.v1 import hftlab_pb2 as pb

_F64 = np.dtype("<f8")


def vec(a: np.ndarray) -> pb.Vector:
    return pb.Vector(data=np.ascontiguousarray(a, dtype=_F64).tobytes())


def mat(a: np.ndarray) -> pb.Matrix:
    a = np.ascontiguousarray(a, dtype=_F64)
    return pb.Matrix(rows=a.shape[0], cols=a.shape[1], data=a.tobytes())


def arr(v: pb.Vector) -> np.ndarray:
    if isinstance(v, np.ndarray):  # already decoded by fastwire
        return v
    # frombuffer is read-only and zero-copy; copy so results are ordinary writable arrays
    return np.frombuffer(v.data, dtype=_F64).astype(np.float64, copy=True)


def matrix(m: pb.Matrix) -> np.ndarray:
    if isinstance(m, np.ndarray):  # already decoded by fastwire
        return m
    return arr(m).reshape(m.rows, m.cols)


def i8(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype=np.int8).copy()


def ints(v) -> np.ndarray:
    return np.asarray(v, dtype=np.int64)


@functools.cache
def _field_plan(descriptor) -> tuple[tuple[str, str], ...]:
    """(name, kind) of every field of a message type, worked out once per type (walking the
    descriptor on every call cost ~10 µs of a 50-asset portfolio call, issue 16)."""
    plan = []
    for f in descriptor.fields:
        if f.message_type is not None and f.message_type.name == "Vector":
            kind = "vector"
        elif f.message_type is not None and f.message_type.name == "Matrix":
            kind = "matrix"
        elif f.is_repeated:
            kind = "doubles" if f.type == f.TYPE_DOUBLE else "strings" if f.type == f.TYPE_STRING else "ints"
        else:
            kind = "scalar"
        plan.append((f.name, kind))
    return tuple(plan)


def fields(msg, exclude=()) -> dict:
    """A response message as a dict: Vector -> float64 array, Matrix -> 2-D array, repeated
    integers -> int64 array, repeated doubles -> float64 array, scalars as they are."""
    out = {}
    for name, kind in _field_plan(msg.DESCRIPTOR):
        if name in exclude:
            continue
        v = getattr(msg, name)
        if kind == "vector":
            v = arr(v)
        elif kind == "matrix":
            v = matrix(v)
        elif kind == "doubles":
            v = np.asarray(v, dtype=np.float64)
        elif kind == "strings":
            v = tuple(v)
        elif kind == "ints":
            v = np.asarray(v, dtype=np.int64)
        out[name] = v
    return out
