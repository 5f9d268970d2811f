"""What OpenAI streams say, collected chunk by chunk and handed to the call at its end.

Chat Completions chunks carry the id and model on every chunk, a ``finish_reason`` per
choice on that choice's last chunk, and usage only on one final chunk with
``choices: []`` -- and only when the request asked for it with
``stream_options.include_usage`` (see the package docstring for what otel-llm does about
that). Responses streams carry the whole ``Response`` (usage included) on their terminal
event: ``response.completed``, ``response.incomplete`` or ``response.failed``.
"""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from otel_llm.instrumentation.inference import InferenceCall
from otel_llm.instrumentation.openai import messages
from otel_llm.instrumentation.streams import StreamAccumulator
from otel_llm.usage import Usage

_TERMINAL_EVENTS = frozenset(("response.completed", "response.incomplete", "response.failed"))
_FIRST_EVENTS = frozenset(("response.created", "response.in_progress", "response.queued"))


class ChatChunks(StreamAccumulator):
    """Accumulates ``ChatCompletionChunk`` objects."""

    __slots__ = ("_capture", "_chars", "_choices", "_finish", "_id", "_model", "_tools", "_usage")

    def __init__(self, capture: bool) -> None:
        self._capture = capture
        self._id: str | None = None
        self._model: str | None = None
        self._usage: Any = None
        self._finish: dict[int, str] = {}
        self._choices: dict[int, dict[str, Any]] = {}
        self._chars = 0
        """Characters of output seen: the estimate's base when no usage arrives."""
        self._tools: set[tuple[int, int]] = set()

    def add(self, chunk: Any) -> None:
        if self._id is None:
            self._id = chunk.id
            self._model = chunk.model
        usage = chunk.usage
        if usage is not None:
            self._usage = usage
        for choice in chunk.choices:
            if choice.finish_reason:
                self._finish[choice.index] = choice.finish_reason
            delta = choice.delta
            if delta is not None:
                if delta.content:
                    self._chars += len(delta.content)
                for call in delta.tool_calls or ():
                    self._tools.add((choice.index, call.index))
                    function = call.function
                    if function is not None and function.arguments:
                        self._chars += len(function.arguments)
            if self._capture:
                self._add_delta(choice)

    def _add_delta(self, choice: Any) -> None:
        acc = self._choices.setdefault(choice.index, {"text": "", "tool_calls": {}})
        delta = choice.delta
        if delta is None:
            return
        if delta.content:
            acc["text"] += delta.content
        for call in delta.tool_calls or ():
            slot = acc["tool_calls"].setdefault(call.index, {"id": None, "name": None, "arguments": ""})
            if call.id:
                slot["id"] = call.id
            function = call.function
            if function is not None:
                if function.name:
                    slot["name"] = function.name
                if function.arguments:
                    slot["arguments"] += function.arguments

    def finish(self, call: InferenceCall) -> None:
        attributes: dict[str, Any] = {}
        if self._usage is None:
            # No include_usage on this stream: never free, an estimate from what was seen.
            call.set_estimated_usage(self._chars)
        if self._capture and (self._choices or self._finish):
            choices = []
            for index in sorted(self._choices.keys() | self._finish.keys()):
                acc = self._choices.get(index, {"text": "", "tool_calls": {}})
                calls = list(acc["tool_calls"].values())
                finish = self._finish.get(index)
                choices.append({"text": acc["text"], "tool_calls": calls, "finish_reason": finish})
            attributes[gen_ai.GEN_AI_OUTPUT_MESSAGES] = messages.chat_output_messages(choices)
        call.set_response(
            model=self._model,
            response_id=self._id,
            finish_reasons=[self._finish[i] for i in sorted(self._finish)],
            usage=Usage.from_openai_chat(self._usage) if self._usage is not None else None,
            attributes=attributes,
            tool_calls=len(self._tools),
        )


class ResponseEvents(StreamAccumulator):
    """Accumulates Responses API stream events (``ResponseStreamEvent``)."""

    __slots__ = ("_capture", "_first", "_ledger", "_response")

    def __init__(self, capture: bool, ledger: ResponseLedger) -> None:
        self._capture = capture
        self._ledger = ledger
        self._first: Any = None
        self._response: Any = None

    def add(self, event: Any) -> None:
        kind = event.type
        if kind in _TERMINAL_EVENTS:
            self._response = event.response
        elif self._first is None and kind in _FIRST_EVENTS:
            self._first = event.response

    def finish(self, call: InferenceCall) -> None:
        if self._response is not None:
            record_response(call, self._response, self._ledger, self._capture)
        elif self._first is not None:
            call.set_response(model=self._first.model, response_id=self._first.id)


# -- Responses objects (streamed or not) ------------------------------------------------

_INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}


def response_finish_reason(response: Any) -> str | None:
    """A chat-style finish reason for a ``Response``: ``stop``, ``tool_calls``,
    ``length``, ``content_filter`` or ``error``; ``None`` while it is still running."""
    status = response.status
    if status == "completed":
        for item in response.output or ():
            if item.type == "function_call":
                return "tool_calls"
        return "stop"
    if status == "incomplete":
        reason = getattr(response.incomplete_details, "reason", None)
        return _INCOMPLETE_REASONS.get(reason, reason or "incomplete")
    if status in ("failed", "cancelled"):
        return "error" if status == "failed" else "cancelled"
    return None


class ResponseLedger:
    """Ids of Responses whose usage this process has already recorded, so that reading a
    response again (``responses.retrieve``, a resumed stream) does not count its tokens
    and cost twice. A background response is counted by the first read that sees it
    finished. Bounded: the oldest ids are forgotten first."""

    __slots__ = ("_ids", "_lock", "_size")

    def __init__(self, size: int = 4096) -> None:
        self._ids: dict[str, None] = {}
        self._size = size
        self._lock = threading.Lock()

    def first_time(self, response_id: str | None) -> bool:
        """Mark ``response_id`` as counted; True when it was not counted before."""
        if not response_id:
            return True
        with self._lock:
            if response_id in self._ids:
                return False
            self._ids[response_id] = None
            if len(self._ids) > self._size:
                del self._ids[next(iter(self._ids))]
            return True


def record_response(call: InferenceCall, response: Any, ledger: ResponseLedger, capture: bool) -> None:
    """Hand a Responses ``Response`` to the call: usage only when it is final and not
    counted before."""
    finish_reason = response_finish_reason(response)
    usage = None
    if finish_reason is not None and response.usage is not None and ledger.first_time(response.id):
        usage = Usage.from_openai_responses(response.usage)
    attributes = None
    if capture and finish_reason is not None:
        output = messages.responses_output_messages(response, finish_reason)
        attributes = {gen_ai.GEN_AI_OUTPUT_MESSAGES: output}
    call.set_response(
        model=response.model,
        response_id=response.id,
        finish_reasons=[finish_reason] if finish_reason else None,
        usage=usage,
        attributes=attributes,
        # Counted with the usage: once per response, however often it is read.
        tool_calls=sum(1 for i in response.output or () if i.type == "function_call") if usage else None,
    )
