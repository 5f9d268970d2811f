"""A generated, realistic workload with a known regression, as otel-llm's spans.

Eight days of two services: ``support-bot`` (steady) and ``coding-agent``, whose
release ``1.1.0`` ships at the start of the last day (:attr:`Sample.release_at`) with a
prompt change that breaks prompt caching (the system prompt now carries a timestamp:
every call rewrites the prefix, miss reason ``system prompt changed``), loops longer
(8-10 model calls a task instead of 3-4), escalates to the dearer model on its last
call, streams slower (TTFT x4), repeats identical requests, and has one runaway task
killed by its budget. Release ``1.0.0`` runs the seven days before.

The dashboards' tests, the report's tests and ``otel-llm report --sample`` load it into
an embedded store to show every panel on data whose answer is known. Everything is
drawn from one seeded generator: the same ``now`` and seed give the same spans.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from dataclasses import dataclass, field

from otel_llm.storage.records import SpanEvent, SpanRecord

__all__ = ["Sample", "generate"]

SONNET, HAIKU, OPUS = "claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"
MINI = "gpt-4o-mini"
# $ per million tokens as genai-prices lists them; the spans carry costs like the
# instrumentation would compute them (what the report sums, not what it checks).
_PRICES = {SONNET: (3.0, 15.0), HAIKU: (1.0, 5.0), OPUS: (15.0, 75.0), MINI: (0.15, 0.6)}
_PROVIDER = {SONNET: "anthropic", HAIKU: "anthropic", OPUS: "anthropic", MINI: "openai"}


@dataclass
class Sample:
    spans: list[SpanRecord]
    now: dt.datetime
    release_at: dt.datetime
    """When coding-agent 1.1.0 replaced 1.0.0 (the regression starts)."""
    killed_task: str
    tasks: dict[str, dict] = field(default_factory=dict)
    """task id -> what was generated for it (service, version, calls, cost, outcome)."""


def _ns(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1_000_000) * 1000


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(digits * 4):0{digits}x}"


def _cost(model: str, uncached: int, read: int, write: int, output: int) -> tuple[float, float]:
    p_in, p_out = _PRICES[model]
    cost = (uncached * p_in + read * p_in * 0.1 + write * p_in * 1.25 + output * p_out) / 1e6
    savings = (read * p_in * 0.9 - write * p_in * 0.25) / 1e6
    return round(cost, 9), round(savings, 9)


def generate(now: dt.datetime | None = None, *, seed: int = 7, tasks_per_hour: int = 2) -> Sample:
    """The workload ending at ``now`` (default: this hour, UTC)."""
    now = now or dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    rng = random.Random(seed)
    release_at = now - dt.timedelta(days=1)
    start = now - dt.timedelta(days=8)
    sample = Sample(spans=[], now=now, release_at=release_at, killed_task="")
    hour = start
    n = 0
    while hour < now:
        for _ in range(tasks_per_hour):
            at = hour + dt.timedelta(seconds=rng.uniform(0, 3300))
            n += 1
            if n % 3 == 0:
                _task(sample, rng, at, "support-bot", "2.3.0", "answer", regressed=False, n=n)
            else:
                regressed = at >= release_at
                version = "1.1.0" if regressed else "1.0.0"
                _task(sample, rng, at, "coding-agent", version, "fix-bug", regressed=regressed, n=n)
        hour += dt.timedelta(hours=1)
    # The runaway: 1.1.0 loops until its budget kills it, three hours before now.
    _task(sample, rng, now - dt.timedelta(hours=3), "coding-agent", "1.1.0", "fix-bug", regressed=True,
          n=n + 1, runaway=True)  # fmt: skip
    return sample


def _task(
    sample: Sample,
    rng: random.Random,
    at: dt.datetime,
    service: str,
    version: str,
    name: str,
    *,
    regressed: bool,
    n: int,
    runaway: bool = False,
) -> None:
    trace = _hex(rng, 32)
    task_id = f"{name}-{n:05d}"
    task_span_id = _hex(rng, 16)
    resource = {"service.name": service, "service.version": version, "telemetry.sdk.name": "opentelemetry",
                "tenant": "acme" if n % 2 else "globex"}  # fmt: skip
    if service == "support-bot":
        models, calls = [MINI], rng.randint(1, 3)
    elif regressed:
        models, calls = [SONNET], rng.randint(8, 10)
    else:
        models, calls = [HAIKU, SONNET], rng.randint(3, 4)
    if runaway:
        calls = 24
    prefix = hashlib.sha256(f"{service}:{version}".encode()).hexdigest()[:16]
    context = 2000 + rng.randint(0, 500)
    t = at
    total_cost = 0.0
    ttft_scale = 4.0 if regressed else 1.0
    batches = sequential = 0
    saveable = busy = wall = 0.0
    for i in range(1, calls + 1):
        model = models[min(i - 1, len(models) - 1)]
        if regressed and i == calls and not runaway:
            model = OPUS  # escalation on the last call
        output = rng.randint(150, 450)
        stable = 1500  # system + tools: the cacheable prefix
        if _PROVIDER[model] == "openai":
            read, write = 0, 0
        elif regressed:
            read, write = 0, stable  # the prefix changes every call: written, never read
        else:
            read, write = (0, stable) if i == 1 else (stable, 0)
        uncached = context - read - write
        cost, savings = _cost(model, uncached, read, write, output)
        total_cost += cost
        ttft = round(rng.uniform(0.3, 0.7) * ttft_scale, 3)
        duration = ttft + output * 0.012
        request = hashlib.sha256(f"{task_id}:{i}".encode()).hexdigest()[:32]
        if regressed and i >= 3 and i % 3 == 0:
            request = hashlib.sha256(f"{task_id}:retry".encode()).hexdigest()[:32]  # re-sent verbatim
        attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": _PROVIDER[model],
            "gen_ai.request.model": model,
            "gen_ai.response.model": model,
            "gen_ai.response.id": f"msg_{_hex(rng, 20)}",
            "gen_ai.request.stream": "true",
            "gen_ai.usage.input_tokens": str(context),
            "gen_ai.usage.output_tokens": str(output),
            "gen_ai.usage.cache_read.input_tokens": str(read),
            "gen_ai.usage.cache_creation.input_tokens": str(write),
            "gen_ai.response.time_to_first_chunk": repr(ttft),
            "otel_llm.cost.usd": repr(cost),
            "otel_llm.cost.cache_savings_usd": repr(savings),
            "otel_llm.price.source": "genai-prices",
            "otel_llm.task.id": task_id,
            "otel_llm.task.name": name,
            "otel_llm.task.iteration": str(i),
            "otel_llm.prompt.prefix_hash": prefix,
            "otel_llm.prompt.request_hash": request,
            "otel_llm.budget.state": "warn" if runaway and i > 18 else "ok",
        }
        if write:
            attrs["otel_llm.usage.cache_creation.5m_input_tokens"] = str(write)
        if regressed and write:
            attrs["otel_llm.cache.miss_reason"] = "system prompt changed"
        sample.spans.append(
            SpanRecord(
                timestamp_ns=_ns(t), trace_id=trace, span_id=_hex(rng, 16), parent_span_id=task_span_id,
                span_name=f"chat {model}", span_kind="Client", service_name=service,
                resource_attributes=resource, scope_name="otel_llm.instrumentation.anthropic",
                scope_version="0.1.0", span_attributes=attrs, duration_ns=int(duration * 1e9),
                status_code="Ok",
            )
        )  # fmt: skip
        t += dt.timedelta(seconds=duration)
        context += output + rng.randint(200, 600)  # the answer and the tool results are re-sent next time
        if i < calls:
            tools = 2 if i % 2 else 1
            lengths = [rng.uniform(0.2, 1.2) for _ in range(tools)]
            if tools > 1:
                batches += 1
                busy += sum(lengths)
                if service == "coding-agent":  # run one after another
                    sequential += 1
                    saveable += sum(lengths) - max(lengths)
                    wall += sum(lengths)
                    t += dt.timedelta(seconds=sum(lengths))
                else:
                    wall += max(lengths)
                    t += dt.timedelta(seconds=max(lengths))
            else:
                batches += 1
                busy += lengths[0]
                wall += lengths[0]
                t += dt.timedelta(seconds=lengths[0])
    outcome = "stopped" if runaway else ("error" if rng.random() < 0.05 else "done")
    events = []
    task_attrs = {
        "otel_llm.task.id": task_id,
        "otel_llm.task.name": name,
        "otel_llm.task.outcome": outcome,
        "otel_llm.task.cost.usd": repr(round(total_cost, 9)),
        "otel_llm.task.iterations": str(calls),
        "otel_llm.task.duration_s": repr(round((t - at).total_seconds(), 3)),
        "otel_llm.task.tool_calls": str(batches + sequential),
        "otel_llm.task.tool_batches": str(batches),
        "otel_llm.task.tool_batches.sequential": str(sequential),
        "otel_llm.task.tool_saveable_s": repr(round(saveable, 3)),
        "otel_llm.task.tool_parallelism": repr(round(busy / wall, 3) if wall else 1.0),
        "otel_llm.budget.state": "killed" if runaway else "ok",
        "otel_llm.budget.max_iterations": "24",
    }
    if runaway:
        sample.killed_task = task_id
        task_attrs["otel_llm.task.stopped_by"] = "max_iterations"
        limit = {"otel_llm.budget.limit": "max_iterations", "otel_llm.budget.limit_value": "24"}
        events = [
            SpanEvent(
                _ns(at + (t - at) * 0.75), "otel_llm.budget.warn", {**limit, "otel_llm.budget.spent": "19"}
            ),
            SpanEvent(_ns(t), "otel_llm.budget.exceeded", {**limit, "otel_llm.budget.spent": "24"}),
            SpanEvent(_ns(t), "otel_llm.budget.killed", {**limit, "otel_llm.budget.spent": "24"}),
        ]
    sample.spans.append(
        SpanRecord(
            timestamp_ns=_ns(at), trace_id=trace, span_id=task_span_id, span_name=f"invoke_agent {name}",
            span_kind="Internal", service_name=service, resource_attributes=resource,
            scope_name="otel_llm.tasks", scope_version="0.1.0", span_attributes=task_attrs,
            duration_ns=int((t - at).total_seconds() * 1e9),
            status_code="Error" if outcome != "done" else "Ok", events=events,
            status_message="budget exceeded: max_iterations" if runaway else "",
        )
    )  # fmt: skip
    sample.tasks[task_id] = {"service": service, "version": version, "calls": calls, "cost": total_cost,
                             "outcome": outcome, "started": at, "trace_id": trace}  # fmt: skip
