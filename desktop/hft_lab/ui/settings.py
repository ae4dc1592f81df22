"""Saving and restoring a tab's parameters with QSettings.

    save_widgets(settings, "mean_reversion", {"lookback": view.lookback, "threshold": view.threshold})
    restore_widgets(settings, "mean_reversion", {...same dict...})

Supported: QSpinBox, QDoubleSpinBox, QComboBox (by item text; an editable combo takes any text),
QCheckBox / QRadioButton / any checkable button, checkable QGroupBox, QLineEdit, QDateEdit,
QDateTimeEdit, QTimeEdit, QSlider, QPlainTextEdit. Values are stored as plain strings (readable in
the .ini file, identical across platforms); restoring skips whatever is missing, unreadable or no
longer offered (a combo item that was removed), so an old or hand-edited settings file never
breaks the window. Numbers outside the widget's range are clamped by the widget itself.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from PySide6.QtCore import QDate, QDateTime, QSettings, Qt, QTime
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSlider,
    QComboBox,
    QDateEdit,
    QDateTimeEdit,
    QDoubleSpinBox,
    QGroupBox,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
    QTimeEdit,
    QWidget,
)

log = logging.getLogger("hft_lab.ui.settings")

_DATE = "yyyy-MM-dd"
_TIME = "HH:mm:ss.zzz"
_DATETIME = "yyyy-MM-ddTHH:mm:ss.zzz"


def widget_value(w: QWidget) -> str:
    """The widget's value as the string that is stored."""
    if isinstance(w, QDoubleSpinBox):
        return repr(float(w.value()))
    if isinstance(w, QSpinBox):
        return str(int(w.value()))
    if isinstance(w, QComboBox):
        return w.currentText()
    if isinstance(w, QDateEdit):
        return w.date().toString(_DATE)
    if isinstance(w, QTimeEdit):
        return w.time().toString(_TIME)
    if isinstance(w, QDateTimeEdit):
        return w.dateTime().toString(_DATETIME)
    if isinstance(w, QAbstractButton):
        if not w.isCheckable():
            raise TypeError(f"{type(w).__name__} {w.objectName()!r} is not checkable: nothing to save")
        return "true" if w.isChecked() else "false"
    if isinstance(w, QGroupBox):
        if not w.isCheckable():
            raise TypeError(f"QGroupBox {w.title()!r} is not checkable: nothing to save")
        return "true" if w.isChecked() else "false"
    if isinstance(w, QLineEdit):
        return w.text()
    if isinstance(w, QPlainTextEdit):
        return w.toPlainText()
    if isinstance(w, QAbstractSlider):
        return str(int(w.value()))
    raise TypeError(f"cannot save a {type(w).__name__}")


def _bool(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("true", "1", "yes", "on"):
        return True
    if s in ("false", "0", "no", "off"):
        return False
    return None


def _number(v: Any, integer: bool) -> float | int | None:
    try:
        f = float(str(v).strip())
    except (TypeError, ValueError):
        return None
    if not math.isfinite(f):
        return None
    if integer:
        if f != int(f):
            return None
        return int(f)
    return f


def set_widget_value(w: QWidget, v: Any) -> bool:
    """Set the widget from a stored value; False (and no change) when the value does not fit."""
    if v is None:
        return False
    if isinstance(w, QDoubleSpinBox):
        x = _number(v, integer=False)
        if x is None:
            return False
        w.setValue(x)
        return True
    if isinstance(w, (QSpinBox, QAbstractSlider)):
        x = _number(v, integer=True)
        if x is None or abs(x) > 2**31 - 1:
            return False
        w.setValue(int(x))
        return True
    if isinstance(w, QComboBox):
        text = str(v)
        i = w.findText(text, Qt.MatchFlag.MatchExactly)
        if i >= 0:
            w.setCurrentIndex(i)
            return True
        if w.isEditable():
            w.setEditText(text)
            return True
        return False
    # date/time editors (QDateEdit and QTimeEdit are QDateTimeEdits: the most specific first)
    for kind, parse, fmt, setter in (
        (QDateEdit, QDate.fromString, _DATE, "setDate"),
        (QTimeEdit, QTime.fromString, _TIME, "setTime"),
        (QDateTimeEdit, QDateTime.fromString, _DATETIME, "setDateTime"),
    ):
        if isinstance(w, kind):
            value = parse(str(v), fmt)
            if not value.isValid():
                return False
            getattr(w, setter)(value)
            return True
    if isinstance(w, (QAbstractButton, QGroupBox)):
        b = _bool(v)
        if b is None or not w.isCheckable():
            return False
        w.setChecked(b)
        return True
    if isinstance(w, QLineEdit):
        w.setText(str(v))
        return True
    if isinstance(w, QPlainTextEdit):
        w.setPlainText(str(v))
        return True
    return False


def save_widgets(settings: QSettings, group: str, widgets: dict[str, QWidget]) -> None:
    """Store every widget's value under group/name. Raises TypeError for an unsupported widget
    (a programming error, found on the first save)."""
    values = {name: widget_value(w) for name, w in widgets.items()}
    settings.beginGroup(group)
    try:
        for name, v in values.items():
            settings.setValue(name, v)
    finally:
        settings.endGroup()


def restore_widgets(settings: QSettings, group: str, widgets: dict[str, QWidget]) -> list[str]:
    """Set the widgets from group/name; returns the names restored. Missing or invalid values
    are skipped (logged at debug level); the widget keeps its current value."""
    done: list[str] = []
    settings.beginGroup(group)
    try:
        for name, w in widgets.items():
            if not settings.contains(name):
                continue
            v = settings.value(name)
            try:
                ok = set_widget_value(w, v)
            except (TypeError, ValueError, OverflowError) as e:
                ok = False
                log.debug("%s/%s: %r not restored (%s)", group, name, v, e)
            if ok:
                done.append(name)
            else:
                log.debug("%s/%s: stored value %r does not fit a %s", group, name, v, type(w).__name__)
    finally:
        settings.endGroup()
    return done
