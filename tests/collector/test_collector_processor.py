"""The budget processor on spans decoded from OTLP, priced with the real genai-prices data."""

from __future__ import annotations

import logging
import time

import pytest
from support.otlp import NOW_NS, budgets, call, request, span

from otel_llm import failures
from otel_llm.collector.config import BudgetProcessorConfig
from otel_llm.collector.decisions import Decision, KillLog
from otel_llm.collector.otlp import from_export_request
from otel_llm.collector.processor import BudgetProcessor
from otel_llm.policy import BudgetConfig

# gpt-4o-mini: $0.15 / MTok input, $0.60 / MTok output.
MINI_IN, MINI_OUT = 0.15e-6, 0.60e-6
COST_100_10 = 100 * MINI_IN + 10 * MINI_OUT


def make(policy=None, **config) -> BudgetProcessor:
    return BudgetProcessor(
        BudgetProcessorConfig(**config), budgets(policy) if policy else BudgetConfig(), KillLog(1000)
    )


def feed(processor: BudgetProcessor, *spans, resource=None):
    return processor.process(from_export_request(request(*spans, resource=resource)))


def test_unpriced_span_is_priced_and_the_cost_attributes_are_added():
    processor = make()
    outcome = feed(processor, call("t", 1000, 200))
    a = outcome.accepted[0].span_attributes
    assert float(a["otel_llm.cost.usd"]) == pytest.approx(1000 * MINI_IN + 200 * MINI_OUT, rel=1e-12)
    assert float(a["otel_llm.cost.input_usd"]) == pytest.approx(1000 * MINI_IN, rel=1e-12)
    assert a["otel_llm.price.source"].startswith("genai-prices ")
    assert processor.stats["priced_spans"] == 1


def test_traceloop_attribute_names_are_read_and_priced():
    processor = make()
    traceloop = span(
        "openai.chat",
        {
            "gen_ai.system": "OpenAI",
            "llm.request.type": "chat",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.usage.prompt_tokens": 2000,
            "gen_ai.usage.completion_tokens": 50,
            "gen_ai.usage.cache_read_input_tokens": 1024,
            "otel_llm.task.id": "tl",
        },
    )
    feed(processor, traceloop)
    task = processor.task("tl")
    assert task["input_tokens"] == 2000
    assert task["cache_read_input_tokens"] == 1024
    # Cached input at $0.075 / MTok.
    expected = (2000 - 1024) * MINI_IN + 1024 * 0.075e-6 + 50 * MINI_OUT
    assert task["cost_usd"] == pytest.approx(expected, rel=1e-12)


def test_a_recorded_cost_is_used_as_is():
    processor = make()
    feed(processor, call("t", 100, 10, **{"otel_llm.cost.usd": 0.5}))
    assert processor.task("t")["cost_usd"] == 0.5
    assert processor.stats["priced_spans"] == 0


def test_two_spans_of_one_call_count_once_by_response_id():
    processor = make()
    ours = call("t", 100, 10, response_id="chatcmpl-1", **{"otel_llm.cost.usd": COST_100_10})
    theirs = span(
        "openai.chat",
        {
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.prompt_tokens": 100,
            "gen_ai.usage.completion_tokens": 10,
            "gen_ai.response.id": "chatcmpl-1",
            "otel_llm.task.id": "t",
        },
    )
    outcome = feed(processor, ours, theirs, call("t", 100, 10, response_id="chatcmpl-2"))
    assert len(outcome.accepted) == 3  # both stored
    task = processor.task("t")
    assert task["iterations"] == 2
    assert task["cost_usd"] == pytest.approx(2 * COST_100_10, rel=1e-12)
    assert processor.stats["duplicate_spans"] == 1
    # Without a response id there is nothing to match on: each span counts.
    feed(processor, call("t"), call("t"))
    assert processor.task("t")["iterations"] == 4


def test_warn_once_then_kill_with_the_exact_spend():
    policy = {"warn_at": 0.5, "policies": [{"name": "p", "per_task": {"max_tokens": 400}}]}
    processor = make(policy)
    kinds = []
    for _ in range(4):
        outcome = feed(processor, call("t", 90, 10))
        kinds += [(e.kind, e.limit_name, e.spent, e.limit_value) for e in outcome.events]
    assert kinds == [("warn", "max_tokens", 200.0, 400.0), ("killed", "max_tokens", 400.0, 400.0)]
    [decision] = processor.kill_log.after(0, 10)
    assert decision.reason == "the otel-llm collector stopped the task: used 400 tokens of max_tokens 400"
    assert processor.task("t")["state"] == "killed"


