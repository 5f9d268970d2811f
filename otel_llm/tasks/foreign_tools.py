"""Tool spans from other instrumentations count toward the task too.

Agent frameworks run tools without ``otel_llm.tool``, and several trace them as
``execute_tool`` spans of their own (pydantic-ai's ``Agent.instrument_all()``, any
instrumentation following the GenAI conventions). :class:`ForeignToolSpans`, a span
processor on the SDK tracer provider, treats each such span, started in this process, as
the tool call it records: counted toward the task it runs in (and every task around it, so
``max_tool_calls`` sees it) and put in the innermost task's tool batch (the sequential-tool
analysis), from the span's start to its end. otel-llm's own tool spans are left alone (they
are counted where they are made).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from otel_llm.tasks import settings
from otel_llm.tasks.auto import process_task
from otel_llm.tasks.task import Task, log_once, task_in
from otel_llm.tasks.toolbatches import ToolRecord

__all__ = ["ForeignToolSpans", "watch_foreign_tools"]

_EXECUTE_TOOL = gen_ai.GenAiOperationNameValues.EXECUTE_TOOL.value
_PREFIX = _EXECUTE_TOOL + " "


class ForeignToolSpans(SpanProcessor):
    """Counts other instrumentations' ``execute_tool`` spans as tool calls (see the module
    docstring). Cheap for every other span: a name and an attribute lookup."""

    def __init__(self) -> None:
        self._open: dict[int, tuple[Task, ToolRecord | None]] = {}

    def on_start(self, span: Any, parent_context: otel_context.Context | None = None) -> None:
        attributes = span.attributes or {}
        operation = attributes.get(gen_ai.GEN_AI_OPERATION_NAME)
        if operation != _EXECUTE_TOOL and not span.name.startswith(_PREFIX):
            return
        scope = getattr(span, "instrumentation_scope", None)
        if scope is not None and scope.name == settings.SCOPE:
            return
        try:
            ctx = parent_context if parent_context is not None else otel_context.get_current()
            owner = task_in(ctx, create=True)
            if owner is None and not trace.get_current_span(ctx).get_span_context().is_valid:
                owner = process_task()
            if owner is None:
                return
            name = attributes.get(gen_ai.GEN_AI_TOOL_NAME) or span.name.removeprefix(_PREFIX)
            record = None
            for member in owner.chain():
                started, _ = member.tool_started(str(name), member is owner)
                if member is owner:
                    record = started
            self._open[span.context.span_id] = (owner, record)
        except Exception as exc:
            log_once("counting another instrumentation's tool span", exc)

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None:
            return
        found = self._open.pop(context.span_id, None)
        if found is None:
            return
        owner, record = found
        try:
            if record is not None:
                owner.tool_ended(record)
        except Exception as exc:
            log_once("ending another instrumentation's tool span", exc)

    def shutdown(self) -> None:
        self._open.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


_watched: weakref.WeakSet[Any] = weakref.WeakSet()
_lock = threading.Lock()


def watch_foreign_tools(tracer_provider: trace.TracerProvider | None = None) -> None:
    """Add :class:`ForeignToolSpans` to ``tracer_provider`` (default: the global one),
    once per provider; a provider that is not the SDK's (no span processors) is skipped."""
    provider = tracer_provider or trace.get_tracer_provider()
    add = getattr(provider, "add_span_processor", None)
    if add is None:
        return
    with _lock:
        if provider in _watched:
            return
        add(ForeignToolSpans())
        _watched.add(provider)
