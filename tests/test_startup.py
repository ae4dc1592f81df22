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
