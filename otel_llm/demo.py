"""``make demo``: an example agent under ``opentelemetry-instrument``, end to end.

It starts the provider simulator (unless real API keys are set) and the otel-llm
collector (in this process, OTLP on free loopback ports, embedded ClickHouse in a
temporary directory), and runs the example agents as separate processes under
``opentelemetry-instrument`` with the standard OTLP exporter. Then it prints one row
per model call and one per task, read back from the collector's storage.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from otel_llm import attributes as attrs
from otel_llm import examples
from otel_llm.collector.otlp import OtlpSpan
from otel_llm.storage import Backend
from otel_llm.storage.records import SPAN_KINDS, STATUS_CODES
from otel_llm.usage import TASK_USAGE_PREFIX

# The example agents ship inside the package, so this works from an installed wheel too.
EXAMPLES = examples.DIRECTORY
QUICKSTART = examples.QUICKSTART
AGENTS = examples.AGENTS


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
        # traceloop's OpenAI instrumentor (entry point "openai", installed by the dev
        # extra for the collector's foreign-span tests) would add a second span per call.
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="openai",
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
    # Beside the interpreter in a virtualenv; otherwise (a site-packages reached another
    # way) the same entry point, run through this interpreter.
    launcher = (
        [str(instrument)]
        if instrument.exists()
        else [sys.executable, "-c", "import sys; from opentelemetry.instrumentation.auto_instrumentation "
              "import run; sys.exit(run())"]
    )  # fmt: skip
    return subprocess.run(
        [*launcher, sys.executable, str(script), *args],
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


def format_table(rows: list[tuple[str, ...]], left: int, total: bool = False) -> str:
    """Align ``rows`` (the first is the header) in columns; the first ``left`` columns
    are left-aligned, the rest right-aligned; ``total`` rules off the last row."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    rule = "  ".join("-" * w for w in widths)
    lines = []
    for n, row in enumerate(rows):
        pairs = enumerate(zip(row, widths, strict=True))
        lines.append(
            "  ".join(cell.ljust(w) if i < left else cell.rjust(w) for i, (cell, w) in pairs).rstrip()
        )
        if n == 0 or (total and n == len(rows) - 2):
            lines.append(rule)
    return "\n".join(lines)


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
    return format_table(rows, left=3, total=True)


def task_spans(spans: Iterable[OtlpSpan]) -> list[OtlpSpan]:
    """The task spans (``invoke_agent …`` with task totals), in start order."""
    found = [s for s in spans if attrs.TASK_ID in s.attributes and "otel_llm.task.iterations" in s.attributes]
    return sorted(found, key=lambda s: s.start_time_unix_nano)


def task_table(spans: Iterable[OtlpSpan]) -> str:
    """One row per task, from the totals its span carries when it ends."""
    header = ("task", "outcome", "calls", "input", "output", "cache hit", "cost $", "tools", "wall s")
    rows = [header]
    for span in task_spans(spans):
        a = span.attributes
        input_tokens = a.get(TASK_USAGE_PREFIX + "input_tokens", 0)
        cache_read = a.get(TASK_USAGE_PREFIX + "cache_read.input_tokens", 0)
        stopped_by = a.get("otel_llm.task.stopped_by")
        outcome = f"stopped at {stopped_by}" if stopped_by else str(a.get("otel_llm.task.outcome", ""))
        grants = a.get("otel_llm.budget.grants", 0)
        if grants:
            outcome += f" after {grants} grant{'s' if grants > 1 else ''}"
        rows.append(
            (
                str(a.get(attrs.TASK_NAME, span.name)),
                outcome,
                str(a.get("otel_llm.task.iterations", 0)),
                f"{input_tokens:,}",
                f"{a.get(TASK_USAGE_PREFIX + 'output_tokens', 0):,}",
                f"{cache_read / input_tokens:.0%}" if input_tokens else "-",
                f"{a.get('otel_llm.task.cost.usd', 0.0):.4f}",
                str(a.get("otel_llm.task.tool_calls", 0)),
                f"{a.get('otel_llm.task.duration_s', 0.0):.2f}",
            )
        )
    return format_table(rows, left=2)


def _typed(text: str) -> Any:
    """A stored attribute string as the value it was (for display)."""
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def stored_spans(backend: Backend, service: str) -> list[OtlpSpan]:
    """The spans of ``service`` as stored in ``otel_traces``, values typed again."""
    rows = backend.query(
        "SELECT TraceId, SpanId, ParentSpanId, SpanName, SpanKind, toUnixTimestamp64Nano(Timestamp) AS start,"
        " Duration, SpanAttributes, ResourceAttributes, ScopeName, ScopeVersion, StatusCode, StatusMessage"
        " FROM otel_traces WHERE ServiceName = {service:String} ORDER BY Timestamp",
        {"service": service},
    ).dicts()
    return [
        OtlpSpan(
            trace_id=row["TraceId"],
            span_id=row["SpanId"],
            parent_span_id=row["ParentSpanId"],
            name=row["SpanName"],
            kind=SPAN_KINDS.index(row["SpanKind"]) if row["SpanKind"] in SPAN_KINDS else 0,
            start_time_unix_nano=int(row["start"]),
            end_time_unix_nano=int(row["start"]) + int(row["Duration"]),
            attributes={k: _typed(v) for k, v in dict(row["SpanAttributes"]).items()},
            resource=dict(row["ResourceAttributes"]),
            scope_name=row["ScopeName"],
            scope_version=row["ScopeVersion"],
            status_code=STATUS_CODES.index(row["StatusCode"]) if row["StatusCode"] in STATUS_CODES else 0,
            status_message=row["StatusMessage"],
        )
        for row in rows
    ]


