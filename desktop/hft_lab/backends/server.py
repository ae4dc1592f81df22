"""ServerManager: runs grpcd as a child process on loopback.

- spawn with `--port 0 --managed`; grpcd prints one JSON line with the port it bound (no
  pick-a-free-port race); wait until grpc.health.v1 says SERVING;
- forward grpcd's structured stderr to Python logging (logger "grpcd", shown in the log panel);
- a watchdog thread restarts grpcd with backoff when it dies;
- stop on exit: close stdin (grpcd exits on EOF), SIGTERM, then SIGKILL after a grace period.
  If this process is killed, grpcd exits by itself (PR_SET_PDEATHSIG + getppid + stdin EOF).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Callable

from .config import BackendConfig
from .errors import BackendUnavailable

log = logging.getLogger("hft_lab.server")
grpcd_log = logging.getLogger("grpcd")

_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING, "ERROR": logging.ERROR}


def find_grpcd(explicit: str | None = None) -> Path:
    """The grpcd binary: explicit path, $GRPCD_PATH, the PyInstaller bundle, the cargo build, PATH."""
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    if os.environ.get("GRPCD_PATH"):
        candidates.append(Path(os.environ["GRPCD_PATH"]))
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


_managers: "weakref.WeakSet[ServerManager]" = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for m in list(_managers):
        m.stop()


class ServerManager:
    STATES = ("stopped", "starting", "serving", "down", "failed")
    BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)

    def __init__(
        self,
        config: BackendConfig | None = None,
        on_state: Callable[[str, str], None] | None = None,
        health_interval_s: float = 2.0,
        extra_env: dict[str, str] | None = None,
    ):
        self.config = config or BackendConfig()
        self.on_state = on_state
        self.health_interval_s = health_interval_s
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
    def start(self, timeout: float | None = None) -> str:
        """Spawn grpcd (from the calling thread: PDEATHSIG is tied to it) and wait for SERVING."""
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
        binary = find_grpcd(self.config.grpcd_path)
        host = self.config.grpc_host or "127.0.0.1"
        cmd = [str(binary), "--host", host, "--port", "0", "--managed", "--max-message-mb", str(self.config.max_message_mb)]
        env = dict(os.environ, **self.extra_env)
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, close_fds=True
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
        for raw in iter(proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
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
        failures = 0
        while not self._stopping.wait(self.health_interval_s if self._state == "serving" else 0.1):
            proc = self._proc
            if proc is None:
                continue
            rc = proc.poll()
            if rc is None:
                failures = 0 if self._state == "serving" else failures
                continue
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

    @staticmethod
    def _kill(proc: subprocess.Popen, grace: float = 3.0) -> None:
        if proc.poll() is not None:
            return
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
