"""A LangChain agent as a user writes it, run under ``opentelemetry-instrument`` by
``tests/frameworks/test_langchain.py``, with ``OTEL_LLM_MAX_USD`` set in its environment.

``ChatOpenAI`` with a custom base URL streams without ``stream_options.include_usage``:
the stream reports no usage unless otel-llm asks for it. The JSON printed last says what
the agent saw.
"""

from __future__ import annotations

import json
import os
import sys

from langchain_openai import ChatOpenAI

import otel_llm

seen: dict[str, object] = {}


def model() -> ChatOpenAI:
    return ChatOpenAI(model="gpt-4o-mini", base_url=os.environ["OPENAI_BASE_URL"], max_retries=0)


def streams_under_a_dollar_limit() -> None:
    llm = model()
    streamed = []
    try:
        for n in range(5):
            chunks = list(llm.stream(f"lc-stream-{n} hello"))
            streamed.append(sum(1 for c in chunks if c.content))
    except otel_llm.BudgetExceeded as exc:
        seen["refused"] = exc.limit
    seen["streams"] = len(streamed)
    seen["content_chunks"] = streamed


def words(llm: ChatOpenAI, prompt: str):
    for chunk in llm.stream(prompt):
        yield chunk.content


def generator_broken_early() -> None:
    llm = model()
    gen = words(llm, "lc-generator hello")
    seen["first_words"] = [next(gen), next(gen)]
    gen.close()  # the caller stops early: GeneratorExit inside LangChain's stream


def main() -> None:
    if sys.argv[1:] == ["generator"]:
        generator_broken_early()
    else:
        streams_under_a_dollar_limit()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
