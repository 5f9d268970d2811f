"""Real task spans into the typed tables: ``otel_llm.task(...)`` around the real OpenAI SDK
against the provider simulator, spans from a real OTel SDK ``TracerProvider``, through
``from_readable_span`` and ``SpanWriter`` into chDB; ``tasks`` and ``budget_events`` must
hold exactly what the task span says, and ``llm_calls`` one row per model call."""

from __future__ import annotations

import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan

import otel_llm
from otel_llm import tasks
from otel_llm.instrumentation.openai import OpenAIInstrumentor
from otel_llm.sim import Reply
from otel_llm.storage.backend import Backend
from otel_llm.storage.records import from_readable_span
from otel_llm.storage.writer import SpanWriter

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

HI = [{"role": "user", "content": "hi"}]
TASK_COLUMNS = (
    "max(task_name), sum(task_spans), sum(calls), max(max_iteration), sum(input_tokens), sum(output_tokens), "
    "max(task_status), max(stopped_by), max(task_kind), max(parent_task_id), max(reported_iterations), "
    "max(reported_tool_calls), max(reported_input_tokens), max(reported_output_tokens), "
    "max(reported_cache_read_input_tokens), max(reported_cache_creation_input_tokens), "
    "max(reported_reasoning_output_tokens), max(reported_cost_usd), max(reported_cost_input_usd), "
    "max(reported_cost_output_usd), max(reported_cost_cache_read_usd), max(reported_cost_cache_write_usd), "
    "max(reported_cache_savings_usd), max(reported_unpriced_calls), max(task_duration_s), "
    "max(task_duration_ns), max(budget_level), max(budget_max_iterations), max(budget_max_usd)"
)


@pytest.fixture
def instrumented(pipeline):
    tasks._reset_for_tests()
    tasks.configure(environ={}, tracer_provider=pipeline.tracer_provider)
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=pipeline.tracer_provider, meter_provider=pipeline.meter_provider)
    yield pipeline
    instrumentor.uninstrument()
    tasks._reset_for_tests()


def run_agent(sim, pipeline) -> tuple[str, str]:
    """Outer task (max 5 model calls): a call, a tool, a nested task with one call, then
    calls until the guard refuses the sixth. Returns (outer id, inner id)."""
    sim.script(lambda request: Reply.tool_call("search", {"query": "again"}))
    with openai.OpenAI(base_url=sim.openai_base_url, api_key="sk-sim", max_retries=0) as client:

        def call() -> None:
            client.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=50)

        def agent() -> None:
            with otel_llm.task("outer", max_iterations=5) as outer:
                call()
                with otel_llm.tool("search"):
                    pass
                with otel_llm.task("inner") as inner:
                    call()
                try:
                    for _ in range(10):  # bounded, so a guard that fails to refuse fails the test
                        call()
                finally:
                    ids[:] = [outer.task_id, inner.task_id]

        ids: list[str] = []
        with pytest.raises(otel_llm.BudgetExceeded):
            agent()
    assert sim.request_count == 5
    return ids[0], ids[1]


def task_row(store: Backend, task_id: str) -> tuple:
    rows = store.query(
        f"SELECT {TASK_COLUMNS} FROM tasks WHERE task_id = {{t:String}} GROUP BY task_id", {"t": task_id}
    ).rows
    assert len(rows) == 1, rows
    return rows[0]


def attr(span: ReadableSpan, key: str):
    return span.attributes[key]


