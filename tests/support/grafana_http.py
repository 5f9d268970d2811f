"""A loopback stand-in for Grafana's HTTP API: the paths, status codes and bodies
grafana-client and ``otel-llm grafana provision`` use (Grafana 11: /api/frontend/settings,
/api/folders, /api/datasources, /api/dashboards/db, /api/v1/provisioning/*), with
bearer-token auth and in-memory state the test reads back.

Grafana itself cannot run here; this speaks its wire format, including its refusals:
401 ``{"message": "invalid API key"}`` for a bad token, 404 ``not found`` bodies, 400
when a dashboard or rule names a folder that does not exist.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class GrafanaState:
    folders: dict[str, dict] = field(default_factory=dict)
    datasources: dict[str, dict] = field(default_factory=dict)
    dashboards: dict[str, dict] = field(default_factory=dict)
    rules: dict[str, dict] = field(default_factory=dict)
    contact_points: dict[str, dict] = field(default_factory=dict)
    policies: dict | None = None
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    provenance_disabled: list[str] = field(default_factory=list)


class FakeGrafana:
    def __init__(self, token: str = "glsa_test") -> None:
        self.token = token
        self.state = GrafanaState()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> FakeGrafana:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)  # type: ignore[union-attr]
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application(middlewares=[self._auth])
        r = app.router
        r.add_get("/api/frontend/settings", self._settings)
        r.add_get("/api/folders", self._folders)
        r.add_get("/api/folders/{uid}", self._folder)
        r.add_post("/api/folders", self._create_folder)
        r.add_get("/api/datasources/uid/{uid}", self._datasource)
        r.add_post("/api/datasources", self._create_datasource)
        r.add_put("/api/datasources/uid/{uid}", self._update_datasource)
        r.add_post("/api/dashboards/db", self._save_dashboard)
        r.add_get("/api/v1/provisioning/alert-rules/{uid}", self._rule)
        r.add_post("/api/v1/provisioning/alert-rules", self._create_rule)
        r.add_put("/api/v1/provisioning/alert-rules/{uid}", self._update_rule)
        r.add_get("/api/v1/provisioning/contact-points", self._contact_points)
        r.add_post("/api/v1/provisioning/contact-points", self._create_contact_point)
        r.add_put("/api/v1/provisioning/contact-points/{uid}", self._update_contact_point)
        r.add_put("/api/v1/provisioning/policies", self._policies)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if (
            request.path != "/api/frontend/settings"
            and request.headers.get("Authorization") != f"Bearer {self.token}"
        ):
            response: web.StreamResponse = web.json_response({"message": "invalid API key"}, status=401)
        else:
            if request.headers.get("X-Disable-Provenance") == "true":
                self.state.provenance_disabled.append(request.path)
            response = await handler(request)
        self.state.requests.append((request.method, request.path, response.status))
        return response

    # -- handlers ----------------------------------------------------------------------

    async def _settings(self, request: web.Request) -> web.Response:
        return web.json_response({"buildInfo": {"version": "11.3.0", "edition": "Open Source"}})

    async def _folders(self, request: web.Request) -> web.Response:
        return web.json_response([{"uid": u, "title": f["title"]} for u, f in self.state.folders.items()])

    async def _folder(self, request: web.Request) -> web.Response:
        folder = self.state.folders.get(request.match_info["uid"])
        if folder is None:
            return web.json_response({"message": "folder not found", "status": "not-found"}, status=404)
        return web.json_response(folder)

    async def _create_folder(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("uid") in self.state.folders:
            return web.json_response({"message": "a folder with the same uid already exists"}, status=409)
        folder = {"id": len(self.state.folders) + 1, "uid": body["uid"], "title": body["title"], "version": 1}
        self.state.folders[body["uid"]] = folder
        return web.json_response(folder)

    async def _datasource(self, request: web.Request) -> web.Response:
        ds = self.state.datasources.get(request.match_info["uid"])
        if ds is None:
            return web.json_response({"message": "Data source not found"}, status=404)
        return web.json_response({k: v for k, v in ds.items() if k != "secureJsonData"})

    async def _create_datasource(self, request: web.Request) -> web.Response:
        body = await request.json()
        if not body.get("name") or not body.get("type"):
            return web.json_response({"message": "bad request data"}, status=400)
        if body["uid"] in self.state.datasources:
            return web.json_response({"message": "data source with the same uid already exists"}, status=409)
        body["id"] = len(self.state.datasources) + 1
        self.state.datasources[body["uid"]] = body
        return web.json_response({"datasource": body, "id": body["id"], "message": "Datasource added"})

    async def _update_datasource(self, request: web.Request) -> web.Response:
        uid = request.match_info["uid"]
        if uid not in self.state.datasources:
            return web.json_response({"message": "Data source not found"}, status=404)
        body = await request.json()
        self.state.datasources[uid] = {**body, "id": self.state.datasources[uid]["id"]}
        return web.json_response({"datasource": body, "message": "Datasource updated"})

    async def _save_dashboard(self, request: web.Request) -> web.Response:
        body = await request.json()
        dashboard = body.get("dashboard") or {}
        folder = body.get("folderUid", "")
        if folder and folder not in self.state.folders:
            return web.json_response({"message": "folder not found", "status": "not-found"}, status=400)
        if not dashboard.get("title"):
            return web.json_response({"message": "Dashboard title cannot be empty"}, status=400)
        uid = dashboard["uid"]
        known = self.state.dashboards.get(uid)
        if known and not body.get("overwrite"):
            return web.json_response({"message": "The dashboard has been changed by someone else",
                                      "status": "version-mismatch"}, status=412)  # fmt: skip
        version = (known["version"] + 1) if known else 1
        self.state.dashboards[uid] = {"dashboard": dashboard, "folderUid": folder, "version": version}
        return web.json_response({"id": len(self.state.dashboards), "uid": uid, "url": f"/d/{uid}/x",
                                  "status": "success", "version": version, "slug": "x"})  # fmt: skip

    async def _rule(self, request: web.Request) -> web.Response:
        rule = self.state.rules.get(request.match_info["uid"])
        if rule is None:
            return web.Response(status=404)  # Grafana answers 404 with an empty body here
        return web.json_response(rule)

    def _invalid_rule(self, body: dict) -> web.Response | None:
        if body.get("folderUID") not in self.state.folders:
            return web.json_response({"message": "invalid alert rule: folder does not exist"}, status=400)
        if not body.get("ruleGroup") or not body.get("condition") or not body.get("data"):
            return web.json_response({"message": "invalid alert rule"}, status=400)
        return None

    async def _create_rule(self, request: web.Request) -> web.Response:
        body = await request.json()
        if (bad := self._invalid_rule(body)) is not None:
            return bad
        if body["uid"] in self.state.rules:
            return web.json_response({"message": "a conflicting alert rule is found"}, status=409)
        self.state.rules[body["uid"]] = body
        return web.json_response(body, status=201)

    async def _update_rule(self, request: web.Request) -> web.Response:
        uid = request.match_info["uid"]
        body = await request.json()
        if uid not in self.state.rules:
            return web.json_response({"message": "rule not found"}, status=404)
        if (bad := self._invalid_rule(body)) is not None:
            return bad
        self.state.rules[uid] = body
        return web.json_response(body)

    async def _contact_points(self, request: web.Request) -> web.Response:
        name = request.query.get("name")
        points = [p for p in self.state.contact_points.values() if name is None or p["name"] == name]
        return web.json_response(points)

    async def _create_contact_point(self, request: web.Request) -> web.Response:
        body = await request.json()
        if not body.get("type") or not body.get("settings"):
            return web.json_response({"message": "invalid contact point"}, status=400)
        self.state.contact_points[body["uid"]] = body
        return web.json_response(body, status=202)

    async def _update_contact_point(self, request: web.Request) -> web.Response:
        uid = request.match_info["uid"]
        if uid not in self.state.contact_points:
            return web.json_response({"message": "contact point not found"}, status=404)
        self.state.contact_points[uid] = await request.json()
        return web.json_response({"message": "contactpoint updated"}, status=202)

    async def _policies(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("receiver") not in {p["name"] for p in self.state.contact_points.values()}:
            return web.json_response({"message": "invalid object specification: receiver does not exist"},
                                     status=400)  # fmt: skip
        self.state.policies = body
        return web.json_response({"message": "policies updated"}, status=202)
