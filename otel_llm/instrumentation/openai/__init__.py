"""OpenTelemetry instrumentation of the OpenAI Python SDK: tokens, prompt-cache reads,
cost and latency of every model call.

Usage
-----
With no code change::

    opentelemetry-instrument python agent.py      # entry point ``otel_llm_openai``

or in code::

    from otel_llm.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=..., meter_provider=...)
    ...
    OpenAIInstrumentor().uninstrument()           # every method is the original again

What is instrumented (sync and async clients, ``OpenAI`` and ``AzureOpenAI``)
--------------------------------------------------------------------------------
``chat.completions.create`` / ``parse`` / ``stream``, ``responses.create`` / ``parse`` /
``stream`` / ``retrieve``, ``embeddings.create``, each also through
``with_raw_response`` and ``with_streaming_response``. Each call is one CLIENT span
``{operation} {model}`` (``chat gpt-4o``, ``embeddings text-embedding-3-small``) under the
span contract of ``DESIGN.md``, plus the GenAI client metrics and the cost counter.
``gen_ai.provider.name`` is ``openai``, or ``azure.ai.openai`` for Azure clients.
``gen_ai.usage.input_tokens`` is ``prompt_tokens`` / ``input_tokens`` (cached tokens
included), ``gen_ai.usage.cache_read.input_tokens`` is ``cached_tokens``.

Streams end their span exactly once: when consumed, on an error while reading, on
``close()`` or leaving a ``with`` block (an exception leaving the block is the span's
error; ``GeneratorExit``, a generator reading the stream closed early, is not), or,
for a stream abandoned after ``break``, when it is garbage collected. A
``with_streaming_response`` read as bytes or lines (``iter_lines()``, ``iter_bytes()``,
``read()``) rather than through ``parse()`` ends its span, without usage, when the
response is closed or its ``with`` block is left.

Usage on chat streams (``OTEL_LLM_OPENAI_STREAM_USAGE``)
---------------------------------------------------------
Chat Completions streams report usage (and so cached tokens and cost) only when the
request sets ``stream_options={"include_usage": True}``; it then arrives on one extra
final chunk with ``choices: []``. A stream without usage is never counted as free:

- When the call's task (or one around it) has a dollar or token limit, otel-llm adds
  ``include_usage`` to a chat stream that did not set it either way, reads the usage
  chunk, and does not hand that chunk to your code, so code written for streams without
  it keeps working. ``OTEL_LLM_OPENAI_STREAM_USAGE=true`` does this for every chat
  stream, ``=false`` never (read at ``instrument()``).
- A stream that still ends without usage gets an estimate: the request's input estimate
  (its characters / 4) plus the output seen (characters / 4), priced and charged to the
  task like measured usage, marked ``otel_llm.usage.estimated=true`` and counted in the
  task's ``otel_llm.task.estimated_calls``; otel-llm logs one warning per process.

If you set ``include_usage`` yourself, the span reads the final chunk, which you also
receive. Not injected for ``with_streaming_response`` (which hands you the raw SSE
bytes). Responses API streams always carry usage on their final event.

Responses read again
--------------------
``responses.retrieve`` (and a resumed ``responses.stream(response_id=...)``) is a span
``chat`` with the response's model. Its tokens and cost are recorded only the first time
this process sees that response finished, so polling a background response, or
retrieving one created here, does not count it twice. A read is not a new model call:
the budget guard neither refuses it nor counts it as a task iteration, so a task at its
limit can still fetch what it paid for. Limit: usage a read sees first (a background
response finishing) is on the read's span but not added to the running task's totals.

Content
-------
Messages (``gen_ai.input.messages``, ``gen_ai.output.messages``,
``gen_ai.system_instructions``, JSON in the semantic-convention shape) are recorded only
with ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` (or
``instrument(capture_content=True)``). API keys and request headers are never recorded.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import import_module
from typing import Any

from otel_llm.instrumentation.inference import Telemetry
from otel_llm.instrumentation.openai.package import _instruments
from otel_llm.instrumentation.patching import Patch, ProviderInstrumentor, Wrapper

__all__ = ["OpenAIInstrumentor"]

_CHAT = "openai.resources.chat.completions.completions"
_RESPONSES = "openai.resources.responses.responses"
_EMBEDDINGS = "openai.resources.embeddings"
_CHAT_HELPERS = "openai.lib.streaming.chat._completions"
_RESPONSE_HELPERS = "openai.lib.streaming.responses._responses"
_API_RESPONSE = "openai._response"


_PATCH_MODULE = "otel_llm.instrumentation.openai.patch"


def _lazy(name: str, *args: Any) -> Callable[[Telemetry], Wrapper]:
    # The patch module imports the SDK; import it only when instrumenting, so loading
    # the entry point without openai installed stays harmless.
    def make_wrapper(telemetry: Telemetry) -> Wrapper:
        factory = getattr(import_module(_PATCH_MODULE), name)
        return (factory(*args) if args else factory)(telemetry)

    return make_wrapper


def _manager_exit(module: str, cls: str, method: str) -> Patch:
    return Patch(module, f"{cls}.{method}", _lazy("manager_exit", f"_{cls}__stream"))


class OpenAIInstrumentor(ProviderInstrumentor):
    """Instruments the OpenAI SDK (see the module docstring)."""

    _dependencies = _instruments
    _patches = (
        Patch(_CHAT, "Completions.create", _lazy("chat_create")),
        Patch(_CHAT, "AsyncCompletions.create", _lazy("async_chat_create")),
        Patch(_CHAT, "Completions.parse", _lazy("chat_parse")),
        Patch(_CHAT, "AsyncCompletions.parse", _lazy("async_chat_parse")),
        Patch(_RESPONSES, "Responses.create", _lazy("responses_create")),
        Patch(_RESPONSES, "AsyncResponses.create", _lazy("async_responses_create")),
        Patch(_RESPONSES, "Responses.parse", _lazy("responses_create")),
        Patch(_RESPONSES, "AsyncResponses.parse", _lazy("async_responses_create")),
        Patch(_RESPONSES, "Responses.retrieve", _lazy("responses_retrieve")),
        Patch(_RESPONSES, "AsyncResponses.retrieve", _lazy("async_responses_retrieve")),
        Patch(_EMBEDDINGS, "Embeddings.create", _lazy("embeddings_create")),
        Patch(_EMBEDDINGS, "AsyncEmbeddings.create", _lazy("async_embeddings_create")),
        Patch(_API_RESPONSE, "APIResponse.close", _lazy("response_close")),
        Patch(_API_RESPONSE, "AsyncAPIResponse.close", _lazy("response_close")),
        Patch(_CHAT_HELPERS, "ChatCompletionStream.close", _lazy("helper_close")),
        Patch(_CHAT_HELPERS, "AsyncChatCompletionStream.close", _lazy("helper_close")),
        _manager_exit(_CHAT_HELPERS, "ChatCompletionStreamManager", "__exit__"),
        _manager_exit(_CHAT_HELPERS, "AsyncChatCompletionStreamManager", "__aexit__"),
        Patch(_RESPONSE_HELPERS, "ResponseStream.close", _lazy("helper_close")),
        Patch(_RESPONSE_HELPERS, "AsyncResponseStream.close", _lazy("helper_close")),
        _manager_exit(_RESPONSE_HELPERS, "ResponseStreamManager", "__exit__"),
        _manager_exit(_RESPONSE_HELPERS, "AsyncResponseStreamManager", "__aexit__"),
    )

    def _instrument(self, **kwargs: Any) -> None:
        # Only if the patch module (and so the SDK) is loaded already: importing it here
        # would import the SDK up front; a first import starts with an empty ledger.
        patch_module = sys.modules.get(_PATCH_MODULE)
        if patch_module is not None:
            patch_module.reset_ledger()
        super()._instrument(**kwargs)
