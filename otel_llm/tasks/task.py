"""The task: one unit of agent work, its counters, its limits and the guard that refuses a
model call once a limit is spent (rules in :mod:`otel_llm.tasks.budget`, decisions in
:mod:`otel_llm.tasks.guard`), and its span ``invoke_agent {name}``. Tasks are opened with
:func:`otel_llm.tasks.task`, joined through baggage (:func:`task_in`) or made on their own
(:mod:`otel_llm.tasks.auto`).

The task span's attributes (set at the start, totals at the end) and its events
(``otel_llm.budget.warn``/``exceeded``/``killed``/``grant``, ``otel_llm.tool.batch``):
``docs/telemetry.md``. Budget state: ``warn`` once any limit crossed ``warn_at``;
``exceeded`` once any limit was reached; ``killed`` once the guard refused a call.
Warn and exceeded are announced once per limit value.

Tool batches: :mod:`otel_llm.tasks.toolbatches`.

Calls made after a task ended (a thread that outlived it) still count toward it, and are
checked against its limits, but no longer show on its span.
"""

from __future__ import annotations

import collections
import functools
import inspect
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import error_attributes
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from otel_llm import attributes as attrs
from otel_llm import failures
from otel_llm.attributes import (
    BUDGET_GRANT_REASON,
    BUDGET_GRANTS,
    BUDGET_LIMIT,
    BUDGET_LIMIT_VALUE,
    BUDGET_ON_EXCEED,
    BUDGET_POLICIES,
    BUDGET_RESERVE,
    BUDGET_SPENT,
    BUDGET_WARN_AT,
    BUDGET_WORST_CASE_USD,
    EVENT_EXCEEDED,
    EVENT_GRANT,
    EVENT_KILLED,
    EVENT_TOOL_BATCH,
    EVENT_WARN,
    TASK_COST_CACHE_READ_USD,
    TASK_COST_CACHE_SAVINGS_USD,
    TASK_COST_CACHE_WRITE_USD,
    TASK_COST_INPUT_USD,
    TASK_COST_OUTPUT_USD,
    TASK_COST_USD,
    TASK_DURATION_S,
    TASK_ELAPSED_S,
    TASK_ESTIMATED_CALLS,
    TASK_ITERATIONS,
    TASK_KIND,
    TASK_OUTCOME,
    TASK_PARENT_ID,
    TASK_REQUESTED_TOOL_CALLS,
    TASK_STOPPED_BY,
    TASK_TOKENS,
    TASK_TOOL_BATCHES,
    TASK_TOOL_BATCHES_SEQUENTIAL,
    TASK_TOOL_CALLS,
    TASK_TOOL_PARALLELISM,
    TASK_TOOL_SAVEABLE_S,
    TASK_UNPRICED_CALLS,
)
from otel_llm.pricing import Cost
from otel_llm.tasks import guard, settings
from otel_llm.tasks.budget import (
    KILLED,
    LIMIT_KEYS,
    LIMIT_NAMES,
    BudgetExceeded,
    BudgetState,
    Grant,
    Limits,
    OnExceed,
    OnExceedHook,
    TaskState,
    describe,
    error_type,
)
from otel_llm.tasks.propagation import (
    TASK_KEY,
    Carried,
    carried_number,
    carried_task_id,
    carried_text,
    install_thread_propagation,
    read_carried,
)
from otel_llm.tasks.state import AUTO_LRU, STATE
from otel_llm.tasks.toolbatches import BatchTally, ToolBatches, ToolRecord
from otel_llm.usage import Usage

__all__ = [
    "Clock",
    "Task",
    "TaskSummary",
    "find_live",
    "from_baggage",
    "joined_task",
    "local_name",
    "log_once",
    "remember",
    "task_in",
]

logger = logging.getLogger("otel_llm.tasks")
budget_logger = logging.getLogger("otel_llm.budget")

_INVOKE_AGENT = gen_ai.GenAiOperationNameValues.INVOKE_AGENT.value

Clock = Callable[[], float]

