"""LiteLLM under ``opentelemetry-instrument``, against the simulator: one inference span per
model call LiteLLM makes, under the same contract as the SDK instrumentations."""

from __future__ import annotations

import pytest
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from otel_llm import attributes as attrs
from otel_llm.sim import Reply, SimRequest
from otel_llm.sim.tokens import count_tokens

from .conftest import Run, run_agent

AGENT = "litellm_agent.py"
SYSTEM = "You are a careful assistant. " * 600
DEFAULT_OUTPUT = 20  # the simulator's generated reply, in tokens
INPUT = gen_ai.GEN_AI_USAGE_INPUT_TOKENS
OUTPUT = gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS
PROVIDER = gen_ai.GEN_AI_PROVIDER_NAME


def _fail_primary(request: SimRequest) -> Reply | None:
    if request.model == "gpt-4o-mini" and "route-fail" in str(request.body):
        return Reply.error(500)
    return None


@pytest.fixture(scope="module")
def run(module_sim) -> Run:
    module_sim.reset()
    module_sim.script(_fail_primary)
    return run_agent(AGENT, module_sim)


# The agent's calls, in order (one span each): see agents/litellm_agent.py.
ORDER = [
    "sync-openai",
    "sync-anthropic-1",
    "sync-anthropic-2",
    "stream-openai",
    "stream-anthropic",
    "embed-sync",
    "responses-sync",
    "async-openai",
    "async-anthropic",
    "astream-openai",
    "embed-async",
    "route-fail",  # the primary deployment, refused by the simulator with a 500
    "route-fail",  # the fallback deployment
    "budget-1",
    "budget-router-1",
    "metered-stream",
    "embed-float",  # through the OpenAI SDK's embeddings resource, instrumented as well
    "after-typo",  # the call after one LiteLLM refused before sending (no span of a call)
]


def sent(run: Run) -> list:
    """The spans of calls that were sent (not LiteLLM's own refusals)."""
    return [s for s in run.calls() if s.attributes.get(attrs.CALL_SENT) is not False]


def test_every_litellm_call_is_one_span_and_one_request(run):
    spans = sent(run)
    assert len(spans) == len(ORDER), [s.name for s in spans]
    model_requests = [r for r in run.requests if r.method == "POST"]
    assert len(model_requests) == len(ORDER)
    for span, request, marker in zip(spans, model_requests, ORDER, strict=True):
        assert marker in str(request.body)
        assert span.attributes[gen_ai.GEN_AI_REQUEST_MODEL] == request.model
        assert span.attributes[PROVIDER] == request.provider
        assert span.attributes["server.address"] == "127.0.0.1"
    assert [s.name for s in spans[:3]] == [
        "chat gpt-4o-mini",
        "chat claude-haiku-4-5",
        "chat claude-haiku-4-5",
    ]
    assert spans[5].name == "embeddings text-embedding-3-small"
    float_embedding = spans[ORDER.index("embed-float")].attributes
    assert float_embedding[gen_ai.GEN_AI_REQUEST_ENCODING_FORMATS] == ["float"]
    assert float_embedding[INPUT] == count_tokens("embed-float one")


def test_openai_and_anthropic_usage_is_what_the_simulator_served(run):
    spans = sent(run)
    sync_openai = spans[0].attributes
    assert sync_openai[INPUT] == count_tokens("sync-openai hello")
    assert sync_openai[OUTPUT] == DEFAULT_OUTPUT
    async_anthropic = spans[8].attributes
    assert async_anthropic[INPUT] == count_tokens("async-anthropic hello")
    assert async_anthropic[OUTPUT] == DEFAULT_OUTPUT
    embed = spans[5].attributes
    assert embed[INPUT] == count_tokens("embed-sync one") + count_tokens("two")
    responses = spans[6].attributes
    assert responses[INPUT] == count_tokens("responses-sync hello")
    assert responses[OUTPUT] == DEFAULT_OUTPUT


