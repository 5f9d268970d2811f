"""Provider simulator: a local fake of the OpenAI and Anthropic APIs, faithful to their wire formats.

Point the real SDKs at it::

    from openai import OpenAI
    from anthropic import Anthropic
    from otel_llm.sim import Reply, Simulator

    with Simulator(ttft=0.0, per_token=0.0, default_output_tokens=20) as sim:
        openai = OpenAI(base_url=sim.openai_base_url, api_key="sim")   # sim.url + "/v1"
        claude = Anthropic(base_url=sim.url, api_key="sim")
        sim.enqueue(Reply.text("hello"), Reply.tool_call("read_file", {"path": "a.txt"}), Reply.error(429))
        ...
        sim.requests, sim.request_count, sim.reset(), sim.advance(301)

Or from a shell: ``python -m otel_llm.sim --port 0 --ttft 0.3 --per-token 0.01`` (``otel-llm sim``).

Endpoints
    ``POST /v1/chat/completions``, ``POST /v1/responses``, ``GET /v1/responses/{id}``,
    ``POST /v1/embeddings`` (float or base64 float32, the SDK's default), ``POST /v1/messages``
    (also the SDK's ``beta.messages``: anthropic 2.13 posts to the same path, betas in the
    ``anthropic-beta`` header, no query string) and ``POST /v1/messages/count_tokens``. Paths
    work with or without the ``/v1`` prefix. JSON and SSE streams, as the installed ``openai``
    and ``anthropic`` SDKs parse them, including their stream accumulators
    (``chat.completions.stream``, ``responses.stream``, ``messages.stream``) and structured-output
    helpers (``.parse`` with a pydantic model: the reply is JSON generated from the requested
    schema unless the script gives the text).

Tokens (:mod:`otel_llm.sim.tokens`)
    ``count_tokens(text) = ceil(len(text) / 4)`` per text block; tool definitions and other
    non-text blocks count as ``count_tokens`` of their compact JSON (``cache_control`` removed);
    no per-message overhead. An 8,000-character system prompt is exactly 2,000 tokens. Output:
    a scripted text costs ``count_tokens(text)``, a tool call ``count_tokens(name) +
    count_tokens(arguments JSON)``, reasoning/thinking tokens come on top; a generated reply is
    ``default_output_tokens`` long (``4 * n`` characters). Output is capped by ``max_tokens`` /
    ``max_completion_tokens`` / ``max_output_tokens`` (finish ``length``, stop ``max_tokens``,
    Responses status ``incomplete``); Anthropic ``stop_sequences`` and OpenAI chat ``stop`` cut the
    text at the first match. Streams send one token (four characters) per delta.

Reasoning
    OpenAI models named ``o<digit>*``, ``gpt-5*`` and later, or ``codex*`` (not ``*chat*``) report
    ``default_reasoning_tokens`` (16) reasoning tokens, 0 with ``reasoning_effort="none"``; other
    models 0. Anthropic emits a thinking block of that many tokens when the request enables
    ``thinking``. ``Reply(..., reasoning_tokens=N)`` overrides both.

Prompt caching (:mod:`otel_llm.sim.cache`)
    Anthropic: explicit ``cache_control`` breakpoints (tools -> system -> messages, or a top-level
    ``cache_control`` on the last block), TTL ``"5m"`` (default) or ``"1h"`` refreshed on use,
    minimum prefix 4096 tokens for Opus 4.5/4.6/4.7 and Haiku 4.5, 2048 for Haiku 3.x, 1024 for
    the rest; the longest live prefix at a breakpoint (or up to 20 blocks before one) is read,
    the rest up to the last breakpoint written. ``input_tokens`` counts uncached tokens only.
    OpenAI: automatic for prompts of at least 1024 tokens, read in steps of 1024 + 128k tokens,
    partitioned by model and ``prompt_cache_key``, first use reported as ``cache_write_tokens``,
    10 minutes idle TTL (24 h with ``prompt_cache_retention="24h"``); ``prompt_tokens`` /
    ``input_tokens`` include cached tokens. The cache clock is ``clock() + advance()``.

Cache diagnostics (Anthropic)
    With ``diagnostics={"previous_message_id": id}`` the message carries
    ``diagnostics.cache_miss_reason``: ``model_changed``, ``tools_changed``, ``system_changed``,
    ``messages_changed`` (with ``cache_missed_input_tokens`` = the previous request's cached
    prefix minus this request's read), ``unavailable`` (only ``thinking`` / ``tool_choice``
    changed), ``previous_message_not_found``; ``diagnostics`` is null when the prefix was reused
    (as the SDK documents).

Scripting (:class:`Reply`)
    ``Reply.text(s, reasoning_tokens=, thinking=)``, ``Reply.tool_call(name, args)``,
    ``Reply.tool_calls([...])``, ``Reply.json(value)``, ``Reply.default(n)``,
    ``Reply.error(status, retry_after=)`` (OpenAI / Anthropic error JSON; 529 is Anthropic's
    ``overloaded_error``), ``Reply.stream_error(after_chunks=N, mode="event"|"drop")``. Replies
    are consumed FIFO, one per model call of any provider (embeddings too; a non-error reply there
    is ignored); then ``sim.script(fn)`` answers with ``fn(request) -> Reply | None``; then the
    generated default. Mid-stream failures: Anthropic ``event: error``; OpenAI chat a
    ``data: {"error": ...}`` chunk (SDK raises ``APIError``) or a dropped connection
    (``APIConnectionError``); Responses an ``error`` event. ``sim.requests`` / ``request_count``
    record every HTTP request, retrievals included.

Latency
    ``ttft`` seconds before the first byte, then ``per_token`` seconds per further output token
    (non-streaming: ``ttft + per_token * output_tokens`` before the body). Zero by default.
"""

from otel_llm.sim.cache import (
    ANTHROPIC_MIN_CACHE_TOKENS,
    OPENAI_CACHE_TTL_SECONDS,
    anthropic_min_cache_tokens,
    openai_cacheable,
)
from otel_llm.sim.replies import Reply, ToolCall
from otel_llm.sim.server import Simulator
from otel_llm.sim.tokens import compact_json, count_json_tokens, count_tokens
from otel_llm.sim.wire import SimRequest

__all__ = [
    "ANTHROPIC_MIN_CACHE_TOKENS",
    "OPENAI_CACHE_TTL_SECONDS",
    "Reply",
    "SimRequest",
    "Simulator",
    "ToolCall",
    "anthropic_min_cache_tokens",
    "compact_json",
    "count_json_tokens",
    "count_tokens",
    "openai_cacheable",
]
