-- Escalation: within a task, a model call to a model whose output price is higher than
-- that of the task's previous call (router or fallback moving up to a dearer model).
-- Output prices per million tokens come from genai-prices through otel_llm.pricing,
-- loaded into model_prices (otel_llm/storage/prices.py); a call whose model has no
-- price there is never counted as an escalation, nor is the call after it.
-- Rate = escalations / calls that had a previous call in their task.
SELECT
    count() AS calls,
    countIf(n > 1) AS transitions,
    countIf(escalated) AS escalations,
    round(escalations / nullIf(transitions, 0), 6) AS escalation_rate,
    uniqExact(task_id) AS tasks,
    uniqExactIf(task_id, escalated) AS tasks_escalated,
    round(sumIf(cost_usd, escalated), 6) AS escalated_cost_usd
FROM
(
    SELECT
        task_id, cost_usd,
        row_number() OVER w AS n,
        n > 1 AND known AND lagInFrame(known) OVER w AND price > lagInFrame(price) OVER w AS escalated
    FROM
    (
        SELECT c.task_id AS task_id, c.timestamp AS timestamp, c.span_id AS span_id, c.cost_usd AS cost_usd,
            p.model != '' AS known, p.output_usd_per_mtok AS price
        FROM
        (
            SELECT task_id, timestamp, span_id, cost_usd, toString(provider) AS provider,
                toString(response_model) AS model
            FROM llm_calls FINAL
            WHERE $__timeFilter(timestamp)
    AND $__conditionalAll(service_name IN (${service:singlequote}), $service)
    AND $__conditionalAll(response_model IN (${model:singlequote}), $model)
    AND $__conditionalAll(task_name IN (${task_name:singlequote}), $task_name)
    AND $__conditionalAll(service_version IN (${version:singlequote}), $version)
        ) AS c
        LEFT JOIN (SELECT provider, model, output_usd_per_mtok FROM model_prices FINAL) AS p
            ON p.provider = c.provider AND p.model = c.model
    )
    WINDOW w AS (PARTITION BY task_id ORDER BY timestamp, span_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SETTINGS do_not_merge_across_partitions_select_final = 1