def test_on_exceed_alert_records_exceeded_once_and_does_not_kill():
    policy = {
        "warn_at": 0.5,
        "policies": [{"name": "p", "per_task": {"max_iterations": 2}, "on_exceed": "alert"}],
    }
    processor = make(policy)
    events = []
    for _ in range(4):
        events += feed(processor, call("t")).events
    assert [(e.kind, e.attributes["alert_kind"]) for e in events] == [("warn", "warn"), ("exceeded", "alert")]
    assert processor.kill_log.after(0, 10) == []
    assert processor.task("t")["state"] == "exceeded"


def test_policy_matches_resource_and_span_attributes():
    policy = {
        "policies": [
            {"name": "coder", "match": {"service.name": "coding-*"}, "per_task": {"max_iterations": 1}}
        ]
    }
    processor = make(policy)
    feed(processor, call("a"), resource={"service.name": "coding-agent"})
    feed(processor, call("b"), resource={"service.name": "chat-agent"})
    assert processor.task("a")["state"] == "killed"
    assert processor.task("b")["state"] == "ok"
    assert processor.task("b")["limits"] == {}


def test_tool_calls_and_seconds_are_limits_too():
    policy = {"policies": [{"name": "p", "per_task": {"max_tool_calls": 2, "max_seconds": 10}}]}
    processor = make(policy)
    tool = {"gen_ai.operation.name": "execute_tool", "otel_llm.task.id": "tools"}
    feed(processor, span("execute_tool grep", tool), span("execute_tool ls", tool))
    assert processor.task("tools")["killed"]["limit"] == "max_tool_calls"
    feed(processor, call("slow", start_ns=NOW_NS), call("slow", start_ns=NOW_NS + 11 * 10**9))
    killed = processor.task("slow")["killed"]
    assert (killed["limit"], killed["limit_value"]) == ("max_seconds", 10)
    assert killed["spent"] == pytest.approx(11.001)


def test_tenant_window_budget_spans_tasks_and_kills_new_ones_of_the_group():
    policy = {
        "policies": [
            {
                "name": "tenant-daily",
                "match": {"tenant": "*"},
                "group_by": "tenant",
                "window": "1d",
                "max_usd": 5 * COST_100_10 * 0.999999,
            }
        ]
    }
    processor = make(policy)
    acme = {"tenant": "acme"}
    events = []
    events += feed(processor, call("a1"), call("a1"), resource=acme).events
    events += feed(processor, call("a2"), call("a2"), resource=acme).events
    events += feed(processor, call("o1"), call("o1"), call("o1"), resource={"tenant": "other"}).events
    assert [e.attributes["alert_kind"] for e in events] == ["window_warn"]  # acme at 4/5
    assert processor.task("a1")["state"] == "ok"
    events = feed(processor, call("a2"), resource=acme).events  # the 5th acme call spends the window
    assert [e.attributes["alert_kind"] for e in events] == ["window_exceeded", "kill", "kill"]
    assert {processor.task(t)["state"] for t in ("a1", "a2")} == {"killed"}
    assert processor.task("o1")["state"] == "ok"
    # A new acme task is killed at its first span; another tenant's is not.
    feed(processor, call("a3"), resource=acme)
    feed(processor, call("o2"), resource={"tenant": "other"})
    assert processor.task("a3")["state"] == "killed"
    assert processor.task("a3")["killed"]["group"] == "tenant=acme"
    assert processor.task("o2")["state"] == "ok"
    [window] = [w for w in processor.windows() if w["group"] == "tenant=acme"]
    assert window["spent_usd"] == pytest.approx(6 * COST_100_10, rel=1e-12)
    assert window["start"] == (NOW_NS + 1_000_000) // 10**9 // 86400 * 86400  # a UTC day
    # The next window (tomorrow) starts from zero and admits acme again.
    tomorrow = NOW_NS + 86400 * 10**9
    feed(processor, call("a4", start_ns=tomorrow), resource=acme)
    assert processor.task("a4")["state"] == "ok"


