"""Alerts from a running collector: spans over OTLP/HTTP cross a task's warning threshold
and its limit, and the webhook gets one warning and one kill; a restarted collector on
the same state directory does not send them again."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
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


def post_spans(url: str, *spans) -> None:
    body = request(*spans, resource={"service.name": "coding-agent"}).SerializeToString()
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

    # The same state directory: the task's spend and its alerts are both remembered.
    with running_collector(tmp_path, policy, **sections) as collector:
        post_spans(collector.http_url, call("task-a"))
        post_spans(collector.http_url, call("task-b"), call("task-b"), call("task-b"))
        (_, _, other) = receiver.wait_for("/hook", 3)
    assert (other.body["kind"], other.body["task"]["id"]) == ("warn", "task-b")
    assert [(r.body["kind"], r.body["task"]["id"]) for r in receiver.requests("/hook")] == [
        ("warn", "task-a"),
        ("kill", "task-a"),
        ("warn", "task-b"),
    ]
