"""The control API, on the OTLP/HTTP port (JSON):

- ``GET /v1/kills?after=CURSOR&wait=SECONDS`` — kill decisions with a cursor above
  ``after`` (default 0: every decision still in the log), oldest first, at most
  ``control.max_kills_per_response``; with ``wait``, the answer is held until one comes
  or ``wait`` seconds pass (at most ``control.max_wait``). Answer:
  ``{"cursor": N, "kills": [{"cursor", "task_id", "task_name", "service", "limit",
  "spent", "limit_value", "policy", "reason", "at", "group"}, ...]}``; pass ``cursor``
  back as ``after``.
- ``GET /v1/tasks?state=ok|warn|exceeded|killed|finished|all&limit=N`` — tasks, most
  recently seen first, each as ``GET /v1/tasks/{id}`` shows it.
- ``GET /v1/tasks/{id}`` — spend, limits, spent per limit, state, kill decision; 404
  for a task the collector does not know.
- ``POST /v1/tasks/{id}/kill`` (optional JSON body ``{"reason": "..."}``) — a person
  stops a task; the decision reaches agents like any other kill.
- ``GET /metrics`` — Prometheus self-metrics; ``GET /healthz`` — liveness.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from aiohttp import web

from otel_llm.collector.config import ControlConfig
from otel_llm.collector.decisions import Decision, KillLog

__all__ = ["Control", "control_routes"]

TASK_STATES = ("ok", "warn", "exceeded", "killed", "finished", "all")


class Control(Protocol):
    """What the routes need from the service."""

    kill_log: KillLog

    def task(self, task_id: str) -> dict[str, Any] | None: ...
    def tasks(self, state: str | None, limit: int) -> list[dict[str, Any]]: ...
    def kill(self, task_id: str, reason: str) -> Decision: ...
    def metrics(self, accept: str | None) -> tuple[bytes, str]: ...


def _bad(text: str) -> web.Response:
    return web.json_response({"error": text}, status=400)


def _number(request: web.Request, name: str, default: float, kind: Callable[[str], float]) -> float:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"{name}: expected a number, got {raw!r}"}),
            content_type="application/json",
        ) from None
    if value < 0:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"{name}: expected a number >= 0, got {raw!r}"}),
            content_type="application/json",
        )
    return value


def control_routes(config: ControlConfig, control: Control) -> list[web.RouteDef]:
    async def kills(request: web.Request) -> web.Response:
        after = int(_number(request, "after", 0, int))
        wait = min(_number(request, "wait", 0.0, float), config.max_wait)
        found = await control.kill_log.wait_after(after, config.max_kills_per_response, wait)
        cursor = found[-1].cursor if found else max(after, 0)
        if not found and after > control.kill_log.cursor:
            cursor = control.kill_log.cursor  # a cursor from before a reset of the state directory
        return web.json_response({"cursor": cursor, "kills": [d.to_json() for d in found]})

    async def tasks(request: web.Request) -> web.Response:
        state = request.query.get("state") or None
        if state is not None and state not in TASK_STATES:
            return _bad(f"state: expected one of {', '.join(TASK_STATES)}, got {state!r}")
        limit = int(_number(request, "limit", 1000, int))
        return web.json_response({"tasks": control.tasks(state, limit)})

    async def task(request: web.Request) -> web.Response:
        found = control.task(request.match_info["task_id"])
        if found is None:
            return web.json_response({"error": "unknown task"}, status=404)
        return web.json_response(found)

    async def kill(request: web.Request) -> web.Response:
        reason = ""
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                return _bad('body: expected JSON such as {"reason": "..."}')
            if isinstance(body, dict) and isinstance(body.get("reason"), str):
                reason = body["reason"][:500]
        decision = control.kill(request.match_info["task_id"], reason)
        return web.json_response(decision.to_json())

    async def metrics(request: web.Request) -> web.Response:
        body, content_type = control.metrics(request.headers.get("Accept"))
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    return [
        web.get("/v1/kills", kills),
        web.get("/v1/tasks", tasks),
        web.get("/v1/tasks/{task_id}", task),
        web.post("/v1/tasks/{task_id}/kill", kill),
        web.get("/metrics", metrics),
        web.get("/healthz", healthz),
    ]
