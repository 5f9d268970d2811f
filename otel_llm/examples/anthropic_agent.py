"""A tool-using agent loop on the Anthropic Messages API, five tasks, in two versions
(``--version 1|2``, see :mod:`otel_llm.examples.agent_tasks`). In version 2 the system
prompt, the stable prefix, carries a cache breakpoint; version 1 sends it uncached.

    python -m otel_llm.examples.anthropic_agent                        # against the provider simulator
    ANTHROPIC_API_KEY=sk-ant-... python -m otel_llm.examples.anthropic_agent   # against the real API
    opentelemetry-instrument python -m otel_llm.examples.anthropic_agent --version 1   # with export

The loop has no turn limit of its own in version 2: it runs until the model stops asking
for tools. The ``runaway`` task never stops by itself; the budget guard refuses its next
call (``otel_llm.BudgetExceeded``) before the request is sent. In version 1 only a
collector's kill (``OTEL_LLM_COLLECTOR_URL``) or the safety net stops it.
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
    turns,
    user_prompt,
)
from otel_llm.examples.workspace import TOOLS, Workspace

MODEL = "claude-sonnet-5-5"
ANTHROPIC_TOOLS = [
    {"name": tool["name"], "description": tool["description"], "input_schema": tool["parameters"]}
    for tool in TOOLS
]
CACHED_SYSTEM = [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]


def run_task(
    client: anthropic.Anthropic, spec: TaskSpec, human: OnCallHuman, version: int = 2
) -> otel_llm.TaskSummary:
    messages: list[dict] = [{"role": "user", "content": user_prompt(spec)}]
    system = CACHED_SYSTEM if version >= 2 else SYSTEM
    with Workspace() as workspace, task_for(spec, human, version) as task:
        try:
            for _ in turns(version):
                response = client.messages.create(
                    model=MODEL,
                    system=system,
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
                outputs = workspace.run_batch([(u.name, u.input, u.id) for u in uses], parallel=version >= 2)
                results = [
                    {"type": "tool_result", "tool_use_id": use.id, "content": output}
                    for use, output in zip(uses, outputs, strict=True)
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
        main("anthropic", lambda spec, human, version: run_task(client, spec, human, version))
