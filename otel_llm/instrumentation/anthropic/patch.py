"""Wrappers of the Anthropic SDK's message methods, and the stream accumulator.

Where each call surface funnels (anthropic 2.x): ``messages.create``, ``messages.parse`` and
``messages.stream`` (and their ``beta.messages`` twins) each post ``/v1/messages`` through
the client's ``_post`` themselves; none calls another, so each is wrapped once and no call
gets two spans. ``stream()`` sends nothing: it returns a manager whose ``__enter__`` /
``__aenter__`` sends the request, so the call starts there; its ``__exit__`` /
``__aexit__`` closes the stream without the exception, so it is wrapped to hand an
exception leaving the block to the span. ``with_raw_response`` and
``with_streaming_response`` call the (wrapped) ``create`` / ``parse`` with a header that
makes them return an ``APIResponse``; beta message threads and tool runners call
``beta.messages.create``.

The SDK's own call span (``anthropic.messages.create``, see ``anthropic/_tracing.py``)
would carry a second copy of each call's usage. For the calls traced here the SDK is handed
a non-recording span that carries our span's context instead of starting its own, so it
records nothing and still propagates a trace context (ours) when its ``propagation`` is on.
Its other spans (``count_tokens``, batches, sessions, ...) are left alone.
"""

from __future__ import annotations

import functools
import importlib
import json
import weakref
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

import wrapt
from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.util.types import AttributeValue

from otel_llm import attributes as attrs
from otel_llm.fields import field
from otel_llm.instrumentation.inference import (
    InferenceCall,
    InferenceRequest,
    Telemetry,
    log_failure_once,
    prefix_hash,
)
from otel_llm.instrumentation.patching import Wrapper
from otel_llm.instrumentation.requests import Digests, RequestDigests
from otel_llm.instrumentation.streams import AsyncStream, StreamAccumulator, SyncStream
from otel_llm.usage import Usage

OPERATION = gen_ai.GenAiOperationNameValues.CHAT.value
SDK_SPAN_NAME = "anthropic.messages.create"

# The span of the call being sent right now, for the SDK's own tracing to stand down.
_OWNED: ContextVar[trace.Span | None] = ContextVar("otel_llm_anthropic_owned", default=None)


class _State:
    """The telemetry of the current ``instrument()``; ``None`` once uninstrumented.

    Wrappers compare against it on every call, so a bound wrapper that outlives
    ``uninstrument()`` (``client.messages.with_raw_response`` caches the bound method it
    wraps) passes calls straight through."""

    telemetry: Telemetry | None = None


# The SDK's result types, imported when a wrapper is first made (not when this module is).
_Stream: Any = ()
_AsyncStream: Any = ()
_AsyncAPIResponse: Any = ()


def activate(telemetry: Telemetry | None) -> None:
    """Make ``telemetry`` the one the wrappers record to (``None``: pass through)."""
    global _Stream, _AsyncStream, _AsyncAPIResponse
    if telemetry is not None and _Stream == ():
        from anthropic import AsyncAPIResponse, AsyncStream, Stream

        _Stream, _AsyncStream, _AsyncAPIResponse = Stream, AsyncStream, AsyncAPIResponse
    _State.telemetry = telemetry


# -- what a request says ---------------------------------------------------------------


_SEQUENCE = (list, tuple)
_SCALAR = (int, float)
_NON_TEXT_CHARS = 64
"""What a non-text block (image, document, tool result) adds to the input estimate."""
_TOOL_CHARS = 200
"""What a tool definition adds to the input estimate, besides its description."""

_LONG_TEXT = 64


def _tools_digest(tools: Sequence[Any]) -> tuple[str, int]:
    """The digest of a tool list and its characters for the input estimate."""
    digest = prefix_hash([_compact(tool) for tool in tools]) or ""
    chars = 0
    for tool in tools:
        description = field(tool, "description")
        chars += _TOOL_CHARS + (len(description) if isinstance(description, str) else 0)
    return digest, chars


# Long strings and tool lists digested once: a prompt's cacheable prefix is hashed without
# serialising its long texts on every call.
_digests = Digests()
_request_digests = RequestDigests()


