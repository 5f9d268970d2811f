"""The shared instrumentation core: what holds for every provider at once."""

from __future__ import annotations

import logging
import threading

import anthropic
import openai
import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import StatusCode

import otel_llm
from otel_llm import attributes as attrs
from otel_llm import failures, pricing, tasks
from otel_llm.instrumentation.anthropic import AnthropicInstrumentor
from otel_llm.instrumentation.inference import InferenceRequest, Telemetry
from otel_llm.instrumentation.openai import OpenAIInstrumentor
from otel_llm.policy import PolicyError
from otel_llm.sim import Reply
from otel_llm.usage import Usage

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _on(instrumentor, pipeline):
    instrumentor.instrument(tracer_provider=pipeline.tracer_provider, meter_provider=pipeline.meter_provider)
    return instrumentor


def _instrument_both(pipeline) -> list:
    return [_on(OpenAIInstrumentor(), pipeline), _on(AnthropicInstrumentor(), pipeline)]


def _one_call_each(sim) -> None:
    with openai.OpenAI(base_url=sim.openai_base_url, api_key="sk-test", max_retries=0) as client:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with anthropic.Anthropic(base_url=sim.url, api_key="sk-ant-test", max_retries=0) as client:
        client.messages.create(
            model="claude-sonnet-4-5", max_tokens=32, messages=[{"role": "user", "content": "hi"}]
        )


def _costs(pipeline) -> dict[str, float]:
    points = pipeline.metrics()["otel_llm.client.cost"]
    return {p.attributes["gen_ai.provider.name"]: p.value for p in points}


def _span_costs(pipeline) -> dict[str, float]:
    out: dict[str, float] = {}
    for span in pipeline.spans():
        if attrs.COST_USD in span.attributes and span.name.startswith("chat "):
            provider = span.attributes["gen_ai.provider.name"]
            out[provider] = out.get(provider, 0.0) + span.attributes[attrs.COST_USD]
    return out


def test_cost_counter_reports_every_provider_on_one_meter_provider(pipeline, sim, spans):
    instrumentors = _instrument_both(pipeline)
    try:
        _one_call_each(sim)
        span_costs = _span_costs(pipeline)
        assert set(span_costs) == {"openai", "anthropic"}
        assert _costs(pipeline) == pytest.approx(span_costs, abs=1e-15)
        # Instrumented again, the same counter goes on adding.
        for instrumentor in instrumentors:
            instrumentor.uninstrument()
        instrumentors = _instrument_both(pipeline)
        _one_call_each(sim)
        assert _costs(pipeline) == pytest.approx(_span_costs(pipeline), abs=1e-15)
        assert _costs(pipeline)["openai"] == pytest.approx(2 * span_costs["openai"], abs=1e-15)
    finally:
        for instrumentor in instrumentors:
            instrumentor.uninstrument()


def test_a_refused_instrument_wraps_nothing_and_a_corrected_retry_wraps_once(pipeline, sim, monkeypatch):
    tasks._reset_for_tests()
    original = vars(openai.resources.chat.completions.Completions)["create"]
    monkeypatch.setenv("OTEL_LLM_MAX_USD", "lots")
    instrumentor = OpenAIInstrumentor()
    try:
        with pytest.raises(PolicyError, match="OTEL_LLM_MAX_USD"):
            instrumentor.instrument(tracer_provider=pipeline.tracer_provider)
        assert vars(openai.resources.chat.completions.Completions)["create"] is original
        monkeypatch.delenv("OTEL_LLM_MAX_USD")
        instrumentor.instrument(
            tracer_provider=pipeline.tracer_provider, meter_provider=pipeline.meter_provider
        )
        with openai.OpenAI(base_url=sim.openai_base_url, api_key="sk-test", max_retries=0) as client:
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        assert [s.name for s in pipeline.spans() if s.name.startswith("chat ")] == ["chat gpt-4o"]
    finally:
        instrumentor.uninstrument()
        tasks._reset_for_tests()
    assert vars(openai.resources.chat.completions.Completions)["create"] is original


