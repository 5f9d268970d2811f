-- Prompt-cache use and return per prompt prefix (otel_llm.prompt.prefix_hash) in the window.
--
-- cache_hit_ratio   cached input tokens read / all input tokens of the prefix's calls.
-- reads_per_write   cache-read tokens / cache-write tokens: how many times each written
--                   token was read back.
-- Break-even. With input price p, a 5-minute cache write costs 1.25p per token, a read
-- 0.1p, and an uncached token p (Anthropic's multipliers; 1-hour writes cost 2p).
-- A prefix of T tokens written once and read n times costs 1.25T + 0.1nT instead of
-- (1 + n)T uncached, so caching pays when 0.9n > 0.25, i.e. n > 0.25 / 0.9 = 0.28
-- reads per write (1h: n > 1.0 / 0.9 = 1.11). The often quoted ~1.4 = 1.25 / 0.9 is
-- the gross figure: it counts the whole write as overhead, as if the first call would
-- not have paid p for those tokens anyway. Both are returned, weighted by the prefix's
-- own 5m/1h mix:
--   break_even_reads_per_write        (0.25 w5m + 1.0 w1h) / (0.9 w)
--   break_even_reads_per_write_gross  (1.25 w5m + 2.0 w1h) / (0.9 w)
-- pays_off compares reads_per_write with the net figure. cache_savings_usd is the
-- priced result (otel_llm.cost.cache_savings_usd, net of the write premium): the ROI
-- in dollars, using each call's real prices; loses_money marks the prefixes whose
-- writes cost more than their reads saved.
SELECT
    prefix_hash,
    calls,
    calls_reading,
    calls_writing,
    sum_input AS input_tokens,
    sum_read AS cache_read_input_tokens,
    sum_write AS cache_creation_input_tokens,
    round(cache_read_input_tokens / nullIf(input_tokens, 0), 6) AS cache_hit_ratio,
    round(cache_read_input_tokens / nullIf(cache_creation_input_tokens, 0), 6) AS reads_per_write,
    round((0.25 * write_5m + 1.0 * write_1h) / nullIf(0.9 * cache_creation_input_tokens, 0), 6)
        AS break_even_reads_per_write,
    round((1.25 * write_5m + 2.0 * write_1h) / nullIf(0.9 * cache_creation_input_tokens, 0), 6)
        AS break_even_reads_per_write_gross,
    cache_creation_input_tokens = 0 OR reads_per_write > break_even_reads_per_write AS pays_off,
    round(savings, 6) AS cache_savings_usd,
    savings < 0 AS loses_money,
    top_miss_reasons
FROM
(
    SELECT
        prefix_hash,
        count() AS calls,
        countIf(cache_read_input_tokens > 0) AS calls_reading,
        countIf(cache_creation_input_tokens > 0) AS calls_writing,
        sum(input_tokens) AS sum_input,
        sum(cache_read_input_tokens) AS sum_read,
        sum(cache_creation_input_tokens) AS sum_write,
        sum(cache_creation_5m_input_tokens) AS write_5m,
        sum(cache_creation_1h_input_tokens) AS write_1h,
        sum(cache_savings_usd) AS savings,
        topKIf(3)(cache_miss_reason, cache_miss_reason != '') AS top_miss_reasons
    FROM llm_calls FINAL
    WHERE $__timeFilter(timestamp)
        AND $__conditionalAll(service_name IN (${service:singlequote}), $service)
        AND $__conditionalAll(response_model IN (${model:singlequote}), $model)
        AND $__conditionalAll(task_name IN (${task_name:singlequote}), $task_name)
        AND $__conditionalAll(service_version IN (${version:singlequote}), $version)
        AND prefix_hash != ''
    GROUP BY prefix_hash
)
ORDER BY cache_savings_usd DESC, calls DESC, prefix_hash
LIMIT ${limit}
SETTINGS do_not_merge_across_partitions_select_final = 1
