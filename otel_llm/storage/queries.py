"""The report's, the CLI's, the dashboards' and the alert rules' questions, as named ``.sql`` files.

Each file in ``otel_llm/storage/queries/`` is one ClickHouse query written ONCE in the
Grafana ClickHouse plugin's dialect (macros such as ``$__timeFilter(timestamp)`` and
dashboard variables such as ``${service:singlequote}``, see
:mod:`otel_llm.storage.dialect`). Grafana panels and alert rules carry that text
(:func:`panel_sql`); Python runs it with server-bound parameters (:func:`bound_sql`,
:func:`run`)::

    rows = queries.run(backend, "top_tasks", start=t0, end=t1, limit=10)

Parameters: ``start``/``end`` (the window, half-open), ``interval_s`` (time-series
bucket), the dashboard variables ``service``, ``model``, ``task_name``, ``version``
(``''`` = all), and number variables (``limit``, ``ttft_slo_s``, ``repeat_window_s``).
Those a query declares but the caller omits get :data:`DEFAULTS`; a missing one without
default is an error naming it.

Every query reads ``llm_calls FINAL``, so a model call described by several spans
(schema 0005) counts once; per-task figures are summed from those calls, and the
``tasks`` table gives only what task spans know (outcome, duration, budget state).
They set ``do_not_merge_across_partitions_select_final = 1``: FINAL then works one day
partition at a time (several times faster over a month), so the spans of one call fold
when they fall on the same UTC day, as spans milliseconds apart do unless they straddle
midnight (such a call counts twice; run without the setting to fold those too).

=========================  ============  ==================================================
name                       panel         answers
=========================  ============  ==================================================
``summary``                stat          calls, tasks, cost, tokens, cache hit ratio, errors
``cost_over_time``         timeseries    spend by service / model
``task_cost``              stat          cost, tokens, calls per task: p50/p95
``task_iterations``        stat          model calls per task: p50/p95/max
``token_ratio``            table         input:output and cache hit ratio per model
``top_tasks``              table         the costliest tasks
``tasks``                  table         every task, newest first (outcome, duration)
``context_growth``         barchart      tokens sent by iteration number
``loop_length``            barchart      tasks by number of model calls
``cache_over_time``        timeseries    hit ratio, read/write tokens, net savings
``cache_by_prefix``        table         per-prefix ROI against break-even; losing prefixes
``cache_miss_reasons``     piechart      why cacheable calls missed
``repeated_requests``      table         identical requests within a window, their cost
``model_mix``              piechart      share of calls and cost per model
``model_mix_over_time``    timeseries    calls per model
``escalations``            stat          calls to a dearer model than the task's previous
``cost_per_success``       table         cost per successful task by final model
``ttft``                   table         TTFT p50/p90/p95/p99 per model
``latency_over_time``      timeseries    TTFT and time per output token p50/p95/p99, SLO
``tool_parallelism``       table         tool batches run sequentially, seconds lost
``budget_events``          table         recent warnings, kills and alerts
``budget_over_time``       timeseries    budget events by kind
``killed_tasks``           table         killed tasks, spend at kill
``compare``                table         every figure for one cohort against another
``drift``                  table         ``compare``: the window against its 7-day baseline
``version_compare``        table         ``compare``: version_a against version_b
``alert_*``                alert rule    one number per series for a Grafana alert rule
=========================  ============  ==================================================

``drift`` and ``version_compare`` have no file of their own: each is ``compare.sql``
with some variables fixed (see :data:`VIEWS`), so the long metric list is written once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from otel_llm.storage import dialect
from otel_llm.storage.backend import Backend
from otel_llm.storage.statements import read_sql, split_statements

__all__ = ["DEFAULTS", "VIEWS", "View", "bound_sql", "load", "names", "panel_sql", "parameters", "run"]

DEFAULTS: dict[str, Any] = {
    "service": "",
    "model": "",
    "task_name": "",
    "version": "",
    "limit": 20,
    "interval_s": 3600,
    "ttft_slo_s": 2.0,
    "repeat_window_s": 3600,
    "version_a": "",
    "version_b": "",
    "baseline_s": 0,
    "task_id": "",
}

SEVEN_DAYS_S = 7 * 24 * 3600


@dataclass(frozen=True)
class View:
    """A named question answered by another query file with some variables fixed."""

    query: str
    fixed: Mapping[str, Any] = field(default_factory=dict)
    """Variable -> the literal it is replaced by, in panel and bound SQL alike."""
    select: str = ""
    """Columns of the question, when it renames the query's (``a AS baseline``)."""


VIEWS: dict[str, View] = {
    "drift": View(
        "compare",
        fixed={"baseline_s": SEVEN_DAYS_S, "version_a": "", "version_b": ""},
        select="metric, a AS baseline, b AS current, change",
    ),
    "version_compare": View("compare", fixed={"baseline_s": 0}),
}


def names() -> list[str]:
    """The names of every shipped query, views included."""
    files = resources.files("otel_llm.storage").joinpath("queries").iterdir()
    return sorted([f.name[:-4] for f in files if f.name.endswith(".sql")] + list(VIEWS))


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return repr(value)


@cache
def load(name: str) -> str:
    """The dialect text of query ``name`` (comments dropped; a view's variables fixed)."""
    if name not in names():
        raise KeyError(f"no query named {name!r}; known: {', '.join(names())}")
    view = VIEWS.get(name)
    (text,) = split_statements(read_sql("queries", f"{view.query if view else name}.sql"))
    for variable, value in (view.fixed if view else {}).items():
        text = text.replace(f"${{{variable}:singlequote}}", _literal(value))
        text = text.replace(f"${{{variable}}}", _literal(value))
    return text


def panel_sql(name: str) -> str:
    """The SQL a Grafana panel or alert rule holds for query ``name``; a view renames
    its columns here too."""
    view = VIEWS.get(name)
    text = load(name)
    return f"SELECT {view.select} FROM (\n{text}\n)" if view and view.select else text


@cache
def bound_sql(name: str) -> str:
    """Query ``name`` with macros and variables as server-bound parameters."""
    return dialect.bind(panel_sql(name))


def parameters(name: str) -> dict[str, str]:
    """``{parameter: ClickHouse type}`` query ``name`` takes when run from Python."""
    return {m.group(1): m.group(2) for m in re.finditer(r"\{(\w+):([^}]+)\}", bound_sql(name))}


def run(
    backend: Backend, name: str, params: Mapping[str, Any] | None = None, **kw: Any
) -> list[dict[str, Any]]:
    """Run query ``name`` with ``params`` (and/or keyword parameters); rows as dicts."""
    given = {**(params or {}), **kw}
    declared = parameters(name)
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise TypeError(
            f"query {name!r} has no parameter(s) {', '.join(unknown)}; it takes {', '.join(declared)}"
        )
    values = {k: given.get(k, DEFAULTS.get(k)) for k in declared}
    missing = sorted(k for k, v in values.items() if v is None)
    if missing:
        raise TypeError(f"query {name!r} needs parameter(s) {', '.join(missing)}")
    return backend.query(bound_sql(name), values).dicts()
