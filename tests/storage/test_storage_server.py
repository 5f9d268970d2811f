"""The ClickHouse *server* backend (clickhouse-connect over HTTP) against a real engine.

The server is :mod:`clickhouse_http`: the ClickHouse HTTP interface served by a child
process on chDB, with a user and password, optionally over HTTPS. Outages are real: the
child is killed and started again on the same port and data directory.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from support.clickhouse_http import ClickHouseHTTPServer, TlsFiles, self_signed_cert
from support.storage import NOW, llm_span, make_config, wait_until
from test_storage_queries import BASE_END, BASE_START, END, START, dataset

from otel_llm.storage import queries
from otel_llm.storage.backend import Backend, ClickHouseBackend, open_backend
from otel_llm.storage.config import StorageConfig, WriterConfig
from otel_llm.storage.ddl import load_migrations
from otel_llm.storage.errors import BackendUnavailable, QueryError
from otel_llm.storage.migrations import apply_schema
from otel_llm.storage.records import SpanRecord, spans_to_arrow
from otel_llm.storage.writer import SpanWriter

USER = "otel_writer"
PASSWORD = "pw-Zq7!x:9@/%"  # URL- and basic-auth-hostile on purpose


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ClickHouseHTTPServer]:
    with ClickHouseHTTPServer(tmp_path / "server", user=USER, password=PASSWORD) as running:
        yield running


def server_config(server: ClickHouseHTTPServer, tmp_path: Path, **changes: object) -> StorageConfig:
    writer = WriterConfig(
        spool_dir=str(tmp_path / "spool"), flush_interval=0.05, retry_initial=0.05, retry_max=0.2
    )
    config = StorageConfig(
        backend="clickhouse",
        url=server.url,
        user=USER,
        password=PASSWORD,
        path=str(tmp_path / "unused-chdb"),
        connect_timeout=2,
        writer=writer,
    )
    return config.with_(**changes)


@pytest.fixture
def backend(server: ClickHouseHTTPServer, tmp_path: Path) -> Iterator[Backend]:
    store = open_backend(server_config(server, tmp_path))
    apply_schema(store)
    yield store
    store.close()


def counts(store: Backend) -> tuple[int, int, int]:
    return (
        store.query("SELECT count() FROM otel_traces").scalar(),
        store.query("SELECT count() FROM llm_calls").scalar(),
        store.query("SELECT sum(calls) FROM tasks").scalar(),
    )


def numbered_spans(count: int, start: int = 0) -> list[SpanRecord]:
    at = NOW - dt.timedelta(hours=1)
    out = []
    for i in range(start, start + count):
        span = llm_span(at=at + dt.timedelta(milliseconds=i), task=f"s-{i // 10}", iteration=i % 10 + 1)
        span.span_id = f"{i + 1:016x}"
        out.append(span)
    return out


def config_fields(config: WriterConfig) -> dict[str, object]:
    return {f: getattr(config, f) for f in ("spool_dir", "flush_interval", "retry_initial", "retry_max")}


def span_numbers(store: Backend) -> list[int]:
    rows = store.query("SELECT reinterpretAsUInt64(reverse(unhex(SpanId))) FROM otel_traces ORDER BY 1").rows
    return [n for (n,) in rows]


# -- connecting and the schema -----------------------------------------------------------


def test_schema_is_applied_once_and_applying_again_changes_nothing(
    server: ClickHouseHTTPServer, tmp_path: Path
) -> None:
    config = server_config(server, tmp_path, database="otel_server")
    versions = [m.version for m in load_migrations()]
    with open_backend(config) as first:
        assert isinstance(first, ClickHouseBackend)
        assert apply_schema(first) == versions
        assert apply_schema(first) == []
    with open_backend(config) as second:  # a new client: another collector starting up
        assert apply_schema(second) == []
        recorded = second.query("SELECT version, name FROM schema_migrations FINAL ORDER BY version").rows
        tables = second.query(
            "SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name", {"db": "otel_server"}
        ).rows
    assert recorded == [(m.version, m.name) for m in load_migrations()]
    assert {"otel_traces", "llm_calls", "tasks", "budget_events", "schema_migrations"} <= {
        t for (t,) in tables
    }


def test_credentials_in_the_url_work_and_stay_out_of_the_description(
    server: ClickHouseHTTPServer, tmp_path: Path
) -> None:
    url = f"http://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{server.port}"  # as a URL must carry it
    with open_backend(server_config(server, tmp_path, url=url, user="default", password="")) as store:
        assert PASSWORD not in store.description
        assert quote(PASSWORD, safe="") not in store.description
        store.ping()
        assert store.query("SELECT currentDatabase()").scalar() == "otel"


def test_credentials_in_the_url_without_special_characters_work(
    server: ClickHouseHTTPServer, tmp_path: Path
) -> None:
    plain = "plainpassword42"
    server.stop()
    server.password = plain
    server.start()
    url = f"http://{USER}:{plain}@127.0.0.1:{server.port}"
    with open_backend(server_config(server, tmp_path, url=url, user="default", password="")) as store:
        assert plain not in store.description
        assert f"http://{USER}:***@127.0.0.1:{server.port}" in store.description
        store.ping()
        assert store.query("SELECT currentDatabase()").scalar() == "otel"


def test_a_wrong_password_is_backend_unavailable_and_the_message_never_shows_it(
    server: ClickHouseHTTPServer, tmp_path: Path
) -> None:
    wrong = "not-the-" + PASSWORD
    store = open_backend(server_config(server, tmp_path, password=wrong))
    with store, pytest.raises(BackendUnavailable) as raised:
        store.ping()
    message = str(raised.value)
    assert "Authentication failed" in message
    assert "516" in message
    assert f"127.0.0.1:{server.port}" in message
    assert "Check storage.url, the user and password" in message
    assert wrong not in message
    assert PASSWORD not in message
    assert raised.value.__cause__ is None  # the client's exception (and its request) is not chained


def test_an_unreachable_server_is_backend_unavailable(server: ClickHouseHTTPServer, tmp_path: Path) -> None:
    config = server_config(server, tmp_path)
    server.stop()
    with open_backend(config) as store, pytest.raises(BackendUnavailable, match=r"cannot reach ClickHouse"):
        store.ping()


# -- values in, values out -----------------------------------------------------------------


def test_a_span_reaches_otel_traces_and_llm_calls_with_exact_values(backend: Backend) -> None:
    at = NOW - dt.timedelta(minutes=30, microseconds=-123_456)
    span = llm_span(
        at=at,
        task="exact-1",
        iteration=3,
        input_tokens=5100,
        output_tokens=321,
        cache_read=4000,
        cache_write=700,
        cache_write_1h=200,
        reasoning=42,
        cost=0.0375,
        savings=0.0108,
        stream=True,
        ttft=0.25,
        prefix="p-ÿ\t'x",
        version="2.1.0",
    )
    with SpanWriter(backend) as writer:
        writer.submit([span])
        assert writer.flush(timeout=30)
        assert writer.stats()["rows_inserted"] == 1
    trace = backend.query(
        "SELECT Timestamp, TraceId, SpanId, SpanName, ServiceName, Duration, StatusCode,"
        " SpanAttributes['otel_llm.prompt.prefix_hash'], ResourceAttributes['service.version']"
        " FROM otel_traces"
    ).rows
    assert trace == [
        (
            at,
            span.trace_id,
            span.span_id,
            "chat claude-sonnet-4-5",
            "coding-agent",
            1_500_000_000,
            "Ok",
            "p-ÿ\t'x",
            "2.1.0",
        )
    ]
    call = backend.query(
        "SELECT timestamp, task_id, iteration, service_version, provider, request_model, input_tokens,"
        " output_tokens, cache_read_input_tokens, cache_creation_input_tokens,"
        " cache_creation_5m_input_tokens, cache_creation_1h_input_tokens, reasoning_output_tokens,"
        " cost_usd, cache_savings_usd, ttft_seconds, stream, prefix_hash"
        " FROM llm_calls WHERE span_id = {span:String}",
        {"span": span.span_id},
    ).dicts()
    assert call == [
        {
            "timestamp": at,
            "task_id": "exact-1",
            "iteration": 3,
            "service_version": "2.1.0",
            "provider": "anthropic",
            "request_model": "claude-sonnet-4-5",
            "input_tokens": 5100,
            "output_tokens": 321,
            "cache_read_input_tokens": 4000,
            "cache_creation_input_tokens": 700,
            "cache_creation_5m_input_tokens": 500,
            "cache_creation_1h_input_tokens": 200,
            "reasoning_output_tokens": 42,
            "cost_usd": 0.0375,
            "cache_savings_usd": 0.0108,
            "ttft_seconds": 0.25,
            "stream": True,
            "prefix_hash": "p-ÿ\t'x",
        }
    ]


def test_query_parameters_round_trip_exactly(backend: Backend) -> None:
    moment = dt.datetime(2026, 3, 4, 5, 6, 7, 891_011, tzinfo=dt.UTC)
    row = backend.query(
        "SELECT {t:DateTime64(6)} AS t, {s:String} AS s, {n:UInt64} AS n, {f:Float64} AS f,"
        " {xs:Array(String)} AS xs, {none:Nullable(String)} AS none",
        {
            "t": moment,
            "s": "tab\there 'quoted' \\ back",
            "n": 2**63,
            "f": 0.1,
            "xs": ["a", "b'c"],
            "none": None,
        },
    ).dicts()
    assert row == [
        {
            "t": moment,
            "s": "tab\there 'quoted' \\ back",
            "n": 2**63,
            "f": 0.1,
            "xs": ["a", "b'c"],
            "none": None,
        }
    ]


def test_a_map_query_parameter_binds_as_on_the_embedded_engine(backend: Backend) -> None:
    assert backend.query("SELECT {m:Map(String, String)}", {"m": {"k": "v", "a'b": ""}}).scalar() == {
        "k": "v",
        "a'b": "",
    }


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Backend]:
    store = open_backend(make_config(tmp_path / "embedded"))
    apply_schema(store)
    yield store
    store.close()


QUERY_PARAMS = {
    "start": START,
    "end": END,
    "baseline_start": BASE_START,
    "baseline_end": BASE_END,
    "version_a": "1.0.0",
    "version_b": "2.0.0",
    "a_start": BASE_START,
    "a_end": BASE_END,
    "a_version": "1.0.0",
    "b_start": START,
    "b_end": END,
    "b_version": "",
}


def test_every_named_query_gives_the_same_rows_as_the_embedded_engine(
    backend: Backend, embedded: Backend
) -> None:
    data = spans_to_arrow(dataset())
    backend.insert_arrow("otel_traces", data)
    embedded.insert_arrow("otel_traces", data)
    for name in queries.names():
        params = {k: v for k, v in QUERY_PARAMS.items() if k in queries.parameters(name)}
        assert queries.run(backend, name, params) == queries.run(embedded, name, params), name
    # and a few exact values, as the embedded suite pins them
    summary = queries.run(backend, "summary", start=START, end=END)[0]
    assert (summary["calls"], summary["tasks"], summary["cost_usd"]) == (10, 4, 0.12)
    assert summary["input_tokens"] == 27900
    assert [r["calls"] for r in queries.run(backend, "summary", start=START, end=END, service="nobody")] == [
        0
    ]
    top = queries.run(backend, "top_tasks", start=START, end=END, limit=2)
    assert len(top) == 2
    assert top[0]["cost_usd"] >= top[1]["cost_usd"]


# -- errors ----------------------------------------------------------------------------------


def test_statements_the_server_refuses_are_query_errors_and_the_backend_carries_on(backend: Backend) -> None:
    with pytest.raises(QueryError, match=r"UNKNOWN_TABLE") as unknown:
        backend.query("SELECT * FROM no_such_table")
    assert "code: 60" in str(unknown.value)
    with pytest.raises(QueryError, match=r"SYNTAX_ERROR"):
        backend.execute("CREATE TABLE (")
    with pytest.raises(QueryError, match=r"UNKNOWN_IDENTIFIER|THERE_IS_NO_COLUMN|NO_SUCH_COLUMN"):
        backend.insert_columns("budget_events", {"no_such_column": [1]})
    with pytest.raises(QueryError, match=r"not a table name"):
        backend.insert_columns("x; DROP TABLE otel_traces", {"a": [1]})
    assert PASSWORD not in str(unknown.value)
    assert backend.query("SELECT count() FROM otel_traces").scalar() == 0


def test_a_replayed_batch_is_dropped_in_every_table(backend: Backend) -> None:
    data = spans_to_arrow(numbered_spans(50))
    backend.insert_arrow("otel_traces", data, dedup_token="otel-llm-replay-1")
    backend.insert_arrow("otel_traces", data, dedup_token="otel-llm-replay-1")
    assert counts(backend) == (50, 50, 50)
    backend.insert_arrow("otel_traces", data, dedup_token="otel-llm-replay-2")
    assert counts(backend)[0] == 100


# -- outages ---------------------------------------------------------------------------------


def test_a_killed_server_gives_backend_unavailable_and_the_same_backend_reconnects(
    server: ClickHouseHTTPServer, backend: Backend
) -> None:
    backend.insert_arrow("otel_traces", spans_to_arrow(numbered_spans(10)))
    server.kill()
    with pytest.raises(BackendUnavailable, match=r"lost ClickHouse|cannot reach ClickHouse"):
        backend.query("SELECT count() FROM otel_traces")
    server.start()
    assert backend.query("SELECT count() FROM otel_traces").scalar() == 10


def test_an_outage_spools_and_replays_in_order_without_loss_or_duplicates(
    server: ClickHouseHTTPServer, backend: Backend
) -> None:
    config = backend.config.writer
    writer = SpanWriter(backend, WriterConfig(**{**config_fields(config), "batch_rows": 400}))
    try:
        writer.submit(numbered_spans(1000))
        assert writer.flush(timeout=30)
        assert writer.stats()["rows_inserted"] == 1000

        server.kill()
        writer.submit(numbered_spans(1500, start=1000))
        assert writer.flush(timeout=30)  # acknowledged: in the spool
        stats = writer.stats()
        assert stats["rows_spooled"] == 1500
        assert stats["spool_batches"] >= 1
        assert stats["rows_lost"] == stats["rows_rejected"] == 0

        server.start()
        writer.submit(numbered_spans(500, start=2500))  # queues behind the spool
        assert writer.flush(timeout=30)
        wait_until(lambda: writer.stats()["rows_replayed"] == writer.stats()["rows_spooled"])
        stats = writer.stats()
    finally:
        assert writer.close(timeout=30)
    # the 500 rows submitted after the restart queued behind the spool, so they were spooled too
    assert stats["rows_spooled"] == stats["rows_replayed"] >= 1500
    assert stats["rows_lost"] == stats["rows_rejected"] == 0
    assert counts(backend) == (3000, 3000, 3000)
    assert span_numbers(backend) == list(range(1, 3001))


def test_a_server_that_comes_back_empty_gets_the_schema_before_the_replay(
    server: ClickHouseHTTPServer, backend: Backend, tmp_path: Path
) -> None:
    with SpanWriter(backend) as writer:
        server.kill()
        writer.submit(numbered_spans(300))
        assert writer.flush(timeout=30)
        assert writer.stats()["rows_spooled"] == 300
        server.data_dir = tmp_path / "server-rebuilt"  # same port, new disk
        server.start()
        wait_until(lambda: writer.stats()["rows_replayed"] == 300)
        assert writer.stats()["spool_batches"] == 0
    assert counts(backend) == (300, 300, 300)


def test_a_server_down_when_the_writer_starts_spools_until_it_is_up(
    server: ClickHouseHTTPServer, tmp_path: Path
) -> None:
    config = server_config(server, tmp_path)
    server.stop()
    store = open_backend(config)
    try:
        with SpanWriter(store) as writer:
            writer.submit(numbered_spans(200))
            assert writer.flush(timeout=30)
            assert writer.stats()["rows_spooled"] == 200
            server.start()
            wait_until(lambda: writer.stats()["rows_replayed"] == 200)
        assert counts(store) == (200, 200, 200)
    finally:
        store.close()


def test_a_password_rejected_after_connecting_spools_instead_of_rejecting(
    server: ClickHouseHTTPServer, backend: Backend
) -> None:
    with SpanWriter(backend) as writer:
        writer.submit(numbered_spans(100))
        assert writer.flush(timeout=30)
        server.stop()
        server.password = "rotated-" + PASSWORD  # the operator rotated it; the collector has the old one
        server.start()
        writer.submit(numbered_spans(100, start=100))
        assert writer.flush(timeout=30)
        stats = writer.stats()
    assert stats["rows_rejected"] == 0
    assert stats["rows_spooled"] == 100


# -- TLS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    files = self_signed_cert(tmp_path_factory.mktemp("tls"))
    if files is None:
        pytest.skip("no openssl command to make a self-signed certificate")
    return files


@pytest.fixture
def tls_server(tmp_path: Path, tls_files: TlsFiles) -> Iterator[ClickHouseHTTPServer]:
    with ClickHouseHTTPServer(
        tmp_path / "tls-server", user=USER, password=PASSWORD, tls=tls_files
    ) as running:
        yield running


def test_https_with_the_server_certificate_as_ca(
    tls_server: ClickHouseHTTPServer, tls_files: TlsFiles, tmp_path: Path
) -> None:
    assert tls_server.url.startswith("https://")
    with open_backend(server_config(tls_server, tmp_path, ca_cert=str(tls_files.cert))) as store:
        assert store.config.secure
        assert apply_schema(store) == [m.version for m in load_migrations()]
        store.insert_arrow("otel_traces", spans_to_arrow(numbered_spans(5)))
        assert counts(store) == (5, 5, 5)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_https_with_an_unknown_certificate_is_refused_unless_verification_is_off(
    tls_server: ClickHouseHTTPServer, tmp_path: Path
) -> None:
    store = open_backend(server_config(tls_server, tmp_path))
    with store, pytest.raises(BackendUnavailable, match=r"(?i)certificate"):
        store.ping()
    with open_backend(server_config(tls_server, tmp_path, verify_tls=False)) as store:
        store.ping()


def test_plain_http_to_an_https_server_is_backend_unavailable(
    tls_server: ClickHouseHTTPServer, tmp_path: Path
) -> None:
    url = tls_server.url.replace("https://", "http://")
    with (
        open_backend(server_config(tls_server, tmp_path, url=url)) as store,
        pytest.raises(BackendUnavailable),
    ):
        store.ping()
