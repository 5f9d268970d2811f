"""The report's, the CLI's and the dashboards' questions, as named ``.sql`` files.

Each file in ``otel_llm/storage/queries/`` is one ClickHouse query with named
parameters (``{start:DateTime64(9)}``), bound by the server. Grafana panels can use the
same text with their own macros. Run one by name::

    rows = queries.run(backend, "top_tasks", start=t0, end=t1, limit=10)

Parameters a query declares but the caller omits get :data:`DEFAULTS` (``service=''``
means every service, ``limit=20``); any other missing one is an error naming it.

=====================  =================================================================
name                   answers
=====================  =================================================================
``summary``            calls, tasks, cost, tokens, cache hit ratio, error rate
``task_cost``          cost and tokens per task: exact p50/p95, average, total
``top_tasks``          the most expensive tasks, with iterations and budget state
``task_iterations``    model calls per task: p50/p95/max
``token_ratio``        input:output ratio and cache hit ratio per model, and overall
``cache_by_prefix``    cache hit ratio, reads per write against break-even, savings
``model_mix``          share of calls and of cost per model
``ttft``               time to first chunk p50/p90/p95/p99 per model
``compare``            every figure for one cohort (window, version) against another
``drift``              ``compare``: the current window against its baseline window
``version_compare``    ``compare``: one ``service.version`` against another
``budget_events``      recent warnings, kills and alerts
=====================  =================================================================

``drift`` and ``version_compare`` have no file of their own: each is ``compare.sql`` with
its parameters named for the question and its ``a``/``b`` columns renamed (see
:data:`VIEWS`), so the long metric list is written once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from otel_llm.storage.backend import Backend
from otel_llm.storage.statements import read_sql

__all__ = ["DEFAULTS", "VIEWS", "View", "load", "names", "parameters", "run"]

DEFAULTS: dict[str, Any] = {"service": "", "limit": 20}

_PARAM = re.compile(r"\{(\w+):([^}]+)\}")


@dataclass(frozen=True)
class View:
    """A named question answered by another query file."""

    query: str
    params: Mapping[str, str] = field(default_factory=dict)
    """Query parameter -> the caller's name for it (others keep their name)."""
    fixed: Mapping[str, Any] = field(default_factory=dict)
    """Query parameters the question sets itself."""
    columns: Mapping[str, str] = field(default_factory=dict)
    """Result column -> the name the question gives it."""


VIEWS: dict[str, View] = {
    "drift": View(
        "compare",
        params={"a_start": "baseline_start", "a_end": "baseline_end", "b_start": "start", "b_end": "end"},
        fixed={"a_version": "", "b_version": ""},
        columns={"a": "baseline", "b": "current"},
    ),
    "version_compare": View(
        "compare",
        params={
            "a_start": "start",
            "a_end": "end",
            "b_start": "start",
            "b_end": "end",
            "a_version": "version_a",
            "b_version": "version_b",
        },
    ),
}


def _declared(sql: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in _PARAM.finditer(sql)}


def names() -> list[str]:
    """The names of every shipped query, views included."""
    files = resources.files("otel_llm.storage").joinpath("queries").iterdir()
    return sorted([f.name[:-4] for f in files if f.name.endswith(".sql")] + list(VIEWS))


@cache
def load(name: str) -> str:
    """The SQL text of query ``name`` (of the query a view runs)."""
    if name not in names():
        raise KeyError(f"no query named {name!r}; known: {', '.join(names())}")
    view = VIEWS.get(name)
    return read_sql("queries", f"{view.query if view else name}.sql")


def parameters(name: str) -> dict[str, str]:
    """``{parameter: ClickHouse type}`` of query ``name``, as its callers name them."""
    declared = _declared(load(name))
    view = VIEWS.get(name)
    if view is None:
        return declared
    return {view.params.get(k, k): kind for k, kind in declared.items() if k not in view.fixed}


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
    view = VIEWS.get(name)
    if view is None:
        return backend.query(load(name), values).dicts()
    bound = {k: values[view.params.get(k, k)] for k in _declared(load(name)) if k not in view.fixed}
    result = backend.query(load(name), {**bound, **view.fixed})
    renamed = [view.columns.get(c, c) for c in result.columns]
    return [dict(zip(renamed, row, strict=True)) for row in result.rows]
