"""File ▸ Import CSV… driven like a user: the real QAction from the window's menu bar, the real
modal ImportDialog (shown by its own exec()), real clicks on its Load button, its price-column
checkboxes and radio buttons, real message boxes read and dismissed with their OK button. Only the
file chooser (QFileDialog.getOpenFileNames) is patched, to return files written in tmp_path; some
of them are built from real data shipped in PyPI wheels (arch's S&P 500 index OHLCV, skfolio's
S&P 500 stocks).

An exception raised in a Qt slot fails the test: pytest-qt's exception capture is on (no
`qt_no_exception_capture`); `test_an_exception_in_the_import_slot_fails_loudly` checks that the
capture still sees an exception raised inside the menu action's slot once the window exists.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hft_lab.backends import BackendConfig, BackendType
from hft_lab.backends.router import BackendRouter
from hft_lab.ui.import_dialog import ImportDialog
from hft_lab.ui.main_window import MainWindow
from PySide6.QtCore import QPoint, QSettings, Qt, QTimer
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

pytestmark = pytest.mark.gui


# ---------------------------------------------------------------------------------------------
# the window and the user's hands
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def router():
    r = BackendRouter(BackendConfig(backend_type=BackendType.PYO3))  # no server needed to import
    yield r
    r.stop()


@pytest.fixture
def window(qtbot, router, settings):
    w = MainWindow(router, settings)
    qtbot.addWidget(w)
    w.show()
    return w


def import_action(window):
    """File ▸ Import CSV… found in the menu bar, as a user finds it."""
    for menu_action in window.menuBar().actions():
        if menu_action.text().replace("&", "") == "File":
            for a in menu_action.menu().actions():
                if a.text().replace("&", "").startswith("Import CSV"):
                    return a
    raise AssertionError("File ▸ Import CSV… is not in the menu bar")


class User:
    """Answers the modal windows that File ▸ Import CSV… opens, on the GUI thread, while they are
    shown: `on_dialog(dlg)` drives the ImportDialog; message boxes are read (their text kept in
    `messages`) and closed with their OK button. A failure inside a handler closes the modal
    windows (so exec() returns) and is raised again by `import_files`."""

    def __init__(self, qtbot, window, monkeypatch):
        self.qtbot, self.window, self.monkeypatch = qtbot, window, monkeypatch
        self.messages: list[str] = []
        self.dialogs: list[ImportDialog] = []
        self.error: BaseException | None = None
        self._seen: set[int] = set()

    def import_files(self, paths, on_dialog=None, timeout_ms=30_000):
        chosen = [str(p) for p in paths]
        calls = []

        def fake_choose(*args, **kwargs):
            calls.append(args)
            return chosen, "Price files (*.csv *.tsv *.txt *.gz *.bz2 *.xz)"

        self.monkeypatch.setattr(QFileDialog, "getOpenFileNames", staticmethod(fake_choose))
        self._on_dialog = on_dialog
        # two timers: Qt does not fire a timer again while its slot runs, and the dialog's
        # handler runs for a while (nested event loops) during which message boxes appear
        poll = QTimer()
        poll.setInterval(20)
        poll.timeout.connect(self._tick_dialogs)
        poll.start()
        poll_boxes = QTimer()
        poll_boxes.setInterval(20)
        poll_boxes.timeout.connect(self._tick_boxes)
        poll_boxes.start()
        guard = QTimer()
        guard.setSingleShot(True)
        guard.timeout.connect(lambda: self._fail(TimeoutError("a modal window was still open after the timeout")))
        guard.start(timeout_ms)
        try:
            import_action(self.window).trigger()
        finally:
            poll.stop()
            poll_boxes.stop()
            guard.stop()
        assert calls, "the file chooser was not opened"
        if self.error is not None:
            raise self.error
        return self.dialogs[-1] if self.dialogs else None

    def _tick_boxes(self):
        for w in QApplication.topLevelWidgets():
            if isinstance(w, QMessageBox) and w.isVisible() and id(w) not in self._seen:
                self._seen.add(id(w))
                self.messages.append(w.text())
                self.qtbot.mouseClick(w.button(QMessageBox.StandardButton.Ok), Qt.MouseButton.LeftButton)

    def _tick_dialogs(self):
        for w in QApplication.topLevelWidgets():
            if isinstance(w, ImportDialog) and w.isVisible() and id(w) not in self._seen:
                self._seen.add(id(w))
                self.dialogs.append(w)
                try:
                    if self._on_dialog is not None:
                        self._on_dialog(w)
                    else:
                        self.click_load(w)
                except BaseException as e:  # noqa: BLE001 - re-raised by import_files
                    self._fail(e)

    def _fail(self, e: BaseException) -> None:
        if self.error is None:
            self.error = e
        for w in QApplication.topLevelWidgets():
            if w.isVisible() and isinstance(w, (ImportDialog, QMessageBox)):
                w.reject()

    # ---- gestures on the dialog ----
    def wait_loaded(self, dlg, timeout=30_000):
        """Wait until the background load for the dialog's current settings has finished."""
        self.qtbot.waitUntil(lambda: dlg.current_outcome() is not None, timeout=timeout)
        return dlg.current_outcome()

    def click_load(self, dlg):
        self.wait_loaded(dlg)
        self.qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)

    def click_cancel(self, dlg):
        from PySide6.QtWidgets import QDialogButtonBox

        self.qtbot.mouseClick(dlg.buttons.button(QDialogButtonBox.StandardButton.Cancel), Qt.MouseButton.LeftButton)

    def toggle_price_column(self, dlg, column):
        """Click the checkbox of a column in the "Price column(s)" list."""
        item = dlg.price_item(column)
        assert item is not None, f"no {column!r} in the price list"
        lst = dlg.price_list
        lst.scrollToItem(item)
        rect = lst.visualItemRect(item)
        before = item.checkState()
        # the check indicator sits at the left of the row, about one row-height wide
        pos = QPoint(rect.left() + max(rect.height() // 2, 8), rect.center().y())
        self.qtbot.mouseClick(lst.viewport(), Qt.MouseButton.LeftButton, pos=pos)
        if item.checkState() == before:  # indicator not hit with this style: keyboard, as a user would
            self.qtbot.mouseClick(lst.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
            self.qtbot.keyClick(lst, Qt.Key.Key_Space)
        assert item.checkState() != before, f"clicking {column!r} did not toggle it"


@pytest.fixture
def user(qtbot, window, monkeypatch):
    return User(qtbot, window, monkeypatch)


def mr_sources(window):
    c = window.mean_reversion.source
    return [c.itemText(i) for i in range(c.count())]


# ---------------------------------------------------------------------------------------------
# realistic files
# ---------------------------------------------------------------------------------------------


def write_ohlcv(path, adj: pd.Series, *, factor=1.0, volume=True, header=None, seed=0):
    """A Yahoo-Finance-style daily file: Date,Open,High,Low,Close,Adj Close,Volume (Close =
    Adj Close × factor, as before dividends are adjusted)."""
    rng = np.random.default_rng(seed)
    close = adj.to_numpy() * factor
    open_ = close * (1 + rng.normal(0, 0.004, len(close)))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.004, len(close))))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.004, len(close))))
    vol = rng.integers(1_000_000, 90_000_000, len(close))
    cols = header or ["Date", "Open", "High", "Low", "Close", "Adj Close"] + (["Volume"] if volume else [])
    lines = [",".join(cols)]
    for i, d in enumerate(adj.index):
        row = [f"{d:%Y-%m-%d}", f"{open_[i]:.6f}", f"{high[i]:.6f}", f"{low[i]:.6f}", f"{close[i]:.6f}", repr(float(adj.iloc[i]))]
        if volume:
            row.append(str(vol[i]))
        lines.append(",".join(row))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def gspc_frame():
    import arch.data.sp500

    return arch.data.sp500.load()


