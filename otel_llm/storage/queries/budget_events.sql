-- Budget warnings, kills and alerts in [start, end), newest first.
SELECT timestamp, kind, task_id, task_name, service_name, policy, limit_name, limit_value, spent, channel, message, source
FROM budget_events
WHERE timestamp >= {start:DateTime64(9)} AND timestamp < {end:DateTime64(9)}
    AND ({service:String} = '' OR service_name = {service:String})
ORDER BY timestamp DESC, event_id
LIMIT {limit:UInt32}
