-- Tasks a budget killed in the window: when, by which limit, the amount spent on that
-- limit at the kill, and the model spend of the task's calls up to the kill
-- (llm_calls). One row per task (its first kill).
SELECT
    k.task_id AS task_id,
    k.trace_id AS trace_id,
    k.name AS task_name,
    k.service AS service,
    k.killed_at AS killed_at,
    k.limit_ AS limit_name,
    round(k.spent_, 6) AS spent,
    round(k.value_, 6) AS limit_value,
    round(c.cost, 6) AS cost_at_kill_usd,
    c.calls AS calls_at_kill
FROM
(
    SELECT task_id, argMin(trace_id, timestamp) AS trace_id, argMin(toString(task_name), timestamp) AS name,
        argMin(toString(service_name), timestamp) AS service, min(timestamp) AS killed_at,
        argMin(toString(limit_name), timestamp) AS limit_, argMin(spent, timestamp) AS spent_,
        argMin(limit_value, timestamp) AS value_
    FROM budget_events FINAL
    WHERE $__timeFilter(timestamp) AND kind = 'killed'
        AND $__conditionalAll(service_name IN (${service:singlequote}), $service)
        AND $__conditionalAll(task_name IN (${task_name:singlequote}), $task_name)
    GROUP BY task_id
) AS k
LEFT JOIN
(
    SELECT l.task_id AS task_id, sum(l.cost_usd) AS cost, count() AS calls
    FROM llm_calls AS l FINAL
    INNER JOIN
    (
        SELECT task_id, min(timestamp) AS killed_at
        FROM budget_events FINAL
        WHERE $__timeFilter(timestamp) AND kind = 'killed'
        GROUP BY task_id
    ) AS kk ON kk.task_id = l.task_id
    WHERE l.timestamp <= kk.killed_at AND l.timestamp >= $__fromTime - INTERVAL 1 DAY
    GROUP BY l.task_id
) AS c ON c.task_id = k.task_id
ORDER BY killed_at DESC, task_id
LIMIT ${limit}
SETTINGS do_not_merge_across_partitions_select_final = 1
