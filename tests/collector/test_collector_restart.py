"""Restarts, ``kill -9`` included, in the middle of a task: per-task spend, window spend
and kill decisions survive (``otel-llm collector`` run as a child process)."""

from __future__ import annotations

import json
import urllib.request

import pytest
from support.otlp import CollectorProcess, call, request

COST_100_10 = 100 * 0.15e-6 + 10 * 0.60e-6
POLICY = {
    "policies": [
        {"name": "per-task", "per_task": {"max_iterations": 5}},
        {
            "name": "tenant",
            "match": {"tenant": "*"},
            "group_by": "tenant",
            "window": "1d",
            "max_usd": 8.5 * COST_100_10,
        },
    ]
}


def send(collector: CollectorProcess, *spans, tenant: str = "acme") -> None:
    body = request(*spans, resource={"tenant": tenant}).SerializeToString()
    req = urllib.request.Request(
        collector.http_url + "/v1/traces",
        data=body,
        method="POST",
        headers={"Content-Type": "application/x-protobuf"},
    )
    with urllib.request.urlopen(req, timeout=10) as response:
        assert response.status == 200


def get(collector: CollectorProcess, path: str) -> dict:
    with urllib.request.urlopen(collector.http_url + path, timeout=10) as response:
        return json.load(response)


def test_kill_9_in_the_middle_of_a_task_keeps_its_budget(tmp_path):
    collector = CollectorProcess(tmp_path, "c", {}, POLICY).start()
    try:
        send(collector, call("long-task"), call("long-task"), call("long-task"))
        send(collector, call("other-task"), call("other-task"), call("other-task"))
        assert get(collector, "/v1/tasks/long-task")["iterations"] == 3
        collector.kill9()  # no shutdown, no final snapshot: the journal is all there is

        collector.start()
        task = get(collector, "/v1/tasks/long-task")
        assert (task["iterations"], task["state"]) == (3, "ok")
        assert task["cost_usd"] == pytest.approx(3 * COST_100_10, rel=1e-12)
        send(collector, call("long-task"))
        assert get(collector, "/v1/kills")["kills"] == []
        send(collector, call("long-task"))  # the 5th call in all: the limit holds across the restart
        [kill] = get(collector, "/v1/kills")["kills"]
        assert (kill["task_id"], kill["limit"], kill["spent"], kill["cursor"]) == (
            "long-task",
            "max_iterations",
            5,
            1,
        )
        # Tenant acme has spent 8 calls' worth of its 8.5-call window budget (window spend
        # survived the restart too): one more call spends it and kills the other task.
        assert get(collector, "/v1/tasks/other-task")["state"] == "ok"
        send(collector, call("other-task"))
        assert get(collector, "/v1/tasks/other-task")["killed"]["group"] == "tenant=acme"
        cursor = get(collector, "/v1/kills")["cursor"]
        collector.kill9()

        collector.start()
        kills = get(collector, "/v1/kills")
        assert kills["cursor"] == cursor
        assert {k["task_id"] for k in kills["kills"]} == {"long-task", "other-task"}
        assert get(collector, "/v1/tasks/long-task")["state"] == "killed"
        # A new task of acme is still refused: the window is spent until tomorrow.
        send(collector, call("new-task"))
        assert get(collector, "/v1/tasks/new-task")["state"] == "killed"
        send(collector, call("beta-task"), tenant="beta")
        assert get(collector, "/v1/tasks/beta-task")["state"] == "ok"
        # A graceful stop writes a snapshot; the next start reads it.
        collector.stop()
        collector.start()
        assert get(collector, "/v1/tasks/long-task")["iterations"] == 5
        assert get(collector, "/v1/kills")["cursor"] == cursor + 1
    finally:
        collector.stop()
