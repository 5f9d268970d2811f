-- Alert query. Tasks killed by a budget in the window: alert on any.
SELECT toFloat64(uniqExact(task_id)) AS value
FROM budget_events FINAL
WHERE $__timeFilter(timestamp) AND kind = 'killed'
    AND $__conditionalAll(service_name IN (${service:singlequote}), $service)
SETTINGS do_not_merge_across_partitions_select_final = 1
