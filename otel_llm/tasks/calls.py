"""The hook contract with the instrumentation: :func:`enter_call` before each model call
(it may refuse it), :meth:`TaskCall.exit_call` when the call ends."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from opentelemetry import context as otel_context
from opentelemetry.util.types import AttributeValue

from otel_llm import attributes as attrs
from otel_llm import pricing
from otel_llm.attributes import TASK_PARENT_IDS
from otel_llm.pricing import Cost
from otel_llm.tasks.auto import owner_of_call
from otel_llm.tasks.budget import LIMIT_KEYS, BudgetExceeded
from otel_llm.tasks.collector import apply_kills
from otel_llm.tasks.state import STATE
from otel_llm.tasks.task import Task, log_once
from otel_llm.usage import Usage

__all__ = ["TaskCall", "enter_call"]


class TaskCall:
    """One admitted model call: where its span goes and what it carries, and its end."""

    __slots__ = ("_done", "_entries", "context", "span_attributes")

    def __init__(
        self,
        entries: list[tuple[Task, float]],
        context: otel_context.Context | None,
        span_attributes: Mapping[str, AttributeValue],
    ) -> None:
        self._entries = entries
        self._done = False
        self.context = context
        """Parent context for the inference span; None = the current one."""
        self.span_attributes = span_attributes

    def exit_call(
        self,
        usage: Usage | None,
        cost: Cost | None,
        error: BaseException | None,
        *,
        estimated: bool = False,
        tool_calls: int = 0,
    ) -> None:
        """Account the call's usage and cost (None: no known price) to its tasks.
        Called once when the call ends, a stream's end included; never raises.
        ``estimated``: the usage is otel-llm's estimate (the provider reported none);
        ``tool_calls``: the tool calls the response asked for."""
        if self._done:
            return
        self._done = True
        for owner, reserved in self._entries:
            try:
                owner.account(usage, cost, reserved, estimated=estimated, tool_calls=tool_calls)
            except Exception as exc:
                log_once("accounting a call to its task", exc)

    def withdraw(self) -> None:
        """The call was never sent (the SDK refused it before any request left): take
        its admission back, so it is no iteration and counts toward no limit."""
        if self._done:
            return
        self._done = True
        for owner, reserved in self._entries:
            try:
                owner.unadmit(reserved)
            except Exception as exc:
                log_once("withdrawing a call that was never sent", exc)

    @property
    def needs_usage(self) -> bool:
        """Whether the call's task, or one around it, has a dollar or token limit: a
        call with no measured usage would slip past it."""
        return any(
            owner.limits.max_usd is not None or owner.limits.max_tokens is not None
            for owner, _ in self._entries
        )


def enter_call(
    provider: str,
    model: str | None,
    *,
    max_tokens: int | None,
    input_estimate: int | Callable[[], int],
    admit: bool = True,
) -> TaskCall | None:
    """Called by the instrumentation before each model call, before its span starts and
    before the request is sent. Raises :class:`BudgetExceeded` when the task's limits are
    spent (or, with ``reserve``, would be). Returns None when no task owns the call (no
    task, no automatic task).

    ``admit=False`` is for reads of work already requested (``responses.retrieve``): the
    call is neither counted as an iteration nor refused, but usage it is the first to see
    is still accounted to the task when it ends."""
    try:
        owner, parent_context = owner_of_call(otel_context.get_current())
        if owner is None:
            return None
        if admit and not STATE.collector_kills:
            iteration = owner.count_call()
            if iteration is not None:
                # Nothing to check (no limits, nothing around it, no kill from a
                # collector to apply): counted, and done.
                return TaskCall(
                    [(owner, 0.0)],
                    parent_context,
                    {
                        attrs.TASK_ID: owner.task_id,
                        attrs.TASK_NAME: owner.name,
                        attrs.TASK_ITERATION: iteration,
                        attrs.BUDGET_STATE: "ok",
                    },
                )
        chain = owner.chain()
    except BudgetExceeded:
        raise
    except Exception as exc:
        log_once("finding the task of a model call", exc)
        return None
    # From here on a failure of ours never lets the call go uncounted.
    if STATE.collector_kills:
        try:
            apply_kills(chain)
        except Exception as exc:
            log_once("applying the collector's kills", exc)
    worst = None
    if admit:
        try:
            worst = _worst_case(chain, provider, model, max_tokens, input_estimate)
        except Exception as exc:  # no worst case: admitted on what is spent already
            log_once("estimating a model call's worst-case cost", exc)
    state_before = owner.budget_state
    if not admit:
        return TaskCall(
            [(member, 0.0) for member in chain],
            parent_context,
            {attrs.TASK_ID: owner.task_id, attrs.TASK_NAME: owner.name, attrs.BUDGET_STATE: state_before},
        )
    entries: list[tuple[Task, float]] = []
    iteration = 0
    try:
        for member in chain:
            number, reserved = member.admit(worst)
            if member is owner:
                iteration = number
            entries.append((member, reserved))
    except BudgetExceeded:
        for member, reserved in entries:
            member.unadmit(reserved)
        raise
    except Exception as exc:
        # Not admitted (so no iteration), but its usage and cost still count at exit.
        log_once("checking the task budget", exc)
        for member, reserved in entries:
            member.unadmit(reserved)
        return TaskCall([(member, 0.0) for member in chain], parent_context, {attrs.TASK_ID: owner.task_id})
    try:
        owner.next_turn()
        span_attributes: dict[str, AttributeValue] = {
            attrs.TASK_ID: owner.task_id,
            attrs.TASK_NAME: owner.name,
            attrs.TASK_ITERATION: iteration,
            attrs.BUDGET_STATE: state_before,
        }
        if len(chain) > 1:
            span_attributes[TASK_PARENT_IDS] = [t.task_id for t in chain[1:]]
        for limit, value in owner.limit_items:
            span_attributes[LIMIT_KEYS[limit]] = value
    except Exception as exc:
        log_once("describing a model call's task", exc)
        span_attributes = {attrs.TASK_ID: owner.task_id}
    return TaskCall(entries, parent_context, span_attributes)


def _worst_case(
    chain: list[Task],
    provider: str,
    model: str | None,
    max_tokens: int | None,
    input_estimate: int | Callable[[], int],
) -> float | None:
    for member in chain:
        if member.reserve and member.limits.max_usd is not None:
            break
    else:
        return None
    estimate = input_estimate() if callable(input_estimate) else input_estimate
    cost = pricing.price(Usage(input_tokens=max(estimate, 0), output_tokens=max_tokens or 0), model, provider)
    return None if cost is None else cost.total_usd
