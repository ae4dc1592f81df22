"""Start-up (issue 16), checked by what is loaded and built, never by timing: the window comes up
without grpc, the CSV importer, the benchmark runner or the other tabs' modules; each tab is
built the first time it is shown (or used), in place, and then behaves as an eagerly built one;
grpcd starts beside the window and a call that wants gRPC waits for it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hft_lab.backends import BackendConfig, BackendType
from hft_lab.backends.router import BackendRouter
from hft_lab.ui.lazy_tabs import LazyTabs
from hft_lab.ui.main_window import MainWindow
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication, QLabel, QTabWidget

pytestmark = pytest.mark.gui

LABELS = ["Mean Reversion", "Regimes", "Portfolio", "Sparse Portfolio", "Sweep", "Scan", "Benchmark"]

# A fresh interpreter opens the window as the app does (offscreen, a router whose grpcd is not
# started), then lists what was imported; then shows the Benchmark tab and lists again.
CHILD = r"""
import json, os, sys
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication
from hft_lab.backends import BackendConfig
from hft_lab.backends.router import BackendRouter
import hft_lab.ui.main_window as mw
watched = sys.argv[1].split(",")
out = {"import": [m for m in watched if m in sys.modules]}
app = QApplication([])
w = mw.MainWindow(BackendRouter(BackendConfig()), QSettings(sys.argv[2], QSettings.Format.IniFormat))
w.show()
app.processEvents()
out["shown"] = [m for m in watched if m in sys.modules]
out["current"] = type(w.tabs.currentWidget()).__name__
out["built"] = [k for k in w.lazy_tabs.keys() if w.lazy_tabs.is_built(k)]
mr = w.mean_reversion  # the first tab shows the sample's first asset, with its dates
out["series"] = [w.store.dataset.name, mr.source.currentText(), len(mr.prices), str(mr.dates[0]), str(mr.dates[-1])]
out["status"] = w.dataset_label.text()
w.tabs.setCurrentIndex(w.tabs.count() - 1)
app.processEvents()
out["after"] = [m for m in watched if m in sys.modules]
out["current_after"] = type(w.tabs.currentWidget()).__name__
# fast_import: pyqtgraph's Qt mirrors are lazy (most PySide6 classes never created), yet complete
import PySide6.QtWidgets as qw, pyqtgraph as pg, inspect
out["qt_created"] = [len(qw.__dict__), len(dir(qw))]
out["mirror"] = pg.QtWidgets.QWizard is qw.QWizard and pg.Qt.QtWidgets is pg.QtWidgets and "QWizard" in dir(pg.QtWidgets)
from PySide6.support import feature
import math, json as json_mod, hft_lab.ui.main_window as mwm
def original(m):  # PySide6's own check (shibokensupport/feature.py)
    try:
        return "PySide6" in inspect.getsource(m)
    except (TypeError, OSError, SyntaxError):
        return False
