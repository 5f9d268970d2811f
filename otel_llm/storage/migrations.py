"""Create or upgrade the schema: each migration applied once, recorded in ``schema_migrations``.

Every statement in the schema files is idempotent (``IF NOT EXISTS``, ``MODIFY
SETTING``), so a migration interrupted half-way is simply run again; it is recorded
only after all its statements succeeded. Applying twice (or from two collectors at
once) is harmless.
"""

from __future__ import annotations

import logging

from otel_llm.storage.backend import Backend
from otel_llm.storage.ddl import DdlOptions, Migration, load_migrations, render
from otel_llm.storage.statements import read_sql, split_statements

__all__ = ["applied_versions", "apply_schema", "render_schema"]

log = logging.getLogger(__name__)


def render_schema(options: DdlOptions, migrations: list[Migration] | None = None) -> list[str]:
    """Every statement (bookkeeping table first) as it would run with ``options``."""
    statements = [render(s, options) for s in split_statements(read_sql("meta", "schema_migrations.sql"))]
    for migration in migrations if migrations is not None else load_migrations():
        statements.extend(render(s, options) for s in migration.statements)
    return statements


def applied_versions(backend: Backend) -> dict[int, str]:
    """``{version: checksum}`` of the migrations recorded as applied."""
    result = backend.query(read_sql("meta", "applied_migrations.sql"))
    return {int(row["version"]): row["checksum"] for row in result.dicts()}


def apply_schema(backend: Backend) -> list[int]:
    """Apply the migrations ``backend`` lacks; return the versions applied now."""
    options = backend.config.ddl_options()
    for statement in split_statements(read_sql("meta", "schema_migrations.sql")):
        backend.execute(render(statement, options))
    done = applied_versions(backend)
    applied = []
    for migration in load_migrations():
        if migration.version in done:
            if done[migration.version] != migration.checksum:
                log.warning(
                    "schema migration %04d_%s changed since it was applied to %s; not re-applied",
                    migration.version,
                    migration.name,
                    backend.description,
                )
            continue
        for statement in migration.statements:
            backend.execute(render(statement, options))
        backend.execute(
            read_sql("meta", "record_migration.sql"),
            {"version": migration.version, "name": migration.name, "checksum": migration.checksum},
        )
        log.info(
            "applied schema migration %04d_%s to %s", migration.version, migration.name, backend.description
        )
        applied.append(migration.version)
    return applied
