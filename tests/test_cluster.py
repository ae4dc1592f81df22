"""Executors and the parameter sweep: in-process, gRPC and a real two-node Ray cluster on this
machine (ray.cluster_utils.Cluster: a head and a worker node, one CPU each). No mocks: the cluster's
raylets run real worker processes that import hft_lab._rustcore. One cluster for the module; the
node-loss test runs last and removes the worker node."""

from __future__ import annotations

import math
import os
import time

import numpy as np
import pytest
from hft_lab.backends import Cancelled
from hft_lab.cluster import (
    COLUMNS,
    InProcessExecutor,
    ParameterGrid,
    RayExecutor,
    grid_from_text,
    make_executor,
    ray_available,
    run_scan,
    run_sweep,
    shard_ranges,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

GRID = ParameterGrid(lookback=[10, 30, 60], entry=[1.0, 1.5, 2.0, 2.5], exit=[0.0, 0.5], stop=[None, 3.5], cost_bps=[0.0, 5.0])


@pytest.fixture(scope="module")
def px(sp500_stocks):
    return sp500_stocks.iloc[-3000:, 3].to_numpy()


def _same(a, b):
    """Bit for bit, NaN included."""
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


# ------------------------------------------------------------------ no cluster ----------------------------------


def test_sweep_rows_are_the_direct_backend_calls(backend, px):
    """Each row = calculate_mean_reversion + backtest on the in-sample and out-of-sample parts,
    called directly on the same backend; the gRPC executor gives the same table as in-process."""
    ex = InProcessExecutor(backend) if backend.name.startswith("PyO3") else make_executor("grpc", backend=backend, workers=2)
    res = run_sweep(px, GRID, ex, oos_fraction=0.25, shards=5)
    n = px.size
    split = n - round(0.25 * n)
    assert res.split == split and len(res) == len(GRID) == 96
    for row in (0, 37, 95):
        lb, en, exv, stp, c = res.points[row]
        mr = backend.calculate_mean_reversion(px, int(lb), en, exv, None if math.isnan(stp) else stp)
        pos = mr.positions.astype(float)
        ins = backend.backtest(px[:split], pos[:split], c)
        oos = backend.backtest(px[split - 1 :], pos[split - 1 :], c)
        assert res.column("is_sharpe")[row] == ins.sharpe
        assert res.column("oos_sharpe")[row] == oos.sharpe
        assert res.column("oos_total_return")[row] == oos.total_return
        assert res.column("is_n_trades")[row] == ins.n_trades
        assert res.column("oos_max_drawdown")[row] == oos.max_drawdown
    ref = run_sweep(px, GRID, InProcessExecutor(workers=1), oos_fraction=0.25, shards=1)
    assert _same(res.values, ref.values)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shards=st.integers(1, 40), workers=st.integers(1, 3), n=st.integers(1, 60))
def test_sharding_never_changes_the_table(px, shards, workers, n):
    r = shard_ranges(n, shards)
    assert r[0][0] == 0 and r[-1][1] == n and all(a[1] == b[0] for a, b in zip(r, r[1:]))
    assert all(hi > lo for lo, hi in r) and len(r) == min(shards, n)
    g = ParameterGrid(lookback=[8, 25], entry=[1.0, 2.0], exit=[0.0], stop=[None, 3.0], cost_bps=[0.0, 2.0, 10.0])
    a = run_sweep(px[:400], g, InProcessExecutor(workers=workers), shards=shards)
    b = run_sweep(px[:400], g, InProcessExecutor(workers=1), shards=1)
    assert _same(a.values, b.values) and _same(a.points, b.points)


def test_table_export_heatmap_and_best(tmp_path, px):
    res = run_sweep(px, GRID, oos_fraction=0.3)
    df = res.to_frame()
    assert list(df.columns) == list(COLUMNS) and len(df) == 96
    res.to_csv(tmp_path / "sweep.csv")
    import pandas as pd

    back = pd.read_csv(tmp_path / "sweep.csv")
    np.testing.assert_array_equal(back["oos_sharpe"].to_numpy(), res.column("oos_sharpe"))  # repr round-trips exactly
    assert back["stop"].isna().sum() == 48
    xs, ys, z = res.heatmap("oos_sharpe", "lookback", "entry", "max")
    assert list(xs) == [10, 30, 60] and list(ys) == [1.0, 1.5, 2.0, 2.5] and z.shape == (4, 3)
    sel = (res.column("lookback") == 30) & (res.column("entry") == 2.0)
    assert z[2, 1] == np.max(res.column("oos_sharpe")[sel])
    b = res.best("is_sharpe")
    assert res.column("is_sharpe")[b] == np.nanmax(res.column("is_sharpe"))


