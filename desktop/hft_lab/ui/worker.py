"""Running backend calls off the GUI thread.

`TaskRunner` is a GUI-thread QObject. `start()` runs `router.call(op, ...)` on a thread of its
own bounded QThreadPool (MAX_THREADS: a cancelled call that is still finishing in the background
does not hold up the next one) with a fresh `TaskContext` (hft_lab.analysis.context: a CancelToken with progress and
partial-result channels): a task function gets it as `ctx=`, a backend method as `cancel=`.
Starting a new task cancels the previous one, and a stale task's result, progress and partial
results never reach the view (they are dropped by id). The worker thread only emits on the
runner's own emitter; the runner re-emits from the GUI thread (pytest-qt's waitSignal is
reliable on that, see ARCHITECTURE.md). `shutdown()` (on window close) cancels the running task
and waits, bounded, for the pool's threads to finish.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QThreadPool, Signal

from hft_lab.analysis.context import TaskContext
from hft_lab.backends import Cancelled

if TYPE_CHECKING:
    from hft_lab.backends.router import BackendRouter  # (imports grpc: not at start-up)

log = logging.getLogger("hft_lab.worker")


@dataclass(frozen=True)
class TaskOutcome:
    task_id: int
    op: str
    ok: bool
    value: Any  # the result, or the exception
    backend_name: str
    seconds: float
    note: str = ""
    size: str = ""

    @property
    def cancelled(self) -> bool:
        return not self.ok and isinstance(self.value, Cancelled)


class _Emitter(QObject):
    """The worker threads emit on it; Qt queues the calls to the GUI thread (its thread)."""

    done = Signal(object)
    progress = Signal(int, object)
    partial = Signal(int, object)


class TaskRunner(QObject):
    finished = Signal(object)  # TaskOutcome (ok or error), emitted on the GUI thread
    progress = Signal(object)  # ctx.progress(payload) of the current task
    partial = Signal(object)  # ctx.partial(value) of the current task
    exited = Signal(int)  # task id: its function has returned (also a stale or cancelled one)
    busy_changed = Signal(bool)

    _ids = itertools.count(1)
    MAX_THREADS = 4

    def __init__(self, router: BackendRouter, parent: QObject | None = None):
        super().__init__(parent)
        self.router = router
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(self.MAX_THREADS)
        self._emitter = _Emitter(self)
        self._emitter.done.connect(self._on_done)
        self._emitter.progress.connect(self._on_progress)
        self._emitter.partial.connect(self._on_partial)
        self._current: tuple[int, TaskContext] | None = None

    @property
    def busy(self) -> bool:
        return self._current is not None

    def start(self, op: str | Callable[..., Any], *args: Any, **kwargs: Any) -> int:
        """Run `backend.<op>(*args, **kwargs, cancel=ctx)` (or `op(backend, *args, **kwargs,
        ctx=ctx)` for a task function) off the GUI thread."""
        self.cancel()
        tid = next(self._ids)
        emitter = self._emitter
        ctx = TaskContext(
            on_progress=lambda payload: emitter.progress.emit(tid, payload),
            on_partial=lambda value: emitter.partial.emit(tid, value),
        )
        self._current = (tid, ctx)
        kwargs["cancel" if isinstance(op, str) else "ctx"] = ctx
        label = op if isinstance(op, str) else getattr(op, "__name__", "task")
        size = _size_of(args)

        def run():
            threading.current_thread().name = f"task-{label}-{tid}"
            t0 = time.perf_counter()
            name, note = "", ""
            try:
                value, res = self.router.call(op, *args, **kwargs)
                name, note = res.backend.name, res.note
                out = TaskOutcome(tid, label, True, value, name, time.perf_counter() - t0, note, size)
            except BaseException as e:  # the view shows every failure; nothing is lost silently
                res = getattr(e, "resolution", None)
                if res is not None:
                    name, note = res.backend.name, res.note
                if not isinstance(e, (ValueError, Cancelled)):
                    log.exception("%s failed", label)
                out = TaskOutcome(tid, label, False, e, name, time.perf_counter() - t0, note, size)
            emitter.done.emit(out)

        self.pool.start(run)
        self.busy_changed.emit(True)
        return tid

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel the running task and wait (at most timeout_ms) until every task has returned."""
        self.cancel()
        return self.pool.waitForDone(timeout_ms)

    @property
    def current_id(self) -> int | None:
        return self._current[0] if self._current else None

    def cancel(self) -> None:
        if self._current is not None:
            self._current[1].cancel()
            self._current = None
            self.busy_changed.emit(False)

    def _on_done(self, out: TaskOutcome) -> None:
        _log_outcome(out)
        self.exited.emit(out.task_id)
        if self._current is None or out.task_id != self._current[0]:
            return  # stale (cancelled or superseded): never reaches the view
        self._current = None
        self.busy_changed.emit(False)
        self.finished.emit(out)

    def _on_progress(self, task_id: int, payload: Any) -> None:
        if self._current is not None and task_id == self._current[0]:
            self.progress.emit(payload)

    def _on_partial(self, task_id: int, value: Any) -> None:
        if self._current is not None and task_id == self._current[0]:
            self.partial.emit(value)


def _size_of(args) -> str:
    """The input's size for the log line: the shape of the first array-like argument."""
    for a in args:
        shape = getattr(a, "shape", None)
        if shape is not None:
            return " × ".join(f"{d:,}" for d in shape)
    return ""


def _log_outcome(out: TaskOutcome) -> None:
    """Every run goes to the log panel: operation, backend, input size, time, and how it ended."""
    size = f" on {out.size}" if out.size else ""
    via = f" via {out.backend_name}" if out.backend_name else ""
    note = f" ({out.note})" if out.note else ""
    ms = out.seconds * 1e3
    if out.ok:
        log.info("run %s%s%s: done in %.1f ms%s", out.op, size, via, ms, note)
    elif out.cancelled:
        log.info("run %s%s%s: cancelled after %.1f ms", out.op, size, via, ms)
    else:
        log.warning("run %s%s%s: failed after %.1f ms: %s%s", out.op, size, via, ms, out.value, note)
