-- Budget warnings, kills, grants and alerts. Two writers:
--   * the collector's budget processor and alerting (source 'collector', one row per
--     decision or notification, event_id unique), through BudgetEventWriter;
--   * budget_events_from_spans_mv (source 'span'): the events otel-llm's guard puts on
--     the task span "invoke_agent {name}" (otel_llm.tasks), so agent-side guards that
--     never talk to a collector show up too. One row per span event named
--       otel_llm.budget.warn      a limit's warn_at fraction was crossed (once per limit value)
--       otel_llm.budget.exceeded  a limit was reached (once per limit value)
--       otel_llm.budget.killed    the guard refused a model call
--       otel_llm.budget.grant     on_exceed granted more budget
--     kind = the name's last part; timestamp = the event's own time; limit_name,
--     spent and limit_value from the event's otel_llm.budget.limit, .spent and
--     .limit_value (a grant has no limit_value: it carries the increment as
--     otel_llm.budget.<limit>, which is used instead); event_id = SpanId || ':' ||
--     the event's position on the span; attributes = the event's attributes;
--     message = the span's status message for a kill (the BudgetExceeded text).
--     The otel_llm.budget.state attribute alone (inference spans carry the state at
--     their start) makes no event.
--
-- kind: warn | exceeded | killed | grant | alert_sent | alert_failed.

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
AS WITH
    SpanAttributes AS a,
    event.2 AS name_,
    event.3 AS attrs_,
    attrs_['otel_llm.budget.limit'] AS limit_
SELECT
    event.1 AS timestamp,
    concat(SpanId, ':', toString(event.4)) AS event_id,
    substring(name_, 17) AS kind,
    a['otel_llm.task.id'] AS task_id,
    a['otel_llm.task.name'] AS task_name,
    ServiceName AS service_name,
    arrayStringConcat(JSONExtract(a['otel_llm.budget.policies'], 'Array(String)'), ',') AS policy,
    limit_ AS limit_name,
    toFloat64OrZero(coalesce(nullIf(attrs_['otel_llm.budget.limit_value'], ''),
        attrs_[concat('otel_llm.budget.', limit_)])) AS limit_value,
    toFloat64OrZero(attrs_['otel_llm.budget.spent']) AS spent,
    '' AS channel,
    if(name_ = 'otel_llm.budget.killed', StatusMessage, '') AS message,
    TraceId AS trace_id,
    SpanId AS span_id,
    'span' AS source,
    attrs_ AS attributes
FROM otel_traces
ARRAY JOIN arrayZip(Events.Timestamp, Events.Name, Events.Attributes, arrayEnumerate(Events.Name)) AS event
WHERE a['otel_llm.task.id'] != ''
    AND name_ IN ('otel_llm.budget.warn', 'otel_llm.budget.exceeded', 'otel_llm.budget.killed', 'otel_llm.budget.grant');
