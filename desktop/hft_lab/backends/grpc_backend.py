"""The Rust core behind grpcd, reached with grpcio. Every call has a deadline; errors are mapped
to the same Python exceptions the PyO3 backend raises (ValueError for bad input, Cancelled,
BackendUnavailable, TimeoutError)."""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Callable
from urllib.parse import unquote

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hft_lab._proto.hftlab.v1 import hftlab_pb2 as pb

from . import fastwire, shm, wire
from .alloc import tune_malloc
from .base import Backend, CancelToken, HmmOnlineFilter, MeanReversionStream
from .config import BackendConfig, BackendType
from .errors import BackendUnavailable, Cancelled, NumericalError, ResourceLimitExceeded
from .results import StreamTicks

SERVICE = "hftlab.v1.HftLab"

# Unary calls grpcd computes inline on one thread for inputs up to 256 KiB (grpcd/src/service.rs
# `compute`, INLINE_MAX_BYTES); for these the Rust client watches its socket for the answer
# instead of sleeping (issue 16, small calls: the wake-up of a sleeping thread costs this VM
# ~50 µs). Calls with larger inputs, or computed on grpcd's thread pool, sleep as before.
_POLLED = frozenset(
    {"Echo", "GetInfo", "MeanReversion", "FitOu", "Backtest", "OptimizePortfolio", "EstimateMoments", "LedoitWolf", "HmmFilter"}
)
_POLL_MAX_BYTES = 256 << 10
PAIRS_SERVICE = "hftlab.v1.HftLabPairs"  # issue 17


def _error_kind(e: grpc.RpcError) -> str | None:
    """grpcd's `hftlab-error-kind` trailing metadata ("numerical" for the core's numerical failures)."""
    try:
        md = e.trailing_metadata() or ()
    except Exception:
        return None
    for k, v in md:
        if k == "hftlab-error-kind":
            return v
    return None


