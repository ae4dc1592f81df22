"""Small shared widgets."""

from __future__ import annotations

import math

from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QTableWidget, QTableWidgetItem


def fmt(v, digits: int = 6) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        return f"{v:.{digits}g}"
    return str(v)


def pct(v, digits: int = 2) -> str:
    """A fraction as a percentage (0.0512 → "5.12 %")."""
    if v is None or not math.isfinite(v):
        return fmt(v)
    return f"{v * 100:,.{digits}f} %"


class StatsTable(QTableWidget):
    """A two-column (name, value) read-only table."""

    def __init__(self, parent=None):
        super().__init__(0, 2, parent)
        self.setHorizontalHeaderLabels(["statistic", "value"])
        self.verticalHeader().setVisible(False)
        self.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.horizontalHeader().setStretchLastSection(True)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)

    def set_rows(self, rows: list[tuple[str, object]]) -> None:
        self.setRowCount(len(rows))
        for i, (k, v) in enumerate(rows):
            self.setItem(i, 0, QTableWidgetItem(k))
            self.setItem(i, 1, QTableWidgetItem(fmt(v)))

    def as_dict(self) -> dict[str, str]:
        def text(i: int, j: int) -> str:
            item = self.item(i, j)
            return item.text() if item is not None else ""

        return {text(i, 0): text(i, 1) for i in range(self.rowCount())}


def busy_bar():
    """The thin progress bar of a view: 0..1 idle, indeterminate (0..0) while a task runs."""
    from PySide6.QtWidgets import QProgressBar

    bar = QProgressBar()
    bar.setRange(0, 1)
    bar.setTextVisible(False)
    bar.setMaximumHeight(8)
    return bar


def status_label(text: str = "Ready."):
    """The selectable, wrapping status line under a view's Run button."""
    from PySide6.QtCore import Qt

    label = _StatusLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class StatusLabel(QLabel):
    """At most ~6 lines tall (a long message must not push the buttons below it out of view);
    the whole text is in the tooltip and in the log panel."""

    MAX_LINES = 6

    def __init__(self, text: str = "", parent=None):
        super().__init__(text, parent)
        self.setMaximumHeight(self.fontMetrics().lineSpacing() * self.MAX_LINES + 4)

    def setText(self, text: str) -> None:  # noqa: N802
        super().setText(text)
        self.setToolTip(text if len(text) > 80 else "")
        self.setMaximumHeight(self.fontMetrics().lineSpacing() * self.MAX_LINES + 4)


_StatusLabel = StatusLabel


def export_buttons(csv_tip: str = "", json_tip: str = ""):
    """(csv button, json button, row layout), both disabled until there is a result."""
    from PySide6.QtWidgets import QHBoxLayout, QPushButton

    csv_b, json_b = QPushButton("Export CSV…"), QPushButton("Export JSON…")
    csv_b.setToolTip(csv_tip)
    json_b.setToolTip(json_tip)
    row = QHBoxLayout()
    for b in (csv_b, json_b):
        b.setEnabled(False)
        row.addWidget(b)
    return csv_b, json_b, row


def side_panel(inputs: list, actions: list, width: int = 350, margins: tuple[int, int, int, int] | None = None):
    """A view's left panel: the input groups in a vertical scroll area (never a horizontal
    scrollbar: long text wraps), and the actions (Run/Cancel row, busy bar, status line, export
    row…) pinned below it, so they stay visible at any window size. Items are widgets or layouts;
    an input may be `(widget, stretch)` (then it takes the spare height, else a stretch at the end
    does). margins: the inputs' layout margins (default: Qt's)."""
    from PySide6.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

    def add(lay, item):
        item, stretch = item if isinstance(item, tuple) else (item, 0)
        if isinstance(item, QWidget):
            lay.addWidget(item, stretch)
        else:
            lay.addLayout(item, stretch)

    inner = QVBoxLayout()
    if margins is not None:
        inner.setContentsMargins(*margins)
    for it in inputs:
        add(inner, it)
    if not any(isinstance(it, tuple) for it in inputs):
        inner.addStretch(1)
    scroll = vertical_scroll(inner)
    inner_w = scroll.widget()
    outer = QVBoxLayout()
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(scroll, 1)
    for it in actions:
        add(outer, it)
    panel = QWidget()
    panel.setLayout(outer)
    # never narrower than the inputs need (a horizontal scrollbar is off: they would be clipped)
    need = inner_w.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width() + 4
    panel.setFixedWidth(max(width, need))
    panel.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Expanding)
    panel.scroll = scroll  # type: ignore[method-assign]  # QWidget.scroll(dx, dy) is shadowed: the tests use the scroll area
    return panel


def spin(box, lo, hi, value, step=None, decimals: int | None = None):
    """A QSpinBox / QDoubleSpinBox set up in one line: range, (decimals,) value, step."""
    if decimals is not None:
        box.setDecimals(decimals)
    box.setRange(lo, hi)
    box.setValue(value)
    if step is not None:
        box.setSingleStep(step)
    return box


def vertical_scroll(layout):
    """`layout` in a frameless scroll area that scrolls vertically only (never a horizontal
    scrollbar: long text wraps); the layout's widget is `.widget()`."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QFrame, QScrollArea, QWidget

    inner = QWidget()
    inner.setLayout(layout)
    scroll = QScrollArea()
    scroll.setWidget(inner)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    return scroll


def set_combo_items(combo, items: list[str]) -> None:
    """Replace a combo box's items (when they changed) keeping the current choice if it is still
    there, without emitting index changes on the way."""
    if [combo.itemText(i) for i in range(combo.count())] == items:
        return
    cur = combo.currentText()
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(items)
    if cur in items:
        combo.setCurrentText(cur)
    combo.blockSignals(False)


def note_label(text: str = " ", color: str = "#555") -> QLabel:
    """A grey, wrapping, selectable explanation line (data descriptions, method help)."""
    from PySide6.QtCore import Qt

    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet(f"color: {color}")
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def form_group(title: str):
    """(QGroupBox titled `title`, its QFormLayout)."""
    from PySide6.QtWidgets import QFormLayout, QGroupBox

    box = QGroupBox(title)
    return box, QFormLayout(box)
