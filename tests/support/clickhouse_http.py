"""A loopback ClickHouse HTTP server on the real engine (chDB), for tests.

This machine has no ClickHouse server (no Docker, no network; Debian's package is from
2018), yet :class:`~otel_llm.storage.backend.ClickHouseBackend` talks to one through
clickhouse-connect. :class:`ClickHouseHTTPServer` runs this file as a *child process*
that serves the ClickHouse HTTP interface on ``127.0.0.1`` and executes every statement
in chDB, the same engine ClickHouse is. A child process because chDB allows one data
directory per process (the test process keeps its own embedded engine free), and
because a process can be killed and started again on the same port and data: a real
outage, not a mock.

What it implements, as clickhouse-connect (1.x) uses it:

- ``GET /ping`` and ``GET /`` answer ``Ok.``; queries on ``/`` by ``GET`` (read-only:
  anything but a result-producing statement is refused with code 164 ``READONLY``) or
  ``POST``. The statement is the ``query`` URL parameter, then a newline, then the body
  (or the body alone); ``INSERT ... FORMAT <fmt>`` followed by data streams the data
  into chDB in that format (clickhouse-connect's ``insert_arrow`` sends ``FORMAT
  Arrow`` with the statement in the URL and an Arrow IPC file as the body).
- Authentication: HTTP basic auth, ``X-ClickHouse-User``/``X-ClickHouse-Key`` headers,
  or ``user``/``password`` URL parameters (no credentials = user ``default``). One
  user, set by the test; a wrong user or password is answered like ClickHouse does:
  HTTP 403 with ``X-ClickHouse-Exception-Code: 516`` and a ``Code: 516.
  DB::Exception: ... (AUTHENTICATION_FAILED)`` body.
- URL parameters: ``database`` (the statement's current database; a missing one is
  code 81), ``default_format`` / ``X-ClickHouse-Format`` request header,
  ``param_<name>`` query parameters bound by the engine, and every other parameter as a
  setting for that one request (applied with ``SET`` and reset after, so an unknown
  setting fails with code 115 as on a server). Transport parameters (``query_id``,
  ``session_id``, ``wait_end_of_query``, ``compress``, ``client_protocol_version`` ...)
  are accepted and ignored.
- Output: the statement's own ``FORMAT`` clause, else ``default_format``, else
  ``TabSeparated``, produced by chDB (so ``Native`` is the engine's own encoding).
  Response headers ``X-ClickHouse-Query-Id``, ``X-ClickHouse-Summary`` (rows and bytes
  read and written), ``X-ClickHouse-Timezone``, ``X-ClickHouse-Format`` (only for
  statements that return a result, which is how clickhouse-connect's ``command``
  tells an empty result from none), ``X-ClickHouse-Server-Display-Name``.
- Errors: the engine's exception as ``Code: N. DB::Exception: ... (NAME) (version V)``
  with ``X-ClickHouse-Exception-Code: N`` and ClickHouse's HTTP status for that code
  (400 for parse and type errors, 404 for unknown tables/databases/settings, 403 for
  authentication, 500 otherwise).
- Compression: gzip response bodies when the request sets ``enable_http_compression=1``
  and accepts gzip (ClickHouse prefers gzip over the other encodings clickhouse-connect
  offers); request bodies in gzip, deflate, zstd or lz4 (frame) ``Content-Encoding``.
- HTTPS with a certificate and key the caller provides (:func:`self_signed_cert` makes
  one with the ``openssl`` command).

What it does not implement: sessions (``session_id`` is ignored; a ``SET`` statement
sent as a query stays in effect for later requests), the client protocol version
(the probe clickhouse-connect sends at connect gets plain ``Native``, as from a server
behind a proxy that strips the parameter, so the client uses protocol version 0),
progress headers, query cancellation, multipart form queries and external data,
``/replicas_status``, ``/play`` and the other handlers, more than one user, roles,
quotas, and exceptions in the middle of a streamed result (results are produced whole
before the headers are sent). Statements run one at a time (one engine connection).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import uuid
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["ClickHouseHTTPServer", "TlsFiles", "self_signed_cert"]

_PASSWORD_ENV = "CLICKHOUSE_HTTP_TEST_PASSWORD"

# -- the test side ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TlsFiles:
    cert: Path
    key: Path


def self_signed_cert(directory: Path) -> TlsFiles | None:
    """A certificate for ``127.0.0.1`` (and ``localhost``) made with ``openssl``; None without it."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "server.crt", directory / "server.key")
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-keyout",
            str(files.key),
            "-out",
            str(files.cert),
        ],
        check=True,
        capture_output=True,
    )
    return files