def map_rpc_error(e: grpc.RpcError, address: str, max_mb: int) -> Exception:
    code, details = e.code(), e.details() or ""
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        if _error_kind(e) == "numerical":
            return NumericalError(details)
        return ValueError(details)
    if code == grpc.StatusCode.CANCELLED and unquote(details) == "Timeout expired":
        # tonic answers CANCELLED "Timeout expired" when the grpc-timeout passes on its side first
        # (its grpc-message sometimes reaches grpcio still percent-encoded: "Timeout%20expired")
        return TimeoutError(f"grpcd at {address} did not answer before the deadline")
    if code == grpc.StatusCode.CANCELLED:
        return Cancelled(details or "cancelled by the user")
    if code == grpc.StatusCode.UNAVAILABLE:
        return BackendUnavailable(f"grpcd at {address} is unavailable: {details}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return TimeoutError(f"grpcd at {address} did not answer before the deadline")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "memory limit" in details:
        return ResourceLimitExceeded(details)  # the core's budget: the same text as on PyO3
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return PermissionError(f"grpcd at {address} refused the call (UNAUTHENTICATED): {details}")
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return PermissionError(f"grpcd at {address} refused the call (PERMISSION_DENIED): {details}")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        if "larger than max" in details or "too large" in details:
            return ValueError(f"message too large for the {max_mb} MiB gRPC limit: {details}")
        return ValueError(details)  # grpcd's own budget messages name the sizes and the limit
    if code == grpc.StatusCode.OUT_OF_RANGE and "message length too large" in details:
        return ValueError(f"result too large for the {max_mb} MiB gRPC limit: {details}")
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return NotImplementedError(details)
    return RuntimeError(f"grpcd error {code.name}: {details}")


_Details = collections.namedtuple("_Details", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"))


class _CallDetails(_Details, grpc.ClientCallDetails):
    pass


class _BearerToken(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds `authorization: Bearer <token>` to every call on the channel."""

    def __init__(self, token: str):
        self._md = ("authorization", f"Bearer {token}")

    def _details(self, d):
        md = list(d.metadata or []) + [self._md]
        return _CallDetails(
            d.method, d.timeout, md, d.credentials, getattr(d, "wait_for_ready", None), getattr(d, "compression", None)
        )

    def intercept_unary_unary(self, continuation, d, request):
        return continuation(self._details(d), request)

    def intercept_unary_stream(self, continuation, d, request):
        return continuation(self._details(d), request)

    def intercept_stream_unary(self, continuation, d, request_iterator):
        return continuation(self._details(d), request_iterator)

    def intercept_stream_stream(self, continuation, d, request_iterator):
        return continuation(self._details(d), request_iterator)


_STATUS = {c.value[0]: c for c in grpc.StatusCode}


class _FastRpcError(grpc.RpcError):
    """A failure of the Rust unary client (`_rustcore.GrpcCallError`) seen as grpcio's RpcError,
    so that map_rpc_error gives the same exceptions and texts on either client."""

    def __init__(self, code: int, details: str, kind: str | None):
        super().__init__(details)
        self._code = _STATUS.get(code, grpc.StatusCode.UNKNOWN)
        self._details = details
        self._kind = kind

    def code(self):
        return self._code

    def details(self):
        return self._details

    def trailing_metadata(self):
        return (("hftlab-error-kind", self._kind),) if self._kind else ()


def _fast_client_class():
    """The Rust unary client (`_rustcore.GrpcUnaryClient`, issue 16: ~110 µs less client CPU per
    call than grpcio's blocking call), unless HFT_LAB_GRPC_CLIENT=grpcio or the extension lacks it."""
    if os.environ.get("HFT_LAB_GRPC_CLIENT", "rust").strip().lower() == "grpcio":
        return None
    try:
        from hft_lab import _rustcore
    except ImportError:
        return None
    return getattr(_rustcore, "GrpcUnaryClient", None)


class _FastCall:
    """A call in progress on the Rust client: started under `generation`; `cancel` (the router's
    abort) stops every call of that client."""

    __slots__ = ("client", "generation")

    def __init__(self, client):
        self.client = client
        self.generation = client.generation()

    def cancel(self) -> None:
        self.client.abort()


_NO_RESULT = object()


def _array_bytes(arrays: dict) -> int:
    """Bytes of a call's arrays (None entries count 0)."""
    return sum(getattr(a, "nbytes", 0) for a in arrays.values())


def _follow(updates, on_progress, finals):
    """The updates of a server stream (either client): each progress update to `on_progress`
    (False: Cancelled); the first update of a kind in `finals` gives the call's value;
    _NO_RESULT when the stream ends before one."""
    for upd in updates:
        kind = upd.WhichOneof("kind")
        if kind == "progress":
            if not on_progress(upd.progress):
                raise Cancelled("cancelled by the user")
        elif kind in finals:
            return finals[kind](getattr(upd, kind))
    return _NO_RESULT


class _ShmRefused(Exception):
    """grpcd refused the call's shared-memory segments (it no longer offers them): retry in the message."""


class _Inflight:
    """A call in progress; `aborted` is set when the router gives up on the server (it went down)."""

    __slots__ = ("call", "aborted")

    def __init__(self, call):
        self.call = call
        self.aborted: str | None = None


class _BidiStream:
    """A live bidirectional stream (shared by the mean-reversion and HMM live clients): the setup
    message goes first and the server's acknowledgement is awaited (a bad setup raises here, as
    the PyO3 constructors do); then each `_call_batch(request)` sends one batch and returns its
    reply in order. A rejected batch comes back in-band (`error`, `error_code`) and raises
    ValueError / ResourceLimitExceeded while the stream and its state go on, as on PyO3."""

    _END = object()

    def _open(self, backend: GrpcBackend, rpc: str, req_cls, resp_cls, setup, closed_text: str) -> None:
        import queue

        self._backend = backend
        self._closed_text = closed_text
        self._q: queue.Queue = queue.Queue()
        self._q.put(setup)

        def requests():
            while True:
                item = self._q.get()
                if item is self._END:
                    return
                yield item

        stub = backend._method(rpc, req_cls, resp_cls, stream=True)
        self._call = stub(requests(), timeout=None)
        try:
            self._next()  # the acknowledgement
        except Exception:
            self.close()
            raise

    def _next(self):
        try:
            r = next(self._call)
        except grpc.RpcError as e:
            raise self._backend._error(e) from None
        except StopIteration:
            raise BackendUnavailable(self._closed_text) from None
        if r.error:
            # a rejected batch: reported in-band, the stream and its state go on (as on PyO3)
            if r.error_code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]:
                raise ResourceLimitExceeded(r.error)
            raise ValueError(r.error)
        return r

    def _call_batch(self, request):
        self._q.put(request)
        return self._next()

    def close(self) -> None:
        self._q.put(self._END)
        self._call.cancel()


class _GrpcStream(_BidiStream, MeanReversionStream):
    """Live mean reversion: batches of ticks go out, per-tick results come back in order."""

    def __init__(self, backend: GrpcBackend, config: pb.StreamConfig):
        self._open(
            backend,
            "StreamMeanReversion",
            pb.StreamRequest,
            pb.StreamResponse,
            pb.StreamRequest(config=config),
            "the live stream was closed by the server",
        )

    @property
    def max_message_bytes(self) -> int:
        return self._backend.max_message_bytes

    def push_many(self, prices) -> StreamTicks:
        p = self._batch(prices)
        r = self._call_batch(pb.StreamRequest(ticks=wire.vec(p)))
        return StreamTicks(
            first_tick=r.first_tick,
            rolling_mean=wire.arr(r.rolling_mean),
            rolling_std=wire.arr(r.rolling_std),
            zscore=wire.arr(r.zscore),
            signals=wire.i8(r.signals),
            positions=wire.i8(r.positions),
        )


class _GrpcHmmFilter(_BidiStream, HmmOnlineFilter):
    """Live regime filter: the model goes first, then batches of rows; each batch's filtered
    probabilities come back in order."""

    def __init__(self, backend: GrpcBackend, model: pb.HmmModel):
        self.n_features = model.n_features
        self._k = model.n_states
        self._count = 0
        self._ll = 0.0
        self._open(
            backend,
            "StreamHmmFilter",
            pb.HmmStreamRequest,
            pb.HmmStreamResponse,
            pb.HmmStreamRequest(model=model),
            "the live regime stream was closed by the server",
        )

    def _update(self, rows):
        if rows.shape[1] != self.n_features:
            # the same text as the PyO3 binding (checked before anything is sent)
            raise ValueError(f"observations have {rows.shape[1]} features but the model has {self.n_features}")
        r = self._call_batch(pb.HmmStreamRequest(observations=wire.mat(rows)))
        self._count = r.first_row + rows.shape[0]
        self._ll = r.log_likelihood
        return wire.matrix(r.filtered).reshape(rows.shape[0], self._k)

    @property
    def count(self) -> int:
        return self._count

    @property
    def log_likelihood(self) -> float:
        return self._ll


def _pb_model(m: tuple) -> pb.HmmModel:
    k, d, ct, sp, tm, mu, cv = m
    return pb.HmmModel(
        n_states=k,
        n_features=d,
        covariance_type=ct,
        start_prob=wire.vec(sp),
        transmat=wire.vec(tm),
        means=wire.vec(mu),
        covars=wire.vec(cv),
    )


def _model_fields(m: pb.HmmModel) -> dict:
    k, d = m.n_states, m.n_features
    return dict(
        n_states=k,
        n_features=d,
        covariance_type=m.covariance_type,
        start_probabilities=wire.arr(m.start_prob),
        transition_matrix=wire.arr(m.transmat).reshape(k, k),
        means=wire.arr(m.means).reshape(k, d),
        covars=wire.arr(m.covars).reshape(k, d, d),
    )


class GrpcBackend(Backend):
    backend_type = BackendType.GRPC
    name = "gRPC (Rust server)"

    def __init__(self, config: BackendConfig | None = None, address: str | Callable[[], str] | None = None, client: str = "auto"):
        """`address` is "host:port" or a callable giving the current one (the ServerManager's,
        which changes when it restarts grpcd); by default config.grpc_host:grpc_port. `client`:
        "auto" (unary and server-streaming calls on the Rust client where it applies, see
        _fast_client) or "grpcio"."""
        self.config = config or BackendConfig()
        if address is None:
            address = f"{self.config.grpc_host}:{self.config.grpc_port}"
        self._address_fn = address if callable(address) else (lambda: address)
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        self._channel_addr: str | None = None
        self._methods: dict = {}
        # (address, Rust client) for plaintext unary and server-streaming calls without a cancel
        # token (issue 16)
        self._fast: tuple[str, object] | None = None
        self._grpcio_only = client == "grpcio"
        self._inflight: set[_Inflight] = set()
        # (address, shared-memory pool or None) once negotiated with that grpcd (GetInfo)
        self._shm: tuple[str, shm.Pool | None] | None = None
        self._shm_lock = threading.Lock()  # one negotiation at a time (else two pools, one orphaned)
        tune_malloc()  # issue 16: see alloc.py

    # ---- channel ----
    @property
    def address(self) -> str:
        return self._address_fn() or ""

    def _get_channel(self) -> grpc.Channel:
        addr = self.address
        if not addr or addr.endswith(":0"):
            raise BackendUnavailable("grpcd is not running (no address yet)")
        refusal = self.config.plaintext_refusal()
        if refusal:
            raise BackendUnavailable(refusal)
        with self._lock:
            if self._channel is None or self._channel_addr != addr:
                if self._channel is not None:
                    self._channel.close()
                self._channel = self._new_channel(addr)
                self._channel_addr = addr
                self._methods = {}
            return self._channel

    def _new_channel(self, addr: str) -> grpc.Channel:
        limit = self.config.max_message_mb << 20
        options: list[tuple[str, int | str]] = [
            ("grpc.max_send_message_length", limit),
            ("grpc.max_receive_message_length", limit),
            ("grpc.enable_retries", 0),
        ]
        if self.config.use_tls:
            ca = None
            if self.config.tls_ca:
                try:
                    with open(self.config.tls_ca, "rb") as f:
                        ca = f.read()
                except OSError as e:
                    raise BackendUnavailable(f"cannot read GRPC_TLS_CA '{self.config.tls_ca}': {e.strerror}") from None
            if self.config.tls_server_name:
                options.append(("grpc.ssl_target_name_override", self.config.tls_server_name))
            channel = grpc.secure_channel(addr, grpc.ssl_channel_credentials(root_certificates=ca), options=options)
        else:
            channel = grpc.insecure_channel(addr, options=options)
        if self.config.token:
            channel = grpc.intercept_channel(channel, _BearerToken(self.config.token))
        return channel

    def _fast_client(self, addr: str):
        """The Rust unary client for `addr` (plaintext only: TLS calls stay on grpcio), or None."""
        if self.config.use_tls or self._grpcio_only:
            return None
        cached = self._fast
        if cached is not None and cached[0] == addr:
            return cached[1]
        cls = _fast_client_class()
        if cls is None:
            return None
        with self._lock:
            cached = self._fast
            if cached is None or cached[0] != addr:
                cached = (addr, cls(addr, self.config.max_message_mb << 20))
                self._fast = cached
            return cached[1]

    @property
    def client_name(self) -> str:
        """Which client library carries the unary calls (shown by the benchmark)."""
        if self.config.use_tls or self._grpcio_only or _fast_client_class() is None:
            return "grpcio"
        from hft_lab._rustcore import grpc_spin_us

        return (
            "rust (tonic) for unary and server-streaming calls, grpcio for live streams and cancellable calls; "
            f"small calls polled for up to {grpc_spin_us()} µs while a CPU is spare (HFT_LAB_GRPC_SPIN_US)"
        )

    def security_note(self) -> tuple[str, str] | None:
        """("tls", text) when calls are encrypted, ("insecure", text) for plaintext to a
        non-loopback host, ("refused", text) when plaintext is refused; None on plain loopback."""
        from .config import is_loopback

        c = self.config
        where = self.address or f"{c.grpc_host}:{c.grpc_port}"
        if c.use_tls:
            auth = " + token" if c.token else ""
            return "tls", f"TLS{auth} to {where}"
        refusal = c.plaintext_refusal()
        if refusal:
            return "refused", refusal
        if not is_loopback(c.grpc_host):
            return "insecure", f"unencrypted connection to {where} (GRPC_INSECURE=1)"
        return None

    # ---- calls in progress: the router aborts them when the server is found down (e.g. hung) ----
    def _track(self, call) -> _Inflight:
        t = _Inflight(call)
        with self._lock:
            self._inflight.add(t)
        return t

    def _untrack(self, t: _Inflight) -> None:
        with self._lock:
            self._inflight.discard(t)

    def abort_inflight(self, reason: str) -> int:
        """Cancel every call in progress; each raises BackendUnavailable(reason), which the router
        retries on PyO3. Returns how many were aborted."""
        with self._lock:
            calls = list(self._inflight)
        blocking = False
        for t in calls:
            t.aborted = reason
            if t.call is None:
                blocking = True
            else:
                t.call.cancel()
                if isinstance(t.call, _FastCall):
                    self._fast = None  # the next call connects anew
        if blocking:  # a blocking call stops when its channel closes; the next call reconnects
            with self._lock:
                if self._channel is not None:
                    self._channel.close()
                self._channel = None
                self._methods = {}
        return len(calls)

    def _method(self, name, req_cls, resp_cls, stream=False, server_stream=False, raw=False, service=SERVICE):
        """A cached multi-callable. Responses are decoded by fastwire (arrays copied once out of
        the received bytes); `raw`: the request is already serialised bytes (fastwire.encode)."""
        ch = self._get_channel()
        key = (name, stream, server_stream, raw, service)
        m = self._methods.get(key)
        if m is None:
            path = f"/{service}/{name}"
            kind = ch.stream_stream if stream else (ch.unary_stream if server_stream else ch.unary_unary)
            ser = None if raw else req_cls.SerializeToString
            # raw: the response bytes come back as they are; _unary decodes them (it knows
            # whether the call used shared memory)
            deser = None if raw else fastwire.deserializer(resp_cls)
            m = kind(path, request_serializer=ser, response_deserializer=deser)
            self._methods[key] = m
        return m

    def _error(self, e: grpc.RpcError) -> Exception:
        return map_rpc_error(e, self.address, self.config.max_message_mb)

    def _unary(
        self,
        name,
        request,
        resp_cls,
        cancel: CancelToken | None = None,
        timeout=None,
        arrays: dict | None = None,
        service=SERVICE,
    ):
        """One unary call. `arrays`: NumPy arrays for top-level Vector/Matrix fields of `request`
        (left unset in it), written to the wire without protobuf copies (fastwire), or through
        shared memory when grpcd is on this host (shm.py)."""
        m = self._method(name, type(request), resp_cls, raw=True, service=service)  # request: a message or its bytes
        path = f"/{service}/{name}"
        timeout = self.config.call_timeout_s if timeout is None else timeout
        if cancel is not None and cancel.cancelled:
            # already cancelled: do not start (a quick call could finish before the cancel lands)
            raise Cancelled("cancelled by the user")
        size = _array_bytes(arrays or {})
        poll = name in _POLLED and size <= _POLL_MAX_BYTES
        if arrays and not isinstance(request, bytes):
            pool = self._shm_pool(arrays, size)
            if pool is not None:
                try:
                    slot = pool.acquire()
                except OSError:
                    slot = None  # e.g. the directory went away: the message path below
                if slot is not None:
                    ok = False
                    try:
                        body = slot.body(request, arrays)
                        raw = self._invoke(m, body, timeout, cancel, slot.metadata, path, poll)
                        r = slot.finish(fastwire.decode(raw, resp_cls, shm=True))
                        ok = True
                        return r
                    except _ShmRefused:
                        self._shm = (self.address, None)  # grpcd no longer offers it: message path
                        pool.close()
                    except OSError:
                        pass  # writing the segment failed (tmpfs full?): the message path
                    except BackendUnavailable:
                        pool.close()  # grpcd went away: its successor is asked again
                        self._shm = None
                        raise
                    finally:
                        pool.release(slot, ok)
        body = request if isinstance(request, bytes) else fastwire.encode(request, arrays)
        poll = poll and len(body) <= _POLL_MAX_BYTES
        return fastwire.decode(self._invoke(m, body, timeout, cancel, None, path, poll), resp_cls)

    # Shared memory pays off from ~128 KiB (issue 16, measured interleaved on this VM with grpcd's
    # 1 MiB HTTP/2 frames): a 50-asset portfolio's 200 KB of prices is faster through the
    # segment, a 20-asset one's 80 KB (and anything smaller) through the message; the slot's two
    # files are created once and reused.
    SHM_MIN_BYTES = 128 << 10

    def _shm_pool(self, arrays: dict, size: int | None = None) -> shm.Pool | None:
        """The shared-memory files to use for this call, if grpcd is on this host (see shm.py).
        `size`: the arrays' bytes, if the caller has them already."""
        if size is None:
            size = _array_bytes(arrays)
        if size < self.SHM_MIN_BYTES or size > self.max_message_bytes:
            return None  # small: not worth it; over the limit: the message path's error, the same
        addr = self.address
        cached = self._shm
        if cached is not None and cached[0] == addr:
            return cached[1]
        with self._shm_lock:
            return self._negotiate_shm(addr)

    def _negotiate_shm(self, addr: str) -> shm.Pool | None:
        cached = self._shm
        if cached is not None and cached[0] == addr:
            return cached[1]  # another thread negotiated meanwhile
        if cached is not None and cached[1] is not None:
            cached[1].close()
        from .config import is_loopback

        pool = None
        host = addr.rsplit(":", 1)[0].strip("[]")
        if not self.config.use_tls and is_loopback(host) and os.environ.get("HFT_LAB_SHM", "1") != "0":
            try:
                info = self._unary("GetInfo", pb.InfoRequest(), pb.InfoResponse, timeout=self.config.quick_timeout_s)
                directory = shm.usable_dir(info.shm_dir, info.uid)
                pool = shm.Pool(directory) if directory else None
            except Exception:  # noqa: BLE001 - an old or busy server: no shared memory
                pool = None
        self._shm = (addr, pool)
        return pool

    def _invoke(self, m, body: bytes, timeout, cancel: CancelToken | None, metadata=None, path=None, poll=False):
        fast = self._fast_client(self._channel_addr or "") if cancel is None and path is not None else None
        if fast is not None:
            return self._invoke_fast(fast, path, body, timeout, metadata, poll)
        if cancel is None:
            # A blocking call drives the transport in this thread: for a bulk call it is 1.5x faster
            # than future().result() (no hand-off to grpcio's polling thread). It has no handle to
            # cancel, so abort_inflight closes the channel to stop it.
            t = self._track(None)
            try:
                return m(body, timeout=timeout, metadata=metadata)
            except grpc.RpcError as e:
                if t.aborted:
                    raise BackendUnavailable(t.aborted) from None
                raise self._shm_refused(e, metadata) or self._error(e) from None
            finally:
                self._untrack(t)
        fut = m.future(body, timeout=timeout, metadata=metadata)
        t = self._track(fut)
        try:
            cancel.add_callback(fut.cancel)
            try:
                return fut.result()
            except grpc.FutureCancelledError:
                if t.aborted:
                    raise BackendUnavailable(t.aborted) from None
                raise Cancelled("cancelled by the user") from None
            except grpc.RpcError as e:
                if t.aborted:
                    raise BackendUnavailable(t.aborted) from None
                raise self._shm_refused(e, metadata) or self._error(e) from None
        finally:
            self._untrack(t)

    def _fast_metadata(self, metadata) -> list:
        """The call's metadata for the Rust client, with the bearer token (grpcio's channel adds it
        through _BearerToken)."""
        md = list(metadata or ())
        if self.config.token:
            md.append(("authorization", f"Bearer {self.config.token}"))
        return md

    def _invoke_fast(self, fast, path: str, body: bytes, timeout, metadata, poll=False):
        """A unary call on the Rust client (no cancel token: the router's abort stops it).
        `poll`: a small call grpcd computes on one thread; the client watches its socket for
        the answer instead of sleeping (HFT_LAB_GRPC_SPIN_US, grpc_client.rs)."""
        from hft_lab._rustcore import GrpcCallError

        t = self._track(_FastCall(fast))
        try:
            return fast.call(path, body, self._fast_metadata(metadata), timeout, t.call.generation, poll)
        except GrpcCallError as e:
            if t.aborted:
                raise BackendUnavailable(t.aborted) from None
            err = _FastRpcError(*e.args)
            raise self._shm_refused(err, metadata) or self._error(err) from None
        finally:
            self._untrack(t)

    @staticmethod
    def _shm_refused(e: grpc.RpcError, metadata) -> Exception | None:
        if metadata and e.code() == grpc.StatusCode.FAILED_PRECONDITION and "shared-memory" in (e.details() or ""):
            return _ShmRefused(e.details())
        return None

    def close(self) -> None:
        cached = self._shm
        if cached is not None and cached[1] is not None:
            cached[1].close()
        self._shm = None
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel = None
            self._fast = None

    # ---- Backend ----
    def health(self, timeout: float = 1.0) -> str:
        """grpc.health.v1 status of the HftLab service: SERVING, NOT_SERVING, UNKNOWN or DOWN."""
        try:
            stub = health_pb2_grpc.HealthStub(self._get_channel())
            r = stub.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=timeout)
            return health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)
        except (grpc.RpcError, BackendUnavailable):
            return "DOWN"

    def is_available(self) -> bool:
        return self.health() == "SERVING"

    def _info(self) -> dict:
        r = self._unary("GetInfo", pb.InfoRequest(), pb.InfoResponse, timeout=self.config.quick_timeout_s)
        return dict(
            server_version=r.server_version,
            core_version=r.core_version,
            algorithms=tuple(r.algorithms),
            max_message_bytes=r.max_message_bytes,
            pid=r.pid,
            rpcs=tuple(r.rpcs),
            features=tuple(r.features),
        )

    def _echo(self, values):
        # payload (field 1) written straight from the array: one copy
        body = b"".join([b"\x0a", fastwire.varint(values.nbytes), memoryview(values).cast("B")]) if values.size else b""
        r = self._unary("Echo", body, pb.EchoResponse)
        return np.frombuffer(r.payload, dtype="<f8").copy()

    def echo_packed(self, values: np.ndarray) -> np.ndarray:
        """Echo with `repeated double` (the encoding we did not choose), for the benchmark."""
        r = self._unary("Echo", pb.EchoRequest(values=values), pb.EchoResponse)
        return np.asarray(r.values, dtype=np.float64)

    def _mean_reversion(self, prices, lookback, threshold, exit_threshold, stop_threshold, cancel, outputs=None):
        req = pb.MeanReversionRequest(
            lookback=lookback,
            signal=pb.SignalParameters(entry_threshold=threshold, exit_threshold=exit_threshold, stop_threshold=stop_threshold),
            outputs=outputs or (),
        )
        r = self._unary("MeanReversion", req, pb.MeanReversionResponse, cancel, arrays=dict(prices=prices))
        want = set(outputs) if outputs else {"mean", "std", "zscore", "signals", "positions"}
        d = dict(entries=wire.ints(r.entries), exits=wire.ints(r.exits))
        for name, key, conv in (
            ("mean", "rolling_mean", wire.arr),
            ("std", "rolling_std", wire.arr),
            ("zscore", "zscore", wire.arr),
            ("signals", "signals", wire.i8),
            ("positions", "positions", wire.i8),
        ):
            if name in want:
                d[key] = conv(getattr(r, key))
        for key in ("signals", "positions"):  # issue 16 (bulk): int8 series in the result segment
            a = getattr(r, f"{key}_shm", None)
            if key in want and isinstance(a, np.ndarray):
                d[key] = a
        for key in ("entries", "exits"):  # and int64 indices
            a = getattr(r, f"{key}_shm", None)
            if isinstance(a, np.ndarray):
                d[key] = a.astype(np.int64, copy=False)
        return d

    def _stream(self, lookback, threshold, exit_threshold, stop_threshold):
        cfg = pb.StreamConfig(
            lookback=lookback,
            signal=pb.SignalParameters(entry_threshold=threshold, exit_threshold=exit_threshold, stop_threshold=stop_threshold),
        )
        return _GrpcStream(self, cfg)

    def _fit_ou(self, series, dt, bars_per_day, cancel=None):
        req = pb.OuRequest(dt=dt, bars_per_day=bars_per_day)
        r = self._unary("FitOu", req, pb.OuResponse, cancel, arrays=dict(series=series))
        return wire.fields(r)

    def _backtest(self, prices, positions, cost_bps, periods_per_year, units, notional, cancel=None):
        req = pb.BacktestRequest(cost_bps=cost_bps, periods_per_year=periods_per_year, units=units)
        arrays = dict(prices=prices, positions=positions, notional=notional)
        r = self._unary("Backtest", req, pb.BacktestResponse, cancel, arrays=arrays)
        return wire.fields(r)

    def _run_hmm(self, observations, n_states, max_iterations, tolerance, n_restarts, seed, init, progress, cancel):
        req = pb.HmmRequest(
            observations=wire.vec(observations),
            n_states=n_states,
            max_iterations=max_iterations,
            tolerance=tolerance,
            n_restarts=n_restarts or 0,
            n_restarts_default=n_restarts is None,
            seed=seed,
        )
        if init is not None:
            sp, tm, mu, var = init
            req.init.CopyFrom(
                pb.HmmInit(
                    start_prob=wire.vec(sp),
                    transmat=pb.Matrix(rows=0, cols=0, data=np.ascontiguousarray(tm, dtype="<f8").tobytes()),
                    means=wire.vec(mu),
                    variances=wire.vec(var),
                )
            )

        def result(r):
            d = wire.fields(r)
            k = len(d["means"])
            d["transition_matrix"] = d["transition_matrix"].reshape(k, k)
            d["n_states"] = k
            d["stds"] = np.sqrt(d["variances"])
            return d

        return self._server_stream("RunHmm", req, pb.HmmUpdate, progress, cancel, result)

    # ---- multivariate HMM, filter, walk-forward, live filter (hmm helper) ----
    def _server_stream(
        self, name, req, upd_cls, progress, cancel, on_result, service=SERVICE, progress_args=None, on_progress=None, finals=None
    ):
        """A server-streaming call: for each progress update `progress(*progress_args(upd.progress))`
        (by default the HmmProgress pair iteration, log_likelihood), or `on_progress(upd.progress)`
        when given; False cancels. The first update of a kind in `finals` (default: "result" ->
        `on_result`) ends the call with that function's value. Cancel, deadline and server loss map
        as for unary calls."""
        if cancel is not None and cancel.cancelled:
            raise Cancelled("cancelled by the user")
        if on_progress is None:
            args = progress_args or (lambda g: (g.iteration, g.log_likelihood))
            on_progress = (lambda g: True) if progress is None else (lambda g: progress(*args(g)) is not False)
        finals = finals or {"result": on_result}
        m = self._method(name, type(req), upd_cls, server_stream=True, service=service)
        fast = self._fast_client(self._channel_addr or "") if cancel is None else None
        if fast is not None:
            return self._server_stream_fast(fast, f"/{service}/{name}", req, upd_cls, on_progress, finals, name)
        call = m(req, timeout=self.config.call_timeout_s)
        if cancel is not None:
            cancel.add_callback(call.cancel)
        t = self._track(call)
        try:
            try:
                value = _follow(call, on_progress, finals)
            except Cancelled:
                call.cancel()
                raise
        except grpc.RpcError as e:
            if t.aborted:
                raise BackendUnavailable(t.aborted) from None
            if cancel is not None and cancel.cancelled:
                raise Cancelled("cancelled by the user") from None
            raise self._error(e) from None
        finally:
            self._untrack(t)
        if value is _NO_RESULT:
            raise BackendUnavailable(f"{name} ended without a result")
        return value

    def _server_stream_fast(self, fast, path: str, req, upd_cls, on_progress, finals, name):
        """`_server_stream` on the Rust client (no cancel token; a progress callback returning
        False still stops the call). Issue 16: grpcio's event-engine thread and copies cost ~10 ms
        of client CPU per 100k-observation HMM run, taken from grpcd's two E-step threads."""
        from hft_lab._rustcore import GrpcCallError

        decode = fastwire.deserializer(upd_cls)
        t = self._track(_FastCall(fast))
        stream = None
        try:
            stream = fast.call_stream(
                path, req.SerializeToString(), self._fast_metadata(None), self.config.call_timeout_s, t.call.generation
            )
            value = _follow(map(decode, iter(stream.next, None)), on_progress, finals)
        except GrpcCallError as e:
            if t.aborted:
                raise BackendUnavailable(t.aborted) from None
            raise self._error(_FastRpcError(*e.args)) from None
        finally:
            if stream is not None:
                stream.cancel()
            self._untrack(t)
        if value is _NO_RESULT:
            raise BackendUnavailable(f"{name} ended without a result")
        return value

    def _run_hmm_mv(self, x, k, covariance_type, max_iterations, tolerance, n_restarts, seed, init, progress, cancel):
        req = pb.HmmMvRequest(
            observations=wire.mat(x),
            n_states=k,
            covariance_type=covariance_type,
            max_iterations=max_iterations,
            tolerance=tolerance,
            n_restarts=n_restarts,
            seed=seed,
        )
        if init is not None:
            sp, tm, mu, cv = init
            req.init.CopyFrom(
                pb.HmmModel(start_prob=wire.vec(sp), transmat=wire.vec(tm), means=wire.vec(mu), covars=wire.vec(cv))
            )

        def result(r):
            d = wire.fields(r, exclude=("model",))
            d.update(_model_fields(r.model))
            return d

        return self._server_stream("RunHmmMv", req, pb.HmmMvUpdate, progress, cancel, result)

    def _hmm_filter(self, model, x, cancel):
        req = pb.HmmFilterRequest(model=_pb_model(model), observations=wire.mat(x))
        r = self._unary("HmmFilter", req, pb.HmmFilterResponse, cancel)
        return dict(filtered=wire.matrix(r.filtered), log_likelihood=r.log_likelihood)

    def _hmm_walk_forward(
        self, x, formation, step, k, covariance_type, max_iterations, tolerance, n_restarts, seed, progress, cancel
    ):
        req = pb.HmmWalkForwardRequest(
            observations=wire.mat(x),
            formation=formation,
            step=step,
            n_states=k,
            covariance_type=covariance_type,
            max_iterations=max_iterations,
            tolerance=tolerance,
            n_restarts=n_restarts,
            seed=seed,
        )

        def result(r):
            models = [_model_fields(m) for m in r.models]
            w, d = len(models), x.shape[1]
            kk = models[0]["n_states"] if models else k

            def stack(key, shape):
                return np.stack([m[key] for m in models]) if models else np.zeros(shape)

            return dict(
                start_index=r.start_index,
                filtered=wire.matrix(r.filtered).reshape(-1, kk),
                regimes=wire.ints(r.regimes),
                window_starts=wire.ints(r.window_starts),
                window_log_likelihoods=wire.arr(r.window_log_likelihoods),
                window_means=stack("means", (w, kk, d)),
                window_covars=stack("covars", (w, kk, d, d)),
                window_transition_matrices=stack("transition_matrix", (w, kk, kk)),
                window_start_probabilities=stack("start_probabilities", (w, kk)),
            )

        prog = None if progress is None else (lambda w, total: progress(w, int(total)))
        return self._server_stream("HmmWalkForward", req, pb.HmmWalkForwardUpdate, prog, cancel, result)

    def _hmm_online_filter(self, model):
        return _GrpcHmmFilter(self, _pb_model(model))

    def _optimize_portfolio(self, prices, method, params, asset_names, cancel):
        # issue 16 (small calls): the names stay on this side (the caller attaches them to the
        # result); sending 50 strings to grpcd and back cost more than the rest of the request.
        req = pb.PortfolioRequest(method=method, **params)
        r = self._unary("OptimizePortfolio", req, pb.PortfolioResponse, cancel, arrays=dict(prices=prices))
        return wire.fields(r, exclude=("asset_names",))

    def _sparse_portfolio(
        self, prices, method, lambda_param, alpha, target, k, max_iterations, tolerance, asset_names, cancel, adf_autolag=None
    ):
        req = pb.SparseRequest(
            method=method,
            lambda_param=lambda_param,
            alpha=alpha,
            target=target,
            k=k,
            max_iterations=max_iterations,
            tolerance=tolerance,
            asset_names=list(asset_names),
            adf_autolag=adf_autolag or "",  # "": the core's default
        )
        r = self._unary("SparsePortfolio", req, pb.SparseResponse, cancel, arrays=dict(prices=prices))
        return wire.fields(r, exclude=("asset_names",))

    def _sparse_lambda_path(self, prices, target, lambdas, n_lambdas, alpha, tolerance, max_iterations, cancel, adf_autolag=None):
        req = pb.LambdaPathRequest(
            target=target,
            lambdas=lambdas or [],
            n_lambdas=n_lambdas,
            alpha=alpha,
            tolerance=tolerance,
            max_iterations=max_iterations,
            adf_autolag=adf_autolag or "",  # "": the core's default
        )
        r = self._unary("SparseLambdaPath", req, pb.LambdaPathResponse, cancel, arrays=dict(prices=prices))
        return wire.fields(r)

    # ---- pairs workflow (issue 17) ----
    @staticmethod
    def _pair_rows(r) -> dict:
        d = wire.fields(r)
        for k in ("i", "j", "used_lag"):
            d[k] = np.asarray(d[k], dtype=np.int64)
        return d

    def _scan_pairs(self, prices, config, pair_range, cancel, progress, partial):
        extra = {k: v for k, v in config.items() if k not in ("trend", "autolag") and v is not None}
        cfg = pb.PairScanConfig(trend=config["trend"], autolag=config["autolag"], **extra)
        req = pb.PairScanRequest(prices=wire.mat(prices), config=cfg, partial_rows=partial is not None)
        if pair_range is not None:
            req.pair_start, req.pair_end = pair_range

        def on_progress(g) -> bool:
            if progress is not None and progress(int(g.done), int(g.total)) is False:
                return False
            return partial is None or partial(self._pair_rows(g.rows)) is not False

        def result(r):
            d = self._pair_rows(r.rows)
            d.update(
                n_assets=int(r.n_assets),
                n_tested=int(r.n_tested),
                n_failed=int(r.n_failed),
                n_passed=int(r.n_passed),
                critical_values=wire.arr(r.critical_values),
                pvalue_matrix=wire.matrix(r.pvalue_matrix),
            )
            return d

        finals = {"shard": self._pair_rows, "result": result}
        return self._server_stream(
            "ScanPairs", req, pb.PairScanUpdate, None, cancel, None, PAIRS_SERVICE, on_progress=on_progress, finals=finals
        )

    def _johansen(self, prices, det_order, k_ar_diff):
        req = pb.JohansenRequest(prices=wire.mat(prices), det_order=det_order, k_ar_diff=k_ar_diff)
        r = self._unary("Johansen", req, pb.JohansenResponse, service=PAIRS_SERVICE)
        d = wire.fields(r)
        d["nobs"] = int(d["nobs"])
        return d

    def _kalman_hedge(self, y, x, delta, observation_var):
        req = pb.KalmanRequest(y=wire.vec(y), x=wire.vec(x), delta=delta, observation_var=observation_var)
        return wire.fields(self._unary("KalmanHedge", req, pb.KalmanResponse, service=PAIRS_SERVICE))

    # ---- asset moments and Ledoit-Wolf covariance (issue 15) ----
    def _estimate_moments(self, prices, returns, annualization, covariance, cancel):
        # the matrix through fastwire (or shared memory), like the portfolio's prices
        req = pb.MomentsRequest(returns=returns, annualization=annualization, covariance=covariance)
        return wire.fields(self._unary("EstimateMoments", req, pb.MomentsResponse, cancel, arrays=dict(prices=prices)))

    def _ledoit_wolf(self, data, cancel):
        r = self._unary("LedoitWolf", pb.LedoitWolfRequest(), pb.LedoitWolfResponse, cancel, arrays=dict(data=data))
        return wire.fields(r)

    def _walk_forward(self, prices, params, progress, cancel):
        q = dict(params)
        sel = pb.PairScanConfig(
            trend=q.pop("trend"),
            autolag=q.pop("autolag"),
            **{
                k: q.pop(k)
                for k in ("max_lag", "max_pvalue", "max_qvalue", "min_half_life", "max_half_life", "min_correlation", "top")
                if k in q and q[k] is not None
            },
        )
        for k in ("max_lag", "max_pvalue", "max_qvalue", "min_half_life", "max_half_life", "min_correlation", "top"):
            q.pop(k, None)
        sig = pb.SignalParameters(entry_threshold=q.pop("entry"), exit_threshold=q.pop("exit"))
        stop = q.pop("stop")
        if stop is not None:
            sig.stop_threshold = stop
        step = q.pop("step")
        req = pb.WalkForwardRequest(prices=wire.mat(prices), selection=sel, signal=sig, **q)
        if step is not None:
            req.step = step
        if progress is None:
            r = self._unary("WalkForward", req, pb.WalkForwardResponse, cancel, service=PAIRS_SERVICE)
        else:  # WalkForwardStream: progress after each window while it runs, then the same result
            r = self._walk_forward_stream(req, progress, cancel)
        d = wire.fields(r, exclude=("selections", "is_selections"))
        for k in ("selections", "is_selections"):
            d[k] = wire.fields(getattr(r, k))
        return d

    def _walk_forward_stream(self, req, progress, cancel):
        """WalkForwardStream: progress(window, fraction) per update (False cancels), then the
        WalkForwardResponse (the message WalkForward returns)."""
        if cancel is not None and cancel.cancelled:
            raise Cancelled("cancelled by the user")
        call = self._method(
            "WalkForwardStream", pb.WalkForwardRequest, pb.WalkForwardUpdate, server_stream=True, service=PAIRS_SERVICE
        )(req, timeout=self.config.call_timeout_s)
        if cancel is not None:
            cancel.add_callback(call.cancel)
        t = self._track(call)
        try:
            for upd in call:
                if upd.WhichOneof("kind") == "progress":
                    if progress(int(upd.progress.window), float(upd.progress.fraction)) is False:
                        call.cancel()
                        raise Cancelled("cancelled by the user")
                elif upd.WhichOneof("kind") == "result":
                    return upd.result
        except grpc.RpcError as e:
            if t.aborted:
                raise BackendUnavailable(t.aborted) from None
            if cancel is not None and cancel.cancelled:
                raise Cancelled("cancelled by the user") from None
            raise self._error(e) from None
        finally:
            self._untrack(t)
        raise BackendUnavailable("WalkForwardStream ended without a result")
