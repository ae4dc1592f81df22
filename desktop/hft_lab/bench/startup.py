"""Start-up time of the desktop app: process start -> first painted main window (issue 16).

`python -m hft_lab.bench.startup [--runs N] [--json]` launches the app N times (offscreen unless
QT_QPA_PLATFORM says otherwise), each in a fresh interpreter, and reports p50/min/max of the time
from just before the process is spawned to the first Paint event of the main window (measured in
the child with the same wall clock). Nothing in the app is changed for it: the child wraps
MainWindow.show to install a one-shot paint watcher, then runs the normal start-up (run_app).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CHILD = r"""
import os, sys, time
from PySide6.QtCore import QEvent, QObject
from hft_lab.ui import main_window

_show = main_window.MainWindow.show


class _FirstPaint(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint:
            print("PAINTED", repr(time.time()), flush=True)
            os._exit(0)  # measured: leave at once (grpcd, if spawned, exits with us: --managed)
        return False


def show(self):
    self._first_paint = _FirstPaint()
    self.installEventFilter(self._first_paint)
    _show(self)


main_window.MainWindow.show = show
from hft_lab.ui.app import run_app

sys.exit(run_app([sys.argv[0]]))
"""


def measure(runs: int = 3, timeout: float = 120.0) -> dict:
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    times = []
    for _ in range(runs):
        t0 = time.time()
        p = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=timeout)
        line = next((ln for ln in p.stdout.splitlines() if ln.startswith("PAINTED")), None)
        if line is None:
            raise RuntimeError(f"the app did not paint its window (exit {p.returncode}): {p.stderr[-1500:]}")
        times.append(float(line.split()[1]) - t0)
    return {
        "what": "process start -> first painted main window",
        "runs": runs,
        "p50_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "samples_s": times,
        "platform": env["QT_QPA_PLATFORM"],
        "load_average": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="hft-lab bench startup", description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    r = measure(a.runs)
    if a.json:
        print(json.dumps(r))
    else:
        print(
            f"start-up (process start -> first painted window, {r['platform']}): p50 {r['p50_s']:.2f} s, "
            f"min {r['min_s']:.2f} s, max {r['max_s']:.2f} s over {r['runs']} runs; load {r['load_average'][0]:.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
