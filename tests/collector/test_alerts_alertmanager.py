"""Budget alerts through a real Alertmanager (Debian's prometheus-alertmanager, started
here on loopback with clustering off): stored as sent, checked through its own API, and
routed by their labels to the receiver a routing tree names, which delivers them to a
local webhook receiver."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from support.alerts import window_alert
from support.webhook_receiver import Receiver

from otel_llm.collector.alerts import Alerter, BudgetAlert
from otel_llm.collector.selfmetrics import SelfMetrics
from otel_llm.policy import Alerts

ALERTMANAGER = Path("/usr/bin/prometheus-alertmanager")
TASK = "4bf92f3577b34da6a3ce929d0e0e4736"
LINK = "https://grafana.example/d/otel-llm-tasks?var-task_id={task_id}"


@dataclass
class Running:
    url: str
    notifications: Receiver

    def alerts(self) -> list[dict]:
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as response:
            return json.load(response)

    def wait_for_alerts(self, count: int, timeout: float = 30.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.alerts()
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"Alertmanager holds {self.alerts()}, expected {count} alerts")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _route_tree(notify: Receiver) -> dict:
    def hook(path: str) -> list[dict]:
        return [{"url": notify.url(path), "send_resolved": False}]

    return {
        "route": {
            "receiver": "default",
            "group_by": ["alertname", "task_id", "group"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
            "routes": [
                {"matchers": ['source="otel-llm"', 'policy="tenant-daily"'], "receiver": "finance"},
                {"matchers": ['source="otel-llm"', 'severity="critical"'], "receiver": "oncall"},
                {"matchers": ['source="otel-llm"', 'severity="warning"'], "receiver": "budget-warnings"},
            ],
        },
        "receivers": [
            {"name": "default"},
            {"name": "finance", "webhook_configs": hook("/finance")},
            {"name": "oncall", "webhook_configs": hook("/oncall")},
            {"name": "budget-warnings", "webhook_configs": hook("/warnings")},
        ],
    }


def _require_alertmanager() -> None:
    if not ALERTMANAGER.exists():
        message = f"{ALERTMANAGER} is missing: `make sysdeps` installs Debian's prometheus-alertmanager"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@contextmanager
def _alertmanager(tmp_path: Path, notify: Receiver, port: int | None = None) -> Iterator[Running]:
    """A running Alertmanager on ``port`` (a free one when None), stopped on exit."""
    config = tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump(_route_tree(notify)))
    with (tmp_path / "alertmanager.log").open("w") as log:
        for _ in range(3):  # a free port can be taken between the probe and the bind
            listen = port or _free_port()
            process = subprocess.Popen(
                [
                    str(ALERTMANAGER),
                    f"--config.file={config}",
                    f"--storage.path={tmp_path / 'data'}",
                    f"--web.listen-address=127.0.0.1:{listen}",
                    "--cluster.listen-address=",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            url = f"http://127.0.0.1:{listen}"
            if _ready(url, process):
                break
            process.kill()
            process.wait()
        else:
            raise AssertionError(f"Alertmanager did not start: {(tmp_path / 'alertmanager.log').read_text()}")
        try:
            yield Running(url, notify)
        finally:
            process.terminate()
            process.wait(10)


@pytest.fixture
def notify() -> Iterator[Receiver]:
    """Where Alertmanager's webhook receivers deliver."""
    with Receiver() as running:
        yield running


@pytest.fixture
def alertmanager(tmp_path: Path, notify: Receiver) -> Iterator[Running]:
    _require_alertmanager()
    with _alertmanager(tmp_path, notify) as running:
        yield running


def _ready(url: str, process: subprocess.Popen) -> bool:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.05)
    return False


