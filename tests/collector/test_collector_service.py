"""The wired collector: budget events reach the alerter and ``budget_events``, the
self-metrics count what happened, the CLI clients talk to the control API."""

from __future__ import annotations

import json
import os
import time
import urllib.request

import pytest
from support.otlp import call, request, running_collector
from support.webhook_receiver import Receiver

from otel_llm.cli import main as cli_main
from otel_llm.collector.otlp import from_export_request

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def post(url: str, body: bytes) -> int:
    req = urllib.request.Request(url, data=body, method="POST", headers=PROTOBUF)
    with urllib.request.urlopen(req, timeout=10) as response:
        return response.status


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_warn_and_kill_reach_the_webhook_and_budget_events(tmp_path):
    with Receiver() as hook:
        policy = {
            "warn_at": 0.5,
            "policies": [{"name": "p", "per_task": {"max_iterations": 2}}],
            "alerts": {"webhook": {"url": hook.url("/hook")}},
        }
        with running_collector(
            tmp_path, policy, alerts={"link_template": "http://grafana/t?id={task_id}"}
        ) as c:
            assert (
                post(c.http_url + "/v1/traces", request(call("alerted"), call("alerted")).SerializeToString())
                == 200
            )
            received = hook.wait_for("/hook", 2)
            c.storage.events.flush()
            events = c.storage.backend.query(
                "SELECT kind, limit_name, spent, limit_value, policy FROM budget_events"
                " WHERE task_id = 'alerted' ORDER BY timestamp, spent"
            ).dicts()
    kinds = sorted(r.body["kind"] for r in received)
    assert kinds == ["kill", "warn"]
    kill = next(r.body for r in received if r.body["kind"] == "kill")
    assert kill["task"] == {"id": "alerted", "name": None}
    assert (kill["limit"], kill["spent"], kill["value"], kill["percent"]) == (
        "max_iterations",
        2.0,
        2.0,
        100.0,
    )
    assert "http://grafana/t?id=alerted" in json.dumps(kill)
    assert events == [
        {"kind": "warn", "limit_name": "max_iterations", "spent": 1.0, "limit_value": 2.0, "policy": "p"},
        {"kind": "killed", "limit_name": "max_iterations", "spent": 2.0, "limit_value": 2.0, "policy": "p"},
    ]


def test_self_metrics_count_received_priced_refused_and_kills(tmp_path):
    policy = {"policies": [{"name": "p", "per_task": {"max_iterations": 1}}]}
    with running_collector(tmp_path, policy, processors={"budget": {"killed_task_max_spans": 0}}) as c:
        post(c.http_url + "/v1/traces", request(call("m1"), call("m2"), call("m2")).SerializeToString())
        c.kill("m3", "by hand")
        with urllib.request.urlopen(c.http_url + "/metrics", timeout=10) as response:
            text = response.read().decode()
    assert metric(text, 'otel_llm_collector_received_items_total{protocol="http",signal="traces"}') == 2
    assert metric(text, 'otel_llm_collector_refused_spans_total{reason="killed_task"}') == 1
    assert metric(text, "otel_llm_collector_priced_spans_total") == 3
    assert metric(text, 'otel_llm_collector_kills_total{cause="limit"}') == 2
    assert metric(text, 'otel_llm_collector_kills_total{cause="manual"}') == 1
    assert metric(text, "otel_llm_collector_active_tasks") == 2


def test_tasks_and_kill_commands(tmp_path, capsys, monkeypatch):
    policy = {"policies": [{"name": "p", "per_task": {"max_usd": 1.0, "max_iterations": 10}}]}
    with running_collector(tmp_path, policy) as c:
        post(c.http_url + "/v1/traces", request(call("cli-task", 1000, 100)).SerializeToString())
        monkeypatch.setenv("OTEL_LLM_COLLECTOR_URL", c.http_url)
        monkeypatch.delenv("OTEL_LLM_COLLECTOR_TOKEN", raising=False)
        assert cli_main(["tasks"]) == 0
        table = capsys.readouterr().out
        assert "cli-task" in table
        assert "$0.0002 / 1" in table  # 1000 in x $0.15/M + 100 out x $0.60/M = $0.00021
        assert "1 / 10" in table
        assert cli_main(["kill", "cli-task", "--reason", "looping"]) == 0
        assert "killed task cli-task" in capsys.readouterr().out
        assert cli_main(["tasks", "--state", "killed", "--json"]) == 0
        [task] = json.loads(capsys.readouterr().out)
        assert task["task_id"] == "cli-task"
        assert "killed by hand (looping)" in task["killed"]["reason"]
    monkeypatch.setenv("OTEL_LLM_COLLECTOR_URL", "http://127.0.0.1:9")
    assert cli_main(["tasks"]) == 1
    assert "cannot reach the collector" in capsys.readouterr().err


