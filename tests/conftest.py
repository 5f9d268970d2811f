"""Shared fixtures: a real OpenTelemetry SDK pipeline kept in memory, the provider
simulator, and instrumentors bound to that pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@dataclass
class Pipeline:
    """A real SDK tracer and meter provider whose output stays in memory."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        """The one finished span called ``name`` (fails if there are none or several)."""
        found = [s for s in self.spans() if s.name == name]
        assert len(found) == 1, f"expected one span {name!r}, got {[s.name for s in self.spans()]}"
        return found[0]

    def metrics(self) -> dict[str, list]:
        """Metric name -> its data points, from one collection."""
        data = self.reader.get_metrics_data()
        out: dict[str, list] = {}
        if data is None:
            return out
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    out.setdefault(metric.name, []).extend(metric.data.data_points)
        return out


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Pipeline(tracer_provider, meter_provider, exporter, reader)
    tracer_provider.shutdown()
    meter_provider.shutdown()


@pytest.fixture
def spans(pipeline: Pipeline) -> Iterator[Pipeline]:
    """The pipeline, with the task registry reset and configured from an empty
    environment (no policy file, no limits from ``OTEL_LLM_*``), reset again after."""
    from otel_llm import tasks

    tasks._reset_for_tests()
    tasks.configure(environ={}, tracer_provider=pipeline.tracer_provider)
    yield pipeline
    tasks._reset_for_tests()


@pytest.fixture
def sim():
    """A zero-latency provider simulator on a free loopback port."""
    from otel_llm.sim import Simulator

    with Simulator() as simulator:
        yield simulator
