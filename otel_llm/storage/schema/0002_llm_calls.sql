-- One row per inference span (a model call), typed for fast dashboard queries.
--
-- Filled by llm_calls_mv from every insert into otel_traces, whoever wrote it: otel-llm,
-- the upstream ClickHouse exporter, or a collector receiving spans from other
-- instrumentations. Attribute names are mapped where instrumentations differ (first
-- non-empty value wins, in the order listed):
--
--   provider        gen_ai.provider.name, gen_ai.system (older semconv, traceloop,
--                   OpenLIT; lower-cased: traceloop writes "Anthropic")
--   input tokens    gen_ai.usage.input_tokens, gen_ai.usage.prompt_tokens (traceloop
--                   before semconv 1.26, OpenLIT before 1.x), llm.usage.prompt_tokens
--   output tokens   gen_ai.usage.output_tokens, gen_ai.usage.completion_tokens,
--                   llm.usage.completion_tokens
--   cache read      gen_ai.usage.cache_read.input_tokens, gen_ai.usage.cache_read_input_tokens
--                   (traceloop, OpenLIT), llm.usage.cache_read_input_tokens,
--                   gen_ai.usage.input_tokens_details.cached
--   cache write     gen_ai.usage.cache_creation.input_tokens,
--                   gen_ai.usage.cache_creation_input_tokens (traceloop, OpenLIT),
--                   gen_ai.usage.cache_write.input_tokens (Anthropic SDK spans),
--                   llm.usage.cache_creation_input_tokens
--   reasoning       gen_ai.usage.reasoning.output_tokens, gen_ai.usage.reasoning_tokens
--   stream          gen_ai.request.stream, gen_ai.request.is_stream (OpenLIT),
--                   llm.is_streaming (traceloop), gen_ai.request.streaming
--   TTFT (seconds)  gen_ai.response.time_to_first_chunk,
--                   gen_ai.server.time_to_first_token (OpenLIT); NULL unless streamed
--   cost (USD)      otel_llm.cost.usd, gen_ai.usage.cost (OpenLIT)
--   budget state    otel_llm.budget.state (the task's state when the call started)
--   task            otel_llm.task.id (span attribute, also what the baggage span
--                   processor copies from W3C baggage), baggage.otel_llm.task.id;
--                   without one the trace is the task: 'trace:' || TraceId
--
-- input_tokens is ALL input, cached included (semconv). Instrumentations disagree:
--   * otel-llm and semconv-conforming spans: already inclusive.
--   * traceloop: OpenAI prompt_tokens is inclusive; its Anthropic instrumentation sums
--     input_tokens + cache_read + cache_creation itself: inclusive.
--   * OpenLIT: OpenAI inclusive; Anthropic writes the API's input_tokens, which
--     EXCLUDES cache reads and writes: we add them back.
--   * Any span whose input is smaller than its cache reads + writes cannot be
--     inclusive: we add them back too.
-- With no 5m/1h split reported, every cache write counts as 5m (the API default TTL).
--
-- Duplicates: otel-llm's writer inserts with an insert_deduplication_token and
-- deduplicate_blocks_in_dependent_materialized_views = 1, so a re-sent batch is dropped
-- here too (non_replicated_deduplication_window). ReplacingMergeTree on the span's key
-- also folds duplicates that reach the table another way, at merge time.

CREATE TABLE IF NOT EXISTS llm_calls
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
    INDEX idx_task_id task_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (toStartOfHour(timestamp), service_name, task_id, span_id)
TTL toDateTime(timestamp) + toIntervalDay(365)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000;

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
    coalesce(nullIf(a['gen_ai.operation.name'], ''), a['llm.request.type']) AS operation_
SELECT
    Timestamp AS timestamp,
    TraceId AS trace_id,
    SpanId AS span_id,
    ParentSpanId AS parent_span_id,
    coalesce(nullIf(a['otel_llm.task.id'], ''), nullIf(a['baggage.otel_llm.task.id'], ''), concat('trace:', TraceId)) AS task_id,
    coalesce(nullIf(a['otel_llm.task.name'], ''), a['traceloop.workflow.name']) AS task_name,
    toUInt32OrZero(a['otel_llm.task.iteration']) AS iteration,
    ServiceName AS service_name,
    ResourceAttributes['service.version'] AS service_version,
    source_ AS source,
    operation_ AS operation,
    provider_ AS provider,
    a['gen_ai.request.model'] AS request_model,
    coalesce(nullIf(a['gen_ai.response.model'], ''), a['gen_ai.request.model']) AS response_model,
    a['gen_ai.response.id'] AS response_id,
    a['server.address'] AS server_address,
    if((source_ = 'openlit' AND provider_ = 'anthropic') OR raw_input_ < cache_read_ + cache_write_,
        raw_input_ + cache_read_ + cache_write_, raw_input_) AS input_tokens,
    toUInt64OrZero(coalesce(nullIf(a['gen_ai.usage.output_tokens'], ''), nullIf(a['gen_ai.usage.completion_tokens'], ''),
        a['llm.usage.completion_tokens'])) AS output_tokens,
    cache_read_ AS cache_read_input_tokens,
    cache_write_ AS cache_creation_input_tokens,
    if(has_split_, toUInt64OrZero(a['otel_llm.usage.cache_creation.5m_input_tokens']), cache_write_) AS cache_creation_5m_input_tokens,
    if(has_split_, toUInt64OrZero(a['otel_llm.usage.cache_creation.1h_input_tokens']), 0) AS cache_creation_1h_input_tokens,
    toUInt64OrZero(coalesce(nullIf(a['gen_ai.usage.reasoning.output_tokens'], ''), a['gen_ai.usage.reasoning_tokens']))
        AS reasoning_output_tokens,
    toFloat64OrZero(coalesce(nullIf(a['otel_llm.cost.usd'], ''), a['gen_ai.usage.cost'])) AS cost_usd,
    toFloat64OrZero(a['otel_llm.cost.input_usd']) AS cost_input_usd,
    toFloat64OrZero(a['otel_llm.cost.output_usd']) AS cost_output_usd,
    toFloat64OrZero(a['otel_llm.cost.cache_read_usd']) AS cost_cache_read_usd,
    toFloat64OrZero(a['otel_llm.cost.cache_write_usd']) AS cost_cache_write_usd,
    toFloat64OrZero(a['otel_llm.cost.cache_savings_usd']) AS cache_savings_usd,
    multiIf(mapContains(a, 'otel_llm.price.source'), a['otel_llm.price.source'],
        mapContains(a, 'gen_ai.usage.cost'), 'openlit', '') AS price_source,
    Duration AS duration_ns,
    if(stream_ AND ttft_raw_ != '', toFloat64OrNull(ttft_raw_), NULL) AS ttft_seconds,
    stream_ AS stream,
    multiIf(StatusCode IN ('Error', 'STATUS_CODE_ERROR'), 'Error', StatusCode IN ('Ok', 'STATUS_CODE_OK'), 'Ok', 'Unset')
        AS status_code,
    a['error.type'] AS error_type,
    coalesce(nullIf(a['gen_ai.response.finish_reasons'], ''), nullIf(a['gen_ai.response.finish_reason'], ''),
        a['llm.response.finish_reason']) AS finish_reasons,
    a['otel_llm.prompt.prefix_hash'] AS prefix_hash,
    a['otel_llm.cache.miss_reason'] AS cache_miss_reason,
    toUInt64OrZero(a['otel_llm.cache.missed_input_tokens']) AS cache_missed_input_tokens,
    a['otel_llm.budget.state'] AS budget_state
FROM otel_traces
WHERE (a['gen_ai.request.model'] != '' OR a['gen_ai.response.model'] != '')
    AND operation_ NOT IN ('invoke_agent', 'create_agent', 'execute_tool')
    AND (SpanKind IN ('Client', 'SPAN_KIND_CLIENT')
        OR mapContains(a, 'gen_ai.usage.input_tokens') OR mapContains(a, 'gen_ai.usage.prompt_tokens')
        OR mapContains(a, 'gen_ai.usage.output_tokens') OR mapContains(a, 'gen_ai.usage.completion_tokens'));