def test_bad_input_names_the_problem(px):
    with pytest.raises(ValueError, match="lookback values must be integers >= 1"):
        ParameterGrid(lookback=[2.5])
    with pytest.raises(ValueError, match="cost_bps values must be >= 0"):
        ParameterGrid(cost_bps=[-1])
    with pytest.raises(ValueError, match="entry values must be finite"):
        ParameterGrid(entry=[float("nan")])
    with pytest.raises(ValueError, match="entry values must be distinct"):
        ParameterGrid(entry=[1, 1.0])
    with pytest.raises(ValueError, match="oos_fraction must be a number in"):
        run_sweep(px, GRID, oos_fraction=1.0)
    with pytest.raises(ValueError, match="each part needs at least 3 bars"):
        run_sweep(px[:4], GRID, oos_fraction=0.5)
    with pytest.raises(ValueError, match="executor must be one of"):
        make_executor("spark")
    g = grid_from_text(lookback="10:30:10", entry="1, 2", exit="0", stop="none, 4", cost_bps="0")
    assert g.lookback == (10, 20, 30) and g.stop == (None, 4.0) and len(g) == 12
    with pytest.raises(ValueError, match="lookback: not a number"):
        grid_from_text(lookback="ten")


def test_in_process_cancel_stops_between_shards(px):
    from hft_lab.backends import CancelToken

    tok = CancelToken()
    seen = []

    def progress(done, total):
        seen.append(done)
        tok.cancel()

    with pytest.raises(Cancelled):
        run_sweep(px, GRID, InProcessExecutor(), shards=12, progress=progress, cancel=tok)
    assert seen == [1]


