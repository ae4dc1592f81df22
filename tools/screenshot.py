"""Render the main window with a real result and save a PNG (used for README screenshots).

Usage: xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python tools/screenshot.py OUT.png [tab-index]
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

from hft_lab.backends import BackendConfig, BackendType  # noqa: E402
from hft_lab.backends.router import BackendRouter  # noqa: E402
from hft_lab.ui.main_window import MainWindow  # noqa: E402
from PySide6.QtCore import QSettings, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402


def main() -> int:
    out = sys.argv[1]
    tab = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    app = QApplication(sys.argv[:1])
    router = BackendRouter(BackendConfig(backend_type=BackendType.GRPC))
    router.start()
    import tempfile

    settings = QSettings(os.path.join(tempfile.mkdtemp(), "screenshot.ini"), QSettings.Format.IniFormat)
    win = MainWindow(router, settings)
    win.resize(1500, 950)
    win.show()
    win.tabs.setCurrentIndex(tab)
    view = win.tabs.currentWidget()

    def shoot(*_):
        QTimer.singleShot(600, lambda: (win.grab().save(out), app.quit()))

    if hasattr(view, "result_shown") and hasattr(view, "run"):
        view.result_shown.connect(shoot)
        QTimer.singleShot(500, view.run)
    else:
        QTimer.singleShot(800, shoot)
    QTimer.singleShot(60_000, app.quit)
    app.exec()
    router.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
