"""Wrapper factories for the OpenAI SDK: each takes the instrumentor's :class:`Telemetry`
and returns a ``traced_method(wrapped, instance, args, kwargs)`` for ``wrapt``.

Where each surface funnels (openai 3.x):

- ``chat.completions.create`` / ``responses.create`` / ``embeddings.create`` /
  ``responses.retrieve`` call ``_post`` / ``_get`` and are wrapped themselves: one span.
- ``chat.completions.parse`` / ``responses.parse`` call ``_post`` directly, not
  ``create``: wrapped on their own, one span, no double counting.
- ``chat.completions.stream`` / ``responses.stream`` build a stream manager around
  ``create(stream=True)`` (or ``retrieve(stream=True)``): the span comes from that call,
  its stream is our proxy, and the helper iterates the proxy. The helpers close the HTTP
  response directly (``self._response.close()``), bypassing the proxy, so their
  ``close`` and their managers' ``__exit__`` are wrapped too, to end the span there.
  ``get_final_completion()`` / ``until_done()`` / ``get_final_response()`` exhaust the
  proxy, which ends the span.
- ``with_raw_response`` / ``with_streaming_response`` call the same wrapped methods with
  a marker header and get an SDK response wrapper back, which the user receives
  unchanged. Usage comes from the SDK's own ``parse()``, whose result the SDK caches:
  a non-stream ``with_raw_response`` body is already in memory and parsed once (the
  user's ``parse()`` returns that same object); an SSE stream's ``parse()`` only builds
  the ``Stream`` object, which is swapped for our proxy in the SDK's parse cache; a
  non-stream ``with_streaming_response`` is read only when the user parses it, through
  the request's ``post_parser`` hook. A ``with_streaming_response`` body read as bytes
  or lines instead ends its span (without usage) when the response is closed, which
  the SDK's context manager does on exit: ``APIResponse.close`` is wrapped for that.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any

from openai import AsyncStream as OpenAIAsyncStream
from openai import Stream as OpenAIStream
from openai._legacy_response import LegacyAPIResponse
from openai._response import APIResponse, AsyncAPIResponse
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from otel_llm.instrumentation.inference import (
    InferenceCall,
    InferenceRequest,
    Telemetry,
    inside_call,
    log_failure_once,
    stream_usage_mode,
)
from otel_llm.instrumentation.openai import messages
from otel_llm.instrumentation.openai.accumulators import (
    ChatChunks,
    ResponseEvents,
    ResponseLedger,
    record_response,
)
from otel_llm.instrumentation.patching import Wrapper
from otel_llm.instrumentation.requests import RequestDigests
from otel_llm.instrumentation.streams import AsyncStream, StreamAccumulator, SyncStream
from otel_llm.usage import Usage

_RAW_HEADER = "X-Stainless-Raw-Response"
_OPENAI = gen_ai.GenAiProviderNameValues.OPENAI.value
_AZURE = gen_ai.GenAiProviderNameValues.AZURE_AI_OPENAI.value
_RUNTIME_PROVIDERS = {
    "bedrock": gen_ai.GenAiProviderNameValues.AWS_BEDROCK.value,
    "vertex": gen_ai.GenAiProviderNameValues.GCP_VERTEX_AI.value,
}
_CHAT = gen_ai.GenAiOperationNameValues.CHAT.value
_EMBEDDINGS = gen_ai.GenAiOperationNameValues.EMBEDDINGS.value

# Responses whose usage was recorded, shared by create / parse / retrieve / streams;
# a new one for each instrument().
_ledger = ResponseLedger()

Record = Callable[[InferenceCall, Any], None]
NewAccumulator = Callable[[], StreamAccumulator]

# Per provider: what an item of a conversation digests to (otel_llm.prompt.request_hash).
_request_digests = RequestDigests()


def reset_ledger() -> None:
    """Forget which Responses were counted (called by ``instrument()``)."""
    global _ledger
    _ledger = ResponseLedger()


# -- the client: provider and server ------------------------------------------------------

_providers: dict[type, str] = {}
_servers: dict[int, tuple[Any, str | None, int | None]] = {}


def _provider(client: Any) -> str:
    runtime = getattr(client, "_provider_runtime", None)
    if runtime is not None:
        name = getattr(runtime, "name", None)
        if isinstance(name, str):
            return _RUNTIME_PROVIDERS.get(name, name)
    kind = type(client)
    provider = _providers.get(kind)
    if provider is None:
        names = {base.__name__ for base in kind.__mro__}
        provider = _providers[kind] = _AZURE if "BaseAzureClient" in names else _OPENAI
    return provider


def _server(client: Any) -> tuple[str | None, int | None]:
    url = getattr(client, "_base_url", None)
    if url is None:
        return None, None
    hit = _servers.get(id(url))
    if hit is not None and hit[0] is url:
        return hit[1], hit[2]
    host, port = url.host or None, url.port
    if len(_servers) > 256:
        _servers.clear()
    _servers[id(url)] = (url, host, port)
    return host, port


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _raw_mode(kwargs: dict[str, Any]) -> str | None:
    headers = kwargs.get("extra_headers")
    return headers.get(_RAW_HEADER) if headers else None


# -- requests -------------------------------------------------------------------------------


def _request(
    telemetry: Telemetry,
    instance: Any,
    operation: str,
    model: Any,
    *,
    stream: bool,
    max_tokens: int | None,
    chars: Callable[[], int] | int,
    prefix: str | None,
    attributes: dict[str, Any],
    admit: bool = True,
    request_hash: str | None = None,
) -> InferenceRequest:
    client = instance._client
    host, port = _server(client)
    return InferenceRequest(
        provider=_provider(client),
        operation=operation,
        model=model if isinstance(model, str) else None,
        stream=stream,
        max_tokens=max_tokens,
        server_address=host,
        server_port=port,
        # Walking the whole history is only worth it when a task reserves against its
        # budget: the guard calls this then, and only then.
        input_estimate=(lambda: chars() // 4) if callable(chars) else chars // 4,
        prefix_hash=prefix,
        request_hash=request_hash,
        attributes=attributes,
        admit=admit,
    )


def _sampling(kwargs: dict[str, Any], attributes: dict[str, Any]) -> None:
    temperature = _number(kwargs.get("temperature"))
    if temperature is not None:
        attributes[gen_ai.GEN_AI_REQUEST_TEMPERATURE] = temperature
    top_p = _number(kwargs.get("top_p"))
    if top_p is not None:
        attributes[gen_ai.GEN_AI_REQUEST_TOP_P] = top_p


def _chat_request(telemetry: Telemetry, instance: Any, kwargs: dict[str, Any]) -> InferenceRequest:
    msgs = kwargs.get("messages")
    max_tokens = _int(kwargs.get("max_completion_tokens"))
    if max_tokens is None:
        max_tokens = _int(kwargs.get("max_tokens"))
    attributes: dict[str, Any] = {}
    _sampling(kwargs, attributes)
    if telemetry.capture_content:
        content = messages.chat_input_messages(msgs)
        if content is not None:
            attributes[gen_ai.GEN_AI_INPUT_MESSAGES] = content
    return _request(
        telemetry,
        instance,
        _CHAT,
        kwargs.get("model"),
        stream=kwargs.get("stream") is True,
        max_tokens=max_tokens,
        chars=lambda: messages.chat_chars(msgs),
        prefix=messages.chat_prefix_hash(msgs, kwargs.get("tools")),
        attributes=attributes,
        request_hash=_request_digests.of_request(kwargs, "messages"),
    )


def _responses_request(telemetry: Telemetry, instance: Any, kwargs: dict[str, Any]) -> InferenceRequest:
    input_ = kwargs.get("input")
    instructions = kwargs.get("instructions")
    attributes: dict[str, Any] = {}
    _sampling(kwargs, attributes)
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
        telemetry,
        instance,
        _CHAT,
        kwargs.get("model"),
        stream=kwargs.get("stream") is True,
        max_tokens=_int(kwargs.get("max_output_tokens")),
        chars=chars,
        prefix=messages.responses_prefix_hash(instructions, input_, kwargs.get("tools")),
        attributes=attributes,
        request_hash=_request_digests.of_request(kwargs, "input"),
    )


def _retrieve_request(telemetry: Telemetry, instance: Any, kwargs: dict[str, Any]) -> InferenceRequest:
    # Reading a response again (polling a background one, resuming its stream) is not a
    # new model call: the budget guard neither counts nor refuses it.
    return _request(
        telemetry,
        instance,
        _CHAT,
        None,
        stream=kwargs.get("stream") is True,
        max_tokens=None,
        chars=0,
        prefix=None,
        attributes={},
        admit=False,
    )


def _embeddings_request(telemetry: Telemetry, instance: Any, kwargs: dict[str, Any]) -> InferenceRequest:
    attributes: dict[str, Any] = {}
    encoding = kwargs.get("encoding_format")
    if isinstance(encoding, str):
        attributes[gen_ai.GEN_AI_REQUEST_ENCODING_FORMATS] = (encoding,)
    return _request(
        telemetry,
        instance,
        _EMBEDDINGS,
        kwargs.get("model"),
        stream=False,
        max_tokens=None,
        chars=lambda: messages.embeddings_chars(kwargs.get("input")),
        prefix=None,
        attributes=attributes,
    )


def _with_include_usage(kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """``kwargs`` with ``stream_options.include_usage`` set, or ``None`` when the user
    already decided (set it either way) or reads the raw SSE bytes."""
    if _raw_mode(kwargs) == "stream":
        return None
    options = kwargs.get("stream_options")
    if isinstance(options, dict):
        if "include_usage" in options:
            return None
        return {**kwargs, "stream_options": {**options, "include_usage": True}}
    if options:  # anything but None / omit / not_given: leave it alone
        return None
    return {**kwargs, "stream_options": {"include_usage": True}}


# -- responses --------------------------------------------------------------------------


def _record_chat(capture: bool) -> Record:
    def record(call: InferenceCall, completion: Any) -> None:
        usage = completion.usage
        attributes = None
        if capture:
            output = messages.chat_output_messages(messages.chat_choices(completion))
            attributes = {gen_ai.GEN_AI_OUTPUT_MESSAGES: output}
        call.set_response(
            model=completion.model,
            response_id=completion.id,
            finish_reasons=[c.finish_reason for c in completion.choices if c.finish_reason],
            usage=Usage.from_openai_chat(usage) if usage is not None else None,
            attributes=attributes,
            tool_calls=sum(len(c.message.tool_calls or ()) for c in completion.choices if c.message),
        )

    return record


def _record_responses(capture: bool) -> Record:
    def record(call: InferenceCall, response: Any) -> None:
        record_response(call, response, _ledger, capture)

    return record


def _record_embeddings(call: InferenceCall, result: Any) -> None:
    usage = result.usage
    call.set_response(model=result.model, usage=Usage.from_openai_embeddings(usage) if usage else None)


class _ChatStreamHidingUsage(SyncStream):
    """A chat stream whose request got ``include_usage`` from us: the usage-only final
    chunk (``choices: []``) is read for the span and not handed to the user."""

    def __next__(self) -> Any:
        chunk = super().__next__()
        if not chunk.choices and chunk.usage is not None:
            return super().__next__()
        return chunk

    def _self_chunks(self) -> Iterator[Any]:
        for chunk in super()._self_chunks():
            if chunk.choices or chunk.usage is None:
                yield chunk


class _AsyncChatStreamHidingUsage(AsyncStream):
    async def __anext__(self) -> Any:
        chunk = await super().__anext__()
        if not chunk.choices and chunk.usage is not None:
            return await super().__anext__()
        return chunk


def _proxy(call: InferenceCall, stream: Any, accumulator: StreamAccumulator, hide_usage: bool) -> Any:
    if isinstance(stream, OpenAIAsyncStream):
        return (_AsyncChatStreamHidingUsage if hide_usage else AsyncStream)(stream, call, accumulator)
    return (_ChatStreamHidingUsage if hide_usage else SyncStream)(stream, call, accumulator)


def _record_failure(call: InferenceCall, record: Record, error: BaseException) -> None:
    # LengthFinishReasonError / ContentFilterFinishReasonError come from parsing a
    # completion that was generated, and billed: keep its usage.
    completion = getattr(error, "completion", None)
    if completion is not None:
        try:
            record(call, completion)
        except Exception as exc:
            log_failure_once("reading the completion of a failed parse", exc)


def _swap_parsed(response: Any, parsed: Any, proxy: Any) -> None:
    cache = response._parsed_by_type
    for key, value in list(cache.items()):
        if value is parsed:
            cache[key] = proxy


# ``with_streaming_response`` results whose call is still open -> what ends it. Their
# ``close()`` (which the SDK's context manager calls on exit) ends the call, so a body read
# as bytes or lines, never parsed, does not leave the span open until garbage collection.
_unfinished: weakref.WeakKeyDictionary[Any, Callable[[], Any]] = weakref.WeakKeyDictionary()


def _chain_post_parser(response: Any, call: InferenceCall, record: Record) -> None:
    """End ``call`` when the user parses a not-yet-read ``with_streaming_response``."""
    options = response._options
    previous = options.post_parser
    has_previous = callable(previous)

    def post_parser(parsed: Any) -> Any:
        if has_previous:
            try:
                parsed = previous(parsed)
            except BaseException as exc:
                _record_failure(call, record, exc)
                call.end()
                raise
        try:
            record(call, parsed)
        except Exception as exc:
            log_failure_once("reading an OpenAI response", exc)
        call.end()
        return parsed

    options.post_parser = post_parser
    _unfinished[response] = weakref.finalize(response, call.end)


def _legacy(
    call: InferenceCall, response: Any, record: Record, accumulator: NewAccumulator, hide: bool
) -> bool:
    """Handle a ``with_raw_response`` result; True when the call is still open (a stream)."""
    try:
        parsed = response.parse()
    except Exception as exc:
        _record_failure(call, record, exc)
        return False
    if response._stream:
        _swap_parsed(response, parsed, _proxy(call, parsed, accumulator(), hide))
        return True
    record(call, parsed)
    return False


def _finish_sync(
    call: InferenceCall, result: Any, raw: str | None, record: Record, accumulator: NewAccumulator, hide: bool
) -> Any:
    try:
        if raw is None:
            if isinstance(result, OpenAIStream):
                return _proxy(call, result, accumulator(), hide)
            record(call, result)
        elif isinstance(result, LegacyAPIResponse):
            if _legacy(call, result, record, accumulator, hide):
                return result
        elif isinstance(result, APIResponse):
            if result._is_sse_stream:
                parsed = result.parse()
                proxy = _proxy(call, parsed, accumulator(), hide)
                _swap_parsed(result, parsed, proxy)
                _unfinished[result] = proxy._self_end
            else:
                _chain_post_parser(result, call, record)
            return result
    except Exception as exc:
        log_failure_once("reading an OpenAI response", exc)
    call.end()
    return result


async def _finish_async(
    call: InferenceCall, result: Any, raw: str | None, record: Record, accumulator: NewAccumulator, hide: bool
) -> Any:
    try:
        if raw is None:
            if isinstance(result, OpenAIAsyncStream):
                return _proxy(call, result, accumulator(), hide)
            record(call, result)
        elif isinstance(result, LegacyAPIResponse):
            if _legacy(call, result, record, accumulator, hide):
                return result
        elif isinstance(result, AsyncAPIResponse):
            if result._is_sse_stream:
                parsed = await result.parse()
                proxy = _proxy(call, parsed, accumulator(), hide)
                _swap_parsed(result, parsed, proxy)
                _unfinished[result] = proxy._self_end
            else:
                _chain_post_parser(result, call, record)
            return result
    except Exception as exc:
        log_failure_once("reading an OpenAI response", exc)
    call.end()
    return result


# -- the factories ----------------------------------------------------------------------

RequestReader = Callable[[Telemetry, Any, dict[str, Any]], InferenceRequest]


def _factory(
    read_request: RequestReader,
    make_record: Callable[[bool], Record],
    make_accumulator: Callable[[bool], NewAccumulator],
    *,
    is_async: bool,
    inject_usage: bool = False,
) -> Callable[[Telemetry], Wrapper]:
    def factory(telemetry: Telemetry) -> Wrapper:
        capture = telemetry.capture_content
        record = make_record(capture)
        accumulator = make_accumulator(capture)
        usage_mode = stream_usage_mode() if inject_usage else "never"

        def begin(instance: Any, kwargs: dict[str, Any]) -> InferenceRequest | None:
            if inside_call():
                # Part of a call another instrumentation of ours traces (LiteLLM).
                return None
            try:
                return read_request(telemetry, instance, kwargs)
            except Exception as exc:
                log_failure_once("reading an OpenAI request", exc)
                return None

        def usage_kwargs(call: InferenceCall, kwargs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
            # After the guard, which knows the call's task and so its limits.
            return call.with_stream_usage(usage_mode, kwargs, _with_include_usage, "OpenAI")

        if is_async:

            async def traced_method(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
                request = begin(instance, kwargs)
                if request is None:
                    return await wrapped(*args, **kwargs)
                call = telemetry.start(request)
                kwargs, hide = usage_kwargs(call, kwargs)
                try:
                    with call.activated():
                        result = await wrapped(*args, **kwargs)
                except BaseException as exc:
                    _record_failure(call, record, exc)
                    call.end(exc)
                    raise
                return await _finish_async(call, result, _raw_mode(kwargs), record, accumulator, hide)

        else:

            def traced_method(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
                request = begin(instance, kwargs)
                if request is None:
                    return wrapped(*args, **kwargs)
                call = telemetry.start(request)
                kwargs, hide = usage_kwargs(call, kwargs)
                try:
                    with call.activated():
                        result = wrapped(*args, **kwargs)
                except BaseException as exc:
                    _record_failure(call, record, exc)
                    call.end(exc)
                    raise
                return _finish_sync(call, result, _raw_mode(kwargs), record, accumulator, hide)

        return traced_method

    return factory


def _chat_chunks(capture: bool) -> NewAccumulator:
    return lambda: ChatChunks(capture)


def _response_events(capture: bool) -> NewAccumulator:
    return lambda: ResponseEvents(capture, _ledger)


def _no_stream(capture: bool) -> NewAccumulator:
    return StreamAccumulator


def _embeddings_record(capture: bool) -> Record:
    return _record_embeddings


chat_create = _factory(_chat_request, _record_chat, _chat_chunks, is_async=False, inject_usage=True)
async_chat_create = _factory(_chat_request, _record_chat, _chat_chunks, is_async=True, inject_usage=True)
chat_parse = _factory(_chat_request, _record_chat, _chat_chunks, is_async=False)
async_chat_parse = _factory(_chat_request, _record_chat, _chat_chunks, is_async=True)
responses_create = _factory(_responses_request, _record_responses, _response_events, is_async=False)
async_responses_create = _factory(_responses_request, _record_responses, _response_events, is_async=True)
responses_retrieve = _factory(_retrieve_request, _record_responses, _response_events, is_async=False)
async_responses_retrieve = _factory(_retrieve_request, _record_responses, _response_events, is_async=True)
embeddings_create = _factory(_embeddings_request, _embeddings_record, _no_stream, is_async=False)
async_embeddings_create = _factory(_embeddings_request, _embeddings_record, _no_stream, is_async=True)


# -- the stream helpers' own endings ---------------------------------------------------


def _end_helper(helper: Any, error: BaseException | None = None) -> None:
    raw = getattr(helper, "_raw_stream", None)
    if isinstance(raw, SyncStream | AsyncStream):
        raw._self_end(error)


def helper_close(telemetry: Telemetry) -> Wrapper:
    """``ChatCompletionStream.close`` / ``ResponseStream.close`` (and the async ones):
    they close the HTTP response, not the stream we handed them, so end the span here."""

    def traced_method(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        try:
            _end_helper(instance)
        except Exception as exc:
            log_failure_once("ending a stream helper's span", exc)
        return wrapped(*args, **kwargs)

    return traced_method


def response_close(telemetry: Telemetry) -> Wrapper:
    """``APIResponse.close`` / ``AsyncAPIResponse.close``: the SDK's
    ``with_streaming_response`` context manager calls it on exit. A call whose body was
    read as bytes or lines (never parsed) ends here, with what its span knows."""

    def traced_method(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        try:
            end = _unfinished.pop(instance, None)
            if end is not None:
                end()
        except Exception as exc:
            log_failure_once("ending a streaming response's span", exc)
        return wrapped(*args, **kwargs)

    return traced_method


def manager_exit(stream_attribute: str) -> Callable[[Telemetry], Wrapper]:
    """A stream manager's ``__exit__`` / ``__aexit__``: an exception leaving the ``with``
    block ends the span with that error (as the SDK stream proxies do)."""

    def factory(telemetry: Telemetry) -> Wrapper:
        def traced_method(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            try:
                error = args[1] if len(args) > 1 else kwargs.get("exc")
                helper = getattr(instance, stream_attribute, None)
                if helper is not None and isinstance(error, BaseException):
                    _end_helper(helper, error)
            except Exception as exc:
                log_failure_once("ending a stream manager's span", exc)
            return wrapped(*args, **kwargs)

        return traced_method

    return factory
