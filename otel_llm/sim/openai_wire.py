"""OpenAI wire formats: Chat Completions, Responses (create and retrieve), Embeddings, errors."""

from __future__ import annotations

import array
import base64
import hashlib
import math
import random
import re
from typing import Any

from otel_llm.sim.cache import OpenAICacheResult
from otel_llm.sim.replies import Reply
from otel_llm.sim.tokens import Block, count_tokens, json_block, split_tokens, text_block
from otel_llm.sim.wire import Context, Output, Plan, SimRequest, SseEvent, apply_stop, build_output, dumps

_REASONING_MODEL = re.compile(r"^(o\d|gpt-[5-9]|codex)")
_EMBEDDING_DIMENSIONS = {"text-embedding-3-large": 3072}
_DEFAULT_EMBEDDING_DIMENSIONS = 1536
_MAX_STORED_RESPONSES = 10_000

_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request (simulated)."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided (simulated)."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden (simulated)."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist (simulated)."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests (simulated)."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def is_reasoning_model(model: str) -> bool:
    """True for o-series, gpt-5 and later, and codex models, except ``*-chat*`` variants."""
    return bool(_REASONING_MODEL.match(model)) and "chat" not in model


def reasoning_tokens_for(ctx: Context, model: str, effort: str | None, reply: Reply) -> int:
    """The reply's ``reasoning_tokens`` if set; else the simulator's default for reasoning models
    (0 with ``reasoning_effort: "none"``) and 0 for other models."""
    if reply.reasoning_tokens is not None:
        return reply.reasoning_tokens
    if not is_reasoning_model(model) or effort == "none":
        return 0
    return ctx.default_reasoning_tokens


def error_body(status: int, message: str | None = None, error_type: str | None = None) -> dict[str, Any]:
    """OpenAI's error JSON for an HTTP status."""
    kind, code, default = _ERRORS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None, "")
    )
    return {
        "error": {
            "message": message or default or f"Simulated error {status}.",
            "type": error_type or kind,
            "param": None,
            "code": code,
        }
    }


def error_plan(reply: Reply) -> Plan:
    status = reply.error_status or 500
    return Plan(status=status, body=error_body(status, reply.error_message, reply.error_type))


def _parts_blocks(section: str, role: str | None, content: Any) -> list[Block]:
    if content is None:
        return []
    if isinstance(content, str):
        return [text_block(section, role, content)]
    blocks = []
    for part in content:
        if isinstance(part, dict) and part.get("type") in ("text", "input_text", "output_text"):
            blocks.append(text_block(section, role, str(part.get("text", ""))))
        else:
            blocks.append(json_block(section, role, part))
    return blocks


def chat_blocks(body: dict[str, Any]) -> list[Block]:
    """The prompt of a chat request: tools, then each message's content parts and tool calls."""
    blocks = [json_block("tools", None, tool) for tool in body.get("tools") or []]
    for message in body.get("messages") or []:
        role = message.get("role")
        blocks.extend(_parts_blocks("messages", role, message.get("content")))
        if message.get("tool_calls"):
            blocks.append(json_block("messages", role, message["tool_calls"]))
    return blocks


def responses_input_blocks(body: dict[str, Any]) -> list[Block]:
    """The blocks of a Responses request's ``input`` (not tools, instructions or history)."""
    items = body.get("input")
    if items is None:
        return []
    if isinstance(items, str):
        return [text_block("messages", "user", items)]
    blocks = []
    for item in items:
        if isinstance(item, dict) and "role" in item and item.get("type", "message") == "message":
            blocks.extend(_parts_blocks("messages", item.get("role"), item.get("content")))
        else:
            blocks.append(json_block("messages", None, item))
    return blocks


def output_item_blocks(items: list[dict[str, Any]]) -> list[Block]:
    """The blocks a Responses output contributes to a later turn's prompt (reasoning is dropped)."""
    blocks = []
    for item in items:
        if item["type"] == "message":
            blocks.extend(_parts_blocks("messages", "assistant", item["content"]))
        elif item["type"] == "function_call":
            blocks.append(json_block("messages", None, item))
    return blocks


