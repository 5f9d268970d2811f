"""A loopback OTLP/HTTP endpoint that keeps every span it is sent: test infrastructure
for seeing what ``opentelemetry-instrument`` exported, with no collector in between.

Built on ``http.server`` on purpose: it is a fixture, not the product (the product's
receiver is :mod:`otel_llm.collector.receiver`). Decoding is the collector's.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from otel_llm.collector.otlp import OtlpDecodeError, OtlpSpan, decode_traces, iter_spans

MAX_BODY_BYTES = 16 * 1024 * 1024


class TraceSink:
    """Use as a context manager; ``endpoint`` is what ``OTEL_EXPORTER_OTLP_ENDPOINT`` takes."""

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
