"""A LiteLLM agent as a user writes it, run under ``opentelemetry-instrument`` by
``tests/frameworks/test_litellm.py``: nothing here knows about otel-llm except the tasks.

Each call's user message names it (``"sync-openai ..."``), so the test finds the requests
the simulator served for it. The JSON printed last says what the agent itself saw.
"""

from __future__ import annotations

import asyncio
import json

import litellm

import otel_llm

SYSTEM = "You are a careful assistant. " * 600  # 4,350 tokens: past Haiku 4.5's 4,096 minimum
OPENAI = "openai/gpt-4o-mini"
ANTHROPIC = "anthropic/claude-haiku-4-5"
seen: dict[str, object] = {}


def user(text: str) -> list[dict[str, object]]:
    return [{"role": "user", "content": text}]


def cached(text: str) -> list[dict[str, object]]:
    system = {
        "role": "system",
        "content": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
    }
    return [system, {"role": "user", "content": text}]


def chunks_without_choices(chunks: list[object]) -> int:
    return sum(1 for c in chunks if not c.choices)


def sync_calls() -> None:
    litellm.completion(model=OPENAI, messages=user("sync-openai hello"))
    litellm.completion(model=ANTHROPIC, messages=cached("sync-anthropic-1 hello"), max_tokens=64)
    litellm.completion(model=ANTHROPIC, messages=cached("sync-anthropic-2 hello"), max_tokens=64)
    stream = litellm.completion(model=OPENAI, messages=user("stream-openai hello"), stream=True)
    chunks = list(stream)
    seen["stream_openai_text"] = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    chunks = list(litellm.completion(model=ANTHROPIC, messages=user("stream-anthropic hello"), stream=True))
    seen["stream_anthropic_usage_chunks"] = chunks_without_choices(chunks)
    litellm.embedding(model="openai/text-embedding-3-small", input=["embed-sync one", "two"])
    litellm.responses(model=OPENAI, input="responses-sync hello")


async def async_calls() -> None:
    await litellm.acompletion(model=OPENAI, messages=user("async-openai hello"))
    await litellm.acompletion(model=ANTHROPIC, messages=user("async-anthropic hello"), max_tokens=64)
    stream = await litellm.acompletion(
        model=OPENAI,
        messages=user("astream-openai hello"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    # The caller asked for usage: its usage chunk is the caller's to see.
    seen["astream_openai_usage_chunks"] = chunks_without_choices(chunks)
    await litellm.aembedding(model="openai/text-embedding-3-small", input=["embed-async one"])


def make_router(retries: int) -> litellm.Router:
    return litellm.Router(
        model_list=[
            {"model_name": "fast", "litellm_params": {"model": OPENAI, "max_retries": 0}},
            {"model_name": "careful", "litellm_params": {"model": ANTHROPIC, "max_retries": 0}},
        ],
        fallbacks=[{"fast": ["careful"]}],
        num_retries=retries,
    )


def router_fallback() -> None:
    response = make_router(0).completion(model="fast", messages=user("route-fail hello"))
    seen["router_model"] = response.model


def budget() -> None:
    try:
        with otel_llm.task("capped", max_iterations=1):
            litellm.completion(model=OPENAI, messages=user("budget-1 hello"))
            litellm.completion(model=ANTHROPIC, messages=user("budget-2 hello"), max_tokens=64)
    except otel_llm.BudgetExceeded as exc:
        seen["budget"] = exc.limit
    # Through a Router that retries and falls back: refused as well, nothing sent.
    router = make_router(2)
    try:
        with otel_llm.task("routed", max_iterations=1):
            router.completion(model="fast", messages=user("budget-router-1 hello"))
            router.completion(model="fast", messages=user("budget-router-2 hello"))
    except otel_llm.BudgetExceeded as exc:
        seen["budget_router"] = exc.limit


def dollar_limit_stream() -> None:
    with otel_llm.task("metered", max_usd=5.0):
        chunks = list(litellm.completion(model=OPENAI, messages=user("metered-stream hello"), stream=True))
    # otel-llm asked for usage itself: the extra chunk is not handed to the agent.
    seen["metered_usage_chunks"] = chunks_without_choices(chunks)


def never_sent() -> None:
    # A typo in the provider: LiteLLM refuses the call before sending anything. It is no
    # model call, so the one call this task may make is still there.
    with otel_llm.task("typo", max_iterations=1) as task:
        try:
            litellm.completion(model="nosuchprovider/gpt-4o-mini", messages=user("never-sent hello"))
        except litellm.BadRequestError:
            seen["never_sent"] = "refused by litellm"
        litellm.completion(model=OPENAI, messages=user("after-typo hello"))
    seen["typo_iterations"] = task.summary().iterations


def main() -> None:
    sync_calls()
    asyncio.run(async_calls())
    router_fallback()
    budget()
    dollar_limit_stream()
    # With an encoding format LiteLLM goes through the OpenAI SDK's embeddings resource,
    # which otel-llm instruments too: still one span.
    litellm.embedding(
        model="openai/text-embedding-3-small", input=["embed-float one"], encoding_format="float"
    )
    never_sent()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
