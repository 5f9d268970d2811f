-- Model calls per task (iterations), over the tasks with calls in the window: exact
-- p50, p95, max.
SELECT
    count() AS tasks,
    quantileExact(0.5)(calls) AS calls_p50,
    quantileExact(0.95)(calls) AS calls_p95,
    max(calls) AS calls_max,
    round(avg(calls), 6) AS calls_avg
FROM
(
    SELECT task_id, count() AS calls
    FROM llm_calls FINAL
    WHERE $__timeFilter(timestamp)
    AND $__conditionalAll(service_name IN (${service:singlequote}), $service)
    AND $__conditionalAll(response_model IN (${model:singlequote}), $model)
    AND $__conditionalAll(task_name IN (${task_name:singlequote}), $task_name)
    AND $__conditionalAll(service_version IN (${version:singlequote}), $version)
    GROUP BY task_id
)
SETTINGS do_not_merge_across_partitions_select_final = 1
