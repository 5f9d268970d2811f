"""The simulator's HTTP server and its scripting API (:class:`Simulator`)."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from otel_llm.sim import anthropic_wire, openai_wire
from otel_llm.sim.cache import OPENAI_CACHE_TTL_SECONDS, AnthropicCache, OpenAICache
from otel_llm.sim.replies import Reply
from otel_llm.sim.wire import Plan, SimRequest, dumps

Script = Callable[[SimRequest], "Reply | None"]

_REDACTED_HEADERS = frozenset({"authorization", "x-api-key", "api-key"})
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    529: "Site Overloaded",
}


class Simulator:
    """A fake OpenAI + Anthropic API on ``127.0.0.1``, for tests, examples and benchmarks.

    It starts serving on construction (a free port unless ``port`` is given) on daemon threads,
    and stops on :meth:`close` or at the end of a ``with`` block. All methods are thread safe.

    ``ttft`` (seconds before the first byte) and ``per_token`` (seconds per further output token
    / stream chunk) default to zero; ``default_output_tokens`` is the length of generated replies;
    ``default_reasoning_tokens`` is what reasoning models (OpenAI o-series / gpt-5+, Anthropic with
    thinking enabled) report unless a reply says otherwise; ``openai_cache_ttl`` is OpenAI's idle
    cache lifetime; ``min_cache_tokens`` overrides Anthropic's minimum cacheable prefix by
    model-name substring; ``clock`` (monotonic seconds) drives cache expiry together with
    :meth:`advance`; ``keep_requests`` bounds :attr:`requests` to the latest N (``None``: all) while
    :attr:`request_count` counts everything. ``ttft``, ``per_token``, ``default_output_tokens`` and
    ``default_reasoning_tokens`` are plain attributes and may be changed while serving.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ttft: float = 0.0,
        per_token: float = 0.0,
        default_output_tokens: int = 20,
        default_reasoning_tokens: int = 16,
        openai_cache_ttl: float = OPENAI_CACHE_TTL_SECONDS,
        min_cache_tokens: Mapping[str, int] | None = None,
        clock: Callable[[], float] | None = None,
        keep_requests: int | None = 10_000,
    ) -> None:
        self.ttft = ttft
        self.per_token = per_token
        self.default_output_tokens = default_output_tokens
        self.default_reasoning_tokens = default_reasoning_tokens
        self._clock = clock or time.monotonic
        self._offset = 0.0
        self._lock = threading.RLock()
        self._queue: deque[Reply] = deque()
        self._script: Script | None = None
        self._requests: deque[SimRequest] = deque(maxlen=keep_requests)
        self._count = 0
        self._ids = 0
        self.openai_cache = OpenAICache(openai_cache_ttl)
        self.anthropic_cache = AnthropicCache(dict(min_cache_tokens) if min_cache_tokens else None)
        self._responses: dict[str, Any] = {}
        self._fingerprints: dict[str, anthropic_wire.Fingerprint] = {}
        self._server = _Server((host, port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"otel-llm-sim:{self.port}",
            daemon=True,
        )
        self._closed = False
        self._thread.start()

    # ------------------------------------------------------------------ addresses

    @property
    def port(self) -> int:
        """The TCP port being served."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: the Anthropic client's ``base_url``."""
        host = self._server.server_address[0]
        return f"http://{host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """``url + "/v1"``: the OpenAI client's ``base_url``."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """Same as :attr:`url`."""
        return self.url

    # ------------------------------------------------------------------ scripting

    def enqueue(self, *replies: Reply) -> None:
        """Queue replies; each model call (any provider, embeddings included) takes the next one.

        When the queue is empty the :meth:`script` function answers, else a generated reply.
        """
        with self._lock:
            self._queue.extend(replies)

    def script(self, fn: Script | None) -> None:
        """Answer calls the queue does not cover with ``fn(request)``; ``None`` from it (or
        ``fn=None``) means the generated default reply."""
        with self._lock:
            self._script = fn

    @property
    def queued(self) -> int:
        """Replies still waiting in the queue."""
        with self._lock:
            return len(self._queue)

    @property
    def requests(self) -> list[SimRequest]:
        """A copy of the requests served so far (the latest ``keep_requests``), oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        """Number of HTTP requests served so far (model calls, retrievals, everything)."""
        with self._lock:
            return self._count

    @property
    def last_request(self) -> SimRequest | None:
        """The most recent request, or ``None``."""
        with self._lock:
            return self._requests[-1] if self._requests else None

    def reset(self) -> None:
        """Forget queued replies, the script, recorded requests, ids, caches, stored responses and
        diagnostics, and any time added with :meth:`advance`."""
        with self._lock:
            self._queue.clear()
            self._script = None
            self._requests.clear()
            self._count = 0
            self._ids = 0
            self.openai_cache.clear()
            self.anthropic_cache.clear()
            self._responses.clear()
            self._fingerprints.clear()
            self._offset = 0.0

    def advance(self, seconds: float) -> None:
        """Move the cache clock forward (no sleeping): entries idle longer than their TTL expire."""
        with self._lock:
            self._offset += seconds

    def now(self) -> float:
        """The cache clock: ``clock()`` plus everything passed to :meth:`advance`."""
        return self._clock() + self._offset

    def new_id(self, prefix: str) -> str:
        """A fresh object id with the provider's prefix (``msg_``, ``chatcmpl-``, ...)."""
        with self._lock:
            self._ids += 1
            return f"{prefix}sim{self._ids:010d}"

    def wall_time(self) -> int:
        """Unix seconds for ``created`` fields."""
        return int(time.time())

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Stop serving and drop open connections. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.drop_connections()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Simulator(url={self.url!r})"

    # ------------------------------------------------------------------ serving

    def _next_reply(self, request: SimRequest) -> Reply:
        if self._queue:
            return self._queue.popleft()
        if self._script is not None:
            reply = self._script(request)
            if reply is not None:
                return reply
        return Reply()

    def _dispatch(self, request: SimRequest) -> Plan:
        route = request.path.removeprefix("/v1")
        method = request.method
        if method == "GET" and route.startswith("/responses/"):
            return openai_wire.responses_retrieve(route.removeprefix("/responses/"), self._responses)
        if method != "POST" or not isinstance(request.body, dict):
            return self._not_found(request) if method != "POST" else self._bad_request(request)
        if route == "/messages/count_tokens":
            return anthropic_wire.count_tokens_plan(request)
        handlers: dict[str, Callable[[Reply], Plan]] = {
            "/chat/completions": lambda r: openai_wire.chat_completion(self, request, r),
            "/responses": lambda r: openai_wire.responses_create(self, request, r, self._responses),
            "/embeddings": lambda r: openai_wire.embeddings(self, request, r),
            "/messages": lambda r: anthropic_wire.messages_create(self, request, r, self._fingerprints),
        }
        handler = handlers.get(route)
        if handler is None:
            return self._not_found(request)
        reply = self._next_reply(request)
        plan = handler(reply)
        if plan.status >= 400 and reply.retry_after is not None:
            plan.headers["retry-after"] = str(max(1, round(reply.retry_after)))
            plan.headers["retry-after-ms"] = str(round(reply.retry_after * 1000))
        return plan

    def _not_found(self, request: SimRequest) -> Plan:
        message = f"Unknown route {request.method} {request.path} (otel-llm simulator)"
        return self._error(request, 404, message)

    def _bad_request(self, request: SimRequest) -> Plan:
        return self._error(request, 400, "Request body must be a JSON object")

    def _error(self, request: SimRequest, status: int, message: str) -> Plan:
        if request.provider == "anthropic":
            return Plan(
                status=status, body=anthropic_wire.error_body(status, message, None, self.new_id("req_"))
            )
        return Plan(status=status, body=openai_wire.error_body(status, message))

    def _serve(self, handler: _Handler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = split.path
        provider = "anthropic" if path.removeprefix("/v1").startswith("/messages") else "openai"
        headers = {
            k.lower(): ("<redacted>" if k.lower() in _REDACTED_HEADERS else v)
            for k, v in handler.headers.items()
        }
        request = SimRequest(handler.command, path, dict(parse_qsl(split.query)), body, headers, provider)
        with self._lock:
            self._requests.append(request)
            self._count += 1
            try:
                plan = self._dispatch(request)
            except Exception as exc:  # a bug or a failing script: answer 500 and say why
                plan = self._error(request, 500, f"otel-llm simulator failed: {exc!r}")
        _send(handler, plan, self.ttft, self.per_token)


def _status_line(status: int) -> bytes:
    return f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n".encode()


def _header_bytes(headers: Mapping[str, str]) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode("latin-1")


def _send(handler: _Handler, plan: Plan, ttft: float, per_token: float) -> None:
    try:
        if plan.events is None:
            _send_json(handler, plan, ttft, per_token)
        else:
            _send_stream(handler, plan, ttft, per_token)
    except (BrokenPipeError, ConnectionResetError):
        handler.close_connection = True


def _send_json(handler: _Handler, plan: Plan, ttft: float, per_token: float) -> None:
    delay = ttft + per_token * plan.output_tokens if plan.status < 400 else 0.0
    if delay > 0:
        time.sleep(delay)
    payload = dumps(plan.body).encode()
    headers = {
        "content-type": "application/json",
        "content-length": str(len(payload)),
        **plan.headers,
    }
    if handler.close_connection:
        headers["connection"] = "close"
    handler.wfile.write(_status_line(plan.status) + _header_bytes(headers) + b"\r\n" + payload)


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _send_stream(handler: _Handler, plan: Plan, ttft: float, per_token: float) -> None:
    assert plan.events is not None
    headers = {"cache-control": "no-cache", **plan.headers, "transfer-encoding": "chunked"}
    if ttft > 0:
        time.sleep(ttft)
    pending = _status_line(plan.status) + _header_bytes(headers) + b"\r\n"
    first_token_sent = False
    for index, event in enumerate(plan.events):
        if plan.fail_after is not None and index >= plan.fail_after:
            if plan.fail_mode == "event" and plan.fail_event is not None:
                handler.wfile.write(pending + _chunk(plan.fail_event.encode()) + b"0\r\n\r\n")
            else:
                if pending:
                    handler.wfile.write(pending)
                handler.close_connection = True
                with contextlib.suppress(OSError):
                    handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if event.tokens:
            if first_token_sent and per_token > 0:
                time.sleep(per_token * event.tokens)
            first_token_sent = True
        # The last event goes out with the terminating chunk, so a client that stops reading at
        # the final event (the OpenAI SDK stops at [DONE]) still finds the body complete.
        tail = b"0\r\n\r\n" if index == len(plan.events) - 1 else b""
        handler.wfile.write(pending + _chunk(event.encode()) + tail)
        pending = b""
    if pending:
        handler.wfile.write(pending + b"0\r\n\r\n")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def do_POST(self) -> None:
        self.server.simulator._serve(self)

    def do_GET(self) -> None:
        self.server.simulator._serve(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the simulator records requests in ``Simulator.requests`` instead."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        self.simulator = simulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up (a closed stream, a dropped pool connection) are normal here."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)

    def drop_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
