"""Tasks, tools and the budget guard: what an agent spends per task, and the brake.

``otel_llm.task(name, max_usd=..., ...)`` (context manager, async context manager or
decorator) opens the task span ``invoke_agent {name}`` (INTERNAL), puts the task id in
W3C baggage and counts, for the task and every task around it, the model calls made by
instrumented SDKs, their tokens and cost, the ``otel_llm.tool`` calls and the wall time.
Before each model call the instrumentation asks :func:`enter_call`, which raises
:class:`~otel_llm.budget.BudgetExceeded` once a limit is spent (rules in
:mod:`otel_llm.budget`).

Which task a model call belongs to, in this order:

1. the task in the current OpenTelemetry context (``with task(...)``; asyncio tasks copy
   the context; threads and ``ThreadPoolExecutor`` work started inside a task get it too:
   :mod:`otel_llm.threads`);
2. a task joined through baggage (``otel_llm.task.id``) from another process: an HTTP
   call with context propagation, or a subprocess started with :func:`subprocess_env`
   (:mod:`otel_llm.carrier`, which also says why baggage may only tighten the guard);
3. with automatic tasks on (:func:`enable_auto_tasks`), the task of the trace, else the
   task of the process (:mod:`otel_llm.autotasks`).

The task itself, its span attributes, budget events and tool batches:
:mod:`otel_llm.accounting`. Settings: :func:`configure` (:mod:`otel_llm.settings`).

Inference spans get (``TaskCall.span_attributes``): ``otel_llm.task.id``,
``otel_llm.task.name``, ``otel_llm.task.iteration``, ``otel_llm.task.parent_ids``
(enclosing tasks, innermost first, when nested), ``otel_llm.budget.state`` (at the
call's start) and the limits in force ``otel_llm.budget.max_usd`` etc.

Tool spans ``execute_tool {name}`` (INTERNAL): ``gen_ai.operation.name`` =
``execute_tool``, ``gen_ai.tool.name``, ``gen_ai.tool.call.id`` (if given),
``otel_llm.task.id`` and ``otel_llm.task.iteration`` (the model call it followed).
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import error_attributes
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from otel_llm import attributes as attrs
from otel_llm import failures
from otel_llm.accounting import (  # noqa: F401  (re-exported)
    _LIVE,
    Clock,
    OnExceed,
    Task,
    TaskSummary,
    _error_type,
    _log_once,
    _ToolRecord,
    budget_logger,
    logger,
)
from otel_llm.attributes import (
    TASK_PARENT_IDS,
)
from otel_llm.autotasks import (
    _Auto,
    _auto_task,
    _task_in,
    auto_tasks_enabled,  # noqa: F401  (re-exported)
    disable_auto_tasks,
    enable_auto_tasks,
    instrumentation_started,
    instrumentation_stopped,
)
from otel_llm.budget import BudgetExceeded, Grant, TaskState
from otel_llm.carrier import _LIMIT_KEYS, _TASK_KEY, _ignored, _inject_env, context_from_env
from otel_llm.settings import SCOPE, _provider, _Settings, _tracer, configure  # noqa: F401  (re-exported)
from otel_llm.usage import Usage

__all__ = [
    "BudgetExceeded",
    "Grant",
    "Task",
    "TaskCall",
    "TaskState",
    "TaskSummary",
    "ToolCall",
    "configure",
    "context_from_env",
    "current_task",
    "disable_auto_tasks",
    "enable_auto_tasks",
    "enter_call",
    "instrumentation_started",
    "instrumentation_stopped",
    "kill_task",
    "subprocess_env",
    "task",
    "tool",
]

_EXECUTE_TOOL = gen_ai.GenAiOperationNameValues.EXECUTE_TOOL.value


task = Task
"""``otel_llm.task(name, *, max_usd=None, ...)``: the same as constructing :class:`Task`."""


def current_task() -> Task | None:
    """The task the current context belongs to (explicit or joined), if any."""
    return _task_in(otel_context.get_current(), create=True)


def kill_task(task_id: str, reason: str = "killed") -> bool:
    """Refuse the next model calls of a running task in this process; False if unknown."""
    found = _LIVE.get(task_id)
    if found is None:
        with _Auto.lock:
            found = _Auto.traces.get(task_id) or _Auto.joined.get(task_id)
            if found is None and _Auto.process is not None and _Auto.process.task_id == task_id:
                found = _Auto.process
    if found is None:
        return False
    found.kill(reason)
    return True


# -- the hook contract with the instrumentation ----------------------------------------


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

    def exit_call(self, usage: Usage | None, cost: Any, error: BaseException | None) -> None:
        """Account the call's usage and cost (``pricing.Cost`` or None) to its tasks.
        Called once when the call ends, a stream's end included; never raises."""
        if self._done:
            return
        self._done = True
        for owner, reserved in self._entries:
            try:
                owner._account(usage, cost, reserved)
            except Exception as exc:
                _log_once("accounting a call to its task", exc)


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
    spent (or, with ``reserve``, would be). Returns None on the fast path (no task, no
    automatic task).

    ``admit=False`` is for reads of work already requested (``responses.retrieve``): the
    call is neither counted as an iteration nor refused, but usage it is the first to see
    is still accounted to the task when it ends."""
    try:
        ctx = otel_context.get_current()
        owner = ctx.get(_TASK_KEY)
        parent_context = None
        if owner is None:
            if not _Auto.enabled and baggage.get_baggage(attrs.BAGGAGE_TASK_ID, ctx) is None:
                return None
            owner, parent_context = _auto_task(ctx)
            if owner is None:
                return None
        chain = owner.chain()
        worst = _worst_case(chain, provider, model, max_tokens, input_estimate) if admit else None
    except BudgetExceeded:
        raise
    except Exception as exc:
        _log_once("finding the task of a model call", exc)
        return None
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
            number, reserved = member._admit(worst)
            if member is owner:
                iteration = number
            entries.append((member, reserved))
    except BudgetExceeded:
        for member, reserved in entries:
            member._unadmit(reserved)
        raise
    except Exception as exc:
        _log_once("checking the task budget", exc)
        for member, reserved in entries:
            member._unadmit(reserved)
        return None
    try:
        owner._next_turn()
        span_attributes: dict[str, AttributeValue] = {
            attrs.TASK_ID: owner.task_id,
            attrs.TASK_NAME: owner.name,
            attrs.TASK_ITERATION: iteration,
            attrs.BUDGET_STATE: state_before,
        }
        if len(chain) > 1:
            span_attributes[TASK_PARENT_IDS] = [t.task_id for t in chain[1:]]
        for limit, value in owner._limit_items:
            span_attributes[_LIMIT_KEYS[limit]] = value
    except Exception as exc:
        _log_once("describing a model call's task", exc)
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
    from otel_llm import pricing

    estimate = input_estimate() if callable(input_estimate) else input_estimate
    cost = pricing.price(Usage(input_tokens=max(estimate, 0), output_tokens=max_tokens or 0), model, provider)
    return None if cost is None else cost.total_usd


# -- crossing process boundaries -------------------------------------------------------


def subprocess_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``env`` (default ``os.environ``) with ``TRACEPARENT``, ``TRACESTATE`` and
    ``BAGGAGE`` set from the current context, as the OpenTelemetry environment-carrier
    specification describes: a subprocess started with it joins the current task (id,
    limits and the spend so far travel in the baggage)."""
    out = dict(os.environ if env is None else env)
    ctx = otel_context.get_current()
    owner = _task_in(ctx, create=False)
    span_context = trace.get_current_span(ctx).get_span_context()
    if owner is None and span_context.is_valid:
        with _Auto.lock:
            owner = _Auto.traces.get(format(span_context.trace_id, "032x"))
    elif owner is None and _Auto.process is not None:
        owner = _Auto.process
        ctx = _Auto.process_context or ctx
    if owner is not None:
        for key, value in owner._baggage(with_spend=True).items():
            ctx = baggage.set_baggage(key, value, ctx)
    return _inject_env(out, ctx)


