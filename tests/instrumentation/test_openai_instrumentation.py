"""OpenAIInstrumentor against the real OpenAI SDK and the provider simulator on loopback,
recorded by a real OpenTelemetry SDK pipeline.

Token counts follow the simulator's rule (ceil(len(text) / 4) per text block, no
per-message overhead); prices are genai-prices' for gpt-4o ($2.50 / MTok input, $1.25
cached, $10 output) and text-embedding-3-small ($0.02 / MTok).
"""

from __future__ import annotations

import gc
import json

import openai
import pydantic
import pytest
from openai.resources.chat.completions.completions import AsyncCompletions, Completions
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.trace import SpanKind, StatusCode
from wrapt import BaseObjectProxy

from otel_llm import attributes as attrs
from otel_llm import pricing, tasks
from otel_llm.instrumentation.openai import OpenAIInstrumentor
from otel_llm.instrumentation.openai import patch as openai_patch
from otel_llm.instrumentation.openai.accumulators import ResponseLedger
from otel_llm.sim import Reply

API_KEY = "sk-test-0123456789abcdef-secret"
SOURCE = "genai-prices 0.2.3"

SYSTEM = "You are terse."  # 14 chars: 4 tokens
QUESTION = "What is 2+2?"  # 12 chars: 3 tokens
ANSWER = "Four."  # 5 chars: 2 tokens
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
# 7 input tokens, 2 output tokens at gpt-4o prices:
COST_INPUT = 1.75e-05
COST_OUTPUT = 2e-05
COST_TOTAL = 3.75e-05

LONG_SYSTEM = "x" * 8000  # 2000 tokens; OpenAI caches 1024 + 128k: 1920 tokens


def _uninstrumented_methods() -> dict[str, object]:
    out = {}
    for patch in OpenAIInstrumentor._patches:
        module = __import__(patch.module, fromlist=["_"])
        owner, _, name = patch.target.rpartition(".")
        out[f"{patch.module}:{patch.target}"] = vars(getattr(module, owner))[name]
    return out


ORIGINALS = _uninstrumented_methods()


def _instrument(pipeline, **kwargs) -> OpenAIInstrumentor:
    tasks._reset_for_tests()
    tasks.configure(environ={}, tracer_provider=pipeline.tracer_provider)
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(
        tracer_provider=pipeline.tracer_provider, meter_provider=pipeline.meter_provider, **kwargs
    )
    return instrumentor


@pytest.fixture
def otel(pipeline):
    """The pipeline with OpenAIInstrumentor bound to it, removed afterwards."""
    instrumentor = _instrument(pipeline)
    yield pipeline
    instrumentor.uninstrument()
    tasks._reset_for_tests()


@pytest.fixture
def client(sim):
    with openai.OpenAI(base_url=sim.openai_base_url, api_key=API_KEY, max_retries=0) as c:
        yield c


@pytest.fixture
async def aclient(sim):
    async with openai.AsyncOpenAI(base_url=sim.openai_base_url, api_key=API_KEY, max_retries=0) as c:
        yield c


def _chat_spans(pipeline) -> list[ReadableSpan]:
    return [s for s in pipeline.spans() if s.name.startswith(("chat", "embeddings"))]


def _only(pipeline) -> ReadableSpan:
    spans = _chat_spans(pipeline)
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def _usage(span: ReadableSpan) -> tuple[int, int, int, int, int]:
    a = span.attributes
    return (
        a[gen_ai.GEN_AI_USAGE_INPUT_TOKENS],
        a[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS],
        a[gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS],
        a[gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS],
        a[gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS],
    )


def _costs(span: ReadableSpan) -> tuple[float, float, float, float]:
    a = span.attributes
    return (
        a[attrs.COST_USD],
        a[attrs.COST_INPUT_USD],
        a[attrs.COST_OUTPUT_USD],
        # Left out when the call did not touch the cache (an absent part is 0).
        a.get(attrs.COST_CACHE_READ_USD, 0.0),
    )


def _assert_simple_chat(span: ReadableSpan, response_id: str, *, stream: bool) -> None:
    assert span.name == "chat gpt-4o"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    a = span.attributes
    assert a[gen_ai.GEN_AI_OPERATION_NAME] == "chat"
    assert a[gen_ai.GEN_AI_PROVIDER_NAME] == "openai"
    assert a[gen_ai.GEN_AI_REQUEST_MODEL] == "gpt-4o"
    assert a[gen_ai.GEN_AI_RESPONSE_MODEL] == "gpt-4o"
    assert a[gen_ai.GEN_AI_RESPONSE_ID] == response_id
    assert a[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert a[gen_ai.GEN_AI_REQUEST_STREAM] is stream
    assert _usage(span) == (7, 2, 0, 0, 0)
    assert _costs(span) == (COST_TOTAL, COST_INPUT, COST_OUTPUT, 0.0)
    assert attrs.COST_CACHE_SAVINGS_USD not in span.attributes  # no cache tokens, no cache parts
    assert a[attrs.PRICE_SOURCE] == SOURCE
    assert "error.type" not in a


# -- chat.completions.create ------------------------------------------------------------


def test_chat_create_records_one_client_span_with_tokens_cost_and_server(otel, sim, client):
    sim.enqueue(Reply.text(ANSWER))
    completion = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_completion_tokens=50, temperature=0.5
    )
    span = _only(otel)
    _assert_simple_chat(span, completion.id, stream=False)
    a = span.attributes
    assert a[gen_ai.GEN_AI_REQUEST_MAX_TOKENS] == 50
    assert a[gen_ai.GEN_AI_REQUEST_TEMPERATURE] == 0.5
    assert a["server.address"] == "127.0.0.1"
    assert a["server.port"] == sim.port
    assert gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in a


