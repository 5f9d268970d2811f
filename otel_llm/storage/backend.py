"""Two ways to reach ClickHouse behind one small interface.

- :class:`ChdbBackend`: embedded ClickHouse (chDB) in this process, data in a directory
  kept across restarts. chDB hosts one engine per process bound to one data directory,
  so every :class:`ChdbBackend` for the same path shares one connection (reference
  counted; the engine closes with the last backend). Opening a second, different path
  while one is open raises :class:`~otel_llm.storage.errors.StorageError`.
- :class:`ClickHouseBackend`: a ClickHouse server over HTTP(S) with clickhouse-connect.

Both connect lazily: creating a backend never fails because the store is down; the
first call that needs it raises :class:`BackendUnavailable`, and a later call
reconnects. The interface: :meth:`Backend.execute` (DDL and statements without
results), :meth:`Backend.query` (rows as tuples or dicts), :meth:`Backend.insert_arrow`
(columnar insert of a ``pyarrow.Table``, optionally with an insert deduplication
token), :meth:`Backend.ping`, :meth:`Backend.close`. Query parameters use ClickHouse's
``{name:Type}`` syntax and are bound by the server, never pasted into the SQL.
"""

from __future__ import annotations

import atexit
import datetime as dt
import io
import logging
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pyarrow as pa

from otel_llm.storage.config import StorageConfig
from otel_llm.storage.errors import BackendUnavailable, QueryError, StorageError
from otel_llm.storage.statements import format_param, read_sql

__all__ = ["Backend", "ChdbBackend", "ClickHouseBackend", "QueryResult", "open_backend"]

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def scalar(self) -> Any:
        """The first column of the first row (``None`` for no rows)."""
        return self.rows[0][0] if self.rows else None


# Every insert: the materialized views (llm_calls, tasks, the trace-id lookup, budget
# events) run side by side instead of one after another, so a second core helps.
INSERT_SETTINGS: dict[str, int | str] = {"parallel_view_processing": 1}


def _dedup_settings(token: str) -> dict[str, int | str]:
    return {"insert_deduplication_token": token, "deduplicate_blocks_in_dependent_materialized_views": 1}


def _check_insert(table: str, token: str | None) -> None:
    if not _IDENT.match(table):
        raise QueryError(f"not a table name: {table!r}")
    if token is not None and not _TOKEN.match(token):
        raise QueryError(f"insert deduplication token must match {_TOKEN.pattern}, got {token!r}")