def test_a_real_task_span_fills_tasks_and_budget_events_and_no_llm_call(
    instrumented, sim, store: Backend
) -> None:
    outer_id, inner_id = run_agent(sim, instrumented)
    spans = instrumented.spans()
    with SpanWriter(store) as writer:
        writer.submit([from_readable_span(s) for s in spans])
        assert writer.flush(timeout=30)

    calls = [s for s in spans if s.name == "chat gpt-4o-mini"]
    outer = instrumented.span("invoke_agent outer")
    inner = instrumented.span("invoke_agent inner")
    assert len(calls) == 5
    assert len(spans) == 8  # 5 calls, 2 task spans, 1 tool span

    # llm_calls: one row per inference (CLIENT) span, none from task or tool spans.
    rows = store.query(
        "SELECT span_id, task_id, iteration, input_tokens, output_tokens, cost_usd FROM llm_calls "
        "ORDER BY timestamp"
    ).rows
    assert rows == [
        (f"{s.context.span_id:016x}", attr(s, "otel_llm.task.id"), attr(s, "otel_llm.task.iteration"),
         attr(s, "gen_ai.usage.input_tokens"), attr(s, "gen_ai.usage.output_tokens"),
         attr(s, "otel_llm.cost.usd"))
        for s in calls
    ]  # fmt: skip
    assert [r[1] for r in rows] == [outer_id, inner_id, outer_id, outer_id, outer_id]

    # tasks: the span's own totals (which count the nested task's call) next to the
    # llm_calls sums (which carry the innermost task id).
    outer_calls = [s for s in calls if attr(s, "otel_llm.task.id") == outer_id]
    a = outer.attributes
    assert a["otel_llm.task.iterations"] == 5
    assert a["otel_llm.task.cost.usd"] == sum(attr(s, "otel_llm.cost.usd") for s in calls)
    assert task_row(store, outer_id) == (
        "outer", 1, 4, 5,
        sum(attr(s, "gen_ai.usage.input_tokens") for s in outer_calls),
        sum(attr(s, "gen_ai.usage.output_tokens") for s in outer_calls),
        "stopped", "max_iterations", "explicit", "", 5, 1,
        a["otel_llm.task.usage.input_tokens"], a["otel_llm.task.usage.output_tokens"],
        a["otel_llm.task.usage.cache_read.input_tokens"],
        a["otel_llm.task.usage.cache_creation.input_tokens"],
        a["otel_llm.task.usage.reasoning.output_tokens"],
        a["otel_llm.task.cost.usd"], a["otel_llm.task.cost.input_usd"], a["otel_llm.task.cost.output_usd"],
        a["otel_llm.task.cost.cache_read_usd"], a["otel_llm.task.cost.cache_write_usd"],
        a["otel_llm.task.cost.cache_savings_usd"], 0, a["otel_llm.task.duration_s"],
        outer.end_time - outer.start_time, 4, 5.0, None,
    )  # fmt: skip
    assert a["otel_llm.task.usage.input_tokens"] == sum(attr(s, "gen_ai.usage.input_tokens") for s in calls)
    b = inner.attributes
    assert task_row(store, inner_id) == (
        "inner", 1, 1, 1, b["otel_llm.task.usage.input_tokens"], b["otel_llm.task.usage.output_tokens"],
        "done", "", "explicit", outer_id, 1, 0,
        b["otel_llm.task.usage.input_tokens"], b["otel_llm.task.usage.output_tokens"], 0, 0, 0,
        b["otel_llm.task.cost.usd"], b["otel_llm.task.cost.input_usd"], b["otel_llm.task.cost.output_usd"],
        0.0, 0.0, 0.0, 0, b["otel_llm.task.duration_s"], inner.end_time - inner.start_time, 1, None, None,
    )  # fmt: skip

    # budget_events: one row per budget event on the task span, at the event's time.
    events = store.query(
        "SELECT toUnixTimestamp64Nano(timestamp), event_id, kind, task_id, task_name, service_name, "
        "limit_name, limit_value, spent, source, span_id, message FROM budget_events "
        "ORDER BY timestamp, event_id"
    ).rows
    outer_span_id = f"{outer.context.span_id:016x}"
    budget_events = [(i, e) for i, e in enumerate(outer.events, 1) if e.name.startswith("otel_llm.budget.")]
    assert [(e.name, dict(e.attributes)) for _, e in budget_events] == [
        ("otel_llm.budget.warn", {"otel_llm.budget.limit": "max_iterations", "otel_llm.budget.spent": 4.0,
                                  "otel_llm.budget.limit_value": 5.0}),
        ("otel_llm.budget.exceeded", {"otel_llm.budget.limit": "max_iterations", "otel_llm.budget.spent": 5.0,
                                      "otel_llm.budget.limit_value": 5.0}),
        ("otel_llm.budget.killed", {"otel_llm.budget.limit": "max_iterations", "otel_llm.budget.spent": 5.0,
                                    "otel_llm.budget.limit_value": 5.0}),
    ]  # fmt: skip
    service = outer.resource.attributes["service.name"]
    refused = outer.status.description
    assert refused.startswith('BudgetExceeded: task "outer"')
    assert events == [
        (e.timestamp, f"{outer_span_id}:{i}", e.name.rsplit(".", 1)[1], outer_id, "outer", service,
         "max_iterations", e.attributes["otel_llm.budget.limit_value"], e.attributes["otel_llm.budget.spent"],
         "span", outer_span_id, refused if e.name == "otel_llm.budget.killed" else "")
        for i, e in budget_events
    ]  # fmt: skip
