"""The task: one unit of agent work, its counters, its limits and the guard that refuses a
model call once a limit is spent (rules in :mod:`otel_llm.budget`), and its span
``invoke_agent {name}``. Tasks are opened with :func:`otel_llm.tasks.task` or made on
their own (:mod:`otel_llm.autotasks`).

Task span attributes, set at start: ``gen_ai.operation.name`` = ``invoke_agent``,
``gen_ai.agent.name``, ``otel_llm.task.id``, ``otel_llm.task.name``,
``otel_llm.task.parent_id`` (nested), ``otel_llm.task.kind`` (explicit, trace, process);
at the end:

==========================================  ======  ===========================================
``otel_llm.task.iterations``                int     model calls admitted
``otel_llm.task.usage.input_tokens`` etc.   int     token totals (``Usage.total_attributes``; not
                                                    ``gen_ai.usage.*``, which would count each
                                                    call twice in a sum over spans)
``otel_llm.task.cost.usd``                  double  total cost (``.input_usd``, ``.output_usd``,
                                                    ``.cache_read_usd``, ``.cache_write_usd``,
                                                    ``.cache_savings_usd``: its parts)
``otel_llm.task.unpriced_calls``            int     calls with no known price (cost is a floor)
``otel_llm.task.tool_calls``                int     ``otel_llm.tool`` calls
``otel_llm.task.duration_s``                double  wall time, by the task's clock
``otel_llm.task.outcome``                   string  done | stopped | error
``otel_llm.task.stopped_by``                string  the limit that stopped it (``max_usd``...)
``otel_llm.task.tool_batches``              int     tool batches (tools after one model call)
``otel_llm.task.tool_batches.sequential``   int     batches of >= 2 tools that never overlapped
``otel_llm.task.tool_saveable_s``           double  time those would have saved in parallel
``otel_llm.task.tool_parallelism``          double  sum of tool durations / sum of batch walls
``otel_llm.budget.state``                   string  ok | warn | exceeded | killed
``otel_llm.budget.max_usd`` etc.            number  each limit in force (at the end)
``otel_llm.budget.warn_at``                 double  the warning fraction
``otel_llm.budget.on_exceed``               string  kill | alert | hook
``otel_llm.budget.reserve``                 bool    worst-case reservation on
``otel_llm.budget.policies``                string[] policies that contributed limits
``otel_llm.budget.grants``                  int     budget granted by ``on_exceed``
==========================================  ======  ===========================================

Budget state: ``warn`` once any limit crossed ``warn_at``; ``exceeded`` once any limit
was reached; ``killed`` once the guard refused a call. Task span events:
``otel_llm.budget.warn`` and ``otel_llm.budget.exceeded`` (once per limit value),
``otel_llm.budget.killed`` (a call was refused), ``otel_llm.budget.grant``, each with
``otel_llm.budget.limit``, ``otel_llm.budget.spent``, ``otel_llm.budget.limit_value``;
and ``otel_llm.tool.batch`` per batch of two or more tools, with
``otel_llm.tool.batch.iteration`` (the model call the batch followed),
``.size``, ``.tools``, ``.duration_s`` (sum), ``.wall_s``, ``.parallelism``,
``.sequential``, ``.saveable_s`` (sum minus the longest: zero when fully parallel).

Tool batches: the tools a task starts after model call *n* and before call *n + 1* are
one batch (the model asked for them together, so they are independent). A batch is
*sequential* when it has two or more tools and no two of them overlapped in time. Tool
calls are counted toward every enclosing task; batches belong to the innermost one.

Calls made after a task ended (a thread that outlived it) still count toward it, and are
checked against its limits, but no longer show on its span.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import error_attributes
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from otel_llm import attributes as attrs
from otel_llm import failures
from otel_llm.attributes import (
    BUDGET_GRANTS,
    BUDGET_LIMIT,
    BUDGET_LIMIT_VALUE,
    BUDGET_ON_EXCEED,
    BUDGET_POLICIES,
    BUDGET_RESERVE,
    BUDGET_SPENT,
    BUDGET_WARN_AT,
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
    TASK_ITERATIONS,
    TASK_KIND,
    TASK_OUTCOME,
    TASK_PARENT_ID,
    TASK_STOPPED_BY,
    TASK_TOKENS,
    TASK_TOOL_BATCHES,
    TASK_TOOL_BATCHES_SEQUENTIAL,
    TASK_TOOL_CALLS,
    TASK_TOOL_PARALLELISM,
    TASK_TOOL_SAVEABLE_S,
    TASK_UNPRICED_CALLS,
    TOOL_BATCH,
)
from otel_llm.budget import BudgetExceeded, Grant, TaskState, describe
from otel_llm.carrier import _LIMIT_KEYS, _TASK_KEY
from otel_llm.policy import BudgetConfig, Limits, with_grant
from otel_llm.settings import _config, _resource_attributes, _tracer
from otel_llm.threads import _install_thread_propagation
from otel_llm.usage import Usage

if TYPE_CHECKING:
    from otel_llm.carrier import _Carried

logger = logging.getLogger("otel_llm.tasks")
budget_logger = logging.getLogger("otel_llm.budget")

_INVOKE_AGENT = gen_ai.GenAiOperationNameValues.INVOKE_AGENT.value

OnExceed = Callable[[TaskState], "Grant | Limits | None"] | Literal["kill", "alert"]
Clock = Callable[[], float]

# -- telemetry-path failures ---------------------------------------------------------


def _log_once(what: str, exc: BaseException | None = None) -> None:
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


# -- tool batches ----------------------------------------------------------------------


class _ToolRecord:
    __slots__ = ("batch", "end", "name", "start")

    def __init__(self, name: str, start: float, batch: _Batch) -> None:
        self.name = name
        self.start = start
        self.end: float | None = None
        self.batch = batch


class _Batch:
    __slots__ = ("closed", "iteration", "records")

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration
        self.records: list[_ToolRecord] = []
        self.closed = False

    @property
    def done(self) -> bool:
        return self.closed and all(r.end is not None for r in self.records)


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
        on_exceed: OnExceed | None = None,
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
            "max_usd": max_usd,
            "max_tokens": max_tokens,
            "max_iterations": max_iterations,
            "max_seconds": max_seconds,
            "max_tool_calls": max_tool_calls,
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
        self._hook: Callable[[TaskState], Grant | Limits | None] | None = None
        self._mode = "kill"
        self._policies: tuple[str, ...] = ()

        self.iterations = 0
        self.tool_calls = 0
        # input, output, cache read, cache write, 5m write, 1h write, reasoning (Usage order)
        self._usage = Usage()
        self.cost_usd = 0.0
        self._cost_parts = [0.0, 0.0, 0.0, 0.0, 0.0]  # input, output, cache read, cache write, savings
        self.unpriced_calls = 0
        self._token_offset = 0
        self._reserved_usd = 0.0
        self.grants = 0
        self._warned: set[str] = set()
        self._exceeded: set[str] = set()
        self.killed_by: str | None = None
        self._kill_reason: str | None = None
        self._outcome = "running"
        self._stopped_by: str | None = None

        self._batch: _Batch | None = None
        """The batch that takes new tools (those started since the last model call)."""
        self._closed_batches: list[_Batch] = []
        """Batches a model call closed while some of their tools still ran."""
        self._tool_batches = 0
        self._sequential_batches = 0
        self._saveable = 0.0
        self._tool_time = 0.0
        self._batch_wall = 0.0

        self.started_at: float | None = None
        self.ended_at: float | None = None
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
        # The enclosing task may be one joined through baggage, made by otel_llm.autotasks,
        # which builds on this module: imported here so that module loads after this one.
        from otel_llm.autotasks import _task_in

        ctx = otel_context.get_current()
        self._start(parent=_task_in(ctx, create=True), parent_context=ctx)
        _install_thread_propagation()
        self._token = otel_context.attach(self._context)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        token, self._token = self._token, None
        if token is not None:
            try:
                otel_context.detach(token)
            except Exception as err:  # detached in another context: nothing to restore there
                _log_once("detaching the task context", err)
        self._finish(exc)

    async def __aenter__(self) -> Task:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    def _resolve_settings(self, config: BudgetConfig, carried: _Carried | None = None) -> None:
        resource = _resource_attributes()
        resolved = config.resolve(self.name, self.attributes, resource)
        limits, warn_at, mode = resolved.limits, resolved.warn_at, resolved.on_exceed
        policies = resolved.policies
        if carried is not None:
            # Baggage only tightens (otel_llm.carrier docstring): strictest value per limit, the
            # earliest warning, kill over alert.
            if carried.local_name is not None and carried.local_name != self.name:
                local = config.resolve(carried.local_name, self.attributes, resource)
                limits = limits.strictest(local.limits)
                warn_at = min(warn_at, local.warn_at)
                mode = "kill" if "kill" in (mode, local.on_exceed) else "alert"
                policies += tuple(p for p in local.policies if p not in policies)
            limits = limits.strictest(carried.limits)
            if carried.warn_at is not None:
                warn_at = min(warn_at, carried.warn_at)
            if carried.on_exceed == "kill":
                mode = "kill"
        self.limits = self._explicit.over(limits)
        self.warn_at = self._warn_at_arg if self._warn_at_arg is not None else warn_at
        self._policies = policies
        arg = self._on_exceed_arg
        if callable(arg):
            self._hook, self._mode = arg, "kill"
        else:
            self._mode = arg or mode

    def _start(
        self,
        *,
        parent: Task | None,
        parent_context: otel_context.Context | None,
        with_span: bool = True,
        carried: _Carried | None = None,
    ) -> None:
        self.parent = parent
        self._resolve_settings(_config(), carried)
        if self.started_at is None:
            self.started_at = self._clock()
        ctx = parent_context if parent_context is not None else otel_context.Context()
        if with_span:
            try:
                self._span = _tracer().start_span(
                    f"{_INVOKE_AGENT} {self.name}",
                    context=ctx,
                    kind=SpanKind.INTERNAL,
                    attributes=self._start_attributes(),
                )
                ctx = trace.set_span_in_context(self._span, ctx)
            except Exception as exc:
                _log_once("starting the task span", exc)
        ctx = otel_context.set_value(_TASK_KEY, self, ctx)
        for key, value in self._baggage(with_spend=False).items():
            ctx = baggage.set_baggage(key, value, ctx)
        self._context = ctx
        _LIVE[self.task_id] = self

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
        out: dict[str, AttributeValue] = {_LIMIT_KEYS[k]: v for k, v in self.limits.items()}
        out[BUDGET_WARN_AT] = self.warn_at
        out[BUDGET_ON_EXCEED] = "hook" if self._hook is not None else self._mode
        out[BUDGET_RESERVE] = self.reserve
        if self._policies:
            out[BUDGET_POLICIES] = list(self._policies)
        return out

    def _baggage(self, *, with_spend: bool) -> dict[str, str]:
        out = {attrs.BAGGAGE_TASK_ID: self.task_id, attrs.TASK_NAME: self.name}
        for limit, value in self.limits.items():
            out[_LIMIT_KEYS[limit]] = repr(value)
        out[BUDGET_WARN_AT] = repr(self.warn_at)
        out[BUDGET_ON_EXCEED] = "alert" if self._mode == "alert" and self._hook is None else "kill"
        if with_spend:
            with self._lock:
                out[TASK_COST_USD] = repr(self.cost_usd)
                out[TASK_TOKENS] = str(self._tokens())
                out[TASK_ITERATIONS] = str(self.iterations)
                out[TASK_TOOL_CALLS] = str(self.tool_calls)
                out[TASK_ELAPSED_S] = repr(self._elapsed())
        return out

    def _finish(self, exc: BaseException | None) -> None:
        try:
            now = self._clock()
            with self._lock:
                self.ended_at = now
                events = self._limit_events(now)
                events += self._close_batch_locked(now, force=True)
                if self.killed_by is not None:
                    self._outcome, self._stopped_by = "stopped", self.killed_by
                elif isinstance(exc, BudgetExceeded):
                    self._outcome, self._stopped_by = "stopped", exc.limit
                elif exc is not None:
                    self._outcome = "error"
                else:
                    self._outcome = "done"
                end_attributes = self._end_attributes()
            _LIVE.pop(self.task_id, None)
            span = self._span
            if span is None:
                return
            self._emit(events)
            span.set_attributes(end_attributes)
            if exc is not None:
                span.record_exception(exc)
                span.set_attribute(error_attributes.ERROR_TYPE, _error_type(exc))
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:500]))
            span.end()
            self._span_closed = True
        except Exception as err:
            _log_once("ending the task span", err)

    def _end_attributes(self) -> dict[str, AttributeValue]:
        out: dict[str, AttributeValue] = dict(self.usage.total_attributes())
        input_usd, output_usd, read_usd, write_usd, savings_usd = self._cost_parts
        out.update(
            {
                TASK_ITERATIONS: self.iterations,
                TASK_TOOL_CALLS: self.tool_calls,
                TASK_COST_USD: self.cost_usd,
                TASK_COST_INPUT_USD: input_usd,
                TASK_COST_OUTPUT_USD: output_usd,
                TASK_COST_CACHE_READ_USD: read_usd,
                TASK_COST_CACHE_WRITE_USD: write_usd,
                TASK_COST_CACHE_SAVINGS_USD: savings_usd,
                TASK_UNPRICED_CALLS: self.unpriced_calls,
                TASK_DURATION_S: self._elapsed(),
                TASK_OUTCOME: self._outcome,
                TASK_TOOL_BATCHES: self._tool_batches,
                TASK_TOOL_BATCHES_SEQUENTIAL: self._sequential_batches,
                TASK_TOOL_SAVEABLE_S: self._saveable,
                TASK_TOOL_PARALLELISM: self._tool_time / self._batch_wall if self._batch_wall > 0 else 1.0,
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
    def budget_state(self) -> str:
        if self.killed_by is not None:
            return "killed"
        if self._exceeded:
            return "exceeded"
        if self._warned:
            return "warn"
        return "ok"

    @property
    def usage(self) -> Usage:
        """The task's token totals."""
        return self._usage

    @property
    def limits(self) -> Limits:
        return self._limits

    @limits.setter
    def limits(self, value: Limits) -> None:
        self._limits = value
        self._limit_items = tuple(value.items())

    def _tokens(self) -> int:
        return self._usage.total_tokens + self._token_offset

    def _elapsed(self, now: float | None = None) -> float:
        if self.started_at is None:
            return 0.0
        end = now if now is not None else self.ended_at if self.ended_at is not None else self._clock()
        return max(end - self.started_at, 0.0)

    def _spent(self, limit: str, now: float | None = None) -> float:
        if limit == "max_usd":
            return self.cost_usd
        if limit == "max_tokens":
            return self._tokens()
        if limit == "max_iterations":
            return self.iterations
        if limit == "max_seconds":
            return self._elapsed(now)
        return self.tool_calls

    def _limit_events(self, now: float | None = None) -> list[tuple[str, dict[str, AttributeValue], str]]:
        """Newly crossed warn thresholds and reached limits (call with the lock held):
        (event name, attributes, log text) to emit once the lock is released."""
        events = []
        for limit, value in self._limit_items:
            spent = self._spent(limit, now)
            if spent >= value and limit not in self._exceeded:
                self._exceeded.add(limit)
                self._warned.add(limit)
                events.append(self._event(EVENT_EXCEEDED, limit, spent, value))
            elif spent >= self.warn_at * value and limit not in self._warned:
                self._warned.add(limit)
                events.append(self._event(EVENT_WARN, limit, spent, value))
        return events

    def _event(self, name: str, limit: str, spent: float, value: float) -> tuple[str, dict[str, Any], str]:
        what = {
            EVENT_WARN: f"passed {self.warn_at:.0%} of",
            EVENT_EXCEEDED: "reached",
            EVENT_KILLED: "stopped at",
        }
        text = f'task "{self.name}" (id {self.task_id}) {what.get(name, name)} {limit}: ' + describe(
            limit, spent, value
        )
        return name, {BUDGET_LIMIT: limit, BUDGET_SPENT: float(spent), BUDGET_LIMIT_VALUE: float(value)}, text

    def _emit(self, events: list[tuple[str, dict[str, Any], str]]) -> None:
        for name, event_attrs, text in events:
            if name != EVENT_TOOL_BATCH:
                budget_logger.warning(text)
            if self._span is not None and not self._span_closed:
                self._span.add_event(name, event_attrs)

    def summary(self) -> TaskSummary:
        """The task's totals so far (final once it has ended)."""
        with self._lock:
            return TaskSummary(
                task_id=self.task_id,
                name=self.name,
                kind=self.kind,
                outcome=self._outcome,
                stopped_by=self._stopped_by or self.killed_by,
                budget_state=self.budget_state,
                iterations=self.iterations,
                input_tokens=self._usage.input_tokens,
                output_tokens=self._usage.output_tokens,
                cache_read_tokens=self._usage.cache_read_input_tokens,
                cache_write_tokens=self._usage.cache_creation_input_tokens,
                cost_usd=self.cost_usd,
                cache_savings_usd=self._cost_parts[4],
                unpriced_calls=self.unpriced_calls,
                tool_calls=self.tool_calls,
                tool_batches=self._tool_batches,
                sequential_tool_batches=self._sequential_batches,
                tool_saveable_seconds=self._saveable,
                wall_seconds=self._elapsed(),
                limits=self.limits,
                grants=self.grants,
            )

    def kill(self, reason: str = "killed") -> None:
        """Refuse this task's next model calls (e.g. a kill decision from the collector)."""
        self._kill_reason = reason

    def chain(self) -> list[Task]:
        """This task and the tasks around it, innermost first."""
        out: list[Task] = []
        node: Task | None = self
        while node is not None:
            out.append(node)
            node = node.parent
        return out

    # -- the guard -----------------------------------------------------------------

    def _refusal(self, worst: float | None, now: float) -> tuple[str, float, float, float | None] | None:
        """The limit that refuses the next call, with the lock held, or None."""
        if self._kill_reason is not None:
            return ("killed", 0.0, 0.0, None)
        for limit, value in self._limit_items:
            spent = self._spent(limit, now)
            if spent >= value:
                return (limit, spent, value, None)
        if worst is not None and self.limits.max_usd is not None:
            committed = self.cost_usd + self._reserved_usd
            if committed + worst > self.limits.max_usd:
                return ("max_usd", committed, self.limits.max_usd, worst)
        return None

    def _state(self, limit: str, spent: float, value: float, worst: float | None) -> TaskState:
        with self._lock:
            return TaskState(
                task_id=self.task_id,
                task_name=self.name,
                limit=limit,
                spent=spent,
                limit_value=value,
                limits=self.limits,
                iterations=self.iterations,
                input_tokens=self._usage.input_tokens,
                output_tokens=self._usage.output_tokens,
                cost_usd=self.cost_usd,
                tool_calls=self.tool_calls,
                elapsed_seconds=self._elapsed(),
                worst_case_usd=worst,
                grants=self.grants,
            )

    def _ask_hook(self, limit: str, spent: float, value: float, worst: float | None) -> bool:
        """Escalate to ``on_exceed``; True when it granted budget."""
        assert self._hook is not None
        state = self._state(limit, spent, value, worst)
        try:
            answer = self._hook(state)
        except BudgetExceeded:
            raise
        except Exception as exc:
            self._refuse(limit, spent, value, worst, cause=exc)
        if answer is None:
            return False
        if not isinstance(answer, Grant | Limits):
            problem = TypeError(f"on_exceed must return a Grant, Limits or None, got {type(answer).__name__}")
            self._refuse(limit, spent, value, worst, cause=problem)
        if isinstance(answer, Grant):
            increments = answer.increments()
            new_limits = with_grant(self.limits, **increments)
            reason = answer.reason
        else:
            increments = dict(answer.items())
            new_limits = answer
            reason = None
        with self._lock:
            self.limits = new_limits
            self.grants += 1
            for name in increments:
                self._warned.discard(name)
                self._exceeded.discard(name)
        event_attrs: dict[str, AttributeValue] = {BUDGET_LIMIT: limit, BUDGET_SPENT: float(spent)}
        for name, amount in increments.items():
            event_attrs[_LIMIT_KEYS[name]] = amount
        if reason:
            event_attrs["otel_llm.budget.grant_reason"] = reason
        budget_logger.warning(
            'task "%s" (id %s) was granted more budget: %s', self.name, self.task_id, increments
        )
        if self._span is not None and not self._span_closed:
            self._span.add_event(EVENT_GRANT, event_attrs)
        return True

    def _refuse(
        self, limit: str, spent: float, value: float, worst: float | None, cause: BaseException | None = None
    ) -> None:
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
                    attributes["otel_llm.budget.worst_case_usd"] = worst
                self._span.add_event(EVENT_KILLED, attributes)
        raise error from cause

    def _admit(self, worst: float | None) -> tuple[int, float]:
        """Check this task's limits for one more call and count it; raises
        ``BudgetExceeded``. Returns (iteration number, reserved USD)."""
        asked: set[str] = set()
        while True:
            now = self._clock()
            with self._lock:
                refusal = self._refusal(worst if self.reserve else None, now)
                if refusal is None or (self._mode == "alert" and refusal[0] != "killed"):
                    self.iterations += 1
                    reserved = worst if (self.reserve and worst is not None) else 0.0
                    self._reserved_usd += reserved
                    iteration = self.iterations
                    events = self._limit_events(now)
                    break
            limit, spent, value, worst_case = refusal
            if self._hook is not None and limit != "killed" and limit not in asked:
                asked.add(limit)
                if self._ask_hook(limit, spent, value, worst_case):
                    continue
            self._refuse(limit, spent, value, worst_case)
        self._emit(events)
        return iteration, reserved

    def _unadmit(self, reserved: float) -> None:
        with self._lock:
            self.iterations -= 1
            self._reserved_usd -= reserved

    def _account(self, usage: Usage | None, cost: Any, reserved: float) -> None:
        with self._lock:
            self._reserved_usd = max(self._reserved_usd - reserved, 0.0)
            if usage is not None:
                self._usage += usage
                if cost is None:
                    self.unpriced_calls += 1
            if cost is not None:
                self.cost_usd += cost.total_usd
                parts = self._cost_parts
                parts[0] += cost.input_usd
                parts[1] += cost.output_usd
                parts[2] += cost.cache_read_usd
                parts[3] += cost.cache_write_usd
                parts[4] += cost.cache_savings_usd
            events = self._limit_events()
        self._emit(events)

    # -- tools ---------------------------------------------------------------------

    def _close_batch_locked(self, now: float, force: bool = False) -> list[tuple[str, dict[str, Any], str]]:
        """Close the open batch; tally every closed batch whose tools all ended (with
        ``force``, tools still running end now). Call with the lock held."""
        if self._batch is not None:
            self._batch.closed = True
            self._closed_batches.append(self._batch)
            self._batch = None
        events: list[tuple[str, dict[str, Any], str]] = []
        waiting = []
        for batch in self._closed_batches:
            if force:
                for record in batch.records:
                    if record.end is None:
                        record.end = now
            if batch.done:
                events += self._tally(batch)
            else:
                waiting.append(batch)
        self._closed_batches = waiting
        return events

    def _tally(self, batch: _Batch) -> list[tuple[str, dict[str, Any], str]]:
        records = batch.records
        if not records:
            return []
        durations = [max((r.end or r.start) - r.start, 0.0) for r in records]
        total = sum(durations)
        wall = max((r.end or r.start) for r in records) - min(r.start for r in records)
        ordered = sorted(records, key=lambda r: r.start)
        sequential = len(records) >= 2
        latest_end = ordered[0].end or ordered[0].start
        for record in ordered[1:]:
            if record.start < latest_end:
                sequential = False
                break
            latest_end = max(latest_end, record.end or record.start)
        saveable = total - max(durations) if sequential else 0.0
        self._tool_batches += 1
        self._tool_time += total
        self._batch_wall += wall
        if sequential:
            self._sequential_batches += 1
            self._saveable += saveable
        if len(records) < 2:
            return []
        parallelism = total / wall if wall > 0 else 1.0
        event = {
            f"{TOOL_BATCH}.iteration": batch.iteration,
            f"{TOOL_BATCH}.size": len(records),
            f"{TOOL_BATCH}.tools": [r.name for r in records],
            f"{TOOL_BATCH}.duration_s": total,
            f"{TOOL_BATCH}.wall_s": wall,
            f"{TOOL_BATCH}.parallelism": parallelism,
            f"{TOOL_BATCH}.sequential": sequential,
            f"{TOOL_BATCH}.saveable_s": saveable,
        }
        return [(EVENT_TOOL_BATCH, event, "")]

    def _tool_started(self, name: str, innermost: bool) -> tuple[_ToolRecord | None, int]:
        now = self._clock()
        with self._lock:
            self.tool_calls += 1
            iteration = self.iterations
            record = None
            events: list[tuple[str, dict[str, Any], str]] = []
            if innermost:
                if self._batch is not None and self._batch.iteration != iteration:
                    events += self._close_batch_locked(now)
                if self._batch is None:
                    self._batch = _Batch(iteration)
                record = _ToolRecord(name, now, self._batch)
                self._batch.records.append(record)
            events += self._limit_events(now)
        self._emit(events)
        return record, iteration

    def _tool_ended(self, record: _ToolRecord) -> None:
        now = self._clock()
        with self._lock:
            record.end = now
            events: list[tuple[str, dict[str, Any], str]] = []
            batch = record.batch
            if batch.done and batch in self._closed_batches:
                self._closed_batches.remove(batch)
                events = self._tally(batch)
        self._emit(events)

    def _next_turn(self) -> None:
        """A model call was admitted: the running tool batch takes no more tools."""
        if self._batch is None and not self._closed_batches:
            # Nothing to close (a call with no tools since the last): no lock, no clock.
            return
        with self._lock:
            events = self._close_batch_locked(self._clock())
        self._emit(events)


_LIVE: weakref.WeakValueDictionary[str, Task] = weakref.WeakValueDictionary()


def _error_type(error: BaseException) -> str:
    if isinstance(error, BudgetExceeded):
        return "otel_llm.BudgetExceeded"
    return type(error).__qualname__
