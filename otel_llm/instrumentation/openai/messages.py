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
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from otel_llm.instrumentation.inference import prefix_hash

_SYSTEM_ROLES = frozenset(("system", "developer"))
_CACHE_SIZE = 512


def get(obj: Any, name: str) -> Any:
    """A field of a dict or of an SDK model; ``None`` when absent."""
    if type(obj) is dict or isinstance(obj, Mapping):  # the exact check first: ABC checks are slow
        return obj.get(name)
    return getattr(obj, name, None)


# -- size estimate ----------------------------------------------------------------------


def _content_chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    chars = 0
    if isinstance(content, list | tuple):
        for part in content:
            text = get(part, "text")
            if isinstance(text, str):
                chars += len(text)
    return chars


def chat_chars(messages: Any) -> int:
    """Characters of text in chat messages (content and tool-call arguments)."""
    if not isinstance(messages, list | tuple):
        return 0
    chars = 0
    for message in messages:
        chars += _content_chars(get(message, "content"))
        calls = get(message, "tool_calls")
        if calls:
            for call in calls:
                arguments = get(get(call, "function"), "arguments")
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
        chars += _content_chars(get(item, "content"))
        for name in ("arguments", "output"):
            value = get(item, name)
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


class _DigestCache:
    """Digests of strings (keyed by value: equal strings hash alike, and a dict lookup of
    the same string object is O(1)) and of tool lists (keyed by the list object, kept
    alive here so its id is not reused; a list mutated in place keeps its old digest
    unless its length changes)."""

    def __init__(self) -> None:
        self.strings: OrderedDict[str, str] = OrderedDict()
        self.lists: OrderedDict[int, tuple[Any, int, str]] = OrderedDict()
        self.combined: dict[tuple[str, ...], str | None] = {}

    def combine(self, parts: list[str]) -> str | None:
        key = tuple(parts)
        digest = self.combined.get(key)
        if digest is None:
            if len(self.combined) > _CACHE_SIZE:
                self.combined.clear()
            digest = self.combined[key] = prefix_hash(parts)
        return digest

    def of_string(self, text: str) -> str:
        digest = self.strings.get(text)
        if digest is None:
            digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
            self.strings[text] = digest
            if len(self.strings) > _CACHE_SIZE:
                self.strings.popitem(last=False)
        return digest

    def of_list(self, items: list[Any] | tuple[Any, ...]) -> str:
        hit = self.lists.get(id(items))
        if hit is not None and hit[0] is items and hit[1] == len(items):
            return hit[2]
        blob = json.dumps(items, sort_keys=True, separators=(",", ":"), default=_model_dump)
        digest = hashlib.blake2b(blob.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
        self.lists[id(items)] = (items, len(items), digest)
        if len(self.lists) > _CACHE_SIZE:
            self.lists.popitem(last=False)
        return digest


def _model_dump(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(exclude_unset=True)
    return str(value)


_digests = _DigestCache()


def _leading_system_digests(items: Any, parts: list[str]) -> None:
    if not isinstance(items, list | tuple):
        return
    for item in items:
        if get(item, "role") not in _SYSTEM_ROLES:
            return
        content = get(item, "content")
        if isinstance(content, str):
            parts.append(_digests.of_string(content))
        elif isinstance(content, list | tuple):
            for part in content:
                text = get(part, "text")
                if isinstance(text, str):
                    parts.append(_digests.of_string(text))


def chat_prefix_hash(messages: Any, tools: Any) -> str | None:
    """Hash of the leading system/developer messages and the tools of a chat request."""
    parts: list[str] = []
    if isinstance(tools, list | tuple) and tools:
        parts.append(_digests.of_list(tools))
    _leading_system_digests(messages, parts)
    return _digests.combine(parts) if parts else None


def responses_prefix_hash(instructions: Any, input_: Any, tools: Any) -> str | None:
    """Hash of ``instructions``, leading system/developer input items and the tools."""
    parts: list[str] = []
    if isinstance(tools, list | tuple) and tools:
        parts.append(_digests.of_list(tools))
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
            kind = get(part, "type")
            text = get(part, "text")
            if isinstance(text, str):
                parts.append({"type": "text", "content": text})
            elif kind == "refusal":
                parts.append({"type": "text", "content": get(part, "refusal")})
            elif kind == "image_url":
                parts.append({"type": "uri", "modality": "image", "uri": get(get(part, "image_url"), "url")})
            elif kind == "input_image":
                parts.append({"type": "uri", "modality": "image", "uri": get(part, "image_url")})
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
        role = get(message, "role")
        if role == "tool":
            response = get(message, "content")
            parts = [{"type": "tool_call_response", "id": get(message, "tool_call_id"), "response": response}]
        else:
            parts = _content_parts(get(message, "content"))
            for call in get(message, "tool_calls") or ():
                fn = get(call, "function")
                parts.append(_tool_call_part(get(call, "id"), get(fn, "name"), get(fn, "arguments")))
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
    for choice in get(completion, "choices") or ():
        message = get(choice, "message")
        calls = []
        for call in get(message, "tool_calls") or ():
            fn = get(call, "function")
            calls.append({"id": get(call, "id"), "name": get(fn, "name"), "arguments": get(fn, "arguments")})
        finish_reason = get(choice, "finish_reason")
        out.append({"text": get(message, "content"), "tool_calls": calls, "finish_reason": finish_reason})
    return out


def responses_input_messages(input_: Any) -> str | None:
    """``gen_ai.input.messages`` for a Responses request."""
    if isinstance(input_, str):
        return _dumps([{"role": "user", "parts": [{"type": "text", "content": input_}]}])
    if not isinstance(input_, list | tuple):
        return None
    out = []
    for item in input_:
        kind = get(item, "type")
        if kind == "function_call":
            part = _tool_call_part(get(item, "call_id"), get(item, "name"), get(item, "arguments"))
            out.append({"role": "assistant", "parts": [part]})
        elif kind == "function_call_output":
            part = {"type": "tool_call_response", "id": get(item, "call_id"), "response": get(item, "output")}
            out.append({"role": "tool", "parts": [part]})
        else:
            out.append({"role": get(item, "role") or "user", "parts": _content_parts(get(item, "content"))})
    return _dumps(out)


def system_instructions(instructions: Any) -> str | None:
    """``gen_ai.system_instructions`` for a Responses ``instructions`` string."""
    if isinstance(instructions, str) and instructions:
        return _dumps([{"type": "text", "content": instructions}])
    return None


def responses_output_messages(response: Any, finish_reason: str | None) -> str:
    """``gen_ai.output.messages`` from a Responses ``Response``."""
    parts: list[dict[str, Any]] = []
    for item in get(response, "output") or ():
        kind = get(item, "type")
        if kind == "message":
            parts.extend(_content_parts(get(item, "content")))
        elif kind == "function_call":
            parts.append(_tool_call_part(get(item, "call_id"), get(item, "name"), get(item, "arguments")))
        elif kind == "reasoning":
            for summary in get(item, "summary") or ():
                parts.append({"type": "reasoning", "content": get(summary, "text")})
    return _dumps([{"role": "assistant", "parts": parts, "finish_reason": finish_reason or ""}])
