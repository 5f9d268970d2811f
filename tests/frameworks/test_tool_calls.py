"""Tool calls the model asks for count per task, for every provider and for streams, so
``max_tool_calls`` works for agents that run tools without ``otel_llm.tool``."""

from __future__ import annotations

import anthropic
import openai
import pytest

from otel_llm import tasks
from otel_llm.instrumentation.anthropic import AnthropicInstrumentor
from otel_llm.instrumentation.openai import OpenAIInstrumentor
from otel_llm.sim import Reply

USER = [{"role": "user", "content": "what now?"}]
TOOL = {"type": "function", "function": {"name": "read", "parameters": {"type": "object"}}}
CLAUDE_TOOL = {"name": "read", "input_schema": {"type": "object"}}


@pytest.fixture
def instrumented(spans):
    instrumentors = (OpenAIInstrumentor(), AnthropicInstrumentor())
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=spans.tracer_provider, meter_provider=spans.meter_provider)
    yield spans
    for instrumentor in instrumentors:
        instrumentor.uninstrument()


def test_requested_tool_calls_count_per_task_and_against_max_tool_calls(instrumented, sim):
    gpt = openai.OpenAI(base_url=sim.openai_base_url, api_key="sk-test", max_retries=0)
    claude = anthropic.Anthropic(base_url=sim.url, api_key="sk-ant-test", max_retries=0)
    sim.enqueue(
        Reply.tool_call("read", {"path": "a"}),
        Reply.tool_calls([("read", {"path": "b"}), ("read", {"path": "c"})]),
        Reply.tool_call("read", {"path": "d"}),
        Reply.tool_call("read", {"path": "e"}),
    )
    with tasks.task("tools", max_tool_calls=5) as task:
        gpt.chat.completions.create(model="gpt-4o-mini", messages=USER, tools=[TOOL])
        for _ in gpt.chat.completions.create(model="gpt-4o-mini", messages=USER, tools=[TOOL], stream=True):
            pass
        claude.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=USER, tools=[CLAUDE_TOOL])
        with claude.messages.stream(
            model="claude-haiku-4-5", max_tokens=64, messages=USER, tools=[CLAUDE_TOOL]
        ) as stream:
            stream.until_done()
        # Five tool calls asked for: the next model call is refused before it is sent.
        with pytest.raises(tasks.BudgetExceeded) as refused:
            gpt.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert refused.value.limit == "max_tool_calls"
    assert sim.request_count == 4
    summary = task.summary()
    assert (summary.requested_tool_calls, summary.tool_calls, summary.iterations) == (5, 0, 4)
