"""How a task travels: in the OpenTelemetry context, in W3C baggage, and in environment
variables to a subprocess; and what a process may believe of the baggage it receives.

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
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otel_llm import attributes as attrs
from otel_llm.attributes import BUDGET_ON_EXCEED, BUDGET_WARN_AT, budget_limit_key
from otel_llm.policy import LIMIT_NAMES, Limits

logger = logging.getLogger("otel_llm.tasks")

_TASK_KEY = otel_context.create_key("otel_llm.task")
"""The context key that holds the explicit task a context belongs to."""
_LIMIT_KEYS = {name: budget_limit_key(name) for name in LIMIT_NAMES}


def _carries_task(ctx: otel_context.Context) -> bool:
    return ctx.get(_TASK_KEY) is not None or baggage.get_baggage(attrs.BAGGAGE_TASK_ID, ctx) is not None


# -- reading baggage (untrusted: see the module docstring) --------------------------------

_ignored: set[str] = set()
"""Baggage entries already logged as ignored (each is logged once)."""

_MAX_CARRIED_TEXT = 256
"""Longest task id or name taken from baggage (longer ones are cut)."""
_MAX_CARRIED_NUMBER = 64
"""Longest number taken from baggage (``repr`` of a float is at most 24 characters)."""
_INTEGER_LIMITS = frozenset({"max_tokens", "max_iterations", "max_tool_calls"})


@dataclass(frozen=True, slots=True)
class _Carried:
    """What a joined task's baggage says about its budget, validated; it only tightens."""

    limits: Limits
    warn_at: float | None
    on_exceed: Literal["kill"] | None
    local_name: str | None
    """The name the call would have had without the baggage: its policies apply too."""


def _ignore(key: str, raw: object, why: str) -> None:
    what = f"baggage {key}"
    if what in _ignored:
        return
    _ignored.add(what)
    shown = repr(raw) if len(repr(raw)) <= 80 else repr(raw)[:77] + "..."
    logger.warning("otel-llm: ignored baggage entry %s=%s: %s", key, shown, why)


def _carried_text(raw: object, key: str) -> str | None:
    """A task id or name from baggage: a non-empty string, cut to ``_MAX_CARRIED_TEXT``."""
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw:
        _ignore(key, raw, "expected a non-empty string")
        return None
    return raw[:_MAX_CARRIED_TEXT]


def _number(
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
    try:
        value = float(text)
    except (ValueError, OverflowError):
        _ignore(key, raw, "expected a number")
        return None
    if not math.isfinite(value) or value < 0:
        _ignore(key, raw, "expected a finite number >= 0")
        return None
    if integer:
        value = int(value)
    if positive and value <= 0:
        _ignore(key, raw, "expected a number > 0" if not integer else "expected an integer >= 1")
        return None
    return value


def _read_carried(carried: Mapping[str, object], local_name: str | None) -> _Carried:
    limits = {}
    for name in LIMIT_NAMES:
        value = _number(carried, _LIMIT_KEYS[name], integer=name in _INTEGER_LIMITS, positive=True)
        if value is not None:
            limits[name] = value
    warn_at = _number(carried, BUDGET_WARN_AT, positive=True)
    if warn_at is not None and warn_at > 1:
        _ignore(BUDGET_WARN_AT, carried.get(BUDGET_WARN_AT), "expected a number > 0 and <= 1")
        warn_at = None
    on_exceed = carried.get(BUDGET_ON_EXCEED)
    if on_exceed is not None and on_exceed not in ("kill", "alert"):
        _ignore(BUDGET_ON_EXCEED, on_exceed, "expected kill or alert")
    return _Carried(Limits(**limits), warn_at, "kill" if on_exceed == "kill" else None, local_name)


# -- crossing process boundaries -------------------------------------------------------

_ENV_KEYS = {"traceparent": "TRACEPARENT", "tracestate": "TRACESTATE", "baggage": "BAGGAGE"}


def _inject_env(out: dict[str, str], ctx: otel_context.Context) -> dict[str, str]:
    """Set ``TRACEPARENT``, ``TRACESTATE`` and ``BAGGAGE`` in ``out`` from ``ctx`` (as the
    OpenTelemetry environment-carrier specification describes), replacing any there."""
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, context=ctx)
    W3CBaggagePropagator().inject(carrier, context=ctx)
    for key in _ENV_KEYS.values():
        out.pop(key, None)
    for key, value in carrier.items():
        out[_ENV_KEYS.get(key, key.upper())] = value
    return out


def _env_carrier_context(environ: Mapping[str, str]) -> otel_context.Context | None:
    carrier = {low: environ[up] for low, up in _ENV_KEYS.items() if environ.get(up)}
    if not carrier:
        return None
    ctx = TraceContextTextMapPropagator().extract(carrier, context=otel_context.Context())
    return W3CBaggagePropagator().extract(carrier, context=ctx)


def context_from_env(environ: Mapping[str, str] | None = None) -> otel_context.Context:
    """The context a parent process passed in ``TRACEPARENT``/``BAGGAGE`` (empty if none);
    attach it (``opentelemetry.context.attach``) to join the parent's trace and task."""
    return _env_carrier_context(os.environ if environ is None else environ) or otel_context.Context()
