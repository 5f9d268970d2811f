"""How a stream's span ends when its consumer stops: a generator closed early
(``GeneratorExit``) is not an error; a cancelled asyncio consumer is."""

from __future__ import annotations

import asyncio

import openai
import pytest
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.trace import StatusCode

from otel_llm import attributes as attrs
from otel_llm import tasks
from otel_llm.instrumentation.openai import OpenAIInstrumentor
from otel_llm.sim import Reply, Simulator

TEXT = "abcdefghijklmnopqrstuvwxyz0123456789"  # 36 characters: 9 chunks of one token


@pytest.fixture
def instrumented(spans):
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=spans.tracer_provider, meter_provider=spans.meter_provider)
    yield spans
    instrumentor.uninstrument()


def _chat(pipeline):
    (span,) = [s for s in pipeline.spans() if s.name.startswith("chat ")]
    return span


def test_a_generator_over_a_with_block_closed_early_ends_the_span_cleanly(instrumented, sim):
    client = openai.OpenAI(base_url=sim.openai_base_url, api_key="sk-test", max_retries=0)
    sim.enqueue(Reply.text(TEXT))

    def deltas():
        with client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "go"}], stream=True
        ) as stream:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content

    gen = deltas()
    seen = next(gen) + next(gen)
    gen.close()  # GeneratorExit inside the with block
    span = _chat(instrumented)
    assert span.status.status_code is StatusCode.UNSET
    assert "error.type" not in span.attributes
    # No usage chunk arrived: the output seen so far, estimated (and charged).
    assert span.attributes[attrs.USAGE_ESTIMATED] is True
    assert span.attributes[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] == len(seen) // 4


async def test_a_cancelled_asyncio_consumer_is_recorded_as_the_spans_error(instrumented):
    with Simulator(per_token=0.05) as slow:
        client = openai.AsyncOpenAI(base_url=slow.openai_base_url, api_key="sk-test", max_retries=0)
        slow.enqueue(Reply.text(TEXT))
        first = asyncio.Event()

        async def consume() -> None:
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "go"}], stream=True
            )
            async for _ in stream:
                first.set()

        with tasks.task("cancelled") as task:
            consumer = asyncio.create_task(consume())
            await first.wait()
            consumer.cancel()
            with pytest.raises(asyncio.CancelledError):
                await consumer
        await client.close()
    span = _chat(instrumented)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "CancelledError"
    # It was sent and partly answered: a model call of the task, with what arrived.
    assert task.summary().iterations == 1
    assert span.attributes[attrs.USAGE_ESTIMATED] is True
