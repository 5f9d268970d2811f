-- Budget warnings, kills and alerts. Written by the collector's budget processor and
-- alerting (source 'collector', one row per decision or notification, event_id unique),
-- and derived from spans that carry otel_llm.budget.state warn/exceeded/killed
-- (source 'span', event_id = SpanId || ':' || state), so agent-side guards that
-- never talk to a collector still show up.
--
-- kind: warn | exceeded | killed | alert_sent | alert_failed.

CREATE TABLE IF NOT EXISTS budget_events
(
    timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    event_id String,
    kind LowCardinality(String),
    task_id String CODEC(ZSTD(1)),
    task_name LowCardinality(String),
    service_name LowCardinality(String),
    policy LowCardinality(String),
    limit_name LowCardinality(String),
    limit_value Float64,
    spent Float64,
    channel LowCardinality(String),
    message String CODEC(ZSTD(1)),
    trace_id String CODEC(ZSTD(1)),
    span_id String CODEC(ZSTD(1)),
    source LowCardinality(String),
    attributes Map(LowCardinality(String), String) CODEC(ZSTD(1))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (toStartOfDay(timestamp), task_id, event_id)
TTL toDateTime(timestamp) + toIntervalDay(365)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS budget_events_from_spans_mv
TO budget_events
AS WITH SpanAttributes AS a, a['otel_llm.budget.state'] AS state_
SELECT
    Timestamp + toIntervalNanosecond(Duration) AS timestamp,
    concat(SpanId, ':', state_) AS event_id,
    state_ AS kind,
    a['otel_llm.task.id'] AS task_id,
    a['otel_llm.task.name'] AS task_name,
    ServiceName AS service_name,
    a['otel_llm.budget.policy'] AS policy,
    coalesce(nullIf(a['otel_llm.budget.limit'], ''), a['otel_llm.task.stopped_by']) AS limit_name,
    toFloat64OrZero(a['otel_llm.budget.limit_value']) AS limit_value,
    toFloat64OrZero(a['otel_llm.budget.spent']) AS spent,
    '' AS channel,
    StatusMessage AS message,
    TraceId AS trace_id,
    SpanId AS span_id,
    'span' AS source,
    mapFilter((k, v) -> startsWith(k, 'otel_llm.budget.'), a) AS attributes
FROM otel_traces
WHERE state_ IN ('warn', 'exceeded', 'killed');
