-- Alert query. Model calls per task p95 in the window over its baseline (the 7 days before): alert above a factor (e.g. 1.5).
-- One number, value; NULL (no data) while either side has no task.
SELECT round(quantileExactIf(0.95)(calls, started >= $__fromTime) / nullIf(quantileExactIf(0.95)(calls, started < $__fromTime), 0), 6) AS value
FROM
(
    SELECT task_id, sum(cost_usd) AS cost, count() AS calls, min(timestamp) AS started
    FROM llm_calls FINAL
    WHERE timestamp >= $__fromTime - INTERVAL 7 DAY AND timestamp <= $__toTime
        AND $__conditionalAll(service_name IN (${service:singlequote}), $service)
    GROUP BY task_id
)
SETTINGS do_not_merge_across_partitions_select_final = 1
