-- Cost and tokens per task for tasks started in [start, end): exact p50 and p95
-- (quantileExact: the value at position floor(level * n) of the sorted tasks).
SELECT
    count() AS tasks,
    round(sum(cost), 6) AS cost_usd,
    round(avg(cost), 6) AS cost_avg_usd,
    round(quantileExact(0.5)(cost), 6) AS cost_p50_usd,
    round(quantileExact(0.95)(cost), 6) AS cost_p95_usd,
    quantileExact(0.5)(tokens) AS tokens_p50,
    quantileExact(0.95)(tokens) AS tokens_p95
FROM
(
    SELECT
        task_id,
        sum(cost_usd) AS cost,
        sum(input_tokens) + sum(output_tokens) AS tokens,
        min(first_seen) AS started,
        max(service_name) AS service
    FROM tasks
    WHERE first_seen >= {start:DateTime64(9)}
    GROUP BY task_id
    HAVING sum(calls) > 0 AND started < {end:DateTime64(9)}
        AND ({service:String} = '' OR service = {service:String})
)