def write_gspc(path, frame):
    """arch's S&P 500 index file as Yahoo Finance exports it."""
    out = frame.copy()
    out.index = pd.DatetimeIndex(out.index).strftime("%Y-%m-%d")
    out.index.name = "Date"
    out.to_csv(path, float_format="%.6f")
    return path


# ---------------------------------------------------------------------------------------------
# the tests
# ---------------------------------------------------------------------------------------------


def test_yahoo_ohlcv_file_becomes_one_asset_from_adj_close(qtbot, window, user, tmp_path, gspc_frame, settings):
    path = write_gspc(tmp_path / "GSPC.csv", gspc_frame)
    seen = {}

    def on_dialog(dlg):
        out = user.wait_loaded(dlg)
        seen["layout"] = dlg.layout_combo.currentData()
        seen["checked"] = dlg.price_columns()
        seen["items"] = [dlg.price_list.item(i).text() for i in range(dlg.price_list.count())]
        seen["hint"] = dlg.price_hint.text()
        seen["status"] = dlg.status.text()
        seen["report"] = dlg.report.toPlainText()
        assert out.dataset.prices.shape == (5031, 1)
        user.click_load(dlg)

    before = window.dataset_label.text()
    user.import_files([path], on_dialog)
    assert seen["layout"] == "ohlcv" and seen["checked"] == ["Adj Close"]
    assert "Adj Close  (adjusted close)  · default" in seen["items"]
    assert "Volume  — not a price" in seen["items"]
    assert seen["hint"].startswith("Asset 'GSPC' (from the file name), priced by Adj Close (adjusted for splits and dividends).")
    assert seen["status"].startswith("Ready: GSPC: 1 asset, 5,031 rows")
    assert "price from 'Adj Close' (adjusted close)" in seen["report"]
    # the window's dataset changed: status bar, the store, the Mean Reversion source list
    assert window.dataset_label.text() != before
    assert window.dataset_label.text() == "GSPC: 1 asset, 5,031 rows, 1999-01-04 … 2018-12-31"
    prices = window.store.dataset.prices
    assert list(prices.columns) == ["GSPC"]
    np.testing.assert_allclose(prices["GSPC"].to_numpy(), gspc_frame["Adj Close"].to_numpy(), rtol=1e-9)
    assert "Active dataset: GSPC" in mr_sources(window) and not user.messages
    # what was remembered reloads the same dataset in a new window (QSettings, load_prices params)
    src = json.loads(settings.value("dataset/source"))
    assert src["params"]["price_columns"] == ["Adj Close"] and src["params"]["layout"] == "ohlcv"
    again = MainWindow(window.router, settings)
    qtbot.addWidget(again)
    pd.testing.assert_frame_equal(again.store.dataset.prices, prices)
    assert again.dataset_label.text() == window.dataset_label.text()