class ClickHouseHTTPServer:
    """The server child process: start, stop (or kill) and start again on the same port and data.

    Use as a context manager; the child also exits by itself when the test process dies
    (it watches its stdin pipe).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        user: str = "default",
        password: str = "",
        tls: TlsFiles | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.data_dir = data_dir
        self.user = user
        self.password = password
        self.tls = tls
        self.start_timeout = start_timeout
        self.port = 0
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``http(s)://127.0.0.1:<port>`` (no credentials in it)."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> ClickHouseHTTPServer:
        """Start the child (on the port of the previous run, if any) and wait until it serves."""
        if self.running:
            return self
        args = [sys.executable, str(Path(__file__).resolve()), "--data-dir", str(self.data_dir)]
        args += ["--port", str(self.port), "--user", self.user]
        if self.tls:
            args += ["--cert", str(self.tls.cert), "--key", str(self.tls.key)]
        env = dict(os.environ, **{_PASSWORD_ENV: self.password})
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self._proc = subprocess.Popen(
                args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env
            )
        finally:
            log.close()
        assert self._proc.stdout is not None
        line = _readline(self._proc.stdout, self.start_timeout)
        if not line.startswith(b"listening "):
            self.kill()
            raise RuntimeError(f"the ClickHouse test server did not start; its log:\n{self.log()}")
        self.port = int(line.split()[1])
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Shut down cleanly (SIGTERM: the engine closes its data directory)."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._close_pipes()

    def kill(self) -> None:
        """Die at once (SIGKILL), like a crashed server: connections are reset mid-flight."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._close_pipes()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _close_pipes(self) -> None:
        assert self._proc is not None
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                pipe.close()
        self._proc = None

    def __enter__(self) -> ClickHouseHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _readline(pipe: Any, timeout: float) -> bytes:
    """One line from ``pipe``, or b"" after ``timeout`` seconds."""
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.append(pipe.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return out[0] if out else b""


# -- the server side ----------------------------------------------------------------------

# Parameters the HTTP layer consumes itself: never settings.
_TRANSPORT = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "close_session",
        "wait_end_of_query",
        "compress",
        "decompress",
        "buffer_size",
        "quota_key",
        "role",
        "client_protocol_version",
        "stacktrace",
    }
)

