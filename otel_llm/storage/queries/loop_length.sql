-- Loop length distribution: how many tasks made 1, 2, 3... model calls in the window.
-- loop_length is text so a bar chart takes it as its category axis.
SELECT
    toString(calls) AS loop_length,
    count() AS tasks,
    round(sum(cost), 6) AS cost_usd
FROM
(
    SELECT task_id, count() AS calls, sum(cost_usd) AS cost
    FROM llm_calls FINAL
    WHERE $__timeFilter(timestamp)
    AND $__conditionalAll(service_name IN (${service:singlequote}), $service)
    AND $__conditionalAll(response_model IN (${model:singlequote}), $model)
    AND $__conditionalAll(task_name IN (${task_name:singlequote}), $task_name)
    AND $__conditionalAll(service_version IN (${version:singlequote}), $version)
    GROUP BY task_id
)
GROUP BY calls
ORDER BY calls
SETTINGS do_not_merge_across_partitions_select_final = 1