def test_ray_needs_an_address(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(ValueError, match="no Ray cluster address"):
        RayExecutor()


def test_an_unreachable_cluster_fails_fast_naming_it(px):
    from hft_lab.backends import BackendUnavailable

    with pytest.raises(BackendUnavailable, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:1"):
        run_sweep(px, GRID, RayExecutor("127.0.0.1:1"))
    with pytest.raises(ValueError, match="is not a number"):
        run_sweep(px, GRID, RayExecutor("ray://head:http"))


def test_without_ray_the_user_is_told(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # what the packaged app sees: no ray module
    ok, why = ray_available()
    assert not ok and "hft-lab[cluster]" in why


# ------------------------------------------------------------------ the pairs scan, sharded ----------------------


def _universe(n_assets=10, n_obs=400, seed=7):
    """Random walks with a few cointegrated pairs (b = a·beta + stationary noise)."""
    rng = np.random.default_rng(seed)
    walks = 100 + np.cumsum(rng.normal(0, 1, (n_obs, n_assets)), axis=0)
    for a, b, beta in ((0, 1, 0.8), (2, 5, 1.3), (4, 7, 0.5)):
        walks[:, b] = 20 + beta * walks[:, a] + rng.normal(0, 0.5, n_obs)
    return walks


SCAN_OPTS = dict(autolag="aic", max_lag=3, max_qvalue=0.5)


def _same_scan(a, b):
    """Two PairScanResults, field by field, arrays bit for bit."""
    import dataclasses

    assert type(a) is type(b)
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert _same(x, y), f.name
        else:
            assert x == y, f.name


@pytest.mark.parametrize("shards", [1, 3, 7, 45])
def test_sharded_scan_is_the_unsharded_scan(pyo3_backend, shards):
    px = _universe()
    whole = pyo3_backend.scan_pairs(px, **SCAN_OPTS)
    run = run_scan(px, InProcessExecutor(), shards=shards, **SCAN_OPTS)
    _same_scan(run.result, whole)
    assert run.result.n_tested == 45 and run.shards == min(shards, 45)
    assert {(0, 1), (2, 5), (4, 7)} <= set(zip(run.result.i.tolist(), run.result.j.tolist()))


def test_scan_over_grpc_shards_is_the_in_process_scan(pyo3_backend, grpc_backend):
    px = _universe(n_assets=12, seed=3)
    run = run_scan(px, make_executor("grpc", backend=grpc_backend), shards=5, **SCAN_OPTS)
    _same_scan(run.result, pyo3_backend.scan_pairs(px, **SCAN_OPTS))
    assert run.executor == "grpc" and run.result.n_tested == 66


def test_scan_bad_input():
    with pytest.raises(ValueError, match="at least 2 assets"):
        run_scan(np.ones((50, 1)))
    with pytest.raises(ValueError, match="max_lag must be an integer"):
        run_scan(_universe(), max_lag=-1)


# ------------------------------------------------------------------ the Sweep tab --------------------------------


@pytest.fixture
def window(qtbot, grpc_manager, tmp_path):
    from hft_lab.backends import BackendConfig
    from hft_lab.backends.router import BackendRouter
    from hft_lab.ui.main_window import MainWindow
    from PySide6.QtCore import QSettings

    port = int(grpc_manager.address.rsplit(":", 1)[1])
    router = BackendRouter(BackendConfig(grpc_host="127.0.0.1", grpc_port=port))
    w = MainWindow(router, QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.show()
    yield w
    router.stop()


def _type(qtbot, edit, text):
    edit.selectAll()
    qtbot.keyClicks(edit, text)


def _sweep_like_a_user(qtbot, window, executor_label, address=""):
    from PySide6.QtCore import Qt

    view = window.sweep
    window.tabs.setCurrentWidget(view)
    _type(qtbot, view.lookback, "10:30:10")
    _type(qtbot, view.entry, "1, 1.5, 2")
    _type(qtbot, view.exit, "0, 0.5")
    _type(qtbot, view.stop, "none, 3.5")
    _type(qtbot, view.cost, "0, 5")
    assert view.grid_size.text() == "72 grid points"
    view.executor.setCurrentIndex(view.executor.findText(executor_label))
    if address:
        _type(qtbot, view.address, address)
    with qtbot.waitSignal(view.result_shown, timeout=60_000) as blocker:
        qtbot.mouseClick(view.run_button, Qt.MouseButton.LeftButton)
    return view, blocker.args[0]


def test_sweep_tab_runs_sorts_draws_and_exports(qtbot, window, tmp_path):
    from hft_lab.cluster import ParameterGrid
    from PySide6.QtCore import Qt

    view, out = _sweep_like_a_user(qtbot, window, "In-process (PyO3)")
    assert out.ok, out.value
    res = view.result
    ref = run_sweep(
        view.prices,
        ParameterGrid(lookback=[10, 20, 30], entry=[1, 1.5, 2], exit=[0, 0.5], stop=[None, 3.5], cost_bps=[0, 5]),
        oos_fraction=0.3,
    )
    assert _same(res.values, ref.values)
    assert view.table.rowCount() == 72 and "72 grid points" in view.status.text()
    # the heat map shows OOS Sharpe over lookback x entry, best over the other parameters
    xs, ys, z = view.heat_values
    assert list(xs) == [10, 20, 30] and list(ys) == [1, 1.5, 2]
    np.testing.assert_array_equal(z, ref.heatmap("oos_sharpe", "lookback", "entry")[2])
    assert "Best in sample" in view.best_label.text()
    if os.environ.get("HFT_LAB_SCREENSHOT_DIR"):
        qtbot.wait(50)  # let the axes lay out their new ticks
        window.grab().save(os.path.join(os.environ["HFT_LAB_SCREENSHOT_DIR"], "sweep_heatmap.png"))
    # sort by out-of-sample Sharpe: click its header (twice: descending)
    col = COLUMNS.index("oos_sharpe")
    header = view.table.horizontalHeader()
    view.result_tabs.setCurrentWidget(view.table)
    for _ in range(2):
        qtbot.mouseClick(
            header.viewport(),
            Qt.MouseButton.LeftButton,
            pos=header.rect()
            .center()
            .__class__(header.sectionViewportPosition(col) + header.sectionSize(col) // 2, header.height() // 2),
        )
    shown = [view.table.item(i, col).data(Qt.ItemDataRole.DisplayRole) for i in range(72)]
    shown = [v for v in shown if v != ""]
    assert shown == sorted(shown, reverse=True) and shown[0] == float(f"{np.nanmax(res.column('oos_sharpe')):.6g}")
    # export: the CSV reads back with every column
    files = view.export_csv(tmp_path / "sweep.csv")
    import pandas as pd

    back = pd.read_csv(files[0])
    assert list(back.columns) == list(COLUMNS) and len(back) == 72
    np.testing.assert_array_equal(back["oos_sharpe"].to_numpy(), res.column("oos_sharpe"))
    window.grab().save(str(tmp_path / "sweep_tab.png"))
    if os.environ.get("HFT_LAB_SCREENSHOT_DIR"):
        window.grab().save(os.path.join(os.environ["HFT_LAB_SCREENSHOT_DIR"], "sweep_tab.png"))


def test_sweep_tab_without_ray_says_so(qtbot, window, monkeypatch):
    import sys

    from PySide6.QtCore import Qt

    monkeypatch.setitem(sys.modules, "ray", None)  # as in the packaged app
    view = window.sweep
    view.executor.setCurrentIndex(view.executor.findText("Ray cluster"))
    assert "hft-lab[cluster]" in view.executor_note.text()
    qtbot.mouseClick(view.run_button, Qt.MouseButton.LeftButton)
    assert "Ray is not installed" in view.status.text() and not view.running


# ------------------------------------------------------------------ a real 2-node Ray cluster --------------------


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def ray_cluster():
    import ray
    from ray.cluster_utils import Cluster

    node_args = dict(num_cpus=1, object_store_memory=80 * 2**20)
    # A lost node is declared dead after 3 missed health checks 0.5 s apart (Ray's default is
    # 5 x 3 s): the same failure path, only detected sooner, so the node-loss test stays short.
    fast_failure = {
        "health_check_initial_delay_ms": 0,
        "health_check_period_ms": 500,
        "health_check_timeout_ms": 500,
        "health_check_failure_threshold": 3,
    }
    # Ray's own start-up can time out on a loaded 2-core machine (seen in CI: "Timed out waiting
    # for file .../gcs_server_port_..." while the other pytest worker was busy): a longer wait
    # for the GCS port, and up to three attempts, each cleaned up before the next
    os.environ.setdefault("RAY_gcs_server_port_wait_time_s", "120")
    for attempt in range(3):
        cluster = None
        try:
            cluster = Cluster(
                initialize_head=True,
                # no dashboard, no log monitor (the executor does not forward worker logs): a faster start
                head_node_args=dict(include_dashboard=False, include_log_monitor=False, _system_config=fast_failure, **node_args),
            )
            worker = cluster.add_node(**node_args)
            cluster.wait_for_nodes()
            break
        except Exception:
            if cluster is not None:
                try:
                    cluster.shutdown()
                except Exception:  # noqa: BLE001 - a half-started cluster: best effort
                    pass
            if attempt == 2:
                raise
    session = cluster.head_node.get_session_dir_path()
    pids = {p.process.pid for node in (cluster.head_node, worker) for ps in node.all_processes.values() for p in ps}
    # connect, and start one worker process per node (it imports hft_lab._rustcore), so the first
    # test's shards find both nodes ready
    ex = RayExecutor(cluster.address)
    ex._ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=1)
    def warm():
        import hft_lab._rustcore  # noqa: F401

        return ray.get_runtime_context().get_node_id(), os.getpid()

    got = ray.get(
        [
            warm.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n.node_id, soft=False)).remote()
            for n in (cluster.head_node, worker)
        ]
    )
    assert {g[0] for g in got} == {cluster.head_node.node_id, worker.node_id}
    pids |= {g[1] for g in got}
    state = {"cluster": cluster, "worker": worker, "pids": pids}
    yield state
    ray.shutdown()
    cluster.shutdown()
    # nothing left behind: the nodes' processes and every worker process that ran a shard
    deadline = time.monotonic() + 15
    left = [p for p in state["pids"] if _alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = [p for p in state["pids"] if _alive(p)]
    assert not left, f"Ray processes left behind: {left}"
    stray = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    if session.encode() in f.read() and _alive(int(d)):
                        stray.append(int(d))
            except OSError:
                pass
    assert not stray, f"processes of the test cluster's session still running: {stray}"


@pytest.fixture(scope="module")
def ray_exec(ray_cluster):
    ex = RayExecutor(ray_cluster["cluster"].address, max_retries=3)
    yield ex
    ex.close()


def test_ray_sweep_is_identical_to_in_process(ray_cluster, ray_exec, px):
    seen = []
    res = run_sweep(px, GRID, ray_exec, oos_fraction=0.25, shards=8, progress=lambda d, t: seen.append((d, t)))
    ray_cluster["pids"] |= {s.pid for s in res.report.shard_info}
    ref = run_sweep(px, GRID, InProcessExecutor(), oos_fraction=0.25, shards=3)
    assert _same(res.values, ref.values) and _same(res.points, ref.points)
    assert res.executor == "ray" and seen == [(i, 8) for i in range(1, 9)]
    assert len(res.report.nodes) == 2, "both nodes ran shards"


def test_ray_scan_is_identical_to_in_process(ray_cluster, ray_exec, pyo3_backend):
    px = _universe(n_assets=14, n_obs=500, seed=11)
    seen = []
    run = run_scan(px, ray_exec, shards=6, progress=lambda d, t: seen.append(d), **SCAN_OPTS)
    ray_cluster["pids"] |= {s.pid for s in run.report.shard_info}
    _same_scan(run.result, pyo3_backend.scan_pairs(px, **SCAN_OPTS))
    assert run.executor == "ray" and seen == [1, 2, 3, 4, 5, 6] and run.result.n_tested == 91


def test_ray_task_error_is_the_core_error(ray_exec, px):
    g = ParameterGrid(lookback=[5000])  # longer than the 2100 in-sample bars
    with pytest.raises(ValueError) as local:
        run_sweep(px, g, InProcessExecutor(), oos_fraction=0.3)
    with pytest.raises(ValueError) as remote:
        run_sweep(px, g, ray_exec, oos_fraction=0.3)
    assert str(remote.value) == str(local.value) and "lookback" in str(local.value)


def test_ray_cancel_stops_the_remaining_tasks(ray_cluster, ray_exec, px):
    from hft_lab.backends import CancelToken

    tok = CancelToken()
    seen = []

    def progress(done, total):
        seen.append(done)
        tok.cancel()

    with pytest.raises(Cancelled):
        run_sweep(px, GRID, ray_exec, shards=24, progress=progress, cancel=tok)
    assert seen == [1]
    assert ray_exec.last_report.cancelled > 0, "the remaining tasks were cancelled"
    # the cluster is free again and gives the same numbers
    res = run_sweep(px, GRID, ray_exec, shards=4)
    ray_cluster["pids"] |= {s.pid for s in res.report.shard_info}
    assert _same(res.values, run_sweep(px, GRID, InProcessExecutor()).values)


def test_sweep_tab_on_the_ray_cluster(qtbot, ray_cluster, ray_exec, window):
    """The user picks "Ray cluster", types the cluster's address and clicks Run: progress per
    shard, the same table as in-process."""
    seen = []
    window.sweep.runner.progress.connect(seen.append)
    view, out = _sweep_like_a_user(qtbot, window, "Ray cluster", ray_cluster["cluster"].address)
    assert out.ok, out.value
    ray_cluster["pids"] |= {s.pid for s in view.result.report.shard_info}
    ref = run_sweep(view.prices, view.result.grid, InProcessExecutor(), oos_fraction=0.3)
    assert _same(view.result.values, ref.values) and view.result.executor == "ray"
    total = view.result.report.shards
    assert seen and seen[-1] == (total, total) and "on Ray cluster" in view.status.text()


def test_ray_losing_a_worker_node_mid_run_still_gives_the_whole_identical_table(ray_cluster, ray_exec, px):
    """Runs last in this module: removes the worker node (its raylet and worker processes are
    killed) once it has finished a shard while more shards are queued; Ray re-runs the lost
    shard on the head (max_retries) and the table is complete and bit-identical."""
    import ray

    cluster, worker = ray_cluster["cluster"], ray_cluster["worker"]
    worker_id = worker.node_id
    big = ParameterGrid(
        lookback=[10, 20, 30, 45, 60, 90], entry=[1.0, 1.5, 2.0, 2.5], exit=[0.0, 0.5], stop=[None, 3.5], cost_bps=[0.0, 5.0]
    )
    killed = []

    def progress(done, total):
        if not killed and done >= 2:
            cluster.remove_node(worker, allow_graceful=False)
            killed.append(done)

    res = run_sweep(px, big, ray_exec, shards=16, progress=progress)
    ray_cluster["pids"] |= {s.pid for s in res.report.shard_info}
    assert killed and killed[0] < 16, "the node was removed while shards were still to run"
    deadline = time.monotonic() + 15
    while worker_id in {n["NodeID"] for n in ray.nodes() if n["Alive"]} and time.monotonic() < deadline:
        time.sleep(0.2)
    assert worker_id not in {n["NodeID"] for n in ray.nodes() if n["Alive"]}, "the cluster saw the node go"
    assert len(res) == len(big) and np.isfinite(res.column("is_sharpe")).all()
    ref = run_sweep(px, big, InProcessExecutor(), shards=2)
    assert _same(res.values, ref.values)
    late = [s for s in res.report.shard_info if s.node == worker_id]
    assert len(late) < 16 and any(s.node != worker_id for s in res.report.shard_info)
