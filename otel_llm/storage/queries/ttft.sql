-- Time to first chunk of streamed calls in [start, end), per model, in seconds
-- (exact quantiles: the value at position floor(level * n) of the sorted calls).
SELECT
    provider,
    response_model AS model,
    count() AS streams,
    quantileExact(0.5)(ttft_seconds) AS ttft_p50_seconds,
    quantileExact(0.9)(ttft_seconds) AS ttft_p90_seconds,
    quantileExact(0.95)(ttft_seconds) AS ttft_p95_seconds,
    quantileExact(0.99)(ttft_seconds) AS ttft_p99_seconds
FROM llm_calls
WHERE timestamp >= {start:DateTime64(9)} AND timestamp < {end:DateTime64(9)}
    AND ({service:String} = '' OR service_name = {service:String})
    AND stream AND ttft_seconds IS NOT NULL
GROUP BY provider, response_model
ORDER BY streams DESC, provider, model
