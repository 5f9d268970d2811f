"""The collector's own telemetry: every metric it exposes on ``/metrics``, declared once.

Each metric is a :class:`MetricSpec` below (name, type, unit, labels, help text); the
table ``METRICS`` lists them all, :class:`SelfMetrics` creates them on its own
``prometheus_client.CollectorRegistry`` (never the global one, so two collectors in one
process, as in the tests, do not collide), and ``collector/README.md`` lists the same
set (a test keeps the two in step, both ways).

Names follow Prometheus conventions and the OpenTelemetry Collector's own
(``otelcol_receiver_accepted_spans``): ``otel_llm_collector_`` prefix, the unit as the
last word of the name, counters exposed with ``_total``. Usage::

    metrics = SelfMetrics()
    metrics.spans_received.labels(signal="traces", protocol="grpc").inc(len(spans))
    body, content_type = metrics.render(request.headers.get("Accept"))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

__all__ = ["METRICS", "PREFIX", "MetricSpec", "SelfMetrics"]

PREFIX = "otel_llm_collector_"

MetricKind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One self-metric as declared: what the README lists and the registry exposes."""

    name: str
    """Base name, without ``_total`` for counters; ends with ``_<unit>`` when a unit is set."""
    kind: MetricKind
    unit: str
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None

    @property
    def exposed_name(self) -> str:
        """The name a scraper sees (counters get ``_total``)."""
        return f"{self.name}_total" if self.kind == "counter" else self.name


