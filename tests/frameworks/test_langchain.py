"""LangChain (``langchain-openai``) under ``opentelemetry-instrument``: streams under a
dollar limit are measured and refused once the limit is spent, never run as free; a
stream the caller stops early is not an error."""

from __future__ import annotations

import pytest
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from otel_llm import attributes as attrs
from otel_llm.sim.tokens import count_tokens

from .conftest import run_agent

AGENT = "langchain_agent.py"
DEFAULT_OUTPUT = 20


@pytest.fixture(scope="module")
def limited(module_sim):
    module_sim.reset()
    # gpt-4o-mini at $0.15 / $0.60 per million tokens: one 20-token answer costs more.
    return run_agent(AGENT, module_sim, OTEL_LLM_MAX_USD="0.00001")


def test_streams_under_a_dollar_limit_are_refused_not_free(limited):
    assert limited.out["refused"] == "max_usd"
    assert limited.out["streams"] == 1
    assert len(limited.served("lc-stream-0")) == 1
    assert limited.served("lc-stream-1") == []
    (span,) = limited.calls()
    attributes = span.attributes
    assert attributes[gen_ai.GEN_AI_USAGE_INPUT_TOKENS] == count_tokens("lc-stream-0 hello")
    assert attributes[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] == DEFAULT_OUTPUT
    assert attributes[attrs.COST_USD] > 0.00001


def test_otel_llm_asked_for_usage_and_langchain_did_not_see_the_extra_chunk(limited):
    (request,) = limited.served("lc-stream-0")
    assert request.body["stream_options"] == {"include_usage": True}
    # Every chunk LangChain got carried text (20 tokens): no empty usage-only chunk.
    assert limited.out["content_chunks"] == [DEFAULT_OUTPUT]


def test_a_generator_consumed_stream_broken_early_is_not_an_error(module_sim):
    module_sim.reset()
    run = run_agent(AGENT, module_sim, "generator")
    assert len(run.out["first_words"]) == 2
    (span,) = run.calls()
    assert span.status_code == 0  # STATUS_CODE_UNSET
    assert "error.type" not in span.attributes
    assert span.attributes[gen_ai.GEN_AI_REQUEST_STREAM] is True
