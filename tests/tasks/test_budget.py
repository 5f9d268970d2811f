"""The budget guard: each limit stops the task at exactly its value, before the request;
warnings once per limit; on_exceed escalation and grants; reserve; alert mode; kills;
telemetry failures never break the call."""

from __future__ import annotations

import contextlib
import logging
import pickle
from collections.abc import Callable

import pytest

import otel_llm
from otel_llm import pricing, tasks
from otel_llm.policy import Limits
from otel_llm.tasks.budget import BudgetExceeded, Grant, TaskState
from otel_llm.usage import Usage

MODEL = "gpt-4o"  # $2.50 / M input, $10 / M output
USAGE = Usage(input_tokens=1000, output_tokens=500)  # $0.0075


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Counting:
    """Stands in for the provider: counts the requests that were actually sent."""

    def __init__(self) -> None:
        self.sent = 0

    def call(
        self,
        usage: Usage = USAGE,
        *,
        max_tokens: int | None = 500,
        input_estimate: int | Callable[[], int] = 250,
    ) -> None:
        handle = tasks.enter_call("openai", MODEL, max_tokens=max_tokens, input_estimate=input_estimate)
        self.sent += 1  # the request goes out only after the guard admitted it
        if handle is not None:
            handle.exit_call(usage, pricing.price(usage, MODEL, "openai"), None)


def run_until_stopped(provider: Counting, limit: int = 1000) -> BudgetExceeded:
    for _ in range(limit):
        try:
            provider.call()
        except BudgetExceeded as exc:
            return exc
    raise AssertionError("the guard never stopped the loop")


def test_runaway_loop_stops_at_exactly_max_iterations(spans):
    provider = Counting()
    with otel_llm.task("runaway", max_iterations=7) as t:
        stopped = run_until_stopped(provider)
        with pytest.raises(BudgetExceeded):
            provider.call()
    assert provider.sent == 7
    assert stopped.limit == "max_iterations"
    assert (stopped.spent, stopped.limit_value) == (7, 7)
    assert stopped.task_name == "runaway"
    assert stopped.task_id == t.task_id
    assert str(stopped) == (
        f'task "runaway" (id {t.task_id}) reached max_iterations: made 7 model calls of max_iterations 7; '
        "model call refused"
    )
    summary = t.summary()
    assert (summary.iterations, summary.outcome, summary.stopped_by, summary.budget_state) == (
        7,
        "stopped",
        "max_iterations",
        "killed",
    )
    assert summary.outcome_text == "stopped at max_iterations"


def test_max_usd_lets_the_crossing_call_finish_and_blocks_the_next(spans):
    provider = Counting()
    # 0.02 / 0.0075 = 2.67: the 3rd call crosses, the 4th is refused
    t = otel_llm.task("spender", max_usd=0.02)

    def spend_forever():
        with t:
            while True:
                provider.call()

    with pytest.raises(BudgetExceeded) as raised:
        spend_forever()
    stopped = raised.value
    assert provider.sent == 3
    assert stopped.limit == "max_usd"
    assert stopped.spent == pytest.approx(0.0225, abs=1e-12)
    assert stopped.limit_value == 0.02
    expected = f'task "spender" (id {t.task_id}) reached max_usd: spent $0.0225 of max_usd $0.0200'
    assert expected in str(stopped)
    span = spans.span("invoke_agent spender")
    assert span.attributes["otel_llm.budget.state"] == "killed"
    assert span.attributes["otel_llm.task.stopped_by"] == "max_usd"
    assert span.attributes["otel_llm.budget.max_usd"] == 0.02
    assert span.attributes["error.type"] == "otel_llm.BudgetExceeded"
    names = [e.name for e in span.events]
    # $0.015 is 75% (no warning yet); the 3rd call goes from there straight past the limit
    assert names == ["otel_llm.budget.exceeded", "otel_llm.budget.killed", "exception"]


