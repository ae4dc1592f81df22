"""Backend selection and connection settings."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field, replace


class BackendType(enum.Enum):
    GRPC = "grpc"
    PYO3 = "pyo3"
    AUTO = "auto"

    @classmethod
    def parse(cls, value: str | BackendType) -> BackendType:
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


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1, localhost (and an empty host, which means 127.0.0.1)."""
    import ipaddress

    h = (host or "").strip().strip("[]")
    if h in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def _truthy(v: str | None) -> bool:
    return (v or "").strip().lower() in ("1", "true", "yes", "on")


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
    # ---- remote security (ignored for the grpcd the app spawns itself: plaintext on loopback) ----
    tls: bool = False  # TLS with the system roots (GRPC_TLS=1) or with tls_ca
    tls_ca: str | None = None  # PEM file of the CA (or self-signed certificate) to trust (GRPC_TLS_CA)
    tls_server_name: str | None = None  # name to check in the certificate (GRPC_TLS_SERVER_NAME)
    token: str | None = field(default=None, repr=False)  # bearer token (GRPC_TOKEN / GRPC_TOKEN_FILE)
    insecure: bool = False  # allow plaintext to a non-loopback host (GRPC_INSECURE=1)

    @property
    def use_tls(self) -> bool:
        return self.tls or bool(self.tls_ca)

    def plaintext_refusal(self) -> str | None:
        """Why a plaintext connection to this host is refused, or None when it is allowed."""
        if self.use_tls or self.insecure or is_loopback(self.grpc_host):
            return None
        return (
            f"refusing plaintext gRPC to {self.grpc_host} (not loopback): set GRPC_TLS_CA to the server's "
            "CA certificate (or GRPC_TLS=1 for the system roots), or GRPC_INSECURE=1 to accept the risk"
        )

    def local(self) -> BackendConfig:
        """The settings for a grpcd the app spawns itself: loopback, plaintext, no token."""
        return replace(self, tls=False, tls_ca=None, tls_server_name=None, token=None, insecure=False)

    @property
    def spawn_local_server(self) -> bool:
        """A loopback host with no port given means: start our own grpcd."""
        return self.grpc_host in LOOPBACK_HOSTS and self.grpc_port == 0

    @classmethod
    def from_env(cls, env: os._Environ[str] | dict[str, str] | None = None) -> BackendConfig:
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
        if env.get("GRPC_TLS_CA"):
            ca = env["GRPC_TLS_CA"].strip()
            if not os.path.isfile(ca):
                raise ValueError(f"GRPC_TLS_CA must be a PEM certificate file, '{ca}' does not exist")
            cfg = replace(cfg, tls_ca=ca, tls=True)
        if _truthy(env.get("GRPC_TLS")):
            cfg = replace(cfg, tls=True)
        if env.get("GRPC_TLS_SERVER_NAME"):
            cfg = replace(cfg, tls_server_name=env["GRPC_TLS_SERVER_NAME"].strip())
        if _truthy(env.get("GRPC_INSECURE")):
            cfg = replace(cfg, insecure=True)
        token = env.get("GRPC_TOKEN", "").strip()
        if env.get("GRPC_TOKEN_FILE") and not token:
            path = env["GRPC_TOKEN_FILE"].strip()
            try:
                with open(path, encoding="utf-8") as f:
                    token = f.read().strip()
            except OSError as e:
                raise ValueError(f"GRPC_TOKEN_FILE '{path}' cannot be read: {e.strerror}") from None
            if not token:
                raise ValueError(f"GRPC_TOKEN_FILE '{path}' is empty")
        if token:
            if any(c.isspace() for c in token):
                raise ValueError("GRPC_TOKEN must be one word (no spaces or newlines)")
            cfg = replace(cfg, token=token)
        return cfg
