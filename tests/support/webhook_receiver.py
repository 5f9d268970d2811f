"""A local HTTP receiver standing in for webhook targets (a generic webhook, Slack,
Alertmanager's webhook receiver): aiohttp on 127.0.0.1, on its own thread.

It records every request (path, headers, JSON body, arrival time) and answers by a
per-path script: ``fail(path, n, status)`` makes the first ``n`` requests to ``path``
fail with ``status``; ``hang(path)`` never answers (until the receiver stops).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: Any
    at: float


class Receiver:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._failures: dict[str, list[int]] = {}
        self._hanging: set[str] = set()
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="alerts-test-receiver", daemon=True)
        self._stop: asyncio.Event | None = None
        self.port = 0

    # -- control --

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def fail(self, path: str, times: int, status: int = 503, retry_after: str | None = None) -> None:
        with self._lock:
            self._failures[path] = [status] * times
            self._retry_after = retry_after

    def hang(self, path: str) -> None:
        with self._lock:
            self._hanging.add(path)

    def requests(self, path: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self._requests if path is None or r.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 30.0) -> list[Request]:
        """The first ``count`` requests to ``path``; fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.requests(path)
            if len(found) >= count:
                return found
            time.sleep(0.01)
        raise AssertionError(
            f"expected {count} requests to {path} within {timeout} s, got {self.requests(path)}"
        )

    # -- server --

    def __enter__(self) -> Receiver:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the test receiver did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)  # type: ignore[union-attr]
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, shutdown_timeout=0.1, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        with self._lock:
            self._requests.append(Request(request.path, dict(request.headers), body, time.monotonic()))
            script = self._failures.get(request.path)
            status = script.pop(0) if script else None
            hanging = request.path in self._hanging
            retry_after = getattr(self, "_retry_after", None)
        if hanging:
            assert self._stop is not None
            await self._stop.wait()
            return web.Response(status=503)
        if status is not None:
            headers = {"Retry-After": retry_after} if retry_after else {}
            return web.Response(status=status, text="try later", headers=headers)
        # Slack answers a good incoming-webhook post with 200 "ok".
        return web.Response(text="ok")
