"""Backend choice and fallback.

The router owns both backends (and the ServerManager when it spawns grpcd). `resolve()` gives the
backend a call should use: the user's choice when it is up, otherwise the other one, with a note
the UI shows (status bar + log). When the chosen backend comes back, it is used again.
`call(op, ...)` also retries once on the other backend when the chosen one dies mid-call, times
out (DEADLINE_EXCEEDED) or is found down while the call waits (the algorithms are deterministic,
so the answer is the same).

Health is never checked on the caller's thread: a managed grpcd is watched by the ServerManager's
watchdog, a remote one by a `HealthMonitor` thread; `resolve()` reads their cached state. When
either marks gRPC down, calls in progress on it are aborted and retried on PyO3.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .base import Backend
from .config import BackendConfig, BackendType
from .errors import BackendUnavailable
from .pyo3_backend import Pyo3Backend
from .server import HealthMonitor, ServerManager

if TYPE_CHECKING:
    from .grpc_backend import GrpcBackend

log = logging.getLogger("hft_lab.router")


@dataclass(frozen=True)
class Resolution:
    backend: Backend
    requested: BackendType
    fallback: bool
    note: str = ""


def _attach_resolution(e: BaseException, res: Resolution) -> None:
    """Record on the exception which backend ran the failed call (ui/worker.py reads `e.resolution`)."""
    setattr(e, "resolution", res)  # an ad-hoc attribute: exception types do not declare it


class BackendRouter:
    def __init__(self, config: BackendConfig | None = None, on_change: Callable[[], None] | None = None):
        self.config = config or BackendConfig.from_env()
        self.on_change = on_change
        self.preferred = self.config.backend_type
        self.manager: ServerManager | None = None
        self.monitor: HealthMonitor | None = None
        self._grpc: GrpcBackend | None = None  # built on first use (`grpc`): importing grpc is slow
        self._grpc_lock = threading.Lock()
        self._first_start: threading.Event | None = None  # set when start_in_background() has finished
        self._start_lock = threading.Lock()
        self._start_began = False
        self._closed = False
        if self.config.spawn_local_server:
            self.manager = ServerManager(self.config, on_state=self._grpc_state_changed)
        else:
            self.monitor = HealthMonitor(self.grpc, on_state=self._grpc_state_changed)
        self.pyo3 = Pyo3Backend()
        self._last_fallback: str | None = None
        self._lock = threading.Lock()

    @property
    def grpc(self) -> GrpcBackend:
        """The gRPC client, created (and the grpc package imported) the first time it is needed."""
        g = self._grpc
        if g is None:
            with self._grpc_lock:
                if self._grpc is None:
                    from .grpc_backend import GrpcBackend

                    if self.manager is not None:
                        self._grpc = GrpcBackend(
                            self.config.local(), address=lambda: self.manager.address if self.manager else ""
                        )
                    else:
                        self._grpc = GrpcBackend(self.config)
                g = self._grpc
        return g

    def _changed(self) -> None:
        if self.on_change:
            self.on_change()

    def _grpc_state_changed(self, state: str, detail: str) -> None:
        # a call that failed (e.g. one shed by an overloaded server) must not abort the others:
        # only a failed health check or a dead process does
        from_check = self.monitor is None or self.monitor.from_check
        if state in ("down", "failed", "stopped") and from_check and self._grpc is not None:
            n = self._grpc.abort_inflight(f"grpcd went down while the call waited ({detail or state})")
            if n:
                log.warning("%d gRPC call(s) in progress aborted: retrying on PyO3", n)
        self._changed()

    def start(self) -> None:
        """Start grpcd if we manage it. A failure is logged; calls then fall back to PyO3."""
        if self.manager is not None:
            try:
                self.manager.start()
            except BackendUnavailable as e:
                log.warning("gRPC backend unavailable: %s", e)

    def start_in_background(self, gate: threading.Event | None = None) -> threading.Thread:
        """`start()` on a thread, so the window is built while grpcd starts (issue 16). With
        `gate`, the thread waits for it (at most 10 s) before starting: e.g. the first paint of
        the window, so that the grpc import does not compete with it for the GIL. Until the start
        is over, a call that wants gRPC waits for it (`resolve()`), and the GUI announces no fallback."""
        done = self._first_start = threading.Event()

        def run():
            try:
                deadline = time.monotonic() + 10.0
                while gate is not None and not gate.is_set() and not self._closed and time.monotonic() < deadline:
                    gate.wait(0.05)
                with self._start_lock:
                    if self._closed:
                        return
                    self._start_began = True
                self.start()
            finally:
                done.set()
                try:
                    self._changed()
                except RuntimeError:  # the window it notifies is already gone
                    pass

        t = threading.Thread(target=run, name="grpcd-start", daemon=True)
        t.start()
        return t

    def wait_started(self, timeout: float | None = None) -> bool:
        """Wait until a start_in_background() is over (True at once when there is none)."""
        return self._first_start is None or self._first_start.wait(timeout)

    def _starting(self) -> bool:
        """start_in_background() has not finished yet."""
        return self._first_start is not None and not self._first_start.is_set()

    def stop(self) -> None:
        if self.monitor is not None:
            self.monitor.stop()
        with self._start_lock:
            self._closed = True  # a background start that has not begun never will
        if self._first_start is not None and self._start_began:
            self._first_start.wait(self.config.connect_timeout_s)  # a grpcd being spawned is then stopped too
        if self._grpc is not None:
            self._grpc.close()
        if self.manager is not None:
            self.manager.stop()

    def set_preferred(self, t: BackendType | str) -> None:
        self.preferred = BackendType.parse(t)
        log.info("backend choice: %s", self.preferred.label)
        self._changed()

    def backend(self, t: BackendType) -> Backend:
        return self.grpc if t == BackendType.GRPC else self.pyo3

    def grpc_state(self, wait: bool = False) -> str:
        """starting / serving / down / failed / stopped for a managed server; starting (first check
        pending) / serving / down for a remote one. Cached: never a health RPC. `wait=True` (off
        the GUI thread only) waits for a remote server's first health check."""
        if self.manager is not None:
            return self.manager.state
        if self.monitor is None:
            return "down"
        if wait and self.monitor.state == "starting":
            self.monitor.wait_first_check(self.config.quick_timeout_s)
        return self.monitor.state

    def grpc_detail(self) -> str:
        """Why gRPC is in its state (e.g. a bad GRPCD_PATH, a refused plaintext connection)."""
        src = self.manager if self.manager is not None else self.monitor
        return src.detail if src is not None else ""

    def security_note(self) -> tuple[str, str] | None:
        """For the status bar: ("tls", text) when calls to a remote grpcd are encrypted,
        ("insecure", text) for plaintext beyond loopback (GRPC_INSECURE=1), ("refused", text) when
        plaintext was refused; None for the app's own grpcd or plain loopback."""
        if self.manager is not None:
            return None
        return self.grpc.security_note()

    def _up(self, t: BackendType, wait: bool = True) -> bool:
        if t == BackendType.PYO3:
            return self.pyo3.is_available()
        if self.manager is not None:
            if wait and self._starting() and self._first_start is not None:
                self._first_start.wait(self.config.connect_timeout_s)  # off the GUI thread only
            return self.manager.state == "serving"
        if self.monitor is None:
            return False
        if wait and self.monitor.state == "starting":
            self.monitor.wait_first_check(self.config.quick_timeout_s)
        return self.monitor.state == "serving"

    def resolve(self, wait: bool = True) -> Resolution:
        """The backend to use now. `wait=False` (the GUI thread) never waits for a remote
        server's first health check; it treats "not checked yet" as down."""
        want = self.preferred
        order = {
            BackendType.PYO3: [BackendType.PYO3, BackendType.GRPC],
            BackendType.GRPC: [BackendType.GRPC, BackendType.PYO3],
            BackendType.AUTO: [BackendType.PYO3, BackendType.GRPC],
        }[want]
        for i, t in enumerate(order):
            if self._up(t, wait):
                fallback = i > 0 and want != BackendType.AUTO
                note = f"{order[0].label} is down: using {t.label}" if fallback else ""
                unknown = not wait and ((self.monitor is not None and self.monitor.state == "starting") or self._starting())
                if not unknown:  # a remote server not checked yet is no reason to announce a fallback
                    self._note_fallback(note)
                return Resolution(self.backend(t), want, fallback, note)
        raise BackendUnavailable("no backend is available: the PyO3 extension is missing and grpcd is down")

    def _note_fallback(self, note: str) -> None:
        with self._lock:
            changed = note != (self._last_fallback or "")
            self._last_fallback = note or None
        if changed:
            if note:
                log.warning("fallback active: %s", note)
            else:
                log.info("fallback over: using the chosen backend again")
            self._changed()

    @property
    def fallback_note(self) -> str | None:
        return self._last_fallback

    @staticmethod
    def _invoke(backend: Backend, op: str | Callable[..., Any], args, kwargs):
        if callable(op):
            return op(backend, *args, **kwargs)
        return getattr(backend, op)(*args, **kwargs)

    def call(self, op: str | Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, Resolution]:
        """Run `backend.<op>(...)` (or `op(backend, ...)` for a callable) on the resolved backend;
        retry once on the other if it dies mid-call."""
        res = self.resolve()
        try:
            return self._invoke(res.backend, op, args, kwargs), res
        except (BackendUnavailable, TimeoutError) as e:
            _attach_resolution(e, res)
            on_grpc = res.backend is self.grpc
            if isinstance(e, TimeoutError) and not on_grpc:
                raise
            if on_grpc and self.monitor is not None:
                if isinstance(e, BackendUnavailable):
                    self.monitor.mark_down(str(e))  # no health wait on the next calls
                else:
                    self.monitor.recheck()
            other = BackendType.PYO3 if res.backend.backend_type == BackendType.GRPC else BackendType.GRPC
            if not self._up(other):
                raise
            note = f"{res.backend.name} failed ({e}): retried on {self.backend(other).name}"
            self._note_fallback(note)
            r2 = Resolution(self.backend(other), res.requested, True, note)
            try:
                return self._invoke(r2.backend, op, args, kwargs), r2
            except Exception as e2:
                _attach_resolution(e2, r2)
                raise
        except Exception as e:
            _attach_resolution(e, res)  # so the UI can say which backend failed
            raise
