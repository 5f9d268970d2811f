-- Which models the calls in the window went to, and their share of calls and cost.
SELECT
    provider,
    model,
    calls,
    round(calls / sum(calls) OVER (), 6) AS call_share,
    round(cost, 6) AS cost_usd,
    round(cost / nullIf(sum(cost) OVER (), 0), 6) AS cost_share,
    input_tokens,
    output_tokens
FROM
(
    SELECT
        provider,
        response_model AS model,
        count() AS calls,
        sum(cost_usd) AS cost,
        sum(input_tokens) AS input_tokens,
        sum(output_tokens) AS output_tokens
    FROM llm_calls FINAL
    WHERE $__timeFilter(timestamp)
        AND $__conditionalAll(service_name IN (${service:singlequote}), $service)
        AND $__conditionalAll(response_model IN (${model:singlequote}), $model)
        AND $__conditionalAll(task_name IN (${task_name:singlequote}), $task_name)
        AND $__conditionalAll(service_version IN (${version:singlequote}), $version)
    GROUP BY provider, response_model
)
ORDER BY cost_usd DESC, calls DESC, provider, model
SETTINGS do_not_merge_across_partitions_select_final = 1
