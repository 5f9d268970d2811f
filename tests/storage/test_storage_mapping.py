"""Spans in, typed rows out: the materialized views on real chDB, and the span converters.

Rows are inserted the way the upstream ClickHouse exporter writes them (attribute values
as strings, kind ``Client``, status ``Error``) — by SQL INSERT like the exporter, and via
our own Arrow encoder — with the attribute names of otel-llm, traceloop/openllmetry,
OpenLIT and plain semconv spans.
"""

from __future__ import annotations

import datetime as dt

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support.storage import NOW, llm_span, ns

from otel_llm.collector.otlp import from_export_request
from otel_llm.storage.backend import Backend
from otel_llm.storage.records import (
    SpanEvent,
    SpanRecord,
    attribute_str,
    from_readable_span,
    spans_to_arrow,
)

CALL_COLUMNS = (
    "source, provider, operation, request_model, response_model, task_id, input_tokens, output_tokens, "
    "cache_read_input_tokens, cache_creation_input_tokens, cache_creation_5m_input_tokens, "
    "cache_creation_1h_input_tokens, reasoning_output_tokens, cost_usd, price_source, stream, ttft_seconds, "
    "status_code, error_type"
)


def insert_spans(store: Backend, spans: list[SpanRecord], token: str | None = None) -> None:
    store.insert_arrow("otel_traces", spans_to_arrow(spans), dedup_token=token)


def foreign_span(
    span_id: str, name: str, scope: str, attrs: dict[str, str], *, kind: str = "Client"
) -> SpanRecord:
    return SpanRecord(
        timestamp_ns=ns(NOW - dt.timedelta(minutes=5)),
        trace_id=f"{int(span_id, 16):032x}",
        span_id=span_id,
        span_name=name,
        span_kind=kind,
        service_name="other-agent",
        resource_attributes={"service.name": "other-agent", "service.version": "3.1"},
        scope_name=scope,
        scope_version="0.40.0",
        span_attributes=attrs,
        duration_ns=900_000_000,
        status_code="Unset",
    )


def call_row(store: Backend, span_id: str) -> tuple:
    rows = store.query(
        f"SELECT {CALL_COLUMNS} FROM llm_calls WHERE span_id = {{s:String}}", {"s": span_id}
    ).rows
    assert len(rows) == 1, rows
    return rows[0]


