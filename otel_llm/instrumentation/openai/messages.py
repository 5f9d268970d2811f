"""What an OpenAI request says before it is sent, read cheaply.

Three things are read from the request arguments on every call, so each is kept to a walk
over the messages without serialising them:

- the input-size estimate the budget guard reserves against (characters / 4);
- the prefix hash (leading system/developer messages, or ``instructions``, plus tools):
  strings are hashed once per distinct string object and tool lists once per list object;
- nothing else unless content capture is on: then the messages are converted to the
  GenAI semantic-convention JSON (``gen_ai.input.messages``, ``gen_ai.output.messages``,
  ``gen_ai.system_instructions``).

Arguments may be dicts, the SDK's pydantic models (a previous ``ChatCompletionMessage``
appended to the history) or any iterable. Only lists and tuples are walked: a generator
passed as ``messages`` must reach the SDK unconsumed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from otel_llm.fields import field
from otel_llm.instrumentation.requests import DIGEST_SIZE, Digests

_SYSTEM_ROLES = frozenset(("system", "developer"))


# -- size estimate ----------------------------------------------------------------------


def _content_chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    chars = 0
    if isinstance(content, list | tuple):
        for part in content:
            text = field(part, "text")
            if isinstance(text, str):
                chars += len(text)
    return chars


def chat_chars(messages: Any) -> int:
    """Characters of text in chat messages (content and tool-call arguments)."""
    if not isinstance(messages, list | tuple):
        return 0
    chars = 0
    for message in messages:
        chars += _content_chars(field(message, "content"))
        calls = field(message, "tool_calls")
        if calls:
            for call in calls:
                arguments = field(field(call, "function"), "arguments")
                if isinstance(arguments, str):
                    chars += len(arguments)
    return chars


def responses_chars(input_: Any) -> int:
    """Characters of text in a Responses ``input`` (a string or a list of items)."""
    if isinstance(input_, str):
        return len(input_)
    if not isinstance(input_, list | tuple):
        return 0
    chars = 0
    for item in input_:
        chars += _content_chars(field(item, "content"))
        for name in ("arguments", "output"):
            value = field(item, name)
            if isinstance(value, str):
                chars += len(value)
    return chars


def embeddings_chars(input_: Any) -> int:
    if isinstance(input_, str):
        return len(input_)
    if isinstance(input_, list | tuple):
        return sum(len(item) if isinstance(item, str) else 4 * len(item) for item in input_ if item)
    return 0


# -- prefix hash ----------------------------------------------------------------------


def _list_digest(items: Sequence[Any]) -> str:
    blob = json.dumps(items, sort_keys=True, separators=(",", ":"), default=_model_dump)
    return hashlib.blake2b(blob.encode("utf-8", "surrogatepass"), digest_size=DIGEST_SIZE).hexdigest()


def _model_dump(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(exclude_unset=True)
    return str(value)


_digests = Digests()


def _leading_system_digests(items: Any, parts: list[str]) -> None:
    if not isinstance(items, list | tuple):
        return
    for item in items:
        if field(item, "role") not in _SYSTEM_ROLES:
            return
        content = field(item, "content")
        if isinstance(content, str):
            parts.append(_digests.of_string(content))
        elif isinstance(content, list | tuple):
            for part in content:
                text = field(part, "text")
                if isinstance(text, str):
                    parts.append(_digests.of_string(text))


def chat_prefix_hash(messages: Any, tools: Any) -> str | None:
    """Hash of the leading system/developer messages and the tools of a chat request."""
    parts: list[str] = []
    if isinstance(tools, list | tuple) and tools:
        parts.append(_digests.of_list(tools, _list_digest))
    _leading_system_digests(messages, parts)
    return _digests.combine(parts) if parts else None


def responses_prefix_hash(instructions: Any, input_: Any, tools: Any) -> str | None:
    """Hash of ``instructions``, leading system/developer input items and the tools."""
    parts: list[str] = []
    if isinstance(tools, list | tuple) and tools:
        parts.append(_digests.of_list(tools, _list_digest))
    if isinstance(instructions, str) and instructions:
        parts.append(_digests.of_string(instructions))
    _leading_system_digests(input_, parts)
    return _digests.combine(parts) if parts else None


# -- content (only when capture is on) -------------------------------------------------


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_model_dump)


def _arguments(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _content_parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, Any]] = []
    if isinstance(content, list | tuple):
        for part in content:
            kind = field(part, "type")
            text = field(part, "text")
            if isinstance(text, str):
                parts.append({"type": "text", "content": text})
            elif kind == "refusal":
                parts.append({"type": "text", "content": field(part, "refusal")})
            elif kind == "image_url":
                parts.append(
                    {"type": "uri", "modality": "image", "uri": field(field(part, "image_url"), "url")}
                )
            elif kind == "input_image":
                parts.append({"type": "uri", "modality": "image", "uri": field(part, "image_url")})
            else:
                parts.append({"type": str(kind)})
    return parts


def _tool_call_part(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    return {"type": "tool_call", "id": call_id, "name": name, "arguments": _arguments(arguments)}


def chat_input_messages(messages: Any) -> str | None:
    """``gen_ai.input.messages`` for a chat request (system messages included, as the
    conventions ask for instructions that are part of the chat history)."""
    if not isinstance(messages, list | tuple):
        return None
    out = []
    for message in messages:
        role = field(message, "role")
        if role == "tool":
            response = field(message, "content")
            parts = [
                {"type": "tool_call_response", "id": field(message, "tool_call_id"), "response": response}
            ]
        else:
            parts = _content_parts(field(message, "content"))
            for call in field(message, "tool_calls") or ():
                fn = field(call, "function")
                parts.append(_tool_call_part(field(call, "id"), field(fn, "name"), field(fn, "arguments")))
        out.append({"role": role, "parts": parts})
    return _dumps(out)


def chat_output_messages(choices: list[dict[str, Any]]) -> str:
    """``gen_ai.output.messages`` from choices already reduced to ``{"text", "tool_calls",
    "finish_reason"}`` (by the non-stream reader or the chunk accumulator)."""
    out = []
    for choice in choices:
        parts: list[dict[str, Any]] = []
        if choice.get("text"):
            parts.append({"type": "text", "content": choice["text"]})
        for call in choice.get("tool_calls") or ():
            parts.append(_tool_call_part(call.get("id"), call.get("name"), call.get("arguments")))
        out.append({"role": "assistant", "parts": parts, "finish_reason": choice.get("finish_reason") or ""})
    return _dumps(out)


def chat_choices(completion: Any) -> list[dict[str, Any]]:
    """A non-stream completion's choices in the shape :func:`chat_output_messages` reads."""
    out = []
    for choice in field(completion, "choices") or ():
        message = field(choice, "message")
        calls = []
        for call in field(message, "tool_calls") or ():
            fn = field(call, "function")
            calls.append(
                {"id": field(call, "id"), "name": field(fn, "name"), "arguments": field(fn, "arguments")}
            )
        finish_reason = field(choice, "finish_reason")
        out.append({"text": field(message, "content"), "tool_calls": calls, "finish_reason": finish_reason})
    return out


