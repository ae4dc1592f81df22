"""Scan tab (offscreen), driven like a user: choose assets and parameters, click Run scan, and the
ranking table holds exactly `backend.scan_pairs` on the same prices (on each backend); filters are
re-applied without a new scan and equal scan_pairs with those filters; clicking a pair draws the
OLS spread and exactly `backend.kalman_hedge`; the walk-forward equals `backend.walk_forward`;
exports read back; Cancel stops a scan; the Ray choice without Ray says so. Also: the
walk-forward over gRPC streams its progress while it runs."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pandas as pd
import pytest
from hft_lab.analysis.pairs import TABLE_COLUMNS
from hft_lab.backends import BackendConfig, BackendType, Cancelled
from hft_lab.backends.router import BackendRouter
from hft_lab.data.export import export_session, result_from_document
from hft_lab.data.store import DatasetStore
from hft_lab.ui.views.scan import ScanView
from hft_lab.ui.worker import TaskRunner
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

pytestmark = pytest.mark.gui

ASSETS = ["BAC", "CVX", "JPM", "KO", "PEP", "XOM"]  # 15 pairs (in the dataset's order)
FLOATS = ("hedge_ratio", "intercept", "statistic", "pvalue", "qvalue", "half_life", "hurst", "correlation")


@pytest.fixture
def router(grpc_manager):
    port = int(grpc_manager.address.rsplit(":", 1)[1])
    r = BackendRouter(BackendConfig(grpc_host="127.0.0.1", grpc_port=port))
    yield r
    r.stop()


@pytest.fixture
def view(qtbot, router):
    v = ScanView(TaskRunner(router), DatasetStore())
    qtbot.addWidget(v)
    v.resize(1400, 900)
    v.show()
    yield v
    v.aux.shutdown()
    v.runner.shutdown()


def click(qtbot, w):
    assert w.isEnabled(), w.text()
    qtbot.mouseClick(w, Qt.MouseButton.LeftButton)


def choose_assets(view, names):
    view.set_checked(None, False)
    view.set_checked(names, True)
    assert view.checked_assets() == sorted(names, key=list(view.frame().columns).index)


def run_scan(qtbot, view):
    before = view.scan_result
    click(qtbot, view.run_button)
    qtbot.waitUntil(lambda: not view.running and view.scan_result is not before, timeout=60_000)


def click_row(qtbot, view, row):
    t = view.table
    rect = t.visualItemRect(t.item(row, 0))
    before = view.detail
    qtbot.mouseClick(t.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: view.detail is not None and view.detail is not before, timeout=30_000)


def table_rows(view) -> list[dict]:
    """The ranking table as shown: names as text, numbers at full precision (tooltips)."""
    t = view.table
    heads = [t.horizontalHeaderItem(c).text() for c in range(t.columnCount())]
    rows = []
    for r in range(t.rowCount()):
        row = {}
        for c, h in enumerate(heads):
            it = t.item(r, c)
            row[h] = it.toolTip() or it.text()
        rows.append(row)
    return rows


def assert_table_is(view, ref):
    rows = table_rows(view)
    assert len(rows) == len(ref)
    for k, row in enumerate(rows):
        assert row["y (asset i)"] == ref.asset_names[ref.i[k]]
        assert row["x (asset j)"] == ref.asset_names[ref.j[k]]
        for f, h in zip(
            FLOATS, ("hedge ratio β", "intercept", "ADF stat", "p-value", "q-value", "half-life", "Hurst", "corr (returns)")
        ):
            assert float(row[h]) == float(getattr(ref, f)[k]), (k, f)
        assert int(row["lags"]) == int(ref.used_lag[k])


def universe(view):
    df = view.frame()[view.checked_assets()].dropna()
    return np.ascontiguousarray(df.to_numpy(dtype=np.float64)), list(df.columns)


@pytest.mark.parametrize("choice", [BackendType.PYO3, BackendType.GRPC])
def test_scan_filters_and_pair_detail_equal_the_backend(qtbot, view, router, choice):
    router.set_preferred(choice)
    be = router.backend(choice)
    choose_assets(view, ASSETS)
    assert "6 of 20 assets, 15 pairs" in view.universe_label.text()
    view.autolag.setCurrentIndex(view.autolag.findData("aic"))
    view.max_lag.setValue(3)
    view.max_p.setValue(0.6)
    view.top.setValue(8)
    run_scan(qtbot, view)
    assert "15 pairs tested" in view.status.text() and be.name in view.status.text(), view.status.text()
    p, names = universe(view)
    ref = be.scan_pairs(p, autolag="aic", max_lag=3, max_pvalue=0.6, top=8, asset_names=names)
    assert 0 < len(ref) <= 8
    assert_table_is(view, ref)
    np.testing.assert_array_equal(view.heat_values[np.triu_indices(6, 1)], ref.pvalue_matrix[np.triu_indices(6, 1)])
    # the filters are re-applied to the finished scan: no p filter, every pair, then q and correlation
    view.filter_checks["max_pvalue"].setChecked(False)
    view.top.setValue(0)
    qtbot.waitUntil(lambda: view.table.rowCount() == 15, timeout=10_000)
    assert_table_is(view, be.scan_pairs(p, autolag="aic", max_lag=3, asset_names=names))
    view.filter_checks["min_correlation"].setChecked(True)
    view.min_corr.setValue(0.3)
    ref2 = be.scan_pairs(p, autolag="aic", max_lag=3, min_correlation=0.3, asset_names=names)
    qtbot.waitUntil(lambda: view.table.rowCount() == len(ref2) and "re-applied" in view.status.text(), timeout=10_000)
    assert_table_is(view, ref2)
    # sorting by a column keeps each row's pair: click the p-value header, then the last row
    view.table.sortItems(TABLE_COLUMNS.index("pvalue"), Qt.SortOrder.DescendingOrder)
    click_row(qtbot, view, view.table.rowCount() - 1)
    d = view.detail
    k = 0  # the smallest p-value is the best row
    i, j = int(ref2.i[k]), int(ref2.j[k])
    assert (d.name_y, d.name_x) == (names[i], names[j])
    kal = be.kalman_hedge(p[:, i], p[:, j], delta=view.delta.value(), observation_var=view.obs_var.value())
    items = {it.name(): it for pl in (view.spread_plot, view.kalman_plot, view.hedge_plot) for it in pl.data_items()}
    np.testing.assert_array_equal(items["spread"].yData, p[:, i] - ref2.hedge_ratio[k] * p[:, j] - ref2.intercept[k])
    np.testing.assert_array_equal(items["Kalman spread"].yData, kal.spread)
    np.testing.assert_array_equal(items["Kalman β_t"].yData, kal.hedge_ratio)
    assert items[f"OLS β = {ref2.hedge_ratio[k]:.4g}"].yData.tolist() == [ref2.hedge_ratio[k]] * 2
    np.testing.assert_array_equal(items["+2·σ_t"].yData, 2.0 * kal.spread_std)
    assert view.trade_button.isEnabled() and view.result_tabs.currentIndex() == 1


def test_walk_forward_equals_the_backend_and_exports_read_back(qtbot, view, router, tmp_path, monkeypatch):
    router.set_preferred(BackendType.GRPC)
    be = router.backend(BackendType.GRPC)
    choose_assets(view, ASSETS[:4])
    view.formation.setValue(756)
    view.trading.setValue(504)
    view.cost.setValue(10.0)
    view.hedge.setCurrentIndex(view.hedge.findData("kalman"))
    seen = []
    view.runner.progress.connect(seen.append)
    click(qtbot, view.wf_button)
    qtbot.waitUntil(lambda: not view.running and view.wf is not None, timeout=60_000)
    p, names = universe(view)
    ref = be.walk_forward(
        p,
        formation=756,
        trading=504,
        hedge="kalman",
        cost_bps=10.0,
        entry=2.0,
        exit=0.0,
        max_pairs=5,
        selection={"max_pvalue": 0.05, "autolag": "none", "max_lag": 0},
        asset_names=names,
    )
    w = view.wf
    for f in ("oos_equity", "oos_drawdown", "is_equity", "is_drawdown", "pnl", "trades", "costs", "trading_start"):
        np.testing.assert_array_equal(getattr(w, f), getattr(ref, f), err_msg=f)
    n_windows = len(ref.pnl)
    assert n_windows > 5 and view.window_table.rowCount() == n_windows
    # progress arrived during the run over gRPC (WalkForwardStream), one per window
    assert len(seen) == n_windows and seen[-1] == 1.0
    eq = {it.name(): it for it in view.equity_plot.data_items()}
    np.testing.assert_array_equal(eq["out of sample (walk-forward)"].yData, ref.oos_equity)
    np.testing.assert_array_equal(eq["in sample (look-ahead)"].yData, ref.is_equity)
    assert "windows" in view.wf_label.text() and "out of sample" in view.wf_label.text()
    # a scan too, then export both through the tab's buttons
    run_scan(qtbot, view)
    target = tmp_path / "out" / "pairs.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(target), "CSV files (*.csv)")))
    click(qtbot, view.export_csv_button)
    assert "Saved" in view.status.text(), view.status.text()
    rank = pd.read_csv(target)
    res = view.scan_result.result
    assert list(rank["asset_y"]) == [res.asset_names[i] for i in res.i]
    np.testing.assert_array_equal(rank["pvalue"].to_numpy(), res.pvalue)
    pv = pd.read_csv(tmp_path / "out" / "pairs.pvalues.csv", index_col=0)
    assert list(pv.columns) == list(res.asset_names) and list(pv.index) == list(res.asset_names)
    np.testing.assert_array_equal(pv.to_numpy(), res.pvalue_matrix)
    curves = pd.read_csv(tmp_path / "out" / "pairs.walk_forward.csv")
    np.testing.assert_array_equal(curves["oos_equity"].to_numpy(), ref.oos_equity)
    assert curves["date"].iloc[0].startswith("1990-01-02")
    win = pd.read_csv(tmp_path / "out" / "pairs.windows.csv")
    np.testing.assert_array_equal(win["pnl"].to_numpy(), ref.pnl)
    sel = pd.read_csv(tmp_path / "out" / "pairs.selections.csv")
    assert (sel["sample"] == "out-of-sample").sum() == len(ref.selections["i"])
    jtarget = tmp_path / "out" / "pairs.json"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(jtarget), "JSON files (*.json)")))
    click(qtbot, view.export_json_button)
    doc = json.loads(jtarget.read_text())
    assert doc["result_type"] == {"pairs_scan": "PairScanResult", "walk_forward": "WalkForwardResult"}
    assert doc["result"]["walk_forward"]["pnl"] == ref.pnl.tolist()
    assert doc["parameters"]["walk_forward"]["hedge"] == "kalman"
    back = result_from_document(doc)
    np.testing.assert_array_equal(back["walk_forward"].pnl, ref.pnl)
    np.testing.assert_array_equal(back["pairs_scan"].pvalue, res.pvalue)
    # File ▸ Export session: both results, their CSV tables and plots
    index = json.loads(export_session(tmp_path / "session", view.session_items()).read_text())
    assert [it["name"] for it in index["items"]] == ["pairs_scan", "walk_forward"]
    wf_csv = pd.read_csv(tmp_path / "session" / "walk_forward.csv")
    np.testing.assert_array_equal(wf_csv["oos_equity"].to_numpy(), ref.oos_equity)
    assert (tmp_path / "session" / "walk_forward.equity.png").stat().st_size > 0
    if os.environ.get("HFT_LAB_SCREENSHOT_DIR"):
        view.grab().save(os.path.join(os.environ["HFT_LAB_SCREENSHOT_DIR"], "scan_walk_forward.png"))


def test_cancel_stops_a_scan_and_ray_without_ray_says_so(qtbot, view, router, monkeypatch):
    router.set_preferred(BackendType.PYO3)
    view.autolag.setCurrentIndex(view.autolag.findData("aic"))
    view.max_lag.setValue(-1)  # statsmodels' default maximum: a slower scan of all 190 pairs
    view.shards.setValue(40)
    click(qtbot, view.run_button)
    assert view.running and view.cancel_button.isEnabled() and not view.wf_button.isEnabled()
    click(qtbot, view.cancel_button)
    assert view.status.text() == "Cancelled." and not view.running and view.scan_result is None
    assert view.run_button.isEnabled() and not view.progress_bar.isVisible()
    qtbot.waitUntil(lambda: view.runner.pool.activeThreadCount() == 0, timeout=10_000)  # the shards stopped
    assert view.scan_result is None
    # Ray is an optional extra: the packaged app does not have it, and the tab says so
    monkeypatch.setitem(sys.modules, "ray", None)
    view.executor.setCurrentIndex(view.executor.findData("ray"))
    assert "hft-lab[cluster]" in view.executor_note.text()
    click(qtbot, view.run_button)
    assert "Ray is not installed" in view.status.text() and not view.running
    # fewer than two assets: a clear message, nothing runs
    view.executor.setCurrentIndex(view.executor.findData("backend"))
    choose_assets(view, ["KO"])
    click(qtbot, view.run_button)
    assert "at least 2 assets" in view.status.text() and not view.running


def test_walk_forward_progress_streams_during_the_run_on_both_backends(backend, grpc_backend):
    # GetInfo lists the pairs workflow, the streamed walk-forward included
    listed = set(grpc_backend.info().algorithms)
    assert {"scan_pairs", "johansen", "kalman_hedge", "walk_forward", "walk_forward_stream"} <= listed
    rng = np.random.default_rng(5)
    p = 100 + np.cumsum(rng.normal(0, 1, (900, 4)), axis=0)
    kw = dict(formation=200, trading=100, entry=1.5, cost_bps=2.0)
    seen = []
    r = backend.walk_forward(p, progress=lambda w, f: seen.append((w, f)), **kw)
    assert seen == [(k + 1, (k + 1) / 7) for k in range(7)] and len(r.pnl) == 7
    plain = backend.walk_forward(p, **kw)
    for f in ("oos_equity", "is_equity", "pnl", "turnover"):
        np.testing.assert_array_equal(getattr(r, f), getattr(plain, f))
    # progress returning False stops the run after the first window: it is called while it runs
    calls = []
    with pytest.raises(Cancelled):
        backend.walk_forward(p, progress=lambda w, f: calls.append(w) or False, **kw)
    assert calls == [1]


def test_walk_forward_stream_bad_input_is_the_same_value_error(backends):
    p = 100 + np.cumsum(np.random.default_rng(6).normal(0, 1, (300, 3)), axis=0)
    msgs = []
    for be in backends.values():
        with pytest.raises(ValueError) as e:
            be.walk_forward(p, formation=300, trading=50, progress=lambda w, f: True)
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1] and "formation" in msgs[0], msgs


def test_a_new_dataset_is_the_new_universe_and_clears_the_results(qtbot, view, router):
    from hft_lab.data import Dataset

    router.set_preferred(BackendType.PYO3)
    choose_assets(view, ["KO", "PEP", "XOM"])
    run_scan(qtbot, view)
    assert view.export_csv_button.isEnabled()
    rng = np.random.default_rng(8)
    w = 50 + np.cumsum(rng.normal(0, 1, (400, 2)), axis=0)
    y = 3 + 0.7 * w[:, 0] + rng.normal(0, 0.3, 400)  # Y cointegrates with A
    view.store.set_dataset(Dataset("my csv", pd.DataFrame({"Y": y, "A": w[:, 0], "B": w[:, 1]})))
    assert [view.assets.item(k).text() for k in range(view.assets.count())] == ["Y", "A", "B"]
    assert view.scan_result is None and view.table.rowCount() == 0 and not view.export_csv_button.isEnabled()
    assert "cleared" in view.status.text() and "my csv: 3 of 3 assets, 3 pairs" in view.universe_label.text()
    view.filter_checks["max_pvalue"].setChecked(False)
    run_scan(qtbot, view)
    ref = router.backend(BackendType.PYO3).scan_pairs(np.column_stack([y, w]), asset_names=["Y", "A", "B"], top=100)
    assert_table_is(view, ref)
    assert (ref.asset_names[ref.i[0]], ref.asset_names[ref.j[0]]) == ("Y", "A") and ref.pvalue[0] < 1e-6
