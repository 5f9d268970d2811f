-- Prompt caching per time bucket: hit ratio (cache-read / all input tokens), read and
-- write tokens, and the net savings after the write premium (time series).
SELECT
    $__timeInterval(timestamp) AS time,
    round(sum(cache_read_input_tokens) / nullIf(sum(input_tokens), 0), 6) AS cache_hit_ratio,
    sum(cache_read_input_tokens) AS cache_read_tokens,
    sum(cache_creation_input_tokens) AS cache_write_tokens,
    round(sum(cache_savings_usd), 6) AS net_savings_usd
FROM llm_calls FINAL
WHERE $__timeFilter(timestamp)
    AND $__conditionalAll(service_name IN (${service:singlequote}), $service)
    AND $__conditionalAll(response_model IN (${model:singlequote}), $model)
    AND $__conditionalAll(task_name IN (${task_name:singlequote}), $task_name)
    AND $__conditionalAll(service_version IN (${version:singlequote}), $version)
GROUP BY time
ORDER BY time
SETTINGS do_not_merge_across_partitions_select_final = 1
