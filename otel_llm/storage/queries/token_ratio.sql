-- Input:output token ratio and cache hit ratio per model in the window; the row with
-- provider = '' and model = '' is all models together.
SELECT
    provider,
    model,
    calls,
    input_tokens,
    output_tokens,
    round(input_tokens / nullIf(output_tokens, 0), 6) AS input_output_ratio,
    round(cache_read_input_tokens / nullIf(input_tokens, 0), 6) AS cache_hit_ratio
FROM
(
    SELECT
        provider,
        response_model AS model,
        count() AS calls,
        sum(input_tokens) AS input_tokens,
        sum(output_tokens) AS output_tokens,
        sum(cache_read_input_tokens) AS cache_read_input_tokens
    FROM llm_calls FINAL
    WHERE $__timeFilter(timestamp)
        AND $__conditionalAll(service_name IN (${service:singlequote}), $service)
        AND $__conditionalAll(response_model IN (${model:singlequote}), $model)
        AND $__conditionalAll(task_name IN (${task_name:singlequote}), $task_name)
        AND $__conditionalAll(service_version IN (${version:singlequote}), $version)
    GROUP BY GROUPING SETS ((provider, response_model), ())
)
ORDER BY provider = '' AND model = '', input_tokens DESC, provider, model
SETTINGS do_not_merge_across_partitions_select_final = 1
