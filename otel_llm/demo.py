"""``make demo``: the seed exercise of every cost lesson, end to end.

It starts a local webhook receiver, the provider simulator with a latency model (unless
``ANTHROPIC_API_KEY`` is set: then the real API), and the otel-llm collector (in this
process, OTLP/HTTP on a free loopback port, embedded ClickHouse in a temporary
directory) with a policy file: a per-task spend limit, ``on_exceed: kill``, alerts to the
webhook. Then it runs the example Anthropic agent twice, as separate processes under
``opentelemetry-instrument`` with the standard OTLP exporter (``service.version`` 1 and 2
in ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_LLM_COLLECTOR_URL`` set so collector kills reach
it): version 1 without prompt caching, tools one after another and no caps, version 2
with a cache breakpoint, tools in parallel and caps escalating to a (scripted) human.
Version 1's runaway task is killed by the collector. It prints the per-task tables, the
cache savings, the kill and the alerts the webhook received, the report with the
before/after table (``otel-llm report --compare service.version=1,2``), writes the HTML
report and says how to bring up Grafana. ``call_table`` and friends serve the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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
        if stopped_by == "killed":  # a kill decision the collector made
            outcome = "killed by the collector"
        else:
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


# The demo's agent: one example agent, run as version 1 and version 2.
DEMO_AGENT = examples.DIRECTORY / "anthropic_agent.py"
DEMO_SERVICE = "otel-llm-demo-agent"
VERSIONS = ("1", "2")
# The collector's per-task limit: above every converging task and version 2's capped
# runaway, below what version 1's uncapped runaway spends before the safety net.
RUNAWAY_POLICY = "demo-runaway-guard"
RUNAWAY_MAX_USD = 0.10
# The simulator's latency model (seconds): time to first token, and per output token.
SIM_TTFT = 0.25
SIM_PER_TOKEN = 0.01
# Seconds each tool call of the example agent takes (see otel_llm.examples.workspace).
TOOL_SECONDS = "0.2"
ALERT_WAIT_SECONDS = 15.0


def demo_policy(webhook_url: str) -> dict[str, Any]:
    """The collector's policy file for the demo: kill a task of the demo agent past
    ``RUNAWAY_MAX_USD``, alerts to the local webhook receiver."""
    return {
        "policies": [
            {
                "name": RUNAWAY_POLICY,
                "match": {"service.name": DEMO_SERVICE},
                "per_task": {"max_usd": RUNAWAY_MAX_USD},
                "on_exceed": "kill",
            }
        ],
        "alerts": {"webhook": {"url": webhook_url}, "retry": {"attempts": 3, "initial_backoff": 0.2}},
    }


class AlertInbox:
    """A local webhook receiver (aiohttp on a free loopback port, in a thread): prints
    each alert the collector posts and keeps it."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.url = ""
        self._changed = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: Any = None
        self._thread = threading.Thread(target=self._serve, name="otel-llm-demo-webhook", daemon=True)
        self._ready = threading.Event()

    def __enter__(self) -> AlertInbox:
        self._thread.start()
        if not self._ready.wait(10) or not self.url:
            raise RuntimeError("the demo's webhook receiver did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _serve(self) -> None:
        from aiohttp import web

        async def hook(request: web.Request) -> web.Response:
            body = await request.json()
            alerts = body if isinstance(body, list) else [body]
            with self._changed:
                self.received.extend(alerts)
                self._changed.notify_all()
            for alert in alerts:
                print(f"  webhook received: {alert.get('title') or alert}", flush=True)
            return web.Response(status=204)

        async def start() -> None:
            app = web.Application()
            app.router.add_post("/hook", hook)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            host, port = site._server.sockets[0].getsockname()[:2]  # type: ignore[union-attr]
            self.url = f"http://{host}:{port}/hook"

        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(start())
        finally:
            self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def wait_for(self, kind: str, timeout: float) -> dict[str, Any] | None:
        """The first received alert of ``kind``, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((a for a in self.received if a.get("kind") == kind), None)
                left = deadline - time.monotonic()
                if found is not None or left <= 0:
                    return found
                self._changed.wait(left)


@dataclass(frozen=True)
class VersionRun:
    """One run of the demo agent: its version and what it printed."""

    version: str
    stdout: str
    stderr: str

    @property
    def stopped(self) -> list[str]:
        """The agent's ``stopped: ...`` and escalation lines."""
        keys = ("stopped:", "escalated ", "on-call human:", "gave up after")
        return [line.strip() for line in self.stderr.splitlines() if line.strip().startswith(keys)]


def cache_table(spans: Iterable[OtlpSpan]) -> str:
    """Per version: model calls, cache reads and writes (tokens), and the net savings
    after the write premium, from the inference spans."""
    rows = [("version", "calls", "input", "cache read", "cache write", "cost $", "cache savings $")]
    for version in VERSIONS:
        calls = [s for s in inference_spans(spans) if s.resource.get("service.version") == version]
        a = [s.attributes for s in calls]
        rows.append(
            (
                version,
                str(len(calls)),
                f"{sum(x.get(gen_ai.GEN_AI_USAGE_INPUT_TOKENS, 0) for x in a):,}",
                f"{sum(x.get(gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, 0) for x in a):,}",
                f"{sum(x.get(gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, 0) for x in a):,}",
                f"{sum(x.get(attrs.COST_USD, 0.0) for x in a):.4f}",
                f"{sum(x.get(attrs.COST_CACHE_SAVINGS_USD, 0.0) for x in a):.4f}",
            )
        )
    return format_table(rows, left=1)


@dataclass
class DemoResult:
    """What one demo run produced: the agent runs, the spans stored by the collector,
    the alerts the webhook received, and the report (None without the report extra)."""

    runs: dict[str, VersionRun]
    spans: list[OtlpSpan]
    alerts: list[dict[str, Any]]
    killed: dict[str, Any] | None
    report: Any
    html: Path | None
    seconds: float = 0.0


def main() -> int:
    result = run()
    if result is None:
        return 1
    show(result)
    return 0


def run() -> DemoResult | None:
    """Run the demo (collector, webhook receiver, simulator, both versions of the agent);
    None when the agent failed (said on stderr)."""
    from otel_llm.collector.config import parse_config
    from otel_llm.collector.service import Collector
    from otel_llm.examples.agent_tasks import scripted_model
    from otel_llm.policy import BudgetConfig, load_policy_file
    from otel_llm.sim import Simulator

    clock = time.monotonic()
    started = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    real_api = bool(os.environ.get("ANTHROPIC_API_KEY"))
    with tempfile.TemporaryDirectory(prefix="otel-llm-demo-") as workdir, AlertInbox() as inbox:
        policy_path = Path(workdir) / "policy.yaml"
        # JSON is YAML: the policy file as the collector reads it.
        policy_path.write_text(json.dumps(demo_policy(inbox.url), indent=2))
        config = parse_config(
            {
                "receivers": {"otlp": {"grpc": {"enabled": False}, "http": {"endpoint": "127.0.0.1:0"}}},
                "state": {"dir": f"{workdir}/state"},
                "storage": {"path": f"{workdir}/clickhouse"},
            },
            "demo",
        )
        budgets = BudgetConfig(policy=load_policy_file(policy_path))
        with contextlib.ExitStack() as stack:
            sim = None
            if not real_api:
                sim = stack.enter_context(Simulator(ttft=SIM_TTFT, per_token=SIM_PER_TOKEN))
                sim.script(scripted_model())
            collector = stack.enter_context(Collector(config, budgets=budgets))
            print(
                f"collector on {collector.http_url} (embedded ClickHouse), policy {RUNAWAY_POLICY}: "
                f"kill a task past ${RUNAWAY_MAX_USD:.2f}, alerts to the webhook {inbox.url}",
                flush=True,
            )
            print(
                "model: "
                + (
                    "the real Anthropic API (ANTHROPIC_API_KEY is set)"
                    if sim is None
                    else f"the provider simulator at {sim.url} (TTFT {SIM_TTFT * 1000:.0f} ms, "
                    f"{SIM_PER_TOKEN * 1000:.0f} ms per output token)"
                ),
                flush=True,
            )
            runs: dict[str, VersionRun] = {}
            for version in VERSIONS:
                env = instrumented_env(collector.http_url, sim_url=None, service_name=DEMO_SERVICE)
                if sim is not None:
                    env.update(ANTHROPIC_BASE_URL=sim.url, ANTHROPIC_API_KEY="sk-ant-simulator")
                env.update(
                    OTEL_RESOURCE_ATTRIBUTES=f"service.version={version}",
                    OTEL_LLM_COLLECTOR_URL=collector.http_url,
                    OTEL_LLM_EXAMPLE_TOOL_SECONDS=TOOL_SECONDS,
                )
                env.pop("OTEL_LLM_BUDGETS", None)  # the collector enforces the policy here
                print(
                    f"\nrunning otel_llm/examples/{DEMO_AGENT.name} --version {version} "
                    "under opentelemetry-instrument ...",
                    flush=True,
                )
                result = run_instrumented(DEMO_AGENT, env, "--version", version)
                if result.returncode != 0:
                    api_failure = real_api_failure(result.stderr)
                    if api_failure is not None:
                        print(f"otel-llm demo: {DEMO_AGENT.name}: {api_failure}", file=sys.stderr)
                        return None
                    sys.stderr.write(result.stdout + result.stderr)
                    print(f"{DEMO_AGENT.name} failed (exit {result.returncode})", file=sys.stderr)
                    return None
                runs[version] = VersionRun(version, result.stdout, result.stderr)
                for line in runs[version].stopped:
                    print(f"  {line}", flush=True)
            killed = inbox.wait_for("kill", ALERT_WAIT_SECONDS)
            assert collector.storage is not None
            collector.storage.spans.flush()
            spans = stored_spans(collector.storage.backend, DEMO_SERVICE)
            report = _report(collector.storage.backend, started)
            alerts = list(inbox.received)
    data, html = report if report is not None else (None, None)
    return DemoResult(runs, spans, alerts, killed, data, html, time.monotonic() - clock)


def show(result: DemoResult) -> None:
    """Print the demo's tables, the kill, the report and where to go next."""
    spans = result.spans
    for version in VERSIONS:
        print(f"\nTasks of version {version}, from the task spans the agent exported:\n")
        print(task_table([s for s in spans if s.resource.get("service.version") == version]))
    print("\nPrompt cache, per version (savings net of the cache-write premium):\n")
    print(cache_table(spans))
    print()
    killed = result.killed
    if killed is not None:
        task = (killed.get("task") or {}).get("name")
        print(f"Killed by the collector: task {task} ({killed.get('description') or killed.get('title')})")
    else:
        print(f"No kill alert arrived within {ALERT_WAIT_SECONDS:.0f} s (a real model may converge).")
    print(f"Alerts received by the webhook: {len(result.alerts)}")
    if result.report is not None:
        print()
        _print_report(result.report)
        print(f"\nHTML report (opens offline): {result.html}")
    print(COMPOSE_HINT)
    print(f"demo finished in {result.seconds:.0f} s")


COMPOSE_HINT = """
The same picture in Grafana, with ClickHouse, the collector and Alertmanager:
  docker compose up -d --build            # Grafana on http://localhost:3000, dashboards in "otel-llm"
  OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 opentelemetry-instrument python your_agent.py
  otel-llm report --since 24h --html report.html     # without Grafana (--clickhouse-url for the server)
"""


def _report(backend: Backend, started: dt.datetime) -> tuple[Any, Path] | None:
    """The report of this run from the collector's store (version 1 against version 2),
    and where its HTML page is (written under ``.otel-llm/``); None without the report
    extra."""
    try:
        from otel_llm.report.data import collect
        from otel_llm.report.html import write_html
    except ImportError as exc:  # otel-llm installed without the [report] extra
        print(f"(no report: {exc.name} is not installed; pip install 'otel-llm[report]')")
        return None
    from otel_llm.report.data import parse_compare

    end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    data = collect(backend, started, end, compare=parse_compare("service.version=1,2"))
    path = write_html(data, Path(".otel-llm") / "report.html")
    return data, path.resolve()


def _print_report(data: Any) -> None:
    from otel_llm.report.terminal import print_report

    print_report(data)


if __name__ == "__main__":
    sys.exit(main())
