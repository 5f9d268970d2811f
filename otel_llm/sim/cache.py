"""Prompt-cache models of the two providers, driven by the simulator's clock.

Anthropic (explicit breakpoints)
    A block carrying ``cache_control`` (a tool, a system block, a message content block, or the
    last block when the request has a top-level ``cache_control``) ends a breakpoint. Prompt order
    is tools -> system -> messages. A breakpoint whose prefix is shorter than the model's minimum
    (:func:`anthropic_min_cache_tokens`) is ignored. The cache is keyed by model and the exact
    content of the prefix. A request reads the longest live cached prefix found at one of its
    breakpoints or up to 20 blocks before one (the lookback), then writes every breakpoint prefix
    beyond that read; each written segment is billed at the TTL of the breakpoint that ends it.
    ``input_tokens`` is what is left (tokens after the last read or written breakpoint). Entries
    live 5 minutes (``ttl: "5m"``, the default) or 1 hour (``ttl: "1h"``) from their last use.

OpenAI (automatic)
    Every prompt of at least 1024 tokens is cached. A later prompt with the same model and
    ``prompt_cache_key`` reads the longest prefix it shares with a live cached prompt, rounded down
    to ``1024 + 128 * k`` tokens (nothing below 1024). The part of the prompt's own rounded length
    beyond that read is reported as ``cache_write_tokens``. Entries live
    :data:`OPENAI_CACHE_TTL_SECONDS` (10 minutes) after their last use, or 24 hours with
    ``prompt_cache_retention: "24h"``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from otel_llm.sim.tokens import Block, prefix_hashes, shared_prefix_tokens

ANTHROPIC_TTL_SECONDS: dict[str, float] = {"5m": 300.0, "1h": 3600.0}
ANTHROPIC_LOOKBACK_BLOCKS = 20
_ANTHROPIC_MAX_ENTRIES = 50_000  # beyond this, expired entries are purged

# Minimum cacheable prefix by model family, first match wins (substring of the model name).
# From Anthropic's prompt-caching guide as of 2026: 4096 for Opus 4.5/4.6/4.7 and Haiku 4.5,
# 2048 for the Haiku 3.x models, 1024 for every other model (Sonnet 3.7/4/4.5/4.6, Opus 4/4.1).
ANTHROPIC_MIN_CACHE_TOKENS: tuple[tuple[str, int], ...] = (
    ("opus-4-5", 4096),
    ("opus-4-6", 4096),
    ("opus-4-7", 4096),
    ("haiku-4-5", 4096),
    ("3-5-haiku", 2048),
    ("3-haiku", 2048),
    ("haiku-3", 2048),
)
ANTHROPIC_DEFAULT_MIN_CACHE_TOKENS = 1024

OPENAI_MIN_CACHE_TOKENS = 1024
OPENAI_CACHE_STEP_TOKENS = 128
OPENAI_CACHE_TTL_SECONDS = 600.0
OPENAI_EXTENDED_CACHE_TTL_SECONDS = 86400.0
_OPENAI_ENTRIES_PER_PARTITION = 512


def anthropic_min_cache_tokens(model: str, overrides: dict[str, int] | None = None) -> int:
    """Return the minimum cacheable prefix length for an Anthropic model.

    ``overrides`` maps model-name substrings to minimums and is consulted first.
    """
    for table in ((overrides or {}).items(), ANTHROPIC_MIN_CACHE_TOKENS):
        for fragment, minimum in table:
            if fragment in model:
                return minimum
    return ANTHROPIC_DEFAULT_MIN_CACHE_TOKENS


def openai_cacheable(tokens: int) -> int:
    """Round a shared-prefix length down to what OpenAI's cache can serve (0, or 1024 + 128k)."""
    if tokens < OPENAI_MIN_CACHE_TOKENS:
        return 0
    steps = (tokens - OPENAI_MIN_CACHE_TOKENS) // OPENAI_CACHE_STEP_TOKENS
    return OPENAI_MIN_CACHE_TOKENS + OPENAI_CACHE_STEP_TOKENS * steps


@dataclass(frozen=True, slots=True)
class AnthropicCacheResult:
    """Cache outcome of one Anthropic request, in the API's usage terms."""

    input_tokens: int
    cache_read: int
    write_5m: int
    write_1h: int

    @property
    def cache_write(self) -> int:
        return self.write_5m + self.write_1h


