"""The log panel: a logging handler feeding a read-only text view (thread-safe through a queued
signal), with a level filter, a text filter, Clear and Save…; and the one hook that catches every
exception raised in a Qt slot (or any thread) and brings it to the user: logged with its traceback
in the panel, shown in a message box, never only on stderr."""

from __future__ import annotations

import collections
import logging
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

log = logging.getLogger("hft_lab.ui")

LEVELS = {"all": logging.DEBUG, "info": logging.INFO, "warnings": logging.WARNING, "errors": logging.ERROR}


class _Bridge(QObject):
    line = Signal(int, str)


class QtLogHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.bridge = _Bridge()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.bridge.line.emit(record.levelno, self.format(record))
        except RuntimeError:  # the panel is gone (shutdown)
            pass


class LogPanel(QWidget):
    """Log lines (newest last), filtered by level and text; Clear empties it, Save… writes every
    line kept (not only the filtered ones) to a text file."""

    MAX_LINES = 5000

    def __init__(self, parent=None):
        super().__init__(parent)
        self.lines: collections.deque[tuple[int, str]] = collections.deque(maxlen=self.MAX_LINES)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setMaximumBlockCount(self.MAX_LINES)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        f = QFont("DejaVu Sans Mono")
        f.setStyleHint(QFont.StyleHint.Monospace)
        self.text.setFont(f)
        self.level = QComboBox()
        self.level.addItems(list(LEVELS))
        self.level.setCurrentText("info")
        self.level.setToolTip("Show lines of this level and above")
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter (text in the line)…")
        self.filter.setClearButtonEnabled(True)
        self.clear_button = QPushButton("Clear")
        self.save_button = QPushButton("Save…")
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.level)
        bar.addWidget(self.filter, 1)
        bar.addWidget(self.clear_button)
        bar.addWidget(self.save_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.setSpacing(2)
        lay.addLayout(bar)
        lay.addWidget(self.text, 1)
        self.handler = QtLogHandler()
        # owned by the panel (C++): a parentless bridge in a reference cycle would be destroyed by
        # Python's garbage collector, possibly inside a Qt call holding the signal-slot mutex
        self.handler.bridge.setParent(self)
        self.handler.bridge.line.connect(self.append, Qt.ConnectionType.QueuedConnection)
        self.level.currentIndexChanged.connect(self._refilter)
        self.filter.textChanged.connect(self._refilter)
        self.clear_button.clicked.connect(self.clear)
        self.save_button.clicked.connect(self._save_clicked)

    def sizeHint(self):  # a few lines tall by default: the tabs get the space
        from PySide6.QtCore import QSize

        return QSize(800, 130)

    # ---- lines ----
    def _shown(self, level: int, line: str) -> bool:
        if level < LEVELS[self.level.currentText()]:
            return False
        needle = self.filter.text().strip().lower()
        return not needle or needle in line.lower()

    def append(self, level: int, line: str) -> None:
        self.lines.append((level, line))
        if self._shown(level, line):
            self.text.appendPlainText(line)

    def appendPlainText(self, line: str) -> None:  # a plain INFO line (kept for callers of the old panel)
        self.append(logging.INFO, line)

    def toPlainText(self) -> str:
        return self.text.toPlainText()

    def all_text(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def _refilter(self, *_) -> None:
        self.text.setPlainText("\n".join(line for lv, line in self.lines if self._shown(lv, line)))
        self.text.moveCursor(self.text.textCursor().MoveOperation.End)

    def clear(self) -> None:
        self.lines.clear()
        self.text.clear()

    def save(self, path) -> Path:
        path = Path(path)
        path.write_text(self.all_text() + "\n", encoding="utf-8")
        return path

    def _save_clicked(self) -> None:
        from hft_lab.ui.files import save_file_name

        path = save_file_name(self, "Save the log", "hft-lab-log.txt", "Text files (*.txt *.log);;All files (*)")
        if not path:
            return
        try:
            self.save(path)
        except OSError as e:
            QMessageBox.warning(self, "Save the log", f"Could not write {path}: {e}")
            return
        log.info("log saved to %s", path)

    # ---- logging ----
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


# ----------------------------------------------------------------------------------------------
# one hook for every exception raised in a Qt slot or a thread
# ----------------------------------------------------------------------------------------------


class ErrorReporter(QObject):
    """`sys.excepthook` / `threading.excepthook` replacement: the exception is logged with its
    traceback (the log panel shows it) and a message box tells the user, on the GUI thread.
    Several exceptions in a burst give one box (the rest are in the log)."""

    error = Signal(str, str)  # title, text

    def __init__(self, parent_widget: QWidget | None = None):
        super().__init__(parent_widget)
        self.parent_widget = parent_widget
        self.count = 0
        self.last: str = ""
        self._box: QMessageBox | None = None
        self._old_hook: Any = None
        self._old_thread_hook: Any = None
        self.error.connect(self._show, Qt.ConnectionType.QueuedConnection)

    def install(self) -> None:
        self._old_hook, self._old_thread_hook = sys.excepthook, threading.excepthook
        sys.excepthook = self.handle
        threading.excepthook = lambda args: self.handle(args.exc_type, args.exc_value, args.exc_traceback)

    def uninstall(self) -> None:
        if self._old_hook is not None:
            sys.excepthook, threading.excepthook = self._old_hook, self._old_thread_hook
            self._old_hook = None

    def handle(self, exc_type, exc, tb) -> None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            if self._old_hook is not None:
                self._old_hook(exc_type, exc, tb)
            return
        self.count += 1
        where = ""
        frames = traceback.extract_tb(tb) if tb is not None else []
        if frames:
            f = frames[-1]
            where = f" (in {Path(f.filename).name}:{f.lineno}, {f.name})"
        self.last = f"{exc_type.__name__}: {exc}"
        log.error("unexpected error%s: %s", where, self.last, exc_info=(exc_type, exc, tb))
        try:
            self.error.emit("Unexpected error", f"{self.last}{where}\n\nThe full traceback is in the log panel.")
        except RuntimeError:  # the reporter is gone (shutdown)
            pass

    def _show(self, title: str, text: str) -> None:
        if self._box is not None and self._box.isVisible():
            self._box.setInformativeText("More errors followed: see the log panel.")
            return
        self._box = QMessageBox(QMessageBox.Icon.Critical, title, text, QMessageBox.StandardButton.Ok, self.parent_widget)
        self._box.setWindowModality(Qt.WindowModality.WindowModal)
        self._box.open()