def test_choosing_close_instead_of_adj_close(window, user, tmp_path, sp500_stocks):
    adj = sp500_stocks["AAPL"].iloc[-600:]
    path = write_ohlcv(tmp_path / "AAPL.csv", adj, factor=1.25)

    def on_dialog(dlg):
        user.wait_loaded(dlg)
        assert dlg.price_columns() == ["Adj Close"]
        user.toggle_price_column(dlg, "Close")
        user.toggle_price_column(dlg, "Adj Close")
        assert dlg.price_columns() == ["Close"]
        out = user.wait_loaded(dlg)
        assert "'AAPL' (from the file name), priced by Close (not adjusted for dividends)" in dlg.price_hint.text()
        assert out.dataset.assets == ["AAPL"]
        # rename the asset: select the field's text and type over it
        assert dlg.asset_name.isVisible() and dlg.asset_name.text() == "AAPL"
        user.qtbot.mouseDClick(dlg.asset_name, Qt.MouseButton.LeftButton)
        user.qtbot.keyClick(dlg.asset_name, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
        user.qtbot.keyClicks(dlg.asset_name, "Apple")
        out = user.wait_loaded(dlg)
        assert out.dataset.assets == ["Apple"] and "'Apple' (your name)" in dlg.price_hint.text()
        user.click_load(dlg)

    user.import_files([path], on_dialog)
    got = window.store.dataset.prices["Apple"]
    np.testing.assert_allclose(got.to_numpy(), (adj * 1.25).to_numpy(), rtol=1e-6)
    assert window.dataset_label.text().startswith("AAPL: 1 asset, 600 rows")
    assert "Active dataset: Apple" in mr_sources(window)


def test_checking_close_as_well_gives_two_series(window, user, tmp_path, sp500_stocks):
    adj = sp500_stocks["MSFT"].iloc[-300:]
    path = write_ohlcv(tmp_path / "MSFT.csv", adj, factor=1.1)

    def on_dialog(dlg):
        user.wait_loaded(dlg)
        user.toggle_price_column(dlg, "Close")
        out = user.wait_loaded(dlg)
        assert out.dataset.assets == ["MSFT Close", "MSFT Adj Close"]
        user.click_load(dlg)

    user.import_files([path], on_dialog)
    assert window.store.dataset.assets == ["MSFT Close", "MSFT Adj Close"]
    assert window.dataset_label.text().startswith("MSFT: 2 assets, 300 rows")


def test_a_volume_only_file_is_questioned_not_loaded(window, user, tmp_path):
    path = tmp_path / "AAPL_volume.csv"
    days = pd.bdate_range("2024-01-02", periods=40)
    path.write_text("Date,Volume\n" + "".join(f"{d:%Y-%m-%d},{1_000_000 + 13 * i}\n" for i, d in enumerate(days)))
    before = window.store.dataset
    seen = {}

    def on_dialog(dlg):
        err = user.wait_loaded(dlg)
        seen["err"] = str(err)
        seen["hint"] = dlg.price_hint.text()
        seen["status"] = dlg.status.text()
        seen["items"] = [dlg.price_list.item(i).text() for i in range(dlg.price_list.count())]
        assert dlg.price_columns() == []
        user.click_load(dlg)  # Load explains in a message box; the dialog stays open
        user.qtbot.waitUntil(lambda: len(user.messages) == 1, timeout=10_000)
        assert dlg.isVisible() and dlg.dataset() is None
        user.click_cancel(dlg)

    user.import_files([path], on_dialog)
    why = "the file has only volume-like columns ('Volume'), no prices"
    assert why in seen["err"] and why in seen["status"]
    assert seen["hint"].startswith("The file has only volume-like columns ('Volume'), no prices")
    assert seen["items"] == ["Volume  — not a price"]
    assert len(user.messages) == 1 and f"AAPL_volume.csv: {why}" in user.messages[0]
    assert window.store.dataset is before  # nothing loaded, no "1 asset"


def test_several_ohlcv_files_combine_into_one_dataset(qtbot, window, user, tmp_path, sp500_stocks, settings):
    tickers = ["AAPL", "JPM", "XOM"]
    frame = sp500_stocks[tickers].iloc[-400:]
    paths = []
    for k, t in enumerate(tickers):
        s = frame[t]
        if t == "JPM":
            s = s.iloc[25:]  # starts later
        if t == "XOM":
            s = s.drop(s.index[100:103])  # three missing days
        header = None
        if t == "XOM":  # another exporter's header: lowercase, adj_close, no trailing Volume
            header = ["date", "open", "high", "low", "close", "adj_close", "volume"]
        paths.append(write_ohlcv(tmp_path / f"{t}.csv", s, factor=1.05, header=header, seed=k))
    inner = frame.iloc[25:].drop(frame.index[100:103])
    seen = {}

    def on_dialog(dlg):
        out = user.wait_loaded(dlg)
        seen["label"] = dlg.file_label.text()
        seen["drop_text"] = dlg.drop.text()
        assert dlg.preview_file.isVisible() and dlg.preview_file.count() == 3
        assert out.dataset.assets == tickers and len(out.dataset.prices) == len(inner)
        seen["report"] = dlg.report.toPlainText()
        # the outer join: all dates, gaps forward-filled
        user.qtbot.mouseClick(dlg.ffill, Qt.MouseButton.LeftButton)
        assert dlg.ffill.isChecked()
        out = user.wait_loaded(dlg)
        seen["outer"] = out.dataset.prices
        # back to the inner join and load
        user.qtbot.mouseClick(dlg.drop, Qt.MouseButton.LeftButton)
        user.click_load(dlg)

    user.import_files(paths, on_dialog)
    assert seen["label"].startswith("<b>3 files</b>: AAPL.csv, JPM.csv, XOM.csv")
    assert "inner join" in seen["drop_text"]
    assert "Dates: 400 in any file, 372 in every file" in seen["report"]
    ds = window.store.dataset
    assert ds.name == "AAPL + JPM + XOM" and ds.assets == tickers
    expected = inner.copy()
    expected.index.name = "date"
    pd.testing.assert_frame_equal(ds.prices, expected, check_freq=False, rtol=1e-12)
    assert (
        window.dataset_label.text()
        == f"AAPL + JPM + XOM: 3 assets, 372 rows, {inner.index[0]:%Y-%m-%d} … {inner.index[-1]:%Y-%m-%d}"
    )
    assert [s for s in mr_sources(window) if s.startswith("Active")] == [f"Active dataset: {t}" for t in tickers]
    src = json.loads(settings.value("dataset/source"))
    assert src["path"] == [str(p) for p in paths] and src["params"]["nan_policy"] == "drop"
    again = MainWindow(window.router, settings)  # the next start reloads the three files
    qtbot.addWidget(again)
    pd.testing.assert_frame_equal(again.store.dataset.prices, ds.prices)
    assert again.store.dataset.name == "AAPL + JPM + XOM"
    outer = seen["outer"]  # from JPM's first date on (rows before every asset has a price are dropped)
    assert len(outer) == 375 and outer["XOM"].iloc[100 - 25] == frame["XOM"].iloc[99]


def test_a_long_format_file(window, user, tmp_path, sp500_stocks):
    tickers = ["KO", "PEP", "PG"]
    frame = sp500_stocks[tickers].iloc[-250:]
    rows = ["Date,Ticker,Open,High,Low,Close,Adj Close,Volume"]
    for t in tickers:
        for d, v in frame[t].items():
            rows.append(f"{d:%Y-%m-%d},{t},{v * 1.01:.4f},{v * 1.02:.4f},{v * 0.99:.4f},{v * 1.03:.4f},{v!r},1234567")
    path = tmp_path / "staples_long.csv"
    path.write_text("\n".join(rows) + "\n")
    seen = {}

    def on_dialog(dlg):
        user.wait_loaded(dlg)
        seen["layout"] = dlg.layout_combo.currentData()
        seen["ticker"] = dlg.ticker_column.currentData()
        seen["checked"] = dlg.price_columns()
        user.click_load(dlg)

    user.import_files([path], on_dialog)
    assert seen == {"layout": "long", "ticker": "Ticker", "checked": ["Adj Close"]}
    ds = window.store.dataset
    assert ds.assets == tickers and ds.name == "staples_long"
    np.testing.assert_allclose(ds.prices.to_numpy(), frame.to_numpy(), rtol=1e-12)
    assert window.dataset_label.text().startswith("staples_long: 3 assets, 250 rows")


def test_a_bad_cell_names_its_line_and_can_be_treated_as_missing(qtbot, window, user, tmp_path, sp500_stocks, settings):
    adj = sp500_stocks["GE"].iloc[-2600:]
    path = write_ohlcv(tmp_path / "GE.csv", adj)
    lines = path.read_text().splitlines()

    def spoil(line_no, value):  # line_no as a text editor shows it
        f = lines[line_no - 1].split(",")
        f[5] = value
        lines[line_no - 1] = ",".join(f)

    spoil(2502, "#VALUE!")
    spoil(2590, "#DIV/0!")
    path.write_text("\n".join(lines) + "\n")
    seen = {}

    def on_dialog(dlg):
        err = user.wait_loaded(dlg)
        seen["err"] = str(err)
        seen["status"] = dlg.status.text()
        seen["box_visible"] = dlg.bad_cells.isVisible()
        seen["box"] = dlg.bad_cells.text()
        seen["detail"] = dlg.bad_cells_detail.text()
        user.qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)  # Load: the error, explained
        user.qtbot.waitUntil(lambda: len(user.messages) == 1, timeout=10_000)
        user.qtbot.mouseClick(dlg.bad_cells, Qt.MouseButton.LeftButton)
        assert dlg.bad_cells.isChecked()
        out = user.wait_loaded(dlg)
        seen["report"] = dlg.report.toPlainText()
        assert len(out.dataset.prices) == 2598
        user.click_load(dlg)

    user.import_files([path], on_dialog)
    msg = "line 2502: '#VALUE!' in column 'Adj Close' is not a number"
    assert seen["err"] == msg
    assert seen["status"].startswith(f"Error: {msg}") and "2 unparseable cells" in seen["status"]
    assert seen["box_visible"] and seen["box"] == "Treat unparseable cells as missing (2 cells)"
    assert seen["detail"] == "First: '#VALUE!' in 'Adj Close' at line 2502; '#DIV/0!' in 'Adj Close' at line 2590"
    assert user.messages[0].startswith(f"GE.csv: {msg}") and "2 unparseable cells" in user.messages[0]
    assert "Unparseable cells treated as missing: 2" in seen["report"]
    ds = window.store.dataset
    assert len(ds.prices) == 2598 and ds.assets == ["GE"]
    keep = adj.drop(adj.index[[2502 - 2, 2590 - 2]])
    np.testing.assert_allclose(ds.prices["GE"].to_numpy(), keep.to_numpy(), rtol=1e-12)
    assert window.dataset_label.text().startswith("GE: 1 asset, 2,598 rows")
    # restoring the last dataset at the next start reproduces it, bad cells treated as missing
    src = json.loads(settings.value("dataset/source"))
    assert src["params"]["bad_cells"] == "missing" and src["path"] == str(path)
    again = MainWindow(window.router, settings)
    qtbot.addWidget(again)
    pd.testing.assert_frame_equal(again.store.dataset.prices, ds.prices)


