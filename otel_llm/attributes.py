"""Our own attribute and event names, namespace ``otel_llm.``, where the GenAI semantic
conventions have none. Standard names come from ``opentelemetry.semconv`` directly;
this module never retypes them. What each one means, its type and unit, and on which
span it appears: ``docs/telemetry.md`` (a test keeps the two in step: a name added here
needs a row there)."""

from typing import Final

COST_USD: Final = "otel_llm.cost.usd"
COST_INPUT_USD: Final = "otel_llm.cost.input_usd"
COST_OUTPUT_USD: Final = "otel_llm.cost.output_usd"
COST_CACHE_READ_USD: Final = "otel_llm.cost.cache_read_usd"
COST_CACHE_WRITE_USD: Final = "otel_llm.cost.cache_write_usd"
COST_CACHE_SAVINGS_USD: Final = "otel_llm.cost.cache_savings_usd"
PRICE_SOURCE: Final = "otel_llm.price.source"

USAGE_CACHE_CREATION_5M_INPUT_TOKENS: Final = "otel_llm.usage.cache_creation.5m_input_tokens"
USAGE_CACHE_CREATION_1H_INPUT_TOKENS: Final = "otel_llm.usage.cache_creation.1h_input_tokens"

CACHE_MISS_REASON: Final = "otel_llm.cache.miss_reason"
CACHE_MISSED_INPUT_TOKENS: Final = "otel_llm.cache.missed_input_tokens"
PROMPT_PREFIX_HASH: Final = "otel_llm.prompt.prefix_hash"
PROMPT_REQUEST_HASH: Final = "otel_llm.prompt.request_hash"
USAGE_ESTIMATED: Final = "otel_llm.usage.estimated"
"""True when a call's token counts are otel-llm's estimate: the provider reported none."""
CALL_SENT: Final = "otel_llm.call.sent"
"""False on the span of a call the SDK refused before any request left the process."""

TASK_ID: Final = "otel_llm.task.id"
TASK_NAME: Final = "otel_llm.task.name"
TASK_ITERATION: Final = "otel_llm.task.iteration"

BUDGET_PREFIX: Final = "otel_llm.budget."
BUDGET_STATE: Final = "otel_llm.budget.state"

# Baggage key that carries the task id across threads, tasks and processes.
BAGGAGE_TASK_ID: Final = TASK_ID

# Task spans, their budget events and tool batches (see otel_llm.tasks.task).
TASK_PARENT_ID: Final = "otel_llm.task.parent_id"
TASK_PARENT_IDS: Final = "otel_llm.task.parent_ids"
TASK_KIND: Final = "otel_llm.task.kind"
TASK_ITERATIONS: Final = "otel_llm.task.iterations"
TASK_TOOL_CALLS: Final = "otel_llm.task.tool_calls"
TASK_REQUESTED_TOOL_CALLS: Final = "otel_llm.task.requested_tool_calls"
TASK_COST_USD: Final = "otel_llm.task.cost.usd"
TASK_COST_INPUT_USD: Final = "otel_llm.task.cost.input_usd"
TASK_COST_OUTPUT_USD: Final = "otel_llm.task.cost.output_usd"
TASK_COST_CACHE_READ_USD: Final = "otel_llm.task.cost.cache_read_usd"
TASK_COST_CACHE_WRITE_USD: Final = "otel_llm.task.cost.cache_write_usd"
TASK_COST_CACHE_SAVINGS_USD: Final = "otel_llm.task.cost.cache_savings_usd"
TASK_UNPRICED_CALLS: Final = "otel_llm.task.unpriced_calls"
TASK_ESTIMATED_CALLS: Final = "otel_llm.task.estimated_calls"
TASK_DURATION_S: Final = "otel_llm.task.duration_s"
TASK_OUTCOME: Final = "otel_llm.task.outcome"
TASK_STOPPED_BY: Final = "otel_llm.task.stopped_by"
TASK_TOOL_BATCHES: Final = "otel_llm.task.tool_batches"
TASK_TOOL_BATCHES_SEQUENTIAL: Final = "otel_llm.task.tool_batches.sequential"
TASK_TOOL_SAVEABLE_S: Final = "otel_llm.task.tool_saveable_s"
TASK_TOOL_PARALLELISM: Final = "otel_llm.task.tool_parallelism"
# Baggage only: the spend so far, carried to another process by subprocess_env().
TASK_TOKENS: Final = "otel_llm.task.tokens"
TASK_ELAPSED_S: Final = "otel_llm.task.elapsed_s"

BUDGET_WARN_AT: Final = "otel_llm.budget.warn_at"
BUDGET_ON_EXCEED: Final = "otel_llm.budget.on_exceed"
BUDGET_RESERVE: Final = "otel_llm.budget.reserve"
BUDGET_POLICIES: Final = "otel_llm.budget.policies"
BUDGET_GRANTS: Final = "otel_llm.budget.grants"
BUDGET_LIMIT: Final = "otel_llm.budget.limit"
BUDGET_SPENT: Final = "otel_llm.budget.spent"
BUDGET_LIMIT_VALUE: Final = "otel_llm.budget.limit_value"
BUDGET_WORST_CASE_USD: Final = "otel_llm.budget.worst_case_usd"
BUDGET_GRANT_REASON: Final = "otel_llm.budget.grant_reason"

EVENT_WARN: Final = "otel_llm.budget.warn"
EVENT_EXCEEDED: Final = "otel_llm.budget.exceeded"
EVENT_KILLED: Final = "otel_llm.budget.killed"
EVENT_GRANT: Final = "otel_llm.budget.grant"
EVENT_TOOL_BATCH: Final = "otel_llm.tool.batch"

# Attributes of the tool-batch event.
TOOL_BATCH_ITERATION: Final = "otel_llm.tool.batch.iteration"
TOOL_BATCH_SIZE: Final = "otel_llm.tool.batch.size"
TOOL_BATCH_TOOLS: Final = "otel_llm.tool.batch.tools"
TOOL_BATCH_DURATION_S: Final = "otel_llm.tool.batch.duration_s"
TOOL_BATCH_WALL_S: Final = "otel_llm.tool.batch.wall_s"
TOOL_BATCH_PARALLELISM: Final = "otel_llm.tool.batch.parallelism"
TOOL_BATCH_SEQUENTIAL: Final = "otel_llm.tool.batch.sequential"
TOOL_BATCH_SAVEABLE_S: Final = "otel_llm.tool.batch.saveable_s"

# Token totals on spans that sum many calls (task spans): the usage attributes of one
# call (``gen_ai.usage.input_tokens`` ...) renamed under this prefix
# (``otel_llm.task.usage.input_tokens`` ...) by ``Usage.total_attributes``.
TASK_USAGE_PREFIX: Final = "otel_llm.task.usage."


def budget_limit_key(limit: str) -> str:
    """``max_usd`` -> ``otel_llm.budget.max_usd``."""
    return BUDGET_PREFIX + limit
