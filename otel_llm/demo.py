"""``make demo``: an example agent under ``opentelemetry-instrument``, end to end.

It starts the provider simulator (unless real API keys are set), a loopback OTLP/HTTP
endpoint, and runs ``examples/quickstart.py`` as a separate process under
``opentelemetry-instrument`` with the standard OTLP exporter. Then it prints one row
per model call from the spans that process exported.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from otel_llm import attributes as attrs
from otel_llm.otlp import OtlpSpan, TraceSink

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "examples" / "quickstart.py"


def instrumented_env(
    otlp_endpoint: str,
    *,
    sim_url: str | None,
    service_name: str,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for a process run under ``opentelemetry-instrument``: OTLP/HTTP
    traces to ``otlp_endpoint``; the SDKs pointed at the simulator when ``sim_url`` is
    given and no real key is configured for that provider."""
    env = dict(os.environ if base is None else base)
    env.update(
        OTEL_SERVICE_NAME=service_name,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_endpoint,
        OTEL_BSP_SCHEDULE_DELAY="200",
    )
    if sim_url is not None:
        if not os.environ.get("OPENAI_API_KEY"):
            env.update(OPENAI_BASE_URL=f"{sim_url}/v1", OPENAI_API_KEY="sk-simulator")
        if not os.environ.get("ANTHROPIC_API_KEY"):
            env.update(ANTHROPIC_BASE_URL=sim_url, ANTHROPIC_API_KEY="sk-ant-simulator")
    return env


def run_instrumented(script: Path, env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``opentelemetry-instrument python SCRIPT`` with this interpreter's tools."""
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    return subprocess.run(
        [str(instrument), sys.executable, str(script), *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def inference_spans(spans: Iterable[OtlpSpan]) -> list[OtlpSpan]:
    """The model-call spans (CLIENT spans with token usage), in start order; task spans
    carry usage totals too, but are INTERNAL."""
    client = Span.SpanKind.SPAN_KIND_CLIENT
    found = [s for s in spans if s.kind == client and gen_ai.GEN_AI_USAGE_INPUT_TOKENS in s.attributes]
    return sorted(found, key=lambda s: s.start_time_unix_nano)


def call_table(spans: Iterable[OtlpSpan]) -> str:
    """One row per model call: model, tokens, cache reads and writes, cost, TTFT."""
    header = (
        "provider",
        "model",
        "stream",
        "input",
        "output",
        "cache read",
        "cache write",
        "cost $",
        "TTFT ms",
    )
    rows = [header]
    total = 0.0
    for span in inference_spans(spans):
        a = span.attributes
        cost = a.get(attrs.COST_USD)
        total += cost or 0.0
        ttft = a.get(gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
        rows.append(
            (
                str(a.get(gen_ai.GEN_AI_PROVIDER_NAME, "")),
                str(a.get(gen_ai.GEN_AI_RESPONSE_MODEL) or a.get(gen_ai.GEN_AI_REQUEST_MODEL, "")),
                "yes" if a.get(gen_ai.GEN_AI_REQUEST_STREAM) else "no",
                f"{a.get(gen_ai.GEN_AI_USAGE_INPUT_TOKENS, 0):,}",
                f"{a.get(gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS, 0):,}",
                f"{a.get(gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, 0):,}",
                f"{a.get(gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, 0):,}",
                f"{cost:.6f}" if cost is not None else "unknown",
                f"{ttft * 1000:.1f}" if ttft is not None else "-",
            )
        )
    rows.append(("total", "", "", "", "", "", "", f"{total:.6f}", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in pairs]
        lines.append("  ".join(cells).rstrip())
        if n == 0 or n == len(rows) - 2:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    from otel_llm.sim import Simulator

    # A little latency so time to first token means something on screen.
    with Simulator(ttft=0.05, per_token=0.002) as sim, TraceSink() as sink:
        env = instrumented_env(sink.endpoint, sim_url=sim.url, service_name="otel-llm-demo")
        script = QUICKSTART.relative_to(ROOT)
        print(f"provider simulator on {sim.url}; running {script} under opentelemetry-instrument")
        result = run_instrumented(QUICKSTART, env)
        if result.returncode != 0:
            sys.stderr.write(result.stdout + result.stderr)
            print(f"the example agent failed (exit {result.returncode})", file=sys.stderr)
            return 1
        spans = sink.spans()
    print()
    print(call_table(spans))
    return 0


if __name__ == "__main__":
    sys.exit(main())