def _compact(value: Any, depth: int = 0) -> Any:
    """``value`` with every long string replaced by its digest (images, documents and long
    texts included), for hashing."""
    if isinstance(value, str):
        return _digests.of_string(value) if len(value) > _LONG_TEXT else value
    if depth > 8:
        return str(value)
    if isinstance(value, dict):
        return {str(k): _compact(v, depth + 1) for k, v in value.items()}
    if isinstance(value, _SEQUENCE):
        return [_compact(v, depth + 1) for v in value]
    if value is None or isinstance(value, _SCALAR):
        return value
    dump = getattr(value, "model_dump", None)
    return _compact(dump(exclude_unset=True), depth + 1) if callable(dump) else str(value)


def _text_chars(blocks: Any) -> int:
    chars = 0
    for block in blocks:
        text = field(block, "text")
        chars += len(text) if isinstance(text, str) else _NON_TEXT_CHARS
    return chars


def scan(kwargs: Mapping[str, Any]) -> tuple[list[Any], int]:
    """One walk over a request: short stand-ins of its cacheable prefix (tools, system, and
    every ``cache_control``-marked message block, in render order) and its input estimate
    in tokens (characters of text over 4)."""
    parts: list[Any] = []
    chars = 0
    tools = kwargs.get("tools")
    if isinstance(tools, _SEQUENCE) and tools:
        digest, tool_chars = _digests.of_list(tools, _tools_digest)
        parts.append(digest)
        chars += tool_chars
    system = kwargs.get("system")
    if isinstance(system, str):
        if system:
            parts.append(_compact(system))
            chars += len(system)
    elif isinstance(system, _SEQUENCE) and system:
        parts.append(_compact(system))
        chars += _text_chars(system)
    messages = kwargs.get("messages")
    if isinstance(messages, _SEQUENCE):
        for message in messages:
            content = field(message, "content")
            if isinstance(content, str):
                chars += len(content)
            elif isinstance(content, _SEQUENCE):
                for block in content:
                    if isinstance(block, dict):
                        text = block.get("text")
                        if block.get("cache_control"):
                            parts.append(_compact(block))
                    else:
                        text = getattr(block, "text", None)
                    chars += len(text) if isinstance(text, str) else _NON_TEXT_CHARS
    cache_control = kwargs.get("cache_control")
    if parts and isinstance(cache_control, dict):
        parts.append(cache_control)
    return parts, chars // 4


def _parts(content: Any) -> list[dict[str, Any]]:
    """Message content as GenAI semantic-convention message parts."""
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    out: list[dict[str, Any]] = []
    for block in content or ():
        kind = field(block, "type")
        if kind == "text":
            out.append({"type": "text", "content": field(block, "text")})
        elif kind in ("tool_use", "server_tool_use"):
            out.append(
                {
                    "type": "tool_call",
                    "id": field(block, "id"),
                    "name": field(block, "name"),
                    "arguments": field(block, "input"),
                }
            )
        elif kind == "tool_result":
            out.append(
                {
                    "type": "tool_call_response",
                    "id": field(block, "tool_use_id"),
                    "response": field(block, "content"),
                }
            )
        elif kind == "thinking":
            out.append({"type": "reasoning", "content": field(block, "thinking")})
        else:
            out.append({"type": str(kind)})
    return out


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _input_content(kwargs: Mapping[str, Any]) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {}
    system = kwargs.get("system")
    if isinstance(system, str | list | tuple) and system:
        out[gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS] = _json(_parts(system))
    messages = kwargs.get("messages")
    if isinstance(messages, list | tuple):
        out[gen_ai.GEN_AI_INPUT_MESSAGES] = _json(
            [{"role": field(m, "role"), "parts": _parts(field(m, "content"))} for m in messages]
        )
    return out


# id(client) -> (client, its base URL, provider, host, port): read once per client and
# base URL (``base_url`` can be set on a client), not on every call.
_clients: dict[int, tuple[Any, Any, str, str | None, int]] = {}


def _client_info(client: Any) -> tuple[str, str | None, int]:
    url = client._base_url
    hit = _clients.get(id(client))
    if hit is not None and hit[0] is client and hit[1] is url:
        return hit[2], hit[3], hit[4]
    provider = getattr(client, "_gen_ai_provider_name", None) or "anthropic"
    host, port = url.host or None, url.port or (443 if url.scheme == "https" else 80)
    if len(_clients) > 256:
        _clients.clear()
    _clients[id(client)] = (client, url, provider, host, port)
    return provider, host, port


