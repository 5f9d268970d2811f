"""One model call's telemetry: its span, its metrics, its price and its task accounting.

Each provider instrumentation turns an SDK call into an :class:`InferenceRequest`,
starts an :class:`InferenceCall` before the request leaves, feeds it the response (or
the stream's chunks) and ends it exactly once. Everything the call records is computed
here, so OpenAI and Anthropic spans carry the same attributes with the same meaning.

The telemetry path never breaks the user's call: every step is guarded, a failure is
logged once (per kind of failure) and the call goes on. The one exception that is
*meant* to reach the user is :class:`otel_llm.BudgetExceeded`, raised by the budget
guard before the request is sent.

At the end a call is priced first, once, and that one :class:`~otel_llm.pricing.Cost`
feeds the span, the cost metric and the task's totals: a failure while rendering span
attributes cannot change what the task is charged. Under OpenTelemetry's
``suppress_instrumentation`` a call emits no span and no metric, and still goes through
the budget guard and counts toward its task: switching tracing off never switches the
budget off.

One call, one span, one count: while a call is being sent (:meth:`InferenceCall.activated`)
the context says so, and a call started inside it (LiteLLM going through the OpenAI SDK,
both instrumented) is the outer call's: no span, no guard, no count of its own.

A call the SDK refuses before any request left the process (the Anthropic SDK's
``ValueError`` for a non-streaming call that could run past ten minutes, a ``TypeError``
for a bad argument) is not a model call: :func:`never_sent` says which errors those are.
Its span ends with ``otel_llm.call.sent=false``, status unset, no ``error.type`` and the
exception as a span event; it is no iteration of its task, counts toward no limit and
records no metric, so error rates only count calls that reached a provider.

A call whose provider reported no usage (an OpenAI chat stream without
``stream_options.include_usage``) is never free: :meth:`InferenceCall.set_estimated_usage`
charges the input estimate plus the output seen, marked ``otel_llm.usage.estimated=true``
and counted in the task's ``otel_llm.task.estimated_calls``; otel-llm warns once per
process when it estimates. When the call's task has a dollar or token limit, the OpenAI
and LiteLLM instrumentations ask for stream usage themselves (:meth:`InferenceCall.wants_stream_usage`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.metrics import MeterProvider, get_meter_provider
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import error_attributes, server_attributes
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider, get_tracer
from opentelemetry.util.types import AttributeValue

from otel_llm import __version__, failures, pricing, tasks
from otel_llm import attributes as attrs
from otel_llm.instrumentation.instruments import instruments_for
from otel_llm.pricing import Cost
from otel_llm.redaction import redact_text
from otel_llm.tasks import error_type
from otel_llm.usage import Usage

logger = logging.getLogger("otel_llm.instrumentation")

CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
STREAM_USAGE_ENV = "OTEL_LLM_OPENAI_STREAM_USAGE"
"""``true``: ask every OpenAI chat stream for its usage; ``false``: never; unset: only
when the call's task has a dollar or token limit (an unmeasured stream would slip past it)."""
_CALL_KEY = otel_context.create_key("otel_llm.inference_call")
_perf_counter = time.perf_counter  # bound once: read on every stream chunk
SCOPE = "otel_llm"


def log_failure_once(what: str, exc: BaseException | None = None) -> None:
    """Log a telemetry-path failure the first time it happens in this process."""
    failures.log_once(logger, what, exc)


def capture_content_enabled() -> bool:
    """Message content is recorded only when the user opts in."""
    return os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() == "true"


def stream_usage_mode() -> str:
    """``always``, ``never`` or ``auto`` (the default), from ``OTEL_LLM_OPENAI_STREAM_USAGE``."""
    value = os.environ.get(STREAM_USAGE_ENV, "").strip().lower()
    if value in ("true", "1", "yes", "on"):
        return "always"
    if value in ("false", "0", "no", "off"):
        return "never"
    return "auto"


def inside_call() -> bool:
    """True while an instrumented model call is being sent in this context: a call
    started now is part of it (see the module docstring)."""
    return otel_context.get_value(_CALL_KEY) is not None


