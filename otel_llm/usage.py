"""One normalized usage record for every provider.

``Usage.input_tokens`` counts *all* input tokens, cached ones included, as the
GenAI semantic conventions define ``gen_ai.usage.input_tokens``. Anthropic reports
``input_tokens`` without the cache, so its builder adds cache reads and writes back in;
OpenAI already reports the inclusive count.

The builders accept the SDKs' pydantic models or plain dicts (raw JSON), so the agent
side and the collector side build the record the same way.
"""

from __future__ import annotations

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
        return Usage(
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
        if isinstance(usage, Mapping):
            get = usage.get
        else:
            # An SDK model: plain attribute reads, no per-field helper calls (every call's
            # response goes through here).
            def get(name: str) -> Any:
                return getattr(usage, name, None)

        uncached = _int(get("input_tokens"))
        read = _int(get("cache_read_input_tokens"))
        write = _int(get("cache_creation_input_tokens"))
        split = get("cache_creation")
        if split is None:
            # No TTL breakdown: the API default TTL is 5 minutes.
            write_5m, write_1h = write, 0
        else:
            write_5m = _int(field(split, "ephemeral_5m_input_tokens"))
            write_1h = _int(field(split, "ephemeral_1h_input_tokens"))
        details = get("output_tokens_details")
        reasoning = 0
        if details is not None:
            # The Messages API names it ``thinking_tokens``; ``reasoning_tokens`` is kept
            # for gateways that report it the OpenAI way.
            reasoning = _int(field(details, "thinking_tokens")) or _int(field(details, "reasoning_tokens"))
        return cls(
            uncached + read + write, _int(get("output_tokens")), read, write, write_5m, write_1h, reasoning
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
        return cls(
            input_tokens=_int(field(usage, input_name)),
            output_tokens=_int(field(usage, output_name)),
            cache_read_input_tokens=read,
            cache_creation_input_tokens=write,
            reasoning_output_tokens=reasoning,
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

    def span_attributes(self) -> dict[str, int]:
        """The span attributes this record maps to (zero split counts left out)."""
        out = {
            gen_ai.GEN_AI_USAGE_INPUT_TOKENS: self.input_tokens,
            gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS: self.output_tokens,
            gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: self.cache_read_input_tokens,
            gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: self.cache_creation_input_tokens,
            gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: self.reasoning_output_tokens,
        }
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
