-- Alert query. Cache hit ratio (cache-read / all input tokens) in the window over its
-- baseline (the 7 days before): alert below a factor (e.g. 0.7, a 30% drop).
-- One number, value; NULL (no data) while the baseline read nothing.
SELECT round(
    (sumIf(cache_read_input_tokens, timestamp >= $__fromTime) / nullIf(sumIf(input_tokens, timestamp >= $__fromTime), 0))
    / nullIf(sumIf(cache_read_input_tokens, timestamp < $__fromTime) / nullIf(sumIf(input_tokens, timestamp < $__fromTime), 0), 0),
    6) AS value
FROM llm_calls FINAL
WHERE timestamp >= $__fromTime - INTERVAL 7 DAY AND timestamp <= $__toTime
    AND $__conditionalAll(service_name IN (${service:singlequote}), $service)
SETTINGS do_not_merge_across_partitions_select_final = 1
