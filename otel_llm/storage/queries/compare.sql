-- Every figure for one cohort of calls (and of tasks) against another. Cohort b is the
-- window [from, to) of version ${version_b} ('' = any version); cohort a is the
-- ${baseline_s} seconds before the window (or, when baseline_s is 0, the window itself)
-- of version ${version_a}. A task belongs to a cohort by its first call.
-- One row per metric with a, b and change = b / a - 1 (NULL when a is 0 or empty).
-- Quantiles are exact (position floor(level * n)); values rounded to 1e-6.
-- Task latency: the task span's own clock (otel_llm.task.duration_s) when it arrived,
-- else first call start to last call end. Success: outcome done among tasks whose span
-- reported an outcome.
-- The named questions drift (a = the 7 days before the window, any version) and
-- version_compare (a and b = two releases over one window) are this query
-- (otel_llm/storage/queries.py).
WITH
    $__fromTime AS b_start_,
    $__toTime AS b_end_,
    if(${baseline_s} > 0, b_start_ - toIntervalSecond(${baseline_s}), b_start_) AS a_start_,
    if(${baseline_s} > 0, b_start_, b_end_) AS a_end_
SELECT
    metric,
    round(a_, 6) AS a,
    round(b_, 6) AS b,
    round(b_ / nullIf(a_, 0) - 1, 6) AS change
