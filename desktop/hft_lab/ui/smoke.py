"""--smoke: open the window, run one call on each backend, print one JSON line, exit 0 (1 on failure).

The JSON line (also used by tests/test_dist.py on the PyInstaller bundle):
    {"smoke": "ok" | "mismatch" | "failed",
     "results": {"pyo3": {...}, "grpc": {...}},          # one mean-reversion call on each backend
     "backends": {"pyo3": {"ok", "version"|"error"}, "grpc": {"ok", "version", "pid"|"error"}},
     "frozen": bool, "grpcd": path, "sample_rows": int, "icon": bool,
     "sample": "pre-parsed" | "csv",                      # how the bundled sample was read (data/samples.py)
     "loaded_at_window": [module, ...],                   # of NOT_AT_WINDOW, those imported when the window painted
     "timing": {"start_to_window_s", "start_to_done_s"}}  # seconds since the process started
"""

from __future__ import annotations

import json
import os
import sys
import time

from PySide6.QtCore import QEvent, QObject, QTimer

from hft_lab.backends import BackendType
from hft_lab.data import ou_series


def process_uptime_s() -> float | None:
    """Seconds since this process was started (Linux: /proc/self/stat starttime, 10 ms resolution),
    so the interpreter/bundle start-up is counted too. None where /proc is not available."""
    try:
        with open("/proc/self/stat") as f:
            stat = f.read()
        fields = stat[stat.rindex(")") + 2 :].split()  # fields from #3 (state) on; comm may hold spaces
        start_ticks = int(fields[19])  # field #22: starttime, clock ticks after boot
        return round(time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK"), 3)
    except (OSError, ValueError, IndexError, AttributeError):
        return None


NOT_AT_WINDOW = ("pandas", "grpc")  # the window comes up without them (issue 16: start-up)


class _FirstPaint(QObject):
    """Notes the process age when the window first paints (= it is on screen), and which of
    NOT_AT_WINDOW were imported by then."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.at: float | None = None
        self.loaded: list[str] = []

    def eventFilter(self, obj, ev):  # noqa: N802 (Qt name)
        if self.at is None and ev.type() == QEvent.Type.Paint:
            self.at = process_uptime_s()
            self.loaded = [m for m in NOT_AT_WINDOW if m in sys.modules]
        return False


def _backend_info(router, t: BackendType) -> dict:
    try:
        info = router.backend(t).info()
        d = {"ok": True, "version": info.server_version, "core": info.core_version}
        if t == BackendType.GRPC:
            d["pid"] = info.pid
        return d
    except Exception as e:  # reported in the JSON, never raised
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}


def run_smoke(app, win) -> int:
    status = {"code": 1}
    painted = _FirstPaint(win)
    win.installEventFilter(painted)

    def go():
        shown = painted.at if painted.at is not None else process_uptime_s()
        report: dict = {"smoke": "failed"}
        try:
            from hft_lab.backends.server import find_grpcd
            from hft_lab.data import load_sample_prices
            from hft_lab.ui.about import app_icon

            win.router.wait_started(win.router.config.connect_timeout_s)  # grpcd starts beside the window
            x = ou_series(10_000, seed=1)
            results, backends = {}, {}
            for t in (BackendType.PYO3, BackendType.GRPC):
                backends[t.value] = _backend_info(win.router, t)
                try:
                    r = win.router.backend(t).calculate_mean_reversion(x, lookback=20, threshold=2.0)
                    results[t.value] = {"entries": int(len(r.entries)), "last_z": float(r.zscore[-1])}
                except Exception as e:
                    backends[t.value] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            both = all(b["ok"] for b in backends.values()) and len(results) == 2
            report["smoke"] = ("ok" if results["pyo3"] == results["grpc"] else "mismatch") if both else "failed"
            report.update(results=results, backends=backends)
            try:
                report["grpcd"] = str(find_grpcd(win.router.config.grpcd_path))
            except Exception as e:
                report["grpcd"] = f"not found: {e}"
            report["frozen"] = bool(getattr(sys, "frozen", False))
            report["loaded_at_window"] = painted.loaded
            try:
                from hft_lab.data.samples import ArrayDataset

                sample = load_sample_prices()
                report["sample"] = "pre-parsed" if isinstance(sample, ArrayDataset) else "csv"
                report["sample_rows"] = len(sample.prices)
            except Exception as e:  # the app opens on the sample data: a bundle without it is broken
                report["sample_rows"] = 0
                report["smoke"] = "failed"
                report["error"] = f"sample data: {type(e).__name__}: {e}"
            report["icon"] = not app_icon().isNull()
        except Exception as e:
            report["error"] = f"{type(e).__name__}: {e}"
        finally:
            report["timing"] = {"start_to_window_s": shown, "start_to_done_s": process_uptime_s()}
            print(json.dumps(report), flush=True)
            status["code"] = 0 if report["smoke"] == "ok" else 1
            win.close()
            app.quit()

    QTimer.singleShot(200, go)
    app.exec()
    return status["code"]
