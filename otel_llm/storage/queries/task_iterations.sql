-- Model calls per task (iterations) for tasks started in [start, end): exact p50, p95, max.
SELECT
    count() AS tasks,
    quantileExact(0.5)(calls) AS calls_p50,
    quantileExact(0.95)(calls) AS calls_p95,
    max(calls) AS calls_max,
    round(avg(calls), 6) AS calls_avg
FROM
(
    SELECT task_id, sum(calls) AS calls, min(first_seen) AS started, max(service_name) AS service
    FROM tasks
    WHERE first_seen >= {start:DateTime64(9)}
    GROUP BY task_id
    HAVING calls > 0 AND started < {end:DateTime64(9)} AND ({service:String} = '' OR service = {service:String})
)
