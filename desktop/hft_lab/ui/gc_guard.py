"""Python's cyclic garbage collector runs on the GUI thread only.

The collector runs in whichever thread happens to allocate when a threshold is crossed. When that
is a worker thread (a backend call, the gRPC health monitor) and the garbage holds Qt objects,
their C++ destructors run on that thread while it holds Qt's signal-slot mutex and then waits for
the GIL, which the GUI thread holds while it waits for the same mutex: a deadlock (seen in the test
suite). The usual remedy for Qt + Python threads: disable automatic collection and collect from a
GUI-thread timer instead, with the same generation thresholds."""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer


class GuiThreadGC(QObject):
    INTERVAL_MS = 250

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setInterval(self.INTERVAL_MS)
        self._timer.timeout.connect(self.check)
        self._was_enabled = gc.isenabled()

    def install(self) -> None:
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._timer.start()

    def uninstall(self) -> None:
        self._timer.stop()
        if self._was_enabled:
            gc.enable()

    def check(self) -> int:
        """Collect the generations whose thresholds are crossed (as the automatic collector would)."""
        c0, c1, c2 = gc.get_count()
        t0, t1, t2 = gc.get_threshold()
        if c2 > t2:
            return gc.collect(2)
        if c1 > t1:
            return gc.collect(1)
        if c0 > t0:
            return gc.collect(0)
        return 0
