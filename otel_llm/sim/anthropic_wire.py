"""Anthropic Messages wire format (plain and beta paths), cache diagnostics, errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from otel_llm.sim.cache import AnthropicCacheResult
from otel_llm.sim.replies import Reply
from otel_llm.sim.tokens import Block, compact_json, count_tokens, json_block, split_tokens, text_block
from otel_llm.sim.wire import (
    Context,
    Plan,
    SimRequest,
    SseEvent,
    apply_stop,
    build_output,
    dumps,
    filler_text,
)

_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request (simulated)."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Billing problem (simulated)."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: (
        "rate_limit_error",
        "Number of request tokens has exceeded your per-minute rate limit (simulated).",
    ),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}
_SIGNATURE = "c2ltdWxhdGVkLXNpZ25hdHVyZQ=="
_MAX_FINGERPRINTS = 10_000


def error_body(status: int, message: str | None, error_type: str | None, request_id: str) -> dict[str, Any]:
    """Anthropic's error JSON for an HTTP status."""
    kind, default = _ERRORS.get(status, ("api_error" if status >= 500 else "invalid_request_error", ""))
    return {
        "type": "error",
        "error": {"type": error_type or kind, "message": message or default or f"Simulated error {status}."},
        "request_id": request_id,
    }


def _error_plan(ctx: Context, reply: Reply) -> Plan:
    status = reply.error_status or 500
    request_id = ctx.new_id("req_")
    return Plan(
        status=status,
        body=error_body(status, reply.error_message, reply.error_type, request_id),
        headers={"request-id": request_id},
    )


def _ttl(block: Any) -> str | None:
    control = block.get("cache_control") if isinstance(block, dict) else None
    if not isinstance(control, dict):
        return None
    return str(control.get("ttl") or "5m")


def _content_blocks(section: str, role: str | None, content: Any) -> list[Block]:
    if isinstance(content, str):
        return [text_block(section, role, content)]
    blocks = []
    for part in content or []:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append(text_block(section, role, str(part.get("text", "")), _ttl(part)))
        elif kind == "thinking":
            blocks.append(text_block(section, role, str(part.get("thinking", "")), _ttl(part)))
        else:
            blocks.append(json_block(section, role, part, _ttl(part)))
    return blocks


@dataclass(frozen=True, slots=True)
class Prompt:
    """An Anthropic request's prompt: tools, system and message blocks, in render order."""

    tools: list[Block]
    system: list[Block]
    messages: list[Block]

    @property
    def blocks(self) -> list[Block]:
        return self.tools + self.system + self.messages


