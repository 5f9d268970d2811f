"""Schema migrations and the renderer that derives cluster and TTL variants from them.

The files in ``otel_llm/storage/schema/`` are plain ClickHouse SQL for one node: run
them statement by statement in an empty database (``clickhouse-client --multiquery <
0001_otel_traces.sql``) and you get the schema. Everything else is derived here, by
:func:`render`, never hand-written:

- ``cluster``: ``ON CLUSTER '<cluster>'`` after the object name of every ``CREATE``,
  ``ALTER`` and ``DROP``, and each ``*MergeTree`` engine becomes its ``Replicated*``
  twin with ``(replicated_path, replica_name[, original arguments])``.
- ``ttl_days``: per table, the ``toIntervalDay(N)`` of its ``TTL`` line is replaced;
  ``0`` removes the TTL line (keep forever). Tables not named keep the file's TTL.

Migration files are named ``NNNN_name.sql``; ``NNNN`` is the version recorded in
``schema_migrations`` once all its statements have run.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources

from otel_llm.storage.statements import split_statements

__all__ = ["DdlOptions", "Migration", "load_migrations", "render"]

DEFAULT_REPLICATED_PATH = "/clickhouse/tables/{shard}/{database}/{table}"
DEFAULT_REPLICA_NAME = "{replica}"

_NAME = re.compile(r"^[A-Za-z0-9_.{}-]+$")
_HEAD = re.compile(
    r"^(?P<head>(?:CREATE\s+(?:OR\s+REPLACE\s+)?(?:TABLE|MATERIALIZED\s+VIEW|VIEW|DATABASE)\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    r"|ALTER\s+TABLE\s+|DROP\s+(?:TABLE|VIEW|DATABASE)\s+(?:IF\s+EXISTS\s+)?)(?P<name>[^\s(]+))",
    re.IGNORECASE,
)
_CREATE_TABLE = re.compile(
    r"^CREATE\s+(?:OR\s+REPLACE\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>[^\s(]+)", re.IGNORECASE
)
_ENGINE = re.compile(
    r"ENGINE\s*=\s*(?P<kind>|Replacing|Aggregating|Summing|Collapsing|VersionedCollapsing)MergeTree"
    r"(?:\((?P<args>[^)]*)\))?",
)
_TTL_LINE = re.compile(r"^TTL\s+(?P<expr>.+?)\s*\+\s*toIntervalDay\(\d+\)\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class DdlOptions:
    """How to render the single-node DDL (the defaults change nothing but TTLs named)."""

    cluster: str | None = None
    replicated_path: str = DEFAULT_REPLICATED_PATH
    replica_name: str = DEFAULT_REPLICA_NAME
    ttl_days: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.cluster is not None and not _NAME.match(self.cluster):
            raise ValueError(f"cluster name {self.cluster!r} is not a valid ClickHouse cluster name")
        for quoted in (self.replicated_path, self.replica_name):
            if "'" in quoted or "\\" in quoted:
                raise ValueError(f"replicated path and replica name must not contain quotes: {quoted!r}")
        for table, days in self.ttl_days.items():
            if not isinstance(days, int) or isinstance(days, bool) or days < 0:
                raise ValueError(f"ttl_days.{table} must be a whole number of days >= 0, got {days!r}")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]
    checksum: str


def load_migrations() -> list[Migration]:
    """The schema migrations shipped in ``otel_llm/storage/schema``, oldest first."""
    out = []
    for entry in resources.files("otel_llm.storage").joinpath("schema").iterdir():
        match = re.match(r"^(\d{4})_(\w+)\.sql$", entry.name)
        if not match:
            continue
        text = entry.read_text(encoding="utf-8")
        out.append(
            Migration(
                version=int(match.group(1)),
                name=match.group(2),
                statements=tuple(split_statements(text)),
                checksum=hashlib.sha256(text.encode()).hexdigest(),
            )
        )
    out.sort(key=lambda m: m.version)
    versions = [m.version for m in out]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two schema migrations share a version: {versions}")
    return out


def _replicated(match: re.Match[str], options: DdlOptions) -> str:
    args = [f"'{options.replicated_path}'", f"'{options.replica_name}'"]
    if match.group("args") and match.group("args").strip():
        args.append(match.group("args").strip())
    return f"ENGINE = Replicated{match.group('kind')}MergeTree({', '.join(args)})"


def render(statement: str, options: DdlOptions) -> str:
    """``statement`` (one statement of a schema file) for the given cluster and TTLs."""
    out = statement
    if options.cluster:
        out = _HEAD.sub(lambda m: f"{m.group('head')} ON CLUSTER '{options.cluster}'", out, count=1)
        out = _ENGINE.sub(lambda m: _replicated(m, options), out)
    table = _CREATE_TABLE.match(statement)
    if table and table.group("name") in options.ttl_days:
        days = options.ttl_days[table.group("name")]
        if days == 0:
            out = _TTL_LINE.sub("", out)
            out = "\n".join(line for line in out.splitlines() if line.strip())
        else:
            out = _TTL_LINE.sub(lambda m: f"TTL {m.group('expr')} + toIntervalDay({days})", out)
    return out
