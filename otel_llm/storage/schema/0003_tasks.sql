-- One logical row per task (the rows of a task merge in the background; always read
-- with GROUP BY task_id and the column's own aggregate: sum, min, max).
--
-- Two feeds:
--   tasks_from_calls_mv  every llm_calls row: tokens, cost, calls, errors, models;
--   tasks_from_spans_mv  the task span ("invoke_agent {name}", or any span carrying
--                        otel_llm.budget.state): its duration, outcome
--                        (otel_llm.task.outcome, else the span status), its own total
--                        (otel_llm.task.cost.usd) and budget state.
--
-- budget_level orders the budget states so max() keeps the worst:
--   0 none reported, 1 ok, 2 warn, 3 exceeded, 4 killed.
-- Partitioned by the month of each row's first_seen: a task that crosses a month has
-- a row in each, which GROUP BY task_id adds back up.

CREATE TABLE IF NOT EXISTS tasks
(
    task_id String CODEC(ZSTD(1)),
    task_name SimpleAggregateFunction(max, String),
    service_name SimpleAggregateFunction(max, String),
    service_version SimpleAggregateFunction(max, String),
    first_seen SimpleAggregateFunction(min, DateTime64(9)),
    last_seen SimpleAggregateFunction(max, DateTime64(9)),
    calls SimpleAggregateFunction(sum, UInt64),
    errors SimpleAggregateFunction(sum, UInt64),
    max_iteration SimpleAggregateFunction(max, UInt32),
    input_tokens SimpleAggregateFunction(sum, UInt64),
    output_tokens SimpleAggregateFunction(sum, UInt64),
    cache_read_input_tokens SimpleAggregateFunction(sum, UInt64),
    cache_creation_input_tokens SimpleAggregateFunction(sum, UInt64),
    reasoning_output_tokens SimpleAggregateFunction(sum, UInt64),
    cost_usd SimpleAggregateFunction(sum, Float64),
    cache_savings_usd SimpleAggregateFunction(sum, Float64),
    models SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    task_spans SimpleAggregateFunction(sum, UInt64),
    task_duration_ns SimpleAggregateFunction(max, UInt64),
    task_status SimpleAggregateFunction(max, String),
    reported_cost_usd SimpleAggregateFunction(max, Float64),
    budget_level SimpleAggregateFunction(max, UInt8)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(first_seen)
ORDER BY (task_id)
TTL toDateTime(first_seen) + toIntervalDay(365)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS tasks_from_calls_mv
TO tasks
AS SELECT
    task_id,
    max(task_name) AS task_name,
    max(toString(service_name)) AS service_name,
    max(toString(service_version)) AS service_version,
    min(timestamp) AS first_seen,
    max(timestamp + toIntervalNanosecond(duration_ns)) AS last_seen,
    count() AS calls,
    countIf(status_code = 'Error') AS errors,
    max(iteration) AS max_iteration,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_input_tokens) AS cache_read_input_tokens,
    sum(cache_creation_input_tokens) AS cache_creation_input_tokens,
    sum(reasoning_output_tokens) AS reasoning_output_tokens,
    sum(cost_usd) AS cost_usd,
    sum(cache_savings_usd) AS cache_savings_usd,
    groupUniqArray(toString(response_model)) AS models,
    toUInt64(0) AS task_spans,
    toUInt64(0) AS task_duration_ns,
    '' AS task_status,
    toFloat64(0) AS reported_cost_usd,
    toUInt8(0) AS budget_level
FROM llm_calls
GROUP BY task_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS tasks_from_spans_mv
TO tasks
AS WITH SpanAttributes AS a
SELECT
    a['otel_llm.task.id'] AS task_id,
    coalesce(nullIf(a['otel_llm.task.name'], ''), if(startsWith(SpanName, 'invoke_agent '), substring(SpanName, 14), ''))
        AS task_name,
    toString(ServiceName) AS service_name,
    ResourceAttributes['service.version'] AS service_version,
    Timestamp AS first_seen,
    Timestamp + toIntervalNanosecond(Duration) AS last_seen,
    toUInt64(0) AS calls,
    toUInt64(0) AS errors,
    toUInt32(0) AS max_iteration,
    toUInt64(0) AS input_tokens,
    toUInt64(0) AS output_tokens,
    toUInt64(0) AS cache_read_input_tokens,
    toUInt64(0) AS cache_creation_input_tokens,
    toUInt64(0) AS reasoning_output_tokens,
    toFloat64(0) AS cost_usd,
    toFloat64(0) AS cache_savings_usd,
    CAST([], 'Array(String)') AS models,
    toUInt64(startsWith(SpanName, 'invoke_agent ')) AS task_spans,
    if(startsWith(SpanName, 'invoke_agent '), Duration, 0) AS task_duration_ns,
    if(startsWith(SpanName, 'invoke_agent '), coalesce(nullIf(a['otel_llm.task.outcome'], ''), toString(StatusCode)), '')
        AS task_status,
    if(startsWith(SpanName, 'invoke_agent '),
        toFloat64OrZero(coalesce(nullIf(a['otel_llm.task.cost.usd'], ''), a['otel_llm.cost.usd'])), 0) AS reported_cost_usd,
    toUInt8(transform(a['otel_llm.budget.state'], ['ok', 'warn', 'exceeded', 'killed'], [1, 2, 3, 4], 0)) AS budget_level
FROM otel_traces
WHERE a['otel_llm.task.id'] != ''
    AND (startsWith(SpanName, 'invoke_agent ') OR a['otel_llm.budget.state'] != '');
