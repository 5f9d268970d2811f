-- The most expensive tasks started in [start, end), with their budget state.
SELECT
    task_id,
    max(task_name) AS task_name,
    max(service_name) AS service,
    min(first_seen) AS started,
    max(last_seen) AS ended,
    sum(calls) AS calls,
    max(max_iteration) AS iterations,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    round(sum(cost_usd), 6) AS cost_usd,
    transform(max(budget_level), [0, 1, 2, 3, 4], ['', 'ok', 'warn', 'exceeded', 'killed'], '') AS budget_state
FROM tasks
WHERE first_seen >= {start:DateTime64(9)}
GROUP BY task_id
HAVING calls > 0 AND started < {end:DateTime64(9)} AND ({service:String} = '' OR service = {service:String})
ORDER BY cost_usd DESC, task_id
LIMIT {limit:UInt32}
