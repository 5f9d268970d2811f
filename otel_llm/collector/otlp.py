"""OTLP decoding: request bodies in, messages and plain span records out.

What the receiver needs from the OTLP specification, in one place:

- :func:`read_body` inflates a gzip body while it streams in and stops at the limit (a
  gzip bomb costs at most ``limit`` bytes of memory), raising :class:`BodyTooLarge`.
- :func:`decode` parses an export request of any signal from protobuf or from OTLP/JSON.
  OTLP/JSON differs from protobuf's canonical JSON mapping in one way that matters:
  trace and span ids are hex strings, not base64 (enums are integers, which the
  mapping accepts). Malformed input raises :class:`OtlpDecodeError` saying what is wrong.
- :func:`from_resource_spans` / :func:`from_export_request` turn trace messages into
  :class:`~otel_llm.storage.records.SpanRecord` rows (attribute values as strings,
  the way the upstream ClickHouse exporter stores them), credentials replaced by
  ``[redacted]`` (:mod:`otel_llm.redaction`).
- :func:`iter_spans` flattens a request into :class:`OtlpSpan` records with typed
  attribute values, for readers that want the values rather than rows.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from otel_llm.redaction import REDACTED, is_secret_name, redact_text
from otel_llm.storage.records import SPAN_KINDS, STATUS_CODES, SpanEvent, SpanLink, SpanRecord, attribute_str

__all__ = [
    "REQUESTS",
    "RESPONSES",
    "BodyTooLarge",
    "OtlpDecodeError",
    "OtlpSpan",
    "Signal",
    "any_value",
    "attributes",
    "decode",
    "decode_traces",
    "from_export_request",
    "from_resource_spans",
    "inflate",
    "iter_spans",
    "read_body",
]

Signal = Literal["traces", "metrics", "logs"]
REQUESTS: dict[str, type[Message]] = {
    "traces": ExportTraceServiceRequest,
    "metrics": ExportMetricsServiceRequest,
    "logs": ExportLogsServiceRequest,
}
RESPONSES: dict[str, type[Message]] = {
    "traces": ExportTraceServiceResponse,
    "metrics": ExportMetricsServiceResponse,
    "logs": ExportLogsServiceResponse,
}

# OTLP/JSON fields that carry ids as hex (protobuf's JSON mapping would want base64).
_HEX_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})
_ID_LENGTHS = {"traceId": 16, "trace_id": 16}


class OtlpDecodeError(ValueError):
    """The body is not a valid OTLP export request; the message says why (HTTP 400)."""


class BodyTooLarge(ValueError):
    """The body, after decompression, is over the limit (HTTP 413)."""


# -- bodies ----------------------------------------------------------------------------


class _Inflater:
    """Gunzips chunk by chunk, never producing more than ``limit`` bytes in total."""

    def __init__(self, limit: int) -> None:
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._limit = limit
        self._out = bytearray()

    def feed(self, chunk: bytes) -> None:
        data = chunk
        while data:
            room = self._limit - len(self._out) + 1  # one byte over tells "too large"
            try:
                piece = self._inflate.decompress(data, room)
            except zlib.error as exc:
                raise OtlpDecodeError(f"body is not valid gzip: {exc}") from None
            self._out += piece
            if len(self._out) > self._limit:
                raise BodyTooLarge(f"body inflates to more than {self._limit} bytes")
            data = self._inflate.unconsumed_tail
            if self._inflate.eof:
                if self._inflate.unused_data.strip(b"\0"):
                    # Concatenated gzip members are valid gzip: continue with the next one.
                    rest = self._inflate.unused_data
                    self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    data = rest
                else:
                    return

    def result(self) -> bytes:
        if not self._inflate.eof:
            raise OtlpDecodeError("body is not valid gzip: the stream ends early")
        return bytes(self._out)


def inflate(body: bytes, limit: int) -> bytes:
    """Gunzip ``body``; raises :class:`BodyTooLarge` past ``limit`` bytes of output."""
    inflater = _Inflater(limit)
    inflater.feed(body)
    return inflater.result()


async def read_body(chunks: AsyncIterator[bytes], encoding: str | None, limit: int) -> bytes:
    """Read a request body from ``chunks`` (decoded per ``Content-Encoding``: identity or
    gzip), ``limit`` bytes at most either way."""
    encoding = (encoding or "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise OtlpDecodeError(f"unsupported Content-Encoding {encoding!r}: send identity or gzip")
    if encoding == "gzip":
        inflater = _Inflater(limit)
        received = 0
        async for chunk in chunks:
            received += len(chunk)
            if received > limit:
                raise BodyTooLarge(f"compressed body is larger than {limit} bytes")
            inflater.feed(chunk)
        return inflater.result()
    out = bytearray()
    async for chunk in chunks:
        out += chunk
        if len(out) > limit:
            raise BodyTooLarge(f"body is larger than {limit} bytes")
    return bytes(out)


# -- messages --------------------------------------------------------------------------


def _hex_to_base64(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise OtlpDecodeError(f"{name}: expected a hex string, got {type(value).__name__}")
    if not value:
        return ""
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise OtlpDecodeError(f"{name}: {value[:40]!r} is not hex") from None
    expected = _ID_LENGTHS.get(name, 8)
    if len(raw) != expected:
        raise OtlpDecodeError(f"{name}: expected {expected * 2} hex digits, got {len(value)}")
    return base64.b64encode(raw).decode()


def _ids_to_base64(node: Any, depth: int = 0) -> Any:
    """OTLP/JSON -> protobuf JSON mapping: hex ids become base64, in place."""
    if depth > 64:
        raise OtlpDecodeError("JSON is nested too deeply")
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _HEX_ID_FIELDS:
                node[key] = _hex_to_base64(key, value)
            elif isinstance(value, dict | list):
                _ids_to_base64(value, depth + 1)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict | list):
                _ids_to_base64(item, depth + 1)
    return node


def decode(signal: Signal, body: bytes, json_body: bool = False) -> Message:
    """Parse an export request of ``signal`` (protobuf, or OTLP/JSON when ``json_body``)."""
    message = REQUESTS[signal]()
    if json_body:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise OtlpDecodeError(f"body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise OtlpDecodeError(f"expected a JSON object, got {type(data).__name__}")
        try:
            json_format.ParseDict(_ids_to_base64(data), message, ignore_unknown_fields=True)
        except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
            raise OtlpDecodeError(f"not an OTLP/JSON {message.DESCRIPTOR.name}: {exc}") from None
        return message
    try:
        message.ParseFromString(body)
    except (DecodeError, RecursionError) as exc:
        raise OtlpDecodeError(f"body is not a protobuf {message.DESCRIPTOR.name}: {exc}") from None
    return message


def decode_traces(body: bytes, content_encoding: str | None = None) -> ExportTraceServiceRequest:
    """A protobuf ``ExportTraceServiceRequest``, gunzipped first if asked (no size limit:
    for trusted bodies, e.g. test fixtures)."""
    if content_encoding and content_encoding.lower() == "gzip":
        body = inflate(body, 1 << 40)
    return decode("traces", body)  # type: ignore[return-value]


# -- typed values ----------------------------------------------------------------------


def any_value(value: AnyValue) -> Any:
    """An OTLP ``AnyValue`` as the Python value it carries."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, kind)


