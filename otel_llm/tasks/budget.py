"""The budget guard's vocabulary: the limits (names from :mod:`otel_llm.policy`), what a
task has spent against which limit, the exception that stops it, the escalation hook's
API, and how an error is named on a span.

Choices (applied by :mod:`otel_llm.tasks.guard` and :class:`otel_llm.tasks.task.Task`):

- A limit is *reached* when the amount spent is at or above it: with
  ``max_iterations=3`` calls 1-3 go out and the 4th raises. The check runs before each
  model call, so a call (or a stream) that crosses ``max_usd``/``max_tokens`` finishes
  and is paid for; the call after it is refused before any request is sent.
- ``max_tokens`` counts input plus output tokens, cached input included
  (``Usage.total_tokens``); ``max_seconds`` the wall time since the task started;
  ``max_tool_calls`` the ``otel_llm.tool`` calls, checked before the next model call.
- ``reserve=True`` also refuses a call whose worst case would cross ``max_usd``: the
  price of ``input_estimate`` input tokens plus ``max_tokens`` output tokens, added to
  what is spent and to the worst cases of calls still in flight. A call without
  ``max_tokens`` is reserved for its input only; a model with no known price is not
  reserved (it cannot be priced) and is only checked afterwards.
- ``on_exceed`` is called (synchronously, in the calling thread, before the request)
  with a :class:`TaskState` when a call is about to be refused. It returns a
  :class:`Grant` (more of each limit, added to the current value), a :class:`Limits`
  (new absolute limits), or ``None`` to stop: the call then raises
  :class:`BudgetExceeded`. If what it granted is not enough the call is refused without
  asking again. A hook that raises stops the task too (its error is the ``__cause__``):
  a broken escalation path must not mean an unbounded agent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Literal

from otel_llm.attributes import budget_limit_key
from otel_llm.policy import INTEGER_LIMITS, LIMIT_NAMES, Limits, OnExceed

__all__ = [
    "INTEGER_LIMITS",
    "LIMIT_KEYS",
    "LIMIT_NAMES",
    "BudgetExceeded",
    "BudgetState",
    "Grant",
    "Limits",
    "OnExceed",
    "OnExceedHook",
    "TaskState",
    "describe",
    "error_type",
]

LIMIT_KEYS = {name: budget_limit_key(name) for name in LIMIT_NAMES}
"""``max_usd`` -> ``otel_llm.budget.max_usd``: the span attribute and baggage key of each limit."""

KILLED = "killed"
"""The ``limit`` of a :class:`BudgetExceeded` for a task stopped from outside."""

BudgetState = Literal["ok", "warn", "exceeded", "killed"]

_UNITS = {
    # limit: (verb, how the amount spent reads, how the limit reads)
    "max_usd": ("spent", "${:.4f}", "${:.4f}"),
    "max_tokens": ("used", "{:.0f} tokens", "{:.0f}"),
    "max_iterations": ("made", "{:.0f} model calls", "{:.0f}"),
    "max_seconds": ("ran", "{:.1f} s", "{:.1f} s"),
    "max_tool_calls": ("made", "{:.0f} tool calls", "{:.0f}"),
}
assert tuple(_UNITS) == LIMIT_NAMES


def describe(limit: str, spent: float, limit_value: float) -> str:
    """``spent $0.5012 of max_usd $0.5000``, ``made 30 model calls of max_iterations 30``."""
    verb, spent_format, limit_format = _UNITS.get(limit, ("spent", "{}", "{}"))
    return f"{verb} {spent_format.format(spent)} of {limit} {limit_format.format(limit_value)}"


class BudgetExceeded(Exception):
    """A task's limit is spent: the model call was refused before its request was sent.

    ``limit`` is the limit's name (``max_usd``, ``max_tokens``, ``max_iterations``,
    ``max_seconds``, ``max_tool_calls``, or ``killed`` for a task stopped from outside),
    ``spent`` what the task had spent of it, ``limit_value`` the limit. With
    ``reserve=True``, ``worst_case_usd`` is the refused call's worst-case price.
    """

    def __init__(
        self,
        *,
        task_id: str,
        task_name: str,
        limit: str,
        spent: float,
        limit_value: float,
        worst_case_usd: float | None = None,
        reason: str | None = None,
    ) -> None:
        self.task_id = task_id
        self.task_name = task_name
        self.limit = limit
        self.spent = spent
        self.limit_value = limit_value
        self.worst_case_usd = worst_case_usd
        self.reason = reason
        who = f'task "{task_name}" (id {task_id})'
        if limit == KILLED:
            text = f"{who} was stopped: {reason or 'killed'}; model call refused"
        elif worst_case_usd is not None:
            text = (
                f"{who}: model call refused by reserve: spent ${spent:.4f} + worst case "
                f"${worst_case_usd:.4f} would exceed max_usd ${limit_value:.4f}"
            )
        else:
            text = f"{who} reached {limit}: {describe(limit, spent, limit_value)}; model call refused"
        super().__init__(text)

    def __reduce__(self):  # keeps the fields through pickling (process pools, multiprocessing)
        return (
            _rebuild,
            (
                self.task_id,
                self.task_name,
                self.limit,
                self.spent,
                self.limit_value,
                self.worst_case_usd,
                self.reason,
            ),
        )


# Users catch and see it as otel_llm.BudgetExceeded (tracebacks print the module), the
# name error_type() gives it on spans too.
BudgetExceeded.__module__ = "otel_llm"


def _rebuild(*args) -> BudgetExceeded:
    task_id, task_name, limit, spent, limit_value, worst, reason = args
    return BudgetExceeded(
        task_id=task_id,
        task_name=task_name,
        limit=limit,
        spent=spent,
        limit_value=limit_value,
        worst_case_usd=worst,
        reason=reason,
    )


def error_type(error: BaseException) -> str:
    """The ``error.type`` of a span that ended with ``error``: ``otel_llm.BudgetExceeded``
    for a refusal, else the exception's class name. The SDKs' exception classes already
    name the failure (``RateLimitError``, ``APITimeoutError``, ...) with low cardinality."""
    if isinstance(error, BudgetExceeded):
        return "otel_llm.BudgetExceeded"
    return type(error).__qualname__


@dataclass(frozen=True, slots=True)
class Grant:
    """More budget from ``on_exceed``: each value is *added* to the current limit
    (``Grant(max_usd=0.5)`` raises ``max_usd`` by $0.50). A limit that is not set stays
    unset."""

    max_usd: float | None = None
    max_tokens: int | None = None
    max_iterations: int | None = None
    max_seconds: float | None = None
    max_tool_calls: int | None = None
    reason: str | None = None
    """Why (who approved it); recorded on the task span's grant event."""

    def increments(self) -> dict[str, float]:
        """The limits this grant raises, and by how much."""
        return {name: value for name in LIMIT_NAMES if (value := getattr(self, name)) is not None}

    def applied_to(self, limits: Limits) -> Limits:
        """``limits`` raised by this grant (an unset limit stays unset)."""
        raised = {
            name: current + extra
            for name, extra in self.increments().items()
            if (current := getattr(limits, name)) is not None
        }
        return Limits(**raised).over(limits)


assert tuple(f.name for f in fields(Grant))[:-1] == LIMIT_NAMES


@dataclass(frozen=True, slots=True)
class TaskState:
    """A task's state when one of its limits is reached (what ``on_exceed`` receives)."""

    task_id: str
    task_name: str
    limit: str
    """The limit that was reached."""
    spent: float
    """What the task spent of it."""
    limit_value: float
    limits: Limits
    """All limits in force."""
    iterations: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    tool_calls: int
    elapsed_seconds: float
    worst_case_usd: float | None = None
    """With ``reserve=True``: the refused call's worst-case price."""
    grants: int = 0
    """How many times budget was granted to this task before."""


OnExceedHook = Callable[[TaskState], "Grant | Limits | None"]
"""An ``on_exceed`` callable: given the state, more budget or ``None`` to stop."""
