"""What a LiteLLM call says before it is sent and after it returns.

- :func:`target`: the provider and model LiteLLM resolves a request to
  (``litellm.get_llm_provider``: ``"anthropic/claude-sonnet-5-5"`` -> ``anthropic``,
  ``claude-sonnet-5-5``), as ``gen_ai.provider.name`` values, and the server it goes to.
- :func:`usage_of`: LiteLLM's ``Usage`` as our :class:`~otel_llm.usage.Usage`. LiteLLM
  normalises every provider to the OpenAI shape: ``prompt_tokens`` includes cache reads
  and writes (for Anthropic too), reads are ``cache_read_input_tokens`` or
  ``prompt_tokens_details.cached_tokens``, writes ``cache_creation_input_tokens`` with the
  5m/1h split under ``prompt_tokens_details.cache_creation_token_details``.
- ``record_*``: a response handed to the call (model, id, finish reasons, usage, and
  the output messages when content capture is on).

Everything here reads objects or plain dicts alike (:func:`~otel_llm.fields.field`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from otel_llm.fields import field
from otel_llm.instrumentation.inference import InferenceCall
from otel_llm.instrumentation.openai import messages
from otel_llm.usage import Usage

__all__ = [
    "Target",
    "chat_tool_calls",
    "record_chat",
    "record_embeddings",
    "record_responses",
    "responses_finish_reason",
    "responses_tool_calls",
    "target",
    "usage_of",
]

_P = gen_ai.GenAiProviderNameValues
# LiteLLM's provider names -> gen_ai.provider.name; names not listed are kept as they are.
PROVIDERS: Mapping[str, str] = {
    "openai": _P.OPENAI.value,
    "text-completion-openai": _P.OPENAI.value,
    "anthropic": _P.ANTHROPIC.value,
    "azure": _P.AZURE_AI_OPENAI.value,
    "azure_text": _P.AZURE_AI_OPENAI.value,
    "azure_ai": _P.AZURE_AI_INFERENCE.value,
    "bedrock": _P.AWS_BEDROCK.value,
    "vertex_ai": _P.GCP_VERTEX_AI.value,
    "vertex_ai_beta": _P.GCP_VERTEX_AI.value,
    "gemini": _P.GCP_GEMINI.value,
    "mistral": _P.MISTRAL_AI.value,
    "xai": _P.X_AI.value,
    "watsonx": _P.IBM_WATSONX_AI.value,
    "cohere": _P.COHERE.value,
    "cohere_chat": _P.COHERE.value,
    "groq": _P.GROQ.value,
    "deepseek": _P.DEEPSEEK.value,
    "perplexity": _P.PERPLEXITY.value,
}

# Where a provider's SDK (or LiteLLM) sends a request when no ``api_base`` is given.
_BASE_ENV: Mapping[str, tuple[str, ...]] = {
    "openai": ("OPENAI_BASE_URL", "OPENAI_API_BASE"),
    "anthropic": ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_BASE"),
}
_DEFAULT_HOSTS: Mapping[str, str] = {"openai": "api.openai.com", "anthropic": "api.anthropic.com"}


@dataclass(frozen=True, slots=True)
class Target:
    """Where LiteLLM sends a call."""

    provider: str
    """``gen_ai.provider.name`` (``openai``, ``anthropic``, ``aws.bedrock``, ...)."""
    model: str | None
    """The model as the provider knows it (``claude-sonnet-5-5``, no ``anthropic/``)."""
    server_address: str | None = None
    server_port: int | None = None


# (model, custom_llm_provider, api_base) -> (litellm provider, model, api_base it resolved);
# bounded, cleared when full. The API key get_llm_provider also returns is never kept.
_resolved: dict[tuple[Any, Any, Any], tuple[str, str, str | None]] = {}
_servers: dict[str, tuple[str | None, int | None]] = {}
_CACHE_SIZE = 512


def _resolve(model: str, custom: Any, api_base: Any) -> tuple[str, str, str | None]:
    key = (model, custom, api_base)
    hit = _resolved.get(key)
    if hit is not None:
        return hit
    import litellm  # already imported: this runs inside a wrapped litellm function

    resolved_model, provider, _key, base = litellm.get_llm_provider(
        model=model,
        custom_llm_provider=custom if isinstance(custom, str) else None,
        api_base=api_base if isinstance(api_base, str) else None,
    )
    del _key
    hit = (provider, resolved_model, base)
    if len(_resolved) >= _CACHE_SIZE:
        _resolved.clear()
    _resolved[key] = hit
    return hit


def _server(base: str | None, provider: str) -> tuple[str | None, int | None]:
    if not base:
        for name in _BASE_ENV.get(provider, ()):
            base = os.environ.get(name)
            if base:
                break
        else:
            return _DEFAULT_HOSTS.get(provider), None
    hit = _servers.get(base)
    if hit is None:
        try:
            parts = urlsplit(base)
            hit = (parts.hostname, parts.port)
        except ValueError:
            hit = (None, None)
        if len(_servers) >= _CACHE_SIZE:
            _servers.clear()
        _servers[base] = hit
    return hit


def target(model: Any, kwargs: Mapping[str, Any]) -> Target:
    """The provider, model and server of a call to ``model`` with ``kwargs``. A model
    LiteLLM cannot resolve (it will refuse the call itself) keeps its own name and the
    provider ``litellm``."""
    if not isinstance(model, str) or not model:
        return Target("litellm", None)
    api_base = kwargs.get("api_base") or kwargs.get("base_url")
    try:
        provider, resolved_model, base = _resolve(model, kwargs.get("custom_llm_provider"), api_base)
    except Exception:
        return Target("litellm", model)
    host, port = _server(api_base if isinstance(api_base, str) else base, provider)
    return Target(PROVIDERS.get(provider, provider), resolved_model, host, port)


def _int(value: Any) -> int:
    if type(value) is int:
        return value
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def usage_of(usage: Any) -> Usage:
    """LiteLLM's ``Usage`` (chat completions, any provider) as a :class:`Usage`."""
    prompt = _int(field(usage, "prompt_tokens"))
    details = field(usage, "prompt_tokens_details")
    read = _int(field(usage, "cache_read_input_tokens")) or _int(field(details, "cached_tokens"))
    write = (
        _int(field(usage, "cache_creation_input_tokens"))
        or _int(field(details, "cache_creation_tokens"))
        or _int(field(details, "cache_write_tokens"))
    )
    split = field(details, "cache_creation_token_details")
    write_5m = _int(field(split, "ephemeral_5m_input_tokens"))
    write_1h = _int(field(split, "ephemeral_1h_input_tokens"))
    if write_5m + write_1h != write:
        # No (or an inconsistent) TTL breakdown: the default TTL is 5 minutes.
        write_5m, write_1h = write, 0
    if prompt < read + write:
        # A provider path that reports cached tokens apart from the prompt count.
        prompt += read + write
    reasoning = _int(field(field(usage, "completion_tokens_details"), "reasoning_tokens"))
    return Usage(prompt, _int(field(usage, "completion_tokens")), read, write, write_5m, write_1h, reasoning)


