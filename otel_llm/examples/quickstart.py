"""A plain agent script with no telemetry code at all.

Run it under auto-instrumentation and every model call becomes a span with tokens,
prompt-cache reads and writes, cost and time to first token:

    opentelemetry-instrument python -m otel_llm.examples.quickstart

The SDKs read OPENAI_BASE_URL / ANTHROPIC_BASE_URL, so ``make demo`` points them at the
provider simulator; with OPENAI_API_KEY / ANTHROPIC_API_KEY set to real keys and no base
URL, the same script calls the real APIs.
"""

from __future__ import annotations

import anthropic
import openai

# A long, stable prefix: the part of every turn worth caching (~2,000 tokens).
POLICY = " ".join(
    f"Rule {n}: answer from the repository's own files, cite the path, and keep replies short."
    for n in range(1, 91)
)
SYSTEM = f"You are a careful coding assistant.\n{POLICY}"
QUESTIONS = ("Where is the budget guard?", "How is a cache write priced?")


def openai_calls(client: openai.OpenAI) -> None:
    for question in QUESTIONS:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}],
            max_tokens=64,
        )
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Summarize."}],
        max_tokens=64,
        stream=True,
        stream_options={"include_usage": True},
    )
    for _ in stream:
        pass


def anthropic_calls(client: anthropic.Anthropic) -> None:
    system = [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    for question in QUESTIONS:
        client.messages.create(
            model="claude-sonnet-5-5",
            system=system,
            messages=[{"role": "user", "content": question}],
            max_tokens=64,
        )
    with client.messages.stream(
        model="claude-sonnet-5-5",
        system=system,
        messages=[{"role": "user", "content": "Summarize."}],
        max_tokens=64,
    ) as stream:
        for _ in stream.text_stream:
            pass


def main() -> None:
    openai_calls(openai.OpenAI(max_retries=0))
    anthropic_calls(anthropic.Anthropic(max_retries=0))


if __name__ == "__main__":
    main()