def test_the_same_option_with_several_files_counts_cells_in_every_file(window, user, tmp_path, sp500_stocks):
    paths = []
    for t, bad in (("HD", {51: "n.a."}), ("WMT", {11: "#VALUE!", 31: "err"})):  # file line: text
        p = write_ohlcv(tmp_path / f"{t}.csv", sp500_stocks[t].iloc[-100:])
        lines = p.read_text().splitlines()
        for line_no, v in bad.items():
            f = lines[line_no - 1].split(",")
            f[5] = v
            lines[line_no - 1] = ",".join(f)
        p.write_text("\n".join(lines) + "\n")
        paths.append(p)

    def on_dialog(dlg):
        err = user.wait_loaded(dlg)
        assert str(err) == "HD.csv: line 51: 'n.a.' in column 'Adj Close' is not a number"
        assert "3 unparseable cells in 2 files" in dlg.status.text()
        assert dlg.bad_cells.text() == "Treat unparseable cells as missing (3 cells in 2 files)"
        assert dlg.bad_cells_detail.text().startswith("First: HD.csv: 'n.a.' in 'Adj Close' at line 51")
        user.qtbot.mouseClick(dlg.bad_cells, Qt.MouseButton.LeftButton)
        out = user.wait_loaded(dlg)
        assert len(out.dataset.prices) == 97
        user.click_load(dlg)

    user.import_files(paths, on_dialog)
    assert window.store.dataset.assets == ["HD", "WMT"] and len(window.store.dataset.prices) == 97


