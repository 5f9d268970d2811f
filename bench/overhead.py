"""CPU time that LLM instrumentation adds to each model call: otel-llm against its peers.

Measures, for OpenAI chat completions and Anthropic messages, non-streaming and streaming
(200 text deltas), the client-side CPU time of one SDK call with

* ``baseline``: no instrumentation (the same OpenTelemetry SDK set up, nothing patched),
* ``ours``: otel-llm's ``OpenAIInstrumentor`` / ``AnthropicInstrumentor``,
* ``ours+guard``: ours, every call made inside ``otel_llm.task(...)`` with limits set,
* ``traceloop``: ``opentelemetry-instrumentation-openai`` / ``-anthropic`` (OpenLLMetry),
* ``openlit``: ``openlit.init()`` with only its OpenAI / Anthropic instrumentor enabled,
* ``floor``: a reference, not a product: the OpenTelemetry SDK work alone that our telemetry
  needs (one span with as many attributes as ours, the same metric points), no parsing,
  pricing or budget,

all against one zero-latency provider simulator (``python -m otel_llm.sim``) running in its
own process, so its CPU is not counted. Each variant runs in a fresh process, because the
instrumentations patch the same SDK methods. See ``bench/README.md`` for the method.

Usage::

    python bench/overhead.py                 # the full run (a few minutes), table + JSON
    python bench/overhead.py --quick         # a smoke run (seconds), numbers are noisy
    python bench/overhead.py --profile ours --provider openai --mode stream   # cProfile one variant

Always exits 0 when the run itself worked; each target is printed as PASS or MISS.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "overhead.json"

PROVIDERS = ("openai", "anthropic")
MODES = ("nonstream", "stream")
VARIANTS = ("baseline", "floor", "ours", "ours+guard", "traceloop", "openlit")
PEERS = ("traceloop", "openlit")

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5"}
STREAM_TOKENS = 200  # the simulator streams one token (four characters) per delta
MAX_TOKENS = 1024
PROMPT = (
    "You are a careful assistant. Summarise the following note in one paragraph: the build "
    "broke after the dependency upgrade, the cache was cold, and the retry loop hid the error."
)

# Targets (from the benchmark issue).
MAX_RATIO_TO_BEST_PEER = 0.5
MAX_SHARE_OF_BASELINE = 0.05
# The issue asks only that the guard's cost be "small beside the instrumentation's own
# overhead"; this bench reads that as at most a quarter of it.
MAX_GUARD_SHARE_OF_OURS = 0.25
# Our own code (ours above the exact floor) against the best peer's whole addition.
MAX_ABOVE_FLOOR_TO_BEST_PEER = 0.12

# What the peers are told so that they do the same work as ours by default: no message
# content, no log events, no HTTP-client spans (see README).
CHILD_ENV = {
    "TRACELOOP_TRACE_CONTENT": "false",
    "TRACELOOP_TELEMETRY": "false",
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "false",
    "OTEL_TRACES_EXPORTER": "none",
    "OTEL_METRICS_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
    # anthropic>=2 traces its own calls when a global tracer provider is set; off, so the
    # baseline is an uninstrumented call and every variant is measured alone.
    "ANTHROPIC_OPEN_TELEMETRY": "false",
    "PYTHONHASHSEED": "0",
}

PACKAGES = {
    "python": None,
    "openai": "openai",
    "anthropic": "anthropic",
    "opentelemetry-sdk": "opentelemetry-sdk",
    "otel-llm": "otel-llm",
    "traceloop-openai": "opentelemetry-instrumentation-openai",
    "traceloop-anthropic": "opentelemetry-instrumentation-anthropic",
    "openlit": "openlit",
    "wrapt": "wrapt",
}


# ---------------------------------------------------------------------------------------
# Child: one variant x provider x mode in a fresh process
# ---------------------------------------------------------------------------------------


@dataclass
class Telemetry:
    """The OpenTelemetry SDK set up identically for every variant."""

    tracer_provider: Any
    meter_provider: Any
    metric_reader: Any
    exporter: Any


def setup_otel() -> Telemetry:
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class CountingExporter(SpanExporter):
        """Discards spans, counting them (so a variant that emits nothing is caught)."""

        def __init__(self) -> None:
            self.spans = 0
            self.names: dict[str, int] = {}

        def export(self, spans: Any) -> SpanExportResult:
            self.spans += len(spans)
            for span in spans:
                self.names[span.name] = self.names.get(span.name, 0) + 1
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            pass

    resource = Resource.create({"service.name": "otel-llm-bench"})
    exporter = CountingExporter()
    tracer_provider = TracerProvider(resource=resource)
    # Simple (synchronous) processor: every span's export happens in the calling thread,
    # deterministically, and costs the same for every variant.
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    # Set globally too: OpenLIT only reuses global providers.
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    return Telemetry(tracer_provider, meter_provider, reader, exporter)


def instrument(variant: str, provider: str, tel: Telemetry, workdir: Path) -> Callable[[], Any]:
    """Apply a variant's instrumentation; returns a factory for the context each
    measured block runs in (a task for ``ours+guard``)."""
    kwargs = {"tracer_provider": tel.tracer_provider, "meter_provider": tel.meter_provider}
    if variant == "baseline":
        pass
    elif variant in ("ours", "ours+guard"):
        if provider == "openai":
            from otel_llm.instrumentation.openai import OpenAIInstrumentor as Ours
        else:
            from otel_llm.instrumentation.anthropic import AnthropicInstrumentor as Ours
        Ours().instrument(**kwargs)
        if variant == "ours+guard":
            import otel_llm

            task = getattr(otel_llm, "task", None)
            if task is None:
                from otel_llm.tasks import task
            return lambda: task(
                "bench", max_usd=1e9, max_tokens=10**15, max_iterations=10**9, max_seconds=1e9
            )
    elif variant == "floor":
        install_floor(provider, tel.tracer_provider, tel.meter_provider)
    elif variant == "traceloop":
        if provider == "openai":
            from opentelemetry.instrumentation.openai import OpenAIInstrumentor as Traceloop
        else:
            from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor as Traceloop
        Traceloop().instrument(**kwargs)
    elif variant == "openlit":
        import openlit

        pricing = workdir / "openlit-pricing.json"
        # Local prices (per 1k tokens) so OpenLIT computes a cost, as ours does, without
        # fetching its price list from the network.
        pricing.write_text(
            json.dumps(
                {
                    "chat": {
                        MODELS["openai"]: {"promptPrice": 0.00015, "completionPrice": 0.0006},
                        MODELS["anthropic"]: {"promptPrice": 0.003, "completionPrice": 0.015},
                    }
                }
            )
        )
        disabled = []
        try:
            from openlit._instrumentors import MODULE_NAME_MAP

            disabled = [name for name in MODULE_NAME_MAP if name != provider]
        except ImportError:
            disabled = ["httpx", "requests", "urllib", "urllib3"]
        openlit.init(
            service_name="otel-llm-bench",
            capture_message_content=False,
            disable_events=True,
            disabled_instrumentors=disabled,
            pricing_json=str(pricing),
        )
    else:
        raise SystemExit(f"unknown variant {variant!r}")
    return contextlib.nullcontext


# The exact floor: the attributes our instrumentation puts on an inference span and on
# its metric points, with constant values of the same types. The test
# tests/bench/test_overhead_floor.py runs ours and this floor on the same real calls and
# fails when the exported span or metric shapes differ, so this stays in step with ours.
FLOOR_START_ATTRIBUTES: dict[str, dict[str, Any]] = {
    provider: {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.stream": False,
        "gen_ai.request.model": model,
        "gen_ai.request.max_tokens": MAX_TOKENS,
        "server.address": "127.0.0.1",
        "server.port": 8000,
        "otel_llm.prompt.request_hash": "0123456789abcdef0123456789abcdef",
        "otel_llm.task.id": "0123456789abcdef0123456789abcdef",
        "otel_llm.task.name": "overhead.py",
        "otel_llm.task.iteration": 1,
        "otel_llm.budget.state": "ok",
    }
    for provider, model in MODELS.items()
}
FLOOR_END_ATTRIBUTES: dict[str, dict[str, Any]] = {
    provider: {
        "gen_ai.response.model": model,
        "gen_ai.response.id": "resp_0000000001",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 44,
        "gen_ai.usage.output_tokens": STREAM_TOKENS,
        "gen_ai.usage.cache_read.input_tokens": 0,
        "gen_ai.usage.cache_creation.input_tokens": 0,
        "gen_ai.usage.reasoning.output_tokens": 0,
        "otel_llm.cost.usd": 0.000127,
        "otel_llm.cost.input_usd": 0.000007,
        "otel_llm.cost.output_usd": 0.00012,
        "otel_llm.price.source": "genai-prices 0.0.0",
    }
    for provider, model in MODELS.items()
}
FLOOR_STREAM_END_ATTRIBUTES = {"gen_ai.response.time_to_first_chunk": 0.001}


def install_floor(provider: str, tracer_provider: Any, meter_provider: Any) -> Callable[[], None]:
    """The exact floor: wrap the SDK method with exactly the OpenTelemetry SDK calls our
    instrumentation makes on a call, with constant values, and nothing else (no request or
    response read, no pricing, no task). Per call: two context reads (is a call of ours
    already being sent? is instrumentation suppressed?); a CLIENT span started with 12
    attributes under the task's context (ours: the automatic process task's) and made
    current, with a "call being sent" context value (attach / detach), while the SDK
    sends; at the end 12 more attributes (13 for a stream: time to first chunk), the
    metric records (duration; input and output tokens; for a stream time to first chunk
    and the mean time per chunk), a running cost sum that an observable counter reports
    at collection, and the span's end. Returns the function that unwraps it."""
    import threading

    import wrapt
    from opentelemetry import context, trace
    from opentelemetry.instrumentation.utils import is_instrumentation_enabled, unwrap
    from opentelemetry.metrics import Observation
    from opentelemetry.trace import SpanKind

    from otel_llm.instrumentation.instruments import SECONDS_BUCKETS, TOKEN_BUCKETS

    tracer = tracer_provider.get_tracer("bench-floor")
    meter = meter_provider.get_meter("bench-floor")
    duration = meter.create_histogram(
        "gen_ai.client.operation.duration", unit="s", explicit_bucket_boundaries_advisory=SECONDS_BUCKETS
    )
    tokens = meter.create_histogram(
        "gen_ai.client.token.usage", unit="{token}", explicit_bucket_boundaries_advisory=TOKEN_BUCKETS
    )
    ttft = meter.create_histogram(
        "gen_ai.client.operation.time_to_first_chunk",
        unit="s",
        explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
    )
    per_chunk = meter.create_histogram(
        "gen_ai.client.operation.time_per_output_chunk",
        unit="s",
        explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
    )
    model = MODELS[provider]
    name = f"chat {model}"
    metric_attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
    }
    input_attrs = {**metric_attrs, "gen_ai.token.type": "input"}
    output_attrs = {**metric_attrs, "gen_ai.token.type": "output"}
    cost_lock = threading.Lock()
    cost_key = tuple(metric_attrs.items())
    cost_totals: dict[tuple[Any, ...], float] = {}

    def observe_cost(options: Any) -> list[Any]:
        with cost_lock:
            return [Observation(total, dict(key)) for key, total in cost_totals.items()]

    meter.create_observable_counter("otel_llm.client.cost", callbacks=[observe_cost], unit="USD")
    call_key = context.create_key("bench-floor.call")
    # The task span every call is a child of (ours: the process task's, started once).
    task_span = tracer.start_span("invoke_agent overhead.py")
    task_context = trace.set_span_in_context(task_span, context.Context())
    start_attrs = {**FLOOR_START_ATTRIBUTES[provider]}
    end_attrs = FLOOR_END_ATTRIBUTES[provider]
    stream_start_attrs = {**start_attrs, "gen_ai.request.stream": True}
    stream_end_attrs = {**end_attrs, **FLOOR_STREAM_END_ATTRIBUTES}

    def finish(span: Any, stream: bool) -> None:
        span.set_attributes(stream_end_attrs if stream else end_attrs)
        duration.record(0.5, metric_attrs)
        if stream:
            ttft.record(0.001, metric_attrs)
            per_chunk.record(0.0001, metric_attrs)
        tokens.record(44, input_attrs)
        tokens.record(STREAM_TOKENS, output_attrs)
        with cost_lock:
            cost_totals[cost_key] = cost_totals.get(cost_key, 0.0) + 0.000127
        span.end()

    def chunks(stream: Any, span: Any) -> Iterator[Any]:
        yield from stream
        finish(span, True)

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        # Ours asks whether a call of its own is already being sent (LiteLLM through the
        # OpenAI SDK) and whether instrumentation is suppressed.
        if context.get_value(call_key) is not None or not is_instrumentation_enabled():
            return wrapped(*args, **kwargs)
        stream = kwargs.get("stream") is True
        span = tracer.start_span(
            name,
            context=task_context,
            kind=SpanKind.CLIENT,
            attributes=stream_start_attrs if stream else start_attrs,
        )
        token = context.attach(context.set_value(call_key, True, trace.set_span_in_context(span)))
        try:
            result = wrapped(*args, **kwargs)
        finally:
            context.detach(token)
        if stream:
            return chunks(result, span)
        finish(span, False)
        return result

    if provider == "openai":
        module, owner = "openai.resources.chat.completions", "Completions"
    else:
        module, owner = "anthropic.resources.messages", "Messages"
    wrapt.wrap_function_wrapper(module, f"{owner}.create", wrapper)

    def uninstall() -> None:
        unwrap(importlib.import_module(module).__dict__[owner], "create")
        task_span.end()

    return uninstall


