"""Build OTLP trace export requests by hand, and run an in-process collector."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from otel_llm.collector.config import Config, parse_config
from otel_llm.collector.service import Collector
from otel_llm.policy import BudgetConfig, parse_policy

NOW_NS = time.time_ns()  # stored rows older than the TTL (30 days) would vanish


def value(v: Any) -> AnyValue:
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    return AnyValue(string_value=str(v))


def kvs(attributes: Mapping[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=value(v)) for k, v in attributes.items()]


def span(
    name: str = "chat gpt-4o-mini",
    attributes: Mapping[str, Any] | None = None,
    *,
    trace_id: bytes | None = None,
    span_id: bytes | None = None,
    parent: bytes = b"",
    start_ns: int = NOW_NS,
    duration_ns: int = 1_000_000,
    kind: int = Span.SpanKind.SPAN_KIND_CLIENT,
) -> Span:
    return Span(
        trace_id=trace_id or random.randbytes(16),
        span_id=span_id or random.randbytes(8),
        parent_span_id=parent,
        name=name,
        kind=kind,
        start_time_unix_nano=start_ns,
        end_time_unix_nano=start_ns + duration_ns,
        attributes=kvs(attributes or {}),
    )


def call(
    task_id: str | None,
    input_tokens: int = 100,
    output_tokens: int = 10,
    *,
    model: str = "gpt-4o-mini",
    provider: str = "openai",
    response_id: str | None = None,
    start_ns: int | None = None,
    trace_id: bytes | None = None,
    parent: bytes = b"",
    **extra: Any,
) -> Span:
    """An inference span under our contract, without a cost (the collector prices it)."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
    }
    if task_id is not None:
        attributes["otel_llm.task.id"] = task_id
    if response_id is not None:
        attributes["gen_ai.response.id"] = response_id
    attributes.update(extra)
    return span(f"chat {model}", attributes, start_ns=start_ns or NOW_NS, trace_id=trace_id, parent=parent)


def request(*spans: Span, resource: Mapping[str, Any] | None = None) -> ExportTraceServiceRequest:
    resource_attributes = {"service.name": "test-agent", **(resource or {})}
    rs = ResourceSpans(scope_spans=[ScopeSpans(spans=list(spans))])
    rs.resource.attributes.extend(kvs(resource_attributes))
    return ExportTraceServiceRequest(resource_spans=[rs])


def collector_config(tmp: Path, **sections: Any) -> Config:
    data: dict[str, Any] = {
        "receivers": {"otlp": {"grpc": {"endpoint": "127.0.0.1:0"}, "http": {"endpoint": "127.0.0.1:0"}}},
        "state": {"dir": str(tmp / "state")},
        "storage": {"path": str(tmp / "clickhouse")},
    }
    for key, section in sections.items():
        if isinstance(section, dict) and isinstance(data.get(key), dict):
            merged = dict(data[key])
            merged.update(section)
            data[key] = merged
        else:
            data[key] = section
    return parse_config(data, "test-config.yaml")


def budgets(policy: Mapping[str, Any]) -> BudgetConfig:
    return BudgetConfig(policy=parse_policy(dict(policy), "policy.yaml"))


@contextmanager
def running_collector(
    tmp: Path, policy: Mapping[str, Any] | None = None, **sections: Any
) -> Iterator[Collector]:
    config = collector_config(tmp, **sections)
    with Collector(config, budgets=budgets(policy) if policy else BudgetConfig()) as collector:
        yield collector


def free_env() -> dict[str, str]:
    """The environment without OTel, provider or otel-llm settings."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "OPENAI_", "ANTHROPIC_", "TRACELOOP_"))
    }


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CollectorProcess:
    """``otel-llm collector --config PATH`` as a child process (what an operator runs)."""

    def __init__(
        self, tmp: Path, name: str, config: Mapping[str, Any], policy: Mapping[str, Any] | None
    ) -> None:
        import yaml

        self.dir = tmp / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.http_port, self.grpc_port = free_port(), free_port()
        data: dict[str, Any] = {
            "receivers": {
                "otlp": {
                    "grpc": {"endpoint": f"127.0.0.1:{self.grpc_port}"},
                    "http": {"endpoint": f"127.0.0.1:{self.http_port}"},
                }
            },
            "state": {"dir": str(self.dir / "state")},
            "storage": {"path": str(self.dir / "clickhouse")},
            **config,
        }
        if policy is not None:
            (self.dir / "policy.yaml").write_text(yaml.safe_dump(dict(policy)))
            data["processors"] = {"budget": {"policy_file": str(self.dir / "policy.yaml")}}
        self.config_path = self.dir / "config.yaml"
        self.config_path.write_text(yaml.safe_dump(data))
        self.http_url = f"http://127.0.0.1:{self.http_port}"
        self.grpc_endpoint = f"127.0.0.1:{self.grpc_port}"
        self.process: Any = None

    def start(self, timeout: float = 60.0) -> CollectorProcess:
        import subprocess
        import sys
        import urllib.request

        self.process = subprocess.Popen(
            [sys.executable, "-m", "otel_llm.cli", "collector", "--config", str(self.config_path)],
            env=free_env(),
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "stderr.log", "ab"),  # noqa: SIM115 - the child holds it
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError((self.dir / "stderr.log").read_text())
            try:
                with urllib.request.urlopen(self.http_url + "/healthz", timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"collector did not start: {(self.dir / 'stderr.log').read_text()}")

    def kill9(self) -> None:
        import signal

        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)
