"""Which task owns a model call (:func:`owner_of_call`), and the tasks nobody opened
with :func:`otel_llm.tasks.task`: a task joined through baggage from another process
(:mod:`otel_llm.tasks.propagation`), and, with automatic tasks on (the
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
import os
import sys

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context

from otel_llm.policy import PolicyError
from otel_llm.tasks import settings
from otel_llm.tasks.propagation import TASK_KEY, carried_task_id, env_context, install_thread_propagation
from otel_llm.tasks.state import STATE
from otel_llm.tasks.task import Task, find_live, from_baggage, joined_task, local_name, remember

__all__ = [
    "auto_tasks_enabled",
    "disable_auto_tasks",
    "enable_auto_tasks",
    "find_task",
    "owner_of_call",
    "process_task",
    "trace_task",
]


def enable_auto_tasks(tracer_provider: trace.TracerProvider | None = None) -> None:
    """Switch automatic tasks on (instrumentors call this in ``_instrument``; calls
    nest, each needs a :func:`disable_auto_tasks`). Loads the budget configuration from
    the environment, so a bad policy file fails here: :class:`PolicyError`, or, during
    ``opentelemetry-instrument`` start-up, a message on stderr and exit status 2."""
    with STATE.auto_lock:
        if tracer_provider is not None:
            settings.use_tracer_provider(tracer_provider)
        if STATE.auto_enabled == 0:
            try:
                if not settings.configured():  # not configured in code: the environment decides
                    settings.configure(tracer_provider=tracer_provider)
            except PolicyError as exc:
                if _in_auto_instrumentation_startup():
                    # The loader logs and swallows instrumentor errors; running on with no
                    # budget would silently drop the limits the user asked for.
                    sys.stderr.write(f"otel-llm: {exc}\n")
                    sys.stderr.flush()
                    os._exit(2)
                raise
            STATE.env_context = env_context(os.environ)
            install_thread_propagation()
        STATE.auto_enabled += 1


def disable_auto_tasks() -> None:
    """Undo one :func:`enable_auto_tasks`; the last one ends the process-level task."""
    with STATE.auto_lock:
        if STATE.auto_enabled == 0:
            return
        STATE.auto_enabled -= 1
        if STATE.auto_enabled:
            return
        _end_process_task()
        STATE.traces.clear()
        STATE.joined.clear()
        STATE.env_context = None


def auto_tasks_enabled() -> bool:
    return STATE.auto_enabled > 0


_AUTO_INSTRUMENTATION_MODULE = "opentelemetry.instrumentation.auto_instrumentation"


def _in_auto_instrumentation_startup() -> bool:
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith(_AUTO_INSTRUMENTATION_MODULE):
            return True
        frame = frame.f_back
    return False


def _end_process_task() -> None:
    with STATE.auto_lock:
        process, STATE.process = STATE.process, None
        STATE.process_context = None
        STATE.made = None
    if process is not None:
        process.finish(None)


def owner_of_call(ctx: otel_context.Context) -> tuple[Task | None, otel_context.Context | None]:
    """The task a model call made in ``ctx`` belongs to, and the parent context of its
    span (None: the current one): the explicit task, else the task joined through
    baggage, else (automatic tasks on) the trace's task, else the process's. (None,
    None) when no task owns it."""
    if not ctx:
        # An empty context (a plain script: no task, no baggage, no span) can only
        # belong to the process task: one check instead of three lookups.
        if not STATE.auto_enabled:
            return None, None
        return STATE.made or _process_task()
    found = ctx.get(TASK_KEY)
    if found is not None:
        return found, None
    task_id = carried_task_id(ctx)
    if task_id is not None:
        return joined_task(task_id, ctx, create=True), None
    if not STATE.auto_enabled:
        return None, None
    span = trace.get_current_span(ctx)
    span_context = span.get_span_context()
    if span_context.is_valid:
        key = format(span_context.trace_id, "032x")
        with STATE.auto_lock:
            found = STATE.traces.get(key)
            if found is not None:
                STATE.traces.move_to_end(key)
                return found, None
            made = Task(getattr(span, "name", None) or settings.process_name(), task_id=key, _kind="trace")
            made.start(parent=None, parent_context=None, with_span=False)
            return remember(STATE.traces, key, made), None
    return _process_task()


def process_task() -> Task | None:
    """The process-level automatic task, once a call made it."""
    return STATE.process


def process_context() -> otel_context.Context | None:
    """The context of the process-level task (its span's), once made."""
    return STATE.process_context


def trace_task(trace_id: int) -> Task | None:
    """The automatic task of a trace, if a call in it made one."""
    with STATE.auto_lock:
        return STATE.traces.get(format(trace_id, "032x"))


def find_task(task_id: str) -> Task | None:
    """A running task of this process by id: live, joined, a trace's, or the process's."""
    found = find_live(task_id)
    if found is None:
        with STATE.auto_lock:
            found = STATE.traces.get(task_id) or STATE.joined.get(task_id)
            if found is None and STATE.process is not None and STATE.process.task_id == task_id:
                found = STATE.process
    return found


def _process_task() -> tuple[Task | None, otel_context.Context | None]:
    found = STATE.made
    if found is not None:
        # Made already: one read of the (task, context) pair, no lock on every call.
        return found
    with STATE.auto_lock:
        if STATE.process is not None:
            return STATE.process, STATE.process_context
        env_ctx = STATE.env_context
        carried_id = carried_task_id(env_ctx) if env_ctx is not None else None
        parent = trace.get_current_span(env_ctx).get_span_context() if env_ctx is not None else None
        if carried_id is not None:
            # Started by a process inside a task: this process's calls are that task's.
            made = from_baggage(carried_id, baggage.get_all(env_ctx), local=local_name(env_ctx))
            made_context = env_ctx
        elif parent is not None and parent.is_valid:
            # Started inside a trace that is its own (automatic) task: the same trace, the same task.
            made = Task(settings.process_name(), task_id=format(parent.trace_id, "032x"), _kind="trace")
            made.start(parent=None, parent_context=None, with_span=False)
            made_context = env_ctx
        else:
            made = Task(settings.process_name(), _kind="process")
            made.start(parent=None, parent_context=env_ctx, with_span=True)
            made_context = made.context
            if not STATE.atexit_registered:
                # Registered now, after the tracer provider that makes our spans exists, so
                # it runs before that provider's own atexit shutdown (atexit is LIFO).
                atexit.register(_end_process_task)
                STATE.atexit_registered = True
        STATE.process, STATE.process_context = made, made_context
        STATE.made = (made, made_context)
        return made, made_context
