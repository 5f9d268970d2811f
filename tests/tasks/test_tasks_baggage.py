"""Baggage is untrusted input: a client's ``baggage`` header (extracted by any HTTP server
instrumentation) or a ``BAGGAGE`` variable may join a task and tighten its budget, never
loosen it, and no value in it makes the guard raise anything but ``BudgetExceeded``.

End to end: the real OpenAI SDK and our instrumentor against the provider simulator, with
a real policy file, and the hostile context built the way a server builds it (the W3C
propagators extracting request headers)."""

from __future__ import annotations

import logging

import openai
import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator

import otel_llm
from otel_llm import tasks
from otel_llm.instrumentation.openai import OpenAIInstrumentor

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

GPT = "gpt-4o-mini"
HI = [{"role": "user", "content": "hi"}]
ATTEMPTS = 5


def policy_file(tmp_path, per_task: str, on_exceed: str = "kill", match: str = "{service.name: '*'}"):
    path = tmp_path / "budgets.yaml"
    path.write_text(
        "policies:\n"
        "  - name: local\n"
        f"    match: {match}\n"
        f"    per_task: {per_task}\n"
        f"    on_exceed: {on_exceed}\n"
    )
    return str(path)


@pytest.fixture
def guard(pipeline, sim):
    """Instrumented OpenAI client under a given policy file (or none); returns the client."""
    instrumentors: list[OpenAIInstrumentor] = []
    clients: list[openai.OpenAI] = []

    def start(policy: str | None = None) -> openai.OpenAI:
        tasks._reset_for_tests()
        tasks.configure(
            environ={"OTEL_LLM_BUDGETS": policy} if policy else {}, tracer_provider=pipeline.tracer_provider
        )
        instrumentor = OpenAIInstrumentor()
        instrumentor.instrument(
            tracer_provider=pipeline.tracer_provider, meter_provider=pipeline.meter_provider
        )
        instrumentors.append(instrumentor)
        client = openai.OpenAI(base_url=sim.openai_base_url, api_key="sk-sim", max_retries=0)
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.close()
    for instrumentor in instrumentors:
        instrumentor.uninstrument()
    tasks._reset_for_tests()


def request_context(header: str) -> otel_context.Context:
    """What an HTTP server instrumentation makes of a request with this ``baggage`` header."""
    return W3CBaggagePropagator().extract({"baggage": header}, context=otel_context.Context())


def attempt_calls(
    client: openai.OpenAI, ctx: otel_context.Context, span_name: str | None = None, pipeline=None
):
    """Try ``ATTEMPTS`` calls in ``ctx`` (inside a server span when ``span_name``); returns
    the BudgetExceeded errors."""
    refused = []
    token = otel_context.attach(ctx)
    try:
        server = None
        if span_name is not None:
            server = pipeline.tracer_provider.get_tracer("web").start_span(
                span_name, kind=trace.SpanKind.SERVER
            )
            inner = otel_context.attach(trace.set_span_in_context(server))
        try:
            for _ in range(ATTEMPTS):
                try:
                    client.chat.completions.create(model=GPT, messages=HI, max_tokens=20)
                except otel_llm.BudgetExceeded as exc:
                    refused.append(exc)
        finally:
            if server is not None:
                otel_context.detach(inner)
                server.end()
    finally:
        otel_context.detach(token)
    return refused


# -- 1. carried limits and on_exceed may only tighten -----------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "otel_llm.task.id=evil,otel_llm.budget.on_exceed=alert",
        "otel_llm.task.id=evil,otel_llm.budget.max_iterations=1000",
        "otel_llm.task.id=evil,otel_llm.budget.max_iterations=1000,otel_llm.budget.on_exceed=alert",
    ],
)
def test_hostile_baggage_cannot_lift_the_local_policy_or_switch_it_to_alert(guard, sim, tmp_path, header):
    client = guard(policy_file(tmp_path, "{max_iterations: 1}"))
    refused = attempt_calls(client, request_context(header))
    assert sim.request_count == 1
    assert len(refused) == ATTEMPTS - 1
    assert {(e.task_id, e.limit, e.spent, e.limit_value) for e in refused} == {
        ("evil", "max_iterations", 1, 1)
    }


def test_carried_limits_tighten_the_local_policy(guard, sim, tmp_path):
    client = guard(policy_file(tmp_path, "{max_iterations: 4}"))
    refused = attempt_calls(
        client, request_context("otel_llm.task.id=caller,otel_llm.budget.max_iterations=2")
    )
    assert sim.request_count == 2
    assert {(e.limit, e.limit_value) for e in refused} == {("max_iterations", 2)}


def test_carried_kill_wins_over_a_local_alert_policy(guard, sim, tmp_path):
    client = guard(policy_file(tmp_path, "{max_iterations: 1}", on_exceed="alert"))
    refused = attempt_calls(client, request_context("otel_llm.task.id=caller,otel_llm.budget.on_exceed=kill"))
    assert sim.request_count == 1
    assert len(refused) == ATTEMPTS - 1


def test_local_alert_policy_still_alerts_for_a_joined_task(guard, sim, tmp_path):
    client = guard(policy_file(tmp_path, "{max_iterations: 1}", on_exceed="alert"))
    refused = attempt_calls(
        client, request_context("otel_llm.task.id=caller,otel_llm.budget.on_exceed=alert")
    )
    assert sim.request_count == ATTEMPTS
    assert refused == []


