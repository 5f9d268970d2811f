-- Every task with calls in the window, newest first: the per-task table. Outcome and
-- duration come from the task span when one arrived (otel_llm.tasks), else the
-- duration is first call start to last call end. ${task_id} ('' = every task) picks one
-- task: the collector's alert links open this table on the task they name.
SELECT
    c.task_id AS task_id,
    c.trace_id AS trace_id,
    c.name AS task_name,
    c.service AS service,
    c.version AS version,
    c.started AS started,
    c.calls AS calls,
    c.input_tokens AS input_tokens,
    c.output_tokens AS output_tokens,
    c.cache_read_input_tokens AS cache_read_input_tokens,
    round(c.cost, 6) AS cost_usd,
    round(if(t.duration_s > 0, t.duration_s, c.span_s), 3) AS duration_s,
    c.final_model AS final_model,
    t.outcome AS outcome,
    transform(greatest(c.level, t.level), [0, 1, 2, 3, 4], ['', 'ok', 'warn', 'exceeded', 'killed'], '') AS budget_state
FROM
(
    SELECT
        task_id, any(trace_id) AS trace_id, max(task_name) AS name, max(toString(service_name)) AS service,
        max(toString(service_version)) AS version, min(timestamp) AS started,
        dateDiff('millisecond', started, max(timestamp + toIntervalNanosecond(duration_ns))) / 1000 AS span_s,
        count() AS calls, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
        sum(cache_read_input_tokens) AS cache_read_input_tokens, sum(cost_usd) AS cost,
        argMax(toString(response_model), timestamp) AS final_model,
        max(toUInt8(transform(toString(budget_state), ['ok', 'warn', 'exceeded', 'killed'], [1, 2, 3, 4], 0))) AS level
    FROM llm_calls FINAL
    WHERE $__timeFilter(timestamp)
    AND $__conditionalAll(service_name IN (${service:singlequote}), $service)
    AND $__conditionalAll(response_model IN (${model:singlequote}), $model)
    AND $__conditionalAll(task_name IN (${task_name:singlequote}), $task_name)
    AND $__conditionalAll(service_version IN (${version:singlequote}), $version)
        AND (${task_id:singlequote} = '' OR task_id = ${task_id:singlequote})
    GROUP BY task_id
    ORDER BY started DESC, task_id
    LIMIT ${limit}
) AS c
LEFT JOIN
(
    SELECT task_id, max(budget_level) AS level, max(task_status) AS outcome, max(task_duration_s) AS duration_s
    FROM tasks
    WHERE first_seen >= $__fromTime - INTERVAL 1 DAY
    GROUP BY task_id
) AS t ON t.task_id = c.task_id
ORDER BY started DESC, task_id
SETTINGS do_not_merge_across_partitions_select_final = 1
