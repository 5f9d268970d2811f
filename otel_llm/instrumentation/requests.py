"""What both provider instrumentations compute from a request before it is sent:
:class:`Digests` hashes a prompt's cacheable prefix without serialising its long texts
and tool lists on every call: each distinct string is digested once, each tool list
once per list object, and a combination of digests once. (Fields of request arguments
are read with :func:`otel_llm.fields.field`.)

Everything here runs on every call, before the request leaves; it is kept to dict
lookups on the hot path.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from otel_llm.instrumentation.inference import prefix_hash

__all__ = ["DIGEST_SIZE", "Digests", "RequestDigests"]

DIGEST_SIZE = 8
"""Bytes of a string's digest: as wide as the prefix hash the digests are combined into."""

T = TypeVar("T")


class Digests:
    """Bounded caches of what a prompt prefix's parts digest to.

    Strings are keyed by value (equal strings digest alike; a lookup of the same string
    object is O(1)). A list (tools) is keyed by the list object, kept alive here so its id
    is not reused, and its length: a list edited in place at the same length keeps what
    was computed for it until evicted. Each provider keeps its own instance, since what
    it computes for a list is its own."""

    __slots__ = ("_combined", "_lists", "_size", "_strings")

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._strings: OrderedDict[str, str] = OrderedDict()
        self._lists: OrderedDict[int, tuple[Any, int, Any]] = OrderedDict()
        self._combined: dict[tuple[str, ...], str | None] = {}

    def of_string(self, text: str) -> str:
        """The hex digest of ``text``."""
        digest = self._strings.get(text)
        if digest is None:
            raw = text.encode("utf-8", "surrogatepass")
            digest = self._strings[text] = hashlib.blake2b(raw, digest_size=DIGEST_SIZE).hexdigest()
            if len(self._strings) > self._size:
                self._strings.popitem(last=False)
        return digest

    def of_list(self, items: Sequence[Any], compute: Callable[[Sequence[Any]], T]) -> T:
        """``compute(items)``, computed once per list object (and length)."""
        hit = self._lists.get(id(items))
        if hit is not None and hit[0] is items and hit[1] == len(items):
            return hit[2]
        value = compute(items)
        self._lists[id(items)] = (items, len(items), value)
        if len(self._lists) > self._size:
            self._lists.popitem(last=False)
        return value

    def combine(self, parts: Sequence[str]) -> str | None:
        """The prefix hash of digests (and other short strings), computed once per
        combination."""
        key = tuple(parts)
        digest = self._combined.get(key)
        if digest is None:
            if len(self._combined) > self._size:
                self._combined.clear()
            digest = self._combined[key] = prefix_hash(key)
        return digest


# Request arguments that do not change the answer: how it is delivered or billed, and
# bookkeeping. Everything else (model, messages/input, system, tools, sampling, output
# format, reasoning effort...) is part of the request hash.
_NOT_IN_REQUEST_HASH = frozenset(
    {
        "stream", "stream_options", "extra_headers", "extra_query", "extra_body", "timeout",
        "metadata", "user", "store", "service_tier", "background", "prompt_cache_key",
        "safety_identifier", "betas",
    }
)  # fmt: skip


def _plain(value: Any) -> Any:
    # SDK request params are plain dicts, lists and scalars; pydantic models (instances)
    # are dumped; a class (a structured-output type passed to parse()) stands by its name.
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    dump = getattr(value, "model_dump", None)
    return dump(mode="json", exclude_none=True) if callable(dump) else value


def _blob(value: Any) -> bytes:
    try:
        text = json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), default=str)
    except (TypeError, ValueError):  # unsortable keys, a model that will not dump: still a digest
        text = repr(value)
    return text.encode("utf-8", "surrogatepass")


class RequestDigests:
    """The request hash (``otel_llm.prompt.request_hash``): a digest of every argument
    that decides the answer, without re-serialising the conversation on every call.

    Each item of the ``messages``/``input`` list is digested once per item object (kept
    alive here, so its id is not reused), and the history list's running hash is kept per
    list object: an agent appends to one history list, so a call digests only the items
    that are new since the last. Other list and dict arguments
    (tools, response format) are digested once per object the same way. An object edited
    in place keeps its first digest until evicted, the trade the prefix digests make for
    tool lists. Strings and numbers are hashed as they are, each call."""

    __slots__ = ("_histories", "_items", "_size")

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._items: OrderedDict[int, tuple[Any, bytes]] = OrderedDict()
        # history list object -> (the list, items hashed so far, hash state after them)
        self._histories: OrderedDict[int, tuple[Any, int, Any]] = OrderedDict()

    def _history(self, items: list[Any] | tuple[Any, ...]) -> bytes:
        # The same list, grown since the last call: continue from its hash state, so a
        # call costs the new items only.
        hit = self._histories.get(id(items))
        if hit is not None and hit[0] is items and hit[1] <= len(items):
            state, done = hit[2].copy(), hit[1]
        else:
            state, done = hashlib.blake2b(digest_size=16), 0
        for item in items[done:]:
            state.update(self._item(item))
        self._histories[id(items)] = (items, len(items), state.copy())
        if len(self._histories) > self._size:
            self._histories.popitem(last=False)
        return state.digest()

    def _item(self, item: Any) -> bytes:
        hit = self._items.get(id(item))
        if hit is not None and hit[0] is item:
            return hit[1]
        digest = hashlib.blake2b(_blob(item), digest_size=DIGEST_SIZE).digest()
        self._items[id(item)] = (item, digest)
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return digest

    def of_request(self, kwargs: Mapping[str, Any], history: str) -> str:
        """The request hash of SDK call arguments ``kwargs``; ``history`` names the list
        argument that holds the conversation (``messages`` or ``input``)."""
        parts: list[bytes] = []
        for key in sorted(kwargs):
            if key in _NOT_IN_REQUEST_HASH:
                continue
            value = kwargs[key]
            parts.append(key.encode())
            if key == history and isinstance(value, list | tuple):
                parts.append(self._history(value))
            elif isinstance(value, str):
                parts.append(value.encode("utf-8", "surrogatepass"))
            elif value is None or isinstance(value, bool | int | float):
                parts.append(repr(value).encode())
            else:  # tools, response_format...: usually the same object call after call
                parts.append(self._item(value))
        return hashlib.blake2b(b"\x00".join(parts), digest_size=16).hexdigest()
