"""Portfolio tab (offscreen): a run on each backend draws exactly the backend's numbers, the asset
check boxes and risk budgets reach the backend, errors are shown without losing the inputs,
export round trips, synthetic universes, date ranges, Cancel. With a DatasetStore: the active
dataset's assets and rows are the inputs, store changes reload them and clear the result, bar
numbers switch the date controls off, session items, settings round trip."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest
from hft_lab.backends import BackendConfig, BackendType
from hft_lab.backends.router import BackendRouter
from hft_lab.data import Dataset
from hft_lab.data.export import describe_prices, read_result_csv, read_result_json, result_from_document
from hft_lab.data.store import DatasetStore
from hft_lab.ui.settings import restore_widgets, save_widgets
from hft_lab.ui.views.base import ExportError
from hft_lab.ui.views.portfolio import SYNTHETIC, PortfolioView, active_label, synthetic_universe
from hft_lab.ui.worker import TaskRunner
from PySide6.QtCore import QDate, QSettings, Qt

pytestmark = pytest.mark.gui


@pytest.fixture
def router(grpc_manager):
    port = int(grpc_manager.address.rsplit(":", 1)[1])
    r = BackendRouter(BackendConfig(grpc_host="127.0.0.1", grpc_port=port))
    yield r
    r.stop()


@pytest.fixture
def view(qtbot, router):
    v = PortfolioView(TaskRunner(router))
    qtbot.addWidget(v)
    v.resize(1400, 900)
    v.show()
    return v


def run_and_wait(qtbot, view, timeout=60_000):
    with qtbot.waitSignal(view.result_shown, timeout=timeout) as blocker:
        assert view.run() is not None
    return blocker.args[0]


def direct(router, choice, view):
    """The same call the view makes, straight on the backend."""
    return router.backend(choice).optimize_portfolio(
        view.selected_prices(), method=view.method_name(), parameters=view.parameters()
    )


def table_column(view, col):
    t = view.results
    return {t.item(i, 0).text(): t.item(i, col).text() for i in range(t.rowCount())}


@pytest.mark.parametrize("choice", [BackendType.PYO3, BackendType.GRPC])
def test_max_sharpe_with_frontier_on_each_backend(qtbot, view, router, choice):
    router.set_preferred(choice)
    view.set_method("max_sharpe")
    view.frontier_points.setValue(12)
    view.max_weight.setValue(40.0)
    out = run_and_wait(qtbot, view)
    assert out.ok, out.value
    assert out.backend_name == router.backend(choice).name
    res = view.result
    assert res is out.value["result"]
    ref = direct(router, choice, view)
    assert view.parameters()["max_weight"] == 0.4 and view.parameters()["frontier_points"] == 12
    for field in ("weights", "risk_contributions", "frontier_returns", "frontier_volatilities"):
        np.testing.assert_array_equal(getattr(res, field), getattr(ref, field), err_msg=field)
    assert (res.expected_return, res.volatility, res.sharpe, res.status) == (
        ref.expected_return,
        ref.volatility,
        ref.sharpe,
        ref.status,
    )
    assert tuple(res.asset_names) == tuple(view.selected_prices().columns) and len(res.weights) == 20
    assert res.weights.max() <= 0.4 + 1e-12
    # the charts show exactly these numbers
    np.testing.assert_array_equal(view.weights_bars.opts["height"], res.weights)
    np.testing.assert_array_equal(view.weights_bars.opts["x"], np.arange(20))
    np.testing.assert_array_equal(view.risk_bars.opts["height"], res.risk_contributions)
    assert view.weights_axis.names == list(res.asset_names)
    fx, fy = view.frontier_curve.getData()
    assert len(fx) == len(fy) == 12
    np.testing.assert_array_equal(fx, res.frontier_volatilities)
    np.testing.assert_array_equal(fy, res.frontier_returns)
    px, py = view.portfolio_point.getData()
    assert (px[0], py[0]) == (res.volatility, res.expected_return)
    ax, ay = view.asset_points.getData()
    assert len(ax) == 20
    # the capital market line goes through the tangency portfolio from the risk-free rate
    cx, cy = view.cml_curve.getData()
    assert cy[0] == pytest.approx(0.02) and cx[0] == 0.0
    assert np.interp(res.volatility, cx, cy) == pytest.approx(res.expected_return, rel=1e-9)
    # tables
    weights = table_column(view, 1)
    assert len(weights) == 20
    for name, w in zip(res.asset_names, res.weights):
        assert weights[name] == f"{w * 100:.2f} %"
    stats = view.stats.as_dict()
    assert stats["Sharpe ratio"] == f"{res.sharpe:.4f}"
    assert stats["volatility"] == f"{res.volatility * 100:.2f} %"
    assert stats["backend"] == router.backend(choice).name and stats["status"] == "Solved"
    assert stats["iterations"] == f"{res.iterations:,}"
    assert "on " + router.backend(choice).name in view.status.text()
    assert view.export_csv_button.isEnabled() and view.export_json_button.isEnabled()


def test_unchecked_assets_are_left_out(qtbot, view, router):
    router.set_preferred(BackendType.PYO3)
    view.set_method("min_variance")
    view.set_checked(["AAPL", "JNJ", "XOM"], False)
    kept = [n for n in view.asset_names() if n not in ("AAPL", "JNJ", "XOM")]
    assert view.checked_assets() == kept
    assert list(view.selected_prices().columns) == kept
    assert "17 of 20 assets checked" in view.selection_label.text()
    out = run_and_wait(qtbot, view)
    assert out.ok, out.value
    assert list(view.result.asset_names) == kept
    ref = direct(router, BackendType.PYO3, view)
    np.testing.assert_array_equal(view.result.weights, ref.weights)
    assert set(table_column(view, 1)) == set(kept)
    assert len(view.weights_bars.opts["height"]) == 17 and view.run_inputs["asset_names"] == kept


def test_fewer_than_two_assets_are_refused(qtbot, view):
    view.select_none.click()
    view.set_checked(["KO"])
    assert view.checked_assets() == ["KO"]
    assert "at least 2 assets" in view.selection_label.text()
    assert view.run() is None
    assert "at least 2 assets" in view.status.text() and not view.runner.busy
    view.select_all.click()
    assert len(view.checked_assets()) == 20
    assert "at least 2" not in view.selection_label.text()


@pytest.mark.parametrize("choice", [BackendType.PYO3, BackendType.GRPC])
def test_risk_parity_budgets_from_the_table(qtbot, view, router, choice):
    router.set_preferred(choice)
    assert view.assets.isColumnHidden(1)
    view.set_method("risk_parity")
    assert not view.assets.isColumnHidden(1) and not view.min_weight.isEnabled()
    names = ["AAPL", "JPM", "KO", "MSFT", "PFE", "XOM"]
    view.select_none.click()
    view.set_checked(names)
    budgets = [1.0, 2.0, 3.0, 1.0, 0.5, 2.5]
    for name, b in zip(names, budgets):
        view.set_budget(name, b)
    # an unchecked asset's budget does not matter
    view.set_budget("GE", 7.0)
    assert view.parameters()["risk_budgets"] == budgets
    assert "min_weight" not in view.parameters()
    out = run_and_wait(qtbot, view)
    assert out.ok, out.value
    res = view.result
    assert list(res.asset_names) == names
    target = np.array(budgets) / sum(budgets)
    np.testing.assert_allclose(res.risk_contributions, target, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(view.budget_marks.getData()[1], target)
    assert not view.results.isColumnHidden(3)
    assert table_column(view, 3)["KO"] == f"{3.0 / 10.0 * 100:.2f} %"
    ref = direct(router, choice, view)
    np.testing.assert_array_equal(res.weights, ref.weights)


def test_infeasible_bounds_show_the_backend_message_and_keep_everything(qtbot, view, router):
    router.set_preferred(BackendType.PYO3)
    ok = run_and_wait(qtbot, view)
    assert ok.ok
    before = view.result
    view.set_checked(["AAPL", "AMD"], False)
    view.min_weight.setValue(10.0)  # 10 % x 18 assets > 100 %
    out = run_and_wait(qtbot, view)
    assert not out.ok
    text = view.status.text()
    assert text.startswith("Error on PyO3") and "infeasible bounds: min_weight (0.1) x 18 assets" in text
    assert "previous result is still shown" in text
    # inputs and the previous result are untouched
    assert view.min_weight.value() == 10.0 and len(view.checked_assets()) == 18
    assert view.result is before and view.run_button.isEnabled()
    # and fixing the input works
    view.min_weight.setValue(2.0)
    assert run_and_wait(qtbot, view).ok
    assert view.result.weights.min() >= 0.02 - 1e-12 and len(view.result.weights) == 18


@pytest.mark.parametrize("choice", [BackendType.PYO3, BackendType.GRPC])
def test_no_asset_above_the_risk_free_rate(qtbot, view, router, choice):
    router.set_preferred(choice)
    view.risk_free.setValue(90.0)
    out = run_and_wait(qtbot, view)
    assert not out.ok and view.result is None
    assert "above risk_free_rate (0.9)" in view.status.text()
    assert view.risk_free.value() == 90.0 and not view.export_csv_button.isEnabled()
    with pytest.raises(ExportError, match="no result to export"):
        view.export_csv("unused.csv")


def test_export_round_trip(qtbot, view, router, tmp_path):
    router.set_preferred(BackendType.PYO3)
    view.set_checked(["GE", "RRC"], False)
    view.covariance.setCurrentIndex(view.covariance.findData("ledoit_wolf"))
    view.frontier_points.setValue(5)
    assert run_and_wait(qtbot, view).ok
    res = view.result
    files = view.export_csv(str(tmp_path / "w.csv"))
    with open(tmp_path / "w.csv", newline="") as f:
        rows = list(csv.reader(f))
    # the main file is the weights table (one row per asset), the frontier a table of its own
    assert rows[0] == ["weights", "asset_names", "risk_contributions"] and len(rows) == 19
    assert [p.name for p in files] == ["w.csv", "w.summary.csv", "w.frontier_returns.csv"]
    table = read_result_csv(tmp_path / "w.csv")
    assert list(table["asset_names"]) == list(res.asset_names)
    np.testing.assert_array_equal(table["weights"], res.weights)
    np.testing.assert_array_equal(table["risk_contributions"], res.risk_contributions)
    np.testing.assert_array_equal(table["frontier_returns"], res.frontier_returns)
    assert table["sharpe"] == res.sharpe and table["method"] == "max_sharpe"

    view.export_json(str(tmp_path / "r.json"))
    doc = read_result_json(tmp_path / "r.json")
    assert doc["result_type"] == "PortfolioResult" and doc["backend"] == "PyO3 (in-process)"
    assert doc["parameters"] == {"method": "max_sharpe", **view.parameters()}
    assert doc["parameters"]["covariance"] == "ledoit_wolf"
    back = result_from_document(doc)
    assert back.asset_names == res.asset_names and list(back.asset_names) == doc["inputs"]["assets"]
    np.testing.assert_array_equal(back.weights, res.weights)
    np.testing.assert_array_equal(back.frontier_returns, res.frontier_returns)
    assert back.sharpe == res.sharpe
    assert doc["inputs"]["rows"] == len(view.selected_prices()) and doc["inputs"]["end"].startswith("2022-12-28")
    # what was exported reproduces the result
    p = dict(doc["parameters"])
    ref = router.pyo3.optimize_portfolio(view.selected_prices()[doc["inputs"]["assets"]], method=p.pop("method"), parameters=p)
    np.testing.assert_array_equal(ref.weights, res.weights)


def test_risk_parity_csv_has_the_budgets(qtbot, view, router, tmp_path):
    router.set_preferred(BackendType.PYO3)
    view.set_method("risk_parity")
    view.set_budget("AAPL", 4.0)
    assert run_and_wait(qtbot, view).ok
    view.export_json(str(tmp_path / "rp.json"))
    doc = read_result_json(tmp_path / "rp.json")
    b = dict(zip(doc["inputs"]["assets"], doc["parameters"]["risk_budgets"], strict=True))
    assert b["AAPL"] == 4.0 and b["KO"] == 1.0 and sum(b.values()) == 23.0


def test_single_asset_points_follow_the_core_conventions(qtbot, view, router):
    """The asset dots use the core's return/covariance conventions: with long-only weights up to
    100 % the top of the frontier is the best single asset, which must sit on its dot."""
    router.set_preferred(BackendType.PYO3)
    view.set_method("min_variance")
    view.frontier_points.setValue(4)
    for returns in ("simple", "log"):
        for cov in ("sample", "ledoit_wolf"):
            view.returns.setCurrentIndex(view.returns.findData(returns))
            view.covariance.setCurrentIndex(view.covariance.findData(cov))
            assert run_and_wait(qtbot, view).ok
            res, mean, vol = view.result, view.asset_returns, view.asset_volatilities
            best = int(np.argmax(mean))
            assert res.frontier_returns[-1] == pytest.approx(mean[best], rel=1e-10), (returns, cov)
            assert res.frontier_volatilities[-1] == pytest.approx(vol[best], rel=1e-9), (returns, cov)
            x, y = view.asset_points.getData()
            np.testing.assert_array_equal(x, vol)
            np.testing.assert_array_equal(y, mean)


def test_ledoit_wolf_asset_volatilities_match_sklearn(sp500_stocks, backend):
    from sklearn.covariance import LedoitWolf

    def asset_moments(p, returns, annualization, covariance):
        m = backend.estimate_moments(p, returns=returns, annualization=annualization, covariance=covariance)
        return m.mean, m.volatilities

    p = sp500_stocks.iloc[-1500:, :8].to_numpy()
    r = np.log(p[1:] / p[:-1])
    _, vol = asset_moments(p, "log", 252.0, "ledoit_wolf")
    np.testing.assert_allclose(vol, np.sqrt(np.diag(LedoitWolf().fit(r).covariance_) * 252.0), rtol=1e-12)
    mean, vol = asset_moments(p, "simple", 12.0, "sample")
    s = p[1:] / p[:-1] - 1
    np.testing.assert_allclose(mean, s.mean(axis=0) * 12.0, rtol=1e-13)
    np.testing.assert_allclose(vol, s.std(axis=0, ddof=1) * np.sqrt(12.0), rtol=1e-13)


def test_date_range_modes(qtbot, view, router):
    router.set_preferred(BackendType.GRPC)
    view.period.setCurrentText("Last N years")
    view.years.setValue(3)
    df = view.selected_prices()
    assert df.index[-1].strftime("%Y-%m-%d") == "2022-12-28" and df.index[0].strftime("%Y-%m-%d") >= "2019-12-28"
    assert (df.index[0] - df.index[-1]).days > -3 * 366 and len(df) > 700
    assert view.start_date.date().toString("yyyy-MM-dd") == f"{df.index[0]:%Y-%m-%d}"  # shows the period used
    view.period.setCurrentText("Between dates")
    assert view.start_date.isEnabled()
    view.start_date.setDate(view.start_date.date().fromString("2001-01-02", "yyyy-MM-dd"))
    view.end_date.setDate(view.end_date.date().fromString("2003-06-30", "yyyy-MM-dd"))
    df = view.selected_prices()
    assert f"{df.index[0]:%Y-%m-%d}" == "2001-01-02" and f"{df.index[-1]:%Y-%m-%d}" == "2003-06-30"
    assert f"{len(df):,} price rows (2001-01-02 … 2003-06-30)" in view.selection_label.text()
    out = run_and_wait(qtbot, view)
    assert out.ok and out.backend_name == "gRPC (Rust server)"
    ref = direct(router, BackendType.GRPC, view)
    np.testing.assert_array_equal(view.result.weights, ref.weights)
    assert view.run_inputs["start"] == "2001-01-02" and view.stats.as_dict()["data"] == "2001-01-02 … 2003-06-30"
    # an empty period is refused with a message
    view.end_date.setDate(view.start_date.date())
    assert view.run() is None and "too few" in view.status.text()


def test_synthetic_universe(qtbot, view, router):
    router.set_preferred(BackendType.PYO3)
    a, b = synthetic_universe(6, 300, seed=3), synthetic_universe(6, 300, seed=3)
    assert a.equals(b) and not a.equals(synthetic_universe(6, 300, seed=4))
    assert np.all(a.to_numpy() > 0) and list(a.columns) == [f"SYN0{i}" for i in range(1, 7)]
    view.source.setCurrentText(SYNTHETIC)
    view.n_assets.setValue(12)
    view.n_obs.setValue(1000)
    view.seed.setValue(7)
    view.reload()
    assert view.asset_names() == [f"SYN{i:02d}" for i in range(1, 13)]
    assert "12 of 12 assets checked · 1,000 price rows" in view.selection_label.text()
    view.set_checked(["SYN03"], False)
    out = run_and_wait(qtbot, view)  # the universe is made on the worker thread
    assert out.ok, out.value
    assert len(view.result.weights) == 11 and "SYN03" not in view.result.asset_names
    np.testing.assert_array_equal(view.synthetic_frame().to_numpy(), synthetic_universe(12, 1000, 7).to_numpy())
    ref = direct(router, BackendType.PYO3, view)
    np.testing.assert_array_equal(view.result.weights, ref.weights)
    assert view.run_inputs["synthetic"] == {"assets": 12, "observations": 1000, "seed": 7}


@pytest.mark.parametrize("choice", [BackendType.PYO3, BackendType.GRPC])
def test_cancel_drops_the_run(qtbot, view, router, choice):
    router.set_preferred(choice)
    view.source.setCurrentText(SYNTHETIC)
    view.n_assets.setValue(300)
    view.n_obs.setValue(4000)
    view.reload()
    view.frontier_points.setValue(1000)  # several seconds of work
    assert view.run() is not None
    assert view.cancel_button.isEnabled() and not view.run_button.isEnabled()
    view.cancel_button.click()
    assert view.status.text() == "Cancelled."
    assert view.run_button.isEnabled() and not view.cancel_button.isEnabled()
    qtbot.wait(800)
    assert view.result is None
    view.frontier_points.setValue(0)
    view.n_assets.setValue(5)
    view.reload()
    assert run_and_wait(qtbot, view).ok and len(view.result.weights) == 5


def test_small_helpers(view):
    # one frontier point is not a frontier: the spin box steps over 1
    view.frontier_points.setValue(0)
    view.frontier_points.stepUp()
    assert view.frontier_points.value() == 2
    view.frontier_points.stepDown()
    assert view.frontier_points.value() == 0
    assert view.readout(0) == " "  # nothing to read before a run
    # budgets survive a source round trip
    view.set_budget("KO", 3.5)
    view.set_checked(["KO"], False)
    view.source.setCurrentText(SYNTHETIC)
    view.source.setCurrentIndex(0)
    assert view.risk_budgets()[view.checked_assets().index("JPM")] == 1.0
    row = view.asset_names().index("KO")
    assert view.assets.item(row, 1).data(Qt.ItemDataRole.EditRole) == 3.5
    assert view.assets.item(row, 0).checkState() == Qt.CheckState.Unchecked


def test_hover_readout_names_the_asset(qtbot, view, router):
    router.set_preferred(BackendType.PYO3)
    assert run_and_wait(qtbot, view).ok
    i = list(view.result.asset_names).index("MSFT")
    text = view.readout(i)
    assert "MSFT" in text and f"weight {view.result.weights[i] * 100:.2f} %" in text


# ---------------------------------------------------------------------------------------------
# the active dataset (DatasetStore)
# ---------------------------------------------------------------------------------------------


def gbm_dataset(name="Test GBM", n=800, assets=("AAA", "BBB", "CCC"), seed=11, index=None):
    """Seeded correlated geometric Brownian motions, business days from 2015 (or the given index)."""
    rng = np.random.default_rng(seed)
    k = len(assets)
    z = rng.standard_normal((n - 1, k + 1))
    r = 0.0004 + 0.004 * np.arange(1, k + 1) * 0.1 + 0.008 * (0.5 * z[:, [0]] + z[:, 1:])
    p = 100.0 * np.exp(np.vstack([np.zeros((1, k)), np.cumsum(r, axis=0)]))
    idx = pd.bdate_range("2015-01-01", periods=n) if index is None else index
    return Dataset(name, pd.DataFrame(p, index=idx, columns=list(assets)))


@pytest.fixture
def store(qtbot):
    return DatasetStore(gbm_dataset())


@pytest.fixture
def sview(qtbot, router, store):
    v = PortfolioView(TaskRunner(router), store)
    qtbot.addWidget(v)
    v.resize(1400, 900)
    v.show()
    return v


def sources(view):
    return [view.source.itemText(i) for i in range(view.source.count())]


def test_store_assets_are_listed(sview, store):
    assert sources(sview) == [active_label("Test GBM"), SYNTHETIC] and sview.uses_store
    assert sview.asset_names() == ["AAA", "BBB", "CCC"] == sview.checked_assets()
    assert sview.dataset_label.isVisible() and sview.dataset_label.text() == store.describe()
    assert "3 of 3 assets checked · 800 price rows (2015-01-01 … 2018-01-24)" in sview.selection_label.text()
    # the date fields follow the dataset's dates
    assert sview.start_date.minimumDate() == QDate(2015, 1, 1) and sview.end_date.maximumDate() == QDate(2018, 1, 24)
    assert sview.period.isEnabled() and not sview.period_note.isVisible()
    sview.source.setCurrentText(SYNTHETIC)
    assert not sview.dataset_label.isVisible() and sview.asset_names()[0] == "SYN01"


@pytest.mark.parametrize("choice", [BackendType.PYO3, BackendType.GRPC])
def test_a_run_uses_exactly_the_store_prices(qtbot, sview, router, store, choice):
    router.set_preferred(choice)
    store.set_selection(start="2015-03-02", end="2017-06-30")
    pd.testing.assert_frame_equal(sview.selected_prices(), store.selected_prices())  # last 10 years: all of it
    out = run_and_wait(qtbot, sview)
    assert out.ok, out.value
    ref = router.backend(choice).optimize_portfolio(
        store.selected_prices(), method=sview.method_name(), parameters=sview.parameters()
    )
    for field in ("weights", "risk_contributions", "frontier_returns", "frontier_volatilities"):
        np.testing.assert_array_equal(getattr(sview.result, field), getattr(ref, field), err_msg=field)
    assert sview.result.asset_names == ("AAA", "BBB", "CCC")
    assert sview.run_inputs["start"] == "2015-03-02" and sview.run_inputs["end"] == "2017-06-30"
    assert sview.stats.as_dict()["data"] == "2015-03-02 … 2017-06-30"
    # the view's own period still applies on top of the store's selection
    sview.period.setCurrentText("Between dates")
    sview.start_date.setDate(QDate(2016, 1, 1))
    sview.end_date.setDate(QDate(2016, 12, 31))
    pd.testing.assert_frame_equal(sview.selected_prices(), store.selected_prices().loc["2016"])


def test_the_store_selection_restricts_the_assets_and_clears_the_result(qtbot, sview, router, store):
    router.set_preferred(BackendType.PYO3)
    sview.set_checked(["BBB"], False)
    assert run_and_wait(qtbot, sview).ok and sview.result.asset_names == ("AAA", "CCC")
    store.set_selection(assets=["CCC", "BBB"])
    assert sview.asset_names() == ["CCC", "BBB"]
    assert sview.checked_assets() == ["CCC"]  # BBB stays unchecked: the check marks are kept by name
    assert sview.result is None and sview.weights_bars is None and sview.results.rowCount() == 0
    assert not sview.export_json_button.isEnabled() and not sview.runner.busy and sview.session_items() == []
    assert sview.status.text().startswith("Active dataset selection changed: Test GBM: 2 assets, 800 rows")
    assert "the previous result was cleared" in sview.status.text()
    sview.set_checked(["BBB"])
    assert run_and_wait(qtbot, sview).ok
    assert sview.result.asset_names == ("CCC", "BBB")
    ref = router.pyo3.optimize_portfolio(store.selected_prices(), method="max_sharpe", parameters=sview.parameters())
    np.testing.assert_array_equal(sview.result.weights, ref.weights)


def test_another_dataset_refreshes_the_source(qtbot, sview, router, store):
    router.set_preferred(BackendType.PYO3)
    assert run_and_wait(qtbot, sview).ok
    other = gbm_dataset("Other", n=400, assets=("X1", "X2", "X3", "X4"), seed=3, index=pd.bdate_range("2003-01-01", periods=400))
    store.set_dataset(other)
    assert sources(sview) == [active_label("Other"), SYNTHETIC]
    assert sview.asset_names() == ["X1", "X2", "X3", "X4"] and sview.result is None and not sview.runner.busy
    assert sview.status.text().startswith(f"Active dataset replaced: {other.describe()}")
    assert sview.dataset_label.text() == other.describe()
    last = other.prices.index[-1]
    assert sview.end_date.maximumDate() == QDate(last.year, last.month, last.day) == sview.end_date.date()
    assert len(sview.selected_prices()) == 400
    # a synthetic result is not touched by store changes (only the entry's name follows)
    sview.source.setCurrentText(SYNTHETIC)
    sview.n_assets.setValue(4)
    sview.n_obs.setValue(300)
    sview.reload()
    sview.set_method("min_variance")
    assert run_and_wait(qtbot, sview).ok
    r, status = sview.result, sview.status.text()
    store.set_dataset(gbm_dataset("Third"))
    assert sources(sview) == [active_label("Third"), SYNTHETIC]
    assert sview.result is r and sview.status.text() == status and sview.synthetic


def test_bar_numbers_switch_the_date_controls_off(qtbot, sview, router, store):
    router.set_preferred(BackendType.PYO3)
    store.set_dataset(gbm_dataset("Bars", n=600, index=pd.RangeIndex(600)))
    store.set_selection(start=100, end=499)
    assert sview.period_note.isVisible() and "all rows" in sview.period_note.text()
    assert not any(w.isEnabled() for w in (sview.period, sview.years, sview.start_date, sview.end_date))
    assert not sview.start_date.isVisibleTo(sview)  # no dates of other data on show
    assert sview.period.currentText() == "Last N years"  # means all rows here
    pd.testing.assert_frame_equal(sview.selected_prices(), store.selected_prices())
    assert "400 price rows (bars 100 … 499)" in sview.selection_label.text()
    assert run_and_wait(qtbot, sview).ok
    assert (sview.run_inputs["start"], sview.run_inputs["end"], sview.run_inputs["rows"]) == (100, 499, 400)
    ref = router.pyo3.optimize_portfolio(store.selected_prices(), method="max_sharpe", parameters=sview.parameters())
    np.testing.assert_array_equal(sview.result.weights, ref.weights)
    assert sview.session_items()[0].inputs["period"] == "all rows (bar numbers)"
    # dates again: the controls come back
    store.set_dataset(gbm_dataset())
    assert sview.period.isEnabled() and sview.years.isEnabled() and not sview.period_note.isVisible()
    assert sview.start_date.isVisibleTo(sview)


def test_between_dates_includes_the_whole_end_day(qtbot, sview, store):
    idx = pd.date_range("2021-03-01 09:30", periods=800, freq="min")  # 09:30 … 22:49 on one day
    store.set_dataset(gbm_dataset("Minutes", index=idx))
    sview.period.setCurrentText("Between dates")
    sview.start_date.setDate(QDate(2021, 3, 1))
    sview.end_date.setDate(QDate(2021, 3, 1))
    assert len(sview.selected_prices()) == 800
    assert "(2021-03-01 09:30:00 … 2021-03-01 22:49:00)" in sview.selection_label.text()


def test_session_items(qtbot, sview, router, store, tmp_path):
    router.set_preferred(BackendType.GRPC)
    assert sview.session_items() == []
    sview.set_method("risk_parity")
    sview.set_budget("BBB", 2.0)
    out = run_and_wait(qtbot, sview)
    assert out.ok
    sview.set_method("min_variance")  # after the run: the item keeps the run's method
    (item,) = sview.session_items()
    assert item.name == "portfolio" and item.result is sview.result and item.backend == out.backend_name
    assert item.parameters["method"] == "risk_parity" and item.parameters["risk_budgets"] == [1.0, 2.0, 1.0]
    assert set(item.plots) == {"frontier", "weights", "risk_contributions"}
    used = store.selected_prices()
    assert item.inputs["sha256"] == describe_prices(used)["sha256"] and item.inputs["name"] == "Test GBM"
    assert item.inputs["assets"] == ["AAA", "BBB", "CCC"] and item.inputs["dataset"]["sha256"] == store.inputs()["sha256"]
    # the item alone reproduces the run
    p = dict(item.parameters)
    cols = item.inputs["prices"]["columns"]
    prices = pd.DataFrame({a: cols[a] for a in item.inputs["assets"]})
    ref = router.pyo3.optimize_portfolio(prices, method=p.pop("method"), parameters=p)
    np.testing.assert_allclose(ref.weights, sview.result.weights, rtol=0, atol=1e-9)
    # a session export writes the item with its plots
    from hft_lab.data.export import export_session

    idx = export_session(tmp_path / "session", sview.session_items())
    names = {f.name for f in idx.parent.iterdir()}
    assert {
        "portfolio.json",
        "portfolio.csv",
        "portfolio.frontier.png",
        "portfolio.weights.png",
        "portfolio.risk_contributions.png",
    } <= names
    # the view's own JSON carries the same description
    sview.export_json(str(tmp_path / "p.json"))
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["inputs"]["sha256"] == item.inputs["sha256"] and doc["inputs"]["rows"] == 800
    # synthetic: the generator and its parameters
    sview.source.setCurrentText(SYNTHETIC)
    sview.n_assets.setValue(3)
    sview.n_obs.setValue(200)
    sview.seed.setValue(9)
    sview.reload()
    assert sview.session_items()[0].result is not None  # switching source alone keeps the result
    assert run_and_wait(qtbot, sview).ok
    inp = sview.session_items()[0].inputs
    assert inp["params"] == {"n_assets": 3, "n_obs": 200, "seed": 9} and inp["rows"] == 200


def test_settings_widgets_round_trip(qtbot, router, store, tmp_path):
    a = PortfolioView(TaskRunner(router), store)
    qtbot.addWidget(a)
    ws = a.settings_widgets()
    assert a.source not in ws.values() and a.seed not in ws.values() and a.period not in ws.values()
    a.set_method("min_variance")
    a.returns.setCurrentIndex(a.returns.findData("log"))
    a.covariance.setCurrentIndex(a.covariance.findData("ledoit_wolf"))
    a.risk_free.setValue(3.25)
    a.annualization.setValue(12.0)
    a.min_weight.setValue(-10.0)
    a.max_weight.setValue(55.5)
    a.frontier_points.setValue(17)
    path = str(tmp_path / "s.ini")
    save_widgets(QSettings(path, QSettings.Format.IniFormat), "tabs/portfolio", a.settings_widgets())
    b = PortfolioView(TaskRunner(router), store)
    qtbot.addWidget(b)
    assert (b.method_name(), b.parameters()) != (a.method_name(), a.parameters())
    done = restore_widgets(QSettings(path, QSettings.Format.IniFormat), "tabs/portfolio", b.settings_widgets())
    assert sorted(done) == sorted(ws)
    assert b.method_name() == "min_variance" and b.parameters() == a.parameters()