def _seed(blocks: list[Block]) -> str:
    return next((b.text for b in reversed(blocks) if b.role == "user"), blocks[-1].text if blocks else "")


def _apply_cache(ctx: Context, model: str, blocks: list[Block], body: dict[str, Any]) -> OpenAICacheResult:
    return ctx.openai_cache.apply(
        model,
        blocks,
        ctx.now(),
        cache_key=body.get("prompt_cache_key"),
        retention=body.get("prompt_cache_retention"),
    )


# --------------------------------------------------------------------------- chat completions


def chat_schema(body: dict[str, Any]) -> Any:
    fmt = body.get("response_format")
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_schema":
        return (fmt.get("json_schema") or {}).get("schema") or {"type": "object"}
    if fmt.get("type") == "json_object":
        return {"type": "object", "properties": {"result": {"type": "string"}}}
    return None


def chat_usage(cache: OpenAICacheResult, out: Output) -> dict[str, Any]:
    completion = out.output_tokens
    return {
        "prompt_tokens": cache.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": cache.prompt_tokens + completion,
        "prompt_tokens_details": {
            "cached_tokens": cache.cached_tokens,
            "cache_write_tokens": cache.cache_write_tokens,
            "audio_tokens": 0,
        },
        "completion_tokens_details": {
            "reasoning_tokens": out.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat_completion(ctx: Context, request: SimRequest, reply: Reply) -> Plan:
    """Answer ``POST /v1/chat/completions`` (JSON or SSE chunks)."""
    body = request.body
    model = str(body.get("model", ""))
    blocks = chat_blocks(body)
    if reply.is_error:
        return error_plan(reply)
    cache = _apply_cache(ctx, model, blocks, body)
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    out = build_output(
        ctx,
        reply,
        seed=_seed(blocks),
        schema=chat_schema(body),
        reasoning_tokens=reasoning_tokens_for(ctx, model, body.get("reasoning_effort"), reply),
        max_tokens=max_tokens,
        id_prefix="call_",
    )
    stopped = apply_stop(out, body.get("stop")) is not None
    finish = "stop" if stopped else ("length" if out.truncated else ("tool_calls" if out.calls else "stop"))
    completion_id = ctx.new_id("chatcmpl-")
    created = ctx.wall_time()
    usage = chat_usage(cache, out)
    tool_calls = [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json}}
        for c in out.calls
    ]
    if not request.stream:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": out.text if (out.text or not tool_calls) else None,
            "refusal": None,
            "annotations": [],
        }
        if tool_calls:
            message["tool_calls"] = tool_calls
        payload = {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": "fp_sim",
        }
        return _with_stream_failure(Plan(body=payload, output_tokens=out.output_tokens), reply, request)

    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_sim",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if include_usage:
            data["usage"] = None
        return data

    events: list[SseEvent] = []
    first: dict[str, Any] = {"role": "assistant", "content": "" if out.text or not tool_calls else None}
    first["refusal"] = None
    events.append(SseEvent(None, dumps(chunk(first))))
    for piece in split_tokens(out.text):
        events.append(SseEvent(None, dumps(chunk({"content": piece})), 1))
    for index, call in enumerate(out.calls):
        start = {
            "index": index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        events.append(SseEvent(None, dumps(chunk({"tool_calls": [start]})), count_tokens(call.name)))
        for piece in split_tokens(call.arguments_json):
            delta = {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
            events.append(SseEvent(None, dumps(chunk(delta)), 1))
    events.append(SseEvent(None, dumps(chunk({}, finish))))
    if include_usage:
        last = chunk({})
        last["choices"] = []
        last["usage"] = usage
        events.append(SseEvent(None, dumps(last)))
    events.append(SseEvent(None, "[DONE]"))
    plan = Plan(
        events=events,
        headers={"content-type": "text/event-stream; charset=utf-8"},
        output_tokens=out.output_tokens,
    )
    if reply.stream_error_after is not None:
        error = error_body(reply.error_status or 500, reply.error_message, reply.error_type)
        plan.fail_event = SseEvent(None, dumps(error))
    return _with_stream_failure(plan, reply, request)


def _with_stream_failure(plan: Plan, reply: Reply, request: SimRequest) -> Plan:
    if reply.stream_error_after is None:
        return plan
    if not request.stream:
        return error_plan(reply)
    plan.fail_after = reply.stream_error_after
    plan.fail_mode = reply.stream_error_mode or "drop"
    return plan


# --------------------------------------------------------------------------- responses


def responses_schema(body: dict[str, Any]) -> Any:
    fmt = (body.get("text") or {}).get("format")
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_schema":
        return fmt.get("schema") or {"type": "object"}
    if fmt.get("type") == "json_object":
        return {"type": "object", "properties": {"result": {"type": "string"}}}
    return None


def responses_create(ctx: Context, request: SimRequest, reply: Reply, store: dict[str, Any]) -> Plan:
    """Answer ``POST /v1/responses``; the finished response is kept in ``store`` for retrieval.

    ``store[id]`` is ``{"response": <JSON>, "context": <blocks for a follow-up turn>}``.
    """
    body = request.body
    model = str(body.get("model", ""))
    previous_id = body.get("previous_response_id")
    history: list[Block] = []
    if previous_id:
        previous = store.get(previous_id)
        if previous is None:
            return Plan(
                status=404,
                body=error_body(404, f"Previous response with id '{previous_id}' not found.", None),
            )
        history = previous["context"]
    instructions = body.get("instructions")
    tools = [json_block("tools", None, tool) for tool in body.get("tools") or []]
    head = [text_block("messages", "developer", instructions)] if isinstance(instructions, str) else []
    turn = responses_input_blocks(body)
    blocks = tools + head + history + turn
    if reply.is_error:
        return error_plan(reply)
    cache = _apply_cache(ctx, model, blocks, body)
    effort = (body.get("reasoning") or {}).get("effort")
    out = build_output(
        ctx,
        reply,
        seed=_seed(blocks),
        schema=responses_schema(body),
        reasoning_tokens=reasoning_tokens_for(ctx, model, effort, reply),
        max_tokens=body.get("max_output_tokens"),
        id_prefix="call_",
    )
    response_id = ctx.new_id("resp_")
    created = ctx.wall_time()
    output: list[dict[str, Any]] = []
    if out.reasoning_tokens:
        output.append({"id": ctx.new_id("rs_"), "type": "reasoning", "summary": [], "status": "completed"})
    if out.text or not out.calls:
        part = {"type": "output_text", "text": out.text, "annotations": [], "logprobs": []}
        output.append(
            {
                "id": ctx.new_id("msg_"),
                "type": "message",
                "status": "incomplete" if out.truncated else "completed",
                "role": "assistant",
                "content": [part],
            }
        )
    for call in out.calls:
        output.append(
            {
                "id": ctx.new_id("fc_"),
                "type": "function_call",
                "status": "completed",
                "arguments": call.arguments_json,
                "call_id": call.id,
                "name": call.name,
            }
        )
    usage = {
        "input_tokens": cache.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": cache.cached_tokens,
            "cache_write_tokens": cache.cache_write_tokens,
        },
        "output_tokens": out.output_tokens,
        "output_tokens_details": {"reasoning_tokens": out.reasoning_tokens},
        "total_tokens": cache.prompt_tokens + out.output_tokens,
    }
    status = "incomplete" if out.truncated else "completed"

    def response(state: str, items: list[dict[str, Any]], with_usage: bool) -> dict[str, Any]:
        return {
            "id": response_id,
            "object": "response",
            "created_at": created,
            "status": state,
            "background": False,
            "completed_at": created if state == "completed" else None,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if state == "incomplete" else None,
            "instructions": instructions,
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": body.get("max_tool_calls"),
            "model": model,
            "output": items,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": previous_id,
            "prompt_cache_key": body.get("prompt_cache_key"),
            "prompt_cache_retention": body.get("prompt_cache_retention"),
            "reasoning": {"effort": effort, "summary": None} if is_reasoning_model(model) else None,
            "service_tier": "default",
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_logprobs": body.get("top_logprobs", 0),
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation", "disabled"),
            "usage": usage if with_usage else None,
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
        }

    final = response(status, output, True)
    if body.get("store", True) is not False:
        if len(store) >= _MAX_STORED_RESPONSES:
            store.pop(next(iter(store)))
        store[response_id] = {"response": final, "context": history + turn + output_item_blocks(output)}
    if not request.stream:
        return _with_stream_failure(Plan(body=final, output_tokens=out.output_tokens), reply, request)

    events: list[SseEvent] = []

    def emit(kind: str, tokens: int = 0, **fields: Any) -> None:
        events.append(SseEvent(kind, dumps({"type": kind, "sequence_number": len(events), **fields}), tokens))

    emit("response.created", response=response("in_progress", [], False))
    emit("response.in_progress", response=response("in_progress", [], False))
    for index, item in enumerate(output):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            emit(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "content": []},
            )
            empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            ids = {"item_id": item["id"], "output_index": index, "content_index": 0}
            emit("response.content_part.added", **ids, part=empty)
            for piece in split_tokens(text):
                emit("response.output_text.delta", 1, **ids, delta=piece, logprobs=[])
            emit("response.output_text.done", **ids, text=text, logprobs=[])
            emit("response.content_part.done", **ids, part=item["content"][0])
        elif item["type"] == "function_call":
            added = {**item, "status": "in_progress", "arguments": ""}
            emit("response.output_item.added", count_tokens(item["name"]), output_index=index, item=added)
            for piece in split_tokens(item["arguments"]):
                emit(
                    "response.function_call_arguments.delta",
                    1,
                    item_id=item["id"],
                    output_index=index,
                    delta=piece,
                )
            emit(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                name=item["name"],
                arguments=item["arguments"],
            )
        else:
            emit("response.output_item.added", out.reasoning_tokens, output_index=index, item=item)
        emit("response.output_item.done", output_index=index, item=item)
    emit(f"response.{status}", response=final)
    plan = Plan(
        events=events,
        headers={"content-type": "text/event-stream; charset=utf-8"},
        output_tokens=out.output_tokens,
    )
    if reply.stream_error_after is not None:
        error = error_body(reply.error_status or 500, reply.error_message, reply.error_type)["error"]
        fields = {"code": error["type"], "message": error["message"], "param": None}
        plan.fail_event = SseEvent(
            "error", dumps({"type": "error", "sequence_number": reply.stream_error_after, **fields})
        )
    return _with_stream_failure(plan, reply, request)


