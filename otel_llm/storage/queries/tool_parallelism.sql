-- Tool calls: batches (the tools a task started between two model calls, which the
-- model asked for together), how many ran one after another, the seconds that running
-- them in parallel would have saved (sum minus the longest), and the mean parallelism
-- (busy seconds / wall seconds). From the task spans' otel_llm.task.tool_* totals.
SELECT
    toString(ServiceName) AS service,
    ResourceAttributes['service.version'] AS version,
    count() AS tasks,
    sum(toUInt64OrZero(SpanAttributes['otel_llm.task.tool_calls'])) AS tool_calls,
    sum(toUInt64OrZero(SpanAttributes['otel_llm.task.tool_batches'])) AS tool_batches,
    sum(toUInt64OrZero(SpanAttributes['otel_llm.task.tool_batches.sequential'])) AS sequential_batches,
    round(sum(toFloat64OrZero(SpanAttributes['otel_llm.task.tool_saveable_s'])), 3) AS sequential_seconds_lost,
    round(avgOrNullIf(toFloat64OrZero(SpanAttributes['otel_llm.task.tool_parallelism']),
        SpanAttributes['otel_llm.task.tool_parallelism'] != ''), 3) AS parallelism_avg
FROM otel_traces
WHERE $__timeFilter(Timestamp)
    AND SpanName LIKE 'invoke\_agent %'
    AND $__conditionalAll(ServiceName IN (${service:singlequote}), $service)
    AND $__conditionalAll(SpanAttributes['otel_llm.task.name'] IN (${task_name:singlequote}), $task_name)
    AND $__conditionalAll(ResourceAttributes['service.version'] IN (${version:singlequote}), $version)
GROUP BY service, version
ORDER BY service, version