def test_max_tokens_is_read_from_legacy_max_tokens_too(otel, sim, client):
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=30)
    assert _only(otel).attributes[gen_ai.GEN_AI_REQUEST_MAX_TOKENS] == 30


async def test_async_chat_create_records_the_same_span(otel, sim, aclient):
    sim.enqueue(Reply.text(ANSWER))
    completion = await aclient.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    _assert_simple_chat(_only(otel), completion.id, stream=False)


def test_prompt_cache_reads_are_priced_at_the_cached_rate(otel, sim, client):
    messages = [{"role": "system", "content": LONG_SYSTEM}, {"role": "user", "content": "hi"}]
    sim.enqueue(Reply.text(ANSWER), Reply.text(ANSWER))
    client.chat.completions.create(model="gpt-4o", messages=messages)
    client.chat.completions.create(model="gpt-4o", messages=messages)
    first, second = _chat_spans(otel)
    # 2001 input tokens; the first call writes 1920 (billed at the input rate: gpt-4o has
    # no cache-write price), the second reads them at $1.25 / MTok.
    assert _usage(first) == (2001, 2, 0, 1920, 0)
    assert _usage(second) == (2001, 2, 1920, 0, 0)
    assert _costs(first) == (0.0050225, 0.0050025, 2e-05, 0.0)
    assert _costs(second) == (0.0026225, 0.0002025, 2e-05, 0.0024)
    assert second.attributes[attrs.COST_CACHE_SAVINGS_USD] == 0.0024


def test_prefix_hash_groups_calls_by_system_and_tools(otel, sim, client):
    tools = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]
    other_tools = [{"type": "function", "function": {"name": "sub", "parameters": {"type": "object"}}}]
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=tools)
    other_question = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Other?"}]
    client.chat.completions.create(model="gpt-4o", messages=other_question, tools=[dict(tools[0])])
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=other_tools)
    client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "system", "content": "Be verbose."}, MESSAGES[1]], tools=tools
    )
    client.chat.completions.create(model="gpt-4o", messages=[MESSAGES[1]])
    hashes = [s.attributes.get(attrs.PROMPT_PREFIX_HASH) for s in _chat_spans(otel)]
    assert hashes[0] == hashes[1]
    assert len({hashes[0], hashes[2], hashes[3]}) == 3
    assert hashes[4] is None
    # Pinned: a changed value splits dashboards' grouping by prefix across a release.
    assert hashes[:4] == ["746fd7b081011764", "746fd7b081011764", "a570d6297e368f26", "a7d5e9e4f781e7fc"]


def test_api_error_is_raised_unchanged_and_recorded(otel, sim, client):
    sim.enqueue(Reply.error(429))
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert raised.value.status_code == 429
    span = _only(otel)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "RateLimitError"
    assert gen_ai.GEN_AI_USAGE_INPUT_TOKENS not in span.attributes
    (point,) = otel.metrics()["gen_ai.client.operation.duration"]
    assert point.attributes["error.type"] == "RateLimitError"


def test_azure_client_is_provider_azure_ai_openai(otel, sim):
    azure = openai.AzureOpenAI(
        base_url=sim.openai_base_url, api_key=API_KEY, api_version="2024-10-21", max_retries=0
    )
    # The simulator has no Azure deployment routes: the call fails, the span still says who.
    with pytest.raises(openai.NotFoundError):
        azure.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    span = _only(otel)
    assert span.attributes[gen_ai.GEN_AI_PROVIDER_NAME] == "azure.ai.openai"
    assert span.attributes["error.type"] == "NotFoundError"


# -- metrics ------------------------------------------------------------------------------


def test_metrics_record_tokens_duration_chunks_and_cost(otel, sim, client):
    sim.enqueue(Reply.text(ANSWER), Reply.text("abcdefgh"))  # 2 tokens: two content chunks
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    stream = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    for _ in stream:
        pass
    metrics = otel.metrics()
    base = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o",
    }
    tokens = {p.attributes["gen_ai.token.type"]: p for p in metrics["gen_ai.client.token.usage"]}
    assert {k: dict(p.attributes) for k, p in tokens.items()} == {
        "input": {**base, "gen_ai.token.type": "input"},
        "output": {**base, "gen_ai.token.type": "output"},
    }
    assert (tokens["input"].count, tokens["input"].sum) == (2, 14)
    assert (tokens["output"].count, tokens["output"].sum) == (2, 4)
    (duration,) = metrics["gen_ai.client.operation.duration"]
    assert (dict(duration.attributes), duration.count) == (base, 2)
    (ttft,) = metrics["gen_ai.client.operation.time_to_first_chunk"]
    assert (dict(ttft.attributes), ttft.count) == (base, 1)
    # One record per stream: the mean gap between its chunks.
    (per_chunk,) = metrics["gen_ai.client.operation.time_per_output_chunk"]
    assert (dict(per_chunk.attributes), per_chunk.count) == (base, 1)
    (cost,) = metrics["otel_llm.client.cost"]
    assert dict(cost.attributes) == base
    assert cost.value == pytest.approx(2 * COST_TOTAL, abs=1e-15)


