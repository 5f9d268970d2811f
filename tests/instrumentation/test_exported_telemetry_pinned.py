"""The exact telemetry of a known call, pinned: every attribute of the inference span and
every metric point, for an OpenAI and an Anthropic call, streamed and not, made the way
``opentelemetry-instrument`` makes them (the automatic process task, no limits). The
per-call path may be rewritten for speed; what it exports may not change."""

from __future__ import annotations

import re

import anthropic
import genai_prices
import openai
import pytest

from otel_llm.instrumentation.anthropic import AnthropicInstrumentor
from otel_llm.instrumentation.openai import OpenAIInstrumentor
from otel_llm.sim import Simulator
from otel_llm.tasks import settings

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PROMPT = "Summarise: the build broke after the dependency upgrade and the retry loop hid it."
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5"}
OUTPUT_TOKENS = 7

# What varies from run to run is checked apart: the task id (random), the simulator's
# port and the time to first chunk.
VARIABLE = ("otel_llm.task.id", "server.port", "gen_ai.response.time_to_first_chunk")

COSTS = {  # USD, genai-prices: gpt-4o-mini 0.15 / 0.60, claude-sonnet-4-5 3 / 15 per Mtok
    "openai": {
        "otel_llm.cost.usd": 7.35e-06,
        "otel_llm.cost.input_usd": 3.15e-06,
        "otel_llm.cost.output_usd": 4.2e-06,
    },
    "anthropic": {
        "otel_llm.cost.usd": 0.000168,
        "otel_llm.cost.input_usd": 6.3e-05,
        "otel_llm.cost.output_usd": 0.000105,
    },
}
# otel_llm.prompt.request_hash of the request above (every argument that decides the answer).
REQUEST_HASHES = {
    "openai": "07e2366f14f6e827e4f14b8f6f254c95",
    "anthropic": "925f41c937b5b336f05eaa1765317df0",
}
RESPONSE_IDS = {"openai": "chatcmpl-sim0000000001", "anthropic": "msg_sim0000000001"}
FINISH = {"openai": ("stop",), "anthropic": ("end_turn",)}


def expected_span(provider: str, stream: bool) -> dict[str, object]:
    model = MODELS[provider]
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.stream": stream,
        "gen_ai.request.model": model,
        "gen_ai.request.max_tokens": 64,
        "server.address": "127.0.0.1",
        "otel_llm.prompt.request_hash": REQUEST_HASHES[provider],
        "otel_llm.task.name": settings.process_name(),
        "otel_llm.task.iteration": 1,
        "otel_llm.budget.state": "ok",
        "gen_ai.response.model": model,
        "gen_ai.response.id": RESPONSE_IDS[provider],
        "gen_ai.response.finish_reasons": FINISH[provider],
        "gen_ai.usage.input_tokens": 21,
        "gen_ai.usage.output_tokens": OUTPUT_TOKENS,
        "gen_ai.usage.cache_read.input_tokens": 0,
        "gen_ai.usage.cache_creation.input_tokens": 0,
        "gen_ai.usage.reasoning.output_tokens": 0,
        **COSTS[provider],
        "otel_llm.price.source": f"genai-prices {genai_prices.__version__}",
    }


def expected_points(provider: str, stream: bool) -> dict[str, list[tuple]]:
    model = MODELS[provider]
    base = (
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.provider.name", provider),
        ("gen_ai.request.model", model),
        ("gen_ai.response.model", model),
    )
    out: dict[str, list[tuple]] = {
        "gen_ai.client.operation.duration": [(base, 1, None, None)],
        "gen_ai.client.token.usage": [
            ((*base, ("gen_ai.token.type", "input")), 1, 21, None),
            ((*base, ("gen_ai.token.type", "output")), 1, OUTPUT_TOKENS, None),
        ],
        "otel_llm.client.cost": [(base, None, None, COSTS[provider]["otel_llm.cost.usd"])],
    }
    if stream:
        out["gen_ai.client.operation.time_to_first_chunk"] = [(base, 1, None, None)]
        out["gen_ai.client.operation.time_per_output_chunk"] = [(base, 1, None, None)]
    return out


def _call(provider: str, stream: bool, url: str) -> None:
    model = MODELS[provider]
    messages = [{"role": "user", "content": PROMPT}]
    if provider == "openai":
        with openai.OpenAI(base_url=url + "/v1", api_key="sk-test", max_retries=0) as client:
            if stream:
                for _ in client.chat.completions.create(
                    model=model,
                    messages=messages,
                    max_tokens=64,
                    stream=True,
                    stream_options={"include_usage": True},
                ):
                    pass
            else:
                client.chat.completions.create(model=model, messages=messages, max_tokens=64)
        return
    with anthropic.Anthropic(base_url=url, api_key="sk-ant-test", max_retries=0) as client:
        if stream:
            for _ in client.messages.create(model=model, messages=messages, max_tokens=64, stream=True):
                pass
        else:
            client.messages.create(model=model, messages=messages, max_tokens=64)


def exported(pipeline, provider: str, stream: bool) -> tuple[dict, dict, int]:
    instrumentor = OpenAIInstrumentor() if provider == "openai" else AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=pipeline.tracer_provider, meter_provider=pipeline.meter_provider)
    try:
        with Simulator(default_output_tokens=OUTPUT_TOKENS) as sim:
            _call(provider, stream, sim.url)
            port = sim.port
    finally:
        instrumentor.uninstrument()
    (span,) = [s for s in pipeline.spans() if s.name.startswith("chat ")]
    points = {
        name: sorted(
            (
                tuple(sorted(p.attributes.items())),
                getattr(p, "count", None),
                getattr(p, "sum", None) if name == "gen_ai.client.token.usage" else None,
                getattr(p, "value", None),
            )
            for p in found
        )
        for name, found in pipeline.metrics().items()
    }
    return dict(span.attributes), points, port


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_known_call_exports_exactly_this_span_and_these_points(pipeline, spans, provider, stream):
    attributes, points, port = exported(pipeline, provider, stream)
    variable = {key: attributes.pop(key) for key in VARIABLE if key in attributes}
    assert attributes == expected_span(provider, stream)
    assert list(attributes) == list(expected_span(provider, stream))  # the same order too
    assert re.fullmatch("[0-9a-f]{32}", variable["otel_llm.task.id"])
    assert variable["server.port"] == port
    if stream:
        assert 0 < variable["gen_ai.response.time_to_first_chunk"] < 30
    else:
        assert "gen_ai.response.time_to_first_chunk" not in variable
    assert points == expected_points(provider, stream)