def test_a_span_inserted_like_the_upstream_exporter_does_lands_in_llm_calls(store: Backend) -> None:
    """The exporter's own INSERT statement shape, traceloop's Anthropic attribute names."""
    store.execute(
        """
        INSERT INTO otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind,
            ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration, StatusCode,
            StatusMessage, `Events.Timestamp`, `Events.Name`, `Events.Attributes`, `Links.TraceId`,
            `Links.SpanId`, `Links.TraceState`, `Links.Attributes`)
        VALUES ({t:DateTime64(9)}, 'aaaa0000000000000000000000000001', '00000000000000a1', '', '',
            'anthropic.chat', 'Client', 'tl-agent', {'service.name': 'tl-agent', 'service.version': '0.9'},
            'opentelemetry.instrumentation.anthropic', '0.40.0',
            {'gen_ai.system': 'Anthropic', 'llm.request.type': 'completion',
             'gen_ai.request.model': 'claude-3-5-sonnet-20241022',
             'gen_ai.response.model': 'claude-3-5-sonnet-20241022',
             'gen_ai.usage.prompt_tokens': '1500', 'gen_ai.usage.completion_tokens': '250',
             'llm.usage.total_tokens': '1750', 'gen_ai.usage.cache_read_input_tokens': '400',
             'gen_ai.usage.cache_creation_input_tokens': '100'},
            2000000000, 'Ok', '', [], [], [], [], [], [], [])
        """,
        {"t": NOW - dt.timedelta(minutes=1)},
    )
    assert call_row(store, "00000000000000a1") == (
        "traceloop", "anthropic", "completion", "claude-3-5-sonnet-20241022", "claude-3-5-sonnet-20241022",
        "aaaa0000000000000000000000000001", 1500, 250, 400, 100, 100, 0, 0, 0.0, "", False, None,
        "Ok", "",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("name", "scope", "attrs", "expected"),
    [
        pytest.param(
            "openai.chat",
            "opentelemetry.instrumentation.openai.v1",
            {
                "gen_ai.system": "openai",
                "llm.request.type": "chat",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.usage.prompt_tokens": "2000",
                "gen_ai.usage.completion_tokens": "100",
                "gen_ai.usage.cache_read_input_tokens": "1536",
                "gen_ai.usage.reasoning_tokens": "64",
                "llm.is_streaming": "true",
            },
            (
                "traceloop",
                "openai",
                "chat",
                "gpt-4o",
                "gpt-4o-2024-08-06",
                2000,
                100,
                1536,
                0,
                0,
                0,
                64,
                0.0,
                "",
                True,
                None,
            ),
            id="traceloop-openai-prompt-tokens-include-cache",
        ),
        pytest.param(
            "anthropic.chat",
            "opentelemetry.instrumentation.anthropic",
            {
                "gen_ai.system": "Anthropic",
                "gen_ai.request.model": "claude-3-haiku",
                "gen_ai.usage.prompt_tokens": "300",
                "gen_ai.usage.completion_tokens": "40",
                "gen_ai.usage.cache_read_input_tokens": "1000",
            },
            (
                "traceloop",
                "anthropic",
                "",
                "claude-3-haiku",
                "claude-3-haiku",
                1300,
                40,
                1000,
                0,
                0,
                0,
                0,
                0.0,
                "",
                False,
                None,
            ),
            id="old-traceloop-anthropic-input-below-cache-is-exclusive",
        ),
        pytest.param(
            "chat claude-sonnet-4",
            "openlit.otel.tracing",
            {
                "gen_ai.system": "anthropic",
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "claude-sonnet-4",
                "gen_ai.response.model": "claude-sonnet-4-20250514",
                "gen_ai.usage.input_tokens": "50",
                "gen_ai.usage.output_tokens": "20",
                "gen_ai.usage.cache_read.input_tokens": "1000",
                "gen_ai.usage.cache_creation.input_tokens": "200",
                "gen_ai.usage.cost": "0.0042",
                "gen_ai.request.is_stream": "true",
                "gen_ai.server.time_to_first_token": "0.31",
            },
            (
                "openlit",
                "anthropic",
                "chat",
                "claude-sonnet-4",
                "claude-sonnet-4-20250514",
                1250,
                20,
                1000,
                200,
                200,
                0,
                0,
                0.0042,
                "openlit",
                True,
                0.31,
            ),
            id="openlit-anthropic-input-excludes-cache",
        ),
        pytest.param(
            "chat gpt-4o-mini",
            "openlit.otel.tracing",
            {
                "gen_ai.system": "openai",
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": "800",
                "gen_ai.usage.output_tokens": "90",
                "gen_ai.usage.cache_read_input_tokens": "512",
                "gen_ai.usage.reasoning_tokens": "30",
                "gen_ai.usage.cost": "0.00021",
                "gen_ai.request.is_stream": "false",
                "gen_ai.server.time_to_first_token": "0",
            },
            (
                "openlit",
                "openai",
                "chat",
                "gpt-4o-mini",
                "gpt-4o-mini",
                800,
                90,
                512,
                0,
                0,
                0,
                30,
                0.00021,
                "openlit",
                False,
                None,
            ),
            id="openlit-openai-input-includes-cache",
        ),
        pytest.param(
            "chat claude-opus-4",
            "anthropic-sdk",
            {
                "gen_ai.provider.name": "anthropic",
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "claude-opus-4",
                "gen_ai.usage.input_tokens": "3000",
                "gen_ai.usage.output_tokens": "10",
                "gen_ai.usage.cache_read.input_tokens": "500",
                "gen_ai.usage.cache_write.input_tokens": "2000",
                "gen_ai.request.stream": "true",
                "gen_ai.response.time_to_first_chunk": "1.25",
            },
            (
                "semconv",
                "anthropic",
                "chat",
                "claude-opus-4",
                "claude-opus-4",
                3000,
                10,
                500,
                2000,
                2000,
                0,
                0,
                0.0,
                "",
                True,
                1.25,
            ),
            id="semconv-with-anthropic-sdk-cache-write-name",
        ),
    ],
)
def test_other_instrumentations_attribute_names_are_mapped(
    store: Backend, name: str, scope: str, attrs: dict[str, str], expected: tuple
) -> None:
    insert_spans(store, [foreign_span("00000000000000b1", name, scope, attrs)])
    row = call_row(store, "00000000000000b1")
    source, provider, operation, req, resp, _task, *numbers = row[:-2]
    assert (source, provider, operation, req, resp, *numbers) == expected
    assert row[-2:] == ("Unset", "")


def test_non_inference_spans_stay_out_of_llm_calls(store: Backend) -> None:
    spans = [
        foreign_span("00000000000000c1", "invoke_agent fixer", "otel_llm",
                     {"gen_ai.operation.name": "invoke_agent", "gen_ai.request.model": "gpt-4o",
                      "otel_llm.task.id": "t-1"}, kind="Internal"),
        foreign_span("00000000000000c2", "execute_tool grep", "otel_llm",
                     {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "grep"}, kind="Internal"),
        foreign_span("00000000000000c3", "GET /v1/things", "opentelemetry.instrumentation.httpx",
                     {"http.request.method": "GET"}),
        foreign_span("00000000000000c4", "chain run", "langchain", {"gen_ai.request.model": "gpt-4o"},
                     kind="Internal"),
    ]  # fmt: skip
    insert_spans(store, spans)
    assert store.query("SELECT count() FROM otel_traces").scalar() == 4
    assert store.query("SELECT count() FROM llm_calls").scalar() == 0


