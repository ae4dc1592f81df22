"""The main window: backend combo box, backend health in the status bar, log panel, one tab per
algorithm."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QTabWidget,
    QToolBar,
)

import hft_lab
from hft_lab.backends import BackendType
from hft_lab.data.store import SYNTHETIC_KINDS, DatasetStore
from hft_lab.ui.about import app_icon, show_about
from hft_lab.ui.lazy_tabs import LazyTabs
from hft_lab.ui.log_panel import ErrorReporter, LogPanel
from hft_lab.ui.settings import restore_widgets, save_widgets
from hft_lab.ui.worker import TaskRunner

if TYPE_CHECKING:
    from hft_lab.backends.router import BackendRouter

log = logging.getLogger("hft_lab.ui")

STATE_TEXT = {
    "starting": ("starting", "#b58900"),
    "serving": ("serving", "#2e7d32"),
    "down": ("down", "#c62828"),
    "failed": ("down", "#c62828"),
    "stopped": ("stopped", "#757575"),
}


class MainWindow(QMainWindow):
    backend_state_changed = Signal()

    def __init__(self, router: BackendRouter, settings: QSettings | None = None):
        super().__init__()
        self.router = router
        self.settings = settings or QSettings("HFT Arbitrage Lab", "hft-lab")
        self.setWindowTitle(f"HFT Arbitrage Lab {hft_lab.__version__}")
        self.resize(1280, 820)
        self.setWindowIcon(app_icon())
        self.store = DatasetStore(parent=self)  # the active dataset every tab works on
        file_menu = self.menuBar().addMenu("&File")
        a = file_menu.addAction("&Import CSV…", self.import_csv)
        a.setShortcut(QKeySequence.StandardKey.Open)
        file_menu.addAction("Load &sample data", self.load_sample)
        file_menu.addAction("&Synthetic data…", self.load_synthetic)
        file_menu.addAction("Select &range and assets…", self.select_range)
        file_menu.addSeparator()
        file_menu.addAction("&Export session…", self.export_session_dialog)
        file_menu.addSeparator()
        file_menu.addAction("&Quit", self.close).setShortcut(QKeySequence.StandardKey.Quit)
        help_menu = self.menuBar().addMenu("&Help")
        self.guide_action = help_menu.addAction("Quick &guide…", self.show_guide)
        self.guide_action.setShortcut(QKeySequence.StandardKey.HelpContents)
        self.about_action = help_menu.addAction("&About HFT Arbitrage Lab…")
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)
        self.about_action.triggered.connect(lambda: show_about(self, self.router))

        self.log_panel = LogPanel()
        self.log_panel.install("hft_lab", "grpcd")
        # app.py installs it as sys.excepthook; tests keep pytest-qt's hook (a slot's exception fails the test)
        self.error_reporter = ErrorReporter(self)
        dock = QDockWidget("Log", self)
        dock.setObjectName("log-dock")
        dock.setWidget(self.log_panel)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        self.resizeDocks([dock], [100], Qt.Orientation.Vertical)

        tb = QToolBar("Backend")
        tb.setObjectName("backend-toolbar")
        self.addToolBar(tb)
        tb.addWidget(QLabel(" Backend: "))
        self.backend_combo = QComboBox()
        for t in (BackendType.GRPC, BackendType.PYO3, BackendType.AUTO):
            self.backend_combo.addItem(t.label, t)
        tb.addWidget(self.backend_combo)

        self.tabs = QTabWidget()
        self.setCentralWidget(self.tabs)
        self.runners: list[TaskRunner] = []
        self._init_done = False
        # one tab per algorithm, each built when first shown or first used (`self.<key>`):
        # see _register_tabs and ui/lazy_tabs.py (issue 16: start-up)
        self.lazy_tabs = LazyTabs(self.tabs, on_built=self._tab_built)
        self._register_tabs()
        self.lazy_tabs.activate()  # the current (first) tab is built now

        self.grpc_label = QLabel()
        self.pyo3_label = QLabel()
        self.fallback_label = QLabel()
        self.route_label = QLabel()
        self.route_label.setToolTip("The backend the next run will use (Auto picks PyO3 when it is loaded)")
        self.security_label = QLabel()  # 🔒 TLS to a remote grpcd, or a warning when it is insecure
        sb = self.statusBar()
        self.dataset_label = QLabel(self.store.describe())
        sb.addWidget(self.dataset_label, 1)
        self.store.changed.connect(lambda: self.dataset_label.setText(self.store.describe()))
        sb.addPermanentWidget(self.fallback_label)
        sb.addPermanentWidget(self.route_label)
        sb.addPermanentWidget(self.security_label)
        sb.addPermanentWidget(self.grpc_label)
        sb.addPermanentWidget(self.pyo3_label)

        # the router calls back from any thread; hop to the GUI thread with a queued signal
        self.backend_state_changed.connect(self.refresh_status, Qt.ConnectionType.QueuedConnection)
        router.on_change = self.backend_state_changed.emit
        self._poll = QTimer(self)
        self._poll.setInterval(2000)
        self._poll.timeout.connect(self.refresh_status)
        self._poll.start()

        self._restore()
        self._restore_dataset()
        self._restore_tabs()
        self._init_done = True
        self.backend_combo.currentIndexChanged.connect(self._on_backend_chosen)
        self._on_backend_chosen()

    def _runner(self) -> TaskRunner:
        r = TaskRunner(self.router, self)
        self.runners.append(r)
        return r

    # ---- tabs, built when first shown (issue 16: start-up) ----
    # Register a tab with `self.lazy_tabs.add(key, label, factory, session=…)`: the factory imports
    # its view module itself (so the import happens only when the tab is first needed) and returns
    # the widget; `self.<key>` builds it on first access. session=True: its parameters are saved
    # and restored with the window and its results go into File ▸ Export session (`views()`).
    def _register_tabs(self) -> None:
        add = self.lazy_tabs.add
        add("mean_reversion", "Mean Reversion", self._make_mean_reversion, session=True)
        add("regimes", "Regimes", self._make_regimes, session=True)
        add("portfolio", "Portfolio", self._make_portfolio, session=True)
        add("sparse", "Sparse Portfolio", self._make_sparse, session=True)
        # parameter sweep on an executor: in-process, the gRPC server or a Ray cluster (issue 18)
        add("sweep", "Sweep", self._make_sweep, session=True)
        # pairs and universe scan (issue 17) with the executor choice of issue 18
        add("scan", "Scan", self._make_scan, session=True)
        add("benchmark", "Benchmark", self._make_benchmark, session=False)

    def _make_mean_reversion(self):
        from hft_lab.ui.views.mean_reversion import MeanReversionView

        return MeanReversionView(self._runner(), self.store)

    def _make_regimes(self):
        from hft_lab.ui.views.regimes import RegimesView

        return RegimesView(self._runner(), self.store)

    def _make_portfolio(self):
        from hft_lab.ui.views.portfolio import PortfolioView

        return PortfolioView(self._runner(), self.store)

    def _make_sparse(self):
        from hft_lab.ui.views.sparse import SparseView

        view = SparseView(self._runner(), self.store)
        view.send_spread.connect(self._trade_spread)
        return view

    def _make_sweep(self):
        from hft_lab.ui.views.sweep import SweepView

        return SweepView(self._runner(), self.store)

    def _make_scan(self):
        from hft_lab.ui.views.scan import ScanView

        view = ScanView(self._runner(), self.store)
        view.send_spread.connect(self._trade_spread)
        self.runners.append(view.aux)  # its quick tasks (re-filter, Kalman) stop with the window
        return view

    def _make_benchmark(self):
        from hft_lab.ui.views.benchmark import BenchmarkView

        return BenchmarkView(self._runner())

    def _tab_built(self, key: str, view) -> None:
        self.__dict__[key] = view  # later `self.<key>` is a plain attribute
        if self._init_done and key in self.lazy_tabs.keys(session=True):  # at start-up: _restore_tabs
            self._restore_tab(key, view)

    def __getattr__(self, name: str) -> Any:
        """`window.<key>` of a registered tab builds it on first access (called only when normal
        attribute lookup fails)."""
        lazy = self.__dict__.get("lazy_tabs")
        if lazy is not None and name in lazy:
            return lazy.get(name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # ---- backend choice and status ----
    def _on_backend_chosen(self, *_):
        t = self.backend_combo.currentData()
        self.router.set_preferred(t)
        self.settings.setValue("backend", t.value)
        self.refresh_status()

    def set_backend(self, t: BackendType) -> None:
        self.backend_combo.setCurrentIndex(self.backend_combo.findData(t))

    def refresh_status(self) -> None:
        """Cached states only: no health RPC runs here (the GUI thread)."""
        state = self.router.grpc_state()
        text, color = STATE_TEXT.get(state, (state, "#757575"))
        self.grpc_label.setText(f"<b>gRPC</b>: <span style='color:{color}'>{text}</span>")
        self.grpc_label.setToolTip(self.router.grpc_detail())
        sec = self.router.security_note()
        if sec is None:
            self.security_label.setText("")
        elif sec[0] == "tls":
            self.security_label.setText("<span style='color:#2e7d32'>\N{LOCK} TLS</span>")
        else:
            self.security_label.setText("<span style='color:#c62828'>\N{WARNING SIGN} insecure</span>")
        self.security_label.setToolTip(sec[1] if sec else "")
        ok = self.router.pyo3.is_available()
        self.pyo3_label.setText(
            f"<b>PyO3</b>: <span style='color:{'#2e7d32' if ok else '#c62828'}'>{'loaded' if ok else 'missing'}</span>"
        )
        try:
            res = self.router.resolve(wait=False)
        except Exception as e:  # no backend at all
            self.fallback_label.setText(f"<span style='color:#c62828'>{e}</span>")
            self.route_label.setText("")
            return
        self.route_label.setText(f"runs on: <b>{res.backend.name}</b>")
        note = self.router.fallback_note
        self.fallback_label.setText(f"<span style='color:#b58900'>fallback active: {note}</span>" if note else "")

    # ---- settings ----
    def _restore(self) -> None:
        geo = self.settings.value("geometry")
        if geo is not None:
            self.restoreGeometry(geo)
        st = self.settings.value("windowState")
        if st is not None:
            self.restoreState(st)
        env_choice = self.router.config.backend_type
        saved = self.settings.value("backend")
        choice = env_choice
        if env_choice == BackendType.AUTO and saved:
            try:
                choice = BackendType.parse(saved)
            except ValueError:
                pass
        self.backend_combo.setCurrentIndex(self.backend_combo.findData(choice))

    def views(self) -> dict:
        """Every tab whose parameters are saved and whose results are exported (all built now)."""
        return {key: self.lazy_tabs.get(key) for key in self.lazy_tabs.keys(session=True)}

    def built_views(self) -> dict:
        """The same, only those built so far (a tab never shown has no changed parameters and no results)."""
        return self.lazy_tabs.built(session=True)

    def _trade_spread(self, name: str, spread) -> None:
        self.mean_reversion.use_series(name, spread)
        self.tabs.setCurrentWidget(self.mean_reversion)
        log.info("spread sent to Mean Reversion: %s", name)

    def _restore_tabs(self) -> None:
        for key, view in self.built_views().items():
            self._restore_tab(key, view)

    def _restore_tab(self, key: str, view) -> None:
        if hasattr(view, "settings_widgets"):
            restore_widgets(self.settings, f"tabs/{key}", view.settings_widgets())

    def closeEvent(self, ev) -> None:
        for key, view in self.built_views().items():
            if hasattr(view, "settings_widgets"):
                save_widgets(self.settings, f"tabs/{key}", view.settings_widgets())
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("windowState", self.saveState())
        for r in self.runners:
            r.cancel()
        for r in self.runners:
            r.shutdown()
        self._poll.stop()
        self.log_panel.uninstall()
        super().closeEvent(ev)

    # ---- data ----
    def import_csv(self) -> None:
        """File ▸ Import CSV…: one file, or several (one per ticker, combined by date)."""
        from pathlib import Path

        from hft_lab.ui.import_dialog import ImportDialog

        start = str(self.settings.value("import/dir", str(Path.home())))
        paths, _ = QFileDialog.getOpenFileNames(
            self,
            "Import prices (several files: one per ticker)",
            start,
            "Price files (*.csv *.tsv *.txt *.gz *.bz2 *.xz);;All files (*)",
        )
        if not paths:
            return
        self.settings.setValue("import/dir", str(Path(paths[0]).parent))
        dlg = ImportDialog(paths if len(paths) > 1 else paths[0], self)
        if dlg.sniff_result is None:
            dlg._show_error(dlg.sniff_error)  # unreadable: the message names the problem
            return
        dataset = dlg.dataset() if dlg.exec() == QDialog.DialogCode.Accepted else None
        if dataset is None:
            return
        try:
            self.store.set_dataset(dataset)
        except (TypeError, ValueError) as e:  # e.g. the store's own checks: say so, keep the old dataset
            self.show_error("Import failed", str(e))
            return
        self._remember_dataset({"kind": "csv", "path": paths if len(paths) > 1 else paths[0], "params": dlg.params()})
        log.info("dataset loaded: %s", self.store.describe())

    def select_range(self) -> None:
        from hft_lab.ui.selection_dialog import SelectionDialog

        SelectionDialog(self.store, self).exec()

    def load_synthetic(self) -> None:
        kinds = list(SYNTHETIC_KINDS)
        labels = [f"{k}: {SYNTHETIC_KINDS[k]}" for k in kinds]
        label, ok = QInputDialog.getItem(self, "Synthetic data", "Kind", labels, 0, False)
        if not ok:
            return
        kind = kinds[labels.index(label)]
        n, ok = QInputDialog.getInt(self, "Synthetic data", "Bars", 2520, 100, 2_000_000)
        if not ok:
            return
        seed, ok = QInputDialog.getInt(self, "Synthetic data", "Seed", 0, 0, 1_000_000)
        if not ok:
            return
        try:
            self.store.load_synthetic(kind, n=n, seed=seed)
        except (ValueError, TypeError) as e:
            self.show_error("Synthetic data", str(e))
            return
        self._remember_dataset({"kind": "synthetic", "synthetic": kind, "n": n, "seed": seed})

    def load_sample(self) -> None:
        self.store.load_sample()
        self._remember_dataset({"kind": "sample"})

    def _remember_dataset(self, source: dict) -> None:
        import json

        self.settings.setValue("dataset/source", json.dumps(source, default=str))

    def _restore_dataset(self) -> None:
        """Reload the last dataset (a CSV file with the same reading settings, or the same synthetic
        generator and seed). Anything that fails leaves the bundled sample, with a log line."""
        import json

        raw = self.settings.value("dataset/source")
        if not raw:
            return
        try:
            src = json.loads(raw)
            if src.get("kind") == "csv":
                from hft_lab.data.csv_import import load_prices

                self.store.set_dataset(load_prices(src["path"], **src.get("params", {})).dataset)
            elif src.get("kind") == "synthetic":
                self.store.load_synthetic(src["synthetic"], n=int(src["n"]), seed=int(src["seed"]))
            else:
                return
            log.info("last dataset restored: %s", self.store.describe())
        except Exception as e:  # a moved/changed file must not stop the app from starting
            log.warning("last dataset not restored (%s): using the bundled sample", e)

    def session_items(self) -> list:
        views = self.built_views().values()
        return [it for v in views for it in (v.session_items() if hasattr(v, "session_items") else [])]

    def export_session_dialog(self) -> None:
        from datetime import datetime
        from pathlib import Path

        from hft_lab.data.export import export_session

        items = self.session_items()
        if not items:
            QMessageBox.information(self, "Export session", "No results yet: run a computation first.")
            return
        from hft_lab.ui.files import existing_dir

        folder = existing_dir(self, "Export session into")
        if not folder:
            return
        try:
            idx = export_session(Path(folder) / f"hft-lab-{datetime.now():%Y%m%d-%H%M%S}", items)
        except (OSError, ValueError) as e:
            self.show_error("Export failed", str(e))
            return
        self.statusBar().showMessage(f"Session exported to {idx.parent}", 5000)

    def show_guide(self) -> None:
        from hft_lab.ui.about import show_guide

        show_guide(self)

    def show_error(self, title: str, text: str) -> None:
        QMessageBox.critical(self, title, text)