def test_collector_command_rejects_a_bad_config_naming_the_key(tmp_path, capsys):
    bad = tmp_path / "config.yaml"
    bad.write_text("receivers:\n  otlp:\n    max_request_bytes: big\n")
    assert cli_main(["collector", "--config", str(bad)]) == 2
    assert 'config.yaml: receivers.otlp.max_request_bytes: expected an integer > 0, got "big"' in (
        capsys.readouterr().err
    )
    assert not os.path.exists(tmp_path / ".otel-llm")


@pytest.mark.parametrize("path", ["collector/config.yaml"])
def test_the_example_config_is_valid_and_spells_out_the_defaults(path):
    from pathlib import Path

    from otel_llm.collector.config import Config, load_config

    root = Path(__file__).resolve().parents[2]
    example = load_config(root / path)
    defaults = Config()
    assert example.receivers == defaults.receivers
    assert example.control == defaults.control
    assert example.state == defaults.state
    assert example.processors.budget.max_active_tasks == defaults.processors.budget.max_active_tasks
    assert example.processors.budget.policy_file == "collector/policy.example.yaml"


def test_otlp_forward_sends_traces_metrics_and_logs_downstream(tmp_path):
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs

    no_storage = {"exporters": {"storage": False}}
    with running_collector(tmp_path / "down", None, **no_storage) as downstream:
        forward = {"exporters": {"storage": False, "otlp": {"endpoint": downstream.http_url}}}
        with running_collector(tmp_path / "up", None, **forward) as upstream:
            post(upstream.http_url + "/v1/traces", request(call("fwd"), call("fwd")).SerializeToString())
            logs = ExportLogsServiceRequest(
                resource_logs=[
                    ResourceLogs(scope_logs=[ScopeLogs(log_records=[LogRecord(severity_number=9)] * 3)])
                ]
            )
            post(upstream.http_url + "/v1/logs", logs.SerializeToString())
            deadline = time.monotonic() + 10
            while upstream.forwarder.stats["forwarded"] < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert upstream.forwarder.stats == {"forwarded": 2, "failed": 0, "dropped": 0}
        assert downstream.processor.task("fwd")["iterations"] == 2
        text = downstream.metrics()[0].decode()
    assert metric(text, 'otel_llm_collector_received_items_total{protocol="http",signal="logs"}') == 3


def test_spans_once_accounted_are_stored_and_their_budget_events_written(tmp_path):
    """Storage room is held for a request before its spans are accounted: another
    request filling the queue meanwhile is the one refused (503), not this one after its
    kill took effect (its budget event lost, its retry counted twice)."""
    writer = {"batch_rows": 10, "max_queue_rows": 10, "flush_interval": 60, "block_timeout": 0.05}
    policy = {"policies": [{"name": "p", "per_task": {"max_iterations": 2}}]}
    with running_collector(tmp_path, policy, storage={"path": str(tmp_path / "ch"), "writer": writer}) as c:
        spans = c.storage.spans
        journal = c.processor.journal
        other: list[bool] = []

        def meanwhile(*args):
            # Another request, between this one's room check and its submit, takes 9 rows.
            others = from_export_request(request(*[call(f"other-{n}") for n in range(9)]))
            room = spans.has_room(len(others))
            other.append(room)
            if room:
                spans.submit(others)
            journal(*args)

        c.processor.journal = meanwhile
        status = post(c.http_url + "/v1/traces", request(call("k"), call("k")).SerializeToString())
        c.processor.journal = journal
        assert (status, other) == (200, [False])
        assert spans.stats()["rows_submitted"] == 2
        assert c.storage.events.stats()["rows_submitted"] == 1  # the kill
        assert c.task("k")["state"] == "killed"
