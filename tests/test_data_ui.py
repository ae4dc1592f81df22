"""Qt side of the data layer (offscreen): the import dialog (good, ambiguous and bad files, the
GUI thread keeps running during a 1M-row load), the DatasetStore and its signals, QSettings
save/restore of tab parameters, and plot export (PNG/SVG)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pyqtgraph as pg
import pytest
from hft_lab.data import Dataset, load_sample_prices, synthetic_dataset
from hft_lab.data.export import export_plot
from hft_lab.data.store import DatasetStore
from hft_lab.ui.import_dialog import ImportDialog
from hft_lab.ui.plots import make_plot
from hft_lab.ui.settings import restore_widgets, save_widgets
from PySide6.QtCore import QDate, QSettings, Qt, QTimer
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDateEdit,
    QDialog,
    QDoubleSpinBox,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

pytestmark = pytest.mark.gui

GOOD = "Date,AAPL,MSFT\n2020-01-02,1,10\n2020-01-03,2,\n2020-01-06,3,30\n2020-01-07,4,40\n"


@pytest.fixture
def critical(monkeypatch):
    """QMessageBox.critical recorded instead of shown (it would block the test)."""
    calls: list[str] = []

    def fake(parent, title, text, *a, **k):
        calls.append(text)
        return QMessageBox.StandardButton.Ok

    monkeypatch.setattr(QMessageBox, "critical", staticmethod(fake))
    return calls


def open_dialog(qtbot, path):
    dlg = ImportDialog(path)
    qtbot.addWidget(dlg)
    dlg.show()
    return dlg


def wait_analysis(qtbot, dlg, timeout=20_000):
    with qtbot.waitSignal(dlg.analysis_done, timeout=timeout) as blocker:
        pass
    return blocker.args[0]


# ---------------------------------------------------------------------------------------------
# import dialog
# ---------------------------------------------------------------------------------------------


def test_dialog_on_a_good_file_returns_a_dataset(qtbot, tmp_path, critical):
    p = tmp_path / "good.csv"
    p.write_text(GOOD)
    dlg = open_dialog(qtbot, p)
    assert dlg.delimiter.currentData() == "," and dlg.layout_combo.currentData() == "wide"
    assert dlg.date_column.currentData() == "Date" and dlg.date_format.currentData() == "ISO"
    assert dlg.preview.rowCount() == 4 and dlg.preview.columnCount() == 3
    assert dlg.preview.verticalHeaderItem(0).text() == "2"  # file line numbers
    out = wait_analysis(qtbot, dlg)
    assert out.dataset.prices.shape == (3, 2)
    assert "'MSFT' 1 (first at line 3)" in dlg.report.toPlainText() and "Ready" in dlg.status.text()
    assert dlg.ok_button.isEnabled()
    dlg.name.setText("My prices")
    dlg.ok_button.click()
    assert dlg.result() == QDialog.DialogCode.Accepted and not critical
    ds = dlg.dataset()
    assert isinstance(ds, Dataset) and ds.name == "My prices"
    assert list(ds.prices.columns) == ["AAPL", "MSFT"] and list(ds.prices["AAPL"]) == [1.0, 3.0, 4.0]


def test_nan_policy_choice_reloads(qtbot, tmp_path):
    p = tmp_path / "good.csv"
    p.write_text(GOOD)
    dlg = open_dialog(qtbot, p)
    wait_analysis(qtbot, dlg)
    with qtbot.waitSignal(dlg.analysis_done, timeout=20_000) as b:
        dlg.ffill.setChecked(True)
    assert b.args[0].dataset.prices.shape == (4, 2) and b.args[0].nan_policy == "ffill"
    dlg.ok_button.click()
    assert dlg.dataset().prices.loc["2020-01-03", "MSFT"] == 10.0


def test_ambiguous_dates_disable_ok_until_chosen(qtbot, tmp_path, critical):
    p = tmp_path / "amb.csv"
    p.write_text("Date;X\n01/02/2020;1,5\n03/04/2020;2,5\n05/06/2020;3,5\n")
    dlg = open_dialog(qtbot, p)
    assert dlg.needs_date_choice and not dlg.ok_button.isEnabled()
    assert dlg.date_warning.isVisible() and "US" in dlg.date_warning.text()
    qtbot.wait(400)  # nothing is loaded meanwhile, and OK stays disabled
    assert not dlg.ok_button.isEnabled() and dlg.dataset() is None
    with qtbot.waitSignal(dlg.analysis_done, timeout=20_000):
        dlg.date_format.setCurrentIndex(dlg.date_format.findData("EU"))
    assert dlg.ok_button.isEnabled()
    dlg.ok_button.click()
    ds = dlg.dataset()
    assert dlg.result() == QDialog.DialogCode.Accepted and not critical
    assert list(ds.prices.index) == [pd.Timestamp("2020-02-01"), pd.Timestamp("2020-04-03"), pd.Timestamp("2020-06-05")]
    assert list(ds.prices["X"]) == [1.5, 2.5, 3.5]  # decimal comma detected with the semicolon


def bad_file(tmp_path):
    lines = ["Date,AAPL,MSFT"] + [f"2020-01-{d:02d},{d},{d + 1}" for d in range(1, 16)]
    lines.insert(16, "2020-01-16,3,abc")  # line 17
    p = tmp_path / "bad.csv"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_bad_file_shows_the_line_and_returns_none(qtbot, tmp_path, critical):
    dlg = open_dialog(qtbot, bad_file(tmp_path))
    err = wait_analysis(qtbot, dlg)
    assert err.line == 17 and "line 17" in dlg.status.text()
    row = dlg.sniff_result.preview_lines.index(17)  # the offending row is marked in the preview
    assert dlg.preview.verticalHeaderItem(row).text() == "17" and dlg.preview.item(row, 2).text() == "abc"
    assert dlg.preview.item(row, 2).background().color().name() == "#f8d0d0"
    assert dlg.ok_button.isEnabled()  # OK explains the failure in a message box
    dlg.ok_button.click()
    assert len(critical) == 1
    assert "bad.csv: line 17: 'abc' in column 'MSFT' is not a number" in critical[0]
    assert dlg.dataset() is None and dlg.result() != QDialog.DialogCode.Accepted and dlg.isVisible()
    dlg.reject()
    assert dlg.dataset() is None


def test_unreadable_file_reports_and_returns_none(qtbot, tmp_path, critical):
    p = tmp_path / "empty.csv"
    p.write_text("")
    assert ImportDialog.get_dataset(p) is None
    assert critical == ["empty.csv: the file is empty"]


def test_changing_the_delimiter_resniffs(qtbot, tmp_path, critical):
    p = tmp_path / "semi.csv"
    p.write_text(GOOD.replace(",", ";"))
    dlg = open_dialog(qtbot, p)
    wait_analysis(qtbot, dlg)
    dlg.delimiter.setCurrentIndex(dlg.delimiter.findData(","))  # wrong: one field per line
    assert "Cannot read this file" in dlg.status.text() and dlg.preview.columnCount() == 0
    dlg.ok_button.click()
    assert len(critical) == 1 and "with comma as delimiter every line has one field" in critical[0]
    assert dlg.dataset() is None and dlg.result() != QDialog.DialogCode.Accepted
    with qtbot.waitSignal(dlg.analysis_done, timeout=20_000):
        dlg.delimiter.setCurrentIndex(dlg.delimiter.findData(";"))
    dlg.ok_button.click()
    assert dlg.dataset().prices.shape == (3, 2)


def minute_file(path, n, columns=1):
    """n minute bars of `columns` random-walk prices (written quickly, without pandas)."""
    stamps = pd.date_range("2000-01-01", periods=n, freq="min").strftime("%Y-%m-%d %H:%M")
    rng = np.random.default_rng(1)
    cols = [np.round(100 + rng.standard_normal(n).cumsum() * 0.01, 4).tolist() for _ in range(columns)]
    head = "timestamp," + ",".join(f"A{j}" for j in range(columns))
    body = "\n".join(",".join([s] + [repr(c[i]) for c in cols]) for i, s in enumerate(stamps))
    path.write_text(head + "\n" + body + "\n")
    return path


def test_ok_during_a_load_accepts_when_it_ends(qtbot, tmp_path):
    n = 300_000
    dlg = open_dialog(qtbot, minute_file(tmp_path / "big.csv", n))
    dlg.ok_button.click()  # before the background load has finished (or even started)
    assert dlg.result() != QDialog.DialogCode.Accepted
    qtbot.waitUntil(lambda: dlg.result() == QDialog.DialogCode.Accepted, timeout=30_000)
    assert dlg.dataset().prices.shape == (n, 1)


@pytest.mark.serial
def test_gui_thread_keeps_running_during_a_1m_row_load(qtbot, tmp_path):
    n = 1_000_000
    minute_file(tmp_path / "m.csv", n, columns=2)
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    t0 = time.perf_counter()
    dlg = open_dialog(qtbot, tmp_path / "m.csv")
    t1 = time.perf_counter()
    out = wait_analysis(qtbot, dlg, timeout=60_000)
    done = time.perf_counter()
    timer.stop()
    gaps = np.diff([t1] + [t for t in ticks if t1 < t <= done] + [done])
    print(f"sniff+dialog {1e3 * (t1 - t0):.0f} ms, load {done - t1:.2f} s, max GUI gap {1e3 * gaps.max():.0f} ms")
    assert out.dataset.prices.shape == (n, 2)
    assert gaps.max() < 0.2, f"the GUI thread stalled {1e3 * gaps.max():.0f} ms during the load"


# ---------------------------------------------------------------------------------------------
# store
# ---------------------------------------------------------------------------------------------


def test_store_starts_with_the_sample_and_describes_it(qtbot):
    s = DatasetStore()
    assert s.dataset.name == load_sample_prices().name
    assert s.describe() == "S&P 500 sample (20 stocks): 20 assets, 8,313 rows, 1990-01-02 … 2022-12-28"
    pd.testing.assert_frame_equal(s.selected_prices(), load_sample_prices().prices)


def test_store_selection_and_signals(qtbot):
    s = DatasetStore()
    changed, replaced = [], []
    s.changed.connect(lambda: changed.append(1))
    s.dataset_changed.connect(replaced.append)
    with qtbot.waitSignal(s.changed, timeout=1000):
        s.set_selection("2000-01-01", "2000-12-31", ["MSFT", "AAPL"])
    px = s.selected_prices()
    assert list(px.columns) == ["MSFT", "AAPL"] and px.index[0] == pd.Timestamp("2000-01-03")
    assert px.index[-1] == pd.Timestamp("2000-12-29") and s.date_range == (px.index[0], px.index[-1])
    assert (
        s.describe()
        == "S&P 500 sample (20 stocks): 2 assets, 252 rows, 2000-01-03 … 2000-12-29 (selected from 20 assets, 8313 rows)"
    )
    assert len(changed) == 1
    s.set_selection("2000-01-01", "2000-12-31", ["MSFT", "AAPL"])  # no change, no signal
    s.set_date_range("2000-01-03", "2000-12-29")  # the same effective rows
    assert len(changed) == 1
    for bad in (
        lambda: s.set_date_range("2001-01-01", "2000-01-01"),
        lambda: s.set_date_range("2000-01-01", "2000-01-03"),
        lambda: s.set_assets([]),
        lambda: s.set_assets(["NOPE"]),
        lambda: s.set_date_range("tomorrow-ish"),
    ):
        with pytest.raises(ValueError):
            bad()
    assert len(changed) == 1 and s.assets == ["MSFT", "AAPL"]  # refused: the selection stays
    px.iloc[0, 0] = -1.0  # a copy: the store's data is not modified
    assert s.selected_prices().iloc[0, 0] != -1.0
    s.set_assets(None)
    assert len(changed) == 2 and len(s.assets) == 20
    ds = synthetic_dataset("cointegrated", n=300, assets=3)
    s.set_dataset(ds)
    assert len(changed) == 3 and replaced == [s.dataset] and s.full_selection
    assert s.describe() == ds.describe() and s.selected_prices().shape == (300, 3)
    s.reset_selection()
    assert len(changed) == 3


def test_store_with_bar_numbers_and_synthetic_loading(qtbot):
    s = DatasetStore(synthetic_dataset("ou", n=70_000))
    assert isinstance(s.dataset.prices.index, pd.RangeIndex)
    s.set_date_range(100, 199)
    assert s.selected_prices().shape == (100, 1) and s.describe().endswith("(selected from 1 assets, 70000 rows)")
    with qtbot.waitSignal(s.dataset_changed, timeout=1000):
        ds = s.load_synthetic("gbm", n=500, assets=4, seed=2)
    assert s.dataset is ds and "Synthetic GBM (n=500, 4 assets" in s.describe()
    with pytest.raises(ValueError, match="unknown parameter"):
        s.load_synthetic("gbm", kappa=1)
    assert s.dataset is ds
    inputs = s.inputs()
    assert inputs["rows"] == 500 and inputs["source"]["params"]["seed"] == 2
    bad = Dataset("bad", pd.DataFrame({"A": [1.0]}, index=pd.DatetimeIndex(["2020-01-01"])))
    with pytest.raises(ValueError, match="at least 2"):
        s.set_dataset(bad)
    assert s.dataset is ds


# ---------------------------------------------------------------------------------------------
# settings
# ---------------------------------------------------------------------------------------------


def make_widgets():
    combo = QComboBox()
    combo.addItems(["min_variance", "max_sharpe", "risk_parity"])
    spin, dspin, check, line, date = QSpinBox(), QDoubleSpinBox(), QCheckBox("x"), QLineEdit(), QDateEdit()
    spin.setRange(1, 1000)
    dspin.setRange(-10.0, 10.0)
    dspin.setDecimals(6)
    date.setDate(QDate(2000, 1, 1))
    return {"lookback": spin, "threshold": dspin, "method": combo, "use_stop": check, "name": line, "start": date}


def values(ws):
    return (
        ws["lookback"].value(),
        ws["threshold"].value(),
        ws["method"].currentText(),
        ws["use_stop"].isChecked(),
        ws["name"].text(),
        ws["start"].date(),
    )


def test_settings_round_trip(qtbot, tmp_path):
    path = str(tmp_path / "s.ini")
    a = make_widgets()
    a["lookback"].setValue(37)
    a["threshold"].setValue(-1.234567)
    a["method"].setCurrentText("risk_parity")
    a["use_stop"].setChecked(True)
    a["name"].setText("pairs, é")
    a["start"].setDate(QDate(2011, 3, 14))
    save_widgets(QSettings(path, QSettings.Format.IniFormat), "portfolio", a)
    b = make_widgets()
    restored = restore_widgets(QSettings(path, QSettings.Format.IniFormat), "portfolio", b)  # a fresh QSettings: from disk
    assert sorted(restored) == sorted(a)
    assert values(b) == values(a)


def test_settings_skip_missing_and_invalid_values(qtbot, tmp_path):
    st = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    st.beginGroup("tab")
    for k, v in {
        "lookback": "abc",
        "threshold": "nan",
        "method": "removed_method",
        "use_stop": "maybe",
        "start": "2020-13-45",
        "name": "kept",
    }.items():
        st.setValue(k, v)
    st.endGroup()
    w = make_widgets()
    before = values(w)
    assert restore_widgets(st, "tab", w) == ["name"]
    assert values(w)[:4] == before[:4] and values(w)[5] == before[5] and w["name"].text() == "kept"
    assert restore_widgets(st, "other-group", make_widgets()) == []
    st.setValue("tab/lookback", "5000")  # out of range: clamped by the widget
    restore_widgets(st, "tab", w)
    assert w["lookback"].value() == 1000
    with pytest.raises(TypeError, match="not checkable"):
        save_widgets(st, "tab", {"button": QPushButton("go")})


# ---------------------------------------------------------------------------------------------
# plot export
# ---------------------------------------------------------------------------------------------


def test_export_plot_png_and_svg(qtbot, tmp_path):
    panel = QWidget()
    lay = QVBoxLayout(panel)
    plot = make_plot("price", "p")
    x = np.arange(100.0)
    up, lo = plot.plot(x, np.sin(x / 10.0) + 1), plot.plot(x, np.sin(x / 10.0) - 1)
    plot.addItem(pg.FillBetweenItem(up, lo, brush=pg.mkBrush(31, 119, 180, 30)))  # closed paths ("Z") in SVG
    plot.plot(x[::10], np.sin(x[::10] / 10.0), pen=None, symbol="t", name="markers")
    lay.addWidget(plot)
    qtbot.addWidget(panel)
    panel.resize(600, 400)
    panel.show()
    qtbot.waitExposed(panel)
    png = export_plot(plot, tmp_path / "p.png", width=800)
    img = QImage(str(png))
    assert not img.isNull() and img.width() == 800
    svg = export_plot(plot.getPlotItem(), tmp_path / "p.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and ("<path" in svg or "<polyline" in svg)
    whole = QImage(str(export_plot(panel, tmp_path / "panel.png")))
    assert not whole.isNull() and whole.width() >= 500
    with pytest.raises(ValueError, match="SVG export needs a single plot"):
        export_plot(panel, tmp_path / "panel.svg")
    with pytest.raises(ValueError, match="use .png or .svg"):
        export_plot(plot, tmp_path / "p.pdf")
    # a session item with plots and a view's dict of results (one of them missing)
    from hft_lab.backends.results import OuFit
    from hft_lab.data.export import SessionItem, export_session, read_result_json, result_from_document

    ou = OuFit(
        a=1.0,
        b=0.9,
        kappa=0.1,
        theta=10.0,
        sigma=0.5,
        half_life_bars=6.6,
        half_life_days=6.6,
        se_a=0.1,
        se_b=0.01,
        se_kappa=0.01,
        se_half_life=0.7,
        r_squared=0.8,
        residual_std=0.5,
        mean_reverting=True,
        hurst=0.3,
        n=100,
        r_squared_delta=0.05,
    )
    idx = export_session(tmp_path / "s", [SessionItem("Mean Reversion", {"ou": ou, "bt": None}, plots={"price": plot})])
    files = sorted(p.name for p in idx.parent.iterdir())
    assert files == [
        "Mean_Reversion.json",
        "Mean_Reversion.ou.csv",
        "Mean_Reversion.ou.summary.csv",
        "Mean_Reversion.price.png",
        "index.json",
    ]
    doc = read_result_json(idx.parent / "Mean_Reversion.json")
    assert doc["result_type"] == {"ou": "OuFit", "bt": None}
    back = result_from_document(doc)
    assert back["bt"] is None and back["ou"].to_dict() == ou.to_dict()


def test_selection_dialog_applies_range_and_assets_to_the_store(qtbot):
    from hft_lab.ui.selection_dialog import SelectionDialog
    from PySide6.QtCore import QDate, Qt

    store = DatasetStore()
    d = SelectionDialog(store)
    qtbot.addWidget(d)
    d.start.setDate(QDate(2010, 1, 4))
    d.end.setDate(QDate(2010, 12, 31))
    d._check_all(False)
    for i in range(d.assets.count()):
        if d.assets.item(i).text() in ("KO", "PEP"):
            d.assets.item(i).setCheckState(Qt.CheckState.Checked)
    changed = []
    store.changed.connect(lambda: changed.append(1))
    assert d.apply()
    px = store.selected_prices()
    assert list(px.columns) == ["KO", "PEP"] and changed == [1]
    assert px.index[0] == pd.Timestamp("2010-01-04") and px.index[-1] == pd.Timestamp("2010-12-31")
    # a refused selection is explained and changes nothing
    d2 = SelectionDialog(store)
    qtbot.addWidget(d2)
    d2._check_all(False)
    assert not d2.apply()
    assert "select at least one asset" in d2.error.text()
    assert list(store.selected_prices().columns) == ["KO", "PEP"]


# ---------------------------------------------------------------------------------------------
# OHLCV files and several files in the import dialog (issue 12)
# ---------------------------------------------------------------------------------------------

YAHOO = (
    "Date,Open,High,Low,Close,Adj Close,Volume\n"
    "2024-01-02,187.15,188.44,183.89,185.64,184.29,82488700\n"
    "2024-01-03,184.22,185.88,183.43,184.25,182.91,58414500\n"
    "2024-01-04,182.15,183.09,180.88,181.91,180.59,71983600\n"
    "2024-01-05,181.99,182.76,180.17,181.18,179.86,62303300\n"
)


def checked(dlg):
    return dlg.price_columns()


def test_layout_switch_rebuilds_the_price_choice(qtbot, tmp_path):
    p = tmp_path / "AAPL.csv"
    p.write_text(YAHOO)
    dlg = open_dialog(qtbot, p)
    out = wait_analysis(qtbot, dlg)
    assert dlg.layout_combo.currentData() == "ohlcv" and checked(dlg) == ["Adj Close"]
    assert out.dataset.assets == ["AAPL"] and dlg.params()["price_columns"] == ["Adj Close"]
    # read as wide: every column is an asset except Volume, which stays unchecked
    with qtbot.waitSignal(dlg.analysis_done, timeout=20_000) as b:
        dlg.layout_combo.setCurrentIndex(dlg.layout_combo.findData("wide"))
    assert checked(dlg) == ["Open", "High", "Low", "Close", "Adj Close"]
    assert b.args[0].dataset.assets == ["Open", "High", "Low", "Close", "Adj Close"]
    assert dlg.params()["price_columns"] is None and "Not prices: Volume" in dlg.price_hint.text()
    # the preview shows the used columns in bold
    heads = {
        dlg.preview.horizontalHeaderItem(j).text(): dlg.preview.horizontalHeaderItem(j).font().bold()
        for j in range(dlg.preview.columnCount())
    }
    assert heads == {"Date": True, "Open": True, "High": True, "Low": True, "Close": True, "Adj Close": True, "Volume": False}
    # checking Volume is allowed, with a warning
    item = dlg.price_item("Volume")
    with qtbot.waitSignal(dlg.analysis_done, timeout=20_000) as b:
        item.setCheckState(Qt.CheckState.Checked)
    assert "look like volume, not prices" in dlg.price_hint.text() and "Volume" in b.args[0].dataset.assets


def test_several_files_preview_switch_keeps_the_choice(qtbot, tmp_path):
    a = tmp_path / "AAPL.csv"
    a.write_text(YAHOO)
    m = tmp_path / "MSFT.csv"
    m.write_text(YAHOO.lower().replace("adj close", "adj_close"))
    dlg = ImportDialog([a, m])
    qtbot.addWidget(dlg)
    dlg.show()
    out = wait_analysis(qtbot, dlg)
    assert out.dataset.assets == ["AAPL", "MSFT"] and dlg.name.text() == "AAPL + MSFT"
    dlg.price_item("Adj Close").setCheckState(Qt.CheckState.Unchecked)
    with qtbot.waitSignal(dlg.analysis_done, timeout=20_000) as b:
        dlg.price_item("Close").setCheckState(Qt.CheckState.Checked)
    assert b.args[0].dataset.prices.iloc[0].tolist() == [185.64, 185.64]
    dlg.preview_file.setCurrentIndex(1)  # the other file: its own column names, same choice
    assert dlg.path == m and checked(dlg) == ["close"]
    assert dlg.preview.horizontalHeaderItem(5).text() == "adj_close"
    wait_analysis(qtbot, dlg)
    p = dlg.params()
    assert p["price_columns"] == ["close"] and "delimiter" not in p and p["name"] == "AAPL + MSFT"
    dlg.ok_button.click()
    assert dlg.result() == QDialog.DialogCode.Accepted and dlg.dataset().assets == ["AAPL", "MSFT"]
    from hft_lab.data import load_prices

    again = load_prices([str(a), str(m)], **p)  # what the window stores and restores
    pd.testing.assert_frame_equal(again.dataset.prices, dlg.dataset().prices)


def test_several_files_with_different_layouts_each_take_their_default(qtbot, tmp_path):
    a = tmp_path / "AAPL.csv"
    a.write_text(YAHOO)
    b = tmp_path / "MSFT.csv"  # no Adj Close: its Close is the default
    b.write_text("Date,Close,Volume\n2024-01-02,370.87,1\n2024-01-03,370.60,2\n2024-01-04,367.94,3\n")
    w = tmp_path / "basket.csv"  # a wide file
    w.write_text("Date,XOM,CVX\n2024-01-02,100.1,150.2\n2024-01-03,101.3,151.0\n2024-01-05,99.9,149.4\n")
    dlg = ImportDialog([a, b, w])
    qtbot.addWidget(dlg)
    dlg.show()
    out = wait_analysis(qtbot, dlg)
    assert dlg.params()["price_columns"] is None
    assert out.dataset.assets == ["AAPL", "MSFT", "XOM", "CVX"]
    assert out.dataset.prices.loc["2024-01-03"].tolist() == [182.91, 370.60, 101.3, 151.0]
    assert len(out.dataset.prices) == 2  # drop: the dates in every file
    rep = dlg.report.toPlainText()
    assert "• MSFT.csv (OHLCV): MSFT; 3 rows" in rep and "• basket.csv (wide): XOM, CVX; 3 rows" in rep
