"""OpenTelemetry instrumentation of the Anthropic Python SDK.

Usage
-----

Under ``opentelemetry-instrument`` nothing is needed: the ``otel_llm_anthropic`` entry point
loads it. In code::

    from anthropic import Anthropic
    from otel_llm.instrumentation.anthropic import AnthropicInstrumentor

    AnthropicInstrumentor().instrument()   # or (tracer_provider=..., meter_provider=...)
    client = Anthropic()
    client.messages.create(model="claude-sonnet-4-5", max_tokens=1024, messages=[...])
    AnthropicInstrumentor().uninstrument()

Every model call, sync or async, becomes one CLIENT span ``chat {model}`` with tokens,
prompt-cache reads and writes (5m/1h split), cost, time to first chunk, finish reasons and,
when the request asks for ``diagnostics``, Anthropic's cache-miss reason; plus the GenAI
client metrics and the cost counter. Surfaces: ``messages.create`` (``stream=True`` too),
``messages.stream()`` (with ``get_final_message()``, ``until_done()``, ``text_stream``),
``messages.parse()``, the same three on ``beta.messages`` (so beta message threads and tool
runners, which call ``beta.messages.create``), and ``with_raw_response`` /
``with_streaming_response`` of each. ``gen_ai.provider.name`` is ``anthropic``, or
``aws.bedrock`` / ``gcp.vertex_ai`` for the Bedrock and Vertex clients.

A stream's span ends exactly once: when it is read to the end, fails (status ERROR and
``error.type``), is closed, its ``with`` block is left (an exception leaving the block,
``messages.stream()`` included, is the span's error), or it is dropped unfinished (then
with the usage that had arrived).

Message content (``gen_ai.system_instructions``, ``gen_ai.input.messages``,
``gen_ai.output.messages``) is recorded only with
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` (read at ``instrument()``) or
``instrument(capture_content=True)``; API keys and headers never are.

The SDK's own spans
-------------------

The Anthropic SDK traces itself: with a tracer provider registered (or given as
``Anthropic(open_telemetry={"tracer_provider": ...})``) it starts an
``anthropic.messages.create`` span per call that carries the call's usage under its own
names. Two spans with the same usage would make every backend count the call twice, so for
each call this instrumentation traces, the SDK is handed a non-recording span that carries
our span's context instead of starting its own. The SDK records nothing for that call, and
when its trace propagation is on it still sends a ``traceparent`` header, naming our span.
Its other spans (``count_tokens``, batches, files, sessions, ...) are untouched, as is
everything after ``uninstrument()``. ``ANTHROPIC_OPEN_TELEMETRY=false`` (or
``open_telemetry=False``) turns the SDK's spans off altogether; it does not affect ours.

Limits: a ``client.messages.with_raw_response`` / ``with_streaming_response`` object first
used before ``instrument()`` keeps calling the unwrapped method (the SDK caches it). A raw
streamed body read as bytes or lines (``iter_lines()``) rather than through ``parse()`` gives
a span without usage.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from otel_llm.instrumentation.anthropic import patch
from otel_llm.instrumentation.anthropic.package import _instruments
from otel_llm.instrumentation.inference import Telemetry
from otel_llm.instrumentation.patching import Patch, ProviderInstrumentor, Wrapper

__all__ = ["AnthropicInstrumentor"]

_MESSAGES = "anthropic.resources.messages.messages"
_BETA_MESSAGES = "anthropic.resources.beta.messages.messages"
_STREAMING = "anthropic.lib.streaming._messages"
_BETA_STREAMING = "anthropic.lib.streaming._beta_messages"


def _activating(factory: Callable[[Telemetry], Wrapper]) -> Callable[[Telemetry], Wrapper]:
    def make(telemetry: Telemetry) -> Wrapper:
        patch.activate(telemetry)
        return factory(telemetry)

    return make


def _patches() -> tuple[Patch, ...]:
    out: list[Patch] = []
    for module in (_MESSAGES, _BETA_MESSAGES):
        out += [
            Patch(module, "Messages.create", _activating(patch.traced_create(stream_kwarg=True))),
            Patch(module, "Messages.parse", _activating(patch.traced_create(stream_kwarg=False))),
            Patch(module, "Messages.stream", _activating(patch.traced_stream)),
            Patch(module, "AsyncMessages.create", _activating(patch.traced_async_create(stream_kwarg=True))),
            Patch(module, "AsyncMessages.parse", _activating(patch.traced_async_create(stream_kwarg=False))),
            Patch(module, "AsyncMessages.stream", _activating(patch.traced_stream)),
        ]
    for module, prefix in ((_STREAMING, ""), (_BETA_STREAMING, "Beta")):
        for cls, method in (
            (f"{prefix}MessageStreamManager", "__exit__"),
            (f"{prefix}AsyncMessageStreamManager", "__aexit__"),
        ):
            make = patch.manager_exit(f"_{cls}__stream")
            out.append(Patch(module, f"{cls}.{method}", _activating(make)))
    out.append(Patch("anthropic._base_client", "start_api_call_span", _activating(patch.sdk_span)))
    return tuple(out)


class AnthropicInstrumentor(ProviderInstrumentor):
    """Instruments ``anthropic.Anthropic`` / ``AsyncAnthropic`` (and the Bedrock, Vertex
    and other platform clients built on them). ``instrument()`` takes ``tracer_provider``,
    ``meter_provider`` and ``capture_content``."""

    _patches = _patches()
    _dependencies = _instruments

    def _uninstrument(self, **kwargs: Any) -> None:
        patch.activate(None)
        super()._uninstrument(**kwargs)
