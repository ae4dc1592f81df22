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

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import (
    QDialog,
    QMessageBox,
    QWidget,
)

from hft_lab.data.csv_import import (
    AmbiguousDateError,
    BadCellError,
    CsvImportError,
    CsvSniff,
    ImportResult,
    load_prices,
    sniff,
)
from hft_lab.data.samples import Dataset
from hft_lab.ui.import_form import AUTO, CHOOSE, ImportForm, _select_data

log = logging.getLogger("hft_lab.ui.import")


class _Emitter(QObject):
    done = Signal(int, object, object)  # task id, params, ImportResult or exception


class ImportDialog(ImportForm):
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
        self._connect()
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

    @property
    def needs_date_choice(self) -> bool:
        return self.date_format.currentData() == CHOOSE

    # ---- signals ----
    def _connect(self) -> None:
        self.buttons.accepted.connect(self._on_ok)
        self.buttons.rejected.connect(self.reject)
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

    def _on_prices_changed(self) -> None:
        self._update_price_hint()
        self._settings_changed()

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
