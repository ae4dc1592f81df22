"""Where a sharded job runs: in this process (PyO3), on one gRPC server, or on a Ray cluster.

A job is a module-level function ``task(backend, shared, shard) -> result`` plus the data every
shard needs (``shared``, e.g. the prices: sent once) and a list of small shard payloads (a range of
pairs, a chunk of parameter sets). Every executor returns the shard results IN SHARD ORDER, whatever
order they finished in, so the merged result is the same on every executor: the numbers come from
the same Rust core (PyO3 on a Ray worker, PyO3 here, or grpcd, which both backends keep
bit-identical).

* `InProcessExecutor` — the PyO3 backend in this process, one shard after the other by default.
  A scan's shard is parallel inside the core (rayon). More threads (``workers``) help only when a
  shard spends most of its time in the core: a sweep of short calls is Python-bound between them,
  and two threads contending for the GIL were measured SLOWER than one (tools/ray_scaling.py).
* `GrpcExecutor` — one grpcd (spawned or remote) through `GrpcBackend`; shards are sent
  concurrently over the one channel and grpcd runs them on its own threads.
* `RayExecutor` — a Ray cluster (`address`, else ``RAY_ADDRESS``; ``ray://host:10001`` goes
  through Ray Client; ``"local"`` starts a Ray on this machine). Each shard is a Ray task that
  imports ``hft_lab._rustcore`` on the worker and calls the core through `Pyo3Backend`; ``shared``
  is put into the object store once. Progress per finished shard, `CancelToken` → ``ray.cancel``
  of the remaining tasks, ``max_retries`` re-runs the shards of a lost worker or node.

Ray is an optional dependency (``pip install hft-lab[cluster]``): nothing here imports it until a
`RayExecutor` runs, and `ray_available()` says whether it can.
"""

from __future__ import annotations

import abc
import concurrent.futures as cf
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import Backend, CancelToken
from ..backends.errors import BackendUnavailable, Cancelled

Task = Callable[..., Any]  # task(backend, shared, shard, cancel=None) -> shard result
Progress = Callable[[int, int], Any]

EXECUTOR_KINDS = ("inprocess", "grpc", "ray")


@dataclass
class ShardInfo:
    """Where and how long one shard ran (diagnostics; never part of a result)."""

    index: int
    node: str
    pid: int
    seconds: float


@dataclass
class RunReport:
    executor: str
    shards: int
    wall_seconds: float = 0.0
    shard_info: list[ShardInfo] = field(default_factory=list)
    cancelled: int = 0  # tasks still pending when the run stopped (cancel or error), asked to stop

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(sorted({s.node for s in self.shard_info}))


class Executor(abc.ABC):
    """Runs ``task(backend, shared, shard)`` for every shard; results in shard order."""

    kind: str = ""
    name: str = ""

    def __init__(self) -> None:
        self.last_report: RunReport | None = None

    @abc.abstractmethod
    def map(
        self,
        task: Task,
        shared: Any,
        shards: Sequence[Any],
        progress: Progress | None = None,
        cancel: CancelToken | None = None,
    ) -> list[Any]: ...

    def default_shards(self) -> int:
        """How many shards to cut a job into by default (a few per worker slot, so the load
        balances and progress moves)."""
        return 4 * max(1, self.parallelism())

    def parallelism(self) -> int:
        return 1

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _BackendPoolExecutor(Executor):
    """Shards on a thread pool against one backend object (PyO3 in-process or gRPC)."""

    def __init__(self, backend: Backend, workers: int = 1) -> None:
        super().__init__()
        if isinstance(workers, bool) or int(workers) != workers or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        self.backend = backend
        self.workers = int(workers)

    def parallelism(self) -> int:
        return self.workers

    def map(self, task, shared, shards, progress=None, cancel=None):
        shards = list(shards)
        n = len(shards)
        report = RunReport(self.kind, n)
        results: list[Any] = [None] * n
        t0 = time.perf_counter()
        if cancel is not None and cancel.cancelled:
            raise Cancelled("cancelled before start")
        pid = os.getpid()

        def one(i):
            if cancel is not None and cancel.cancelled:
                raise Cancelled("cancelled")
            s0 = time.perf_counter()
            r = _call_task(task, self.backend, shared, shards[i], cancel)
            return i, r, time.perf_counter() - s0

        done = 0
        with cf.ThreadPoolExecutor(max_workers=min(self.workers, max(1, n)), thread_name_prefix="hftlab-shard") as pool:
            pending = {pool.submit(one, i) for i in range(n)}
            try:
                while pending:
                    finished, pending = cf.wait(pending, timeout=0.1, return_when=cf.FIRST_COMPLETED)
                    for f in finished:
                        i, r, secs = f.result()
                        results[i] = r
                        report.shard_info.append(ShardInfo(i, "local", pid, secs))
                        done += 1
                        if progress is not None:
                            progress(done, n)
                        # several shards can finish between two waits (a loaded machine): once
                        # cancelled, report none of the others
                        if cancel is not None and cancel.cancelled:
                            raise Cancelled("cancelled")
                    if cancel is not None and cancel.cancelled:
                        raise Cancelled("cancelled")
            except BaseException:
                for f in pending:
                    f.cancel()
                raise
        report.wall_seconds = time.perf_counter() - t0
        report.shard_info.sort(key=lambda s: s.index)
        self.last_report = report
        return results


