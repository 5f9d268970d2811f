"""Tasks and the budget guard end to end: the real OpenAI and Anthropic SDKs, our
instrumentors, the provider simulator; and a plain script under
``opentelemetry-instrument`` with limits from the environment or a policy file."""

from __future__ import annotations

import asyncio
import os
import textwrap

import anthropic
import openai
import pytest
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from support.tracesink import TraceSink

import otel_llm
from otel_llm import tasks
from otel_llm.demo import instrumented_env, run_instrumented
from otel_llm.instrumentation.anthropic import AnthropicInstrumentor
from otel_llm.instrumentation.openai import OpenAIInstrumentor
from otel_llm.sim import Reply

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

GPT = "gpt-4o-mini"
CLAUDE = "claude-sonnet-4-5"
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def instrumented(pipeline):
    tasks._reset_for_tests()
    tasks.configure(environ={}, tracer_provider=pipeline.tracer_provider)
    instrumentors = [OpenAIInstrumentor(), AnthropicInstrumentor()]
    for instrumentor in instrumentors:
        instrumentor.instrument(
            tracer_provider=pipeline.tracer_provider, meter_provider=pipeline.meter_provider
        )
    yield pipeline
    for instrumentor in instrumentors:
        instrumentor.uninstrument()
    tasks._reset_for_tests()


@pytest.fixture
def oai(sim):
    with openai.OpenAI(base_url=sim.openai_base_url, api_key="sk-sim", max_retries=0) as client:
        yield client


@pytest.fixture
def claude(sim):
    with anthropic.Anthropic(base_url=sim.url, api_key="sk-sim", max_retries=0) as client:
        yield client


def forever_searching(request):
    return Reply.tool_call("search", {"query": "again"})


def test_runaway_openai_task_stops_at_its_limit_and_sends_nothing_after(instrumented, sim, oai):
    sim.script(forever_searching)
    sent_per_turn = []

    def agent_loop():
        while True:
            oai.chat.completions.create(model=GPT, messages=HI, max_tokens=50)
            sent_per_turn.append(sim.request_count)

    with otel_llm.task("runaway", max_iterations=5) as t:
        with pytest.raises(otel_llm.BudgetExceeded) as stopped:
            agent_loop()
        assert sim.request_count == 5
        with pytest.raises(otel_llm.BudgetExceeded):
            oai.chat.completions.create(model=GPT, messages=HI, max_tokens=50)
    assert sim.request_count == 5
    assert sent_per_turn == [1, 2, 3, 4, 5]
    assert (stopped.value.limit, stopped.value.spent, stopped.value.limit_value) == ("max_iterations", 5, 5)
    assert t.summary().outcome_text == "stopped at max_iterations"


def test_task_totals_equal_the_sum_of_its_inference_spans(instrumented, sim, oai, claude):
    sim.enqueue(Reply.text("one two three"), Reply.tool_call("read_file", {"path": "a"}), Reply.text("done"))
    with otel_llm.task("mixed") as t:
        oai.chat.completions.create(model=GPT, messages=HI, max_tokens=50)
        claude.messages.create(model=CLAUDE, messages=HI, max_tokens=50)
        with otel_llm.tool("read_file"):
            pass
        stream = oai.chat.completions.create(
            model=GPT, messages=HI, max_tokens=50, stream=True, stream_options={"include_usage": True}
        )
        for _ in stream:
            pass
    task_span = instrumented.span("invoke_agent mixed")
    calls = [s for s in instrumented.spans() if s.name.startswith("chat ")]
    assert len(calls) == 3
    for span in calls:
        assert span.parent.span_id == task_span.context.span_id
        assert span.attributes["otel_llm.task.id"] == t.task_id
    assert [s.attributes["otel_llm.task.iteration"] for s in calls] == [1, 2, 3]
    a = task_span.attributes
    for key in (gen_ai.GEN_AI_USAGE_INPUT_TOKENS, gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS):
        total = a[key.replace("gen_ai.usage.", "otel_llm.task.usage.")]
        assert total == sum(s.attributes[key] for s in calls)
        assert total > 0
    assert a["otel_llm.task.cost.usd"] == pytest.approx(
        sum(s.attributes["otel_llm.cost.usd"] for s in calls), abs=1e-15
    )
    assert a["otel_llm.task.iterations"] == 3
    assert a["otel_llm.task.tool_calls"] == 1