# -- chat streams ----------------------------------------------------------------------


def test_stream_with_include_usage_reads_cached_tokens_from_the_final_chunk(otel, sim, client):
    messages = [{"role": "system", "content": LONG_SYSTEM}, {"role": "user", "content": "hi"}]
    seen = []
    for _ in range(2):
        sim.enqueue(Reply.text(ANSWER))
        stream = client.chat.completions.create(
            model="gpt-4o", messages=messages, stream=True, stream_options={"include_usage": True}
        )
        seen.append([chunk.choices for chunk in stream])
    assert seen[1][-1] == []  # the user asked for the usage chunk, and gets it
    first, second = _chat_spans(otel)
    assert _usage(first) == (2001, 2, 0, 1920, 0)
    assert _usage(second) == (2001, 2, 1920, 0, 0)
    assert _costs(second) == (0.0026225, 0.0002025, 2e-05, 0.0024)
    assert second.attributes[gen_ai.GEN_AI_REQUEST_STREAM] is True
    assert second.attributes[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert second.attributes[gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0


def test_stream_without_include_usage_is_left_unchanged_and_estimated_not_free(otel, sim, client):
    sim.enqueue(Reply.text(ANSWER))
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    assert text == ANSWER
    assert "stream_options" not in sim.last_request.body
    span = _only(otel)
    # The request's characters / 4 plus the output seen: "Four." is 5 characters, 2 tokens.
    input_estimate = sum(len(m["content"]) for m in MESSAGES) // 4
    assert span.attributes[gen_ai.GEN_AI_USAGE_INPUT_TOKENS] == input_estimate
    assert span.attributes[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] == 2
    assert span.attributes[attrs.USAGE_ESTIMATED] is True
    # gpt-4o: $2.50 / $10 per million tokens.
    assert span.attributes[attrs.COST_USD] == pytest.approx((input_estimate * 2.5 + 2 * 10) / 1e6)
    assert span.attributes[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)


def test_stream_usage_env_injects_include_usage_and_hides_the_usage_chunk(pipeline, sim, client, monkeypatch):
    monkeypatch.setenv("OTEL_LLM_OPENAI_STREAM_USAGE", "true")
    instrumentor = _instrument(pipeline)
    try:
        sim.enqueue(Reply.text(ANSWER))
        stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        chunks = list(stream)
    finally:
        instrumentor.uninstrument()
    assert sim.last_request.body["stream_options"] == {"include_usage": True}
    # role, 2 content chunks, finish: the usage chunk (choices == []) is not handed over.
    assert [len(c.choices) for c in chunks] == [1, 1, 1, 1]
    span = _only(pipeline)
    _assert_simple_chat(span, chunks[0].id, stream=True)


async def test_stream_usage_env_works_for_async_streams_and_respects_the_users_choice(
    pipeline, sim, aclient, monkeypatch
):
    monkeypatch.setenv("OTEL_LLM_OPENAI_STREAM_USAGE", "true")
    instrumentor = _instrument(pipeline)
    try:
        sim.enqueue(Reply.text(ANSWER), Reply.text(ANSWER))
        stream = await aclient.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        chunks = [chunk async for chunk in stream]
        stream = await aclient.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": False}
        )
        async for _ in stream:
            pass
    finally:
        instrumentor.uninstrument()
    assert [len(c.choices) for c in chunks] == [1, 1, 1, 1]
    assert sim.last_request.body["stream_options"] == {"include_usage": False}
    injected, declined = _chat_spans(pipeline)
    _assert_simple_chat(injected, chunks[0].id, stream=True)
    # The caller declined usage: estimated (and priced), never free.
    assert declined.attributes[attrs.USAGE_ESTIMATED] is True
    assert declined.attributes[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] == 2  # "Four."


def _stream(client):
    return client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )


