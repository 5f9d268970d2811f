"""``otel-llm grafana provision``: push the datasource, the folder, the dashboards and the
alerting (rules, contact point, policy) to a running Grafana over its HTTP API, through
grafana-client.

Idempotent: each object is looked up by its uid and created or updated, so running it
twice changes nothing the second time. A wrong URL, an unreachable Grafana or a bad
token stops it at the first request with :class:`ProvisionError` saying which.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import niquests
from grafana_client import GrafanaApi
from grafana_client.client import (
    GrafanaClientError,
    GrafanaException,
    GrafanaServerError,
    GrafanaUnauthorizedError,
)

from otel_llm.grafana import alerting
from otel_llm.grafana.dashboards import DASHBOARDS
from otel_llm.grafana.files import datasource

__all__ = ["ProvisionError", "Provisioned", "provision"]

log = logging.getLogger(__name__)


class ProvisionError(RuntimeError):
    """Grafana could not be provisioned; the message says what to check."""


@dataclass
class Provisioned:
    """What a run did: ``{kind: [(uid, "created" | "updated")]}``."""

    actions: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def add(self, kind: str, uid: str, action: str) -> None:
        self.actions.setdefault(kind, []).append((uid, action))


def _missing(exc: GrafanaClientError) -> bool:
    return getattr(exc, "status_code", None) == 404


def _connect(url: str, token: str, timeout: float) -> GrafanaApi:
    if not url.startswith(("http://", "https://")):
        raise ProvisionError(f"--url must be http(s)://host[:port][/path], got {url!r}")
    api = GrafanaApi.from_url(url, credential=token or None, timeout=timeout)
    try:
        api.health.check()
        # /api/frontend/settings answers without auth: ask something that needs the token.
        api.folder.get_all_folders()
    except GrafanaUnauthorizedError as exc:
        raise ProvisionError(f"Grafana at {url} refused the token (401): check --token") from exc
    except GrafanaClientError as exc:
        if getattr(exc, "status_code", None) == 403:
            raise ProvisionError(
                f"the token is valid but may not change {url} (403): it needs the Admin or Editor role"
            ) from exc
        raise ProvisionError(f"{url} does not answer as Grafana's HTTP API does: {exc}") from exc
    except (GrafanaException, niquests.exceptions.RequestException, OSError) as exc:
        # grafana-client lets its HTTP library's connection errors through as they are.
        raise ProvisionError(f"cannot reach Grafana at {url}: {exc}; check --url") from exc
    return api


def provision(
    url: str,
    token: str,
    *,
    clickhouse_host: str = "clickhouse",
    clickhouse_port: int = 9000,
    clickhouse_user: str = "default",
    clickhouse_password: str = "",
    database: str = "otel",
    timeout: float = 10.0,
) -> Provisioned:
    """Provision otel-llm into the Grafana at ``url`` with the API ``token``."""
    api = _connect(url, token, timeout)
    done = Provisioned()
    try:
        _datasource(
            api, done, clickhouse_host, clickhouse_port, clickhouse_user, clickhouse_password, database
        )
        _folder(api, done)
        for dashboard in DASHBOARDS:
            api.dashboard.update_dashboard(
                {
                    "dashboard": dashboard.to_json(),
                    "folderUid": alerting.FOLDER,
                    "overwrite": True,
                    "message": "otel-llm grafana provision",
                }
            )
            done.add("dashboard", dashboard.uid, "updated")
        _alerting(api, done)
    except GrafanaServerError as exc:
        raise ProvisionError(f"Grafana at {url} failed while provisioning: {exc}") from exc
    except GrafanaClientError as exc:
        raise ProvisionError(f"Grafana at {url} refused a request: {exc}") from exc
    return done


def _datasource(
    api: GrafanaApi, done: Provisioned, host: str, port: int, user: str, password: str, database: str
) -> None:
    body: dict[str, Any] = datasource(host, port, user, database)
    body["secureJsonData"] = {"password": password}
    try:
        api.datasource.get_datasource_by_uid(body["uid"])
    except GrafanaClientError as exc:
        if not _missing(exc):
            raise
        api.datasource.create_datasource(body)
        done.add("datasource", body["uid"], "created")
        return
    api.datasource.update_datasource_by_uid(body["uid"], body)
    done.add("datasource", body["uid"], "updated")


def _folder(api: GrafanaApi, done: Provisioned) -> None:
    try:
        api.folder.get_folder(alerting.FOLDER)
    except GrafanaClientError as exc:
        if not _missing(exc):
            raise
        api.folder.create_folder("otel-llm", uid=alerting.FOLDER)
        done.add("folder", alerting.FOLDER, "created")
        return
    done.add("folder", alerting.FOLDER, "kept")


def _alerting(api: GrafanaApi, done: Provisioned) -> None:
    provisioning = api.alertingprovisioning
    [group] = alerting.rule_groups()["groups"]
    for rule in group["rules"]:
        body = {**rule, "folderUID": alerting.FOLDER, "ruleGroup": group["name"], "orgID": group["orgId"]}
        try:
            provisioning.get_alertrule(rule["uid"])
        except GrafanaClientError as exc:
            if not _missing(exc):
                raise
            provisioning.create_alertrule(body, disable_provenance=True)
            done.add("alert-rule", rule["uid"], "created")
            continue
        provisioning.update_alertrule(rule["uid"], body, disable_provenance=True)
        done.add("alert-rule", rule["uid"], "updated")
    [point] = alerting.contact_points()["contactPoints"]
    existing = {c.get("uid") for c in provisioning.get_contactpoints(name=point["name"]) or []}
    for receiver in point["receivers"]:
        body = {"name": point["name"], **receiver}
        if receiver["uid"] in existing:
            provisioning.update_contactpoint(receiver["uid"], body, disable_provenance=True)
            done.add("contact-point", receiver["uid"], "updated")
        else:
            provisioning.create_contactpoint(body, disable_provenance=True)
            done.add("contact-point", receiver["uid"], "created")
    [policy] = alerting.policies()["policies"]
    tree = {k: v for k, v in policy.items() if k != "orgId"}
    provisioning.set_notification_policy_tree(tree, disable_provenance=True)
    done.add("policy", "root", "updated")
