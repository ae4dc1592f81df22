"""Application start-up: display check, QApplication, backends, main window."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading


def display_problem() -> str | None:
    """A one-line explanation when Qt has no display to open a window on."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform and platform not in ("xcb", "wayland"):
        return None  # offscreen, minimal, vnc…: no display server needed
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return (
            "No display found (DISPLAY and WAYLAND_DISPLAY are unset): run under a display, "
            "or with a virtual one: xvfb-run -a make run"
        )
    return None


def install_quit_signals(app, windows: list) -> object:
    """SIGINT (Ctrl+C) and SIGTERM close the window and quit the event loop cleanly (settings
    saved, grpcd stopped). Python runs signal handlers only when it gets control, which it does
    not while Qt's event loop waits: a 200 ms timer gives it a turn. The quit itself is posted
    (single-shot timer), so a signal that arrives before the event loop runs still quits it.
    `windows` is filled in later (the window does not exist yet). Returns the timer."""
    from PySide6.QtCore import QTimer

    def do_quit():
        for w in windows:
            w.close()
        app.quit()

    def on_signal(signum, _frame):
        logging.getLogger("hft_lab").info("%s received: quitting", signal.Signals(signum).name)
        QTimer.singleShot(0, do_quit)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    timer = QTimer()
    timer.timeout.connect(lambda: None)
    timer.start(200)
    return timer


# ---- start-up (issue 16): what the first tab does not need, imported once the window is up ----
WARM_UP_MODULES = ("pandas",)


def warm_up_imports(modules: tuple[str, ...] = WARM_UP_MODULES) -> threading.Thread:
    """Import `modules` on a background thread (started after the first paint): the first tab
    shows the sample without pandas, the other tabs and File > Import need it, and this way the
    first switch to one of them does not wait ~0.3 s for the import. A failure here is only
    logged: the import is retried, and reported, where it is needed."""
    import importlib

    def run() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception as e:  # noqa: BLE001 (logged; the real import reports it)
                logging.getLogger("hft_lab").warning("background import of %s failed: %s", name, e)

    t = threading.Thread(target=run, name="hft-lab-warm-up", daemon=True)
    t.start()
    return t


def run_app(argv: list[str], smoke: bool = False) -> int:
    problem = display_problem()
    if problem:
        print(f"hft-lab: {problem}", file=sys.stderr)
        return 2
    os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from PySide6.QtWidgets import QApplication

    from hft_lab.backends import BackendConfig
    from hft_lab.backends.router import BackendRouter
    from hft_lab.ui.first_paint import FirstPaint
    from hft_lab.ui.main_window import MainWindow

    running = QApplication.instance()  # a QCoreApplication by its type; here always the QApplication
    app = running if isinstance(running, QApplication) else QApplication(argv)
    from hft_lab.ui.gc_guard import GuiThreadGC

    gc_guard = GuiThreadGC(app)  # cyclic garbage (Qt objects) is collected on the GUI thread only
    gc_guard.install()
    app.setApplicationName("HFT Arbitrage Lab")
    app.setOrganizationName("HFT Arbitrage Lab")
    from hft_lab.ui.about import app_icon

    app.setWindowIcon(app_icon())
    app.setDesktopFileName("hft-lab")
    try:
        config = BackendConfig.from_env()
    except ValueError as e:
        print(f"hft-lab: {e}", file=sys.stderr)
        return 2
    windows: list = []
    sig_timer = install_quit_signals(app, windows)  # noqa: F841 (kept alive until exec returns)
    router = BackendRouter(config)
    # grpcd starts beside the window (issue 16: start-up): it is forked by the ServerManager's
    # long-lived spawner thread once the window has painted, so that the grpc import and the
    # health wait do not compete with building the window; calls that want gRPC wait for it.
    painted = threading.Event()
    router.start_in_background(gate=painted)
    win = MainWindow(router)

    def after_first_paint() -> None:
        painted.set()
        warm_up_imports()

    FirstPaint(win, after_first_paint)
    win.error_reporter.install()  # any exception in a slot: logged with its traceback and shown
    windows.append(win)
    win.show()
    if smoke:
        from hft_lab.ui.smoke import run_smoke

        code = run_smoke(app, win)
    else:
        code = app.exec()
    win.error_reporter.uninstall()
    router.stop()
    return code