# ClickHouse's HTTP status for an exception, by error name (the rest are 500).
_STATUS_BY_NAME: dict[str, int] = {
    "REQUIRED_PASSWORD": 401,
    **dict.fromkeys(
        ("UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED", "SET_NON_GRANTED_ROLE", "ACCESS_DENIED"),
        403,
    ),
    **dict.fromkeys(
        (
            "BAD_ARGUMENTS",
            "CANNOT_COMPILE_REGEXP",
            "CANNOT_PARSE_TEXT",
            "CANNOT_PARSE_ESCAPE_SEQUENCE",
            "CANNOT_PARSE_QUOTED_STRING",
            "CANNOT_PARSE_DATE",
            "CANNOT_PARSE_DATETIME",
            "CANNOT_PARSE_NUMBER",
            "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
            "CANNOT_PARSE_IPV4",
            "CANNOT_PARSE_IPV6",
            "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
            "CANNOT_PARSE_UUID",
            "DUPLICATE_COLUMN",
            "ILLEGAL_COLUMN",
            "UNKNOWN_ELEMENT_IN_AST",
            "UNKNOWN_TYPE_OF_AST_NODE",
            "THERE_IS_NO_COLUMN",
            "TOO_DEEP_AST",
            "TOO_BIG_AST",
            "UNEXPECTED_AST_STRUCTURE",
            "SYNTAX_ERROR",
            "INCORRECT_DATA",
            "TYPE_MISMATCH",
            "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
        ),
        400,
    ),
    **dict.fromkeys(
        (
            "UNKNOWN_TABLE",
            "UNKNOWN_FUNCTION",
            "UNKNOWN_IDENTIFIER",
            "UNKNOWN_TYPE",
            "UNKNOWN_STORAGE",
            "UNKNOWN_DATABASE",
            "UNKNOWN_SETTING",
            "UNKNOWN_DIRECTION_OF_SORTING",
            "UNKNOWN_AGGREGATE_FUNCTION",
            "UNKNOWN_FORMAT",
            "UNKNOWN_DATABASE_ENGINE",
            "UNKNOWN_TYPE_OF_QUERY",
            "UNKNOWN_ROLE",
        ),
        404,
    ),
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "SOCKET_TIMEOUT": 503,
    "CANNOT_OPEN_FILE": 503,
    "CANNOT_SCHEDULE_TASK": 503,
    "TIMEOUT_EXCEEDED": 408,
}

_RESULT_KEYWORDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "CHECK"})
_KEYWORD = re.compile(r"(?:\s+|--[^\n]*\n?|/\*.*?\*/|\()*([A-Za-z]+)", re.S)
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$", re.I)
_INSERT_WITH_DATA = re.compile(
    rb"^(\s*INSERT\s+INTO\s.*?)\bFORMAT\s+([A-Za-z0-9_]+)[ \t]*(?:\r?\n)?", re.I | re.S
)
_CODE = re.compile(r"Code: (\d+)\. ")
_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)\s*$")
_CONTENT_TYPES = {
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
    "TSV": "text/tab-separated-values; charset=UTF-8",
    "JSON": "application/json; charset=UTF-8",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8; header=absent",
}


class ServerError(Exception):
    """An exception as ClickHouse reports it: code, name, text."""

    def __init__(self, code: int, name: str, text: str) -> None:
        super().__init__(text)
        self.code, self.name, self.text = code, name, text

    @classmethod
    def from_engine(cls, exc: BaseException) -> ServerError:
        text = str(exc).strip()
        found = _CODE.search(text)
        if found is None:
            return cls(1001, "STD_EXCEPTION", f"Code: 1001. DB::Exception: {text}. (STD_EXCEPTION)")
        text = text[found.start() :]
        name = _NAME.search(text)
        return cls(int(found.group(1)), name.group(1) if name else "", text)

    @property
    def status(self) -> int:
        return _STATUS_BY_NAME.get(self.name, 500)


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _returns_result(sql: str) -> bool:
    found = _KEYWORD.match(sql)
    return bool(found) and found.group(1).upper() in _RESULT_KEYWORDS


