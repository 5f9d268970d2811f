"""Wrapper factories for LiteLLM's module functions: each takes the instrumentor's
:class:`Telemetry` and returns a ``traced_method(wrapped, instance, args, kwargs)``.

Where the calls funnel (litellm 1.110): ``acompletion`` runs ``litellm.main.completion``
(the module global, not the wrapped ``litellm.completion``) in an executor; ``aembedding``
and ``aresponses`` do the same with theirs. The ``Router`` looks each endpoint up as
``getattr(litellm, name)`` for every attempt, so each deployment it tries, retries and
fallbacks included, goes through the wrapped function: one span per attempt. A call made
while another instrumented call is being sent in the same context (LiteLLM calling itself:
``completion_with_retries``, the Responses-to-chat bridge; or the OpenAI SDK under
LiteLLM) belongs to the outer call's span and is not traced again
(:func:`~otel_llm.instrumentation.inference.inside_call`; LiteLLM copies the context into
the executor its async functions run the sync ones in).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from otel_llm.instrumentation.inference import (
    InferenceCall,
    InferenceRequest,
    Telemetry,
    inside_call,
    log_failure_once,
    stream_usage_mode,
)
from otel_llm.instrumentation.litellm import readers
from otel_llm.instrumentation.litellm.accumulators import ChatStream, ResponsesStream
from otel_llm.instrumentation.openai import messages
from otel_llm.instrumentation.patching import Wrapper
from otel_llm.instrumentation.streams import AsyncStream, StreamAccumulator, SyncStream
from otel_llm.tasks import BudgetExceeded

_CHAT = gen_ai.GenAiOperationNameValues.CHAT.value
_EMBEDDINGS = gen_ai.GenAiOperationNameValues.EMBEDDINGS.value

Record = Callable[[InferenceCall, Any, bool], None]
NewAccumulator = Callable[[bool, Any], StreamAccumulator]
RequestReader = Callable[[Telemetry, tuple[Any, ...], dict[str, Any]], InferenceRequest]


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], position: int, name: str) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[position] if len(args) > position else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _request(
    model: Any,
    kwargs: dict[str, Any],
    operation: str,
    *,
    max_tokens: int | None,
    chars: Callable[[], int],
    prefix: str | None,
    attributes: dict[str, Any],
) -> InferenceRequest:
    where = readers.target(model, kwargs)
    temperature = _number(kwargs.get("temperature"))
    if temperature is not None:
        attributes[gen_ai.GEN_AI_REQUEST_TEMPERATURE] = temperature
    top_p = _number(kwargs.get("top_p"))
    if top_p is not None:
        attributes[gen_ai.GEN_AI_REQUEST_TOP_P] = top_p
    return InferenceRequest(
        provider=where.provider,
        operation=operation,
        model=where.model,
        stream=kwargs.get("stream") is True,
        max_tokens=max_tokens,
        server_address=where.server_address,
        server_port=where.server_port,
        input_estimate=lambda: chars() // 4,
        prefix_hash=prefix,
        attributes=attributes,
    )


def _chat_request(telemetry: Telemetry, args: tuple[Any, ...], kwargs: dict[str, Any]) -> InferenceRequest:
    msgs = _arg(args, kwargs, 1, "messages")
    max_tokens = _int(kwargs.get("max_completion_tokens"))
    if max_tokens is None:
        max_tokens = _int(kwargs.get("max_tokens"))
    attributes: dict[str, Any] = {}
    if telemetry.capture_content:
        content = messages.chat_input_messages(msgs)
        if content is not None:
            attributes[gen_ai.GEN_AI_INPUT_MESSAGES] = content
    return _request(
        _arg(args, kwargs, 0, "model"),
        kwargs,
        _CHAT,
        max_tokens=max_tokens,
        chars=lambda: messages.chat_chars(msgs),
        prefix=messages.chat_prefix_hash(msgs, kwargs.get("tools")),
        attributes=attributes,
    )


def _embeddings_request(
    telemetry: Telemetry, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> InferenceRequest:
    input_ = _arg(args, kwargs, 1, "input")
    attributes: dict[str, Any] = {}
    encoding = kwargs.get("encoding_format")
    if isinstance(encoding, str):
        attributes[gen_ai.GEN_AI_REQUEST_ENCODING_FORMATS] = (encoding,)
    return _request(
        _arg(args, kwargs, 0, "model"),
        kwargs,
        _EMBEDDINGS,
        max_tokens=None,
        chars=lambda: messages.embeddings_chars(input_),
        prefix=None,
        attributes=attributes,
    )


def _responses_request(
    telemetry: Telemetry, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> InferenceRequest:
    input_ = _arg(args, kwargs, 0, "input")
    instructions = kwargs.get("instructions")
    attributes: dict[str, Any] = {}
    if telemetry.capture_content:
        content = messages.responses_input_messages(input_)
        if content is not None:
            attributes[gen_ai.GEN_AI_INPUT_MESSAGES] = content
        system = messages.system_instructions(instructions)
        if system is not None:
            attributes[gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS] = system

    def chars() -> int:
        return messages.responses_chars(input_) + (len(instructions) if isinstance(instructions, str) else 0)

    return _request(
        _arg(args, kwargs, 1, "model"),
        kwargs,
        _CHAT,
        max_tokens=_int(kwargs.get("max_output_tokens")),
        chars=chars,
        prefix=messages.responses_prefix_hash(instructions, input_, kwargs.get("tools")),
        attributes=attributes,
    )


# -- stream usage ------------------------------------------------------------------------------


def _with_include_usage(kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """``kwargs`` asking for stream usage, or ``None`` when the caller decided already."""
    options = kwargs.get("stream_options")
    if options is None:
        return {**kwargs, "stream_options": {"include_usage": True}}
    if isinstance(options, dict) and "include_usage" not in options:
        return {**kwargs, "stream_options": {**options, "include_usage": True}}
    return None


class _SyncChatStream(SyncStream):
    """A chat stream whose request got ``include_usage`` from us: the usage-only chunk
    (``choices: []``) is read for the span and not handed to the caller."""

    def __next__(self) -> Any:
        chunk = super().__next__()
        if not chunk.choices and getattr(chunk, "usage", None) is not None:
            return super().__next__()
        return chunk

    def _self_chunks(self) -> Iterator[Any]:  # what a ``for`` loop reads (streams.SyncStream)
        for chunk in super()._self_chunks():
            if chunk.choices or getattr(chunk, "usage", None) is None:
                yield chunk


class _AsyncStream(AsyncStream):
    """LiteLLM's async streams close with ``aclose()``; their ``close()`` is synchronous."""

    def close(self) -> None:  # type: ignore[override]
        try:
            self.__wrapped__.close()
        finally:
            self._self_end()

    async def aclose(self) -> None:
        try:
            await self.__wrapped__.aclose()
        finally:
            self._self_end()