def test_our_spans_fill_calls_tasks_and_budget_events_with_exact_values(store: Backend) -> None:
    at = NOW - dt.timedelta(minutes=30)
    first = llm_span(
        at=at,
        task="fix-1",
        iteration=1,
        input_tokens=5000,
        output_tokens=300,
        cache_write=4000,
        cache_write_1h=1000,
        cost=0.02075,
        savings=-0.00375,
        prefix="p1",
        stream=True,
        ttft=0.8,
    )
    second = llm_span(at=at + dt.timedelta(seconds=5), task="fix-1", iteration=2, input_tokens=5200,
                      output_tokens=100, cache_read=4000, cost=0.0033, savings=0.0108, prefix="p1",
                      error="RateLimitError", duration_s=0.25)  # fmt: skip
    baggage_only = llm_span(at=at, task="ignored", iteration=1)
    baggage_only.span_attributes.pop("otel_llm.task.id")
    baggage_only.span_attributes["baggage.otel_llm.task.id"] = "from-baggage"
    task_span = SpanRecord(
        timestamp_ns=ns(at - dt.timedelta(seconds=1)),
        trace_id=first.trace_id,
        span_id="00000000000000d1",
        span_name="invoke_agent fix",
        span_kind="Internal",
        service_name="coding-agent",
        resource_attributes=first.resource_attributes,
        span_attributes={"otel_llm.task.id": "fix-1", "otel_llm.task.cost.usd": "0.02405",
                         "otel_llm.task.outcome": "done", "otel_llm.budget.state": "warn",
                         "otel_llm.budget.max_usd": "0.025"},
        duration_ns=7_000_000_000,
        status_code="Ok",
        events=[SpanEvent(ns(at + dt.timedelta(seconds=5)), "otel_llm.budget.warn",
                          {"otel_llm.budget.limit": "max_usd", "otel_llm.budget.limit_value": "0.025",
                           "otel_llm.budget.spent": "0.02405"})],
    )  # fmt: skip
    insert_spans(store, [first, second, baggage_only, task_span])

    rows = store.query(
        "SELECT task_id, task_name, iteration, input_tokens, cache_creation_5m_input_tokens, "
        "cache_creation_1h_input_tokens, cost_usd, cache_savings_usd, prefix_hash, status_code, error_type, "
        "duration_ns, ttft_seconds, service_version, server_address FROM llm_calls "
        "ORDER BY task_id, iteration"
    ).rows
    assert rows == [
        ("fix-1", "fix", 1, 5000, 3000, 1000, 0.02075, -0.00375, "p1", "Ok", "", 1_500_000_000, 0.8, "1.0.0",
         "api.anthropic.com"),
        ("fix-1", "fix", 2, 5200, 0, 0, 0.0033, 0.0108, "p1", "Error", "RateLimitError", 250_000_000, None,
         "1.0.0", "api.anthropic.com"),
        ("from-baggage", "ignored", 1, 1000, 0, 0, 0.01, 0.0, "", "Ok", "", 1_500_000_000, None, "1.0.0",
         "api.anthropic.com"),
    ]  # fmt: skip
    task = store.query(
        "SELECT task_id, max(task_name), sum(calls), sum(errors), max(max_iteration), sum(input_tokens), "
        "sum(output_tokens), sum(cache_read_input_tokens), sum(cache_creation_input_tokens), "
        "round(sum(cost_usd), 6), sum(task_spans), max(task_duration_ns), max(task_status), "
        "max(reported_cost_usd), max(budget_level), min(first_seen), max(last_seen) "
        "FROM tasks WHERE task_id = 'fix-1' GROUP BY task_id"
    ).rows
    assert task == [
        ("fix-1", "fix", 2, 1, 2, 10200, 400, 4000, 4000, 0.02405, 1, 7_000_000_000, "done", 0.02405, 2,
         at - dt.timedelta(seconds=1), at + dt.timedelta(seconds=6)),
    ]  # fmt: skip
    events = store.query(
        "SELECT timestamp, kind, task_id, limit_name, limit_value, spent, source, event_id, attributes "
        "FROM budget_events"
    ).rows
    assert events == [
        (at + dt.timedelta(seconds=5), "warn", "fix-1", "max_usd", 0.025, 0.02405, "span",
         "00000000000000d1:1", {"otel_llm.budget.limit": "max_usd", "otel_llm.budget.limit_value": "0.025",
                                "otel_llm.budget.spent": "0.02405"}),
    ]  # fmt: skip
    lookup = store.query(
        "SELECT TraceId, toDateTime64(min(Start), 0, 'UTC'), toDateTime64(max(End), 0, 'UTC') "
        "FROM otel_traces_trace_id_ts WHERE TraceId = {t:String} GROUP BY TraceId",
        {"t": first.trace_id},
    ).rows
    assert lookup == [(first.trace_id, at - dt.timedelta(seconds=1), at + dt.timedelta(seconds=5))]


