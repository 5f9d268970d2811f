"""Storage configuration: which ClickHouse, which database, cluster, TTLs, writer limits.

Build it from the ``storage:`` section of the collector config with
:meth:`StorageConfig.from_mapping`; every option and its default is listed in the
package docstring (:mod:`otel_llm.storage`). The password is never part of ``repr``
or of any message this package logs or raises.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from otel_llm.storage.ddl import DEFAULT_REPLICA_NAME, DEFAULT_REPLICATED_PATH, DdlOptions
from otel_llm.storage.errors import ConfigError

__all__ = ["DEFAULT_TTL_DAYS", "StorageConfig", "WriterConfig"]

DEFAULT_TTL_DAYS: dict[str, int] = {
    "otel_traces": 30,
    "otel_traces_trace_id_ts": 30,
    "llm_calls": 365,
    "tasks": 365,
    "budget_events": 365,
}

ENV_PASSWORD = "OTEL_LLM_CLICKHOUSE_PASSWORD"


@dataclass(frozen=True, slots=True)
class WriterConfig:
    """Batching, memory bound and spool of :class:`~otel_llm.storage.writer.SpanWriter`."""

    batch_rows: int = 1000
    """Flush when this many rows are buffered..."""
    flush_interval: float = 1.0
    """...or when the oldest buffered row is this many seconds old."""
    max_queue_rows: int = 100_000
    """Rows held in memory at most; :meth:`SpanWriter.submit` blocks beyond it."""
    block_timeout: float = 5.0
    """How long ``submit`` waits for room before raising :class:`QueueFull`."""
    spool_dir: str | None = None
    """Where batches wait while the store is unreachable (default: ``<path>/../spool``)."""
    spool_max_bytes: int = 1 << 30
    """Spool size at most; beyond it the queue stops draining and ``submit`` blocks."""
    retry_initial: float = 0.5
    retry_max: float = 30.0

    def validate(self) -> None:
        for name in ("batch_rows", "max_queue_rows", "spool_max_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"storage.writer.{name} must be a positive whole number, got {value!r}")
        for name in ("flush_interval", "block_timeout", "retry_initial", "retry_max"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"storage.writer.{name} must be a positive number (seconds), got {value!r}")
        if self.max_queue_rows < self.batch_rows:
            raise ConfigError("storage.writer.max_queue_rows must be at least storage.writer.batch_rows")


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """Where spans are stored. ``backend="chdb"`` (embedded, default) or ``"clickhouse"``."""

    backend: str = "chdb"
    path: str = ".otel-llm/clickhouse"
    url: str | None = None
    user: str = "default"
    password: str = field(default="", repr=False)
    database: str = "otel"
    verify_tls: bool = True
    ca_cert: str | None = None
    connect_timeout: float = 5.0
    cluster: str | None = None
    replicated_path: str = DEFAULT_REPLICATED_PATH
    replica_name: str = DEFAULT_REPLICA_NAME
    ttl_days: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_TTL_DAYS))
    writer: WriterConfig = field(default_factory=WriterConfig)

    def __post_init__(self) -> None:
        self.validate()

    # -- construction ----------------------------------------------------------------

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any] | None, *, env: Mapping[str, str] | None = None
    ) -> StorageConfig:
        """From the ``storage:`` section of a YAML config. Unknown keys are errors.

        The password may instead come from ``$OTEL_LLM_CLICKHOUSE_PASSWORD`` (so it
        need not be written in a file); an explicit ``password`` wins.
        """
        data = dict(data or {})
        env = os.environ if env is None else env
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown storage option(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        writer = data.pop("writer", None) or {}
        if not isinstance(writer, Mapping):
            raise ConfigError("storage.writer must be a mapping")
        wknown = {f.name for f in fields(WriterConfig)}
        wunknown = sorted(set(writer) - wknown)
        if wunknown:
            raise ConfigError(f"unknown storage.writer option(s): {', '.join(wunknown)}")
        ttl = data.pop("ttl_days", None)
        ttl_days = dict(DEFAULT_TTL_DAYS)
        if ttl is not None:
            if not isinstance(ttl, Mapping):
                raise ConfigError("storage.ttl_days must map table names to days")
            ttl_days.update(ttl)
        if not data.get("password") and env.get(ENV_PASSWORD):
            data["password"] = env[ENV_PASSWORD]
        try:
            return cls(**data, ttl_days=ttl_days, writer=WriterConfig(**writer))
        except TypeError as exc:
            raise ConfigError(f"bad storage option: {exc}") from None

    def with_(self, **changes: Any) -> StorageConfig:
        return replace(self, **changes)

    # -- checks ----------------------------------------------------------------------

    def validate(self) -> None:
        if self.backend not in ("chdb", "clickhouse"):
            raise ConfigError(f"storage.backend must be 'chdb' or 'clickhouse', got {self.backend!r}")
        if self.backend == "clickhouse":
            if not self.url:
                raise ConfigError(
                    "storage.url is required with backend 'clickhouse' (e.g. http://localhost:8123)"
                )
            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    f"storage.url must look like http(s)://host:port, got {self.redacted_url()!r}"
                )
        if not self.path:
            raise ConfigError("storage.path must not be empty")
        if not self.database or not self.database.replace("_", "").isalnum():
            raise ConfigError(
                f"storage.database must be letters, digits and underscores, got {self.database!r}"
            )
        unknown_tables = sorted(set(self.ttl_days) - set(DEFAULT_TTL_DAYS))
        if unknown_tables:
            raise ConfigError(f"storage.ttl_days names unknown table(s): {', '.join(unknown_tables)}")
        try:
            self.ddl_options()
        except ValueError as exc:
            raise ConfigError(f"storage: {exc}") from None
        self.writer.validate()

    # -- derived ---------------------------------------------------------------------

    def ddl_options(self) -> DdlOptions:
        return DdlOptions(
            cluster=self.cluster,
            replicated_path=self.replicated_path,
            replica_name=self.replica_name,
            ttl_days=dict(self.ttl_days),
        )

    def resolved_path(self) -> Path:
        """The chDB data directory, relative paths taken from the current directory."""
        return Path(self.path).expanduser().resolve()

    def spool_path(self) -> Path:
        if self.writer.spool_dir:
            return Path(self.writer.spool_dir).expanduser().resolve()
        return self.resolved_path().parent / "spool"

    @property
    def secure(self) -> bool:
        return bool(self.url) and urlsplit(self.url).scheme == "https"

    def redacted_url(self) -> str:
        """The URL with any password in it replaced by ``***``."""
        if not self.url:
            return ""
        parts = urlsplit(self.url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            return parts._replace(netloc=netloc).geturl()
        return self.url