def test_a_call_ends_once_when_many_threads_end_it(pipeline, spans):
    telemetry = Telemetry(pipeline.tracer_provider, pipeline.meter_provider)
    for _ in range(20):
        call = telemetry.start(InferenceRequest("openai", "chat", "gpt-4o"))
        barrier = threading.Barrier(8)

        def end(call=call, barrier=barrier) -> None:
            barrier.wait()
            call.end()

        threads = [threading.Thread(target=end) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len([s for s in pipeline.spans() if s.name == "chat gpt-4o"]) == 20
    (duration,) = pipeline.metrics()["gen_ai.client.operation.duration"]
    assert duration.count == 20


def test_error_status_never_carries_a_key_the_provider_echoed(pipeline, sim, spans):
    instrumentor = _on(OpenAIInstrumentor(), pipeline)
    echoed = "Incorrect API key provided: sk-proj-AbCd****************************wXyZ."
    sim.enqueue(Reply.error(401, message=echoed, error_type="invalid_request_error"))
    try:
        with (
            openai.OpenAI(base_url=sim.openai_base_url, api_key="sk-test", max_retries=0) as client,
            pytest.raises(openai.AuthenticationError),
        ):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    finally:
        instrumentor.uninstrument()
    (span,) = [s for s in pipeline.spans() if s.name == "chat gpt-4o"]
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == "AuthenticationError"
    assert "AbCd" not in span.status.description
    assert "wXyZ" not in span.status.description
    assert span.status.description.startswith("AuthenticationError: Error code: 401")
    assert "[redacted]" in span.status.description


def _chat(client) -> None:
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


def test_a_call_is_priced_before_its_span_is_rendered(pipeline, sim, spans, monkeypatch):
    """Price, then render: a failure while building the span's attributes leaves the
    call's cost where it belongs, the same on the task and on the cost metric."""

    def broken(self):
        raise RuntimeError("rendering broke")

    instrumentor = _on(OpenAIInstrumentor(), pipeline)
    failures.forget(logging.getLogger("otel_llm.instrumentation"))
    monkeypatch.setattr(Usage, "span_attributes", broken)
    try:
        with (
            openai.OpenAI(base_url=sim.openai_base_url, api_key="sk-test", max_retries=0) as client,
            otel_llm.task("priced") as t,
        ):
            _chat(client)
    finally:
        instrumentor.uninstrument()
    expected = pricing.price(t.usage, "gpt-4o", "openai")
    assert expected is not None
    assert t.usage.input_tokens > 0
    assert t.summary().unpriced_calls == 0
    assert t.cost == expected
    assert t.cost_usd == expected.total_usd
    assert _costs(pipeline) == {"openai": expected.total_usd}
    call = pipeline.span("chat gpt-4o")
    assert attrs.COST_USD not in call.attributes  # the rendering did fail


def test_a_suppressed_call_emits_nothing_and_still_counts_toward_its_task(pipeline, sim, spans):
    instrumentors = _instrument_both(pipeline)
    try:
        with (
            openai.OpenAI(base_url=sim.openai_base_url, api_key="sk-test", max_retries=0) as oa,
            anthropic.Anthropic(base_url=sim.url, api_key="sk-ant-test", max_retries=0) as an,
            otel_llm.task("quiet", max_iterations=2) as t,
            suppress_instrumentation(),
        ):
            _chat(oa)
            an.messages.create(
                model="claude-sonnet-4-5", max_tokens=32, messages=[{"role": "user", "content": "hi"}]
            )
            with pytest.raises(otel_llm.BudgetExceeded) as refused:
                _chat(oa)
    finally:
        for instrumentor in instrumentors:
            instrumentor.uninstrument()
    assert refused.value.limit == "max_iterations"
    assert sim.request_count == 2  # the third call was refused before its request
    assert [s.name for s in pipeline.spans()] == ["invoke_agent quiet"]
    assert {name: points for name, points in pipeline.metrics().items() if points} == {}
    summary = t.summary()
    assert summary.iterations == 2
    assert summary.unpriced_calls == 0
    assert summary.input_tokens > 0
    assert summary.cost_usd > 0
