-- Why cacheable calls (those with a prompt prefix hash) did not read the cache: the
-- provider's own diagnosis (otel_llm.cache.miss_reason) where it gave one, else
-- "written" (the call wrote the entry: first use, or the entry had expired) or
-- "not cached" (it neither read nor wrote).
SELECT
    multiIf(cache_miss_reason != '', toString(cache_miss_reason),
        cache_creation_input_tokens > 0, 'written', 'not cached') AS reason,
    count() AS calls,
    sum(if(cache_missed_input_tokens > 0, cache_missed_input_tokens, input_tokens)) AS missed_input_tokens,
    round(sum(cost_usd), 6) AS cost_usd
FROM llm_calls FINAL
WHERE $__timeFilter(timestamp)
    AND $__conditionalAll(service_name IN (${service:singlequote}), $service)
    AND $__conditionalAll(response_model IN (${model:singlequote}), $model)
    AND $__conditionalAll(task_name IN (${task_name:singlequote}), $task_name)
    AND $__conditionalAll(service_version IN (${version:singlequote}), $version)
    AND prefix_hash != '' AND cache_read_input_tokens = 0
GROUP BY reason
ORDER BY calls DESC, reason
SETTINGS do_not_merge_across_partitions_select_final = 1
