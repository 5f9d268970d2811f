-- Totals of model calls in the window: the headline numbers of the report.
-- Costs in USD rounded to 1e-6 (a micro-dollar).
SELECT
    count() AS calls,
    uniqExact(task_id) AS tasks,
    round(sum(cost_usd), 6) AS cost_usd,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_input_tokens) AS cache_read_input_tokens,
    sum(cache_creation_input_tokens) AS cache_creation_input_tokens,
    round(cache_read_input_tokens / nullIf(input_tokens, 0), 6) AS cache_hit_ratio,
    round(sum(cache_savings_usd), 6) AS cache_savings_usd,
    round(countIf(status_code = 'Error') / nullIf(calls, 0), 6) AS error_rate
FROM llm_calls FINAL
WHERE $__timeFilter(timestamp)
    AND $__conditionalAll(service_name IN (${service:singlequote}), $service)
    AND $__conditionalAll(response_model IN (${model:singlequote}), $model)
    AND $__conditionalAll(task_name IN (${task_name:singlequote}), $task_name)
    AND $__conditionalAll(service_version IN (${version:singlequote}), $version)
SETTINGS do_not_merge_across_partitions_select_final = 1
