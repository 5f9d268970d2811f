"""The simulator's token rule and the prompt as a list of countable, hashable blocks.

The rule is an approximation chosen so that a test can compute every count by hand:

* a text block costs ``ceil(len(text) / 4)`` tokens (:func:`count_tokens`);
* anything that is not plain text (a tool definition, a ``tool_use`` / ``tool_result`` block, an
  image, an assistant ``tool_calls`` list) costs ``count_tokens`` of its compact JSON
  (:func:`compact_json`: no spaces, keys in the order given, non-ASCII kept, ``cache_control``
  removed);
* there is no hidden per-message or per-request overhead: roles, message boundaries and the
  request's other fields are free.

A streamed text is cut into tokens of four characters each, so a reply of ``n`` tokens streams
as ``n`` text deltas.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

CHARS_PER_TOKEN = 4


def count_tokens(text: str) -> int:
    """Return the simulator's token count for one text block: ``ceil(len(text) / 4)``."""
    return -(-len(text) // CHARS_PER_TOKEN)


def compact_json(value: Any) -> str:
    """Serialise ``value`` the way the simulator measures non-text blocks.

    Separators are ``,`` and ``:``, keys keep their order, non-ASCII characters are kept, and
    every ``cache_control`` key (at any depth) is dropped, so marking a block for caching does
    not change its size.
    """
    return json.dumps(_without_cache_control(value), separators=(",", ":"), ensure_ascii=False)


def count_json_tokens(value: Any) -> int:
    """Return the token count of a non-text block: ``count_tokens(compact_json(value))``."""
    return count_tokens(compact_json(value))


def split_tokens(text: str) -> list[str]:
    """Cut ``text`` into the four-character pieces a stream sends, one piece per token."""
    return [text[i : i + CHARS_PER_TOKEN] for i in range(0, len(text), CHARS_PER_TOKEN)]


def _without_cache_control(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list | tuple):
        return [_without_cache_control(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Block:
    """One countable piece of a prompt, in the order the provider renders it.

    ``section`` is ``tools``, ``system`` or ``messages``; ``text`` is the block's text for text
    blocks and its compact JSON otherwise; ``ttl`` is the Anthropic ``cache_control`` TTL when the
    block ends a cache breakpoint.
    """

    section: str
    role: str | None
    text: str
    is_text: bool
    tokens: int
    ttl: str | None = None

    @property
    def key(self) -> str:
        """Identity of the block's content (the breakpoint marker is not part of it)."""
        return f"{self.section}\x00{self.role}\x00{int(self.is_text)}\x00{self.text}"


def text_block(section: str, role: str | None, text: str, ttl: str | None = None) -> Block:
    """Build a text block counted with :func:`count_tokens`."""
    return Block(section, role, text, True, count_tokens(text), ttl)


def json_block(section: str, role: str | None, value: Any, ttl: str | None = None) -> Block:
    """Build a non-text block counted as its compact JSON."""
    text = compact_json(value)
    return Block(section, role, text, False, count_tokens(text), ttl)


def prefix_hashes(blocks: Iterable[Block]) -> list[str]:
    """Return, for each block, a digest of the whole prompt prefix that ends with it."""
    out: list[str] = []
    digest = b""
    for block in blocks:
        digest = hashlib.sha256(digest + block.key.encode("utf-8", "surrogatepass")).digest()
        out.append(digest.hex())
    return out


def shared_prefix_tokens(a: list[Block], b: list[Block]) -> int:
    """Count the leading tokens two prompts have in common, at four-character granularity.

    Whole equal blocks count fully; in the first block that differs, two text blocks of the same
    section and role share ``common_characters // 4`` tokens.
    """
    shared = 0
    for x, y in zip(a, b, strict=False):
        if x.key == y.key:
            shared += x.tokens
            continue
        if x.is_text and y.is_text and x.section == y.section and x.role == y.role:
            shared += _common_prefix_length(x.text, y.text) // CHARS_PER_TOKEN
        break
    return shared


def _common_prefix_length(a: str, b: str) -> int:
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:  # invariant: a[:lo] == b[:lo]
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo
