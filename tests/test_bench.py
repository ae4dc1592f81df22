"""The benchmark runner (hft_lab.bench) and the Benchmark tab: shape of the results on a tiny
configuration for both backends, failures counted (never timed), the parity check firing on a
backend that gives a different answer, unavailable operations skipped (never faked), the CLI's
--quick --json output, and the tab (run, table, charts, export, cancel). No timing assertions."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading

import numpy as np
import pytest
from hft_lab.bench import runner as br

TINY = br.BenchConfig(
    operations=["echo", "mean_reversion"],
    sizes={"echo": ["16"], "mean_reversion": ["1k"]},
    calls=20,
    min_calls=3,
    warmup=1,
    cell_seconds=0.05,
    concurrency=[1, 2],
    concurrency_seconds=0.05,
    references=False,
    sections=[],
)


class Wrapper:
    """Delegates everything to a real backend."""

    def __init__(self, inner):
        self.inner = inner
        self.name = f"wrapped {inner.name}"

    def __getattr__(self, attr):
        return getattr(self.inner, attr)


class Flaky(Wrapper):
    """calculate_mean_reversion raises on every second call."""

    def __init__(self, inner):
        super().__init__(inner)
        self.n = 0
        self.lock = threading.Lock()

    def calculate_mean_reversion(self, *a, **kw):
        with self.lock:
            self.n += 1
            n = self.n
        if n % 2 == 0:
            raise RuntimeError("flaky backend: every other call fails")
        return self.inner.calculate_mean_reversion(*a, **kw)


class Perturbed(Wrapper):
    """Gives a z-score that differs from the real one by 1e-12 (a tiny but real difference)."""

    def calculate_mean_reversion(self, *a, **kw):
        r = self.inner.calculate_mean_reversion(*a, **kw)
        return dataclasses.replace(r, zscore=r.zscore + 1e-12)


class WithoutEcho(Wrapper):
    def __getattr__(self, attr):
        if attr == "echo":
            raise AttributeError("echo")
        return getattr(self.inner, attr)


# ------------------------------------------------------------------------------- runner


def test_tiny_run_on_both_backends(backends):
    suite = br.run_suite(config=TINY, backends=backends)
    assert not suite.cancelled
    cells = suite.cells
    assert [(c.op, c.backend) for c in cells] == [
        ("echo", "pyo3"),
        ("echo", "grpc"),
        ("mean_reversion", "pyo3"),
        ("mean_reversion", "grpc"),
        ("mean_reversion:z+positions", "pyo3"),
        ("mean_reversion:z+positions", "grpc"),
    ]
    for c in cells:
        assert c.kind == "backend" and c.parity == "ok", (c.op, c.backend, c.parity_detail)
        assert c.ok and c.calls >= TINY.min_calls and c.failures == 0
        assert c.p50_us > 0 and c.p50_us <= c.p95_us <= c.p99_us
        assert c.ops_per_s > 0
        assert sorted(c.throughput) == [1, 2]
        assert all(t["ops_per_s"] > 0 and t["failures"] == 0 for t in c.throughput.values())
    # each backend cell is compared with the other backend
    assert set(cells[2].speedup) == {"grpc"} and set(cells[3].speedup) == {"pyo3"}
    assert cells[2].speedup["grpc"] == pytest.approx(1 / cells[3].speedup["pyo3"])
    assert cells[0].payload_values == 16 and cells[2].payload_values == 1000
    assert suite.derived["pyo3_1k_p50_us"] == cells[2].p50_us
    assert suite.machine["cores"] >= 1 and "numpy" in suite.machine["versions"]
    text = br.format_table(suite)
    assert "mean_reversion" in text and "PARITY FAILED" not in text
    d = json.loads(br.to_json(suite))
    assert len(d["cells"]) == 6 and d["parity_failures"] == []
    header = br.to_csv(suite).splitlines()[0].split(",")
    assert header == br.CSV_COLUMNS


def test_timeit_counts_failures_and_never_times_them():
    n = [0]

    def every_other():
        n[0] += 1
        if n[0] % 2 == 0:
            raise RuntimeError("boom")

    m = br.timeit(every_other, "x", "s", "b", calls=10, warmup=0, max_seconds=60)
    assert (m.calls, m.failures) == (5, 5)
    always = br.timeit(lambda: 1 / 0, "x", "s", "b", calls=7, warmup=0)
    assert (always.calls, always.failures) == (0, 7) and np.isnan(always.p50_us)
    t = br.throughput(every_other, 2, 20, 60)
    assert t["calls"] + t["failures"] == 20 and t["failures"] == 10


def test_failed_calls_are_counted_in_the_matrix(backends):
    cfg = dataclasses.replace(TINY, operations=["mean_reversion"])
    suite = br.run_suite(config=cfg, backends={"pyo3": backends["pyo3"], "grpc": Flaky(backends["grpc"])})
    py, gr = suite.cells[:2]  # mean_reversion (then its outputs= variant)
    assert py.failures == 0 and py.calls > 0
    assert gr.failures > 0 and gr.calls > 0
    assert abs(gr.failures - gr.calls) <= 1  # one call in two failed, and was not timed
    assert sum(t["failures"] for t in gr.throughput.values()) > 0
    assert "p50" in br.format_table(suite)


def test_parity_check_is_ok_on_the_real_backends(backends):
    p = br.check_parity("mean_reversion", backends, size="1k")
    assert p.status == "ok" and set(p.results) == {"pyo3", "grpc"}


def test_parity_check_fires_when_results_differ(backends):
    fake = {"pyo3": backends["pyo3"], "grpc": Perturbed(backends["grpc"])}
    p = br.check_parity("mean_reversion", fake, size="1k")
    assert p.status == "FAILED" and "zscore" in p.detail

    cfg = dataclasses.replace(TINY, operations=["mean_reversion"], references=True)
    suite = br.run_suite(config=cfg, backends=fake)
    bcells = [c for c in suite.cells if c.kind == "backend"]
    assert [c.parity for c in bcells] == ["FAILED"] * 4  # mean_reversion and its outputs= variant
    assert suite.parity_failures and all(c.speedup == {} for c in bcells)  # nothing derived from them
    assert "pyo3_1k_p50_us" not in suite.derived
    assert [t["status"] for t in br.target_status(suite) if t["key"] == "pyo3_1k_p50_us"] == ["INVALID"]
    assert "PARITY FAILED" in br.format_table(suite)
    assert json.loads(br.to_json(suite))["parity_failures"][0]["op"] == "mean_reversion"


def test_an_unavailable_operation_is_skipped_not_faked(backends):
    cfg = dataclasses.replace(TINY, operations=["echo"])
    suite = br.run_suite(config=cfg, backends={"pyo3": backends["pyo3"], "grpc": WithoutEcho(backends["grpc"])})
    py, gr = suite.cells
    assert py.ok and py.parity == "unchecked"
    assert gr.skipped == "not available" and gr.calls == 0 and np.isnan(gr.p50_us)
    assert "skipped: not available" in br.format_table(suite)


def test_sparse_is_measured_or_says_not_available(backends):
    cfg = dataclasses.replace(TINY, operations=["sparse"], sizes={"sparse": ["200x8"]})
    suite = br.run_suite(config=cfg, backends=backends)
    cells = {c.backend: c for c in suite.cells}
    for name in ("pyo3", "grpc"):
        c = cells[name]
        if c.skipped:
            assert c.skipped == "not available" and c.calls == 0
        else:
            assert c.parity == "ok" and c.p50_us > 0


def test_compare_results():
    from hft_lab.backends.results import PortfolioResult

    def pr(w, status="Solved", vol=0.1):
        return PortfolioResult(
            "min_variance",
            np.asarray(w),
            ("a", "b"),
            0.1,
            vol,
            float("nan"),
            np.array([0.5, 0.5]),
            status,
            3,
            np.array([]),
            np.array([]),
        )

    assert br.compare_results(pr([0.5, 0.5]), pr([0.5, 0.5])) is None  # NaN == NaN
    assert "weights" in br.compare_results(pr([0.5, 0.5]), pr([0.5, 0.5 + 1e-15]))
    assert "status" in br.compare_results(pr([0.5, 0.5]), pr([0.5, 0.5], status="MaxIter"))
    assert "volatility" in br.compare_results(pr([0.5, 0.5]), pr([0.5, 0.5], vol=0.1000001))
    assert br.compare_results(np.array([1, 2], dtype=np.int8), np.array([1, 3], dtype=np.int8))


def test_sizes_and_lists_are_validated():
    assert br.parse_sizes("mean_reversion", "1k, 100k 1M") == ["1k", "100k", "1M"]
    assert br.parse_size("mean_reversion", "1M") == (1_000_000,)
    assert br.parse_size("portfolio", "50") == (500, 50)
    assert br.parse_size("portfolio", "800x500") == (800, 500)
    assert br.parse_size("sparse", "10000x500") == (10000, 500)
    with pytest.raises(ValueError, match="TxN"):
        br.parse_size("sparse", "500")
    with pytest.raises(ValueError, match="not a number"):
        br.parse_sizes("echo", "16, lots")
    with pytest.raises(ValueError, match="whole numbers"):
        br.parse_int_list("1, two")
    assert br.parse_int_list("4 2,1") == [1, 2, 4]
    with pytest.raises(ValueError, match="unknown section"):
        br.run_suite(only=["nope"], backends={})


def test_cancel_between_calls_keeps_what_was_measured(backends):
    ev = threading.Event()
    cfg = dataclasses.replace(TINY, sizes={"echo": ["16", "32", "64", "128"], "mean_reversion": ["1k"]}, cell_seconds=0.05)

    def progress(e):
        if e.cell is not None:
            ev.set()  # cancel as soon as the first cell is in

    suite = br.run_suite(config=cfg, backends=backends, progress=progress, cancel=ev)
    assert suite.cancelled and 1 <= len(suite.cells) < 10


@pytest.mark.timeout(120)
def test_cli_quick_json(tmp_path):
    out = tmp_path / "latest.json"
    p = subprocess.run(
        [sys.executable, "-m", "hft_lab", "bench", "--quick", "--json", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    d = json.loads(p.stdout)
    assert set(d) >= {"machine", "config", "cells", "results", "derived", "targets", "parity_failures", "encoding", "cancelled"}
    assert json.loads(out.read_text())["cells"] == d["cells"]
    assert d["parity_failures"] == [] and not d["cancelled"]
    assert {"cpu", "cores", "python", "versions"} <= set(d["machine"])
    backend_cells = [c for c in d["cells"] if c["kind"] == "backend" and not c["skipped"]]
    assert {c["op"] for c in backend_cells} >= {"echo", "mean_reversion", "portfolio:max_sharpe", "portfolio:min_variance", "hmm"}
    for c in backend_cells:
        assert c["parity"] in ("ok", "unchecked") and c["p50_us"] > 0 and c["throughput"]
    for c in d["cells"]:
        if c["skipped"]:
            assert c["skipped"] == "not available" or c["skipped"].startswith("error"), c
            assert c["p50_us"] is None
    assert "grpc_stream_ticks_per_s_batch1000" in d["derived"]
    assert d["encoding"]["values"] == 1_000_000


# ------------------------------------------------------------------------------- the tab


@pytest.fixture
def bench_view(qtbot, grpc_manager):
    from hft_lab.backends import BackendConfig
    from hft_lab.backends.router import BackendRouter
    from hft_lab.ui.views.benchmark import BenchmarkView
    from hft_lab.ui.worker import TaskRunner

    port = int(grpc_manager.address.rsplit(":", 1)[1])
    router = BackendRouter(BackendConfig(grpc_host="127.0.0.1", grpc_port=port))
    runner = TaskRunner(router)
    view = BenchmarkView(runner)
    qtbot.addWidget(view)
    view.resize(1400, 850)
    view.show()
    yield view
    runner.cancel()
    router.stop()


@pytest.mark.gui
def test_tab_runs_fills_table_and_exports(qtbot, bench_view, tmp_path):
    view = bench_view
    view.set_config(dataclasses.replace(TINY, operations=["mean_reversion"], references=True))
    with qtbot.waitSignal(view.result_shown, timeout=60_000) as blocker:
        view.run()
    out = blocker.args[0]
    assert out.ok, out.value
    cells = view.suite.cells
    assert [c.backend for c in cells] == ["pyo3", "grpc", "pandas", "pandas-rolling-std", "pyo3", "grpc"]
    assert view.table.rowCount() == 6
    assert view.table.item(0, 2).text() == "PyO3 (in-process)" and view.table.item(0, 3).text() == "ok"
    assert view.table.item(3, 2).text() == "pandas rolling().std()"  # readable names, not internal ids
    assert "0 / 1" not in view.progress.text()
    assert view.progress.value() == view.progress.maximum() == 6
    assert "Done" in view.status.text() and "identical" in view.status.text()
    assert len(view.bar_plot.getPlotItem().items) >= 4  # one bar item per column
    assert len(view.size_plot.getPlotItem().listDataItems()) == 4
    assert len(view.conc_plot.getPlotItem().listDataItems()) == 2
    assert "cores" in view.summary.toPlainText() and "Parity" in view.summary.toPlainText()
    csv = view.export_csv(tmp_path / "b.csv").read_text()
    assert csv.splitlines()[0].startswith("op,size") and len(csv.splitlines()) == 7
    d = json.loads(view.export_json(tmp_path / "b.json").read_text())
    assert len(d["cells"]) == 6 and d["machine"]["cores"] >= 1
    png = view.export_png(tmp_path / "b.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    view.plot_tabs.setCurrentIndex(3)
    assert view.export_png(tmp_path / "t.png").stat().st_size > 1000


@pytest.mark.gui
def test_tab_rejects_bad_sizes_and_keeps_the_input(qtbot, bench_view):
    view = bench_view
    view.size_edits["mean_reversion"].setText("1k, lots")
    assert view.run() is None
    assert "Cannot run" in view.status.text() and "lots" in view.status.text()
    assert view.size_edits["mean_reversion"].text() == "1k, lots"
    assert view.run_button.isEnabled()


@pytest.mark.gui
def test_tab_cancel_keeps_partial_results(qtbot, bench_view):
    view = bench_view
    cfg = dataclasses.replace(
        TINY, operations=["echo"], sizes={"echo": ["16", "1k", "10k", "100k", "1M"]}, cell_seconds=0.3, concurrency_seconds=0.3
    )
    view.set_config(cfg)
    with qtbot.waitSignal(view.cell_added, timeout=30_000):
        view.run()
    assert view.cancel_button.isEnabled() and not view.run_button.isEnabled()
    view.cancel_button.click()
    assert "Cancelled" in view.status.text()
    n = view.table.rowCount()
    assert 1 <= n < 10
    qtbot.waitUntil(lambda: view.run_button.isEnabled(), timeout=30_000)  # the worker has stopped
    qtbot.wait(200)
    assert view.table.rowCount() == n  # nothing from the cancelled run arrives later
    assert view.export_csv  # partial results can be exported
    assert view.csv_button.isEnabled()