def test_active_table_is_bounded_and_evicted_tasks_keep_their_spend():
    processor = make(max_active_tasks=3, decision_cache_size=10)
    for n in range(5):
        feed(processor, call(f"t{n}"))
    counts = processor.counts()
    assert (counts["active_tasks"], counts["retired_tasks"]) == (3, 2)
    assert processor.stats["tasks_evicted"] == 2
    feed(processor, call("t0"))  # a late span of an evicted task adds to what it spent
    assert processor.task("t0")["iterations"] == 2
    assert processor.stats["tasks_evicted"] == 3


def test_a_task_is_finished_when_its_root_span_ends_and_late_spans_still_add_up():
    processor = make()
    trace = b"\x01" * 16
    root_id = b"\x02" * 8
    feed(processor, call(None, trace_id=trace, parent=root_id))
    task_id = trace.hex()
    assert processor.task(task_id)["finished"] is False
    feed(processor, span("agent run", {}, trace_id=trace, span_id=root_id, kind=1))
    assert processor.task(task_id)["finished"] is True
    assert processor.stats["tasks_finished"] == 1
    feed(processor, call(None, trace_id=trace, parent=root_id))
    task = processor.task(task_id)
    assert (task["finished"], task["iterations"]) == (False, 2)


def test_idle_tasks_are_finished_by_the_sweep():
    processor = make(idle_timeout=0.05)
    feed(processor, call("idle"))
    time.sleep(0.1)
    assert processor.sweep() == 1
    assert processor.task("idle")["finished"] is True


def test_manual_kill_of_a_task_not_seen_yet_holds_when_it_shows_up():
    processor = make()
    decision, events = processor.kill("later", "operator said so")
    assert decision.limit == "manual"
    assert "killed by hand (operator said so)" in decision.reason
    assert [e.kind for e in events] == ["killed"]
    assert processor.kill("later")[0] == decision  # once
    feed(processor, call("later"))
    assert processor.task("later")["state"] == "killed"


def test_non_llm_spans_make_no_task():
    processor = make()
    feed(processor, span("GET /", {"http.method": "GET"}, kind=2))
    assert processor.counts()["active_tasks"] == 0


@pytest.mark.parametrize("bad", ["NaN", "nan", "inf", "-Infinity", -1000.0, "1e400", "abc"])
def test_a_recorded_cost_that_is_not_finite_and_non_negative_is_priced_from_usage(bad):
    policy = {"policies": [{"name": "p", "per_task": {"max_usd": 2 * COST_100_10 * 0.999999}}]}
    processor = make(policy)
    feed(processor, call("t", 100, 10, **{"otel_llm.cost.usd": bad}))
    task = processor.task("t")
    assert task["cost_usd"] == pytest.approx(COST_100_10, rel=1e-12)
    assert processor.stats["priced_spans"] == 1
    # The dollar limit still holds: the second call spends it and the task is killed.
    feed(processor, call("t", 100, 10))
    killed = processor.task("t")["killed"]
    assert (killed["limit"], killed["spent"]) == ("max_usd", pytest.approx(2 * COST_100_10, rel=1e-12))


def test_a_nan_recorded_cost_does_not_switch_off_a_window_budget():
    policy = {
        "policies": [
            {"name": "w", "match": {"tenant": "*"}, "group_by": "tenant", "window": "1d", "max_usd": 0.5}
        ]
    }
    processor = make(policy)
    acme = {"tenant": "acme"}
    feed(processor, call("a1", 100, 10, **{"otel_llm.cost.usd": "NaN"}), resource=acme)
    feed(processor, call("a1", 100, 10, **{"otel_llm.cost.usd": 0.6}), resource=acme)
    [window] = processor.windows()
    assert window["spent_usd"] == pytest.approx(COST_100_10 + 0.6, rel=1e-12)
    assert window["exceeded"] is True
    assert processor.task("a1")["state"] == "killed"


@pytest.mark.parametrize("huge", ["1e400", "-1e400", "9" * 400, "inf", "nan", "-5"])
def test_an_unbelievable_token_count_counts_as_zero_and_loses_no_span_of_the_batch(huge):
    processor = make()
    outcome = feed(
        processor,
        call("bad", 100, 10, **{"gen_ai.usage.input_tokens": huge, "gen_ai.usage.output_tokens": huge}),
        call("good", 100, 10),
    )
    assert len(outcome.accepted) == 2
    bad = processor.task("bad")
    assert (bad["iterations"], bad["input_tokens"], bad["output_tokens"], bad["cost_usd"]) == (1, 0, 0, 0.0)
    good = processor.task("good")
    assert (good["iterations"], good["cost_usd"]) == (1, pytest.approx(COST_100_10, rel=1e-12))


