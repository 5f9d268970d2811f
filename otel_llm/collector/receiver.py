"""The OTLP receiver: OTLP/HTTP on aiohttp and OTLP/gRPC on grpcio, as the OTLP
specification says.

HTTP (``/v1/traces``, ``/v1/metrics``, ``/v1/logs``): ``application/x-protobuf`` or
``application/json`` (OTLP/JSON), ``Content-Encoding: gzip`` or none. The answer is an
``Export*ServiceResponse`` in the request's encoding; ``partial_success`` counts spans
refused for good. Errors: 400 with a ``google.rpc.Status`` saying what was wrong
(malformed body), 401 (bearer token), 413 (over ``max_request_bytes`` after
decompression: inflating stops at the limit, so a gzip bomb costs nothing), 415
(content type), 503 + ``Retry-After`` when the collector must shed load (storage queue
full or too many requests in flight).

gRPC (``TraceService``, ``MetricsService``, ``LogsService`` from ``opentelemetry-proto``):
gzip is negotiated by grpcio; a message over the limit is RESOURCE_EXHAUSTED; a malformed
one INVALID_ARGUMENT with the reason; a bad token UNAUTHENTICATED; shedding load is
UNAVAILABLE with a ``google.rpc.RetryInfo`` in ``grpc-status-details-bin`` (and in
``google.rpc.retryinfo-bin``, where the Python OTLP exporter reads it).

Both hand decoded requests to :class:`Ingest` (implemented by the service).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import grpc
from aiohttp import web
from google.protobuf import duration_pb2, json_format
from google.protobuf.any_pb2 import Any as AnyMessage
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from otel_llm.collector.config import OtlpReceiverConfig
from otel_llm.collector.otlp import RESPONSES, BodyTooLarge, OtlpDecodeError, Signal, decode, read_body

__all__ = ["ExportResult", "Ingest", "Overloaded", "check_token", "http_routes", "start_grpc"]

log = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class Overloaded(Exception):
    """The collector cannot take this request now; the sender should retry later."""


@dataclass(frozen=True, slots=True)
class ExportResult:
    rejected: int = 0
    message: str = ""


class Ingest(Protocol):
    def begin(self) -> None:
        """Take one of the slots for requests in flight, before the body is read (never
        blocks); raises :class:`Overloaded` when none is free. :meth:`end` gives it back."""
        ...

    def end(self) -> None: ...

    def export(self, signal: Signal, message: Message, raw: bytes | None, protocol: str) -> ExportResult:
        """Process one decoded export request (in a worker thread); raises :class:`Overloaded`."""
        ...


def check_token(expected: str | None, header: str | None) -> bool:
    """Constant-time bearer-token check; always true when no token is configured."""
    if expected is None:
        return True
    # The scheme name is case-insensitive (RFC 9110, 11.1).
    if not header or header[:7].lower() != "bearer ":
        return False
    return hmac.compare_digest(header[7:].strip().encode(), expected.encode())


def response_message(signal: Signal, result: ExportResult) -> Message:
    response = RESPONSES[signal]()
    if result.rejected or result.message:
        partial = response.partial_success
        field = {
            "traces": "rejected_spans",
            "metrics": "rejected_data_points",
            "logs": "rejected_log_records",
        }
        setattr(partial, field[signal], result.rejected)
        partial.error_message = result.message
    return response


# -- HTTP ------------------------------------------------------------------------------


def _encode(message: Message, as_json: bool) -> bytes:
    if as_json:
        return json.dumps(json_format.MessageToDict(message), separators=(",", ":")).encode()
    return message.SerializeToString()


def _status(
    http: int, code: int, text: str, as_json: bool, headers: dict[str, str] | None = None
) -> web.Response:
    body = _encode(status_pb2.Status(code=code, message=text), as_json)
    return web.Response(status=http, body=body, content_type=JSON if as_json else PROTOBUF, headers=headers)


def http_routes(
    config: OtlpReceiverConfig,
    ingest: Ingest,
    executor: ThreadPoolExecutor,
    on_error: Callable[[str, int], None] | None = None,
) -> list[web.RouteDef]:
    """The ``POST /v1/{traces,metrics,logs}`` routes."""
    limit = config.max_request_bytes
    retry_after = str(config.retry_after)

    def handler(signal: Signal) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def export(request: web.Request) -> web.StreamResponse:
            kind = (request.content_type or "").lower()
            as_json = kind == JSON
            if kind not in (PROTOBUF, JSON):
                return _status(
                    415,
                    code_pb2.INVALID_ARGUMENT,
                    f"unsupported Content-Type {kind!r}: send {PROTOBUF} or {JSON}",
                    False,
                )
            length = request.content_length
            if length is not None and length > limit:
                _count(signal, 413)
                return _status(
                    413,
                    code_pb2.RESOURCE_EXHAUSTED,
                    f"body of {length} bytes is over the {limit}-byte limit",
                    as_json,
                )
            # A slot is taken before the body is read: requests queued for a worker
            # would each hold a body of up to max_request_bytes in memory.
            try:
                ingest.begin()
            except Overloaded as exc:
                _count(signal, 503)
                return _status(503, code_pb2.UNAVAILABLE, str(exc), as_json, {"Retry-After": retry_after})
            try:
                return await _read_and_export(request, signal, as_json)
            finally:
                ingest.end()

        return export

    async def _read_and_export(request: web.Request, signal: Signal, as_json: bool) -> web.StreamResponse:
        encoding = request.headers.get("Content-Encoding")
        try:
            body = await read_body(request.content.iter_chunked(1 << 16), encoding, limit)
        except BodyTooLarge as exc:
            _count(signal, 413)
            return _status(413, code_pb2.RESOURCE_EXHAUSTED, str(exc), as_json)
        except OtlpDecodeError as exc:
            _count(signal, 400)
            return _status(400, code_pb2.INVALID_ARGUMENT, str(exc), as_json)
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(executor, _decode_and_export, ingest, signal, body, as_json)
        except OtlpDecodeError as exc:
            _count(signal, 400)
            return _status(400, code_pb2.INVALID_ARGUMENT, str(exc), as_json)
        except Overloaded as exc:  # counted by the ingest
            return _status(503, code_pb2.UNAVAILABLE, str(exc), as_json, {"Retry-After": retry_after})
        return web.Response(
            body=_encode(response_message(signal, result), as_json),
            content_type=JSON if as_json else PROTOBUF,
        )

    def _count(signal: str, status: int) -> None:
        if on_error is not None:
            on_error(signal, status)

    return [web.post(f"/v1/{signal}", handler(signal)) for signal in ("traces", "metrics", "logs")]


def _decode_and_export(ingest: Ingest, signal: Signal, body: bytes, as_json: bool) -> ExportResult:
    message = decode(signal, body, json_body=as_json)
    return ingest.export(signal, message, None if as_json else body, "http")


# -- gRPC ------------------------------------------------------------------------------


def _retry_metadata(seconds: int) -> tuple[tuple[str, bytes], ...]:
    info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds))
    detail = AnyMessage()
    detail.Pack(info)
    status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message="collector overloaded", details=[detail])
    return (
        ("grpc-status-details-bin", status.SerializeToString()),
        ("google.rpc.retryinfo-bin", info.SerializeToString()),
    )


class _Export:
    """The ``Export`` method of one OTLP service. Requests arrive as bytes and are
    decoded here, so a malformed one is INVALID_ARGUMENT with a message (grpcio's own
    deserializer would answer INTERNAL), and the bytes can be forwarded as they came."""

    def __init__(
        self,
        signal: Signal,
        ingest: Ingest,
        token: str | None,
        retry_after: int,
        on_error: Callable[[str, int], None] | None,
    ) -> None:
        self.signal = signal
        self.ingest = ingest
        self.token = token
        self.retry_after = retry_after
        self.on_error = on_error

    def __call__(self, body: bytes, context: grpc.ServicerContext) -> Message:
        if self.token is not None:
            header = dict(context.invocation_metadata()).get("authorization")
            if not check_token(self.token, header):
                self._refused(401)
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        try:
            message = decode(self.signal, body)
        except OtlpDecodeError as exc:
            self._refused(400)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            self.ingest.begin()
        except Overloaded as exc:
            self._refused(503)
            context.set_trailing_metadata(_retry_metadata(self.retry_after))
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        try:
            result = self.ingest.export(self.signal, message, body, "grpc")
        except Overloaded as exc:
            context.set_trailing_metadata(_retry_metadata(self.retry_after))
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        finally:
            self.ingest.end()
        return response_message(self.signal, result)

    def _refused(self, status: int) -> None:
        if self.on_error is not None:
            self.on_error(self.signal, status)


def start_grpc(
    config: OtlpReceiverConfig,
    ingest: Ingest,
    token: str | None,
    on_error: Callable[[str, int], None] | None = None,
) -> tuple[grpc.Server, int]:
    """Start the gRPC server (``TraceService``, ``MetricsService``, ``LogsService``, named
    by the opentelemetry-proto service descriptors); returns it and the bound port
    (``:0`` picks a free one)."""
    options = [
        ("grpc.max_receive_message_length", config.max_request_bytes),
        ("grpc.max_send_message_length", 4 * 1024 * 1024),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.server(
        ThreadPoolExecutor(config.grpc_workers, thread_name_prefix="otel-llm-grpc"), options=options
    )
    services = (
        ("traces", trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"]),
        ("metrics", metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"]),
        ("logs", logs_service_pb2.DESCRIPTOR.services_by_name["LogsService"]),
    )
    handlers = []
    for signal, service in services:
        export = _Export(signal, ingest, token, config.retry_after, on_error)
        method = grpc.unary_unary_rpc_method_handler(
            export, request_deserializer=None, response_serializer=_serialize
        )
        handlers.append(grpc.method_handlers_generic_handler(service.full_name, {"Export": method}))
    server.add_generic_rpc_handlers(handlers)
    port = server.add_insecure_port(config.grpc.endpoint)
    if port == 0:
        raise OSError(f"cannot listen for OTLP/gRPC on {config.grpc.endpoint}")
    server.start()
    return server, port


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()
