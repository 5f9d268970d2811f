-- Budget warnings, limits reached, kills and alerts per time bucket, by kind (time series).
SELECT
    $__timeInterval(timestamp) AS time,
    toString(kind) AS kind,
    count() AS events
FROM budget_events FINAL
WHERE $__timeFilter(timestamp)
    AND $__conditionalAll(service_name IN (${service:singlequote}), $service)
    AND $__conditionalAll(task_name IN (${task_name:singlequote}), $task_name)
GROUP BY time, kind
ORDER BY time, kind
SETTINGS do_not_merge_across_partitions_select_final = 1
