"""otel_llm.prompt.request_hash on inference spans, from the real OpenAI and Anthropic
SDKs against the provider simulator: equal for the same request, different when
anything that decides the answer differs, blind to delivery options, never the content;
and the repeated_requests query finds the repeats in storage."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import anthropic
import openai
import pytest

from otel_llm import attributes as attrs
from otel_llm import tasks
from otel_llm.instrumentation.anthropic import AnthropicInstrumentor
from otel_llm.instrumentation.openai import OpenAIInstrumentor
from otel_llm.storage import queries
from otel_llm.storage.backend import open_backend
from otel_llm.storage.config import StorageConfig
from otel_llm.storage.migrations import apply_schema
from otel_llm.storage.records import from_readable_span, spans_to_arrow

SECRET = "the launch code is 0000"


@pytest.fixture
def instrumented(pipeline):
    tasks._reset_for_tests()
    tasks.configure(environ={}, tracer_provider=pipeline.tracer_provider)
    both = [OpenAIInstrumentor(), AnthropicInstrumentor()]
    for instrumentor in both:
        instrumentor.instrument(
            tracer_provider=pipeline.tracer_provider, meter_provider=pipeline.meter_provider
        )
    yield pipeline
    for instrumentor in both:
        instrumentor.uninstrument()
    tasks._reset_for_tests()


def hashes(pipeline) -> list[str]:
    spans = sorted(pipeline.spans(), key=lambda s: s.start_time)
    return [s.attributes.get(attrs.PROMPT_REQUEST_HASH) for s in spans if s.name.startswith("chat ")]


def test_openai_chat_and_responses_requests_hash_by_what_decides_the_answer(instrumented, sim) -> None:
    history = [{"role": "system", "content": "be terse"}, {"role": "user", "content": SECRET}]
    with openai.OpenAI(base_url=sim.openai_base_url, api_key="sk-x", max_retries=0) as client:
        client.chat.completions.create(model="gpt-4o", messages=history)
        client.chat.completions.create(model="gpt-4o", messages=list(history), user="someone", timeout=30)
        client.chat.completions.create(model="gpt-4o", messages=history, temperature=0.2)
        client.chat.completions.create(model="gpt-4o-mini", messages=history)
        history.append({"role": "assistant", "content": "ok"})
        client.chat.completions.create(model="gpt-4o", messages=history)
        list(client.chat.completions.create(model="gpt-4o", messages=history, stream=True))
        client.responses.create(model="gpt-4o", input=SECRET)
        client.responses.create(model="gpt-4o", input=SECRET)
    got = hashes(instrumented)
    assert len(got) == 8
    assert all(isinstance(h, str) and len(h) == 32 for h in got)
    assert got[0] == got[1]  # same request; user and timeout do not change the answer
    assert len({got[0], got[2], got[3], got[4]}) == 4  # sampling, model, history each do
    assert got[4] == got[5]  # streamed or not: the same answer
    assert got[6] == got[7]
    for span in instrumented.spans():
        assert SECRET not in str(dict(span.attributes))


def test_anthropic_messages_hash_and_history_items_are_digested_once(instrumented, sim) -> None:
    from otel_llm.instrumentation.anthropic import patch as anthropic_patch

    history = [{"role": "user", "content": SECRET}]
    with anthropic.Anthropic(base_url=sim.anthropic_base_url, api_key="sk-ant-x", max_retries=0) as client:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=history)
        client.messages.create(
            model="claude-sonnet-4-5", max_tokens=64, messages=history, metadata={"user_id": "u"}
        )
        client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=history, system="be terse")
        history.append({"role": "assistant", "content": "ok"})
        history.append({"role": "user", "content": "again"})
        before = len(anthropic_patch._request_digests._items)
        client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=history)
        assert len(anthropic_patch._request_digests._items) == before + 2  # only the new items
    got = hashes(instrumented)
    assert got[0] == got[1]
    assert len({got[0], got[2], got[3]}) == 3


def test_repeated_requests_found_in_storage(instrumented, sim, tmp_path: Path) -> None:
    history = [{"role": "user", "content": "same question"}]
    with openai.OpenAI(base_url=sim.openai_base_url, api_key="sk-x", max_retries=0) as client:
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o", messages=history)
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "other"}])
    backend = open_backend(StorageConfig(path=str(tmp_path / "ch")))
    try:
        apply_schema(backend)
        backend.insert_arrow(
            "otel_traces", spans_to_arrow([from_readable_span(s) for s in instrumented.spans()])
        )
        now = dt.datetime.now(dt.UTC)
        rows = queries.run(backend, "repeated_requests", start=now - dt.timedelta(hours=1), end=now)
    finally:
        backend.close()
    assert [(r["calls"], r["repeats"], r["model"]) for r in rows] == [(3, 2, "gpt-4o")]
    assert rows[0]["request_hash"] == hashes(instrumented)[0]