class Engine:
    """One chDB connection on the data directory; one statement at a time."""

    def __init__(self, data_dir: Path) -> None:
        import chdb

        data_dir.mkdir(parents=True, exist_ok=True)
        self.conn = chdb.connect(str(data_dir))
        self.lock = threading.Lock()
        version, tz = str(self.conn.query("SELECT version(), timezone()", "TabSeparated")).split()
        self.version, self.timezone = version, tz
        # Settings chDB itself starts with changed: a request's settings are reset to these.
        rows = str(self.conn.query("SELECT name, value FROM system.settings WHERE changed", "TSVRaw"))
        self.baseline = dict(line.split("\t", 1) for line in rows.splitlines() if line)

    def run(
        self,
        sql: str,
        *,
        database: str,
        settings: dict[str, str],
        params: dict[str, str],
        fmt: str,
        data: bytes | None = None,
        data_format: str = "",
    ) -> tuple[bytes, dict[str, str]]:
        """Run one statement; the output bytes and the summary counters."""
        with self.lock:
            try:
                self.conn.query(f"USE `{database}`", "TabSeparated")
            except Exception as exc:
                raise ServerError.from_engine(exc) from None
            applied: list[str] = []
            try:
                for name, value in settings.items():
                    self.conn.query(f"SET {name} = {_quoted(value)}", "TabSeparated")
                    applied.append(name)
                if data is not None:
                    with self.conn.send_insert(sql, data_format) as inserter:
                        inserter.append(data)
                        result = inserter.finish()
                    return b"", _summary(0, 0, result.rows_written, result.bytes_written, result.elapsed)
                out = self.conn._conn.query(sql, fmt, params=params)  # raw bytes, no client-side conversion
                summary = _summary(out.rows_read(), out.bytes_read(), 0, 0, out.elapsed())
                return bytes(out.bytes()), summary
            except ServerError:
                raise
            except Exception as exc:
                raise ServerError.from_engine(exc) from None
            finally:
                for name in applied:
                    if name in self.baseline:
                        self.conn.query(f"SET {name} = {_quoted(self.baseline[name])}", "TabSeparated")
                    else:
                        self.conn.query(f"SET {name} = DEFAULT", "TabSeparated")

    def close(self) -> None:
        with self.lock:
            self.conn.close()


def _summary(read_rows: int, read_bytes: int, written_rows: int, written_bytes: int, elapsed: float) -> dict:
    return {
        "read_rows": str(read_rows),
        "read_bytes": str(read_bytes),
        "written_rows": str(written_rows),
        "written_bytes": str(written_bytes),
        "total_rows_to_read": str(read_rows),
        "result_rows": "0",
        "result_bytes": "0",
        "elapsed_ns": str(int(elapsed * 1e9)),
    }


