-- One logical row per task (the rows of a task merge in the background; always read
-- with GROUP BY task_id and the column's own aggregate: sum, min, max).
--
-- Two feeds:
--   tasks_from_calls_mv  every llm_calls row: calls, errors, tokens, cost, models of the
--                        calls that carry this task id (in any process), and the budget
--                        state each call started in (tasks without a span of their own,
--                        trace tasks, get their state from there);
--   tasks_from_spans_mv  the task span "invoke_agent {name}" (otel_llm.tasks): its totals,
--                        outcome, budget state and limits.
--
-- The task span reports the totals its own process counted, under otel_llm.task.*
-- (never gen_ai.usage.*, so sums over spans count each call once):
--   reported_cost_usd (+ _input, _output, _cache_read, _cache_write, cache_savings)
--                        otel_llm.task.cost.usd, .input_usd, .output_usd,
--                        .cache_read_usd, .cache_write_usd, .cache_savings_usd
--   reported_*_tokens    otel_llm.task.usage.input_tokens, .output_tokens,
--                        .cache_read.input_tokens, .cache_creation.input_tokens,
--                        .reasoning.output_tokens
--   reported_iterations  otel_llm.task.iterations (model calls admitted)
--   reported_tool_calls  otel_llm.task.tool_calls
--   reported_unpriced_calls  otel_llm.task.unpriced_calls
--   task_duration_s      otel_llm.task.duration_s (the task's clock); task_duration_ns is
--                        the span's own duration
--   task_status          otel_llm.task.outcome (done | stopped | error), else the span status
--   stopped_by           otel_llm.task.stopped_by (the limit that stopped it)
--   task_kind            otel_llm.task.kind (explicit | trace | process)
--   parent_task_id       otel_llm.task.parent_id (nested tasks)
--   budget_max_*         otel_llm.budget.max_usd, .max_tokens, .max_iterations,
--                        .max_seconds, .max_tool_calls: the limits in force at the end
-- They differ from the llm_calls sums when the task has nested tasks (the span counts
-- their calls too; llm_calls rows carry the innermost task id) or calls in another
-- process (those are not on the span). reported_* are NULL when no task span arrived
-- (trace tasks have none).
--
-- Columns a view does not select take their defaults (0, '', NULL, []).
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
    reported_cost_usd SimpleAggregateFunction(max, Nullable(Float64)),
    budget_level SimpleAggregateFunction(max, UInt8),
    task_kind SimpleAggregateFunction(max, String),
    parent_task_id SimpleAggregateFunction(max, String),
    stopped_by SimpleAggregateFunction(max, String),
    task_duration_s SimpleAggregateFunction(max, Nullable(Float64)),
    reported_cost_input_usd SimpleAggregateFunction(max, Nullable(Float64)),
    reported_cost_output_usd SimpleAggregateFunction(max, Nullable(Float64)),
    reported_cost_cache_read_usd SimpleAggregateFunction(max, Nullable(Float64)),
    reported_cost_cache_write_usd SimpleAggregateFunction(max, Nullable(Float64)),
    reported_cache_savings_usd SimpleAggregateFunction(max, Nullable(Float64)),
    reported_input_tokens SimpleAggregateFunction(max, Nullable(UInt64)),
    reported_output_tokens SimpleAggregateFunction(max, Nullable(UInt64)),
    reported_cache_read_input_tokens SimpleAggregateFunction(max, Nullable(UInt64)),
    reported_cache_creation_input_tokens SimpleAggregateFunction(max, Nullable(UInt64)),
    reported_reasoning_output_tokens SimpleAggregateFunction(max, Nullable(UInt64)),
    reported_iterations SimpleAggregateFunction(max, Nullable(UInt64)),
    reported_tool_calls SimpleAggregateFunction(max, Nullable(UInt64)),
    reported_unpriced_calls SimpleAggregateFunction(max, Nullable(UInt64)),
    budget_max_usd SimpleAggregateFunction(max, Nullable(Float64)),
    budget_max_tokens SimpleAggregateFunction(max, Nullable(Float64)),
    budget_max_iterations SimpleAggregateFunction(max, Nullable(Float64)),
    budget_max_seconds SimpleAggregateFunction(max, Nullable(Float64)),
    budget_max_tool_calls SimpleAggregateFunction(max, Nullable(Float64))
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
    max(toUInt8(transform(toString(budget_state), ['ok', 'warn', 'exceeded', 'killed'], [1, 2, 3, 4], 0)))
        AS budget_level
FROM llm_calls
GROUP BY task_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS tasks_from_spans_mv
TO tasks
AS WITH
    SpanAttributes AS a,
    startsWith(SpanName, 'invoke_agent ') AS is_task_
SELECT
    a['otel_llm.task.id'] AS task_id,
    coalesce(nullIf(a['otel_llm.task.name'], ''), if(is_task_, substring(SpanName, 14), '')) AS task_name,
    toString(ServiceName) AS service_name,
    ResourceAttributes['service.version'] AS service_version,
    Timestamp AS first_seen,
    Timestamp + toIntervalNanosecond(Duration) AS last_seen,
    toUInt64(is_task_) AS task_spans,
    if(is_task_, Duration, 0) AS task_duration_ns,
    if(is_task_, coalesce(nullIf(a['otel_llm.task.outcome'], ''), toString(StatusCode)), '') AS task_status,
    if(is_task_, toFloat64OrNull(a['otel_llm.task.cost.usd']), NULL) AS reported_cost_usd,
    toUInt8(transform(a['otel_llm.budget.state'], ['ok', 'warn', 'exceeded', 'killed'], [1, 2, 3, 4], 0)) AS budget_level,
    if(is_task_, a['otel_llm.task.kind'], '') AS task_kind,
    if(is_task_, a['otel_llm.task.parent_id'], '') AS parent_task_id,
    if(is_task_, a['otel_llm.task.stopped_by'], '') AS stopped_by,
    if(is_task_, toFloat64OrNull(a['otel_llm.task.duration_s']), NULL) AS task_duration_s,
    if(is_task_, toFloat64OrNull(a['otel_llm.task.cost.input_usd']), NULL) AS reported_cost_input_usd,
    if(is_task_, toFloat64OrNull(a['otel_llm.task.cost.output_usd']), NULL) AS reported_cost_output_usd,
    if(is_task_, toFloat64OrNull(a['otel_llm.task.cost.cache_read_usd']), NULL) AS reported_cost_cache_read_usd,
    if(is_task_, toFloat64OrNull(a['otel_llm.task.cost.cache_write_usd']), NULL) AS reported_cost_cache_write_usd,
    if(is_task_, toFloat64OrNull(a['otel_llm.task.cost.cache_savings_usd']), NULL) AS reported_cache_savings_usd,
    if(is_task_, toUInt64OrNull(a['otel_llm.task.usage.input_tokens']), NULL) AS reported_input_tokens,
    if(is_task_, toUInt64OrNull(a['otel_llm.task.usage.output_tokens']), NULL) AS reported_output_tokens,
    if(is_task_, toUInt64OrNull(a['otel_llm.task.usage.cache_read.input_tokens']), NULL)
        AS reported_cache_read_input_tokens,
    if(is_task_, toUInt64OrNull(a['otel_llm.task.usage.cache_creation.input_tokens']), NULL)
        AS reported_cache_creation_input_tokens,
    if(is_task_, toUInt64OrNull(a['otel_llm.task.usage.reasoning.output_tokens']), NULL)
        AS reported_reasoning_output_tokens,
    if(is_task_, toUInt64OrNull(a['otel_llm.task.iterations']), NULL) AS reported_iterations,
    if(is_task_, toUInt64OrNull(a['otel_llm.task.tool_calls']), NULL) AS reported_tool_calls,
    if(is_task_, toUInt64OrNull(a['otel_llm.task.unpriced_calls']), NULL) AS reported_unpriced_calls,
    toFloat64OrNull(a['otel_llm.budget.max_usd']) AS budget_max_usd,
    toFloat64OrNull(a['otel_llm.budget.max_tokens']) AS budget_max_tokens,
    toFloat64OrNull(a['otel_llm.budget.max_iterations']) AS budget_max_iterations,
    toFloat64OrNull(a['otel_llm.budget.max_seconds']) AS budget_max_seconds,
    toFloat64OrNull(a['otel_llm.budget.max_tool_calls']) AS budget_max_tool_calls
FROM otel_traces
WHERE is_task_ AND a['otel_llm.task.id'] != '';
