-- Cost per successful task by the model that ended it (the model of the task's last
-- call). Successful = the task span reported outcome done; tasks with no task span have
-- no outcome and count in tasks only.
SELECT
    final_model,
    count() AS tasks,
    countIf(outcome = 'done') AS succeeded,
    round(succeeded / nullIf(countIf(outcome != ''), 0), 6) AS success_rate,
    round(sumIf(cost, outcome = 'done') / nullIf(succeeded, 0), 6) AS cost_per_success_usd,
    round(sum(cost) / nullIf(succeeded, 0), 6) AS total_cost_per_success_usd
FROM
(
    SELECT c.final_model AS final_model, c.cost AS cost, t.outcome AS outcome
    FROM
    (
        SELECT task_id, argMax(toString(response_model), timestamp) AS final_model, sum(cost_usd) AS cost
        FROM llm_calls FINAL
        WHERE $__timeFilter(timestamp)
    AND $__conditionalAll(service_name IN (${service:singlequote}), $service)
    AND $__conditionalAll(response_model IN (${model:singlequote}), $model)
    AND $__conditionalAll(task_name IN (${task_name:singlequote}), $task_name)
    AND $__conditionalAll(service_version IN (${version:singlequote}), $version)
        GROUP BY task_id
    ) AS c
    LEFT JOIN
    (
        SELECT task_id, max(task_status) AS outcome
        FROM tasks
        WHERE first_seen >= $__fromTime - INTERVAL 1 DAY
        GROUP BY task_id
    ) AS t ON t.task_id = c.task_id
)
GROUP BY final_model
ORDER BY tasks DESC, final_model
SETTINGS do_not_merge_across_partitions_select_final = 1
