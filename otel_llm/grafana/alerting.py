"""Grafana alert rules (file provisioning, ``apiVersion: 1``), the contact point and the
notification policy, for drift and budgets. Each rule's query is a named
``alert_*`` query: the plugin expands its time macros over the rule's relative time
range; the dashboard variables are resolved here to "All" (a rule has no dashboard).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from otel_llm.grafana.model import DATASOURCE, DATASOURCE_UID
from otel_llm.storage import queries
from otel_llm.storage.dialect import ALL, GrafanaContext, interpolate

__all__ = ["FOLDER", "RULES", "AlertRule", "contact_points", "policies", "rule_groups", "rule_sql"]

FOLDER = "otel-llm"
_NO_VARIABLES = {"service": ALL, "model": ALL, "task_name": ALL, "version": ALL}


@dataclass(frozen=True)
class AlertRule:
    uid: str
    title: str
    query: str
    """A named query returning ``value`` (and optional label columns)."""
    op: str
    """``gt`` or ``lt``."""
    threshold: float
    window_s: int
    """The rule's relative time range: its query's $__timeFilter window."""
    summary: str
    severity: str = "warning"
    for_: str = "5m"


RULES: list[AlertRule] = [
    AlertRule(
        "otel-llm-cost-per-task-p95",
        "Cost per task p95 above its 7-day baseline",
        "alert_cost_per_task_p95",
        "gt",
        1.5,
        3600,
        "Cost per task p95 of the last hour is {{ $values.B }}x its 7-day baseline.",
    ),
    AlertRule(
        "otel-llm-cache-hit-drop",
        "Cache hit ratio dropped against its 7-day baseline",
        "alert_cache_hit_ratio",
        "lt",
        0.7,
        3600,
        "Cache hit ratio of the last hour is {{ $values.B }}x its 7-day baseline (a prompt change?).",
    ),
    AlertRule(
        "otel-llm-iterations-up",
        "Model calls per task up against the 7-day baseline",
        "alert_iterations_per_task",
        "gt",
        1.5,
        3600,
        "Model calls per task p95 of the last hour is {{ $values.B }}x its 7-day baseline.",
    ),
    AlertRule(
        "otel-llm-ttft-slo",
        "TTFT p95 over its SLO",
        "alert_ttft_p95",
        "gt",
        2.0,
        900,
        "TTFT p95 of {{ $labels.model }} is {{ $values.B }} s over the last 15 minutes (SLO 2 s).",
    ),
    AlertRule(
        "otel-llm-tenant-spend",
        "Tenant spend per day over budget",
        "alert_tenant_spend",
        "gt",
        100.0,
        86400,
        "Tenant {{ $labels.tenant }} spent ${{ $values.B }} in the last 24 hours.",
        for_="0s",
    ),
    AlertRule(
        "otel-llm-kill",
        "A budget killed a task",
        "alert_kills",
        "gt",
        0.0,
        300,
        "{{ $values.B }} task(s) killed by a budget in the last 5 minutes.",
        severity="critical",
        for_="0s",
    ),
]


def rule_sql(rule: AlertRule) -> str:
    """The SQL the rule holds: the named query with every dashboard variable at All."""
    from datetime import UTC, datetime

    epoch = datetime(1970, 1, 1, tzinfo=UTC)  # unused by interpolate: it leaves time macros alone
    return interpolate(queries.panel_sql(rule.query), GrafanaContext(epoch, epoch, values=_NO_VARIABLES))


def _rule(rule: AlertRule) -> dict[str, Any]:
    return {
        "uid": rule.uid,
        "title": rule.title,
        "condition": "C",
        "data": [
            {
                "refId": "A",
                "relativeTimeRange": {"from": rule.window_s, "to": 0},
                "datasourceUid": DATASOURCE_UID,
                "model": {
                    "refId": "A",
                    "datasource": DATASOURCE,
                    "editorType": "sql",
                    "format": 1,
                    "queryType": "table",
                    "rawSql": rule_sql(rule),
                },
            },
            {
                "refId": "B",
                "datasourceUid": "__expr__",
                "model": {
                    "refId": "B",
                    "type": "reduce",
                    "expression": "A",
                    "reducer": "last",
                    "settings": {"mode": "dropNN"},
                },
            },
            {
                "refId": "C",
                "datasourceUid": "__expr__",
                "model": {
                    "refId": "C",
                    "type": "threshold",
                    "expression": "B",
                    "conditions": [{"evaluator": {"type": rule.op, "params": [rule.threshold]}}],
                },
            },
        ],
        "noDataState": "OK",
        "execErrState": "Error",
        "for": rule.for_,
        "labels": {
            "severity": rule.severity,
            "source": "otel-llm",
            # Not "kill": the collector already pages once per killed task (kind=kill);
            # this rule counts kills for Grafana-only set-ups and must not page twice.
            "kind": "drift" if "kill" not in rule.uid else "kill_count",
        },
        "annotations": {"summary": rule.summary, "otel_llm_query": rule.query},
        "isPaused": False,
    }


def rule_groups() -> dict[str, Any]:
    """The alert-rule provisioning file."""
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": "otel-llm drift and budgets",
                "folder": FOLDER,
                "interval": "1m",
                "rules": [_rule(r) for r in RULES],
            },
        ],
    }


def contact_points(webhook_url: str = "http://alertmanager:9093/api/v2/alerts") -> dict[str, Any]:
    """One contact point: the Alertmanager of the compose file (edit for Slack, email...)."""
    return {
        "apiVersion": 1,
        "contactPoints": [
            {
                "orgId": 1,
                "name": "otel-llm",
                "receivers": [
                    {
                        "uid": "otel-llm-alertmanager",
                        "type": "prometheus-alertmanager",
                        "settings": {"url": webhook_url.removesuffix("/api/v2/alerts")},
                        "disableResolveMessage": False,
                    },
                ],
            }
        ],
    }


def policies() -> dict[str, Any]:
    """The notification policy: otel-llm's alerts to its contact point, kills at once."""
    return {
        "apiVersion": 1,
        "policies": [
            {
                "orgId": 1,
                "receiver": "otel-llm",
                "group_by": ["grafana_folder", "alertname"],
                "group_wait": "30s",
                "group_interval": "5m",
                "repeat_interval": "4h",
                "routes": [
                    {
                        "receiver": "otel-llm",
                        "object_matchers": [["severity", "=", "critical"]],
                        "group_wait": "0s",
                        "repeat_interval": "1h",
                    },
                ],
            }
        ],
    }
