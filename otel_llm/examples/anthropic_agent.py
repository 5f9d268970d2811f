"""A tool-using agent loop on the Anthropic Messages API, five tasks, each bounded by
``otel_llm.task`` limits. The system prompt is marked for prompt caching.

    python -m otel_llm.examples.anthropic_agent                        # against the provider simulator
    ANTHROPIC_API_KEY=sk-ant-... python -m otel_llm.examples.anthropic_agent   # against the real API
    opentelemetry-instrument python -m otel_llm.examples.anthropic_agent       # with export, no code change

The loop has no turn limit of its own: ``while True`` until the model stops asking for
tools. The ``runaway`` task never stops by itself; the budget guard refuses its next call
(``otel_llm.BudgetExceeded``) before the request is sent.
"""

from __future__ import annotations

import sys

import anthropic

import otel_llm
from otel_llm.examples.agent_tasks import (
    SYSTEM,
    OnCallHuman,
    TaskSpec,
    main,
    model_endpoint,
    task_for,
    user_prompt,
)
from otel_llm.examples.workspace import TOOLS, Workspace

MODEL = "claude-sonnet-5-5"
ANTHROPIC_TOOLS = [
    {"name": tool["name"], "description": tool["description"], "input_schema": tool["parameters"]}
    for tool in TOOLS
]
CACHED_SYSTEM = [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]


def run_task(client: anthropic.Anthropic, spec: TaskSpec, human: OnCallHuman) -> otel_llm.TaskSummary:
    messages: list[dict] = [{"role": "user", "content": user_prompt(spec)}]
    with Workspace() as workspace, task_for(spec, human) as task:
        try:
            while True:
                response = client.messages.create(
                    model=MODEL,
                    system=CACHED_SYSTEM,
                    tools=ANTHROPIC_TOOLS,
                    messages=messages,
                    max_tokens=512,
                )
                messages.append(
                    {
                        "role": "assistant",
                        "content": [b.model_dump(exclude_none=True) for b in response.content],
                    }
                )
                uses = [block for block in response.content if block.type == "tool_use"]
                if not uses:
                    break
                results = [
                    {
                        "type": "tool_result",
                        "tool_use_id": use.id,
                        "content": workspace.run(use.name, use.input, use.id),
                    }
                    for use in uses
                ]
                messages.append({"role": "user", "content": results})
        except otel_llm.BudgetExceeded as stopped:
            print(f"  stopped: {stopped}", file=sys.stderr)
    return task.summary()


if __name__ == "__main__":
    with model_endpoint("anthropic") as base_url:
        if base_url is None:
            client = anthropic.Anthropic(max_retries=0)
        else:
            client = anthropic.Anthropic(base_url=base_url, api_key="sk-ant-simulator", max_retries=0)
        main("anthropic", lambda spec, human: run_task(client, spec, human))
