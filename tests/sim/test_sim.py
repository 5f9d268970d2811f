"""The provider simulator, exercised through the real openai and anthropic SDKs."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path

import anthropic
import openai
import pytest
from pydantic import BaseModel

from otel_llm.sim import Reply, SimRequest, Simulator, ToolCall, compact_json, count_tokens, openai_cacheable

pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

SONNET = "claude-sonnet-4-5"
SYSTEM_8K = "s" * 8000  # exactly 2,000 tokens


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as simulator:
        yield simulator


@pytest.fixture
def oai(sim: Simulator) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=sim.openai_base_url, api_key="sim", max_retries=0) as client:
        yield client


@pytest.fixture
def claude(sim: Simulator) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=sim.url, api_key="sim", max_retries=0) as client:
        yield client


def cached_system(text: str = SYSTEM_8K, ttl: str = "5m") -> list[dict]:
    return [{"type": "text", "text": text, "cache_control": {"type": "ephemeral", "ttl": ttl}}]


# --------------------------------------------------------------------------- token rule


def test_count_tokens_is_ceil_of_a_quarter_of_the_length() -> None:
    assert [count_tokens(s) for s in ("", "a", "abcd", "abcde", SYSTEM_8K)] == [0, 1, 1, 2, 2000]


def test_compact_json_drops_cache_control_and_spaces() -> None:
    tool = {"name": "f", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}
    assert compact_json(tool) == '{"name":"f","input_schema":{"type":"object"}}'


def test_openai_cacheable_rounds_to_1024_plus_128_steps() -> None:
    assert [openai_cacheable(n) for n in (1023, 1024, 1151, 1152, 1300)] == [0, 1024, 1024, 1152, 1280]


# --------------------------------------------------------------------------- OpenAI chat


def test_chat_plain_call_counts_every_message_and_no_overhead(sim: Simulator, oai: openai.OpenAI) -> None:
    sim.enqueue(Reply.text("hello there"))
    messages = [{"role": "system", "content": "x" * 10}, {"role": "user", "content": "what?"}]
    result = oai.chat.completions.create(model="gpt-4o", messages=messages)
    assert result.choices[0].message.content == "hello there"
    assert result.choices[0].finish_reason == "stop"
    usage = result.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (3 + 2, 3, 8)
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert usage.prompt_tokens_details.cache_write_tokens == 0
    assert usage.completion_tokens_details.reasoning_tokens == 0


def test_chat_default_reply_has_default_length(oai: openai.OpenAI) -> None:
    result = oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert count_tokens(result.choices[0].message.content) == 20
    assert result.usage.completion_tokens == 20


def test_chat_tools_count_as_compact_json(oai: openai.OpenAI) -> None:
    tool = {"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}
    result = oai.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], tools=[tool]
    )
    assert result.usage.prompt_tokens == count_tokens(compact_json(tool)) + 1


def test_reasoning_models_report_reasoning_tokens(sim: Simulator, oai: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "hi"}]
    sim.enqueue(Reply.text("abcd"), Reply.text("abcd", reasoning_tokens=7), Reply.text("abcd"))
    o3 = oai.chat.completions.create(model="o3", messages=messages).usage
    scripted = oai.chat.completions.create(model="gpt-5-mini", messages=messages).usage
    gpt4o = oai.chat.completions.create(model="gpt-4o", messages=messages).usage
    assert (o3.completion_tokens_details.reasoning_tokens, o3.completion_tokens) == (16, 17)
    assert (scripted.completion_tokens_details.reasoning_tokens, scripted.completion_tokens) == (7, 8)
    assert (gpt4o.completion_tokens_details.reasoning_tokens, gpt4o.completion_tokens) == (0, 1)


def test_chat_max_completion_tokens_caps_output_with_length(oai: openai.OpenAI) -> None:
    result = oai.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_completion_tokens=5
    )
    assert result.choices[0].finish_reason == "length"
    assert result.usage.completion_tokens == 5
    assert len(result.choices[0].message.content) == 20


def test_openai_caches_1024_token_prefixes_in_128_token_steps(sim: Simulator, oai: openai.OpenAI) -> None:
    system = {"role": "system", "content": "p" * 5000}  # 1,250 tokens

    def call(question: str, **extra: object) -> openai.types.CompletionUsage:
        messages = [system, {"role": "user", "content": question}]
        return oai.chat.completions.create(model="gpt-4o", messages=messages, **extra).usage

    first = call("q1")
    assert first.prompt_tokens == 1251
    assert first.prompt_tokens_details.cached_tokens == 0
    assert first.prompt_tokens_details.cache_write_tokens == 1152
    second = call("q2")  # shares the 1,250-token system prompt
    assert second.prompt_tokens_details.cached_tokens == 1152
    assert second.prompt_tokens_details.cache_write_tokens == 0
    other_key = call("q3", prompt_cache_key="tenant-b")
    assert other_key.prompt_tokens_details.cached_tokens == 0
    sim.advance(601)
    expired = call("q4")
    assert expired.prompt_tokens_details.cached_tokens == 0
    assert expired.prompt_tokens_details.cache_write_tokens == 1152


def test_openai_prompts_under_1024_tokens_are_not_cached(oai: openai.OpenAI) -> None:
    messages = [{"role": "system", "content": "p" * 4000}, {"role": "user", "content": "q"}]  # 1,001 tokens
    for _ in range(2):
        usage = oai.chat.completions.create(model="gpt-4o", messages=messages).usage
        assert usage.prompt_tokens == 1001
        assert usage.prompt_tokens_details.cached_tokens == 0
        assert usage.prompt_tokens_details.cache_write_tokens == 0


def test_openai_shared_prefix_is_counted_at_token_granularity(oai: openai.OpenAI) -> None:
    base = "a" * 4400  # 1,100 tokens
    oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": base + "b" * 800}])
    usage = oai.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": base + "c" * 800}]
    )
    assert usage.usage.prompt_tokens_details.cached_tokens == 1024


def test_chat_stream_sends_usage_only_with_include_usage(oai: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "hi"}]
    plain = list(oai.chat.completions.create(model="gpt-4o", messages=messages, stream=True))
    assert all(chunk.usage is None for chunk in plain)
    assert all(chunk.choices for chunk in plain)
    assert sum(1 for c in plain if c.choices[0].delta.content) == 20
    assert plain[-1].choices[0].finish_reason == "stop"

    with_usage = list(
        oai.chat.completions.create(
            model="gpt-4o", messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    assert all(chunk.usage is None for chunk in with_usage[:-1])
    assert with_usage[-1].choices == []
    assert (with_usage[-1].usage.prompt_tokens, with_usage[-1].usage.completion_tokens) == (1, 20)


def test_chat_stream_accumulates_several_tool_calls(sim: Simulator, oai: openai.OpenAI) -> None:
    sim.enqueue(
        Reply.tool_calls([("read_file", {"path": "a.txt"}), ToolCall("grep", {"q": "x"}, id="call_2")])
    )
    with oai.chat.completions.stream(model="gpt-4o", messages=[{"role": "user", "content": "go"}]) as stream:
        arguments_deltas = [e for e in stream if e.type == "tool_calls.function.arguments.delta"]
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("read_file", {"path": "a.txt"}),
        ("grep", {"q": "x"}),
    ]
    assert calls[1].id == "call_2"
    # one delta event per call start (empty arguments), then one per four-character token
    assert len(arguments_deltas) == 2 + count_tokens('{"path":"a.txt"}') + count_tokens('{"q":"x"}')

    sim.enqueue(Reply.tool_calls([("read_file", {"path": "a.txt"}), ("grep", {"q": "x"})]))
    result = oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "go"}])
    expected = count_tokens("read_file") + count_tokens('{"path":"a.txt"}') + count_tokens("grep") + 3
    assert result.usage.completion_tokens == expected == 11


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


class Item(BaseModel):
    name: str
    count: int
    price: float
    tags: list[str]


class Order(BaseModel):
    id: int
    paid: bool
    colour: Colour
    items: list[Item]
    note: str | None


def test_chat_parse_replies_with_json_matching_the_schema(sim: Simulator, oai: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "an order"}]
    parsed = oai.chat.completions.parse(model="gpt-4o", messages=messages, response_format=Order)
    order = parsed.choices[0].message.parsed
    assert isinstance(order, Order)
    assert order.colour is Colour.RED
    assert len(order.items) == 1

    scripted = {"id": 7, "paid": False, "colour": "blue", "items": [], "note": "n"}
    sim.enqueue(Reply.json(scripted))
    with oai.chat.completions.stream(model="gpt-4o", messages=messages, response_format=Order) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.parsed == Order.model_validate(scripted)


# --------------------------------------------------------------------------- OpenAI Responses


def test_responses_stream_sends_the_full_event_sequence(sim: Simulator, oai: openai.OpenAI) -> None:
    sim.enqueue(Reply.text("abcdefgh"))
    with oai.responses.stream(model="gpt-4.1", input="hello") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert final.output_text == "abcdefgh"
    assert final.usage.input_tokens == 2
    assert final.usage.output_tokens == 2
    assert final.usage.input_tokens_details.cached_tokens == 0
    assert final.usage.output_tokens_details.reasoning_tokens == 0


def test_responses_cache_reasoning_and_retrieve(oai: openai.OpenAI) -> None:
    instructions = "i" * 6000  # 1,500 tokens
    first = oai.responses.create(model="gpt-5", instructions=instructions, input="one")
    second = oai.responses.create(model="gpt-5", instructions=instructions, input="two")
    assert first.usage.input_tokens == 1501
    assert first.usage.input_tokens_details.cache_write_tokens == openai_cacheable(1501)
    assert second.usage.input_tokens_details.cached_tokens == openai_cacheable(1500)
    assert second.usage.output_tokens_details.reasoning_tokens == 16
    assert [item.type for item in second.output] == ["reasoning", "message"]
    retrieved = oai.responses.retrieve(second.id)
    assert retrieved.id == second.id
    assert retrieved.usage == second.usage
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve("resp_missing")


def test_responses_previous_response_id_extends_the_cached_prefix(oai: openai.OpenAI) -> None:
    first = oai.responses.create(model="gpt-4.1", input="q" * 4400)  # 1,100 tokens + 20 output
    follow = oai.responses.create(model="gpt-4.1", previous_response_id=first.id, input="next")
    assert follow.usage.input_tokens == 1100 + 20 + 1
    assert follow.usage.input_tokens_details.cached_tokens == 1024


def test_responses_function_calls_stream_and_parse(sim: Simulator, oai: openai.OpenAI) -> None:
    sim.enqueue(Reply.tool_call("read_file", {"path": "a.txt"}))
    tool = {"type": "function", "name": "read_file", "parameters": {"type": "object"}, "strict": False}
    with oai.responses.stream(model="gpt-4.1", input="go", tools=[tool]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    call = final.output[0]
    assert (call.type, call.name, json.loads(call.arguments)) == (
        "function_call",
        "read_file",
        {"path": "a.txt"},
    )

    parsed = oai.responses.parse(model="gpt-4.1", input="an order", text_format=Order)
    assert isinstance(parsed.output_parsed, Order)
    with oai.responses.stream(model="gpt-4.1", input="an order", text_format=Order) as stream:
        assert isinstance(stream.get_final_response().output_parsed, Order)


def test_responses_max_output_tokens_makes_an_incomplete_response(oai: openai.OpenAI) -> None:
    result = oai.responses.create(model="gpt-4.1", input="hi", max_output_tokens=3)
    assert result.status == "incomplete"
    assert result.incomplete_details.reason == "max_output_tokens"
    assert result.usage.output_tokens == 3


# --------------------------------------------------------------------------- embeddings


def test_embeddings_base64_default_and_float_agree(sim: Simulator, oai: openai.OpenAI) -> None:
    default = oai.embeddings.create(model="text-embedding-3-small", input=["abcde", "xyz"])
    assert sim.requests[-1].body["encoding_format"] == "base64"
    floats = oai.embeddings.create(
        model="text-embedding-3-small", input=["abcde", "xyz"], encoding_format="float"
    )
    raw = oai.embeddings.create(model="text-embedding-3-small", input="abcde", encoding_format="base64")
    assert default.data[0].embedding == floats.data[0].embedding
    assert len(floats.data[1].embedding) == 1536
    assert (default.usage.prompt_tokens, default.usage.total_tokens) == (3, 3)
    decoded = base64.b64decode(raw.data[0].embedding)
    assert len(decoded) == 1536 * 4
    small = oai.embeddings.create(
        model="text-embedding-3-large", input="a", dimensions=8, encoding_format="float"
    )
    assert len(small.data[0].embedding) == 8


# --------------------------------------------------------------------------- Anthropic caching


def test_anthropic_1h_cache_write_then_read(claude: anthropic.Anthropic) -> None:
    def call() -> anthropic.types.Usage:
        return claude.messages.create(
            model=SONNET,
            max_tokens=100,
            system=cached_system(ttl="1h"),
            messages=[{"role": "user", "content": "hello"}],
        ).usage

    first = call()
    assert first.cache_creation_input_tokens == 2000
    assert first.cache_creation.ephemeral_1h_input_tokens == 2000
    assert first.cache_creation.ephemeral_5m_input_tokens == 0
    assert first.cache_read_input_tokens == 0
    assert first.input_tokens == 2
    second = call()
    assert (second.cache_read_input_tokens, second.cache_creation_input_tokens, second.input_tokens) == (
        2000,
        0,
        2,
    )


def test_anthropic_prefix_below_model_minimum_is_not_cached(claude: anthropic.Anthropic) -> None:
    for model, system in (
        ("claude-haiku-4-5", SYSTEM_8K),
        (SONNET, "s" * 4000),
    ):  # 2,000 < 4,096; 1,000 < 1,024
        for _ in range(2):
            usage = claude.messages.create(
                model=model,
                max_tokens=100,
                system=cached_system(system),
                messages=[{"role": "user", "content": "hi"}],
            ).usage
            assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (0, 0)
            assert usage.input_tokens == count_tokens(system) + 1


def test_anthropic_cache_expires_after_ttl_and_reads_refresh_it(
    sim: Simulator, claude: anthropic.Anthropic
) -> None:
    def call() -> anthropic.types.Usage:
        return claude.messages.create(
            model=SONNET, max_tokens=10, system=cached_system(), messages=[{"role": "user", "content": "hi"}]
        ).usage

    assert call().cache_creation.ephemeral_5m_input_tokens == 2000
    sim.advance(299)
    assert call().cache_read_input_tokens == 2000  # and the read restarts the 5 minutes
    sim.advance(299)
    assert call().cache_read_input_tokens == 2000
    sim.advance(301)
    expired = call()
    assert (expired.cache_read_input_tokens, expired.cache_creation_input_tokens) == (0, 2000)


def test_anthropic_reads_longest_cached_prefix_and_writes_the_rest(claude: anthropic.Anthropic) -> None:
    tool = {
        "name": "read_file",
        "description": "d" * 4400,
        "input_schema": {"type": "object"},
        "cache_control": {"type": "ephemeral", "ttl": "1h"},
    }
    tool_tokens = count_tokens(compact_json(tool))
    turn1 = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "u" * 400, "cache_control": {"type": "ephemeral"}}],
        }
    ]
    first = claude.messages.create(
        model=SONNET, max_tokens=10, tools=[tool], system=SYSTEM_8K, messages=turn1
    ).usage
    assert first.cache_creation.ephemeral_1h_input_tokens == tool_tokens
    assert first.cache_creation.ephemeral_5m_input_tokens == 2000 + 100
    assert first.input_tokens == 0

    turn2 = [
        {"role": "user", "content": [{"type": "text", "text": "u" * 400}]},
        {"role": "assistant", "content": "a" * 40},
        {
            "role": "user",
            "content": [{"type": "text", "text": "v" * 80, "cache_control": {"type": "ephemeral"}}],
        },
        {"role": "user", "content": "tail"},
    ]
    second = claude.messages.create(
        model=SONNET, max_tokens=10, tools=[tool], system=SYSTEM_8K, messages=turn2
    ).usage
    assert second.cache_read_input_tokens == tool_tokens + 2000 + 100
    assert second.cache_creation_input_tokens == 10 + 20
    assert second.input_tokens == 1


def test_anthropic_top_level_cache_control_marks_the_last_block(claude: anthropic.Anthropic) -> None:
    usage = claude.messages.create(
        model=SONNET,
        max_tokens=10,
        system=SYSTEM_8K,
        messages=[{"role": "user", "content": "hi"}],
        cache_control={"type": "ephemeral"},
    ).usage
    assert (usage.cache_creation_input_tokens, usage.input_tokens) == (2001, 0)


# --------------------------------------------------------------------------- Anthropic streams


def test_anthropic_stream_usage_is_cumulative(sim: Simulator, claude: anthropic.Anthropic) -> None:
    sim.enqueue(Reply.text("x" * 40))
    kwargs = {
        "model": SONNET,
        "max_tokens": 100,
        "system": cached_system(),
        "messages": [{"role": "user", "content": "hi"}],
    }
    events = list(claude.messages.create(stream=True, **kwargs))
    assert events[0].type == "message_start"
    assert events[0].message.usage.output_tokens == 1
    assert events[0].message.usage.cache_creation_input_tokens == 2000
    delta = next(e for e in events if e.type == "message_delta")
    assert delta.usage.output_tokens == 10
    assert delta.usage.cache_creation_input_tokens == 2000
    assert delta.delta.stop_reason == "end_turn"
    assert events[-1].type == "message_stop"

    sim.enqueue(Reply.text("y" * 40))
    with claude.messages.stream(**kwargs) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "y" * 40
    assert (final.usage.output_tokens, final.usage.cache_read_input_tokens, final.usage.input_tokens) == (
        10,
        2000,
        1,
    )


def test_anthropic_stream_tool_use_and_thinking(sim: Simulator, claude: anthropic.Anthropic) -> None:
    sim.enqueue(Reply.tool_call("read_file", {"path": "a.txt"}, text="ok", reasoning_tokens=5))
    with claude.messages.stream(
        model=SONNET,
        max_tokens=1000,
        thinking={"type": "enabled", "budget_tokens": 500},
        messages=[{"role": "user", "content": "go"}],
    ) as stream:
        final = stream.get_final_message()
    assert [block.type for block in final.content] == ["thinking", "text", "tool_use"]
    assert final.content[2].input == {"path": "a.txt"}
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens == 5 + 1 + count_tokens("read_file") + count_tokens('{"path":"a.txt"}')
    assert final.usage.output_tokens_details.thinking_tokens == 5


def test_anthropic_max_tokens_stop_reason(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model=SONNET, max_tokens=4, messages=[{"role": "user", "content": "hi"}])
    assert (message.stop_reason, message.usage.output_tokens) == ("max_tokens", 4)


def test_anthropic_beta_messages_reach_the_same_endpoint(sim: Simulator, claude: anthropic.Anthropic) -> None:
    message = claude.beta.messages.create(
        model=SONNET,
        max_tokens=10,
        messages=[{"role": "user", "content": "hi"}],
        betas=["some-beta-2025-01-01"],
    )
    assert message.usage.output_tokens == 10
    request = sim.last_request
    assert (request.path, request.headers["anthropic-beta"]) == ("/v1/messages", "some-beta-2025-01-01")
    assert request.headers["authorization"] == "<redacted>"


def test_anthropic_structured_output_parse(claude: anthropic.Anthropic) -> None:
    parsed = claude.messages.parse(
        model=SONNET, max_tokens=1000, messages=[{"role": "user", "content": "order"}], output_format=Order
    )
    assert isinstance(parsed.parsed_output, Order)


def test_stop_sequences_cut_the_text(sim: Simulator, claude: anthropic.Anthropic, oai: openai.OpenAI) -> None:
    sim.enqueue(Reply.text("one two END three"), Reply.text("one two END three"))
    message = claude.messages.create(
        model=SONNET, max_tokens=100, messages=[{"role": "user", "content": "hi"}], stop_sequences=["END"]
    )
    assert (message.content[0].text, message.stop_reason, message.stop_sequence) == (
        "one two ",
        "stop_sequence",
        "END",
    )
    assert message.usage.output_tokens == count_tokens("one two ")
    chat = oai.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stop="END"
    )
    assert (chat.choices[0].message.content, chat.choices[0].finish_reason) == ("one two ", "stop")


def test_anthropic_count_tokens_endpoint(claude: anthropic.Anthropic) -> None:
    counted = claude.messages.count_tokens(
        model=SONNET, system=SYSTEM_8K, messages=[{"role": "user", "content": "hello"}]
    )
    assert counted.input_tokens == 2002


# --------------------------------------------------------------------------- diagnostics


def test_anthropic_cache_diagnostics(claude: anthropic.Anthropic) -> None:
    def call(system: str, previous: str | None, model: str = SONNET) -> anthropic.types.Message:
        return claude.messages.create(
            model=model,
            max_tokens=10,
            system=cached_system(system),
            messages=[{"role": "user", "content": "hi"}],
            diagnostics={"previous_message_id": previous},
        )

    first = call(SYSTEM_8K, None)
    assert first.diagnostics is None
    same = call(SYSTEM_8K, first.id)
    assert same.diagnostics is None
    changed = call("t" * 8000, same.id)
    reason = changed.diagnostics.cache_miss_reason
    assert (reason.type, reason.cache_missed_input_tokens) == ("system_changed", 2000)
    other_model = call("t" * 8000, changed.id, model="claude-opus-4-1")
    assert other_model.diagnostics.cache_miss_reason.type == "model_changed"
    missing = call(SYSTEM_8K, "msg_unknown")
    assert missing.diagnostics.cache_miss_reason.type == "previous_message_not_found"


# --------------------------------------------------------------------------- errors


def test_openai_errors_map_to_sdk_exceptions(sim: Simulator, oai: openai.OpenAI) -> None:
    sim.enqueue(Reply.error(429, retry_after=2), Reply.error(500))
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.RateLimitError) as rate:
        oai.chat.completions.create(model="gpt-4o", messages=messages)
    assert rate.value.response.headers["retry-after"] == "2"
    assert rate.value.body["code"] == "rate_limit_exceeded"
    with pytest.raises(openai.InternalServerError) as server:
        oai.responses.create(model="gpt-4o", input="hi")
    assert server.value.body["type"] == "server_error"
    assert sim.request_count == 2


def test_anthropic_errors_map_to_sdk_exceptions(sim: Simulator, claude: anthropic.Anthropic) -> None:
    sim.enqueue(Reply.error(429), Reply.error(529), Reply.error(500))
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(anthropic.RateLimitError) as rate:
        claude.messages.create(model=SONNET, max_tokens=10, messages=messages)
    assert rate.value.response.headers["retry-after"] == "1"
    assert rate.value.body["error"]["type"] == "rate_limit_error"
    with pytest.raises(anthropic.OverloadedError) as overloaded:
        claude.messages.create(model=SONNET, max_tokens=10, messages=messages)
    assert overloaded.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
        "request_id": overloaded.value.response.headers["request-id"],
    }
    with pytest.raises(anthropic.InternalServerError):
        claude.messages.create(model=SONNET, max_tokens=10, messages=messages)


def test_anthropic_stream_error_event_midway(sim: Simulator, claude: anthropic.Anthropic) -> None:
    sim.enqueue(Reply.stream_error(after_chunks=5))
    seen = []
    with pytest.raises(anthropic.APIStatusError) as failure:  # noqa: PT012 - the failure comes from iterating
        for event in claude.messages.create(
            model=SONNET, max_tokens=100, messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            seen.append(event.type)
    # five events were sent; the SDK drops the ping
    assert seen == ["message_start", "content_block_start", "content_block_delta", "content_block_delta"]
    assert failure.value.body["error"]["type"] == "overloaded_error"


def test_openai_stream_dropped_midway_raises(sim: Simulator, oai: openai.OpenAI) -> None:
    sim.enqueue(Reply.stream_error(after_chunks=3))
    seen = 0
    with pytest.raises(openai.APIConnectionError):  # noqa: PT012 - the failure comes from iterating
        for _chunk in oai.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            seen += 1
    assert seen == 3
    # the connection pool recovers: the next call works
    assert oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}]).id


def test_openai_stream_error_event_raises_api_error(sim: Simulator, oai: openai.OpenAI) -> None:
    sim.enqueue(Reply.stream_error(after_chunks=2, mode="event", status=500))
    stream = oai.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    with pytest.raises(openai.APIError, match="server had an error"):
        list(stream)


def test_responses_stream_error_event(sim: Simulator, oai: openai.OpenAI) -> None:
    sim.enqueue(Reply.stream_error(after_chunks=5, mode="event", status=500))
    with oai.responses.stream(model="gpt-4.1", input="hi") as stream:
        kinds = [event.type for event in stream]
        with pytest.raises(RuntimeError, match=r"response\.completed"):
            stream.get_final_response()
    assert kinds[-2:] == ["response.output_text.delta", "error"]


# --------------------------------------------------------------------------- scripting and bookkeeping


def test_script_drives_an_agent_loop(sim: Simulator, oai: openai.OpenAI) -> None:
    def script(request: SimRequest) -> Reply:
        messages = request.body["messages"]
        if messages[-1]["role"] == "tool":
            return Reply.text("done")
        return Reply.tool_call("read_file", {"path": "a.txt"})

    sim.script(script)
    messages: list[dict] = [{"role": "user", "content": "read a.txt"}]
    for _ in range(3):
        message = oai.chat.completions.create(model="gpt-4o", messages=messages).choices[0].message
        if not message.tool_calls:
            break
        messages.append(message.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "contents"})
    assert message.content == "done"
    assert sim.request_count == 2


def test_queue_is_fifo_across_providers_and_reset_clears_everything(
    sim: Simulator, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    assert sim.request_count == 0
    sim.enqueue(Reply.text("first"), Reply.text("second"))
    assert (
        claude.messages.create(model=SONNET, max_tokens=9, messages=[{"role": "user", "content": "a"}])
        .content[0]
        .text
        == "first"
    )
    assert (
        oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "a"}])
        .choices[0]
        .message.content
        == "second"
    )
    assert [r.provider for r in sim.requests] == ["anthropic", "openai"]
    sim.enqueue(Reply.text("left over"))
    sim.reset()
    assert (sim.request_count, sim.queued) == (0, 0)


def test_settings_bound_history_and_override_cache_minimums() -> None:
    with (
        Simulator(keep_requests=2, min_cache_tokens={"sonnet": 100}, default_output_tokens=3) as sim,
        anthropic.Anthropic(base_url=sim.url, api_key="sim", max_retries=0) as client,
    ):
        sim.enqueue(Reply.default(7))
        sizes = []
        for _ in range(3):
            message = client.messages.create(
                model=SONNET,
                max_tokens=100,
                system=cached_system("s" * 400),  # 100 tokens: cacheable only with the override
                messages=[{"role": "user", "content": "hi"}],
            )
            sizes.append((message.usage.output_tokens, message.usage.cache_read_input_tokens))
        assert sizes == [(7, 0), (3, 100), (3, 100)]
        assert (sim.request_count, len(sim.requests)) == (3, 2)


def test_concurrent_calls_are_all_recorded(sim: Simulator, oai: openai.OpenAI) -> None:
    def worker() -> None:
        for _ in range(10):
            oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sim.request_count == 80


async def test_async_openai_stream(sim: Simulator) -> None:
    sim.enqueue(Reply.text("async!"))
    async with openai.AsyncOpenAI(base_url=sim.openai_base_url, api_key="sim", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "async!"
    assert chunks[-1].usage.completion_tokens == 2


async def test_async_anthropic_stream(sim: Simulator) -> None:
    async with (
        anthropic.AsyncAnthropic(base_url=sim.url, api_key="sim", max_retries=0) as client,
        client.messages.stream(
            model=SONNET, max_tokens=100, system=cached_system(), messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        final = await stream.get_final_message()
    assert final.usage.cache_creation_input_tokens == 2000
    assert final.usage.output_tokens == 20


def test_cli_serves_and_prints_its_url() -> None:
    repo = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_llm.sim", "--port", "0", "--output-tokens", "3"],
        cwd=repo,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("otel-llm simulator listening on http://127.0.0.1:")
        url = line.split()[-1]
        with openai.OpenAI(base_url=url + "/v1", api_key="sim", max_retries=0) as client:
            result = client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
            )
        assert result.usage.completion_tokens == 3
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
        process.stdout.close()
