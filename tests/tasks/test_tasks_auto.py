"""Automatic tasks (calls outside any task while the instrumentors are on) and tasks that
cross process boundaries. Cross-process tests start real Python subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context

import otel_llm
from otel_llm import pricing, tasks
from otel_llm.tasks.budget import BudgetExceeded
from otel_llm.usage import Usage

MODEL = "gpt-4o"
USAGE = Usage(input_tokens=1000, output_tokens=500)  # $0.0075


@pytest.fixture
def auto(pipeline, monkeypatch):
    """Automatic tasks on, as the instrumentors switch them on, with a clean environment."""
    for var in list(os.environ):
        if var.startswith("OTEL_LLM_") or var in ("TRACEPARENT", "TRACESTATE", "BAGGAGE"):
            monkeypatch.delenv(var)
    tasks._reset_for_tests()

    def start(**env: str) -> None:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        tasks.instrumentation_started(pipeline.tracer_provider)

    yield start
    tasks.instrumentation_stopped()
    tasks._reset_for_tests()


def call() -> tasks.TaskCall | None:
    handle = tasks.enter_call("openai", MODEL, max_tokens=500, input_estimate=250)
    if handle is not None:
        handle.exit_call(USAGE, pricing.price(USAGE, MODEL, "openai"), None)
    return handle


def test_plain_script_loop_is_bounded_by_environment_limits(auto, pipeline):
    auto(OTEL_LLM_MAX_ITERATIONS="4")
    handles = []

    def loop_forever():
        while True:
            handles.append(call())

    with pytest.raises(BudgetExceeded) as stopped:
        loop_forever()
    assert len(handles) == 4
    assert stopped.value.limit == "max_iterations"
    process_task = tasks.process_task()
    assert stopped.value.task_id == process_task.task_id
    # Inference spans are children of the process task span, which is still open...
    parent = trace.get_current_span(handles[0].context)
    process_span = trace.get_current_span(process_task.context)
    assert parent.get_span_context().span_id == process_span.get_span_context().span_id
    assert [h.span_attributes["otel_llm.task.iteration"] for h in handles] == [1, 2, 3, 4]
    assert pipeline.spans() == []
    # ...and ends, with the totals, when the instrumentation stops (or at exit).
    tasks.instrumentation_stopped()
    span = pipeline.span(f"invoke_agent {process_task.name}")
    assert span.attributes["otel_llm.task.kind"] == "process"
    assert span.attributes["otel_llm.task.iterations"] == 4
    assert span.attributes["otel_llm.budget.state"] == "killed"
    assert span.attributes["otel_llm.budget.max_iterations"] == 4
    assert span.attributes["otel_llm.task.cost.usd"] == pytest.approx(0.03, abs=1e-12)


def test_calls_under_an_active_span_form_one_task_per_trace(auto, pipeline):
    auto(OTEL_LLM_MAX_USD="0.015")
    tracer = pipeline.tracer_provider.get_tracer("web")
    with tracer.start_as_current_span("POST /chat") as request:
        first = call()
        second = call()
        with pytest.raises(BudgetExceeded) as stopped:
            call()
    trace_id = format(request.get_span_context().trace_id, "032x")
    assert first.context is None  # the inference span goes under the request span
    assert first.span_attributes["otel_llm.task.id"] == trace_id
    assert first.span_attributes["otel_llm.task.name"] == "POST /chat"
    assert second.span_attributes["otel_llm.task.iteration"] == 2
    assert stopped.value.task_id == trace_id
    assert "spent $0.0150 of max_usd $0.0150" in str(stopped.value)
    # another request is another task, with its own budget
    with tracer.start_as_current_span("POST /chat") as other:
        handle = call()
    assert handle.span_attributes["otel_llm.task.id"] == format(other.get_span_context().trace_id, "032x")
    assert handle.span_attributes["otel_llm.task.iteration"] == 1
    assert tasks.process_task() is None


def test_policy_file_limits_apply_to_automatic_tasks_matched_by_name(auto, tmp_path):
    policy = tmp_path / "budgets.yaml"
    policy.write_text(
        "policies:\n"
        "  - {name: chat, match: {task.name: 'POST /chat'}, per_task: {max_iterations: 2}}\n"
        "  - {name: batch, match: {task.name: 'nightly-*'}, per_task: {max_iterations: 1}}\n"
    )
    auto(OTEL_LLM_BUDGETS=str(policy))
    tracer = trace.get_tracer("web", tracer_provider=tasks.tracer_provider())
    with tracer.start_as_current_span("POST /chat"):
        call()
        handle = call()
        with pytest.raises(BudgetExceeded):
            call()
    assert handle.span_attributes["otel_llm.budget.max_iterations"] == 2


def test_explicit_tasks_do_not_create_automatic_ones(auto):
    auto()
    with otel_llm.task("explicit") as t:
        handle = call()
    assert handle.span_attributes["otel_llm.task.id"] == t.task_id
    assert tasks.process_task() is None


def test_automatic_tasks_off_again_end_the_process_task_and_make_no_new_one(auto, pipeline):
    auto()
    assert call() is not None
    tasks.instrumentation_stopped()
    (ended,) = pipeline.spans()
    assert ended.attributes["otel_llm.task.kind"] == "process"
    assert ended.attributes["otel_llm.task.iterations"] == 1
    assert call() is None
    assert tasks.process_task() is None
    assert len(pipeline.spans()) == 1


def test_bad_policy_file_fails_when_the_instrumentation_starts(auto, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("policies:\n  - name: a\n    per_task: {max_usd: abc}\n")
    with pytest.raises(otel_llm.PolicyError) as error:
        auto(OTEL_LLM_BUDGETS=str(policy))
    assert str(error.value) == f'{policy}: policies[0].per_task.max_usd: expected a number > 0, got "abc"'


def test_baggage_from_an_incoming_request_joins_the_callers_task(auto):
    auto()
    ctx = otel_context.get_current()
    for key, value in {
        "otel_llm.task.id": "caller-task",
        "otel_llm.task.name": "support",
        "otel_llm.budget.max_iterations": "2",
    }.items():
        ctx = baggage.set_baggage(key, value, ctx)
    token = otel_context.attach(ctx)
    try:
        first = call()
        call()
        with pytest.raises(BudgetExceeded) as stopped:
            call()
    finally:
        otel_context.detach(token)
    assert first.span_attributes["otel_llm.task.id"] == "caller-task"
    assert first.span_attributes["otel_llm.task.name"] == "support"
    assert (stopped.value.task_id, stopped.value.limit_value) == ("caller-task", 2)


# -- real subprocesses ------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import json, sys
    from opentelemetry import context, trace
    from opentelemetry.sdk.trace import TracerProvider
    from otel_llm import pricing, tasks
    from otel_llm.tasks.budget import BudgetExceeded
    from otel_llm.usage import Usage

    usage = Usage(input_tokens=1000, output_tokens=500)
    provider = TracerProvider()
    if sys.argv[1] == "attach":
        context.attach(tasks.context_from_env())
        tasks.configure(tracer_provider=provider)
    else:
        tasks.instrumentation_started(provider)  # what opentelemetry-instrument does
    out = {"calls": [], "stopped": None}
    try:
        for _ in range(10):
            call = tasks.enter_call("openai", "gpt-4o", max_tokens=500, input_estimate=250)
            parent = trace.get_current_span(call.context or context.get_current()).get_span_context()
            out["calls"].append(dict(call.span_attributes, trace_id=format(parent.trace_id, "032x")))
            call.exit_call(usage, pricing.price(usage, "gpt-4o", "openai"), None)
    except BudgetExceeded as exc:
        out["stopped"] = {
            "task_id": exc.task_id, "limit": exc.limit, "spent": exc.spent, "value": exc.limit_value
        }
    print(json.dumps(out))
    """
)


