-- Time to first chunk of streamed calls in the window, per model, in seconds
-- (exact quantiles: the value at position floor(level * n) of the sorted calls).
SELECT
    provider,
    response_model AS model,
    count() AS streams,
    quantileExact(0.5)(ttft_seconds) AS ttft_p50_seconds,
    quantileExact(0.9)(ttft_seconds) AS ttft_p90_seconds,
    quantileExact(0.95)(ttft_seconds) AS ttft_p95_seconds,
    quantileExact(0.99)(ttft_seconds) AS ttft_p99_seconds
FROM llm_calls FINAL
WHERE $__timeFilter(timestamp)
    AND $__conditionalAll(service_name IN (${service:singlequote}), $service)
    AND $__conditionalAll(response_model IN (${model:singlequote}), $model)
    AND $__conditionalAll(task_name IN (${task_name:singlequote}), $task_name)
    AND $__conditionalAll(service_version IN (${version:singlequote}), $version)
    AND stream AND ttft_seconds IS NOT NULL
GROUP BY provider, response_model
ORDER BY streams DESC, provider, model
SETTINGS do_not_merge_across_partitions_select_final = 1