# -- tools -----------------------------------------------------------------------------


class ToolCall:
    """An ``execute_tool {name}`` span, counted toward the current task. Made by
    :func:`tool`: ``with``/``async with`` it once, or decorate a function."""

    def __init__(
        self, name: str, *, call_id: str | None = None, attributes: Mapping[str, AttributeValue] | None = None
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("otel_llm.tool: name must be a non-empty string")
        self.name = name
        self.call_id = call_id
        self.attributes = dict(attributes or {})
        self._span: trace.Span | None = None
        self._token: object | None = None
        self._owner: Task | None = None
        self._record: _ToolRecord | None = None
        self._iteration = 0
        self._entered = False

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        name, attributes = self.name, self.attributes
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                async with ToolCall(name, attributes=attributes):
                    return await fn(*args, **kwargs)

            return run_async

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with ToolCall(name, attributes=attributes):
                return fn(*args, **kwargs)

        return run

    def __enter__(self) -> ToolCall:
        if self._entered:
            raise RuntimeError("an otel_llm.tool can be entered once; call otel_llm.tool(...) again")
        self._entered = True
        try:
            ctx = otel_context.get_current()
            owner = _task_in(ctx, create=True)
            if owner is None and not trace.get_current_span(ctx).get_span_context().is_valid:
                owner = _Auto.process
                if owner is not None and _Auto.process_context is not None:
                    ctx = _Auto.process_context
            out: dict[str, AttributeValue] = {
                gen_ai.GEN_AI_OPERATION_NAME: _EXECUTE_TOOL,
                gen_ai.GEN_AI_TOOL_NAME: self.name,
            }
            if self.call_id:
                out[gen_ai.GEN_AI_TOOL_CALL_ID] = self.call_id
            if owner is not None:
                self._owner = owner
                for member in owner.chain():
                    record, iteration = member._tool_started(self.name, member is owner)
                    if member is owner:
                        self._record, self._iteration = record, iteration
                out[attrs.TASK_ID] = owner.task_id
                out[attrs.TASK_ITERATION] = self._iteration
            out.update(self.attributes)
            self._span = _tracer().start_span(
                f"{_EXECUTE_TOOL} {self.name}", context=ctx, kind=SpanKind.INTERNAL, attributes=out
            )
            self._token = otel_context.attach(trace.set_span_in_context(self._span, ctx))
        except Exception as exc:
            _log_once("starting a tool span", exc)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            if self._token is not None:
                otel_context.detach(self._token)
                self._token = None
            if self._owner is not None and self._record is not None:
                self._owner._tool_ended(self._record)
            span = self._span
            if span is not None:
                if exc is not None:
                    span.record_exception(exc)
                    span.set_attribute(error_attributes.ERROR_TYPE, _error_type(exc))
                    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:500]))
                span.end()
        except Exception as err:
            _log_once("ending a tool span", err)

    async def __aenter__(self) -> ToolCall:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)


def tool(
    name: str, *, call_id: str | None = None, attributes: Mapping[str, AttributeValue] | None = None
) -> ToolCall:
    """A tool call: ``with otel_llm.tool("search"):``, ``async with``, or ``@otel_llm.tool("search")``.
    ``call_id`` is the model's tool-call id (``gen_ai.tool.call.id``)."""
    return ToolCall(name, call_id=call_id, attributes=attributes)


def _reset_for_tests() -> None:
    """Forget the configuration, the automatic tasks and the live tasks (tests only)."""
    with _Auto.lock:
        _Auto.enabled = 0
        _Auto.process = None
        _Auto.process_context = None
        _Auto.made = None
        _Auto.env_context = None
        _Auto.traces.clear()
        _Auto.joined.clear()
    with _Settings.lock:
        _Settings.config = None
        _Settings.tracer_provider = None
        _Settings.resource_cache = None
    _LIVE.clear()
    failures.forget(logger)
    _ignored.clear()