def _call_task(task: Task, backend: Backend, shared: Any, shard: Any, cancel: CancelToken | None):
    """Tasks take an optional ``cancel`` keyword (the core polls it); pass it when there is one."""
    if cancel is None:
        return task(backend, shared, shard)
    return task(backend, shared, shard, cancel=cancel)


class InProcessExecutor(_BackendPoolExecutor):
    kind = "inprocess"
    name = "In-process (PyO3)"

    def __init__(self, backend: Backend | None = None, workers: int = 1) -> None:
        if backend is None:
            from ..backends.pyo3_backend import Pyo3Backend

            backend = Pyo3Backend()
        if not backend.is_available():
            raise BackendUnavailable("the PyO3 extension hft_lab._rustcore is not built; run 'make build'")
        super().__init__(backend, workers)


class GrpcExecutor(_BackendPoolExecutor):
    kind = "grpc"
    name = "gRPC server"

    def __init__(self, backend: Backend, workers: int = 2) -> None:
        # The caller owns the GrpcBackend (and the server it talks to): the app's ServerManager,
        # or a remote grpcd. Shards go concurrently over its one channel.
        super().__init__(backend, workers)


# ---------------------------------------------------------------- Ray ----------------------------------------


def ray_available() -> tuple[bool, str]:
    """(True, version) when Ray can be imported; else (False, why) — e.g. the packaged app, which
    does not bundle Ray."""
    try:
        import ray
    except ImportError as e:
        return False, (
            f"Ray is not installed ({e}). Install the cluster extra: pip install 'hft-lab[cluster]' "
            "(the packaged app does not include Ray; run from a Python environment to use a cluster)"
        )
    return True, ray.__version__


_RAY_LOCK = threading.Lock()
_RAY_CONNECTED_TO: str | None = None
_WORKER_BACKEND: Backend | None = None


def _worker_backend() -> Backend:
    """The PyO3 backend of this Ray worker process (created once per process)."""
    global _WORKER_BACKEND
    if _WORKER_BACKEND is None:
        from ..backends.pyo3_backend import Pyo3Backend

        _WORKER_BACKEND = Pyo3Backend()
    return _WORKER_BACKEND


def _ray_shard(task: Task, shared: Any, shard: Any, index: int, threads_per_task: int):
    """Runs on a Ray worker. The global rayon pool of the core reads RAYON_NUM_THREADS when the
    first parallel call starts in this process: keep it to the task's CPU share so a node's worker
    processes do not oversubscribe its cores."""
    os.environ.setdefault("RAYON_NUM_THREADS", str(threads_per_task))
    import ray

    s0 = time.perf_counter()
    r = task(_worker_backend(), shared, shard)
    node = ray.get_runtime_context().get_node_id()
    return index, r, node, os.getpid(), time.perf_counter() - s0


def _check_reachable(address: str, timeout: float = 3.0) -> None:
    """Fail fast, with the address in the message, when a host:port (or ray://host:port) cannot
    be reached at all: ray.init would otherwise retry for a minute or more."""
    import socket

    a = address[len("ray://") :] if address.startswith("ray://") else address
    if a in ("auto", "local") or ":" not in a:
        return
    host, _, port = a.rpartition(":")
    host = host.strip("[]")
    try:
        port_n = int(port)
    except ValueError:
        raise ValueError(f"Ray address {address!r}: the port {port!r} is not a number") from None
    try:
        with socket.create_connection((host, port_n), timeout=timeout):
            pass
    except OSError as e:
        raise BackendUnavailable(f"cannot reach the Ray cluster at {address}: {e}") from None


_REMOTE = None


def _remote_shard(ray):
    global _REMOTE
    if _REMOTE is None:
        _REMOTE = ray.remote(_ray_shard)
    return _REMOTE


