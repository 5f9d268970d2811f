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
   the context; threads started with ``threading.Thread`` and work submitted to a
   ``ThreadPoolExecutor`` inside a task get it too: the first task started in a process
   patches ``Thread.start`` and ``ThreadPoolExecutor.submit`` to carry the context when,
   and only when, a task is active. Executor worker threads themselves never inherit a
   context, so pooled work never leaks into another task. Other long-lived worker pools
   started inside a task inherit that task. Process pools do not join; use
   :func:`subprocess_env` for subprocesses);
2. a task joined through baggage (``otel_llm.task.id``) from another process: an HTTP
   call with context propagation, or a subprocess started with :func:`subprocess_env`
   (``TRACEPARENT``/``BAGGAGE`` variables, read once by :func:`enable_auto_tasks`, or by
   hand with :func:`context_from_env`). The limits travel along (as they were when the
   task started, for HTTP propagation; with the spend so far, for :func:`subprocess_env`),
   so the joined process enforces what is left, within its own policy (see "Baggage is
   untrusted" below). Each process enforces on its own from then on: spend in one is
   not seen by the guard of the other (the collector, which sees all spans, can kill
   the task everywhere). The joined process has no task span of
   its own (one task span per task, in the process that opened it); its inference spans
   carry the task id and the trace. A subprocess given only ``TRACEPARENT`` (a trace that
   is its own automatic task) joins that trace's task;
3. with automatic tasks on (the instrumentors call :func:`enable_auto_tasks` in
   ``_instrument`` and :func:`disable_auto_tasks` in ``_uninstrument``, i.e. always
   under ``opentelemetry-instrument``):

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
and names longer than 256 characters are cut. No baggage value makes :func:`task`,
:func:`current_task`, :func:`enter_call` or :meth:`TaskCall.exit_call` raise, and none
lets a model call go unguarded.

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

Inference spans get (``TaskCall.span_attributes``): ``otel_llm.task.id``,
``otel_llm.task.name``, ``otel_llm.task.iteration``, ``otel_llm.task.parent_ids``
(enclosing tasks, innermost first, when nested), ``otel_llm.budget.state`` (at the
call's start) and the limits in force ``otel_llm.budget.max_usd`` etc.

Tool spans ``execute_tool {name}`` (INTERNAL): ``gen_ai.operation.name`` =
``execute_tool``, ``gen_ai.tool.name``, ``gen_ai.tool.call.id`` (if given),
``otel_llm.task.id`` and ``otel_llm.task.iteration`` (the model call it followed).

Tool batches: the tools a task starts after model call *n* and before call *n + 1* are
one batch (the model asked for them together, so they are independent). A batch is
*sequential* when it has two or more tools and no two of them overlapped in time. Tool
calls are counted toward every enclosing task; batches belong to the innermost one.

Calls made after a task ended (a thread that outlived it) still count toward it, and are
checked against its limits, but no longer show on its span.
"""

from __future__ import annotations

import atexit
import collections
import functools
import inspect
import logging
import math
import os
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import error_attributes
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from otel_llm import __version__
from otel_llm import attributes as attrs
from otel_llm.budget import BudgetExceeded, Grant, TaskState, describe
from otel_llm.policy import LIMIT_NAMES, BudgetConfig, Limits, PolicyError, config_from_env, with_grant
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

logger = logging.getLogger("otel_llm.tasks")
budget_logger = logging.getLogger("otel_llm.budget")

SCOPE = "otel_llm.tasks"

# -- attribute names (module docstring) -----------------------------------------------
TASK_PARENT_ID = "otel_llm.task.parent_id"
TASK_PARENT_IDS = "otel_llm.task.parent_ids"
TASK_KIND = "otel_llm.task.kind"
TASK_ITERATIONS = "otel_llm.task.iterations"
TASK_TOOL_CALLS = "otel_llm.task.tool_calls"
TASK_COST_USD = "otel_llm.task.cost.usd"
TASK_COST_INPUT_USD = "otel_llm.task.cost.input_usd"
TASK_COST_OUTPUT_USD = "otel_llm.task.cost.output_usd"
TASK_COST_CACHE_READ_USD = "otel_llm.task.cost.cache_read_usd"
TASK_COST_CACHE_WRITE_USD = "otel_llm.task.cost.cache_write_usd"
TASK_COST_CACHE_SAVINGS_USD = "otel_llm.task.cost.cache_savings_usd"
TASK_UNPRICED_CALLS = "otel_llm.task.unpriced_calls"
TASK_DURATION_S = "otel_llm.task.duration_s"
TASK_OUTCOME = "otel_llm.task.outcome"
TASK_STOPPED_BY = "otel_llm.task.stopped_by"
TASK_TOOL_BATCHES = "otel_llm.task.tool_batches"
TASK_TOOL_BATCHES_SEQUENTIAL = "otel_llm.task.tool_batches.sequential"
TASK_TOOL_SAVEABLE_S = "otel_llm.task.tool_saveable_s"
TASK_TOOL_PARALLELISM = "otel_llm.task.tool_parallelism"
# Baggage only: the spend so far, carried to another process by subprocess_env().
TASK_TOKENS = "otel_llm.task.tokens"
TASK_ELAPSED_S = "otel_llm.task.elapsed_s"

BUDGET_WARN_AT = "otel_llm.budget.warn_at"
BUDGET_ON_EXCEED = "otel_llm.budget.on_exceed"
BUDGET_RESERVE = "otel_llm.budget.reserve"
BUDGET_POLICIES = "otel_llm.budget.policies"
BUDGET_GRANTS = "otel_llm.budget.grants"
BUDGET_LIMIT = "otel_llm.budget.limit"
BUDGET_SPENT = "otel_llm.budget.spent"
BUDGET_LIMIT_VALUE = "otel_llm.budget.limit_value"

EVENT_WARN = "otel_llm.budget.warn"
EVENT_EXCEEDED = "otel_llm.budget.exceeded"
EVENT_KILLED = "otel_llm.budget.killed"
EVENT_GRANT = "otel_llm.budget.grant"
EVENT_TOOL_BATCH = "otel_llm.tool.batch"
TOOL_BATCH = "otel_llm.tool.batch"


def budget_limit_key(limit: str) -> str:
    """``max_usd`` -> ``otel_llm.budget.max_usd``."""
    return attrs.BUDGET_PREFIX + limit


_LIMIT_KEYS = {name: budget_limit_key(name) for name in LIMIT_NAMES}
_INVOKE_AGENT = gen_ai.GenAiOperationNameValues.INVOKE_AGENT.value
_EXECUTE_TOOL = gen_ai.GenAiOperationNameValues.EXECUTE_TOOL.value

_TASK_KEY = otel_context.create_key("otel_llm.task")

OnExceed = Callable[[TaskState], "Grant | Limits | None"] | Literal["kill", "alert"]
Clock = Callable[[], float]

# -- telemetry-path failures ---------------------------------------------------------

_logged: set[str] = set()


def _log_once(what: str, exc: BaseException | None = None) -> None:
    if what in _logged:
        return
    _logged.add(what)
    logger.warning("otel-llm task accounting failed (%s); the call goes on untouched", what, exc_info=exc)


# -- process-wide settings -----------------------------------------------------------


class _Settings:
    lock = threading.RLock()
    config: BudgetConfig | None = None
    tracer_provider: trace.TracerProvider | None = None
    resource_cache: tuple[int, dict[str, Any]] | None = None


def configure(
    config: BudgetConfig | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> BudgetConfig:
    """Set the budget configuration (default: read from ``environ``, default
    ``os.environ``) and, optionally, the tracer provider for task and tool spans (default:
    the global one). Raises :class:`PolicyError` for a bad configuration."""
    loaded = config if config is not None else config_from_env(environ)
    with _Settings.lock:
        _Settings.config = loaded
        if tracer_provider is not None:
            _Settings.tracer_provider = tracer_provider
        _Settings.resource_cache = None
    return loaded


def _config() -> BudgetConfig:
    config = _Settings.config
    if config is None:
        with _Settings.lock:
            if _Settings.config is None:
                _Settings.config = config_from_env()
            config = _Settings.config
    return config


def _provider() -> trace.TracerProvider:
    return _Settings.tracer_provider or trace.get_tracer_provider()


def _tracer() -> trace.Tracer:
    return trace.get_tracer(SCOPE, __version__, _Settings.tracer_provider)


def _resource_attributes() -> dict[str, Any]:
    provider = _provider()
    cached = _Settings.resource_cache
    if cached is not None and cached[0] == id(provider):
        return cached[1]
    resource = getattr(provider, "resource", None)
    found = dict(getattr(resource, "attributes", None) or {})
    _Settings.resource_cache = (id(provider), found)
    return found


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
    """One unit of agent work, with its counters and limits. Made by :func:`task`.

    Enter it once (``with``/``async with``); used as a decorator, every call of the
    decorated function runs in a fresh task with the same settings.
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
        self._tokens_in = [0, 0, 0, 0, 0, 0, 0]
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
            # Baggage only tightens (module docstring): strictest value per limit, the
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
        return Usage(*self._tokens_in)

    @property
    def limits(self) -> Limits:
        return self._limits

    @limits.setter
    def limits(self, value: Limits) -> None:
        self._limits = value
        self._limit_items = tuple(value.items())

    def _tokens(self) -> int:
        return self._tokens_in[0] + self._tokens_in[1] + self._token_offset

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
                input_tokens=self._tokens_in[0],
                output_tokens=self._tokens_in[1],
                cache_read_tokens=self._tokens_in[2],
                cache_write_tokens=self._tokens_in[3],
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
                input_tokens=self._tokens_in[0],
                output_tokens=self._tokens_in[1],
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
                counts = self._tokens_in
                counts[0] += usage.input_tokens
                counts[1] += usage.output_tokens
                counts[2] += usage.cache_read_input_tokens
                counts[3] += usage.cache_creation_input_tokens
                counts[4] += usage.cache_creation_5m_input_tokens
                counts[5] += usage.cache_creation_1h_input_tokens
                counts[6] += usage.reasoning_output_tokens
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


def task(
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
) -> Task:
    """A task: ``with``/``async with`` it, or decorate a function (sync or async).

    Limits given here override the policy file and the environment, limit by limit.
    ``warn_at`` defaults to the policy's (0.8). ``on_exceed``: ``"kill"`` (default: refuse
    the next call), ``"alert"`` (record and log, never refuse), or a callable that gets a
    :class:`TaskState` and returns a :class:`Grant`, new :class:`Limits`, or ``None`` to
    stop. ``reserve=True`` refuses a call whose worst case would cross ``max_usd``.
    ``task_id`` defaults to a random 32-hex id. ``clock`` (seconds, monotonic) times
    ``max_seconds``, the wall time and tool batches; default ``time.monotonic``.
    """
    return Task(
        name,
        max_usd=max_usd,
        max_tokens=max_tokens,
        max_iterations=max_iterations,
        max_seconds=max_seconds,
        max_tool_calls=max_tool_calls,
        warn_at=warn_at,
        on_exceed=on_exceed,
        task_id=task_id,
        attributes=attributes,
        reserve=reserve,
        clock=clock,
    )


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


_LIVE: weakref.WeakValueDictionary[str, Task] = weakref.WeakValueDictionary()


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
    provider: str, model: str | None, *, max_tokens: int | None, input_estimate: int, admit: bool = True
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
    chain: list[Task], provider: str, model: str | None, max_tokens: int | None, input_estimate: int
) -> float | None:
    for member in chain:
        if member.reserve and member.limits.max_usd is not None:
            break
    else:
        return None
    from otel_llm import pricing

    cost = pricing.price(
        Usage(input_tokens=max(input_estimate, 0), output_tokens=max_tokens or 0), model, provider
    )
    return None if cost is None else cost.total_usd


# -- automatic tasks -------------------------------------------------------------------

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


# -- reading baggage (untrusted: see the module docstring) --------------------------------

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
    if what in _logged:
        return
    _logged.add(what)
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


# -- crossing process boundaries -------------------------------------------------------

_ENV_KEYS = {"traceparent": "TRACEPARENT", "tracestate": "TRACESTATE", "baggage": "BAGGAGE"}


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


# -- threads ---------------------------------------------------------------------------

_threads_patched = False
_patch_lock = threading.Lock()


def _carries_task(ctx: otel_context.Context) -> bool:
    return ctx.get(_TASK_KEY) is not None or baggage.get_baggage(attrs.BAGGAGE_TASK_ID, ctx) is not None


def _run_in_context(ctx: otel_context.Context, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    token = otel_context.attach(ctx)
    try:
        return fn(*args, **kwargs)
    finally:
        otel_context.detach(token)


def _install_thread_propagation() -> None:
    """Make threads and executor work started inside a task belong to it (see the module
    docstring). Idempotent; a no-op for threads started outside any task."""
    global _threads_patched
    if _threads_patched:
        return
    with _patch_lock:
        if _threads_patched:
            return
        from concurrent.futures import thread as futures_thread

        pool_worker = futures_thread._worker
        original_start = threading.Thread.start
        original_submit = ThreadPoolExecutor.submit

        @functools.wraps(original_start)
        def start(self: threading.Thread) -> None:
            ctx = otel_context.get_current()
            if _carries_task(ctx) and getattr(self, "_target", None) is not pool_worker:
                self.run = functools.partial(_run_in_context, ctx, self.run)  # type: ignore[method-assign]
            original_start(self)

        @functools.wraps(original_submit)
        def submit(self: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
            ctx = otel_context.get_current()
            if _carries_task(ctx):
                fn = functools.partial(_run_in_context, ctx, fn)
            return original_submit(self, fn, *args, **kwargs)

        threading.Thread.start = start  # type: ignore[method-assign]
        ThreadPoolExecutor.submit = submit  # type: ignore[method-assign]
        _threads_patched = True


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


def _error_type(error: BaseException) -> str:
    if isinstance(error, BudgetExceeded):
        return "otel_llm.BudgetExceeded"
    return type(error).__qualname__


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
    _logged.clear()
