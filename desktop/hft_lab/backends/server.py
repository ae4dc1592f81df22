"""ServerManager: runs grpcd as a child process on loopback.

- spawn with `--port 0 --managed`; grpcd prints one JSON line with the port it bound (no
  pick-a-free-port race); wait until grpc.health.v1 says SERVING;
- forward grpcd's structured stderr to Python logging (logger "grpcd", shown in the log panel);
- a watchdog thread checks grpc.health.v1 every second (not only that the process exists): two
  failed checks in a row (1 s deadline each) mark a hung server "down" within ~3 s, and the
  router then sends calls to PyO3; a server hung for HUNG_RESTART_S is killed and restarted;
  a dead one is restarted with backoff;
- grpcd is spawned from one long-lived thread (`_Spawner`): PR_SET_PDEATHSIG follows the thread
  that forked, so `start()` works from any thread (a worker that exits would kill grpcd at once);
- grpcd runs in its own session/process group, so Ctrl+C in the terminal reaches the app (which
  quits cleanly and stops grpcd) but not grpcd alone;
- stop on exit: close stdin (grpcd exits on EOF), SIGTERM, then SIGKILL after a grace period.
  If this process is killed, grpcd exits by itself (PR_SET_PDEATHSIG + getppid + stdin EOF).

`HealthMonitor` does the same health watching, off the GUI thread, for a remote server (GRPC_HOST /
GRPC_PORT): callers read its cached state, a server that is down is re-probed with backoff.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import json
import logging
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path

from .config import BackendConfig
from .errors import BackendUnavailable

log = logging.getLogger("hft_lab.server")
grpcd_log = logging.getLogger("grpcd")

_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING, "ERROR": logging.ERROR}


class GrpcdPathError(BackendUnavailable):
    """GRPCD_PATH (or an explicit grpcd path) does not name an executable file."""


def find_grpcd(explicit: str | None = None) -> Path:
    """The grpcd binary: explicit path, $GRPCD_PATH, the PyInstaller bundle, the cargo build, PATH.
    A path the user gave (explicit or GRPCD_PATH) must be an executable file: it is never silently
    replaced by another grpcd."""
    for given, what in ((explicit, "the grpcd path"), (os.environ.get("GRPCD_PATH"), "GRPCD_PATH")):
        if not given:
            continue
        p = Path(given)
        if not p.exists():
            raise GrpcdPathError(f"{what} '{given}' does not exist")
        if not p.is_file():
            raise GrpcdPathError(f"{what} '{given}' is not a file")
        if not os.access(p, os.X_OK):
            raise GrpcdPathError(f"{what} '{given}' is not executable (chmod +x it, or unset GRPCD_PATH)")
        return p
    candidates: list[Path] = []
    if hasattr(sys, "_MEIPASS"):
        candidates.append(Path(sys._MEIPASS) / "bin" / "grpcd")
    repo = Path(__file__).resolve().parents[3]
    candidates += [repo / "target" / "release" / "grpcd", repo / "target" / "debug" / "grpcd"]
    which = shutil.which("grpcd")
    if which:
        candidates.append(Path(which))
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    raise BackendUnavailable(
        "grpcd binary not found (looked at: " + ", ".join(str(c) for c in candidates) + "); run 'make build'"
    )


class _Spawner:
    """One long-lived daemon thread that forks every grpcd. PR_SET_PDEATHSIG fires when the
    *thread* that forked the child exits, so children must not be forked from short-lived
    workers; this thread lives as long as the process."""

    def __init__(self):
        self._q: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def popen(self, *args, **kwargs) -> subprocess.Popen:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="grpcd-spawner", daemon=True)
                self._thread.start()
        if threading.current_thread() is self._thread:
            return subprocess.Popen(*args, **kwargs)
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self._q.put((fut, args, kwargs))
        return fut.result()

    def _run(self) -> None:
        while True:
            fut, args, kwargs = self._q.get()
            try:
                fut.set_result(subprocess.Popen(*args, **kwargs))
            except BaseException as e:  # handed to the caller
                fut.set_exception(e)


_spawner = _Spawner()

_managers: weakref.WeakSet[ServerManager] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for m in list(_managers):
        m.stop()


def _stopped(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("T", "t")
    except (OSError, IndexError):
        return False


class ServerManager:
    STATES = ("stopped", "starting", "serving", "down", "failed")
    BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)
    HUNG_RESTART_S = 15.0  # a server alive but not answering health for this long is restarted

    def __init__(
        self,
        config: BackendConfig | None = None,
        on_state: Callable[[str, str], None] | None = None,
        health_interval_s: float = 1.0,
        extra_env: dict[str, str] | None = None,
        health_timeout_s: float = 1.0,
    ):
        # the grpcd we spawn is plaintext on loopback, without a token, whatever GRPC_TLS_* say
        self.config = (config or BackendConfig()).local()
        self.on_state = on_state
        self.health_interval_s = health_interval_s
        self.health_timeout_s = health_timeout_s
        self.extra_env = extra_env or {}
        self._proc: subprocess.Popen | None = None
        self._port = 0
        self._state = "stopped"
        self._detail = ""
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._watchdog: threading.Thread | None = None
        self.restarts = 0
        _managers.add(self)

    # ---- state ----
    @property
    def state(self) -> str:
        return self._state

    @property
    def address(self) -> str:
        host = self.config.grpc_host or "127.0.0.1"
        host = "127.0.0.1" if host == "localhost" else host
        return f"[{host}]:{self._port}" if ":" in host else f"{host}:{self._port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _set_state(self, state: str, detail: str = "") -> None:
        if state == self._state and detail == self._detail:
            return
        self._state, self._detail = state, detail
        (log.warning if state in ("down", "failed") else log.info)("grpcd %s%s", state, f": {detail}" if detail else "")
        if self.on_state:
            try:
                self.on_state(state, detail)
            except Exception:  # never let a UI callback kill the watchdog
                log.exception("on_state callback failed")

    # ---- lifecycle ----
    @property
    def detail(self) -> str:
        return self._detail

    def start(self, timeout: float | None = None) -> str:
        """Spawn grpcd (from the long-lived spawner thread: PDEATHSIG is tied to the forking
        thread) and wait for SERVING. Works from any thread."""
        with self._lock:
            if self._proc and self._proc.poll() is None and self._state == "serving":
                return self.address
            self._stopping.clear()
            self._spawn(timeout or self.config.connect_timeout_s)
            if self._watchdog is None or not self._watchdog.is_alive():
                self._watchdog = threading.Thread(target=self._watch, name="grpcd-watchdog", daemon=True)
                self._watchdog.start()
            return self.address

    def _spawn(self, timeout: float) -> None:
        self._set_state("starting")
        try:
            binary = find_grpcd(self.config.grpcd_path)
        except BackendUnavailable as e:
            self._set_state("failed", str(e))
            raise
        host = self.config.grpc_host or "127.0.0.1"
        cmd = [str(binary), "--host", host, "--port", "0", "--managed", "--max-message-mb", str(self.config.max_message_mb)]
        # issue 16: a successful call logs at DEBUG; unless someone shows those, grpcd does not
        # write them (a line per call woke this process's stderr thread, which took the GIL)
        cmd += ["--log-level", "debug" if grpcd_log.isEnabledFor(logging.DEBUG) else "info"]
        env = dict(os.environ, **self.extra_env)
        try:
            # own session: a Ctrl+C in the terminal goes to the app, not to grpcd alone
            proc = _spawner.popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                close_fds=True,
                start_new_session=True,
            )
        except OSError as e:
            self._set_state("failed", f"cannot start {binary}: {e}")
            raise BackendUnavailable(f"cannot start grpcd ({binary}): {e}") from e
        self._proc = proc
        threading.Thread(target=self._pump_stderr, args=(proc,), name="grpcd-stderr", daemon=True).start()
        port = self._read_port(proc, timeout)
        self._port = port
        deadline = time.monotonic() + timeout
        from .grpc_backend import GrpcBackend  # local import: grpc is heavy

        probe = GrpcBackend(self.config, address=self.address)
        try:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    break
                if probe.health(timeout=0.5) == "SERVING":
                    self._set_state("serving", f"pid {proc.pid}, {self.address}")
                    return
                time.sleep(0.05)
        finally:
            probe.close()
        self._kill(proc)
        self._set_state("failed", "grpcd did not become SERVING in time")
        raise BackendUnavailable(f"grpcd did not report SERVING within {timeout:.0f} s")

    def _read_port(self, proc: subprocess.Popen, timeout: float) -> int:
        result: dict = {}

        def reader():
            line = proc.stdout.readline()
            result["line"] = line.decode("utf-8", "replace").strip()

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        t.join(timeout)
        line = result.get("line", "")
        try:
            msg = json.loads(line)
            if msg.get("event") == "listening":
                return int(msg["port"])
        except (ValueError, KeyError, TypeError):
            pass
        rc = proc.poll()
        self._kill(proc)
        why = f"exit code {rc}" if rc is not None else "no 'listening' line"
        self._set_state("failed", f"grpcd failed to start ({why})")
        raise BackendUnavailable(f"grpcd failed to start on {self.config.grpc_host} ({why}); see the log for its message")

    @staticmethod
    def _pump_stderr(proc: subprocess.Popen) -> None:
        assert proc.stderr is not None  # grpcd is always started with stderr=PIPE
        for raw in iter(proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            if '"level":"DEBUG"' in line and not grpcd_log.isEnabledFor(logging.DEBUG):
                continue  # one per successful RPC: skip the JSON parse when nobody shows them
            try:
                rec = json.loads(line)
                level = _LEVELS.get(rec.pop("level", "INFO"), logging.INFO)
                msg = rec.pop("msg", "")
                rec.pop("ts", None)
                extra = " ".join(f"{k}={v}" for k, v in rec.items())
                grpcd_log.log(level, "%s%s", msg, f" ({extra})" if extra else "")
            except ValueError:
                grpcd_log.warning("%s", line)

    def _watch(self) -> None:
        failures = 0  # restarts in a row (backoff)
        bad_checks = 0  # failed health checks in a row
        hung_since: float | None = None
        probe = None
        from .grpc_backend import GrpcBackend

        try:
            while not self._stopping.wait(self.health_interval_s if self._state == "serving" and not bad_checks else 0.05):
                proc = self._proc
                if proc is None:
                    continue
                rc = proc.poll()
                if rc is None:
                    if self._state not in ("serving", "down"):
                        continue  # starting: _spawn does its own health wait
                    if probe is None or probe.address != self.address:
                        if probe is not None:
                            probe.close()
                        probe = GrpcBackend(self.config, address=self.address)
                    if probe.health(timeout=self.health_timeout_s) == "SERVING":
                        if self._state == "down" and proc is self._proc:
                            self._set_state("serving", f"pid {proc.pid}, {self.address} (answering again)")
                        bad_checks, hung_since, failures = 0, None, 0
                        continue
                    bad_checks += 1
                    if bad_checks >= 2 and self._state == "serving" and proc is self._proc:
                        hung_since = time.monotonic()
                        self._set_state("down", f"grpcd (pid {proc.pid}) does not answer health checks")
                    if hung_since is not None and time.monotonic() - hung_since > self.HUNG_RESTART_S:
                        log.warning("grpcd pid %d hung for %.0f s: killing it", proc.pid, self.HUNG_RESTART_S)
                        proc.kill()
                        proc.wait()
                        bad_checks, hung_since = 0, None
                    continue
                bad_checks, hung_since = 0, None
                self._set_state("down", f"grpcd exited with code {rc}")
                delay = self.BACKOFF_S[min(failures, len(self.BACKOFF_S) - 1)]
                failures += 1
                if self._stopping.wait(delay):
                    return
                with self._lock:
                    if self._stopping.is_set():
                        return
                    try:
                        self._spawn(self.config.connect_timeout_s)
                        self.restarts += 1
                        log.info("grpcd restarted (restart #%d)", self.restarts)
                    except BackendUnavailable as e:
                        log.warning("restart failed: %s", e)
        finally:
            if probe is not None:
                probe.close()

    @staticmethod
    def _kill(proc: subprocess.Popen, grace: float = 3.0) -> None:
        if proc.poll() is not None:
            return
        if _stopped(proc.pid):  # SIGSTOP'd: it cannot act on EOF or SIGTERM
            proc.kill()
            proc.wait()
            return
        assert proc.stdin is not None  # grpcd is always started with stdin=PIPE
        try:
            proc.stdin.close()  # grpcd --managed exits on stdin EOF
        except OSError:
            pass
        try:
            proc.wait(grace / 2)
            return
        except subprocess.TimeoutExpired:
            pass
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None:
                self._kill(proc)
                self._set_state("stopped")
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join(2)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


class HealthMonitor:
    """Watches a remote grpcd's health from a background thread, so that no health RPC runs on
    the GUI thread and a server that is down (or a port held by something that is not grpcd) is
    not waited for on every call: callers read `state`; a down server is re-probed with backoff.
    """

    BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0)

    def __init__(
        self, backend, on_state: Callable[[str, str], None] | None = None, interval_s: float = 2.0, timeout_s: float = 1.0
    ):
        self.backend = backend
        self.on_state = on_state
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._state = "starting"
        self._detail = ""
        self.from_check = True  # the last change came from a health check (not from mark_down)
        self._checked = threading.Event()  # the first check is done
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="grpc-health-monitor", daemon=True)
        self._thread.start()

    @property
    def state(self) -> str:
        return self._state

    @property
    def detail(self) -> str:
        return self._detail

    def wait_first_check(self, timeout: float) -> bool:
        return self._checked.wait(timeout)

    def _set(self, state: str, detail: str, from_check: bool = True) -> None:
        if (state, detail) == (self._state, self._detail):
            return
        self._state, self._detail, self.from_check = state, detail, from_check
        (log.warning if state == "down" else log.info)("remote grpcd %s%s", state, f": {detail}" if detail else "")
        if self.on_state:
            try:
                self.on_state(state, detail)
            except Exception:
                log.exception("on_state callback failed")

    def mark_down(self, detail: str) -> None:
        """A call found the server unreachable: believe it now, re-probe later (with backoff)."""
        self._set("down", detail, from_check=False)
        self._checked.set()

    def recheck(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        fails = 0
        while not self._stopping.is_set():
            status = self.backend.health(timeout=self.timeout_s)
            if self._stopping.is_set():
                return
            if status == "SERVING":
                fails = 0
                self._set("serving", self.backend.address)
                delay = self.interval_s
            else:
                refusal = self.backend.config.plaintext_refusal()
                self._set("down", refusal or f"{self.backend.address} does not answer gRPC health checks ({status})")
                delay = self.BACKOFF_S[min(fails, len(self.BACKOFF_S) - 1)]
                fails += 1
            self._checked.set()
            self._wake.wait(delay)
            self._wake.clear()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
