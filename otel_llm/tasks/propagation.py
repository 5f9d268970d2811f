"""How a task travels: in the OpenTelemetry context, to threads, in W3C baggage, and in
environment variables to a subprocess; and what a process may believe of the baggage it
receives.

Within a process the current task is a value of the OpenTelemetry context. Across
processes it travels in baggage (``otel_llm.task.id``): an HTTP call with context
propagation, or a subprocess started with :func:`otel_llm.tasks.subprocess_env`
(``TRACEPARENT``/``BAGGAGE`` variables, read once by
:func:`otel_llm.tasks.enable_auto_tasks`, or by hand with :func:`context_from_env`). The
limits travel along (as they were when the task started, for HTTP propagation; with the
spend so far, for ``subprocess_env``), so the joined process enforces what is left,
within its own policy (see "Baggage is untrusted" below). Each process enforces on its
own from then on: spend in one is not seen by the guard of the other (the collector,
which sees all spans, can kill the task everywhere). The joined process has no task span
of its own (one task span per task, in the process that opened it); its inference spans
carry the task id and the trace. A subprocess given only ``TRACEPARENT`` (a trace that
is its own automatic task) joins that trace's task.

Baggage is untrusted. Any HTTP server instrumentation extracts it from whatever client
sent the request, so it may only make the guard stricter. A joined task gets the local
settings (policy file and environment) that match both the carried task name and the
name the call would have without baggage (the active span's, else the process task's),
so a made-up name cannot dodge a policy matched on the name. The carried limits are then
combined with those, keeping the stricter value of each limit. ``warn_at`` takes the
earlier of the two, and ``on_exceed`` is ``kill`` if either side says so: baggage can
turn ``alert`` into ``kill``, never the reverse (a subprocess of an ``alert`` task sets
``OTEL_LLM_ON_EXCEED=alert`` to keep alerting). The carried spend so far (cost, tokens,
calls, tool calls, elapsed time) is honoured, because it can only bring a refusal
sooner. What a client can do with a made-up task id is what it can already do with a
made-up ``traceparent``: start a fresh task under the local limits. A bad entry (not a
number, not finite, negative, a limit of 0, a ``warn_at`` above 1, an unknown
``on_exceed``, longer than 64 characters) is ignored and logged once per key. Task ids
and names longer than 256 characters are cut. No baggage value makes
:func:`~otel_llm.tasks.task`, :func:`~otel_llm.tasks.current_task`,
:func:`~otel_llm.tasks.enter_call` or :meth:`~otel_llm.tasks.TaskCall.exit_call` raise,
and none lets a model call go unguarded.

Threads: threads started with ``threading.Thread`` and work submitted to a
``ThreadPoolExecutor`` inside a task belong to that task. The first task started in a
process (or :func:`otel_llm.tasks.enable_auto_tasks`) patches ``Thread.start`` and
``ThreadPoolExecutor.submit`` to carry the context when, and only when, a task is
active (:func:`install_thread_propagation`). Executor worker threads themselves never
inherit a context, so pooled work never leaks into another task. Other long-lived worker
pools started inside a task inherit that task. Process pools do not join; use
:func:`otel_llm.tasks.subprocess_env` for subprocesses. (asyncio tasks copy the context
on their own.)
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import thread as futures_thread
from dataclasses import dataclass
from typing import Any, Literal

from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otel_llm import attributes as attrs
from otel_llm import failures
from otel_llm.attributes import BUDGET_ON_EXCEED, BUDGET_WARN_AT
from otel_llm.numbers import finite_nonneg
from otel_llm.policy import INTEGER_LIMITS, LIMIT_NAMES, Limits
from otel_llm.tasks.budget import LIMIT_KEYS
from otel_llm.tasks.state import STATE

__all__ = [
    "ENV_KEYS",
    "TASK_KEY",
    "Carried",
    "carried_number",
    "carried_task_id",
    "carried_text",
    "carries_task",
    "context_from_env",
    "env_context",
    "inject_env",
    "install_thread_propagation",
    "read_carried",
]

logger = logging.getLogger("otel_llm.tasks")

TASK_KEY = otel_context.create_key("otel_llm.task")
"""The context key that holds the explicit task a context belongs to."""


def carries_task(ctx: otel_context.Context) -> bool:
    """Whether ``ctx`` holds a task, or a task id in its baggage."""
    return ctx.get(TASK_KEY) is not None or baggage.get_baggage(attrs.BAGGAGE_TASK_ID, ctx) is not None


# -- reading baggage (untrusted: see the module docstring) --------------------------------

_MAX_CARRIED_TEXT = 256
"""Longest task id or name taken from baggage (longer ones are cut)."""
_MAX_CARRIED_NUMBER = 64
"""Longest number taken from baggage (``repr`` of a float is at most 24 characters)."""


@dataclass(frozen=True, slots=True)
class Carried:
    """What a joined task's baggage says about its budget, validated; it only tightens."""

    limits: Limits
    warn_at: float | None
    on_exceed: Literal["kill"] | None
    local_name: str | None
    """The name the call would have had without the baggage: its policies apply too."""


def _ignore(key: str, raw: object, why: str) -> None:
    shown = repr(raw) if len(repr(raw)) <= 80 else repr(raw)[:77] + "..."
    failures.warn_once(logger, ("baggage", key), "otel-llm: ignored baggage entry %s=%s: %s", key, shown, why)