FROM
(
    SELECT
        ['calls', 'cost_usd', 'cost_per_call_usd', 'tokens_per_call', 'input_output_ratio', 'cache_hit_ratio', 'error_rate', 'ttft_p95_seconds', 'duration_p95_seconds', 'tasks', 'cost_per_task_p50_usd', 'cost_per_task_p95_usd', 'calls_per_task_p50', 'calls_per_task_p95', 'task_latency_p50_seconds', 'task_latency_p95_seconds', 'task_success_rate'] AS metric_names,
        arrayMap(x -> if(isFinite(x), x, NULL), arrayConcat(c.a_values, t.a_values)) AS a_values,
        arrayMap(x -> if(isFinite(x), x, NULL), arrayConcat(c.b_values, t.b_values)) AS b_values
    FROM
    (
        SELECT
            [toFloat64(countIf(in_a)),
            toFloat64(sumIf(cost_usd, in_a)),
            toFloat64(sumIf(cost_usd, in_a) / nullIf(countIf(in_a), 0)),
            toFloat64((sumIf(input_tokens, in_a) + sumIf(output_tokens, in_a)) / nullIf(countIf(in_a), 0)),
            toFloat64(sumIf(input_tokens, in_a) / nullIf(sumIf(output_tokens, in_a), 0)),
            toFloat64(sumIf(cache_read_input_tokens, in_a) / nullIf(sumIf(input_tokens, in_a), 0)),
            toFloat64(countIf(in_a AND status_code = 'Error') / nullIf(countIf(in_a), 0)),
            toFloat64(quantileExactIf(0.95)(ttft_seconds, in_a AND stream AND ttft_seconds IS NOT NULL)),
            toFloat64(quantileExactIf(0.95)(duration_ns, in_a) / 1e9)] AS a_values,
            [toFloat64(countIf(in_b)),
            toFloat64(sumIf(cost_usd, in_b)),
            toFloat64(sumIf(cost_usd, in_b) / nullIf(countIf(in_b), 0)),
            toFloat64((sumIf(input_tokens, in_b) + sumIf(output_tokens, in_b)) / nullIf(countIf(in_b), 0)),
            toFloat64(sumIf(input_tokens, in_b) / nullIf(sumIf(output_tokens, in_b), 0)),
            toFloat64(sumIf(cache_read_input_tokens, in_b) / nullIf(sumIf(input_tokens, in_b), 0)),
            toFloat64(countIf(in_b AND status_code = 'Error') / nullIf(countIf(in_b), 0)),
            toFloat64(quantileExactIf(0.95)(ttft_seconds, in_b AND stream AND ttft_seconds IS NOT NULL)),
            toFloat64(quantileExactIf(0.95)(duration_ns, in_b) / 1e9)] AS b_values
        FROM
        (
            SELECT
                *,
                timestamp >= a_start_ AND timestamp < a_end_
                    AND (${version_a:singlequote} = '' OR service_version = ${version_a:singlequote}) AS in_a,
                timestamp >= b_start_ AND timestamp < b_end_
                    AND (${version_b:singlequote} = '' OR service_version = ${version_b:singlequote}) AS in_b
            FROM llm_calls FINAL
            WHERE timestamp >= least(a_start_, b_start_) AND timestamp < greatest(a_end_, b_end_)
                AND $__conditionalAll(service_name IN (${service:singlequote}), $service)
                AND $__conditionalAll(task_name IN (${task_name:singlequote}), $task_name)
        )
    ) AS c
    CROSS JOIN
    (
        SELECT
            [toFloat64(countIf(in_a)),
            toFloat64(quantileExactIf(0.5)(cost, in_a)),
            toFloat64(quantileExactIf(0.95)(cost, in_a)),
            toFloat64(quantileExactIf(0.5)(calls, in_a)),
            toFloat64(quantileExactIf(0.95)(calls, in_a)),
            toFloat64(quantileExactIf(0.5)(latency, in_a)),
            toFloat64(quantileExactIf(0.95)(latency, in_a)),
            toFloat64(countIf(in_a AND outcome = 'done') / nullIf(countIf(in_a AND outcome != ''), 0))] AS a_values,
            [toFloat64(countIf(in_b)),
            toFloat64(quantileExactIf(0.5)(cost, in_b)),
            toFloat64(quantileExactIf(0.95)(cost, in_b)),
            toFloat64(quantileExactIf(0.5)(calls, in_b)),
            toFloat64(quantileExactIf(0.95)(calls, in_b)),
            toFloat64(quantileExactIf(0.5)(latency, in_b)),
            toFloat64(quantileExactIf(0.95)(latency, in_b)),
            toFloat64(countIf(in_b AND outcome = 'done') / nullIf(countIf(in_b AND outcome != ''), 0))] AS b_values
        FROM
        (
            SELECT
                c.cost AS cost, c.calls AS calls, t.outcome AS outcome,
                if(t.duration_s > 0, t.duration_s, c.span_s) AS latency,
                c.started >= a_start_ AND c.started < a_end_
                    AND (${version_a:singlequote} = '' OR c.version = ${version_a:singlequote}) AS in_a,
                c.started >= b_start_ AND c.started < b_end_
                    AND (${version_b:singlequote} = '' OR c.version = ${version_b:singlequote}) AS in_b
            FROM
            (
                SELECT
                    task_id, sum(cost_usd) AS cost, count() AS calls, min(timestamp) AS started,
                    max(toString(service_version)) AS version,
                    dateDiff('millisecond', started, max(timestamp + toIntervalNanosecond(duration_ns))) / 1000 AS span_s
                FROM llm_calls FINAL
                WHERE timestamp >= least(a_start_, b_start_) AND timestamp < greatest(a_end_, b_end_)
                    AND $__conditionalAll(service_name IN (${service:singlequote}), $service)
                    AND $__conditionalAll(task_name IN (${task_name:singlequote}), $task_name)
                GROUP BY task_id
            ) AS c
            LEFT JOIN
            (
                SELECT task_id, max(task_status) AS outcome, max(task_duration_s) AS duration_s
                FROM tasks
                WHERE first_seen >= least(a_start_, b_start_) - INTERVAL 1 DAY
                GROUP BY task_id
            ) AS t ON t.task_id = c.task_id
            WHERE in_a OR in_b
        )
    ) AS t
)
ARRAY JOIN metric_names AS metric, a_values AS a_, b_values AS b_
SETTINGS do_not_merge_across_partitions_select_final = 1
