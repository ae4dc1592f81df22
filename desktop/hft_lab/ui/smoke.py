"""--smoke: open the window, run one call on each backend, print the results, exit 0 (1 on failure)."""

from __future__ import annotations

import json

import numpy as np
from PySide6.QtCore import QTimer

from hft_lab.backends import BackendType
from hft_lab.data import ou_series


def run_smoke(app, win) -> int:
    status = {"code": 1}

    def go():
        try:
            x = ou_series(10_000, seed=1)
            out = {}
            for t in (BackendType.PYO3, BackendType.GRPC):
                b = win.router.backend(t)
                r = b.calculate_mean_reversion(x, lookback=20, threshold=2.0)
                out[t.value] = {"entries": int(len(r.entries)), "last_z": float(r.zscore[-1])}
            same = out["pyo3"] == out["grpc"]
            print(json.dumps({"smoke": "ok" if same else "mismatch", "results": out}), flush=True)
            status["code"] = 0 if same else 1
        except Exception as e:
            print(json.dumps({"smoke": "failed", "error": str(e)}), flush=True)
        finally:
            win.close()
            app.quit()

    QTimer.singleShot(200, go)
    app.exec()
    return status["code"]