def _time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_alertmanager_stores_and_routes_budget_alerts(alertmanager: Running, tmp_path: Path) -> None:
    now = round(time.time(), 3)
    window_start = now - 3600
    kill = BudgetAlert(
        "kill",
        "coding-agent",
        "max_usd",
        0.52,
        0.5,
        1.0,
        task_id=TASK,
        task_name="fix-bug",
        service="coding-agent",
        at=now,
    )
    warn = BudgetAlert(
        "warn", "coding-agent", "max_tokens", 320000, 400000, 0.8, task_id="t-2", task_name="triage", at=now
    )
    window = window_alert(window_start, now)
    metrics = SelfMetrics()
    alerter = Alerter(
        Alerts(alertmanager_url=alertmanager.url, resolve_after=120.0),
        state_dir=tmp_path / "state",
        link_template=LINK,
        metrics=metrics,
    )
    alerter.start()
    try:
        for alert in (kill, warn, window):
            alerter.send(alert)
        stored = {a["labels"]["alertname"]: a for a in alertmanager.wait_for_alerts(3)}
    finally:
        alerter.close()
    assert (
        metrics.registry.get_sample_value("otel_llm_collector_sent_alerts_total", {"target": "alertmanager"})
        == 3
    )

    assert set(stored) == {"LLMTaskKilled", "LLMTaskBudgetWarning", "LLMWindowBudgetExceeded"}
    got = stored["LLMTaskKilled"]
    assert got["labels"] == {
        "alertname": "LLMTaskKilled",
        "severity": "critical",
        "kind": "kill",
        "source": "otel-llm",
        "policy": "coding-agent",
        "limit": "max_usd",
        "threshold": "1",
        "task_id": TASK,
        "task_name": "fix-bug",
        "service": "coding-agent",
    }
    link = f"https://grafana.example/d/otel-llm-tasks?var-task_id={TASK}"
    assert got["annotations"] == {
        "summary": "Task killed: fix-bug",
        "description": f'Task "fix-bug" ({TASK}) has used $0.52 of its max_usd limit of $0.50 (104%) under '
        "policy coding-agent. The task is stopped: its next model call raises BudgetExceeded.",
        "percent": "104.00",
        "spent": "0.52",
        "value": "0.5",
        "dashboard_url": link,
    }
    assert got["generatorURL"] == link
    assert got["status"]["state"] == "active"
    assert _time(got["startsAt"]) == pytest.approx(now, abs=0.001)
    assert _time(got["endsAt"]) == pytest.approx(now + 120, abs=0.001)  # resolve_after
    # The routing tree matched our labels: which receiver each alert went to.
    assert [r["name"] for r in got["receivers"]] == ["oncall"]
    assert [r["name"] for r in stored["LLMTaskBudgetWarning"]["receivers"]] == ["budget-warnings"]
    assert [r["name"] for r in stored["LLMWindowBudgetExceeded"]["receivers"]] == ["finance"]
    window_got = stored["LLMWindowBudgetExceeded"]
    assert window_got["labels"] == {
        "alertname": "LLMWindowBudgetExceeded",
        "severity": "critical",
        "kind": "window_exceeded",
        "source": "otel-llm",
        "policy": "tenant-daily",
        "limit": "max_usd",
        "threshold": "1",
        "group": "tenant=acme",
        "window": "1d",
    }
    assert _time(window_got["endsAt"]) == pytest.approx(window_start + 86400, abs=0.001)  # the window's end

    # ...and Alertmanager delivered each to the receiver's webhook.
    notify = alertmanager.notifications
    (oncall,) = notify.wait_for("/oncall", 1)
    (warnings,) = notify.wait_for("/warnings", 1)
    (finance,) = notify.wait_for("/finance", 1)
    assert (oncall.body["receiver"], oncall.body["status"]) == ("oncall", "firing")
    assert [a["labels"]["task_id"] for a in oncall.body["alerts"]] == [TASK]
    assert oncall.body["alerts"][0]["annotations"]["percent"] == "104.00"
    assert [a["labels"]["alertname"] for a in warnings.body["alerts"]] == ["LLMTaskBudgetWarning"]
    assert [a["labels"]["group"] for a in finance.body["alerts"]] == ["tenant=acme"]


def test_alertmanager_gets_no_repeat_after_a_restart(alertmanager: Running, tmp_path: Path) -> None:
    now = round(time.time(), 3)
    kill = BudgetAlert("kill", "coding-agent", "max_usd", 0.52, 0.5, 1.0, task_id=TASK, at=now)
    alerts = Alerts(alertmanager_url=alertmanager.url)
    first = Alerter(alerts, state_dir=tmp_path, link_template=LINK)
    first.start()
    first.send(kill)
    (stored,) = alertmanager.wait_for_alerts(1)
    first.close()

    metrics = SelfMetrics()
    again = Alerter(alerts, state_dir=tmp_path, link_template=LINK, metrics=metrics)
    again.start()
    # Sent again later, with a later time: a repeat would move Alertmanager's updatedAt.
    again.send(BudgetAlert("kill", "coding-agent", "max_usd", 0.61, 0.5, 1.0, task_id=TASK, at=now + 5))
    again.close()
    assert metrics.registry.get_sample_value("otel_llm_collector_deduplicated_alerts_total") == 1
    (after,) = alertmanager.alerts()
    assert (after["updatedAt"], after["startsAt"]) == (stored["updatedAt"], stored["startsAt"])


def test_an_alert_sent_while_alertmanager_is_down_arrives_once_it_is_up(
    tmp_path: Path, notify: Receiver
) -> None:
    _require_alertmanager()
    port = _free_port()
    metrics = SelfMetrics()
    alerts = Alerts(
        alertmanager_url=f"http://127.0.0.1:{port}",
        timeout=2.0,
        attempts=30,
        initial_backoff=0.05,
        max_backoff=0.3,
    )
    alerter = Alerter(alerts, state_dir=tmp_path / "state", link_template=LINK, metrics=metrics)
    alerter.start()
    try:
        alerter.send(
            BudgetAlert("kill", "coding-agent", "max_usd", 0.52, 0.5, 1.0, task_id=TASK, at=time.time())
        )
        deadline = time.monotonic() + 30
        retries = "otel_llm_collector_alert_retries_total"
        while not metrics.registry.get_sample_value(retries, {"target": "alertmanager"}):
            assert time.monotonic() < deadline, "no retry against the refused connection"
            time.sleep(0.02)
        with _alertmanager(tmp_path, notify, port) as running:
            (stored,) = running.wait_for_alerts(1)
            assert (stored["labels"]["task_id"], stored["receivers"]) == (TASK, [{"name": "oncall"}])
            (delivered,) = notify.wait_for("/oncall", 1)
            assert delivered.body["alerts"][0]["labels"]["alertname"] == "LLMTaskKilled"
    finally:
        alerter.close()
    assert (
        metrics.registry.get_sample_value("otel_llm_collector_sent_alerts_total", {"target": "alertmanager"})
        == 1
    )
    assert (
        metrics.registry.get_sample_value(
            "otel_llm_collector_failed_alerts_total", {"target": "alertmanager"}
        )
        == 0
    )
