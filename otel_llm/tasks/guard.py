"""The budget guard's decisions, as pure functions of what a task has spent and the
settings it runs under: which limit refuses the next model call, which thresholds a
change crossed, the budget state, how ``on_exceed``'s answer changes the limits, and the
settings a task resolves to (policy, environment, carried baggage). The rules are in
:mod:`otel_llm.tasks.budget`; :class:`otel_llm.tasks.task.Task` holds the state and the
lock and calls these."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from otel_llm.attributes import EVENT_EXCEEDED, EVENT_WARN
from otel_llm.policy import BudgetConfig, Limits, OnExceed
from otel_llm.pricing import Cost
from otel_llm.tasks.budget import KILLED, BudgetState, Grant, OnExceedHook
from otel_llm.tasks.propagation import Carried
from otel_llm.usage import Usage

__all__ = [
    "Crossing",
    "Refusal",
    "Settings",
    "Spend",
    "apply_answer",
    "budget_state",
    "crossings",
    "refusal",
    "resolve_settings",
]


@dataclass(slots=True)
class Spend:
    """What a task has used so far: changed by its task (under the task's lock), read by
    the guard."""

    iterations: int = 0
    """Model calls admitted."""
    tool_calls: int = 0
    usage: Usage = field(default_factory=Usage)
    cost: Cost = field(default_factory=Cost)
    unpriced_calls: int = 0
    """Calls with usage but no known price (the cost is then a floor)."""
    estimated_calls: int = 0
    """Calls whose usage otel-llm estimated (the provider reported none)."""
    requested_tool_calls: int = 0
    """Tool calls the model asked for in its responses (run or not)."""
    carried_tokens: int = 0
    """Tokens spent by the task in the process that passed it on (baggage)."""
    reserved_usd: float = 0.0
    """Worst cases of admitted calls still in flight (``reserve=True``)."""
    started_at: float | None = None
    ended_at: float | None = None

    @property
    def tokens(self) -> int:
        return self.usage.total_tokens + self.carried_tokens

    def elapsed(self, now: float) -> float:
        """Wall time from the start to ``now``."""
        if self.started_at is None:
            return 0.0
        return max(now - self.started_at, 0.0)

    def of(self, limit: str, now: float) -> float:
        """What is spent of ``limit`` at ``now``."""
        if limit == "max_usd":
            return self.cost.total_usd
        if limit == "max_tokens":
            return self.tokens
        if limit == "max_iterations":
            return self.iterations
        if limit == "max_seconds":
            return self.elapsed(now)
        # Tools run (otel_llm.tool, other instrumentations' execute_tool spans) or, where
        # the framework traces no tool runs, the tool calls the model asked for.
        return max(self.tool_calls, self.requested_tool_calls)


class Refusal(NamedTuple):
    """Why the next call is refused."""

    limit: str
    spent: float
    limit_value: float
    worst_case_usd: float | None = None
    """Set when ``reserve`` refused it: the call's worst-case price."""


class Crossing(NamedTuple):
    """A threshold newly crossed: ``event`` is the warn or the exceeded event name."""

    event: str
    limit: str
    spent: float
    limit_value: float


def refusal(
    limit_items: Iterable[tuple[str, float]],
    spend: Spend,
    now: float,
    *,
    killed: bool,
    max_usd: float | None,
    worst: float | None,
) -> Refusal | None:
    """The limit that refuses one more call, or None: a kill first, then the first limit
    reached, then (``worst`` given: the task reserves) a worst case that would cross
    ``max_usd`` on top of what is spent and reserved."""
    if killed:
        return Refusal(KILLED, 0.0, 0.0)
    for limit, value in limit_items:
        spent = spend.of(limit, now)
        if spent >= value:
            return Refusal(limit, spent, value)
    if worst is not None and max_usd is not None:
        committed = spend.cost.total_usd + spend.reserved_usd
        if committed + worst > max_usd:
            return Refusal("max_usd", committed, max_usd, worst)
    return None


def crossings(
    limit_items: Iterable[tuple[str, float]],
    spend: Spend,
    now: float,
    warn_at: float,
    warned: set[str] | frozenset[str],
    exceeded: set[str] | frozenset[str],
) -> list[Crossing]:
    """Limits reached, or past ``warn_at`` of their value, that are not in ``exceeded``
    (``warned``) yet: each is announced once per limit value."""
    out = []
    for limit, value in limit_items:
        spent = spend.of(limit, now)
        if spent >= value and limit not in exceeded:
            out.append(Crossing(EVENT_EXCEEDED, limit, spent, value))
        elif spent >= warn_at * value and limit not in warned:
            out.append(Crossing(EVENT_WARN, limit, spent, value))
    return out


def budget_state(*, killed: bool, exceeded: bool, warned: bool) -> BudgetState:
    """``killed`` once a call was refused, ``exceeded`` once a limit was reached, ``warn``
    once one passed ``warn_at``, else ``ok``."""
    if killed:
        return "killed"
    if exceeded:
        return "exceeded"
    if warned:
        return "warn"
    return "ok"


def apply_answer(limits: Limits, answer: Grant | Limits) -> tuple[Limits, dict[str, float], str | None]:
    """What ``on_exceed``'s answer makes of ``limits``: (new limits, the limits it
    changed with the amount granted or the new value, the grant's reason)."""
    if isinstance(answer, Grant):
        return answer.applied_to(limits), answer.increments(), answer.reason
    return answer, dict(answer.items()), None


@dataclass(frozen=True, slots=True)
class Settings:
    """The budget settings a task runs under."""

    limits: Limits
    warn_at: float
    mode: OnExceed
    """``kill`` or ``alert``; with a hook, ``kill`` (the hook decides, then the guard refuses)."""
    hook: OnExceedHook | None
    policies: tuple[str, ...]


def resolve_settings(
    config: BudgetConfig,
    name: str,
    attributes: Mapping[str, Any],
    resource: Mapping[str, Any],
    *,
    explicit: Limits,
    warn_at: float | None,
    on_exceed: OnExceed | OnExceedHook | None,
    carried: Carried | None = None,
) -> Settings:
    """Policy and environment (``config``), tightened by what a joined task's baggage
    carried (strictest value per limit, the earliest warning, kill over alert, and the
    policies of the name the call would have had without the baggage), overridden by the
    task's own arguments (``explicit`` limits, ``warn_at``, ``on_exceed``)."""
    resolved = config.resolve(name, attributes, resource)
    limits, found_warn_at, mode = resolved.limits, resolved.warn_at, resolved.on_exceed
    policies = resolved.policies
    if carried is not None:
        if carried.local_name is not None and carried.local_name != name:
            local = config.resolve(carried.local_name, attributes, resource)
            limits = limits.strictest(local.limits)
            found_warn_at = min(found_warn_at, local.warn_at)
            mode = "kill" if "kill" in (mode, local.on_exceed) else "alert"
            policies += tuple(p for p in local.policies if p not in policies)
        limits = limits.strictest(carried.limits)
        if carried.warn_at is not None:
            found_warn_at = min(found_warn_at, carried.warn_at)
        if carried.on_exceed == "kill":
            mode = "kill"
    if callable(on_exceed):
        hook, mode = on_exceed, "kill"
    else:
        hook, mode = None, on_exceed or mode
    return Settings(
        limits=explicit.over(limits),
        warn_at=warn_at if warn_at is not None else found_warn_at,
        mode=mode,
        hook=hook,
        policies=policies,
    )
