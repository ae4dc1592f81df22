"""Regimes tab, driven like a user (offscreen): several features of several assets of the 20-stock
sample fit by run_hmm_mv, the smoothed/filtered toggle, the walk-forward run, the live filter replay
(Start, Stop) and the exports, each compared with a direct backend call on both backends."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hft_lab.analysis.regimes import build_features
from hft_lab.backends import BackendConfig, BackendType
from hft_lab.backends.router import BackendRouter
from hft_lab.data import load_sample_prices
from hft_lab.data.export import export_session, read_result_csv, read_result_json, result_from_document
from hft_lab.data.store import DatasetStore
from hft_lab.ui.views.regimes import ACTIVE_MULTI, RegimesView, regime_colors
from hft_lab.ui.worker import TaskRunner
from PySide6.QtCore import Qt

pytestmark = pytest.mark.gui

BACKENDS = [BackendType.PYO3, BackendType.GRPC]
ASSETS = ["AAPL", "JPM", "XOM"]
MV_FIELDS = ("means", "covars", "transition_matrix", "start_probabilities", "posteriors", "filtered", "viterbi_path")


@pytest.fixture
def router(grpc_manager):
    port = int(grpc_manager.address.rsplit(":", 1)[1])
    r = BackendRouter(BackendConfig(grpc_host="127.0.0.1", grpc_port=port))
    yield r
    r.stop()


@pytest.fixture
def store(qtbot):
    s = DatasetStore(load_sample_prices())
    s.set_selection(start="2019-01-01")  # ~1000 days of the 20-stock sample
    return s


@pytest.fixture
def view(qtbot, router, store):
    v = RegimesView(TaskRunner(router), store)
    qtbot.addWidget(v)
    v.resize(1500, 1000)
    v.show()
    return v


def click(qtbot, button):
    """A left click where the user would: on a check box or radio button, its indicator (the centre
    of a wide one is empty space)."""
    from PySide6.QtCore import QPoint
    from PySide6.QtWidgets import QCheckBox, QRadioButton

    pos = QPoint(8, button.height() // 2) if isinstance(button, (QCheckBox, QRadioButton)) else button.rect().center()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton, pos=pos)


def expected_features(store, assets, kinds, window=20):
    """The observations built here from the store's prices, independently of the view."""
    px = store.selected_prices()[assets].dropna()
    r = np.diff(np.log(px.to_numpy(dtype=np.float64)), axis=0)
    cols = []
    if "returns" in kinds:
        cols.append(r)
    if "abs_returns" in kinds:
        cols.append(np.abs(r))
    if "rolling_vol" in kinds:
        cols.append(pd.DataFrame(r).rolling(window).std().to_numpy())
    x = np.hstack(cols)
    return x[~np.isnan(x).any(axis=1)], px.index


def fit_like_a_user(qtbot, view, assets, covariance="diag"):
    view.source.setCurrentText(ACTIVE_MULTI)
    view.set_checked_assets(assets)
    click(qtbot, view.feature_boxes["abs_returns"])
    view.covariance.setCurrentIndex(view.covariance.findData(covariance))
    view.n_states.setValue(2)
    view.max_iterations.setValue(200)
    click(qtbot, view.run_button)
    qtbot.waitUntil(lambda: view.result is not None and not view.running, timeout=60_000)


