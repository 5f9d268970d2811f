"""What the report shows, read from the store with the shared named queries (the same
SQL the Grafana panels hold, :mod:`otel_llm.storage.queries`)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from otel_llm.storage import prices, queries
from otel_llm.storage.backend import Backend

__all__ = ["Compare", "ReportData", "collect", "parse_compare", "parse_since"]

_SINCE = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str) -> dt.timedelta:
    """``24h``, ``30m``, ``7d``, ``2w`` -> a timedelta; anything else is a ValueError."""
    match = _SINCE.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"--since takes a positive number and a unit m, h, d or w (e.g. 24h), got {text!r}")
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@dataclass(frozen=True)
class Compare:
    """``--compare service.version=A,B``: release A (before) against B (after)."""

    before: str
    after: str


def parse_compare(text: str) -> Compare:
    key, sep, values = text.partition("=")
    parts = [v.strip() for v in values.split(",")]
    if key.strip() != "service.version" or not sep or len(parts) != 2 or not all(parts):
        raise ValueError(f"--compare takes service.version=A,B (two versions), got {text!r}")
    return Compare(parts[0], parts[1])


@dataclass
class ReportData:
    start: dt.datetime
    end: dt.datetime
    service: str
    compare: Compare | None
    results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def one(self, name: str) -> dict[str, Any]:
        rows = self.results.get(name) or [{}]
        return rows[0]


# (query name, extra parameters): every figure of the report, in the order it shows them.
_SECTIONS: list[tuple[str, dict[str, Any]]] = [
    ("summary", {}),
    ("task_cost", {}),
    ("cost_over_time", {}),
    ("top_tasks", {"limit": 10}),
    ("tasks", {"limit": 200}),
    ("model_mix", {}),
    ("token_ratio", {}),
    ("escalations", {}),
    ("cost_per_success", {}),
    ("cache_over_time", {}),
    ("cache_by_prefix", {"limit": 10}),
    ("cache_miss_reasons", {}),
    ("repeated_requests", {"limit": 10}),
    ("context_growth", {}),
    ("loop_length", {}),
    ("ttft", {}),
    ("latency_over_time", {}),
    ("tool_parallelism", {}),
    ("killed_tasks", {"limit": 20}),
    ("budget_events", {"limit": 20}),
    ("drift", {}),
]


def _interval(span: dt.timedelta) -> int:
    # About 48 buckets a chart, on a round number of minutes.
    seconds = max(60, int(span.total_seconds() / 48) // 60 * 60)
    return seconds


def collect(
    backend: Backend,
    start: dt.datetime,
    end: dt.datetime,
    *,
    service: str = "",
    compare: Compare | None = None,
) -> ReportData:
    """Run every query of the report over ``[start, end)``."""
    prices.refresh(backend)
    data = ReportData(start, end, service, compare)
    common = {"start": start, "end": end, "service": service, "interval_s": _interval(end - start)}
    for name, extra in _SECTIONS:
        params = {k: v for k, v in {**common, **extra}.items() if k in queries.parameters(name)}
        data.results[name] = queries.run(backend, name, params)
    if compare is not None:
        params = {"start": start, "end": end, "service": service}
        data.results["version_compare"] = queries.run(
            backend, "version_compare", params, version_a=compare.before, version_b=compare.after
        )
    return data
