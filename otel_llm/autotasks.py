"""Tasks nobody opened with :func:`otel_llm.tasks.task`: a task joined through baggage
from another process (:mod:`otel_llm.carrier`), and, with automatic tasks on (the
instrumentors call :func:`enable_auto_tasks` in ``_instrument`` and
:func:`disable_auto_tasks` in ``_uninstrument``, i.e. always under
``opentelemetry-instrument``), one task per trace or per process:

- a span is active (a web request, a job): the trace is the task, id = the trace id
  (32 hex digits), name = the name of the span active at its first call. No span of
  its own. Kept in an LRU of 4096 traces (the oldest one is forgotten);
- nothing is active (a plain script): one process-level task per process, named
  after ``service.name`` (or the script). Its span ``invoke_agent {name}`` opens at the
  first model call and ends at exit (``atexit``, registered then, so it runs before
  the tracer provider's own shutdown hook registered earlier) or at
  :func:`disable_auto_tasks`. Inference spans are its children and end and export
  on their own, one by one.

Limits of automatic tasks come from the policy file and the environment
(:mod:`otel_llm.policy`); a bad file or value makes :func:`enable_auto_tasks` raise
:class:`~otel_llm.policy.PolicyError` - and under ``opentelemetry-instrument``, which
swallows instrumentor errors, print the message and exit with status 2 rather than
run with no budget.
"""

from __future__ import annotations

import atexit
import collections
import os
import sys
import threading
from collections.abc import Mapping

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context

from otel_llm import attributes as attrs
from otel_llm.accounting import Task
from otel_llm.attributes import TASK_COST_USD, TASK_ELAPSED_S, TASK_ITERATIONS, TASK_TOKENS, TASK_TOOL_CALLS
from otel_llm.carrier import _TASK_KEY, _carried_text, _env_carrier_context, _number, _read_carried
from otel_llm.policy import PolicyError
from otel_llm.settings import _resource_attributes, _Settings, configure
from otel_llm.threads import _install_thread_propagation

_AUTO_LRU = 4096


class _Auto:
    lock = threading.RLock()
    enabled = 0
    process: Task | None = None
    process_context: otel_context.Context | None = None
    made: tuple[Task, otel_context.Context | None] | None = None
    """(process, process_context) once made, read without the lock by every call."""
    env_context: otel_context.Context | None = None
    traces: collections.OrderedDict[str, Task] = collections.OrderedDict()
    joined: collections.OrderedDict[str, Task] = collections.OrderedDict()
    atexit_registered = False


def enable_auto_tasks(tracer_provider: trace.TracerProvider | None = None) -> None:
    """Switch automatic tasks on (instrumentors call this in ``_instrument``; calls
    nest, each needs a :func:`disable_auto_tasks`). Loads the budget configuration from
    the environment, so a bad policy file fails here: :class:`PolicyError`, or, during
    ``opentelemetry-instrument`` start-up, a message on stderr and exit status 2."""
    with _Auto.lock:
        if tracer_provider is not None:
            _Settings.tracer_provider = tracer_provider
        if _Auto.enabled == 0:
            try:
                if _Settings.config is None:  # not configured in code: the environment decides
                    configure(tracer_provider=tracer_provider)
            except PolicyError as exc:
                if _in_auto_instrumentation_startup():
                    # The loader logs and swallows instrumentor errors; running on with no
                    # budget would silently drop the limits the user asked for.
                    sys.stderr.write(f"otel-llm: {exc}\n")
                    sys.stderr.flush()
                    os._exit(2)
                raise
            _Auto.env_context = _env_carrier_context(os.environ)
            _install_thread_propagation()
        _Auto.enabled += 1


def disable_auto_tasks() -> None:
    """Undo one :func:`enable_auto_tasks`; the last one ends the process-level task."""
    with _Auto.lock:
        if _Auto.enabled == 0:
            return
        _Auto.enabled -= 1
        if _Auto.enabled:
            return
        _end_process_task()
        _Auto.traces.clear()
        _Auto.joined.clear()
        _Auto.env_context = None


def auto_tasks_enabled() -> bool:
    return _Auto.enabled > 0


def instrumentation_started(tracer_provider: trace.TracerProvider | None = None) -> None:
    """What an instrumentor's ``_instrument`` calls: :func:`enable_auto_tasks`."""
    enable_auto_tasks(tracer_provider)


def instrumentation_stopped() -> None:
    """What an instrumentor's ``_uninstrument`` calls: :func:`disable_auto_tasks`."""
    disable_auto_tasks()


_AUTO_INSTRUMENTATION_MODULE = "opentelemetry.instrumentation.auto_instrumentation"


def _in_auto_instrumentation_startup() -> bool:
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith(
            "opentelemetry.instrumentation.auto_instrumentation"
        ):
            return True
        frame = frame.f_back
    return False


def _end_process_task() -> None:
    with _Auto.lock:
        process, _Auto.process = _Auto.process, None
        _Auto.process_context = None
        _Auto.made = None
    if process is not None:
        process._finish(None)


def _remember(registry: collections.OrderedDict[str, Task], key: str, made: Task) -> Task:
    registry[key] = made
    while len(registry) > _AUTO_LRU:
        registry.popitem(last=False)
    return made


