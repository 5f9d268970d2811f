-- Streaming latency per time bucket: time to first chunk (TTFT) and time per output
-- token after it ((duration - TTFT) / (output tokens - 1)), p50/p95/p99 (exact), with
-- the TTFT SLO (${ttft_slo_s}) as its own series so the panel draws the line.
SELECT
    $__timeInterval(timestamp) AS time,
    quantileExact(0.5)(ttft_seconds) AS ttft_p50_seconds,
    quantileExact(0.95)(ttft_seconds) AS ttft_p95_seconds,
    quantileExact(0.99)(ttft_seconds) AS ttft_p99_seconds,
    quantileExactIf(0.5)(tpot, isFinite(tpot)) AS tpot_p50_seconds,
    quantileExactIf(0.95)(tpot, isFinite(tpot)) AS tpot_p95_seconds,
    quantileExactIf(0.99)(tpot, isFinite(tpot)) AS tpot_p99_seconds,
    toFloat64(${ttft_slo_s}) AS ttft_slo_seconds
FROM
(
    SELECT timestamp, assumeNotNull(ttft_seconds) AS ttft_seconds,
        (duration_ns / 1e9 - ttft_seconds) / (toInt64(output_tokens) - 1) AS tpot
    FROM llm_calls FINAL
    WHERE $__timeFilter(timestamp)
    AND $__conditionalAll(service_name IN (${service:singlequote}), $service)
    AND $__conditionalAll(response_model IN (${model:singlequote}), $model)
    AND $__conditionalAll(task_name IN (${task_name:singlequote}), $task_name)
    AND $__conditionalAll(service_version IN (${version:singlequote}), $version)
        AND stream AND ttft_seconds IS NOT NULL
)
GROUP BY time
ORDER BY time
SETTINGS do_not_merge_across_partitions_select_final = 1
