"""Measure the Ray executor on this machine: scaling from 1 to 2 worker processes and the per-task
overhead, so a user can size shards (README, "Running on a Ray cluster").

    .venv/bin/python tools/ray_scaling.py [--points N] [--repeat R]

Starts a private Ray (one node, num_cpus = 1 then 2: that many worker processes), runs the same
mean-reversion sweep (the 20-stock sample's first column, all 8313 bars) with 8 shards per worker,
and times it against the in-process executor with 1 and 2 threads. The per-task overhead is the
wall time of 200 empty shards (a task that returns at once) divided by 200, with 1 worker.
Then the same for a pairs universe scan (60 synthetic random walks x 2520 bars, 1770 pairs), in
process as one rayon-parallel call and on Ray with 8 shards per worker.
Prints one line per measurement and a JSON summary at the end. Timings are the best of R runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np


def _noop(backend, shared, shard, cancel=None):
    return shard


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tasks", type=int, default=200)
    args = ap.parse_args()

    import ray
    from hft_lab.cluster import InProcessExecutor, ParameterGrid, RayExecutor, run_sweep
    from hft_lab.data.samples import load_sample_prices

    prices = np.asarray(load_sample_prices().prices.iloc[:, 0], dtype=float)
    grid = ParameterGrid(
        lookback=[10, 15, 20, 30, 40, 60, 80, 120],
        entry=[1.0, 1.25, 1.5, 1.75, 2.0, 2.5],
        exit=[0.0, 0.25, 0.5],
        stop=[None, 3.0, 4.0],
        cost_bps=[0.0, 2.0, 5.0],
    )
    out: dict = {"bars": int(prices.size), "grid_points": len(grid)}

    def best(fn):
        ts = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            r = fn()
            ts.append(time.perf_counter() - t)
        return min(ts), r

    # a pairs universe scan: 60 synthetic assets x 2520 bars (1770 pairs), ADF with autolag aic
    from hft_lab.cluster import run_scan

    rng = np.random.default_rng(1)
    universe = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (2520, 60)), axis=0))
    scan_opts = dict(autolag="aic", max_lag=4)
    t, scan_ref = best(lambda: run_scan(universe, InProcessExecutor(), shards=1, **scan_opts))
    out["scan_pairs"] = 60 * 59 // 2
    out["scan_inprocess_rayon_s"] = t
    print(f"scan, in-process (one call, rayon on both cores): {t:.3f} s for {out['scan_pairs']} pairs", flush=True)

    ref = None
    for w in (1, 2):
        t, r = best(lambda: run_sweep(prices, grid, InProcessExecutor(workers=w), shards=8 * w))
        ref = r if ref is None else ref
        out[f"inprocess_{w}_threads_s"] = t
        print(f"in-process, {w} thread(s): {t:.3f} s for {len(grid)} points ({1e3 * t / len(grid):.3f} ms/point)", flush=True)

    for cpus in (1, 2):
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        ex = RayExecutor("auto")
        # warm: start the worker processes and import the core in them
        run_sweep(prices, grid, ex, shards=4 * cpus)
        t, r = best(lambda: run_sweep(prices, grid, ex, shards=8 * cpus))
        assert r.values.tobytes() == ref.values.tobytes(), "Ray result differs from in-process"
        out[f"ray_{cpus}_workers_s"] = t
        print(f"Ray, {cpus} worker process(es): {t:.3f} s (identical to in-process)", flush=True)
        run_scan(universe, ex, shards=2 * cpus, **scan_opts)  # warm
        t, r = best(lambda: run_scan(universe, ex, shards=8 * cpus, **scan_opts))
        assert all(
            np.asarray(getattr(r.result, f.name)).tobytes() == np.asarray(getattr(scan_ref.result, f.name)).tobytes()
            for f in dataclasses.fields(r.result)
        ), "Ray scan differs from in-process"
        out[f"scan_ray_{cpus}_workers_s"] = t
        print(f"scan, Ray, {cpus} worker process(es): {t:.3f} s (identical to in-process)", flush=True)
        if cpus == 1:
            shards = list(range(args.tasks))
            to, _ = best(lambda: ex.map(_noop, None, shards))
            out["ray_task_overhead_ms"] = 1e3 * to / args.tasks
            print(f"Ray per-task overhead (1 worker, {args.tasks} empty tasks): {1e3 * to / args.tasks:.2f} ms/task", flush=True)
            ip = InProcessExecutor(workers=1)
            ti, _ = best(lambda: ip.map(_noop, None, shards))
            out["inprocess_task_overhead_ms"] = 1e3 * ti / args.tasks
            print(f"in-process per-shard overhead: {1e3 * ti / args.tasks:.3f} ms/shard", flush=True)
        ex.close()
    out["ray_speedup_1_to_2"] = out["ray_1_workers_s"] / out["ray_2_workers_s"]
    out["scan_ray_speedup_1_to_2"] = out["scan_ray_1_workers_s"] / out["scan_ray_2_workers_s"]
    out["inprocess_speedup_1_to_2"] = out["inprocess_1_threads_s"] / out["inprocess_2_threads_s"]
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
