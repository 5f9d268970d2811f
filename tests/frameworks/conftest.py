"""Agent frameworks driven for real: each scenario is a script run as its own process under
``opentelemetry-instrument`` (our instrumentors loaded from their entry points, the real
OTLP exporter), with the SDKs' and frameworks' base URLs pointed at the provider simulator.
The spans are read back from the wire, the requests from the simulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from support.tracesink import TraceSink

from otel_llm.collector.otlp import OtlpSpan
from otel_llm.sim import SimRequest, Simulator

AGENTS = Path(__file__).parent / "agents"
CLIENT = 3  # SPAN_KIND_CLIENT


@dataclass
class Run:
    """What one agent process did: its spans, the requests the simulator served, and the
    JSON object the script printed last."""

    spans: list[OtlpSpan]
    requests: list[SimRequest]
    out: dict[str, Any]
    stderr: str

    def calls(self, **attributes: Any) -> list[OtlpSpan]:
        """The inference spans (CLIENT spans with ``gen_ai.operation.name``), in start
        order, optionally only those whose attributes have the given values
        (``calls(**{"gen_ai.provider.name": "anthropic"})``)."""
        found = [
            s
            for s in self.spans
            if s.kind == CLIENT
            and gen_ai.GEN_AI_OPERATION_NAME in s.attributes
            and all(s.attributes.get(k) == v for k, v in attributes.items())
        ]
        return sorted(found, key=lambda s: s.start_time_unix_nano)

    def tasks(self) -> dict[str, OtlpSpan]:
        """Task spans by task name."""
        return {
            s.attributes["otel_llm.task.name"]: s
            for s in self.spans
            if s.name.startswith("invoke_agent ") and "otel_llm.task.iterations" in s.attributes
        }

    def served(self, marker: str) -> list[SimRequest]:
        """The model requests whose body mentions ``marker``."""
        return [r for r in self.requests if marker in json.dumps(r.body)]


def agent_env(sim: Simulator, otlp_endpoint: str, service: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_", "ANTHROPIC_"))}
    env.update(
        OTEL_SERVICE_NAME=service,
        # Only otel-llm's instrumentors: the dev extra also installs traceloop's OpenAI
        # instrumentation (the collector's tests price its spans).
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="openai",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",
        OPENAI_BASE_URL=sim.openai_base_url,
        OPENAI_API_KEY="sk-simulator",
        ANTHROPIC_BASE_URL=sim.url,
        ANTHROPIC_API_KEY="sk-ant-simulator",
        # LiteLLM fetches its price map from the network at import unless told not to.
        LITELLM_LOCAL_MODEL_COST_MAP="True",
    )
    env.update(extra)
    return env


def run_agent(script: str, sim: Simulator, *args: str, **env: str) -> Run:
    """Run ``agents/<script>`` under ``opentelemetry-instrument`` against ``sim``."""
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    with TraceSink() as sink:
        result = subprocess.run(
            [str(instrument), sys.executable, str(AGENTS / script), *args],
            env=agent_env(sim, sink.endpoint, Path(script).stem, **env),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        spans = sink.spans()
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return Run(spans, sim.requests, json.loads(lines[-1]) if lines else {}, result.stderr)


@pytest.fixture(scope="module")
def module_sim():
    with Simulator() as simulator:
        yield simulator
