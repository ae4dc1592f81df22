"""Help → About: app, backend, Python and Qt versions, and the licenses of what the app bundles.
Also `app_icon()`, the window/application icon (resources/icons)."""

from __future__ import annotations

import html
import platform
import sys
import threading
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

import hft_lab
from hft_lab.backends import BackendType
from hft_lab.data.samples import resources_dir

LICENSES_FILE = Path("LICENSES.md")
DATA_ATTRIBUTION_FILE = Path("data") / "ATTRIBUTION.md"


def app_icon() -> QIcon:
    """The app icon: the 256 px PNG (always loadable) plus the SVG (sharp at any size when Qt's SVG
    icon engine is present). A null QIcon if the resources are missing."""
    icon = QIcon()
    icons = resources_dir() / "icons"
    for name in ("hft-lab.png", "hft-lab.svg"):
        p = icons / name
        if p.is_file():
            icon.addFile(str(p))
    return icon


def resource_text(rel: Path | str) -> str:
    """Text of a file under resources/, or a one-line note saying where it should have been."""
    p = resources_dir() / rel
    try:
        return p.read_text(encoding="utf-8")
    except OSError as e:
        return f"*(could not read {p}: {e.strerror or e})*"


def runtime_versions() -> dict[str, str]:
    """Versions of the runtime pieces, for the About box and bug reports."""
    import PySide6
    from PySide6 import QtCore

    v = {
        "Python": f"{platform.python_version()} ({platform.python_implementation()})",
        "Qt": QtCore.qVersion(),
        "PySide6": PySide6.__version__,
    }
    for label, mod in (("pyqtgraph", "pyqtgraph"), ("NumPy", "numpy"), ("pandas", "pandas"), ("grpcio", "grpc")):
        m = sys.modules.get(mod)
        if m is None:
            try:
                m = __import__(mod)
            except ImportError:
                continue
        v[label] = getattr(m, "__version__", "?")
    try:
        from google.protobuf import __version__ as pbv

        v["protobuf"] = pbv
    except ImportError:
        pass
    v["Platform"] = f"{platform.system()} {platform.machine()}" + (" (bundled app)" if getattr(sys, "frozen", False) else "")
    return v


def backend_versions(router) -> dict[str, str]:
    """One line per backend. Blocking (the gRPC one is a network call with the quick timeout):
    call it off the GUI thread. Never raises: a backend that is down says so."""
    out: dict[str, str] = {}
    try:
        i = router.pyo3.info()
        out["pyo3"] = f"{i.server_version} (core {i.core_version}), in-process"
    except Exception as e:
        out["pyo3"] = f"not available: {e}"
    state = router.grpc_state(wait=True)  # a worker thread: may wait for the first health check
    if state != "serving":
        out["grpc"] = f"not serving (server {state})"
    else:
        try:
            i = router.grpc.info()
            where = (
                router.manager.address if router.manager is not None else f"{router.config.grpc_host}:{router.config.grpc_port}"
            )
            out["grpc"] = f"grpcd {i.server_version} (core {i.core_version}), pid {i.pid}, {where}"
        except Exception as e:
            out["grpc"] = f"down: {e}"
    return out


def _rows(d: dict[str, str]) -> str:
    return "".join(
        f"<tr><td style='padding-right:12px'><b>{html.escape(k)}</b></td><td>{html.escape(v)}</td></tr>" for k, v in d.items()
    )


class AboutDialog(QDialog):
    """Tabs: About (versions), Licenses (resources/LICENSES.md), Sample data (its attribution).
    The backend versions are fetched on a worker thread; `backends_shown` fires (GUI thread) when
    they are on screen."""

    backends_shown = Signal(dict)
    _fetched = Signal(dict)  # emitted by the worker thread, delivered queued to the GUI thread

    def __init__(self, router, parent: QWidget | None = None):
        super().__init__(parent)
        self.router = router
        self.setWindowTitle("About HFT Arbitrage Lab")
        self.setWindowIcon(app_icon())
        self.resize(720, 560)
        self.backends: dict[str, str] = {}

        head = QLabel()
        icon = app_icon()
        if not icon.isNull():
            head.setPixmap(icon.pixmap(64, 64))
        self.title = title = QLabel(
            f"<h2 style='margin:0'>HFT Arbitrage Lab {html.escape(hft_lab.__version__)}</h2>"
            "Quant algorithms on a Rust core, reached in-process (PyO3) or over gRPC."
        )
        title.setTextFormat(Qt.TextFormat.RichText)
        title.setWordWrap(True)

        self.info = QTextBrowser()
        self.info.setOpenExternalLinks(True)
        self.licenses = QTextBrowser()
        self.licenses.setOpenExternalLinks(True)
        self.licenses.setMarkdown(resource_text(LICENSES_FILE))
        self.data_licenses = QTextBrowser()
        self.data_licenses.setOpenExternalLinks(True)
        self.data_licenses.setMarkdown(resource_text(DATA_ATTRIBUTION_FILE))

        self.tabs = QTabWidget()
        self.tabs.addTab(self.info, "About")
        self.tabs.addTab(self.licenses, "Licenses")
        self.tabs.addTab(self.data_licenses, "Sample data")

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)

        lay = QVBoxLayout(self)
        top = QWidget()
        hl = QHBoxLayout(top)
        hl.setContentsMargins(0, 0, 0, 0)
        hl.addWidget(head)
        hl.addWidget(title, 1)
        lay.addWidget(top)
        lay.addWidget(self.tabs, 1)
        lay.addWidget(buttons)

        self._fetched.connect(self._show_backends, Qt.ConnectionType.QueuedConnection)
        self._render()
        threading.Thread(target=self._fetch, name="about-backend-info", daemon=True).start()

    def _fetch(self) -> None:
        d = backend_versions(self.router)
        try:
            self._fetched.emit(d)
        except RuntimeError:  # the dialog was closed and deleted meanwhile
            pass

    def _show_backends(self, d: dict) -> None:
        self.backends = d
        self._render()
        self.backends_shown.emit(d)

    def _render(self) -> None:
        pending = "querying…"
        b = {
            BackendType.PYO3.label: self.backends.get("pyo3", pending),
            BackendType.GRPC.label: self.backends.get("grpc", pending),
        }
        self.info.setHtml(
            "<h3>Backends</h3><table>" + _rows(b) + "</table>"
            "<h3>Runtime</h3><table>" + _rows(runtime_versions()) + "</table>"
            "<h3>Licenses</h3><p>HFT Arbitrage Lab is MIT-licensed. The app bundles Qt and PySide6 "
            "(LGPLv3), pyqtgraph (MIT), grpcio (Apache-2.0), protobuf, NumPy and pandas (BSD-3) and "
            "sample data from skfolio (BSD-3): see the <i>Licenses</i> and <i>Sample data</i> tabs.</p>"
            f"<p style='color:#757575'>Resources: {html.escape(str(resources_dir()))}</p>"
        )