class Backend:
    """What the writer, the schema migrations and the queries need from ClickHouse."""

    config: StorageConfig

    @property
    def database(self) -> str:
        return self.config.database

    @property
    def description(self) -> str:
        raise NotImplementedError

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        raise NotImplementedError

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        raise NotImplementedError

    def insert_arrow(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> None:
        raise NotImplementedError

    def insert_columns(
        self, table: str, columns: Mapping[str, Sequence[Any]], *, dedup_token: str | None = None
    ) -> None:
        """Insert column-oriented data (``{"col": [v1, v2, ...]}``); types are inferred by Arrow."""
        self.insert_arrow(table, pa.table({k: list(v) for k, v in columns.items()}), dedup_token=dedup_token)

    def ping(self) -> None:
        """Raise :class:`BackendUnavailable` unless the store answers."""
        self.query("SELECT 1")

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- chDB ------------------------------------------------------------------------------

# Error codes that mean the data directory (not the statement) is the problem.
_CHDB_UNAVAILABLE = re.compile(
    r"NOT_ENOUGH_SPACE|CANNOT_WRITE|CANNOT_OPEN_FILE|CANNOT_CREATE_DIRECTORY|FILE_DOESNT_EXIST|"
    r"DIRECTORY_DOESNT_EXIST|TABLE_IS_READ_ONLY|READONLY|Permission denied|No such file or directory|"
    r"Read-only file system",
)


class _SharedEngine:
    """The process's one chDB connection, for one data directory."""

    lock = threading.Lock()
    path: Path | None = None
    database: str | None = None
    conn: Any = None
    users = 0
    query_lock = threading.RLock()
    exit_hooked = False

    @classmethod
    def close_at_exit(cls) -> None:
        """Close the engine whatever its users: the interpreter is exiting."""
        with cls.lock, cls.query_lock:
            if cls.conn is not None:
                try:
                    cls.conn.close()
                except Exception as exc:
                    logging.getLogger("otel_llm.storage").warning("closing chDB at exit failed: %s", exc)
                finally:
                    cls.conn, cls.path, cls.database, cls.users = None, None, None, 0

    @classmethod
    def acquire(cls, path: Path, database: str) -> Any:
        with cls.lock:
            if cls.conn is not None:
                if cls.path != path:
                    raise StorageError(
                        f"chDB can open one data directory per process; {cls.path} is open, so {path} "
                        "cannot be: close every backend on it first, or use the same storage.path"
                    )
                if cls.database != database:
                    raise StorageError(
                        f"the chDB engine at {path} is used with database {cls.database!r}; "
                        f"all backends in one process must use the same database, not {database!r}"
                    )
                cls.users += 1
                return cls.conn
            import chdb

            try:
                path.mkdir(parents=True, exist_ok=True)
                conn = chdb.connect(str(path))
            except Exception as exc:  # chDB raises RuntimeError; the filesystem OSError
                raise BackendUnavailable(
                    f"cannot open the embedded ClickHouse data directory {path}: {exc}. "
                    "Check that it is a writable directory and no other process uses it "
                    "(set storage.path to another directory)."
                ) from exc
            try:
                conn.query(read_sql("meta", "create_database.sql"), "CSV", params={"database": database})
                conn.query(f"USE `{database}`", "CSV")
            except Exception as exc:
                conn.close()
                raise BackendUnavailable(f"cannot create database {database!r} in {path}: {exc}") from exc
            cls.conn, cls.path, cls.database, cls.users = conn, path, database, 1
            if not cls.exit_hooked:
                # chDB crashes the interpreter at exit when its engine is still open: a
                # user who forgets close() (or a `with`) still exits cleanly.
                atexit.register(cls.close_at_exit)
                cls.exit_hooked = True
            return conn

    @classmethod
    def release(cls) -> None:
        with cls.lock:
            cls.users -= 1
            if cls.users <= 0 and cls.conn is not None:
                try:
                    cls.conn.close()
                finally:
                    cls.conn, cls.path, cls.database, cls.users = None, None, None, 0


def _plain_type(kind: pa.DataType) -> pa.DataType:
    """``kind`` with dictionaries decoded and ns timestamps as us (Python datetimes)."""
    if pa.types.is_dictionary(kind):
        return _plain_type(kind.value_type)
    if pa.types.is_timestamp(kind) and kind.unit == "ns":
        return pa.timestamp("us", kind.tz)
    if pa.types.is_map(kind):
        return pa.map_(_plain_type(kind.key_type), _plain_type(kind.item_type))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return pa.list_(_plain_type(kind.value_type))
    if pa.types.is_struct(kind):
        return pa.struct([pa.field(f.name, _plain_type(f.type)) for f in kind])
    return kind


def _maps_to_dicts(value: Any, kind: pa.DataType) -> Any:
    if value is None:
        return None
    if pa.types.is_map(kind):
        return {k: _maps_to_dicts(v, kind.item_type) for k, v in value}
    if pa.types.is_list(kind):
        return [_maps_to_dicts(v, kind.value_type) for v in value]
    return value


def _has_map(kind: pa.DataType) -> bool:
    if pa.types.is_map(kind):
        return True
    if pa.types.is_list(kind):
        return _has_map(kind.value_type)
    return False


def _arrow_rows(table: pa.Table) -> QueryResult:
    columns = table.column_names
    converted = []
    for column in table.columns:
        kind = _plain_type(column.type)
        values = column.cast(kind, safe=False).to_pylist()
        if _has_map(kind):
            values = [_maps_to_dicts(v, kind) for v in values]
        converted.append(values)
    return QueryResult(columns, list(zip(*converted, strict=True)) if converted else [])


def _ipc_bytes(data: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, data.schema) as writer:
        writer.write_table(data)
    return sink.getvalue()


class ChdbBackend(Backend):
    """Embedded ClickHouse (chDB) with its data in ``config.path``."""

    def __init__(self, config: StorageConfig) -> None:
        self.config = config
        self.path = config.resolved_path()
        self._conn: Any = None
        self._closed = False

    @property
    def description(self) -> str:
        return f"embedded ClickHouse at {self.path} (database {self.database})"

    def _connection(self) -> Any:
        if self._closed:
            raise StorageError("this backend is closed")
        if self._conn is None:
            self._conn = _SharedEngine.acquire(self.path, self.database)
        return self._conn

    def _run(self, sql: str, fmt: str, params: Mapping[str, Any] | None) -> Any:
        conn = self._connection()
        bound = {k: format_param(v) for k, v in (params or {}).items()}
        with _SharedEngine.query_lock:
            try:
                return conn.query(sql, fmt, params=bound)
            except Exception as exc:
                raise self._error(exc, sql) from exc

    def _error(self, exc: Exception, sql: str) -> StorageError:
        text = str(exc)
        if _CHDB_UNAVAILABLE.search(text):
            return BackendUnavailable(f"embedded ClickHouse at {self.path} cannot write: {text}")
        return QueryError(f"{text}\nin statement: {sql[:300]}")

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._run(sql, "CSV", params)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        table = self._run(sql, "Arrowtable", params)
        return _arrow_rows(table)

    def insert_arrow(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> None:
        _check_insert(table, dedup_token)
        if data.num_rows == 0:
            return
        columns = ", ".join(f"`{name}`" for name in data.column_names)
        settings = dict(INSERT_SETTINGS)
        if dedup_token:
            settings |= _dedup_settings(dedup_token)
        sql = f"INSERT INTO `{table}` ({columns}) SETTINGS " + ", ".join(
            f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in settings.items()
        )
        payload = _ipc_bytes(data)
        conn = self._connection()
        with _SharedEngine.query_lock:
            try:
                inserter = conn.send_insert(sql, "ArrowStream")
                try:
                    inserter.append(payload)
                    inserter.finish()
                except BaseException:
                    inserter.cancel()
                    raise
            except Exception as exc:
                raise self._error(exc, sql) from exc

    def close(self) -> None:
        if self._conn is not None:
            self._conn = None
            _SharedEngine.release()
        self._closed = True


# -- ClickHouse server -------------------------------------------------------------------


# Server error codes that say the store cannot take the statement now, not that the
# statement is wrong: authentication (AUTHENTICATION_FAILED 516, UNKNOWN_USER 192,
# WRONG_PASSWORD 193, REQUIRED_PASSWORD 194) and passing states (TOO_MANY_PARTS 252,
# TABLE_IS_READ_ONLY 242, TOO_MANY_SIMULTANEOUS_QUERIES 202, SOCKET_TIMEOUT 209,
# NETWORK_ERROR 210). Not MEMORY_LIMIT_EXCEEDED or TIMEOUT_EXCEEDED: a batch too big for
# the server's limits would fail the same way on every replay and hold the spool up, so
# it is refused (kept in rejected/) instead.
_SERVER_UNAVAILABLE_CODES = frozenset({516, 192, 193, 194, 252, 242, 202, 209, 210})


class ClickHouseBackend(Backend):
    """A ClickHouse server over HTTP(S) (``config.url``), through clickhouse-connect."""

    def __init__(self, config: StorageConfig) -> None:
        self.config = config
        parts = urlsplit(config.url or "")
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (8443 if parts.scheme == "https" else 8123)
        # urlsplit leaves them percent-encoded (a password with ":@/%?#" must be encoded in a URL).
        self._user = unquote(parts.username) if parts.username else config.user
        self._password = unquote(parts.password) if parts.password else config.password
        self._client: Any = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def description(self) -> str:
        return f"ClickHouse at {self.config.redacted_url()} (database {self.database})"

    def _scrub(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

    def _client_or_connect(self) -> Any:
        if self._closed:
            raise StorageError("this backend is closed")
        if self._client is not None:
            return self._client
        import clickhouse_connect
        from clickhouse_connect.driver.exceptions import ClickHouseError

        try:
            client = clickhouse_connect.get_client(
                host=self._host,
                port=self._port,
                username=self._user,
                password=self._password,
                secure=self.config.secure,
                verify=self.config.verify_tls,
                ca_cert=self.config.ca_cert,
                connect_timeout=self.config.connect_timeout,
                query_retries=0,
            )
            client.command(read_sql("meta", "create_database.sql"), parameters={"database": self.database})
        except ClickHouseError as exc:
            raise BackendUnavailable(
                f"cannot reach {self.description}: {self._scrub(str(exc))}. "
                "Check storage.url, the user and password, and that the server is up."
            ) from None
        client.database = self.database
        self._client = client
        return client

    def _call(self, fn: str, *args: Any, **kwargs: Any) -> Any:
        from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError

        with self._lock:
            client = self._client_or_connect()
            try:
                return getattr(client, fn)(*args, **kwargs)
            except OperationalError as exc:
                self._drop_client()
                raise BackendUnavailable(f"lost {self.description}: {self._scrub(str(exc))}") from None
            except ClickHouseError as exc:
                if getattr(exc, "code", None) in _SERVER_UNAVAILABLE_CODES:
                    # Not this statement's fault: a rotated password, a server too busy or
                    # read-only for now. The writer spools and retries instead of rejecting.
                    self._drop_client()
                    raise BackendUnavailable(f"{self.description}: {self._scrub(str(exc))}") from None
                raise QueryError(self._scrub(str(exc))) from None

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # closing a broken connection may fail; it is gone anyway
                log.debug("closing a broken ClickHouse client failed", exc_info=True)

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._call("command", sql, parameters=_bind(params))

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        result = self._call("query", sql, parameters=_bind(params))
        rows = [tuple(_utc(v) for v in row) for row in result.result_rows]
        return QueryResult(list(result.column_names), rows)

    def insert_arrow(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> None:
        _check_insert(table, dedup_token)
        if data.num_rows == 0:
            return
        settings = dict(INSERT_SETTINGS)
        if dedup_token:
            settings |= _dedup_settings(dedup_token)
        self._call("insert_arrow", table, data, settings=settings)

    def close(self) -> None:
        with self._lock:
            self._drop_client()
            self._closed = True


class _Text:
    """A parameter value already in ClickHouse's text format: clickhouse-connect sends
    objects it does not know as ``str(value)``, unescaped (a ``str`` it would escape)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def _bind(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Query parameters for clickhouse-connect. Dicts go as ClickHouse Map text
    (``{'k':'v'}``), as the embedded backend binds them: clickhouse-connect would send
    JSON, which the server cannot read as a Map (its ``dict_parameter_format`` setting
    would change that for every client in the process)."""
    return {k: _Text(format_param(v)) if isinstance(v, Mapping) else v for k, v in (params or {}).items()}


def _utc(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def open_backend(config: StorageConfig) -> Backend:
    """The backend ``config`` names (nothing is connected until first use)."""
    if config.backend == "chdb":
        return ChdbBackend(config)
    return ClickHouseBackend(config)