def test_carried_spend_so_far_counts_against_the_local_limits(guard, sim, tmp_path):
    client = guard(policy_file(tmp_path, "{max_iterations: 5}"))
    refused = attempt_calls(client, request_context("otel_llm.task.id=caller,otel_llm.task.iterations=3"))
    assert sim.request_count == 2
    assert {(e.limit, e.spent, e.limit_value) for e in refused} == {("max_iterations", 5, 5)}


def test_carried_task_name_cannot_dodge_a_policy_matching_the_local_name(guard, sim, tmp_path, pipeline):
    # Without baggage the call would be the trace task "POST /chat", held to this policy.
    client = guard(policy_file(tmp_path, "{max_iterations: 2}", match="{task.name: 'POST /chat'}"))
    header = "otel_llm.task.id=evil,otel_llm.task.name=innocent"
    refused = attempt_calls(client, request_context(header), span_name="POST /chat", pipeline=pipeline)
    assert sim.request_count == 2
    assert {(e.task_id, e.task_name, e.limit_value) for e in refused} == {("evil", "innocent", 2)}


# -- 2. and 3. no baggage value raises out of task(), current_task() or a model call -------------

HOSTILE_ENTRIES = [
    "otel_llm.budget.max_tokens=inf",
    "otel_llm.budget.max_tokens=1e400",
    "otel_llm.budget.max_usd=-inf",
    "otel_llm.budget.max_usd=nan",
    "otel_llm.budget.max_usd=-1",
    "otel_llm.budget.max_tool_calls=0",
    "otel_llm.budget.max_seconds=abc",
    "otel_llm.budget.max_tool_calls=" + "9" * 3000,
    "otel_llm.budget.warn_at=inf",
    "otel_llm.budget.warn_at=7",
    "otel_llm.budget.on_exceed=explode",
    "otel_llm.task.cost.usd=abc",
    "otel_llm.task.cost.usd=inf",
    "otel_llm.task.tokens=-5",
    "otel_llm.task.tokens=1e999",
    "otel_llm.task.iterations=nan",
    "otel_llm.task.tool_calls=-inf",
    "otel_llm.task.elapsed_s=inf",
    "otel_llm.task.name=" + "n" * 3000,
]


@pytest.mark.parametrize(
    "entry", HOSTILE_ENTRIES, ids=[e.split("=")[0] + "=" + e.split("=")[1][:8] for e in HOSTILE_ENTRIES]
)
def test_hostile_baggage_value_is_ignored_and_the_call_is_still_guarded(guard, sim, entry, caplog):
    client = guard()  # no local limits: only the carried max_iterations=2 bounds the task
    ctx = request_context(f"otel_llm.task.id=caller,otel_llm.budget.max_iterations=2,{entry}")
    token = otel_context.attach(ctx)
    try:
        with caplog.at_level(logging.WARNING, logger="otel_llm.tasks"):
            joined = otel_llm.current_task()
            with otel_llm.task("inner") as inner:
                assert inner.parent is joined
        assert joined.task_id == "caller"
        assert len(joined.name) <= 256
        assert joined.limits.max_iterations == 2
        assert joined.iterations == 0
        assert joined.cost_usd == 0.0
    finally:
        otel_context.detach(token)
    refused = attempt_calls(client, ctx)
    assert sim.request_count == 2
    assert {(e.task_id, e.limit, e.spent, e.limit_value) for e in refused} == {
        ("caller", "max_iterations", 2, 2)
    }


def test_an_ignored_baggage_entry_is_logged_once(guard, sim, caplog):
    client = guard()
    with caplog.at_level(logging.WARNING, logger="otel_llm.tasks"):
        for task_id in ("a", "b"):
            attempt_calls(
                client, request_context(f"otel_llm.task.id={task_id},otel_llm.budget.max_tokens=inf")
            )
    ignored = [r for r in caplog.records if "otel_llm.budget.max_tokens" in r.getMessage()]
    assert len(ignored) == 1
    assert "ignored baggage entry otel_llm.budget.max_tokens='inf'" in ignored[0].getMessage()
    assert sim.request_count == 2 * ATTEMPTS


def test_hostile_environment_carrier_cannot_lift_the_policy_or_break_the_guard(
    guard, sim, tmp_path, monkeypatch
):
    # A process started with BAGGAGE (subprocess_env's carrier) joins that task at its first call.
    monkeypatch.setenv(
        "BAGGAGE",
        "otel_llm.task.id=parent,otel_llm.budget.max_tokens=inf,"
        "otel_llm.budget.max_iterations=50,otel_llm.budget.on_exceed=alert",
    )
    client = guard(policy_file(tmp_path, "{max_iterations: 3}"))
    refused = attempt_calls(client, otel_context.Context())
    assert sim.request_count == 3
    assert {(e.task_id, e.limit, e.spent, e.limit_value) for e in refused} == {
        ("parent", "max_iterations", 3, 3)
    }
    assert tasks.process_task().limits == otel_llm.Limits(max_iterations=3)


def test_huge_finite_carried_spend_is_honoured_and_refuses_every_call(guard, sim, tmp_path):
    client = guard(policy_file(tmp_path, "{max_usd: 1}"))
    header = (
        "otel_llm.task.id=spent,otel_llm.task.cost.usd=1.7e308,"
        "otel_llm.task.tokens=1.7e308,otel_llm.task.iterations=1.7e308"
    )
    refused = attempt_calls(client, request_context(header))
    assert sim.request_count == 0
    assert len(refused) == ATTEMPTS
    assert {(e.limit, e.spent, e.limit_value) for e in refused} == {("max_usd", 1.7e308, 1)}
    assert str(refused[0]).startswith('task "remote" (id spent) reached max_usd: spent $')