def test_stream_abandoned_after_break_ends_its_span_when_dropped(otel, sim, client):
    sim.enqueue(Reply.text("abcdefghijklmnop"))
    stream = _stream(client)
    for chunk in stream:
        first = chunk.choices[0].delta.content or ""
        break
    assert _chat_spans(otel) == []
    del stream
    gc.collect()
    span = _only(otel)
    assert span.status.status_code is StatusCode.UNSET
    # The usage chunk never came: the output seen so far, estimated.
    assert span.attributes[attrs.USAGE_ESTIMATED] is True
    assert span.attributes[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] == -(-len(first) // 4)
    assert span.attributes[gen_ai.GEN_AI_RESPONSE_ID].startswith("chatcmpl-")


def test_stream_closed_early_ends_its_span_once(otel, sim, client):
    sim.enqueue(Reply.text("abcdefghijklmnop"))
    stream = _stream(client)
    next(stream)
    stream.close()
    assert len(_chat_spans(otel)) == 1
    stream.close()
    del stream
    gc.collect()
    span = _only(otel)
    assert span.status.status_code is StatusCode.UNSET


def test_stream_as_context_manager_ends_at_exit_and_records_the_users_exception(otel, sim, client):
    sim.enqueue(Reply.text(ANSWER), Reply.text(ANSWER))
    with _stream(client) as stream:
        for _ in stream:
            pass

    def fail_inside_the_block():
        with _stream(client) as stream:
            next(stream)
            raise KeyError("user code")

    with pytest.raises(KeyError):
        fail_inside_the_block()
    consumed, failed = _chat_spans(otel)
    _assert_simple_chat(consumed, consumed.attributes[gen_ai.GEN_AI_RESPONSE_ID], stream=True)
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["error.type"] == "KeyError"


# A dropped connection is APIConnectionError in openai 3.x and httpx's own error in 2.x.
@pytest.mark.parametrize(("mode", "error"), [("event", openai.APIError), ("drop", Exception)])
def test_stream_failing_midway_ends_its_span_with_the_error(otel, sim, client, mode, error):
    sim.enqueue(Reply.stream_error(after_chunks=3, mode=mode))
    received = []

    def consume():
        for chunk in _stream(client):
            received.append(chunk)

    with pytest.raises(error) as raised:
        consume()
    assert len(received) == 3
    span = _only(otel)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == type(raised.value).__qualname__
    assert span.attributes[gen_ai.GEN_AI_RESPONSE_ID] == received[0].id


async def test_async_stream_endings(otel, sim, aclient):
    sim.enqueue(
        Reply.text(ANSWER), Reply.text("abcdefghijklmnop"), Reply.stream_error(after_chunks=2, mode="event")
    )
    stream = await aclient.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    async with stream:
        async for _ in stream:
            pass
    stream = await aclient.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    async for _ in stream:
        break
    await stream.close()
    with pytest.raises(openai.APIError):
        async for _ in await aclient.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
            pass
    consumed, closed, failed = _chat_spans(otel)
    _assert_simple_chat(consumed, consumed.attributes[gen_ai.GEN_AI_RESPONSE_ID], stream=True)
    assert closed.status.status_code is StatusCode.UNSET
    assert failed.attributes["error.type"] == "APIError"


def test_streamed_tool_calls_give_finish_reason_tool_calls(otel, sim, client):
    sim.enqueue(Reply.tool_call("add", {"a": 2, "b": 2}))
    for _ in _stream(client):
        pass
    span = _only(otel)
    assert span.attributes[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)
    # "add" is 1 token, '{"a":2,"b":2}' 13 chars: 4 tokens.
    assert _usage(span) == (7, 5, 0, 0, 0)


# -- chat.completions.parse / stream helpers ---------------------------------------------


class Answer(pydantic.BaseModel):
    value: int


def test_chat_parse_is_one_span_with_usage(otel, sim, client):
    sim.enqueue(Reply.json({"value": 4}))  # '{"value": 4}': 12 chars, 3 tokens
    parsed = client.chat.completions.parse(model="gpt-4o", messages=MESSAGES, response_format=Answer)
    assert parsed.choices[0].message.parsed == Answer(value=4)
    span = _only(otel)
    assert _usage(span) == (7, 3, 0, 0, 0)
    assert span.attributes[gen_ai.GEN_AI_RESPONSE_ID] == parsed.id


async def test_async_chat_parse_is_one_span_with_usage(otel, sim, aclient):
    sim.enqueue(Reply.json({"value": 4}))
    parsed = await aclient.chat.completions.parse(model="gpt-4o", messages=MESSAGES, response_format=Answer)
    assert parsed.choices[0].message.parsed == Answer(value=4)
    assert _usage(_only(otel)) == (7, 3, 0, 0, 0)


def test_chat_parse_hitting_the_length_limit_keeps_the_billed_usage(otel, sim, client):
    sim.enqueue(Reply.json({"value": 4}))
    with pytest.raises(openai.LengthFinishReasonError):
        client.chat.completions.parse(model="gpt-4o", messages=MESSAGES, response_format=Answer, max_tokens=1)
    span = _only(otel)
    assert span.attributes["error.type"] == "LengthFinishReasonError"
    assert _usage(span) == (7, 1, 0, 0, 0)
    assert span.attributes[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] == ("length",)


def test_chat_stream_helper_get_final_completion_ends_the_span(otel, sim, client):
    sim.enqueue(Reply.text(ANSWER))
    with client.chat.completions.stream(
        model="gpt-4o", messages=MESSAGES, stream_options={"include_usage": True}
    ) as stream:
        completion = stream.get_final_completion()
        # Ended on exhaustion, inside the block.
        _assert_simple_chat(_only(otel), completion.id, stream=True)
    assert completion.usage.prompt_tokens == 7
    assert len(_chat_spans(otel)) == 1


def test_chat_stream_helper_left_early_ends_at_exit_and_records_exceptions(otel, sim, client):
    sim.enqueue(Reply.text("abcdefghijklmnop"), Reply.text(ANSWER))
    with client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        for _ in stream:
            break
        assert _chat_spans(otel) == []
    assert len(_chat_spans(otel)) == 1
    with (
        pytest.raises(ValueError, match="user"),
        client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream,
    ):
        raise ValueError("user")
    left, failed = _chat_spans(otel)
    assert left.status.status_code is StatusCode.UNSET
    assert failed.attributes["error.type"] == "ValueError"


async def test_async_chat_stream_helper(otel, sim, aclient):
    sim.enqueue(Reply.text(ANSWER), Reply.text("abcdefghijklmnop"))
    async with aclient.chat.completions.stream(
        model="gpt-4o", messages=MESSAGES, stream_options={"include_usage": True}
    ) as stream:
        completion = await stream.get_final_completion()
    async with aclient.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        async for _ in stream:
            break
    consumed, left = _chat_spans(otel)
    _assert_simple_chat(consumed, completion.id, stream=True)
    assert left.status.status_code is StatusCode.UNSET


# -- raw and streaming responses --------------------------------------------------------


def test_with_raw_response_returns_the_sdk_wrapper_and_records_usage(otel, sim, client):
    sim.enqueue(Reply.text(ANSWER))
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    assert type(raw) is openai._legacy_response.LegacyAPIResponse
    assert raw.headers["content-type"].startswith("application/json")
    completion = raw.parse()
    assert raw.parse() is completion
    assert type(completion) is openai.types.chat.ChatCompletion
    _assert_simple_chat(_only(otel), completion.id, stream=False)


def test_with_raw_response_stream_is_instrumented_through_parse(otel, sim, client):
    sim.enqueue(Reply.text(ANSWER))
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    stream = raw.parse()
    assert isinstance(stream, openai.Stream)
    assert raw.parse() is stream
    chunks = list(stream)
    _assert_simple_chat(_only(otel), chunks[0].id, stream=True)


async def test_async_with_raw_response(otel, sim, aclient):
    sim.enqueue(Reply.text(ANSWER))
    raw = await aclient.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    completion = raw.parse()
    _assert_simple_chat(_only(otel), completion.id, stream=False)


def test_with_streaming_response_records_usage_when_the_user_parses(otel, sim, client):
    sim.enqueue(Reply.text(ANSWER))
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=MESSAGES
    ) as response:
        assert type(response) is openai._response.APIResponse
        assert _chat_spans(otel) == []  # the body is not read for the user
        completion = response.parse()
        assert response.parse() is completion
    _assert_simple_chat(_only(otel), completion.id, stream=False)