def test_max_tokens_counts_input_and_output(spans):
    provider = Counting()
    with otel_llm.task("tokens", max_tokens=4500):  # 1500 per call: 3 calls reach it
        stopped = run_until_stopped(provider)
    assert provider.sent == 3
    assert (stopped.limit, stopped.spent, stopped.limit_value) == ("max_tokens", 4500, 4500)
    assert "used 4500 tokens of max_tokens 4500" in str(stopped)


def test_max_seconds_uses_the_task_clock(spans):
    clock = FakeClock()
    provider = Counting()
    with otel_llm.task("slow", max_seconds=10, clock=clock):
        provider.call()
        clock.now = 9.5
        provider.call()
        clock.now = 10.0
        with pytest.raises(BudgetExceeded) as stopped:
            provider.call()
    assert provider.sent == 2
    assert (stopped.value.limit, stopped.value.spent, stopped.value.limit_value) == ("max_seconds", 10.0, 10)
    assert "ran 10.0 s of max_seconds 10.0 s" in str(stopped.value)


def test_max_tool_calls_blocks_the_next_model_call(spans):
    provider = Counting()
    with otel_llm.task("tooly", max_tool_calls=2):
        provider.call()
        for _ in range(2):
            with otel_llm.tool("search"):
                pass
        with pytest.raises(BudgetExceeded) as stopped:
            provider.call()
    assert provider.sent == 1
    assert (stopped.value.limit, stopped.value.spent) == ("max_tool_calls", 2)


def test_warning_once_per_limit_as_event_and_log(spans, caplog):
    provider = Counting()
    caplog.set_level(logging.WARNING, logger="otel_llm.budget")
    with otel_llm.task("warned", max_iterations=10, max_usd=1.0, warn_at=0.5) as t:
        for _ in range(7):
            provider.call()
    warn_events = [e for e in spans.span("invoke_agent warned").events if e.name == "otel_llm.budget.warn"]
    assert len(warn_events) == 1
    assert dict(warn_events[0].attributes) == {
        "otel_llm.budget.limit": "max_iterations",
        "otel_llm.budget.spent": 5.0,
        "otel_llm.budget.limit_value": 10.0,
    }
    lines = [r.getMessage() for r in caplog.records if r.name == "otel_llm.budget"]
    assert lines == [
        f'task "warned" (id {t.task_id}) passed 50% of max_iterations: '
        "made 5 model calls of max_iterations 10"
    ]
    assert t.summary().budget_state == "warn"


def test_on_exceed_grant_extends_the_budget_and_is_recorded(spans):
    provider = Counting()
    asked: list[TaskState] = []

    def escalate(state: TaskState) -> Grant | None:
        asked.append(state)
        return Grant(max_iterations=2, reason="approved by alice") if len(asked) == 1 else None

    with otel_llm.task("helped", max_iterations=3, on_exceed=escalate) as t:
        stopped = run_until_stopped(provider)
    assert provider.sent == 5
    assert [(s.limit, s.spent, s.limit_value, s.iterations) for s in asked] == [
        ("max_iterations", 3, 3, 3),
        ("max_iterations", 5, 5, 5),
    ]
    assert asked[1].grants == 1
    assert asked[0].limits == Limits(max_iterations=3)
    assert (stopped.spent, stopped.limit_value) == (5, 5)
    span = spans.span("invoke_agent helped")
    grant = next(e for e in span.events if e.name == "otel_llm.budget.grant")
    assert dict(grant.attributes) == {
        "otel_llm.budget.limit": "max_iterations",
        "otel_llm.budget.spent": 3.0,
        "otel_llm.budget.max_iterations": 2,
        "otel_llm.budget.grant_reason": "approved by alice",
    }
    assert span.attributes["otel_llm.budget.grants"] == 1
    assert span.attributes["otel_llm.budget.max_iterations"] == 5
    assert span.attributes["otel_llm.budget.on_exceed"] == "hook"
    assert t.summary().grants == 1


