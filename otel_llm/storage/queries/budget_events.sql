-- Budget warnings, kills and alerts in the window, newest first.
SELECT timestamp, kind, task_id, trace_id, task_name, service_name, policy, limit_name, limit_value, spent, channel, message, source
FROM budget_events
WHERE $__timeFilter(timestamp)
    AND $__conditionalAll(service_name IN (${service:singlequote}), $service)
    AND $__conditionalAll(task_name IN (${task_name:singlequote}), $task_name)
ORDER BY timestamp DESC, event_id
LIMIT ${limit}