class RayExecutor(Executor):
    """Shards as Ray tasks on a cluster; see the module docstring.

    address: ``"host:6379"`` (a cluster this machine can join as a driver), ``"ray://host:10001"``
    (Ray Client), ``"auto"`` (the cluster started on this machine with ``ray start``), ``"local"``
    (start a private Ray here), or None → ``RAY_ADDRESS``.
    """

    kind = "ray"
    name = "Ray cluster"

    def __init__(
        self,
        address: str | None = None,
        *,
        max_retries: int = 3,
        num_cpus_per_task: float = 1,
        runtime_env: dict | None = None,
        init_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        addr = address if address not in (None, "") else os.environ.get("RAY_ADDRESS", "")
        if not addr:
            raise ValueError("no Ray cluster address: give one (host:port, ray://host:10001, auto or local) or set RAY_ADDRESS")
        if not isinstance(addr, str):
            raise TypeError(f"address must be a string, got {type(addr).__name__}")
        if int(max_retries) != max_retries or max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        if not (num_cpus_per_task > 0):
            raise ValueError(f"num_cpus_per_task must be > 0, got {num_cpus_per_task!r}")
        self.address = addr.strip()
        self.max_retries = int(max_retries)
        self.num_cpus_per_task = num_cpus_per_task
        self.runtime_env = runtime_env
        self.init_kwargs = dict(init_kwargs or {})

    def _ray(self):
        ok, why = ray_available()
        if not ok:
            raise BackendUnavailable(why)
        import ray

        global _RAY_CONNECTED_TO
        with _RAY_LOCK:
            if not (ray.is_initialized() and _RAY_CONNECTED_TO in (None, self.address)):
                _check_reachable(self.address)
            if ray.is_initialized() and _RAY_CONNECTED_TO is None:
                # the caller connected this process itself (ray.init(...)): use that connection
                _RAY_CONNECTED_TO = self.address
            if ray.is_initialized() and _RAY_CONNECTED_TO != self.address:
                ray.shutdown()
            if not ray.is_initialized():
                kw: dict[str, Any] = dict(ignore_reinit_error=True, log_to_driver=False, logging_level="WARNING")
                kw.update(self.init_kwargs)
                if self.runtime_env is not None:
                    kw["runtime_env"] = self.runtime_env
                addr = None if self.address == "local" else self.address
                try:
                    ray.init(address=addr, **kw)
                except Exception as e:
                    raise BackendUnavailable(f"cannot connect to the Ray cluster at {self.address}: {e}") from e
                _RAY_CONNECTED_TO = self.address
        return ray

    def parallelism(self) -> int:
        try:
            ray = self._ray()
            return max(1, int(ray.cluster_resources().get("CPU", 1) / self.num_cpus_per_task))
        except Exception:
            return 1

    def map(self, task, shared, shards, progress=None, cancel=None):
        shards = list(shards)
        n = len(shards)
        if cancel is not None and cancel.cancelled:
            raise Cancelled("cancelled before start")
        ray = self._ray()
        t0 = time.perf_counter()
        report = RunReport(self.kind, n)
        remote = _remote_shard(ray).options(
            num_cpus=self.num_cpus_per_task,
            max_retries=self.max_retries,
            retry_exceptions=False,  # a bad input is not retried; a lost worker is
            scheduling_strategy="SPREAD",
        )
        shared_ref = ray.put(shared)
        threads = max(1, int(self.num_cpus_per_task))
        pending = [remote.remote(task, shared_ref, shards[i], i, threads) for i in range(n)]
        results: list[Any] = [None] * n
        done = 0
        try:
            while pending:
                if cancel is not None and cancel.cancelled:
                    raise Cancelled("cancelled")
                ready, pending = ray.wait(pending, num_returns=1, timeout=0.1)
                for ref in ready:
                    # Fetch at once: a result kept only in a node's object store would be lost with the node.
                    try:
                        i, r, node, pid, secs = ray.get(ref)
                    except ray.exceptions.RayTaskError as e:
                        # the task's own error (e.g. a ValueError naming a bad parameter): raise it as is
                        cause = getattr(e, "cause", None)
                        if isinstance(cause, Exception):
                            raise cause from None
                        raise
                    results[i] = r
                    report.shard_info.append(ShardInfo(i, node, pid, secs))
                    done += 1
                    if progress is not None:
                        progress(done, n)
        except BaseException:
            for ref in pending:
                try:
                    ray.cancel(ref, force=False)
                except Exception:  # noqa: BLE001 - already finished or gone
                    pass
            report.cancelled = len(pending)
            report.wall_seconds = time.perf_counter() - t0
            self.last_report = report
            raise
        report.wall_seconds = time.perf_counter() - t0
        report.shard_info.sort(key=lambda s: s.index)
        self.last_report = report
        return results

    def close(self) -> None:
        """Disconnect this process from the cluster (the cluster keeps running)."""
        global _RAY_CONNECTED_TO
        try:
            import ray
        except ImportError:
            return
        with _RAY_LOCK:
            if ray.is_initialized():
                ray.shutdown()
            _RAY_CONNECTED_TO = None


def make_executor(kind: str, *, backend: Backend | None = None, address: str | None = None, **kw) -> Executor:
    """``kind`` is one of EXECUTOR_KINDS; ``backend`` is the GrpcBackend for "grpc" (or a PyO3
    backend for "inprocess"); ``address`` the Ray address for "ray"."""
    if not isinstance(kind, str) or kind.lower().replace("-", "") not in EXECUTOR_KINDS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTOR_KINDS)}, got {kind!r}")
    k = kind.lower().replace("-", "")
    if k == "inprocess":
        return InProcessExecutor(backend, **kw)
    if k == "grpc":
        if backend is None:
            raise ValueError("the grpc executor needs a GrpcBackend (backend=...)")
        return GrpcExecutor(backend, **kw)
    return RayExecutor(address, **kw)
