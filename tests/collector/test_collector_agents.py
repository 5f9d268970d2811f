"""Real agent processes under ``opentelemetry-instrument``, exporting with the real OTLP
exporters (one over HTTP, one over gRPC) to a collector started here, against the
provider simulator: budgets across processes, kills reaching both, foreign spans priced."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from support.agents import agent_env, finish, start
from support.otlp import running_collector

from otel_llm.pricing import price
from otel_llm.sim import Simulator
from otel_llm.usage import Usage

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def test_runaway_task_over_two_processes_is_killed_and_both_next_calls_raise(tmp_path):
    policy = {"policies": [{"name": "runaway-guard", "per_task": {"max_iterations": 8}}]}
    with Simulator() as sim, running_collector(tmp_path, policy) as collector:
        shared = {"BAGGAGE": "otel_llm.task.id=shared-runaway,otel_llm.task.name=runaway"}
        over_http = start(agent_env(collector, sim, service="planner", protocol="http", **shared))
        over_grpc = start(agent_env(collector, sim, service="worker", protocol="grpc", **shared))
        (http_lines, _), (grpc_lines, _) = finish(over_http), finish(over_grpc)
        task = get_json(collector.http_url + "/v1/tasks/shared-runaway")
        kills = get_json(collector.http_url + "/v1/kills")["kills"]
        served = sim.request_count
        collector.storage.spans.flush()
        collector.storage.events.flush()
        calls = collector.storage.backend.query(
            "SELECT service_name, count() AS n, sum(input_tokens) AS input, sum(cost_usd) AS cost"
            " FROM llm_calls WHERE task_id = 'shared-runaway' GROUP BY service_name ORDER BY service_name"
        ).dicts()
        events = collector.storage.backend.query(
            "SELECT kind, limit_name, spent, limit_value FROM budget_events WHERE task_id = 'shared-runaway'"
            " AND source = 'collector' ORDER BY timestamp, spent"
        ).dicts()
    for lines in (http_lines, grpc_lines):
        # Each process made calls, then its next call was refused: neither ran to the end.
        assert lines[-1].startswith("REFUSED "), lines
        assert "DONE" not in lines
        assert 'task "runaway" (id shared-runaway) was stopped' in lines[-1]
        assert "the otel-llm collector stopped the task: made 8 model calls of max_iterations 8" in lines[-1]
        assert f"(collector {collector.http_url})" in lines[-1]
    made = sum(1 for line in http_lines + grpc_lines if line.startswith("CALL "))
    assert made == served >= 8
    assert [(k["task_id"], k["limit"], k["spent"], k["limit_value"]) for k in kills] == [
        ("shared-runaway", "max_iterations", 8, 8)
    ]
    # Every call of both processes reached the collector once, over both protocols.
    assert task["iterations"] == made
    assert {row["service_name"] for row in calls} == {"planner", "worker"}
    assert sum(row["n"] for row in calls) == made
    assert task["input_tokens"] == sum(row["input"] for row in calls)
    assert task["cost_usd"] == pytest.approx(sum(row["cost"] for row in calls), rel=1e-9)
    assert [(e["kind"], e["limit_name"], e["spent"], e["limit_value"]) for e in events] == [
        ("warn", "max_iterations", 7.0, 8.0),
        ("killed", "max_iterations", 8.0, 8.0),
    ]


def test_traceloop_instrumented_process_is_priced_and_budgeted(tmp_path):
    policy = {
        "policies": [
            {
                "name": "foreign",
                "match": {"service.name": "traceloop-agent"},
                "per_task": {"max_iterations": 3},
            }
        ]
    }
    with Simulator() as sim, running_collector(tmp_path, policy) as collector:
        env = agent_env(
            collector,
            sim,
            service="traceloop-agent",
            protocol="http",
            LOOP_CALLS="5",
            LOOP_PAUSE="0",
            LOOP_SPAN="agent run",
            # Ours off, traceloop's on; no message content in spans.
            OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="otel_llm_openai,otel_llm_anthropic",
            TRACELOOP_TRACE_CONTENT="false",
            OTEL_BSP_SCHEDULE_DELAY="100",
        )
        lines, _ = finish(start(env))
        assert lines[-1] == "DONE"  # nothing of ours in the process to refuse a call
        collector.storage.spans.flush()
        rows = collector.storage.backend.query(
            "SELECT TraceId AS trace, SpanAttributes AS a FROM otel_traces"
            " WHERE ServiceName = 'traceloop-agent'"
            " AND ScopeName LIKE 'opentelemetry.instrumentation.openai%'"
            " ORDER BY Timestamp"
        ).dicts()
        assert len(rows) == 5
        trace_id = rows[0]["trace"]
        task = get_json(f"{collector.http_url}/v1/tasks/{trace_id}")
        kills = get_json(collector.http_url + "/v1/kills")["kills"]
        stored = collector.storage.backend.query(
            "SELECT source, input_tokens, output_tokens, cost_usd FROM llm_calls"
            " WHERE service_name = 'traceloop-agent'"
        ).dicts()
    for row in rows:
        a = dict(row["a"])
        assert "otel_llm.task.id" not in a  # traceloop's span, not ours
        usage = Usage(
            input_tokens=int(a["gen_ai.usage.input_tokens"]),
            output_tokens=int(a["gen_ai.usage.output_tokens"]),
        )
        expected = price(usage, "gpt-4o-mini", "openai")
        assert float(a["otel_llm.cost.usd"]) == pytest.approx(expected.total_usd, rel=1e-12)
        assert a["otel_llm.price.source"].startswith("genai-prices ")
    assert all(row["trace"] == trace_id for row in rows)
    assert task["iterations"] == 5
    assert task["cost_usd"] == pytest.approx(
        sum(float(dict(r["a"])["otel_llm.cost.usd"]) for r in rows), rel=1e-12
    )
    assert [(k["task_id"], k["limit"], k["spent"]) for k in kills] == [(trace_id, "max_iterations", 3)]
    assert len(stored) == 5
    assert all(row["cost_usd"] > 0 for row in stored)


def test_a_collector_that_is_down_never_blocks_or_breaks_a_model_call(tmp_path):
    from support.otlp import free_port

    with Simulator() as sim, running_collector(tmp_path) as collector:
        dead = f"http://127.0.0.1:{free_port()}"
        env = agent_env(collector, sim, service="lonely", protocol="http", LOOP_CALLS="6", LOOP_PAUSE="0.1")
        env["OTEL_LLM_COLLECTOR_URL"] = dead
        lines, err = finish(start(env))
    assert lines == [*(f"CALL {n}" for n in range(1, 7)), "DONE"]
    assert sim.request_count == 6
    # Logged once per outage, not once per retry.
    assert err.count(f"cannot follow the kills of the otel-llm collector at {dead}") == 1


def test_default_instrument_setup_exports_metrics_and_logs_without_errors(tmp_path):
    with Simulator() as sim, running_collector(tmp_path) as collector:
        env = agent_env(
            collector,
            sim,
            service="metrics-too",
            protocol="http",
            LOOP_CALLS="2",
            LOOP_PAUSE="0",
            OTEL_METRICS_EXPORTER="otlp",
            OTEL_LOGS_EXPORTER="otlp",
            OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED="true",
        )
        lines, err = finish(start(env))
        with urllib.request.urlopen(collector.http_url + "/metrics", timeout=10) as response:
            metrics = response.read().decode()
    assert lines[-1] == "DONE"
    assert "Failed to export" not in err
    assert 'otel_llm_collector_received_items_total{protocol="http",signal="metrics"}' in metrics


def test_the_subscriber_reconnects_when_the_collector_comes_up_later(tmp_path):
    from support.otlp import free_port

    port = free_port()
    policy = {"policies": [{"name": "cap", "per_task": {"max_iterations": 4}}]}
    with Simulator() as sim:

        class Later:  # where the collector will be
            http_url = f"http://127.0.0.1:{port}"

        env = agent_env(
            Later,
            sim,
            service="early",
            protocol="http",
            LOOP_CALLS="80",
            LOOP_PAUSE="0.2",
            BAGGAGE="otel_llm.task.id=early-task",
            OTEL_BSP_SCHEDULE_DELAY="100",
        )
        agent = start(env)
        time.sleep(2.0)  # the agent runs, its subscriber backs off, its exports fail
        receivers = {"otlp": {"grpc": {"endpoint": "127.0.0.1:0"}, "http": {"endpoint": f"127.0.0.1:{port}"}}}
        with running_collector(tmp_path, policy, receivers=receivers) as collector:
            lines, err = finish(agent)
            task = get_json(collector.http_url + "/v1/tasks/early-task")
    assert lines[-1].startswith("REFUSED "), lines
    assert "made 4 model calls of max_iterations 4" in lines[-1]
    assert "DONE" not in lines
    assert task["state"] == "killed"
    # The outage was logged once; the refusal above shows the subscriber reconnected.
    assert err.count(f"cannot follow the kills of the otel-llm collector at http://127.0.0.1:{port}") == 1
