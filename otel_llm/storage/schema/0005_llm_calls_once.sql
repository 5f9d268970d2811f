-- llm_calls, version 5: one row per model call, the request hash, and the bare trace id
-- as the task of calls without one.
--
-- 1. One row per model call. Several spans can describe one call: ours beside
--    pydantic-ai's, LangSmith's or OpenLIT's, all wrapping the same SDK request. They
--    share the trace and the provider's response id (gen_ai.response.id), so the call's
--    identity is
--        (trace_id, call_key)   call_key = 'response:' || response_id
--                               when the span has a response id, else 'span:' || span_id
--    and llm_calls is a ReplacingMergeTree ordered by exactly that key, versioned by
--    `richness`: of the spans of one call the richest is kept, the others fold away.
--    Spans WITHOUT a response id (errors before a response, instrumentations that do not
--    record it) are each their own call: nothing else identifies the request they made,
--    and guessing by time and model would fold distinct calls together.
--
--        richness = 64 * priced (a cost or a price source)
--                 + 32 * written by otel-llm (the whole span contract)
--                 + 16 * carries its task id (span attribute or baggage), not the fallback
--                 +  1 per figure present: input, output, cache-read, cache-write and
--                    reasoning tokens, TTFT, prefix hash, request hash, iteration
--
--    Equal richness keeps the row inserted last. Background merges fold duplicates
--    eventually; every query reads `llm_calls FINAL`, which folds them at read time,
--    across partitions too (do_not_merge_across_partitions_select_final is off), so a
--    call is counted once even when its spans straddle midnight.
--    Partitioned by day (24-hour windows read 1-2 partitions; the key is not time-first,
--    so a minmax index on timestamp skips the rest of a partition's granules).
--
--    The tasks table is fed from llm_calls inserts (tasks_from_calls_mv), before any
--    folding: its calls/tokens/cost sums count a duplicated call once per span. Per-task
--    figures in the shipped queries are therefore summed from llm_calls FINAL; tasks
--    contributes what only task spans know (outcome, reported totals, budget, kind).
--
-- 2. request_hash: otel_llm.prompt.request_hash, the digest of everything that decides
--    the answer (model, messages, tools, sampling parameters). The content is never
--    stored, only the digest; equal hashes are exact-cache opportunities.
--
-- 3. The task of a call without otel_llm.task.id (span attribute or baggage) is its
--    trace: task_id = the trace id, 32 lowercase hex digits, no prefix, as the agent
--    side and the collector name it (one convention, so a trace never becomes two tasks).
--    Rows written before this migration had 'trace:' || TraceId; they are rewritten
--    here, in llm_calls and in tasks.
--
-- Re-running is safe: the copy reads only columns both versions have and the
-- trace-prefix rewrite is a no-op on rewritten rows. On a cluster, run the copy on one
-- replica of each shard.

DROP VIEW IF EXISTS llm_calls_mv;

DROP VIEW IF EXISTS tasks_from_calls_mv;

CREATE OR REPLACE TABLE llm_calls
(
    timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    trace_id String CODEC(ZSTD(1)),
    span_id String CODEC(ZSTD(1)),
    parent_span_id String CODEC(ZSTD(1)),
    task_id String CODEC(ZSTD(1)),
    task_name LowCardinality(String),
    iteration UInt32,
    service_name LowCardinality(String),
    service_version LowCardinality(String),
    source LowCardinality(String),
    operation LowCardinality(String),
    provider LowCardinality(String),
    request_model LowCardinality(String),
    response_model LowCardinality(String),
    response_id String CODEC(ZSTD(1)),
    server_address LowCardinality(String),
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_input_tokens UInt64,
    cache_creation_input_tokens UInt64,
    cache_creation_5m_input_tokens UInt64,
    cache_creation_1h_input_tokens UInt64,
    reasoning_output_tokens UInt64,
    cost_usd Float64,
    cost_input_usd Float64,
    cost_output_usd Float64,
    cost_cache_read_usd Float64,
    cost_cache_write_usd Float64,
    cache_savings_usd Float64,
    price_source LowCardinality(String),
    duration_ns UInt64 CODEC(T64, ZSTD(1)),
    ttft_seconds Nullable(Float64),
    stream Bool,
    status_code LowCardinality(String),
    error_type LowCardinality(String),
    finish_reasons LowCardinality(String),
    prefix_hash LowCardinality(String),
    cache_miss_reason LowCardinality(String),
    cache_missed_input_tokens UInt64,
    budget_state LowCardinality(String),
    request_hash String CODEC(ZSTD(1)),
    call_key String CODEC(ZSTD(1)),
    richness UInt8,
    INDEX idx_timestamp timestamp TYPE minmax GRANULARITY 1,
    INDEX idx_task_id task_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_request_hash request_hash TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(richness)
PARTITION BY toDate(timestamp)
ORDER BY (trace_id, call_key)
TTL toDateTime(timestamp) + toIntervalDay(365)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000
AS WITH
    startsWith(task_id, 'trace:') AS fallback_
SELECT
    timestamp, trace_id, span_id, parent_span_id,
    if(fallback_, substring(task_id, 7), task_id) AS task_id,
    task_name, iteration, service_name, service_version, source, operation, provider, request_model,
    response_model, response_id, server_address, input_tokens, output_tokens, cache_read_input_tokens,
    cache_creation_input_tokens, cache_creation_5m_input_tokens, cache_creation_1h_input_tokens,
    reasoning_output_tokens, cost_usd, cost_input_usd, cost_output_usd, cost_cache_read_usd,
    cost_cache_write_usd, cache_savings_usd, price_source, duration_ns, ttft_seconds, stream, status_code,
    error_type, finish_reasons, prefix_hash, cache_miss_reason, cache_missed_input_tokens, budget_state,
    '' AS request_hash,
    if(response_id != '', concat('response:', response_id), concat('span:', span_id)) AS call_key,
    toUInt8(64 * (cost_usd != 0 OR price_source != '') + 32 * (source = 'otel_llm') + 16 * (NOT fallback_)
        + (input_tokens > 0) + (output_tokens > 0) + (cache_read_input_tokens > 0)
        + (cache_creation_input_tokens > 0) + (reasoning_output_tokens > 0) + (ttft_seconds IS NOT NULL)
        + (prefix_hash != '') + (iteration > 0)) AS richness
FROM llm_calls;

-- Trace tasks of rows written before this migration, re-keyed on the bare trace id.
-- (The filter sits in a subquery: beside the REPLACE it would read the new task_id.)
INSERT INTO tasks
SELECT * REPLACE (substring(task_id, 7) AS task_id)
FROM (SELECT * FROM tasks WHERE startsWith(task_id, 'trace:'));

ALTER TABLE tasks DELETE WHERE startsWith(task_id, 'trace:') SETTINGS mutations_sync = 2;

CREATE MATERIALIZED VIEW IF NOT EXISTS llm_calls_mv
TO llm_calls
AS WITH
    SpanAttributes AS a,
    lower(coalesce(nullIf(a['gen_ai.provider.name'], ''), a['gen_ai.system'])) AS provider_,
    multiIf(
        mapContains(a, 'otel_llm.cost.usd') OR startsWith(ScopeName, 'otel_llm'), 'otel_llm',
        startsWith(ScopeName, 'openlit') OR ResourceAttributes['telemetry.sdk.name'] = 'openlit'
            OR mapContains(a, 'gen_ai.usage.cost'), 'openlit',
        mapContains(a, 'llm.request.type') OR mapContains(a, 'llm.usage.total_tokens')
            OR mapContains(a, 'gen_ai.usage.prompt_tokens') OR startsWith(ScopeName, 'opentelemetry.instrumentation.')
            AND mapContains(a, 'gen_ai.system'), 'traceloop',
        'semconv') AS source_,
    toUInt64OrZero(coalesce(nullIf(a['gen_ai.usage.input_tokens'], ''), nullIf(a['gen_ai.usage.prompt_tokens'], ''),
        a['llm.usage.prompt_tokens'])) AS raw_input_,
    toUInt64OrZero(coalesce(nullIf(a['gen_ai.usage.cache_read.input_tokens'], ''),
        nullIf(a['gen_ai.usage.cache_read_input_tokens'], ''), nullIf(a['llm.usage.cache_read_input_tokens'], ''),
        a['gen_ai.usage.input_tokens_details.cached'])) AS cache_read_,
    toUInt64OrZero(coalesce(nullIf(a['gen_ai.usage.cache_creation.input_tokens'], ''),
        nullIf(a['gen_ai.usage.cache_creation_input_tokens'], ''), nullIf(a['gen_ai.usage.cache_write.input_tokens'], ''),
        a['llm.usage.cache_creation_input_tokens'])) AS cache_write_,
    mapContains(a, 'otel_llm.usage.cache_creation.5m_input_tokens')
        OR mapContains(a, 'otel_llm.usage.cache_creation.1h_input_tokens') AS has_split_,
    lower(coalesce(nullIf(a['gen_ai.request.stream'], ''), nullIf(a['gen_ai.request.is_stream'], ''),
        nullIf(a['llm.is_streaming'], ''), a['gen_ai.request.streaming'])) IN ('true', '1') AS stream_,
    coalesce(nullIf(a['gen_ai.response.time_to_first_chunk'], ''), nullIf(a['gen_ai.server.time_to_first_token'], '')) AS ttft_raw_,
    coalesce(nullIf(a['gen_ai.operation.name'], ''), a['llm.request.type']) AS operation_,
    coalesce(nullIf(a['otel_llm.task.id'], ''), a['baggage.otel_llm.task.id']) AS task_attr_,
    if((source_ = 'openlit' AND provider_ = 'anthropic') OR raw_input_ < cache_read_ + cache_write_,
        raw_input_ + cache_read_ + cache_write_, raw_input_) AS input_,
    toUInt64OrZero(coalesce(nullIf(a['gen_ai.usage.output_tokens'], ''), nullIf(a['gen_ai.usage.completion_tokens'], ''),
        a['llm.usage.completion_tokens'])) AS output_,
    toUInt64OrZero(coalesce(nullIf(a['gen_ai.usage.reasoning.output_tokens'], ''), a['gen_ai.usage.reasoning_tokens']))
        AS reasoning_,
    toFloat64OrZero(coalesce(nullIf(a['otel_llm.cost.usd'], ''), a['gen_ai.usage.cost'])) AS cost_,
    multiIf(mapContains(a, 'otel_llm.price.source'), a['otel_llm.price.source'],
        mapContains(a, 'gen_ai.usage.cost'), 'openlit', '') AS price_source_,
    if(stream_ AND ttft_raw_ != '', toFloat64OrNull(ttft_raw_), NULL) AS ttft_,
    toUInt32OrZero(a['otel_llm.task.iteration']) AS iteration_
SELECT
    Timestamp AS timestamp,
    TraceId AS trace_id,
    SpanId AS span_id,
    ParentSpanId AS parent_span_id,
    if(task_attr_ != '', task_attr_, lower(TraceId)) AS task_id,
    coalesce(nullIf(a['otel_llm.task.name'], ''), a['traceloop.workflow.name']) AS task_name,
    iteration_ AS iteration,
    ServiceName AS service_name,
    ResourceAttributes['service.version'] AS service_version,
    source_ AS source,
    operation_ AS operation,
    provider_ AS provider,
    a['gen_ai.request.model'] AS request_model,
    coalesce(nullIf(a['gen_ai.response.model'], ''), a['gen_ai.request.model']) AS response_model,
    a['gen_ai.response.id'] AS response_id,
    a['server.address'] AS server_address,
    input_ AS input_tokens,
    output_ AS output_tokens,
    cache_read_ AS cache_read_input_tokens,
    cache_write_ AS cache_creation_input_tokens,
    if(has_split_, toUInt64OrZero(a['otel_llm.usage.cache_creation.5m_input_tokens']), cache_write_) AS cache_creation_5m_input_tokens,
    if(has_split_, toUInt64OrZero(a['otel_llm.usage.cache_creation.1h_input_tokens']), 0) AS cache_creation_1h_input_tokens,
    reasoning_ AS reasoning_output_tokens,
    cost_ AS cost_usd,
    toFloat64OrZero(a['otel_llm.cost.input_usd']) AS cost_input_usd,
    toFloat64OrZero(a['otel_llm.cost.output_usd']) AS cost_output_usd,
    toFloat64OrZero(a['otel_llm.cost.cache_read_usd']) AS cost_cache_read_usd,
    toFloat64OrZero(a['otel_llm.cost.cache_write_usd']) AS cost_cache_write_usd,
    toFloat64OrZero(a['otel_llm.cost.cache_savings_usd']) AS cache_savings_usd,
    price_source_ AS price_source,
    Duration AS duration_ns,
    ttft_ AS ttft_seconds,
    stream_ AS stream,
    multiIf(StatusCode IN ('Error', 'STATUS_CODE_ERROR'), 'Error', StatusCode IN ('Ok', 'STATUS_CODE_OK'), 'Ok', 'Unset')
        AS status_code,
    a['error.type'] AS error_type,
    coalesce(nullIf(a['gen_ai.response.finish_reasons'], ''), nullIf(a['gen_ai.response.finish_reason'], ''),
        a['llm.response.finish_reason']) AS finish_reasons,
    a['otel_llm.prompt.prefix_hash'] AS prefix_hash,
    a['otel_llm.cache.miss_reason'] AS cache_miss_reason,
    toUInt64OrZero(a['otel_llm.cache.missed_input_tokens']) AS cache_missed_input_tokens,
    a['otel_llm.budget.state'] AS budget_state,
    a['otel_llm.prompt.request_hash'] AS request_hash,
    if(a['gen_ai.response.id'] != '', concat('response:', a['gen_ai.response.id']), concat('span:', SpanId)) AS call_key,
    toUInt8(64 * (cost_ != 0 OR price_source_ != '') + 32 * (source_ = 'otel_llm') + 16 * (task_attr_ != '')
        + (input_ > 0) + (output_ > 0) + (cache_read_ > 0) + (cache_write_ > 0) + (reasoning_ > 0)
        + (ttft_ IS NOT NULL) + (a['otel_llm.prompt.prefix_hash'] != '') + (a['otel_llm.prompt.request_hash'] != '')
        + (iteration_ > 0)) AS richness
FROM otel_traces
WHERE (a['gen_ai.request.model'] != '' OR a['gen_ai.response.model'] != '')
    AND operation_ NOT IN ('invoke_agent', 'create_agent', 'execute_tool')
    -- A call the SDK refused before any request left the process is no model call.
    AND a['otel_llm.call.sent'] != 'false'
    AND (SpanKind IN ('Client', 'SPAN_KIND_CLIENT')
        OR mapContains(a, 'gen_ai.usage.input_tokens') OR mapContains(a, 'gen_ai.usage.prompt_tokens')
        OR mapContains(a, 'gen_ai.usage.output_tokens') OR mapContains(a, 'gen_ai.usage.completion_tokens'));

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

-- Prices per million tokens of the models seen in llm_calls, from genai-prices through
-- otel_llm.pricing (never a hand-kept table), written by otel_llm.storage.prices.refresh
-- (the report, `otel-llm grafana provision` and the demo call it). Queries that compare
-- models by price (escalations) join it; read it with FINAL.
CREATE TABLE IF NOT EXISTS model_prices
(
    provider LowCardinality(String),
    model LowCardinality(String),
    input_usd_per_mtok Float64,
    output_usd_per_mtok Float64,
    source LowCardinality(String),
    loaded_at DateTime64(3)
)
ENGINE = ReplacingMergeTree(loaded_at)
ORDER BY (provider, model);
