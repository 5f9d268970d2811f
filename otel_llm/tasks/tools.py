"""Tool spans ``execute_tool {name}`` (INTERNAL), counted toward the current task (and
every task around it) and put in the innermost task's tool batch
(:mod:`otel_llm.tasks.toolbatches`)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import error_attributes
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from otel_llm import attributes as attrs
from otel_llm.tasks import settings
from otel_llm.tasks.auto import process_context, process_task
from otel_llm.tasks.budget import error_type
from otel_llm.tasks.task import Task, log_once, task_in
from otel_llm.tasks.toolbatches import ToolRecord

__all__ = ["ToolCall"]

_EXECUTE_TOOL = gen_ai.GenAiOperationNameValues.EXECUTE_TOOL.value


class ToolCall:
    """An ``execute_tool {name}`` span, counted toward the current task. Made by
    :func:`otel_llm.tasks.tool`: ``with``/``async with`` it once, or decorate a function."""

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
        self._record: ToolRecord | None = None
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
            owner = task_in(ctx, create=True)
            if owner is None and not trace.get_current_span(ctx).get_span_context().is_valid:
                owner = process_task()
                if owner is not None and process_context() is not None:
                    ctx = process_context()
            out: dict[str, AttributeValue] = {
                gen_ai.GEN_AI_OPERATION_NAME: _EXECUTE_TOOL,
                gen_ai.GEN_AI_TOOL_NAME: self.name,
            }
            if self.call_id:
                out[gen_ai.GEN_AI_TOOL_CALL_ID] = self.call_id
            if owner is not None:
                self._owner = owner
                for member in owner.chain():
                    record, iteration = member.tool_started(self.name, member is owner)
                    if member is owner:
                        self._record, self._iteration = record, iteration
                out[attrs.TASK_ID] = owner.task_id
                out[attrs.TASK_ITERATION] = self._iteration
            out.update(self.attributes)
            self._span = settings.tracer().start_span(
                f"{_EXECUTE_TOOL} {self.name}", context=ctx, kind=SpanKind.INTERNAL, attributes=out
            )
            self._token = otel_context.attach(trace.set_span_in_context(self._span, ctx))
        except Exception as exc:
            log_once("starting a tool span", exc)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            if self._token is not None:
                otel_context.detach(self._token)
                self._token = None
            if self._owner is not None and self._record is not None:
                self._owner.tool_ended(self._record)
            span = self._span
            if span is not None:
                if exc is not None:
                    span.record_exception(exc)
                    span.set_attribute(error_attributes.ERROR_TYPE, error_type(exc))
                    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:500]))
                span.end()
        except Exception as err:
            log_once("ending a tool span", err)

    async def __aenter__(self) -> ToolCall:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)
