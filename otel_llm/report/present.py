"""How the report writes numbers and which rows its tables hold: one definition for
the terminal and the HTML page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["BEFORE_AFTER", "DRIFT", "TASK_COLUMNS", "change", "count", "fmt", "ratio", "seconds", "usd"]


def usd(value: Any) -> str:
    if value is None:
        return "-"
    value = float(value)
    sign, value = ("-" if value < 0 else ""), abs(value)
    if value >= 100:
        return f"{sign}${value:,.0f}"
    if value >= 1:
        return f"{sign}${value:,.2f}"
    return f"{sign}${value:.4f}"


def ratio(value: Any) -> str:
    return "-" if value is None else f"{float(value) * 100:.1f}%"


def seconds(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2f} s"


def count(value: Any) -> str:
    if value is None:
        return "-"
    value = float(value)
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def change(value: Any) -> str:
    return "-" if value is None else f"{float(value) * 100:+.0f}%"


def fmt(kind: str, value: Any) -> str:
    return {"usd": usd, "ratio": ratio, "seconds": seconds, "count": count}[kind](value)


# compare-query metric -> (label, kind, True when higher is worse)
BEFORE_AFTER: list[tuple[str, str, str, bool]] = [
    ("tasks", "tasks", "count", False),
    ("cost_per_task_p50_usd", "cost per task, median", "usd", True),
    ("cost_per_task_p95_usd", "cost per task, p95", "usd", True),
    ("task_latency_p50_seconds", "latency per task, median", "seconds", True),
    ("task_latency_p95_seconds", "latency per task, p95", "seconds", True),
    ("task_success_rate", "task success", "ratio", False),
    ("calls_per_task_p50", "model calls per task, median", "count", True),
    ("cache_hit_ratio", "cache hit ratio", "ratio", False),
    ("ttft_p95_seconds", "time to first token, p95", "seconds", True),
    ("cost_usd", "total cost", "usd", True),
]
DRIFT = BEFORE_AFTER

TASK_COLUMNS: list[tuple[str, str, Callable[[Any], str]]] = [
    ("task_id", "task", str),
    ("task_name", "name", str),
    ("service", "service", str),
    ("calls", "calls", count),
    ("input_tokens", "input tok", count),
    ("output_tokens", "output tok", count),
    ("cost_usd", "cost", usd),
    ("outcome", "outcome", str),
    ("budget_state", "budget", str),
]
