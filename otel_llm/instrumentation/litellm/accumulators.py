"""What LiteLLM streams say, collected chunk by chunk and handed to the call at its end.

Chat streams (``completion(stream=True)``, a ``CustomStreamWrapper``) yield OpenAI-shaped
``ModelResponseStream`` chunks for every provider. Usage reaches the caller only on a
final chunk with ``choices: []``, and only when the request set
``stream_options.include_usage``. LiteLLM itself keeps every chunk it builds in the
wrapper's ``chunks`` list, including the usage-only chunks it does not show the caller
(Anthropic streams always carry usage, so they always have one there); the accumulator
reads that list when the caller saw no usage. A stream with no usage anywhere (an OpenAI
model without ``include_usage``) ends with an estimate
(:meth:`~otel_llm.instrumentation.inference.InferenceCall.set_estimated_usage`).

Responses API streams carry the whole response, usage included, on their terminal event.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from otel_llm.instrumentation.inference import InferenceCall
from otel_llm.instrumentation.litellm import readers
from otel_llm.instrumentation.openai import messages
from otel_llm.instrumentation.streams import StreamAccumulator

__all__ = ["ChatStream", "ResponsesStream"]

_TERMINAL_EVENTS = frozenset(("response.completed", "response.incomplete", "response.failed"))


class ChatStream(StreamAccumulator):
    """Accumulates a ``CustomStreamWrapper``'s ``ModelResponseStream`` chunks."""

    __slots__ = ("_capture", "_chars", "_choices", "_finish", "_id", "_model", "_stream", "_tools", "_usage")

    def __init__(self, capture: bool, stream: Any) -> None:
        self._capture = capture
        self._stream = stream
        self._id: str | None = None
        self._model: str | None = None
        self._usage: Any = None
        self._finish: dict[int, str] = {}
        self._choices: dict[int, dict[str, Any]] = {}
        self._tools: set[tuple[int, int]] = set()
        self._chars = 0

    def add(self, chunk: Any) -> None:
        if self._id is None:
            self._id = chunk.id
            self._model = chunk.model
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self._usage = usage
        for choice in chunk.choices:
            if choice.finish_reason:
                self._finish[choice.index] = choice.finish_reason
            delta = choice.delta
            if delta is None:
                continue
            content = delta.content
            if content:
                self._chars += len(content)
            calls = delta.tool_calls
            if calls:
                self._add_tool_calls(choice.index, calls)
            if self._capture and content:
                self._slot(choice.index)["text"] += content

    def _slot(self, index: int) -> dict[str, Any]:
        return self._choices.setdefault(index, {"text": "", "tool_calls": {}})

    def _add_tool_calls(self, index: int, calls: Any) -> None:
        for position, call in enumerate(calls):
            call_index = getattr(call, "index", None)
            key = (index, call_index if isinstance(call_index, int) else position)
            self._tools.add(key)
            function = getattr(call, "function", None)
            arguments = getattr(function, "arguments", None) if function is not None else None
            if arguments:
                self._chars += len(arguments)
            if self._capture:
                slot = self._slot(index)["tool_calls"].setdefault(
                    key[1], {"id": None, "name": None, "arguments": ""}
                )
                if getattr(call, "id", None):
                    slot["id"] = call.id
                name = getattr(function, "name", None) if function is not None else None
                if name:
                    slot["name"] = name
                if arguments:
                    slot["arguments"] += arguments

    @property
    def tool_calls(self) -> int:
        """Tool calls the model asked for in this stream."""
        return len(self._tools)

    def _internal_usage(self) -> Any:
        # LiteLLM's own record of the stream, usage-only chunks included.
        for chunk in reversed(getattr(self._stream, "chunks", None) or ()):
            usage = getattr(chunk, "usage", None)
            if usage is not None:
                return usage
        return None

    def finish(self, call: InferenceCall) -> None:
        attributes: dict[str, Any] = {}
        raw = self._usage if self._usage is not None else self._internal_usage()
        if raw is None:
            call.set_estimated_usage(self._chars)
        if self._capture and (self._choices or self._finish):
            choices = []
            for index in sorted(self._choices.keys() | self._finish.keys()):
                acc = self._choices.get(index, {"text": "", "tool_calls": {}})
                choices.append(
                    {
                        "text": acc["text"],
                        "tool_calls": list(acc["tool_calls"].values()),
                        "finish_reason": self._finish.get(index),
                    }
                )
            attributes[gen_ai.GEN_AI_OUTPUT_MESSAGES] = messages.chat_output_messages(choices)
        call.set_response(
            model=self._model,
            response_id=self._id,
            finish_reasons=[self._finish[i] for i in sorted(self._finish)],
            usage=readers.usage_of(raw) if raw is not None else None,
            attributes=attributes,
            tool_calls=len(self._tools),
        )


class ResponsesStream(StreamAccumulator):
    """Accumulates Responses API stream events."""

    __slots__ = ("_capture", "_first", "_response")

    def __init__(self, capture: bool, stream: Any = None) -> None:
        self._capture = capture
        self._first: Any = None
        self._response: Any = None

    def add(self, event: Any) -> None:
        kind = getattr(event, "type", None)
        if kind in _TERMINAL_EVENTS:
            self._response = event.response
        elif self._first is None:
            self._first = getattr(event, "response", None)

    @property
    def tool_calls(self) -> int:
        return readers.responses_tool_calls(self._response) if self._response is not None else 0

    def finish(self, call: InferenceCall) -> None:
        if self._response is not None:
            readers.record_responses(call, self._response, self._capture)
        elif self._first is not None:
            call.set_response(
                model=getattr(self._first, "model", None), response_id=getattr(self._first, "id", None)
            )
