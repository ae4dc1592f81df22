"""The paths a user clicks, driven through the real window: buttons, menus, the right-click menu of
every plot on every tab, the Help menu, the log panel, Trade this spread, the replay, the layout at
1024×700. Only the file choosers are patched. This file also runs on the real xcb platform under
Xvfb in `make test` (see the Makefile's test-xcb target). An exception raised in a Qt slot fails
the test that caused it (pytest-qt's exception capture)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pyqtgraph as pg
import pytest
from hft_lab.backends import BackendConfig, BackendType
from hft_lab.backends.router import BackendRouter
from hft_lab.bench import runner as br
from hft_lab.ui.main_window import MainWindow
from hft_lab.ui.plots import LabPlot
from hft_lab.ui.views.sparse import adf_verdict
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QDialog, QFileDialog, QMenu, QMessageBox

pytestmark = pytest.mark.gui

TINY_BENCH = br.BenchConfig(
    operations=["echo", "mean_reversion"],
    sizes={"echo": ["16"], "mean_reversion": ["1k"]},
    calls=10,
    min_calls=3,
    warmup=1,
    cell_seconds=0.05,
    concurrency=[1, 2],
    concurrency_seconds=0.05,
    references=True,
    sections=[],
)


@pytest.fixture
def router(grpc_manager):
    port = int(grpc_manager.address.rsplit(":", 1)[1])
    r = BackendRouter(BackendConfig(grpc_host="127.0.0.1", grpc_port=port))
    yield r
    r.stop()


@pytest.fixture
def window(qtbot, router, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # file dialogs start here, settings stay out of the user's
    (tmp_path / "home").mkdir()
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(router, settings)
    qtbot.addWidget(w)
    w.resize(1280, 820)
    w.show()
    qtbot.waitExposed(w)
    w.set_backend(BackendType.PYO3)
    return w


@pytest.fixture
def warnings_shown(monkeypatch):
    """Every QMessageBox.warning/critical the app shows (none expected unless the test says so)."""
    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: shown.append(("warning", a[1:3])))
    monkeypatch.setattr(QMessageBox, "critical", lambda *a, **k: shown.append(("critical", a[1:3])))
    return shown


def click_and_wait(qtbot, signal, button, timeout=120_000):
    assert button.isEnabled(), button.text()
    with qtbot.waitSignal(signal, timeout=timeout) as blocker:
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    return blocker.args[0]


def save_to(monkeypatch, path):
    """Answer the next save dialogs with `path` (a callable gets the suggested name)."""

    def fake(parent, title, start, filters, *a, **k):
        fake.starts.append(start)
        p = path(start) if callable(path) else path
        return str(p), filters.split(";;")[0]

    fake.starts = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(fake))
    return fake


def run_every_tab(qtbot, w):
    for view in (w.mean_reversion, w.regimes, w.portfolio, w.sparse, w.sweep):
        w.tabs.setCurrentWidget(view)
        out = click_and_wait(qtbot, view.result_shown, view.run_button)
        assert out.ok, out.value
    run_scan_tab(qtbot, w)
    w.tabs.setCurrentWidget(w.benchmark)
    w.benchmark.set_config(TINY_BENCH)
    out = click_and_wait(qtbot, w.benchmark.result_shown, w.benchmark.run_button)
    assert out.ok, out.value


def run_scan_tab(qtbot, w):
    """Scan tab: Run scan, click the best pair, Run walk-forward (every one of its plots drawn)."""
    sv = w.scan
    w.tabs.setCurrentWidget(sv)
    sv.set_checked(None, False)
    sv.set_checked(["BAC", "JPM", "KO", "PEP", "WMT", "XOM"], True)  # 15 pairs: quick
    out = click_and_wait(qtbot, sv.result_shown, sv.run_button)
    assert out.ok, out.value
    t = sv.table
    qtbot.mouseClick(t.viewport(), Qt.MouseButton.LeftButton, pos=t.visualItemRect(t.item(0, 0)).center())
    qtbot.waitUntil(lambda: sv.detail is not None, timeout=30_000)
    out = click_and_wait(qtbot, sv.result_shown, sv.wf_button)
    assert out.ok, out.value


def test_every_plot_on_every_tab_exports_png_svg_and_csv_from_its_menu(qtbot, window, tmp_path, monkeypatch, warnings_shown):
    w = window
    run_every_tab(qtbot, w)  # (tabs are built when first shown: this shows every one)
    plots = w.findChildren(pg.PlotWidget)
    assert len(plots) >= 14
    assert all(isinstance(p, LabPlot) for p in plots), [type(p).__name__ for p in plots if not isinstance(p, LabPlot)]
    exported = 0
    for k, plot in enumerate(w.findChildren(LabPlot)):
        # show the plot (a hidden tab's plot has no size to draw at)
        host = plot
        while host is not None and host is not w:
            parent = host.parentWidget()
            if parent is not None and hasattr(parent, "setCurrentWidget") and parent.indexOf(host) >= 0:
                parent.setCurrentWidget(host)
            host = parent
        qtbot.wait(20)
        if plot.is_empty():
            # only the λ path's plots may stay empty (no λ path was run): their menu says so
            assert plot in (w.sparse.nonzero_plot, w.sparse.half_life_plot), plot.export_name
            assert plot._empty.isVisible()
            acts = {a.text(): a for a in plot.context_menu().actions()}
            assert not acts["Export PNG…"].isEnabled()
            continue
        assert not plot._empty.isVisible(), plot.export_name  # no "No data yet" over a drawn plot
        menu = plot.context_menu()
        acts = {a.text(): a for a in menu.actions()}
        assert {"View all", "Export PNG…", "Export SVG…", "Export data (CSV)…", "Copy image"} <= set(acts)
        for kind in ("png", "svg", "csv"):
            target = tmp_path / f"plot{k}.{kind}"
            save_to(monkeypatch, target)
            acts[{"png": "Export PNG…", "svg": "Export SVG…", "csv": "Export data (CSV)…"}[kind]].trigger()
            assert target.exists() and target.stat().st_size > 0, (plot.export_name, kind, warnings_shown)
            if kind == "png":
                assert not QImage(str(target)).isNull()
            elif kind == "svg":
                assert ET.parse(target).getroot().tag.endswith("svg")
            else:
                assert len(pd.read_csv(target)) > 0
        exported += 1
    assert not warnings_shown, warnings_shown
    assert exported >= 12


def test_right_click_opens_the_plot_menu(qtbot, window):
    plot = window.mean_reversion.price_plot
    vp = plot.viewport()
    center = vp.rect().center()
    found = []

    def grab_menu():
        m = QApplication.activePopupWidget()
        found.append((type(m), m.objectName() if m is not None else "", [a.text() for a in m.actions()] if m is not None else []))
        if m is not None:
            m.close()  # deletes it (one menu per right-click)

    QTimer.singleShot(300, grab_menu)
    QTest.mouseClick(vp, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier, center)
    qtbot.waitUntil(lambda: bool(found), timeout=3000)
    kind, name, actions = found[0]
    assert issubclass(kind, QMenu) and name == "plot-context-menu"
    assert "Export SVG…" in actions


def test_export_failure_is_shown_to_the_user(qtbot, window, tmp_path, monkeypatch, warnings_shown):
    view = window.mean_reversion
    click_and_wait(qtbot, view.result_shown, view.run_button)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    save_to(monkeypatch, blocker / "sub" / "plot.svg")  # a folder that cannot be made
    acts = {a.text(): a for a in view.price_plot.context_menu().actions()}
    acts["Export SVG…"].trigger()
    assert warnings_shown and warnings_shown[0][0] == "warning"
    assert "Could not export" in warnings_shown[0][1][1]
    qtbot.waitUntil(lambda: "plot export" in window.log_panel.all_text(), timeout=3000)


def test_save_dialogs_start_in_home_then_in_the_last_folder(qtbot, window, tmp_path, monkeypatch):
    view = window.mean_reversion
    click_and_wait(qtbot, view.result_shown, view.run_button)
    out_dir = tmp_path / "exports"
    out_dir.mkdir()
    fake = save_to(monkeypatch, lambda start: out_dir / "mr.csv")
    qtbot.mouseClick(view.export_csv_button, Qt.MouseButton.LeftButton)
    assert fake.starts[0].startswith(str(tmp_path / "home"))
    qtbot.mouseClick(view.export_csv_button, Qt.MouseButton.LeftButton)
    assert fake.starts[1].startswith(str(out_dir))


def test_mean_reversion_csv_export_is_one_file_with_dates_and_prices(qtbot, window, tmp_path, monkeypatch):
    view = window.mean_reversion
    click_and_wait(qtbot, view.result_shown, view.run_button)
    folder = tmp_path / "out"
    folder.mkdir()
    save_to(monkeypatch, folder / "mr.csv")
    qtbot.mouseClick(view.export_csv_button, Qt.MouseButton.LeftButton)
    assert [p.name for p in folder.iterdir()] == ["mr.csv"]
    df = pd.read_csv(folder / "mr.csv", parse_dates=["date"])
    assert list(df.columns[:3]) == ["date", "bar", "price"]
    assert {"zscore", "signal", "position", "equity", "drawdown"} <= set(df.columns)
    assert len(df) == len(view.prices)
    np.testing.assert_array_equal(df["price"].to_numpy(), view.prices)
    assert df["date"].iloc[0] == pd.Timestamp(view.dates[0])
    np.testing.assert_array_equal(df["zscore"].to_numpy()[30:], view.result.zscore[30:])


def test_trade_this_spread_backtests_in_pnl_units(qtbot, window):
    w = window
    sv = w.sparse
    w.tabs.setCurrentWidget(sv)
    click_and_wait(qtbot, sv.result_shown, sv.run_button)
    assert sv.send_button.isEnabled()
    qtbot.mouseClick(sv.send_button, Qt.MouseButton.LeftButton)
    mr = w.mean_reversion
    assert w.tabs.currentWidget() is mr
    assert mr.source.currentText().startswith("Sent: ")
    assert mr.is_spread and mr.result is None and mr.equity_plot.is_empty()  # no stale plots
    assert mr.dates is not None and len(mr.dates) == len(mr.prices)  # the dates are kept
    assert mr.price_plot.getPlotItem().getAxis("left").labelText == "spread"
    out = click_and_wait(qtbot, mr.result_shown, mr.run_button)
    assert out.ok, out.value
    assert mr.bt is not None and mr.bt.units == "pnl"
    assert "P&L units" in mr.status.text()
    stats = mr.stats.as_dict()
    assert "total P&L" in stats and "total return" not in stats
    assert not mr.equity_plot.is_empty()
    # the P&L is position × Δspread minus costs on the basket's gross notional
    s, q = mr.prices, mr.result.positions.astype(float)
    c = mr.cost_bps.value() / 1e4
    pnl = q[1:] * np.diff(s) - c * np.abs(np.diff(q)) * mr.notional[:-1]
    np.testing.assert_allclose(mr.bt.returns[1:], pnl, rtol=0, atol=1e-9)


def test_scan_pair_trades_in_mean_reversion_with_its_hedge_ratio(qtbot, window):
    w = window
    sv = w.scan
    w.tabs.setCurrentWidget(sv)
    sv.set_checked(None, False)
    sv.set_checked(["KO", "PEP", "XOM"], True)
    click_and_wait(qtbot, sv.result_shown, sv.run_button)
    assert sv.table.rowCount() >= 1
    t = sv.table
    qtbot.mouseClick(t.viewport(), Qt.MouseButton.LeftButton, pos=t.visualItemRect(t.item(0, 0)).center())
    qtbot.waitUntil(lambda: sv.detail is not None and sv.trade_button.isEnabled(), timeout=30_000)
    d = sv.detail
    qtbot.mouseClick(sv.trade_button, Qt.MouseButton.LeftButton)
    mr = w.mean_reversion
    assert w.tabs.currentWidget() is mr
    assert mr.source.currentText() == f"Sent: {d.name}" and f"{d.hedge_ratio:.4g}·{d.name_x}" in d.name
    assert mr.is_spread and mr.dates is not None and len(mr.dates) == len(mr.prices)
    np.testing.assert_array_equal(mr.prices, d.y - d.hedge_ratio * d.x - d.intercept)
    np.testing.assert_array_equal(mr.notional, np.abs(d.y) + abs(d.hedge_ratio) * np.abs(d.x))


def test_replay_honours_the_requested_speed(qtbot, window, monkeypatch):
    import hft_lab.ui.views.mean_reversion as mrmod

    clock = [1000.0]
    monkeypatch.setattr(mrmod.time, "perf_counter", lambda: clock[0])
    view = window.mean_reversion
    view.set_prices(np.random.default_rng(1).normal(size=20_000).cumsum() + 500)
    view.replay_speed.setValue(2000)
    view.start_replay()
    view._replay_timer.stop()  # frames driven by hand below
    for _ in range(10):
        clock[0] += 0.05
        view._replay_step()
    assert view._replay_pos == 1000  # 0.5 s at 2000 ticks/s, whatever the frame rate
    assert "2,000 ticks/s achieved" in view.replay_label.text()
    clock[0] += 0.001
    view._replay_step()
    assert view._replay_pos == 1002
    view.replay_speed.setValue(100)  # slower: applies from now on
    clock[0] += 0.005
    view._replay_step()
    assert view._replay_pos == 1002  # nothing due yet
    clock[0] += 0.1
    view._replay_step()
    assert view._replay_pos == 1012
    view.stop_replay()


@pytest.mark.parametrize("size", [(1024, 700), (1280, 820)])
def test_layout_fits_and_actions_stay_visible(qtbot, window, size):
    w = window
    w.resize(*size)
    view = w.mean_reversion
    view.set_prices(np.random.default_rng(3).normal(size=3000).cumsum() + 100)
    view.replay_speed.setValue(1_000_000)
    with qtbot.waitSignal(view.replay_state, timeout=30_000, check_params_cb=lambda s: s == "finished"):
        qtbot.mouseClick(view.replay_start, Qt.MouseButton.LeftButton)
    view.status.setText("A very long status line " * 30)
    for v in (w.mean_reversion, w.regimes, w.portfolio, w.sparse, w.scan, w.benchmark):
        w.tabs.setCurrentWidget(v)
        qtbot.wait(50)
        buttons = [v.run_button, v.cancel_button]
        buttons += [
            b
            for b in (
                getattr(v, "export_csv_button", None),
                getattr(v, "export_json_button", None),
                getattr(v, "csv_button", None),
                getattr(v, "replay_stop", None) if v is view else None,
            )
            if b is not None
        ]
        for b in buttons:
            if b is view.replay_stop:
                continue  # inside the scroll area: reachable by scrolling
            vis = b.visibleRegion().boundingRect()
            assert b.isVisible() and vis.width() >= b.width() - 1 and vis.height() >= b.height() - 1, (type(v).__name__, b.text())
        panel = getattr(v, "left_panel", None)
        if panel is not None:
            sc = panel.scroll
            assert sc.horizontalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOff
            assert sc.widget().minimumSizeHint().width() <= sc.viewport().width() + 1, type(v).__name__
    pv = w.portfolio
    w.tabs.setCurrentWidget(pv)
    qtbot.wait(50)
    lab = pv.selection_label
    assert "assets checked" in lab.text()
    assert lab.height() >= lab.heightForWidth(lab.width()) - 1  # not squeezed under the Run row


def test_help_menu_has_a_guide_and_about(qtbot, window):
    titles = [a.text() for a in window.menuBar().actions()]
    assert "&Help" in titles
    window.guide_action.trigger()
    dlg = window.findChild(QDialog, "guide-dialog")
    assert dlg is not None and dlg.isVisible()
    from PySide6.QtWidgets import QTextBrowser

    text = dlg.findChild(QTextBrowser).toPlainText()
    for tab in ("Mean Reversion", "Regimes", "Portfolio", "Sparse Portfolio", "Benchmark", "Shortcuts"):
        assert tab in text
    dlg.close()


def test_auto_shows_which_backend_the_next_run_uses(window):
    window.set_backend(BackendType.AUTO)
    window.refresh_status()
    assert "runs on:" in window.route_label.text() and "PyO3" in window.route_label.text()
    window.set_backend(BackendType.GRPC)
    window.refresh_status()
    assert "gRPC" in window.route_label.text()


def test_every_run_and_error_reaches_the_log_panel(qtbot, window, tmp_path, monkeypatch):
    view = window.mean_reversion
    click_and_wait(qtbot, view.result_shown, view.run_button)
    view.lookback.setValue(100_000)  # longer than the series: a clear error
    out = click_and_wait(qtbot, view.result_shown, view.run_button)
    assert not out.ok and "lookback" in view.status.text()
    log = window.log_panel
    qtbot.waitUntil(lambda: "lookback must be between 2" in log.all_text(), timeout=3000)  # lines arrive queued
    text = log.all_text()
    assert "run analyse on 8,313 via PyO3" in text and "done in" in text
    assert "failed" in text and "lookback must be between 2" in text
    # filter by level and text, save, clear: through the panel's own widgets
    log.level.setCurrentText("warnings")
    assert "done in" not in log.toPlainText() and "lookback" in log.toPlainText()
    log.level.setCurrentText("info")
    log.filter.setText("backend choice")
    assert all("backend choice" in line for line in log.toPlainText().splitlines())
    log.filter.setText("")
    save_to(monkeypatch, tmp_path / "log.txt")
    qtbot.mouseClick(log.save_button, Qt.MouseButton.LeftButton)
    assert "lookback must be between 2" in (tmp_path / "log.txt").read_text()
    qtbot.mouseClick(log.clear_button, Qt.MouseButton.LeftButton)
    assert log.toPlainText() == "" and log.all_text() == ""


def test_an_exception_in_a_slot_is_logged_and_shown(qtbot, window):
    rep = window.error_reporter
    rep.install()
    try:

        def broken():
            raise RuntimeError("boom from a slot")

        QTimer.singleShot(0, broken)
        qtbot.waitUntil(lambda: rep.count == 1, timeout=3000)
        qtbot.waitUntil(lambda: rep._box is not None and rep._box.isVisible(), timeout=3000)
    finally:
        rep.uninstall()
    assert "RuntimeError: boom from a slot" in rep._box.text()
    text = window.log_panel.all_text()
    assert "unexpected error" in text and "Traceback" in text and "boom from a slot" in text
    rep._box.close()


def test_empty_plots_say_so_until_there_is_data(qtbot, window):
    view = window.mean_reversion
    assert view.z_plot.is_empty() and view.z_plot._empty.isVisible()
    assert not view.z_plot.getPlotItem().getAxis("left").isVisible()
    click_and_wait(qtbot, view.result_shown, view.run_button)
    assert not view.z_plot.is_empty() and not view.z_plot._empty.isVisible()
    assert view.z_plot.getPlotItem().getAxis("left").isVisible()


def test_statistics_use_percent_and_axes_plain_numbers(qtbot, window):
    from hft_lab.ui.plots import NumberAxis, PercentAxis, plain_number

    view = window.mean_reversion
    click_and_wait(qtbot, view.result_shown, view.run_button)
    st = view.stats.as_dict()
    assert st["total return"].endswith("%") and st["max drawdown"].endswith("%")
    assert isinstance(view.dd_plot.getPlotItem().getAxis("left"), PercentAxis)
    assert PercentAxis("left").tickStrings([-0.25, -0.1], 1.0, 0.05) == ["-25%", "-10%"]
    assert NumberAxis("left").tickStrings([1_000_000.0, 2_000_000.0], 1.0, 1_000_000.0) == ["1,000,000", "2,000,000"]
    assert "e" not in plain_number(1e6) and plain_number(0.00123, 0.0005) == "0.0012"
    ax = view.axes[0]
    assert ax.dates is not None
    labels = ax.tickStrings([0, 2000, 4000], 1.0, 2000)
    assert all(lbl[:2] in ("19", "20") for lbl in labels)  # years, not bar numbers


@pytest.mark.parametrize(
    "stat, tries, search, expected",
    [
        (-5.0, 1, False, "cointegrated at 1%"),
        (-5.0, 4, False, "cointegrated at 4% after Bonferroni (best of 4 targets)"),
        (-5.0, 20, False, "not significant after correcting for 20 targets tried"),
        (-3.9, 2, False, "weak: 10% after Bonferroni"),
        (-1.0, 20, False, "not significant (best of 20 targets)"),
        (-5.0, 1, True, "cointegrated at 1%, in-sample search: optimistic"),
    ],
)
def test_sparse_verdict_accounts_for_the_targets_tried(stat, tries, search, expected):
    crit = [-4.5, -3.8, -3.5]
    assert adf_verdict(stat, crit, tries=tries, search=search).startswith(expected)


@pytest.mark.parametrize("size", [(1024, 700), (1280, 820)])
def test_frontier_labels_of_the_largest_holdings_show_without_collisions(qtbot, window, size):
    w = window
    w.resize(*size)
    pv = w.portfolio
    w.tabs.setCurrentWidget(pv)
    click_and_wait(qtbot, pv.result_shown, pv.run_button)
    qtbot.wait(100)
    pv._place_labels()
    r = pv.result
    top = [str(n) for n, wt in sorted(zip(r.asset_names, r.weights), key=lambda t: -abs(t[1]))[:5] if abs(wt) > 1e-6]
    shown = {lab[3]: lab[0] for lab in pv._labels if lab[0].isVisible()}
    assert set(top) <= set(shown), (top, pv.hidden_labels)
    rects = [(name, it.mapRectToScene(it.boundingRect())) for name, it in shown.items()]
    for i, (a, ra) in enumerate(rects):
        for b, rb in rects[i + 1 :]:
            inter = ra.intersected(rb)
            assert inter.width() * inter.height() < 4, (a, b)  # at most a pixel of the text boxes' padding


def test_cyclic_garbage_is_collected_by_a_gui_thread_timer(qtbot):
    import gc

    from hft_lab.ui.gc_guard import GuiThreadGC

    guard = GuiThreadGC()
    guard.install()
    try:
        assert not gc.isenabled()  # never on a worker thread
        t0 = gc.get_threshold()[0]
        for _ in range(3 * t0):
            a: list = []
            a.append(a)  # a reference cycle: only the cyclic collector frees it
        assert gc.get_count()[0] > t0
        qtbot.waitUntil(lambda: gc.get_count()[0] <= t0, timeout=3000)
    finally:
        guard.uninstall()