def run_child(env: dict[str, str], how: str) -> dict:
    """Run ``CHILD`` in a fresh interpreter with ``env``; what it printed, decoded."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD, how], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("how", ["attach", "auto"])
def test_subprocess_given_the_environment_joins_the_task_and_its_remaining_budget(auto, pipeline, how):
    auto()
    with otel_llm.task("parent", max_iterations=5) as t:
        call()
        call()
        env = otel_llm.subprocess_env()
        trace_id = format(trace.get_current_span().get_span_context().trace_id, "032x")
    assert env["TRACEPARENT"].startswith(f"00-{trace_id}-")
    out = run_child(env, how)
    # The parent made 2 of its 5 calls: the child may make exactly 3 more.
    assert [c["otel_llm.task.iteration"] for c in out["calls"]] == [3, 4, 5]
    assert {c["otel_llm.task.id"] for c in out["calls"]} == {t.task_id}
    assert {c["otel_llm.task.name"] for c in out["calls"]} == {"parent"}
    assert {c["trace_id"] for c in out["calls"]} == {trace_id}
    assert out["stopped"] == {"task_id": t.task_id, "limit": "max_iterations", "spent": 5, "value": 5}


EXIT_CHILD = textwrap.dedent(
    """
    import json
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
    from otel_llm import pricing, tasks
    from otel_llm.usage import Usage

    class Printer(SpanExporter):
        def export(self, spans):
            for span in spans:
                print(json.dumps({"name": span.name, "attributes": dict(span.attributes)}), flush=True)
            return SpanExportResult.SUCCESS

    provider = TracerProvider(resource=Resource.create({"service.name": "nightly-report"}))
    provider.add_span_processor(SimpleSpanProcessor(Printer()))
    tasks.instrumentation_started(provider)
    usage = Usage(input_tokens=1000, output_tokens=500)
    for _ in range(3):
        call = tasks.enter_call("openai", "gpt-4o", max_tokens=500, input_estimate=250)
        call.exit_call(usage, pricing.price(usage, "gpt-4o", "openai"), None)
    print(json.dumps({"name": "script ends"}), flush=True)
    """
)


def test_process_task_span_ends_at_exit_before_the_provider_shuts_down():
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_LLM_")}
    env["OTEL_LLM_MAX_USD"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", EXIT_CHILD], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["name"] for line in lines] == ["script ends", "invoke_agent nightly-report"]
    attributes = lines[1]["attributes"]
    assert attributes["otel_llm.task.kind"] == "process"
    assert attributes["otel_llm.task.iterations"] == 3
    assert attributes["otel_llm.budget.max_usd"] == 1.0
    assert attributes["otel_llm.task.outcome"] == "done"
    assert attributes["otel_llm.task.cost.usd"] == pytest.approx(0.0225, abs=1e-12)


def test_subprocess_started_inside_a_request_trace_joins_that_trace_task(auto, pipeline):
    auto(OTEL_LLM_MAX_ITERATIONS="3")
    tracer = pipeline.tracer_provider.get_tracer("web")
    with tracer.start_as_current_span("POST /jobs") as request:
        call()
        env = otel_llm.subprocess_env()
    trace_id = format(request.get_span_context().trace_id, "032x")
    out = run_child(env, "auto")
    assert [c["otel_llm.task.iteration"] for c in out["calls"]] == [2, 3]
    assert {c["otel_llm.task.id"] for c in out["calls"]} == {trace_id}
    assert {c["trace_id"] for c in out["calls"]} == {trace_id}
    assert out["stopped"] == {"task_id": trace_id, "limit": "max_iterations", "spent": 3, "value": 3}


def test_subprocess_given_only_a_traceparent_makes_the_trace_its_task(auto, pipeline):
    auto()
    tracer = pipeline.tracer_provider.get_tracer("web")
    with tracer.start_as_current_span("cron"):
        env = otel_llm.subprocess_env()  # no call yet: no task to carry, only the trace
    assert "BAGGAGE" not in env
    env["OTEL_LLM_MAX_ITERATIONS"] = "2"
    out = run_child(env, "auto")
    trace_id = env["TRACEPARENT"].split("-")[1]
    assert [c["otel_llm.task.id"] for c in out["calls"]] == [trace_id, trace_id]
    assert {c["trace_id"] for c in out["calls"]} == {trace_id}
    assert out["stopped"]["limit"] == "max_iterations"
