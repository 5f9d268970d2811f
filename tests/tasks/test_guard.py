"""The guard's decisions and the tool-batch tally as the pure functions they are: exact
answers from given spend and settings, no task, span or clock involved."""

from __future__ import annotations

import pytest

from otel_llm.pricing import Cost
from otel_llm.tasks.budget import Grant, Limits
from otel_llm.tasks.guard import Crossing, Refusal, Spend, apply_answer, budget_state, crossings, refusal
from otel_llm.tasks.toolbatches import Batch, ToolBatches, ToolRecord, tally
from otel_llm.usage import Usage


def spend(**counts) -> Spend:
    return Spend(started_at=100.0, **counts)


def refused(limits: Limits, spent: Spend, now: float, *, killed: bool = False, worst: float | None = None):
    return refusal(limits.items(), spent, now, killed=killed, max_usd=limits.max_usd, worst=worst)


def test_refusal_names_a_kill_first_then_the_first_limit_reached_in_order():
    limits = Limits(max_usd=1.0, max_iterations=3, max_seconds=10)
    spent = spend(iterations=3, cost=Cost(total_usd=2.0))
    assert refused(limits, spent, 105.0, killed=True) == Refusal("killed", 0, 0)
    assert refused(limits, spent, 105.0) == Refusal("max_usd", 2.0, 1.0)
    assert refused(Limits(max_seconds=10), spent, 110.0) == Refusal("max_seconds", 10.0, 10)
    assert refused(Limits(max_seconds=10), spent, 109.9) is None


def test_refusal_by_reserve_counts_what_is_spent_and_reserved():
    spent = spend(cost=Cost(total_usd=0.25), reserved_usd=0.5)
    limits = Limits(max_usd=1.0)
    assert refused(limits, spent, 100.0, worst=0.25) is None  # 0.25 + 0.5 + 0.25 = 1.0: not above
    assert refused(limits, spent, 100.0, worst=0.3) == Refusal("max_usd", 0.75, 1.0, 0.3)


def test_crossings_announce_each_threshold_once():
    limits = Limits(max_tokens=1000, max_tool_calls=10)
    spent = spend(usage=Usage(input_tokens=700, output_tokens=100), tool_calls=10)
    assert crossings(limits.items(), spent, 100.0, 0.8, set(), set()) == [
        Crossing("otel_llm.budget.warn", "max_tokens", 800, 1000),
        Crossing("otel_llm.budget.exceeded", "max_tool_calls", 10, 10),
    ]
    assert (
        crossings(limits.items(), spent, 100.0, 0.8, {"max_tokens", "max_tool_calls"}, {"max_tool_calls"})
        == []
    )
    # Tokens carried from another process count.
    carried = spend(usage=Usage(input_tokens=700), carried_tokens=300)
    assert crossings(Limits(max_tokens=1000).items(), carried, 100.0, 0.8, {"max_tokens"}, set()) == [
        Crossing("otel_llm.budget.exceeded", "max_tokens", 1000, 1000)
    ]


def test_budget_state_orders_killed_exceeded_warn():
    assert budget_state(killed=True, exceeded=True, warned=True) == "killed"
    assert budget_state(killed=False, exceeded=True, warned=True) == "exceeded"
    assert budget_state(killed=False, exceeded=False, warned=True) == "warn"
    assert budget_state(killed=False, exceeded=False, warned=False) == "ok"


def test_a_grant_adds_to_the_limits_that_are_set_and_limits_replace_them():
    limits = Limits(max_usd=0.5, max_iterations=10)
    granted = apply_answer(limits, Grant(max_usd=0.25, max_tokens=1000, reason="ok by alice"))
    assert granted == (
        Limits(max_usd=0.75, max_iterations=10),
        {"max_usd": 0.25, "max_tokens": 1000},
        "ok by alice",
    )
    replaced = apply_answer(limits, Limits(max_iterations=20))
    assert replaced == (Limits(max_iterations=20), {"max_iterations": 20}, None)


def _batch(iteration: int, *spans: tuple[str, float, float]) -> Batch:
    batch = Batch(iteration)
    for name, start, end in spans:
        record = ToolRecord(name, start, batch)
        record.end = end
        batch.records.append(record)
    batch.closed = True
    return batch


def test_tally_of_a_sequential_batch_counts_what_parallel_would_have_saved():
    found = tally(_batch(2, ("read", 0.0, 1.0), ("search", 1.0, 3.0), ("edit", 3.5, 4.0)))
    assert found is not None
    assert (found.tools, found.duration_s, found.wall_s, found.sequential) == (
        ("read", "search", "edit"),
        3.5,
        4.0,
        True,
    )
    assert found.saveable_s == 1.5  # 3.5 - the longest (2.0)
    assert found.parallelism == pytest.approx(3.5 / 4.0)


def test_tally_of_overlapping_tools_is_not_sequential():
    found = tally(_batch(1, ("a", 0.0, 2.0), ("b", 1.0, 2.0)))
    assert found is not None
    assert (found.sequential, found.saveable_s, found.wall_s, found.parallelism) == (False, 0.0, 2.0, 1.5)
    assert tally(_batch(1)) is None


def test_tool_batches_close_at_the_next_model_call_and_wait_for_running_tools():
    batches = ToolBatches()
    first, finished = batches.started("read", 1, now=0.0)
    second, _ = batches.started("search", 1, now=0.0)
    assert finished == []
    assert batches.ended(first, now=1.0) == []  # the batch is still open
    assert batches.close(now=1.5) == []  # a model call closed it; "search" still runs
    (done,) = batches.ended(second, now=2.0)
    assert (done.tools, done.sequential, done.wall_s) == (("read", "search"), False, 2.0)
    assert (batches.batches, batches.sequential, batches.idle) == (1, 0, True)
