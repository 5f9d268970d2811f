"""Schema files, the DDL renderer, migrations and the two backends' basics, on real chDB."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from otel_llm.storage.backend import Backend, ChdbBackend, ClickHouseBackend, open_backend
from otel_llm.storage.config import StorageConfig
from otel_llm.storage.ddl import DdlOptions, load_migrations, render
from otel_llm.storage.errors import BackendUnavailable, ConfigError, QueryError, StorageError
from otel_llm.storage.migrations import applied_versions, apply_schema, render_schema
from otel_llm.storage.statements import split_statements

# The column set of the OpenTelemetry Collector contrib ClickHouse exporter's traces table.
UPSTREAM_COLUMNS = [
    ("Timestamp", "DateTime64(9)"),
    ("TraceId", "String"),
    ("SpanId", "String"),
    ("ParentSpanId", "String"),
    ("TraceState", "String"),
    ("SpanName", "LowCardinality(String)"),
    ("SpanKind", "LowCardinality(String)"),
    ("ServiceName", "LowCardinality(String)"),
    ("ResourceAttributes", "Map(LowCardinality(String), String)"),
    ("ScopeName", "String"),
    ("ScopeVersion", "String"),
    ("SpanAttributes", "Map(LowCardinality(String), String)"),
    ("Duration", "UInt64"),
    ("StatusCode", "LowCardinality(String)"),
    ("StatusMessage", "String"),
    ("Events.Timestamp", "Array(DateTime64(9))"),
    ("Events.Name", "Array(LowCardinality(String))"),
    ("Events.Attributes", "Array(Map(LowCardinality(String), String))"),
    ("Links.TraceId", "Array(String)"),
    ("Links.SpanId", "Array(String)"),
    ("Links.TraceState", "Array(String)"),
    ("Links.Attributes", "Array(Map(LowCardinality(String), String))"),
    ("ResourceAttributeItems", "Array(String)"),
    ("SpanAttributeItems", "Array(String)"),
]

OUR_OBJECTS = {
    "otel_traces",
    "otel_traces_trace_id_ts",
    "otel_traces_trace_id_ts_mv",
    "llm_calls",
    "llm_calls_mv",
    "tasks",
    "tasks_from_calls_mv",
    "tasks_from_spans_mv",
    "budget_events",
    "budget_events_from_spans_mv",
    "schema_migrations",
    "model_prices",
}


def test_schema_applied_twice_records_each_migration_once(config: StorageConfig) -> None:
    with open_backend(config) as backend:
        assert apply_schema(backend) == [1, 2, 3, 4, 5]
        assert apply_schema(backend) == []
        rows = backend.query("SELECT version, name FROM schema_migrations ORDER BY version").rows
        assert rows == [
            (1, "otel_traces"), (2, "llm_calls"), (3, "tasks"), (4, "budget_events"), (5, "llm_calls_once"),
        ]  # fmt: skip
        tables = backend.query("SELECT name FROM system.tables WHERE database = 'otel'").rows
        assert {name for (name,) in tables} == OUR_OBJECTS
        checksums = {m.version: m.checksum for m in load_migrations()}
        assert applied_versions(backend) == checksums


def test_otel_traces_has_exactly_the_upstream_exporter_columns(store: Backend) -> None:
    rows = store.query(
        "SELECT name, type FROM system.columns WHERE database = 'otel' AND table = 'otel_traces' "
        "ORDER BY position"
    ).rows
    assert rows == UPSTREAM_COLUMNS
    ddl = store.query("SELECT create_table_query FROM system.tables WHERE name = 'otel_traces'").scalar()
    assert "PARTITION BY toDate(Timestamp)" in ddl
    assert "ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp)" in ddl
    assert "TTL toDateTime(Timestamp) + toIntervalDay(30)" in ddl
    lookup = store.query(
        "SELECT name, type FROM system.columns WHERE table = 'otel_traces_trace_id_ts' ORDER BY position"
    ).rows
    assert lookup == [
        ("TraceId", "String"),
        ("Start", "SimpleAggregateFunction(min, DateTime)"),
        ("End", "SimpleAggregateFunction(max, DateTime)"),
    ]


def test_schema_files_run_as_is_statement_by_statement(tmp_path: Path) -> None:
    """What an operator does with clickhouse-client --multiquery, on a plain database."""
    with open_backend(StorageConfig(path=str(tmp_path / "plain"), database="plain")) as backend:
        for migration in load_migrations():
            for statement in migration.statements:
                backend.execute(statement)
        count = backend.query("SELECT count() FROM system.tables WHERE database = 'plain'").scalar()
        assert count == len(OUR_OBJECTS) - 1  # no schema_migrations: that is the runner's


def test_cluster_rendering_adds_on_cluster_and_replicated_engines() -> None:
    options = DdlOptions(cluster="prod", ttl_days={"otel_traces": 7, "llm_calls": 0})
    statements = render_schema(options)
    assert len(statements) == 1 + sum(len(m.statements) for m in load_migrations())
    for statement in statements:
        if statement.startswith("INSERT"):  # data, not DDL: runs where the runner is connected
            continue
        head = statement.split("\n", 1)[0]
        assert re.search(r" ON CLUSTER 'prod'$", head) or " ON CLUSTER 'prod' " in head, head
        assert not re.search(r"ENGINE = (Replacing|Aggregating)?MergeTree", statement)
    by_name = {s.split()[5]: s for s in statements if s.startswith("CREATE TABLE IF NOT EXISTS")}
    by_name["llm_calls"] = next(s for s in statements if s.startswith("CREATE OR REPLACE TABLE llm_calls"))
    traces = by_name["otel_traces"]
    path = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"
    assert f"ENGINE = ReplicatedMergeTree({path})" in traces
    assert "TTL toDateTime(Timestamp) + toIntervalDay(7)" in traces
    assert "ENGINE = ReplicatedReplacingMergeTree(" in by_name["llm_calls"]
    assert "TTL" not in by_name["llm_calls"]
    assert "ENGINE = ReplicatedAggregatingMergeTree(" in by_name["tasks"]
    assert "TTL toDateTime(first_seen) + toIntervalDay(365)" in by_name["tasks"]
    assert render("ALTER TABLE otel_traces MODIFY SETTING x = 1", options) == (
        "ALTER TABLE otel_traces ON CLUSTER 'prod' MODIFY SETTING x = 1"
    )


def test_engine_arguments_are_kept_after_the_replication_arguments() -> None:
    statement = "CREATE TABLE IF NOT EXISTS t\n(\n    v UInt32\n)\nENGINE = ReplacingMergeTree(v)\nORDER BY v"
    rendered = render(statement, DdlOptions(cluster="c1", replicated_path="/ch/{table}", replica_name="r"))
    assert rendered == (
        "CREATE TABLE IF NOT EXISTS t ON CLUSTER 'c1'\n(\n    v UInt32\n)\n"
        "ENGINE = ReplicatedReplacingMergeTree('/ch/{table}', 'r', v)\nORDER BY v"
    )


def test_single_node_rendering_with_default_options_changes_nothing() -> None:
    for migration in load_migrations():
        for statement in migration.statements:
            assert render(statement, DdlOptions()) == statement


def test_ttl_zero_keeps_rows_forever_and_custom_ttl_applies(tmp_path: Path) -> None:
    cfg = StorageConfig.from_mapping(
        {"path": str(tmp_path / "ch"), "ttl_days": {"otel_traces": 0, "llm_calls": 90}}, env={}
    )
    with open_backend(cfg) as backend:
        apply_schema(backend)
        sql = "SELECT name, create_table_query FROM system.tables WHERE database = 'otel'"
        ddl = dict(backend.query(sql).rows)
        assert " TTL " not in ddl["otel_traces"]
        assert "TTL toDateTime(timestamp) + toIntervalDay(90)" in ddl["llm_calls"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"backend": "postgres"}, "storage.backend must be 'chdb' or 'clickhouse'"),
        ({"backend": "clickhouse"}, "storage.url is required"),
        ({"backend": "clickhouse", "url": "ftp://x"}, "storage.url must look like http(s)://host:port"),
        ({"colour": "blue"}, "unknown storage option(s): colour"),
        ({"writer": {"batch_rows": 0}}, "storage.writer.batch_rows must be a positive whole number"),
        ({"writer": {"flush": 1}}, "unknown storage.writer option(s): flush"),
        ({"ttl_days": {"otel_traces": -1}}, "ttl_days.otel_traces must be a whole number of days >= 0"),
        ({"ttl_days": {"nope": 3}}, "storage.ttl_days names unknown table(s): nope"),
        ({"cluster": "bad name;"}, "is not a valid ClickHouse cluster name"),
        ({"database": "a-b"}, "storage.database must be letters, digits and underscores"),
    ],
)
def test_broken_config_is_refused_with_the_option_named(options: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        StorageConfig.from_mapping(options, env={})
    assert message in str(info.value)


def test_password_comes_from_env_and_never_shows(tmp_path: Path) -> None:
    cfg = StorageConfig.from_mapping(
        {"backend": "clickhouse", "url": "http://127.0.0.1:9"},
        env={"OTEL_LLM_CLICKHOUSE_PASSWORD": "hunter2"},
    )
    assert cfg.password == "hunter2"
    assert "hunter2" not in repr(cfg)
    with_url_password = StorageConfig(backend="clickhouse", url="https://u:hunter2@db.example:8443")
    assert with_url_password.redacted_url() == "https://u:***@db.example:8443"
    assert "hunter2" not in repr(with_url_password.redacted_url())


def test_clickhouse_down_is_a_clear_error_without_the_password(tmp_path: Path) -> None:
    cfg = StorageConfig(backend="clickhouse", url="http://127.0.0.1:1", password="hunter2", connect_timeout=1)
    backend = open_backend(cfg)
    assert isinstance(backend, ClickHouseBackend)
    with pytest.raises(BackendUnavailable) as info:
        backend.ping()
    text = str(info.value)
    assert "cannot reach ClickHouse at http://127.0.0.1:1 (database otel)" in text
    assert "Check storage.url" in text
    assert "hunter2" not in text
    backend.close()


def test_two_opens_of_one_path_share_the_engine_and_a_second_path_is_refused(
    config: StorageConfig, tmp_path: Path
) -> None:
    first, second = open_backend(config), open_backend(config)
    first.execute("CREATE TABLE t (x UInt8) ENGINE = MergeTree ORDER BY x")
    second.execute("INSERT INTO t VALUES (7)")
    assert first.query("SELECT x FROM t").rows == [(7,)]
    other = open_backend(StorageConfig(path=str(tmp_path / "other")))
    with pytest.raises(StorageError, match="chDB can open one data directory per process"):
        other.ping()
    first.close()
    assert second.query("SELECT count() FROM t").scalar() == 1  # still open: shared, counted
    second.close()
    other.ping()  # the last user closed the engine; another path may open now
    other.close()


def test_data_survives_a_restart_of_the_process(config: StorageConfig) -> None:
    with open_backend(config) as backend:
        backend.execute("CREATE TABLE kept (x UInt32) ENGINE = MergeTree ORDER BY x")
        backend.execute("INSERT INTO kept VALUES (41), (42)")
    script = (
        "from otel_llm.storage.backend import open_backend\n"
        "from otel_llm.storage.config import StorageConfig\n"
        f"b = open_backend(StorageConfig(path={config.path!r}))\n"
        "print(b.query('SELECT sum(x) FROM kept').scalar())\n"
        "b.close()\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "83"


def test_unusable_chdb_path_is_unavailable_not_a_crash(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be")
    backend = ChdbBackend(StorageConfig(path=str(blocker / "ch")))
    with pytest.raises(BackendUnavailable, match="cannot open the embedded ClickHouse data directory"):
        backend.ping()
    backend.close()


def test_bad_sql_is_a_query_error_naming_the_statement(store: Backend) -> None:
    with pytest.raises(QueryError, match="in statement: SELECT nope FROM otel_traces"):
        store.query("SELECT nope FROM otel_traces")


def test_statement_splitter_keeps_semicolons_inside_strings_and_drops_comments() -> None:
    text = "-- a comment; with a semicolon\nSELECT 'a;b' AS x; /* block; */ SELECT `c;d`;\n\n"
    assert split_statements(text) == ["SELECT 'a;b' AS x", "SELECT `c;d`"]


def test_query_parameters_are_bound_not_pasted(store: Backend) -> None:
    tricky = "it's a \\ test\twith\nlines"
    sql = "SELECT {s:String} AS s, {xs:Array(String)} AS xs"
    row = store.query(sql, {"s": tricky, "xs": ["a'b", "c"]}).rows
    assert row == [(tricky, ["a'b", "c"])]