def test_errors_are_shown_to_the_user(window, user, tmp_path):
    xlsx = tmp_path / "prices.xlsx"
    xlsx.write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    before = window.store.dataset
    assert user.import_files([xlsx]) is None  # refused before the dialog, with a message box
    assert user.messages == [
        "prices.xlsx: this is a ZIP archive (or an Excel .xlsx workbook), not a CSV text file: export or save it as CSV first"
    ]
    # a file without dates among several: the message names the file
    good = write_ohlcv(tmp_path / "AAPL.csv", pd.Series([1.0, 2.0, 3.0], index=pd.bdate_range("2024-01-02", periods=3)))
    nodate = tmp_path / "MSFT.csv"
    nodate.write_text("Open,Close,Volume\n1,2,3\n4,5,6\n")

    def on_dialog(dlg):
        err = user.wait_loaded(dlg)
        assert str(err).startswith("MSFT.csv: no date column")
        assert dlg.status.text().startswith("Error: MSFT.csv: no date column")
        user.qtbot.mouseClick(dlg.ok_button, Qt.MouseButton.LeftButton)
        user.qtbot.waitUntil(lambda: len(user.messages) == 2, timeout=10_000)
        user.click_cancel(dlg)

    user.import_files([good, nodate], on_dialog)
    assert user.messages[1].startswith("MSFT.csv: no date column")
    assert window.store.dataset is before