def test_the_same_batch_sent_twice_with_its_token_is_stored_once_everywhere(store: Backend) -> None:
    spans = [
        llm_span(at=NOW - dt.timedelta(minutes=3), task="dup", iteration=i, cost=0.5) for i in range(1, 4)
    ]
    insert_spans(store, spans, token="batch-1")
    insert_spans(store, spans, token="batch-1")
    assert store.query("SELECT count() FROM otel_traces").scalar() == 3
    assert store.query("SELECT count() FROM llm_calls").scalar() == 3
    assert store.query("SELECT sum(calls), sum(cost_usd) FROM tasks").rows == [(3, 1.5)]
    insert_spans(store, spans[:1], token="batch-2")  # another token: a real second write
    assert store.query("SELECT count() FROM llm_calls").scalar() == 4


# -- converters ----------------------------------------------------------------------


def finished_spans() -> list:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "conv", "service.version": "2.0"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("otel_llm.instrumentation.openai", "0.1.0")
    with tracer.start_as_current_span("invoke_agent conv") as parent:
        parent.set_attribute("otel_llm.task.id", "conv-1")
        with tracer.start_as_current_span("chat gpt-4o", kind=trace.SpanKind.CLIENT) as span:
            span.set_attributes({
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 1200,
                "gen_ai.request.stream": True,
                "gen_ai.response.time_to_first_chunk": 0.25,
                "otel_llm.cost.usd": 3.0,
                "tiny": 1e-7,
                "gen_ai.response.finish_reasons": ["stop", "length"],
                "ints": [1, 2],
            })  # fmt: skip
            span.add_event("gen_ai.choice", {"index": 0})
            span.set_status(trace.Status(trace.StatusCode.ERROR, "boom"))
    provider.shutdown()
    return list(exporter.get_finished_spans())


def test_readable_span_becomes_the_row_the_upstream_exporter_would_write() -> None:
    child, parent = finished_spans()
    record = from_readable_span(child)
    assert record.span_attributes == {
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": "1200",
        "gen_ai.request.stream": "true",
        "gen_ai.response.time_to_first_chunk": "0.25",
        "otel_llm.cost.usd": "3",
        "tiny": "1e-7",
        "gen_ai.response.finish_reasons": '["stop","length"]',
        "ints": "[1,2]",
    }
    assert record.trace_id == f"{child.context.trace_id:032x}"
    assert record.parent_span_id == f"{parent.context.span_id:016x}"
    assert (record.span_kind, record.status_code, record.status_message) == ("Client", "Error", "boom")
    assert (record.service_name, record.scope_name, record.scope_version) == (
        "conv",
        "otel_llm.instrumentation.openai",
        "0.1.0",
    )
    assert record.resource_attributes["service.version"] == "2.0"
    assert record.duration_ns == child.end_time - child.start_time
    assert record.events == [SpanEvent(child.events[0].timestamp, "gen_ai.choice", {"index": "0"})]
    assert from_readable_span(parent).span_kind == "Internal"
    assert from_readable_span(parent).parent_span_id == ""


def test_otlp_protobuf_gives_the_same_records_as_the_sdk_spans() -> None:
    spans = finished_spans()
    request = encode_spans(spans)
    assert from_export_request(request) == [from_readable_span(s) for s in spans]


def test_records_round_trip_through_the_store_exactly(store: Backend) -> None:
    records = [from_readable_span(s) for s in finished_spans()]
    insert_spans(store, records)
    got = store.query(
        "SELECT SpanAttributes, Events.Name, Events.Attributes, StatusCode, toUnixTimestamp64Nano(Timestamp) "
        "FROM otel_traces WHERE SpanName = 'chat gpt-4o'"
    ).rows
    child = records[0]
    assert got == [(child.span_attributes, ["gen_ai.choice"], [{"index": "0"}], "Error", child.timestamp_ns)]


@pytest.mark.parametrize(
    ("value", "text"),
    [(True, "true"), (7, "7"), (0.5, "0.5"), (2.0, "2"), (1e21, "1e+21"), ([], "[]"),
     ({"a": [1]}, '{"a":[1]}'), (b"\x00\x01", "AAE="), ("é", "é")],
)  # fmt: skip
def test_attribute_values_are_stringified_like_pcommon_as_string(value: object, text: str) -> None:
    assert attribute_str(value) == text
