"""Shared pieces of the storage tests: a real chDB store config in a temp dir, span
builders. (The ``config`` and ``store`` fixtures are in ``tests/storage/conftest.py``.)"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from otel_llm.storage.config import StorageConfig, WriterConfig
from otel_llm.storage.records import SpanRecord

# Recent enough that no TTL drops the rows while a test runs.
NOW = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
_ids = itertools.count(1)


def ns(moment: dt.datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def make_config(tmp_path: Path, **writer: Any) -> StorageConfig:
    defaults: dict[str, Any] = {"spool_dir": str(tmp_path / "spool"), "flush_interval": 0.05}
    defaults["retry_initial"] = 0.05
    defaults.update(writer)
    return StorageConfig(path=str(tmp_path / "ch"), writer=WriterConfig(**defaults))


def span_id() -> str:
    return f"{next(_ids):016x}"


def llm_span(
    *,
    at: dt.datetime,
    task: str,
    iteration: int,
    model: str = "claude-sonnet-4-5",
    provider: str = "anthropic",
    service: str = "coding-agent",
    version: str = "1.0.0",
    input_tokens: int = 1000,
    output_tokens: int = 200,
    cache_read: int = 0,
    cache_write: int = 0,
    cache_write_1h: int = 0,
    reasoning: int = 0,
    cost: float = 0.01,
    savings: float = 0.0,
    stream: bool = False,
    ttft: float | None = None,
    prefix: str = "",
    error: str = "",
    duration_s: float = 1.5,
    miss_reason: str = "",
    trace: str | None = None,
) -> SpanRecord:
    """An inference span as otel-llm's instrumentation writes it (attribute values as strings)."""
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        "gen_ai.response.id": f"msg_{iteration}",
        "gen_ai.request.stream": "true" if stream else "false",
        "gen_ai.usage.input_tokens": str(input_tokens),
        "gen_ai.usage.output_tokens": str(output_tokens),
        "gen_ai.usage.cache_read.input_tokens": str(cache_read),
        "gen_ai.usage.cache_creation.input_tokens": str(cache_write),
        "gen_ai.usage.reasoning.output_tokens": str(reasoning),
        "otel_llm.cost.usd": repr(cost),
        "otel_llm.cost.cache_savings_usd": repr(savings),
        "otel_llm.price.source": "genai-prices 0.0.30",
        "otel_llm.task.id": task,
        "otel_llm.task.name": task.split("-")[0],
        "otel_llm.task.iteration": str(iteration),
        "server.address": "api.anthropic.com" if provider == "anthropic" else "api.openai.com",
    }
    if cache_write:
        attrs["otel_llm.usage.cache_creation.5m_input_tokens"] = str(cache_write - cache_write_1h)
        attrs["otel_llm.usage.cache_creation.1h_input_tokens"] = str(cache_write_1h)
    if ttft is not None:
        attrs["gen_ai.response.time_to_first_chunk"] = repr(ttft)
    if prefix:
        attrs["otel_llm.prompt.prefix_hash"] = prefix
    if miss_reason:
        attrs["otel_llm.cache.miss_reason"] = miss_reason
    if error:
        attrs["error.type"] = error
    return SpanRecord(
        timestamp_ns=ns(at),
        trace_id=trace or f"{abs(hash(task)):032x}"[-32:],
        span_id=span_id(),
        span_name=f"chat {model}",
        span_kind="Client",
        service_name=service,
        resource_attributes={
            "service.name": service,
            "service.version": version,
            "telemetry.sdk.name": "otel",
        },
        scope_name="otel_llm.instrumentation.anthropic",
        scope_version="0.1.0",
        span_attributes=attrs,
        duration_ns=int(duration_s * 1e9),
        status_code="Error" if error else "Ok",
    )


def wait_until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``check`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)
