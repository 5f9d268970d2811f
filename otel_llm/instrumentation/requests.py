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
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from otel_llm.instrumentation.inference import prefix_hash

__all__ = ["DIGEST_SIZE", "Digests"]

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
