"""A tool-using agent loop on the OpenAI Chat Completions API, five tasks, each bounded
by ``otel_llm.task`` limits.

    python -m otel_llm.examples.openai_agent                    # against the provider simulator
    OPENAI_API_KEY=sk-... python -m otel_llm.examples.openai_agent   # against the real API
    opentelemetry-instrument python -m otel_llm.examples.openai_agent   # with export, no code change

The loop has no turn limit of its own: ``while True`` until the model stops asking for
tools. The ``runaway`` task never stops by itself; the budget guard refuses its next call
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
    user_prompt,
)
from otel_llm.examples.workspace import TOOLS, Workspace

MODEL = "gpt-4o-mini"
OPENAI_TOOLS = [{"type": "function", "function": tool} for tool in TOOLS]


def run_task(client: openai.OpenAI, spec: TaskSpec, human: OnCallHuman) -> otel_llm.TaskSummary:
    messages: list[dict] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": user_prompt(spec)},
    ]
    with Workspace() as workspace, task_for(spec, human) as task:
        try:
            while True:
                response = client.chat.completions.create(
                    model=MODEL, messages=messages, tools=OPENAI_TOOLS, max_tokens=512
                )
                message = response.choices[0].message
                messages.append(message.model_dump(exclude_none=True))
                if not message.tool_calls:
                    break
                for call in message.tool_calls:
                    arguments = json.loads(call.function.arguments or "{}")
                    result = workspace.run(call.function.name, arguments, call.id)
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
        except otel_llm.BudgetExceeded as stopped:
            print(f"  stopped: {stopped}", file=sys.stderr)
    return task.summary()


if __name__ == "__main__":
    with model_endpoint("openai") as base_url:
        if base_url is None:
            client = openai.OpenAI(max_retries=0)
        else:
            client = openai.OpenAI(base_url=base_url, api_key="sk-simulator", max_retries=0)
        main("openai", lambda spec, human: run_task(client, spec, human))
