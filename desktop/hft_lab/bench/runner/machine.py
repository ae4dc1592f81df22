"""The benchmark (hft_lab.bench.runner): machine description; the Python grpcio echo server (reference
for the echo operation)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from typing import Any

# ---------------------------------------------------------------------------------------------
# machine description
# ---------------------------------------------------------------------------------------------

_VERSIONS = (
    ("numpy", "numpy"),
    ("pandas", "pandas"),
    ("grpcio", "grpcio"),
    ("scipy", "scipy"),
    ("cvxpy", "cvxpy"),
    ("clarabel", "clarabel"),
    ("hmmlearn", "hmmlearn"),
    ("scikit-learn", "scikit-learn"),
    ("pyportfolioopt", "pyportfolioopt"),
    ("PySide6", "PySide6-Essentials"),
    ("pyqtgraph", "pyqtgraph"),
)


def machine(backends: dict | None = None) -> dict:
    from importlib import metadata

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cores": os.cpu_count(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if "cpu" not in info:
        info["cpu"] = platform.processor() or platform.machine()
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            info["memory_gb"] = round(kb / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        info["load_average"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        pass
    try:
        import hft_lab

        info["hft_lab"] = hft_lab.__version__
    except Exception:
        pass
    versions = {}
    for label, dist in _VERSIONS:
        try:
            versions[label] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    info["versions"] = versions
    for name, b in (backends or {}).items():
        try:
            si = b.info()
            info[f"{name}_core"] = si.core_version
            if name == "grpc":
                info["grpcd"] = si.server_version
                info["grpc_client"] = getattr(b, "client_name", "grpcio")
        except Exception as e:
            info[f"{name}_core"] = f"unavailable ({type(e).__name__})"
    return info


def describe_machine(info: dict) -> str:
    v = info.get("versions", {})
    la = info.get("load_average")
    parts = [
        f"CPU: {info.get('cpu', '?')}, {info.get('cores', '?')} logical cores, {info.get('memory_gb', '?')} GB RAM",
        f"OS: {info.get('platform', '?')}; Python {info.get('python', '?')}; hft_lab {info.get('hft_lab', '?')}"
        + (f", core {info['pyo3_core']}" if "pyo3_core" in info else "")
        + (f", grpcd {info['grpcd']}" if "grpcd" in info else "")
        + (f"; gRPC client: {info['grpc_client']}" if "grpc_client" in info else ""),
        "versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
    ]
    if la:
        end = info.get("load_average_end")
        parts.append(
            f"load average at start {la[0]:.2f}"
            + (f", at end {end[0]:.2f}" if end else "")
            + f" (on {info.get('cores', '?')} cores)"
        )
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# the Python grpcio echo server (reference for the echo operation)
# ---------------------------------------------------------------------------------------------


class PythonEchoServer:
    """The plain grpcio echo server in a child process (exits when our end of its stdin closes)."""

    def __enter__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hft_lab.bench.echo_server"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        try:
            port = int(self.proc.stdout.readline())
            import grpc

            self.channel = grpc.insecure_channel(
                f"127.0.0.1:{port}",
                options=[("grpc.max_send_message_length", 512 << 20), ("grpc.max_receive_message_length", 512 << 20)],
            )
            grpc.channel_ready_future(self.channel).result(timeout=10)
        except Exception:
            self.proc.kill()
            self.proc.wait(5)
            raise
        self.call = self.channel.unary_unary("/bench.Echo/Echo")  # raw bytes in, raw bytes out
        return self

    def __exit__(self, *exc):
        self.channel.close()
        self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class RunContext:
    """Things a run starts lazily and stops at the end (the Python echo server)."""

    def __init__(self, grpc_address: str | None = None):
        self._echo: PythonEchoServer | None = None
        self.grpc_address = grpc_address  # this run's grpcd, if any
        self._grpcio: object | None = None

    def grpcio_backend(self):
        """A gRPC backend to this run's grpcd on the grpcio client (the reference for ours)."""
        if self.grpc_address is None:
            raise RuntimeError("no grpcd in this run")
        if self._grpcio is None:
            from hft_lab.backends.grpc_backend import GrpcBackend

            self._grpcio = GrpcBackend(address=self.grpc_address, client="grpcio")
        return self._grpcio

    def python_echo(self) -> PythonEchoServer:
        if self._echo is None:
            self._echo = PythonEchoServer().__enter__()
        return self._echo

    def close(self) -> None:
        if self._grpcio is not None:
            self._grpcio.close()  # type: ignore[attr-defined]
            self._grpcio = None
        if self._echo is not None:
            self._echo.__exit__(None, None, None)
            self._echo = None
