"""Import a price file: a preview dialog over hft_lab.data.csv_import.

    ds = ImportDialog.get_dataset(path, parent)   # None when cancelled or failed
or
    dlg = ImportDialog(path_or_paths, parent)     # several files (one per ticker) give one dataset
    if dlg.exec() == QDialog.DialogCode.Accepted:
        ds = dlg.dataset()

The dialog shows what `sniff()` guessed (delimiter, encoding, decimal separator, header, layout,
date column and format, ticker and price columns: all editable), a preview of the first rows,
and the report of a full load made in the background with the current settings (missing values
per column, duplicates, sorting, ...). "Price column(s)" is a checkable list: an OHLCV file
(Date, Open, High, Low, Close, Adj Close, Volume) preselects Adj Close (else Close) and never
Volume; a wide file preselects every column but volume-like ones; a file with only volume-like
columns says so and loads nothing until a column is chosen. When a cell is not a number the error
names it and a "treat unparseable cells as missing" box appears with the count of such cells.
With several files (one per ticker) the previewed file can be switched; each file is read with
its own detected delimiter/encoding, the chosen price columns are matched by name (or OHLCV
field), and the dates are aligned: "drop" keeps the dates in every file (inner join),
"forward-fill" keeps all of them (outer join). When the dates fit both US and EU it asks the user to
choose (OK is disabled until then). OK returns the loaded Dataset; a failure shows a message box
naming the line and the problem, and the dialog stays open so the settings can be changed (Cancel
leaves the previously loaded dataset untouched: the dialog never touches the DatasetStore).

Loading runs on a worker thread (a 1M-row file takes about a second); at most one load runs at a
time and only the latest settings' result is shown.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QRadioButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from hft_lab.data.csv_import import (
    DATE_FORMATS,
    DELIMITERS,
    ENCODINGS,
    FIELD_LABELS,
    AmbiguousDateError,
    BadCellError,
    CsvImportError,
    CsvSniff,
    ImportResult,
    _combined_name,
    _norm,
    column_fields,
    default_name,
    default_price_columns,
    load_prices,
    nonprice_message,
    sniff,
)
from hft_lab.data.samples import Dataset
from hft_lab.ui.widgets import vertical_scroll

log = logging.getLogger("hft_lab.ui.import")

CHOOSE = "choose"
AUTO = "auto"
_DELIM_LABELS = {",": "Comma  ,", ";": "Semicolon  ;", "\t": "Tab", "|": "Pipe  |"}


class _Emitter(QObject):
    done = Signal(int, object, object)  # task id, params, ImportResult or exception


class ImportDialog(QDialog):
    analysis_done = Signal(object)  # ImportResult or CsvImportError, on the GUI thread (for tests)

    def __init__(self, path: str | Path | list, parent: QWidget | None = None):
        super().__init__(parent)
        paths = [Path(p) for p in path] if isinstance(path, (list, tuple)) else [Path(path)]
        if not paths:
            raise ValueError("ImportDialog needs at least one file")
        self.paths = paths
        self.path = paths[0]  # the file shown in the preview
        self.multi = len(paths) > 1
        self.bad_cell_error: BadCellError | None = None
        self.setWindowTitle(f"Import prices: {len(paths)} files" if self.multi else f"Import prices: {self.path.name}")
        self.resize(1000, 660)
        self._sniff: CsvSniff | None = None
        self.sniff_error: CsvImportError | None = None
        self._dataset: Dataset | None = None
        self._result: ImportResult | None = None
        self._outcome: tuple[dict, Any] | None = None  # (params, ImportResult | exception) of the last load
        self._running: dict | None = None
        self._wanted: dict | None = None
        self._accept_pending = False
        self._task = 0
        self._auto_encoding: str | None = None
        self._emitter = _Emitter()
        self._emitter.done.connect(self._on_done)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(120)
        self._debounce.timeout.connect(self._start_wanted)
        self._build()
        self._resniff(initial=True)

    # ---- public ----
    @classmethod
    def get_dataset(cls, path: str | Path, parent: QWidget | None = None) -> Dataset | None:
        """Run the dialog; the Dataset, or None (cancelled, or the file cannot be read at all:
        then a message box has said why)."""
        dlg = cls(path, parent)
        if dlg._sniff is None:
            dlg._show_error(dlg.sniff_error)
            return None
        if dlg.exec() == QDialog.DialogCode.Accepted:
            return dlg.dataset()
        return None

    def dataset(self) -> Dataset | None:
        """The loaded dataset after OK (None when cancelled or failed)."""
        return self._dataset

    def import_result(self) -> ImportResult | None:
        """The ImportResult (dataset and report) after OK."""
        return self._result

    @property
    def sniff_result(self) -> CsvSniff | None:
        """What sniff() guessed for the current reading settings (None if the file is unreadable)."""
        return self._sniff

    def params(self) -> dict[str, Any]:
        """The load_prices keywords of the current settings (with the dataset name): what
        `load_prices(paths, **params)` needs to load the same dataset again."""
        p = self._load_params()
        name = self.name.text().strip()
        if name:
            p["name"] = name
        return p

    def _load_params(self) -> dict[str, Any]:
        p: dict[str, Any] = {}
        if not self.multi:  # several files: reading settings are detected for each file
            enc = self.encoding.currentData()
            p.update(
                delimiter=self.delimiter.currentData(),
                # the detected encoding is not forced: the loader may still fall back to Latin-1
                encoding=None if enc == self._auto_encoding else enc,
                decimal=self.decimal.currentData(),
                header=self.header.isChecked(),
                layout=self.layout_combo.currentData(),
                date_column=self.date_column.currentData(),
            )
        p["nan_policy"] = "ffill" if self.ffill.isChecked() else "drop"
        p["bad_cells"] = "missing" if self.bad_cells.isChecked() else "error"
        fmt = self.date_format.currentData()
        p["date_format"] = None if fmt in (AUTO, CHOOSE) else fmt
        layout = self.layout_combo.currentData()
        if layout == "long" and not self.multi:
            p["ticker_column"] = self.ticker_column.currentData()
        if layout == "ohlcv" and not self.multi and self._sniff is not None:
            asset = self.asset_name.text().strip()
            if asset and asset != self._sniff.asset_name:
                p["asset_name"] = asset
        checked = self.price_columns()
        default = self._default_prices()
        if not checked or (checked == default and (layout == "wide" or self.multi)):
            # wide: every asset column (new columns of the same file too); several files: each
            # file's own default (Adj Close, else Close); none checked: the loader says why there
            # is no default (e.g. only volume-like columns)
            p["price_columns"] = None
        else:
            p["price_columns"] = checked
        return p

    def current_outcome(self) -> Any:
        """The result of the load made with the current settings (ImportResult or the
        CsvImportError), or None while it is pending/running."""
        if self._sniff is None:
            return self.sniff_error
        if self._running is not None or self._wanted is not None or self._debounce.isActive():
            return None
        if self._outcome is None or self._outcome[0] != self._load_params():
            return None
        return self._outcome[1]

    def price_columns(self) -> list[str]:
        """The checked columns of "Price column(s)", in file order."""
        out = []
        for i in range(self.price_list.count()):
            it = self.price_list.item(i)
            if it.checkState() == Qt.CheckState.Checked:
                out.append(it.data(Qt.ItemDataRole.UserRole))
        return out

    def price_item(self, column: str) -> QListWidgetItem | None:
        for i in range(self.price_list.count()):
            it = self.price_list.item(i)
            if it.data(Qt.ItemDataRole.UserRole) == column:
                return it
        return None

    def _default_prices(self) -> list[str]:
        if self._sniff is None:
            return []
        return default_price_columns(
            self._sniff, self.layout_combo.currentData(), self.date_column.currentData(), self.ticker_column.currentData()
        )

    @property
    def needs_date_choice(self) -> bool:
        return self.date_format.currentData() == CHOOSE

    # ---- layout ----
    def _build(self) -> None:
        self.file_label = QLabel()
        self.file_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.file_label.setWordWrap(True)

        read = QGroupBox("Reading the file" if not self.multi else "Reading the files (detected for each file)")
        self.read_group = read
        rf = QGridLayout(read)
        self.delimiter = QComboBox()
        for d in DELIMITERS:
            self.delimiter.addItem(_DELIM_LABELS[d], d)
        self.encoding = QComboBox()
        for k, label in ENCODINGS.items():
            self.encoding.addItem(label, k)
        self.decimal = QComboBox()
        self.decimal.addItem("Point (1234.5)", ".")
        self.decimal.addItem("Comma (1234,5)", ",")
        self.header = QCheckBox("The first row holds column names")
        # compact: two columns, so the column choices below keep their room at 1024×700
        rf.addWidget(QLabel("Delimiter"), 0, 0)
        rf.addWidget(self.delimiter, 0, 1)
        rf.addWidget(QLabel("Decimal"), 0, 2)
        rf.addWidget(self.decimal, 0, 3)
        rf.addWidget(QLabel("Encoding"), 1, 0)
        rf.addWidget(self.encoding, 1, 1, 1, 3)
        rf.addWidget(self.header, 2, 0, 1, 4)
        rf.setColumnStretch(1, 1)
        rf.setColumnStretch(3, 1)
        if self.multi:
            for w in (self.delimiter, self.encoding, self.decimal, self.header):
                w.setEnabled(False)
                w.setToolTip("With several files, each file's delimiter, encoding and header are detected on their own.")

        cols = QGroupBox("Columns")
        cf = QFormLayout(cols)
        cf.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.layout_combo = QComboBox()
        self.layout_combo.addItem("Wide: one column per asset", "wide")
        self.layout_combo.addItem("Long: date, ticker, price rows", "long")
        self.layout_combo.addItem("OHLCV: one instrument", "ohlcv")
        self.layout_combo.setToolTip(
            "Wide: Date,AAPL,MSFT,…  Long: Date,Ticker,Close,…  OHLCV: Date,Open,High,Low,Close,Adj Close,Volume "
            "(Yahoo Finance, brokers), the asset named after the file."
        )
        self.date_column = QComboBox()
        self.date_format = QComboBox()
        self.date_warning = QLabel()
        self.date_warning.setWordWrap(True)
        self.date_warning.setStyleSheet("color: #b35c00;")
        self.date_warning.hide()
        self.ticker_column = QComboBox()
        self.price_list = QListWidget()
        self.price_list.setToolTip("Check the column(s) to load as prices; each checked column is an asset.")
        self.price_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.price_list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.price_hint = QLabel()
        self.price_hint.setWordWrap(True)
        cf.addRow("Layout", self.layout_combo)
        cf.addRow("Date column", self.date_column)
        cf.addRow("Date format", self.date_format)
        cf.addRow(self.date_warning)
        cf.addRow("Ticker column", self.ticker_column)
        cf.addRow("Price column(s)", self.price_list)
        cf.addRow(self.price_hint)
        self.asset_name = QLineEdit()
        self.asset_name.setToolTip("The asset's name (OHLCV file: one instrument); by default the file name")
        cf.addRow("Asset name", self.asset_name)
        self._asset_row_label = cf.labelForField(self.asset_name)
        self._ticker_row_label = cf.labelForField(self.ticker_column)

        miss = QGroupBox("Missing values" + (" and dates of several files" if self.multi else ""))
        mv = QVBoxLayout(miss)
        if self.multi:
            self.drop = QRadioButton("Drop: only dates in every file (inner join)")
            self.ffill = QRadioButton("Forward-fill: all dates (outer join)")
        else:
            self.drop = QRadioButton("Drop rows with a missing value")
            self.ffill = QRadioButton("Forward-fill (carry the last price)")
        self.ffill.setToolTip(
            "Missing prices take the last known price; the first rows, before every asset has a price, are dropped."
        )
        self.drop.setToolTip("Keep only the dates on which every asset has a price.")
        self.drop.setChecked(True)
        self._nan_group = QButtonGroup(self)
        self._nan_group.addButton(self.drop)
        self._nan_group.addButton(self.ffill)
        self.bad_cells = QCheckBox("Treat unparseable cells as missing")
        self.bad_cells.setToolTip(
            "Cells that are not numbers (e.g. #VALUE!, n.a.) become missing values; then the policy above applies."
        )
        self.bad_cells.hide()
        self.bad_cells_detail = QLabel()
        self.bad_cells_detail.setWordWrap(True)
        self.bad_cells_detail.setStyleSheet("color: #555555; margin-left: 22px;")
        self.bad_cells_detail.hide()
        mv.addWidget(self.drop)
        mv.addWidget(self.ffill)
        mv.addWidget(self.bad_cells)
        mv.addWidget(self.bad_cells_detail)

        name_box = QFormLayout()
        self.name = QLineEdit()
        name_box.addRow("Dataset name", self.name)

        left = QVBoxLayout()
        left.setContentsMargins(0, 0, 0, 0)
        left.addWidget(read)
        left.addWidget(cols)
        left.addWidget(miss)
        left.addLayout(name_box)
        left.addStretch(1)
        # a scroll area: on a short screen the choices scroll instead of being squeezed
        left_w = vertical_scroll(left)
        left_w.setMinimumWidth(370)
        left_w.setMaximumWidth(450)
        self.left_panel = left_w
        for combo in (
            self.delimiter,
            self.encoding,
            self.decimal,
            self.layout_combo,
            self.date_column,
            self.date_format,
            self.ticker_column,
        ):
            # long entries (file column names, formats) must not widen the panel: they elide
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(8)

        self.preview = QTableWidget()
        self.preview.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.preview.setAlternatingRowColors(True)
        self.report = QPlainTextEdit()
        self.report.setReadOnly(True)
        self.report.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        pv = QWidget()
        pvl = QVBoxLayout(pv)
        pvl.setContentsMargins(0, 0, 0, 0)
        head = QHBoxLayout()
        self.preview_label = QLabel("Preview")
        head.addWidget(self.preview_label, 1)
        self.preview_file = QComboBox()
        for q in self.paths:
            self.preview_file.addItem(q.name, str(q))
        self.preview_file.setToolTip("The file shown in the preview (its columns are listed on the left)")
        self.preview_file.setVisible(self.multi)
        head.addWidget(self.preview_file)
        pvl.addLayout(head)
        pvl.addWidget(self.preview)
        rp = QWidget()
        rpl = QVBoxLayout(rp)
        rpl.setContentsMargins(0, 0, 0, 0)
        rpl.addWidget(QLabel("Report"))
        rpl.addWidget(self.report)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(pv)
        split.addWidget(rp)
        split.setSizes([380, 220])

        mid = QHBoxLayout()
        mid.addWidget(left_w)
        mid.addWidget(split, 1)

        self.status = QLabel(" ")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.busy = QProgressBar()
        self.busy.setRange(0, 1)
        self.busy.setTextVisible(False)
        self.busy.setMaximumWidth(120)
        self.busy.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Load")
        self.buttons.accepted.connect(self._on_ok)
        self.buttons.rejected.connect(self.reject)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.busy)
        bottom.addWidget(self.buttons)

        lay = QVBoxLayout(self)
        lay.addWidget(self.file_label)
        lay.addLayout(mid, 1)
        lay.addLayout(bottom)

        for w in (self.delimiter, self.encoding, self.decimal):
            w.currentIndexChanged.connect(lambda *_: self._resniff())
        self.header.toggled.connect(lambda *_: self._resniff())
        self.date_column.currentIndexChanged.connect(lambda *_: self._resniff(keep_interpretation=True))
        self.layout_combo.currentIndexChanged.connect(self._on_layout)
        self.ticker_column.currentIndexChanged.connect(self._on_layout)
        self.date_format.currentIndexChanged.connect(lambda *_: self._settings_changed())
        self.price_list.itemChanged.connect(lambda *_: self._on_prices_changed())
        self.ffill.toggled.connect(lambda *_: self._settings_changed())
        self.bad_cells.toggled.connect(lambda *_: self._settings_changed())
        self.asset_name.textEdited.connect(self._asset_name_edited)
        self.preview_file.currentIndexChanged.connect(self._on_preview_file)

    def _asset_name_edited(self, *_) -> None:
        self._update_price_hint()
        self._settings_changed()

    # ---- sniffing ----
    def _resniff(self, initial: bool = False, keep_interpretation: bool = False, kept: dict | None = None) -> None:
        kw: dict[str, Any] = {}
        if not initial:
            kw = dict(
                delimiter=self.delimiter.currentData(),
                encoding=self.encoding.currentData(),
                decimal=self.decimal.currentData(),
                header=self.header.isChecked(),
            )
            if keep_interpretation and self.date_column.currentData() is not None:
                kw["date_column"] = self.date_column.currentData()
        if keep_interpretation:
            kept = self._interpretation()
        try:
            sn = sniff(self.path, **kw)
        except CsvImportError as e:
            self._sniff, self.sniff_error = None, e
            self._show_sniff_failure(e)
            return
        except Exception as e:  # unexpected: still an error message, never a crash
            log.exception("sniffing %s failed", self.path)
            self._sniff, self.sniff_error = None, CsvImportError(f"cannot read the file: {e}")
            self._show_sniff_failure(self.sniff_error)
            return
        self._sniff, self.sniff_error = sn, None
        if initial:
            self._auto_encoding = sn.encoding
        self._fill(sn, kept)
        self._settings_changed()

    def _interpretation(self) -> dict[str, Any]:
        return dict(
            layout=self.layout_combo.currentData(),
            ticker=self.ticker_column.currentData(),
            prices=self.price_columns(),
        )

    def _on_preview_file(self, i: int) -> None:
        """Several files: show another one (its columns become the choices; checked price columns
        are kept by name or OHLCV field)."""
        if i < 0 or Path(self.preview_file.itemData(i)) == self.path:
            return
        kept = self._interpretation()
        self.path = Path(self.preview_file.itemData(i))
        self._resniff(initial=True, kept=kept)

    def _fill(self, sn: CsvSniff, kept: dict | None) -> None:
        comp = f", {sn.compression}-compressed" if sn.compression else ""
        if self.multi:
            names = ", ".join(q.name for q in self.paths[:6]) + (" …" if len(self.paths) > 6 else "")
            self.file_label.setText(f"<b>{len(self.paths)} files</b>: {names} — {self.path.parent}")
        else:
            self.file_label.setText(f"<b>{self.path.name}</b> ({_human(sn.size_bytes)}{comp}) — {self.path.parent}")
        widgets = (
            self.delimiter,
            self.encoding,
            self.decimal,
            self.header,
            self.layout_combo,
            self.date_column,
            self.date_format,
            self.ticker_column,
        )
        for w in widgets:
            w.blockSignals(True)
        try:
            _select_data(self.delimiter, sn.delimiter)
            _select_data(self.encoding, sn.encoding)
            _select_data(self.decimal, sn.decimal)
            self.header.setChecked(sn.header)
            layout = kept["layout"] if kept and not self.multi else sn.layout
            _select_data(self.layout_combo, layout)
            self.date_column.clear()
            for c in sn.columns:
                self.date_column.addItem(c, c)
            if sn.date_column is None:
                self.date_column.insertItem(0, "— choose the date column —", None)
                self.date_column.setCurrentIndex(0)
            else:
                _select_data(self.date_column, sn.date_column)
            self._fill_formats(sn)
            tick = kept["ticker"] if kept and kept["ticker"] in sn.columns else sn.ticker_column
            self.ticker_column.clear()
            self.ticker_column.addItem("— choose —", None)
            for c in sn.columns:
                self.ticker_column.addItem(c, c)
            _select_data(self.ticker_column, tick)
            if not self.name.text():
                self.name.setText(_combined_name(self.paths) if self.multi else default_name(self.path))
            if not self.asset_name.text():
                self.asset_name.setText(sn.asset_name or default_name(self.path))
        finally:
            for w in widgets:
                w.blockSignals(False)
        self._on_layout_enable()
        self._fill_prices(kept["prices"] if kept else None)
        self._fill_preview(sn)

    def _fill_prices(self, keep: list[str] | None = None) -> None:
        """The "Price column(s)" list for the current layout/date/ticker columns: every value column
        with its OHLCV field, the default ones checked (or those of `keep`, by name or field)."""
        sn = self._sniff
        self.price_list.blockSignals(True)
        try:
            self.price_list.clear()
            if sn is None:
                return
            layout = self.layout_combo.currentData()
            date = self.date_column.currentData()
            tick = self.ticker_column.currentData() if layout == "long" else None
            cols = [c for c in sn.columns if c not in (date, tick)]
            fields = column_fields(cols)
            default = self._default_prices()
            checked = set(default)
            if keep is not None:
                kn = {_norm(k) for k in keep}
                kf = {column_fields([k]).get(k) for k in keep} - {None}
                checked = {c for c in cols if _norm(c) in kn or (fields.get(c) in kf and fields.get(c) != "volume")}
                checked = checked or set(default)
            for c in cols:
                f = fields.get(c)
                label = c
                if f == "volume":
                    label += "  — not a price"
                elif f and _norm(c) != _norm(FIELD_LABELS[f]):
                    label += f"  ({FIELD_LABELS[f]})"
                if c in default and layout != "wide":
                    label += "  · default"
                it = QListWidgetItem(label)
                it.setData(Qt.ItemDataRole.UserRole, c)
                it.setFlags(it.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                it.setCheckState(Qt.CheckState.Checked if c in checked else Qt.CheckState.Unchecked)
                if f == "volume":
                    it.setForeground(QBrush(QColor("#888888")))
                self.price_list.addItem(it)
        finally:
            self.price_list.blockSignals(False)
        rows = min(max(self.price_list.count(), 2), 7)  # every OHLCV column visible without scrolling
        row_h = self.price_list.sizeHintForRow(0) if self.price_list.count() else 16
        self.price_list.setFixedHeight(rows * row_h + 2 * self.price_list.frameWidth() + 4)
        self._update_price_hint()

    def _update_price_hint(self) -> None:
        sn = self._sniff
        if sn is None:
            self.price_hint.setText("")
            return
        layout = self.layout_combo.currentData()
        checked = self.price_columns()
        default = self._default_prices()
        all_cols = [self.price_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.price_list.count())]
        fields = column_fields(all_cols)
        vol = [c for c in all_cols if fields.get(c) == "volume"]
        warn = False
        if not checked:
            warn = True
            if vol and len(vol) == len(all_cols):
                text = nonprice_message(vol)
                text = text[0].upper() + text[1:] + "."
            else:
                text = "No price column checked: check at least one."
        elif any(fields.get(c) == "volume" for c in checked):
            warn = True
            text = (
                "Checked column(s) look like volume, not prices: "
                + ", ".join(c for c in checked if fields.get(c) == "volume")
                + ". Load only if they really hold prices."
            )
        elif layout == "ohlcv":
            asset = self.asset_name.text().strip() or sn.asset_name or default_name(self.path)
            named = "from the file name" if asset == sn.asset_name else "your name"
            who = f"'{asset}' ({named})"
            if len(checked) == 1:
                f = fields.get(checked[0])
                why = {"adjclose": "adjusted for splits and dividends", "close": "not adjusted for dividends"}.get(f or "", "")
                lead = "One asset per file, named after the file" if self.multi else f"Asset {who}"
                text = f"{lead}, priced by {checked[0]}" + (f" ({why})" if why else "") + "."
            else:
                text = f"{len(checked)} series of one instrument: '{asset} {checked[0]}', …"
            if checked == default and len(checked) == 1:
                text += " Check another column to use it instead or as well."
        elif layout == "long":
            text = f"For every ticker: {', '.join(checked)}."
        else:
            text = f"{len(checked)} of {len(all_cols)} columns checked: each is an asset."
            if vol:
                text += f" Not prices: {', '.join(vol[:3])}{' …' if len(vol) > 3 else ''}."
        self.price_hint.setStyleSheet("color: #b35c00; font-weight: bold;" if warn else "color: #555555;")
        self.price_hint.setText(text)

    def _on_prices_changed(self) -> None:
        self._update_price_hint()
        self._settings_changed()

    def _fill_formats(self, sn: CsvSniff) -> None:
        self.date_format.clear()
        if sn.ambiguous_date:
            self.date_format.addItem("— choose US or EU —", CHOOSE)
        else:
            self.date_format.addItem("Automatic", AUTO)
        for k, label in DATE_FORMATS.items():
            self.date_format.addItem(label, k)
        if sn.ambiguous_date:
            self.date_format.setCurrentIndex(0)
            ex = _example(sn)
            self.date_warning.setText(
                f"Every date fits both US (month first) and EU (day first) formats{ex}: choose which one the file uses."
            )
            self.date_warning.show()
        else:
            self.date_warning.hide()
            if sn.date_format:
                _select_data(self.date_format, sn.date_format)

    def _fill_preview(self, sn: CsvSniff) -> None:
        df = sn.preview
        self.preview.clear()
        self.preview.setRowCount(len(df))
        self.preview.setColumnCount(len(df.columns))
        used = self._used_columns()
        for j, c in enumerate(df.columns):
            item = QTableWidgetItem(str(c))
            f = QFont()
            f.setBold(c in used)
            item.setFont(f)
            if c == self.date_column.currentData():
                item.setForeground(QBrush(QColor("#1f5fa8")))
                item.setToolTip("date column")
            elif c not in used:
                item.setForeground(QBrush(QColor("#888888")))
                item.setToolTip("not used")
            self.preview.setHorizontalHeaderItem(j, item)
        vals = df.to_numpy(dtype=object)
        self.preview.setVerticalHeaderLabels([str(n) for n in sn.preview_lines])
        for i in range(vals.shape[0]):
            for j in range(vals.shape[1]):
                self.preview.setItem(i, j, QTableWidgetItem(str(vals[i, j])))
        self.preview.resizeColumnsToContents()
        more = "" if sn.head_is_whole_file and len(df) < 50 else " (first rows; row numbers are file lines)"
        self.preview_label.setText(f"Preview{more}")

    def _mark_line(self, line: int | None) -> None:
        """Show the offending line in the preview when it is there."""
        if line is None or self._sniff is None or line not in self._sniff.preview_lines:
            return
        i = self._sniff.preview_lines.index(line)
        for j in range(self.preview.columnCount()):
            item = self.preview.item(i, j)
            if item is not None:
                item.setBackground(QBrush(QColor("#f8d0d0")))
        first = self.preview.item(i, 0)
        if first is not None:
            self.preview.scrollToItem(first)

    def _used_columns(self) -> set[str]:
        if self._sniff is None:
            return set()
        date = self.date_column.currentData()
        tick = self.ticker_column.currentData() if self.layout_combo.currentData() == "long" else None
        return {c for c in (date, tick, *self.price_columns()) if c}

    def _show_sniff_failure(self, e: CsvImportError) -> None:
        self.file_label.setText(f"<b>{self.path.name}</b> — {self.path.parent}")
        self.preview.clear()
        self.preview.setRowCount(0)
        self.preview.setColumnCount(0)
        self.report.setPlainText(str(e))
        self._set_status(f"Cannot read this file: {e}", "error")
        self._outcome = None
        self._update_ok()

    # ---- settings -> background load ----
    def _on_layout(self, *_):
        self._on_layout_enable()
        if self._sniff is not None:
            self._fill_prices()
            self._fill_preview(self._sniff)
        self._settings_changed()

    def _on_layout_enable(self) -> None:
        long = self.layout_combo.currentData() == "long"
        one = self.layout_combo.currentData() == "ohlcv" and not self.multi
        # rows that do not apply to the layout are hidden (room for the rest at 1024×700)
        self.asset_name.setVisible(one)
        if self._asset_row_label is not None:
            self._asset_row_label.setVisible(one)
        self.ticker_column.setVisible(long)
        if self._ticker_row_label is not None:
            self._ticker_row_label.setVisible(long)
        self.ticker_column.setEnabled(long and not self.multi)
        if self.multi:
            self.layout_combo.setEnabled(False)
            self.layout_combo.setToolTip("With several files, each file's layout is detected on its own.")
            self.date_column.setEnabled(False)

    def _settings_changed(self) -> None:
        if self._sniff is None:
            return
        if self.date_format.currentData() != CHOOSE:
            self.date_warning.setStyleSheet("color: #555555;")
        else:
            self.date_warning.setStyleSheet("color: #b35c00; font-weight: bold;")
        self._fill_preview(self._sniff)
        self._outcome = None
        self._update_ok()
        if self.needs_date_choice:
            self._wanted = None
            self._set_status("Choose the date format (US or EU) to load the file.", "warn")
            self.report.setPlainText("\n".join(self._sniff.describe()))
            return
        self._wanted = self._load_params()
        self._debounce.start()

    def _start_wanted(self) -> None:
        if self._wanted is None or self._running is not None:
            return  # a load is running: the wanted settings start when it ends
        params, self._wanted = self._wanted, None
        self._task += 1
        tid = self._task
        self._running = params
        sn = self._sniff
        path = self.path
        target: Any = list(self.paths) if self.multi else path
        multi = self.multi
        emitter = self._emitter
        self._set_status("Reading the whole file…", "busy")
        self.busy.setRange(0, 0)
        self.busy.show()
        self._update_ok()

        def run():
            t0 = time.perf_counter()
            try:
                if multi:
                    value: Any = load_prices(target, **params)
                else:
                    value = load_prices(target, sniffed=sn, **params)
            except CsvImportError as e:
                value = e
            except MemoryError:
                value = CsvImportError("not enough memory to load the file")
            except Exception as e:  # a bug, not the file's fault: still reported, never a crash
                log.exception("loading %s failed", path)
                value = CsvImportError(f"unexpected error: {type(e).__name__}: {e}")
            log.debug("load of %s took %.3f s", path.name, time.perf_counter() - t0)
            try:
                emitter.done.emit(tid, params, value)
            except RuntimeError:  # the dialog is gone
                pass

        threading.Thread(target=run, name=f"csv-import-{tid}", daemon=True).start()

    def _on_done(self, tid: int, params: dict, value: Any) -> None:
        self._running = None
        self.busy.setRange(0, 1)
        self.busy.hide()
        if self._wanted is not None:  # settings changed meanwhile: this result is stale
            self._start_wanted()
            return
        if params != self._load_params():
            return
        self._outcome = (params, value)
        if isinstance(value, BadCellError):
            self.bad_cell_error = value
            self._show_bad_cells(value)
        if isinstance(value, ImportResult):
            if params.get("encoding") is None and value.encoding != self._auto_encoding:
                # detected past the head (e.g. Latin-1 further down): show it, keep it unforced
                self._auto_encoding = value.encoding
                self.encoding.blockSignals(True)
                _select_data(self.encoding, value.encoding)
                self.encoding.blockSignals(False)
            ds = value.dataset
            self._set_status(f"Ready: {ds.describe()}", "ok")
            head = self._sniff.describe()[:1] if self._sniff is not None else []
            self.report.setPlainText("\n".join(head + value.report))
        else:
            self.report.setPlainText("\n".join(self._sniff.describe() if self._sniff else []) + f"\n\nError: {value}")
            if isinstance(value, AmbiguousDateError):
                self._set_status(str(value), "warn")
            else:
                hint = ""
                if isinstance(value, BadCellError):
                    hint = f" — {_cells_text(value)}: tick “Treat unparseable cells as missing” to load anyway."
                self._set_status(f"Error: {value}{hint}", "error")
                if getattr(value, "file", None) in (None, self.path.name):
                    self._mark_line(getattr(value, "line", None))
        self._update_ok()
        self.analysis_done.emit(value)
        if self._accept_pending:
            self._accept_pending = False
            self._finish()

    def _show_bad_cells(self, e: BadCellError) -> None:
        """A cell is not a number: offer to treat such cells as missing, with their count."""
        n = e.count
        files = getattr(e, "files", None)
        self.bad_cells.setText(
            f"Treat unparseable cells as missing ({n:,} cell{'s' if n != 1 else ''}"
            + (f" in {len(files)} files" if files and len(files) > 1 else "")
            + ")"
        )
        parts = []
        # several files: the cells may come from different files, only the first one's is known
        for line, col, text in e.cells[: 1 if files else 3]:
            parts.append(f"{text!r} in '{col}'" + (f" at line {line}" if line else ""))
        where = f"{e.file}: " if getattr(e, "file", None) else ""
        self.bad_cells_detail.setText(
            f"{'First' if n > 1 else 'The cell'}: {where}" + "; ".join(parts) + (" …" if n > len(parts) else "")
        )
        self.bad_cells.show()
        self.bad_cells_detail.show()

    # ---- OK ----
    def _on_ok(self) -> None:
        if self._sniff is None:
            self._show_error(self.sniff_error)
            return
        if self.needs_date_choice:
            return
        if self._outcome is not None and self._outcome[0] == self._load_params():
            self._finish()
            return
        self._accept_pending = True  # the load for these settings is running (or about to)
        self._set_status("Loading…", "busy")
        if self._running is None and self._wanted is None:
            self._wanted = self._load_params()
        if self._running is None:
            self._debounce.stop()
            self._start_wanted()

    def _finish(self) -> None:
        if self._outcome is None:
            return
        params, value = self._outcome
        if isinstance(value, ImportResult):
            name = self.name.text().strip() or value.dataset.name
            ds = value.dataset if name == value.dataset.name else Dataset(name, value.dataset.prices)
            self._result = dataclasses.replace(value, dataset=ds)
            self._dataset = ds
            self.accept()
        else:
            self._show_error(value)

    def _show_error(self, e: Exception | None) -> None:
        text = str(e) if e is not None else "unknown error"
        if isinstance(e, BadCellError) and not self.bad_cells.isChecked():
            text += f"\n\n{_cells_text(e)}: check “Treat unparseable cells as missing” to load the file anyway."
        where = self.path.name if not self.multi or getattr(e, "file", None) is None else ""
        QMessageBox.critical(self, "Import failed", f"{where}: {text}" if where else text)

    # ---- helpers ----
    def _update_ok(self) -> None:
        self.ok_button.setEnabled(not (self._sniff is not None and self.needs_date_choice))

    def _set_status(self, text: str, kind: str) -> None:
        colors = {"ok": "#2e7d32", "error": "#c62828", "warn": "#b35c00", "busy": "#555555"}
        self.status.setStyleSheet(f"color: {colors.get(kind, '#000')};")
        self.status.setText(text)

    def reject(self) -> None:
        self._accept_pending = False
        self._dataset = None
        super().reject()


def _cells_text(e: BadCellError) -> str:
    n = e.count
    files = getattr(e, "files", None)
    return f"{n:,} unparseable cell{'s' if n != 1 else ''}" + (f" in {len(files)} files" if files and len(files) > 1 else "")


def _select_data(combo: QComboBox, value: Any) -> None:
    i = combo.findData(value)
    if i >= 0:
        combo.setCurrentIndex(i)


def _example(sn: CsvSniff) -> str:
    if sn.date_column is None or sn.date_column not in sn.preview.columns:
        return ""
    import re

    for v in sn.preview[sn.date_column]:
        m = re.match(r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-](\d{2,4})", str(v))
        if m and int(m[1]) != int(m[2]):
            return f" (is {v.strip()} {_month(int(m[1]))} {int(m[2])} or {int(m[1])} {_month(int(m[2]))}?)"
    return ""


def _month(m: int) -> str:
    return ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][m - 1]


def _human(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