def responses_retrieve(response_id: str, store: dict[str, Any]) -> Plan:
    """Answer ``GET /v1/responses/{id}`` with the stored response, or OpenAI's 404."""
    entry = store.get(response_id)
    if entry is None:
        return Plan(status=404, body=error_body(404, f"Response with id '{response_id}' not found.", None))
    return Plan(body=entry["response"])


# --------------------------------------------------------------------------- embeddings


def _embedding(text: str, dimensions: int) -> list[float]:
    rng = random.Random(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest())
    raw = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return array.array("f", [v / norm for v in raw]).tolist()


def embeddings(ctx: Context, request: SimRequest, reply: Reply) -> Plan:
    """Answer ``POST /v1/embeddings``: unit vectors derived from each input, float or base64.

    A text input costs ``count_tokens(text)``; a token-array input costs its length.
    """
    if reply.is_error or reply.stream_error_after is not None:
        return error_plan(reply)
    body = request.body
    model = str(body.get("model", ""))
    raw = body.get("input")
    if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)):
        inputs: list[Any] = [raw]
    else:
        inputs = list(raw or [])
    dimensions = int(
        body.get("dimensions") or _EMBEDDING_DIMENSIONS.get(model, _DEFAULT_EMBEDDING_DIMENSIONS)
    )
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    tokens = 0
    for index, item in enumerate(inputs):
        text = item if isinstance(item, str) else dumps(item)
        tokens += count_tokens(item) if isinstance(item, str) else len(item)
        vector = _embedding(text, dimensions)
        encoded: Any = vector
        if as_base64:
            encoded = base64.b64encode(array.array("f", vector).tobytes()).decode("ascii")
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    payload = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return Plan(body=payload)