class _Unreadable(dict):
    """Span attributes that fail to read one key: stands in for a bug met on one span."""

    def get(self, key, default=None):
        if key == "gen_ai.usage.output_tokens":
            raise RuntimeError("cannot read it")
        return super().get(key, default)


def test_a_span_that_fails_to_account_is_stored_not_counted_and_the_batch_goes_on(caplog):
    failures.forget(logging.getLogger("otel_llm.collector.processor"))
    processor = make()
    records = from_export_request(request(call("t", 100, 10), call("t", 100, 10), call("t", 100, 10)))
    records[1].span_attributes = _Unreadable(records[1].span_attributes)
    with caplog.at_level("WARNING", logger="otel_llm.collector.processor"):
        outcome = processor.process(records)
        processor.process(from_export_request(request(call("t", 100, 10))))
    assert [r.span_id for r in outcome.accepted] == [r.span_id for r in records]
    assert processor.task("t")["cost_usd"] == pytest.approx(3 * COST_100_10, rel=1e-12)
    warnings = [r.getMessage() for r in caplog.records if "cannot account a span" in r.getMessage()]
    bad = records[1]
    assert warnings == [
        f"otel-llm collector: cannot account a span (trace {bad.trace_id}, span {bad.span_id}); "
        "it is stored but not counted toward any budget (logged once)"
    ]


_ACME_DAILY_KILL = {
    "policies": [
        {"name": "acme-daily", "match": {"tenant": "*"}, "group_by": "tenant", "window": "1d", "max_usd": 1.0}
    ]
}


def test_a_task_back_from_the_retired_table_is_killed_when_its_window_is_spent():
    processor = make(_ACME_DAILY_KILL, max_active_tasks=1, decision_cache_size=10)
    acme = {"tenant": "acme"}
    feed(processor, call("a", **{"otel_llm.cost.usd": 0.1}), resource=acme)
    feed(processor, call("c", **{"otel_llm.cost.usd": 0.0001}), resource=acme)  # evicts a
    events = feed(processor, call("b", **{"otel_llm.cost.usd": 0.95}), resource=acme).events
    assert [e.attributes["alert_kind"] for e in events] == ["window_exceeded", "kill", "kill"]
    assert processor.task("a")["state"] == "ok"  # retired when the window was spent
    outcome = feed(processor, call("a", **{"otel_llm.cost.usd": 0.1}), resource=acme)
    assert [(e.kind, e.task_id) for e in outcome.events] == [("killed", "a")]
    killed = processor.task("a")["killed"]
    assert (killed["group"], killed["policy"], killed["limit_value"]) == ("tenant=acme", "acme-daily", 1.0)
    assert [d.task_id for d in processor.kill_log.recent()] == ["c", "b", "a"]


def test_a_call_that_ends_in_a_spent_window_kills_its_new_task():
    processor = make(_ACME_DAILY_KILL)
    acme = {"tenant": "acme"}
    day = 86400 * 10**9
    midnight = (NOW_NS // day) * day
    feed(processor, call("b", start_ns=midnight + 3600 * 10**9, **{"otel_llm.cost.usd": 1.5}), resource=acme)
    assert processor.task("b")["state"] == "killed"
    # d's first call started yesterday (so d is not killed as a new task of a spent
    # window) and ended today: its cost goes to today's spent window, and kills it.
    late = call("d", start_ns=midnight - 60 * 10**9, **{"otel_llm.cost.usd": 0.01})
    late.end_time_unix_nano = midnight + 60 * 10**9
    outcome = feed(processor, late, resource=acme)
    assert [(e.kind, e.task_id, e.spent) for e in outcome.events] == [("killed", "d", pytest.approx(1.51))]
    assert processor.task("d")["killed"]["group"] == "tenant=acme"


def test_a_kill_decision_written_by_a_newer_version_still_loads():
    decision, _ = make().kill("t", "operator said so")
    assert Decision.from_json({**decision.to_json(), "added_later": 1}) == decision
