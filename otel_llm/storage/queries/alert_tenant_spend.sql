-- Alert query. Spend per tenant in the window (a rule over the last 24 hours gives the
-- daily spend), USD: alert above the tenant's daily budget. The tenant is the span's
-- or the resource's tenant attribute, as the budget policy's group_by reads it; calls
-- without one are left out. Reads otel-llm's priced spans (one per call).
SELECT tenant, round(sum(toFloat64OrZero(SpanAttributes['otel_llm.cost.usd'])), 6) AS value
FROM
(
    SELECT SpanAttributes, coalesce(nullIf(SpanAttributes['tenant'], ''), ResourceAttributes['tenant']) AS tenant
    FROM otel_traces
    WHERE $__timeFilter(Timestamp) AND mapContains(SpanAttributes, 'otel_llm.cost.usd')
        AND $__conditionalAll(ServiceName IN (${service:singlequote}), $service)
)
WHERE tenant != ''
GROUP BY tenant
ORDER BY tenant
