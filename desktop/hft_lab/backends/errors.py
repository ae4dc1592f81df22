"""Exceptions shared by both backends (the same exception, whichever transport raised it)."""


class Cancelled(Exception):
    """The computation was cancelled by the user."""


class BackendUnavailable(ConnectionError):
    """The backend cannot be reached (server down, extension missing)."""


class ResourceLimitExceeded(ValueError):
    """The request needs more memory than the budget allows (HFT_LAB_MEMORY_LIMIT / grpcd
    --memory-limit), or its request/result exceeds the message limit both backends apply.
    A ValueError, so callers that catch bad input catch this too."""


class NumericalError(ValueError):
    """The input was valid but the computation failed numerically (a solver did not converge, a
    matrix is singular to working precision, ...). A ValueError, so callers that catch bad input
    catch this too; catch NumericalError first to tell the two apart. Same text on both backends
    (PyO3: hft_lab._rustcore.NumericalError; gRPC: INVALID_ARGUMENT with trailing metadata
    `hftlab-error-kind: numerical`)."""


class InputTypeError(TypeError, ValueError):
    """An argument has the wrong type (None, a string, complex numbers, an object array...).
    Both a TypeError and a ValueError, so either `except` clause catches it."""
