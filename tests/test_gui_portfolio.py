"""Portfolio tab (offscreen): a run on each backend draws exactly the backend's numbers, the asset
check boxes and risk budgets reach the backend, errors are shown without losing the inputs,
export round trips, synthetic universes, date ranges, Cancel."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PySide6.QtCore import Qt

from hft_lab.backends import BackendConfig, BackendType
from hft_lab.backends.router import BackendRouter
from hft_lab.ui.views.portfolio import SYNTHETIC, PortfolioView, asset_moments, synthetic_universe
from hft_lab.ui.worker import TaskRunner

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
        ref.expected_return, ref.volatility, ref.sharpe, ref.status
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
    with pytest.raises(RuntimeError, match="no result to export"):
        view.export_csv("unused.csv")


def test_export_round_trip(qtbot, view, router, tmp_path):
    router.set_preferred(BackendType.PYO3)
    view.set_checked(["GE", "RRC"], False)
    view.covariance.setCurrentIndex(view.covariance.findData("ledoit_wolf"))
    view.frontier_points.setValue(5)
    assert run_and_wait(qtbot, view).ok
    res = view.result
    view.export_csv(str(tmp_path / "w.csv"))
    with open(tmp_path / "w.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["asset", "weight", "risk_contribution"]
    assert [r[0] for r in rows[1:]] == list(res.asset_names) and len(rows) == 19
    np.testing.assert_array_equal([float(r[1]) for r in rows[1:]], res.weights)
    np.testing.assert_array_equal([float(r[2]) for r in rows[1:]], res.risk_contributions)

    view.export_json(str(tmp_path / "r.json"))
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["method"] == "max_sharpe" and doc["backend"] == "PyO3 (in-process)"
    assert doc["parameters"] == view.parameters() and doc["parameters"]["covariance"] == "ledoit_wolf"
    assert doc["result"]["asset_names"] == list(res.asset_names) == doc["data"]["asset_names"]
    np.testing.assert_array_equal(doc["result"]["weights"], res.weights)
    np.testing.assert_array_equal(doc["result"]["frontier_returns"], res.frontier_returns)
    assert doc["result"]["sharpe"] == res.sharpe
    assert doc["data"]["rows"] == len(view.selected_prices()) and doc["data"]["end"] == "2022-12-28"
    # what was exported reproduces the result
    ref = router.pyo3.optimize_portfolio(
        view.selected_prices()[doc["data"]["asset_names"]], method=doc["method"], parameters=doc["parameters"]
    )
    np.testing.assert_array_equal(ref.weights, res.weights)


def test_risk_parity_csv_has_the_budgets(qtbot, view, router, tmp_path):
    router.set_preferred(BackendType.PYO3)
    view.set_method("risk_parity")
    view.set_budget("AAPL", 4.0)
    assert run_and_wait(qtbot, view).ok
    view.export_csv(str(tmp_path / "rp.csv"))
    with open(tmp_path / "rp.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    b = {r["asset"]: float(r["risk_budget"]) for r in rows}
    assert b["AAPL"] == pytest.approx(4.0 / 23.0) and b["KO"] == pytest.approx(1.0 / 23.0)


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


def test_ledoit_wolf_asset_volatilities_match_sklearn(sp500_stocks):
    from sklearn.covariance import LedoitWolf

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
    assert view.assets.item(row, 1).data(Qt.EditRole) == 3.5
    assert view.assets.item(row, 0).checkState() == Qt.Unchecked


def test_hover_readout_names_the_asset(qtbot, view, router):
    router.set_preferred(BackendType.PYO3)
    assert run_and_wait(qtbot, view).ok
    i = list(view.result.asset_names).index("MSFT")
    text = view.readout(i)
    assert "MSFT" in text and f"weight {view.result.weights[i] * 100:.2f} %" in text
