"""Regimes tab (offscreen): a fit on each backend draws exactly what a direct backend.run_hmm call
returns, the log-likelihood arrives live (one update per EM iteration), Cancel stops a long fit on
both backends, bad input shows the backend's message."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from hft_lab.backends import BackendConfig, BackendType
from hft_lab.backends.router import BackendRouter
from hft_lab.data import regime_switching_returns
from hft_lab.ui.views import regimes
from hft_lab.ui.views.regimes import EW_INDEX, RegimesView, regime_colors, segments, synthetic_regime_returns
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
    for f in ("means", "variances", "transition_matrix", "start_probabilities", "log_likelihood_history",
              "posteriors", "viterbi_path"):
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
    np.testing.assert_allclose(cum[0, 0], r.posteriors[edges[0]:edges[1], 0].mean(), rtol=1e-12)
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
    original = regimes._ProgressReporter.__call__

    def spy(self, it, ll):
        calls.append((it, cancelled.is_set()))
        return original(self, it, ll)

    monkeypatch.setattr(regimes._ProgressReporter, "__call__", spy)
    view.n_points.setValue(300_000)
    view.n_states.setValue(4)
    view.max_iterations.setValue(500)
    view.tolerance.setValue(0.0)
    shown: list[int] = []
    view.progress_shown.connect(lambda i, ll: shown.append(i))
    tid = view.run()
    assert view.cancel_button.isEnabled() and not view.run_button.isEnabled()
    qtbot.waitUntil(lambda: len(shown) >= 2, timeout=30_000)
    # the curve is drawn live while EM runs
    qtbot.waitUntil(lambda: len(view._ll_curve.getData()[0] if view._ll_curve.getData()[0] is not None else []) >= 1, timeout=5_000)
    assert "iteration" in view.status.text()
    cancelled.set()
    view.cancel_button.click()
    assert view.status.text() == "Cancelled."
    assert view.run_button.isEnabled() and not view.cancel_button.isEnabled()

    worker = [th for th in threading.enumerate() if th.name == f"task-fit_regimes-{tid}"]
    qtbot.waitUntil(lambda: not any(th.is_alive() for th in worker), timeout=30_000)
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
        (np.full(100, 5.0), 2, "observations are constant"),
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
