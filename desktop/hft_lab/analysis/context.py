"""The task context: what every tab computation gets from whoever runs it (Qt-free).

A `TaskContext` is a `CancelToken` (so it is handed on to the backends as `cancel=`: the PyO3
backend passes its Rust flag to the core, the gRPC backend cancels the in-flight call) with two
more channels back to the caller: `progress(payload)` (e.g. one EM iteration) and
`partial(value)` (e.g. one finished benchmark cell). Both are thread-safe callbacks supplied by
the runner (the GUI's TaskRunner forwards them to the GUI thread by queued signals); without a
runner (tests, scripts) they go nowhere, or to the callables given."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hft_lab.backends import Cancelled, CancelToken


class TaskContext(CancelToken):
    def __init__(
        self,
        on_progress: Callable[[Any], None] | None = None,
        on_partial: Callable[[Any], None] | None = None,
    ) -> None:
        super().__init__()
        self._on_progress = on_progress
        self._on_partial = on_partial

    def progress(self, payload: Any) -> bool:
        """Report progress; returns False once the task is cancelled (a callback contract the
        core's progress hooks use: False stops the computation)."""
        if self._on_progress is not None:
            self._on_progress(payload)
        return not self.cancelled

    def partial(self, value: Any) -> None:
        """Hand over a piece of the result before the task ends."""
        if self._on_partial is not None:
            self._on_partial(value)

    def check(self) -> None:
        """Raise Cancelled if the task was cancelled (between steps of a task)."""
        if self.cancelled:
            raise Cancelled("cancelled by the user")


def check(ctx: CancelToken | None) -> None:
    """`ctx.check()` for an optional context or plain token."""
    if ctx is not None and ctx.cancelled:
        raise Cancelled("cancelled by the user")
