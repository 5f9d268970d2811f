"""otel-llm: cost and budget observability for LLM agents, on OpenTelemetry."""

__version__ = "0.1.0"

from otel_llm.policy import Limits, PolicyError
from otel_llm.tasks import (
    BudgetExceeded,
    Grant,
    Task,
    TaskState,
    TaskSummary,
    current_task,
    subprocess_env,
    task,
    tool,
)

__all__ = [
    "BudgetExceeded",
    "Grant",
    "Limits",
    "PolicyError",
    "Task",
    "TaskState",
    "TaskSummary",
    "__version__",
    "current_task",
    "subprocess_env",
    "task",
    "tool",
]
