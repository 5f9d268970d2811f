"""OTLP/HTTP trace intake: decode export requests into plain span records.

This is the small, loopback-only core the demo and the end-to-end tests use to see
what ``opentelemetry-instrument`` exported; the collector sidecar builds its receiver
on the same decoding. Messages are parsed with ``opentelemetry-proto``.

- :func:`decode_traces` turns an ``application/x-protobuf`` body (optionally gzip) into
  an ``ExportTraceServiceRequest``; malformed input raises :class:`OtlpDecodeError`.
- :func:`iter_spans` flattens it into :class:`OtlpSpan` records with typed attributes.
- :class:`TraceSink` is an HTTP server on 127.0.0.1 that accepts ``POST /v1/traces``
  and keeps what it received, for tests and the demo.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

MAX_BODY_BYTES = 16 * 1024 * 1024


class OtlpDecodeError(ValueError):
    """The body is not a valid OTLP trace export request."""


def decode_traces(body: bytes, content_encoding: str | None = None) -> ExportTraceServiceRequest:
    """Parse a protobuf ``ExportTraceServiceRequest``, gunzipping it first if asked."""
    if content_encoding and content_encoding.lower() == "gzip":
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError, zlib.error) as exc:
            raise OtlpDecodeError(f"body is not valid gzip: {exc}") from exc
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise OtlpDecodeError(f"body is not an OTLP ExportTraceServiceRequest: {exc}") from exc
    return request


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
    """One span from an export request, with its resource and scope."""

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
                    status_message=span.status.message,
                    events=[(event.name, attributes(event.attributes)) for event in span.events],
                )


class TraceSink:
    """A loopback OTLP/HTTP endpoint that keeps every span it is sent.

    Use as a context manager; ``endpoint`` is what ``OTEL_EXPORTER_OTLP_ENDPOINT`` takes.
    """

    def __init__(self) -> None:
        self._spans: list[OtlpSpan] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if self.path != "/v1/traces":
                    self._reply(404, b"")
                    return
                if length > MAX_BODY_BYTES:
                    self._reply(413, b"")
                    return
                body = self.rfile.read(length)
                try:
                    request = decode_traces(body, self.headers.get("Content-Encoding"))
                except OtlpDecodeError as exc:
                    self._reply(400, str(exc).encode(), "text/plain")
                    return
                spans = list(iter_spans(request))
                with sink._lock:
                    sink._spans.extend(spans)
                self._reply(200, ExportTraceServiceResponse().SerializeToString())

            def _reply(self, status: int, body: bytes, content_type: str = "application/x-protobuf") -> None:
                head = (
                    f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}\r\n"
                    f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode()
                self.wfile.write(head + body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="otel-llm-trace-sink", daemon=True
        )

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def spans(self) -> list[OtlpSpan]:
        with self._lock:
            return list(self._spans)

    def __enter__(self) -> TraceSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