def describe(
    telemetry: Telemetry, instance: Any, kwargs: Mapping[str, Any], stream: bool
) -> InferenceRequest:
    """What the instrumentation knows of a ``messages`` call before it is sent."""
    provider, host, port = _client_info(instance._client)
    model = kwargs.get("model")
    model = model if isinstance(model, str) else None
    max_tokens = kwargs.get("max_tokens")
    parts, estimate = scan(kwargs)
    if parts:
        parts.insert(0, model)
    return InferenceRequest(
        provider=provider,
        operation=OPERATION,
        model=model,
        stream=stream,
        max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        server_address=host,
        server_port=port,
        input_estimate=estimate,
        prefix_hash=prefix_hash(parts) if parts else None,
        request_hash=_request_digests.of_request(kwargs, "messages"),
        attributes=_input_content(kwargs) if telemetry.capture_content else {},
    )


# -- what a response says --------------------------------------------------------------


def _miss_attributes(diagnostics: Any) -> dict[str, AttributeValue] | None:
    reason = field(diagnostics, "cache_miss_reason") if diagnostics is not None else None
    kind = field(reason, "type") if reason is not None else None
    if not isinstance(kind, str):
        return None
    out: dict[str, AttributeValue] = {attrs.CACHE_MISS_REASON: kind}
    missed = field(reason, "cache_missed_input_tokens")
    if isinstance(missed, int):
        out[attrs.CACHE_MISSED_INPUT_TOKENS] = missed
    return out


def _output_content(parts: list[dict[str, Any]], stop_reason: Any) -> dict[str, AttributeValue]:
    message: dict[str, Any] = {"role": "assistant", "parts": parts}
    if stop_reason:
        message["finish_reason"] = stop_reason
    return {gen_ai.GEN_AI_OUTPUT_MESSAGES: _json([message])}


def record_message(call: InferenceCall, message: Any, capture: bool) -> None:
    """Hand a complete ``Message`` / ``BetaMessage`` (model or decoded dict) to ``call``."""
    try:
        if isinstance(message, dict):
            get = message.get
            stop_reason, usage, content = get("stop_reason"), get("usage"), get("content")
            model, response_id = get("model"), get("id")
        else:
            # The SDK's model: every one of these is a declared field in every version.
            stop_reason, usage, content = message.stop_reason, message.usage, message.content
            model, response_id = message.model, message.id
        attributes = _miss_attributes(field(message, "diagnostics"))
        if capture:
            attributes = {**(attributes or {}), **_output_content(_parts(content), stop_reason)}
        tool_calls = 0
        for block in content or ():
            if field(block, "type") == "tool_use":
                tool_calls += 1
        call.set_response(
            model=model,
            response_id=response_id,
            finish_reasons=(stop_reason,) if stop_reason else None,
            usage=Usage.from_anthropic(usage) if usage is not None else None,
            attributes=attributes,
            tool_calls=tool_calls,
        )
    except Exception as exc:
        log_failure_once("reading an Anthropic message", exc)


_USAGE_FIELDS = (
    "input_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "output_tokens",
    "output_tokens_details",
)


_CONTENT_EVENT_NAMES = (
    ("anthropic.types", "RawContentBlockStartEvent"),
    ("anthropic.types", "RawContentBlockDeltaEvent"),
    ("anthropic.types", "RawContentBlockStopEvent"),
    ("anthropic.types.beta", "BetaRawContentBlockStartEvent"),
    ("anthropic.types.beta", "BetaRawContentBlockDeltaEvent"),
    ("anthropic.types.beta", "BetaRawContentBlockStopEvent"),
)


@functools.cache
def _content_event_classes() -> frozenset[type]:
    """The SDK's raw content block event classes (messages and beta), where present;
    imported at the first stream, not with this module."""
    found: set[type] = set()
    for module, name in _CONTENT_EVENT_NAMES:
        if name.endswith("StartEvent"):
            continue  # one per block, read for the tool calls the model asks for
        try:
            cls = getattr(importlib.import_module(module), name, None)
        except ImportError:
            continue
        if isinstance(cls, type):
            found.add(cls)
    return frozenset(found)