@pytest.mark.parametrize("choice", BACKENDS)
def test_features_filtered_walk_forward_and_live_match_the_backend(qtbot, view, router, store, choice):
    router.set_preferred(choice)
    b = router.backend(choice)
    fit_like_a_user(qtbot, view, ASSETS)
    x, dates = expected_features(store, ASSETS, ("returns", "abs_returns"))
    assert view.checked_assets() == ASSETS and view.result_features == [
        *(f"{a} r" for a in ASSETS),
        *(f"{a} |r|" for a in ASSETS),
    ]
    np.testing.assert_array_equal(view.result_x, x)
    r = view.result
    direct = b.run_hmm_mv(x, n_states=2, covariance_type="diag", max_iterations=200, tolerance=1e-6, n_restarts=0, seed=0)
    for f in MV_FIELDS:
        np.testing.assert_array_equal(getattr(r, f), getattr(direct, f), err_msg=f)
    assert (r.log_likelihood, r.aic, r.bic, r.n_parameters) == (
        direct.log_likelihood,
        direct.aic,
        direct.bic,
        direct.n_parameters,
    )
    assert r.covariance_type == "diag" and r.n_features == 6
    stats = view.stats.as_dict()
    assert float(stats["AIC"]) == pytest.approx(r.aic, rel=1e-5) and float(stats["BIC"]) == pytest.approx(r.bic, rel=1e-5)
    assert float(stats["log-likelihood"]) == pytest.approx(r.log_likelihood, rel=1e-5)
    assert f"AIC {r.aic:,.2f}, BIC {r.bic:,.2f}" in view.status.text() and b.name in view.status.text()
    assert list(view.result_index()) == list(dates[1:])
    header = [view.regime_table.horizontalHeaderItem(j).text() for j in range(view.regime_table.columnCount())]
    assert "mean AAPL r" in header and "std XOM |r|" in header and len(view.regime_table_rows()) == 2

    # filtered: what was knowable at the time, equal to the batch filter; the differing bars are counted
    click(qtbot, view.show_filtered)
    filt = b.hmm_filter(r.model, x).filtered
    np.testing.assert_array_equal(view.shown_probs(), filt)
    differ = filt.argmax(axis=1) != r.posteriors.argmax(axis=1)
    assert 0 < differ.sum() < len(x)
    assert f"differs from the smoothed one on {int(differ.sum()):,} of {len(x):,} bars" in view.diff_label.text()
    assert view.stats.as_dict()["filtered ≠ smoothed regime (bars)"].startswith(f"{int(differ.sum()):,} (")
    colors = np.array(regime_colors(2), dtype=np.uint8)
    np.testing.assert_array_equal(view._shade.image[0, :, :3], colors[filt.argmax(axis=1)])
    np.testing.assert_array_equal(view._diff_img.image[0, :, 3] > 0, differ)
    assert "knowable at the time" in view.post_plot.getPlotItem().titleLabel.text
    click(qtbot, view.show_smoothed)
    np.testing.assert_array_equal(view.shown_probs(), r.posteriors)
    np.testing.assert_array_equal(view._shade.image[0, :, :3], colors[r.viterbi_path])

    # live replay on the same backend: Stop halfway keeps a prefix of the batch filter
    view.replay_speed.setValue(400)
    click(qtbot, view.replay_start)
    assert view.replaying and not view.run_button.isEnabled() and view.replay_stop.isEnabled()
    qtbot.waitUntil(lambda: view.live_probs is not None and len(view.live_probs) >= 20, timeout=10_000)
    click(qtbot, view.replay_stop)
    assert view.replay_state == "stopped" and not view.replaying and view.run_button.isEnabled()
    n = len(view.live_probs)
    assert 20 <= n < len(x) and view.replay_label.text().startswith(f"Stopped at tick {n:,} of {len(x):,}")
    np.testing.assert_array_equal(view.live_probs, filt[:n])
    qtbot.wait(150)
    assert len(view.live_probs) == n  # nothing arrives after Stop
    # ... and a full replay is the batch filter, bit for bit
    view.replay_speed.setValue(10_000_000)
    click(qtbot, view.replay_start)
    qtbot.waitUntil(lambda: view.replay_state == "finished", timeout=20_000)
    np.testing.assert_array_equal(view.live_probs, filt)
    assert "identical to the batch filtered probabilities" in view.replay_label.text() and b.name in view.replay_label.text()

    # walk-forward: the stitched out-of-sample path is backend.hmm_walk_forward's
    view.wf_formation.setValue(600)
    view.wf_step.setValue(300)
    click(qtbot, view.wf_button)
    qtbot.waitUntil(lambda: view.wf_result is not None and not view.running, timeout=60_000)
    w = view.wf_result
    dw = b.hmm_walk_forward(
        x, formation=600, step=300, n_states=2, covariance_type="diag", max_iterations=200, tolerance=1e-6, n_restarts=0, seed=0
    )
    for f in ("filtered", "regimes", "window_starts", "window_log_likelihoods", "window_means", "window_covars"):
        np.testing.assert_array_equal(getattr(w, f), getattr(dw, f), err_msg=f)
    assert view.view_tabs.currentIndex() == 1
    agree = np.mean(r.viterbi_path[dw.start_index :] == dw.regimes)
    assert f"is the same on {agree:.1%} of these rows" in view.wf_label.text()
    rows = view.wf_table_rows()
    assert len(rows) == len(dw.window_starts) >= 2
    first_oos = dates[1 + 600]
    assert rows[0][2].startswith(f"{first_oos:%Y-%m-%d} … ") and rows[0][4] == "300"
    assert float(rows[1][3]) == pytest.approx(dw.window_log_likelihoods[1], rel=1e-6)
    assert view.walk_index()[0] == first_oos and len(view.walk_index()) == len(dw.regimes)
    np.testing.assert_array_equal(view._wf_shade.image[0, :, :3], colors[dw.regimes])


