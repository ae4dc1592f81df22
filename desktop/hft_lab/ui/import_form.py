"""The import dialog's form: its widgets (reading settings, columns, missing values, the preview
and the report) and how a sniff of the file (`hft_lab.data.csv_import.sniff`) fills them.
`ImportDialog` (import_dialog.py) adds the behaviour: re-sniffing, loading in the background, OK."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
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
    CsvSniff,
    _combined_name,
    _norm,
    column_fields,
    default_name,
    default_price_columns,
    nonprice_message,
)
from hft_lab.ui.widgets import vertical_scroll

CHOOSE = "choose"
AUTO = "auto"
_DELIM_LABELS = {",": "Comma  ,", ";": "Semicolon  ;", "\t": "Tab", "|": "Pipe  |"}


class ImportForm(QDialog):
    paths: list[Path]
    path: Path  # the file shown in the preview
    multi: bool
    _sniff: CsvSniff | None

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
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.busy)
        bottom.addWidget(self.buttons)

        lay = QVBoxLayout(self)
        lay.addWidget(self.file_label)
        lay.addLayout(mid, 1)
        lay.addLayout(bottom)

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