class MessageAccumulator(StreamAccumulator):
    """Collects a streamed message's usage and metadata from its raw events.

    ``message_start`` carries the model, id, input and cache counts (and ``diagnostics``);
    ``message_delta`` carries the stop reason and usage counts that are *cumulative*: the
    latest value of each field that it carries replaces the earlier one (newer APIs send
    input and cache counts there too). Only the 5m/1h write split comes from
    ``message_start`` alone.
    """

    __slots__ = (
        "_capture",
        "_diagnostics",
        "_id",
        "_model",
        "_parts",
        "_stop_reason",
        "_tools",
        "_usage",
        "skip",
    )

    def __init__(self, capture: bool = False) -> None:
        self._capture = capture
        # Content block deltas matter only when content is captured.
        self.skip = frozenset() if capture else _content_event_classes()
        self._tools = 0
        self._usage: dict[str, Any] | None = None
        self._model: str | None = None
        self._id: str | None = None
        self._stop_reason: str | None = None
        self._diagnostics: Any = None
        self._parts: dict[int, dict[str, Any]] | None = {} if capture else None

    def add(self, chunk: Any) -> None:
        kind = chunk.type
        if kind == "message_start":
            message = chunk.message
            self._model = message.model
            self._id = message.id
            self._diagnostics = field(message, "diagnostics")
            usage = message.usage
            self._usage = {name: getattr(usage, name, None) for name in _USAGE_FIELDS}
            self._usage["cache_creation"] = getattr(usage, "cache_creation", None)
        elif kind == "message_delta":
            self._stop_reason = chunk.delta.stop_reason or self._stop_reason
            delta = chunk.usage
            if delta is not None:
                if self._usage is None:
                    self._usage = {}
                for name in _USAGE_FIELDS:
                    value = getattr(delta, name, None)
                    if value is not None:
                        self._usage[name] = value
        else:
            if kind == "content_block_start" and chunk.content_block.type == "tool_use":
                self._tools += 1
            if self._parts is not None:
                self._add_content(kind, chunk)

    def _add_content(self, kind: str, chunk: Any) -> None:
        parts = self._parts
        assert parts is not None
        if kind == "content_block_start":
            block = chunk.content_block
            btype = block.type
            if btype in ("tool_use", "server_tool_use"):
                parts[chunk.index] = {"type": "tool_call", "id": block.id, "name": block.name, "_text": []}
            elif btype == "thinking":
                parts[chunk.index] = {"type": "reasoning", "_text": []}
            elif btype == "text":
                parts[chunk.index] = {"type": "text", "_text": []}
            else:
                parts[chunk.index] = {"type": str(btype)}
        elif kind == "content_block_delta":
            part = parts.get(chunk.index)
            if part is None or "_text" not in part:
                return
            delta = chunk.delta
            piece = (
                getattr(delta, "text", None)
                or getattr(delta, "partial_json", None)
                or getattr(delta, "thinking", None)
            )
            if isinstance(piece, str):
                part["_text"].append(piece)

    def finish(self, call: InferenceCall) -> None:
        attributes = _miss_attributes(self._diagnostics)
        if self._parts is not None:
            attributes = {**(attributes or {}), **_output_content(self._content(), self._stop_reason)}
        call.set_response(
            model=self._model,
            response_id=self._id,
            finish_reasons=(self._stop_reason,) if self._stop_reason else None,
            usage=Usage.from_anthropic(self._usage) if self._usage is not None else None,
            attributes=attributes,
            tool_calls=self._tools,
        )

    def _content(self) -> list[dict[str, Any]]:
        out = []
        for _, part in sorted((self._parts or {}).items()):
            part = dict(part)
            text = "".join(part.pop("_text", ()))
            if part["type"] == "tool_call":
                try:
                    part["arguments"] = json.loads(text) if text else {}
                except ValueError:
                    part["arguments"] = text
            elif part["type"] in ("text", "reasoning"):
                part["content"] = text
            out.append(part)
        return out


# -- the call --------------------------------------------------------------------------


def _take_result(call: InferenceCall, result: Any, capture: bool, stream: bool) -> Any:
    """Hand what the SDK returned to ``call``: a message ends it now, a stream or an unread
    raw response is returned wrapped and ends it later."""
    try:
        if hasattr(result, "usage"):
            record_message(call, result, capture)
        elif isinstance(result, _Stream):
            return SyncStream(result, call, MessageAccumulator(capture))
        elif isinstance(result, _AsyncStream):
            return AsyncStream(result, call, MessageAccumulator(capture))
        elif hasattr(result, "http_response"):
            return _take_raw_response(call, result, capture, stream)
    except Exception as exc:
        log_failure_once("reading an Anthropic response", exc)
    call.end()
    return result


