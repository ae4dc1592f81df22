"""Sparse Portfolio tab (offscreen): a lasso run on each backend draws exactly the backend's numbers,
Box-Tiao and greedy draw, the λ path plots and clicking a point sets λ, the active dataset of a
DatasetStore is used and a new dataset clears the result, errors show the backend's message and
keep the inputs, export round trips, session items and settings."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hft_lab.backends import BackendConfig, BackendType
from hft_lab.backends.router import BackendRouter
from hft_lab.data import Dataset
from hft_lab.data.export import read_result_csv, read_result_json, result_from_document
from hft_lab.data.store import DatasetStore
from hft_lab.ui.settings import restore_widgets, save_widgets
from hft_lab.ui.views.sparse import SYNTHETIC, LogSpinBox, SparseView
from hft_lab.ui.worker import TaskRunner
from PySide6.QtCore import QSettings

pytestmark = pytest.mark.gui


@pytest.fixture
def router(grpc_manager):
    port = int(grpc_manager.address.rsplit(":", 1)[1])
    r = BackendRouter(BackendConfig(grpc_host="127.0.0.1", grpc_port=port))
    yield r
    r.stop()


def make_view(qtbot, router, store=None):
    v = SparseView(TaskRunner(router), store)
    qtbot.addWidget(v)
    v.resize(1400, 900)
    v.show()
    return v


@pytest.fixture
def view(qtbot, router):
    return make_view(qtbot, router)


def run_and_wait(qtbot, view, timeout=60_000):
    with qtbot.waitSignal(view.result_shown, timeout=timeout) as blocker:
        assert view.run() is not None
    return blocker.args[0]


def direct(router, choice, view):
    """The call the view makes, straight on the backend, on the same data."""
    return router.backend(choice).calculate_sparse_portfolio(
        view.selected_prices(), method=view.method_name(), **view.backend_parameters()
    )


def coint_dataset(n=600, seed=7, name="custom basket"):
    """Seeded random walks A..E plus Y = 5 + 0.6 A + 0.4 C + AR(1) noise (phi 0.7): Y, A, C cointegrate."""
    rng = np.random.default_rng(seed)
    walks = 50.0 + np.cumsum(rng.normal(0.0, 1.0, (n, 5)), axis=0)
    e = np.zeros(n)
    for t in range(1, n):
        e[t] = 0.7 * e[t - 1] + rng.normal(0.0, 0.5)
    y = 5.0 + 0.6 * walks[:, 0] + 0.4 * walks[:, 2] + e
    df = pd.DataFrame(np.column_stack([y, walks]), columns=["Y", "A", "B", "C", "D", "E"], index=pd.RangeIndex(n, name="bar"))
    return Dataset(name, df)


def assert_verdict_consistent(text, stat, crit):
    """The verdict says 'cointegrated' exactly when ADF < the 5% value, '1%' exactly below the 1% value."""
    c1, c5, c10 = (float(v) for v in crit)
    assert text.startswith("cointegrated") == (stat < c5), (text, stat, crit)
    assert ("1%" in text) == (stat < c1), (text, stat, crit)
    assert text.startswith("not significant") == (stat >= c10), (text, stat, crit)


@pytest.mark.parametrize("choice", [BackendType.PYO3, BackendType.GRPC])
def test_lasso_with_a_target_on_each_backend(qtbot, view, router, choice):
    router.set_preferred(choice)
    view.set_method("lasso")
    view.set_target("KO")
    view.lam.setValue(10.0)
    out = run_and_wait(qtbot, view)
    assert out.ok, out.value
    assert out.backend_name == router.backend(choice).name
    r = view.result
    prices = view.selected_prices()
    # the default period is the last 5 years of the sample, all 20 assets
    assert prices.shape[1] == 20 and prices.index[0] >= prices.index[-1] - pd.DateOffset(years=5)
    assert len(prices) < 1300
    ref = direct(router, choice, view)
    assert view.backend_parameters() == {"lambda_param": 10.0, "target": "KO", "tolerance": 1e-4, "max_iterations": 10_000}
    for field in ("weights", "spread", "adf_critical_values"):
        np.testing.assert_array_equal(getattr(r, field), getattr(ref, field), err_msg=field)
    for field in ("target_index", "intercept", "nonzero", "half_life", "adf_statistic", "objective", "iterations"):
        assert getattr(r, field) == getattr(ref, field), field
    assert r.asset_names[r.target_index] == "KO" and r.weights[r.target_index] == 1.0
    assert 1 < r.nonzero < 20  # λ = 10 makes a small basket here
    # the bars are the weights of the selected assets, named on the axis
    sel = np.flatnonzero(r.weights)
    np.testing.assert_array_equal(view.weights_bars.opts["height"], r.weights[sel])
    np.testing.assert_array_equal(view.weights_bars.opts["x"], np.arange(len(sel)))
    assert view.weights_axis.names == list(r.selected)
    # the spread: one point per price row, with its mean (the lasso intercept) and ±2σ
    assert len(view.spread_curve.xData) == len(prices)
    np.testing.assert_array_equal(view.spread_curve.yData, r.spread)
    mean, lo, hi = view.spread_levels
    assert mean == pytest.approx(r.intercept, rel=1e-9)
    assert hi - mean == pytest.approx(2 * np.std(r.spread), rel=1e-12) and mean - lo == pytest.approx(hi - mean)
    # the x axis holds the dates of the rows
    assert view.spread_curve.xData[0] == pytest.approx(prices.index[0].timestamp())
    stats = view.stats.as_dict()
    assert stats["target"] == "KO" and stats["assets in basket"] == f"{r.nonzero} of 20"
    assert float(stats["ADF statistic"]) == pytest.approx(r.adf_statistic, rel=1e-5)
    assert float(stats["  critical value 5%"]) == pytest.approx(r.adf_critical_values[1], rel=1e-5)
    assert_verdict_consistent(stats["ADF verdict"], r.adf_statistic, r.adf_critical_values)
    assert stats["ADF verdict"] in view.summary.text() and stats["ADF verdict"] in view.status.text()
    assert stats["backend"].startswith(out.backend_name)
    for name in r.selected:
        assert float(stats[f"weight {name}"]) == pytest.approx(r.weights[list(r.asset_names).index(name)], rel=1e-5)
    # the hook for the Mean Reversion tab: a copy of the spread
    s = view.spread_series()
    np.testing.assert_array_equal(s, r.spread)
    s[0] = -1e9
    assert view.result.spread[0] != -1e9


def test_box_tiao_and_greedy_draw(qtbot, view, router):
    router.set_preferred(BackendType.GRPC)
    view.set_method("box_tiao")
    assert view.backend_parameters() == {}
    assert not view.method_form.isRowVisible(view.lam) and not view.method_form.isRowVisible(view.k)
    assert not view.path_button.isEnabled()
    out = run_and_wait(qtbot, view)
    assert out.ok, out.value
    r = view.result
    assert r.method == "box_tiao" and r.target_index == -1
    ref = direct(router, BackendType.GRPC, view)
    np.testing.assert_array_equal(r.weights, ref.weights)
    assert np.linalg.norm(r.weights) == pytest.approx(1.0)
    np.testing.assert_array_equal(view.weights_bars.opts["height"], r.weights[r.weights != 0])
    assert len(view.spread_curve.xData) == len(view.selected_prices())
    assert "target" not in view.stats.as_dict()

    view.set_method("greedy")
    assert view.method_form.isRowVisible(view.k) and not view.method_form.isRowVisible(view.target)
    view.k.setValue(3)
    out = run_and_wait(qtbot, view)
    assert out.ok, out.value
    r = view.result
    assert r.method == "greedy" and r.nonzero == 3
    np.testing.assert_array_equal(r.weights, direct(router, BackendType.GRPC, view).weights)
    assert len(view.weights_bars.opts["height"]) == 3 and view.weights_axis.names == list(r.selected)
    stats = view.stats.as_dict()
    assert stats["k"] == "3" and stats["assets in basket"] == "3 of 20"
    assert_verdict_consistent(stats["ADF verdict"], r.adf_statistic, r.adf_critical_values)


def test_synthetic_basket_is_generated_off_the_gui_thread_and_matches(qtbot, view, router):
    router.set_preferred(BackendType.PYO3)
    view.source.setCurrentIndex(view.source.findText(SYNTHETIC))
    view.period.setCurrentText("All rows")
    view.syn_n.setValue(800)
    view.syn_assets.setValue(4)
    view.syn_seed.setValue(3)
    assert [view.target.itemText(i) for i in range(view.target.count())] == ["Auto (try each)", "C1", "C2", "C3", "C4"]
    view.set_method("elastic_net")
    view.set_target(None)  # auto: each asset in turn
    view.alpha.setValue(0.5)
    view.lam.setValue(5.0)
    out = run_and_wait(qtbot, view)
    assert out.ok, out.value
    assert len(view.run_frame) == 800
    ref = direct(router, BackendType.PYO3, view)
    np.testing.assert_array_equal(view.result.weights, ref.weights)
    assert view.result.target_index == ref.target_index
    assert "auto" in view.stats.as_dict()["target"]
    # every pair of this basket cointegrates: the search finds a stationary spread
    assert view.result.adf_statistic < view.result.adf_critical_values[1]


def test_lambda_path_and_clicking_a_point(qtbot, view, router):
    router.set_preferred(BackendType.PYO3)
    view.set_method("lasso")
    view.set_target(None)
    assert not view.path_button.isEnabled()  # auto target: no path
    view.set_target("KO")
    assert view.path_button.isEnabled()
    view.n_lambdas.setValue(12)
    view.run_on_click.setChecked(False)
    with qtbot.waitSignal(view.path_shown, timeout=60_000) as blocker:
        assert view.run_path() is not None
    out = blocker.args[0]
    assert out.ok, out.value
    lp = view.path
    ref = router.pyo3.sparse_lambda_path(view.selected_prices(), **view.path_parameters())
    np.testing.assert_array_equal(lp.lambdas, ref.lambdas)
    np.testing.assert_array_equal(lp.nonzero, ref.nonzero)
    assert len(lp.lambdas) == 12
    np.testing.assert_array_equal(view.path_nonzero_item.xData, lp.lambdas)
    np.testing.assert_array_equal(view.path_nonzero_item.yData, lp.nonzero)
    finite = np.isfinite(lp.half_life)
    np.testing.assert_array_equal(view.path_half_life_item.yData, lp.half_life[finite])
    assert view.result_tabs.currentIndex() == 1

    # a click (the handler, called directly) sets λ, the method and target of the path
    view.set_method("elastic_net")
    view.select_path_point(6)
    assert view.method_name() == "lasso" and view.target_name() == "KO"
    assert view.lam.value() == pytest.approx(float(lp.lambdas[6]), rel=1e-12)
    assert view.lam_lines[0].value() == pytest.approx(math.log10(lp.lambdas[6]))
    assert view.lam_lines[0].isVisible()
    assert view.result is None  # run on click is off
    # the scatter's click signal reaches the same handler (points of the half-life plot are mapped back)
    view._nonzero_clicked(None, view.path_nonzero_item.scatter.points()[[3]])
    assert view.lam.value() == pytest.approx(float(lp.lambdas[3]), rel=1e-12)
    j = int(np.flatnonzero(finite)[-1])
    view._half_life_clicked(None, view.path_half_life_item.scatter.points()[[int(finite.sum()) - 1]])
    assert view.lam.value() == pytest.approx(float(lp.lambdas[j]), rel=1e-12)

    view.run_on_click.setChecked(True)
    with qtbot.waitSignal(view.result_shown, timeout=60_000) as blocker:
        view.select_path_point(8)
    assert blocker.args[0].ok
    assert view.run_params["lambda_param"] == pytest.approx(float(lp.lambdas[8]), rel=1e-12)
    assert view.result.nonzero == lp.nonzero[8]
    # the path is fitted with warm starts: at tolerance 1e-4 the two fits agree to about that
    assert view.result.adf_statistic == pytest.approx(lp.adf_statistic[8], rel=1e-3)
    assert view.result_tabs.currentIndex() == 1  # the path stays in view


def test_active_dataset_is_used_and_a_new_dataset_clears_the_result(qtbot, router):
    store = DatasetStore(coint_dataset())
    view = make_view(qtbot, router, store)
    router.set_preferred(BackendType.PYO3)
    assert view.source.currentText() == "Active dataset (custom basket)"
    assert not view.period.isEnabled()  # bar numbers: every row
    pd.testing.assert_frame_equal(view.selected_prices(), store.selected_prices())
    view.set_method("lasso")
    view.set_target("Y")
    view.lam.setValue(1.0)
    out = run_and_wait(qtbot, view)
    assert out.ok, out.value
    r = view.result
    ref = router.pyo3.calculate_sparse_portfolio(store.selected_prices(), method="lasso", lambda_param=1.0, target="Y")
    np.testing.assert_array_equal(r.weights, ref.weights)
    assert {"Y", "A", "C"} <= set(r.selected)  # the planted hedges
    assert view.stats.as_dict()["ADF verdict"].startswith("cointegrated")
    assert len(view.spread_curve.xData) == 600

    # a selection change: refreshed, cleared, nothing recomputed
    store.set_assets(["Y", "A", "B", "C"])
    assert view.result is None and view.weights_bars is None and not view.runner.busy
    assert "cleared" in view.status.text()
    assert [view.target.itemText(i) for i in range(1, view.target.count())] == ["Y", "A", "B", "C"]
    assert view.target_name() == "Y"  # still there: kept

    out = run_and_wait(qtbot, view)
    assert out.ok
    store.set_dataset(coint_dataset(n=300, seed=9, name="second basket"))
    assert view.result is None and view.spread_curve is None and view.session_items() == []
    assert not view.export_json_button.isEnabled() and not view.runner.busy
    assert "Active dataset replaced" in view.status.text() and "cleared" in view.status.text()
    assert view.source.currentText() == "Active dataset (second basket)"
    assert len(view.selected_prices()) == 300

    # duplicated columns: the backend's message, inputs kept
    df = store.dataset.prices.copy()
    df["E"] = df["A"]
    store.set_dataset(Dataset("duplicates", df))
    out = run_and_wait(qtbot, view)
    assert not out.ok
    assert "exactly duplicated" in view.status.text() and str(out.value) in view.status.text()
    assert view.target_name() == "Y" and view.lam.value() == 1.0


def test_an_error_shows_the_backend_message_and_keeps_the_inputs(qtbot, view, router):
    router.set_preferred(BackendType.GRPC)
    view.set_method("greedy")
    view.k.setValue(3)
    assert run_and_wait(qtbot, view).ok
    shown = view.result
    view.k.setValue(25)
    out = run_and_wait(qtbot, view)
    assert not out.ok and isinstance(out.value, ValueError)
    assert "k must be between 2 and the number of assets (20), got 25" in view.status.text()
    assert out.backend_name in view.status.text()
    assert "previous result is still shown" in view.status.text()
    assert view.result is shown and view.weights_bars is not None
    assert view.k.value() == 25 and view.method_name() == "greedy"
    assert view.run_button.isEnabled()
    # λ is a non-negative number in the widget; the backend's own check is reached through alpha
    view.set_method("elastic_net")
    view.set_target("KO")
    view.alpha.setValue(0.0)
    view.n_lambdas.setValue(5)
    with qtbot.waitSignal(view.path_shown, timeout=60_000) as blocker:
        view.run_path()
    assert not blocker.args[0].ok
    assert "give lambdas explicitly" in view.status.text()


def test_export_json_and_csv_round_trip_and_session_items(qtbot, view, router, tmp_path):
    router.set_preferred(BackendType.PYO3)
    assert view.session_items() == []
    with pytest.raises(ValueError):
        view.export_json(tmp_path / "none.json")
    view.set_method("lasso")
    view.set_target("PEP")
    view.lam.setValue(20.0)
    out = run_and_wait(qtbot, view)
    assert out.ok
    items = view.session_items()
    assert len(items) == 1 and items[0].result is view.result
    r = view.result

    view.export_json(tmp_path / "basket.json")
    doc = read_result_json(tmp_path / "basket.json")
    back = result_from_document(doc)
    np.testing.assert_array_equal(back.weights, r.weights)
    np.testing.assert_array_equal(back.spread, r.spread)
    assert back.asset_names == r.asset_names and back.target_index == r.target_index
    assert back.half_life == r.half_life and back.adf_statistic == r.adf_statistic
    assert doc["backend"] == out.backend_name
    assert doc["parameters"] == {
        "method": "lasso",
        "lambda_param": 20.0,
        "target": "PEP",
        "tolerance": 1e-4,
        "max_iterations": 10_000,
    }
    inputs = doc["inputs"]
    prices = view.selected_prices()
    assert inputs["assets"] == list(prices.columns) and inputs["rows"] == len(prices)
    assert inputs["period"] == "last 5 years" and inputs["name"].startswith("S&P 500 sample")
    assert inputs["start"] == prices.index[0].isoformat()
    # the parameters reproduce the result
    p = dict(doc["parameters"])
    again = router.pyo3.calculate_sparse_portfolio(prices, method=p.pop("method"), **p)
    np.testing.assert_array_equal(again.weights, r.weights)

    files = view.export_csv(tmp_path / "basket.csv")
    assert files[0].name == "basket.csv"
    back = read_result_csv(tmp_path / "basket.csv")
    np.testing.assert_array_equal(back["spread"], r.spread)
    np.testing.assert_array_equal(back["weights"], r.weights)
    assert list(back["asset_names"]) == list(r.asset_names)
    assert pd.DatetimeIndex(back["__index__"]).equals(pd.DatetimeIndex(prices.index))


def test_settings_round_trip_and_log_spin_box(qtbot, view, tmp_path):
    s = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    view.set_method("elastic_net")
    view.lam.setValue(0.0123)
    view.tolerance.setValue(1e-7)
    view.k.setValue(4)
    save_widgets(s, "tabs/sparse", view.settings_widgets())
    other = SparseView(view.runner)
    qtbot.addWidget(other)
    restored = restore_widgets(s, "tabs/sparse", other.settings_widgets())
    assert set(restored) == set(view.settings_widgets())
    assert other.method_name() == "elastic_net" and other.method_form.isRowVisible(other.alpha)
    assert other.lam.value() == 0.0123 and other.tolerance.value() == 1e-7 and other.k.value() == 4
    assert other.lam_slider.value() == round(math.log10(0.0123) * 24)

    lam = LogSpinBox(0.0, 1e12, 1e-4)
    qtbot.addWidget(lam)
    lam.setValue(10.0)
    seen = []
    for _ in range(3):
        lam.stepBy(1)
        seen.append(lam.value())
    assert seen == [20.0, 50.0, 100.0]
    lam.setValue(110.958)
    lam.stepBy(-1)
    assert lam.value() == 100.0
    lam.setValue(110.958)
    lam.stepBy(1)
    assert lam.value() == 200.0
    lam.setValue(1e-4)
    lam.stepBy(-1)
    assert lam.value() == 0.0
    lam.stepBy(1)
    assert lam.value() == 1e-4
    assert lam.textFromValue(4437.90328629) == "4437.9" and lam.valueFromText("2.5e-3") == 0.0025
    tol = view.tolerance
    tol.setValue(1e-4)
    tol.stepBy(1)
    assert tol.value() == pytest.approx(1e-3)
    # the slider moves λ on a log scale
    view.lam_slider.setValue(48)
    assert view.lam.value() == 100.0