class _AsyncChatStream(_AsyncStream):
    async def __anext__(self) -> Any:
        chunk = await super().__anext__()
        if not chunk.choices and getattr(chunk, "usage", None) is not None:
            return await super().__anext__()
        return chunk


def _stream_proxy(
    call: InferenceCall, result: Any, accumulator: StreamAccumulator, hide: bool, is_async: bool
) -> Any:
    # LiteLLM's stream wrappers iterate both ways; the function that made it says which.
    if is_async:
        return (_AsyncChatStream if hide else _AsyncStream)(result, call, accumulator)
    return (_SyncChatStream if hide else SyncStream)(result, call, accumulator)


def _finish(
    call: InferenceCall,
    result: Any,
    record: Record,
    accumulator: NewAccumulator,
    capture: bool,
    hide: bool,
    is_async: bool,
) -> Any:
    try:
        kind = type(result)
        if call.request.stream and (hasattr(kind, "__next__") or hasattr(kind, "__anext__")):
            return _stream_proxy(call, result, accumulator(capture, result), hide, is_async)
        record(call, result, capture)
    except Exception as exc:
        log_failure_once("reading a LiteLLM response", exc)
    call.end()
    return result


_PLACEHOLDER_HOST = "litellm.ai"


def _refused_by_litellm(error: BaseException) -> bool:
    """Whether LiteLLM raised ``error`` itself, before sending anything (an unknown
    provider, a missing key, a parameter the provider does not take). LiteLLM maps those
    to the OpenAI SDK's error classes with a placeholder request to ``https://litellm.ai``,
    where a provider's own error carries the request that was sent."""
    url = getattr(getattr(error, "request", None), "url", None)
    return getattr(url, "host", None) == _PLACEHOLDER_HOST