_API_ERROR = re.compile(r"^(openai|anthropic)\.(\w+Error): (.*)$")
_API_NAMES = {"openai": "OpenAI", "anthropic": "Anthropic"}


def real_api_failure(stderr: str) -> str | None:
    """One line for an example that failed on the real API (no network, a refused or
    wrong key, an unknown model), or None for any other failure (then the whole output
    is shown). Only with a real key set: the simulator does not fail that way."""
    if not (os.environ.get("OPENAI_API_KEY") or os.environ.get("ANTHROPIC_API_KEY")):
        return None
    for line in reversed(stderr.strip().splitlines()):
        found = _API_ERROR.match(line.strip())
        if found is not None:
            sdk, error, message = found.groups()
            return (
                f"the real {_API_NAMES[sdk]} API failed ({error}: {message[:200]}). Check the network "
                "and your key, or unset OPENAI_API_KEY and ANTHROPIC_API_KEY to run on the built-in "
                "provider simulator."
            )
    return None


def main() -> int:
    from otel_llm.collector.config import parse_config
    from otel_llm.collector.service import Collector
    from otel_llm.policy import BudgetConfig
    from otel_llm.sim import Simulator

    started = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    with tempfile.TemporaryDirectory(prefix="otel-llm-demo-") as workdir:
        config = parse_config(
            {
                "receivers": {"otlp": {"grpc": {"enabled": False}, "http": {"endpoint": "127.0.0.1:0"}}},
                "state": {"dir": f"{workdir}/state"},
                "storage": {"path": f"{workdir}/clickhouse"},
            },
            "demo",
        )
        # A little latency so time to first token means something on screen.
        with (
            Simulator(ttft=0.05, per_token=0.002) as sim,
            Collector(config, budgets=BudgetConfig()) as collector,
        ):
            outputs = {}
            for script in (QUICKSTART, *AGENTS):
                # The example agents start their own simulator with a scripted model (or
                # use the real API when its key is set); the quickstart uses this one.
                env = instrumented_env(
                    collector.http_url,
                    sim_url=sim.url if script == QUICKSTART else None,
                    service_name=f"otel-llm-{script.stem}",
                )
                print(
                    f"running otel_llm/examples/{script.name} under opentelemetry-instrument ...", flush=True
                )
                result = run_instrumented(script, env)
                if result.returncode != 0:
                    api_failure = real_api_failure(result.stderr)
                    if api_failure is not None:
                        print(f"otel-llm demo: {script.name}: {api_failure}", file=sys.stderr)
                        return 1
                    sys.stderr.write(result.stdout + result.stderr)
                    print(f"{script.name} failed (exit {result.returncode})", file=sys.stderr)
                    return 1
                outputs[script] = result.stderr
            assert collector.storage is not None
            collector.storage.spans.flush()
            spans = {
                script: stored_spans(collector.storage.backend, f"otel-llm-{script.stem}")
                for script in (QUICKSTART, *AGENTS)
            }
            report = _report(collector.storage.backend, started)

    print(f"\nModel calls of {QUICKSTART.name}, one row per stored span:\n")
    print(call_table(spans[QUICKSTART]))
    for agent in AGENTS:
        print(f"\nTasks of {agent.name}, from the task spans it exported:\n")
        print(task_table(spans[agent]))
        for line in outputs[agent].splitlines():
            if "stopped:" in line:
                print(f"  {line.strip()}")
    if report is not None:
        data, where = report
        print()
        _print_report(data)
        print(where)
    print(COMPOSE_HINT)
    return 0


COMPOSE_HINT = """
The same picture in Grafana, with ClickHouse, the collector and Alertmanager:
  docker compose up -d --build            # Grafana on http://localhost:3000, dashboards in "otel-llm"
  OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 opentelemetry-instrument python your_agent.py
  otel-llm report --since 24h --html report.html     # without Grafana (--clickhouse-url for the server)
"""


def _report(backend: Backend, started: dt.datetime) -> tuple[Any, str] | None:
    """The report of this run from the collector's store, and the line saying where its
    HTML page is (written under ``.otel-llm/``); None without the report extra."""
    try:
        from otel_llm.report.data import collect
        from otel_llm.report.html import write_html
    except ImportError as exc:  # otel-llm installed without the [report] extra
        print(f"(no report: {exc.name} is not installed; pip install 'otel-llm[report]')")
        return None
    data = collect(backend, started, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
    path = write_html(data, Path(".otel-llm") / "report.html")
    return data, f"\nHTML report (opens offline): {path.resolve()}"


def _print_report(data: Any) -> None:
    from otel_llm.report.terminal import print_report

    print_report(data)


if __name__ == "__main__":
    sys.exit(main())