def test_with_streaming_response_sse_stream(otel, sim, client):
    sim.enqueue(Reply.text(ANSWER))
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ) as response:
        chunks = list(response.parse())
    _assert_simple_chat(_only(otel), chunks[0].id, stream=True)


async def test_async_with_streaming_response(otel, sim, aclient):
    sim.enqueue(Reply.text(ANSWER), Reply.text(ANSWER))
    async with aclient.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=MESSAGES
    ) as response:
        completion = await response.parse()
    async with aclient.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ) as response:
        chunks = [chunk async for chunk in await response.parse()]
    plain, streamed = _chat_spans(otel)
    _assert_simple_chat(plain, completion.id, stream=False)
    _assert_simple_chat(streamed, chunks[0].id, stream=True)


def test_with_streaming_response_read_as_lines_or_bytes_ends_when_the_block_exits(otel, sim, client):
    sim.enqueue(Reply.text(ANSWER), Reply.text(ANSWER), Reply.text(ANSWER))
    kwargs = {"model": "gpt-4o", "messages": MESSAGES}
    with client.chat.completions.with_streaming_response.create(**kwargs, stream=True) as by_lines:
        lines = list(by_lines.iter_lines())
        assert _chat_spans(otel) == []
    assert any(line.startswith("data: ") for line in lines)
    assert len(_chat_spans(otel)) == 1  # at the exit, with the response still referenced
    with client.chat.completions.with_streaming_response.create(**kwargs, stream=True) as by_bytes:
        body = b"".join(by_bytes.iter_bytes())
    assert body.rstrip().endswith(b"data: [DONE]")
    assert len(_chat_spans(otel)) == 2
    with client.chat.completions.with_streaming_response.create(**kwargs) as plain:
        decoded = json.loads(plain.read())
    assert decoded["usage"]["prompt_tokens"] == 7
    assert len(_chat_spans(otel)) == 3
    for response in (by_lines, by_bytes, plain):
        response.close()
    lines_span, bytes_span, plain_span = _chat_spans(otel)
    for span in (lines_span, bytes_span):
        assert span.name == "chat gpt-4o"
        assert span.status.status_code is StatusCode.UNSET
        assert span.attributes[gen_ai.GEN_AI_REQUEST_STREAM] is True
        # The bytes were not parsed: no output seen, the input estimated.
        assert span.attributes[attrs.USAGE_ESTIMATED] is True
        assert span.attributes[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] == 0
    assert plain_span.attributes[gen_ai.GEN_AI_REQUEST_STREAM] is False


async def test_async_with_streaming_response_read_as_lines_ends_when_the_block_exits(otel, sim, aclient):
    sim.enqueue(Reply.text(ANSWER), Reply.text(ANSWER))
    kwargs = {"model": "gpt-4o", "messages": MESSAGES}
    async with aclient.chat.completions.with_streaming_response.create(**kwargs, stream=True) as by_lines:
        lines = [line async for line in by_lines.iter_lines()]
        assert _chat_spans(otel) == []
    assert any(line.startswith("data: ") for line in lines)
    assert len(_chat_spans(otel)) == 1
    async with aclient.chat.completions.with_streaming_response.create(**kwargs) as plain:
        await plain.read()
    streamed, unparsed = _chat_spans(otel)
    assert streamed.attributes[gen_ai.GEN_AI_REQUEST_STREAM] is True
    assert streamed.status.status_code is StatusCode.UNSET
    assert unparsed.attributes[gen_ai.GEN_AI_REQUEST_STREAM] is False
    assert (by_lines.http_response.is_closed, plain.http_response.is_closed) == (True, True)


