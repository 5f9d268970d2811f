"""``make demo`` (``otel-llm demo``) end to end: the collector on the embedded store, the
example agent as version 1 and version 2 under ``opentelemetry-instrument`` against the
simulator, a runaway killed by the collector with its alert delivered to the demo's
webhook receiver, and the before/after report. The simulator's scripted model makes
token counts and costs exact."""

from __future__ import annotations

import os

import pytest

from otel_llm import demo
from otel_llm.usage import TASK_USAGE_PREFIX

# Per task, identical in both versions: model calls, input and output tokens, tool calls.
WORK = {
    "locate-spend-cap": (3, 5258, 31, 2),
    "fix-readme-typo": (3, 5167, 36, 2),
    "review-modules": (2, 3576, 42, 3),
    "fix-add-bug": (4, 7029, 67, 3),
}
# Per task: (cost $, cache read tokens, cache write tokens) in version 1 and in version 2.
V1 = {
    "locate-spend-cap": (0.010826, 0, 0),
    "fix-readme-typo": (0.010694, 0, 0),
    "review-modules": (0.007572, 0, 0),
    "fix-add-bug": (0.014728, 0, 0),
}
V2 = {
    "locate-spend-cap": (0.0054272, 3272, 1636),  # the first call writes the prefix
    "fix-readme-typo": (0.0013688, 4908, 0),
    "review-modules": (0.0013552, 3272, 0),
    "fix-add-bug": (0.0022944, 6544, 0),
}


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    saved = dict(os.environ)
    for key in [k for k in os.environ if k.startswith(("OTEL_", "OPENAI_", "ANTHROPIC_"))]:
        del os.environ[key]
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("demo"))  # the HTML report goes under ./.otel-llm/
    try:
        result = demo.run()
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(saved)
    assert result is not None
    return result


def _tasks(result, version):
    spans = [s for s in demo.task_spans(result.spans) if s.resource.get("service.version") == version]
    return {s.attributes["otel_llm.task.name"]: s.attributes for s in spans}


@pytest.mark.parametrize(("version", "costs"), [("1", V1), ("2", V2)])
def test_each_version_runs_the_five_tasks_with_exact_usage(ran, version, costs):
    tasks = _tasks(ran, version)
    assert sorted(tasks) == sorted([*WORK, "runaway"])
    for name, (calls, input_tokens, output_tokens, tools) in WORK.items():
        a = tasks[name]
        assert a["otel_llm.task.outcome"] == "done", name
        assert a["otel_llm.task.iterations"] == calls, name
        assert a[TASK_USAGE_PREFIX + "input_tokens"] == input_tokens, name
        assert a[TASK_USAGE_PREFIX + "output_tokens"] == output_tokens, name
        assert a["otel_llm.task.tool_calls"] == tools, name
        cost, cache_read, cache_write = costs[name]
        assert a["otel_llm.task.cost.usd"] == pytest.approx(cost, abs=1e-9), name
        assert a[TASK_USAGE_PREFIX + "cache_read.input_tokens"] == cache_read, name
        assert a[TASK_USAGE_PREFIX + "cache_creation.input_tokens"] == cache_write, name


def test_version_2_is_cheaper_per_task_with_cache_reads(ran):
    v1, v2 = _tasks(ran, "1"), _tasks(ran, "2")
    for name in [*WORK, "runaway"]:
        assert v2[name]["otel_llm.task.cost.usd"] < v1[name]["otel_llm.task.cost.usd"], name
    assert sum(a[TASK_USAGE_PREFIX + "cache_read.input_tokens"] for a in v2.values()) == 32_720
    rows = {row["metric"]: row for row in ran.report.results["version_compare"]}
    assert (rows["tasks"]["a"], rows["tasks"]["b"]) == (5, 5)
    assert (rows["cost_per_task_p50_usd"]["a"], rows["cost_per_task_p50_usd"]["b"]) == (0.010826, 0.002294)
    assert (rows["task_success_rate"]["a"], rows["task_success_rate"]["b"]) == (0.8, 0.8)
    assert rows["cache_hit_ratio"]["a"] == 0
    assert rows["cache_hit_ratio"]["b"] == 0.862596
    assert ran.html is not None
    assert ran.html.is_file()


