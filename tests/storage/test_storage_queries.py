"""Every named query on a small realistic data set, against values worked out here in Python."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pytest
from support.storage import NOW, llm_span, ns

from otel_llm.storage import queries
from otel_llm.storage.backend import Backend
from otel_llm.storage.records import SpanEvent, SpanRecord, spans_to_arrow

DAY = dt.timedelta(days=1)
START, END = NOW - DAY, NOW
BASE_START, BASE_END = NOW - 8 * DAY, NOW - DAY
SONNET, HAIKU, GPT4O, MINI = "claude-sonnet-4-5", "claude-haiku-4-5", "gpt-4o", "gpt-4o-mini"


def qexact(values: list[float], level: float) -> float:
    """ClickHouse quantileExact: the element at position floor(level * n) of the sorted values."""
    ordered = sorted(values)
    return ordered[min(int(level * len(ordered)), len(ordered) - 1)]


def dataset() -> list[SpanRecord]:
    now = START + dt.timedelta(hours=2)
    old = BASE_START + dt.timedelta(days=2)
    s = dt.timedelta(seconds=1)
    v2 = {"version": "2.0.0"}
    return [
        # t-a: a cached prefix written once (5m) and read twice; streamed.
        llm_span(at=now, task="t-a", iteration=1, model=SONNET, input_tokens=5000, output_tokens=400,
                 cache_write=4000, cost=0.01, savings=-0.003, prefix="p1", stream=True, ttft=0.5, **v2),
        llm_span(at=now + s, task="t-a", iteration=2, model=SONNET, input_tokens=5100, output_tokens=300,
                 cache_read=4000, cost=0.02, savings=0.0108, prefix="p1", stream=True, ttft=0.7, **v2),
        llm_span(at=now + 2 * s, task="t-a", iteration=3, model=SONNET, input_tokens=5200, output_tokens=200,
                 cache_read=4000, cost=0.03, savings=0.0108, prefix="p1", stream=True, ttft=0.9, **v2),
        # t-b: one failed OpenAI call.
        llm_span(at=now + 3 * s, task="t-b", iteration=1, model=GPT4O, provider="openai", input_tokens=2000,
                 output_tokens=500, cost=0.05, error="RateLimitError", **v2),
        # t-c: two small streamed calls.
        llm_span(at=now + 4 * s, task="t-c", iteration=1, model=MINI, provider="openai", input_tokens=300,
                 output_tokens=100, cost=0.001, stream=True, ttft=0.2, **v2),
        llm_span(at=now + 5 * s, task="t-c", iteration=2, model=MINI, provider="openai", input_tokens=300,
                 output_tokens=100, cost=0.001, stream=True, ttft=0.4, **v2),
        # t-d: a 1h cache write read back once, then missed twice.
        llm_span(at=now + 6 * s, task="t-d", iteration=1, model=HAIKU, input_tokens=2500, output_tokens=50,
                 cache_write=2000, cache_write_1h=2000, cost=0.002, savings=-0.0016, prefix="p2", **v2),
        llm_span(at=now + 7 * s, task="t-d", iteration=2, model=HAIKU, input_tokens=2500, output_tokens=50,
                 cache_read=2000, cost=0.002, savings=0.0018, prefix="p2", **v2),
        llm_span(at=now + 8 * s, task="t-d", iteration=3, model=HAIKU, input_tokens=2500, output_tokens=50,
                 cost=0.002, prefix="p2", miss_reason="tools changed", **v2),
        llm_span(at=now + 9 * s, task="t-d", iteration=4, model=HAIKU, input_tokens=2500, output_tokens=50,
                 cost=0.002, prefix="p2", miss_reason="tools changed", **v2),
        # Baseline week, release 1.0.0.
        llm_span(at=old, task="bl-a", iteration=1, model=SONNET, input_tokens=4000, output_tokens=400,
                 cost=0.01, stream=True, ttft=0.3),
        llm_span(at=old + s, task="bl-a", iteration=2, model=SONNET, input_tokens=4000, output_tokens=400,
                 cost=0.01, stream=True, ttft=0.5),
        llm_span(at=old + 2 * s, task="bl-b", iteration=1, model=GPT4O, provider="openai", input_tokens=1000,
                 output_tokens=1000, cost=0.02),
    ]  # fmt: skip


@pytest.fixture
def loaded(store: Backend) -> Backend:
    store.insert_arrow("otel_traces", spans_to_arrow(dataset()))
    return store


def calls_in(start: dt.datetime, end: dt.datetime) -> list[SpanRecord]:
    lo, hi = start.timestamp() * 1e9, end.timestamp() * 1e9
    return [r for r in dataset() if lo <= r.timestamp_ns < hi]


def attr(record: SpanRecord, name: str) -> int:
    return int(record.span_attributes[name])


def cost(record: SpanRecord) -> float:
    return float(record.span_attributes["otel_llm.cost.usd"])


def run(store: Backend, name: str, **params: object) -> list[dict]:
    return queries.run(store, name, **params)


def test_every_query_is_known_and_declares_its_parameters() -> None:
    assert {
        "budget_events", "cache_by_prefix", "compare", "drift", "model_mix", "summary", "task_cost",
        "task_iterations", "token_ratio", "top_tasks", "ttft", "version_compare",
    } <= set(queries.names())  # fmt: skip
    assert queries.parameters("drift") == {
        "start": "DateTime64(9)", "end": "DateTime64(9)", "service": "String", "task_name": "String",
    }  # fmt: skip
    assert queries.parameters("version_compare") == {
        "start": "DateTime64(9)", "end": "DateTime64(9)", "version_a": "String", "version_b": "String",
        "service": "String", "task_name": "String",
    }  # fmt: skip
    assert queries.parameters("top_tasks") == {
        "start": "DateTime64(9)", "end": "DateTime64(9)", "service": "String", "model": "String",
        "task_name": "String", "version": "String", "limit": "UInt32",
    }  # fmt: skip
    with pytest.raises(TypeError, match="needs parameter"):
        queries.run(None, "summary", start=START)  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="no query named 'nope'"):
        queries.load("nope")


def test_summary(loaded: Backend) -> None:
    current = calls_in(START, END)
    inputs = sum(attr(r, "gen_ai.usage.input_tokens") for r in current)
    reads = sum(attr(r, "gen_ai.usage.cache_read.input_tokens") for r in current)
    assert run(loaded, "summary", start=START, end=END) == [
        {
            "calls": 10,
            "tasks": 4,
            "cost_usd": 0.12,
            "input_tokens": inputs,
            "output_tokens": 1800,
            "cache_read_input_tokens": 10000,
            "cache_creation_input_tokens": 6000,
            "cache_hit_ratio": round(reads / inputs, 6),
            "cache_savings_usd": 0.0188,
            "error_rate": 0.1,
        }
    ]
    assert inputs == 27900
    assert run(loaded, "summary", start=START, end=END, service="nobody")[0]["calls"] == 0


def test_task_cost_and_iterations(loaded: Backend) -> None:
    per_task: dict[str, list[SpanRecord]] = defaultdict(list)
    for r in calls_in(START, END):
        per_task[r.span_attributes["otel_llm.task.id"]].append(r)
    costs = [round(sum(cost(r) for r in rs), 9) for rs in per_task.values()]  # 0.06, 0.05, 0.002, 0.008
    tokens = [sum(attr(r, "gen_ai.usage.input_tokens") + attr(r, "gen_ai.usage.output_tokens") for r in rs)
              for rs in per_task.values()]  # fmt: skip
    assert run(loaded, "task_cost", start=START, end=END) == [
        {
            "tasks": 4,
            "cost_usd": 0.12,
            "cost_avg_usd": 0.03,
            "cost_p50_usd": qexact(costs, 0.5),
            "cost_p95_usd": qexact(costs, 0.95),
            "tokens_p50": qexact(tokens, 0.5),
            "tokens_p95": qexact(tokens, 0.95),
            "calls_p50": 3,  # calls per task: 3, 1, 2, 4
            "calls_p95": 4,
        }
    ]
    assert (qexact(costs, 0.5), qexact(costs, 0.95), qexact(tokens, 0.5), qexact(tokens, 0.95)) == (
        0.05, 0.06, 10200, 16200,
    )  # fmt: skip
    assert run(loaded, "task_iterations", start=START, end=END) == [
        {"tasks": 4, "calls_p50": 3, "calls_p95": 4, "calls_max": 4, "calls_avg": 2.5}
    ]


def test_top_tasks(loaded: Backend) -> None:
    rows = run(loaded, "top_tasks", start=START, end=END, limit=2)
    assert [(r["task_id"], r["task_name"], r["calls"], r["iterations"], r["cost_usd"]) for r in rows] == [
        ("t-a", "t", 3, 3, 0.06),
        ("t-b", "t", 1, 1, 0.05),
    ]
    first = rows[0]
    assert (first["input_tokens"], first["output_tokens"], first["service"], first["budget_state"]) == (
        15300, 900, "coding-agent", "",
    )  # fmt: skip
    assert first["started"] == START + dt.timedelta(hours=2)
    assert first["ended"] == START + dt.timedelta(hours=2, seconds=3.5)


def test_token_ratio_and_model_mix(loaded: Backend) -> None:
    ratio = run(loaded, "token_ratio", start=START, end=END)
    assert [
        (r["provider"], r["model"], r["calls"], r["input_tokens"], r["output_tokens"]) for r in ratio
    ] == [
        ("anthropic", SONNET, 3, 15300, 900),
        ("anthropic", HAIKU, 4, 10000, 200),
        ("openai", GPT4O, 1, 2000, 500),
        ("openai", MINI, 2, 600, 200),
        ("", "", 10, 27900, 1800),
    ]
    assert [r["input_output_ratio"] for r in ratio] == [17.0, 50.0, 4.0, 3.0, round(27900 / 1800, 6)]
    assert [r["cache_hit_ratio"] for r in ratio] == [
        round(8000 / 15300, 6),
        0.2,
        0.0,
        0.0,
        round(10000 / 27900, 6),
    ]
    mix = run(loaded, "model_mix", start=START, end=END)
    assert [(r["model"], r["calls"], r["call_share"], r["cost_usd"], r["cost_share"]) for r in mix] == [
        (SONNET, 3, 0.3, 0.06, 0.5),
        (GPT4O, 1, 0.1, 0.05, round(0.05 / 0.12, 6)),
        (HAIKU, 4, 0.4, 0.008, round(0.008 / 0.12, 6)),
        (MINI, 2, 0.2, 0.002, round(0.002 / 0.12, 6)),
    ]


def test_ttft_percentiles(loaded: Backend) -> None:
    rows = run(loaded, "ttft", start=START, end=END)
    assert rows == [
        {"provider": "anthropic", "model": SONNET, "streams": 3, "ttft_p50_seconds": 0.7,
         "ttft_p90_seconds": 0.9, "ttft_p95_seconds": 0.9, "ttft_p99_seconds": 0.9},
        {"provider": "openai", "model": MINI, "streams": 2, "ttft_p50_seconds": 0.4,
         "ttft_p90_seconds": 0.4, "ttft_p95_seconds": 0.4, "ttft_p99_seconds": 0.4},
    ]  # fmt: skip


def test_cache_by_prefix_against_break_even(loaded: Backend) -> None:
    rows = run(loaded, "cache_by_prefix", start=START, end=END)
    assert rows == [
        {
            "prefix_hash": "p1", "calls": 3, "calls_reading": 2, "calls_writing": 1, "input_tokens": 15300,
            "cache_read_input_tokens": 8000, "cache_creation_input_tokens": 4000,
            "cache_hit_ratio": round(8000 / 15300, 6), "reads_per_write": 2.0,
            # 5m writes: net 0.25 / 0.9, gross 1.25 / 0.9 (the "~1.4").
            "break_even_reads_per_write": round(0.25 / 0.9, 6),
            "break_even_reads_per_write_gross": round(1.25 / 0.9, 6),
            "pays_off": True, "cache_savings_usd": 0.0186, "loses_money": False, "top_miss_reasons": [],
        },
        {
            "prefix_hash": "p2", "calls": 4, "calls_reading": 1, "calls_writing": 1, "input_tokens": 10000,
            "cache_read_input_tokens": 2000, "cache_creation_input_tokens": 2000,
            "cache_hit_ratio": 0.2, "reads_per_write": 1.0,
            # 1h writes cost 2x: net 1.0 / 0.9, gross 2.0 / 0.9.
            "break_even_reads_per_write": round(1.0 / 0.9, 6),
            "break_even_reads_per_write_gross": round(2.0 / 0.9, 6),
            "pays_off": False, "cache_savings_usd": 0.0002, "loses_money": False,
            "top_miss_reasons": ["tools changed"],
        },
    ]  # fmt: skip


def test_drift_against_the_baseline_window(loaded: Backend) -> None:
    rows = run(loaded, "drift", start=START, end=END)
    got = {r["metric"]: (r["current"], r["baseline"], r["change"]) for r in rows}
    assert list(got) == [
        "calls", "cost_usd", "cost_per_call_usd", "tokens_per_call", "input_output_ratio", "cache_hit_ratio",
        "error_rate", "ttft_p95_seconds", "duration_p95_seconds", "tasks", "cost_per_task_p50_usd",
        "cost_per_task_p95_usd", "calls_per_task_p50", "calls_per_task_p95", "task_latency_p50_seconds",
        "task_latency_p95_seconds", "task_success_rate",
    ]  # fmt: skip
    assert got["calls"] == (10.0, 3.0, round(10 / 3 - 1, 6))
    assert got["cost_usd"] == (0.12, 0.04, 2.0)
    assert got["cost_per_call_usd"] == (0.012, round(0.04 / 3, 6), -0.1)
    assert got["tokens_per_call"] == (2970.0, round(10800 / 3, 6), round(2970 / 3600 - 1, 6))
    assert got["input_output_ratio"] == (15.5, 5.0, 2.1)  # 27900 / 1800 against 9000 / 1800
    assert got["cache_hit_ratio"] == (round(10000 / 27900, 6), 0.0, None)
    assert got["error_rate"] == (0.1, 0.0, None)
    assert got["ttft_p95_seconds"] == (0.9, 0.5, 0.8)
    assert got["duration_p95_seconds"] == (1.5, 1.5, 0.0)
    assert got["tasks"] == (4.0, 2.0, 1.0)
    assert got["cost_per_task_p50_usd"] == (0.05, 0.02, 1.5)
    assert got["cost_per_task_p95_usd"] == (0.06, 0.02, 2.0)
    assert got["calls_per_task_p50"] == (3.0, 2.0, 0.5)
    assert got["calls_per_task_p95"] == (4.0, 2.0, 1.0)


def test_version_compare_before_and_after(loaded: Backend) -> None:
    rows = run(loaded, "version_compare", start=BASE_START, end=END, version_a="1.0.0", version_b="2.0.0")
    got = {r["metric"]: (r["a"], r["b"], r["change"]) for r in rows}
    assert got["calls"] == (3.0, 10.0, round(10 / 3 - 1, 6))
    assert got["cost_usd"] == (0.04, 0.12, 2.0)
    assert got["tasks"] == (2.0, 4.0, 1.0)
    assert got["cost_per_task_p95_usd"] == (0.02, 0.06, 2.0)
    assert got["ttft_p95_seconds"] == (0.5, 0.9, 0.8)
    assert got["error_rate"] == (0.0, 0.1, None)
    unknown = run(loaded, "version_compare", start=BASE_START, end=END, version_a="9.9", version_b="2.0.0")
    assert {r["metric"]: r["a"] for r in unknown}["calls"] == 0.0


def test_compare_mixes_a_window_and_a_version_per_cohort(loaded: Backend) -> None:
    params = {"start": START, "end": END, "baseline_s": 7 * 24 * 3600}  # a: the 7 days before
    rows = run(loaded, "compare", **params, version_a="1.0.0", version_b="")
    got = {r["metric"]: (r["a"], r["b"], r["change"]) for r in rows}
    assert got["calls"] == (3.0, 10.0, round(10 / 3 - 1, 6))
    assert got["tasks"] == (2.0, 4.0, 1.0)
    none = {
        r["metric"]: (r["a"], r["b"])
        for r in run(loaded, "compare", **params, version_a="1.0.0", version_b="1.0.0")
    }
    assert none["calls"] == (3.0, 0.0)  # the current window has no 1.0.0 calls
    assert none["tasks"] == (2.0, 0.0)


def test_budget_events_newest_first(loaded: Backend) -> None:
    at = START + dt.timedelta(hours=3)
    refused = {"otel_llm.budget.limit": "max_iterations", "otel_llm.budget.limit_value": "8",
               "otel_llm.budget.spent": "8"}  # fmt: skip
    task_span = SpanRecord(
        timestamp_ns=ns(at - dt.timedelta(minutes=1)),
        trace_id="0" * 31 + "9",
        span_id="00000000000000e1",
        span_name="invoke_agent t",
        span_attributes={"otel_llm.task.id": "t-k", "otel_llm.task.name": "t",
                         "otel_llm.budget.state": "killed"},
        duration_ns=120 * 10**9,
        events=[SpanEvent(ns(at), "otel_llm.budget.exceeded", refused),
                SpanEvent(ns(at + dt.timedelta(seconds=1.5)), "otel_llm.budget.killed", refused)],
    )  # fmt: skip
    loaded.insert_arrow("otel_traces", spans_to_arrow([task_span]))
    rows = run(loaded, "budget_events", start=START, end=END)
    assert [
        (r["kind"], r["task_id"], r["limit_name"], r["limit_value"], r["spent"], r["source"]) for r in rows
    ] == [
        ("killed", "t-k", "max_iterations", 8.0, 8.0, "span"),
        ("exceeded", "t-k", "max_iterations", 8.0, 8.0, "span"),
    ]
    assert rows[0]["timestamp"] == START + dt.timedelta(hours=3, seconds=1.5)
