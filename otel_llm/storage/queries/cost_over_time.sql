-- Spend per time bucket by service and model (time series; series = "service / model").
SELECT
    $__timeInterval(timestamp) AS time,
    concat(toString(service_name), ' / ', toString(response_model)) AS series,
    round(sum(cost_usd), 6) AS cost_usd
FROM llm_calls FINAL
WHERE $__timeFilter(timestamp)
    AND $__conditionalAll(service_name IN (${service:singlequote}), $service)
    AND $__conditionalAll(response_model IN (${model:singlequote}), $model)
    AND $__conditionalAll(task_name IN (${task_name:singlequote}), $task_name)
    AND $__conditionalAll(service_version IN (${version:singlequote}), $version)
GROUP BY time, series
ORDER BY time, series
SETTINGS do_not_merge_across_partitions_select_final = 1
