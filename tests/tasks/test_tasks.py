"""Tasks: per-task counts and cost, span attributes, nesting, threads and asyncio without
cross-talk, tool spans and tool batches. The model calls go through the hook the
instrumentation calls (enter_call / exit_call) with real Usage and Cost records."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry import baggage, trace
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

import otel_llm
from otel_llm import pricing, tasks
from otel_llm.usage import Usage

# gpt-4o: $2.50 / M input, $1.25 / M cached input, $10 / M output (genai-prices).
MODEL = "gpt-4o"
USAGE = Usage(input_tokens=1000, output_tokens=500)
CACHED = Usage(input_tokens=2000, output_tokens=100, cache_read_input_tokens=1000)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def call(usage: Usage = USAGE, model: str = MODEL) -> tasks.TaskCall | None:
    """One model call as the instrumentation makes it."""
    handle = tasks.enter_call("openai", model, max_tokens=500, input_estimate=250)
    if handle is not None:
        handle.exit_call(usage, pricing.price(usage, model, "openai"), None)
    return handle


def test_prices_used_in_these_tests_are_the_known_ones():
    assert pricing.price(USAGE, MODEL, "openai").total_usd == pytest.approx(0.0075, abs=1e-12)
    cached = pricing.price(CACHED, MODEL, "openai")
    assert cached.total_usd == pytest.approx(0.0025 + 0.00125 + 0.001, abs=1e-12)


def test_a_call_outside_any_task_with_automatic_tasks_off_belongs_to_no_task(spans):
    """Automatic tasks off (no instrumentor started them), no explicit task: nothing
    counts the call and no task is made for it, inside a trace or not."""
    tracer = trace.get_tracer("web", tracer_provider=spans.tracer_provider)
    assert call() is None
    with tracer.start_as_current_span("POST /chat") as request:
        assert call() is None
        assert tasks.current_task() is None
    assert tasks.trace_task(request.get_span_context().trace_id) is None
    assert tasks.process_task() is None
    assert [s.name for s in spans.spans()] == ["POST /chat"]  # no task span either


def test_task_counts_calls_tokens_cost_and_tools_exactly(spans):
    clock = FakeClock()
    with otel_llm.task("fix-bug", clock=clock, attributes={"tenant": "acme"}) as t:
        call()
        call(CACHED)
        with otel_llm.tool("read_file"):
            clock.now += 2
        call()
        clock.now += 1
    summary = t.summary()
    assert summary.outcome == "done"
    assert summary.iterations == 3
    assert summary.input_tokens == 4000
    assert summary.output_tokens == 1100
    assert summary.cache_read_tokens == 1000
    assert summary.cost_usd == pytest.approx(0.0075 * 2 + 0.00475, abs=1e-12)
    assert summary.cache_hit_ratio == 0.25
    assert summary.tool_calls == 1
    assert summary.wall_seconds == 3.0
    assert summary.budget_state == "ok"

    span = spans.span("invoke_agent fix-bug")
    assert span.kind == trace.SpanKind.INTERNAL
    a = span.attributes
    assert a[gen_ai.GEN_AI_OPERATION_NAME] == "invoke_agent"
    assert a[gen_ai.GEN_AI_AGENT_NAME] == "fix-bug"
    assert a["otel_llm.task.id"] == t.task_id
    assert a["otel_llm.task.iterations"] == 3
    assert a["otel_llm.task.usage.input_tokens"] == 4000
    assert a["otel_llm.task.usage.output_tokens"] == 1100
    assert a["otel_llm.task.usage.cache_read.input_tokens"] == 1000
    # Totals never reuse the per-call names: a sum over all spans counts each call once.
    assert not [key for key in a if key.startswith("gen_ai.usage.")]
    assert a["otel_llm.task.cost.usd"] == pytest.approx(0.01975, abs=1e-12)
    assert a["otel_llm.task.cost.cache_savings_usd"] == pytest.approx(0.00125, abs=1e-12)
    assert a["otel_llm.task.tool_calls"] == 1
    assert a["otel_llm.task.duration_s"] == 3.0
    assert a["otel_llm.task.outcome"] == "done"
    assert a["otel_llm.budget.state"] == "ok"
    assert a["tenant"] == "acme"
    assert "otel_llm.budget.max_usd" not in a

    tool_span = spans.span("execute_tool read_file")
    assert tool_span.parent.span_id == span.context.span_id
    assert tool_span.attributes[gen_ai.GEN_AI_TOOL_NAME] == "read_file"
    assert tool_span.attributes[gen_ai.GEN_AI_OPERATION_NAME] == "execute_tool"
    assert tool_span.attributes["otel_llm.task.iteration"] == 2


def test_inference_span_attributes_name_the_task_and_its_limits(spans):
    with otel_llm.task("t", max_usd=1.0, max_iterations=10) as t:
        first = call()
        second = call()
    assert first.context is None
    assert first.span_attributes == {
        "otel_llm.task.id": t.task_id,
        "otel_llm.task.name": "t",
        "otel_llm.task.iteration": 1,
        "otel_llm.budget.state": "ok",
        "otel_llm.budget.max_usd": 1.0,
        "otel_llm.budget.max_iterations": 10,
    }
    assert second.span_attributes["otel_llm.task.iteration"] == 2


def test_task_id_is_in_baggage_inside_and_gone_after(spans):
    with otel_llm.task("t", task_id="task-123") as t:
        assert baggage.get_baggage("otel_llm.task.id") == "task-123"
        assert otel_llm.current_task() is t
    assert baggage.get_baggage("otel_llm.task.id") is None
    assert otel_llm.current_task() is None


def test_nested_task_counts_toward_both(spans):
    with otel_llm.task("outer") as outer:
        call()
        with otel_llm.task("inner") as inner:
            handle = call()
            call()
        call()
    assert outer.summary().iterations == 4
    assert inner.summary().iterations == 2
    assert outer.summary().cost_usd == pytest.approx(0.03, abs=1e-12)
    assert inner.summary().cost_usd == pytest.approx(0.015, abs=1e-12)
    assert handle.span_attributes["otel_llm.task.id"] == inner.task_id
    assert handle.span_attributes["otel_llm.task.parent_ids"] == [outer.task_id]
    inner_span = spans.span("invoke_agent inner")
    outer_span = spans.span("invoke_agent outer")
    assert inner_span.parent.span_id == outer_span.context.span_id
    assert inner_span.attributes["otel_llm.task.parent_id"] == outer.task_id


def test_nested_limit_of_the_outer_task_stops_the_inner_one(spans):
    inner = otel_llm.task("inner")

    def two_calls():
        with inner:
            call()
            call()

    with otel_llm.task("outer", max_iterations=2) as outer:
        call()
        with pytest.raises(otel_llm.BudgetExceeded) as stopped:
            two_calls()
    assert stopped.value.task_id == outer.task_id
    assert stopped.value.limit == "max_iterations"
    assert inner.summary().iterations == 1
    assert inner.summary().outcome == "stopped"
    assert inner.summary().budget_state == "ok"
    assert outer.summary().budget_state == "killed"


def test_decorator_runs_each_call_in_a_fresh_task(spans):
    seen = []

    @otel_llm.task("job", max_iterations=5)
    def job(n):
        for _ in range(n):
            call()
        seen.append(otel_llm.current_task().summary())
        return n

    assert job(2) == 2
    assert job(3) == 3
    assert [s.iterations for s in seen] == [2, 3]
    assert seen[0].task_id != seen[1].task_id
    assert len([s for s in spans.spans() if s.name == "invoke_agent job"]) == 2


async def test_async_context_manager_and_async_decorator(spans):
    @otel_llm.task("ajob")
    async def ajob():
        await asyncio.sleep(0)
        call()
        return otel_llm.current_task()

    first = await ajob()
    async with otel_llm.task("actx") as second:
        await asyncio.sleep(0)
        call()
        call()
    assert first.summary().iterations == 1
    assert second.summary().iterations == 2


def test_a_task_object_enters_only_once(spans):
    t = otel_llm.task("once")
    with t:
        pass
    with pytest.raises(RuntimeError, match="entered once"), t:
        pass


def test_error_inside_task_marks_span_and_outcome(spans):
    t = otel_llm.task("boom")

    def fail():
        with t:
            call()
            raise KeyError("x")

    with pytest.raises(KeyError):
        fail()
    assert t.summary().outcome == "error"
    span = spans.span("invoke_agent boom")
    assert span.status.status_code == trace.StatusCode.ERROR
    assert span.attributes["error.type"] == "KeyError"
    assert span.attributes["otel_llm.task.outcome"] == "error"


def test_many_tasks_in_threads_do_not_mix(spans):
    barrier = threading.Barrier(8)
    results = {}

    def work(i):
        with otel_llm.task(f"w{i}") as t:
            barrier.wait()
            for _ in range(i + 1):
                call()
                barrier_free_yield()
        results[i] = t.summary()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for i in range(8):
        assert results[i].iterations == i + 1
        assert results[i].input_tokens == 1000 * (i + 1)
        assert results[i].cost_usd == pytest.approx(0.0075 * (i + 1), abs=1e-12)


def barrier_free_yield():
    threading.Event().wait(0)


async def test_many_tasks_in_asyncio_do_not_mix(spans):
    async def work(i):
        async with otel_llm.task(f"a{i}") as t:
            for _ in range(i + 1):
                await asyncio.sleep(0)
                call()
        return t.summary()

    results = await asyncio.gather(*(work(i) for i in range(10)))
    assert [r.iterations for r in results] == list(range(1, 11))
    assert len({r.task_id for r in results}) == 10


async def test_asyncio_tasks_started_inside_a_task_belong_to_it(spans):
    async def helper():
        await asyncio.sleep(0)
        call()

    async with otel_llm.task("parent") as t:
        await asyncio.gather(asyncio.create_task(helper()), asyncio.create_task(helper()))
    assert t.summary().iterations == 2


def test_threads_and_executor_work_started_inside_a_task_belong_to_it(spans):
    with otel_llm.task("fanout") as t:
        th = threading.Thread(target=call)
        th.start()
        th.join()
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda _: call(), range(3)))
            pool.submit(call).result()
    assert t.summary().iterations == 5
    assert t.summary().input_tokens == 5000


def test_executor_workers_do_not_keep_the_task_of_whoever_started_them(spans):
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        with otel_llm.task("first") as first:
            pool.submit(call).result()
        # The same worker thread now runs work submitted outside any task.
        assert pool.submit(call).result() is None
        with otel_llm.task("second") as second:
            pool.submit(call).result()
    finally:
        pool.shutdown()
    assert first.summary().iterations == 1
    assert second.summary().iterations == 1


def test_thread_started_outside_a_task_is_left_alone(spans):
    with otel_llm.task("warmup"):
        pass  # installs the thread patch
    out = []
    th = threading.Thread(target=lambda: out.append(call()))
    th.start()
    th.join()
    assert out == [None]


# -- tools -------------------------------------------------------------------------------


def test_tool_decorator_and_async_tool(spans):
    @otel_llm.tool("search")
    def search(q):
        return q.upper()

    @otel_llm.tool("fetch")
    async def fetch(url):
        await asyncio.sleep(0)
        return url

    async def run():
        async with otel_llm.tool("edit", call_id="call_1"):
            pass
        return await fetch("u")

    with otel_llm.task("tools") as t:
        assert search("x") == "X"
        assert asyncio.run(run()) == "u"
    assert t.summary().tool_calls == 3
    assert spans.span("execute_tool edit").attributes[gen_ai.GEN_AI_TOOL_CALL_ID] == "call_1"
    assert spans.span("execute_tool fetch").attributes["otel_llm.task.id"] == t.task_id


def test_tool_error_is_recorded_and_raised(spans):
    with otel_llm.task("t"), pytest.raises(ValueError, match="no"), otel_llm.tool("bad"):
        raise ValueError("no")
    span = spans.span("execute_tool bad")
    assert span.status.status_code == trace.StatusCode.ERROR
    assert span.attributes["error.type"] == "ValueError"


def test_tool_outside_any_task_is_only_a_span(spans):
    with otel_llm.tool("lonely"):
        pass
    assert "otel_llm.task.id" not in spans.span("execute_tool lonely").attributes


def _batch_events(spans, name):
    return [
        dict(e.attributes)
        for e in spans.span(f"invoke_agent {name}").events
        if e.name == "otel_llm.tool.batch"
    ]


def test_sequential_batch_is_flagged_with_the_time_it_would_have_saved(spans):
    clock = FakeClock()
    with otel_llm.task("seq", clock=clock) as t:
        call()
        for name, seconds in (("read_file", 1.0), ("search", 3.0), ("read_file", 2.0)):
            with otel_llm.tool(name):
                clock.now += seconds
        call()
    events = _batch_events(spans, "seq")
    assert events == [
        {
            "otel_llm.tool.batch.iteration": 1,
            "otel_llm.tool.batch.size": 3,
            "otel_llm.tool.batch.tools": ("read_file", "search", "read_file"),
            "otel_llm.tool.batch.duration_s": 6.0,
            "otel_llm.tool.batch.wall_s": 6.0,
            "otel_llm.tool.batch.parallelism": 1.0,
            "otel_llm.tool.batch.sequential": True,
            "otel_llm.tool.batch.saveable_s": 3.0,
        }
    ]
    s = t.summary()
    assert (s.tool_batches, s.sequential_tool_batches, s.tool_saveable_seconds) == (1, 1, 3.0)
    attributes = spans.span("invoke_agent seq").attributes
    assert attributes["otel_llm.task.tool_batches.sequential"] == 1
    assert attributes["otel_llm.task.tool_saveable_s"] == 3.0


def test_parallel_batch_is_measured_and_not_flagged(spans):
    clock = FakeClock()
    with otel_llm.task("par", clock=clock) as t:
        call()
        a = otel_llm.tool("a")
        b = otel_llm.tool("b")
        a.__enter__()
        clock.now += 1
        b.__enter__()
        clock.now += 2
        a.__exit__(None, None, None)
        clock.now += 1
        b.__exit__(None, None, None)
        # a second turn with a single tool: counted, no event
        call()
        with otel_llm.tool("c"):
            clock.now += 1
    (event,) = _batch_events(spans, "par")
    assert event["otel_llm.tool.batch.duration_s"] == 6.0
    assert event["otel_llm.tool.batch.wall_s"] == 4.0
    assert event["otel_llm.tool.batch.parallelism"] == 1.5
    assert event["otel_llm.tool.batch.sequential"] is False
    assert event["otel_llm.tool.batch.saveable_s"] == 0.0
    s = t.summary()
    assert (s.tool_batches, s.sequential_tool_batches, s.tool_saveable_seconds) == (2, 0, 0.0)
    assert spans.span("invoke_agent par").attributes["otel_llm.task.tool_parallelism"] == 7.0 / 5.0


def test_batch_still_running_at_the_next_model_call_is_tallied_when_its_tools_end(spans):
    clock = FakeClock()
    with otel_llm.task("overlap", clock=clock) as t:
        call()
        slow = otel_llm.tool("slow")
        slow.__enter__()
        with otel_llm.tool("fast"):
            clock.now += 1
        call()  # closes the batch while "slow" still runs
        with otel_llm.tool("next"):
            clock.now += 1
        clock.now += 1
        slow.__exit__(None, None, None)
    (event,) = _batch_events(spans, "overlap")
    assert event["otel_llm.tool.batch.tools"] == ("slow", "fast")
    assert event["otel_llm.tool.batch.wall_s"] == 3.0
    assert event["otel_llm.tool.batch.sequential"] is False
    assert t.summary().tool_batches == 2
