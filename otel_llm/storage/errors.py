"""What storage raises. Messages say what went wrong and what to do; never a password."""

from __future__ import annotations

__all__ = ["BackendUnavailable", "ConfigError", "QueryError", "QueueFull", "StorageError"]


class StorageError(Exception):
    """Base class of every storage error."""


class ConfigError(StorageError, ValueError):
    """The storage configuration is invalid."""


class BackendUnavailable(StorageError):
    """The store cannot be reached (server down, path unusable). Retrying may help."""


class QueryError(StorageError):
    """The store refused a statement (bad SQL, bad data, missing table). Retrying will not help."""


class QueueFull(StorageError):
    """The writer's queue stayed full for ``block_timeout``: shed load (OTLP 503) and retry later."""
