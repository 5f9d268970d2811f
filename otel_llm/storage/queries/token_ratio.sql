-- Input:output token ratio and cache hit ratio per model in [start, end); the row with
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
    FROM llm_calls
    WHERE timestamp >= {start:DateTime64(9)} AND timestamp < {end:DateTime64(9)}
        AND ({service:String} = '' OR service_name = {service:String})
    GROUP BY GROUPING SETS ((provider, response_model), ())
)
ORDER BY provider = '' AND model = '', input_tokens DESC, provider, model
