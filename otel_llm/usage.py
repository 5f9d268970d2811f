"""One normalized usage record for every provider.

``Usage.input_tokens`` counts *all* input tokens, cached ones included, as the
GenAI semantic conventions define ``gen_ai.usage.input_tokens``. Anthropic reports
``input_tokens`` without the cache, so its builder adds cache reads and writes back in;
OpenAI already reports the inclusive count.

The builders accept the SDKs' pydantic models or plain dicts (raw JSON), so the agent
side and the collector side build the record the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from otel_llm import attributes as attrs
from otel_llm.fields import field

__all__ = ["TASK_USAGE_PREFIX", "Usage"]

TASK_USAGE_PREFIX = attrs.TASK_USAGE_PREFIX
"""Namespace of token totals on spans that sum many calls (task spans)."""


def _int(value: Any) -> int:
    if type(value) is int:  # the usual case, first: no union or bool checks
        return value
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one model call (or, summed, of many)."""

    input_tokens: int = 0
    """All input tokens, cache reads and cache writes included."""
    output_tokens: int = 0
    """All output tokens, reasoning included."""
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    """All cache-write tokens; the 5m/1h split below, where the provider reports it."""
    cache_creation_5m_input_tokens: int = 0
    cache_creation_1h_input_tokens: int = 0
    reasoning_output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        # Field by field, not a loop over dataclasses.fields(): a task adds every call.
        return _usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            self.cache_creation_5m_input_tokens + other.cache_creation_5m_input_tokens,
            self.cache_creation_1h_input_tokens + other.cache_creation_1h_input_tokens,
            self.reasoning_output_tokens + other.reasoning_output_tokens,
        )

    @property
    def uncached_input_tokens(self) -> int:
        """Input tokens billed at the plain input price."""
        return max(self.input_tokens - self.cache_read_input_tokens - self.cache_creation_input_tokens, 0)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    # -- builders ------------------------------------------------------------------

    @classmethod
    def from_anthropic(cls, usage: Any) -> Usage:
        """From an Anthropic ``Usage`` / ``MessageDeltaUsage`` (model or dict)."""
        if hasattr(usage, "output_tokens"):
            # An SDK model (a mapping has no such attribute): plain attribute reads, no
            # ABC check or per-field helper (every call's response comes through here).
            uncached = _int(getattr(usage, "input_tokens", None))
            output = _int(usage.output_tokens)
            read = _int(getattr(usage, "cache_read_input_tokens", None))
            write = _int(getattr(usage, "cache_creation_input_tokens", None))
            split = getattr(usage, "cache_creation", None)
            details = getattr(usage, "output_tokens_details", None)
        else:
            get = usage.get
            uncached = _int(get("input_tokens"))
            output = _int(get("output_tokens"))
            read = _int(get("cache_read_input_tokens"))
            write = _int(get("cache_creation_input_tokens"))
            split = get("cache_creation")
            details = get("output_tokens_details")
        if split is None:
            # No TTL breakdown: the API default TTL is 5 minutes.
            write_5m, write_1h = write, 0
        elif isinstance(split, dict):
            write_5m = _int(split.get("ephemeral_5m_input_tokens"))
            write_1h = _int(split.get("ephemeral_1h_input_tokens"))
        else:
            write_5m = _int(getattr(split, "ephemeral_5m_input_tokens", None))
            write_1h = _int(getattr(split, "ephemeral_1h_input_tokens", None))
        reasoning = 0
        if details is not None:
            # The Messages API names it ``thinking_tokens``; ``reasoning_tokens`` is kept
            # for gateways that report it the OpenAI way.
            reasoning = _int(field(details, "thinking_tokens")) or _int(field(details, "reasoning_tokens"))
        return _usage(
            uncached + read + write,
            output,
            read,
            write,
            write_5m,
            write_1h,
            reasoning,
        )

    @classmethod
    def from_openai_chat(cls, usage: Any) -> Usage:
        """From an OpenAI ``CompletionUsage`` (chat completions, legacy completions)."""
        return cls._from_openai(usage, "prompt_tokens", "completion_tokens")

    @classmethod
    def from_openai_responses(cls, usage: Any) -> Usage:
        """From an OpenAI Responses API ``ResponseUsage``."""
        return cls._from_openai(usage, "input_tokens", "output_tokens")

    @classmethod
    def _from_openai(cls, usage: Any, input_name: str, output_name: str) -> Usage:
        """Both OpenAI usage shapes: input and output counts, each with a ``*_details``
        object (cached and cache-write input tokens, reasoning output tokens)."""
        input_details = field(usage, input_name + "_details")
        output_details = field(usage, output_name + "_details")
        read = write = reasoning = 0
        if input_details is not None:
            read = _int(field(input_details, "cached_tokens"))
            write = _int(field(input_details, "cache_write_tokens"))
        if output_details is not None:
            reasoning = _int(field(output_details, "reasoning_tokens"))
        return _usage(
            _int(field(usage, input_name)),
            _int(field(usage, output_name)),
            read,
            write,
            0,
            0,
            reasoning,
        )

    @classmethod
    def from_openai_embeddings(cls, usage: Any) -> Usage:
        """From an OpenAI embeddings ``Usage`` (input only)."""
        return cls(input_tokens=_int(field(usage, "prompt_tokens")))

    @classmethod
    def from_span_attributes(cls, attributes: Mapping[str, Any]) -> Usage:
        """From the attributes of an inference span written under our contract."""
        return cls(
            input_tokens=_int(attributes.get(gen_ai.GEN_AI_USAGE_INPUT_TOKENS)),
            output_tokens=_int(attributes.get(gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS)),
            cache_read_input_tokens=_int(attributes.get(gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)),
            cache_creation_input_tokens=_int(attributes.get(gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS)),
            cache_creation_5m_input_tokens=_int(attributes.get(attrs.USAGE_CACHE_CREATION_5M_INPUT_TOKENS)),
            cache_creation_1h_input_tokens=_int(attributes.get(attrs.USAGE_CACHE_CREATION_1H_INPUT_TOKENS)),
            reasoning_output_tokens=_int(attributes.get(gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS)),
        )

    def span_attributes(self, into: dict[str, Any] | None = None) -> dict[str, Any]:
        """The span attributes this record maps to (zero split counts left out), added to
        ``into`` when given (the call's one attribute dict), else to a new dict."""
        out: dict[str, Any] = {} if into is None else into
        out[gen_ai.GEN_AI_USAGE_INPUT_TOKENS] = self.input_tokens
        out[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] = self.output_tokens
        out[gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = self.cache_read_input_tokens
        out[gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = self.cache_creation_input_tokens
        out[gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = self.reasoning_output_tokens
        if self.cache_creation_5m_input_tokens or self.cache_creation_1h_input_tokens:
            out[attrs.USAGE_CACHE_CREATION_5M_INPUT_TOKENS] = self.cache_creation_5m_input_tokens
            out[attrs.USAGE_CACHE_CREATION_1H_INPUT_TOKENS] = self.cache_creation_1h_input_tokens
        return out

    def total_attributes(self) -> dict[str, int]:
        """The same counts as :meth:`span_attributes` under ``otel_llm.task.usage.*``, for
        spans that sum many calls: a backend adding ``gen_ai.usage.*`` over all spans
        must not count a call twice (once on its own span, once in its task's total)."""
        items = self.span_attributes().items()
        return {TASK_USAGE_PREFIX + key.split(".usage.", 1)[1]: value for key, value in items}


# The records every model call builds (its usage, its task's new total) are built by
# setting each slot through its descriptor: a frozen dataclass's own ``__init__`` goes
# through ``object.__setattr__`` per field, about three times slower, and that showed as
# several microseconds a call.
_new = object.__new__
(
    _set_input,
    _set_output,
    _set_read,
    _set_write,
    _set_write_5m,
    _set_write_1h,
    _set_reasoning,
) = (Usage.__dict__[f.name].__set__ for f in dataclasses.fields(Usage))


def _usage(
    input_tokens: int,
    output_tokens: int,
    cache_read: int,
    cache_write: int,
    cache_write_5m: int,
    cache_write_1h: int,
    reasoning: int,
) -> Usage:
    """``Usage(...)`` with every field given, in field order."""
    usage = _new(Usage)
    _set_input(usage, input_tokens)
    _set_output(usage, output_tokens)
    _set_read(usage, cache_read)
    _set_write(usage, cache_write)
    _set_write_5m(usage, cache_write_5m)
    _set_write_1h(usage, cache_write_1h)
    _set_reasoning(usage, reasoning)
    return usage
