"""Schema 0005 on real chDB: one row per model call, the bare trace id as the fallback
task, request hashes, escalations and repeats priced from genai-prices."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from otel_llm.storage import prices, queries
from otel_llm.storage.backend import Backend, open_backend
from otel_llm.storage.config import StorageConfig
from otel_llm.storage.ddl import load_migrations, render
from otel_llm.storage.migrations import apply_schema
from otel_llm.storage.records import SpanRecord, spans_to_arrow

NOW = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
START, END = NOW - dt.timedelta(hours=1), NOW + dt.timedelta(hours=1)
TRACE = "0af7651916cd43dd8448eb211c80319c"
HAIKU, SONNET, MINI = "claude-haiku-4-5", "claude-sonnet-4-5", "gpt-4o-mini"


def ns(moment: dt.datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def call(
    span_id: str,
    *,
    at: dt.datetime = NOW,
    trace: str = TRACE,
    response_id: str = "",
    task: str = "",
    cost: float | None = None,
    model: str = "claude-sonnet-4-5",
    input_tokens: int = 1000,
    output_tokens: int = 100,
    request_hash: str = "",
    scope: str = "otel_llm.instrumentation.anthropic",
) -> SpanRecord:
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic" if model.startswith("claude") else "openai",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": str(input_tokens),
        "gen_ai.usage.output_tokens": str(output_tokens),
    }
    if response_id:
        attrs["gen_ai.response.id"] = response_id
    if task:
        attrs["otel_llm.task.id"] = task
    if cost is not None:
        attrs["otel_llm.cost.usd"] = repr(cost)
        attrs["otel_llm.price.source"] = "genai-prices"
    if request_hash:
        attrs["otel_llm.prompt.request_hash"] = request_hash
    return SpanRecord(
        timestamp_ns=ns(at), trace_id=trace, span_id=span_id, span_name=f"chat {model}", span_kind="Client",
        service_name="agent", resource_attributes={"service.name": "agent"}, scope_name=scope,
        span_attributes=attrs, duration_ns=10**9,
    )  # fmt: skip


def load(store: Backend, spans: list[SpanRecord]) -> None:
    store.insert_arrow("otel_traces", spans_to_arrow(spans))


def test_spans_sharing_a_response_id_in_a_trace_are_one_call_with_the_richest_figures(store: Backend) -> None:
    ours = call("00000000000000a1", response_id="msg_1", task="t-1", cost=0.0123, input_tokens=1500)
    # pydantic-ai's span around the same request: earlier, no cost, no task, fewer figures.
    theirs = call("00000000000000a0", at=NOW - dt.timedelta(milliseconds=3), response_id="msg_1",
                  input_tokens=1500, scope="pydantic-ai")  # fmt: skip
    # Arriving in two inserts, so no single block sees both.
    load(store, [theirs])
    load(store, [ours])
    assert queries.run(store, "summary", start=START, end=END)[0] | {} == {
        "calls": 1, "tasks": 1, "cost_usd": 0.0123, "input_tokens": 1500, "output_tokens": 100,
        "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0, "cache_hit_ratio": 0.0,
        "cache_savings_usd": 0.0, "error_rate": 0.0,
    }  # fmt: skip
    [task] = queries.run(store, "top_tasks", start=START, end=END)
    assert (task["task_id"], task["calls"], task["cost_usd"]) == ("t-1", 1, 0.0123)
    kept = store.query("SELECT span_id, richness FROM llm_calls FINAL").rows
    assert kept == [("00000000000000a1", 64 + 32 + 16 + 2)]
    # The same response id in ANOTHER trace is another call.
    load(store, [call("00000000000000b1", trace="1" * 32, response_id="msg_1", task="t-2", cost=0.01)])
    assert queries.run(store, "summary", start=START, end=END)[0]["calls"] == 2


def test_spans_without_a_response_id_are_each_their_own_call(store: Backend) -> None:
    load(
        store,
        [call("00000000000000c1", task="t-3", cost=0.01), call("00000000000000c2", task="t-3", cost=0.02)],
    )
    row = queries.run(store, "summary", start=START, end=END)[0]
    assert (row["calls"], row["cost_usd"]) == (2, 0.03)


def test_a_call_the_sdk_refused_before_sending_is_no_call(store: Backend) -> None:
    # pydantic-ai + Anthropic: "Streaming is required" raised before any request, then
    # the same turn retried as a stream. The refused attempt's span says call.sent=false.
    refused = call("00000000000000e0", task="t-4", input_tokens=0, output_tokens=0)
    refused.span_attributes["otel_llm.call.sent"] = "false"
    sent = call("00000000000000e1", response_id="msg_e", task="t-4", cost=0.02)
    load(store, [refused, sent])
    row = queries.run(store, "summary", start=START, end=END)[0]
    assert (row["calls"], row["cost_usd"], row["error_rate"]) == (1, 0.02, 0.0)
    assert store.query("SELECT span_id FROM llm_calls FINAL").rows == [("00000000000000e1",)]
    assert store.query("SELECT task_id, sum(calls) FROM tasks GROUP BY task_id").rows == [("t-4", 1)]


def test_a_call_without_a_task_belongs_to_its_trace_by_the_bare_trace_id(store: Backend) -> None:
    load(store, [call("00000000000000d1", response_id="msg_9", cost=0.01)])
    assert store.query("SELECT task_id FROM llm_calls FINAL").rows == [(TRACE,)]
    assert store.query("SELECT task_id, sum(calls) FROM tasks GROUP BY task_id").rows == [(TRACE, 1)]


def test_migration_0005_rewrites_trace_tasks_written_before_it(tmp_path: Path) -> None:
    with open_backend(StorageConfig(path=str(tmp_path / "ch"))) as backend:
        options = backend.config.ddl_options()
        for migration in load_migrations():
            if migration.version < 5:
                for statement in migration.statements:
                    backend.execute(render(statement, options))
        load(backend, [call("00000000000000e1", response_id="msg_1", cost=0.01),
                       call("00000000000000e2", response_id="msg_2", cost=0.02, task="t-9")])  # fmt: skip
        assert backend.query("SELECT task_id FROM tasks ORDER BY task_id").rows == [
            ("t-9",),
            (f"trace:{TRACE}",),
        ]
        assert apply_schema(backend) == [1, 2, 3, 4, 5]
        rows = backend.query("SELECT task_id, call_key, richness FROM llm_calls FINAL ORDER BY task_id").rows
        assert rows == [(TRACE, "response:msg_1", 64 + 32 + 2), ("t-9", "response:msg_2", 64 + 32 + 16 + 2)]
        tasks = backend.query(
            "SELECT task_id, sum(calls), sum(cost_usd) FROM tasks GROUP BY task_id ORDER BY 1"
        )
        assert tasks.rows == [(TRACE, 1, 0.01), ("t-9", 1, 0.02)]
        # New spans flow through the recreated views.
        load(backend, [call("00000000000000e3", response_id="msg_3", cost=0.04, request_hash="h")])
        assert backend.query(
            "SELECT request_hash FROM llm_calls WHERE span_id = '00000000000000e3'"
        ).rows == [("h",)]


def test_escalation_is_a_call_to_a_model_with_a_dearer_output_price_than_the_previous(store: Backend) -> None:
    s, B = dt.timedelta(seconds=1), "2" * 32
    load(store, [
        call("0000000000000101", at=NOW, response_id="a1", task="A", cost=0.01, model=HAIKU),
        call("0000000000000102", at=NOW + s, response_id="a2", task="A", cost=0.05, model=SONNET),
        call("0000000000000103", at=NOW + 2 * s, response_id="a3", task="A", cost=0.05, model=SONNET),
        call("0000000000000201", at=NOW, trace=B, response_id="b1", task="B", cost=0.02, model="gpt-4o"),
        call("0000000000000202", at=NOW + s, trace=B, response_id="b2", task="B", cost=0.001, model=MINI),
    ])  # fmt: skip
    assert prices.refresh(store) == 4
    out = dict(store.query("SELECT model, output_usd_per_mtok FROM model_prices FINAL").rows)
    assert out["claude-haiku-4-5"] < out["claude-sonnet-4-5"]
    assert out["gpt-4o-mini"] < out["gpt-4o"]
    assert queries.run(store, "escalations", start=START, end=END) == [
        {"calls": 5, "transitions": 3, "escalations": 1, "escalation_rate": 0.333333, "tasks": 2,
         "tasks_escalated": 1, "escalated_cost_usd": 0.05}
    ]  # fmt: skip


def test_repeated_requests_count_repeats_within_the_window_only(store: Backend) -> None:
    m = dt.timedelta(minutes=1)
    load(store, [
        call("0000000000000301", at=NOW - 30 * m, response_id="r1", task="A", cost=0.01, request_hash="h1"),
        call("0000000000000302", at=NOW - 20 * m, response_id="r2", task="A", cost=0.02, request_hash="h1"),
        call("0000000000000303", at=NOW - 10 * m, response_id="r3", task="B", cost=0.04, request_hash="h1"),
        call("0000000000000304", at=NOW - 50 * m, response_id="r4", task="C", cost=0.5, request_hash="h2"),
        call("0000000000000305", at=NOW + 50 * m, response_id="r5", task="C", cost=0.5, request_hash="h2"),
    ])  # fmt: skip
    rows = queries.run(store, "repeated_requests", start=START, end=END, repeat_window_s=15 * 60)
    assert [
        (r["request_hash"], r["calls"], r["repeats"], r["repeat_cost_usd"], r["tasks"]) for r in rows
    ] == [("h1", 3, 2, 0.06, 2)]
    wide = queries.run(store, "repeated_requests", start=START, end=END, repeat_window_s=7200)
    assert [(r["request_hash"], r["repeats"], r["repeat_cost_usd"]) for r in wide] == [
        ("h2", 1, 0.5),
        ("h1", 2, 0.06),
    ]