def show_about(parent: QWidget | None, router) -> AboutDialog:
    """Open the About box (window-modal, does not block the event loop) and return it."""
    dlg = AboutDialog(router, parent)
    dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dlg.open()
    return dlg


GUIDE_HTML = """
<h3>HFT Arbitrage Lab: quick guide</h3>
<p><b>Data.</b> File ▸ Import CSV… (Ctrl+O) loads your prices: wide (one column per asset) or long
(date, ticker, price) layouts, Yahoo-style OHLCV files (Adj Close by default, one or several files),
with a preview and the reading options. File ▸ Load sample data gives 20 S&amp;P 500 stocks; File ▸
Synthetic data… a seeded generator. File ▸ Select range and assets… restricts every tab to a period
and a subset. The status bar names the active dataset; every tab works on it.</p>
<p><b>Backend.</b> The combo box in the toolbar: <i>PyO3</i> runs the Rust core in this process,
<i>gRPC</i> through the grpcd server the app starts (or GRPC_HOST/GRPC_PORT), <i>Auto</i> picks PyO3
when it is loaded. The status bar shows which backend the next run uses, each server's health, and
"fallback active" when the chosen one is down.</p>
<p><b>Tabs.</b></p>
<ul>
<li><b>Mean Reversion</b>: rolling z-score of one series with entry/exit/stop bands and trades,
the OU fit (half-life), a backtest with costs (returns for prices; P&amp;L in spread units for a
spread), statistics, and a live replay through the streaming API.</li>
<li><b>Regimes</b>: a Gaussian hidden Markov model of the returns (Baum-Welch, posteriors, Viterbi
path), with the log-likelihood drawn live.</li>
<li><b>Portfolio</b>: minimum variance, maximum Sharpe, risk parity, equal weight and the efficient
frontier, with bounds and risk budgets.</li>
<li><b>Sparse Portfolio</b>: small mean-reverting baskets (lasso, elastic net, Box-Tiao, greedy);
"Trade this spread" sends a basket's spread to Mean Reversion.</li>
<li><b>Sweep</b>: a mean-reversion parameter grid, in and out of sample, run in-process, on the
gRPC server or on a Ray cluster; heat map of out-of-sample Sharpe over lookback &times; entry and a
sortable table.</li>
<li><b>Benchmark</b>: both backends and the reference libraries timed side by side.</li>
</ul>
<p><b>Results.</b> Right-click any plot: View all, Export PNG/SVG, Export data (CSV), Copy image.
Each tab's Export buttons write its result (CSV with dates, JSON with the inputs and parameters);
File ▸ Export session… writes everything into one folder. The log panel (bottom) lists every run and
every error; filter, clear or save it there.</p>
<p><b>Shortcuts.</b> Ctrl+O import · F1 this guide · Ctrl+Q quit · mouse wheel zoom, drag to pan,
right-drag to zoom an axis.</p>
"""


def show_guide(parent: QWidget | None):
    """The Help ▸ Quick guide window (non-blocking)."""
    from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout

    dlg = QDialog(parent)
    dlg.setWindowTitle("Quick guide")
    dlg.setObjectName("guide-dialog")
    text = QTextBrowser()
    text.setHtml(GUIDE_HTML)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dlg.reject)
    lay = QVBoxLayout(dlg)
    lay.addWidget(text)
    lay.addWidget(buttons)
    dlg.resize(640, 560)
    dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dlg.open()
    return dlg
