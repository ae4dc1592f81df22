"""Regimes tab (offscreen): a fit on each backend draws exactly what a direct backend.run_hmm call
returns, the log-likelihood arrives live (one update per EM iteration), Cancel stops a long fit on
both backends, bad input shows the backend's message. With a DatasetStore: the active dataset's
assets and equal-weight index are the sources, store changes reload them and clear the result,
session items, CSV/JSON export that reproduces a run, settings round trip."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
from hft_lab.analysis import TaskContext
from hft_lab.backends import BackendConfig, BackendType
from hft_lab.backends.router import BackendRouter
from hft_lab.data import Dataset, regime_switching_returns
from hft_lab.data.export import read_result_csv, read_result_json, result_from_document
from hft_lab.data.store import DatasetStore
from hft_lab.ui.views.base import ExportError
from hft_lab.ui.views.regimes import (
    ACTIVE_EW,
    ACTIVE_MULTI,
    ACTIVE_PREFIX,
    EW_INDEX,
    SYNTHETIC,
    RegimesView,
    equal_weight_index,
    regime_colors,
    segments,
    synthetic_regime_returns,
)
from hft_lab.ui.worker import TaskRunner

pytestmark = pytest.mark.gui

BACKENDS = [BackendType.PYO3, BackendType.GRPC]


@pytest.fixture
def router(grpc_manager):
    port = int(grpc_manager.address.rsplit(":", 1)[1])
    r = BackendRouter(BackendConfig(grpc_host="127.0.0.1", grpc_port=port))
    yield r
    r.stop()


@pytest.fixture
def view(qtbot, router):
    v = RegimesView(TaskRunner(router))
    qtbot.addWidget(v)
    v.resize(1400, 900)
    v.show()
    return v


def run_and_wait(qtbot, view, timeout=60_000):
    with qtbot.waitSignal(view.result_shown, timeout=timeout) as blocker:
        assert view.run() is not None
    return blocker.args[0]


def prices_from(returns):
    return 100.0 * np.exp(np.r_[0.0, np.cumsum(returns)])


def test_synthetic_series_is_the_library_generator():
    for n, seed in ((1, 0), (2, 5), (2500, 0), (4000, 17)):
        a_r, a_s = regime_switching_returns(n, seed=seed)
        b_r, b_s = synthetic_regime_returns(n, seed=seed)
        np.testing.assert_array_equal(a_r, b_r)
        np.testing.assert_array_equal(a_s, b_s)


def test_segments_and_colours():
    s, e, st = segments(np.array([0, 0, 2, 2, 2, 1, 0, 0]))
    assert s.tolist() == [0, 2, 5, 6] and e.tolist() == [2, 5, 6, 8] and st.tolist() == [0, 2, 1, 0]
    c = regime_colors(3)
    assert c[0][0] > c[0][1] and c[-1][1] > c[-1][0]  # lowest mean red, highest green
    assert len(set(regime_colors(10))) == 10


@pytest.mark.parametrize("choice", BACKENDS)
def test_a_run_on_each_backend_draws_the_direct_result(qtbot, view, router, choice):
    router.set_preferred(choice)
    view.n_points.setValue(4000)
    view.data_seed.setValue(3)
    progress: list[tuple[int, float]] = []
    view.progress_shown.connect(lambda i, ll: progress.append((i, ll)))
    out = run_and_wait(qtbot, view)
    assert out.ok, out.value
    assert out.backend_name == router.backend(choice).name
    r = view.result
    direct = router.backend(choice).run_hmm(view.observations, **view.params())
    for f in (
        "means",
        "variances",
        "transition_matrix",
        "start_probabilities",
        "log_likelihood_history",
        "posteriors",
        "viterbi_path",
    ):
        np.testing.assert_array_equal(getattr(r, f), getattr(direct, f), err_msg=f)
    assert (r.log_likelihood, r.iterations, r.aic, r.bic) == (direct.log_likelihood, direct.iterations, direct.aic, direct.bic)
    k, t = r.n_states, len(view.observations)
    assert k == 3 and t == 4000

    # live progress: one update per EM iteration, the values of the final history
    assert len(progress) == r.iterations > 3
    assert [i for i, _ in progress] == list(range(1, r.iterations + 1))
    np.testing.assert_array_equal([ll for _, ll in progress], r.log_likelihood_history)

    # regime table: K rows, numbers of the fit
    rows = view.regime_table_rows()
    assert len(rows) == k
    header = [view.regime_table.horizontalHeaderItem(j).text() for j in range(view.regime_table.columnCount())]
    for i, row in enumerate(rows):
        cell = dict(zip(header, row))
        assert cell["regime"] == str(i + 1)
        assert float(cell["mean/bar"].rstrip("%")) / 100 == pytest.approx(r.means[i], abs=6e-6)
        assert float(cell["std/bar"].rstrip("%")) / 100 == pytest.approx(r.stds[i], abs=6e-6)
        assert float(cell["ann. vol"].rstrip("%")) / 100 == pytest.approx(r.stds[i] * np.sqrt(252), abs=1e-4)
        assert float(cell["duration"]) == pytest.approx(1 / (1 - r.transition_matrix[i, i]), rel=1e-3)
        share = np.mean(r.viterbi_path == i)
        assert float(cell["time"].rstrip("%")) / 100 == pytest.approx(share, abs=6e-4)

    # log-likelihood curve: one point per iteration
    x, y = view._ll_curve.getData()
    assert len(x) == r.iterations
    np.testing.assert_array_equal(y, r.log_likelihood_history)

    # Viterbi shading: one pixel per return, coloured by its regime
    assert view._shade is not None and view._shade in view.price_plot.getPlotItem().items
    img = view._shade.image
    assert img.shape[:2] == (1, t)
    colors = np.array(regime_colors(k), dtype=np.uint8)
    np.testing.assert_array_equal(img[0, :, :3], colors[r.viterbi_path])

    # stacked posteriors: every bin's probabilities add up to 1, the image is drawn
    edges, cum = view.posterior_columns(0, t, 100)
    np.testing.assert_allclose(cum[:, -1], 1.0, atol=1e-9)
    np.testing.assert_allclose(cum[0, 0], r.posteriors[edges[0] : edges[1], 0].mean(), rtol=1e-12)
    assert view._post_img.image is not None and view._post_img.image.shape[1] >= 1

    # transition heat map: the matrix and K*K labels
    hp = view.heat.getPlotItem()
    heat = [i for i in hp.items if type(i).__name__ == "ImageItem"][0]
    np.testing.assert_array_equal(heat.image, r.transition_matrix)
    labels = [i.toPlainText() for i in hp.items if type(i).__name__ == "TextItem"]
    assert len(labels) == k * k and labels[0] == f"{r.transition_matrix[0, 0]:.3f}"

    stats = view.stats.as_dict()
    assert stats["EM iterations"] == f"{r.iterations:,}"
    assert float(stats["log-likelihood"]) == pytest.approx(r.log_likelihood, rel=1e-5)
    assert float(stats["BIC"]) == pytest.approx(r.bic, rel=1e-5)
    assert stats["converged"] == ("yes" if r.converged else "no")
    assert "agrees with true regime" in stats
    assert view.status.text().startswith(f"Fitted on {router.backend(choice).name}")
    starts, ends, states = view.segments
    assert stats["regime switches (Viterbi)"] == f"{int(np.count_nonzero(np.diff(r.viterbi_path))):,}"
    np.testing.assert_array_equal(np.repeat(states, ends - starts), r.viterbi_path)
    j = len(starts) // 2  # hover over a bar inside a run: its regime and the run's bars
    text = view.readout(int(starts[j]) + 1)
    assert f"regime {states[j] + 1} (bars {starts[j] + 1:,}–{ends[j]:,})" in text and "P = [" in text


@pytest.mark.parametrize("choice", BACKENDS)
def test_cancel_mid_run(qtbot, view, router, choice, monkeypatch):
    router.set_preferred(choice)
    calls: list[tuple[int, bool]] = []  # (iteration, cancelled already) seen by the worker
    cancelled = threading.Event()
    original = TaskContext.progress

    def spy(self, payload):
        calls.append((payload[0], cancelled.is_set()))
        return original(self, payload)

    monkeypatch.setattr(TaskContext, "progress", spy)
    view.n_points.setValue(300_000)
    view.n_states.setValue(4)
    view.max_iterations.setValue(500)
    view.tolerance.setValue(0.0)
    shown: list[int] = []
    view.progress_shown.connect(lambda i, ll: shown.append(i))
    exited: list[int] = []  # task ids whose worker function has returned (also after a cancel)
    view.runner.exited.connect(exited.append)
    tid = view.run()
    assert view.cancel_button.isEnabled() and not view.run_button.isEnabled()
    qtbot.waitUntil(lambda: len(shown) >= 2, timeout=30_000)
    # the curve is drawn live while EM runs
    qtbot.waitUntil(
        lambda: len(view._ll_curve.getData()[0] if view._ll_curve.getData()[0] is not None else []) >= 1, timeout=5_000
    )
    assert "iteration" in view.status.text()
    cancelled.set()
    view.cancel_button.click()
    assert view.status.text() == "Cancelled."
    assert view.run_button.isEnabled() and not view.cancel_button.isEnabled()

    qtbot.waitUntil(lambda: tid in exited, timeout=30_000)  # the worker has returned
    after = [it for it, late in calls if late]
    assert len(after) <= 2, f"EM went on for {len(after)} iterations after Cancel"
    assert calls[-1][0] < 500
    qtbot.wait(200)  # a stale outcome or progress would arrive now
    assert view.result is None and view.status.text() == "Cancelled."
    assert view._shade is None

    # the view is usable again
    view.n_points.setValue(2000)
    view.n_states.setValue(2)
    view.tolerance.setValue(1e-6)
    out = run_and_wait(qtbot, view)
    assert out.ok and view.result is not None and view.result.n_states == 2
    assert len(view.regime_table_rows()) == 2


@pytest.mark.parametrize("choice", BACKENDS)
@pytest.mark.parametrize(
    "prices, n_states, message",
    [
        (prices_from(np.random.default_rng(4).normal(0, 0.01, 30)), 4, "n_states must be between 1 and 3"),
        (np.full(100, 5.0), 2, "observations have (near-)zero variance"),
    ],
)
def test_bad_input_shows_the_backend_message(qtbot, view, router, choice, prices, n_states, message):
    router.set_preferred(choice)
    view.set_prices(prices)
    view.n_states.setValue(n_states)
    out = run_and_wait(qtbot, view)
    assert not out.ok and not out.cancelled
    assert view.status.text().startswith(f"Error on {router.backend(choice).name}: ")
    assert message in view.status.text()
    assert view.n_states.value() == n_states  # the user's input is kept
    assert view.result is None and view.run_button.isEnabled()


def test_prices_that_have_no_log_returns_are_refused(qtbot, view):
    view.set_prices(np.array([100.0, 101.0, -1.0, 99.0]))
    assert "finite positive prices" in view.status.text() and "bar 2" in view.status.text()
    assert view.run() is None
    assert "No usable data" in view.status.text() and not view.runner.busy


def test_restarts_plot_the_best_run_and_count_all_iterations(qtbot, view, router):
    router.set_preferred(BackendType.PYO3)
    view.n_states.setValue(2)
    view.n_restarts.setValue(2)
    view.seed.setValue(9)
    shown: list[int] = []
    view.progress_shown.connect(lambda i, ll: shown.append(i))
    assert run_and_wait(qtbot, view).ok
    r = view.result
    assert len(shown) > r.iterations and shown == list(range(1, len(shown) + 1))
    assert len(view._ll_curve.getData()[0]) == r.iterations
    assert view.stats.as_dict()["EM iterations, all runs"] == f"{len(shown):,}"
    assert "best of 3 runs" in view.status.text()


def test_sample_index_with_dates_and_annualisation(qtbot, view, router):
    router.set_preferred(BackendType.PYO3)
    view.source.setCurrentText(EW_INDEX)
    assert len(view.prices) == 8313 and len(view.observations) == 8312
    assert view.readout(0).split("   ")[1] == "1990-01-02"
    view.n_states.setValue(2)
    assert run_and_wait(qtbot, view).ok
    r = view.result
    header = [view.regime_table.horizontalHeaderItem(j).text() for j in range(view.regime_table.columnCount())]
    assert "ann. mean" in header
    view.ann.setValue(0.0)  # off: the table is refilled without the annualised columns
    header = [view.regime_table.horizontalHeaderItem(j).text() for j in range(view.regime_table.columnCount())]
    assert "ann. mean" not in header and len(view.regime_table_rows()) == 2
    # calm regime (higher mean) has the smaller volatility on the real index
    assert r.stds[1] < r.stds[0]


# ---------------------------------------------------------------------------------------------
# the active dataset (DatasetStore)
# ---------------------------------------------------------------------------------------------

HMM_FIELDS = (
    "means",
    "variances",
    "transition_matrix",
    "start_probabilities",
    "log_likelihood_history",
    "posteriors",
    "viterbi_path",
)


def gbm_dataset(name="Test GBM", n=800, assets=("AAA", "BBB", "CCC"), seed=11, index=None):
    """Seeded geometric Brownian motions, business days from 2015 (or the given index)."""
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0003, 0.012, (n - 1, len(assets)))
    p = 100.0 * np.exp(np.vstack([np.zeros((1, len(assets))), np.cumsum(r, axis=0)]))
    idx = pd.bdate_range("2015-01-01", periods=n) if index is None else index
    return Dataset(name, pd.DataFrame(p, index=idx, columns=list(assets)))


@pytest.fixture
def store(qtbot):
    return DatasetStore(gbm_dataset())


@pytest.fixture
def sview(qtbot, router, store):
    v = RegimesView(TaskRunner(router), store)
    qtbot.addWidget(v)
    v.resize(1400, 900)
    v.show()
    return v


def entries(view):
    return [view.source.itemText(i) for i in range(view.source.count())]


def assert_same_hmm(a, b):
    for f in HMM_FIELDS:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    assert (a.log_likelihood, a.iterations, a.bic) == (b.log_likelihood, b.iterations, b.bic)


def test_store_assets_are_the_sources(sview, store):
    assert entries(sview) == [SYNTHETIC, ACTIVE_EW, ACTIVE_MULTI] + [ACTIVE_PREFIX + a for a in ("AAA", "BBB", "CCC")]
    assert not any(e.startswith("S&P 500") for e in entries(sview))
    assert sview.source.currentText() == SYNTHETIC and not sview.dataset_label.isVisible()
    sview.source.setCurrentText(ACTIVE_PREFIX + "BBB")
    assert sview.dataset_label.isVisible() and sview.dataset_label.text() == store.describe()
    assert not sview.n_points.isEnabled()
    # a one-asset selection has no equal-weight index
    store.set_selection(assets=["CCC"])
    assert entries(sview) == [SYNTHETIC, ACTIVE_PREFIX + "CCC"]


@pytest.mark.parametrize("choice", BACKENDS)
def test_a_run_on_an_active_asset_uses_the_store_prices(qtbot, sview, router, store, choice):
    router.set_preferred(choice)
    store.set_selection(start="2015-06-01")
    sview.source.setCurrentText(ACTIVE_PREFIX + "BBB")
    px = store.selected_prices()["BBB"]
    assert len(px) < 800 and px.index[0] == pd.Timestamp("2015-06-01")
    np.testing.assert_array_equal(sview.prices, px.to_numpy())
    obs = np.diff(np.log(px.to_numpy()))
    np.testing.assert_array_equal(sview.observations, obs)
    assert sview.readout(0).split("   ")[1] == "2015-06-01"
    sview.n_states.setValue(2)
    out = run_and_wait(qtbot, sview)
    assert out.ok, out.value
    direct = router.backend(choice).run_hmm(obs, **sview.params())
    assert_same_hmm(sview.result, direct)
    assert len(sview.result.viterbi_path) == len(px) - 1


def test_the_equal_weight_index_of_the_active_dataset(qtbot, sview, router, store):
    router.set_preferred(BackendType.PYO3)
    sview.source.setCurrentText(ACTIVE_EW)
    df = store.selected_prices()
    simple = df.pct_change().iloc[1:].mean(axis=1).to_numpy()
    np.testing.assert_allclose(sview.prices, 100.0 * np.r_[1.0, np.cumprod(1.0 + simple)], rtol=1e-13)
    assert len(sview.prices) == 800 and "equal-weight index of 3 assets" in sview.status.text()
    sview.n_states.setValue(2)
    assert run_and_wait(qtbot, sview).ok
    direct = router.pyo3.run_hmm(np.diff(np.log(sview.prices)), **sview.params())
    assert_same_hmm(sview.result, direct)
    # missing prices: skipped in the mean; a bar where no asset has a return is left out
    gap = df.copy()
    gap.iloc[10, 0] = np.nan
    gap.iloc[20:22, :] = np.nan
    levels, labels, left_out = equal_weight_index(gap)
    # rows 20, 21 and 22 have no return (p20/p19, p21/p20 and p22/p21 all need a missing price)
    assert left_out == 3 and len(levels) == len(labels) == 797 and labels[20] == df.index[23]
    assert levels[11] == pytest.approx(levels[10] * (1 + np.mean(gap.iloc[11, 1:] / gap.iloc[10, 1:] - 1)), rel=1e-13)


def test_non_positive_active_prices_are_refused(qtbot, sview, store):
    df = gbm_dataset().prices
    df.iloc[5, 2] = 0.0
    store.set_dataset(Dataset("with a zero", df))
    sview.source.setCurrentText(ACTIVE_PREFIX + "CCC")
    assert "finite positive prices" in sview.status.text() and "bar 5" in sview.status.text()
    assert sview.run() is None and "No usable data" in sview.status.text()
    sview.source.setCurrentText(ACTIVE_EW)
    text = sview.status.text()
    assert text.startswith("Cannot use the equal-weight index") and "CCC is 0 at 2015-01-08" in text
    assert sview.prices is None and sview.run() is None and not sview.runner.busy
    sview.source.setCurrentText(ACTIVE_PREFIX + "AAA")  # a good series is usable again
    assert sview.observations is not None and len(sview.observations) == 799


def test_store_changes_refresh_the_entries_and_clear_the_result(qtbot, sview, router, store):
    router.set_preferred(BackendType.PYO3)
    sview.source.setCurrentText(ACTIVE_PREFIX + "BBB")
    sview.n_states.setValue(2)
    assert run_and_wait(qtbot, sview).ok
    assert sview.export_json_button.isEnabled() and len(sview.session_items()) == 1
    # a selection that keeps BBB: reloaded, result cleared, nothing recomputed
    store.set_selection(start="2016-01-01")
    assert sview.source.currentText() == ACTIVE_PREFIX + "BBB" and sview.result is None
    assert len(sview.prices) == len(store.selected_prices())
    text = sview.status.text()
    assert text.startswith("Active dataset selection changed; the previous result was cleared") and "log returns" in text
    assert not sview.runner.busy and sview._shade is None and not sview.export_json_button.isEnabled()
    assert sview.session_items() == []
    # another dataset without BBB: its first entry, new asset list
    assert run_and_wait(qtbot, sview).ok
    other = gbm_dataset("Other", n=300, assets=("X1", "X2"), seed=5)
    store.set_dataset(other)
    assert entries(sview) == [SYNTHETIC, ACTIVE_EW, ACTIVE_MULTI, ACTIVE_PREFIX + "X1", ACTIVE_PREFIX + "X2"]
    assert sview.source.currentText() == ACTIVE_EW and len(sview.prices) == 300
    assert sview.status.text().startswith("Active dataset replaced (BBB is not in it: now equal-weight index)")
    assert sview.result is None and not sview.runner.busy
    assert sview.dataset_label.text() == store.describe() == other.describe()


def test_store_changes_leave_a_synthetic_result_alone(qtbot, sview, router, store):
    router.set_preferred(BackendType.PYO3)
    sview.n_points.setValue(1500)
    assert run_and_wait(qtbot, sview).ok
    r, status = sview.result, sview.status.text()
    store.set_dataset(gbm_dataset("Other", assets=("Q",)))
    assert entries(sview) == [SYNTHETIC, ACTIVE_PREFIX + "Q"]
    assert sview.result is r and sview.status.text() == status and sview.source.currentText() == SYNTHETIC


def test_a_store_change_during_a_fit_cancels_it(qtbot, sview, router, store):
    router.set_preferred(BackendType.PYO3)
    big = gbm_dataset("Big", n=200_000, assets=("AAA",), index=pd.RangeIndex(200_000))
    store.set_dataset(big)
    sview.source.setCurrentText(ACTIVE_PREFIX + "AAA")
    sview.n_states.setValue(4)
    sview.tolerance.setValue(0.0)
    sview.max_iterations.setValue(100_000)
    assert sview.run() is not None and sview.runner.busy
    store.set_selection(start=0, end=999)
    assert not sview.runner.busy and sview.result is None and len(sview.prices) == 1000
    assert "the running fit was cancelled" in sview.status.text()
    qtbot.wait(300)  # the cancelled fit's outcome must not arrive
    assert sview.result is None and sview.run_button.isEnabled()


def test_session_items_and_exports_reproduce_the_run(qtbot, sview, router, store, tmp_path):
    router.set_preferred(BackendType.GRPC)
    assert sview.session_items() == []
    with pytest.raises(ExportError, match="no result"):
        sview.export_json(tmp_path / "none.json")
    sview.source.setCurrentText(ACTIVE_PREFIX + "CCC")
    sview.n_states.setValue(2)
    sview.n_restarts.setValue(1)
    sview.seed.setValue(4)
    out = run_and_wait(qtbot, sview)
    assert out.ok
    sview.n_states.setValue(3)  # changed after the run: the export keeps the run's parameters
    (item,) = sview.session_items()
    assert item.name == "regimes" and item.result is sview.result and item.backend == out.backend_name
    assert item.parameters == dict(n_states=2, max_iterations=1000, tolerance=1e-6, n_restarts=1, seed=4)
    assert item.inputs["name"] == "Test GBM" and item.inputs["series"] == "CCC" and item.inputs["rows"] == 800
    assert item.inputs["sha256"] == store.inputs()["sha256"]
    assert set(item.plots) == {"price", "posteriors", "log_likelihood"}
    assert list(item.index[:2]) == list(store.selected_prices().index[1:3])

    path = sview.export_json(tmp_path / "regimes.json")
    doc = read_result_json(path)
    assert doc["result_type"] == "HmmResult" and doc["backend"] == "gRPC (Rust server)"
    back = result_from_document(doc)
    assert_same_hmm(back, sview.result)
    # the JSON alone reproduces the run: its prices, its series, its parameters
    cols = doc["inputs"]["prices"]["columns"]
    prices = np.asarray(cols[doc["inputs"]["series"]], dtype=np.float64)
    assert doc["inputs"]["observations"].startswith("log returns")
    again = router.pyo3.run_hmm(np.diff(np.log(prices)), **doc["parameters"])
    assert_same_hmm(again, sview.result)

    files = sview.export_csv(tmp_path / "regimes.csv")
    assert files[0].name == "regimes.csv" and {p.name for p in files} == {
        "regimes.csv",
        "regimes.summary.csv",
        "regimes.means.csv",
        "regimes.log_likelihood_history.csv",
    }
    table = read_result_csv(tmp_path / "regimes.csv")
    np.testing.assert_array_equal(table["viterbi_path"], sview.result.viterbi_path)
    np.testing.assert_array_equal(table["posteriors"], sview.result.posteriors)
    assert table["__index__"][0] == store.selected_prices().index[1]
    assert table["log_likelihood"] == sview.result.log_likelihood

    from hft_lab.data.export import export_session

    idx = export_session(tmp_path / "session", sview.session_items(), plot_format="svg")
    names = {f.name for f in idx.parent.iterdir()}
    assert {"regimes.json", "regimes.csv", "regimes.price.svg", "regimes.posteriors.svg", "regimes.log_likelihood.svg"} <= names
    assert read_result_csv(idx.parent / "regimes.csv")["__index__"][0] == store.selected_prices().index[1]

    # synthetic: the generator and its seed instead of a dataset
    sview.source.setCurrentText(SYNTHETIC)
    sview.n_points.setValue(500)
    sview.data_seed.setValue(8)
    assert run_and_wait(qtbot, sview).ok
    inp = sview.session_items()[0].inputs
    assert (inp["generator"], inp["n"], inp["seed"]) == ("hft_lab.data.regime_switching_returns", 500, 8)
    r, _ = synthetic_regime_returns(inp["n"], seed=inp["seed"])
    np.testing.assert_allclose(sview.observations, r, atol=1e-12)


def test_settings_widgets_round_trip(qtbot, router, store, tmp_path):
    from hft_lab.ui.settings import restore_widgets, save_widgets
    from PySide6.QtCore import QSettings

    a = RegimesView(TaskRunner(router), store)
    qtbot.addWidget(a)
    ws = a.settings_widgets()
    assert set(ws) == {
        "n_states",
        "max_iterations",
        "tolerance",
        "n_restarts",
        "seed",
        "annualization",
        "log_scale",
        "feature_returns",
        "feature_abs_returns",
        "feature_rolling_vol",
        "vol_window",
        "covariance_type",
        "show_filtered",
        "wf_formation",
        "wf_step",
        "replay_speed",
    }
    assert a.source not in ws.values() and a.n_points not in ws.values()
    a.n_states.setValue(5)
    a.max_iterations.setValue(321)
    a.tolerance.setValue(2.5e-9)
    a.n_restarts.setValue(3)
    a.seed.setValue(77)
    a.ann.setValue(52.0)
    a.log_scale.setChecked(False)
    a.feature_boxes["abs_returns"].setChecked(True)
    a.vol_window.setValue(33)
    a.covariance.setCurrentIndex(a.covariance.findData("diag"))
    a.show_filtered.setChecked(True)
    a.wf_formation.setValue(444)
    a.wf_step.setValue(55)
    a.replay_speed.setValue(1234)
    path = str(tmp_path / "s.ini")
    save_widgets(QSettings(path, QSettings.Format.IniFormat), "tabs/regimes", a.settings_widgets())
    b = RegimesView(TaskRunner(router), store)
    qtbot.addWidget(b)
    assert b.params() != a.params()
    done = restore_widgets(QSettings(path, QSettings.Format.IniFormat), "tabs/regimes", b.settings_widgets())
    assert sorted(done) == sorted(ws)
    assert b.params() == a.params() and b.tolerance.value() == 2.5e-9
    assert b.ann.value() == 52.0 and not b.log_scale.isChecked()
    assert b.feature_kinds() == ["returns", "abs_returns"] and b.vol_window.value() == 33
    assert b.covariance.currentData() == "diag" and b.show_filtered.isChecked() and not b.show_smoothed.isChecked()
    assert (b.wf_formation.value(), b.wf_step.value(), b.replay_speed.value()) == (444, 55, 1234)


def test_intraday_bars_show_times(qtbot, sview, store):
    idx = pd.date_range("2021-03-01 09:30", periods=800, freq="min")
    store.set_dataset(gbm_dataset("Minutes", index=idx))
    sview.source.setCurrentText(ACTIVE_PREFIX + "AAA")
    assert sview.readout(1).split("   ")[1] == "2021-03-01 09:31:00"
    assert "2021-03-01 09:30:00 … 2021-03-01 22:49:00" in sview.status.text()
    assert sview.axis.intraday and sview.axis.bar_days == pytest.approx(1 / 1440)
    assert sview.axis.tickStrings([0, 60], 1.0, 60) == ["03-01 09:30", "03-01 10:30"]