# (event name, attributes, log text): what a change under the lock announces once the
# lock is released (span events and log lines are not emitted with the lock held).
_Event = tuple[str, dict[str, Any], str]


def log_once(what: str, exc: BaseException | None = None) -> None:
    """Log a failure of the task accounting once (it never breaks the call)."""
    failures.log_once(logger, what, exc)


# -- summaries -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskSummary:
    """One task's totals and outcome (``Task.summary()``), e.g. for a per-task table."""

    task_id: str
    name: str
    kind: str
    outcome: str
    """``running``, ``done``, ``stopped`` (a limit or a kill stopped it) or ``error``."""
    stopped_by: str | None
    budget_state: str
    iterations: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float
    cache_savings_usd: float
    unpriced_calls: int
    tool_calls: int
    tool_batches: int
    sequential_tool_batches: int
    tool_saveable_seconds: float
    wall_seconds: float
    limits: Limits
    grants: int
    estimated_calls: int = 0
    """Calls whose usage otel-llm estimated (charged all the same)."""
    requested_tool_calls: int = 0
    """Tool calls the model asked for in its responses."""

    @property
    def cache_hit_ratio(self) -> float:
        """Cache-read input tokens over all input tokens (0 with no input)."""
        return self.cache_read_tokens / self.input_tokens if self.input_tokens else 0.0

    @property
    def outcome_text(self) -> str:
        """``done``, ``stopped at max_usd``, ``error``..."""
        return (
            f"stopped at {self.stopped_by}" if self.outcome == "stopped" and self.stopped_by else self.outcome
        )


# -- the task --------------------------------------------------------------------------