# -- responses ------------------------------------------------------------------------------

INSTRUCTIONS = "Answer in one word."  # 19 chars: 5 tokens
# input QUESTION (3 tokens) + instructions (5) = 8 input tokens, ANSWER 2 output tokens
RESP_COST = 4e-05


def _assert_response_span(span: ReadableSpan, response_id: str, *, stream: bool) -> None:
    assert span.name == "chat gpt-4o"
    assert span.kind is SpanKind.CLIENT
    a = span.attributes
    assert a[gen_ai.GEN_AI_PROVIDER_NAME] == "openai"
    assert a[gen_ai.GEN_AI_RESPONSE_ID] == response_id
    assert a[gen_ai.GEN_AI_RESPONSE_MODEL] == "gpt-4o"
    assert a[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert a[gen_ai.GEN_AI_REQUEST_STREAM] is stream
    assert a[attrs.PROMPT_PREFIX_HASH]
    assert _usage(span) == (8, 2, 0, 0, 0)
    assert a[attrs.COST_USD] == RESP_COST


def test_responses_create(otel, sim, client):
    sim.enqueue(Reply.text(ANSWER))
    response = client.responses.create(
        model="gpt-4o", input=QUESTION, instructions=INSTRUCTIONS, max_output_tokens=64
    )
    span = _only(otel)
    _assert_response_span(span, response.id, stream=False)
    assert span.attributes[gen_ai.GEN_AI_REQUEST_MAX_TOKENS] == 64


async def test_async_responses_create(otel, sim, aclient):
    sim.enqueue(Reply.text(ANSWER))
    response = await aclient.responses.create(model="gpt-4o", input=QUESTION, instructions=INSTRUCTIONS)
    _assert_response_span(_only(otel), response.id, stream=False)


def test_responses_create_stream(otel, sim, client):
    sim.enqueue(Reply.text(ANSWER))
    events = list(
        client.responses.create(model="gpt-4o", input=QUESTION, instructions=INSTRUCTIONS, stream=True)
    )
    assert events[-1].type == "response.completed"
    _assert_response_span(_only(otel), events[-1].response.id, stream=True)


def test_responses_parse(otel, sim, client):
    sim.enqueue(Reply.json({"value": 4}))
    parsed = client.responses.parse(
        model="gpt-4o", input=QUESTION, instructions=INSTRUCTIONS, text_format=Answer
    )
    assert parsed.output_parsed == Answer(value=4)
    span = _only(otel)
    assert _usage(span) == (8, 3, 0, 0, 0)
    assert span.attributes[gen_ai.GEN_AI_RESPONSE_ID] == parsed.id


def test_responses_stream_helper_get_final_response(otel, sim, client):
    sim.enqueue(Reply.text(ANSWER), Reply.text("abcdefghijklmnop"))
    with client.responses.stream(model="gpt-4o", input=QUESTION, instructions=INSTRUCTIONS) as stream:
        response = stream.get_final_response()
    with client.responses.stream(model="gpt-4o", input=QUESTION, instructions=INSTRUCTIONS) as stream:
        for _ in stream:
            break
    final, left = _chat_spans(otel)
    _assert_response_span(final, response.id, stream=True)
    assert left.status.status_code is StatusCode.UNSET
    assert gen_ai.GEN_AI_USAGE_INPUT_TOKENS not in left.attributes


async def test_async_responses_stream_helper_until_done(otel, sim, aclient):
    sim.enqueue(Reply.text(ANSWER))
    async with aclient.responses.stream(model="gpt-4o", input=QUESTION, instructions=INSTRUCTIONS) as stream:
        await stream.until_done()
        response = await stream.get_final_response()
    _assert_response_span(_only(otel), response.id, stream=True)


def test_responses_retrieve_does_not_count_a_response_twice(otel, sim, client, monkeypatch):
    sim.enqueue(Reply.text(ANSWER))
    response = client.responses.create(model="gpt-4o", input=QUESTION, instructions=INSTRUCTIONS)
    retrieved = client.responses.retrieve(response.id)
    assert retrieved.id == response.id
    # A response created by another process: the first read counts it, the next does not.
    monkeypatch.setattr(openai_patch, "_ledger", ResponseLedger())
    client.responses.retrieve(response.id)
    client.responses.retrieve(response.id)
    created, again, first_here, second_here = _chat_spans(otel)
    assert _usage(created) == (8, 2, 0, 0, 0)
    for span in (again, second_here):
        assert span.name == "chat"
        assert span.attributes[gen_ai.GEN_AI_RESPONSE_ID] == response.id
        assert gen_ai.GEN_AI_USAGE_INPUT_TOKENS not in span.attributes
        assert attrs.COST_USD not in span.attributes
    assert _usage(first_here) == (8, 2, 0, 0, 0)
    assert first_here.attributes[attrs.COST_USD] == RESP_COST


def test_responses_retrieve_is_not_a_new_model_call_for_the_budget_guard(otel, sim, client):
    sim.enqueue(Reply.text(ANSWER), Reply.text(ANSWER))
    with tasks.task("poller", max_iterations=1) as t:
        response = client.responses.create(model="gpt-4o", input=QUESTION, instructions=INSTRUCTIONS)
        # The one admitted call is spent; reading its result again is neither refused nor counted.
        assert client.responses.retrieve(response.id).id == response.id
        assert client.responses.with_raw_response.retrieve(response.id).parse().id == response.id
        assert t.iterations == 1
        with pytest.raises(tasks.BudgetExceeded):
            client.responses.create(model="gpt-4o", input=QUESTION, instructions=INSTRUCTIONS)
    created, retrieved, raw = _chat_spans(otel)
    assert created.attributes[attrs.TASK_ITERATION] == 1
    for span in (retrieved, raw):
        assert span.name == "chat"
        assert span.attributes[gen_ai.GEN_AI_RESPONSE_ID] == response.id
        assert attrs.TASK_ITERATION not in span.attributes
        assert span.parent.span_id == created.parent.span_id  # the task span
    assert sim.request_count == 3


def test_usage_a_retrieve_sees_first_counts_toward_the_task(otel, sim, client, monkeypatch):
    sim.enqueue(Reply.text(ANSWER))
    response = client.responses.create(model="gpt-4o", input=QUESTION, instructions=INSTRUCTIONS)
    # Created elsewhere (another process, a background job): this process first sees it here.
    monkeypatch.setattr(openai_patch, "_ledger", ResponseLedger())
    with tasks.task("collect", max_iterations=1) as t:
        client.responses.retrieve(response.id)
        client.responses.retrieve(response.id)
    summary = t.summary()
    assert (summary.iterations, summary.input_tokens, summary.output_tokens) == (0, 8, 2)
    assert summary.cost_usd == RESP_COST
    first, second = _chat_spans(otel)[1:]
    assert first.attributes[attrs.TASK_ID] == second.attributes[attrs.TASK_ID] == t.task_id


async def test_async_responses_retrieve_is_not_a_new_model_call_for_the_budget_guard(otel, sim, aclient):
    sim.enqueue(Reply.text(ANSWER))
    async with tasks.task("poller", max_iterations=1) as t:
        response = await aclient.responses.create(model="gpt-4o", input=QUESTION, instructions=INSTRUCTIONS)
        assert (await aclient.responses.retrieve(response.id)).id == response.id
        assert t.iterations == 1
    created, retrieved = _chat_spans(otel)
    assert created.attributes[attrs.TASK_ITERATION] == 1
    assert retrieved.attributes[gen_ai.GEN_AI_RESPONSE_ID] == response.id
    assert attrs.TASK_ITERATION not in retrieved.attributes


def test_responses_with_raw_response(otel, sim, client):
    sim.enqueue(Reply.text(ANSWER))
    raw = client.responses.with_raw_response.create(model="gpt-4o", input=QUESTION, instructions=INSTRUCTIONS)
    _assert_response_span(_only(otel), raw.parse().id, stream=False)


# -- embeddings ---------------------------------------------------------------------------


def test_embeddings_create(otel, sim, client):
    result = client.embeddings.create(model="text-embedding-3-small", input=["abc", "defgh"])
    assert len(result.data) == 2
    span = _only(otel)
    assert span.name == "embeddings text-embedding-3-small"
    assert span.kind is SpanKind.CLIENT
    assert span.attributes[gen_ai.GEN_AI_OPERATION_NAME] == "embeddings"
    assert span.attributes[gen_ai.GEN_AI_RESPONSE_MODEL] == "text-embedding-3-small"
    assert _usage(span) == (3, 0, 0, 0, 0)  # 1 + 2 tokens
    assert span.attributes[attrs.COST_USD] == 6e-08


async def test_async_embeddings_create(otel, sim, aclient):
    await aclient.embeddings.create(model="text-embedding-3-small", input="abcdefgh")
    span = _only(otel)
    assert span.name == "embeddings text-embedding-3-small"
    assert _usage(span) == (2, 0, 0, 0, 0)
    assert span.attributes[attrs.COST_USD] == 4e-08


# -- content, secrets -----------------------------------------------------------------------


def test_content_is_not_recorded_by_default(otel, sim, client):
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    client.responses.create(model="gpt-4o", input=QUESTION, instructions=INSTRUCTIONS)
    for span in _chat_spans(otel):
        for key in (
            gen_ai.GEN_AI_INPUT_MESSAGES,
            gen_ai.GEN_AI_OUTPUT_MESSAGES,
            gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS,
        ):
            assert key not in span.attributes
        assert not any(QUESTION in str(v) for v in span.attributes.values())


def test_content_is_recorded_with_the_env_var(pipeline, sim, client, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    instrumentor = _instrument(pipeline)
    try:
        sim.enqueue(Reply.text(ANSWER), Reply.tool_call("add", {"a": 2}), Reply.text(ANSWER))
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        for _ in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
            pass
        client.responses.create(model="gpt-4o", input=QUESTION, instructions=INSTRUCTIONS)
    finally:
        instrumentor.uninstrument()
    chat, streamed, responses = _chat_spans(pipeline)
    assert json.loads(chat.attributes[gen_ai.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "system", "parts": [{"type": "text", "content": SYSTEM}]},
        {"role": "user", "parts": [{"type": "text", "content": QUESTION}]},
    ]
    assert json.loads(chat.attributes[gen_ai.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": ANSWER}], "finish_reason": "stop"}
    ]
    call_id = json.loads(streamed.attributes[gen_ai.GEN_AI_OUTPUT_MESSAGES])[0]["parts"][0]["id"]
    assert call_id
    assert json.loads(streamed.attributes[gen_ai.GEN_AI_OUTPUT_MESSAGES]) == [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": call_id, "name": "add", "arguments": {"a": 2}}],
            "finish_reason": "tool_calls",
        }
    ]
    assert json.loads(responses.attributes[gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS]) == [
        {"type": "text", "content": INSTRUCTIONS}
    ]
    assert json.loads(responses.attributes[gen_ai.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": QUESTION}]}
    ]
    assert json.loads(responses.attributes[gen_ai.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": ANSWER}], "finish_reason": "stop"}
    ]


def test_no_api_key_or_authorization_in_any_attribute(pipeline, sim, client, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    instrumentor = _instrument(pipeline)
    try:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers={"X-Custom": API_KEY})
        for _ in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
            pass
        client.responses.create(model="gpt-4o", input=QUESTION)
        client.embeddings.create(model="text-embedding-3-small", input="abc")
        sim.enqueue(Reply.error(401))
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    finally:
        instrumentor.uninstrument()
    spans = _chat_spans(pipeline)
    assert len(spans) == 5
    for span in spans:
        text = json.dumps(dict(span.attributes), default=str) + (span.status.description or "")
        assert API_KEY not in text
        assert "Bearer" not in text
        assert not any("authorization" in key.lower() for key in span.attributes)
    for points in pipeline.metrics().values():
        for point in points:
            assert API_KEY not in json.dumps(dict(point.attributes))


# -- transparency ---------------------------------------------------------------------------


def _dump_without_ids(obj) -> dict:
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("id", "created", "created_at")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(obj.model_dump())


def test_results_are_identical_with_and_without_instrumentation(pipeline, sim, client):
    def run():
        sim.enqueue(Reply.text(ANSWER), Reply.text(ANSWER), Reply.text(ANSWER))
        completion = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        chunks = list(
            client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
        )
        response = client.responses.create(model="gpt-4o", input=QUESTION)
        sim.enqueue(Reply.error(429))
        with pytest.raises(openai.RateLimitError) as raised:
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        return (
            type(completion),
            _dump_without_ids(completion),
            [type(c) for c in chunks],
            [_dump_without_ids(c) for c in chunks],
            _dump_without_ids(response)["output"],
            (type(raised.value), raised.value.status_code, raised.value.body),
        )

    bare = run()
    instrumentor = _instrument(pipeline)
    try:
        traced = run()
    finally:
        instrumentor.uninstrument()
    assert len(_chat_spans(pipeline)) == 4
    assert traced == bare


def test_the_call_goes_on_when_pricing_raises(otel, sim, client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("pricing is broken")

    monkeypatch.setattr(pricing, "price", broken)
    sim.enqueue(Reply.text(ANSWER))
    completion = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert completion.choices[0].message.content == ANSWER
    assert completion.usage.prompt_tokens == 7
    span = _only(otel)
    assert span.attributes[gen_ai.GEN_AI_USAGE_INPUT_TOKENS] == 7
    assert attrs.COST_USD not in span.attributes


def test_the_call_goes_on_when_reading_the_request_raises(otel, sim, client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("reader is broken")

    monkeypatch.setattr(openai_patch.messages, "chat_prefix_hash", broken)
    sim.enqueue(Reply.text(ANSWER), Reply.text(ANSWER))
    completion = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert completion.choices[0].message.content == ANSWER
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == ANSWER
    assert _chat_spans(otel) == []


def test_the_stream_goes_on_when_reading_chunks_raises(otel, sim, client, monkeypatch):
    def broken(self, chunk):
        raise RuntimeError("accumulator is broken")

    monkeypatch.setattr(openai_patch.ChatChunks, "add", broken)
    sim.enqueue(Reply.text(ANSWER))
    chunks = list(_stream(client))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    assert _only(otel).status.status_code is StatusCode.UNSET


def test_uninstrument_restores_every_original_method(pipeline):
    instrumentor = _instrument(pipeline)
    wrapped = _uninstrumented_methods()
    assert all(isinstance(method, BaseObjectProxy) for method in wrapped.values()), wrapped
    instrumentor.uninstrument()
    tasks._reset_for_tests()
    assert _uninstrumented_methods() == ORIGINALS
    assert not isinstance(vars(Completions)["create"], BaseObjectProxy)
    assert not isinstance(vars(AsyncCompletions)["create"], BaseObjectProxy)


def test_nothing_is_recorded_after_uninstrument(pipeline, sim, client):
    instrumentor = _instrument(pipeline)
    instrumentor.uninstrument()
    tasks._reset_for_tests()
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert _chat_spans(pipeline) == []
