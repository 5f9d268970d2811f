"""A tool-using agent loop on the OpenAI Chat Completions API, five tasks, in two versions
(``--version 1|2``, see :mod:`otel_llm.examples.agent_tasks`; OpenAI caches prompt
prefixes by itself, so the versions differ in tool parallelism and caps).

    python -m otel_llm.examples.openai_agent                    # against the provider simulator
    OPENAI_API_KEY=sk-... python -m otel_llm.examples.openai_agent   # against the real API
    opentelemetry-instrument python -m otel_llm.examples.openai_agent   # with export, no code change

In version 2 the loop has no turn limit of its own: it runs until the model stops asking
for tools. The ``runaway`` task never stops by itself; the budget guard refuses its next call
(``otel_llm.BudgetExceeded``) before the request is sent.
"""

from __future__ import annotations

import json
import sys

import openai

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

MODEL = "gpt-4o-mini"
OPENAI_TOOLS = [{"type": "function", "function": tool} for tool in TOOLS]


def run_task(
    client: openai.OpenAI, spec: TaskSpec, human: OnCallHuman, version: int = 2
) -> otel_llm.TaskSummary:
    messages: list[dict] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": user_prompt(spec)},
    ]
    with Workspace() as workspace, task_for(spec, human, version) as task:
        try:
            for _ in turns(version):
                response = client.chat.completions.create(
                    model=MODEL, messages=messages, tools=OPENAI_TOOLS, max_tokens=512
                )
                message = response.choices[0].message
                messages.append(message.model_dump(exclude_none=True))
                if not message.tool_calls:
                    break
                calls = [
                    (call.function.name, json.loads(call.function.arguments or "{}"), call.id)
                    for call in message.tool_calls
                ]
                outputs = workspace.run_batch(calls, parallel=version >= 2)
                for call, output in zip(message.tool_calls, outputs, strict=True):
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": output})
        except otel_llm.BudgetExceeded as stopped:
            print(f"  stopped: {stopped}", file=sys.stderr)
    return task.summary()


if __name__ == "__main__":
    with model_endpoint("openai") as base_url:
        if base_url is None:
            client = openai.OpenAI(max_retries=0)
        else:
            client = openai.OpenAI(base_url=base_url, api_key="sk-simulator", max_retries=0)
        main("openai", lambda spec, human, version: run_task(client, spec, human, version))
