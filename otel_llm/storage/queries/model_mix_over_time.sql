-- Model calls per time bucket by the model that answered (time series).
SELECT
    $__timeInterval(timestamp) AS time,
    toString(response_model) AS model,
    count() AS calls
FROM llm_calls FINAL
WHERE $__timeFilter(timestamp)
    AND $__conditionalAll(service_name IN (${service:singlequote}), $service)
    AND $__conditionalAll(response_model IN (${model:singlequote}), $model)
    AND $__conditionalAll(task_name IN (${task_name:singlequote}), $task_name)
    AND $__conditionalAll(service_version IN (${version:singlequote}), $version)
GROUP BY time, model
ORDER BY time, model
SETTINGS do_not_merge_across_partitions_select_final = 1
