"""Exceptions shared by both backends (the same exception, whichever transport raised it)."""


class Cancelled(Exception):
    """The computation was cancelled by the user."""


class BackendUnavailable(ConnectionError):
    """The backend cannot be reached (server down, extension missing)."""