def _start(telemetry: Telemetry, request: InferenceRequest) -> InferenceCall:
    try:
        return telemetry.start(request)
    except BudgetExceeded as exc:
        # LiteLLM's Router retries an error it does not know, with backoff, unless the
        # error says how many retries it allows: a refused call is not worth retrying.
        exc.num_retries = 0  # type: ignore[attr-defined]
        raise


# -- the factories -----------------------------------------------------------------------------


def _factory(
    read_request: RequestReader,
    record: Record,
    accumulator: NewAccumulator,
    *,
    is_async: bool,
    chat: bool = False,
) -> Callable[[Telemetry], Wrapper]:
    def factory(telemetry: Telemetry) -> Wrapper:
        capture = telemetry.capture_content
        usage_mode = stream_usage_mode() if chat else "never"

        def begin(args: Any, kwargs: dict[str, Any]) -> InferenceRequest | None:
            try:
                return read_request(telemetry, args, kwargs)
            except Exception as exc:
                log_failure_once("reading a LiteLLM request", exc)
                return None

        def usage_kwargs(call: InferenceCall, kwargs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
            # After the guard, which knows the call's task and so its limits.
            return call.with_stream_usage(usage_mode, kwargs, _with_include_usage, "LiteLLM")

        if is_async:

            async def traced_method(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
                if inside_call():
                    return await wrapped(*args, **kwargs)
                request = begin(args, kwargs)
                if request is None:
                    return await wrapped(*args, **kwargs)
                call = _start(telemetry, request)
                kwargs, hide = usage_kwargs(call, kwargs)
                try:
                    with call.activated():
                        result = await wrapped(*args, **kwargs)
                except BaseException as exc:
                    call.end(exc, sent=False if _refused_by_litellm(exc) else None)
                    raise
                return _finish(call, result, record, accumulator, capture, hide, True)

        else:

            def traced_method(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
                if inside_call():
                    return wrapped(*args, **kwargs)
                request = begin(args, kwargs)
                if request is None:
                    return wrapped(*args, **kwargs)
                call = _start(telemetry, request)
                kwargs, hide = usage_kwargs(call, kwargs)
                try:
                    with call.activated():
                        result = wrapped(*args, **kwargs)
                except BaseException as exc:
                    call.end(exc, sent=False if _refused_by_litellm(exc) else None)
                    raise
                return _finish(call, result, record, accumulator, capture, hide, False)

        return traced_method

    return factory


completion = _factory(_chat_request, readers.record_chat, ChatStream, is_async=False, chat=True)
acompletion = _factory(_chat_request, readers.record_chat, ChatStream, is_async=True, chat=True)
embedding = _factory(_embeddings_request, readers.record_embeddings, ChatStream, is_async=False)
aembedding = _factory(_embeddings_request, readers.record_embeddings, ChatStream, is_async=True)
responses = _factory(_responses_request, readers.record_responses, ResponsesStream, is_async=False)
aresponses = _factory(_responses_request, readers.record_responses, ResponsesStream, is_async=True)