def never_sent(error: BaseException) -> bool:
    """Whether ``error``, raised by the SDK call itself before any response, means no
    request left the process: an ``Exception`` (not an interruption such as
    ``KeyboardInterrupt`` or a cancellation, which can cut a request in flight) that
    carries no HTTP request or response. The SDKs' ``APIError`` classes (status errors,
    connection errors, timeouts) all carry the request they tried to send."""
    return (
        isinstance(error, Exception)
        and getattr(error, "request", None) is None
        and getattr(error, "response", None) is None
    )


def prefix_hash(parts: Sequence[Any]) -> str | None:
    """A short, stable hash of a prompt's cacheable prefix (system, tools, cache-marked
    blocks): calls with equal hashes can share one provider cache entry."""
    if not parts:
        return None
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.blake2b(blob, digest_size=8).hexdigest()


class Telemetry:
    """The tracer, instruments and settings one instrumentor emits with."""

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        capture_content: bool | None = None,
    ) -> None:
        self.tracer = get_tracer(SCOPE, __version__, tracer_provider)
        self.instruments = instruments_for(meter_provider or get_meter_provider(), SCOPE, __version__)
        self.capture_content = capture_content_enabled() if capture_content is None else capture_content

    def start(self, request: InferenceRequest) -> InferenceCall:
        """Begin a call; raises ``BudgetExceeded`` when the task may not make it."""
        return InferenceCall(self, request)


@dataclass(slots=True)
class InferenceRequest:
    """What the instrumentation knows about a call before it is sent."""

    provider: str
    operation: str
    model: str | None
    stream: bool = False
    max_tokens: int | None = None
    server_address: str | None = None
    server_port: int | None = None
    input_estimate: int | Callable[[], int] = 0
    """Rough input tokens, for the guard's ``reserve`` check; a callable is evaluated only
    when some task reserves against ``max_usd`` (it may walk the whole history)."""
    prefix_hash: str | None = None
    request_hash: str | None = None
    """Digest of everything that decides the answer (repeated requests: exact-cache
    opportunities); never the content itself."""
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    """Further request attributes (temperature, content when captured, ...)."""
    admit: bool = True
    """Whether the call is a new model call for the budget guard; ``False`` for reads of
    work already requested (``responses.retrieve``), which are neither counted nor
    refused, though usage they are the first to see still counts toward the task."""


# (operation, provider, request model, response model) -> the metric attribute dicts of a
# call that succeeded: built once, not on every call. Never mutated once made (the SDK
# copies what it keeps); bounded, cleared when full.
_metric_attribute_sets: dict[
    tuple[str, str, str | None, str | None],
    tuple[dict[str, AttributeValue], dict[str, AttributeValue], dict[str, AttributeValue], Any],
] = {}
_METRIC_ATTRIBUTE_SETS = 1024