def test_on_exceed_may_return_new_absolute_limits(spans):
    provider = Counting()
    with otel_llm.task("reset", max_usd=0.01, on_exceed=lambda s: Limits(max_usd=0.03)) as t:
        stopped = run_until_stopped(provider)
    # 0.0075 a call: 2 calls reach 0.01, the grant allows up to 0.03 (4 calls)
    assert provider.sent == 4
    assert stopped.limit_value == 0.03
    assert t.limits.max_usd == 0.03


def test_on_exceed_that_grants_too_little_is_not_asked_twice_for_one_call(spans):
    provider = Counting()
    calls = []

    def stingy(state):
        calls.append(state.iterations)
        return Grant(max_tokens=10_000)  # a limit that is not set, and not the one reached

    with otel_llm.task("stingy", max_usd=0.015, on_exceed=stingy) as t:
        stopped = run_until_stopped(provider)
    assert calls == [2]
    assert provider.sent == 2
    assert stopped.limit_value == 0.015
    assert t.limits == Limits(max_usd=0.015)


def test_on_exceed_that_raises_stops_the_task(spans):
    def broken(state):
        raise RuntimeError("pager down")

    provider = Counting()
    with otel_llm.task("broken-hook", max_iterations=1, on_exceed=broken):
        stopped = run_until_stopped(provider)
    assert provider.sent == 1
    assert isinstance(stopped.__cause__, RuntimeError)


def test_on_exceed_that_returns_garbage_stops_the_task(spans):
    provider = Counting()
    with otel_llm.task("garbage", max_iterations=1, on_exceed=lambda s: 42):
        stopped = run_until_stopped(provider)
    assert provider.sent == 1
    assert isinstance(stopped.__cause__, TypeError)


def test_alert_mode_records_but_never_refuses(spans):
    provider = Counting()
    with otel_llm.task("watch", max_iterations=2, on_exceed="alert") as t:
        for _ in range(4):
            provider.call()
    assert provider.sent == 4
    summary = t.summary()
    assert (summary.outcome, summary.budget_state) == ("done", "exceeded")
    names = [e.name for e in spans.span("invoke_agent watch").events]
    assert names.count("otel_llm.budget.exceeded") == 1


def test_reserve_refuses_a_call_whose_worst_case_would_cross_max_usd(spans):
    provider = Counting()
    # worst case of one call: 4000 input + 2000 output = 0.01 + 0.02 = $0.03
    with otel_llm.task("careful", max_usd=0.05, reserve=True) as t:
        provider.call(max_tokens=2000, input_estimate=4000)  # 0 + 0.03 <= 0.05; spends 0.0075
        with pytest.raises(BudgetExceeded) as refused:
            provider.call(Usage(), max_tokens=2000, input_estimate=12000)  # 0.0075 + 0.05 > 0.05
        provider.call(max_tokens=2000, input_estimate=4000)  # 0.0075 + 0.03 <= 0.05
    assert provider.sent == 2
    exc = refused.value
    assert (exc.limit, exc.limit_value) == ("max_usd", 0.05)
    assert exc.spent == pytest.approx(0.0075, abs=1e-12)
    assert exc.worst_case_usd == pytest.approx(0.05, abs=1e-12)
    assert "refused by reserve: spent $0.0075 + worst case $0.0500 would exceed max_usd $0.0500" in str(exc)
    assert t.summary().iterations == 2


def test_reserve_counts_calls_still_in_flight(spans):
    with otel_llm.task("inflight", max_usd=0.05, reserve=True):
        first = tasks.enter_call("openai", MODEL, max_tokens=2000, input_estimate=4000)  # reserves 0.03
        with pytest.raises(BudgetExceeded):
            tasks.enter_call("openai", MODEL, max_tokens=2000, input_estimate=4000)  # 0.03 + 0.03 > 0.05
        first.exit_call(USAGE, pricing.price(USAGE, MODEL, "openai"), None)  # frees it; spent 0.0075
        second = tasks.enter_call("openai", MODEL, max_tokens=2000, input_estimate=4000)
        second.exit_call(None, None, RuntimeError("network"))


