"""What a span says about a model call, whichever instrumentation wrote it.

otel-llm's own spans follow the GenAI semantic conventions and carry their cost.
Others (traceloop/openllmetry, OpenLIT, the contrib instrumentations, other languages,
the Anthropic SDK's own spans) use older or vendor names for the same counts; the names
read here are the ones ``0002_llm_calls.sql`` maps, first non-empty wins, so the
collector and the ``llm_calls`` table agree on every call.

Values are the strings of :class:`~otel_llm.storage.records.SpanRecord` attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from otel_llm import attributes as attrs
from otel_llm import pricing
from otel_llm.numbers import finite_nonneg
from otel_llm.pricing import Cost
from otel_llm.storage.records import attribute_str
from otel_llm.usage import Usage

__all__ = [
    "INPUT_TOKEN_KEYS",
    "is_inference",
    "is_tool",
    "model_of",
    "price_span",
    "provider_of",
    "recorded_cost",
    "usage_of",
]

INPUT_TOKEN_KEYS = (gen_ai.GEN_AI_USAGE_INPUT_TOKENS, "gen_ai.usage.prompt_tokens", "llm.usage.prompt_tokens")
_OUTPUT_KEYS = (
    gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS,
    "gen_ai.usage.completion_tokens",
    "llm.usage.completion_tokens",
)
_CACHE_READ_KEYS = (
    gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    "gen_ai.usage.cache_read_input_tokens",
    "llm.usage.cache_read_input_tokens",
    "gen_ai.usage.input_tokens_details.cached",
)
_CACHE_WRITE_KEYS = (
    gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    "gen_ai.usage.cache_creation_input_tokens",
    "gen_ai.usage.cache_write.input_tokens",
    "llm.usage.cache_creation_input_tokens",
)
_REASONING_KEYS = (gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, "gen_ai.usage.reasoning_tokens")
_MODEL_KEYS = (gen_ai.GEN_AI_RESPONSE_MODEL, gen_ai.GEN_AI_REQUEST_MODEL)
_PROVIDER_KEYS = (gen_ai.GEN_AI_PROVIDER_NAME, "gen_ai.system")
_TOOL_OPERATION = gen_ai.GenAiOperationNameValues.EXECUTE_TOOL.value


def _first(attributes: Mapping[str, str], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = attributes.get(key)
        if value:
            return value
    return ""


def _count(attributes: Mapping[str, str], keys: tuple[str, ...]) -> int:
    text = _first(attributes, keys)
    if not text:
        return 0
    value = finite_nonneg(text)
    return 0 if value is None else int(value)


def is_inference(attributes: Mapping[str, str]) -> bool:
    """A model call: the span reports input tokens under one of the known names (task
    spans report their totals under ``otel_llm.task.usage.*``, so never match)."""
    return any(key in attributes for key in INPUT_TOKEN_KEYS)


def is_tool(name: str, attributes: Mapping[str, str]) -> bool:
    return name.startswith("execute_tool") or attributes.get(gen_ai.GEN_AI_OPERATION_NAME) == _TOOL_OPERATION


def provider_of(attributes: Mapping[str, str]) -> str:
    return _first(attributes, _PROVIDER_KEYS).lower()


def model_of(attributes: Mapping[str, str]) -> str:
    return _first(attributes, _MODEL_KEYS)


def usage_of(attributes: Mapping[str, str]) -> Usage:
    """The call's usage, input made inclusive of cache reads and writes where the
    instrumentation reported it without them (OpenLIT's Anthropic spans: input smaller
    than the cache counts cannot be inclusive)."""
    raw_input = _count(attributes, INPUT_TOKEN_KEYS)
    read = _count(attributes, _CACHE_READ_KEYS)
    write = _count(attributes, _CACHE_WRITE_KEYS)
    write_5m = _count(attributes, (attrs.USAGE_CACHE_CREATION_5M_INPUT_TOKENS,))
    write_1h = _count(attributes, (attrs.USAGE_CACHE_CREATION_1H_INPUT_TOKENS,))
    if not (write_5m or write_1h):
        write_5m = write  # no TTL split reported: the API default TTL is 5 minutes
    inclusive = raw_input if raw_input >= read + write else raw_input + read + write
    return Usage(
        input_tokens=inclusive,
        output_tokens=_count(attributes, _OUTPUT_KEYS),
        cache_read_input_tokens=read,
        cache_creation_input_tokens=write,
        cache_creation_5m_input_tokens=write_5m,
        cache_creation_1h_input_tokens=write_1h,
        reasoning_output_tokens=_count(attributes, _REASONING_KEYS),
    )


def recorded_cost(attributes: Mapping[str, str]) -> float | None:
    """The cost the instrumentation put on the span (``otel_llm.cost.usd``), if any and
    believable: NaN, infinite or negative is no cost (the span is priced from its usage),
    or it would switch off every dollar limit it is added to."""
    text = attributes.get(attrs.COST_USD)
    if not text:
        return None
    return finite_nonneg(text)


def price_span(attributes: dict[str, str], usage: Usage, start_ns: int) -> Cost | None:
    """Price the call with the agent side's pricing and add the ``otel_llm.cost.*``
    attributes to ``attributes``; None (nothing added) when the model has no price."""
    model = model_of(attributes)
    provider = provider_of(attributes) or None
    when = datetime.fromtimestamp(start_ns / 1e9, UTC) if start_ns else None
    cost = pricing.price(usage, model or None, provider, timestamp=when)
    if cost is None:
        return None
    for key, value in cost.span_attributes().items():
        attributes[key] = attribute_str(value)
    return cost
