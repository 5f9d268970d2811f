"""Our own attribute names, namespace ``otel_llm.``, where the GenAI semantic
conventions have none. Standard names come from ``opentelemetry.semconv`` directly;
this module never retypes them. See ``DESIGN.md`` (span contract)."""

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

TASK_ID: Final = "otel_llm.task.id"
TASK_NAME: Final = "otel_llm.task.name"
TASK_ITERATION: Final = "otel_llm.task.iteration"

BUDGET_PREFIX: Final = "otel_llm.budget."
BUDGET_STATE: Final = "otel_llm.budget.state"

# Baggage key that carries the task id across threads, tasks and processes.
BAGGAGE_TASK_ID: Final = TASK_ID
