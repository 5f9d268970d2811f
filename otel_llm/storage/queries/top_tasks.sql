-- The most expensive tasks with calls in the window, with their budget state and outcome
-- (from the task span, when one arrived). trace_id links to the trace view.
SELECT
    c.task_id AS task_id,
    c.trace_id AS trace_id,
    c.name AS task_name,
    c.service AS service,
    c.started AS started,
    c.ended AS ended,
    c.calls AS calls,
    c.iterations AS iterations,
    c.input_tokens AS input_tokens,
    c.output_tokens AS output_tokens,
    round(c.cost, 6) AS cost_usd,
    transform(greatest(c.level, t.level), [0, 1, 2, 3, 4], ['', 'ok', 'warn', 'exceeded', 'killed'], '') AS budget_state,
    t.outcome AS outcome
FROM
(
    SELECT
        task_id, any(trace_id) AS trace_id, max(task_name) AS name, max(toString(service_name)) AS service,
        min(timestamp) AS started, max(timestamp + toIntervalNanosecond(duration_ns)) AS ended, count() AS calls,
        max(iteration) AS iterations, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
        sum(cost_usd) AS cost,
        max(toUInt8(transform(toString(budget_state), ['ok', 'warn', 'exceeded', 'killed'], [1, 2, 3, 4], 0))) AS level
    FROM llm_calls FINAL
    WHERE $__timeFilter(timestamp)
    AND $__conditionalAll(service_name IN (${service:singlequote}), $service)
    AND $__conditionalAll(response_model IN (${model:singlequote}), $model)
    AND $__conditionalAll(task_name IN (${task_name:singlequote}), $task_name)
    AND $__conditionalAll(service_version IN (${version:singlequote}), $version)
    GROUP BY task_id
    ORDER BY cost DESC, task_id
    LIMIT ${limit}
) AS c
LEFT JOIN
(
    SELECT task_id, max(budget_level) AS level, max(task_status) AS outcome
    FROM tasks
    WHERE first_seen >= $__fromTime - INTERVAL 1 DAY
    GROUP BY task_id
) AS t ON t.task_id = c.task_id
ORDER BY cost_usd DESC, task_id
SETTINGS do_not_merge_across_partitions_select_final = 1
