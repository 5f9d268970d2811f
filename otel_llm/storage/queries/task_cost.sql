-- Cost, tokens and model calls per task, over the tasks with calls in the window (their
-- calls in the window): exact p50 and p95 (quantileExact: the value at position
-- floor(level * n) of the sorted tasks).
SELECT
    count() AS tasks,
    round(sum(cost), 6) AS cost_usd,
    round(avg(cost), 6) AS cost_avg_usd,
    round(quantileExact(0.5)(cost), 6) AS cost_p50_usd,
    round(quantileExact(0.95)(cost), 6) AS cost_p95_usd,
    quantileExact(0.5)(tokens) AS tokens_p50,
    quantileExact(0.95)(tokens) AS tokens_p95,
    quantileExact(0.5)(calls) AS calls_p50,
    quantileExact(0.95)(calls) AS calls_p95
FROM
(
    SELECT task_id, sum(cost_usd) AS cost, sum(input_tokens) + sum(output_tokens) AS tokens, count() AS calls
    FROM llm_calls FINAL
    WHERE $__timeFilter(timestamp)
    AND $__conditionalAll(service_name IN (${service:singlequote}), $service)
    AND $__conditionalAll(response_model IN (${model:singlequote}), $model)
    AND $__conditionalAll(task_name IN (${task_name:singlequote}), $task_name)
    AND $__conditionalAll(service_version IN (${version:singlequote}), $version)
    GROUP BY task_id
)
SETTINGS do_not_merge_across_partitions_select_final = 1
