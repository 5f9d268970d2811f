"""OpenTelemetry instrumentation of LiteLLM: tokens, prompt-cache reads and writes, cost
and latency of every model call LiteLLM makes, and the budget guard before each one.

Usage
-----
With no code change::

    opentelemetry-instrument python agent.py      # entry point ``otel_llm_litellm``

or in code::

    from otel_llm.instrumentation.litellm import LiteLLMInstrumentor

    LiteLLMInstrumentor().instrument(tracer_provider=..., meter_provider=...)
    ...
    LiteLLMInstrumentor().uninstrument()

What is instrumented
--------------------
``litellm.completion`` / ``acompletion`` (``stream=True`` too), ``embedding`` /
``aembedding`` and ``responses`` / ``aresponses`` (streams too), and so the ``Router``'s
calls, which go through them: every deployment the Router tries is its own call, so a
retry or a fallback to another model shows as a separate span (the first one with its
``error.type``), and each one passes the budget guard before it is sent. Each call is one
CLIENT span ``{operation} {model}`` under the span contract of ``DESIGN.md``:
``gen_ai.provider.name`` and ``gen_ai.request.model`` are the provider and model LiteLLM
resolved (``anthropic/claude-sonnet-5-5`` -> ``anthropic``, ``claude-sonnet-5-5``), usage
comes from LiteLLM's response (cache reads and writes included, with the 5m/1h split where
the provider gives it) and cost from otel-llm's pricing (``genai-prices``), not from
LiteLLM's own price map.

Streams end their span exactly once: when consumed, on an error while reading, on
``close()`` / ``aclose()`` or leaving a ``with`` block, or when dropped unfinished.
Usage of a chat stream: LiteLLM keeps the usage of providers that always stream it
(Anthropic) even when the caller did not ask for it, and the span reads it there. An
OpenAI model streams usage only with ``stream_options={"include_usage": True}``: when the
call's task has a dollar or token limit (or with ``OTEL_LLM_OPENAI_STREAM_USAGE=true``),
otel-llm adds it to a stream that did not set ``stream_options.include_usage`` either way,
reads the usage-only chunk and does not hand it to your code. Otherwise the span carries
an estimate (the input estimate plus the output seen at four characters a token) with
``otel_llm.usage.estimated=true``; it is priced and counted like any other usage, never as
free.

One span per call
-----------------
LiteLLM reaches OpenAI models through the OpenAI SDK's low-level ``post`` (or, for some
surfaces, the SDK's resources) and Anthropic models through its own HTTP client. While a
LiteLLM call runs, the OpenAI and Anthropic instrumentations of otel-llm leave the SDK call
inside it to the LiteLLM span, so a call is counted once. A LiteLLM function that LiteLLM
calls from inside another (``completion_with_retries``, the Responses-to-chat bridge) is
part of the outer call's span.

A call LiteLLM refuses itself before sending anything (an unknown provider, a missing key:
LiteLLM raises the OpenAI SDK's error classes with a placeholder request to ``litellm.ai``)
is not a model call: its span says ``otel_llm.call.sent=false``, it is no iteration of its
task and no error (see ``otel_llm.instrumentation.inference``).

Content is recorded only with ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``
(or ``instrument(capture_content=True)``); API keys never are.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from otel_llm.instrumentation.inference import Telemetry
from otel_llm.instrumentation.litellm.package import _instruments
from otel_llm.instrumentation.patching import Patch, ProviderInstrumentor, Wrapper

__all__ = ["LiteLLMInstrumentor"]

_PATCH_MODULE = "otel_llm.instrumentation.litellm.patch"


def _lazy(name: str) -> Callable[[Telemetry], Wrapper]:
    # The patch module imports LiteLLM's dependencies' readers; import it only when
    # instrumenting, so loading the entry point without litellm installed stays harmless.
    def make_wrapper(telemetry: Telemetry) -> Wrapper:
        return getattr(import_module(_PATCH_MODULE), name)(telemetry)

    return make_wrapper


class LiteLLMInstrumentor(ProviderInstrumentor):
    """Instruments LiteLLM (see the module docstring)."""

    _dependencies = _instruments
    _patches = tuple(
        Patch("litellm", name, _lazy(name))
        for name in ("completion", "acompletion", "embedding", "aembedding", "responses", "aresponses")
    )