def test_an_exception_in_the_import_slot_fails_loudly(qtbot, window, monkeypatch):
    """The failure mode of issue 12 item 1 (AttributeError inside the slot, seen only on stderr):
    pytest-qt's capture sees it, so any test that hits one fails."""

    def broken(*a, **k):
        raise AttributeError("'ImportDialog' object has no attribute 'Accepted'")

    monkeypatch.setattr(QFileDialog, "getOpenFileNames", staticmethod(broken))
    with qtbot.capture_exceptions() as exceptions:
        import_action(window).trigger()
    assert len(exceptions) == 1 and exceptions[0][0] is AttributeError


def test_slot_exceptions_reach_pytest_qt_while_the_window_exists(qtbot, window):
    """The default capture (no `qt_no_exception_capture`) is what makes every test above fail on
    an exception in a slot: it is pytest-qt's sys.excepthook. Check it is still the one installed
    once the window exists (an application-wide hook installed by the window must not replace it
    silently), and that an exception in a slot lands in its list."""
    import functools
    import sys

    import pytestqt.exceptions

    hook = sys.excepthook
    assert isinstance(hook, functools.partial) and hook.func is pytestqt.exceptions._except_hook, (
        f"sys.excepthook is {hook!r}, not pytest-qt's: an exception in a Qt slot would not fail the tests"
    )
    captured = hook.keywords["exceptions"]
    n = len(captured)
    QTimer.singleShot(0, lambda: 1 / 0)
    qtbot.waitUntil(lambda: len(captured) > n, timeout=5_000)
    assert captured[-1][0] is ZeroDivisionError
    del captured[n:]  # expected here; anywhere else it fails the test
