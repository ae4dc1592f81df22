"""Shared fixtures: both backends (one grpcd for the session), real data from PyPI wheels."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import hft_lab.ui  # noqa: F401,I001  (start-up, issue 16: the app's fast Qt/pyqtgraph imports, before any test imports pyqtgraph)
import numpy as np
import pytest
from hft_lab.backends import BackendConfig
from hft_lab.backends.grpc_backend import GrpcBackend
from hft_lab.backends.pyo3_backend import Pyo3Backend
from hft_lab.backends.server import ServerManager


# ---- make test-python runs the suite on 2 pytest-xdist workers (the machine's 2 cores), one test
# file per work unit (module fixtures are built once); the two files that share the PyInstaller
# bundle (a session fixture writing dist/) form one unit, so it is built once, by one worker.
# Timing-sensitive tests are marked `serial` and run alone afterwards (Makefile).
_BUNDLE_FILES = ("test_dist.py", "test_install.py")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class _ByFile(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "bundle" if path.endswith(_BUNDLE_FILES) else path

    return _ByFile(config, log)


@pytest.fixture(autouse=True)
def _collect_garbage_on_the_main_thread():
    """As the app does (hft_lab.ui.gc_guard): no automatic cyclic collection, which could run on a
    worker thread and destroy Qt objects there (a deadlock seen in this suite); collect here, on
    the main thread, after every test."""
    import gc

    gc.disable()
    yield
    gc.collect()


@pytest.fixture(scope="session")
def grpc_manager():
    m = ServerManager(BackendConfig(), extra_env={"GRPCD_TEST_HOOKS": "1"})
    m.start()
    yield m
    m.stop()


@pytest.fixture(scope="session")
def grpc_backend(grpc_manager):
    b = GrpcBackend(BackendConfig(call_timeout_s=300), address=lambda: grpc_manager.address)
    yield b
    b.close()


@pytest.fixture(scope="session")
def pyo3_backend():
    return Pyo3Backend()


@pytest.fixture(scope="session")
def backends(pyo3_backend, grpc_backend):
    return {"pyo3": pyo3_backend, "grpc": grpc_backend}


@pytest.fixture(params=["pyo3", "grpc"])
def backend(request, backends):
    return backends[request.param]


@pytest.fixture(scope="session")
def sp500_stocks():
    from skfolio.datasets import load_sp500_dataset

    return load_sp500_dataset()


@pytest.fixture(scope="session")
def sp500_index():
    import arch.data.sp500

    return arch.data.sp500.load()["Adj Close"]


@pytest.fixture
def rng():
    return np.random.default_rng(20261124)


# ---- the packaged app, built once per test session (issue 19; used by test_dist.py and test_install.py)


@pytest.fixture(scope="session")
def dist_bundle():
    """dist/hft-lab/ (+ its LICENSES/ and the .tar.xz), built ONCE per session by the Makefile recipe
    of `make dist` (`make dist-bundle`: without the `build` prerequisite, fresh under `make test`).
    XZ_LEVEL=-0: the archive holds the same files as `make dist` writes, compressed faster.
    HFT_SKIP_DIST=1 skips every test that needs it (PyInstaller takes ~1-3 minutes)."""
    import os
    import subprocess
    from pathlib import Path

    if os.environ.get("HFT_SKIP_DIST") == "1":
        pytest.skip("HFT_SKIP_DIST=1: not building the PyInstaller bundle")
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")}
    p = subprocess.run(
        ["make", "--no-print-directory", "dist-bundle", "XZ_LEVEL=-0"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if p.returncode != 0:
        pytest.fail(f"make dist-bundle failed (exit {p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    print(p.stdout.strip().splitlines()[-1])  # the size line
    return root / "dist" / "hft-lab"
