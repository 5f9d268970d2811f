-- Alert query. Time to first chunk p95 of streamed calls in the window, seconds, per
-- model: alert above the SLO.
SELECT toString(response_model) AS model, quantileExact(0.95)(ttft_seconds) AS value
FROM llm_calls FINAL
WHERE $__timeFilter(timestamp) AND stream AND ttft_seconds IS NOT NULL
    AND $__conditionalAll(service_name IN (${service:singlequote}), $service)
GROUP BY model
ORDER BY model
SETTINGS do_not_merge_across_partitions_select_final = 1
