"""Every dashboard panel and alert rule, as Grafana would send it, on chDB loaded with the
sample workload (coding-agent 1.1.0 regresses at ``release_at``): the SQL runs, returns
what its panel type needs, and shows the regression."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_llm.grafana import alerting, files
from otel_llm.grafana.dashboards import DASHBOARDS
from otel_llm.grafana.model import DATASOURCE_UID, PLUGIN_ID, Dashboard
from otel_llm.report.sample import Sample
from otel_llm.storage import queries
from otel_llm.storage.backend import Backend
from otel_llm.storage.dialect import ALL, DialectError, GrafanaContext, bind, expand, variables

ROOT = Path(__file__).resolve().parents[2]
KNOWN_PANEL_TYPES = {"timeseries", "table", "stat", "barchart", "piechart"}
NUMERIC = ("UInt", "Int", "Float", "Decimal", "Nullable(UInt", "Nullable(Int", "Nullable(Float", "Bool")


def column_types(store: Backend, sql: str) -> dict[str, str]:
    return {row[0]: row[1] for row in store.query(f"DESCRIBE ({sql})").rows}


def variable_options(store: Backend, dashboard: Dashboard, context: GrafanaContext) -> dict[str, list[str]]:
    """Run each query variable as Grafana would, for its options."""
    out = {}
    for variable in dashboard.variables:
        if variable.kind == "query":
            out[variable.name] = [r[0] for r in store.query(expand(variable.query, context)).rows]
    return out


def context_for(
    store: Backend, dashboard: Dashboard, start: dt.datetime, end: dt.datetime, **chosen: Any
) -> GrafanaContext:
    values: dict[str, Any] = {}
    for variable in dashboard.variables:
        if variable.kind == "query":
            values[variable.name] = ALL if variable.include_all else ""
        else:
            values[variable.name] = variable.default
    plain = GrafanaContext(start, end, 3600, values)
    options = variable_options(store, dashboard, plain)
    for name in ("version_a", "version_b"):
        if name in values:
            values[name] = options[name][0] if name == "version_a" else options[name][-1]
    values.update(chosen)
    return GrafanaContext(start, end, 3600, values, options)


def panel_rows(store: Backend, sql: str, context: GrafanaContext) -> list[dict[str, Any]]:
    return store.query(expand(sql, context)).dicts()


# -- the dialect: what the plugin does, exactly ------------------------------------------


def test_macros_expand_as_the_plugin_documents() -> None:
    start = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC)
    end = start + dt.timedelta(hours=1)
    s, e = int(start.timestamp()), int(end.timestamp())
    ctx = GrafanaContext(start, end, 90, {"service": ["a", "o'b"], "model": ALL, "limit": "5"},
                         {"model": ["x", "y"]})  # fmt: skip
    assert expand("$__timeFilter(ts)", ctx) == f"ts >= toDateTime({s}) AND ts <= toDateTime({e})"
    assert expand("$__timeFilter_ms(ts)", ctx) == (
        f"ts >= fromUnixTimestamp64Milli({s}678) AND ts <= fromUnixTimestamp64Milli({e}678)"
    )
    assert expand("$__fromTime $__toTime", ctx) == f"toDateTime({s}) toDateTime({e})"
    assert expand("$__fromTime_ms", ctx) == f"fromUnixTimestamp64Milli({s}678)"
    assert expand("$__timeInterval(ts)", ctx) == "toStartOfInterval(toDateTime(ts), INTERVAL 90 second)"
    assert expand("$__timeInterval_ms(ts)", ctx) == (
        "toStartOfInterval(toDateTime64(ts, 3), INTERVAL 90000 millisecond)"
    )
    assert expand("$__interval_s", ctx) == "90"
    assert expand("$__dateFilter(d)", ctx) == "d >= toDate('2026-01-02') AND d <= toDate('2026-01-02')"
    # $__conditionalAll: the condition with a selection, 1=1 for All (or every option chosen).
    cond = "$__conditionalAll(s IN (${service:singlequote}), $service)"
    assert expand(cond, ctx) == "s IN ('a','o\\'b')"
    assert expand("$__conditionalAll(m IN (${model:singlequote}), $model)", ctx) == "1=1"
    every = GrafanaContext(start, end, 90, {"model": ["x", "y"]}, {"model": ["x", "y"]})
    assert expand("$__conditionalAll(m IN (${model:singlequote}), $model)", every) == "1=1"
    assert expand("LIMIT ${limit}", ctx) == "LIMIT 5"
    with pytest.raises(DialectError, match="unknown macro"):
        expand("$__nope(x)", ctx)
    with pytest.raises(DialectError, match="no value"):
        expand("${version:singlequote}", ctx)


def test_bound_rendering_turns_macros_and_variables_into_server_parameters() -> None:
    sql = bind(
        "SELECT $__timeInterval(ts) AS t FROM x WHERE $__timeFilter(ts) "
        "AND $__conditionalAll(s IN (${service:singlequote}), $service) LIMIT ${limit}"
    )
    assert sql == (
        "SELECT toDateTime64(toStartOfInterval(toDateTime(ts), toIntervalSecond({interval_s:UInt32})), 0)"
        " AS t "
        "FROM x WHERE ts >= {start:DateTime64(9)} AND ts < {end:DateTime64(9)} "
        "AND ({service:String} = '' OR s IN ({service:String})) LIMIT {limit:UInt32}"
    )
    with pytest.raises(DialectError, match="must be written"):
        bind("WHERE s = $service")


# -- dashboard JSON ------------------------------------------------------------------------


def test_generated_files_are_the_committed_ones() -> None:
    for relative, text in files.render().items():
        path = ROOT / relative
        assert path.exists(), f"{relative} is not committed: run `otel-llm grafana generate`"
        assert path.read_text(encoding="utf-8") == text, (
            f"{relative} is stale: run `otel-llm grafana generate`"
        )


def test_dashboard_json_is_consistent() -> None:
    provisioned = yaml.safe_load((ROOT / "dashboards/provisioning/datasources/clickhouse.yaml").read_text())
    datasource_uids = {d["uid"]: d["type"] for d in provisioned["datasources"]}
    assert datasource_uids == {DATASOURCE_UID: PLUGIN_ID}
    uids = [json.loads((ROOT / f"dashboards/{d.uid}.json").read_text())["uid"] for d in DASHBOARDS]
    assert len(uids) == len(set(uids)) == 8
    for dashboard in DASHBOARDS:
        model = json.loads((ROOT / f"dashboards/{dashboard.uid}.json").read_text())
        defined = {v["name"] for v in model["templating"]["list"]}
        ids = [p["id"] for p in model["panels"]]
        assert len(ids) == len(set(ids)), dashboard.uid
        for panel in model["panels"]:
            assert panel["type"] in KNOWN_PANEL_TYPES, panel["title"]
            refs = [panel["datasource"]] + [t["datasource"] for t in panel["targets"]]
            for ref in refs:
                assert datasource_uids.get(ref["uid"]) == ref["type"], (dashboard.uid, panel["title"])
            for target in panel["targets"]:
                used = set(variables(target["rawSql"]))
                assert used <= defined, (dashboard.uid, panel["title"], used - defined)
            assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        for variable in model["templating"]["list"]:
            if variable["type"] == "query":
                assert variable["datasource"]["uid"] in datasource_uids


def test_trace_ids_link_to_the_plugin_trace_view() -> None:
    model = json.loads((ROOT / "dashboards/otel-llm-cost.json").read_text())
    [costliest] = [p for p in model["panels"] if p["title"] == "Costliest tasks"]
    links = {
        o["matcher"]["options"]: o["properties"][0]["value"][0]["url"]
        for o in costliest["fieldConfig"]["overrides"]
    }
    assert set(links) == {"trace_id", "task_id"}
    import urllib.parse

    url = urllib.parse.unquote(links["trace_id"])
    assert url.startswith("/explore?schemaVersion=1&panes=")
    pane = json.loads(url.split("panes=", 1)[1])["trace"]
    assert pane["queries"][0]["queryType"] == "traces"
    assert pane["queries"][0]["builderOptions"]["table"] == "otel_traces"
    assert pane["queries"][0]["builderOptions"]["meta"]["traceId"] == "${__data.fields.trace_id}"


# -- every panel on the workload ---------------------------------------------------------


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=[d.uid for d in DASHBOARDS])
def test_every_panel_runs_and_returns_what_its_type_needs(
    workload: tuple[Backend, Sample], dashboard: Dashboard
) -> None:
    store, sample = workload
    context = context_for(store, dashboard, sample.now - dt.timedelta(days=1), sample.now)
    assert context.options["service"] == ["coding-agent", "support-bot"]
    for panel in dashboard.panels:
        sql = queries.panel_sql(panel.query)
        rows = panel_rows(store, sql, context)
        types = column_types(store, expand(sql, context))
        assert rows, (dashboard.uid, panel.title)
        if panel.type == "timeseries":
            assert next(iter(types)) == "time", panel.title
            assert types["time"].startswith("DateTime"), types
            assert any(t.startswith(NUMERIC) for c, t in types.items() if c != "time"), types
        if panel.type == "stat":
            for name in panel.stat_fields:
                assert types[name].startswith(NUMERIC), (panel.title, name, types[name])
        if panel.type == "barchart":
            assert panel.x_field in types, panel.title
        if panel.type == "piechart":
            assert any(t.startswith(NUMERIC) for t in types.values()), types


def test_variables_filter_every_panel(workload: tuple[Backend, Sample]) -> None:
    store, sample = workload
    [cost] = [d for d in DASHBOARDS if d.uid == "otel-llm-cost"]
    start, end = sample.now - dt.timedelta(days=1), sample.now
    everything = panel_rows(store, queries.panel_sql("summary"), context_for(store, cost, start, end))[0]
    bot = context_for(store, cost, start, end, service=["support-bot"])
    agent = context_for(store, cost, start, end, service=["coding-agent"], version=["1.1.0"])
    only_bot = panel_rows(store, queries.panel_sql("summary"), bot)[0]
    only_agent = panel_rows(store, queries.panel_sql("summary"), agent)[0]
    expected_bot = [
        t for t in sample.tasks.values() if t["service"] == "support-bot" and start <= t["started"] < end
    ]
    assert only_bot["tasks"] == len(expected_bot)
    assert only_bot["calls"] == sum(t["calls"] for t in expected_bot)
    assert only_bot["calls"] + only_agent["calls"] == everything["calls"]
    top = panel_rows(store, queries.panel_sql("top_tasks"), bot)
    assert {r["service"] for r in top} == {"support-bot"}
    # The collector's alert links open the Tasks dashboard on one task (var-task_id).
    [tasks_board] = [d for d in DASHBOARDS if d.uid == "otel-llm-tasks"]
    one = context_for(store, tasks_board, start, end, task_id=sample.killed_task)
    [row] = panel_rows(store, queries.panel_sql("tasks"), one)
    assert (row["task_id"], row["outcome"], row["budget_state"]) == (sample.killed_task, "stopped", "killed")


# -- the regression shows ----------------------------------------------------------------


def test_drift_and_before_after_show_the_regression(workload: tuple[Backend, Sample]) -> None:
    store, sample = workload
    [drift_board] = [d for d in DASHBOARDS if d.uid == "otel-llm-drift"]
    context = context_for(store, drift_board, sample.release_at, sample.now, service=["coding-agent"])
    drift = {r["metric"]: r for r in panel_rows(store, queries.panel_sql("drift"), context)}
    assert drift["cost_per_task_p95_usd"]["current"] > 2 * drift["cost_per_task_p95_usd"]["baseline"]
    assert drift["calls_per_task_p50"]["baseline"] in (3.0, 4.0)
    assert 8 <= drift["calls_per_task_p50"]["current"] <= 10
    assert drift["cache_hit_ratio"]["current"] == 0.0
    assert drift["cache_hit_ratio"]["baseline"] > 0.3
    assert drift["ttft_p95_seconds"]["current"] > 2 * drift["ttft_p95_seconds"]["baseline"]
    assert context.values["version_a"] == "1.0.0"
    assert context.values["version_b"] == "2.3.0"  # last option; pick the regressed release explicitly
    week = context_for(store, drift_board, sample.now - dt.timedelta(days=8), sample.now,
                       version_a="1.0.0", version_b="1.1.0")  # fmt: skip
    before_after = {r["metric"]: r for r in panel_rows(store, queries.panel_sql("version_compare"), week)}
    agent = [t for t in sample.tasks.values() if t["service"] == "coding-agent"]
    assert before_after["tasks"]["a"] == sum(t["version"] == "1.0.0" for t in agent)
    assert before_after["tasks"]["b"] == sum(t["version"] == "1.1.0" for t in agent)
    assert before_after["cost_per_task_p50_usd"]["change"] > 1.0
    assert before_after["task_latency_p50_seconds"]["b"] > before_after["task_latency_p50_seconds"]["a"]
    done = [t for t in agent if t["version"] == "1.0.0"]
    assert before_after["task_success_rate"]["a"] == round(
        sum(t["outcome"] == "done" for t in done) / len(done), 6
    )


def rule_value(store: Backend, rule: alerting.AlertRule, end: dt.datetime) -> list[dict[str, Any]]:
    context = GrafanaContext(end - dt.timedelta(seconds=rule.window_s), end)
    return store.query(expand(alerting.rule_sql(rule), context)).dicts()


def fires(rule: alerting.AlertRule, value: float | None) -> bool:
    if value is None:
        return False
    return value > rule.threshold if rule.op == "gt" else value < rule.threshold


def test_alert_rules_fire_after_the_release_and_not_before(workload: tuple[Backend, Sample]) -> None:
    store, sample = workload
    # Two hours into the regression (a 7-day baseline a day later holds a day of it).
    after = sample.release_at + dt.timedelta(hours=2)
    before = sample.release_at - dt.timedelta(hours=2)
    killed_at = sample.tasks[sample.killed_task]["started"] + dt.timedelta(minutes=4)
    expected_after = {
        "otel-llm-cost-per-task-p95": True,
        "otel-llm-cache-hit-drop": True,
        "otel-llm-iterations-up": True,
        "otel-llm-ttft-slo": True,
        "otel-llm-tenant-spend": False,  # ~$6 a day per tenant, under the $100 threshold
        "otel-llm-kill": False,  # the kill was hours ago: the 5-minute window has none
    }
    for rule in alerting.RULES:
        rows = rule_value(store, rule, after)
        assert all("value" in r for r in rows), rule.uid
        assert any(fires(rule, r["value"]) for r in rows) == expected_after[rule.uid], (rule.uid, rows)
        assert not any(fires(rule, r["value"]) for r in rule_value(store, rule, before)), rule.uid
    [kill] = [r for r in alerting.RULES if r.uid == "otel-llm-kill"]
    assert rule_value(store, kill, killed_at) == [{"value": 1.0}]
    [spend] = [r for r in alerting.RULES if r.uid == "otel-llm-tenant-spend"]
    tenants = {r["tenant"]: r["value"] for r in rule_value(store, spend, sample.now)}
    assert set(tenants) == {"acme", "globex"}
    day = [t for t in sample.tasks.values() if sample.now - dt.timedelta(days=1) <= t["started"] < sample.now]
    assert sum(tenants.values()) == pytest.approx(sum(t["cost"] for t in day), rel=1e-6)


def test_killed_tasks_panel_shows_spend_at_kill(workload: tuple[Backend, Sample]) -> None:
    store, sample = workload
    [budgets] = [d for d in DASHBOARDS if d.uid == "otel-llm-budgets"]
    context = context_for(store, budgets, sample.now - dt.timedelta(days=1), sample.now)
    [killed] = panel_rows(store, queries.panel_sql("killed_tasks"), context)
    task = sample.tasks[sample.killed_task]
    assert (killed["task_id"], killed["limit_name"], killed["spent"], killed["limit_value"]) == (
        sample.killed_task, "max_iterations", 24.0, 24.0,
    )  # fmt: skip
    assert killed["calls_at_kill"] == task["calls"]
    assert killed["cost_at_kill_usd"] == round(task["cost"], 6)
    assert killed["trace_id"] == task["trace_id"]