class Task:
    """One unit of agent work, with its counters and limits (``otel_llm.task`` is this
    class). Enter it once (``with``/``async with``); used as a decorator, every call of
    the decorated function runs in a fresh task with the same settings.

    Limits given here override the policy file and the environment, limit by limit.
    ``warn_at`` defaults to the policy's (0.8). ``on_exceed``: ``"kill"`` (default: refuse
    the next call), ``"alert"`` (record and log, never refuse), or a callable that gets a
    :class:`TaskState` and returns a :class:`Grant`, new :class:`Limits`, or ``None`` to
    stop. ``reserve=True`` refuses a call whose worst case would cross ``max_usd``.
    ``task_id`` defaults to a random 32-hex id. ``clock`` (seconds, monotonic) times
    ``max_seconds``, the wall time and tool batches; default ``time.monotonic``.

    :meth:`start`, :meth:`admit`, :meth:`account`, :meth:`tool_started` and the like are
    the package's own: the instrumentation hook (:func:`otel_llm.tasks.enter_call`), the
    tool spans and the automatic tasks drive them; user code needs ``with``,
    :meth:`summary` and :meth:`kill`.
    """

    def __init__(
        self,
        name: str,
        *,
        max_usd: float | None = None,
        max_tokens: int | None = None,
        max_iterations: int | None = None,
        max_seconds: float | None = None,
        max_tool_calls: int | None = None,
        warn_at: float | None = None,
        on_exceed: OnExceed | OnExceedHook | None = None,
        task_id: str | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
        reserve: bool = False,
        clock: Clock | None = None,
        _kind: str = "explicit",
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("otel_llm.task: name must be a non-empty string")
        if on_exceed is not None and not callable(on_exceed) and on_exceed not in ("kill", "alert"):
            raise ValueError(
                f'otel_llm.task: on_exceed must be a callable, "kill" or "alert", got {on_exceed!r}'
            )
        if warn_at is not None and not 0 < warn_at <= 1:
            raise ValueError(f"otel_llm.task: warn_at must be > 0 and <= 1, got {warn_at!r}")
        explicit = Limits(max_usd, max_tokens, max_iterations, max_seconds, max_tool_calls)
        for limit, value in explicit.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"otel_llm.task: {limit} must be a number > 0, got {value!r}")
        self._args = {
            **{name: getattr(explicit, name) for name in LIMIT_NAMES},
            "warn_at": warn_at,
            "on_exceed": on_exceed,
            "task_id": task_id,
            "attributes": attributes,
            "reserve": reserve,
            "clock": clock,
        }
        self.name = name
        self.task_id = task_id or uuid.uuid4().hex
        self.kind = _kind
        self.attributes: dict[str, AttributeValue] = dict(attributes or {})
        self.reserve = reserve
        self.parent: Task | None = None
        self._explicit = explicit
        self._warn_at_arg = warn_at
        self._on_exceed_arg = on_exceed
        self._clock: Clock = clock or time.monotonic
        self._lock = threading.Lock()

        self.limits = explicit
        self.warn_at = warn_at if warn_at is not None else 0.8
        self._hook: OnExceedHook | None = None
        self._mode: OnExceed = "kill"
        self._policies: tuple[str, ...] = ()

        self._spend = guard.Spend()
        self.grants = 0
        self._warned: set[str] = set()
        self._exceeded: set[str] = set()
        self.killed_by: str | None = None
        self._kill_reason: str | None = None
        self._outcome = "running"
        self._stopped_by: str | None = None
        self._tools = ToolBatches()

        self._span: trace.Span | None = None
        self._context: otel_context.Context | None = None
        self._token: object | None = None
        self._entered = False
        self._span_closed = False

    # -- lifecycle -----------------------------------------------------------------

    def _fresh(self) -> Task:
        return Task(self.name, **self._args, _kind=self.kind)

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                async with self._fresh():
                    return await fn(*args, **kwargs)

            return run_async

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self._fresh():
                return fn(*args, **kwargs)

        return run

    def __enter__(self) -> Task:
        if self._entered:
            raise RuntimeError("an otel_llm.task can be entered once; call otel_llm.task(...) again")
        self._entered = True
        ctx = otel_context.get_current()
        self.start(parent=task_in(ctx, create=True), parent_context=ctx)
        install_thread_propagation()
        self._token = otel_context.attach(self._context)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        token, self._token = self._token, None
        if token is not None:
            try:
                otel_context.detach(token)
            except Exception as err:  # detached in another context: nothing to restore there
                log_once("detaching the task context", err)
        self.finish(exc)

    async def __aenter__(self) -> Task:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    def start(
        self,
        *,
        parent: Task | None,
        parent_context: otel_context.Context | None,
        with_span: bool = True,
        carried: Carried | None = None,
    ) -> None:
        """Resolve the task's settings, start its clock and its span (``with_span``),
        and make its context (:attr:`context`). ``carried``: what a joined task's
        baggage says about its budget."""
        self.parent = parent
        found = guard.resolve_settings(
            settings.config(),
            self.name,
            self.attributes,
            settings.resource_attributes(),
            explicit=self._explicit,
            warn_at=self._warn_at_arg,
            on_exceed=self._on_exceed_arg,
            carried=carried,
        )
        self.limits, self.warn_at, self._mode = found.limits, found.warn_at, found.mode
        self._hook, self._policies = found.hook, found.policies
        if self._spend.started_at is None:
            self._spend.started_at = self._clock()
        ctx = parent_context if parent_context is not None else otel_context.Context()
        if with_span:
            try:
                self._span = settings.tracer().start_span(
                    f"{_INVOKE_AGENT} {self.name}",
                    context=ctx,
                    kind=SpanKind.INTERNAL,
                    attributes=self._start_attributes(),
                )
                ctx = trace.set_span_in_context(self._span, ctx)
            except Exception as exc:
                log_once("starting the task span", exc)
        ctx = otel_context.set_value(TASK_KEY, self, ctx)
        for key, value in self.baggage(with_spend=False).items():
            ctx = baggage.set_baggage(key, value, ctx)
        self._context = ctx
        STATE.live[self.task_id] = self

    def carry_spend(
        self, *, cost_usd: float, tokens: int, iterations: int, tool_calls: int, elapsed_s: float
    ) -> None:
        """Count on from what the task spent in the process that passed it on."""
        with self._lock:
            spend = self._spend
            spend.cost += Cost(total_usd=cost_usd)
            spend.carried_tokens += tokens
            spend.iterations += iterations
            spend.tool_calls += tool_calls
            spend.started_at = (spend.started_at or 0.0) - elapsed_s

    def _start_attributes(self) -> dict[str, AttributeValue]:
        out: dict[str, AttributeValue] = {
            gen_ai.GEN_AI_OPERATION_NAME: _INVOKE_AGENT,
            gen_ai.GEN_AI_AGENT_NAME: self.name,
            attrs.TASK_ID: self.task_id,
            attrs.TASK_NAME: self.name,
            TASK_KIND: self.kind,
        }
        if self.parent is not None:
            out[TASK_PARENT_ID] = self.parent.task_id
        for key, value in self.attributes.items():
            out.setdefault(key, value)
        out.update(self._budget_attributes())
        return out

    def _budget_attributes(self) -> dict[str, AttributeValue]:
        out: dict[str, AttributeValue] = {LIMIT_KEYS[k]: v for k, v in self.limits.items()}
        out[BUDGET_WARN_AT] = self.warn_at
        out[BUDGET_ON_EXCEED] = "hook" if self._hook is not None else self._mode
        out[BUDGET_RESERVE] = self.reserve
        if self._policies:
            out[BUDGET_POLICIES] = list(self._policies)
        return out

    def baggage(self, *, with_spend: bool) -> dict[str, str]:
        """The baggage entries that carry this task to another process: id, name and
        budget settings, and (``with_spend``) what it has spent so far."""
        out = {attrs.BAGGAGE_TASK_ID: self.task_id, attrs.TASK_NAME: self.name}
        for limit, value in self.limits.items():
            out[LIMIT_KEYS[limit]] = repr(value)
        out[BUDGET_WARN_AT] = repr(self.warn_at)
        out[BUDGET_ON_EXCEED] = "alert" if self._mode == "alert" and self._hook is None else "kill"
        if with_spend:
            with self._lock:
                spend = self._spend
                out[TASK_COST_USD] = repr(spend.cost.total_usd)
                out[TASK_TOKENS] = str(spend.tokens)
                out[TASK_ITERATIONS] = str(spend.iterations)
                out[TASK_TOOL_CALLS] = str(spend.tool_calls)
                out[TASK_ELAPSED_S] = repr(self._elapsed())
        return out

    def finish(self, exc: BaseException | None) -> None:
        """End the task (``exc``: what ended it, if it failed): its outcome, its span with
        the totals. Never raises."""
        try:
            now = self._clock()
            with self._lock:
                self._spend.ended_at = now
                events = self._limit_events(now)
                events += self._batch_events(self._tools.close(now, force=True))
                if self.killed_by is not None:
                    self._outcome, self._stopped_by = "stopped", self.killed_by
                elif isinstance(exc, BudgetExceeded):
                    self._outcome, self._stopped_by = "stopped", exc.limit
                elif exc is not None:
                    self._outcome = "error"
                else:
                    self._outcome = "done"
                end_attributes = self._end_attributes()
            STATE.live.pop(self.task_id, None)
            span = self._span
            if span is None:
                return
            self._emit(events)
            span.set_attributes(end_attributes)
            if exc is not None:
                span.record_exception(exc)
                span.set_attribute(error_attributes.ERROR_TYPE, error_type(exc))
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:500]))
            span.end()
            self._span_closed = True
        except Exception as err:
            log_once("ending the task span", err)

    def _end_attributes(self) -> dict[str, AttributeValue]:
        spend = self._spend
        cost = spend.cost
        tools = self._tools
        out: dict[str, AttributeValue] = dict(spend.usage.total_attributes())
        out.update(
            {
                TASK_ITERATIONS: spend.iterations,
                TASK_TOOL_CALLS: spend.tool_calls,
                TASK_COST_USD: cost.total_usd,
                TASK_COST_INPUT_USD: cost.input_usd,
                TASK_COST_OUTPUT_USD: cost.output_usd,
                TASK_COST_CACHE_READ_USD: cost.cache_read_usd,
                TASK_COST_CACHE_WRITE_USD: cost.cache_write_usd,
                TASK_COST_CACHE_SAVINGS_USD: cost.cache_savings_usd,
                TASK_UNPRICED_CALLS: spend.unpriced_calls,
                TASK_ESTIMATED_CALLS: spend.estimated_calls,
                TASK_REQUESTED_TOOL_CALLS: spend.requested_tool_calls,
                TASK_DURATION_S: self._elapsed(),
                TASK_OUTCOME: self._outcome,
                TASK_TOOL_BATCHES: tools.batches,
                TASK_TOOL_BATCHES_SEQUENTIAL: tools.sequential,
                TASK_TOOL_SAVEABLE_S: tools.saveable_s,
                TASK_TOOL_PARALLELISM: tools.parallelism,
                attrs.BUDGET_STATE: self.budget_state,
                BUDGET_GRANTS: self.grants,
            }
        )
        if self._stopped_by is not None:
            out[TASK_STOPPED_BY] = self._stopped_by
        out.update(self._budget_attributes())
        return out

    # -- state ---------------------------------------------------------------------

    @property
    def context(self) -> otel_context.Context | None:
        """The context calls inside this task run in (its span and baggage), once started."""
        return self._context

    @property
    def budget_state(self) -> BudgetState:
        return guard.budget_state(
            killed=self.killed_by is not None, exceeded=bool(self._exceeded), warned=bool(self._warned)
        )

    @property
    def usage(self) -> Usage:
        """The task's token totals."""
        return self._spend.usage

    @property
    def cost(self) -> Cost:
        """The task's cost so far: the sum of its calls' costs."""
        return self._spend.cost

    @property
    def cost_usd(self) -> float:
        return self._spend.cost.total_usd

    @property
    def iterations(self) -> int:
        """Model calls admitted."""
        return self._spend.iterations

    @property
    def tool_calls(self) -> int:
        return self._spend.tool_calls

    @property
    def unpriced_calls(self) -> int:
        return self._spend.unpriced_calls

    @property
    def estimated_calls(self) -> int:
        return self._spend.estimated_calls

    @property
    def started_at(self) -> float | None:
        return self._spend.started_at

    @property
    def ended_at(self) -> float | None:
        return self._spend.ended_at

    @property
    def limits(self) -> Limits:
        return self._limits

    @limits.setter
    def limits(self, value: Limits) -> None:
        self._limits = value
        self._limit_items = tuple(value.items())

    @property
    def limit_items(self) -> tuple[tuple[str, float], ...]:
        """The limits in force, as (name, value) pairs."""
        return self._limit_items

    def _elapsed(self, now: float | None = None) -> float:
        """Wall time at ``now``; by default at the end, or now while running."""
        spend = self._spend
        if spend.started_at is None:
            return 0.0
        if now is None:
            now = spend.ended_at if spend.ended_at is not None else self._clock()
        return spend.elapsed(now)

    def _limit_events(self, now: float | None = None) -> list[_Event]:
        """Newly crossed warn thresholds and reached limits (call with the lock held)."""
        if not self._limit_items:
            return []
        if now is None:
            now = self._spend.ended_at if self._spend.ended_at is not None else self._clock()
        events = []
        for crossing in guard.crossings(
            self._limit_items, self._spend, now, self.warn_at, self._warned, self._exceeded
        ):
            if crossing.event == EVENT_EXCEEDED:
                self._exceeded.add(crossing.limit)
            self._warned.add(crossing.limit)
            events.append(self._event(crossing.event, crossing.limit, crossing.spent, crossing.limit_value))
        return events

    def _event(self, name: str, limit: str, spent: float, value: float) -> _Event:
        what = {
            EVENT_WARN: f"passed {self.warn_at:.0%} of",
            EVENT_EXCEEDED: "reached",
            EVENT_KILLED: "stopped at",
        }
        text = f'task "{self.name}" (id {self.task_id}) {what.get(name, name)} {limit}: ' + describe(
            limit, spent, value
        )
        return name, {BUDGET_LIMIT: limit, BUDGET_SPENT: float(spent), BUDGET_LIMIT_VALUE: float(value)}, text

    @staticmethod
    def _batch_events(tallies: list[BatchTally]) -> list[_Event]:
        # Only batches of two or more tools get an event: one tool has nothing to overlap.
        return [(EVENT_TOOL_BATCH, t.event_attributes(), "") for t in tallies if len(t.tools) >= 2]

    def _emit(self, events: list[_Event]) -> None:
        for name, event_attrs, text in events:
            if name != EVENT_TOOL_BATCH:
                budget_logger.warning(text)
            if self._span is not None and not self._span_closed:
                self._span.add_event(name, event_attrs)

    def summary(self) -> TaskSummary:
        """The task's totals so far (final once it has ended)."""
        with self._lock:
            spend = self._spend
            return TaskSummary(
                task_id=self.task_id,
                name=self.name,
                kind=self.kind,
                outcome=self._outcome,
                stopped_by=self._stopped_by or self.killed_by,
                budget_state=self.budget_state,
                iterations=spend.iterations,
                input_tokens=spend.usage.input_tokens,
                output_tokens=spend.usage.output_tokens,
                cache_read_tokens=spend.usage.cache_read_input_tokens,
                cache_write_tokens=spend.usage.cache_creation_input_tokens,
                cost_usd=spend.cost.total_usd,
                cache_savings_usd=spend.cost.cache_savings_usd,
                unpriced_calls=spend.unpriced_calls,
                tool_calls=spend.tool_calls,
                tool_batches=self._tools.batches,
                sequential_tool_batches=self._tools.sequential,
                tool_saveable_seconds=self._tools.saveable_s,
                wall_seconds=self._elapsed(),
                limits=self.limits,
                grants=self.grants,
                estimated_calls=spend.estimated_calls,
                requested_tool_calls=spend.requested_tool_calls,
            )

    def kill(self, reason: str = "killed") -> None:
        """Refuse this task's next model calls (e.g. a kill decision from the collector)."""
        self._kill_reason = reason

    @property
    def killed_reason(self) -> str | None:
        """Why :meth:`kill` was called, if it was."""
        return self._kill_reason

    def chain(self) -> list[Task]:
        """This task and the tasks around it, innermost first."""
        out: list[Task] = []
        node: Task | None = self
        while node is not None:
            out.append(node)
            node = node.parent
        return out

    # -- the guard -----------------------------------------------------------------

    def _state(self, refused: guard.Refusal) -> TaskState:
        with self._lock:
            spend = self._spend
            return TaskState(
                task_id=self.task_id,
                task_name=self.name,
                limit=refused.limit,
                spent=refused.spent,
                limit_value=refused.limit_value,
                limits=self.limits,
                iterations=spend.iterations,
                input_tokens=spend.usage.input_tokens,
                output_tokens=spend.usage.output_tokens,
                cost_usd=spend.cost.total_usd,
                tool_calls=spend.tool_calls,
                elapsed_seconds=self._elapsed(),
                worst_case_usd=refused.worst_case_usd,
                grants=self.grants,
            )

    def _ask_hook(self, refused: guard.Refusal) -> bool:
        """Escalate to ``on_exceed``; True when it granted budget."""
        assert self._hook is not None
        state = self._state(refused)
        try:
            answer = self._hook(state)
        except BudgetExceeded:
            raise
        except Exception as exc:
            self._refuse(refused, cause=exc)
        if answer is None:
            return False
        if not isinstance(answer, Grant | Limits):
            problem = TypeError(f"on_exceed must return a Grant, Limits or None, got {type(answer).__name__}")
            self._refuse(refused, cause=problem)
        with self._lock:
            self.limits, changed, reason = guard.apply_answer(self.limits, answer)
            self.grants += 1
            for name in changed:
                self._warned.discard(name)
                self._exceeded.discard(name)
        event_attrs: dict[str, AttributeValue] = {
            BUDGET_LIMIT: refused.limit,
            BUDGET_SPENT: float(refused.spent),
        }
        for name, amount in changed.items():
            event_attrs[LIMIT_KEYS[name]] = amount
        if reason:
            event_attrs[BUDGET_GRANT_REASON] = reason
        budget_logger.warning(
            'task "%s" (id %s) was granted more budget: %s', self.name, self.task_id, changed
        )
        if self._span is not None and not self._span_closed:
            self._span.add_event(EVENT_GRANT, event_attrs)
        return True

    def _refuse(self, refused: guard.Refusal, cause: BaseException | None = None) -> None:
        limit, spent, value, worst = refused
        first = False
        with self._lock:
            if self.killed_by is None:
                self.killed_by = limit
                first = True
        error = BudgetExceeded(
            task_id=self.task_id,
            task_name=self.name,
            limit=limit,
            spent=spent,
            limit_value=value,
            worst_case_usd=worst,
            reason=self._kill_reason,
        )
        if first:
            budget_logger.warning("%s", error)
            if self._span is not None and not self._span_closed:
                attributes = {
                    BUDGET_LIMIT: limit,
                    BUDGET_SPENT: float(spent),
                    BUDGET_LIMIT_VALUE: float(value),
                }
                if worst is not None:
                    attributes[BUDGET_WORST_CASE_USD] = worst
                self._span.add_event(EVENT_KILLED, attributes)
        raise error from cause

    def admit(self, worst: float | None) -> tuple[int, float]:
        """Check this task's limits for one more model call and count it; raises
        :class:`BudgetExceeded`. ``worst``: the call's worst-case price, for ``reserve``.
        Returns (iteration number, USD reserved)."""
        asked: set[str] = set()
        while True:
            now = self._clock()
            with self._lock:
                refused = guard.refusal(
                    self._limit_items,
                    self._spend,
                    now,
                    killed=self._kill_reason is not None,
                    max_usd=self._limits.max_usd,
                    worst=worst if self.reserve else None,
                )
                if refused is None or (self._mode == "alert" and refused.limit != KILLED):
                    spend = self._spend
                    spend.iterations += 1
                    reserved = worst if (self.reserve and worst is not None) else 0.0
                    spend.reserved_usd += reserved
                    iteration = spend.iterations
                    events = self._limit_events(now)
                    break
            if self._hook is not None and refused.limit != KILLED and refused.limit not in asked:
                asked.add(refused.limit)
                if self._ask_hook(refused):
                    continue
            self._refuse(refused)
        self._emit(events)
        return iteration, reserved

    def count_call(self) -> int | None:
        """Admit a model call to a task with nothing to check, as a counter increment:
        no limits, no ``on_exceed`` hook, no ``reserve``, no task around it, never
        killed, warned or exceeded, no tool batch open (the automatic process task under
        ``opentelemetry-instrument`` with no policy). Returns the iteration number, or
        None when the task needs :meth:`admit`."""
        if (
            self._limit_items
            or self.parent is not None
            or self._hook is not None
            or self.reserve
            or self._kill_reason is not None
            or self.killed_by is not None
            or self._warned
            or self._exceeded
            or not self._tools.idle
        ):
            return None
        with self._lock:
            spend = self._spend
            spend.iterations += 1
            return spend.iterations

    def unadmit(self, reserved: float) -> None:
        """Take back an :meth:`admit` (a task around this one refused the call)."""
        with self._lock:
            self._spend.iterations -= 1
            self._spend.reserved_usd -= reserved

    def account(
        self,
        usage: Usage | None,
        cost: Cost | None,
        reserved: float,
        *,
        estimated: bool = False,
        tool_calls: int = 0,
    ) -> None:
        """Add one finished call's usage and cost (None: no usage, or no known price),
        and release what :meth:`admit` reserved for it. ``estimated``: the usage is
        otel-llm's estimate, counted in ``estimated_calls``; ``tool_calls``: the tool
        calls its response asked for."""
        with self._lock:
            spend = self._spend
            if reserved:
                spend.reserved_usd = max(spend.reserved_usd - reserved, 0.0)
            if tool_calls:
                spend.requested_tool_calls += tool_calls
            if usage is not None:
                spend.usage += usage
                if estimated:
                    spend.estimated_calls += 1
                if cost is None:
                    spend.unpriced_calls += 1
            if cost is not None:
                spend.cost += cost
            events = self._limit_events() if self._limit_items else None
        if events:
            self._emit(events)

    # -- tools ---------------------------------------------------------------------

    def tool_started(self, name: str, innermost: bool) -> tuple[ToolRecord | None, int]:
        """Count a tool call (and, in the innermost task, put it in the open batch).
        Returns its record (innermost only) and the model call it follows."""
        now = self._clock()
        with self._lock:
            self._spend.tool_calls += 1
            iteration = self._spend.iterations
            record = None
            events: list[_Event] = []
            if innermost:
                record, finished = self._tools.started(name, iteration, now)
                events += self._batch_events(finished)
            events += self._limit_events(now)
        self._emit(events)
        return record, iteration

    def tool_ended(self, record: ToolRecord) -> None:
        now = self._clock()
        with self._lock:
            events = self._batch_events(self._tools.ended(record, now))
        self._emit(events)

    def next_turn(self) -> None:
        """A model call was admitted: the running tool batch takes no more tools."""
        if self._tools.idle:
            # Nothing to close (a call with no tools since the last): no lock, no clock.
            return
        with self._lock:
            events = self._batch_events(self._tools.close(self._clock()))
        self._emit(events)


