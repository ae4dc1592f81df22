"""Data ▸ Select range and assets…: the selection of the active dataset every tab works on."""

from __future__ import annotations

import pandas as pd
from PySide6.QtCore import QDate, Qt
from PySide6.QtWidgets import (
    QDateEdit,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from hft_lab.data.store import DatasetStore


def _qdate(ts) -> QDate:
    ts = pd.Timestamp(ts)
    return QDate(ts.year, ts.month, ts.day)


def _set_bound(w: QDateEdit | QSpinBox, v) -> None:
    """Show a period bound: a date (date edit) or a bar number (spin box)."""
    if isinstance(w, QDateEdit):
        w.setDate(_qdate(v))
    else:
        w.setValue(int(v))


def _bound(w: QDateEdit | QSpinBox) -> pd.Timestamp | int:
    """The period bound a field shows: the day's midnight (date edit) or the bar number."""
    if isinstance(w, QDateEdit):
        return pd.Timestamp(w.date().toString("yyyy-MM-dd"))
    return w.value()


class SelectionDialog(QDialog):
    """Pick a date range (or bar range) and a subset of assets; OK applies it to the store, and a
    refused selection (fewer than 2 rows, no asset) is explained without closing the dialog."""

    def __init__(self, store: DatasetStore, parent=None):
        super().__init__(parent)
        self.store = store
        self.setWindowTitle("Select range and assets")
        prices = store.dataset.prices
        self._dated = isinstance(prices.index, pd.DatetimeIndex)
        form = QFormLayout()
        first, last = prices.index[0], prices.index[-1]
        s, e = store.date_range
        self.start: QDateEdit | QSpinBox
        self.end: QDateEdit | QSpinBox
        if self._dated:
            self.start, self.end = dates = QDateEdit(), QDateEdit()
            for d in dates:
                d.setCalendarPopup(True)
                d.setDisplayFormat("yyyy-MM-dd")
                d.setDateRange(_qdate(first), _qdate(last))
        else:
            self.start, self.end = bars = QSpinBox(), QSpinBox()
            for box in bars:
                box.setRange(int(first), int(last))
        _set_bound(self.start, s)
        _set_bound(self.end, e)
        form.addRow(f"From ({'date' if self._dated else 'bar'})", self.start)
        form.addRow("To", self.end)

        self.assets = QListWidget()
        chosen = set(store.assets)
        for a in store.dataset.assets:
            it = QListWidgetItem(a)
            it.setFlags(it.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            it.setCheckState(Qt.CheckState.Checked if a in chosen else Qt.CheckState.Unchecked)
            self.assets.addItem(it)
        all_b, none_b, reset_b = QPushButton("All"), QPushButton("None"), QPushButton("Whole dataset")
        all_b.clicked.connect(lambda: self._check_all(True))
        none_b.clicked.connect(lambda: self._check_all(False))
        reset_b.clicked.connect(self._reset)
        row = QHBoxLayout()
        for b in (all_b, none_b, reset_b):
            row.addWidget(b)
        self.error = QLabel("")
        self.error.setStyleSheet("color: #c62828")
        self.error.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.apply)
        buttons.rejected.connect(self.reject)

        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(store.dataset.describe()))
        lay.addLayout(form)
        lay.addWidget(QLabel("Assets"))
        lay.addWidget(self.assets, 1)
        lay.addLayout(row)
        lay.addWidget(self.error)
        lay.addWidget(buttons)

    def _check_all(self, on: bool) -> None:
        for i in range(self.assets.count()):
            self.assets.item(i).setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def _reset(self) -> None:
        idx = self.store.dataset.prices.index
        _set_bound(self.start, idx[0])
        _set_bound(self.end, idx[-1])
        self._check_all(True)

    def chosen_assets(self) -> list[str]:
        return [
            self.assets.item(i).text()
            for i in range(self.assets.count())
            if self.assets.item(i).checkState() == Qt.CheckState.Checked
        ]

    def selection(self) -> tuple:
        start, end = _bound(self.start), _bound(self.end)
        if isinstance(end, pd.Timestamp):
            end = end + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)  # the end date includes its whole day
        return start, end, self.chosen_assets()

    def apply(self) -> bool:
        start, end, assets = self.selection()
        try:
            self.store.set_selection(start, end, assets)
        except ValueError as e:
            self.error.setText(str(e))
            return False
        self.accept()
        return True
