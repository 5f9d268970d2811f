"""Scripted replies: what the simulator answers to the next model call."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

StreamErrorMode = Literal["event", "drop"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool (function) call in a reply. ``arguments`` is a mapping or a ready JSON string."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    @property
    def arguments_json(self) -> str:
        """The arguments as the compact JSON text the wire carries."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments), separators=(",", ":"), ensure_ascii=False)

    @property
    def arguments_value(self) -> Any:
        """The arguments as a JSON value (Anthropic sends an object, not a string)."""
        if isinstance(self.arguments, str):
            return json.loads(self.arguments) if self.arguments else {}
        return dict(self.arguments)


@dataclass(frozen=True, slots=True)
class Reply:
    """What the simulator answers to one model call (any provider).

    Build one with the class methods; the fields are the knobs:

    * ``content``: the assistant text; ``None`` means a deterministic text of ``output_tokens``
      tokens (default: the simulator's ``default_output_tokens``), or, when the request asks for
      a JSON schema, a JSON value generated from that schema.
    * ``calls``: tool calls after the text.
    * ``reasoning_tokens``: OpenAI reasoning tokens, or the length of the Anthropic thinking
      block when the request enables thinking (overrides the simulator's rule).
    * ``thinking``: exact Anthropic thinking text (used only when the request enables thinking).
    * ``error_status``: answer with this HTTP error instead (``retry_after`` seconds is sent in
      ``retry-after`` / ``retry-after-ms``).
    * ``stream_error_after``: fail a stream after that many SSE events, either with an error event
      (``"event"``, Anthropic's default) or by dropping the connection (``"drop"``, OpenAI's
      default). A non-streaming request given such a reply gets a plain error response.
    """

    content: str | None = None
    calls: tuple[ToolCall, ...] = ()
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    thinking: str | None = None
    error_status: int | None = None
    error_message: str | None = None
    error_type: str | None = None
    retry_after: float | None = None
    stream_error_after: int | None = None
    stream_error_mode: StreamErrorMode | None = None

    @classmethod
    def text(
        cls,
        text: str,
        *,
        reasoning_tokens: int | None = None,
        thinking: str | None = None,
        tool_calls: Iterable[ToolCall] = (),
    ) -> Reply:
        """Reply with exactly ``text`` (its token count is ``count_tokens(text)``)."""
        return cls(
            content=text, calls=tuple(tool_calls), reasoning_tokens=reasoning_tokens, thinking=thinking
        )

    @classmethod
    def default(cls, output_tokens: int | None = None, *, reasoning_tokens: int | None = None) -> Reply:
        """The simulator's generated reply, optionally of a given length in tokens."""
        return cls(output_tokens=output_tokens, reasoning_tokens=reasoning_tokens)

    @classmethod
    def json(cls, value: Any, *, reasoning_tokens: int | None = None) -> Reply:
        """Reply with ``value`` serialised as JSON text (for structured outputs)."""
        return cls(content=json.dumps(value, ensure_ascii=False), reasoning_tokens=reasoning_tokens)

    @classmethod
    def tool_call(
        cls,
        name: str,
        arguments: Mapping[str, Any] | str | None = None,
        *,
        id: str | None = None,
        text: str | None = None,
        reasoning_tokens: int | None = None,
    ) -> Reply:
        """Reply with one tool call, optionally preceded by ``text``."""
        call = ToolCall(name, {} if arguments is None else arguments, id)
        return cls(content=text, calls=(call,), reasoning_tokens=reasoning_tokens, output_tokens=0)

    @classmethod
    def tool_calls(
        cls,
        calls: Iterable[ToolCall | tuple[str, Mapping[str, Any] | str] | Mapping[str, Any]],
        *,
        text: str | None = None,
        reasoning_tokens: int | None = None,
    ) -> Reply:
        """Reply with several tool calls: ``ToolCall`` objects, ``(name, arguments)`` pairs, or
        ``{"name": ..., "arguments": ..., "id": ...}`` mappings."""
        built: list[ToolCall] = []
        for call in calls:
            if isinstance(call, ToolCall):
                built.append(call)
            elif isinstance(call, tuple):
                built.append(ToolCall(call[0], call[1]))
            else:
                built.append(ToolCall(call["name"], call.get("arguments", {}), call.get("id")))
        return cls(content=text, calls=tuple(built), reasoning_tokens=reasoning_tokens, output_tokens=0)

    @classmethod
    def error(
        cls,
        status: int,
        *,
        message: str | None = None,
        error_type: str | None = None,
        retry_after: float | None = None,
    ) -> Reply:
        """Answer with an HTTP error in the provider's own error shape.

        ``error_type`` overrides the provider's type for the status (e.g. Anthropic
        ``overloaded_error`` for 529, OpenAI ``server_error`` for 500). A 429 carries
        ``retry-after`` (default 1 second) unless ``retry_after`` says otherwise.
        """
        if retry_after is None and status == 429:
            retry_after = 1.0
        return cls(error_status=status, error_message=message, error_type=error_type, retry_after=retry_after)

    @classmethod
    def stream_error(
        cls,
        after_chunks: int = 1,
        *,
        mode: StreamErrorMode | None = None,
        status: int = 529,
        message: str | None = None,
        text: str | None = None,
        output_tokens: int | None = None,
    ) -> Reply:
        """Start a normal stream, then fail after ``after_chunks`` SSE events.

        ``mode="event"`` sends the provider's error event (Anthropic ``event: error`` with the
        error type of ``status``; OpenAI chat a ``data: {"error": ...}`` chunk, Responses an
        ``error`` event); ``mode="drop"`` closes the connection mid-body. The default is
        ``"event"`` for Anthropic and ``"drop"`` for OpenAI.
        """
        return cls(
            content=text,
            output_tokens=output_tokens,
            error_status=status,
            error_message=message,
            stream_error_after=after_chunks,
            stream_error_mode=mode,
        )

    @property
    def is_error(self) -> bool:
        """True when the reply is an HTTP error (not a mid-stream failure)."""
        return self.error_status is not None and self.stream_error_after is None