def test_kill_from_outside_refuses_the_next_call(spans):
    provider = Counting()
    with otel_llm.task("victim") as t:
        provider.call()
        assert tasks.kill_task(t.task_id, "collector: tenant over daily budget") is True
        with pytest.raises(BudgetExceeded) as stopped:
            provider.call()
    assert provider.sent == 1
    assert stopped.value.limit == "killed"
    assert "was stopped: collector: tenant over daily budget" in str(stopped.value)
    assert tasks.kill_task("no-such-task") is False


def test_caught_budget_exceeded_still_reports_the_task_as_stopped(spans):
    provider = Counting()
    with otel_llm.task("graceful", max_iterations=1) as t:
        provider.call()
        with contextlib.suppress(BudgetExceeded):
            provider.call()
    assert t.summary().outcome_text == "stopped at max_iterations"
    assert spans.span("invoke_agent graceful").attributes["otel_llm.task.outcome"] == "stopped"


def test_budget_exceeded_keeps_its_fields_through_pickle():
    exc = BudgetExceeded(task_id="i", task_name="n", limit="max_usd", spent=1.5, limit_value=1.0)
    copy = pickle.loads(pickle.dumps(exc))
    assert (copy.task_id, copy.task_name, copy.limit, copy.spent, copy.limit_value) == (
        "i",
        "n",
        "max_usd",
        1.5,
        1.0,
    )
    assert str(copy) == str(exc)


def test_exit_call_twice_counts_once_and_unpriced_calls_are_counted(spans):
    with otel_llm.task("once") as t:
        handle = tasks.enter_call("openai", "no-such-model-xyz", max_tokens=None, input_estimate=0)
        handle.exit_call(USAGE, None, None)
        handle.exit_call(USAGE, None, None)
    summary = t.summary()
    assert (summary.iterations, summary.input_tokens, summary.unpriced_calls, summary.cost_usd) == (
        1,
        1000,
        1,
        0,
    )


def test_a_failure_in_accounting_is_logged_once_and_never_raises(spans, caplog):
    caplog.set_level(logging.WARNING, logger="otel_llm.tasks")
    with otel_llm.task("robust") as t:
        for _ in range(2):
            handle = tasks.enter_call("openai", MODEL, max_tokens=1, input_estimate=1)
            handle.exit_call(USAGE, object(), None)  # not a Cost: accounting fails
    assert t.summary().iterations == 2
    failures = [r for r in caplog.records if "accounting a call to its task" in r.getMessage()]
    assert len(failures) == 1


def test_a_failing_worst_case_estimate_still_counts_the_call_and_the_limit_holds(spans, caplog):
    caplog.set_level(logging.WARNING, logger="otel_llm.tasks")

    def broken_estimate() -> int:
        raise RuntimeError("cannot count these messages")

    provider = Counting()
    with otel_llm.task("estimate-fails", max_usd=0.01, reserve=True) as t:
        provider.call(input_estimate=broken_estimate)  # $0.0075
        provider.call(input_estimate=broken_estimate)  # $0.015: over, once it is known
        with pytest.raises(BudgetExceeded) as refused:
            provider.call(input_estimate=broken_estimate)
    sent = provider.sent
    summary = t.summary()
    assert (sent, summary.iterations, summary.input_tokens) == (2, 2, 2000)
    assert summary.cost_usd == pytest.approx(0.015, abs=1e-12)
    assert (refused.value.limit, refused.value.spent) == ("max_usd", pytest.approx(0.015, abs=1e-12))
    failures = [r for r in caplog.records if "estimating a model call's worst-case cost" in r.getMessage()]
    assert len(failures) == 1


def test_invalid_arguments_are_rejected_at_once():
    with pytest.raises(ValueError, match="max_usd must be a number > 0"):
        otel_llm.task("x", max_usd=-1)
    with pytest.raises(ValueError, match="on_exceed must be"):
        otel_llm.task("x", on_exceed="explode")
    with pytest.raises(ValueError, match="warn_at"):
        otel_llm.task("x", warn_at=1.5)