def test_stream_that_crosses_max_usd_finishes_and_the_next_call_is_refused(instrumented, sim, claude):
    sim.enqueue(Reply.default(200))
    # claude-sonnet-4-5 output is $15 / M: 200 output tokens alone are $0.003
    with otel_llm.task("streamer", max_usd=0.001) as t:
        with claude.messages.stream(model=CLAUDE, messages=HI, max_tokens=500) as stream:
            text = "".join(stream.text_stream)
        assert len(text) == 800  # the whole reply arrived
        with pytest.raises(otel_llm.BudgetExceeded) as stopped:
            claude.messages.create(model=CLAUDE, messages=HI, max_tokens=50)
    assert sim.request_count == 1
    assert stopped.value.limit == "max_usd"
    assert stopped.value.spent == t.summary().cost_usd > 0.001


def test_reserve_refuses_a_call_whose_max_tokens_could_cross_the_budget(instrumented, sim, oai):
    # gpt-4o-mini output: $0.60 / M; max_tokens=100_000 could cost $0.06
    with otel_llm.task("careful", max_usd=0.05, reserve=True):
        with pytest.raises(otel_llm.BudgetExceeded) as refused:
            oai.chat.completions.create(model=GPT, messages=HI, max_tokens=100_000)
        oai.chat.completions.create(model=GPT, messages=HI, max_tokens=1000)
    assert sim.request_count == 1
    assert refused.value.worst_case_usd == pytest.approx(0.06, rel=1e-3)


async def test_concurrent_async_tasks_do_not_mix(instrumented, sim):
    async with openai.AsyncOpenAI(base_url=sim.openai_base_url, api_key="sk-sim", max_retries=0) as client:

        async def loop():
            while True:
                await client.chat.completions.create(model=GPT, messages=HI, max_tokens=20)

        async def agent(i):
            async with otel_llm.task(f"agent-{i}", max_iterations=i + 1) as t:
                with pytest.raises(otel_llm.BudgetExceeded):
                    await loop()
            return t.summary()

        summaries = await asyncio.gather(*(agent(i) for i in range(6)))
    assert [s.iterations for s in summaries] == [1, 2, 3, 4, 5, 6]
    assert sim.request_count == 21
    for s in summaries:
        spans = [x for x in instrumented.spans() if x.attributes.get("otel_llm.task.id") == s.task_id]
        assert len([x for x in spans if x.name.startswith("chat ")]) == s.iterations


# -- no code change: opentelemetry-instrument ------------------------------------------------

LOOP = textwrap.dedent(
    """
    import openai

    client = openai.OpenAI(max_retries=0)
    while True:  # a runaway loop with no telemetry or budget code at all
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    """
)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_", "ANTHROPIC_"))}


def _run_loop(tmp_path, sim, sink, **extra: str):
    script = tmp_path / "loop.py"
    script.write_text(LOOP)
    env = instrumented_env(sink.endpoint, sim_url=sim.url, service_name="coding-agent", base=_clean_env())
    env.update(extra)
    return run_instrumented(script, env)


@pytest.mark.parametrize("source", ["environment", "policy file"])
def test_no_code_loop_is_stopped_by_limits_from_the_environment_or_a_policy_file(tmp_path, sim, source):
    if source == "environment":
        extra = {"OTEL_LLM_MAX_ITERATIONS": "4"}
    else:
        policy = tmp_path / "budgets.yaml"
        policy.write_text(
            "policies:\n"
            "  - name: coding-agent\n"
            "    match: {service.name: coding-agent}\n"
            "    per_task: {max_iterations: 4}\n"
        )
        extra = {"OTEL_LLM_BUDGETS": str(policy)}
    with TraceSink() as sink:
        result = _run_loop(tmp_path, sim, sink, **extra)
        spans = sink.spans()
    assert result.returncode == 1
    assert "otel_llm.BudgetExceeded" in result.stderr
    assert "reached max_iterations: made 4 model calls of max_iterations 4" in result.stderr
    assert sim.request_count == 4
    (task_span,) = [s for s in spans if s.name == "invoke_agent coding-agent"]
    calls = [s for s in spans if s.name == "chat gpt-4o-mini"]
    assert len(calls) == 4
    assert {s.parent_span_id for s in calls} == {task_span.span_id}
    assert task_span.attributes["otel_llm.task.kind"] == "process"
    assert task_span.attributes["otel_llm.task.iterations"] == 4
    assert task_span.attributes["otel_llm.budget.state"] == "killed"
    assert task_span.attributes["otel_llm.budget.max_iterations"] == 4


def test_no_code_start_up_fails_on_a_bad_policy_file(tmp_path, sim):
    policy = tmp_path / "policy.yaml"
    policy.write_text("policies:\n  - name: a\n    per_task: {max_usd: abc}\n")
    with TraceSink() as sink:
        result = _run_loop(tmp_path, sim, sink, OTEL_LLM_BUDGETS=str(policy))
    assert result.returncode == 2
    assert (
        f'otel-llm: {policy}: policies[0].per_task.max_usd: expected a number > 0, got "abc"' in result.stderr
    )
    assert sim.request_count == 0