def make_call(provider: str, mode: str, url: str) -> Callable[[], int]:
    """One SDK call as a user makes it; returns how many chunks a stream yielded."""
    stream = mode == "stream"
    if provider == "openai":
        from openai import OpenAI

        client = OpenAI(base_url=url + "/v1", api_key="sim", max_retries=0)
        messages = [{"role": "user", "content": PROMPT}]
        create = client.chat.completions.create

        if stream:

            def call() -> int:
                n = 0
                for _ in create(
                    model=MODELS[provider],
                    messages=messages,
                    max_tokens=MAX_TOKENS,
                    stream=True,
                    stream_options={"include_usage": True},
                ):
                    n += 1
                return n

        else:

            def call() -> int:
                create(model=MODELS[provider], messages=messages, max_tokens=MAX_TOKENS)
                return 0

        return call

    from anthropic import Anthropic

    client = Anthropic(base_url=url, api_key="sim", max_retries=0)
    messages = [{"role": "user", "content": PROMPT}]
    create = client.messages.create
    if stream:

        def call() -> int:
            n = 0
            for _ in create(model=MODELS[provider], messages=messages, max_tokens=MAX_TOKENS, stream=True):
                n += 1
            return n

    else:

        def call() -> int:
            create(model=MODELS[provider], messages=messages, max_tokens=MAX_TOKENS)
            return 0

    return call


