-- Context growth per iteration: for the n-th model call of a task (otel_llm.task.iteration),
-- the average input it sent, how much of it was read from the prompt cache, how much
-- was sent uncached (neither read nor written), and the output. A line that climbs with
-- n is the conversation re-sent on every call.
SELECT
    iteration,
    count() AS calls,
    round(avg(input_tokens), 1) AS input_tokens_avg,
    round(avg(cache_read_input_tokens), 1) AS cache_read_tokens_avg,
    round(avg(input_tokens - cache_read_input_tokens - cache_creation_input_tokens), 1) AS uncached_input_tokens_avg,
    round(avg(output_tokens), 1) AS output_tokens_avg,
    round(avg(cost_usd), 6) AS cost_avg_usd
FROM llm_calls FINAL
WHERE $__timeFilter(timestamp)
    AND $__conditionalAll(service_name IN (${service:singlequote}), $service)
    AND $__conditionalAll(response_model IN (${model:singlequote}), $model)
    AND $__conditionalAll(task_name IN (${task_name:singlequote}), $task_name)
    AND $__conditionalAll(service_version IN (${version:singlequote}), $version)
    AND iteration > 0
GROUP BY iteration
ORDER BY iteration
SETTINGS do_not_merge_across_partitions_select_final = 1