def carried_text(raw: object, key: str) -> str | None:
    """A task id or name from baggage: a non-empty string, cut to 256 characters."""
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw:
        _ignore(key, raw, "expected a non-empty string")
        return None
    return raw[:_MAX_CARRIED_TEXT]


def carried_task_id(ctx: otel_context.Context | None) -> str | None:
    """The task id in ``ctx``'s baggage, if any (and valid)."""
    return carried_text(baggage.get_baggage(attrs.BAGGAGE_TASK_ID, ctx), attrs.BAGGAGE_TASK_ID)


def carried_number(
    carried: Mapping[str, object], key: str, *, integer: bool = False, positive: bool = False
) -> float | None:
    """A finite number >= 0 (> 0 with ``positive``; rounded down with ``integer``) from
    baggage, or None: a missing entry, or a bad one (ignored, logged once)."""
    raw = carried.get(key)
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        _ignore(key, raw, "expected a number")
        return None
    text = str(raw).strip()
    if len(text) > _MAX_CARRIED_NUMBER:
        _ignore(key, raw, f"longer than {_MAX_CARRIED_NUMBER} characters")
        return None
    value = finite_nonneg(text)
    if value is None:
        _ignore(key, raw, "expected a finite number >= 0")
        return None
    if integer:
        value = int(value)
    if positive and value <= 0:
        _ignore(key, raw, "expected a number > 0" if not integer else "expected an integer >= 1")
        return None
    return value


def read_carried(carried: Mapping[str, object], local_name: str | None) -> Carried:
    """The budget settings a joined task's baggage carries (bad entries ignored)."""
    limits = {}
    for name in LIMIT_NAMES:
        value = carried_number(carried, LIMIT_KEYS[name], integer=name in INTEGER_LIMITS, positive=True)
        if value is not None:
            limits[name] = value
    warn_at = carried_number(carried, BUDGET_WARN_AT, positive=True)
    if warn_at is not None and warn_at > 1:
        _ignore(BUDGET_WARN_AT, carried.get(BUDGET_WARN_AT), "expected a number > 0 and <= 1")
        warn_at = None
    on_exceed = carried.get(BUDGET_ON_EXCEED)
    if on_exceed is not None and on_exceed not in ("kill", "alert"):
        _ignore(BUDGET_ON_EXCEED, on_exceed, "expected kill or alert")
    return Carried(Limits(**limits), warn_at, "kill" if on_exceed == "kill" else None, local_name)


# -- crossing process boundaries -------------------------------------------------------

ENV_KEYS = {"traceparent": "TRACEPARENT", "tracestate": "TRACESTATE", "baggage": "BAGGAGE"}
"""Propagation header -> the environment variable that carries it to a subprocess."""


def inject_env(out: dict[str, str], ctx: otel_context.Context) -> dict[str, str]:
    """Set ``TRACEPARENT``, ``TRACESTATE`` and ``BAGGAGE`` in ``out`` from ``ctx`` (as the
    OpenTelemetry environment-carrier specification describes), replacing any there."""
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, context=ctx)
    W3CBaggagePropagator().inject(carrier, context=ctx)
    for key in ENV_KEYS.values():
        out.pop(key, None)
    for key, value in carrier.items():
        out[ENV_KEYS.get(key, key.upper())] = value
    return out


def env_context(environ: Mapping[str, str]) -> otel_context.Context | None:
    """The context ``TRACEPARENT``/``TRACESTATE``/``BAGGAGE`` in ``environ`` describe, or None."""
    carrier = {low: environ[up] for low, up in ENV_KEYS.items() if environ.get(up)}
    if not carrier:
        return None
    ctx = TraceContextTextMapPropagator().extract(carrier, context=otel_context.Context())
    return W3CBaggagePropagator().extract(carrier, context=ctx)


def context_from_env(environ: Mapping[str, str] | None = None) -> otel_context.Context:
    """The context a parent process passed in ``TRACEPARENT``/``BAGGAGE`` (empty if none);
    attach it (``opentelemetry.context.attach``) to join the parent's trace and task."""
    return env_context(os.environ if environ is None else environ) or otel_context.Context()


# -- threads ---------------------------------------------------------------------------


def _run_in_context(ctx: otel_context.Context, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    token = otel_context.attach(ctx)
    try:
        return fn(*args, **kwargs)
    finally:
        otel_context.detach(token)


def install_thread_propagation() -> None:
    """Make threads and executor work started inside a task belong to it (see the module
    docstring). Idempotent; a no-op for threads started outside any task."""
    if STATE.threads_patched:
        return
    with STATE.threads_lock:
        if STATE.threads_patched:
            return
        pool_worker = futures_thread._worker
        original_start = threading.Thread.start
        original_submit = ThreadPoolExecutor.submit

        @functools.wraps(original_start)
        def start(self: threading.Thread) -> None:
            ctx = otel_context.get_current()
            if carries_task(ctx) and getattr(self, "_target", None) is not pool_worker:
                self.run = functools.partial(_run_in_context, ctx, self.run)  # type: ignore[method-assign]
            original_start(self)

        @functools.wraps(original_submit)
        def submit(self: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
            ctx = otel_context.get_current()
            if carries_task(ctx):
                fn = functools.partial(_run_in_context, ctx, fn)
            return original_submit(self, fn, *args, **kwargs)

        threading.Thread.start = start  # type: ignore[method-assign]
        ThreadPoolExecutor.submit = submit  # type: ignore[method-assign]
        STATE.threads_patched = True