def responses_input_messages(input_: Any) -> str | None:
    """``gen_ai.input.messages`` for a Responses request."""
    if isinstance(input_, str):
        return _dumps([{"role": "user", "parts": [{"type": "text", "content": input_}]}])
    if not isinstance(input_, list | tuple):
        return None
    out = []
    for item in input_:
        kind = field(item, "type")
        if kind == "function_call":
            part = _tool_call_part(field(item, "call_id"), field(item, "name"), field(item, "arguments"))
            out.append({"role": "assistant", "parts": [part]})
        elif kind == "function_call_output":
            part = {
                "type": "tool_call_response",
                "id": field(item, "call_id"),
                "response": field(item, "output"),
            }
            out.append({"role": "tool", "parts": [part]})
        else:
            out.append(
                {"role": field(item, "role") or "user", "parts": _content_parts(field(item, "content"))}
            )
    return _dumps(out)


def system_instructions(instructions: Any) -> str | None:
    """``gen_ai.system_instructions`` for a Responses ``instructions`` string."""
    if isinstance(instructions, str) and instructions:
        return _dumps([{"type": "text", "content": instructions}])
    return None


def responses_output_messages(response: Any, finish_reason: str | None) -> str:
    """``gen_ai.output.messages`` from a Responses ``Response``."""
    parts: list[dict[str, Any]] = []
    for item in field(response, "output") or ():
        kind = field(item, "type")
        if kind == "message":
            parts.extend(_content_parts(field(item, "content")))
        elif kind == "function_call":
            parts.append(
                _tool_call_part(field(item, "call_id"), field(item, "name"), field(item, "arguments"))
            )
        elif kind == "reasoning":
            for summary in field(item, "summary") or ():
                parts.append({"type": "reasoning", "content": field(summary, "text")})
    return _dumps([{"role": "assistant", "parts": parts, "finish_reason": finish_reason or ""}])
