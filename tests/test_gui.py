"""The window (offscreen): backends listed, a run on each backend draws a result, Cancel works,
the GUI thread keeps ticking during a 1M-point run, settings are restored."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hft_lab.backends import BackendConfig, BackendType
from hft_lab.backends.router import BackendRouter
from hft_lab.ui.main_window import MainWindow
from PySide6.QtCore import QSettings, QTimer

pytestmark = pytest.mark.gui


@pytest.fixture
def router(grpc_manager):
    port = int(grpc_manager.address.rsplit(":", 1)[1])
    r = BackendRouter(BackendConfig(grpc_host="127.0.0.1", grpc_port=port))
    yield r
    r.stop()


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def window(qtbot, router, settings):
    w = MainWindow(router, settings)
    qtbot.addWidget(w)
    w.show()
    return w


def run_and_wait(qtbot, view, timeout=60_000):
    with qtbot.waitSignal(view.result_shown, timeout=timeout) as blocker:
        view.run()
    return blocker.args[0]


def test_window_lists_the_backends(window):
    items = [window.backend_combo.itemText(i) for i in range(window.backend_combo.count())]
    assert items == ["gRPC (Rust server)", "PyO3 (in-process)", "Auto"]
    assert window.tabs.tabText(0) == "Mean Reversion"
    window.refresh_status()
    assert "serving" in window.grpc_label.text() and "loaded" in window.pyo3_label.text()


@pytest.mark.parametrize("choice", [BackendType.GRPC, BackendType.PYO3])
def test_a_run_on_each_backend_plots_a_result(qtbot, window, choice):
    window.set_backend(choice)
    view = window.mean_reversion
    out = run_and_wait(qtbot, view)
    assert out.ok, out.value
    assert out.backend_name == window.router.backend(choice).name
    assert view.result is not None and view.result.zscore.shape == view.prices.shape
    n_items = len(view.price_plot.getPlotItem().listDataItems())
    assert n_items >= 4  # price, mean, two bands (+ markers)
    assert "Computed on" in view.status.text()


def test_switching_backend_gives_identical_results(qtbot, window):
    view = window.mean_reversion
    window.set_backend(BackendType.GRPC)
    a = run_and_wait(qtbot, view).value
    window.set_backend(BackendType.PYO3)
    b = run_and_wait(qtbot, view).value
    np.testing.assert_array_equal(a["mr"].zscore, b["mr"].zscore)
    np.testing.assert_array_equal(a["mr"].signals, b["mr"].signals)
    np.testing.assert_array_equal(a["bt"].equity, b["bt"].equity)
    assert a["ou"].half_life_bars == b["ou"].half_life_bars


@pytest.mark.parametrize("choice", [BackendType.GRPC, BackendType.PYO3])
def test_cancel_drops_the_run(qtbot, window, choice):
    window.set_backend(choice)
    view = window.mean_reversion
    view.set_prices(np.random.default_rng(0).normal(size=20_000_000).cumsum())
    view.run()
    assert view.cancel_button.isEnabled() and not view.run_button.isEnabled()
    view.cancel_button.click()
    assert view.status.text() == "Cancelled."
    assert view.run_button.isEnabled() and not view.cancel_button.isEnabled()
    qtbot.wait(1500)  # the cancelled task's result never reaches the view
    assert view.result is None
    # and the view is usable again
    view.set_prices(np.random.default_rng(1).normal(size=1000).cumsum())
    assert run_and_wait(qtbot, view).ok


@pytest.mark.serial
@pytest.mark.parametrize("choice", [BackendType.GRPC, BackendType.PYO3])
def test_gui_thread_keeps_ticking_during_a_1m_point_run(qtbot, window, choice):
    window.set_backend(choice)
    view = window.mean_reversion
    view.set_prices(np.random.default_rng(2).normal(size=1_000_000).cumsum() + 1000)
    qtbot.wait(300)  # let the new series paint first: painting is measured below, apart from the call
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    done: list[float] = []  # result handed to the GUI thread (before drawing)
    drawn: list[float] = []
    view.runner.busy_changed.connect(lambda busy: done.append(time.perf_counter()) if not busy else None)
    view.result_shown.connect(lambda _: drawn.append(time.perf_counter()))
    timer.start()
    t0 = time.perf_counter()
    view.run()
    qtbot.waitUntil(lambda: bool(drawn), timeout=60_000)
    timer.stop()
    window_ticks = [t0] + [t for t in ticks if t <= done[0]] + [done[0]]
    max_gap = max(np.diff(window_ticks))
    draw = drawn[0] - done[0]
    print(f"{choice.value}: 1M-point run took {done[0] - t0:.3f} s, max GUI gap {max_gap * 1e3:.1f} ms, draw {draw * 1e3:.0f} ms")
    # the worker runs with the GIL released: the event loop must not stall while the backend works
    assert max_gap < 0.1, f"GUI thread blocked for {max_gap * 1e3:.0f} ms during the call"
    # and drawing a million points on the GUI thread stays short
    assert draw < 0.5, f"drawing took {draw * 1e3:.0f} ms"


def test_bad_parameters_show_an_error_not_a_crash(qtbot, window):
    view = window.mean_reversion
    view.set_prices(np.full(100, 5.0))
    out = run_and_wait(qtbot, view)
    assert not out.ok and "prices is constant" in view.status.text()


def test_backend_choice_is_saved_and_restored(qtbot, router, settings):
    w = MainWindow(router, settings)
    qtbot.addWidget(w)
    w.set_backend(BackendType.PYO3)
    w.close()
    w2 = MainWindow(router, settings)
    qtbot.addWidget(w2)
    assert w2.backend_combo.currentData() == BackendType.PYO3
    w2.close()


def test_fallback_is_shown_in_the_status_bar(qtbot, settings):
    r = BackendRouter(BackendConfig(backend_type=BackendType.GRPC, grpc_host="127.0.0.1", grpc_port=1))
    w = MainWindow(r, settings)
    qtbot.addWidget(w)
    w.set_backend(BackendType.GRPC)
    assert r.monitor.wait_first_check(10)  # the health monitor thread; refresh_status never waits
    w.refresh_status()
    assert "down" in w.grpc_label.text()
    assert "fallback active" in w.fallback_label.text()
    out = run_and_wait(qtbot, w.mean_reversion)
    assert out.ok and out.backend_name == "PyO3 (in-process)"
    assert "is down" in w.mean_reversion.status.text()
    w.close()
    r.stop()


def test_results_fill_the_stats_table_equity_and_hover(qtbot, window):
    window.set_backend(BackendType.PYO3)
    view = window.mean_reversion
    view.source.setCurrentText("Synthetic OU series")
    out = run_and_wait(qtbot, view)
    assert out.ok
    stats = view.stats.as_dict()
    assert float(stats["half-life (bars)"]) == pytest.approx(view.ou.half_life_bars, rel=1e-5)
    assert int(stats["trades (closed)"].replace(",", "")) == view.bt.n_trades
    assert len(view.equity_plot.getPlotItem().listDataItems()) == 1
    text = view.readout(100)
    assert "bar 100" in text and "z " in text and "equity" in text


@pytest.mark.parametrize("choice", [BackendType.GRPC, BackendType.PYO3])
def test_live_replay_equals_the_batch_result(qtbot, window, choice):
    window.set_backend(choice)
    view = window.mean_reversion
    view.set_prices(np.random.default_rng(3).normal(size=3000).cumsum() + 100)
    batch = window.router.backend(choice).calculate_mean_reversion(view.prices, **view.signal_params())
    view.replay_speed.setValue(60_000)
    with qtbot.waitSignal(view.replay_state, timeout=20_000, check_params_cb=lambda s: s == "finished"):
        view.start_replay()
    got = view.replay_series()
    np.testing.assert_array_equal(got["zscore"], batch.zscore)
    np.testing.assert_array_equal(got["positions"], batch.positions)
    assert "3,000/3,000 ticks" in view.replay_label.text()


def test_live_replay_pause_and_stop(qtbot, window):
    window.set_backend(BackendType.PYO3)
    view = window.mean_reversion
    view.replay_speed.setValue(100)
    view.start_replay()
    qtbot.wait(150)
    view.pause_replay()
    n = view._replay_pos
    assert 0 < n < len(view.prices)
    qtbot.wait(150)
    assert view._replay_pos == n  # paused: nothing more
    view.start_replay()
    qtbot.wait(150)
    assert view._replay_pos > n
    view.stop_replay()
    assert view.replay_start.text() == "Start" and view.run_button.isEnabled()


def _small_dataset(name="custom", assets=("AAA", "BBB"), n=600, seed=5):
    import pandas as pd
    from hft_lab.data.samples import Dataset

    r = np.random.default_rng(seed).normal(0, 0.01, (n, len(assets)))
    idx = pd.bdate_range("2020-01-01", periods=n)
    return Dataset(name, pd.DataFrame(100 * np.exp(np.cumsum(r, axis=0)), index=idx, columns=list(assets)))


def test_first_start_shows_the_dataset_the_status_bar_names(window):
    view = window.mean_reversion
    assert view.source.currentText().startswith("Active dataset: ")
    ticker = view.source.currentText().split(": ", 1)[1]
    assert window.store.dataset.name in window.dataset_label.text()
    np.testing.assert_array_equal(view.prices, window.store.selected_prices()[ticker].dropna().to_numpy())
    assert view.dates is not None and len(view.dates) == len(view.prices)  # the x axis shows dates


def test_mean_reversion_follows_the_active_dataset(qtbot, window):
    view = window.mean_reversion
    items = [view.source.itemText(i) for i in range(view.source.count())]
    assert items[0] == "Synthetic OU series" and "Active dataset: AAPL" in items
    view.source.setCurrentIndex(items.index("Active dataset: AAPL"))
    assert len(view.prices) == len(window.store.selected_prices())
    window.store.set_dataset(_small_dataset())
    items = [view.source.itemText(i) for i in range(view.source.count())]
    assert items == ["Synthetic OU series", "Active dataset: AAA", "Active dataset: BBB"]
    # AAPL is gone: the view moved to the new dataset's first asset and says why
    assert "Active dataset changed (AAPL is not in it)" in view.status.text()
    assert view.source.currentText() == "Active dataset: AAA"
    view.source.setCurrentIndex(2)
    np.testing.assert_array_equal(view.prices, window.store.selected_prices()["BBB"].to_numpy())
    out = run_and_wait(qtbot, view)
    assert out.ok and view.result is not None
    window.store.set_selection(start=window.store.dataset.prices.index[100])
    assert view.result is None and len(view.prices) == 500  # the old result belonged to other data
    assert "custom" in window.dataset_label.text()


def test_session_export_writes_every_result(qtbot, window, tmp_path):
    import json

    from hft_lab.data.export import export_session

    assert window.session_items() == []
    view = window.mean_reversion
    assert run_and_wait(qtbot, view).ok
    items = window.session_items()
    assert [i.name for i in items] == ["mean_reversion"]
    idx = export_session(tmp_path / "session", items)
    index = json.loads(idx.read_text())
    assert index and (tmp_path / "session").is_dir()
    paths = view.export_csv(tmp_path / "mr.csv")
    assert any(str(p).endswith("mr.csv") for p in paths)
    doc = json.loads(view.export_json(tmp_path / "mr.json").read_text())
    assert doc["parameters"]["lookback"] == view.lookback.value()


def test_tab_parameters_are_restored(qtbot, router, settings):
    w = MainWindow(router, settings)
    qtbot.addWidget(w)
    w.mean_reversion.lookback.setValue(37)
    w.mean_reversion.threshold.setValue(1.7)
    w.close()
    w2 = MainWindow(router, settings)
    qtbot.addWidget(w2)
    assert w2.mean_reversion.lookback.value() == 37 and w2.mean_reversion.threshold.value() == pytest.approx(1.7)
    w2.close()


def test_sparse_spread_can_be_traded_in_mean_reversion(qtbot, window):
    window.set_backend(BackendType.PYO3)
    sp = window.sparse
    sp.method.setCurrentIndex(
        [sp.method.itemText(i) for i in range(sp.method.count())].index(
            next(t for t in (sp.method.itemText(i) for i in range(sp.method.count())) if "asso" in t)
        )
    )
    with qtbot.waitSignal(sp.result_shown, timeout=60_000) as blocker:
        sp.run()
    assert blocker.args[0].ok, blocker.args[0].value
    assert sp.send_button.isEnabled()
    sp.send_button.click()
    mr = window.mean_reversion
    assert window.tabs.currentWidget() is mr
    assert mr.source.currentText().startswith("Sent: lasso basket")
    np.testing.assert_array_equal(mr.prices, sp.spread_series())
    out = run_and_wait(qtbot, mr)
    assert out.ok and mr.ou is not None


def test_last_dataset_is_restored(qtbot, router, settings, tmp_path):
    import json

    w = MainWindow(router, settings)
    qtbot.addWidget(w)
    w.store.load_synthetic("gbm", n=300, seed=4)
    w._remember_dataset({"kind": "synthetic", "synthetic": "gbm", "n": 300, "seed": 4})
    first = w.store.selected_prices()
    w.close()
    w2 = MainWindow(router, settings)
    qtbot.addWidget(w2)
    import pandas as pd

    pd.testing.assert_frame_equal(w2.store.selected_prices(), first)
    w2.close()
    # a CSV that has since disappeared: the app still starts, on the sample
    settings.setValue("dataset/source", json.dumps({"kind": "csv", "path": str(tmp_path / "gone.csv"), "params": {}}))
    w3 = MainWindow(router, settings)
    qtbot.addWidget(w3)
    assert w3.store.dataset.name.startswith("S&P 500 sample")
    w3.close()