def run_child(args: argparse.Namespace) -> None:
    """A measured process: set up, instrument, warm up, then measure blocks of calls on
    the parent's command (``run N``), so the parent can interleave the variants."""
    import logging

    logging.basicConfig(level=logging.ERROR)
    workdir = Path(tempfile.mkdtemp(prefix="otel-llm-bench-"))
    tel = setup_otel()
    around = instrument(args.variant, args.provider, tel, workdir)
    call = make_call(args.provider, args.mode, args.url)

    def reply(kind: str, payload: dict[str, Any]) -> None:
        sys.stdout.write(f"{kind} {json.dumps(payload)}\n")
        sys.stdout.flush()

    counter = InstructionCounter(args.callgrind) if args.callgrind else None
    with around():
        chunks = call()
        for _ in range(args.warmup - 1):
            call()
        reply("READY", {"chunks_per_call": chunks, "warmup_spans": tel.exporter.spans})
        for line in sys.stdin:
            command = line.split()
            if not command or command[0] != "run":
                break
            calls = int(command[1])
            spans_before = tel.exporter.spans
            gc.collect()
            if counter is not None:
                counter.start()
            c0, w0 = time.process_time_ns(), time.perf_counter_ns()
            for _ in range(calls):
                call()
            c1, w1 = time.process_time_ns(), time.perf_counter_ns()
            block = {
                "cpu_us": (c1 - c0) / calls / 1000,
                "wall_us": (w1 - w0) / calls / 1000,
                "spans_per_call": (tel.exporter.spans - spans_before) / calls,
            }
            if counter is not None:
                block["instructions"] = counter.stop() / calls
            reply("BLOCK", block)
    points = 0
    data = tel.metric_reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                points += len(metric.data.data_points)
    reply("DONE", {"span_names": tel.exporter.names, "metric_points": points})


