"""Alerts from a running collector: spans over OTLP/HTTP cross a task's warning threshold
and its limit, and the webhook gets one warning and one kill; a restarted collector on
the same state directory does not send them again."""

from __future__ import annotations

import json
import shutil
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.otlp import call, request, running_collector
from support.webhook_receiver import Receiver

# gpt-4o-mini: $0.15 / MTok input, $0.60 / MTok output: 100 in + 10 out = $0.000021.
CALL_USD = 100 * 0.15e-6 + 10 * 0.60e-6
LIMIT_USD = 0.0001


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def scrape(url: str) -> dict[str, float]:
    """The collector's ``/metrics``, sample (name with labels) to value."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def post_spans(url: str, *spans, **resource: str) -> None:
    body = request(*spans, resource={"service.name": "coding-agent", **resource}).SerializeToString()
    sent = urllib.request.Request(
        f"{url}/v1/traces", data=body, headers={"Content-Type": "application/x-protobuf"}, method="POST"
    )
    with urllib.request.urlopen(sent, timeout=10) as response:
        assert response.status == 200


def test_collector_sends_a_warning_and_a_kill_once_across_a_restart(
    receiver: Receiver, tmp_path: Path
) -> None:
    policy = {
        "warn_at": 0.5,
        "policies": [{"name": "coding-agent", "per_task": {"max_usd": LIMIT_USD}, "on_exceed": "kill"}],
        "alerts": {"webhook": {"url": receiver.url("/hook")}},
    }
    sections = {
        "exporters": {"storage": False},
        "alerts": {"link_template": "http://grafana:3000/d/otel-llm-tasks?var-task_id={task_id}"},
    }
    with running_collector(tmp_path, policy, **sections) as collector:
        for _ in range(3):  # 3 x $0.000021 = 63 % of the limit: past warn_at
            post_spans(collector.http_url, call("task-a"))
        (warning,) = receiver.wait_for("/hook", 1)
        for _ in range(2):  # 5 x $0.000021 = 105 %: killed
            post_spans(collector.http_url, call("task-a"))
        kill = receiver.wait_for("/hook", 2)[1]

    assert (warning.body["kind"], warning.body["severity"]) == ("warn", "warning")
    assert warning.body["task"] == {"id": "task-a", "name": None}
    assert (warning.body["policy"], warning.body["limit"], warning.body["threshold"]) == (
        "coding-agent",
        "max_usd",
        0.5,
    )
    assert warning.body["value"] == LIMIT_USD
    assert warning.body["spent"] == pytest.approx(3 * CALL_USD, rel=1e-9)
    assert warning.body["percent"] == 63.0
    assert warning.body["service"] == "coding-agent"
    assert warning.body["link"] == "http://grafana:3000/d/otel-llm-tasks?var-task_id=task-a"
    assert (kill.body["kind"], kill.body["threshold"], kill.body["percent"]) == ("kill", 1.0, 105.0)
    assert kill.body["spent"] == pytest.approx(5 * CALL_USD, rel=1e-9)
    assert kill.body["description"] == (
        "Task task-a has used $0.000105 of its max_usd limit of $0.0001 (105%) under policy coding-agent. "
        "The task is stopped: its next model call raises BudgetExceeded."
    )

    # The same state directory: the task's spend and its alerts are both remembered.
    with running_collector(tmp_path, policy, **sections) as collector:
        post_spans(collector.http_url, call("task-a"))
        post_spans(collector.http_url, call("task-b"), call("task-b"), call("task-b"))
        (_, _, other) = receiver.wait_for("/hook", 3)
        metrics = scrape(collector.http_url)
    # The restarted collector's own counters, on its /metrics.
    assert metrics['otel_llm_collector_sent_alerts_total{target="webhook"}'] == 1.0
    assert metrics['otel_llm_collector_failed_alerts_total{target="webhook"}'] == 0.0
    assert (other.body["kind"], other.body["task"]["id"]) == ("warn", "task-b")
    assert [(r.body["kind"], r.body["task"]["id"]) for r in receiver.requests("/hook")] == [
        ("warn", "task-a"),
        ("kill", "task-a"),
        ("warn", "task-b"),
    ]

    # Even a collector whose budget state is gone (only the alerts' memory is left) does
    # not repeat an alert: task-a crosses both thresholds again, nobody is told twice.
    state = tmp_path / "state"
    for path in state.iterdir():
        if path.name != "alerts":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    with running_collector(tmp_path, policy, **sections) as collector:
        for _ in range(5):
            post_spans(collector.http_url, call("task-a"))
        with urllib.request.urlopen(f"{collector.http_url}/v1/tasks/task-a", timeout=10) as response:
            assert json.load(response)["state"] == "killed"
        metrics = scrape(collector.http_url)
    assert metrics["otel_llm_collector_deduplicated_alerts_total"] == 2.0
    assert metrics['otel_llm_collector_sent_alerts_total{target="webhook"}'] == 0.0
    assert len(receiver.requests("/hook")) == 3


def test_a_tenant_window_budget_warns_once_and_is_exceeded_once(receiver: Receiver, tmp_path: Path) -> None:
    policy = {
        "warn_at": 0.5,
        "policies": [
            {
                "name": "tenant-daily",
                "match": {"tenant": "*"},
                "group_by": "tenant",
                "window": "1d",
                "max_usd": LIMIT_USD,
                "on_exceed": "alert",
            }
        ],
        "alerts": {"webhook": {"url": receiver.url("/hook")}},
    }
    with running_collector(tmp_path, policy, exporters={"storage": False}) as collector:
        # Three tasks of one tenant share its window: 6 calls = 126 % of it.
        for task in ("t1", "t2", "t3"):
            post_spans(collector.http_url, call(task), call(task), tenant="acme")
        post_spans(collector.http_url, call("t4"), tenant="globex")  # another tenant, 21 %
        warning, exceeded = receiver.wait_for("/hook", 2)
    assert len(receiver.requests("/hook")) == 2
    for body in (warning.body, exceeded.body):
        assert (body["task"], body["policy"], body["group"]) == (None, "tenant-daily", "tenant=acme")
        window = body["window"]
        assert window["name"] == "1d"
        start, end = (datetime.fromisoformat(window[k].replace("Z", "+00:00")) for k in ("start", "end"))
        assert (end - start).total_seconds() == 86400
        assert start <= datetime.now(UTC) < end
    assert (warning.body["kind"], warning.body["threshold"], warning.body["percent"]) == (
        "window_warn",
        0.5,
        63.0,
    )
    assert (exceeded.body["kind"], exceeded.body["threshold"], exceeded.body["percent"]) == (
        "window_exceeded",
        1.0,
        105.0,
    )
