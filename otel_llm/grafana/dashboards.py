"""otel-llm's Grafana dashboards: one per question area, every panel on a named query."""

from __future__ import annotations

from otel_llm.grafana.model import Dashboard, Panel, Variable

__all__ = ["DASHBOARDS", "VARIABLES"]

_SERVICE = Variable(
    "service",
    "Service",
    "SELECT DISTINCT toString(service_name) FROM llm_calls WHERE $__timeFilter(timestamp) ORDER BY 1",
)
_MODEL = Variable(
    "model",
    "Model",
    "SELECT DISTINCT toString(response_model) FROM llm_calls WHERE $__timeFilter(timestamp) ORDER BY 1",
)
_TASK_NAME = Variable(
    "task_name",
    "Task name",
    "SELECT DISTINCT toString(task_name) FROM llm_calls WHERE $__timeFilter(timestamp) ORDER BY 1",
)
_VERSION = Variable(
    "version",
    "Version",
    "SELECT DISTINCT toString(service_version) FROM llm_calls WHERE $__timeFilter(timestamp) ORDER BY 1",
)
_TASK_ID = Variable("task_id", "Task id", kind="textbox", default="", include_all=False, multi=False)
_LIMIT = Variable("limit", "Rows", kind="constant", default="50", include_all=False, multi=False)
_SLO = Variable("ttft_slo_s", "TTFT SLO (s)", kind="textbox", default="2", include_all=False, multi=False)
_WINDOW = Variable(
    "repeat_window_s",
    "Repeat window (s)",
    kind="custom",
    default="3600",
    options=("60", "300", "3600", "86400"),
    include_all=False,
    multi=False,
)
_VERSIONS = (
    "SELECT DISTINCT toString(service_version) FROM llm_calls "
    "WHERE timestamp >= $__fromTime - INTERVAL 7 DAY ORDER BY 1"
)
_VERSION_A = Variable("version_a", "Before (version)", _VERSIONS, include_all=False, multi=False)
_VERSION_B = Variable("version_b", "After (version)", _VERSIONS, include_all=False, multi=False)

VARIABLES = [_SERVICE, _MODEL, _TASK_NAME, _VERSION]
_COMMON = [*VARIABLES, _LIMIT]

USD, RATIO, SECONDS = "currencyUSD", "percentunit", "s"