def _take_raw_response(call: InferenceCall, response: Any, capture: bool, stream: bool) -> Any:
    is_async = isinstance(response, _AsyncAPIResponse)
    if not stream and response.http_response.is_closed:
        # ``with_raw_response``: the body is already read. The SDK caches what ``parse()``
        # builds, so the user's own ``parse()`` gets this very object at no further cost;
        # the async ``parse()`` is a coroutine, so there the JSON is decoded once more.
        record_message(call, response.http_response.json() if is_async else response.parse(), capture)
        call.end()
        return response
    return (AsyncRawResponse if is_async else RawResponse)(response, call, capture)


def _start(telemetry: Telemetry, request: InferenceRequest) -> tuple[InferenceCall, Any]:
    call = telemetry.start(request)
    token = _OWNED.set(call.span)
    return call, token


def traced_create(stream_kwarg: bool) -> Callable[[Telemetry], Wrapper]:
    """Factory of the wrapper of a synchronous ``create`` / ``parse``."""

    def make(telemetry: Telemetry) -> Wrapper:
        def traced_method(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if _State.telemetry is not telemetry:
                return wrapped(*args, **kwargs)
            stream = stream_kwarg and kwargs.get("stream") is True
            try:
                request = describe(telemetry, instance, kwargs, stream)
            except Exception as exc:
                log_failure_once("describing an Anthropic request", exc)
                return wrapped(*args, **kwargs)
            call, token = _start(telemetry, request)
            try:
                with call.activated():
                    result = wrapped(*args, **kwargs)
            except BaseException as exc:
                call.end(exc)
                raise
            finally:
                _OWNED.reset(token)
            return _take_result(call, result, telemetry.capture_content, stream)

        return traced_method

    return make


def traced_async_create(stream_kwarg: bool) -> Callable[[Telemetry], Wrapper]:
    """Factory of the wrapper of an asynchronous ``create`` / ``parse``."""

    def make(telemetry: Telemetry) -> Wrapper:
        async def traced_method(
            wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            if _State.telemetry is not telemetry:
                return await wrapped(*args, **kwargs)
            stream = stream_kwarg and kwargs.get("stream") is True
            try:
                request = describe(telemetry, instance, kwargs, stream)
            except Exception as exc:
                log_failure_once("describing an Anthropic request", exc)
                return await wrapped(*args, **kwargs)
            call, token = _start(telemetry, request)
            try:
                with call.activated():
                    result = await wrapped(*args, **kwargs)
            except BaseException as exc:
                call.end(exc)
                raise
            finally:
                _OWNED.reset(token)
            return _take_result(call, result, telemetry.capture_content, stream)

        return traced_method

    return make


def _request_slot(manager: Any) -> str:
    # ``MessageStreamManager.__init__`` keeps the request it will send as ``self.__api_request``.
    return f"_{type(manager).__name__.lstrip('_')}__api_request"


def traced_stream(telemetry: Telemetry) -> Wrapper:
    """Wrapper of ``messages.stream()`` (sync and async): the manager it returns sends the
    request on ``__enter__`` / ``__aenter__``, so the call starts there."""

    def traced_method(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        manager = wrapped(*args, **kwargs)
        if _State.telemetry is not telemetry:
            return manager
        try:
            request = describe(telemetry, instance, kwargs, True)
            slot = _request_slot(manager)
            api_request = getattr(manager, slot)
            if callable(api_request):
                setattr(manager, slot, lambda: _send_stream(telemetry, request, api_request))
            else:
                setattr(manager, slot, _AsyncSend(telemetry, request, api_request))
        except Exception as exc:
            log_failure_once("wrapping an Anthropic message stream", exc)
        return manager

    return traced_method


def _send_stream(telemetry: Telemetry, request: InferenceRequest, api_request: Callable[[], Any]) -> Any:
    call, token = _start(telemetry, request)
    try:
        with call.activated():
            raw = api_request()
    except BaseException as exc:
        call.end(exc)
        raise
    finally:
        _OWNED.reset(token)
    return _take_result(call, raw, telemetry.capture_content, True)


class _AsyncSend:
    """The awaitable an async stream manager awaits on ``__aenter__``. Not a coroutine, so a
    manager that is never entered leaves no un-awaited coroutine of ours behind."""

    __slots__ = ("_api_request", "_request", "_telemetry")

    def __init__(self, telemetry: Telemetry, request: InferenceRequest, api_request: Any) -> None:
        self._telemetry = telemetry
        self._request = request
        self._api_request = api_request

    def __await__(self) -> Any:
        return _send_async_stream(self._telemetry, self._request, self._api_request).__await__()


async def _send_async_stream(telemetry: Telemetry, request: InferenceRequest, api_request: Any) -> Any:
    call, token = _start(telemetry, request)
    try:
        with call.activated():
            raw = await api_request
    except BaseException as exc:
        call.end(exc)
        raise
    finally:
        _OWNED.reset(token)
    return _take_result(call, raw, telemetry.capture_content, True)


def manager_exit(stream_attribute: str) -> Callable[[Telemetry], Wrapper]:
    """Factory of the wrapper of a stream manager's ``__exit__`` / ``__aexit__``. The SDK
    closes the stream on exit without the exception, so an exception leaving the ``with``
    block is handed to the span here first (status ERROR, ``error.type``), as the stream
    proxies do for ``with`` on a ``create(stream=True)`` stream."""

    def make(telemetry: Telemetry) -> Wrapper:
        def traced_method(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            try:
                error = args[1] if len(args) > 1 else kwargs.get("exc")
                if isinstance(error, BaseException):
                    raw = getattr(getattr(instance, stream_attribute, None), "_raw_stream", None)
                    if isinstance(raw, SyncStream | AsyncStream):
                        raw._self_end(error)
            except Exception as exc:
                log_failure_once("ending a message stream manager's span", exc)
            return wrapped(*args, **kwargs)

        return traced_method

    return make


def sdk_span(telemetry: Telemetry) -> Wrapper:
    """Wrapper of the SDK's ``start_api_call_span``: for a call traced here, a non-recording
    span with our span's context instead of the SDK's own span."""

    def traced_method(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        owned = _OWNED.get()
        if owned is None:
            return wrapped(*args, **kwargs)
        try:
            options = args[2] if len(args) > 2 else kwargs["options"]
            if options.span_name != SDK_SPAN_NAME:
                return wrapped(*args, **kwargs)
            context = owned.get_span_context()
        except Exception as exc:
            log_failure_once("standing the SDK's own span down", exc)
            return wrapped(*args, **kwargs)
        # An invalid context (our tracer is a no-op): the SDK goes on as without a tracer.
        return trace.NonRecordingSpan(context) if context.is_valid else None

    return traced_method


# -- raw responses ---------------------------------------------------------------------


class _RawResponseBase(wrapt.ObjectProxy):
    """An ``APIResponse`` whose body is yet to be read (``with_streaming_response``, or a
    raw streaming response). Its ``parse()`` records the message, or returns the stream
    wrapped; ``close()`` (the SDK's context manager calls it) ends the call with what was
    seen. A body read only as bytes or lines ends the call without usage."""

    def __init__(self, wrapped: Any, call: InferenceCall, capture: bool) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_capture = capture
        self._self_stream: Any = None
        self._self_done = weakref.finalize(self, call.end)

    def _self_take(self, parsed: Any) -> Any:
        if self._self_stream is not None and self._self_stream.__wrapped__ is parsed:
            return self._self_stream
        if not self._self_done.alive:
            return parsed
        try:
            if hasattr(parsed, "usage"):
                record_message(self._self_call, parsed, self._self_capture)
                self._self_end()
            elif isinstance(parsed, (_Stream, _AsyncStream)):
                # The stream wrapper owns the end from here on.
                self._self_done.detach()
                cls = SyncStream if isinstance(parsed, _Stream) else AsyncStream
                self._self_stream = cls(parsed, self._self_call, MessageAccumulator(self._self_capture))
                return self._self_stream
        except Exception as exc:
            log_failure_once("reading an Anthropic raw response", exc)
        return parsed

    def _self_end(self) -> None:
        if self._self_done.alive:
            self._self_done.detach()
            self._self_call.end()


class RawResponse(_RawResponseBase):
    def parse(self, **kwargs: Any) -> Any:
        return self._self_take(self.__wrapped__.parse(**kwargs))

    def close(self) -> None:
        try:
            if self._self_stream is not None:
                self._self_stream.close()
            else:
                self.__wrapped__.close()
        finally:
            self._self_end()


class AsyncRawResponse(_RawResponseBase):
    async def parse(self, **kwargs: Any) -> Any:
        return self._self_take(await self.__wrapped__.parse(**kwargs))

    async def close(self) -> None:
        try:
            if self._self_stream is not None:
                await self._self_stream.close()
            else:
                await self.__wrapped__.close()
        finally:
            self._self_end()
