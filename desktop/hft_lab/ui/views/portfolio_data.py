"""Portfolio tab: the data selection (source, period, dates, the asset table with risk budgets)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from PySide6.QtCore import QDate, Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
)

from hft_lab.data.synthetic import synthetic_universe
from hft_lab.ui.views.sources import DatasetSource

PERIOD_ALL, PERIOD_YEARS, PERIOD_DATES = "All data", "Last N years", "Between dates"


def _label(ts: pd.Timestamp) -> str:
    """A date, with the time of day only when it has one."""
    return f"{ts:%Y-%m-%d}" if ts == ts.normalize() else f"{ts:%Y-%m-%d %H:%M:%S}"


class PortfolioData(DatasetSource):
    """Part of PortfolioView (mixed in): see portfolio.py."""

    # the view's state and widgets this part reads (PortfolioView.__init__ / _build make them)
    _date_limits: tuple | None  # (first, last) date the date fields allow
    _universe: tuple[tuple[int, int, int], pd.DataFrame] | None  # the last synthetic universe made
    _checked: dict[str, bool]
    _budgets: dict[str, float]
    _period_form: QFormLayout
    _dates_row: QHBoxLayout
    assets: QTableWidget
    period: QComboBox
    period_note: QLabel
    years: QSpinBox
    start_date: QDateEdit
    end_date: QDateEdit
    n_assets: QSpinBox
    n_obs: QSpinBox
    seed: QSpinBox

    if TYPE_CHECKING:  # the view's

        def _inputs_changed(self, *_) -> None: ...

    # ---- data ----
    def data_frame(self) -> pd.DataFrame | None:
        """All prices of the chosen non-synthetic source before this view's period and asset
        choice; None for the synthetic universe."""
        return self.source_frame()

    def _dated(self) -> bool:
        df = self.data_frame()
        return df is not None and isinstance(df.index, pd.DatetimeIndex)

    def _set_date_limits(self, reset: bool = False) -> None:
        """Limit the date fields to the dates of the data; when the limits change (or reset), the
        "between dates" fields show the last five years."""
        df = self.data_frame()
        if df is None or not isinstance(df.index, pd.DatetimeIndex) or len(df) == 0:
            return
        first, last = df.index[0], df.index[-1]
        if (first, last) == self._date_limits and not reset:
            return
        qfirst, qlast = QDate(first.year, first.month, first.day), QDate(last.year, last.month, last.day)
        fresh = reset or self._date_limits is None
        self._date_limits = (first, last)
        for d in (self.start_date, self.end_date):
            d.blockSignals(True)
            d.setDateRange(qfirst, qlast)  # clamps the dates chosen for other data
        if fresh or self.start_date.date() >= self.end_date.date():
            self.start_date.setDate(max(qlast.addYears(-5), qfirst))
            self.end_date.setDate(qlast)
        for d in (self.start_date, self.end_date):
            d.blockSignals(False)

    def _update_period_controls(self) -> None:
        """Date fields only for dated data; for bar numbers they are off and a note says why."""
        dated = self._dated()
        mode = self.period.currentText()
        self.period.setEnabled(dated)
        self.years.setEnabled(dated and mode == PERIOD_YEARS)
        self.start_date.setEnabled(dated and mode == PERIOD_DATES)
        self.end_date.setEnabled(dated and mode == PERIOD_DATES)
        self.period_note.setVisible(not self.synthetic and not dated)
        self._period_form.setRowVisible(self._dates_row, dated or self.synthetic)  # no stale dates of other data

    def _synthetic_key(self) -> tuple[int, int, int]:
        return (self.n_assets.value(), self.n_obs.value(), self.seed.value())

    def synthetic_frame(self) -> pd.DataFrame:
        """The whole synthetic universe of the current settings (made now unless cached)."""
        key = self._synthetic_key()
        if self._universe is None or self._universe[0] != key:
            self._universe = (key, synthetic_universe(*key))
        return self._universe[1]

    def _fill_asset_table(self, names: list[str]) -> None:
        t = self.assets
        t.blockSignals(True)
        t.setRowCount(len(names))
        for i, name in enumerate(names):
            it = QTableWidgetItem(name)
            it.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
            it.setCheckState(Qt.CheckState.Checked if self._checked.get(name, True) else Qt.CheckState.Unchecked)
            t.setItem(i, 0, it)
            b = QTableWidgetItem()
            b.setData(Qt.ItemDataRole.EditRole, float(self._budgets.get(name, 1.0)))
            b.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsEditable | Qt.ItemFlag.ItemIsSelectable)
            b.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            t.setItem(i, 1, b)
        t.blockSignals(False)

    def _cell(self, row: int, column: int) -> QTableWidgetItem:
        """A cell of the asset table (every cell holds an item: _fill_asset_table makes them)."""
        it = self.assets.item(row, column)
        if it is None:
            raise LookupError(f"the asset table has no item at row {row}, column {column}")
        return it

    def asset_names(self) -> list[str]:
        return [self._cell(i, 0).text() for i in range(self.assets.rowCount())]

    def checked_assets(self) -> list[str]:
        return [
            self._cell(i, 0).text()
            for i in range(self.assets.rowCount())
            if self._cell(i, 0).checkState() == Qt.CheckState.Checked
        ]

    def set_checked(self, names, checked: bool = True) -> None:
        want = set(names)
        for i in range(self.assets.rowCount()):
            it = self._cell(i, 0)
            if it.text() in want:
                it.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)

    def set_all_checked(self, checked: bool) -> None:
        self.assets.blockSignals(True)
        for i in range(self.assets.rowCount()):
            it = self._cell(i, 0)
            it.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
            self._checked[it.text()] = checked
        self.assets.blockSignals(False)
        self._inputs_changed()

    def set_budget(self, name: str, value: float) -> None:
        for i in range(self.assets.rowCount()):
            if self._cell(i, 0).text() == name:
                self._cell(i, 1).setData(Qt.ItemDataRole.EditRole, float(value))
                return
        raise KeyError(name)

    def risk_budgets(self) -> list[float]:
        """The risk budgets of the checked assets, in table order."""
        out = []
        for i in range(self.assets.rowCount()):
            if self._cell(i, 0).checkState() == Qt.CheckState.Checked:
                out.append(float(self._cell(i, 1).data(Qt.ItemDataRole.EditRole)))
        return out

    def _asset_item_changed(self, item: QTableWidgetItem) -> None:
        name = self._cell(item.row(), 0).text()
        if item.column() == 0:
            self._checked[name] = item.checkState() == Qt.CheckState.Checked
        else:
            self._budgets[name] = float(item.data(Qt.ItemDataRole.EditRole))
        self._inputs_changed()

    def date_range(self) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
        """The period chosen (None = open end; both None for bar numbers: every row is used). The
        end is the last instant of the end date, so intraday bars of that day are included."""
        df = self.data_frame()
        if df is None or not isinstance(df.index, pd.DatetimeIndex) or len(df) == 0:
            return None, None
        mode = self.period.currentText()
        if mode == PERIOD_YEARS:
            last = df.index[-1]
            return last - pd.DateOffset(years=self.years.value()), None
        if mode == PERIOD_DATES:
            end = pd.Timestamp(self.end_date.date().toPython()) + pd.Timedelta(days=1) - pd.Timedelta(1, "ns")
            return pd.Timestamp(self.start_date.date().toPython()), end
        return None, None

    def selected_prices(self) -> pd.DataFrame:
        """The prices the next run uses: checked assets, chosen period, rows with a missing price
        dropped."""
        if self.synthetic:
            return self.synthetic_frame()[self.checked_assets()].astype(np.float64)
        df = self._frame()[self.checked_assets()]
        start, end = self.date_range()
        if start is not None or end is not None:
            df = df.loc[start:end]
        return df.dropna(how="any").astype(np.float64)

    def _period_changed(self, *_) -> None:
        self._update_period_controls()
        self._inputs_changed()

    @staticmethod
    def _selection_problem(n: int, rows: int) -> str:
        if n < 2:
            return f"Check at least 2 assets (a portfolio needs 2 or more); {n} checked."
        if rows < n + 2:
            return f"The period has {rows:,} price rows: too few for {n} assets (need at least {n + 2})."
        return ""

    def _period_text(self) -> str:
        if self.synthetic:
            return "synthetic"
        if not self._dated():
            return "all rows (bar numbers)"
        mode = self.period.currentText()
        if mode == PERIOD_YEARS:
            return f"last {self.years.value()} years"
        if mode == PERIOD_DATES:
            return f"{self.start_date.date().toString('yyyy-MM-dd')} … {self.end_date.date().toString('yyyy-MM-dd')}"
        return "all data"