DASHBOARDS: list[Dashboard] = [
    Dashboard(
        "otel-llm-cost",
        "otel-llm / Cost",
        [
            Panel(
                "Totals",
                "summary",
                "stat",
                width=24,
                height=5,
                stat_fields=(
                    "calls",
                    "tasks",
                    "cost_usd",
                    "cache_hit_ratio",
                    "cache_savings_usd",
                    "error_rate",
                ),
            ),
            Panel("Spend by service / model", "cost_over_time", "timeseries", USD, width=24),
            Panel(
                "Per task: cost, tokens, model calls (p50 / p95)",
                "task_cost",
                "stat",
                stat_fields=(
                    "cost_p50_usd",
                    "cost_p95_usd",
                    "tokens_p50",
                    "tokens_p95",
                    "calls_p50",
                    "calls_p95",
                ),
            ),
            Panel("Input : output ratio and cache hit ratio per model", "token_ratio", "table"),
            Panel("Costliest tasks", "top_tasks", "table", width=24, links_trace=True),
        ],
        _COMMON,
        "Where the money goes: spend over time, per task, per model.",
    ),
    Dashboard(
        "otel-llm-tasks",
        "otel-llm / Tasks",
        [
            Panel("Tasks", "tasks", "table", width=24, height=10, links_trace=True),
            Panel(
                "Context growth per iteration (tokens sent by the n-th call)",
                "context_growth",
                "barchart",
                "short",
                x_field="iteration",
            ),
            Panel(
                "Loop length (tasks by model calls)",
                "loop_length",
                "barchart",
                "short",
                x_field="loop_length",
            ),
            Panel(
                "Model calls per task",
                "task_iterations",
                "stat",
                stat_fields=("calls_p50", "calls_p95", "calls_max"),
            ),
        ],
        [*_COMMON, _TASK_ID],
        "Every task, how its context grows call after call, and how long agents loop.",
    ),
    Dashboard(
        "otel-llm-caching",
        "otel-llm / Prompt caching",
        [
            Panel("Cache hit ratio, reads, writes, net savings", "cache_over_time", "timeseries", width=24),
            Panel(
                "ROI per prompt prefix (break-even 1.39 reads/write on 5m, 2.22 on 1h; loses_money)",
                "cache_by_prefix",
                "table",
                width=24,
            ),
            Panel("Cache-miss reasons", "cache_miss_reasons", "piechart", "short"),
            Panel(
                "Cache totals",
                "summary",
                "stat",
                stat_fields=(
                    "cache_read_input_tokens",
                    "cache_creation_input_tokens",
                    "cache_hit_ratio",
                    "cache_savings_usd",
                ),
            ),
        ],
        _COMMON,
        "Whether prompt caching pays: hit ratio, net savings after the write premium, per prefix.",
    ),
    Dashboard(
        "otel-llm-repeats",
        "otel-llm / Repeated prompts",
        [
            Panel(
                "Repeated requests (identical content within the window)",
                "repeated_requests",
                "table",
                width=24,
                height=10,
            ),
            Panel(
                "Spent on repeats (exact-cache opportunity)",
                "repeated_requests",
                "stat",
                USD,
                stat_fields=("repeat_cost_usd",),
            ),
        ],
        [*_COMMON, _WINDOW],
        "Requests whose whole content repeats: what an exact or semantic cache would save.",
    ),
    Dashboard(
        "otel-llm-models",
        "otel-llm / Models and routing",
        [
            Panel("Model mix (calls)", "model_mix_over_time", "timeseries", "short", width=24),
            Panel("Share of calls and cost per model", "model_mix", "table"),
            Panel(
                "Escalations (call to a dearer model than the task's previous call)",
                "escalations",
                "stat",
                stat_fields=("escalation_rate", "escalations", "tasks_escalated", "escalated_cost_usd"),
            ),
            Panel("Cost per successful task by final model", "cost_per_success", "table", width=24),
        ],
        _COMMON,
        "Which models answer, how often a task escalates, what success costs per model.",
    ),
    Dashboard(
        "otel-llm-latency",
        "otel-llm / Latency",
        [
            Panel(
                "TTFT and time per output token, p50/p95/p99, against the SLO",
                "latency_over_time",
                "timeseries",
                SECONDS,
                width=24,
            ),
            Panel("TTFT per model", "ttft", "table"),
            Panel("Tool calls: parallelism and time lost to sequential batches", "tool_parallelism", "table"),
        ],
        [*_COMMON, _SLO],
        "Streaming latency against its SLO, and the time sequential tool calls cost.",
    ),
    Dashboard(
        "otel-llm-budgets",
        "otel-llm / Budgets",
        [
            Panel("Warnings, limits reached and kills", "budget_over_time", "timeseries", "short", width=24),
            Panel("Killed tasks, spend at kill", "killed_tasks", "table", width=24, links_trace=True),
            Panel("Budget events", "budget_events", "table", width=24, links_trace=True),
        ],
        _COMMON,
        "Budget warnings and kills over time; what each killed task had spent.",
    ),
    Dashboard(
        "otel-llm-drift",
        "otel-llm / Drift",
        [
            Panel("Every figure against its 7-day baseline", "drift", "table", width=12, height=14),
            Panel(
                "Before / after: version_a against version_b", "version_compare", "table", width=12, height=14
            ),
        ],
        [*_COMMON, _VERSION_A, _VERSION_B],
        "Is this window worse than the week before it, and is the new release worse than the old?",
        time_from="now-24h",
    ),
]
