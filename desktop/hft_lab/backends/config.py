"""Backend selection and connection settings."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, replace


class BackendType(enum.Enum):
    GRPC = "grpc"
    PYO3 = "pyo3"
    AUTO = "auto"

    @classmethod
    def parse(cls, value: "str | BackendType") -> "BackendType":
        if isinstance(value, BackendType):
            return value
        v = str(value).strip().lower()
        if v in ("legacy", "pyo3", "in-process", "inprocess"):
            return cls.PYO3
        if v in ("grpc", "rust-grpc", "server"):
            return cls.GRPC
        if v in ("auto", ""):
            return cls.AUTO
        raise ValueError(f"unknown backend type '{value}': use grpc, pyo3 (alias legacy) or auto")

    @property
    def label(self) -> str:
        return {
            BackendType.GRPC: "gRPC (Rust server)",
            BackendType.PYO3: "PyO3 (in-process)",
            BackendType.AUTO: "Auto",
        }[self]


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "")


@dataclass(frozen=True)
class BackendConfig:
    backend_type: BackendType = BackendType.AUTO
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 0  # 0: the app spawns grpcd on a free loopback port
    connect_timeout_s: float = 10.0
    call_timeout_s: float = 600.0  # deadline of a compute call
    quick_timeout_s: float = 5.0  # deadline of info/echo/health calls
    max_message_mb: int = 512
    grpcd_path: str | None = None  # override the bundled/built grpcd binary

    @property
    def spawn_local_server(self) -> bool:
        """A loopback host with no port given means: start our own grpcd."""
        return self.grpc_host in LOOPBACK_HOSTS and self.grpc_port == 0

    @classmethod
    def from_env(cls, env: "os._Environ[str] | dict[str, str] | None" = None) -> "BackendConfig":
        env = os.environ if env is None else env
        cfg = cls()
        if env.get("BACKEND_TYPE"):
            cfg = replace(cfg, backend_type=BackendType.parse(env["BACKEND_TYPE"]))
        if env.get("GRPC_HOST"):
            cfg = replace(cfg, grpc_host=env["GRPC_HOST"].strip())
        if env.get("GRPC_PORT"):
            raw = env["GRPC_PORT"].strip()
            try:
                port = int(raw)
            except ValueError:
                raise ValueError(f"GRPC_PORT must be a port number from 1 to 65535, got '{raw}'") from None
            if not 0 <= port <= 65535:
                raise ValueError(f"GRPC_PORT must be a port number from 1 to 65535, got {port}")
            cfg = replace(cfg, grpc_port=port)
        if env.get("GRPCD_PATH"):
            cfg = replace(cfg, grpcd_path=env["GRPCD_PATH"])
        return cfg