out["feature"] = [(feature._mod_uses_pyside(m), original(m)) for m in (mwm, json_mod, math, qw)]
print("RESULT " + json.dumps(out), flush=True)
os._exit(0)
"""

NOT_AT_START = [
    "pandas",  # the first tab's sample is read from its pre-parsed arrays (data/samples.py)
    "grpc",
    "hft_lab.backends.grpc_backend",
    "hft_lab.data.csv_import",
    "hft_lab.ui.import_dialog",
    "hft_lab.bench.runner",
    "hft_lab.ui.views.benchmark",
    "hft_lab.ui.views.regimes",
    "hft_lab.ui.views.portfolio",
    "hft_lab.ui.views.sparse",
    "hft_lab.ui.views.sweep",
    "hft_lab.ui.views.scan",
    "hft_lab.cluster",
    "pyqtgraph.exporters",
]


def test_the_window_opens_without_the_heavy_modules_and_builds_a_tab_when_shown(tmp_path):
    p = subprocess.run(
        [sys.executable, "-c", CHILD, ",".join(NOT_AT_START + ["hft_lab.ui.views.mean_reversion"]), str(tmp_path / "s.ini")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line is not None, p.stderr[-3000:]
    out = json.loads(line[len("RESULT ") :])
    assert out["import"] == [], out  # importing the window's module loads none of them
    assert out["shown"] == ["hft_lab.ui.views.mean_reversion"], out  # the shown window: only its first tab
    assert out["current"] == "MeanReversionView" and out["built"] == ["mean_reversion"]
    name, source, n, first, last = out["series"]
    assert name == "S&P 500 sample (20 stocks)" and source == "Active dataset: AAPL" and n == 8313
    assert first.startswith("1990-01-02") and last.startswith("2022-12-28")
    assert out["status"] == "S&P 500 sample (20 stocks): 20 assets, 8,313 rows, 1990-01-02 … 2022-12-28"
    # showing the Benchmark tab builds it (and only then imports the runner)
    assert out["current_after"] == "BenchmarkView"
    assert {"hft_lab.ui.views.benchmark", "hft_lab.bench.runner"} <= set(out["after"])
    assert "grpc" not in out["after"] and "hft_lab.ui.views.portfolio" not in out["after"]
    # the fast imports (hft_lab.ui.fast_import) give what the plain ones give
    created, listed = out["qt_created"]
    assert created < 0.8 * listed, out["qt_created"]  # not every Qt class was created (plain: all)
    assert out["mirror"] is True
    assert out["feature"] == [[True, True], [False, False], [False, False], [False, False]]


@pytest.fixture
def router():
    r = BackendRouter(BackendConfig(backend_type=BackendType.PYO3, grpc_host="127.0.0.1", grpc_port=1))
    yield r
    r.stop()


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


def test_tabs_are_built_on_first_show_in_place(qtbot, router, settings):
    w = MainWindow(router, settings)
    qtbot.addWidget(w)
    w.show()
    assert [w.tabs.tabText(i) for i in range(w.tabs.count())] == LABELS
    assert w.lazy_tabs.built() == {"mean_reversion": w.tabs.widget(0)}  # only the current tab
    changes: list[int] = []
    w.tabs.currentChanged.connect(changes.append)
    w.tabs.setCurrentIndex(2)  # the user clicks "Portfolio"
    pv = w.tabs.currentWidget()
    assert type(pv).__name__ == "PortfolioView" and w.lazy_tabs.is_built("portfolio")
    assert w.portfolio is pv and w.tabs.indexOf(pv) == 2 and w.tabs.tabText(2) == "Portfolio"
    assert changes == [2]  # one change, none from swapping the placeholder out
    assert not w.lazy_tabs.is_built("regimes") and not w.lazy_tabs.is_built("sweep")
    # asking for a tab in code builds it where it belongs, without switching to it
    sv = w.sweep
    assert w.tabs.indexOf(sv) == 4 and w.tabs.currentWidget() is pv and changes == [2]
    w.tabs.setCurrentWidget(w.regimes)  # as the tests and _trade_spread do
    assert w.tabs.currentIndex() == 1 and type(w.tabs.currentWidget()).__name__ == "RegimesView"
    assert [w.tabs.tabText(i) for i in range(w.tabs.count())] == LABELS
    assert set(w.views()) == {"mean_reversion", "regimes", "portfolio", "sparse", "sweep", "scan"}
    assert all(w.lazy_tabs.is_built(k) for k in w.views())
    assert not w.lazy_tabs.is_built("benchmark")  # views() (saved tabs) does not include it
    with pytest.raises(AttributeError):
        w.no_such_tab  # noqa: B018
    w.close()


def test_parameters_of_a_tab_built_late_are_restored_and_saved(qtbot, router, settings):
    w = MainWindow(router, settings)
    qtbot.addWidget(w)
    w.sweep.settings_widgets()  # built after start-up
    key, widget = next((k, v) for k, v in w.sweep.settings_widgets().items() if hasattr(v, "setValue"))
    widget.setValue(widget.minimum() + 1)
    expected = widget.value()
    w.close()
    w2 = MainWindow(router, settings)
    qtbot.addWidget(w2)
    assert not w2.lazy_tabs.is_built("sweep")
    w2.close()  # closing without opening the tab keeps what was saved
    w3 = MainWindow(router, settings)
    qtbot.addWidget(w3)
    assert w3.sweep.settings_widgets()[key].value() == expected
    w3.close()


def test_lazy_tabs_registry(qtbot):
    tabs = QTabWidget()
    qtbot.addWidget(tabs)
    made: list[str] = []
    built: list[str] = []

    def factory(name):
        def make():
            made.append(name)
            return QLabel(name)

        return make

    lazy = LazyTabs(tabs, on_built=lambda k, wdg: built.append(k))
    for k in "abc":
        lazy.add(k, k.upper(), factory(k), group=k != "c")
    with pytest.raises(ValueError, match="already registered"):
        lazy.add("a", "A", factory("a"))
    assert made == []  # nothing is built before activate()
    tabs.show()
    lazy.activate()
    assert made == ["a"] and tabs.currentWidget().text() == "a"
    tabs.setCurrentIndex(2)
    assert made == ["a", "c"] and built == ["a", "c"] and tabs.currentWidget().text() == "c"
    assert QApplication.overrideCursor() is None  # the wait cursor shown while it was built is gone
    assert lazy.keys(group=True) == ["a", "b"] and list(lazy.built(group=True)) == ["a"]
    b = lazy.get("b")
    assert tabs.indexOf(b) == 1 and tabs.currentIndex() == 2 and lazy.get("b") is b and made.count("b") == 1
    lazy.add("d", "D", factory("d"))  # added after activate: built when shown
    assert "d" not in made
    tabs.setCurrentIndex(3)
    assert tabs.currentWidget().text() == "d"

    def reenter():
        return lazy.get("e")

    lazy.add("e", "E", reenter)
    with pytest.raises(RuntimeError, match="while it is being built"):
        lazy.get("e")

    def boom():
        raise ValueError("no data")

    lazy.add("f", "F", boom)  # a view that fails to build: the error reaches the caller, nothing is half done
    with pytest.raises(ValueError, match="no data"):
        lazy.get("f")
    assert not lazy.is_built("f") and tabs.tabText(5) == "F" and QApplication.overrideCursor() is None


def test_grpc_starts_beside_the_window_and_calls_wait_for_it():
    """start_in_background(gate): nothing starts before the gate opens; during the start the GUI's
    resolve(wait=False) announces no fallback, and a call that wants gRPC waits and runs there."""
    import threading

    import numpy as np

    r = BackendRouter(BackendConfig(backend_type=BackendType.GRPC))
    try:
        assert r.manager is not None and r._grpc is None  # no grpc client (nor import) until needed
        gate = threading.Event()
        r.start_in_background(gate=gate)
        assert r.grpc_state() == "stopped" and r.manager.pid is None  # waits for the first paint
        res = r.resolve(wait=False)
        assert res.backend is r.pyo3 and r.fallback_note is None  # starting: not announced as a fallback
        gate.set()
        out, res = r.call("calculate_mean_reversion", np.linspace(1.0, 2.0, 200) + np.sin(np.arange(200)), lookback=20)
        assert res.backend is r.grpc and not res.fallback and r.grpc_state() == "serving"
        assert r.wait_started(0)
    finally:
        r.stop()
    assert r.manager.state == "stopped"


# ---- the sample without pandas at start-up (data/samples.py, DatasetStore.selected_series) ----


def _csv_frame():
    from hft_lab.data.samples import _csv_path, _read_csv

    return _read_csv(_csv_path())


def test_the_pre_parsed_sample_is_the_csv_as_pandas_reads_it():
    import numpy as np
    import pandas as pd
    from hft_lab.data import Dataset, load_sample_prices
    from hft_lab.data.samples import ArrayDataset

    ref = _csv_frame()
    ds = load_sample_prices()
    assert isinstance(ds, ArrayDataset) and isinstance(ds, Dataset) and not ds.materialized
    # what the start-up reads from the arrays is what the DataFrame gives
    assert ds.name == "S&P 500 sample (20 stocks)" and ds.rows == len(ref)
    assert ds.assets == [str(c) for c in ref.columns] and ds.describe() == Dataset(ds.name, ref).describe()
    for a in ds.assets:
        col = ref[a].dropna()
        values, dates = ds.column(a)
        assert values.dtype == np.float64 and np.array_equal(values, col.to_numpy(dtype=np.float64))
        assert dates.dtype == col.index.dtype and np.array_equal(dates, col.index.to_numpy())
    with pytest.raises(KeyError):
        ds.column("NOPE")
    assert not ds.materialized
    # the DataFrame built on first use: bit for bit, dtypes, index and layout as read_csv's
    df = ds.prices
    assert ds.materialized and ds.prices is df
    pd.testing.assert_frame_equal(df, ref, check_exact=True, check_freq=True)
    assert df.index.dtype == ref.index.dtype and df.columns.dtype == ref.columns.dtype and df.index.name == "Date"
    assert np.array_equal(df.to_numpy().view(np.int64), ref.to_numpy().view(np.int64))
    assert df.values.flags.writeable == ref.values.flags.writeable and df.attrs == ref.attrs == {}
    # each call gives its own copy (a view may modify it)
    df.iloc[0, 0] = -1.0
    assert load_sample_prices().prices.iloc[0, 0] == ref.iloc[0, 0] and ds.column(ds.assets[0])[0][0] == ref.iloc[0, 0]


def test_a_stale_or_broken_pre_parsed_sample_is_refused_and_the_csv_read(tmp_path, monkeypatch):
    import gzip
    import shutil

    import numpy as np
    import pandas as pd
    from hft_lab.data import samples

    csv = samples._csv_path()
    samples.read_sample_cache(csv.with_name(samples.SAMPLE_CACHE), csv)  # the committed one matches its CSV
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(csv, data / samples.SAMPLE_CSV)
    my_csv, cache = data / samples.SAMPLE_CSV, data / samples.SAMPLE_CACHE
    samples.write_sample_cache(my_csv, cache)
    a = samples.read_sample_cache(cache, my_csv)
    assert a.columns == tuple(_csv_frame().columns) and not a.values.flags.writeable
    # the CSV changed after the file was made: refused, the CSV (as pandas reads it) is used
    text = gzip.decompress(my_csv.read_bytes()).decode().replace("1990-01-02,0.264,", "1990-01-02,0.265,", 1)
    my_csv.write_bytes(gzip.compress(text.encode()))
    with pytest.raises(ValueError, match="SHA-256 differs"):
        samples.read_sample_cache(cache, my_csv)
    monkeypatch.setattr(samples, "resources_dir", lambda: tmp_path)
    samples._sample_arrays.cache_clear()
    samples._sp500.cache_clear()
    try:
        ds = samples.load_sample_prices()
        assert type(ds) is samples.Dataset and ds.prices.iloc[0, 0] == 0.265
        pd.testing.assert_frame_equal(ds.prices, samples._read_csv(my_csv))
        # not one of ours (another format, or arrays that do not fit together): refused with the reason
        np.savez(cache, format=np.array(99))
        with pytest.raises(ValueError, match="format 99"):
            samples.read_sample_cache(cache, my_csv)
        samples.write_sample_cache(my_csv, cache)
        with np.load(cache) as z:
            parts = dict(z)
        parts["dates"] = parts["dates"][::-1]
        np.savez(cache, **parts)
        with pytest.raises(ValueError, match="not strictly increasing"):
            samples.read_sample_cache(cache, my_csv)
    finally:
        samples._sample_arrays.cache_clear()
        samples._sp500.cache_clear()


def test_store_series_without_the_frame_match_the_frame(qtbot):
    import numpy as np
    import pandas as pd
    from hft_lab.data import Dataset
    from hft_lab.data.store import DatasetStore

    def frame_series(store, a):  # what the view did before: the DataFrame's column
        col = store.selected_prices()[a].dropna()
        dates = col.index.to_numpy() if np.issubdtype(col.index.dtype, np.datetime64) else None
        return col.to_numpy(dtype=np.float64), dates

    def same(x, y):
        assert np.array_equal(x[0], y[0]) and x[0].dtype == y[0].dtype
        assert (x[1] is None and y[1] is None) or (x[1].dtype == y[1].dtype and np.array_equal(x[1], y[1]))

    s = DatasetStore()
    assert s.full_selection and s.assets == s.dataset.assets
    assert s.describe() == "S&P 500 sample (20 stocks): 20 assets, 8,313 rows, 1990-01-02 … 2022-12-28"
    fast = {a: s.selected_series(a) for a in s.assets}
    assert not s.dataset.materialized  # nothing above needed the DataFrame (nor pandas)
    for a in s.assets:
        same(fast[a], frame_series(s, a))
    # a selection: from the DataFrame, as before
    s.set_selection("2000-01-01", "2000-12-31", ["MSFT", "AAPL"])
    assert s.date_range == (pd.Timestamp("2000-01-03"), pd.Timestamp("2000-12-29")) and not s.full_selection
    same(s.selected_series("AAPL"), frame_series(s, "AAPL"))
    assert len(s.selected_series("AAPL")[0]) == 252
    with pytest.raises(KeyError):
        s.selected_series("BAC")  # not selected
    s.reset_selection()
    assert s.full_selection and s.describe().startswith("S&P 500 sample (20 stocks): 20 assets, 8,313 rows")
    # a dataset with gaps and bar numbers
    px = pd.DataFrame({"A": [1.0, np.nan, 3.0, 4.0], "B": [5.0, 6.0, 7.0, 8.0]})
    s.set_dataset(Dataset("bars", px))
    assert s.selected_series("A")[1] is None and list(s.selected_series("A")[0]) == [1.0, 3.0, 4.0]
    same(s.selected_series("A"), frame_series(s, "A"))


def test_analysis_package_names_are_imported_on_first_use():
    import hft_lab.analysis as an
    from hft_lab.analysis import fit_regimes
    from hft_lab.analysis.regimes import fit_regimes as direct
    from hft_lab.lazy_import import lazy_module

    assert fit_regimes is direct and an.TaskContext.__name__ == "TaskContext"
    assert set(an.__all__) <= set(dir(an)) and all(callable(getattr(an, n)) for n in an.__all__)
    with pytest.raises(AttributeError, match="no_such_name"):
        an.no_such_name  # noqa: B018
    m = lazy_module("json")
    assert m.dumps([1]) == "[1]" and "json" in repr(m)


def test_equity_and_drawdown_plots_are_made_when_needed_as_before(qtbot, router, settings):
    """The Mean Reversion tab's second page (equity, drawdown) is not shown at start: its plots
    are made on first use, or once the view has painted, and are then as if built with it."""
    import numpy as np
    from hft_lab.ui.plots import PercentAxis

    w = MainWindow(router, settings)
    qtbot.addWidget(w)
    mr = w.mean_reversion
    assert mr._perf_plots is None and len(mr.axes) == 2
    # a spread loaded before they exist: they are made labelled for it, dates on their axes
    mr.use_series("a spread", np.sin(np.arange(300) / 7.0))
    assert mr.is_spread and mr._perf_plots is None
    eq, dd = mr.equity_plot, mr.dd_plot
    assert mr._perf_plots == (eq, dd) and len(mr.axes) == 4 and mr.equity_plot is eq
    assert eq.getPlotItem().titleLabel.text == "Cumulative P&L (spread units, after costs)"
    assert isinstance(dd.getPlotItem().getAxis("left"), PercentAxis) and dd.getPlotItem().getAxis("left").percent is False
    price_vb = mr.price_plot.getPlotItem().vb
    assert all(p.getPlotItem().vb.linkedView(0) is price_vb for p in (eq, dd, mr.z_plot))
    assert eq.is_empty() and dd.is_empty() and mr.plot_tabs.widget(1).count() == 2
    # a new series relabels them, now that they exist
    mr.source.setCurrentIndex(mr.source.findText("Active dataset: MSFT"))
    assert not mr.is_spread and eq.getPlotItem().titleLabel.text == "Equity (after costs)"
    assert dd.getPlotItem().getAxis("left").percent is True and all(ax.dates is mr.dates for ax in mr.axes)
    w.close()
    # shown: made right after the first paint, without being asked for
    w2 = MainWindow(router, settings)
    qtbot.addWidget(w2)
    assert w2.mean_reversion._perf_plots is None
    w2.show()
    qtbot.waitUntil(lambda: w2.mean_reversion._perf_plots is not None, timeout=10_000)
    assert w2.mean_reversion.plot_tabs.currentIndex() == 0  # nothing else changed for the user
    w2.close()


def test_warm_up_imports_on_a_thread_and_only_logs_a_failure(caplog):
    import logging

    from hft_lab.ui.app import WARM_UP_MODULES, warm_up_imports

    assert WARM_UP_MODULES == ("pandas",)
    with caplog.at_level(logging.WARNING, logger="hft_lab"):
        t = warm_up_imports(("json", "hft_lab_no_such_module"))
        assert t.daemon and t.name == "hft-lab-warm-up"
        t.join(60)
    assert not t.is_alive()
    assert [r.getMessage() for r in caplog.records if "background import" in r.getMessage()] == [
        "background import of hft_lab_no_such_module failed: No module named 'hft_lab_no_such_module'"
    ]