def test_anthropic_cache_write_then_read_through_litellm_is_priced(run):
    first, second = (s.attributes for s in sent(run)[1:3])
    prefix = count_tokens(SYSTEM)
    assert first[gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == prefix
    assert first[INPUT] == prefix + count_tokens("sync-anthropic-1 hello")
    assert second[gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == prefix
    assert second[INPUT] == prefix + count_tokens("sync-anthropic-2 hello")
    # claude-haiku-4-5: input $1/MTok, 5-minute cache write $1.25/MTok, read $0.10/MTok.
    assert first[attrs.COST_CACHE_WRITE_USD] == pytest.approx(prefix * 1.25 / 1e6, abs=1e-12)
    assert second[attrs.COST_CACHE_READ_USD] == pytest.approx(prefix * 0.10 / 1e6, abs=1e-12)
    assert second[attrs.PRICE_SOURCE].startswith("genai-prices ")


def test_streams_carry_usage_or_an_estimate_never_nothing(run):
    spans = sent(run)
    openai_stream = spans[3].attributes
    # No include_usage and no limit: the output seen (20 tokens of 4 characters) plus the
    # input estimate, marked as an estimate and priced.
    assert len(run.out["stream_openai_text"]) == 4 * DEFAULT_OUTPUT
    assert openai_stream["otel_llm.usage.estimated"] is True
    assert openai_stream[OUTPUT] == DEFAULT_OUTPUT
    assert openai_stream[attrs.COST_USD] > 0
    # Anthropic streams usage always; LiteLLM keeps it though the caller did not ask.
    anthropic_stream = spans[4].attributes
    assert "otel_llm.usage.estimated" not in anthropic_stream
    assert anthropic_stream[INPUT] == count_tokens("stream-anthropic hello")
    assert anthropic_stream[OUTPUT] == DEFAULT_OUTPUT
    assert run.out["stream_anthropic_usage_chunks"] == 0
    # The caller asked for usage on this one: it sees the usage chunk, the span reads it.
    astream = spans[9].attributes
    assert run.out["astream_openai_usage_chunks"] == 1
    assert astream[INPUT] == count_tokens("astream-openai hello")
    assert astream[OUTPUT] == DEFAULT_OUTPUT
    assert astream[gen_ai.GEN_AI_REQUEST_STREAM] is True
    assert astream[gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0


def test_router_fallback_is_two_calls_the_first_failed(run):
    failed, fallback = sent(run)[11:13]
    assert failed.name == "chat gpt-4o-mini"
    assert failed.status_code == 2  # STATUS_CODE_ERROR
    assert failed.attributes["error.type"] == "InternalServerError"
    assert fallback.name == "chat claude-haiku-4-5"
    assert fallback.status_code == 0
    assert fallback.attributes[OUTPUT] == DEFAULT_OUTPUT
    assert run.out["router_model"] == "claude-haiku-4-5"


def test_budget_refuses_the_second_litellm_call_before_it_is_sent(run):
    assert run.out["budget"] == "max_iterations"
    assert len(run.served("budget-1")) == 1
    assert run.served("budget-2") == []
    assert run.out["budget_router"] == "max_iterations"
    assert len(run.served("budget-router-1")) == 1
    assert run.served("budget-router-2") == []
    capped = run.tasks()["capped"].attributes
    assert capped["otel_llm.task.iterations"] == 1
    assert capped["otel_llm.task.stopped_by"] == "max_iterations"
    assert capped["otel_llm.task.usage.input_tokens"] == count_tokens("budget-1 hello")


def test_under_a_dollar_limit_stream_usage_is_asked_for_and_hidden(run):
    (request,) = run.served("metered-stream")
    assert request.body["stream_options"] == {"include_usage": True}
    assert run.out["metered_usage_chunks"] == 0
    span = sent(run)[15].attributes
    assert "otel_llm.usage.estimated" not in span
    assert span[INPUT] == count_tokens("metered-stream hello")
    assert span[OUTPUT] == DEFAULT_OUTPUT
    metered = run.tasks()["metered"].attributes
    assert metered["otel_llm.task.cost.usd"] == pytest.approx(span[attrs.COST_USD])


def test_no_secret_reaches_a_span(run):
    for span in run.spans:
        for value in span.attributes.values():
            assert "sk-simulator" not in str(value)
            assert "sk-ant-simulator" not in str(value)


def test_a_call_litellm_refuses_before_sending_is_no_model_call(run):
    assert run.out["never_sent"] == "refused by litellm"
    assert run.served("never-sent") == []
    # The task's one allowed call went to the real request after it.
    assert run.out["typo_iterations"] == 1
    assert len(run.served("after-typo")) == 1
    (refused,) = [s for s in run.calls() if s.attributes.get(attrs.CALL_SENT) is False]
    assert refused.status_code == 0  # STATUS_CODE_UNSET: not an error of a model call
    assert "error.type" not in refused.attributes
    assert [name for name, _ in refused.events] == ["exception"]
