"""A plain agent loop with no otel-llm code: one chat call every LOOP_PAUSE seconds, up
to LOOP_CALLS calls. Run under ``opentelemetry-instrument``. Prints ``CALL n`` per call
that went out and ``REFUSED <message>`` when a call raised ``otel_llm.BudgetExceeded``
(reached only through the auto-instrumentation's guard). With LOOP_SPAN set, the calls
run inside one span of that name (plain OpenTelemetry), so the trace is the task."""

from __future__ import annotations

import contextlib
import os
import sys
import time

import openai
from opentelemetry import trace

CALLS = int(os.environ.get("LOOP_CALLS", "40"))
PAUSE = float(os.environ.get("LOOP_PAUSE", "0.2"))


def main() -> int:
    client = openai.OpenAI()
    span_name = os.environ.get("LOOP_SPAN")
    scope = (
        trace.get_tracer("loop-agent").start_as_current_span(span_name)
        if span_name
        else contextlib.nullcontext()
    )
    with scope:
        for n in range(1, CALLS + 1):
            try:
                client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": f"step {n}: keep going"}],
                    max_tokens=16,
                )
            except Exception as exc:
                if type(exc).__name__ == "BudgetExceeded":
                    print(f"REFUSED {exc}", flush=True)
                    return 0
                raise
            print(f"CALL {n}", flush=True)
            time.sleep(PAUSE)
    print("DONE", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