# -- tasks by id: live ones, and those joined through baggage ------------------------------


def find_live(task_id: str) -> Task | None:
    """The task with this id that started in this process and has not ended."""
    return STATE.live.get(task_id)


def remember(registry: collections.OrderedDict[str, Task], key: str, made: Task) -> Task:
    """Keep ``made`` in an LRU registry of automatic tasks (the oldest one goes)."""
    registry[key] = made
    while len(registry) > AUTO_LRU:
        registry.popitem(last=False)
    return made


def task_in(ctx: otel_context.Context, *, create: bool) -> Task | None:
    """The explicit task of ``ctx``, else the task joined through its baggage (made now
    with ``create``)."""
    found = ctx.get(TASK_KEY)
    if found is not None:
        return found
    task_id = carried_task_id(ctx)
    if task_id is None:
        return None
    return joined_task(task_id, ctx, create=create)


def local_name(ctx: otel_context.Context) -> str:
    """The name a call in ``ctx`` would have without baggage: its trace task's (the active
    span's name) or the process task's."""
    span = trace.get_current_span(ctx)
    name = getattr(span, "name", None) if span.get_span_context().is_valid else None
    return name if isinstance(name, str) and name else settings.process_name()


def joined_task(task_id: str, ctx: otel_context.Context, *, create: bool) -> Task | None:
    """The task ``task_id`` joined through ``ctx``'s baggage (made now with ``create``)."""
    with STATE.auto_lock:
        found = STATE.joined.get(task_id)
        if found is not None:
            STATE.joined.move_to_end(task_id)
            return found
        if not create:
            return None
        joined = from_baggage(task_id, baggage.get_all(ctx), local=local_name(ctx))
        return remember(STATE.joined, task_id, joined)


def from_baggage(task_id: str, carried: Mapping[str, object], *, local: str | None) -> Task:
    """A task joined through baggage: the local settings tightened by the carried ones,
    counting on from the carried spend so far. Never raises for what the baggage holds."""
    name = carried_text(carried.get(attrs.TASK_NAME), attrs.TASK_NAME) or "remote"
    joined = Task(name, task_id=task_id, _kind="joined")
    joined.start(parent=None, parent_context=None, with_span=False, carried=read_carried(carried, local))
    joined.carry_spend(
        cost_usd=carried_number(carried, TASK_COST_USD) or 0.0,
        tokens=int(carried_number(carried, TASK_TOKENS, integer=True) or 0),
        iterations=int(carried_number(carried, TASK_ITERATIONS, integer=True) or 0),
        tool_calls=int(carried_number(carried, TASK_TOOL_CALLS, integer=True) or 0),
        elapsed_s=carried_number(carried, TASK_ELAPSED_S) or 0.0,
    )
    return joined