def attributes(key_values: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in key_values}


@dataclass(frozen=True, slots=True)
class OtlpSpan:
    """One span from an export request, with its resource and scope, values typed."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    start_time_unix_nano: int
    end_time_unix_nano: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope_name: str
    scope_version: str
    status_code: int
    status_message: str
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def iter_spans(request: ExportTraceServiceRequest) -> Iterator[OtlpSpan]:
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield OtlpSpan(
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(),
                    name=span.name,
                    kind=span.kind,
                    start_time_unix_nano=span.start_time_unix_nano,
                    end_time_unix_nano=span.end_time_unix_nano,
                    attributes=attributes(span.attributes),
                    resource=resource,
                    scope_name=scope_spans.scope.name,
                    scope_version=scope_spans.scope.version,
                    status_code=span.status.code,
                    status_message=redact_text(span.status.message) if span.status.message else "",
                    events=[(event.name, attributes(event.attributes)) for event in span.events],
                )


# -- span records ----------------------------------------------------------------------


def _double_str(value: float) -> str:
    """``attribute_str(value)`` for a double, with fast paths for the usual shapes
    (``0.000177``, ``6.96e-05`` -> ``6.96e-5``, ``5.0`` -> ``5``); large values, NaN,
    infinities and -0 take the full rule."""
    text = repr(value)
    if "n" in text or text == "-0.0":
        return attribute_str(value)
    if "e" in text:
        if not -1.0 < value < 1.0:
            return attribute_str(value)
        mantissa, _, exponent = text.partition("e")  # small: the exponent is negative
        return f"{mantissa}e-{exponent[1:].lstrip('0')}"
    return text[:-2] if text.endswith(".0") else text


def _kv_strings(pairs: Iterable[Any]) -> dict[str, str]:
    """Attributes as the strings the ClickHouse exporter stores. This loop is most of a
    receiver's CPU: a non-empty string (most values) costs one attribute read, the other
    common kinds are converted inline, the rest by ``attribute_str``."""
    out = {}
    plain = _PLAIN_KEYS
    for kv in pairs:
        key = kv.key
        value = kv.value
        text = value.string_value
        if text:
            out[key] = text
        else:
            kind = value.WhichOneof("value")
            if kind == "int_value":
                out[key] = str(value.int_value)
            elif kind == "double_value":
                out[key] = _double_str(value.double_value)
            elif kind == "bool_value":
                out[key] = "true" if value.bool_value else "false"
            elif kind == "string_value":
                out[key] = ""
            else:
                out[key] = attribute_str(any_value(value))
        if key not in plain:
            _scrub(out, key)
    return out


# Secrets never reach a table: attributes named like a credential are replaced whole,
# free text that may quote one (URLs, exception messages) has the key-shaped parts
# replaced. Names seen to be neither are remembered, so most attributes cost one lookup.
_TEXT_KEYS = frozenset(
    {"url.full", "url.query", "http.url", "http.target", "exception.message", "exception.stacktrace"}
)
_PLAIN_KEYS: set[str] = set()
_MAX_PLAIN_KEYS = 1 << 16


def _scrub(attributes: dict[str, str], key: str) -> None:
    if is_secret_name(key):
        attributes[key] = REDACTED
    elif key in _TEXT_KEYS:
        attributes[key] = redact_text(attributes[key])
    elif len(_PLAIN_KEYS) < _MAX_PLAIN_KEYS:
        _PLAIN_KEYS.add(key)


def from_resource_spans(resource_spans: Any) -> list[SpanRecord]:
    """From one ``opentelemetry.proto.trace.v1.ResourceSpans`` message. Every span of
    it shares one resource dict (the writer packs it once)."""
    resource = _kv_strings(resource_spans.resource.attributes)
    service = resource.get("service.name", "")
    out = []
    for scope_spans in resource_spans.scope_spans:
        scope_name = scope_spans.scope.name
        scope_version = scope_spans.scope.version
        for span in scope_spans.spans:
            start = span.start_time_unix_nano
            out.append(
                SpanRecord(
                    timestamp_ns=start,
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(),
                    trace_state=span.trace_state,
                    span_name=span.name,
                    span_kind=SPAN_KINDS[span.kind] if 0 <= span.kind < len(SPAN_KINDS) else "Unspecified",
                    service_name=service,
                    resource_attributes=resource,
                    scope_name=scope_name,
                    scope_version=scope_version,
                    span_attributes=_kv_strings(span.attributes),
                    duration_ns=max(span.end_time_unix_nano - start, 0),
                    status_code=STATUS_CODES[span.status.code] if 0 <= span.status.code < 3 else "Unset",
                    status_message=redact_text(span.status.message) if span.status.message else "",
                    events=[
                        SpanEvent(e.time_unix_nano, e.name, _kv_strings(e.attributes)) for e in span.events
                    ]
                    if span.events
                    else [],
                    links=[
                        SpanLink(
                            link.trace_id.hex(),
                            link.span_id.hex(),
                            link.trace_state,
                            _kv_strings(link.attributes),
                        )
                        for link in span.links
                    ]
                    if span.links
                    else [],
                )
            )
    return out


def from_export_request(request: Any) -> list[SpanRecord]:
    """From an ``ExportTraceServiceRequest`` (all its resource spans)."""
    return [record for rs in request.resource_spans for record in from_resource_spans(rs)]
