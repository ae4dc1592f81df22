"""`FirstPaint`: run a callback once, right after a widget has painted for the first time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, QObject, QTimer


class FirstPaint(QObject):
    """Event filter for a widget (e.g. the main window): on its first Paint event, `then()` is
    posted to the next turn of the event loop, i.e. it runs once the whole paint pass (children
    included) is done. The filter then removes itself."""

    def __init__(self, widget: QObject, then: Callable[[], Any]):
        super().__init__(widget)
        self._then: Callable[[], Any] | None = then
        widget.installEventFilter(self)

    def eventFilter(self, obj, ev):  # noqa: N802 (Qt name)
        if self._then is not None and ev.type() == QEvent.Type.Paint:
            then, self._then = self._then, None
            obj.removeEventFilter(self)
            QTimer.singleShot(0, self, then)  # not run if the widget (our parent) is gone by then
        return False