class InferenceCall:
    """The telemetry of one model call from before its request to its last chunk."""

    __slots__ = (
        "_chunks",
        "_end_once",
        "_first_chunk",
        "_last_chunk",
        "_nested",
        "_received",
        "_start",
        "_task_call",
        "_telemetry",
        "_traced",
        "_ttft",
        "cost",
        "estimated",
        "finish_reasons",
        "request",
        "response_id",
        "response_model",
        "span",
        "tool_calls",
        "usage",
    )

    def __init__(self, telemetry: Telemetry, request: InferenceRequest) -> None:
        self._telemetry = telemetry
        self.request = request
        self._end_once = [True]
        self._ttft: float | None = None
        self._first_chunk = 0.0
        self._last_chunk = 0.0
        self._chunks = 0
        self.usage: Usage | None = None
        self.cost: Cost | None = None
        self.response_model: str | None = None
        self.response_id: str | None = None
        self.finish_reasons: list[str] = []
        self._task_call: tasks.TaskCall | None = None
        self.span: trace.Span = trace.INVALID_SPAN
        self.estimated = False
        self.tool_calls = 0
        """Tool calls the response asked for."""
        """Whether ``usage`` is otel-llm's estimate (:meth:`set_estimated_usage`)."""
        self._received = False
        self._nested = otel_context.get_value(_CALL_KEY) is not None
        if self._nested:
            # Another instrumentation of ours is sending this call (LiteLLM through the
            # OpenAI SDK): that call has the span, the guard and the count.
            self._traced = False
            self._start = time.perf_counter()
            return

        # The guard runs first and may refuse the call; nothing else here may raise.
        self._task_call = _enter_task(request)
        self._traced = is_instrumentation_enabled()
        if not self._traced:
            # suppress_instrumentation: no span, no metrics; the guard above still ran.
            self._start = time.perf_counter()
            return
        try:
            self.span = telemetry.tracer.start_span(
                f"{request.operation} {request.model}" if request.model else request.operation,
                context=self._task_call.context if self._task_call is not None else None,
                kind=SpanKind.CLIENT,
                attributes=self._start_attributes(),
            )
        except Exception as exc:
            log_failure_once("starting the inference span", exc)
        self._start = time.perf_counter()

    def _start_attributes(self) -> dict[str, AttributeValue]:
        request = self.request
        out: dict[str, AttributeValue] = {
            gen_ai.GEN_AI_OPERATION_NAME: request.operation,
            gen_ai.GEN_AI_PROVIDER_NAME: request.provider,
            gen_ai.GEN_AI_REQUEST_STREAM: request.stream,
        }
        if request.model:
            out[gen_ai.GEN_AI_REQUEST_MODEL] = request.model
        if request.max_tokens is not None:
            out[gen_ai.GEN_AI_REQUEST_MAX_TOKENS] = request.max_tokens
        if request.server_address:
            out[server_attributes.SERVER_ADDRESS] = request.server_address
            if request.server_port:
                out[server_attributes.SERVER_PORT] = request.server_port
        if request.prefix_hash:
            out[attrs.PROMPT_PREFIX_HASH] = request.prefix_hash
        if request.request_hash:
            out[attrs.PROMPT_REQUEST_HASH] = request.request_hash
        if self._task_call is not None:
            out.update(self._task_call.span_attributes)
        out.update(request.attributes)
        return out

    def activated(self) -> _Activated | _NotActivated:
        """Make the inference span current while the SDK sends the request, so HTTP
        client spans and anything else the SDK emits nest under it, and a model call
        started inside it knows it is part of this one."""
        if self._nested:
            return _NOT_ACTIVATED
        return _Activated(self.span)

    def wants_stream_usage(self, mode: str) -> bool:
        """Whether to ask the provider for this stream's usage, given
        :func:`stream_usage_mode`: always, never, or when the call's task (or one around
        it) has a dollar or token limit."""
        if mode == "always":
            return True
        if mode == "never" or self._task_call is None:
            return False
        return self._task_call.needs_usage

    def with_stream_usage(
        self,
        mode: str,
        kwargs: dict[str, Any],
        add_usage: Callable[[dict[str, Any]], dict[str, Any] | None],
        provider: str,
    ) -> tuple[dict[str, Any], bool]:
        """``kwargs`` to send, and whether usage was asked for on the caller's behalf (so
        the extra usage chunk must be hidden): for a stream that :meth:`wants_stream_usage`,
        ``add_usage(kwargs)`` (``None`` when the caller already decided). A failure here is
        logged once and the request goes out as the caller wrote it."""
        if mode == "never" or not self.request.stream:
            return kwargs, False
        try:
            if self.wants_stream_usage(mode):
                injected = add_usage(kwargs)
                if injected is not None:
                    return injected, True
        except Exception as exc:
            log_failure_once(f"asking for {provider} stream usage", exc)
        return kwargs, False

    def response_arrived(self) -> None:
        """Note that the provider answered (a stream's proxy calls it when the stream
        opens): an error from here on ends a call that was sent."""
        self._received = True

    # -- what the response tells ---------------------------------------------------

    def chunk(self) -> None:
        """Note that a stream chunk arrived (time to first chunk, time per chunk)."""
        now = _perf_counter()
        if self._ttft is None:
            self._ttft = now - self._start
            self._first_chunk = now
        self._last_chunk = now
        self._chunks += 1

    def set_response(
        self,
        *,
        model: str | None = None,
        response_id: str | None = None,
        finish_reasons: Sequence[str] | None = None,
        usage: Usage | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
        tool_calls: int | None = None,
    ) -> None:
        """Record what the response said; later values replace earlier ones.
        ``tool_calls``: how many tool calls the response asks for (counted per task)."""
        if model:
            self.response_model = model
        if response_id:
            self.response_id = response_id
        if finish_reasons:
            self.finish_reasons = list(finish_reasons)
        if usage is not None:
            self.usage = usage
        if tool_calls is not None:
            self.tool_calls = tool_calls
        self._received = True
        if attributes:
            try:
                self.span.set_attributes(attributes)
            except Exception as exc:
                log_failure_once("recording response attributes", exc)

    def set_estimated_usage(self, output_chars: int) -> None:
        """The provider reported no usage: charge the request's input estimate plus the
        output seen (four characters a token), marked as an estimate."""
        estimate = self.request.input_estimate
        try:
            input_tokens = max(int(estimate() if callable(estimate) else estimate), 0)
        except Exception as exc:
            log_failure_once("estimating a call's input tokens", exc)
            input_tokens = 0
        self.usage = Usage(input_tokens=input_tokens, output_tokens=-(-max(output_chars, 0) // 4))
        self.estimated = True
        failures.warn_once(
            logger,
            "estimated-usage",
            "otel-llm: a %s call to %r reported no token usage; its tokens and cost are "
            "estimated (marked otel_llm.usage.estimated). For OpenAI chat streams, set "
            "stream_options={'include_usage': True} or %s=true to measure them.",
            self.request.provider,
            self.request.model,
            STREAM_USAGE_ENV,
        )

    # -- the end ---------------------------------------------------------------------

    def end(self, error: BaseException | None = None, *, sent: bool | None = None) -> None:
        """End the call exactly once: price it, close its span, record its metrics and
        account it to its task. Later calls do nothing. ``sent``: whether the request
        left the process, when the instrumentation knows; ``None`` lets :func:`never_sent`
        decide from ``error``."""
        try:
            # list.pop is atomic: of two threads (or a close racing the stream's
            # finalizer) exactly one gets past here.
            self._end_once.pop()
        except IndexError:
            return
        if self._nested:
            return
        if (
            error is not None
            and sent is not True
            and (sent is False or (not self._received and self._ttft is None and never_sent(error)))
        ):
            self._end_unsent(error)
            return
        duration = time.perf_counter() - self._start
        if self.usage is not None:
            try:
                self.cost = pricing.price(
                    self.usage, self.response_model or self.request.model, self.request.provider
                )
            except Exception as exc:
                # Token counts still land; the collector can price the span later.
                log_failure_once("pricing the call", exc)
        if self._traced:
            try:
                self._finish_span(error)
            except Exception as exc:
                log_failure_once("finishing the inference span", exc)
            try:
                self._record_metrics(duration, error)
            except Exception as exc:
                log_failure_once("recording metrics", exc)
        if self._task_call is not None:
            try:
                self._task_call.exit_call(
                    self.usage, self.cost, error, estimated=self.estimated, tool_calls=self.tool_calls
                )
            except Exception as exc:
                log_failure_once("accounting the call to its task", exc)
        try:
            self.span.end()
        except Exception as exc:
            log_failure_once("ending the inference span", exc)

    def _end_unsent(self, error: BaseException) -> None:
        # Not a model call: no iteration, no limit, no metric, no error status.
        if self._task_call is not None:
            try:
                self._task_call.withdraw()
            except Exception as exc:
                log_failure_once("withdrawing a call that was never sent", exc)
        if self._traced:
            try:
                self.span.set_attribute(attrs.CALL_SENT, False)
                self.span.record_exception(error)
            except Exception as exc:
                log_failure_once("finishing the inference span", exc)
        try:
            self.span.end()
        except Exception as exc:
            log_failure_once("ending the inference span", exc)

    def _finish_span(self, error: BaseException | None) -> None:
        span = self.span
        out: dict[str, AttributeValue] = {}
        if self.response_model:
            out[gen_ai.GEN_AI_RESPONSE_MODEL] = self.response_model
        if self.response_id:
            out[gen_ai.GEN_AI_RESPONSE_ID] = self.response_id
        if self.finish_reasons:
            out[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] = self.finish_reasons
        if self._ttft is not None:
            out[gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = self._ttft
        if self.usage is not None:
            self.usage.span_attributes(out)
            if self.estimated:
                out[attrs.USAGE_ESTIMATED] = True
            if self.cost is not None:
                self.cost.span_attributes(out)
            else:
                out[attrs.PRICE_SOURCE] = pricing.PRICE_SOURCE_UNKNOWN
        if error is not None:
            out[error_attributes.ERROR_TYPE] = error_type(error)
            span.set_status(Status(StatusCode.ERROR, status_message(error)))
        span.set_attributes(out)

    def _record_metrics(self, duration: float, error: BaseException | None) -> None:
        # Metric attributes are the conventions' required and conditionally required
        # ones plus the response model. ``server.address``/``server.port`` (only
        # recommended) stay on the span: every attribute costs each record a clean and
        # a hash in the SDK, and a call makes four to six records.
        instruments = self._telemetry.instruments
        request = self.request
        key = (request.operation, request.provider, request.model, self.response_model)
        sets = _metric_attribute_sets.get(key) if error is None else None
        if sets is None:
            metric_attrs: dict[str, AttributeValue] = {
                gen_ai.GEN_AI_OPERATION_NAME: request.operation,
                gen_ai.GEN_AI_PROVIDER_NAME: request.provider,
            }
            if request.model:
                metric_attrs[gen_ai.GEN_AI_REQUEST_MODEL] = request.model
            if self.response_model:
                metric_attrs[gen_ai.GEN_AI_RESPONSE_MODEL] = self.response_model
            if error is not None:
                metric_attrs[error_attributes.ERROR_TYPE] = error_type(error)
            sets = (
                metric_attrs,
                {**metric_attrs, gen_ai.GEN_AI_TOKEN_TYPE: "input"},
                {**metric_attrs, gen_ai.GEN_AI_TOKEN_TYPE: "output"},
                instruments.cost.key(metric_attrs),
            )
            if error is None:
                if len(_metric_attribute_sets) >= _METRIC_ATTRIBUTE_SETS:
                    _metric_attribute_sets.clear()
                _metric_attribute_sets[key] = sets
        metric_attrs, input_attrs, output_attrs, cost_key = sets
        instruments.operation_duration.record(duration, metric_attrs)
        if self._ttft is not None:
            instruments.time_to_first_chunk.record(self._ttft, metric_attrs)
            if self._chunks > 1:
                # One record per stream, of the mean gap between chunks: a record per
                # chunk costs the SDK ~6 us each, more than parsing the chunk itself.
                mean_gap = (self._last_chunk - self._first_chunk) / (self._chunks - 1)
                instruments.time_per_output_chunk.record(mean_gap, metric_attrs)
        if self.usage is not None:
            instruments.token_usage.record(self.usage.input_tokens, input_attrs)
            instruments.token_usage.record(self.usage.output_tokens, output_attrs)
        if self.cost is not None:
            instruments.cost.add_to(cost_key, self.cost.total_usd)


class _Activated:
    """The context manager of :meth:`InferenceCall.activated`: a plain class, as it runs
    on every call and a generator-based one costs several times as much."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def __enter__(self) -> None:
        ctx = otel_context.set_value(_CALL_KEY, True, trace.set_span_in_context(self._span))
        self._token = otel_context.attach(ctx)

    def __exit__(self, *exc_info: object) -> None:
        otel_context.detach(self._token)


class _NotActivated:
    """:meth:`InferenceCall.activated` of a call that is part of another: the context
    stays the outer call's."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        return None


_NOT_ACTIVATED = _NotActivated()


def _enter_task(request: InferenceRequest) -> tasks.TaskCall | None:
    try:
        return tasks.enter_call(
            request.provider,
            request.model,
            max_tokens=request.max_tokens,
            input_estimate=request.input_estimate,
            admit=request.admit,
        )
    except tasks.BudgetExceeded:
        raise
    except Exception as exc:
        log_failure_once("checking the task budget", exc)
        return None


def status_message(error: BaseException) -> str:
    """The span status description of a failed call: the error's type and message, with
    anything shaped like a key (providers echo masked keys in 401 messages) removed."""
    return redact_text(f"{type(error).__name__}: {error}")[:500]