# ---------------------------------------------------------------------------------------
# Instruction counts: the child under valgrind's callgrind, counting only measured blocks
# ---------------------------------------------------------------------------------------

_CALLGRIND_C = """
#include <valgrind/callgrind.h>
void bench_start(void) { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_ZERO_STATS; }
void bench_stop(void) { CALLGRIND_DUMP_STATS; CALLGRIND_STOP_INSTRUMENTATION; }
"""


def callgrind_unavailable() -> str | None:
    """Why instructions cannot be counted here, or None."""
    import shutil

    for tool in ("valgrind", "gcc"):
        if shutil.which(tool) is None:
            return f"{tool} not found"
    if not Path("/usr/include/valgrind/callgrind.h").exists():
        return "valgrind/callgrind.h not found (Debian: valgrind)"
    return None


def build_callgrind_helper(workdir: Path) -> Path:
    """A tiny shared library whose two functions are callgrind's client requests: the
    measured block is counted, nothing else (start-up, imports, warm-up run with
    instrumentation off)."""
    source = workdir / "bench_callgrind.c"
    library = workdir / "bench_callgrind.so"
    source.write_text(_CALLGRIND_C)
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", str(library), str(source)], check=True)
    return library


class InstructionCounter:
    """In the child: counts the instructions the process executes in a block (every
    thread), from callgrind's dump of that block (``--callgrind`` names the output
    prefix)."""

    def __init__(self, spec: str) -> None:
        import ctypes

        library, self.prefix = spec.split("::", 1)
        self.lib = ctypes.CDLL(library)
        self.dumps = 0

    def start(self) -> None:
        self.lib.bench_start()

    def stop(self) -> int:
        self.lib.bench_stop()
        self.dumps += 1
        text = Path(f"{self.prefix}.{self.dumps}").read_text()
        for line in text.splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
        raise RuntimeError(f"no instruction total in {self.prefix}.{self.dumps}")


def run_profile(args: argparse.Namespace) -> None:
    """cProfile one variant's calls and print the functions that cost the most."""
    import cProfile
    import pstats

    workdir = Path(tempfile.mkdtemp(prefix="otel-llm-bench-"))
    tel = setup_otel()
    around = instrument(args.variant, args.provider, tel, workdir)
    call = make_call(args.provider, args.mode, args.url)
    with around():
        for _ in range(args.warmup):
            call()
        if args.profiler == "none":
            # For an external sampler: py-spy record -- python bench/overhead.py --profile ... --profiler none
            for _ in range(args.calls):
                call()
            return
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.calls):
            call()
        profiler.disable()
    stats = pstats.Stats(profiler)
    stats.sort_stats(args.profile_sort).print_stats(args.profile_top)


# ---------------------------------------------------------------------------------------
# The simulator, in its own process
# ---------------------------------------------------------------------------------------


def serve_simulator(output_tokens: int) -> None:
    """``--serve``: the provider simulator, reset on each ``reset`` line from stdin (so its
    request log does not grow over the run and slow it down)."""
    from otel_llm.sim import Simulator

    with Simulator(default_output_tokens=output_tokens) as sim:
        print(sim.url, flush=True)
        for line in sys.stdin:
            if line.strip() != "reset":
                break
            sim.reset()
            print("ok", flush=True)


class SimulatorProcess:
    def __init__(self, output_tokens: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", str(output_tokens)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http"):
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self.close()
            raise SystemExit(f"the simulator did not start: {self.url!r} {err[-2000:]}")

    def reset(self) -> None:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write("reset\n")
        self.proc.stdin.flush()
        self.proc.stdout.readline()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------------------------------