def test_version_1_runs_independent_tools_one_by_one_and_version_2_together(ran):
    # review-modules: one model turn asks for three reads; the only multi-tool batch.
    sequential = "otel_llm.task.tool_batches.sequential"
    assert [_tasks(ran, v)["review-modules"][sequential] for v in ("1", "2")] == [1, 0]
    assert [_tasks(ran, v)["fix-add-bug"][sequential] for v in ("1", "2")] == [0, 0]


def test_version_1_runaway_is_killed_by_the_collector_and_the_alert_delivered(ran):
    runaway = _tasks(ran, "1")["runaway"]
    # No caps in version 1: only the collector's $0.10 policy stops it. Its 22nd call
    # crosses the limit; the kill reaches the agent before its next call is sent
    # (one more may slip through on a loaded machine).
    assert runaway["otel_llm.task.stopped_by"] == "killed"
    assert runaway["otel_llm.task.iterations"] in (22, 23)
    (stopped,) = [line for line in ran.runs["1"].stopped if line.startswith("stopped:")]
    assert (
        "the otel-llm collector stopped the task: spent $0.1014 of max_usd $0.1000 (collector http" in stopped
    )
    kill = ran.killed
    assert kill is not None
    assert (kill["kind"], kill["policy"], kill["limit"], kill["value"]) == (
        "kill",
        demo.RUNAWAY_POLICY,
        "max_usd",
        0.1,
    )
    assert kill["spent"] == pytest.approx(0.101444, abs=1e-9)
    assert kill["task"] == {"id": runaway["otel_llm.task.id"], "name": "runaway"}
    assert kill["service"] == demo.DEMO_SERVICE
    kinds = [(a["kind"], a["task"]["name"]) for a in ran.alerts]
    assert kinds == [("warn", "runaway"), ("kill", "runaway")]


def test_version_2_runaway_escalates_to_the_human_and_stops_at_its_caps(ran):
    runaway = _tasks(ran, "2")["runaway"]
    assert runaway["otel_llm.task.stopped_by"] == "max_iterations"
    assert runaway["otel_llm.task.iterations"] == 9  # 6, then the 3 the human granted
    assert runaway["otel_llm.budget.grants"] == 1
    assert runaway[TASK_USAGE_PREFIX + "cache_read.input_tokens"] == 14_724
    assert ran.runs["2"].stopped == [
        "escalated runaway: max_iterations reached (6 of 6, $0.0036 spent)",
        "on-call human: granted 3 more model calls",
        "escalated runaway: max_iterations reached (9 of 9, $0.0069 spent)",
        "on-call human: stop it",
        ran.runs["2"].stopped[-1],
    ]
    assert (
        ran.runs["2"]
        .stopped[-1]
        .endswith("reached max_iterations: made 9 model calls of max_iterations 9; model call refused")
    )


def test_demo_prints_the_tables_the_kill_and_the_report(ran, capsys):
    demo.show(ran)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "Tasks of version 1, from the task spans the agent exported:" in lines
    assert "Tasks of version 2, from the task spans the agent exported:" in lines
    rows = [line.split() for line in lines]
    assert ["runaway", "killed", "by", "the", "collector"] in [row[:5] for row in rows]
    assert ["runaway", "stopped", "at", "max_iterations", "after", "1", "grant", "9"] in [
        row[:8] for row in rows
    ]
    cache = {row[0]: row for row in rows if row[:1] in (["1"], ["2"]) and len(row) == 7}
    assert cache["1"][3:5] == ["0", "0"]
    assert cache["2"][3:5] == ["32,720", "1,636"]
    assert any(line.startswith("Killed by the collector: task runaway (") for line in lines)
    assert "Alerts received by the webhook: 2" in lines
    assert "Before / after: 1 -> 2" in out
    assert f"HTML report (opens offline): {ran.html}" in lines
    assert "docker compose up -d --build" in out