def test_rolling_volatility_feature_and_exports_read_back(qtbot, view, router, store, tmp_path):
    router.set_preferred(BackendType.PYO3)
    view.source.setCurrentText("Active dataset: JPM")
    click(qtbot, view.feature_boxes["rolling_vol"])
    view.vol_window.setValue(10)
    view.n_states.setValue(2)
    view.covariance.setCurrentIndex(view.covariance.findData("full"))
    click(qtbot, view.run_button)
    qtbot.waitUntil(lambda: view.result is not None and not view.running, timeout=60_000)
    x, dates = expected_features(store, ["JPM"], ("returns", "rolling_vol"), window=10)
    np.testing.assert_allclose(view.result_x, x, rtol=1e-12, atol=1e-15)
    bx, names, offset = build_features(np.diff(np.log(view.prices)), [""], ["returns", "rolling_vol"], 10)
    assert names == ["r", "vol10"] and offset == 9 and view.result_offset == 9
    # row 0 is the return that ends on the 10th return's date: index and shading start there
    assert view.result_index()[0] == dates[10] and len(view.result_index()) == len(x)
    assert view._shade.mapRectToParent(view._shade.boundingRect()).left() == pytest.approx(9.5)
    r = view.result
    assert r.covariance_type == "full" and r.n_features == 2
    view.wf_formation.setValue(500)
    view.wf_step.setValue(400)
    click(qtbot, view.wf_button)
    qtbot.waitUntil(lambda: view.wf_result is not None and not view.running, timeout=60_000)

    (fit, wf) = view.session_items()
    assert fit.parameters["covariance_type"] == "full" and wf.parameters["formation"] == 500
    assert "vol10" in fit.inputs["observations"] and "rolling volatility" in fit.inputs["observations"]
    # CSV (the tab's Export CSV): one row per fitted return, smoothed and filtered probabilities, dated
    files = view.export_csv(tmp_path / "regimes.csv")
    table = read_result_csv(files[0])
    np.testing.assert_array_equal(table["filtered"], r.filtered)
    np.testing.assert_array_equal(table["posteriors"], r.posteriors)
    assert table["__index__"][0] == dates[10]
    # a session (File > Export session): both items as JSON + CSV, their charts as PNG
    idx = export_session(tmp_path / "s", view.session_items(), plot_format="png")
    names = {p.name for p in idx.parent.iterdir()}
    assert {"regimes.posteriors.png", "regimes_walk_forward.json", "regimes_walk_forward.probabilities.png"} <= names
    assert (idx.parent / "regimes_walk_forward.price.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = read_result_json(idx.parent / "regimes.json")
    assert doc["result_type"] == "HmmMvResult"
    back = result_from_document(doc)
    for f in MV_FIELDS:
        np.testing.assert_array_equal(getattr(back, f), getattr(r, f), err_msg=f)
    wf_back = result_from_document(read_result_json(idx.parent / "regimes_walk_forward.json"))
    np.testing.assert_array_equal(wf_back.filtered, view.wf_result.filtered)
    wf_table = read_result_csv(idx.parent / "regimes_walk_forward.csv")
    np.testing.assert_array_equal(wf_table["regimes"], view.wf_result.regimes)
    assert wf_table["__index__"][0] == view.walk_index()[0]
    # a chart as SVG (the plot's Export SVG)
    svg = view.wf_prob_plot.export(tmp_path / "wf.svg")
    assert svg.read_text(encoding="utf-8").lstrip().startswith("<?xml") and "<svg" in svg.read_text(encoding="utf-8")

    # no feature chosen: Run says why and nothing starts
    for box in view.feature_boxes.values():
        box.setChecked(False)
    assert view.run() is None and "choose at least one feature" in view.status.text() and not view.runner.busy


def test_a_constant_asset_with_the_volatility_feature_gives_the_fit_s_clear_error(qtbot, router, tmp_path):
    """A price that never moves (a halted or stale ticker) with the rolling-volatility feature: the
    feature is 0 (a flat window), not the mean-reversion core's "prices is constant", and the
    status line says why there are no regimes to fit."""
    from hft_lab.data.samples import Dataset

    px = load_sample_prices().prices.loc["2019-01-01":, ["AAPL", "JPM"]].copy()
    px["FLAT"] = 50.0
    s = DatasetStore(Dataset("with a flat asset", px))
    v = RegimesView(TaskRunner(router), s)
    qtbot.addWidget(v)
    v.resize(1500, 1000)
    v.show()
    router.set_preferred(BackendType.PYO3)
    v.source.setCurrentText("Active dataset: FLAT")
    click(qtbot, v.feature_boxes["rolling_vol"])
    v.n_states.setValue(2)
    click(qtbot, v.run_button)
    qtbot.waitUntil(lambda: not v.running and v.status.text() != "", timeout=60_000)
    qtbot.waitUntil(lambda: "variance" in v.status.text(), timeout=10_000)
    assert v.result is None
    assert "prices is constant" not in v.status.text()
    v.grab().save(str(tmp_path / "regimes_flat.png"))
