-- Requests whose whole content repeats (same otel_llm.prompt.request_hash: model,
-- messages, tools, sampling) within ${repeat_window_s} seconds of the previous one, and
-- what the repeats cost: what an exact (or semantic) response cache would have saved.
-- Only the digest is stored, never the content.
SELECT
    request_hash,
    any(model) AS model,
    count() AS calls,
    countIf(repeat) AS repeats,
    round(sumIf(cost_usd, repeat), 6) AS repeat_cost_usd,
    uniqExact(task_id) AS tasks,
    min(timestamp) AS first_seen,
    max(timestamp) AS last_seen
FROM
(
    SELECT
        request_hash, toString(response_model) AS model, task_id, timestamp, cost_usd,
        row_number() OVER w > 1
            AND dateDiff('millisecond', lagInFrame(timestamp) OVER w, timestamp) <= ${repeat_window_s} * 1000 AS repeat
    FROM llm_calls FINAL
    WHERE $__timeFilter(timestamp)
    AND $__conditionalAll(service_name IN (${service:singlequote}), $service)
    AND $__conditionalAll(response_model IN (${model:singlequote}), $model)
    AND $__conditionalAll(task_name IN (${task_name:singlequote}), $task_name)
    AND $__conditionalAll(service_version IN (${version:singlequote}), $version)
        AND request_hash != ''
    WINDOW w AS (PARTITION BY request_hash ORDER BY timestamp, span_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
GROUP BY request_hash
HAVING repeats > 0
ORDER BY repeat_cost_usd DESC, repeats DESC, request_hash
LIMIT ${limit}
SETTINGS do_not_merge_across_partitions_select_final = 1