def _decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if not encoding or encoding == "identity":
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "zstd":
        try:
            from compression import zstd  # Python 3.14
        except ImportError:
            from backports import zstd
        return zstd.decompress(body)
    if encoding == "lz4":
        import lz4.frame

        return lz4.frame.decompress(body)
    raise ServerError(
        415, "UNSUPPORTED_MEDIA_TYPE", f"Code: 415. DB::Exception: Unknown Content-Encoding {encoding!r}."
    )


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.log_date_time_string()} {format % args}\n")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    # -- one request ----------------------------------------------------------------

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        query_id = str(uuid.uuid4())
        try:
            body = self._body()
            params = dict(parse_qsl(url.query, keep_blank_values=True))
            query_id = params.get("query_id") or query_id
            if url.path == "/ping" and method == "GET":
                self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
                return
            if url.path != "/":
                self._send(404, b"There is no handle " + url.path.encode() + b"\n", {})
                return
            if method == "GET" and "query" not in params:
                self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
                return
            self._authenticate(params)
            body = _decompress(body, self.headers.get("Content-Encoding", ""))
            self._execute(method, params, body, query_id)
        except ServerError as exc:
            text = f"{exc.text} (version {self.server.engine.version})\n".encode()
            self._send(
                exc.status,
                text,
                {
                    "Content-Type": "text/plain; charset=UTF-8",
                    "X-ClickHouse-Exception-Code": str(exc.code),
                    "X-ClickHouse-Query-Id": query_id,
                },
            )

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _authenticate(self, params: dict[str, str]) -> None:
        user, password = "default", ""
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        elif "X-ClickHouse-User" in self.headers:
            user, password = self.headers["X-ClickHouse-User"], self.headers.get("X-ClickHouse-Key", "")
        elif "user" in params:
            user, password = params["user"], params.get("password", "")
        if (user, password) != (self.server.user, self.server.password):
            raise ServerError(
                516,
                "AUTHENTICATION_FAILED",
                f"Code: 516. DB::Exception: {user}: Authentication failed: password is incorrect, "
                "or there is no user with such name. (AUTHENTICATION_FAILED)",
            )

    def _execute(self, method: str, params: dict[str, str], body: bytes, query_id: str) -> None:
        query = params.get("query", "")
        text = (query.encode() + b"\n" + body) if query and body else (query.encode() or body)
        database = params.get("database") or "default"
        settings = {k: v for k, v in params.items() if k not in _TRANSPORT and not k.startswith("param_")}
        bound = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        headers = {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": self.server.engine.timezone,
            "X-ClickHouse-Server-Display-Name": "clickhouse-http-test",
        }
        insert = _INSERT_WITH_DATA.match(text)
        if insert:
            if method == "GET":
                raise _readonly()
            sql = insert.group(1).decode().strip()
            _, summary = self.server.engine.run(
                sql,
                database=database,
                settings=settings,
                params=bound,
                fmt="TabSeparated",
                data=text[insert.end() :],
                data_format=insert.group(2).decode(),
            )
            headers["X-ClickHouse-Summary"] = json.dumps(summary, separators=(",", ":"))
            self._send(200, b"", headers)
            return
        sql = text.decode("utf-8")
        if not sql.strip():
            raise ServerError(62, "SYNTAX_ERROR", "Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR)")
        returns_result = _returns_result(sql)
        if method == "GET" and not returns_result:
            raise _readonly()
        explicit = _TRAILING_FORMAT.search(sql)
        fmt = explicit.group(1) if explicit else None
        fmt = fmt or params.get("default_format") or self.headers.get("X-ClickHouse-Format") or "TabSeparated"
        out, summary = self.server.engine.run(
            sql, database=database, settings=settings, params=bound, fmt=fmt
        )
        headers["X-ClickHouse-Summary"] = json.dumps(summary, separators=(",", ":"))
        if returns_result:
            headers["X-ClickHouse-Format"] = fmt
            headers["Content-Type"] = _CONTENT_TYPES.get(fmt, "application/octet-stream")
        else:
            out = b""
            headers["Content-Type"] = "text/plain; charset=UTF-8"
        if settings.get("enable_http_compression") in ("1", "true") and "gzip" in self.headers.get(
            "Accept-Encoding", ""
        ):
            out = gzip.compress(out, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        self._send(200, out, headers)

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Keep-Alive", "timeout=10")
        self.end_headers()
        self.wfile.write(body)


def _readonly() -> ServerError:
    return ServerError(
        164,
        "READONLY",
        "Code: 164. DB::Exception: Cannot execute query in readonly mode. "
        "For queries over HTTP, method GET implies readonly. You should use method POST "
        "for modifying queries. (READONLY)",
    )


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, engine: Engine, user: str, password: str, tls: ssl.SSLContext | None):
        self.engine, self.user, self.password, self.tls = engine, user, password, tls
        super().__init__(("127.0.0.1", port), Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        if self.tls is not None:
            # The handshake happens on first read, in the connection's own thread.
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="ClickHouse HTTP interface on chDB, for tests")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--user", default="default")
    parser.add_argument("--cert", type=Path)
    parser.add_argument("--key", type=Path)
    args = parser.parse_args(argv)

    tls = None
    if args.cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.cert, args.key)
    engine = Engine(args.data_dir)
    server = Server(args.port, engine, args.user, os.environ.get(_PASSWORD_ENV, ""), tls)

    def shut_down(*_: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    def watch_parent() -> None:
        while os.read(0, 1024):  # unbuffered: EOF when the test process closes the pipe or dies
            pass
        shut_down()

    signal.signal(signal.SIGTERM, shut_down)
    threading.Thread(target=watch_parent, daemon=True).start()
    sys.stdout.write(f"listening {server.server_address[1]}\n")
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
        engine.close()


if __name__ == "__main__":
    main()
