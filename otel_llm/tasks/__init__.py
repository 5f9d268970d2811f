"""Tasks, tools and the budget guard: what an agent spends per task, and the brake.

``otel_llm.task(name, max_usd=..., ...)`` (context manager, async context manager or
decorator) opens the task span ``invoke_agent {name}`` (INTERNAL), puts the task id in
W3C baggage and counts, for the task and every task around it, the model calls made by
instrumented SDKs, their tokens and cost, the ``otel_llm.tool`` calls and the wall time.
Before each model call the instrumentation asks :func:`enter_call`, which raises
:class:`~otel_llm.tasks.budget.BudgetExceeded` once a limit is spent (rules in
:mod:`otel_llm.tasks.budget`).

Which task a model call belongs to, in this order:

1. the task in the current OpenTelemetry context (``with task(...)``; asyncio tasks copy
   the context; threads and ``ThreadPoolExecutor`` work started inside a task get it too:
   :mod:`otel_llm.tasks.propagation`);
2. a task joined through baggage (``otel_llm.task.id``) from another process: an HTTP
   call with context propagation, or a subprocess started with :func:`subprocess_env`
   (:mod:`otel_llm.tasks.propagation`, which also says why baggage may only tighten the
   guard);
3. with automatic tasks on (:func:`enable_auto_tasks`), the task of the trace, else the
   task of the process (:mod:`otel_llm.tasks.auto`).

The package's modules, each used by the others through named functions only:

- :mod:`~otel_llm.tasks.budget`: the vocabulary (limits, :class:`BudgetExceeded`,
  :class:`Grant`, :class:`TaskState`, the error-type rule);
- :mod:`~otel_llm.tasks.guard`: the guard's decisions, pure functions of spend and settings;
- :mod:`~otel_llm.tasks.toolbatches`: tool-batch analytics, a pure tally;
- :mod:`~otel_llm.tasks.task`: the task, its counters, its span and budget events, and
  tasks joined through baggage;
- :mod:`~otel_llm.tasks.auto`: which task owns a call; automatic tasks per trace and process;
- :mod:`~otel_llm.tasks.calls` and :mod:`~otel_llm.tasks.tools`: the instrumentation hook
  and tool spans;
- :mod:`~otel_llm.tasks.propagation`: context key, baggage, environment, threads;
- :mod:`~otel_llm.tasks.settings` and :mod:`~otel_llm.tasks.state`: configuration, and all
  process state in one place.

What the task adds to inference spans (``TaskCall.span_attributes``), the task span
``invoke_agent {name}`` and tool spans ``execute_tool {name}`` carry, and the baggage
that carries a task: ``docs/telemetry.md``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.util.types import AttributeValue

from otel_llm import failures
from otel_llm.tasks import collector, state
from otel_llm.tasks.auto import (
    auto_tasks_enabled,
    disable_auto_tasks,
    enable_auto_tasks,
    find_task,
    process_context,
    process_task,
    trace_task,
)
from otel_llm.tasks.budget import BudgetExceeded, Grant, OnExceedHook, TaskState, error_type
from otel_llm.tasks.calls import TaskCall, enter_call
from otel_llm.tasks.foreign_tools import watch_foreign_tools
from otel_llm.tasks.propagation import context_from_env, inject_env
from otel_llm.tasks.settings import SCOPE, configure, tracer_provider
from otel_llm.tasks.task import Clock, Task, TaskSummary, logger, task_in
from otel_llm.tasks.tools import ToolCall

__all__ = [
    "SCOPE",
    "BudgetExceeded",
    "Clock",
    "Grant",
    "OnExceedHook",
    "Task",
    "TaskCall",
    "TaskState",
    "TaskSummary",
    "ToolCall",
    "auto_tasks_enabled",
    "configure",
    "context_from_env",
    "current_task",
    "disable_auto_tasks",
    "enable_auto_tasks",
    "enter_call",
    "error_type",
    "instrumentation_started",
    "instrumentation_stopped",
    "kill_task",
    "process_task",
    "subprocess_env",
    "task",
    "tool",
    "tracer_provider",
]

task = Task
"""``otel_llm.task(name, *, max_usd=None, ...)``: the same as constructing :class:`Task`."""


def current_task() -> Task | None:
    """The task the current context belongs to (explicit or joined), if any."""
    return task_in(otel_context.get_current(), create=True)


def kill_task(task_id: str, reason: str = "killed") -> bool:
    """Refuse the next model calls of a running task in this process; False if unknown."""
    found = find_task(task_id)
    if found is None:
        return False
    found.kill(reason)
    return True


def tool(
    name: str, *, call_id: str | None = None, attributes: Mapping[str, AttributeValue] | None = None
) -> ToolCall:
    """A tool call: ``with otel_llm.tool("search"):``, ``async with``, or ``@otel_llm.tool("search")``.
    ``call_id`` is the model's tool-call id (``gen_ai.tool.call.id``)."""
    return ToolCall(name, call_id=call_id, attributes=attributes)


def subprocess_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``env`` (default ``os.environ``) with ``TRACEPARENT``, ``TRACESTATE`` and
    ``BAGGAGE`` set from the current context, as the OpenTelemetry environment-carrier
    specification describes: a subprocess started with it joins the current task (id,
    limits and the spend so far travel in the baggage)."""
    out = dict(os.environ if env is None else env)
    ctx = otel_context.get_current()
    owner = task_in(ctx, create=False)
    span_context = trace.get_current_span(ctx).get_span_context()
    if owner is None and span_context.is_valid:
        owner = trace_task(span_context.trace_id)
    elif owner is None and process_task() is not None:
        owner = process_task()
        ctx = process_context() or ctx
    if owner is not None:
        for key, value in owner.baggage(with_spend=True).items():
            ctx = baggage.set_baggage(key, value, ctx)
    return inject_env(out, ctx)


def instrumentation_started(tracer_provider: trace.TracerProvider | None = None) -> None:
    """What an instrumentor's ``_instrument`` calls: :func:`enable_auto_tasks`,
    :func:`~otel_llm.tasks.foreign_tools.watch_foreign_tools` (other instrumentations'
    ``execute_tool`` spans count as tool calls), and
    :func:`~otel_llm.tasks.collector.connect` (kills from the collector, prompt export)."""
    enable_auto_tasks(tracer_provider)
    try:
        watch_foreign_tools(tracer_provider)
    except Exception as exc:
        failures.log_once(logger, "watching other instrumentations' tool spans", exc)
    collector.connect(tracer_provider)


def instrumentation_stopped() -> None:
    """What an instrumentor's ``_uninstrument`` calls: :func:`disable_auto_tasks`."""
    disable_auto_tasks()


def _reset_for_tests() -> None:
    """Forget the configuration, the automatic tasks and the live tasks, and log every
    failure and ignored baggage entry again (tests only)."""
    state.reset()
    failures.forget(logger)
