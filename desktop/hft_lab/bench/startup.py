"""Start-up time of the desktop app: process start -> first painted main window (issue 16).

`python -m hft_lab.bench.startup [--runs N] [--json] [--no-imports]` launches the app N times
(offscreen unless QT_QPA_PLATFORM says otherwise), each in a fresh interpreter with a fresh,
empty settings directory (a first launch: nothing restored), after one untimed warm-up launch
(Python's bytecode cache, the OS file cache; PYTHONDONTWRITEBYTECODE is dropped for the app, as
a user runs it). It reports the median, min and max of the time from just before the process is
spawned to the moment the main window has painted (taken in the child with the same wall
clock). Nothing in the app is changed for it: the child wraps MainWindow.show to install a
one-shot paint watcher, then runs the normal start-up (run_app). The watcher sees the window's
first Paint event and takes the time on the next turn of the event loop, i.e. once the whole
window, children included, has painted and been flushed.

Each run also gives its phases: interpreter start-up, imports + QApplication (until
MainWindow.__init__ starts), building the window, show -> painted. A last launch under
`python -X importtime` gives the import breakdown (the import time of each package: its modules'
own times added up; importtime itself slows the imports down, so read it as shares, not as the
start-up time), and the heavy modules that were loaded when the window painted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

# modules whose presence at first paint the report names (the start-up should not need them)
WATCHED = (
    "pandas",
    "pyqtgraph",
    "grpc",
    "hft_lab.data.csv_import",
    "hft_lab.ui.views.benchmark",
    "hft_lab.bench.runner",
    "hft_lab.ui.views.portfolio",
    "hft_lab.ui.views.regimes",
    "hft_lab.ui.views.sparse",
    "hft_lab.ui.views.sweep",
    "pyqtgraph.exporters",
    "scipy",
)

CHILD = r"""
import os, sys, time
T_CHILD = time.time()
WATCHED = __WATCHED__
from PySide6.QtCore import QEvent, QObject, QTimer
from hft_lab.ui import main_window

marks = {"child": T_CHILD}
_init = main_window.MainWindow.__init__
_show = main_window.MainWindow.show


def init(self, *a, **kw):
    marks["init"] = time.time()
    _init(self, *a, **kw)
    marks["built"] = time.time()


def done():
    marks["painted"] = time.time()
    marks["cpu"] = time.process_time()  # CPU seconds of the whole process (all threads) until now
    import json
    loaded = [m for m in WATCHED if m in sys.modules]
    print("PAINTED " + json.dumps({"marks": marks, "loaded": loaded}), flush=True)
    os._exit(0)  # measured: leave at once (grpcd, if spawned, exits with us: --managed)


class _FirstPaint(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint and "paint" not in marks:
            marks["paint"] = time.time()
            QTimer.singleShot(0, done)  # after the whole paint pass (children, flush)
        return False


def show(self):
    marks["show"] = time.time()
    self._first_paint = _FirstPaint()
    self.installEventFilter(self._first_paint)
    _show(self)


main_window.MainWindow.__init__ = init
main_window.MainWindow.show = show
from hft_lab.ui.app import run_app

sys.exit(run_app([sys.argv[0]]))
""".replace("__WATCHED__", repr(WATCHED))


def _env(config_dir: str) -> dict:
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env["XDG_CONFIG_HOME"] = config_dir  # fresh QSettings: a first launch, nothing restored
    # as a user launches it: Python may keep its bytecode cache (__pycache__), which a developer
    # or CI shell often turns off; the untimed warm-up launch writes it
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _launch(env: dict, timeout: float, importtime: bool = False) -> tuple[float, dict, str]:
    args = [sys.executable] + (["-X", "importtime"] if importtime else []) + ["-c", CHILD]
    t0 = time.time()
    p = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("PAINTED ")), None)
    if line is None:
        raise RuntimeError(f"the app did not paint its window (exit {p.returncode}): {p.stderr[-1500:]}")
    return t0, json.loads(line[len("PAINTED ") :]), p.stderr


def import_breakdown(stderr: str, top: int = 12) -> list[tuple[str, float]]:
    """Seconds of import time per top-level package in a `-X importtime` log (the sum of each
    module's own time, so nothing is counted twice: e.g. pandas, numpy, PySide6, pyqtgraph,
    hft_lab), largest first."""
    total: dict[str, float] = {}
    for ln in stderr.splitlines():
        if not ln.startswith("import time:") or "|" not in ln:
            continue
        parts = ln[len("import time:") :].split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue
        root = parts[2].strip().split(".")[0]
        root = {"shiboken6": "PySide6", "shibokensupport": "PySide6", "signature_bootstrap": "PySide6"}.get(root, root)
        total[root] = total.get(root, 0.0) + int(parts[0]) / 1e6
    return sorted(total.items(), key=lambda x: -x[1])[:top]


def measure(runs: int = 3, timeout: float = 120.0, imports: bool = True) -> dict:
    load_before = os.getloadavg()
    times, cpu, phases, loaded = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="hft-startup-") as cfg:
        env = _env(cfg)
        _launch(env, timeout)  # warm-up, not timed: bytecode cache and the OS file cache
        for _ in range(runs):
            t0, r, _err = _launch(env, timeout)
            m = r["marks"]
            times.append(m["painted"] - t0)
            cpu.append(m["cpu"])
            phases.append(
                {
                    "interpreter_s": m["child"] - t0,
                    "imports_and_qapplication_s": m["init"] - m["child"],
                    "build_window_s": m["built"] - m["init"],
                    "show_to_painted_s": m["painted"] - m["show"],
                }
            )
            loaded = r["loaded"]
        breakdown = None
        if imports:
            _t0, _r, err = _launch(env, timeout, importtime=True)
            breakdown = import_breakdown(err)
    return {
        "what": "process start -> first painted main window",
        "runs": runs,
        "p50_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "samples_s": times,
        # CPU time the app used until the painted window: what the wall time would be on an idle
        # machine (start-up is one busy thread), so it can be compared across machine loads
        "cpu_p50_s": statistics.median(cpu),
        "phases_p50_s": {k: statistics.median(p[k] for p in phases) for k in phases[0]},
        "loaded_at_paint": loaded,
        "imports_s": breakdown,
        "platform": os.environ.get("QT_QPA_PLATFORM", "offscreen"),
        "load_average": load_before,
        "load_average_after": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="hft-lab bench startup", description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-imports", action="store_true", help="skip the -X importtime launch")
    a = ap.parse_args(argv)
    r = measure(a.runs, imports=not a.no_imports)
    if a.json:
        print(json.dumps(r))
        return 0
    print(
        f"start-up (process start -> first painted window, {r['platform']}): median {r['p50_s']:.2f} s, "
        f"min {r['min_s']:.2f} s, max {r['max_s']:.2f} s over {r['runs']} runs; "
        f"load average {r['load_average'][0]:.1f} before, {r['load_average_after'][0]:.1f} after"
    )
    print(f"  CPU time used until painted (median; the wall time on an idle machine): {r['cpu_p50_s']:.2f} s")
    print("  phases (median): " + ", ".join(f"{k[:-2].replace('_', ' ')} {v:.2f} s" for k, v in r["phases_p50_s"].items()))
    print("  heavy modules loaded at first paint: " + (", ".join(r["loaded_at_paint"]) or "none of " + ", ".join(WATCHED)))
    if r["imports_s"]:
        print("  import time per package (own time of its modules, one launch under -X importtime):")
        for name, s in r["imports_s"]:
            print(f"    {s * 1e3:8.0f} ms  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
