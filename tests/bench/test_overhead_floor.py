"""The bench's exact floor (``bench/overhead.py``, variant ``floor``) makes the
OpenTelemetry SDK calls our instrumentation makes: the same span (name, kind, parent,
attribute keys and value types) and the same metric records (instruments, point
attribute keys, records per point) on the same real SDK call against the simulator. If
ours gains or loses an attribute or a record, this fails until the floor follows."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_llm import tasks
from otel_llm.instrumentation.anthropic import AnthropicInstrumentor
from otel_llm.instrumentation.openai import OpenAIInstrumentor
from otel_llm.sim import Simulator

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

BENCH = Path(__file__).resolve().parents[2] / "bench" / "overhead.py"


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("overhead_bench", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


overhead = _bench()


class _Pipeline:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def shape(self) -> dict[str, Any]:
        """What the SDK was asked to record, without the values."""
        spans = [
            (
                span.name,
                span.parent is not None,
                {key: type(value).__name__ for key, value in span.attributes.items()},
            )
            for span in self.exporter.get_finished_spans()
            if span.kind is SpanKind.CLIENT
        ]
        metrics: dict[str, list[tuple[tuple[str, ...], int | None]]] = {}
        data = self.reader.get_metrics_data()
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    points = metrics.setdefault(f"{metric.name} [{metric.unit}]", [])
                    for point in metric.data.data_points:
                        keys = tuple(sorted(point.attributes))
                        points.append((keys, getattr(point, "count", None)))
                    points.sort()
        return {"spans": spans, "metrics": metrics}

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def _ours(provider: str, mode: str, url: str) -> dict[str, Any]:
    pipeline = _Pipeline()
    tasks._reset_for_tests()
    tasks.configure(environ={}, tracer_provider=pipeline.tracer_provider)
    instrumentor = OpenAIInstrumentor() if provider == "openai" else AnthropicInstrumentor()
    instrumentor.instrument(tracer_provider=pipeline.tracer_provider, meter_provider=pipeline.meter_provider)
    try:
        chunks = overhead.make_call(provider, mode, url)()
    finally:
        instrumentor.uninstrument()
        tasks._reset_for_tests()
    shape = pipeline.shape()
    pipeline.shutdown()
    return {**shape, "chunks": chunks}


def _floor(provider: str, mode: str, url: str) -> dict[str, Any]:
    pipeline = _Pipeline()
    uninstall = overhead.install_floor(provider, pipeline.tracer_provider, pipeline.meter_provider)
    try:
        chunks = overhead.make_call(provider, mode, url)()
    finally:
        uninstall()
    shape = pipeline.shape()
    pipeline.shutdown()
    return {**shape, "chunks": chunks}


@pytest.mark.parametrize("mode", ["nonstream", "stream"])
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_the_exact_floor_records_what_ours_records(provider: str, mode: str) -> None:
    with Simulator(default_output_tokens=5) as sim:
        ours = _ours(provider, mode, sim.url)
        floor = _floor(provider, mode, sim.url)
    assert len(ours["spans"]) == 1
    name, has_parent, attributes = ours["spans"][0]
    # The inference span of a call under the automatic process task, as under
    # opentelemetry-instrument: a child of the task span.
    assert has_parent
    assert name == f"chat {overhead.MODELS[provider]}"
    assert len(attributes) == (25 if mode == "stream" else 24)
    assert floor["spans"] == ours["spans"]
    expected_metrics = {
        "gen_ai.client.operation.duration [s]",
        "gen_ai.client.token.usage [{token}]",
        "otel_llm.client.cost [USD]",
    }
    if mode == "stream":
        expected_metrics |= {
            "gen_ai.client.operation.time_to_first_chunk [s]",
            "gen_ai.client.operation.time_per_output_chunk [s]",
        }
    assert set(ours["metrics"]) == expected_metrics
    assert floor["metrics"] == ours["metrics"]
    assert floor["chunks"] == ours["chunks"]
