"""A pydantic-ai agent with pydantic-ai's own OpenTelemetry instrumentation on, run under
``opentelemetry-instrument`` by ``tests/frameworks/test_pydantic_ai.py``: every model call
gets pydantic-ai's GenAI span beside ours. The JSON printed last says what the agent saw.
"""

from __future__ import annotations

import json

from pydantic_ai import Agent

import otel_llm

Agent.instrument_all()
seen: dict[str, object] = {}


def openai_agent() -> None:
    agent = Agent("openai:gpt-4o-mini")
    seen["openai"] = [agent.run_sync(f"pyd-openai-{n} hello").output for n in range(2)]


def anthropic_agent() -> None:
    # A large max_tokens: the Anthropic SDK refuses a non-streaming call that could run
    # past ten minutes before sending it (ValueError), and pydantic-ai then streams.
    agent = Agent("anthropic:claude-sonnet-5-5", model_settings={"max_tokens": 64000})
    with otel_llm.task("one-call", max_iterations=1) as task:
        seen["anthropic"] = agent.run_sync("pyd-anthropic hello").output
    seen["anthropic_iterations"] = task.summary().iterations


def tool_agent() -> None:
    agent = Agent("openai:gpt-4o-mini")

    @agent.tool_plain
    def lookup(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    with otel_llm.task("tools") as task:
        agent.run_sync("pyd-tool what is the weather in Paris?")
    summary = task.summary()
    seen["tools"] = {
        "iterations": summary.iterations,
        "tool_calls": summary.tool_calls,
        "requested_tool_calls": summary.requested_tool_calls,
    }


def main() -> None:
    openai_agent()
    anthropic_agent()
    tool_agent()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
