"""collector/README.md says what the code does: the self-metrics table lists exactly the
declared metrics (both ways), and the payload examples are what the alerter sends."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from support.alerts import window_alert

from otel_llm.collector.alerts import (
    DEFAULT_LINK_TEMPLATE,
    BudgetAlert,
    alertmanager_alert,
    render_link,
    slack_body,
    webhook_body,
)
from otel_llm.collector.selfmetrics import METRICS, SelfMetrics

README = Path(__file__).resolve().parents[2] / "collector" / "README.md"
AT = datetime(2026, 12, 4, 15, 40, tzinfo=UTC).timestamp()


def section(title: str) -> str:
    """The README text under the heading ``title``, up to the next heading of its level."""
    text = README.read_text(encoding="utf-8")
    found = re.search(rf"^(#+) {re.escape(title)}\n", text, re.MULTILINE)
    assert found is not None, f"collector/README.md has no section {title!r}"
    level = len(found.group(1))
    rest = text[found.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.MULTILINE)
    return rest[: end.start()] if end else rest


def readme_metrics() -> dict[str, tuple[str, str, tuple[str, ...]]]:
    rows = {}
    for line in section("Self-metrics (`GET /metrics`)").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("| `"):
            continue
        name, kind, unit, labels = cells[0].strip("`"), cells[1], cells[2], cells[3]
        assert name not in rows, f"{name} is listed twice"
        rows[name] = (kind, unit, tuple(re.findall(r"`([^`]+)`", labels)))
    return rows


def test_readme_lists_exactly_the_declared_metrics() -> None:
    listed = readme_metrics()
    declared = {m.exposed_name: (m.kind, m.unit, m.labels) for m in METRICS}
    assert sorted(set(declared) - set(listed)) == [], "declared but not in collector/README.md"
    assert sorted(set(listed) - set(declared)) == [], "in collector/README.md but not declared"
    assert listed == declared


def test_every_declared_metric_is_exposed_once_with_help_and_unit() -> None:
    metrics = SelfMetrics()
    families = {f.name: f for f in metrics.registry.collect()}
    assert sorted(families) == sorted(m.name for m in METRICS)
    for spec in METRICS:
        family = families[spec.name]
        assert (family.type, family.unit, family.documentation) == (spec.kind, spec.unit, spec.help)
        assert spec.name.endswith(f"_{spec.unit}"), "the unit is the last word of the name"
    # Each is bound to exactly one attribute (prometheus_client keeps the name in _name).
    bound = sorted(getattr(value, "_name", "") for value in vars(metrics).values())
    assert [name for name in bound if name] == sorted(m.name for m in METRICS)
    # Two collectors in one process do not collide: each has its own registry.
    SelfMetrics()


def test_render_speaks_prometheus_text_and_openmetrics() -> None:
    metrics = SelfMetrics()
    metrics.spans_received.labels(signal="traces", protocol="grpc").inc(3)
    metrics.insert_latency.observe(0.004)
    body, content_type = metrics.render()
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    text = body.decode()
    assert 'otel_llm_collector_received_items_total{protocol="grpc",signal="traces"} 3.0' in text
    assert 'otel_llm_collector_insert_duration_seconds_bucket{le="0.005"} 1.0' in text
    body, content_type = metrics.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert "# UNIT otel_llm_collector_insert_duration_seconds seconds" in body.decode()
    assert body.decode().endswith("# EOF\n")


def _examples(title: str) -> list:
    blocks = re.findall(r"```json\n(.*?)```", section(title), re.DOTALL)
    assert blocks, f"no JSON example under {title!r}"
    return [json.loads(block) for block in blocks]


def test_webhook_example_is_what_is_sent() -> None:
    alert = BudgetAlert(
        "kill",
        "coding-agent",
        "max_usd",
        0.52,
        0.5,
        1.0,
        task_id="4bf92f3577b34da6a3ce929d0e0e4736",
        task_name="fix-bug",
        service="coding-agent",
        at=AT,
    )
    (example,) = _examples("Generic webhook")
    assert example == webhook_body(alert, render_link(DEFAULT_LINK_TEMPLATE, alert))


def test_slack_example_is_what_is_sent() -> None:
    alert = BudgetAlert(
        "warn", "coding-agent", "max_tokens", 320000, 400000, 0.8, task_id="t-2", task_name="triage", at=AT
    )
    (example,) = _examples("Slack")
    assert example == slack_body(alert, render_link(DEFAULT_LINK_TEMPLATE, alert))


def test_alertmanager_example_is_what_is_sent() -> None:
    day = datetime(2026, 12, 4, tzinfo=UTC).timestamp()
    alert = window_alert(day, AT)
    (example,) = _examples("Alertmanager")
    link = render_link(DEFAULT_LINK_TEMPLATE, alert)
    assert example == [alertmanager_alert(alert, link, resolve_after=3600.0)]