def _task_in(ctx: otel_context.Context, *, create: bool) -> Task | None:
    """The explicit task of ``ctx``, else the task joined through its baggage."""
    found = ctx.get(_TASK_KEY)
    if found is not None:
        return found
    task_id = _carried_text(baggage.get_baggage(attrs.BAGGAGE_TASK_ID, ctx), attrs.BAGGAGE_TASK_ID)
    if task_id is None:
        return None
    return _joined_task(task_id, ctx, create=create)


def _local_name(ctx: otel_context.Context) -> str:
    """The name a call in ``ctx`` would have without baggage: its trace task's (the active
    span's name) or the process task's."""
    span = trace.get_current_span(ctx)
    name = getattr(span, "name", None) if span.get_span_context().is_valid else None
    return name if isinstance(name, str) and name else _process_name()


def _joined_task(task_id: str, ctx: otel_context.Context, *, create: bool) -> Task | None:
    with _Auto.lock:
        found = _Auto.joined.get(task_id)
        if found is not None:
            _Auto.joined.move_to_end(task_id)
            return found
        if not create:
            return None
        joined = _from_baggage(task_id, baggage.get_all(ctx), kind="joined", local_name=_local_name(ctx))
        return _remember(_Auto.joined, task_id, joined)


def _from_baggage(task_id: str, carried: Mapping[str, object], *, kind: str, local_name: str | None) -> Task:
    """A task joined through baggage: the local settings tightened by the carried ones,
    counting on from the carried spend so far. Never raises for what the baggage holds."""
    name = _carried_text(carried.get(attrs.TASK_NAME), attrs.TASK_NAME) or "remote"
    joined = Task(name, task_id=task_id, _kind=kind)
    joined._start(
        parent=None, parent_context=None, with_span=False, carried=_read_carried(carried, local_name)
    )
    joined.cost_usd = _number(carried, TASK_COST_USD) or 0.0
    joined._token_offset = int(_number(carried, TASK_TOKENS, integer=True) or 0)
    joined.iterations = int(_number(carried, TASK_ITERATIONS, integer=True) or 0)
    joined.tool_calls = int(_number(carried, TASK_TOOL_CALLS, integer=True) or 0)
    joined.started_at = (joined.started_at or 0.0) - (_number(carried, TASK_ELAPSED_S) or 0.0)
    return joined


def _auto_task(ctx: otel_context.Context) -> tuple[Task | None, otel_context.Context | None]:
    """The task for a call made outside any explicit task (see the module docstring)."""
    task_id = _carried_text(baggage.get_baggage(attrs.BAGGAGE_TASK_ID, ctx), attrs.BAGGAGE_TASK_ID)
    if task_id is not None:
        return _joined_task(task_id, ctx, create=True), None
    if not _Auto.enabled:
        return None, None
    span = trace.get_current_span(ctx)
    span_context = span.get_span_context()
    if span_context.is_valid:
        key = format(span_context.trace_id, "032x")
        with _Auto.lock:
            found = _Auto.traces.get(key)
            if found is not None:
                _Auto.traces.move_to_end(key)
                return found, None
            made = Task(getattr(span, "name", None) or _process_name(), task_id=key, _kind="trace")
            made._start(parent=None, parent_context=None, with_span=False)
            return _remember(_Auto.traces, key, made), None
    return _process_task()


def _process_name() -> str:
    service = _resource_attributes().get("service.name")
    if service and not str(service).startswith("unknown_service"):
        return str(service)
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return script or "python"


def _process_task() -> tuple[Task | None, otel_context.Context | None]:
    found = _Auto.made
    if found is not None:
        # Made already: one read of the (task, context) pair, no lock on every call.
        return found
    with _Auto.lock:
        if _Auto.process is not None:
            return _Auto.process, _Auto.process_context
        env_ctx = _Auto.env_context
        carried_id = (
            _carried_text(baggage.get_baggage(attrs.BAGGAGE_TASK_ID, env_ctx), attrs.BAGGAGE_TASK_ID)
            if env_ctx is not None
            else None
        )
        parent = trace.get_current_span(env_ctx).get_span_context() if env_ctx is not None else None
        if carried_id is not None:
            # Started by a process inside a task: this process's calls are that task's.
            made = _from_baggage(
                carried_id, baggage.get_all(env_ctx), kind="joined", local_name=_local_name(env_ctx)
            )
            made_context = env_ctx
        elif parent is not None and parent.is_valid:
            # Started inside a trace that is its own (automatic) task: the same trace, the same task.
            made = Task(_process_name(), task_id=format(parent.trace_id, "032x"), _kind="trace")
            made._start(parent=None, parent_context=None, with_span=False)
            made_context = env_ctx
        else:
            made = Task(_process_name(), _kind="process")
            made._start(parent=None, parent_context=env_ctx, with_span=True)
            made_context = made._context
            if not _Auto.atexit_registered:
                # Registered now, after the tracer provider that makes our spans exists, so
                # it runs before that provider's own atexit shutdown (atexit is LIFO).
                atexit.register(_end_process_task)
                _Auto.atexit_registered = True
        _Auto.process, _Auto.process_context = made, made_context
        _Auto.made = (made, made_context)
        return made, made_context