class AnthropicCache:
    """Explicit-breakpoint prompt cache. Not thread safe: the simulator holds its lock."""

    def __init__(self, min_overrides: dict[str, int] | None = None) -> None:
        self._entries: dict[tuple[str, str], tuple[float, float]] = {}  # key -> (expires_at, ttl)
        self._min_overrides = min_overrides

    def clear(self) -> None:
        self._entries.clear()

    def apply(self, model: str, blocks: list[Block], now: float) -> AnthropicCacheResult:
        """Look the request up, record its writes and refresh what it read."""
        total = sum(b.tokens for b in blocks)
        cumulative: list[int] = []
        running = 0
        for block in blocks:
            running += block.tokens
            cumulative.append(running)
        minimum = anthropic_min_cache_tokens(model, self._min_overrides)
        breakpoints = [i for i, b in enumerate(blocks) if b.ttl and cumulative[i] >= minimum]
        if not breakpoints:
            return AnthropicCacheResult(total, 0, 0, 0)
        hashes = prefix_hashes(blocks)

        candidates: set[int] = set()
        for bp in breakpoints:
            candidates.update(range(max(0, bp - ANTHROPIC_LOOKBACK_BLOCKS), bp + 1))
        hit = -1
        for index in sorted(candidates, reverse=True):
            entry = self._entries.get((model, hashes[index]))
            if entry is not None and entry[0] > now:
                hit = index
                break
        read = cumulative[hit] if hit >= 0 else 0
        if hit >= 0:
            _expires, ttl = self._entries[(model, hashes[hit])]
            self._entries[(model, hashes[hit])] = (now + ttl, ttl)

        if len(self._entries) > _ANTHROPIC_MAX_ENTRIES:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
        written = {"5m": 0, "1h": 0}
        covered = read
        for bp in breakpoints:
            ttl_name = blocks[bp].ttl or "5m"
            ttl = ANTHROPIC_TTL_SECONDS.get(ttl_name, ANTHROPIC_TTL_SECONDS["5m"])
            if cumulative[bp] > covered:
                written["1h" if ttl_name == "1h" else "5m"] += cumulative[bp] - covered
                covered = cumulative[bp]
            key = (model, hashes[bp])
            old = self._entries.get(key)
            if old is None or old[0] <= now:
                self._entries[key] = (now + ttl, ttl)
            else:
                longest = max(old[1], ttl)
                self._entries[key] = (max(old[0], now + longest), longest)
        return AnthropicCacheResult(total - covered, read, written["5m"], written["1h"])


@dataclass(frozen=True, slots=True)
class OpenAICacheResult:
    """Cache outcome of one OpenAI request: tokens read and tokens newly written."""

    prompt_tokens: int
    cached_tokens: int
    cache_write_tokens: int


@dataclass(slots=True)
class _OpenAIEntry:
    blocks: list[Block]
    expires_at: float
    ttl: float


class OpenAICache:
    """Automatic prefix cache. Not thread safe: the simulator holds its lock."""

    def __init__(self, ttl: float = OPENAI_CACHE_TTL_SECONDS) -> None:
        self.ttl = ttl
        # (model, prompt_cache_key) -> route of the first block -> full-prompt digest -> entry
        self._partitions: dict[tuple[str, str | None], dict[str, OrderedDict[str, _OpenAIEntry]]] = {}

    def clear(self) -> None:
        self._partitions.clear()

    def apply(
        self, model: str, blocks: list[Block], now: float, *, cache_key: str | None, retention: str | None
    ) -> OpenAICacheResult:
        """Look the request up, then store it (or refresh it) as a cached prompt."""
        total = sum(b.tokens for b in blocks)
        if not blocks:
            return OpenAICacheResult(0, 0, 0)
        ttl = OPENAI_EXTENDED_CACHE_TTL_SECONDS if retention == "24h" else self.ttl
        bucket = self._partitions.setdefault((model, cache_key), {}).setdefault(
            _route(blocks[0]), OrderedDict()
        )
        cached = 0
        best: _OpenAIEntry | None = None
        for digest, entry in list(bucket.items()):
            if entry.expires_at <= now:
                del bucket[digest]
                continue
            served = openai_cacheable(shared_prefix_tokens(entry.blocks, blocks))
            if served > cached:
                cached, best = served, entry
        if best is not None:
            best.expires_at = max(best.expires_at, now + best.ttl)
        own = openai_cacheable(total)
        write = max(0, own - cached)
        if own:
            digest = prefix_hashes(blocks)[-1]
            entry = bucket.get(digest)
            if entry is None:
                bucket[digest] = _OpenAIEntry(blocks, now + ttl, ttl)
            else:
                entry.ttl = max(entry.ttl, ttl)
                entry.expires_at = max(entry.expires_at, now + entry.ttl)
                bucket.move_to_end(digest)
            while len(bucket) > _OPENAI_ENTRIES_PER_PARTITION:
                bucket.popitem(last=False)
        return OpenAICacheResult(total, cached, write)


def _route(first: Block) -> str:
    # Prompts that differ within their first 256 tokens cannot share 1024, so bucketing on that
    # much of the first block loses no hit (OpenAI itself routes on a hash of the first tokens).
    if not first.is_text:
        return first.key
    return f"{first.section}\x00{first.role}\x00{first.text[:1024]}"
