"""Pairs-workflow benchmark cells (issue 17), run by `make bench` after the main benchmark.

Cells: Engle-Granger scan of 50 and 500 assets x 2520 days (1,225 and 124,750 pairs) on the
PyO3 backend (rayon over both cores) and over gRPC; Johansen (4 and 10 series); walk-forward (50
assets x 2520 days, formation 504 / trading 126, OLS and Kalman hedges, PyO3 and gRPC); a loop over
statsmodels `coint` timed on a sample of pairs and extrapolated to the 500-asset universe (said so
in its label). `python -m hft_lab.bench.pairs [--quick] [--json PATH]`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import numpy as np


def universe(n_obs: int, n_assets: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n_obs, n_assets)), axis=0))


def _time(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def run(quick: bool = False) -> list[dict]:
    from statsmodels.tsa.stattools import coint

    from hft_lab.backends.pyo3_backend import Pyo3Backend

    cells: list[dict] = []
    pyo3 = Pyo3Backend()
    grpc_be = None
    mgr = None
    try:
        from hft_lab.backends import BackendConfig
        from hft_lab.backends.grpc_backend import GrpcBackend
        from hft_lab.backends.server import ServerManager

        mgr = ServerManager(BackendConfig())
        mgr.start()
        grpc_be = GrpcBackend(BackendConfig(call_timeout_s=600), address=lambda: mgr.address)
    except Exception as e:  # the gRPC cells are skipped with the reason
        cells.append({"cell": "gRPC server", "error": str(e)})
    sizes = [50] if quick else [50, 500]
    for n in sizes:
        p = universe(2520, n)
        pairs = n * (n - 1) // 2
        t = _time(lambda: pyo3.scan_pairs(p, top=100), 1 if n == 500 else 3)
        cells.append(
            {"cell": f"scan EG lag 0, {n} assets x 2520 days ({pairs} pairs), PyO3", "seconds": t, "pairs_per_s": pairs / t}
        )
        if grpc_be is not None and n == 50:
            tg = _time(lambda: grpc_be.scan_pairs(p, top=100), 3)
            cells.append({"cell": f"scan EG lag 0, {n} assets x 2520 days, gRPC", "seconds": tg, "pairs_per_s": pairs / tg})
        if n == 50:
            ta = _time(lambda: pyo3.scan_pairs(p, autolag="aic", max_lag=None, top=100))
            cells.append(
                {
                    "cell": f"scan EG autolag aic (maxlag 27), {n} assets x 2520 days, PyO3",
                    "seconds": ta,
                    "pairs_per_s": pairs / ta,
                }
            )
    # statsmodels loop on a sample, extrapolated
    p = universe(2520, 50)
    sample = [(i, j) for i in range(5) for j in range(i + 1, 50)][:100]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = _time(lambda: [coint(p[:, i], p[:, j], trend="c", maxlag=0, autolag=None) for i, j in sample])
    per = t / len(sample)
    cells.append(
        {
            "cell": "statsmodels coint loop (lag 0), 2520 days: timed on 100 pairs, EXTRAPOLATED to 124,750 pairs",
            "seconds": per * 124_750,
            "seconds_per_pair": per,
        }
    )
    for n in (4, 10):
        q = universe(2520, n, seed=1)
        t = _time(lambda: pyo3.johansen(q, 0, 1), 3)
        cells.append({"cell": f"Johansen det_order 0, k_ar_diff 1, {n} series x 2520 days, PyO3", "seconds": t})
    cells += walk_forward_cells(pyo3, grpc_be, quick)
    if mgr is not None:
        try:
            mgr.stop()
        except Exception:
            pass
    return cells


def walk_forward_cells(pyo3, grpc_be, quick: bool = False) -> list[dict]:
    """Walk-forward of the pairs rule on a 50-asset x 2520-day universe (16 windows of a
    190..1,225-pair scan each, plus the in-sample run): PyO3, and over gRPC with streamed
    progress (WalkForwardStream) and without (WalkForward)."""
    cells: list[dict] = []
    n = 20 if quick else 50
    p = universe(2520, n, seed=2)
    kw = dict(formation=504, trading=126, entry=2.0, exit=0.0, cost_bps=5.0, max_pairs=5)
    windows = (2520 - 504 + 125) // 126
    for hedge in ("ols", "kalman"):
        t = _time(lambda: pyo3.walk_forward(p, hedge=hedge, **kw), 3)
        cells.append({"cell": f"walk-forward {hedge}, {n} assets x 2520 days ({windows} windows), PyO3", "seconds": t})
    if grpc_be is not None:
        tg = _time(lambda: grpc_be.walk_forward(p, **kw), 3)
        cells.append({"cell": f"walk-forward ols, {n} assets x 2520 days, gRPC (unary)", "seconds": tg})
        ts = _time(lambda: grpc_be.walk_forward(p, progress=lambda w, f: True, **kw), 3)
        cells.append({"cell": f"walk-forward ols, {n} assets x 2520 days, gRPC (streamed progress)", "seconds": ts})
    return cells


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    cells = run(a.quick)
    print(f"pairs benchmark ({os.cpu_count()} CPUs):")
    for c in cells:
        if "error" in c:
            print(f"  {c['cell']}: not run ({c['error']})")
            continue
        extra = f", {c['pairs_per_s']:,.0f} pairs/s" if "pairs_per_s" in c else ""
        print(f"  {c['cell']}: {c['seconds']:.3f} s{extra}")
    eg = next((c for c in cells if c["cell"].startswith("scan EG lag 0, 500")), None)
    sm = next((c for c in cells if c["cell"].startswith("statsmodels")), None)
    if eg and sm:
        print(f"  speed-up vs the extrapolated statsmodels loop: {sm['seconds'] / eg['seconds']:.0f}x")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(cells, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