def chat_tool_calls(response: Any) -> int:
    """How many tool calls a chat completion asks for (over all choices)."""
    count = 0
    for choice in field(response, "choices") or ():
        calls = field(field(choice, "message"), "tool_calls")
        if calls:
            count += len(calls)
    return count


def record_chat(call: InferenceCall, response: Any, capture: bool) -> None:
    """A ``ModelResponse`` (``completion`` / ``acompletion``) handed to ``call``."""
    usage = field(response, "usage")
    attributes = None
    if capture:
        output = messages.chat_output_messages(messages.chat_choices(response))
        attributes = {gen_ai.GEN_AI_OUTPUT_MESSAGES: output}
    finish = [reason for c in field(response, "choices") or () if (reason := field(c, "finish_reason"))]
    call.set_response(
        model=field(response, "model"),
        response_id=field(response, "id"),
        finish_reasons=finish,
        usage=usage_of(usage) if usage is not None else None,
        attributes=attributes,
        tool_calls=chat_tool_calls(response),
    )


def record_embeddings(call: InferenceCall, response: Any, capture: bool) -> None:
    """An ``EmbeddingResponse`` (``embedding`` / ``aembedding``) handed to ``call``."""
    usage = field(response, "usage")
    call.set_response(
        model=field(response, "model"),
        usage=Usage(input_tokens=_int(field(usage, "prompt_tokens"))) if usage is not None else None,
    )


_INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}


def responses_finish_reason(response: Any) -> str | None:
    """A chat-style finish reason of a Responses API object; ``None`` while it runs."""
    status = field(response, "status")
    if status == "completed":
        for item in field(response, "output") or ():
            if field(item, "type") == "function_call":
                return "tool_calls"
        return "stop"
    if status == "incomplete":
        reason = field(field(response, "incomplete_details"), "reason")
        return _INCOMPLETE_REASONS.get(reason, reason or "incomplete")
    if status in ("failed", "cancelled"):
        return "error" if status == "failed" else "cancelled"
    return None


def responses_tool_calls(response: Any) -> int:
    """How many function calls a Responses API object asks for."""
    return sum(1 for item in field(response, "output") or () if field(item, "type") == "function_call")


def record_responses(call: InferenceCall, response: Any, capture: bool) -> None:
    """A ``ResponsesAPIResponse`` (``responses`` / ``aresponses``) handed to ``call``."""
    finish = responses_finish_reason(response)
    usage = field(response, "usage")
    attributes = None
    if capture and finish is not None:
        attributes = {gen_ai.GEN_AI_OUTPUT_MESSAGES: messages.responses_output_messages(response, finish)}
    call.set_response(
        model=field(response, "model"),
        response_id=field(response, "id"),
        finish_reasons=[finish] if finish else None,
        usage=Usage.from_openai_responses(usage) if usage is not None else None,
        attributes=attributes,
        tool_calls=responses_tool_calls(response),
    )
