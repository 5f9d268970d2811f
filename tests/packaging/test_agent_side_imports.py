"""The agent side loads nothing of the collector's: an instrumented model call, a task
and a tool, in a fresh interpreter, leave no OTLP decoding, protobuf, ClickHouse client,
Arrow, gRPC, storage or collector module in ``sys.modules``. (A user who exports over
OTLP loads the exporter's protobuf themselves; otel-llm does not.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

COLLECTOR_SIDE = (
    "opentelemetry.proto",
    "google.protobuf",
    "grpc",
    "chdb",
    "clickhouse_connect",
    "pyarrow",
    "otel_llm.collector",
    "otel_llm.storage",
)

AGENT = """
import json, sys
import openai
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_llm
from otel_llm.instrumentation.anthropic import AnthropicInstrumentor
from otel_llm.instrumentation.openai import OpenAIInstrumentor

exporter = InMemorySpanExporter()
tracer_provider = TracerProvider()
tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
for instrumentor in (OpenAIInstrumentor(), AnthropicInstrumentor()):
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
otel_llm.tasks.configure(tracer_provider=tracer_provider)
client = openai.OpenAI(base_url=sys.argv[1], api_key="sk-test", max_retries=0)
with otel_llm.task("imports", max_usd=1.0) as task:
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with otel_llm.tool("search"):
        pass
forbidden = sys.argv[2].split(",")
print(json.dumps({
    "spans": sorted(span.name for span in exporter.get_finished_spans()),
    "cost": task.cost_usd,
    "loaded": sorted(m for m in sys.modules for f in forbidden if m == f or m.startswith(f + ".")),
}))
"""


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_traced_call_and_a_task_load_nothing_of_the_collector(sim):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_", "ANTHROPIC_"))}
    result = subprocess.run(
        [sys.executable, "-c", AGENT, sim.openai_base_url, ",".join(COLLECTOR_SIDE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["spans"] == ["chat gpt-4o", "execute_tool search", "invoke_agent imports"]
    assert found["cost"] > 0
    assert found["loaded"] == []