# Parent: the measured processes, interleaved; the table
# ---------------------------------------------------------------------------------------


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for key, dist in PACKAGES.items():
        if dist is None:
            out[key] = platform.python_version()
            continue
        try:
            out[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[key] = None
    return out


def source_state() -> dict[str, Any]:
    """The commit measured, and whether otel_llm/ had uncommitted changes."""

    def git(*cmd: str) -> str:
        try:
            done = subprocess.run(["git", *cmd], cwd=HERE.parent, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    return {
        "commit": git("rev-parse", "--short", "HEAD") or None,
        "otel_llm_uncommitted_changes": bool(git("status", "--porcelain", "--", "otel_llm")),
    }


def unavailable(variant: str, provider: str) -> str | None:
    """Why a variant cannot run here, or None."""
    import importlib.util

    module = {
        ("ours", "openai"): "otel_llm.instrumentation.openai",
        ("ours", "anthropic"): "otel_llm.instrumentation.anthropic",
        ("traceloop", "openai"): "opentelemetry.instrumentation.openai",
        ("traceloop", "anthropic"): "opentelemetry.instrumentation.anthropic",
        ("openlit", "openai"): "openlit",
        ("openlit", "anthropic"): "openlit",
    }.get((variant.replace("+guard", ""), provider))
    if module is None:
        return None
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    return None if found else f"{module} not installed"


class Measured:
    """One measured child process (a variant x provider x mode)."""

    def __init__(
        self,
        variant: str,
        provider: str,
        mode: str,
        url: str,
        warmup: int,
        callgrind: tuple[Path, Path] | None = None,
    ) -> None:
        """``callgrind``: (helper library, output prefix) to run the child under
        callgrind and count each block's instructions."""
        self.variant = variant
        self.error: str | None = unavailable(variant, provider)
        self.info: dict[str, Any] = {"cpu_us": [], "wall_us": [], "spans_per_call": [], "instructions": []}
        self.proc: subprocess.Popen[str] | None = None
        if self.error:
            return
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACELOOP_", "OPENLIT"))}
        env.update(CHILD_ENV)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--variant", variant]
        cmd += ["--provider", provider, "--mode", mode, "--url", url, "--warmup", str(warmup)]
        if callgrind is not None:
            library, prefix = callgrind
            valgrind = ["valgrind", "-q", "--tool=callgrind", "--instr-atstart=no"]
            cmd = [*valgrind, f"--callgrind-out-file={prefix}", *cmd, "--callgrind", f"{library}::{prefix}"]
        # Kept open for the child's life (its last line is the error shown for a crash).
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True
        )

    def _read(self, kind: str) -> dict[str, Any] | None:
        if self.proc is None or self.error:
            return None
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(kind + " "):
                return json.loads(line[len(kind) + 1 :])
        self.proc.wait()
        self.stderr.seek(0)
        tail = [x for x in self.stderr.read().splitlines() if x.strip()][-1:] or ["no output"]
        self.error = f"exit {self.proc.returncode}: {tail[0][:160]}"
        return None

    def _send(self, line: str) -> bool:
        if self.proc is None or self.error:
            return False
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except OSError as exc:
            self.error = f"child gone: {exc}"
            return False
        return True

    def ready(self) -> None:
        info = self._read("READY")
        if info is not None:
            self.info.update(info)

    def run(self, calls: int) -> None:
        if self._send(f"run {calls}"):
            block = self._read("BLOCK")
            if block is not None:
                for key in ("cpu_us", "wall_us", "spans_per_call", "instructions"):
                    if key in block:
                        self.info[key].append(block[key])
                if self.variant != "baseline" and block["spans_per_call"] == 0:
                    self.error = "emitted no span (did not instrument this surface)"

    def finish(self) -> dict[str, Any]:
        if self._send("done"):
            done = self._read("DONE")
            if done is not None:
                self.info.update(done)
        if self.proc is not None:
            with contextlib.suppress(OSError):
                if self.proc.stdin:
                    self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.error:
            return {"error": self.error}
        if not self.info["instructions"]:
            del self.info["instructions"]
        return self.info


@dataclass
class Plan:
    calls: int
    warmup: int
    rounds: int


# Under callgrind a call runs ~80x slower; its instruction count varies by well under
# 0.1% from block to block, so short blocks suffice.
INSTRUCTION_PLANS = {
    "nonstream": Plan(calls=20, warmup=30, rounds=3),
    "stream": Plan(calls=2, warmup=3, rounds=3),
}


def plans(args: argparse.Namespace) -> dict[str, Plan]:
    if args.quick:
        return {"nonstream": Plan(100, 20, 3), "stream": Plan(10, 5, 3)}
    return {
        "nonstream": Plan(args.calls, args.warmup, args.rounds),
        "stream": Plan(args.stream_calls, args.stream_warmup, args.rounds),
    }


def measure_cell(
    variants: list[str], provider: str, mode: str, plan: Plan, sim: SimulatorProcess
) -> dict[str, dict[str, Any]]:
    """All variants of one provider x mode: started together, then measured in rounds, one
    block of calls per variant per round, the order rotating each round, so slow drifts and
    other load on the machine fall on every variant alike."""
    children = [Measured(v, provider, mode, sim.url, plan.warmup) for v in variants]
    for child in children:
        child.ready()
    for r in range(plan.rounds):
        order = children[r % len(children) :] + children[: r % len(children)]
        for child in order:
            sim.reset()
            child.run(plan.calls)
    return {child.variant: child.finish() for child in children}


def count_instructions(
    variants: list[str], provider: str, mode: str, plan: Plan, sim: SimulatorProcess, library: Path
) -> dict[str, dict[str, Any]]:
    """Each variant of one provider x mode under callgrind: instructions per call over
    ``plan.rounds`` blocks of ``plan.calls`` calls. Instruction counts do not depend on
    other load on the machine, so the blocks need no interleaving and two children run
    at once (the simulator is not reset: these blocks are short)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(variant: str) -> dict[str, Any]:
        prefix = library.parent / f"callgrind.{provider}.{mode}.{variant}"
        child = Measured(variant, provider, mode, sim.url, plan.warmup, callgrind=(library, prefix))
        child.ready()
        for _ in range(plan.rounds):
            child.run(plan.calls)
        return child.finish()

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(variants, pool.map(one, variants), strict=True))


def paired_spread(cells: dict[str, dict[str, Any]], variant: str, reference: str) -> float | None:
    """max - min over rounds of (variant - reference): the noise of :func:`paired`."""
    a, b = cells.get(variant, {}), cells.get(reference, {})
    if "error" in a or "error" in b or not a.get("cpu_us") or not b.get("cpu_us"):
        return None
    diffs = [x - y for x, y in zip(a["cpu_us"], b["cpu_us"], strict=False)]
    return max(diffs) - min(diffs)


def paired(cells: dict[str, dict[str, Any]], variant: str, reference: str) -> float | None:
    """Median over rounds of (variant - reference) CPU per call: each round's blocks ran
    close together in time, so the difference cancels what drifted between rounds."""
    a, b = cells.get(variant, {}), cells.get(reference, {})
    if "error" in a or "error" in b or not a.get("cpu_us") or not b.get("cpu_us"):
        return None
    return statistics.median(x - y for x, y in zip(a["cpu_us"], b["cpu_us"], strict=False))


def summarise(
    cells: dict[str, dict[str, Any]], counted: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Medians, added CPU over the baseline, and the targets of one provider x mode;
    with ``counted`` (the callgrind children), the same in instructions per call."""
    out: dict[str, Any] = {}
    base = cells.get("baseline", {})
    base_cpu = statistics.median(base["cpu_us"]) if base.get("cpu_us") and "error" not in base else None
    for variant, cell in cells.items():
        row: dict[str, Any] = {}
        if "error" in cell:
            row["error"] = cell["error"]
        elif cell.get("cpu_us"):
            row["cpu_us"] = statistics.median(cell["cpu_us"])
            row["wall_us"] = statistics.median(cell["wall_us"])
            row["cpu_spread_us"] = max(cell["cpu_us"]) - min(cell["cpu_us"])
            row["spans_per_call"] = statistics.median(cell["spans_per_call"])
            if base_cpu is not None and variant != "baseline":
                row["added_us"] = paired(cells, variant, "baseline")
                row["added_pct"] = 100 * row["added_us"] / base_cpu
                row["added_spread_us"] = paired_spread(cells, variant, "baseline")
        out[variant] = row
    peers = {p: out[p]["added_us"] for p in PEERS if "added_us" in out.get(p, {})}
    best_peer = min(peers, key=peers.__getitem__) if peers else None
    best = peers.get(best_peer) if best_peer else None
    if best is not None and best > 0:
        for row in out.values():
            if "added_us" in row:
                row["ratio_to_best_peer"] = row["added_us"] / best
    ours = out.get("ours", {}).get("added_us")
    targets: dict[str, Any] = {}
    if ours is not None and best is not None:
        targets["ours_vs_best_peer"] = {
            "measure": "CPU time",
            "target": f"ours added <= {MAX_RATIO_TO_BEST_PEER:g} x best peer ({best_peer})",
            "value": ours / best if best > 0 else None,
            "pass": ours <= MAX_RATIO_TO_BEST_PEER * best,
        }
    if ours is not None and base_cpu is not None:
        targets["ours_share_of_baseline"] = {
            "measure": "CPU time",
            "target": f"ours added < {100 * MAX_SHARE_OF_BASELINE:g}% of baseline CPU",
            "value": ours / base_cpu,
            "pass": ours < MAX_SHARE_OF_BASELINE * base_cpu,
        }
    above_floor = paired(cells, "ours", "floor")
    if above_floor is not None:
        out["ours"]["above_floor_us"] = above_floor
        if best is not None and best > 0:
            out["ours"]["above_floor_vs_best_peer"] = above_floor / best
            targets["ours_above_floor_vs_best_peer"] = {
                "measure": "CPU time",
                "target": f"ours above the floor <= {MAX_ABOVE_FLOOR_TO_BEST_PEER:g} x best peer's added",
                "value": above_floor / best,
                "pass": above_floor <= MAX_ABOVE_FLOOR_TO_BEST_PEER * best,
            }
    guard = paired(cells, "ours+guard", "ours")
    if guard is not None and ours is not None:
        out["ours+guard"]["guard_added_us"] = guard
        targets["guard_vs_ours"] = {
            "measure": "CPU time",
            "target": f"guard added <= {100 * MAX_GUARD_SHARE_OF_OURS:g}% of ours added",
            "value": guard / ours if ours > 0 else None,
            "pass": guard <= MAX_GUARD_SHARE_OF_OURS * max(ours, 0.0),
        }
    summary: dict[str, Any] = {
        "baseline_cpu_us": base_cpu,
        "best_peer": best_peer,
        "best_peer_added_us": best,
        "rows": out,
        "targets": targets,
    }
    if counted:
        summary["instructions"] = summarise_instructions(counted, targets)
    return summary


def summarise_instructions(counted: dict[str, dict[str, Any]], targets: dict[str, Any]) -> dict[str, Any]:
    """Instructions per call (median over blocks; ``spread`` = max - min), added over the
    baseline, the ratios and the same targets, measured in instructions."""
    rows: dict[str, Any] = {}
    for variant, cell in counted.items():
        if "error" in cell or not cell.get("instructions"):
            rows[variant] = {"error": cell.get("error", "no instruction count")}
            continue
        values = cell["instructions"]
        rows[variant] = {"per_call": statistics.median(values), "spread": max(values) - min(values)}
    base = rows.get("baseline", {}).get("per_call")
    for variant, row in rows.items():
        if base is not None and "per_call" in row and variant != "baseline":
            row["added"] = row["per_call"] - base
    peers = {p: rows[p]["added"] for p in PEERS if "added" in rows.get(p, {})}
    best_peer = min(peers, key=peers.__getitem__) if peers else None
    best = peers.get(best_peer) if best_peer else None
    ours = rows.get("ours", {}).get("added")
    floor = rows.get("floor", {}).get("added")
    if best:
        for row in rows.values():
            if "added" in row:
                row["ratio_to_best_peer"] = row["added"] / best
    if ours is not None and best:
        targets["ours_vs_best_peer_instructions"] = {
            "measure": "instructions",
            "target": f"ours added <= {MAX_RATIO_TO_BEST_PEER:g} x best peer ({best_peer})",
            "value": ours / best,
            "pass": ours <= MAX_RATIO_TO_BEST_PEER * best,
        }
        if floor is not None:
            rows["ours"]["above_floor"] = ours - floor
            rows["ours"]["above_floor_vs_best_peer"] = (ours - floor) / best
            targets["ours_above_floor_vs_best_peer_instructions"] = {
                "measure": "instructions",
                "target": f"ours above the floor <= {MAX_ABOVE_FLOOR_TO_BEST_PEER:g} x best peer's added",
                "value": (ours - floor) / best,
                "pass": ours - floor <= MAX_ABOVE_FLOOR_TO_BEST_PEER * best,
            }
    return {"best_peer": best_peer, "best_peer_added": best, "rows": rows}


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(results: dict[str, Any]) -> None:
    header = (
        f"{'provider':<10}{'mode':<10}{'variant':<12}{'CPU us/call':>12}{'spread':>8}{'added us':>10}"
        f"{'added %':>9}{'x best peer':>12}{'instr/call':>12}{'added instr':>12}{'x best':>8}{'spans':>7}"
    )
    print(header)
    print("-" * len(header))
    for key, summary in results["cells"].items():
        provider, mode = key.split("/")
        counted = summary.get("instructions", {}).get("rows", {})
        for variant, row in summary["rows"].items():
            if "error" in row:
                print(f"{provider:<10}{mode:<10}{variant:<12}{'n/a':>12}   {row['error']}")
                continue
            irow = counted.get(variant, {})
            print(
                f"{provider:<10}{mode:<10}{variant:<12}{fmt(row['cpu_us'], '.1f'):>12}"
                f"{fmt(row['cpu_spread_us'], '.1f'):>8}{fmt(row.get('added_us'), '+.1f'):>10}"
                f"{fmt(row.get('added_pct'), '+.1f'):>9}{fmt(row.get('ratio_to_best_peer'), '.2f'):>12}"
                f"{fmt(irow.get('per_call'), ',.0f'):>12}{fmt(irow.get('added'), '+,.0f'):>12}"
                f"{fmt(irow.get('ratio_to_best_peer'), '.2f'):>8}{fmt(row['spans_per_call'], '.2f'):>7}"
            )
            if "above_floor_us" in row:
                share = row.get("above_floor_vs_best_peer")
                ishare = irow.get("above_floor_vs_best_peer")
                print(
                    f"{'':<32}ours above the exact floor (our own code): {row['above_floor_us']:+.1f} us/call"
                    f" = {fmt(share, '.3f')} x best peer's added (CPU); "
                    f"{fmt(irow.get('above_floor'), '+,.0f')} instr = {fmt(ishare, '.3f')} x (instructions)"
                )
            if "guard_added_us" in row:
                print(f"{'':<32}guard alone (ours+guard - ours): {row['guard_added_us']:+.1f} us/call")
        print()
    print("Targets")
    for key, summary in results["cells"].items():
        for target in summary["targets"].values():
            verdict = "PASS" if target["pass"] else "MISS"
            value = target["value"]
            if value is None:
                shown = "-"
            else:
                shown = f"{100 * value:.1f}%" if "%" in target["target"] else f"{value:.3f}x"
            print(f"  {verdict}  {key:<20}{target['measure']:<14}{target['target']:<58} measured {shown}")
    missing = [key for key, s in results["cells"].items() if "ours_vs_best_peer" not in s["targets"]]
    if missing:
        print(f"  n/a   not checked (ours or every peer unavailable): {', '.join(missing)}")


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    variants = [v for v in VARIANTS if v in args.variants]
    per_mode = plans(args)
    counting_off = "--no-instructions" if not args.instructions else callgrind_unavailable()
    counting = counting_off is None
    library = build_callgrind_helper(Path(tempfile.mkdtemp(prefix="otel-llm-bench-"))) if counting else None
    results: dict[str, Any] = {
        "benchmark": "overhead",
        "versions": versions(),
        "source": source_state(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "method": {
            "clock": "time.process_time_ns of the client process (all its threads); "
            "time.perf_counter_ns for wall time",
            "span_processor": "SimpleSpanProcessor -> exporter that counts and discards",
            "metric_reader": "InMemoryMetricReader (collected once, at the end)",
            "simulator": "otel_llm.sim.Simulator in its own process, zero latency, reset before each block",
            "stream_tokens": STREAM_TOKENS,
            "models": MODELS,
            "plans": {mode: vars(plan) for mode, plan in per_mode.items()},
            "statistic": "cpu_us = median over rounds of the mean CPU per call in a block; "
            "added_us = median over rounds of (variant - baseline) in the same round",
            "content_capture": "off for all (TRACELOOP_TRACE_CONTENT=false, OpenLIT "
            "capture_message_content=False, ours off by default)",
            "instructions": "cells[*].instructions: instructions executed by the client process "
            "(every thread) per call, counted by valgrind's callgrind around each measured block "
            "only (start-up and warm-up uncounted); per_call = median over blocks, spread = max - min, "
            "added = variant - baseline; load-independent, unlike the CPU times"
            if counting
            else f"not counted: {counting_off}",
            "instruction_plans": {mode: vars(plan) for mode, plan in INSTRUCTION_PLANS.items()}
            if counting
            else None,
        },
        "raw": {},
        "cells": {},
    }
    sim = SimulatorProcess(STREAM_TOKENS)
    try:
        for provider in args.providers:
            for mode in args.modes:
                key = f"{provider}/{mode}"
                t0 = time.monotonic()
                cells = measure_cell(variants, provider, mode, per_mode[mode], sim)
                results["raw"][key] = cells
                counted = None
                if library is not None:
                    plan = INSTRUCTION_PLANS[mode]
                    counted = count_instructions(variants, provider, mode, plan, sim, library)
                    results.setdefault("raw_instructions", {})[key] = counted
                results["cells"][key] = summarise(cells, counted)
                print(f"  measured {key} in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    finally:
        sim.close()
    results["runtime_s"] = time.monotonic() - started
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny run to check the harness (noisy numbers)")
    p.add_argument("--calls", type=int, default=150, help="non-streaming calls per block")
    p.add_argument("--warmup", type=int, default=200, help="warm-up non-streaming calls")
    p.add_argument("--stream-calls", type=int, default=15, help="streaming calls per block")
    p.add_argument("--stream-warmup", type=int, default=20, help="warm-up streaming calls")
    p.add_argument("--rounds", type=int, default=15, help="blocks per variant, interleaved (median taken)")
    p.add_argument("--providers", nargs="+", default=list(PROVIDERS), choices=PROVIDERS)
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    p.add_argument(
        "--instructions",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also count instructions per call under valgrind's callgrind (default: on, off with --quick)",
    )
    p.add_argument("--profile", choices=VARIANTS, help="cProfile one variant instead of benchmarking")
    p.add_argument("--provider", choices=PROVIDERS, default="openai")
    p.add_argument("--mode", choices=MODES, default="nonstream")
    p.add_argument("--profile-calls", type=int, default=2000)
    p.add_argument(
        "--profiler", choices=("cprofile", "none"), default="cprofile", help="none: run for py-spy"
    )
    p.add_argument("--profile-sort", default="tottime", help="pstats sort key (tottime, cumulative)")
    p.add_argument("--profile-top", type=int, default=40)
    # Internal: the measured child process and the simulator process.
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--variant", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--callgrind", help=argparse.SUPPRESS)
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve is not None:
        serve_simulator(args.serve)
        return 0
    if args.child:
        run_child(args)
        return 0
    if args.profile:
        args.variant = args.profile
        args.calls = args.profile_calls
        for key, value in CHILD_ENV.items():
            os.environ.setdefault(key, value)
        sim = SimulatorProcess(STREAM_TOKENS)
        try:
            args.url = sim.url
            run_profile(args)
        finally:
            sim.close()
        return 0
    if args.instructions is None:
        args.instructions = not args.quick
    results = run_all(args)
    print()
    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out} ({results['runtime_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
