"""Compute backends: one interface (`Backend`), two transports (PyO3 in-process, gRPC to grpcd)."""

from .base import Backend, CancelToken, MeanReversionStream
from .config import BackendConfig, BackendType
from .errors import BackendUnavailable, Cancelled, InputTypeError, NumericalError, ResourceLimitExceeded
from .results import MeanReversionResult, ServerInfo, StreamTicks

__all__ = [
    "Backend",
    "BackendConfig",
    "BackendType",
    "BackendUnavailable",
    "CancelToken",
    "Cancelled",
    "InputTypeError",
    "NumericalError",
    "ResourceLimitExceeded",
    "MeanReversionResult",
    "MeanReversionStream",
    "ServerInfo",
    "StreamTicks",
    "create_router",
    "GrpcBackend",
    "Pyo3Backend",
    "ServerManager",
    "BackendRouter",
]


def __getattr__(name):  # lazy: importing grpc is slow, the PyO3 path should not pay for it
    if name == "GrpcBackend":
        from .grpc_backend import GrpcBackend

        return GrpcBackend
    if name == "Pyo3Backend":
        from .pyo3_backend import Pyo3Backend

        return Pyo3Backend
    if name == "ServerManager":
        from .server import ServerManager

        return ServerManager
    if name in ("BackendRouter", "create_router"):
        from .router import BackendRouter

        return BackendRouter
    raise AttributeError(name)
