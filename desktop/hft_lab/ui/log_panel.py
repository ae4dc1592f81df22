"""A logging handler feeding a read-only text panel (thread-safe through a queued signal)."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QPlainTextEdit


class _Bridge(QObject):
    line = Signal(str)


class QtLogHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.bridge = _Bridge()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.bridge.line.emit(self.format(record))
        except RuntimeError:  # the panel is gone (shutdown)
            pass


class LogPanel(QPlainTextEdit):
    MAX_LINES = 5000

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMaximumBlockCount(self.MAX_LINES)
        f = QFont("DejaVu Sans Mono")
        f.setStyleHint(QFont.StyleHint.Monospace)
        self.setFont(f)
        self.handler = QtLogHandler()
        self.handler.bridge.line.connect(self.appendPlainText)

    def sizeHint(self):  # a few lines tall by default: the tabs get the space
        from PySide6.QtCore import QSize

        return QSize(800, 110)

    def install(self, *loggers: str) -> None:
        for name in loggers or ("",):
            lg = logging.getLogger(name)
            lg.addHandler(self.handler)
            if lg.level == logging.NOTSET or lg.level > logging.INFO:
                lg.setLevel(logging.INFO)

    def uninstall(self) -> None:
        for lg in [logging.getLogger()] + [logging.getLogger(n) for n in logging.root.manager.loggerDict]:
            if isinstance(lg, logging.Logger) and self.handler in lg.handlers:
                lg.removeHandler(self.handler)
