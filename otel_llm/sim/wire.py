"""Provider-neutral pieces of a simulated answer: the request record, the reply's output, and the
plan the HTTP layer sends (one JSON body, or a list of SSE events with an optional failure)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from otel_llm.sim.cache import AnthropicCache, OpenAICache
from otel_llm.sim.replies import Reply, StreamErrorMode, ToolCall
from otel_llm.sim.schema import example_for_schema
from otel_llm.sim.tokens import CHARS_PER_TOKEN, count_tokens


@dataclass(frozen=True, slots=True)
class SimRequest:
    """One request the simulator served.

    ``path`` excludes the query string (``query`` holds it, single values); ``body`` is the parsed
    JSON body (``None`` for GET or an unparsable body); ``headers`` has lower-case names, with
    ``authorization`` and ``x-api-key`` values replaced by ``"<redacted>"``; ``provider`` is
    ``"openai"`` or ``"anthropic"``; ``stream`` tells whether the body asked for a stream.
    """

    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]
    provider: str

    @property
    def stream(self) -> bool:
        return isinstance(self.body, dict) and bool(self.body.get("stream"))

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One server-sent event: ``event:`` name (or none), ``data:`` text, and how many output
    tokens it carries (the per-token delay is paid before it)."""

    name: str | None
    data: str
    tokens: int = 0

    def encode(self) -> bytes:
        head = f"event: {self.name}\n" if self.name else ""
        return f"{head}data: {self.data}\n\n".encode()


@dataclass(slots=True)
class Plan:
    """What to send back for one request."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    events: list[SseEvent] | None = None
    output_tokens: int = 0
    fail_after: int | None = None
    fail_mode: StreamErrorMode = "drop"
    fail_event: SseEvent | None = None


class Context(Protocol):
    """What the provider modules need from the simulator (called with its lock held)."""

    default_output_tokens: int
    default_reasoning_tokens: int
    openai_cache: OpenAICache
    anthropic_cache: AnthropicCache

    def now(self) -> float: ...

    def new_id(self, prefix: str) -> str: ...

    def wall_time(self) -> int: ...


def dumps(value: Any) -> str:
    """Compact JSON as the providers send it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_WORDS = (
    "the",
    "agent",
    "reads",
    "the",
    "file",
    "and",
    "plans",
    "a",
    "small",
    "change",
    "to",
    "the",
    "code",
    "then",
    "runs",
    "the",
    "tests",
    "checks",
    "the",
    "output",
    "writes",
    "a",
    "short",
    "summary",
    "of",
    "what",
    "it",
    "found",
    "and",
    "asks",
    "for",
    "the",
    "next",
    "task",
    "while",
    "the",
    "budget",
    "stays",
    "well",
    "inside",
    "its",
    "limits",
    "for",
    "this",
    "simulated",
    "conversation",
    "turn",
)


def filler_text(seed: str, tokens: int) -> str:
    """Deterministic text of exactly ``tokens`` tokens (``4 * tokens`` characters) for ``seed``."""
    if tokens <= 0:
        return ""
    start = int.from_bytes(hashlib.sha256(seed.encode("utf-8", "surrogatepass")).digest()[:4], "big")
    needed = tokens * CHARS_PER_TOKEN
    words: list[str] = []
    length = 0
    i = start
    while length < needed:
        word = _WORDS[i % len(_WORDS)]
        words.append(word)
        length += len(word) + 1
        i += 1
    text = " ".join(words)
    text = (text[0].upper() + text[1:])[: needed - 1] + "."
    return text


@dataclass(slots=True)
class Output:
    """The generated output of one call, after the max-tokens cap."""

    text: str
    calls: list[ToolCall]
    reasoning_tokens: int
    truncated: bool

    @property
    def text_tokens(self) -> int:
        return count_tokens(self.text)

    @property
    def output_tokens(self) -> int:
        return self.reasoning_tokens + self.text_tokens + sum(call_tokens(c) for c in self.calls)


def call_tokens(call: ToolCall) -> int:
    """Output tokens of a tool call: ``count_tokens(name) + count_tokens(arguments JSON)``."""
    return count_tokens(call.name) + count_tokens(call.arguments_json)


def build_output(
    ctx: Context,
    reply: Reply,
    *,
    seed: str,
    schema: Any,
    reasoning_tokens: int,
    max_tokens: int | None,
    id_prefix: str,
) -> Output:
    """Resolve a reply into text, tool calls and reasoning tokens, capped at ``max_tokens``.

    Reasoning comes first, then the text (cut at a token boundary), then whole tool calls; a call
    that does not fit is dropped. ``truncated`` tells the caller to report the length stop reason.
    """
    if reply.content is not None:
        text = reply.content
    elif reply.output_tokens == 0:
        text = ""
    elif schema is not None:
        text = dumps(example_for_schema(schema))
    else:
        n = ctx.default_output_tokens if reply.output_tokens is None else reply.output_tokens
        text = filler_text(seed, n)
    calls = [c if c.id else ToolCall(c.name, c.arguments, ctx.new_id(id_prefix)) for c in reply.calls]
    truncated = False
    if max_tokens is not None:
        budget = max(0, max_tokens)
        if reasoning_tokens > budget:
            reasoning_tokens, truncated = budget, True
        budget -= reasoning_tokens
        if count_tokens(text) > budget:
            text, truncated = text[: budget * CHARS_PER_TOKEN], True
        budget -= count_tokens(text)
        kept: list[ToolCall] = []
        for call in calls:
            cost = call_tokens(call)
            if truncated or cost > budget:
                truncated = True
                break
            kept.append(call)
            budget -= cost
        calls = kept
    return Output(text, calls, reasoning_tokens, truncated)


def apply_stop(out: Output, stop: Any) -> str | None:
    """Cut ``out.text`` before the earliest stop sequence; return the sequence that matched.

    ``stop`` is a string or a list of strings; when one matches, tool calls are dropped too.
    """
    sequences = [stop] if isinstance(stop, str) else [s for s in stop or [] if isinstance(s, str) and s]
    found = [(out.text.find(seq), seq) for seq in sequences if seq in out.text]
    if not found:
        return None
    position, sequence = min(found)
    out.text = out.text[:position]
    out.calls = []
    return sequence
