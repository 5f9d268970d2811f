"""The Anthropic instrumentation, with the real SDK against the provider simulator.

Every client here also has the SDK's own tracing on, into the same pipeline
(``open_telemetry={"tracer_provider": ...}``), so each test that counts spans also pins that
one model call yields exactly one span carrying usage.

Numbers: the simulator counts ``ceil(len(text) / 4)`` tokens per text block, so ``"hi"`` is
1 input token, the 8,000-character system prompt 2,000 tokens, ``"Hello there"`` 3 output
tokens. claude-sonnet-4-5 (genai-prices): input $3, output $15, cache read $0.30, 5-minute
cache write $3.75, 1-hour cache write $6 per million tokens.
"""

from __future__ import annotations

import gc
import json
from typing import Any

import anthropic
import pytest
import wrapt
from anthropic import Anthropic, AsyncAnthropic
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import error_attributes, server_attributes
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import BaseModel

import otel_llm
from otel_llm import attributes as attrs
from otel_llm import pricing
from otel_llm.instrumentation.anthropic import AnthropicInstrumentor
from otel_llm.instrumentation.anthropic import patch as anthropic_patch
from otel_llm.instrumentation.inference import CAPTURE_CONTENT_ENV
from otel_llm.instrumentation.instruments import COST_METRIC
from otel_llm.sim import Reply

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MODEL = "claude-sonnet-4-5"
SYSTEM_TEXT = "You are a careful assistant. " * 275 + "x" * 25  # 8,000 characters: 2,000 tokens
assert len(SYSTEM_TEXT) == 8000
HI = [{"role": "user", "content": "hi"}]
SDK_SPAN = "anthropic.messages.create"
SPAN = f"chat {MODEL}"
API_KEY = "sk-ant-test-secret-0123456789"


def system(ttl: str | None = None) -> list[dict[str, Any]]:
    control: dict[str, Any] = {"type": "ephemeral"}
    if ttl:
        control["ttl"] = ttl
    return [{"type": "text", "text": SYSTEM_TEXT, "cache_control": control}]


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def instrumented(pipeline):
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=pipeline.tracer_provider, meter_provider=pipeline.meter_provider)
    yield instrumentor
    instrumentor.uninstrument()


@pytest.fixture
def client(sim, pipeline):
    with Anthropic(
        base_url=sim.url,
        api_key=API_KEY,
        max_retries=0,
        open_telemetry={"tracer_provider": pipeline.tracer_provider},
    ) as c:
        yield c


@pytest.fixture
async def aclient(sim, pipeline):
    async with AsyncAnthropic(
        base_url=sim.url,
        api_key=API_KEY,
        max_retries=0,
        open_telemetry={"tracer_provider": pipeline.tracer_provider},
    ) as c:
        yield c


def usage_spans(pipeline) -> list:
    """The call spans that carry usage (a task's own span carries its totals, by design)."""
    return [
        s
        for s in pipeline.spans()
        if s.kind is SpanKind.CLIENT and gen_ai.GEN_AI_USAGE_INPUT_TOKENS in (s.attributes or {})
    ]


