"""End to end: a plain script under ``opentelemetry-instrument`` with the real OTLP
exporter, against the provider simulator; the spans are read back from the wire."""

from __future__ import annotations

import os
import runpy

import pytest
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from support.tracesink import TraceSink

from otel_llm import attributes as attrs
from otel_llm.demo import QUICKSTART, call_table, inference_spans, instrumented_env, run_instrumented
from otel_llm.sim.tokens import count_tokens

SYSTEM = runpy.run_path(str(QUICKSTART))["SYSTEM"]

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from otel_llm.sim import Simulator

    with Simulator() as sim, TraceSink() as sink:
        env = instrumented_env(sink.endpoint, sim_url=sim.url, service_name="e2e-agent", base=_clean_env())
        result = run_instrumented(QUICKSTART, env)
        assert result.returncode == 0, result.stderr
        yield sink.spans(), sim.request_count, result


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_", "ANTHROPIC_"))}


def test_every_model_call_exports_one_inference_span(exported):
    spans, served, _ = exported
    calls = inference_spans(spans)
    assert served == 6
    assert [s.name for s in calls] == ["chat gpt-4o-mini"] * 3 + ["chat claude-sonnet-5-5"] * 3
    assert all(s.resource["service.name"] == "e2e-agent" for s in calls)
    assert all(s.kind == 3 for s in calls)  # SPAN_KIND_CLIENT


def test_anthropic_cache_write_then_reads_are_priced(exported):
    spans, _, _ = exported
    prefix = count_tokens(SYSTEM)
    first, second, streamed = [s.attributes for s in inference_spans(spans) if "claude" in s.name]
    assert first[gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == prefix
    assert first[attrs.USAGE_CACHE_CREATION_1H_INPUT_TOKENS] == prefix
    assert second[gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == prefix
    assert streamed[gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == prefix
    # claude-sonnet-5-5: 1h write $4/MTok, read $0.10/MTok, input $2/MTok, output $10/MTok.
    assert first[attrs.COST_CACHE_WRITE_USD] == pytest.approx(prefix * 4 / 1e6, abs=1e-12)
    assert second[attrs.COST_CACHE_READ_USD] == pytest.approx(prefix * 0.10 / 1e6, abs=1e-12)
    assert first[attrs.COST_CACHE_SAVINGS_USD] < 0 < second[attrs.COST_CACHE_SAVINGS_USD]
    assert streamed[gen_ai.GEN_AI_REQUEST_STREAM] is True
    assert streamed[gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0


def test_openai_stream_usage_includes_cached_tokens(exported):
    spans, _, _ = exported
    calls = [s.attributes for s in inference_spans(spans) if "gpt" in s.name]
    assert calls[0][gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 0
    # The shared prefix is the system prompt; OpenAI caches the longest 128-token
    # step past 1,024 tokens of it: 1,987 tokens -> 1,920 cached.
    assert count_tokens(SYSTEM) == 1987
    assert calls[1][gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 1920
    assert calls[2][gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 1920
    assert calls[2][attrs.PRICE_SOURCE].startswith("genai-prices ")


def test_no_secret_reaches_a_span(exported):
    spans, _, _ = exported
    for span in spans:
        for value in [*span.attributes.values(), *span.resource.values()]:
            assert "sk-simulator" not in str(value)
            assert "sk-ant-simulator" not in str(value)


def test_call_table_lists_each_call_and_the_total(exported):
    spans, _, _ = exported
    table = call_table(spans)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["provider", "model", "stream"]
    assert sum(1 for line in lines if line.startswith(("openai", "anthropic"))) == 6
    total = sum(s.attributes[attrs.COST_USD] for s in inference_spans(spans))
    assert lines[-1].split() == ["total", f"{total:.6f}"]