def prompt_of(body: dict[str, Any]) -> Prompt:
    """Build the prompt blocks; a top-level ``cache_control`` marks the last block."""
    tools = [json_block("tools", None, tool, _ttl(tool)) for tool in body.get("tools") or []]
    system = _content_blocks("system", None, body.get("system") or [])
    messages: list[Block] = []
    for message in body.get("messages") or []:
        messages.extend(_content_blocks("messages", message.get("role"), message.get("content")))
    top = body.get("cache_control")
    if isinstance(top, dict):
        ttl = str(top.get("ttl") or "5m")
        for part in (messages, system, tools):
            if part:
                last = part[-1]
                if last.ttl is None:
                    part[-1] = Block(last.section, last.role, last.text, last.is_text, last.tokens, ttl)
                break
    return Prompt(tools, system, messages)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What cache diagnostics compare between a request and the one it names."""

    model: str
    tools: tuple[str, ...]
    system: tuple[str, ...]
    messages: tuple[str, ...]
    other: str
    cached_prefix: int


def _fingerprint(
    model: str, prompt: Prompt, body: dict[str, Any], cache: AnthropicCacheResult
) -> Fingerprint:
    other = compact_json({"thinking": body.get("thinking"), "tool_choice": body.get("tool_choice")})
    return Fingerprint(
        model,
        tuple(b.key for b in prompt.tools),
        tuple(b.key for b in prompt.system),
        tuple(b.key for b in prompt.messages),
        other,
        cache.cache_read + cache.cache_write,
    )


def diagnose(previous: Fingerprint | None, current: Fingerprint, cache_read: int) -> dict[str, Any] | None:
    """The ``diagnostics`` object for a request naming ``previous`` (``None`` when no divergence).

    ``cache_missed_input_tokens`` is the prefix the previous request left in the cache minus what
    this request read. Checks run in render order: model, tools, system, then messages (changed
    unless the previous messages are a prefix of these), then other prompt-affecting parameters
    (``thinking``, ``tool_choice``) as ``unavailable``.
    """
    if previous is None:
        return {"cache_miss_reason": {"type": "previous_message_not_found"}}
    missed = max(0, previous.cached_prefix - cache_read)
    reason: str | None = None
    if previous.model != current.model:
        reason = "model_changed"
    elif previous.tools != current.tools:
        reason = "tools_changed"
    elif previous.system != current.system:
        reason = "system_changed"
    elif current.messages[: len(previous.messages)] != previous.messages:
        reason = "messages_changed"
    elif previous.other != current.other:
        return {"cache_miss_reason": {"type": "unavailable"}}
    if reason is None:
        return None
    return {"cache_miss_reason": {"type": reason, "cache_missed_input_tokens": missed}}


def _thinking_enabled(body: dict[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def _schema(body: dict[str, Any]) -> Any:
    fmt = (body.get("output_config") or {}).get("format") or body.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        return fmt.get("schema") or {"type": "object"}
    return None


def usage_of(cache: AnthropicCacheResult, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": cache.input_tokens,
        "cache_creation_input_tokens": cache.cache_write,
        "cache_read_input_tokens": cache.cache_read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": cache.write_5m,
            "ephemeral_1h_input_tokens": cache.write_1h,
        },
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def count_tokens_plan(request: SimRequest) -> Plan:
    """Answer ``POST /v1/messages/count_tokens`` with the prompt's total input tokens."""
    return Plan(body={"input_tokens": sum(b.tokens for b in prompt_of(request.body).blocks)})