def the_call(pipeline):
    """The one span with usage; fails if the SDK's own call span was recorded too."""
    spans = pipeline.spans()
    assert [s.name for s in spans if s.name == SDK_SPAN] == []
    found = usage_spans(pipeline)
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def assert_usage(span, *, uncached: int, output: int, read: int = 0, write: int = 0) -> None:
    a = span.attributes
    assert a[gen_ai.GEN_AI_USAGE_INPUT_TOKENS] == uncached + read + write
    assert a[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] == output
    assert a[gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == read
    assert a[gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == write


# -- messages.create ---------------------------------------------------------------------


def test_create_records_one_span_with_usage_cost_and_request_facts(instrumented, client, sim, pipeline):
    sim.enqueue(Reply.text("Hello there"))
    message = client.messages.create(model=MODEL, max_tokens=64, system=system("1h"), messages=HI)

    span = the_call(pipeline)
    a = span.attributes
    assert span.name == SPAN
    assert span.kind is SpanKind.CLIENT
    assert span.instrumentation_scope.name == "otel_llm"
    assert span.status.status_code is StatusCode.UNSET
    assert a[gen_ai.GEN_AI_OPERATION_NAME] == "chat"
    assert a[gen_ai.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert a[gen_ai.GEN_AI_REQUEST_MODEL] == MODEL
    assert a[gen_ai.GEN_AI_RESPONSE_MODEL] == MODEL
    assert a[gen_ai.GEN_AI_RESPONSE_ID] == message.id
    assert a[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert a[gen_ai.GEN_AI_REQUEST_STREAM] is False
    assert a[gen_ai.GEN_AI_REQUEST_MAX_TOKENS] == 64
    assert a[server_attributes.SERVER_ADDRESS] == "127.0.0.1"
    assert a[server_attributes.SERVER_PORT] == sim.port
    assert_usage(span, uncached=1, output=3, write=2000)
    assert a[attrs.USAGE_CACHE_CREATION_1H_INPUT_TOKENS] == 2000
    assert a[attrs.USAGE_CACHE_CREATION_5M_INPUT_TOKENS] == 0
    # 2,000 one-hour write tokens at $6/MTok; 1 input at $3; 3 output at $15.
    assert a[attrs.COST_CACHE_WRITE_USD] == 0.012
    assert a[attrs.COST_INPUT_USD] == 0.000003
    assert a[attrs.COST_OUTPUT_USD] == 0.000045
    assert a[attrs.COST_USD] == 0.012048
    assert a[attrs.PRICE_SOURCE].startswith("genai-prices ")
    assert gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in a


def test_five_minute_cache_write_then_read_are_priced_at_their_rates(instrumented, client, sim, pipeline):
    sim.enqueue(Reply.text("Hello there"), Reply.text("Hello there"))
    client.messages.create(model=MODEL, max_tokens=64, system=system(), messages=HI)
    client.messages.create(model=MODEL, max_tokens=64, system=system(), messages=HI)

    write, read = usage_spans(pipeline)
    assert_usage(write, uncached=1, output=3, write=2000)
    assert write.attributes[attrs.USAGE_CACHE_CREATION_5M_INPUT_TOKENS] == 2000
    assert write.attributes[attrs.USAGE_CACHE_CREATION_1H_INPUT_TOKENS] == 0
    assert write.attributes[attrs.COST_CACHE_WRITE_USD] == 0.0075  # $3.75/MTok
    # Caching 2,000 tokens for 5 minutes costs $0.0075 - $0.006 = $0.0015 more than not.
    assert write.attributes[attrs.COST_CACHE_SAVINGS_USD] == pytest.approx(-0.0015, abs=1e-15)
    assert_usage(read, uncached=1, output=3, read=2000)
    assert read.attributes[attrs.COST_CACHE_READ_USD] == 0.0006  # $0.30/MTok
    assert read.attributes[attrs.COST_CACHE_SAVINGS_USD] == pytest.approx(0.0054, abs=1e-15)
    assert attrs.USAGE_CACHE_CREATION_5M_INPUT_TOKENS not in read.attributes


def test_metrics_record_tokens_duration_and_cost(instrumented, client, sim, pipeline):
    sim.enqueue(Reply.text("Hello there"))
    client.messages.create(model=MODEL, max_tokens=64, system=system("1h"), messages=HI)

    metrics = pipeline.metrics()
    tokens = {p.attributes[gen_ai.GEN_AI_TOKEN_TYPE]: p for p in metrics["gen_ai.client.token.usage"]}
    assert (tokens["input"].sum, tokens["input"].count) == (2001, 1)
    assert (tokens["output"].sum, tokens["output"].count) == (3, 1)
    assert tokens["input"].attributes[gen_ai.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert tokens["input"].attributes[gen_ai.GEN_AI_RESPONSE_MODEL] == MODEL
    [duration] = metrics["gen_ai.client.operation.duration"]
    assert duration.count == 1
    assert error_attributes.ERROR_TYPE not in duration.attributes
    [cost] = metrics[COST_METRIC]
    assert cost.value == 0.012048
    assert "gen_ai.client.operation.time_to_first_chunk" not in metrics


def test_tool_use_reply_finishes_with_tool_use(instrumented, client, sim, pipeline):
    sim.enqueue(Reply.tool_call("read_file", {"path": "a.txt"}))
    tools = [{"name": "read_file", "description": "Read a file", "input_schema": {"type": "object"}}]
    message = client.messages.create(model=MODEL, max_tokens=64, tools=tools, messages=HI)

    span = the_call(pipeline)
    assert message.stop_reason == "tool_use"
    assert span.attributes[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_use",)
    # "read_file" is 3 tokens, '{"path":"a.txt"}' 4.
    assert span.attributes[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] == 7


def test_thinking_tokens_are_reasoning_output_tokens(instrumented, client, sim, pipeline):
    sim.enqueue(Reply.text("Hello there", reasoning_tokens=8))
    client.messages.create(
        model=MODEL, max_tokens=256, thinking={"type": "enabled", "budget_tokens": 128}, messages=HI
    )
    span = the_call(pipeline)
    assert span.attributes[gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 8
    assert span.attributes[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] == 11


def test_overloaded_529_sets_error_type_and_reaches_the_caller(instrumented, client, sim, pipeline):
    sim.enqueue(Reply.error(529))
    with pytest.raises(anthropic.OverloadedError) as raised:
        client.messages.create(model=MODEL, max_tokens=64, messages=HI)

    assert raised.value.status_code == 529
    [span] = [s for s in pipeline.spans() if s.name == SPAN]
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[error_attributes.ERROR_TYPE] == "OverloadedError"
    assert gen_ai.GEN_AI_USAGE_INPUT_TOKENS not in span.attributes
    assert [s.name for s in pipeline.spans()] == [SPAN]
    [duration] = pipeline.metrics()["gen_ai.client.operation.duration"]
    assert duration.attributes[error_attributes.ERROR_TYPE] == "OverloadedError"


# -- streams from create(stream=True) ------------------------------------------------------


def test_stream_read_to_the_end_records_usage_once(instrumented, client, sim, pipeline):
    sim.enqueue(Reply.text("Hello there"))
    stream = client.messages.create(model=MODEL, max_tokens=64, system=system("1h"), messages=HI, stream=True)
    assert isinstance(stream, anthropic.Stream)
    events = [event.type for event in stream]

    assert events[0] == "message_start"
    assert events[-1] == "message_stop"
    span = the_call(pipeline)
    a = span.attributes
    assert a[gen_ai.GEN_AI_REQUEST_STREAM] is True
    assert_usage(span, uncached=1, output=3, write=2000)
    assert a[attrs.USAGE_CACHE_CREATION_1H_INPUT_TOKENS] == 2000
    assert a[attrs.COST_USD] == 0.012048
    assert a[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert a[gen_ai.GEN_AI_RESPONSE_ID].startswith("msg_")
    assert a[gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    metrics = pipeline.metrics()
    [ttft] = metrics["gen_ai.client.operation.time_to_first_chunk"]
    assert ttft.count == 1
    [per_chunk] = metrics["gen_ai.client.operation.time_per_output_chunk"]
    assert per_chunk.count == 1  # one record per stream: the mean gap between chunks
    stream.close()  # after the end: nothing more
    assert len(pipeline.spans()) == 1


def test_stream_abandoned_after_break_ends_with_the_usage_seen(instrumented, client, sim, pipeline):
    sim.enqueue(Reply.text("Hello there, this is a longer reply"))
    stream = client.messages.create(model=MODEL, max_tokens=64, system=system(), messages=HI, stream=True)
    for event in stream:
        if event.type == "content_block_delta":
            break
    assert usage_spans(pipeline) == []
    del stream, event
    gc.collect()

    span = the_call(pipeline)
    assert span.status.status_code is StatusCode.UNSET
    # message_start's counts: input and cache are final, output is its placeholder (1).
    assert_usage(span, uncached=1, output=1, write=2000)
    assert gen_ai.GEN_AI_RESPONSE_FINISH_REASONS not in span.attributes


def test_stream_closed_early_ends_once(instrumented, client, sim, pipeline):
    sim.enqueue(Reply.text("Hello there"))
    stream = client.messages.create(model=MODEL, max_tokens=64, messages=HI, stream=True)
    assert next(stream).type == "message_start"
    stream.close()
    stream.close()

    span = the_call(pipeline)
    assert_usage(span, uncached=1, output=1)
    assert span.status.status_code is StatusCode.UNSET


def test_stream_as_context_manager_left_early_ends_once(instrumented, client, sim, pipeline):
    sim.enqueue(Reply.text("Hello there"))
    with client.messages.create(model=MODEL, max_tokens=64, messages=HI, stream=True) as stream:
        for _ in stream:
            break
        assert usage_spans(pipeline) == []
    assert_usage(the_call(pipeline), uncached=1, output=1)


def test_stream_error_event_midway_sets_error_status(instrumented, client, sim, pipeline):
    sim.enqueue(Reply.stream_error(after_chunks=4))
    stream = client.messages.create(model=MODEL, max_tokens=64, messages=HI, stream=True)
    seen = []
    with pytest.raises(anthropic.APIStatusError) as raised:
        seen.extend(event.type for event in stream)

    assert seen[0] == "message_start"
    span = the_call(pipeline)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[error_attributes.ERROR_TYPE] == type(raised.value).__qualname__
    assert_usage(span, uncached=1, output=1)
    stream.close()
    assert len(pipeline.spans()) == 1


# -- messages.stream() -------------------------------------------------------------------------


def test_stream_helper_get_final_message_ends_the_span_once(instrumented, client, sim, pipeline):
    sim.enqueue(Reply.text("Hello there"))
    with client.messages.stream(model=MODEL, max_tokens=64, system=system("1h"), messages=HI) as stream:
        message = stream.get_final_message()
        assert len(usage_spans(pipeline)) == 1
    assert message.content[0].text == "Hello there"
    span = the_call(pipeline)
    assert span.attributes[gen_ai.GEN_AI_REQUEST_STREAM] is True
    assert span.attributes[gen_ai.GEN_AI_RESPONSE_ID] == message.id
    assert_usage(span, uncached=1, output=3, write=2000)
    assert span.attributes[attrs.COST_USD] == 0.012048


def test_stream_helper_until_done_and_text_stream(instrumented, client, sim, pipeline):
    sim.enqueue(Reply.text("Hello there"), Reply.text("Hello there"))
    with client.messages.stream(model=MODEL, max_tokens=64, messages=HI) as stream:
        stream.until_done()
    with client.messages.stream(model=MODEL, max_tokens=64, messages=HI) as stream:
        text = "".join(stream.text_stream)

    assert text == "Hello there"
    spans = usage_spans(pipeline)
    assert len(spans) == 2
    for span in spans:
        assert_usage(span, uncached=1, output=3)
        assert span.attributes[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)


def test_stream_helper_left_early_ends_on_exit(instrumented, client, sim, pipeline):
    sim.enqueue(Reply.text("Hello there, a longer reply"))
    with client.messages.stream(model=MODEL, max_tokens=64, messages=HI) as stream:
        for _ in stream.text_stream:
            break
        assert usage_spans(pipeline) == []
    assert_usage(the_call(pipeline), uncached=1, output=1)


def test_stream_helper_records_an_exception_leaving_the_block(instrumented, client, sim, pipeline):
    sim.enqueue(Reply.text("Hello there, a longer reply"), Reply.text("Hello there"))

    def fail_inside_the_block():
        with client.messages.stream(model=MODEL, max_tokens=64, messages=HI) as stream:
            next(iter(stream))
            raise ValueError("user code")

    with pytest.raises(ValueError, match="user code"):
        fail_inside_the_block()
    with pytest.raises(KeyError), client.beta.messages.stream(model=MODEL, max_tokens=64, messages=HI):
        raise KeyError("beta")

    plain, beta = [s for s in pipeline.spans() if s.name == SPAN]
    assert plain.status.status_code is StatusCode.ERROR
    assert plain.attributes[error_attributes.ERROR_TYPE] == "ValueError"
    assert_usage(plain, uncached=1, output=1)  # what message_start said before the block failed
    assert beta.status.status_code is StatusCode.ERROR
    assert beta.attributes[error_attributes.ERROR_TYPE] == "KeyError"


async def test_async_stream_helper_records_an_exception_leaving_the_block(
    instrumented, aclient, sim, pipeline
):
    sim.enqueue(Reply.text("Hello there"), Reply.text("Hello there"), Reply.text("Hello there"))

    async def fail_inside_the_block():
        async with aclient.messages.stream(model=MODEL, max_tokens=64, messages=HI) as stream:
            await stream.__anext__()
            raise ValueError("user code")

    with pytest.raises(ValueError, match="user code"):
        await fail_inside_the_block()
    with pytest.raises(KeyError):
        async with aclient.beta.messages.stream(model=MODEL, max_tokens=64, messages=HI):
            raise KeyError("beta")
    async with aclient.messages.stream(model=MODEL, max_tokens=64, messages=HI) as stream:
        await stream.until_done()

    plain, beta, clean = [s for s in pipeline.spans() if s.name == SPAN]
    assert plain.attributes[error_attributes.ERROR_TYPE] == "ValueError"
    assert plain.status.status_code is StatusCode.ERROR
    assert beta.attributes[error_attributes.ERROR_TYPE] == "KeyError"
    assert clean.status.status_code is StatusCode.UNSET
    assert error_attributes.ERROR_TYPE not in clean.attributes
    assert_usage(clean, uncached=1, output=3)


def test_stream_helper_sends_nothing_until_entered(instrumented, client, sim, pipeline):
    manager = client.messages.stream(model=MODEL, max_tokens=64, messages=HI)
    assert (sim.request_count, pipeline.spans()) == (0, [])
    del manager


def test_stream_helper_request_error_ends_the_span(instrumented, client, sim, pipeline):
    sim.enqueue(Reply.error(529))
    with (
        pytest.raises(anthropic.OverloadedError),
        client.messages.stream(model=MODEL, max_tokens=64, messages=HI),
    ):
        pass
    [span] = pipeline.spans()
    assert span.attributes[error_attributes.ERROR_TYPE] == "OverloadedError"


# -- parse, beta -----------------------------------------------------------------------------


class Answer(BaseModel):
    answer: str


def test_parse_records_one_span(instrumented, client, sim, pipeline):
    sim.enqueue(Reply.json({"answer": "yes"}))
    parsed = client.messages.parse(model=MODEL, max_tokens=64, messages=HI, output_format=Answer)

    assert parsed.parsed_output == Answer(answer="yes")
    span = the_call(pipeline)
    assert span.attributes[gen_ai.GEN_AI_RESPONSE_ID] == parsed.id
    # '{"answer": "yes"}' is 17 characters: 5 tokens.
    assert_usage(span, uncached=1, output=5)


def test_beta_create_stream_and_parse_each_record_one_span(instrumented, client, sim, pipeline):
    sim.enqueue(Reply.text("Hello there"), Reply.text("Hello there"), Reply.json({"answer": "no"}))
    created = client.beta.messages.create(model=MODEL, max_tokens=64, system=system("1h"), messages=HI)
    with client.beta.messages.stream(model=MODEL, max_tokens=64, system=system("1h"), messages=HI) as stream:
        streamed = stream.get_final_message()
    parsed = client.beta.messages.parse(model=MODEL, max_tokens=64, messages=HI, output_format=Answer)

    assert [s.name for s in pipeline.spans()] == [SPAN] * 3
    first, second, third = usage_spans(pipeline)
    assert first.attributes[gen_ai.GEN_AI_RESPONSE_ID] == created.id
    assert_usage(first, uncached=1, output=3, write=2000)
    assert first.attributes[attrs.COST_CACHE_WRITE_USD] == 0.012
    assert second.attributes[gen_ai.GEN_AI_RESPONSE_ID] == streamed.id
    assert_usage(second, uncached=1, output=3, read=2000)
    assert parsed.parsed_output == Answer(answer="no")
    assert_usage(third, uncached=1, output=4)


# -- raw and streaming responses ---------------------------------------------------------------


def test_with_raw_response_keeps_working_and_records_usage(instrumented, client, sim, pipeline):
    sim.enqueue(Reply.text("Hello there"))
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=HI)

    assert type(raw) is anthropic.APIResponse
    message = raw.parse()
    assert raw.parse() is message
    assert message.content[0].text == "Hello there"
    span = the_call(pipeline)
    assert span.attributes[gen_ai.GEN_AI_RESPONSE_ID] == message.id
    assert_usage(span, uncached=1, output=3)


def test_with_raw_response_stream_records_usage_when_read(instrumented, client, sim, pipeline):
    sim.enqueue(Reply.text("Hello there"))
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=HI, stream=True)
    stream = raw.parse()
    assert raw.parse() is stream
    assert isinstance(stream, anthropic.Stream)
    assert usage_spans(pipeline) == []
    assert [e.type for e in stream][-1] == "message_stop"

    span = the_call(pipeline)
    assert span.attributes[gen_ai.GEN_AI_REQUEST_STREAM] is True
    assert_usage(span, uncached=1, output=3)


def test_with_streaming_response_records_usage(instrumented, client, sim, pipeline):
    sim.enqueue(Reply.text("Hello there"), Reply.text("Hello there"))
    with client.messages.with_streaming_response.create(model=MODEL, max_tokens=64, messages=HI) as response:
        message = response.parse()
    with client.messages.with_streaming_response.create(
        model=MODEL, max_tokens=64, messages=HI, stream=True
    ) as response:
        events = [e.type for e in response.parse()]

    assert message.content[0].text == "Hello there"
    assert events[-1] == "message_stop"
    first, second = usage_spans(pipeline)
    assert first.attributes[gen_ai.GEN_AI_RESPONSE_ID] == message.id
    assert_usage(first, uncached=1, output=3)
    assert_usage(second, uncached=1, output=3)
    assert len(pipeline.spans()) == 2


def test_with_streaming_response_read_as_lines_ends_on_exit(instrumented, client, sim, pipeline):
    sim.enqueue(Reply.text("Hello there"))
    with client.messages.with_streaming_response.create(
        model=MODEL, max_tokens=64, messages=HI, stream=True
    ) as response:
        lines = list(response.iter_lines())
    assert any(line.startswith("event: message_stop") for line in lines)
    [span] = pipeline.spans()
    assert span.name == SPAN
    assert gen_ai.GEN_AI_USAGE_INPUT_TOKENS not in span.attributes


# -- async ------------------------------------------------------------------------------------


async def test_async_create_and_stream(instrumented, aclient, sim, pipeline):
    sim.enqueue(Reply.text("Hello there"), Reply.text("Hello there"))
    message = await aclient.messages.create(model=MODEL, max_tokens=64, system=system("1h"), messages=HI)
    stream = await aclient.messages.create(model=MODEL, max_tokens=64, messages=HI, stream=True)
    assert isinstance(stream, anthropic.AsyncStream)
    events = [event.type async for event in stream]

    assert events[-1] == "message_stop"
    first, second = usage_spans(pipeline)
    assert first.attributes[gen_ai.GEN_AI_RESPONSE_ID] == message.id
    assert_usage(first, uncached=1, output=3, write=2000)
    assert first.attributes[attrs.COST_USD] == 0.012048
    assert_usage(second, uncached=1, output=3)
    assert second.attributes[gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert [s.name for s in pipeline.spans()] == [SPAN, SPAN]


async def test_async_stream_helper_parse_and_beta(instrumented, aclient, sim, pipeline):
    sim.enqueue(Reply.text("Hello there"), Reply.json({"answer": "yes"}), Reply.text("Hello there"))
    async with aclient.messages.stream(model=MODEL, max_tokens=64, messages=HI) as stream:
        text = "".join([t async for t in stream.text_stream])
    parsed = await aclient.messages.parse(model=MODEL, max_tokens=64, messages=HI, output_format=Answer)
    async with aclient.beta.messages.stream(model=MODEL, max_tokens=64, messages=HI) as stream:
        final = await stream.get_final_message()

    assert text == "Hello there"
    assert parsed.parsed_output == Answer(answer="yes")
    helper, parse, beta = usage_spans(pipeline)
    assert_usage(helper, uncached=1, output=3)
    assert_usage(parse, uncached=1, output=5)
    assert beta.attributes[gen_ai.GEN_AI_RESPONSE_ID] == final.id
    assert len(pipeline.spans()) == 3


async def test_async_stream_closed_early_and_error_midway(instrumented, aclient, sim, pipeline):
    sim.enqueue(Reply.text("Hello there"), Reply.stream_error(after_chunks=4))
    stream = await aclient.messages.create(model=MODEL, max_tokens=64, messages=HI, stream=True)
    async with stream:
        async for _ in stream:
            break
    failing = await aclient.messages.create(model=MODEL, max_tokens=64, messages=HI, stream=True)
    with pytest.raises(anthropic.APIStatusError) as raised:
        async for _ in failing:
            pass

    closed, failed = usage_spans(pipeline)
    assert closed.status.status_code is StatusCode.UNSET
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes[error_attributes.ERROR_TYPE] == type(raised.value).__qualname__


async def test_async_raw_responses_and_529(instrumented, aclient, sim, pipeline):
    sim.enqueue(Reply.text("Hello there"), Reply.text("Hello there"), Reply.error(529))
    raw = await aclient.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=HI)
    message = await raw.parse()
    async with aclient.messages.with_streaming_response.create(
        model=MODEL, max_tokens=64, messages=HI, stream=True
    ) as response:
        events = [e.type async for e in await response.parse()]
    with pytest.raises(anthropic.OverloadedError):
        await aclient.messages.create(model=MODEL, max_tokens=64, messages=HI)

    assert events[-1] == "message_stop"
    raw_span, streamed, failed = pipeline.spans()
    assert raw_span.attributes[gen_ai.GEN_AI_RESPONSE_ID] == message.id
    assert_usage(raw_span, uncached=1, output=3)
    assert_usage(streamed, uncached=1, output=3)
    assert failed.attributes[error_attributes.ERROR_TYPE] == "OverloadedError"


# -- cache diagnosis and prefix hash --------------------------------------------------------


def test_cache_miss_reason_from_diagnostics(instrumented, client, sim, pipeline):
    sim.enqueue(Reply.text("Hello there"), Reply.text("Hello there"), Reply.text("Hello there"))
    first = client.messages.create(model=MODEL, max_tokens=64, system=system(), messages=HI)
    changed = [{**system()[0], "text": SYSTEM_TEXT.replace("careful", "cheerful")}]
    client.messages.create(
        model=MODEL,
        max_tokens=64,
        system=changed,
        messages=HI,
        diagnostics={"previous_message_id": first.id},
    )
    stream = client.messages.create(
        model=MODEL,
        max_tokens=64,
        system=system(),
        messages=HI,
        diagnostics={"previous_message_id": "msg_unknown"},
        stream=True,
    )
    for _ in stream:
        pass

    plain, diagnosed, streamed = usage_spans(pipeline)
    assert attrs.CACHE_MISS_REASON not in plain.attributes
    assert diagnosed.attributes[attrs.CACHE_MISS_REASON] == "system_changed"
    assert diagnosed.attributes[attrs.CACHE_MISSED_INPUT_TOKENS] == 2000
    assert streamed.attributes[attrs.CACHE_MISS_REASON] == "previous_message_not_found"
    assert attrs.CACHE_MISSED_INPUT_TOKENS not in streamed.attributes


def test_prefix_hash_groups_calls_by_tools_system_and_cache_marked_blocks(
    instrumented, client, sim, pipeline
):
    tools = [{"name": "read_file", "description": "Read a file", "input_schema": {"type": "object"}}]
    marked = {"type": "text", "text": "a long document", "cache_control": {"type": "ephemeral"}}
    calls = [
        {"system": system(), "tools": tools, "messages": HI},
        {"system": system(), "tools": tools, "messages": [{"role": "user", "content": "another question"}]},
        {"system": system("1h"), "tools": tools, "messages": HI},
        {"system": system(), "messages": HI},
        {"system": system(), "tools": tools, "messages": [{"role": "user", "content": [marked]}]},
        {"messages": HI},
    ]
    for kwargs in calls:
        client.messages.create(model=MODEL, max_tokens=64, **kwargs)

    hashes = [s.attributes.get(attrs.PROMPT_PREFIX_HASH) for s in usage_spans(pipeline)]
    assert hashes[0] == hashes[1]
    assert len(set(hashes[0:1] + hashes[2:5])) == 4
    assert all(isinstance(h, str) and len(h) == 16 for h in hashes[:5])
    # Pinned: a changed value splits dashboards' grouping by prefix across a release. (Changed
    # once, when long texts' stand-ins became the 8-byte digests OpenAI's prefixes use.)
    assert hashes[:5] == [
        "8c00508ecbc9a0ed",
        "8c00508ecbc9a0ed",
        "3c7007af3ac749c8",
        "3da70a97544b9e2a",
        "58d158eef05b8034",
    ]
    assert hashes[5] is None


# -- content and secrets ----------------------------------------------------------------------


def _all_attribute_text(pipeline) -> str:
    return json.dumps([dict(s.attributes or {}) for s in pipeline.spans()], default=str)


def test_content_is_not_recorded_by_default(instrumented, client, sim, pipeline):
    sim.enqueue(Reply.text("Hello there"))
    client.messages.create(model=MODEL, max_tokens=64, system="Be brief.", messages=HI)
    client.messages.count_tokens(model=MODEL, messages=HI)

    a = the_call(pipeline).attributes
    for name in (
        gen_ai.GEN_AI_INPUT_MESSAGES,
        gen_ai.GEN_AI_OUTPUT_MESSAGES,
        gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS,
    ):
        assert name not in a
    text = _all_attribute_text(pipeline)
    assert "Hello there" not in text
    assert "Be brief." not in text
    assert API_KEY not in text


def test_content_is_recorded_when_the_env_var_opts_in(monkeypatch, pipeline, client, sim):
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, "true")
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=pipeline.tracer_provider, meter_provider=pipeline.meter_provider)
    try:
        sim.enqueue(Reply.text("Hello there"), Reply.tool_call("read_file", {"path": "a.txt"}))
        client.messages.create(model=MODEL, max_tokens=64, system="Be brief.", messages=HI)
        stream = client.messages.create(model=MODEL, max_tokens=64, messages=HI, stream=True)
        for _ in stream:
            pass
    finally:
        instrumentor.uninstrument()

    plain, streamed = usage_spans(pipeline)
    a = plain.attributes
    assert json.loads(a[gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": "Be brief."}]
    assert json.loads(a[gen_ai.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "hi"}]}
    ]
    assert json.loads(a[gen_ai.GEN_AI_OUTPUT_MESSAGES]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Hello there"}],
            "finish_reason": "end_turn",
        }
    ]
    [output] = json.loads(streamed.attributes[gen_ai.GEN_AI_OUTPUT_MESSAGES])
    assert output["finish_reason"] == "tool_use"
    [call] = [p for p in output["parts"] if p["type"] == "tool_call"]
    assert (call["name"], call["arguments"]) == ("read_file", {"path": "a.txt"})
    assert call["id"].startswith("toolu_")
    assert API_KEY not in _all_attribute_text(pipeline)


# -- the SDK's own tracing --------------------------------------------------------------------


def test_sdk_spans_of_other_calls_are_left_alone_and_context_propagates(instrumented, client, sim, pipeline):
    sim.enqueue(Reply.text("Hello there"))
    client.messages.create(model=MODEL, max_tokens=64, messages=HI)
    client.messages.count_tokens(model=MODEL, messages=HI)

    ours = the_call(pipeline)
    [counted] = [s for s in pipeline.spans() if s.name == "anthropic.messages.count_tokens"]
    assert counted.instrumentation_scope.name == "com.anthropic.sdk.python"
    # The SDK's propagation names our span in the request it sent.
    context = ours.get_span_context()
    traceparent = sim.requests[0].headers["traceparent"]
    assert traceparent == f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def test_without_instrumentation_the_sdk_span_carries_usage(client, sim, pipeline):
    # The baseline the stand-down is measured against: the SDK's span is real and counts usage.
    sim.enqueue(Reply.text("Hello there"))
    client.messages.create(model=MODEL, max_tokens=64, messages=HI)
    [span] = pipeline.spans()
    assert span.name == SDK_SPAN
    assert span.attributes["gen_ai.usage.output_tokens"] == 3


def test_uninstrument_undoes_every_wrap(pipeline, client, sim):
    from anthropic import _base_client
    from anthropic.lib.streaming import _beta_messages, _messages
    from anthropic.resources.beta.messages import messages as beta_messages
    from anthropic.resources.messages import messages

    targets = [
        (owner, name)
        for module in (messages, beta_messages)
        for owner in (module.Messages, module.AsyncMessages)
        for name in ("create", "parse", "stream")
    ] + [
        (_messages.MessageStreamManager, "__exit__"),
        (_messages.AsyncMessageStreamManager, "__aexit__"),
        (_beta_messages.BetaMessageStreamManager, "__exit__"),
        (_beta_messages.BetaAsyncMessageStreamManager, "__aexit__"),
        (_base_client, "start_api_call_span"),
    ]
    originals = [vars(owner)[name] for owner, name in targets]
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=pipeline.tracer_provider, meter_provider=pipeline.meter_provider)
    try:
        wrapped = [vars(owner)[name] for owner, name in targets]
        assert all(isinstance(w, wrapt.FunctionWrapper) for w in wrapped)
        assert [w.__wrapped__ for w in wrapped] == originals
        raw = client.messages.with_raw_response  # caches the wrapped bound method
    finally:
        instrumentor.uninstrument()

    assert [vars(owner)[name] for owner, name in targets] == originals
    sim.enqueue(Reply.text("Hello there"), Reply.text("Hello there"))
    client.messages.create(model=MODEL, max_tokens=64, messages=HI)
    raw.create(model=MODEL, max_tokens=64, messages=HI).parse()
    assert [s.name for s in pipeline.spans()] == [SDK_SPAN, SDK_SPAN]


# -- the user's call is never changed ------------------------------------------------------


def _calls(client) -> list[Any]:
    """Every surface once; what each returned, as comparable data."""
    out: list[Any] = []
    message = client.messages.create(model=MODEL, max_tokens=64, system=system(), messages=HI)
    out.append(message.model_dump(exclude={"id"}))
    stream = client.messages.create(model=MODEL, max_tokens=64, messages=HI, stream=True)
    out.append([type(e).__name__ for e in stream])
    with client.messages.stream(model=MODEL, max_tokens=64, messages=HI) as helper:
        out.append(helper.get_final_message().model_dump(exclude={"id"}))
    out.append(
        client.messages.parse(model=MODEL, max_tokens=64, messages=HI, output_format=Answer).parsed_output
    )
    out.append(
        client.beta.messages.create(model=MODEL, max_tokens=64, messages=HI).model_dump(exclude={"id"})
    )
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=HI)
    out.append((type(raw).__name__, raw.status_code, raw.parse().content[0].text))
    try:
        client.messages.create(model=MODEL, max_tokens=64, messages=HI)
    except anthropic.APIStatusError as exc:
        out.append((type(exc), exc.status_code, exc.body))
    failing = client.messages.create(model=MODEL, max_tokens=64, messages=HI, stream=True)
    try:
        for _ in failing:
            pass
    except anthropic.APIStatusError as exc:
        out.append((type(exc), exc.body))
    return out


def _script(sim) -> None:
    sim.reset()
    sim.enqueue(
        Reply.text("Hello there"),
        Reply.text("Hello there"),
        Reply.text("Hello there"),
        Reply.json({"answer": "yes"}),
        Reply.text("Hello there"),
        Reply.text("Hello there"),
        Reply.error(529),
        Reply.stream_error(after_chunks=4),
    )


@pytest.mark.parametrize("fault", [False, True], ids=["healthy", "pricing-raises"])
def test_results_and_errors_are_identical_with_and_without_instrumentation(
    fault, monkeypatch, pipeline, client, sim
):
    _script(sim)
    bare = _calls(client)
    assert len(bare) == 8
    if fault:

        def broken_price(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError("injected pricing failure")

        monkeypatch.setattr(pricing, "price", broken_price)
    instrumentor = AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=pipeline.tracer_provider, meter_provider=pipeline.meter_provider)
    try:
        pipeline.exporter.clear()
        _script(sim)
        # A fresh copy: ``with_raw_response`` caches the method it wraps when first used.
        assert _calls(client.with_options()) == bare
    finally:
        instrumentor.uninstrument()

    spans = [s for s in pipeline.spans() if s.name == SPAN]
    assert len(spans) == 8
    assert [s.name for s in pipeline.spans() if s.name == SDK_SPAN] == []
    priced = [s for s in spans if attrs.COST_USD in s.attributes]
    if fault:
        # Tokens still land; the price is unknown rather than wrong.
        assert priced == []
        assert {s.attributes.get(attrs.PRICE_SOURCE) for s in usage_spans(pipeline)} == {"unknown"}
    else:
        assert len(priced) == 7


def test_a_failing_telemetry_path_leaves_streams_untouched(monkeypatch, instrumented, client, sim, pipeline):
    def broken_add(self: Any, chunk: Any) -> None:
        raise RuntimeError("injected accumulator failure")

    monkeypatch.setattr(anthropic_patch.MessageAccumulator, "add", broken_add)
    sim.enqueue(Reply.text("Hello there"))
    with client.messages.stream(model=MODEL, max_tokens=64, messages=HI) as stream:
        assert stream.get_final_text() == "Hello there"
    [span] = pipeline.spans()
    assert span.name == SPAN
    assert gen_ai.GEN_AI_USAGE_INPUT_TOKENS not in span.attributes


# -- budget guard -------------------------------------------------------------------------


def test_budget_exceeded_is_raised_before_the_request_is_sent(instrumented, client, sim, pipeline):
    sim.enqueue(Reply.text("Hello there"))
    with otel_llm.task("tiny", max_iterations=1):
        client.messages.create(model=MODEL, max_tokens=64, messages=HI)
        with pytest.raises(otel_llm.BudgetExceeded):
            client.messages.create(model=MODEL, max_tokens=64, messages=HI)
        with (
            pytest.raises(otel_llm.BudgetExceeded),
            client.messages.stream(model=MODEL, max_tokens=64, messages=HI),
        ):
            pass
    assert sim.request_count == 1
    [call] = usage_spans(pipeline)
    assert call.attributes[attrs.TASK_NAME] == "tiny"


# -- stream usage arithmetic and platform clients ------------------------------------------


def test_message_delta_usage_is_cumulative_and_replaces_message_start_counts(pipeline):
    from anthropic.types import RawMessageDeltaEvent, RawMessageStartEvent

    from otel_llm.instrumentation.inference import InferenceRequest, Telemetry

    start = RawMessageStartEvent.model_validate(
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "content": [],
                "stop_reason": None,
                "usage": {
                    "input_tokens": 10,
                    "cache_read_input_tokens": 0,
                    "cache_creation_input_tokens": 2000,
                    "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 2000},
                    "output_tokens": 1,
                },
            },
        }
    )

    def delta(usage: dict[str, Any], stop_reason: str | None = None) -> RawMessageDeltaEvent:
        return RawMessageDeltaEvent.model_validate(
            {"type": "message_delta", "delta": {"stop_reason": stop_reason}, "usage": usage}
        )

    accumulator = anthropic_patch.MessageAccumulator()
    for event in (
        start,
        delta({"output_tokens": 5}),
        # A later delta restates the running totals, input and cache counts included.
        delta({"output_tokens": 9, "input_tokens": 12, "cache_creation_input_tokens": 2000}, "end_turn"),
    ):
        accumulator.add(event)
    telemetry = Telemetry(pipeline.tracer_provider, pipeline.meter_provider)
    call = telemetry.start(InferenceRequest(provider="anthropic", operation="chat", model=MODEL, stream=True))
    accumulator.finish(call)
    call.end()

    [span] = usage_spans(pipeline)
    assert_usage(span, uncached=12, output=9, write=2000)
    assert span.attributes[attrs.USAGE_CACHE_CREATION_1H_INPUT_TOKENS] == 2000
    assert span.attributes[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    # 12 input at $3, 2,000 one-hour writes at $6, 9 output at $15 per million.
    assert span.attributes[attrs.COST_USD] == 0.012171


def test_vertex_client_is_reported_as_gcp_vertex_ai(instrumented, sim, pipeline):
    vertex = anthropic.AnthropicVertex(
        region="us-east5", project_id="proj", access_token="tok", base_url=sim.url, max_retries=0
    )
    # The simulator does not serve Vertex's rawPredict route: the call fails with a 404.
    with pytest.raises(anthropic.NotFoundError):
        vertex.messages.create(model=MODEL, max_tokens=64, messages=HI)
    [span] = [s for s in pipeline.spans() if s.name == SPAN]
    assert span.attributes[gen_ai.GEN_AI_PROVIDER_NAME] == "gcp.vertex_ai"
    assert span.attributes[error_attributes.ERROR_TYPE] == "NotFoundError"


@pytest.mark.parametrize("stream", [False, True])
def test_beta_tool_runner_turns_are_traced_through_beta_create(stream, instrumented, client, sim, pipeline):
    @anthropic.beta_tool
    def read_file(path: str) -> str:
        """Read a file."""
        return "contents of " + path

    sim.enqueue(Reply.tool_call("read_file", {"path": "a.txt"}), Reply.text("done"))
    runner = client.beta.messages.tool_runner(
        model=MODEL, max_tokens=64, tools=[read_file], messages=HI, thread=False, stream=stream
    )
    for turn in runner:
        if stream:
            for _ in turn:
                pass

    assert sim.request_count == 2
    tool_turn, final_turn = usage_spans(pipeline)
    assert [s.name for s in pipeline.spans() if s.kind is SpanKind.CLIENT] == [SPAN, SPAN]
    assert tool_turn.attributes[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_use",)
    assert tool_turn.attributes[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] == 7
    assert final_turn.attributes[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] == 1  # "done"
    assert final_turn.attributes[gen_ai.GEN_AI_REQUEST_STREAM] is stream


def test_content_block_events_are_handed_to_the_accumulator_only_when_content_is_captured() -> None:
    from anthropic.types import RawContentBlockDeltaEvent, RawMessageDeltaEvent, RawMessageStartEvent
    from anthropic.types.beta import BetaRawContentBlockDeltaEvent

    plain = anthropic_patch.MessageAccumulator(capture=False)
    assert {RawContentBlockDeltaEvent, BetaRawContentBlockDeltaEvent} <= plain.skip
    # The events that carry usage, model and stop reason always reach it.
    assert not {RawMessageStartEvent, RawMessageDeltaEvent} & plain.skip
    assert anthropic_patch.MessageAccumulator(capture=True).skip == frozenset()
