"""Screenshots of every tab with a real result, at a given window size (what the README shows and
what a reviewer looks at). Offscreen by default (QT_QPA_PLATFORM=offscreen), or under Xvfb.

Usage: .venv/bin/python tools/shots.py OUT_DIR [WIDTHxHEIGHT] [--bench]
Writes OUT_DIR/<tab>-<W>x<H>.png for Mean Reversion, Regimes, Portfolio, Sparse Portfolio (each
after a run on the bundled sample) and, with --bench, Benchmark after a quick run.
"""

from __future__ import annotations

import os
import sys
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

from hft_lab.backends import BackendConfig, BackendType  # noqa: E402
from hft_lab.backends.router import BackendRouter  # noqa: E402
from hft_lab.ui.main_window import MainWindow  # noqa: E402
from PySide6.QtCore import QEventLoop, QSettings, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402


def wait(app, ms: int) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def run_view(view, timeout_ms: int = 120_000) -> None:
    loop = QEventLoop()
    view.result_shown.connect(lambda *_: loop.quit())
    QTimer.singleShot(timeout_ms, loop.quit)
    QTimer.singleShot(0, view.run)
    loop.exec()


def main(argv: list[str]) -> int:
    out = argv[1]
    size = next((a for a in argv[2:] if "x" in a and not a.startswith("-")), "1280x820")
    w, h = (int(v) for v in size.split("x"))
    os.makedirs(out, exist_ok=True)
    app = QApplication(argv[:1])
    router = BackendRouter(BackendConfig(backend_type=BackendType.PYO3))
    router.start()
    settings = QSettings(os.path.join(tempfile.mkdtemp(), "shots.ini"), QSettings.Format.IniFormat)
    win = MainWindow(router, settings)
    win.resize(w, h)
    win.show()
    wait(app, 300)
    names = {"mean_reversion": win.mean_reversion, "regimes": win.regimes, "portfolio": win.portfolio, "sparse": win.sparse}
    for name, view in names.items():
        win.tabs.setCurrentWidget(view)
        wait(app, 100)
        run_view(view)
        wait(app, 500)
        win.grab().save(os.path.join(out, f"{name}-{w}x{h}.png"))
    if "--bench" in argv:
        from hft_lab.bench import runner as br

        view = win.benchmark
        win.tabs.setCurrentWidget(view)
        view.set_config(br.BenchConfig.quick_config(operations=["echo", "mean_reversion", "hmm"], references=True))
        run_view(view, 600_000)
        wait(app, 500)
        win.grab().save(os.path.join(out, f"benchmark-{w}x{h}.png"))
    router.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