def messages_create(
    ctx: Context, request: SimRequest, reply: Reply, fingerprints: dict[str, Fingerprint]
) -> Plan:
    """Answer ``POST /v1/messages`` (also ``?beta=true``), JSON or SSE."""
    body = request.body
    model = str(body.get("model", ""))
    if reply.is_error:
        return _error_plan(ctx, reply)
    prompt = prompt_of(body)
    cache = ctx.anthropic_cache.apply(model, prompt.blocks, ctx.now())
    seed = next((b.text for b in reversed(prompt.messages) if b.role == "user"), "")

    thinking_text: str | None = None
    thinking_tokens = 0
    if _thinking_enabled(body):
        if reply.thinking is not None:
            thinking_text = reply.thinking
        else:
            n = ctx.default_reasoning_tokens if reply.reasoning_tokens is None else reply.reasoning_tokens
            thinking_text = filler_text("thinking:" + seed, n)
        thinking_tokens = count_tokens(thinking_text)
    out = build_output(
        ctx,
        reply,
        seed=seed,
        schema=_schema(body),
        reasoning_tokens=thinking_tokens,
        max_tokens=body.get("max_tokens"),
        id_prefix="toolu_",
    )
    if thinking_text is not None and out.reasoning_tokens < thinking_tokens:
        thinking_text = thinking_text[: out.reasoning_tokens * 4]
    stop_sequence = apply_stop(out, body.get("stop_sequences"))
    if stop_sequence is not None:
        stop_reason = "stop_sequence"
    else:
        stop_reason = "max_tokens" if out.truncated else ("tool_use" if out.calls else "end_turn")
    message_id = ctx.new_id("msg_")

    diagnostics: dict[str, Any] | None = None
    requested = body.get("diagnostics")
    current = _fingerprint(model, prompt, body, cache)
    if isinstance(requested, dict) and requested.get("previous_message_id"):
        diagnostics = diagnose(fingerprints.get(requested["previous_message_id"]), current, cache.cache_read)
    if len(fingerprints) >= _MAX_FINGERPRINTS:
        fingerprints.pop(next(iter(fingerprints)))
    fingerprints[message_id] = current

    content: list[dict[str, Any]] = []
    if thinking_text is not None:
        content.append({"type": "thinking", "thinking": thinking_text, "signature": _SIGNATURE})
    if out.text or not out.calls:
        content.append({"type": "text", "text": out.text})
    for call in out.calls:
        content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments_value})
    usage = usage_of(cache, out.output_tokens)
    if thinking_text is not None:
        usage["output_tokens_details"] = {"thinking_tokens": out.reasoning_tokens}
    message: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage,
    }
    if isinstance(requested, dict):
        message["diagnostics"] = diagnostics
    request_id = ctx.new_id("req_")
    headers = {"request-id": request_id}

    if not request.stream:
        if reply.stream_error_after is not None:
            return _error_plan(ctx, reply)
        return Plan(body=message, headers=headers, output_tokens=out.output_tokens)

    events: list[SseEvent] = []

    def emit(kind: str, tokens: int = 0, **fields: Any) -> None:
        events.append(SseEvent(kind, dumps({"type": kind, **fields}), tokens))

    def open_block(index: int, block: dict[str, Any], tokens: int = 0) -> None:
        emit("content_block_start", tokens, index=index, content_block=block)
        if index == 0:
            emit("ping")

    start = {**message, "content": [], "stop_reason": None, "usage": usage_of(cache, 1)}
    emit("message_start", message=start)
    for index, block in enumerate(content):
        kind = block["type"]
        if kind == "thinking":
            open_block(index, {"type": "thinking", "thinking": "", "signature": ""})
            for piece in split_tokens(block["thinking"]):
                emit(
                    "content_block_delta", 1, index=index, delta={"type": "thinking_delta", "thinking": piece}
                )
            emit(
                "content_block_delta", index=index, delta={"type": "signature_delta", "signature": _SIGNATURE}
            )
        elif kind == "text":
            open_block(index, {"type": "text", "text": ""})
            for piece in split_tokens(block["text"]):
                emit("content_block_delta", 1, index=index, delta={"type": "text_delta", "text": piece})
        else:
            tool = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            open_block(index, tool, count_tokens(block["name"]))
            emit("content_block_delta", index=index, delta={"type": "input_json_delta", "partial_json": ""})
            arguments = compact_json(block["input"])
            for piece in split_tokens(arguments):
                emit(
                    "content_block_delta",
                    1,
                    index=index,
                    delta={"type": "input_json_delta", "partial_json": piece},
                )
        emit("content_block_stop", index=index)
    final_usage = {
        "input_tokens": cache.input_tokens,
        "cache_creation_input_tokens": cache.cache_write,
        "cache_read_input_tokens": cache.cache_read,
        "output_tokens": out.output_tokens,
    }
    if thinking_text is not None:
        final_usage["output_tokens_details"] = {"thinking_tokens": out.reasoning_tokens}
    emit(
        "message_delta", delta={"stop_reason": stop_reason, "stop_sequence": stop_sequence}, usage=final_usage
    )
    emit("message_stop")
    plan = Plan(
        events=events,
        headers={**headers, "content-type": "text/event-stream; charset=utf-8"},
        output_tokens=out.output_tokens,
    )
    if reply.stream_error_after is not None:
        status = reply.error_status or 529
        error = error_body(status, reply.error_message, reply.error_type, request_id)
        plan.fail_event = SseEvent("error", dumps(error))
        plan.fail_after = reply.stream_error_after
        plan.fail_mode = reply.stream_error_mode or "event"
    return plan