SPANS_RECEIVED = MetricSpec(
    f"{PREFIX}received_items",
    "counter",
    "items",
    "Telemetry items received over OTLP and accepted: spans (signal=traces), metric data points "
    "(signal=metrics), log records (signal=logs); protocol is grpc or http.",
    ("signal", "protocol"),
)
SPANS_REFUSED = MetricSpec(
    f"{PREFIX}refused_spans",
    "counter",
    "spans",
    "Spans refused, by reason: malformed (400), oversize (413), unauthorized (401), "
    "overloaded (429/503, the client retries), killed_task (past the per-task cap, partial_success).",
    ("reason",),
)
SPANS_PRICED = MetricSpec(
    f"{PREFIX}priced_spans",
    "counter",
    "spans",
    "Inference spans that arrived without otel_llm.cost.usd and were priced by the collector.",
)
SPANS_UNPRICED = MetricSpec(
    f"{PREFIX}unpriced_spans",
    "counter",
    "spans",
    "Inference spans without a cost that the collector could not price (no known price for the model).",
)
REQUESTS = MetricSpec(
    f"{PREFIX}requests",
    "counter",
    "requests",
    "OTLP export requests answered, by protocol, signal and status (HTTP status code, or gRPC status name).",
    ("protocol", "signal", "status"),
)
TASKS_ACTIVE = MetricSpec(
    f"{PREFIX}active_tasks",
    "gauge",
    "tasks",
    "Tasks whose state the budget processor holds now.",
)
TASKS_EVICTED = MetricSpec(
    f"{PREFIX}evicted_tasks",
    "counter",
    "tasks",
    "Tasks evicted from the active-task table because it was full (least recently seen first).",
)
KILLS = MetricSpec(
    f"{PREFIX}kills",
    "counter",
    "kills",
    "Kill decisions, by cause: limit (a per-task limit), window (a group window budget), "
    "manual (POST /v1/tasks/{id}/kill).",
    ("cause",),
)
BUDGET_WARNINGS = MetricSpec(
    f"{PREFIX}budget_warnings",
    "counter",
    "warnings",
    "Budget warnings: a task or window crossed its warn_at threshold.",
)
ALERTS_SENT = MetricSpec(
    f"{PREFIX}sent_alerts",
    "counter",
    "alerts",
    "Budget alerts delivered, by target (webhook, slack, alertmanager).",
    ("target",),
)
ALERTS_FAILED = MetricSpec(
    f"{PREFIX}failed_alerts",
    "counter",
    "alerts",
    "Budget alerts given up on, by target: retries exhausted or a response that retrying cannot fix.",
    ("target",),
)
ALERTS_DROPPED = MetricSpec(
    f"{PREFIX}dropped_alerts",
    "counter",
    "alerts",
    "Budget alerts dropped because the target's queue was full (target=all: the hand-off "
    "queue in front of every target was full, or the alerter was closed).",
    ("target",),
)
ALERT_RETRIES = MetricSpec(
    f"{PREFIX}alert_retries",
    "counter",
    "retries",
    "Delivery attempts repeated after a failure, by target.",
    ("target",),
)
ALERTS_DEDUPLICATED = MetricSpec(
    f"{PREFIX}deduplicated_alerts",
    "counter",
    "alerts",
    "Budget alerts not sent again because the same task or window, limit, threshold and kind "
    "was already alerted (remembered across restarts).",
)
QUEUE_DEPTH = MetricSpec(
    f"{PREFIX}queued_items",
    "gauge",
    "items",
    "Items waiting in a queue, by queue: storage (rows for the ClickHouse writer), forward "
    "(requests for the downstream OTLP endpoint), alerts (alert deliveries).",
    ("queue",),
)
SPOOL_SIZE = MetricSpec(
    f"{PREFIX}spool_bytes",
    "gauge",
    "bytes",
    "Size of the storage spool on disk (rows kept while ClickHouse is unreachable).",
)
INSERT_DURATION = MetricSpec(
    f"{PREFIX}insert_duration_seconds",
    "histogram",
    "seconds",
    "Time to write one batch of rows to ClickHouse.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
INGEST_DURATION = MetricSpec(
    f"{PREFIX}ingest_duration_seconds",
    "histogram",
    "seconds",
    "Time to handle one OTLP export request, from its body read to the answer.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)

METRICS: tuple[MetricSpec, ...] = (
    SPANS_RECEIVED,
    SPANS_REFUSED,
    SPANS_PRICED,
    SPANS_UNPRICED,
    REQUESTS,
    TASKS_ACTIVE,
    TASKS_EVICTED,
    KILLS,
    BUDGET_WARNINGS,
    ALERTS_SENT,
    ALERTS_FAILED,
    ALERTS_DROPPED,
    ALERT_RETRIES,
    ALERTS_DEDUPLICATED,
    QUEUE_DEPTH,
    SPOOL_SIZE,
    INSERT_DURATION,
    INGEST_DURATION,
)


def _counter(spec: MetricSpec, registry: CollectorRegistry) -> Counter:
    return Counter(spec.name, spec.help, spec.labels, unit=spec.unit, registry=registry)


def _gauge(spec: MetricSpec, registry: CollectorRegistry) -> Gauge:
    return Gauge(spec.name, spec.help, spec.labels, unit=spec.unit, registry=registry)


def _histogram(spec: MetricSpec, registry: CollectorRegistry) -> Histogram:
    assert spec.buckets is not None
    return Histogram(
        spec.name, spec.help, spec.labels, unit=spec.unit, buckets=spec.buckets, registry=registry
    )


class SelfMetrics:
    """Every collector self-metric, on a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.spans_received: Counter = _counter(SPANS_RECEIVED, r)
        self.spans_refused: Counter = _counter(SPANS_REFUSED, r)
        self.spans_priced: Counter = _counter(SPANS_PRICED, r)
        self.spans_unpriced: Counter = _counter(SPANS_UNPRICED, r)
        self.requests: Counter = _counter(REQUESTS, r)
        self.tasks_active: Gauge = _gauge(TASKS_ACTIVE, r)
        self.tasks_evicted: Counter = _counter(TASKS_EVICTED, r)
        self.kills: Counter = _counter(KILLS, r)
        self.budget_warnings: Counter = _counter(BUDGET_WARNINGS, r)
        self.alerts_sent: Counter = _counter(ALERTS_SENT, r)
        self.alerts_failed: Counter = _counter(ALERTS_FAILED, r)
        self.alerts_dropped: Counter = _counter(ALERTS_DROPPED, r)
        self.alert_retries: Counter = _counter(ALERT_RETRIES, r)
        self.alerts_deduplicated: Counter = _counter(ALERTS_DEDUPLICATED, r)
        self.queue_depth: Gauge = _gauge(QUEUE_DEPTH, r)
        self.spool_bytes: Gauge = _gauge(SPOOL_SIZE, r)
        self.insert_latency: Histogram = _histogram(INSERT_DURATION, r)
        self.ingest_latency: Histogram = _histogram(INGEST_DURATION, r)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition for a ``/metrics`` response: ``(body, content_type)``. Prometheus
        text format, or OpenMetrics when the ``Accept`` header asks for it."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
