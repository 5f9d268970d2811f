"""pydantic-ai under ``opentelemetry-instrument`` with its own instrumentation on."""

from __future__ import annotations

import pytest
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from otel_llm.collector.otlp import OtlpSpan
from otel_llm.sim import Reply, SimRequest
from otel_llm.sim.tokens import count_tokens
from otel_llm.storage.backend import open_backend
from otel_llm.storage.config import StorageConfig
from otel_llm.storage.migrations import apply_schema
from otel_llm.storage.records import (
    SPAN_KINDS,
    STATUS_CODES,
    SpanRecord,
    attributes_to_strings,
    spans_to_arrow,
)

from .conftest import Run, run_agent

AGENT = "pydantic_agent.py"
DEFAULT_OUTPUT = 20


def _tool_first(request: SimRequest) -> Reply | None:
    """The "pyd-tool" agent: a tool call first, then (with the tool's result) text."""
    body = request.body if isinstance(request.body, dict) else {}
    if "pyd-tool" not in str(body):
        return None
    # pydantic-ai's OpenAI model speaks the Responses API: the tool's result comes back
    # as a function_call_output input item.
    if any(item.get("type") == "function_call_output" for item in body.get("input", ())):
        return None
    return Reply.tool_call("lookup", {"city": "Paris"})


@pytest.fixture(scope="module")
def run(module_sim) -> Run:
    module_sim.reset()
    module_sim.script(_tool_first)
    return run_agent(AGENT, module_sim)


def ours(run: Run) -> list:
    return [s for s in run.calls() if s.scope_name == "otel_llm"]


def test_each_call_has_one_otel_llm_span_beside_pydantic_ais_own(run):
    openai_requests = [r for r in run.requests if r.provider == "openai" and "pyd-openai" in str(r.body)]
    assert len(openai_requests) == 2
    mine = [s for s in ours(run) if s.attributes[gen_ai.GEN_AI_PROVIDER_NAME] == "openai"][:2]
    theirs = [s for s in run.calls() if s.scope_name != "otel_llm" and "gpt-4o-mini" in s.name][:2]
    assert len(mine) == 2
    assert len(theirs) == 2
    # The same model call, told apart by nothing but the instrumentation: same response id.
    assert {s.attributes[gen_ai.GEN_AI_RESPONSE_ID] for s in mine} == {
        s.attributes[gen_ai.GEN_AI_RESPONSE_ID] for s in theirs
    }
    for n, span in enumerate(mine):
        assert span.attributes[gen_ai.GEN_AI_USAGE_INPUT_TOKENS] == count_tokens(f"pyd-openai-{n} hello")
        assert span.attributes[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] == DEFAULT_OUTPUT


def test_anthropic_refusal_before_sending_is_no_phantom_iteration(run):
    # One request reached the simulator (the stream pydantic-ai fell back to); the SDK's
    # refusal of the non-streaming call never left the process.
    anthropic_requests = [r for r in run.requests if r.provider == "anthropic"]
    assert len(anthropic_requests) == 1
    assert anthropic_requests[0].stream
    assert run.out["anthropic_iterations"] == 1
    task = run.tasks()["one-call"].attributes
    assert task["otel_llm.task.iterations"] == 1
    assert "otel_llm.task.stopped_by" not in task
    refused, streamed = (s for s in ours(run) if s.attributes[gen_ai.GEN_AI_PROVIDER_NAME] == "anthropic")
    # The refusal's span says so, and is neither an error nor a model call.
    assert refused.attributes["otel_llm.call.sent"] is False
    assert refused.status_code == 0  # STATUS_CODE_UNSET
    assert "error.type" not in refused.attributes
    assert gen_ai.GEN_AI_USAGE_INPUT_TOKENS not in refused.attributes
    assert [name for name, _ in refused.events] == ["exception"]
    assert "otel_llm.call.sent" not in streamed.attributes
    assert streamed.attributes[gen_ai.GEN_AI_REQUEST_STREAM] is True
    assert streamed.attributes[gen_ai.GEN_AI_USAGE_INPUT_TOKENS] == count_tokens("pyd-anthropic hello")
    assert streamed.attributes[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] == DEFAULT_OUTPUT


def test_tools_pydantic_ai_runs_count_toward_the_task(run):
    # The model asked for one tool call; pydantic-ai ran it in its own execute_tool span,
    # which counts as the task's tool call without otel_llm.tool.
    assert run.out["tools"] == {"iterations": 2, "tool_calls": 1, "requested_tool_calls": 1}
    task = run.tasks()["tools"].attributes
    assert task["otel_llm.task.tool_calls"] == 1
    assert task["otel_llm.task.requested_tool_calls"] == 1
    (tool_span,) = [s for s in run.spans if s.attributes.get("gen_ai.tool.name") == "lookup"]
    assert tool_span.scope_name != "otel_llm.tasks"


def _record(span: OtlpSpan) -> SpanRecord:
    return SpanRecord(
        timestamp_ns=span.start_time_unix_nano,
        trace_id=span.trace_id,
        span_id=span.span_id,
        parent_span_id=span.parent_span_id,
        span_name=span.name,
        span_kind=SPAN_KINDS[span.kind],
        service_name=str(span.resource.get("service.name", "")),
        resource_attributes=attributes_to_strings(span.resource),
        scope_name=span.scope_name,
        scope_version=span.scope_version,
        span_attributes=attributes_to_strings(span.attributes),
        duration_ns=span.end_time_unix_nano - span.start_time_unix_nano,
        status_code=STATUS_CODES[span.status_code],
    )


def test_llm_calls_counts_each_call_once_though_two_instrumentations_traced_it(run, tmp_path):
    store = open_backend(StorageConfig(path=str(tmp_path / "ch")))
    try:
        apply_schema(store)
        store.insert_arrow("otel_traces", spans_to_arrow([_record(s) for s in run.spans]))
        served = [r for r in run.requests if r.method == "POST"]
        rows = store.query(
            "SELECT provider, input_tokens, output_tokens FROM llm_calls FINAL "
            "WHERE provider = 'openai' ORDER BY timestamp"
        ).rows
        # Four OpenAI requests (two plain runs, the tool run's two turns), each traced by
        # pydantic-ai and by otel-llm: four calls, with the tokens the simulator served.
        assert len([r for r in served if r.provider == "openai"]) == 4
        assert len(rows) == 4
        assert rows[0][1:] == (count_tokens("pyd-openai-0 hello"), DEFAULT_OUTPUT)
        assert rows[1][1:] == (count_tokens("pyd-openai-1 hello"), DEFAULT_OUTPUT)
    finally:
        store.close()
