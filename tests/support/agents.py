"""Real agent processes under ``opentelemetry-instrument`` for the collector tests: the
loop agent (``tests/collector/agents/loop_agent.py``) against the provider simulator,
exporting to a collector over OTLP/HTTP or OTLP/gRPC."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from support.otlp import free_env

AGENT = Path(__file__).resolve().parents[1] / "collector" / "agents" / "loop_agent.py"
INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"


def agent_env(collector: Any, sim: Any, *, service: str, protocol: str, **extra: str) -> dict[str, str]:
    env = free_env()
    env.update(
        OTEL_SERVICE_NAME=service,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OPENAI_BASE_URL=f"{sim.url}/v1",
        OPENAI_API_KEY="sk-simulator",
        OTEL_LLM_COLLECTOR_URL=collector.http_url,
        # traceloop's instrumentor (entry point "openai") is for the foreign-span test only.
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="openai",
    )
    if protocol == "grpc":
        env.update(
            OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://{collector.grpc_endpoint}",
            OTEL_EXPORTER_OTLP_INSECURE="true",
        )
    else:
        env.update(
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf", OTEL_EXPORTER_OTLP_ENDPOINT=collector.http_url
        )
    env.update(extra)
    return env


def start(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(INSTRUMENT), sys.executable, str(AGENT)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[list[str], str]:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return out.splitlines(), err
