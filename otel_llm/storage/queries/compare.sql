-- Every figure for one cohort of calls (and of tasks) against another: cohort a is the
-- calls in [a_start, a_end) of service.version a_version ('' = any version), cohort b
-- likewise; tasks belong to a cohort by the time they started and their version. One
-- row per metric with a, b and change = b / a - 1 (NULL when a is 0 or empty).
-- Quantiles are exact (position floor(level * n)); values rounded to 1e-6.
-- The named questions drift (a = the baseline window, b = the current one) and
-- version_compare (a and b = two releases over one window) are this query
-- (otel_llm/storage/queries.py).
SELECT
    metric,
    round(a_, 6) AS a,
    round(b_, 6) AS b,
    round(b_ / nullIf(a_, 0) - 1, 6) AS change
FROM
(
    SELECT
        ['calls', 'cost_usd', 'cost_per_call_usd', 'tokens_per_call', 'input_output_ratio', 'cache_hit_ratio', 'error_rate', 'ttft_p95_seconds', 'duration_p95_seconds', 'tasks', 'cost_per_task_p50_usd', 'cost_per_task_p95_usd', 'calls_per_task_p50', 'calls_per_task_p95'] AS metric_names,
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
                timestamp >= {a_start:DateTime64(9)} AND timestamp < {a_end:DateTime64(9)}
                    AND ({a_version:String} = '' OR service_version = {a_version:String}) AS in_a,
                timestamp >= {b_start:DateTime64(9)} AND timestamp < {b_end:DateTime64(9)}
                    AND ({b_version:String} = '' OR service_version = {b_version:String}) AS in_b
            FROM llm_calls
            WHERE ((timestamp >= {a_start:DateTime64(9)} AND timestamp < {a_end:DateTime64(9)})
                OR (timestamp >= {b_start:DateTime64(9)} AND timestamp < {b_end:DateTime64(9)}))
                AND ({service:String} = '' OR service_name = {service:String})
        )
    ) AS c
    CROSS JOIN
    (
        SELECT
            [toFloat64(countIf(in_a)),
            toFloat64(quantileExactIf(0.5)(cost, in_a)),
            toFloat64(quantileExactIf(0.95)(cost, in_a)),
            toFloat64(quantileExactIf(0.5)(calls, in_a)),
            toFloat64(quantileExactIf(0.95)(calls, in_a))] AS a_values,
            [toFloat64(countIf(in_b)),
            toFloat64(quantileExactIf(0.5)(cost, in_b)),
            toFloat64(quantileExactIf(0.95)(cost, in_b)),
            toFloat64(quantileExactIf(0.5)(calls, in_b)),
            toFloat64(quantileExactIf(0.95)(calls, in_b))] AS b_values
        FROM
        (
            SELECT
                task_id, sum(cost_usd) AS cost, sum(calls) AS calls, min(first_seen) AS started,
                max(service_version) AS version,
                started >= {a_start:DateTime64(9)} AND started < {a_end:DateTime64(9)}
                    AND ({a_version:String} = '' OR version = {a_version:String}) AS in_a,
                started >= {b_start:DateTime64(9)} AND started < {b_end:DateTime64(9)}
                    AND ({b_version:String} = '' OR version = {b_version:String}) AS in_b
            FROM tasks
            WHERE first_seen >= least({a_start:DateTime64(9)}, {b_start:DateTime64(9)})
            GROUP BY task_id
            HAVING calls > 0 AND (in_a OR in_b) AND ({service:String} = '' OR max(service_name) = {service:String})
        )
    ) AS t
)
ARRAY JOIN metric_names AS metric, a_values AS a_, b_values AS b_
